//! Rights that depend on an argument, not only on EXECUTE.
//!
//! Who may call a function is granted per role (migrations/repeatable/
//! grants.sql). The rate limiter's functions are the exception: the trading
//! engine books and penalizes a venue's keys, the alert deliverer
//! Telegram's, with the same functions. Each may touch only its own: an
//! engine's role that penalizes `telegram/chat` for a day mutes every
//! alert, an alert deliverer that books a venue's window full stops
//! trading. The rate functions run as their caller (not SECURITY DEFINER),
//! so the caller's role is checked here.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::pg_sys;

use crate::error::{BotaiError, Result};

/// Rate-limit "exchanges" that pace alert delivery, not trading.
pub const ALERT_DELIVERY_KEYS: [&str; 1] = ["telegram"];

/// The role that books the keys of `exchange`.
pub fn rate_key_owner(exchange: &str) -> &'static str {
    if ALERT_DELIVERY_KEYS.contains(&exchange) {
        "botai_alerter"
    } else {
        "botai_engine"
    }
}

thread_local! {
    /// Role OIDs looked up in this backend (roles are cluster-wide and
    /// made once by `botai db migrate`).
    static ROLE_OIDS: RefCell<HashMap<&'static str, pg_sys::Oid>> = RefCell::new(HashMap::new());
}

fn role_oid(role: &'static str) -> Option<pg_sys::Oid> {
    if let Some(oid) = ROLE_OIDS.with(|c| c.borrow().get(role).copied()) {
        return Some(oid);
    }
    let name = std::ffi::CString::new(role).ok()?;
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        return None;
    }
    ROLE_OIDS.with(|c| c.borrow_mut().insert(role, oid));
    Some(oid)
}

/// Ok when the calling role has the rights of the role that owns the
/// rate-limit keys of `exchange` (superusers and the owner do). Where the
/// roles were never created (a database set up by hand), nothing is split.
pub fn may_book(exchange: &str) -> Result<()> {
    let owner = rate_key_owner(exchange);
    let Some(oid) = role_oid(owner) else { return Ok(()) };
    let caller = unsafe { pg_sys::GetUserId() };
    if unsafe { pg_sys::has_privs_of_role(caller, oid) } {
        return Ok(());
    }
    let what = if owner == "botai_alerter" { "alert delivery" } else { "trading" };
    Err(BotaiError::Denied(format!(
        "the rate-limit keys of \"{exchange}\" pace {what}: only {owner} books, observes or penalizes them"
    )))
}

/// Refuses an alert-delivery key as a trading exchange: an order of
/// "telegram" would book Telegram's window through botai_reserve_order,
/// which runs as the owner (past `may_book`).
pub fn trading_exchange(exchange: &str) -> Result<()> {
    if ALERT_DELIVERY_KEYS.contains(&exchange) {
        return Err(BotaiError::invalid(
            "exchange",
            format!("\"{exchange}\" paces alert delivery; it is no exchange orders are placed on"),
        ));
    }
    Ok(())
}
