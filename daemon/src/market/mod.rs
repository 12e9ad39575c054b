//! Market data: one-minute bars, from a replay of the shipped data or (later)
//! live klines of an exchange, behind one interface.

pub mod csv;
pub mod replay;

use chrono::{DateTime, Utc};

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
