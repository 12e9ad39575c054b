//! RateLimiter (SQL_API.md §3): exact sliding windows in shared memory.
//!
//! Each (database, exchange, endpoint) key keeps a log of booked requests in
//! shared memory (shmem.rs), so every session books against the same
//! windows with no table write and no WAL. `botai_rate_acquire` books a
//! request at the earliest moment it fits the endpoint's window and the
//! exchange's `global` window (botai-core's sliding-log math) and returns how
//! long to wait until then.
//!
//! Time. The returned delay counts from `now()`, the start of the calling
//! transaction: `now() + delay` is exactly the booked moment (a caller in
//! autocommit mode, as a bot is, gets the delay from the moment of its call).
//! In a transaction older than 100 ms the delay counts from 100 ms ago
//! instead, so a long transaction can neither book in the past nor be told
//! to send late. The limiter keeps a shared clock that never runs backwards
//! across sessions.
//!
//! Restart. Shared memory does not survive a restart, and requests sent just
//! before it still count at the exchange. So a key behaves as if its whole
//! window had been used at the moment the shared memory was created:
//! nothing is booked on it until one window length after the server started.
//!
//! Privileges. These functions write no table, only shared memory, so they
//! run with the caller's rights (no SECURITY DEFINER, whose per-call
//! search_path switch costs more than the booking itself); the caller needs
//! SELECT on botai.rate_limits, which the migrations grant to botai_service.
//!
//! Configuration. Rows of `botai.rate_limits` are cached per backend; a
//! trigger on the table sends a relcache invalidation at commit, which every
//! backend receives before its next statement, so an edit applies at once to
//! everyone (and a rolled-back edit to no one).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use botai_core::names;
use botai_core::sliding_log::{earliest_common_fit, LogView, SlidingLog, Window};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::clock;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::shmem::{Limiter, RateKey, NAME_BYTES};
use crate::statements::{reading, Statement};

mod book;
mod keys;
mod limits;
mod views;

use book::*;
pub use keys::notice_promotion;
use keys::*;
pub use limits::init;
use limits::*;
pub use views::keys;

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "../sql/ratelimit.sql",
    name = "ratelimit_sql",
    requires = [
        botai_rate_acquire,
        botai_rate_book,
        botai_rate_observe,
        botai_rate_penalize,
        botai_rate_stats,
        botai_rate_try_acquire,
        botai_rate_usage
    ]
);

/// The endpoint whose limit covers every request of an exchange.
const GLOBAL: &str = "global";
/// A transaction older than this books from `clock - STALE_TRANSACTION_US`.
const STALE_TRANSACTION_US: i64 = 100_000;

/// Books the request at the earliest moment it fits every window that
/// applies and returns the seconds until then (0 = send now).
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_acquire(
    exchange: Option<&str>,
    endpoint: default!(Option<&str>, "'default'"),
    weight: default!(Option<i32>, "NULL"),
) -> f64 {
    crate::standby::ensure_primary().or_raise("botai_rate_acquire");
    let plan = plan(exchange, endpoint, weight).or_raise("botai_rate_acquire");
    crate::roles::may_book(&plan.exchange).or_raise("botai_rate_acquire");
    let (at, _, now) = book(&plan, false).or_raise("botai_rate_acquire");
    (at - now.reference) as f64 / 1e6
}

/// Books a request as `botai_rate_acquire` does and returns the booked
/// moment (µs since 2000-01-01): the moment the delay counts from — `now()`,
/// or 100 ms before the clock in an older transaction — plus the delay.
/// The rule is written here once; `botai_rate_book` and the order
/// reservation (`risk.rs`) book through this.
pub fn book_moment(exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<i64> {
    crate::standby::ensure_primary()?;
    let plan = plan(Some(exchange), Some(endpoint), weight)?;
    crate::roles::may_book(&plan.exchange)?;
    let (at, _, _) = book(&plan, false)?;
    Ok(at)
}

/// Books the request at the earliest moment it fits every window that
/// applies and returns that moment: what `now()` plus the delay of
/// `botai_rate_acquire` is, without the caller computing it.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_book(
    exchange: Option<&str>,
    endpoint: default!(Option<&str>, "'default'"),
    weight: default!(Option<i32>, "NULL"),
) -> pgrx::datum::TimestampWithTimeZone {
    let exchange = required(exchange, "exchange").or_raise("botai_rate_book");
    let endpoint = required(endpoint, "endpoint").or_raise("botai_rate_book");
    let at = book_moment(exchange, endpoint, weight).or_raise("botai_rate_book");
    crate::clock::timestamptz(at)
}

/// Books and returns 0 only when the request fits now; otherwise books
/// nothing and returns the seconds until it would fit.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_try_acquire(
    exchange: Option<&str>,
    endpoint: default!(Option<&str>, "'default'"),
    weight: default!(Option<i32>, "NULL"),
) -> f64 {
    crate::standby::ensure_primary().or_raise("botai_rate_try_acquire");
    let plan = plan(exchange, endpoint, weight).or_raise("botai_rate_try_acquire");
    crate::roles::may_book(&plan.exchange).or_raise("botai_rate_try_acquire");
    let (at, booked, now) = book(&plan, true).or_raise("botai_rate_try_acquire");
    if booked {
        0.0
    } else {
        ((at - now.reference) as f64 / 1e6).max(f64::MIN_POSITIVE)
    }
}

/// After the exchange answered "too many requests": nothing is booked on the
/// key (on the whole exchange, with endpoint `global`) for `seconds`.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_penalize(exchange: Option<&str>, endpoint: Option<&str>, seconds: Option<f64>) {
    penalize(exchange, endpoint, seconds).or_raise("botai_rate_penalize")
}

fn penalize(exchange: Option<&str>, endpoint: Option<&str>, seconds: Option<f64>) -> Result<()> {
    crate::standby::ensure_primary()?;
    let seconds = required(seconds, "seconds")?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(BotaiError::invalid("seconds", format!("must be a positive number of seconds (got {seconds})")));
    }
    if seconds > 86_400.0 {
        return Err(BotaiError::OutOfRange(format!("seconds: {seconds} is more than a day")));
    }
    let plan = plan(exchange, endpoint, Some(1))?;
    crate::roles::may_book(&plan.exchange)?;
    let limiter = lock_to_write()?;
    let now = moments(&limiter);
    let i = key_index(&limiter, &plan.exchange, &plan.keys[0], now.base)?;
    let (key, _) = limiter.key_mut(i);
    key.penalty_until = key.penalty_until.max(now.base + (seconds * 1e6) as i64);
    key.penalties += 1;
    Ok(())
}

/// What the venue said about a key's window, from the limit headers of its
/// last answer (Bybit's `X-Bapi-Limit-Status`, `X-Bapi-Limit`,
/// `X-Bapi-Limit-Reset-Timestamp`; Binance's used-weight headers): of
/// `venue_limit`, `remaining` are left until `reset_at`. When the venue has
/// counted more than botai booked in the current window — requests of
/// another process on the same key, a person's script — the difference is
/// booked in botai's window so that it leaves at `reset_at` (at the latest
/// one window length from now), and every session waits for it. Never
/// loosens: a venue that counted less changes nothing. Returns the weight
/// added.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_observe(
    exchange: Option<&str>,
    endpoint: Option<&str>,
    remaining: Option<i32>,
    venue_limit: Option<i32>,
    reset_at: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i32 {
    observe(exchange, endpoint, remaining, venue_limit, reset_at).or_raise("botai_rate_observe")
}

fn observe(
    exchange: Option<&str>,
    endpoint: Option<&str>,
    remaining: Option<i32>,
    venue_limit: Option<i32>,
    reset_at: Option<TimestampWithTimeZone>,
) -> Result<i32> {
    crate::standby::ensure_primary()?;
    let remaining = required(remaining, "remaining")?;
    let venue_limit = required(venue_limit, "venue_limit")?;
    if venue_limit <= 0 {
        return Err(BotaiError::invalid("venue_limit", format!("must be positive (got {venue_limit})")));
    }
    if !(0..=venue_limit).contains(&remaining) {
        return Err(BotaiError::invalid(
            "remaining",
            format!("must be between 0 and venue_limit {venue_limit} (got {remaining})"),
        ));
    }
    let reset_at = reset_at.map(|t| clock::finite("reset_at", t).map(clock::from_chrono)).transpose()?;
    let plan = plan(exchange, endpoint, Some(1))?;
    crate::roles::may_book(&plan.exchange)?;
    let key = &plan.keys[0];
    let limiter = lock_to_write()?;
    let now = moments(&limiter);
    let i = key_index(&limiter, &plan.exchange, key, now.base)?;
    let (k, buf) = limiter.key_mut(i);
    let mut log = SlidingLog::new(&mut k.log, buf);
    log.prune(now.base - key.window.length_us);
    // What botai sent in the window the venue counts: bookings up to now
    // (those ahead have not been sent yet).
    let sent = log.view().weight_in(now.base - key.window.length_us, now.base);
    let counted = u64::from((venue_limit - remaining).unsigned_abs());
    let external = counted.saturating_sub(sent);
    if external == 0 {
        return Ok(0);
    }
    let leaves_at = reset_at.unwrap_or(i64::MAX).min(now.base + key.window.length_us).max(now.base);
    let weight = u32::try_from(external).unwrap_or(u32::MAX);
    if log.view().len() == log.view().capacity() {
        return Err(BotaiError::Limit {
            message: format!(
                "the window of {}/{} is full; cannot record the venue's usage",
                plan.exchange, key.endpoint
            ),
            hint: "raise botai.rate_limit_max_entries (postgresql.conf, restart)".into(),
        });
    }
    log.book(leaves_at - key.window.length_us, weight).expect("room checked above");
    Ok(i32::try_from(weight).unwrap_or(i32::MAX))
}

type UsageRow = (String, i32, i32, f64, f64, f64);
