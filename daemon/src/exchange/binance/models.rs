//! Binance USDⓈ-M futures' messages, typed once: the adapter parses them,
//! the exchange double serialises them. Field names and enum words are the
//! venue's (developers.binance.com/docs/derivatives/usds-margined-futures,
//! "Common Definitions"); `tests/fixtures/venues/binance/` holds the
//! documentation's own example of each message, and every one parses into
//! these types. Fields botai does not read are left out (serde ignores them).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::exchange::figure::Figure;
use crate::exchange::ForcedClose;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn botai(self) -> crate::exchange::Side {
        match self {
            Side::Buy => crate::exchange::Side::Buy,
            Side::Sell => crate::exchange::Side::Sell,
        }
    }

    pub fn of(side: crate::exchange::Side) -> Side {
        match side {
            crate::exchange::Side::Buy => Side::Buy,
            crate::exchange::Side::Sell => Side::Sell,
        }
    }
}

/// `positionSide`: BOTH in one-way mode, LONG and SHORT in hedge mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum PositionSide {
    #[default]
    Both,
    Long,
    Short,
}

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

/// An asset of /fapi/v2/balance (and /fapi/v3/balance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    #[serde(default)]
    pub account_alias: String,
    pub asset: String,
    /// The wallet balance.
    pub balance: Figure,
    #[serde(default)]
    pub cross_wallet_balance: Figure,
    #[serde(default)]
    pub cross_un_pnl: Figure,
    /// What an order can use ("下单可用余额"); in multi-assets mode the
    /// same account-wide USD figure on every asset, never to be summed.
    pub available_balance: Figure,
    /// What can be transferred out: another figure.
    #[serde(default)]
    pub max_withdraw_amount: Figure,
    #[serde(default)]
    pub margin_available: bool,
    #[serde(default)]
    pub update_time: i64,
}

/// /fapi/v2/account and /fapi/v3/account. botai reads /fapi/v2/balance;
/// the double answers this for the clients that read it (ccxt). v3 leaves
/// out the top-level flags and v2's single-asset example forgets `canTrade`
/// inside a comment: each is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_tier: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_burn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_trade: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_deposit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_withdraw: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_assets_margin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_group_id: Option<i64>,
    pub total_initial_margin: Figure,
    pub total_maint_margin: Figure,
    pub total_wallet_balance: Figure,
    pub total_unrealized_profit: Figure,
    pub total_margin_balance: Figure,
    pub total_position_initial_margin: Figure,
    pub total_open_order_initial_margin: Figure,
    pub total_cross_wallet_balance: Figure,
    pub total_cross_un_pnl: Figure,
    pub available_balance: Figure,
    pub max_withdraw_amount: Figure,
    pub assets: Vec<AccountAsset>,
    pub positions: Vec<AccountPosition>,
}

/// An asset of /fapi/v2/account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAsset {
    pub asset: String,
    pub wallet_balance: Figure,
    pub unrealized_profit: Figure,
    pub margin_balance: Figure,
    pub maint_margin: Figure,
    pub initial_margin: Figure,
    pub position_initial_margin: Figure,
    pub open_order_initial_margin: Figure,
    pub cross_wallet_balance: Figure,
    pub cross_un_pnl: Figure,
    pub available_balance: Figure,
    pub max_withdraw_amount: Figure,
    /// v2 only (and gone from v3's examples since 2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_available: Option<bool>,
    pub update_time: i64,
}

/// A position of /fapi/v2/account (v2: every symbol, with its leverage and
/// entry price; v3: only those held or with open orders, with notional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPosition {
    pub symbol: String,
    pub initial_margin: Figure,
    pub maint_margin: Figure,
    pub unrealized_profit: Figure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_initial_margin: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_order_initial_margin: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_price: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_notional: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_notional: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_notional: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notional: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated_margin: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated_wallet: Option<Figure>,
    pub position_side: PositionSide,
    /// Signed: a SHORT leg is negative.
    pub position_amt: Figure,
    pub update_time: i64,
}

/// /sapi/v1/account/apiRestrictions: what the key may do. `enableFutures`
/// is the right to trade USDⓈ-M futures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRestrictions {
    #[serde(default)]
    pub ip_restrict: bool,
    #[serde(default)]
    pub create_time: i64,
    #[serde(default)]
    pub enable_reading: bool,
    #[serde(default)]
    pub enable_withdrawals: bool,
    #[serde(default)]
    pub enable_internal_transfer: bool,
    #[serde(default)]
    pub enable_margin: bool,
    #[serde(default)]
    pub enable_futures: bool,
    #[serde(default)]
    pub permits_universal_transfer: bool,
    #[serde(default)]
    pub enable_vanilla_options: bool,
    #[serde(default)]
    pub enable_spot_and_margin_trading: bool,
    #[serde(default)]
    pub enable_portfolio_margin_trading: bool,
}

/// A position of /fapi/v2/positionRisk (one entry per side in hedge mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRisk {
    pub symbol: String,
    /// Signed: a SHORT leg is negative.
    pub position_amt: Figure,
    pub entry_price: Figure,
    #[serde(default)]
    pub break_even_price: Figure,
    #[serde(default)]
    pub mark_price: Figure,
    #[serde(default)]
    pub un_realized_profit: Figure,
    #[serde(default)]
    pub liquidation_price: Figure,
    #[serde(default)]
    pub leverage: Figure,
    #[serde(default)]
    pub margin_type: String,
    #[serde(default)]
    pub position_side: PositionSide,
    #[serde(default)]
    pub update_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated_margin: Option<Figure>,
    /// A string ("false") in the documentation's example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_auto_add_margin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notional: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated_wallet: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_notional_value: Option<Figure>,
}

/// /fapi/v1/positionSide/dual: true is hedge mode, for every symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionMode {
    pub dual_side_position: bool,
}

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

/// POST /fapi/v1/listenKey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenKey {
    pub listen_key: String,
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

/// A refusal: `{"code": -2019, "msg": "Margin is insufficient."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: i64,
    pub msg: String,
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

impl Balance {
    /// The asset's funds: the wallet balance, and what an order can use
    /// (availableBalance, no more than the balance itself: in multi-assets
    /// mode the figure is the account's, in USD).
    pub fn funds(&self) -> Result<(Decimal, Decimal), String> {
        let total = self.balance.required(&format!("{} balance", self.asset))?;
        let available = self.available_balance.required(&format!("{} availableBalance", self.asset))?;
        Ok((total, available.clamp(Decimal::ZERO, total.max(Decimal::ZERO))))
    }
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
