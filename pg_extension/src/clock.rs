//! Conversions between PostgreSQL time and chrono, and the moments the
//! functions use as "now".

use chrono::{DateTime, Utc};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;

use crate::error::BotaiError;

/// Seconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

/// The start of the current statement, µs since 2000-01-01.
pub fn statement_start() -> i64 {
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}

/// The start of the current transaction (`now()`), µs since 2000-01-01.
pub fn transaction_start() -> i64 {
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// The wall clock, µs since 2000-01-01.
pub fn wall() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// A moment of the server's own clock as chrono (always in range).
pub fn to_chrono(pg_micros: i64) -> DateTime<Utc> {
    checked_chrono(pg_micros).expect("the server's clock fits chrono")
}

/// PostgreSQL's range ends in year 294276, chrono's in 262142.
fn checked_chrono(pg_micros: i64) -> Option<DateTime<Utc>> {
    pg_micros.checked_add(PG_EPOCH_UNIX_SECONDS * 1_000_000).and_then(DateTime::from_timestamp_micros)
}

pub fn from_chrono(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() - PG_EPOCH_UNIX_SECONDS * 1_000_000
}

pub fn timestamptz(pg_micros: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(pg_micros).expect("a finite timestamp in range")
}

/// A finite SQL timestamptz as chrono. PostgreSQL's range ends in year
/// 294276, chrono's in 262142: later ones are refused (22023), as are
/// infinities.
pub fn finite(argument: &'static str, ts: TimestampWithTimeZone) -> Result<DateTime<Utc>, BotaiError> {
    if !ts.is_finite() {
        return Err(BotaiError::invalid(argument, "must be a finite timestamp"));
    }
    checked_chrono(ts.into_inner())
        .ok_or_else(|| BotaiError::invalid(argument, "must be a timestamp between 262143 BC and 262142 AD"))
}
