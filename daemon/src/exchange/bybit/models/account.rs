//! The account: the unified wallet, positions, the account's and the API
//! key's information.

use serde::{Deserialize, Serialize};

use super::Figure;

/// A position's side: `""` for a flat one (a hedge-mode leg at rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionSide {
    Buy,
    Sell,
    #[serde(rename = "")]
    Flat,
}

/// The account types of /v5/account/wallet-balance. Classic accounts
/// (`CONTRACT`, `SPOT`) are "now unavailable" (v5/acct-mode); botai trades
/// a unified account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccountType {
    Unified,
    Contract,
    Spot,
    Fund,
}

/// /v5/account/wallet-balance (and the `wallet` topic's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletAccount {
    pub account_type: AccountType,
    #[serde(default)]
    pub total_equity: Figure,
    #[serde(default)]
    pub total_wallet_balance: Figure,
    #[serde(default)]
    pub total_margin_balance: Figure,
    /// In USD: what the account can still put up as margin (cross margin).
    #[serde(default)]
    pub total_available_balance: Figure,
    #[serde(default, rename = "totalPerpUPL")]
    pub total_perp_upl: Figure,
    #[serde(default)]
    pub total_initial_margin: Figure,
    #[serde(default)]
    pub total_maintenance_margin: Figure,
    pub coin: Vec<WalletCoin>,
}

/// A coin of a wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletCoin {
    pub coin: String,
    #[serde(default)]
    pub equity: Figure,
    #[serde(default)]
    pub usd_value: Figure,
    /// In a unified account, borrowing included: "Old walletBalance = New
    /// walletBalance - spotBorrow".
    pub wallet_balance: Figure,
    #[serde(default)]
    pub locked: Figure,
    /// Borrowed by spot trading beyond the coin's own balance.
    #[serde(default)]
    pub spot_borrow: Figure,
    #[serde(default)]
    pub borrow_amount: Figure,
    /// Deprecated for UNIFIED accounts since 9 Jan 2025 (often `""`).
    #[serde(default)]
    pub available_to_withdraw: Figure,
    /// `""` under cross margin: the account's `totalAvailableBalance` rules.
    #[serde(default, rename = "totalOrderIM")]
    pub total_order_im: Figure,
    #[serde(default, rename = "totalPositionIM")]
    pub total_position_im: Figure,
    #[serde(default, rename = "totalPositionMM")]
    pub total_position_mm: Figure,
    #[serde(default)]
    pub unrealised_pnl: Figure,
    #[serde(default)]
    pub cum_realised_pnl: Figure,
    #[serde(default)]
    pub bonus: Figure,
    #[serde(default)]
    pub accrued_interest: Figure,
    #[serde(default)]
    pub margin_collateral: bool,
    #[serde(default)]
    pub collateral_switch: bool,
}

/// A position (/v5/position/list; the `position` topic calls the entry
/// price `entryPrice`, the list `avgPrice`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub symbol: String,
    /// 0: one-way mode; 1: the Buy leg, 2: the Sell leg of hedge mode.
    pub position_idx: i32,
    pub side: PositionSide,
    pub size: Figure,
    #[serde(alias = "entryPrice")]
    pub avg_price: Figure,
    #[serde(default)]
    pub mark_price: Figure,
    #[serde(default)]
    pub position_value: Figure,
    #[serde(default)]
    pub leverage: Figure,
    #[serde(default)]
    pub unrealised_pnl: Figure,
    #[serde(default)]
    pub cum_realised_pnl: Figure,
    #[serde(default)]
    pub liq_price: Figure,
    /// `Normal`, `Liq` (being liquidated), `Adl` (being auto-deleveraged).
    #[serde(default)]
    pub position_status: String,
    #[serde(default)]
    pub trade_mode: i32,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub updated_time: String,
}

/// /v5/account/info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// 1 classic, 3 UTA1.0, 4 UTA1.0 Pro, 5 UTA2.0, 6 UTA2.0 Pro.
    pub unified_margin_status: i32,
    /// `ISOLATED_MARGIN`, `REGULAR_MARGIN` (cross), `PORTFOLIO_MARGIN`.
    pub margin_mode: String,
    #[serde(default)]
    pub is_master_trader: bool,
    #[serde(default)]
    pub spot_hedging_status: String,
    #[serde(default)]
    pub updated_time: String,
    /// Disconnected-cancel protection: `ON`, `OFF`.
    #[serde(default)]
    pub dcp_status: String,
    /// Deprecated, "always 0" by the table (the example says 10).
    #[serde(default)]
    pub time_window: i32,
    #[serde(default)]
    pub smp_group: i64,
}

/// /v5/user/query-api: the key asking. Its permissions are groups of
/// words (`ContractTrade: [Order, Position]`, `Wallet: [.., Withdraw]`);
/// the groups change as the venue adds products, so they are kept as a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub api_key: String,
    /// 0 read and write, 1 read only.
    pub read_only: i32,
    /// Always `""`.
    #[serde(default)]
    pub secret: String,
    pub permissions: std::collections::BTreeMap<String, Vec<String>>,
    /// The IPs the key is bound to (`*`: none).
    #[serde(default)]
    pub ips: Vec<String>,
    /// 1 personal, 2 a third-party application's.
    #[serde(default, rename = "type")]
    pub key_type: i32,
    #[serde(default)]
    pub deadline_day: i64,
    #[serde(default)]
    pub expired_at: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub unified: i32,
    /// 1: the account is a unified trading account.
    #[serde(default)]
    pub uta: i32,
    #[serde(default, rename = "userID")]
    pub user_id: i64,
    #[serde(default, rename = "inviterID")]
    pub inviter_id: i64,
    #[serde(default)]
    pub vip_level: String,
    #[serde(default)]
    pub mkt_maker_level: String,
    #[serde(default, rename = "affiliateID")]
    pub affiliate_id: i64,
    #[serde(default)]
    pub rsa_public_key: String,
    #[serde(default)]
    pub is_master: bool,
    #[serde(default)]
    pub parent_uid: String,
    #[serde(default)]
    pub kyc_level: String,
    #[serde(default)]
    pub kyc_region: String,
}
