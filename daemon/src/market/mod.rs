//! Market data: one-minute bars, from a replay of the shipped data or live
//! klines of an exchange (`MARKET_DATA=bybit`), behind one interface.

pub mod csv;
pub mod live;
pub mod replay;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use live::{LiveFeed, LiveMarket};
use replay::{PriceSource, Replay, ReplayFeed};

/// One one-minute bar. `ts` is the bar's open time (UTC); prices in quote
/// currency, volume in quote currency (USD notional in the shipped data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Where a process's bars come from.
#[derive(Clone)]
pub enum Market {
    Replay(Arc<Replay>),
    Live(Arc<LiveMarket>),
}

impl Market {
    pub fn symbol(&self) -> &str {
        match self {
            Market::Replay(r) => &r.symbol,
            Market::Live(l) => &l.symbol,
        }
    }

    /// Bars from the one closing next.
    pub fn feed(&self) -> Feed {
        match self {
            Market::Replay(r) => Feed::Replay(ReplayFeed::from_now(r.clone())),
            Market::Live(l) => Feed::Live(l.feed()),
        }
    }

    /// The strategy name signals carry: a replay's adds its session (see
    /// `ml::manager::replay_strategy`), live bars are one session.
    pub fn strategy(&self, strategy: &str) -> String {
        match self {
            Market::Replay(r) => crate::ml::manager::replay_strategy(strategy, r),
            Market::Live(_) => strategy.to_owned(),
        }
    }

    pub fn prices(&self) -> Arc<dyn PriceSource> {
        match self {
            Market::Replay(r) => r.clone(),
            Market::Live(l) => l.clone(),
        }
    }

    pub fn replay(&self) -> Option<&Arc<Replay>> {
        match self {
            Market::Replay(r) => Some(r),
            Market::Live(_) => None,
        }
    }
}

/// Closed bars, one at a time, each with the history before it.
pub enum Feed {
    Replay(ReplayFeed),
    Live(LiveFeed),
}

impl Feed {
    /// The next closed bar's index and the history up to it; None when the
    /// replay is over (live bars never end but with the process).
    pub async fn next(&mut self) -> Option<(usize, &[Bar])> {
        match self {
            Feed::Replay(f) => f.next().await,
            Feed::Live(f) => f.next().await,
        }
    }
}
