//! Orders: what /fapi/v1/order places, queries and cancels, with the
//! venue's words for their types and states.

use serde::{Deserialize, Serialize};

use super::{Figure, PositionSide, Side};

/// Order status. `NEW_INSURANCE` (a liquidation taken by the insurance
/// fund) and `NEW_ADL` (an auto-deleveraging) were the user stream's words
/// for forced closes until the 2023-01-04 change log; read as legacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
    ExpiredInMatch,
    NewInsurance,
    NewAdl,
}

impl OrderStatus {
    pub fn botai(self) -> crate::exchange::OrderStatus {
        use crate::exchange::OrderStatus as S;
        match self {
            OrderStatus::New | OrderStatus::NewInsurance | OrderStatus::NewAdl => S::New,
            OrderStatus::PartiallyFilled => S::PartiallyFilled,
            OrderStatus::Filled => S::Filled,
            OrderStatus::Canceled | OrderStatus::Expired | OrderStatus::ExpiredInMatch => S::Cancelled,
            OrderStatus::Rejected => S::Rejected,
        }
    }
}

/// Order type. `LIQUIDATION` is the venue's own order closing a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderType {
    Limit,
    Market,
    Stop,
    StopMarket,
    TakeProfit,
    TakeProfitMarket,
    TrailingStopMarket,
    Liquidation,
    /// Not in the documented list; accepted where the venue names an ADL order so.
    Adl,
}

/// An order of /fapi/v1/order (placed, queried, cancelled) and /openOrders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: i64,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(default)]
    pub position_side: PositionSide,
    pub status: OrderStatus,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub orig_qty: Figure,
    pub executed_qty: Figure,
    pub avg_price: Figure,
    #[serde(default)]
    pub cum_quote: Figure,
    #[serde(default)]
    pub price: Figure,
    #[serde(default)]
    pub reduce_only: bool,
    #[serde(default)]
    pub time_in_force: String,
    #[serde(default)]
    pub update_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cum_qty: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_type: Option<OrderType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_position: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_protect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_trade_prevention_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_till_date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}
