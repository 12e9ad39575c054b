//! JSON arguments from clients.
//!
//! pgrx's `JsonB` turns a jsonb argument into `serde_json::Value` before the
//! function runs and panics (XX000) on what serde_json cannot hold: numbers
//! beyond an f64 (jsonb keeps arbitrary numerics, `1e400`) and documents
//! nested deeper than 128 levels. `ClientJson` reads the same argument but
//! keeps the failure, so the function refuses it with 22023 and a message
//! that says which argument and why.

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{direct_function_call, FromDatum, JsonB};
use serde_json::Value;

use crate::error::BotaiError;

/// An optional jsonb argument as pgrx's JsonB, or 22023 naming it.
pub fn arg(value: Option<ClientJson>, argument: &str) -> Result<Option<JsonB>, BotaiError> {
    value.map(|v| v.jsonb(argument)).transpose()
}

/// A jsonb argument, parsed or with the reason it could not be.
pub struct ClientJson(std::result::Result<Value, String>);

impl ClientJson {
    /// The document as pgrx's JsonB, or 22023 naming `argument`.
    pub fn jsonb(self, argument: &str) -> Result<JsonB, BotaiError> {
        self.0.map(JsonB).map_err(|why| {
            BotaiError::invalid(
                argument,
                format!(
                    "cannot be used: {why} (botai's JSON arguments hold numbers within ±1.8e308 and nest at most \
                     128 levels)"
                ),
            )
        })
    }
}

impl FromDatum for ClientJson {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        let varlena = datum.cast_mut_ptr();
        let detoasted = unsafe { pg_sys::pg_detoast_datum_packed(varlena) };
        let text = unsafe { direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(detoasted.into())]) }
            .expect("jsonb_out returns text");
        let parsed = match text.to_str() {
            Ok(s) => serde_json::from_str::<Value>(s).map_err(|e| e.to_string()),
            Err(_) => Err("its text is not UTF-8".to_owned()),
        };
        unsafe {
            pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void);
            if detoasted != varlena {
                pg_sys::pfree(detoasted as *mut core::ffi::c_void);
            }
        }
        Some(ClientJson(parsed))
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for ClientJson {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

unsafe impl SqlTranslatable for ClientJson {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(ClientJson);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}
