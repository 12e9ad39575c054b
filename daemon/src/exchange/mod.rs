//! Exchanges behind one trait. The trading engine knows only `Exchange`;
//! the paper exchange (paper.rs) is one implementation, the Bybit V5 wire
//! protocol client (v5.rs) another, which talks to the paper exchange's HTTP
//! server (paper_server.rs) or, with credentials, to Bybit.
//!
//! Errors carry the exchange's own codes: Bybit's retCode 10006 ("Too many
//! visits!", a rate limit), 110007 (insufficient balance), 110072 (duplicate
//! client order id), so the engine reacts to a paper exchange exactly as to a
//! real one.

pub mod paper;
pub mod paper_server;
pub mod v5;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Bybit's codes, which the paper exchange speaks too.
pub mod ret_code {
    pub const OK: i64 = 0;
    pub const TOO_MANY_VISITS: i64 = 10006;
    pub const PARAMS_ERROR: i64 = 10001;
    pub const INSUFFICIENT_BALANCE: i64 = 110007;
    pub const ORDER_NOT_EXISTS: i64 = 110001;
    pub const DUPLICATE_ORDER_LINK_ID: i64 = 110072;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// From a signal's direction.
    pub fn from_direction(direction: &str) -> Option<Side> {
        match direction {
            "BUY" => Some(Side::Buy),
            "SELL" => Some(Side::Sell),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "Buy",
            Side::Sell => "Sell",
        }
    }
}

/// A market order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    /// Idempotency key: the exchange refuses a second order with it.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    /// In base currency.
    pub qty: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    New,
    Filled,
    Cancelled,
    Rejected,
}

/// An order as the exchange knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    pub exchange_order_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub status: OrderStatus,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    pub avg_price: Decimal,
    /// In quote currency.
    pub fee: Decimal,
}

impl OrderState {
    pub fn notional(&self) -> Decimal {
        self.filled_qty * self.avg_price
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssetBalance {
    pub asset: String,
    pub total: Decimal,
    pub available: Decimal,
    pub locked: Decimal,
}

/// A balance snapshot and the exchange's time when it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Wallet {
    pub as_of: DateTime<Utc>,
    pub assets: Vec<AssetBalance>,
}

impl Wallet {
    pub fn available(&self, asset: &str) -> Decimal {
        self.assets.iter().find(|a| a.asset == asset).map_or(Decimal::ZERO, |a| a.available)
    }
}

/// Trading rules of a symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    pub symbol: String,
    pub base: String,
    pub quote: String,
    pub qty_step: Decimal,
    pub min_qty: Decimal,
    pub min_notional: Decimal,
    pub tick_size: Decimal,
}

impl Instrument {
    /// `qty` rounded down to the step; None below the minimum quantity or notional.
    pub fn order_qty(&self, qty: Decimal, price: Decimal) -> Option<Decimal> {
        if self.qty_step <= Decimal::ZERO {
            return None;
        }
        let q = (qty / self.qty_step).floor() * self.qty_step;
        (q >= self.min_qty && q * price >= self.min_notional).then_some(q.normalize())
    }
}

#[derive(Debug, Clone, Error, PartialEq)]
pub enum ExchangeError {
    /// retCode 10006 (or HTTP 403): stop sending for `retry_after`.
    #[error("rate limited by the exchange (retCode {ret_code}: {message}); retry after {retry_after:?}")]
    RateLimited { ret_code: i64, message: String, retry_after: Duration },
    /// retCode 110007.
    #[error("insufficient balance (retCode {ret_code}: {message})")]
    InsufficientBalance { ret_code: i64, message: String },
    /// retCode 110072: an order with this client order id exists.
    #[error("an order with client order id {client_order_id} already exists")]
    DuplicateOrder { client_order_id: String },
    #[error("the exchange refused the request (retCode {ret_code}: {message})")]
    Rejected { ret_code: i64, message: String },
    /// The request's outcome is unknown (network, timeout, bad response).
    #[error("exchange unreachable or answered nonsense: {0}")]
    Transport(String),
}

impl ExchangeError {
    pub fn ret_code(&self) -> Option<i64> {
        match self {
            ExchangeError::RateLimited { ret_code, .. }
            | ExchangeError::InsufficientBalance { ret_code, .. }
            | ExchangeError::Rejected { ret_code, .. } => Some(*ret_code),
            ExchangeError::DuplicateOrder { .. } => Some(ret_code::DUPLICATE_ORDER_LINK_ID),
            ExchangeError::Transport(_) => None,
        }
    }
}

/// What every exchange offers the trading engine.
#[async_trait]
pub trait Exchange: Send + Sync {
    /// The name botai's rate limits and balances use for it.
    fn name(&self) -> &str;
    /// Places a market order; a second call with the same client order id
    /// is refused with `DuplicateOrder`, so a retry never trades twice.
    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError>;
    /// The order with this client order id, if the exchange has it.
    async fn order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError>;
    async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<(), ExchangeError>;
    async fn wallet(&self) -> Result<Wallet, ExchangeError>;
    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError>;
    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bybit's BTCUSDT rules (step and minimum 0.0001, 5 USDT minimum notional).
    pub(crate) fn btcusdt() -> Instrument {
        Instrument {
            symbol: "BTCUSDT".into(),
            base: "BTC".into(),
            quote: "USDT".into(),
            qty_step: Decimal::new(1, 4),
            min_qty: Decimal::new(1, 4),
            min_notional: Decimal::new(5, 0),
            tick_size: Decimal::new(1, 1),
        }
    }

    #[test]
    fn order_qty_rounds_down_and_respects_minimums() {
        let i = btcusdt();
        let price = Decimal::new(40_000, 0);
        assert_eq!(i.order_qty(Decimal::new(123456, 6), price), Some(Decimal::new(1234, 4)));
        assert_eq!(i.order_qty(Decimal::new(9, 5), price), None, "below the minimum quantity");
        assert_eq!(i.order_qty(Decimal::new(1, 4), price), None, "0.0001 BTC is 4 USDT, below the minimum notional");
    }
}
