//! A venue's clock as a signing adapter keeps it: the offset measured
//! against the venue's time endpoint (half the round trip assumed each way),
//! measured again when it is older than 10 minutes or the venue refuses a
//! timestamp.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::warn;

use super::ExchangeError;

const RESYNC_AFTER: Duration = Duration::from_secs(600);
const UNKNOWN: i64 = i64::MIN;

pub struct VenueClock {
    /// Venue clock minus ours, ms; UNKNOWN until measured.
    offset_ms: AtomicI64,
    measured_at: Mutex<Option<Instant>>,
}

impl Default for VenueClock {
    fn default() -> VenueClock {
        VenueClock { offset_ms: AtomicI64::new(UNKNOWN), measured_at: Mutex::new(None) }
    }
}

impl VenueClock {
    /// The offset, once measured.
    pub fn offset_ms(&self) -> Option<i64> {
        Some(self.offset_ms.load(Ordering::Relaxed)).filter(|o| *o != UNKNOWN)
    }

    /// Keeps `offset_ms` as measured now; the previous offset, if any.
    pub fn set(&self, offset_ms: i64) -> Option<i64> {
        let previous = self.offset_ms.swap(offset_ms, Ordering::Relaxed);
        *self.measured_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Some(previous).filter(|o| *o != UNKNOWN)
    }

    /// Keeps the offset a request sent at `before`, answered at `after`,
    /// read from the venue's `server` time; returns it.
    pub fn measured(&self, before: DateTime<Utc>, server: DateTime<Utc>, after: DateTime<Utc>) -> (i64, Option<i64>) {
        let offset = (server - (before + (after - before) / 2)).num_milliseconds();
        (offset, self.set(offset))
    }

    /// Never measured, or measured too long ago.
    pub fn is_stale(&self) -> bool {
        self.measured_at.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|at| at.elapsed() >= RESYNC_AFTER)
    }

    /// The venue's time now, in ms, for a signed request: measured again
    /// first (`measure`, the adapter's sync) when stale; a failed
    /// measurement keeps the last offset, logged.
    pub async fn now_ms(
        &self,
        exchange: &str,
        measure: impl std::future::Future<Output = Result<i64, ExchangeError>>,
    ) -> i64 {
        if self.is_stale() {
            if let Err(e) = measure.await {
                warn!(exchange, "cannot measure the venue's clock (using the last offset): {e}");
            }
        }
        self.venue_now_ms()
    }

    /// The venue's time now, in ms (ours while unmeasured).
    pub fn venue_now_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.offset_ms().unwrap_or(0)
    }
}
