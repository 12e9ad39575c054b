//! The user data stream: its listen key and its events (order and trade
//! updates, account updates, margin calls, the key's expiry).

use serde::{Deserialize, Serialize};

use super::{Figure, OrderStatus, OrderType, PositionSide, Side};
use crate::exchange::ForcedClose;

/// POST /fapi/v1/listenKey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenKey {
    pub listen_key: String,
}

/// An event of the user data stream, by its `e`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e")]
pub enum UserEvent {
    #[serde(rename = "ORDER_TRADE_UPDATE")]
    OrderTradeUpdate {
        #[serde(rename = "E")]
        event_time: i64,
        #[serde(rename = "T", default)]
        transaction_time: i64,
        #[serde(rename = "o")]
        order: Box<OrderUpdate>,
    },
    #[serde(rename = "ACCOUNT_UPDATE")]
    AccountUpdate {
        #[serde(rename = "E")]
        event_time: i64,
        #[serde(rename = "T", default)]
        transaction_time: i64,
        #[serde(rename = "a")]
        update: AccountUpdate,
    },
    #[serde(rename = "MARGIN_CALL")]
    MarginCall {
        #[serde(rename = "E")]
        event_time: i64,
        #[serde(rename = "cw", default)]
        cross_wallet_balance: Figure,
        #[serde(rename = "p", default)]
        positions: Vec<serde_json::Value>,
    },
    /// The listen key expired: the stream is over, get a new key.
    #[serde(rename = "listenKeyExpired")]
    ListenKeyExpired {
        /// A string in the 2025 documentation, a number in 2026's.
        #[serde(rename = "E")]
        event_time: serde_json::Value,
    },
    #[serde(other)]
    Other,
}

/// The user stream's execution type (`x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionType {
    New,
    Canceled,
    /// "Liquidation Execution" (the Chinese page: ADL or liquidation).
    Calculated,
    Expired,
    Trade,
    Amendment,
}

/// The `o` of ORDER_TRADE_UPDATE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdate {
    #[serde(rename = "s")]
    pub symbol: String,
    /// The client order id: `autoclose-…` for a liquidation, `adl_autoclose`
    /// for an ADL, `settlement_autoclose-…` for a delisting.
    #[serde(rename = "c")]
    pub client_order_id: String,
    #[serde(rename = "S")]
    pub side: Side,
    #[serde(rename = "o")]
    pub order_type: OrderType,
    #[serde(rename = "q")]
    pub qty: Figure,
    #[serde(rename = "p", default)]
    pub price: Figure,
    #[serde(rename = "ap", default)]
    pub avg_price: Figure,
    #[serde(rename = "x")]
    pub execution_type: ExecutionType,
    #[serde(rename = "X")]
    pub status: OrderStatus,
    #[serde(rename = "i")]
    pub order_id: i64,
    /// This trade's quantity and price.
    #[serde(rename = "l", default)]
    pub last_qty: Figure,
    #[serde(rename = "L", default)]
    pub last_price: Figure,
    /// Filled so far.
    #[serde(rename = "z", default)]
    pub cum_qty: Figure,
    /// Commission asset and amount: left out when there is none.
    #[serde(rename = "N", default, skip_serializing_if = "Option::is_none")]
    pub commission_asset: Option<String>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Figure>,
    #[serde(rename = "T", default)]
    pub trade_time: i64,
    #[serde(rename = "t", default)]
    pub trade_id: i64,
    #[serde(rename = "R", default)]
    pub reduce_only: bool,
    #[serde(rename = "ps", default)]
    pub position_side: PositionSide,
    /// Realised profit of this trade.
    #[serde(rename = "rp", default)]
    pub realised_profit: Figure,
}

impl OrderUpdate {
    /// The venue's own order closing a position by force.
    pub fn forced_close(&self) -> Option<ForcedClose> {
        let c = self.client_order_id.as_str();
        if self.status == OrderStatus::NewAdl || c.starts_with("adl_autoclose") {
            Some(ForcedClose::Adl)
        } else if c.starts_with("settlement_autoclose") {
            Some(ForcedClose::Delisting)
        } else if self.status == OrderStatus::NewInsurance
            || self.order_type == OrderType::Liquidation
            || self.execution_type == ExecutionType::Calculated
            || c.starts_with("autoclose")
        {
            Some(ForcedClose::Liquidation)
        } else {
            None
        }
    }
}

/// The `a` of ACCOUNT_UPDATE: what changed, and why (`m`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(rename = "m")]
    pub reason: AccountUpdateReason,
    #[serde(rename = "B", default)]
    pub balances: Vec<BalanceUpdate>,
    #[serde(rename = "P", default)]
    pub positions: Vec<PositionUpdate>,
}

/// ACCOUNT_UPDATE's `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountUpdateReason {
    Deposit,
    Withdraw,
    Order,
    FundingFee,
    WithdrawReject,
    Adjustment,
    InsuranceClear,
    AdminDeposit,
    AdminWithdraw,
    MarginTransfer,
    MarginTypeChange,
    AssetTransfer,
    OptionsPremiumFee,
    OptionsSettleProfit,
    AutoExchange,
    CoinSwapDeposit,
    CoinSwapWithdraw,
    /// Any word the documentation adds later: read, not refused.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceUpdate {
    #[serde(rename = "a")]
    pub asset: String,
    /// Wallet balance.
    #[serde(rename = "wb")]
    pub wallet_balance: Figure,
    #[serde(rename = "cw", default)]
    pub cross_wallet_balance: Figure,
    /// The change, P&L and commission excluded.
    #[serde(rename = "bc", default)]
    pub balance_change: Figure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionUpdate {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "pa")]
    pub position_amt: Figure,
    #[serde(rename = "ep")]
    pub entry_price: Figure,
    #[serde(rename = "bep", default)]
    pub break_even_price: Figure,
    #[serde(rename = "cr", default)]
    pub accumulated_realised: Figure,
    #[serde(rename = "up", default)]
    pub unrealised_pnl: Figure,
    #[serde(rename = "mt", default)]
    pub margin_type: String,
    #[serde(rename = "iw", default)]
    pub isolated_wallet: Figure,
    #[serde(rename = "ps", default)]
    pub position_side: PositionSide,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_closes_are_seen_in_every_spelling() {
        let base = serde_json::json!({"s": "BTCUSDT", "c": "x", "S": "SELL", "o": "MARKET", "q": "0.5",
            "x": "TRADE", "X": "FILLED", "i": 1});
        let with = |k: &str, v: &str| {
            let mut o = base.clone();
            o[k] = serde_json::json!(v);
            serde_json::from_value::<OrderUpdate>(o).unwrap()
        };
        assert_eq!(with("c", "x").forced_close(), None);
        assert_eq!(with("o", "LIQUIDATION").forced_close(), Some(ForcedClose::Liquidation));
        assert_eq!(with("x", "CALCULATED").forced_close(), Some(ForcedClose::Liquidation));
        assert_eq!(with("X", "NEW_INSURANCE").forced_close(), Some(ForcedClose::Liquidation));
        assert_eq!(with("c", "autoclose-1600000000").forced_close(), Some(ForcedClose::Liquidation));
        assert_eq!(with("X", "NEW_ADL").forced_close(), Some(ForcedClose::Adl));
        assert_eq!(with("c", "adl_autoclose").forced_close(), Some(ForcedClose::Adl));
        assert_eq!(with("c", "settlement_autoclose-1").forced_close(), Some(ForcedClose::Delisting));
        assert_eq!(with("X", "NEW_ADL").status.botai(), crate::exchange::OrderStatus::New);
    }
}
