//! Market data: server time, ticker prices, the exchange's symbols.

use serde::{Deserialize, Serialize};

use super::Figure;

/// /fapi/v1/ticker/price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickerPrice {
    pub symbol: String,
    pub price: Figure,
    #[serde(default)]
    pub time: i64,
}

/// /fapi/v1/time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

/// /fapi/v1/exchangeInfo (the part botai reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub server_time: i64,
    pub symbols: Vec<SymbolInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    #[serde(default)]
    pub status: String,
    pub base_asset: String,
    pub quote_asset: String,
    pub filters: Vec<serde_json::Value>,
}
