//! Orders and executions: the order lists, the execution list, the order
//! endpoints' bodies and answers, and the `order` and `execution` topics.

use serde::{Deserialize, Serialize};

use super::{Figure, Side};

/// `orderStatus` (enum#orderstatus). `Created` and `Active` left the
/// documentation in January 2024; older data and clients still carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Created,
    New,
    PartiallyFilled,
    /// A conditional order waiting for its trigger.
    Untriggered,
    /// "instantaneous state for conditional orders from Untriggered to
    /// New": the order is about to be live, not ended.
    Triggered,
    Active,
    Rejected,
    /// Spot only: cancelled after a partial fill.
    PartiallyFilledCanceled,
    Filled,
    /// "In derivatives, orders with this status may have an executed qty".
    Cancelled,
    /// A conditional (or TP/SL, OCO) order cancelled before its trigger.
    Deactivated,
}

impl OrderStatus {
    /// What the order means to botai. `Rejected` and `Cancelled` may follow
    /// a partial fill: the order's `cumExecQty` says how much executed.
    pub fn botai(self) -> crate::exchange::OrderStatus {
        use crate::exchange::OrderStatus as S;
        match self {
            OrderStatus::Created
            | OrderStatus::New
            | OrderStatus::Untriggered
            | OrderStatus::Triggered
            | OrderStatus::Active => S::New,
            OrderStatus::PartiallyFilled => S::PartiallyFilled,
            OrderStatus::Filled => S::Filled,
            OrderStatus::Cancelled | OrderStatus::PartiallyFilledCanceled | OrderStatus::Deactivated => S::Cancelled,
            OrderStatus::Rejected => S::Rejected,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "Created",
            OrderStatus::New => "New",
            OrderStatus::PartiallyFilled => "PartiallyFilled",
            OrderStatus::Untriggered => "Untriggered",
            OrderStatus::Triggered => "Triggered",
            OrderStatus::Active => "Active",
            OrderStatus::Rejected => "Rejected",
            OrderStatus::PartiallyFilledCanceled => "PartiallyFilledCanceled",
            OrderStatus::Filled => "Filled",
            OrderStatus::Cancelled => "Cancelled",
            OrderStatus::Deactivated => "Deactivated",
        }
    }
}

/// `execType` (enum#exectype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecType {
    Trade,
    /// Auto-deleveraging: the venue closed (part of) the position.
    AdlTrade,
    /// A funding fee (execFee: paid when positive).
    Funding,
    /// Takeover liquidation, at the bankruptcy price.
    BustTrade,
    /// Delivery, or a position closed because the contract was delisted.
    Delivery,
    Settle,
    BlockTrade,
    MovePosition,
    FutureSpread,
    CorporateAction,
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl ExecType {
    /// The venue closed the position by force.
    pub fn forced_close(self) -> Option<crate::exchange::ForcedClose> {
        match self {
            ExecType::AdlTrade => Some(crate::exchange::ForcedClose::Adl),
            ExecType::BustTrade => Some(crate::exchange::ForcedClose::Liquidation),
            ExecType::Delivery => Some(crate::exchange::ForcedClose::Delisting),
            _ => None,
        }
    }
}

/// `orderType`: `UNKNOWN` is answered for funding executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderType {
    Market,
    Limit,
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

/// An order (/v5/order/realtime, /v5/order/history, the `order` topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub order_id: String,
    pub order_link_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub order_status: OrderStatus,
    pub price: Figure,
    pub qty: Figure,
    pub avg_price: Figure,
    pub leaves_qty: Figure,
    pub cum_exec_qty: Figure,
    pub cum_exec_value: Figure,
    pub cum_exec_fee: Figure,
    /// Why the venue refused or ended the order (`EC_NoError` otherwise).
    #[serde(default)]
    pub reject_reason: String,
    #[serde(default)]
    pub cancel_type: String,
    /// Who created it: `CreateByUser`, `CreateByLiq`,
    /// `CreateByTakeOver_PassThrough`, `CreateByAdl_PassThrough`… (not on spot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_type: Option<String>,
    /// `Stop` for a conditional order; `""`/`UNKNOWN` otherwise.
    #[serde(default)]
    pub stop_order_type: String,
    #[serde(default)]
    pub trigger_price: Figure,
    /// 1 rises to the trigger, 2 falls to it; 0 not conditional.
    #[serde(default)]
    pub trigger_direction: i32,
    #[serde(default)]
    pub position_idx: i32,
    #[serde(default)]
    pub time_in_force: String,
    #[serde(default)]
    pub reduce_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_unit: Option<String>,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub updated_time: String,
}

/// An execution (/v5/execution/list, the `execution` topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub symbol: String,
    pub order_id: String,
    pub order_link_id: String,
    pub side: Side,
    pub exec_id: String,
    pub exec_price: Figure,
    pub exec_qty: Figure,
    pub exec_value: Figure,
    /// Paid when positive, received when negative (a maker rebate, a
    /// funding fee received).
    pub exec_fee: Figure,
    pub exec_type: ExecType,
    pub exec_time: String,
    #[serde(default)]
    pub is_maker: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_pnl: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_size: Option<Figure>,
}

/// The answer to /v5/order/create and /v5/order/cancel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAck {
    pub order_id: String,
    pub order_link_id: String,
}

/// The body of /v5/order/create, as botai sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrder {
    pub category: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Spot market orders: the unit of `qty` (`baseCoin`, `quoteCoin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_unit: Option<String>,
    /// Hedge mode: 1 the Buy leg, 2 the Sell leg (0, one-way, is the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_idx: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<String>,
    /// A conditional order: the last price that sends it to the book.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_price: Option<String>,
    /// Linear: 1 the price rises to the trigger, 2 it falls to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_direction: Option<i32>,
    /// Spot: `StopOrder` for a conditional order (`Order` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_filter: Option<String>,
    pub order_link_id: String,
}

/// The body of /v5/order/cancel, as botai sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrder {
    pub category: String,
    pub symbol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_link_id: Option<String>,
    /// Spot only: `Order` (a normal order), `tpslOrder`, `StopOrder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_filter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triggered_order_is_on_its_way_not_ended() {
        for (word, status) in [
            ("Untriggered", crate::exchange::OrderStatus::New),
            ("Triggered", crate::exchange::OrderStatus::New),
            ("New", crate::exchange::OrderStatus::New),
            ("Filled", crate::exchange::OrderStatus::Filled),
            ("Deactivated", crate::exchange::OrderStatus::Cancelled),
            ("PartiallyFilledCanceled", crate::exchange::OrderStatus::Cancelled),
            ("Rejected", crate::exchange::OrderStatus::Rejected),
        ] {
            let parsed: OrderStatus = serde_json::from_value(serde_json::json!(word)).unwrap();
            assert_eq!(parsed.botai(), status, "{word}");
            assert_eq!(parsed.as_str(), word);
        }
    }
}
