//! What an adapter tells botai's shared limiter about the venue, and asks it
//! before a request: the same windows for every process that trades on the
//! account.
//!
//! - `book` before every request the caller has not booked itself (the
//!   engine books `order` with its reservation; lookups, wallet and
//!   positions are booked here), then waits for the booked moment;
//! - `observe` after every response that carries the venue's limit headers
//!   (Bybit's X-Bapi-Limit-*, Binance's X-MBX-USED-WEIGHT-*): when the venue
//!   counted more than botai booked — another process on the same key —
//!   botai's window takes the difference;
//! - `penalize` on 10006 / 429: nobody sends on that endpoint until the
//!   venue's reset time;
//! - `banned` on HTTP 403 (Bybit's IP limit) / 418: the whole exchange waits
//!   out the ban and a critical error opens an alert.
//!
//! A booking is a moment on the database's clock. The request leaves at that
//! moment (`until_booked`), not a wait after the answer arrived: the time the
//! answer spent coming back would otherwise make every send late by a
//! different amount, and requests booked a window apart could land in one
//! of the venue's windows. A process that wakes more than `SEND_GUARD` (plus
//! the database's round trip, a constant that crowds nothing) after its
//! booked moment — a starved machine — does not send on that booking; it
//! books again, and the wasted slot errs on the safe side. After
//! `MAX_REBOOKINGS` late wakes in a row it sends anyway (logged): the venue
//! then answers for itself, and its refusal penalises the key.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tracing::{debug, warn};

use super::ExchangeError;
use crate::db::{self, MonitorCalls, RateLimitCalls};

#[async_trait]
pub trait VenueLimits: Send + Sync {
    /// Books one request on `endpoint` and waits until it may be sent;
    /// refuses (`RateLimited`, nothing sent) when the wait would be longer
    /// than botai allows — a ban or penalty in force.
    async fn book(&self, endpoint: &str) -> Result<(), ExchangeError>;
    async fn observe(&self, endpoint: &str, remaining: i32, limit: i32, reset_at: Option<DateTime<Utc>>);
    async fn penalize(&self, endpoint: &str, wait: Duration);
    async fn banned(&self, wait: Duration, message: &str);
}

/// No shared limiter (unit tests, `botai exchange check` before a database exists).
pub struct Unlimited;

/// How late after its booked moment a request may still leave. botai books
/// `botai.rate_limit_safety_margin` (90 %) of a venue's limit: on Bybit's
/// 10 orders a second that is one order, a tenth of a second, of slack.
pub const SEND_GUARD: Duration = Duration::from_millis(100);

/// Late wakes after which a request is sent anyway.
pub const MAX_REBOOKINGS: u32 = 5;

/// The database's clock minus this process's, in microseconds, and when it
/// was last measured (unix seconds, 0 = never).
static DB_CLOCK_OFFSET_US: AtomicI64 = AtomicI64::new(0);
static DB_CLOCK_SYNCED_AT: AtomicI64 = AtomicI64::new(0);
/// The shortest round trip to the database seen by the last measurement.
static DB_TRIP_US: AtomicI64 = AtomicI64::new(0);
const DB_CLOCK_RESYNC: i64 = 60;

/// Measures the database's clock against this process's (the reading of
/// the shortest of three round trips, taken at its middle) unless it was
/// measured in the last minute. On the same machine the offset is zero; on
/// another, the error is at most half a round trip.
pub async fn sync_db_clock(conn: &impl MonitorCalls) -> db::Result<()> {
    let now = Utc::now().timestamp();
    if now - DB_CLOCK_SYNCED_AT.load(Ordering::Relaxed) < DB_CLOCK_RESYNC {
        return Ok(());
    }
    let mut best: Option<(chrono::Duration, i64)> = None;
    for _ in 0..3 {
        let sent = Utc::now();
        let db_now = conn.db_clock().await?;
        let back = Utc::now();
        let trip = back - sent;
        let offset = (db_now - (sent + trip / 2)).num_microseconds().unwrap_or(0);
        if best.is_none_or(|(t, _)| trip < t) {
            best = Some((trip, offset));
        }
    }
    if let Some((trip, offset)) = best {
        DB_CLOCK_OFFSET_US.store(offset, Ordering::Relaxed);
        DB_TRIP_US.store(trip.num_microseconds().unwrap_or(0).max(0), Ordering::Relaxed);
        DB_CLOCK_SYNCED_AT.store(now, Ordering::Relaxed);
    }
    Ok(())
}

/// Sleeps until `booked` (a moment on the database's clock). `Err(lateness)`
/// when this process woke more than `SEND_GUARD` and a database round trip
/// after it: the request must not be sent on this booking. `attempt` counts
/// from 1; the `MAX_REBOOKINGS`th is sent however late.
pub async fn until_booked(booked: DateTime<Utc>, attempt: u32) -> Result<(), Duration> {
    let local = booked - chrono::Duration::microseconds(DB_CLOCK_OFFSET_US.load(Ordering::Relaxed));
    if let Ok(wait) = (local - Utc::now()).to_std() {
        tokio::time::sleep(wait.min(Duration::from_secs(3600))).await;
    }
    let guard = SEND_GUARD + Duration::from_micros(DB_TRIP_US.load(Ordering::Relaxed).unsigned_abs());
    match (Utc::now() - local).to_std() {
        Ok(late) if late > guard && attempt >= MAX_REBOOKINGS => {
            warn!(late_ms = late.as_millis() as u64, attempt, "woke too late for every booked moment; sending anyway");
            Ok(())
        }
        Ok(late) if late > guard => {
            crate::telemetry::LATE_DEPARTURES.inc();
            debug!(late_ms = late.as_millis() as u64, "woke too late for a booked moment; booking again");
            Err(late)
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl VenueLimits for Unlimited {
    async fn book(&self, _: &str) -> Result<(), ExchangeError> {
        Ok(())
    }
    async fn observe(&self, _: &str, _: i32, _: i32, _: Option<DateTime<Utc>>) {}
    async fn penalize(&self, _: &str, _: Duration) {}
    async fn banned(&self, _: Duration, _: &str) {}
}

/// botai's limiter in PostgreSQL. A database that is briefly away does not
/// stop trading: booking falls back to sending (logged), as the venue's own
/// limit still answers 10006 rather than losing anything.
pub struct SharedLimits {
    pub pool: Pool,
    pub exchange: String,
    /// The component errors are reported for (`exchange:bybit`).
    pub component: String,
    /// Whether the venue's headers are passed on (LIMIT_HEADERS=off, for
    /// comparison runs, leaves botai blind to other processes).
    pub observe: bool,
}

#[async_trait]
impl VenueLimits for SharedLimits {
    async fn book(&self, endpoint: &str) -> Result<(), ExchangeError> {
        for attempt in 1.. {
            let booked = match db::pooled(&self.pool).await {
                Ok(conn) => match sync_db_clock(&conn).await {
                    Ok(()) => conn.rate_book(&self.exchange, endpoint, None).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match booked {
                Ok(at) => {
                    if until_booked(at, attempt).await.is_ok() {
                        return Ok(());
                    }
                }
                // 54000: the window is closed for longer than botai.rate_limit_max_wait.
                Err(e) if e.sqlstate() == Some("54000") => {
                    return Err(ExchangeError::RateLimited {
                        ret_code: 0,
                        message: format!("botai's limiter holds {}/{endpoint}: {e}", self.exchange),
                        retry_after: Duration::from_secs(1),
                    })
                }
                Err(e) => {
                    warn!(exchange = %self.exchange, endpoint, "cannot book a request with botai's limiter: {e}");
                    return Ok(());
                }
            }
        }
        unreachable!("until_booked lets the last attempt go")
    }

    async fn observe(&self, endpoint: &str, remaining: i32, limit: i32, reset_at: Option<DateTime<Utc>>) {
        if !self.observe {
            return;
        }
        let result = match db::pooled(&self.pool).await {
            Ok(conn) => conn.rate_observe(&self.exchange, endpoint, remaining, limit, reset_at).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(exchange = %self.exchange, endpoint, "cannot pass the venue's limit headers to botai: {e}");
        }
    }

    async fn penalize(&self, endpoint: &str, wait: Duration) {
        let result = match db::pooled(&self.pool).await {
            Ok(conn) => conn.rate_penalize(&self.exchange, endpoint, wait.as_secs_f64().max(0.001)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(exchange = %self.exchange, endpoint, "cannot record the venue's rate limit in botai: {e}");
        }
    }

    async fn banned(&self, wait: Duration, message: &str) {
        let result = match db::pooled(&self.pool).await {
            Ok(conn) => {
                let penalized = conn.rate_penalize(&self.exchange, "global", wait.as_secs_f64().max(0.001)).await;
                let reported = conn.report_error(&self.component, message, true).await;
                penalized.and(reported)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(exchange = %self.exchange, "cannot record the venue's ban in botai: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_leaves_at_its_booked_moment_and_never_long_after_it() {
        let booked = Utc::now() + chrono::Duration::milliseconds(80);
        assert_eq!(until_booked(booked, 1).await, Ok(()));
        assert!(Utc::now() >= booked, "it did not leave before its booked moment");
        let before = crate::telemetry::LATE_DEPARTURES.get();
        let missed = Utc::now() - chrono::Duration::milliseconds(300);
        let late = until_booked(missed, 1).await.expect_err("a moment long gone is not sent on");
        assert!(late >= Duration::from_millis(300));
        assert!(crate::telemetry::LATE_DEPARTURES.get() > before);
        let just_missed = Utc::now() - chrono::Duration::milliseconds(20);
        assert_eq!(until_booked(just_missed, 1).await, Ok(()), "within SEND_GUARD it still leaves");
        assert_eq!(until_booked(missed, MAX_REBOOKINGS).await, Ok(()), "the last attempt leaves however late");
    }
}
