//! The account: balances, the account's assets and positions, the position
//! risk and mode, and what the API key may do.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Figure, PositionSide};

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
