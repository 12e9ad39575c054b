//! The trading engine's section of the configuration (EXCHANGE, assets,
//! ORDER_SIZE, the engine's timings and switches, BOTAI_FAULT).

use std::time::Duration;

use anyhow::{bail, Result};
use rust_decimal::Decimal;

use crate::env::pg::PgSettings;
use crate::env::{decimal_positive, Source};

/// How big an order is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sizing {
    /// A fixed notional in quote currency.
    Notional(Decimal),
    /// A fraction of the free funds of the asset spent (quote for BUY, base for SELL).
    Fraction(Decimal),
    /// Volatility-scaled: a position whose typical one-hour move (the
    /// signal's `volatility_1h`) is this fraction of equity, at most the
    /// whole equity.
    Volatility(Decimal),
}

#[derive(Debug, Clone)]
pub struct TradingConfig {
    pub exchange: String,
    pub quote: String,
    pub base: String,
    pub sizing: Sizing,
    /// Signals older than this when an engine gets to them are not traded.
    pub max_signal_age: Duration,
    pub reservation_ttl: Duration,
    /// The switches the comparison runs flip: without reservations
    /// the engine trusts its last balance snapshot, without the limiter it
    /// sends at once.
    pub reservations: bool,
    pub rate_limiter: bool,
    /// Whether the venue's limit headers feed botai's windows (a switch for
    /// comparison runs only).
    pub limit_headers: bool,
    pub balance_update_interval: Duration,
    /// How long an order may stay without a known outcome before it is
    /// reported critical (its funds stay held all along).
    pub unknown_order_alert: Duration,
    pub concurrency: usize,
    /// Remote paper exchange (HTTP); None = in-process.
    pub paper_url: Option<String>,
    /// BOTAI_FAULT, for the crash tests only: the step of an order's life
    /// where the process ends (trading/fault.rs).
    pub fault: Option<std::sync::Arc<crate::trading::fault::Fault>>,
}

impl TradingConfig {
    pub fn load(src: &Source) -> Result<TradingConfig> {
        let sizing = src.parse(
            "ORDER_SIZE",
            Sizing::Fraction(Decimal::new(2, 1)),
            "notional:AMOUNT, fraction:F (0 < F <= 1) or volatility:R (0 < R <= 0.1)",
            |v| {
                let (kind, amount) = v.split_once(':')?;
                let amount = decimal_positive(amount.trim())?;
                match kind.trim() {
                    "notional" => Some(Sizing::Notional(amount)),
                    "fraction" if amount <= Decimal::ONE => Some(Sizing::Fraction(amount)),
                    "volatility" if amount <= Decimal::new(1, 1) => Some(Sizing::Volatility(amount)),
                    _ => None,
                }
            },
        )?;
        let paper_url = src.raw("PAPER_EXCHANGE_URL").map(|u| u.trim().trim_end_matches('/').to_owned());
        if let Some(u) = &paper_url {
            if !u.starts_with("http://") && !u.starts_with("https://") {
                bail!("PAPER_EXCHANGE_URL: expected an http:// URL, got {u:?}");
            }
        }
        let trading = TradingConfig {
            exchange: src.string("EXCHANGE", "paper").to_lowercase(),
            quote: src.string("QUOTE_ASSET", "USDT").to_uppercase(),
            base: src.string("BASE_ASSET", "BTC").to_uppercase(),
            sizing,
            max_signal_age: src.seconds("MAX_SIGNAL_AGE", 60.0)?,
            reservation_ttl: src.seconds("RESERVATION_TTL", 30.0)?,
            reservations: src.switch("RESERVATIONS", true)?,
            rate_limiter: src.switch("RATE_LIMITER", true)?,
            limit_headers: src.switch("LIMIT_HEADERS", true)?,
            balance_update_interval: src.seconds("BALANCE_UPDATE_INTERVAL", 5.0)?,
            unknown_order_alert: src.seconds("UNKNOWN_ORDER_ALERT", 60.0)?,
            concurrency: src.parse("ENGINE_CONCURRENCY", 64usize, "a number of signals in flight (1-1024)", |v| {
                v.parse().ok().filter(|n| (1..=1024).contains(n))
            })?,
            paper_url,
            fault: match src.raw("BOTAI_FAULT") {
                Some(f) => Some(std::sync::Arc::new(crate::trading::fault::Fault::parse(&f)?)),
                None => None,
            },
        };
        match trading.exchange.as_str() {
            "paper" | "bybit" | "binance" => {}
            other => bail!("EXCHANGE={other}: expected paper, bybit or binance"),
        }
        Ok(trading)
    }
}

/// What the trading engine runs with: its section and the few shared
/// settings it needs (built by `Config::engine`).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub pg: PgSettings,
    pub trading: TradingConfig,
    /// The symbol it trades (SYMBOL).
    pub symbol: String,
    /// Whether a SELL may open a short (a perpetual venue: Binance USDⓈ-M,
    /// Bybit linear), rather than only sell base coins held.
    pub shorts: bool,
    /// How often it beats (a quarter of WORKER_HEARTBEAT_TIMEOUT).
    pub heartbeat_every: Duration,
}
