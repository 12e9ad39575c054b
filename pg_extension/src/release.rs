//! Releases: the library serves exactly one version of the extension's SQL
//! objects, its own.
//!
//! Released SQL is frozen (`sql/botai--X.sql`) and an existing database
//! moves forward with `ALTER EXTENSION botai UPDATE` (upgrade scripts
//! `sql/botai--A--B.sql`). Between installing a new library and running that
//! update, a database still has the objects of an older release: tables
//! without the columns the new statements use, functions with the old
//! signatures. Every entry point that touches the database checks the
//! version once per backend and refuses, in one line that names the
//! command, rather than misbehave halfway through a statement.

use std::cell::Cell;

use pgrx::prelude::*;

use crate::error::{BotaiError, Result};

/// The version this library is (and whose SQL it expects).
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    /// Set once this backend saw its database at the library's version; an
    /// extension is never downgraded, so it stays true.
    static CURRENT: Cell<bool> = const { Cell::new(false) };
}

/// The version of the extension's objects in this database, if installed.
pub fn installed(client: &pgrx::spi::SpiClient<'_>) -> Result<Option<String>> {
    let rows = client.select("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'botai'", Some(1), &[])?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(rows.first().get_one::<String>()?)
}

/// Ok when the database's botai objects are this library's version. During
/// CREATE EXTENSION and ALTER EXTENSION the scripts themselves run, and they
/// may call the library: no check then.
pub fn ensure_current(client: &pgrx::spi::SpiClient<'_>) -> Result<()> {
    if CURRENT.with(Cell::get) || unsafe { pg_sys::creating_extension } {
        return Ok(());
    }
    match installed(client)? {
        Some(v) if v == LIBRARY => {
            CURRENT.with(|c| c.set(true));
            Ok(())
        }
        Some(v) => Err(BotaiError::StaleSql { installed: v, library: LIBRARY }),
        None => Err(BotaiError::WrongState("the botai extension is not installed in this database".into())),
    }
}
