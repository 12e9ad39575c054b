//! Market data: one-minute bars, from a replay of the shipped data or live
//! klines of an exchange (`MARKET_DATA=bybit`), behind one interface.

pub mod config;
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

/// The standard deviation of the last `n` one-minute log returns of
/// `bars`, scaled to one hour (× √60): the move an hour typically brings,
/// as a fraction of the price. None with fewer than `n` + 1 bars or a
/// price that is not positive.
pub fn hourly_volatility(bars: &[Bar], n: usize) -> Option<f64> {
    if n < 2 || bars.len() < n + 1 {
        return None;
    }
    let closes = &bars[bars.len() - n - 1..];
    if closes.iter().any(|b| b.close.is_nan() || b.close <= 0.0) {
        return None;
    }
    let returns: Vec<f64> = closes.windows(2).map(|w| (w[1].close / w[0].close).ln()).collect();
    let mean = returns.iter().sum::<f64>() / n as f64;
    let variance = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((variance * 60.0).sqrt()).filter(|v| v.is_finite())
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
    /// `Replay::strategy`), live bars are one session.
    pub fn strategy(&self, strategy: &str) -> String {
        match self {
            Market::Replay(r) => r.strategy(strategy),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(closes: &[f64]) -> Vec<Bar> {
        closes.iter().map(|&c| Bar { ts: Utc::now(), open: c, high: c, low: c, close: c, volume: 1.0 }).collect()
    }

    #[test]
    fn hourly_volatility_is_the_minute_returns_deviation_times_root_60() {
        // Returns alternate +r and -r: mean ~0, deviation ~r.
        let r: f64 = 0.001;
        let mut closes = vec![100.0];
        for k in 0..60 {
            let last = *closes.last().unwrap();
            closes.push(if k % 2 == 0 { last * r.exp() } else { last * (-r).exp() });
        }
        let v = hourly_volatility(&bars(&closes), 60).unwrap();
        let expected = r * (60.0f64 / 59.0).sqrt() * 60.0f64.sqrt();
        assert!((v - expected).abs() < 1e-12, "{v} vs {expected}");
        assert_eq!(hourly_volatility(&bars(&closes[..30]), 60), None, "too few bars");
        assert_eq!(hourly_volatility(&bars(&[100.0, 0.0, 100.0]), 2), None, "a price of 0");
    }
}
