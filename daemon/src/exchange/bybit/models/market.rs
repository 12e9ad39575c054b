//! Market data: server time, tickers, instruments, klines.

use serde::{Deserialize, Serialize};

use super::Figure;

/// /v5/market/time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub time_second: String,
    pub time_nano: String,
}

/// A ticker of /v5/market/tickers (the fields botai reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker {
    pub symbol: String,
    pub last_price: Figure,
    #[serde(default)]
    pub bid1_price: Figure,
    #[serde(default)]
    pub ask1_price: Figure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<Figure>,
}

/// /v5/market/instruments-info: spot gives basePrecision and minOrderAmt,
/// linear qtyStep and minNotionalValue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstrumentInfo {
    pub symbol: String,
    pub base_coin: String,
    pub quote_coin: String,
    #[serde(default)]
    pub status: String,
    pub lot_size_filter: LotSizeFilter,
    pub price_filter: PriceFilter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LotSizeFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty_step: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_precision: Option<Figure>,
    pub min_order_qty: Figure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notional_value: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_order_amt: Option<Figure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceFilter {
    pub tick_size: Figure,
}

/// /v5/market/kline: bars newest first, each
/// `[startTime, open, high, low, close, volume, turnover]` in strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlineList {
    pub symbol: String,
    pub category: String,
    pub list: Vec<[String; 7]>,
}
