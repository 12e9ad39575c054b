//! The market data's section of the configuration (MARKET_DATA, SYMBOL,
//! REPLAY_*).

use std::path::PathBuf;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};

use crate::env::{timestamp, Source};

/// What `make run` replays when MARKET_DATA is unset: a month no shipped
/// model was trained on (tests/ml checks it against each manifest's
/// `training`). The FTX month of January 2022 is a test fixture.
pub const DEFAULT_MARKET_DATA: &str = "data/market/binance-btcusdt-1m-2025-11.csv.gz";

#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// MARKET_DATA: a file of one-minute bars to replay, or `bybit` for
    /// Bybit's live klines (market/live.rs, on BYBIT_REST_URL / BYBIT_WS_URL
    /// and BYBIT_CATEGORY).
    pub data_path: PathBuf,
    pub live_bybit: bool,
    pub symbol: String,
    /// Replayed minutes per wall-clock minute.
    pub speed: f64,
    /// REPLAY_SPEED=max: the replay steps bar by bar, each bar's signals
    /// traded and settled before the next (market/replay.rs): the same data
    /// gives the same orders and P&L on any machine and under any load.
    pub stepped: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Wall-clock moment the replay's first bar starts; components in other
    /// processes pass the same value to share the replay clock.
    pub epoch: Option<DateTime<Utc>>,
}

impl MarketConfig {
    pub fn load(src: &Source) -> Result<MarketConfig> {
        let market = MarketConfig {
            data_path: PathBuf::from(src.string("MARKET_DATA", DEFAULT_MARKET_DATA)),
            live_bybit: src.string("MARKET_DATA", "").eq_ignore_ascii_case("bybit"),
            symbol: src.string("SYMBOL", "BTCUSDT").to_uppercase(),
            speed: src.parse("REPLAY_SPEED", 3000.0, "a speed-up factor between 1 and 1000000, or max", |v| {
                if v.eq_ignore_ascii_case("max") {
                    return Some(1_000_000.0);
                }
                v.trim_end_matches('x').parse().ok().filter(|s: &f64| (1.0..=1_000_000.0).contains(s))
            })?,
            stepped: src.string("REPLAY_SPEED", "").eq_ignore_ascii_case("max"),
            from: src.parse("REPLAY_FROM", None, "an RFC 3339 time or a date", |v| timestamp(v).map(Some))?,
            to: src.parse("REPLAY_TO", None, "an RFC 3339 time or a date", |v| timestamp(v).map(Some))?,
            epoch: src.parse("REPLAY_EPOCH", None, "an RFC 3339 time", |v| timestamp(v).map(Some))?,
        };
        if let (Some(from), Some(to)) = (market.from, market.to) {
            if to <= from {
                bail!("REPLAY_TO ({to}) must be after REPLAY_FROM ({from})");
            }
        }
        Ok(market)
    }
}
