//! Replay of the shipped bars on a clock that several processes can share.
//!
//! The replay clock maps wall time to market time: the first replayed bar
//! opens at `epoch`, and market time runs `speed` times faster than wall
//! time. Any process given the same epoch and speed agrees on which bar is
//! current, so an ML manager taking over from a dead one resumes at the
//! right bar and a paper exchange in another process fills at the right
//! price, with no coordination beyond the two numbers.
//!
//! `REPLAY_SPEED=max` replaces the wall clock with a stepped one, in one
//! process (`botai run`, everything in it): the feed moves the clock to the
//! next bar only when the previous bar's signals are traded and settled
//! (the ML manager waits for that), so orders fill at the close of the
//! signal's bar plus the paper exchange's slippage, and the same data gives
//! the same orders and the same P&L on any machine and under any load.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use super::Bar;
use crate::market::config::MarketConfig;

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
    /// REPLAY_SPEED=max: the stepped clock (None: the wall clock).
    stepped: Option<Stepped>,
}

/// Where a stepped replay is: the bar completed last (`NONE` before the
/// first), moved only by the feed, and what runs once a bar is settled.
struct Stepped {
    completed: AtomicUsize,
    /// The last bar whose hook ran.
    hooked: AtomicUsize,
    on_settled: Mutex<Option<SettledHook>>,
}

/// Called with a bar's index once its signals are traded and settled.
pub type SettledHook = Box<dyn Fn(usize) + Send + Sync>;

const NONE: usize = usize::MAX;

impl Replay {
    /// The strategy a replay's signals carry: the configured name and the
    /// replay session (its epoch), so replaying the same bars again is a
    /// new session, not a stream of duplicates, while the processes of one
    /// session (sharing REPLAY_EPOCH) agree.
    pub fn strategy(&self, strategy: &str) -> String {
        format!("{strategy}@{}", self.clock.epoch.format("%Y%m%dT%H%M%S%.3f"))
    }

    /// Loads the bars of `cfg.data_path` and sets the clock; the epoch is
    /// `cfg.epoch`, or two seconds from now. The replay starts at the first
    /// bar with `history` bars up to it (a model's feature window, which
    /// the caller knows: `ml::features::RAW_BARS`).
    pub fn load(cfg: &MarketConfig, history: usize) -> Result<Arc<Replay>> {
        let bars = super::csv::load_bars(Path::new(&cfg.data_path))
            .with_context(|| format!("cannot load market data {}", cfg.data_path.display()))?;
        Self::from_bars(cfg, bars, history)
    }

    pub fn from_bars(cfg: &MarketConfig, bars: Vec<Bar>, history: usize) -> Result<Arc<Replay>> {
        let history = history.max(1);
        if bars.len() <= history {
            bail!("market data has {} bars; a replay needs more than {history}", bars.len());
        }
        // The first bar that has a full window of history behind it, at or after `from`.
        let first =
            bars.iter().position(|b| cfg.from.is_none_or(|from| b.ts >= from)).unwrap_or(bars.len()).max(history - 1);
        let last = bars.iter().rposition(|b| cfg.to.is_none_or(|to| b.ts < to)).unwrap_or(0);
        if first > last {
            bail!("REPLAY_FROM/REPLAY_TO select no bars of the market data");
        }
        // Without a shared epoch, start a moment from now: loading the model
        // and registering must not eat the first bars.
        let epoch = cfg.epoch.unwrap_or_else(|| Utc::now() + TimeDelta::seconds(2));
        let clock = ReplayClock { epoch, market_start: bars[first].ts, speed: cfg.speed };
        let stepped = cfg.stepped.then(|| Stepped {
            completed: AtomicUsize::new(NONE),
            hooked: AtomicUsize::new(NONE),
            on_settled: Mutex::new(None),
        });
        Ok(Arc::new(Replay { symbol: cfg.symbol.clone(), bars, first, last, clock, stepped }))
    }

    /// The market time the replay covers: `[first bar's open, last bar's close)`.
    pub fn period(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.bars[self.first].ts, self.bars[self.last].ts + TimeDelta::minutes(1))
    }

    /// Whether the replay is stepped (REPLAY_SPEED=max).
    pub fn is_stepped(&self) -> bool {
        self.stepped.is_some()
    }

    /// What a stepped replay runs once each bar is settled (before the
    /// clock moves on): the run's equity marks, one per bar.
    pub fn on_settled(&self, hook: SettledHook) {
        if let Some(s) = &self.stepped {
            *s.on_settled.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
        }
    }

    /// A stepped replay's bar completed last is settled: its hook runs
    /// (once per bar).
    fn settled(&self) {
        let Some(s) = &self.stepped else { return };
        let i = s.completed.load(Ordering::SeqCst);
        if i == NONE || s.hooked.swap(i, Ordering::SeqCst) == i {
            return;
        }
        if let Some(hook) = &*s.on_settled.lock().unwrap_or_else(|p| p.into_inner()) {
            hook(i);
        }
    }

    /// Market time at `wall`: the wall clock's mapping, or where the
    /// stepped clock stands (the close of the bar completed last).
    pub fn market_time(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        match &self.stepped {
            None => self.clock.market_time(wall),
            Some(s) => match s.completed.load(Ordering::SeqCst) {
                NONE => self.bars[self.first].ts,
                i => self.bars[i].ts + MINUTE,
            },
        }
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
        if let Some(s) = &self.stepped {
            return Some(s.completed.load(Ordering::SeqCst)).filter(|&i| i != NONE);
        }
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
        if self.stepped.is_some() {
            return self.completed_at(wall) == Some(self.last);
        }
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

    /// Waits until bar `i` is complete; a stepped replay completes it now
    /// (its caller has waited for the bar before it to be settled).
    pub async fn wait_for(&self, i: usize) {
        if let Some(s) = &self.stepped {
            let previous = s.completed.load(Ordering::SeqCst);
            if previous == NONE || previous < i {
                self.settled();
                s.completed.store(i, Ordering::SeqCst);
            }
            return;
        }
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
        self.market_time(Utc::now())
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
            // The last bar is settled too (its caller waited for it).
            self.replay.settled();
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
