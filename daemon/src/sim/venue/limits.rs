//! The venue's request limits: a sliding window per endpoint class, and the
//! ban a broken address limit earns.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Venue;

/// A request limit of the venue, per endpoint class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LimitClass {
    /// Every request from the address (Bybit: 600 per 5 s; broken → HTTP 403
    /// and a ban).
    Ip,
    /// Every request of the account (the paper exchange's global limit;
    /// broken → 10006).
    Account,
    /// Order create, amend, cancel.
    Order,
    /// Order and execution queries.
    OrderQuery,
    /// Wallet, positions, account and key information.
    Wallet,
    /// Binance: request weight per minute of the address (broken → 429).
    Weight,
    /// Binance: orders per 10 s of the account.
    Orders10s,
    /// Binance: orders per minute of the account.
    Orders1m,
}

/// A sliding window of request times.
pub(super) struct Window {
    limit: u32,
    length: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    pub(super) fn new((limit, length): (u32, Duration)) -> Window {
        Window { limit, length, sent: VecDeque::new() }
    }

    fn prune(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= self.length) {
            self.sent.pop_front();
        }
    }
}

/// What a venue's limit headers say after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    pub remaining: u32,
    pub limit: u32,
    /// When the window has room again (now when it has).
    pub reset_at: DateTime<Utc>,
}

/// Why the venue refused to serve a request at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// An endpoint limit: answer 10006 / HTTP 429.
    TooManyVisits { retry_after: Duration },
    /// The address is banned (Bybit HTTP 403, Binance 418) for this long.
    Banned { retry_after: Duration },
}

impl Venue {
    /// Counts a request against the limits of `classes`; refuses it when
    /// one is full (a full `Ip` window bans the address) or the address is
    /// banned.
    pub fn admit(&self, classes: &[LimitClass]) -> Result<(), Refusal> {
        self.admit_weighted(classes, 1)
    }

    /// `admit` for a request of `weight` (Binance's request weights).
    pub fn admit_weighted(&self, classes: &[LimitClass], weight: u32) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut s = self.state();
        if let Some(until) = s.banned_until {
            if until > now {
                s.rejections.banned += 1;
                return Err(Refusal::Banned { retry_after: until - now });
            }
            s.banned_until = None;
        }
        // The fault stands for an endpoint limit: not the address's.
        if s.faults.too_many_visits > 0 && classes.iter().any(|c| *c != LimitClass::Ip) {
            s.faults.too_many_visits -= 1;
            s.rejections.rate_limit += 1;
            return Err(Refusal::TooManyVisits { retry_after: Duration::from_secs(1) });
        }
        for class in classes {
            let Some(w) = s.windows.get_mut(class) else { continue };
            let wait = if w.limit < weight {
                Some(w.length)
            } else {
                w.prune(now);
                (w.sent.len() as u32 + weight > w.limit).then(|| {
                    let oldest = w.sent.front().copied().unwrap_or(now);
                    w.length.saturating_sub(now.duration_since(oldest))
                })
            };
            if let Some(retry_after) = wait {
                if *class == LimitClass::Ip {
                    s.banned_until = Some(now + self.settings.ban);
                    s.rejections.banned += 1;
                    return Err(Refusal::Banned { retry_after: self.settings.ban });
                }
                s.rejections.rate_limit += 1;
                return Err(Refusal::TooManyVisits { retry_after });
            }
        }
        for class in classes {
            if let Some(w) = s.windows.get_mut(class) {
                for _ in 0..weight {
                    w.sent.push_back(now);
                }
            }
        }
        Ok(())
    }

    /// How much of `class`'s window is used now (Binance's used-weight and
    /// order-count headers).
    pub fn used(&self, class: LimitClass) -> Option<u32> {
        let now = Instant::now();
        let mut s = self.state();
        let w = s.windows.get_mut(&class)?;
        w.prune(now);
        Some(w.sent.len() as u32)
    }

    /// What the limit headers of `class` say now.
    pub fn limit_status(&self, class: LimitClass) -> Option<LimitStatus> {
        let now = Instant::now();
        let mut s = self.state();
        let w = s.windows.get_mut(&class)?;
        w.prune(now);
        let remaining = w.limit.saturating_sub(w.sent.len() as u32);
        let reset_in = if remaining > 0 {
            Duration::ZERO
        } else {
            w.sent.front().map_or(Duration::ZERO, |t| w.length.saturating_sub(now.duration_since(*t)))
        };
        Some(LimitStatus {
            remaining,
            limit: w.limit,
            reset_at: Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default(),
        })
    }
}
