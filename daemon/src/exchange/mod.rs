//! Exchanges behind one trait. The trading engine knows only `Exchange`,
//! laid out by venue and by layer:
//!
//! - `bybit/`, `binance/`: each venue's REST client, its messages typed once
//!   (`models/`: the venue's field names and enums, spelled once) and its
//!   private stream;
//! - `sim/`: the simulated venue, the in-process paper exchange on it, and
//!   the exchange double that serves it over HTTP in each venue's dialect,
//!   serialising the same model types the adapters parse, so the adapters
//!   are tested against the wire protocol they speak to the real venue;
//! - shared by the adapters: `clock` (the venue's clock), `limits` (botai's
//!   shared limiter), `sign`, `stream` (reconnect, dedup, the order feed).
//!
//! Errors carry the exchange's own codes: Bybit's retCode 10006 ("Too many
//! visits!", a rate limit), 110007 (insufficient balance), 110072 (duplicate
//! client order id), so the engine reacts to a paper exchange exactly as to a
//! real one.

pub mod binance;
pub mod bybit;
pub mod clock;
pub mod config;
pub mod figure;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod limits;
pub mod rest;
pub mod sign;
pub mod stream;

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
    /// The request's timestamp is outside recv_window of the server's clock.
    pub const TIMESTAMP_OUT_OF_WINDOW: i64 = 10002;
    pub const INVALID_API_KEY: i64 = 10003;
    pub const SIGNATURE_ERROR: i64 = 10004;
    pub const PERMISSION_DENIED: i64 = 10005;
    /// "Server error": the order may or may not exist.
    pub const SERVER_ERROR: i64 = 10016;
}

/// A venue's market segment (Bybit's `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Spot,
    /// USDT-margined perpetuals.
    Linear,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Spot => "spot",
            Category::Linear => "linear",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "spot" => Some(Category::Spot),
            "linear" => Some(Category::Linear),
            _ => None,
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

/// A market order, or a limit order when `price` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    /// Idempotency key: the exchange refuses a second order with it.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    /// In base currency.
    pub qty: Decimal,
    /// Limit price (good till cancelled); None for a market order.
    pub price: Option<Decimal>,
    /// A conditional order: it goes to the book (at market, or at `price`)
    /// once the last price reaches the trigger.
    pub trigger: Option<Trigger>,
}

/// A conditional order's trigger: the last price it waits for, reached
/// from below (`Rises`, Bybit's triggerDirection 1) or from above (`Falls`, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Trigger {
    pub price: Decimal,
    pub direction: TriggerDirection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TriggerDirection {
    Rises,
    Falls,
}

impl Trigger {
    /// The direction for a trigger at `price` seen from the market at
    /// `market`: rising to a price above it, falling to one below.
    pub fn from_market(price: Decimal, market: Decimal) -> Trigger {
        let direction = if price > market { TriggerDirection::Rises } else { TriggerDirection::Falls };
        Trigger { price, direction }
    }

    pub fn reached(&self, market: Decimal) -> bool {
        match self.direction {
            TriggerDirection::Rises => market >= self.price,
            TriggerDirection::Falls => market <= self.price,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    /// Cancelled, possibly after a partial fill (`filled_qty` says).
    Cancelled,
    Rejected,
}

impl OrderStatus {
    /// Nothing more will execute.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Rejected)
    }
}

/// Why a venue closed a position by force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcedClose {
    /// The position fell below its maintenance margin.
    Liquidation,
    /// Auto-deleveraging: the venue closed it against a liquidated one.
    Adl,
    /// The contract was delisted or delivered.
    Delisting,
}

impl ForcedClose {
    pub fn as_str(self) -> &'static str {
        match self {
            ForcedClose::Liquidation => "liquidation",
            ForcedClose::Adl => "adl",
            ForcedClose::Delisting => "delisting",
        }
    }
}

/// What a venue did to the account on its own, pushed by its private stream.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    /// The venue closed (part of) a position by force: `side` is the
    /// closing trade's (a long is closed by a Sell).
    ForcedClose {
        kind: ForcedClose,
        symbol: String,
        side: Side,
        qty: Decimal,
        price: Decimal,
        /// In `fee_asset`; positive is paid.
        fee: Decimal,
        fee_asset: String,
        /// The venue's own id of the trade (repeats are dropped by it).
        venue_id: String,
    },
    /// A funding fee: positive is paid, negative received.
    Funding { symbol: String, amount: Decimal, asset: String, venue_id: String },
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
    pub fee: Decimal,
    /// The asset the fee was charged in (a Bybit spot BUY pays it in the
    /// base coin).
    pub fee_asset: String,
    /// What the venue said about how the order ended, when it said more
    /// than "no error" (Bybit's rejectReason, e.g. EC_PostOnlyWillTakeLiquidity).
    pub venue_reason: Option<String>,
    /// The profit the venue says the order realised (Binance's `rp`).
    pub realised_pnl: Option<Decimal>,
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

/// What an API key may do, as the venue reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub read_only: bool,
    pub can_trade: bool,
    pub can_withdraw: bool,
    /// Addresses the key is bound to (empty or "*": any).
    pub ips: Vec<String>,
    /// The venue's own permission list, for the operator.
    pub permissions: String,
}

/// A linear position: signed size (long > 0), at the venue's entry price.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub symbol: String,
    pub size: Decimal,
    /// The venue's average entry price (Bybit avgPrice, Binance entryPrice).
    pub entry_price: Decimal,
    /// The leg of a hedge-mode account (None: one-way mode).
    pub leg: Option<Side>,
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
    /// The request's outcome is unknown: no answer (timeout, connection
    /// reset after sending), HTTP 5xx, retCode 10016, or an answer that does
    /// not parse. An order may exist: never treat this as a refusal.
    #[error("outcome unknown: {0}")]
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
    /// Places an order (market, limit, or conditional where
    /// [`Exchange::conditional_orders`]); a second call with the same
    /// client order id is refused with `DuplicateOrder`, so a retry never
    /// trades twice.
    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError>;
    /// Whether botai places conditional orders here (an order with a
    /// trigger); where not, `place_order` refuses one without sending it.
    fn conditional_orders(&self) -> bool {
        false
    }
    /// The order with this client order id, if the exchange has it.
    async fn order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError>;
    async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<(), ExchangeError>;
    /// Every order of `symbol` still open at the venue (New or
    /// PartiallyFilled), whoever placed it: what reconciliation compares
    /// with botai's record.
    async fn open_orders(&self, symbol: &str) -> Result<Vec<OrderState>, ExchangeError>;
    async fn wallet(&self) -> Result<Wallet, ExchangeError>;
    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError>;
    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError>;
    /// Open positions (linear); a spot account has none.
    async fn positions(&self) -> Result<Vec<Position>, ExchangeError> {
        Ok(Vec::new())
    }
    /// Whether the account keeps a long and a short leg per symbol (hedge
    /// mode): botai books one position per symbol and refuses it.
    async fn hedge_mode(&self, _symbol: &str) -> Result<bool, ExchangeError> {
        Ok(false)
    }
    /// The venue's clock minus ours, in milliseconds, when measured.
    fn clock_offset_ms(&self) -> Option<i64> {
        None
    }
    /// The last traded price of `symbol`.
    async fn last_price(&self, symbol: &str) -> Result<Decimal, ExchangeError>;
    /// The key's permissions (None: the venue cannot tell, e.g. the paper exchange).
    async fn key_info(&self) -> Result<Option<KeyInfo>, ExchangeError> {
        Ok(None)
    }
    /// Whether the venue's private stream is connected (None: it has none).
    fn stream_connected(&self) -> Option<bool> {
        None
    }
    /// The venue runs in this process, on this host's clock: its balance
    /// snapshots need no allowance for clock skew.
    fn shares_our_clock(&self) -> bool {
        false
    }
    /// The venue's limit headers last seen: (botai endpoint, remaining, limit).
    fn venue_limits(&self) -> Vec<(String, i32, i32)> {
        Vec::new()
    }
    /// Order updates pushed by the venue (its private stream), while it is
    /// connected; subscribe before placing an order so no push is missed.
    fn order_updates(&self) -> Option<tokio::sync::broadcast::Receiver<OrderState>> {
        None
    }
    /// What the venue does to the account on its own (forced closes,
    /// funding), pushed by its private stream.
    fn account_events(&self) -> Option<tokio::sync::broadcast::Receiver<AccountEvent>> {
        None
    }
}

/// An API key as logs may show it: its last four characters.
pub fn redact(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("***{tail}")
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
