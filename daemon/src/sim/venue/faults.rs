//! What tests steer and read: the faults they ask for, the log of requests
//! as received, the counters of what the venue refused.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Venue;

/// Faults a test asks for; each counter is spent by the requests it hits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Accept the next N orders, then never answer (the client times out).
    pub hang_after_accept: u32,
    /// Accept the next N orders, then answer HTTP 502.
    pub error_5xx_after_accept: u32,
    /// Answer the next N requests HTTP 503 without doing anything.
    pub error_5xx: u32,
    /// Accept the next N orders, then answer retCode 10016 (server error).
    pub ret_10016_after_accept: u32,
    /// Answer the next N requests 10006 / 429 whatever the windows say.
    pub too_many_visits: u32,
    /// Ban the address for this many seconds, starting now.
    pub ban_seconds: Option<f64>,
    /// Drop every WebSocket connection now.
    pub drop_streams: bool,
    /// Send each of the next N pushes twice, the second copy after the next push.
    pub duplicate_pushes: u32,
}

/// One request as the double received it (for the request-equality tests).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub api_key: Option<String>,
    pub signature_valid: Option<bool>,
    pub status: u16,
    pub code: i64,
}

/// Counters of what the venue refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rejections {
    pub rate_limit: u64,
    pub balance: u64,
    pub banned: u64,
}

impl Venue {
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.state();
        if let Some(seconds) = faults.ban_seconds.filter(|s| s.is_finite() && *s > 0.0) {
            s.banned_until = Some(Instant::now() + Duration::from_secs_f64(seconds.min(86_400.0)));
        }
        s.faults = Faults { ban_seconds: None, drop_streams: false, ..faults.clone() };
        drop(s);
        if faults.drop_streams {
            self.stream_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// Spends one unit of a fault counter, if any is left.
    pub fn take_fault(&self, pick: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
        let mut s = self.state();
        let counter = pick(&mut s.faults);
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }

    pub fn log_request(&self, request: LoggedRequest) {
        let mut s = self.state();
        if s.log.len() >= 20_000 {
            s.log.pop_front();
        }
        s.log.push_back(request);
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    pub fn rejections(&self) -> Rejections {
        self.state().rejections
    }

    pub fn count_rejection(&self, balance: bool) {
        let mut s = self.state();
        if balance {
            s.rejections.balance += 1;
        } else {
            s.rejections.rate_limit += 1;
        }
    }
}
