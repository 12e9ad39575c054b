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

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tracing::warn;

use super::ExchangeError;
use crate::db::{self, BotaiSql};

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
        let wait = match db::pooled(&self.pool).await {
            Ok(conn) => conn.rate_acquire(&self.exchange, endpoint, None).await,
            Err(e) => Err(e),
        };
        match wait {
            Ok(seconds) if seconds > 0.0 => tokio::time::sleep(Duration::from_secs_f64(seconds.min(3600.0))).await,
            Ok(_) => {}
            // 54000: the window is closed for longer than botai.rate_limit_max_wait.
            Err(e) if e.sqlstate() == Some("54000") => {
                return Err(ExchangeError::RateLimited {
                    ret_code: 0,
                    message: format!("botai's limiter holds {}/{endpoint}: {e}", self.exchange),
                    retry_after: Duration::from_secs(1),
                })
            }
            Err(e) => warn!(exchange = %self.exchange, endpoint, "cannot book a request with botai's limiter: {e}"),
        }
        Ok(())
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
