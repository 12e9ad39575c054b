//! Replay of the shipped bars on a clock that several processes can share.
//!
//! The replay clock maps wall time to market time: the first replayed bar
//! opens at `epoch`, and market time runs `speed` times faster than wall
//! time. Any process given the same epoch and speed agrees on which bar is
//! current, so an ML manager taking over from a dead one resumes at the
//! right bar and a paper exchange in another process fills at the right
//! price, with no coordination beyond the two numbers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use super::Bar;
use crate::config::MarketConfig;
use crate::ml::features::RAW_BARS;

const MINUTE: TimeDelta = TimeDelta::minutes(1);

/// Maps wall time to market time.
#[derive(Debug, Clone, Copy)]
pub struct ReplayClock {
    /// Wall time at which the first replayed bar opens.
    pub epoch: DateTime<Utc>,
    /// Market time of the first replayed bar's open.
    pub market_start: DateTime<Utc>,
    pub speed: f64,
}

impl ReplayClock {
    pub fn market_time(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let elapsed = (wall - self.epoch).num_microseconds().unwrap_or(i64::MAX) as f64;
        self.market_start + TimeDelta::microseconds((elapsed * self.speed) as i64)
    }

    pub fn wall_time(&self, market: DateTime<Utc>) -> DateTime<Utc> {
        let elapsed = (market - self.market_start).num_microseconds().unwrap_or(i64::MAX) as f64;
        self.epoch + TimeDelta::microseconds((elapsed / self.speed) as i64)
    }
}

/// The replayed bars and their clock.
pub struct Replay {
    pub symbol: String,
    bars: Vec<Bar>,
    /// Index of the first and last replayed bar (earlier bars are history
    /// for the first feature windows).
    pub first: usize,
    pub last: usize,
    pub clock: ReplayClock,
}

impl Replay {
    /// Loads the bars of `cfg.data_path` and sets the clock; the epoch is
    /// `cfg.epoch`, or two seconds from now.
    pub fn load(cfg: &MarketConfig) -> Result<Arc<Replay>> {
        let bars = super::csv::load_bars(Path::new(&cfg.data_path))
            .with_context(|| format!("cannot load market data {}", cfg.data_path.display()))?;
        Self::from_bars(cfg, bars)
    }

    pub fn from_bars(cfg: &MarketConfig, bars: Vec<Bar>) -> Result<Arc<Replay>> {
        if bars.len() <= RAW_BARS {
            bail!("market data has {} bars; a replay needs more than {RAW_BARS}", bars.len());
        }
        // The first bar that has a full feature window behind it, at or after `from`.
        let first =
            bars.iter().position(|b| cfg.from.is_none_or(|from| b.ts >= from)).unwrap_or(bars.len()).max(RAW_BARS - 1);
        let last = bars.iter().rposition(|b| cfg.to.is_none_or(|to| b.ts < to)).unwrap_or(0);
        if first > last {
            bail!("REPLAY_FROM/REPLAY_TO select no bars of the market data");
        }
        // Without a shared epoch, start a moment from now: loading the model
        // and registering must not eat the first bars.
        let epoch = cfg.epoch.unwrap_or_else(|| Utc::now() + TimeDelta::seconds(2));
        let clock = ReplayClock { epoch, market_start: bars[first].ts, speed: cfg.speed };
        Ok(Arc::new(Replay { symbol: cfg.symbol.clone(), bars, first, last, clock }))
    }

    pub fn bars(&self) -> &[Bar] {
        &self.bars
    }

    pub fn bar(&self, i: usize) -> &Bar {
        &self.bars[i]
    }

    /// Number of replayed bars.
    pub fn len(&self) -> usize {
        self.last + 1 - self.first
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last bar completed (closed) at wall time `wall`, if any.
    pub fn completed_at(&self, wall: DateTime<Utc>) -> Option<usize> {
        let market = self.clock.market_time(wall);
        // Bars are sorted by time; a bar is complete once its minute is over.
        let n = self.bars.partition_point(|b| b.ts + MINUTE <= market);
        (n > self.first).then(|| (n - 1).min(self.last))
    }

    /// When bar `i` completes, in wall time.
    pub fn completes_at(&self, i: usize) -> DateTime<Utc> {
        self.clock.wall_time(self.bars[i].ts + MINUTE)
    }

    /// Whether the replay is over at `wall`.
    pub fn finished(&self, wall: DateTime<Utc>) -> bool {
        wall >= self.completes_at(self.last)
    }

    /// The market price at `wall`: the close of the last completed bar (the
    /// open of the first bar before the replay starts).
    pub fn price_at(&self, wall: DateTime<Utc>) -> f64 {
        match self.completed_at(wall) {
            Some(i) => self.bars[i].close,
            None => self.bars[self.first].open,
        }
    }

    /// How far the replay has got at `wall`, 0..=1.
    pub fn progress(&self, wall: DateTime<Utc>) -> f64 {
        match self.completed_at(wall) {
            Some(i) => (i + 1 - self.first) as f64 / self.len() as f64,
            None => 0.0,
        }
    }

    /// Waits until bar `i` is complete.
    pub async fn wait_for(&self, i: usize) {
        let due = self.completes_at(i);
        let now = Utc::now();
        if due > now {
            tokio::time::sleep((due - now).to_std().unwrap_or(Duration::ZERO)).await;
        }
    }
}

/// Where the paper exchange gets its prices and time.
pub trait PriceSource: Send + Sync {
    fn price(&self, symbol: &str) -> Option<Decimal>;
    /// Market time now (the exchange's clock).
    fn market_now(&self) -> DateTime<Utc>;
    /// The one-minute bars of `symbol` the source knows, oldest first, some
    /// maybe not yet complete at `market_now` (the exchange double serves
    /// klines from them). None: the source has no bars.
    fn bars(&self, _symbol: &str) -> Option<&[Bar]> {
        None
    }
}

impl PriceSource for Replay {
    fn price(&self, symbol: &str) -> Option<Decimal> {
        (symbol == self.symbol).then(|| Decimal::from_f64(self.price_at(Utc::now()))).flatten()
    }

    fn market_now(&self) -> DateTime<Utc> {
        self.clock.market_time(Utc::now())
    }

    fn bars(&self, symbol: &str) -> Option<&[Bar]> {
        (symbol == self.symbol).then(|| &self.bars[..=self.last])
    }
}

/// A feed of completed bars, one at a time, as the replay clock passes them.
/// The same interface will carry live klines from an exchange.
pub struct ReplayFeed {
    replay: Arc<Replay>,
    next: usize,
}

impl ReplayFeed {
    /// Starts at the bar completing next (a standby taking over skips what
    /// its predecessor already handled).
    pub fn from_now(replay: Arc<Replay>) -> ReplayFeed {
        let next = replay.completed_at(Utc::now()).map_or(replay.first, |i| i + 1);
        ReplayFeed { replay, next }
    }

    /// The next completed bar: its index, and the bars up to and including
    /// it (the history a feature window is made from). None at the end.
    pub async fn next(&mut self) -> Option<(usize, &[Bar])> {
        if self.next > self.replay.last {
            return None;
        }
        let i = self.next;
        self.replay.wait_for(i).await;
        self.next += 1;
        Some((i, &self.replay.bars[..=i]))
    }

    pub fn replay(&self) -> &Arc<Replay> {
        &self.replay
    }
}

/// The window ending at `i` spans consecutive minutes (no gap in the data).
pub fn window_is_contiguous(bars: &[Bar]) -> Result<(), DateTime<Utc>> {
    for pair in bars.windows(2) {
        if pair[1].ts - pair[0].ts != MINUTE {
            return Err(pair[0].ts + MINUTE);
        }
    }
    Ok(())
}
