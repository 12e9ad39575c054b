//! Bybit V5's account endpoints on the venue: `/v5/account/wallet-balance`,
//! `/v5/position/list`, `/v5/user/query-api`, `/v5/account/info` and
//! `/v5/asset/coin/query-info`, and the wallet and position models the
//! private stream shares.

use std::collections::BTreeMap;

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{category, params_error, to_json, Answer};
use crate::exchange::bybit::models::{self, Figure};
use crate::exchange::Category;
use crate::sim::venue::Venue;

pub(super) fn wallet(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    match q.get("accountType").map(String::as_str) {
        Some("UNIFIED") => {}
        Some(other) => return params_error(format!("accountType {other:?}: this account is UNIFIED")),
        None => return params_error("accountType is required"),
    }
    let mut account = wallet_account(venue);
    account.coin.retain(|c| q.get("coin").is_none_or(|wanted| wanted.split(',').any(|w| c.coin == w)));
    Answer::ok(json!({"list": [to_json(&account)]}))
}

/// The unified wallet in /v5/account/wallet-balance's shape (and the
/// `wallet` topic's). A coin the account borrowed shows it as Bybit does:
/// walletBalance includes it, spotBorrow says how much.
pub fn wallet_account(venue: &Venue) -> models::WalletAccount {
    let borrowed = venue.borrowed();
    let coin = venue
        .wallet()
        .into_iter()
        .map(|(coin, total, locked)| {
            let borrow = borrowed.get(&coin).copied().unwrap_or(Decimal::ZERO);
            models::WalletCoin {
                equity: (total).into(),
                usd_value: Figure::NONE,
                wallet_balance: (total + borrow).into(),
                locked: locked.into(),
                spot_borrow: borrow.into(),
                borrow_amount: borrow.into(),
                // Deprecated for unified accounts: Bybit sends "".
                available_to_withdraw: Figure::NONE,
                total_order_im: Decimal::ZERO.into(),
                total_position_im: Decimal::ZERO.into(),
                total_position_mm: Decimal::ZERO.into(),
                unrealised_pnl: Decimal::ZERO.into(),
                cum_realised_pnl: Decimal::ZERO.into(),
                bonus: Decimal::ZERO.into(),
                accrued_interest: Decimal::ZERO.into(),
                margin_collateral: true,
                collateral_switch: true,
                coin,
            }
        })
        .collect();
    models::WalletAccount {
        account_type: models::AccountType::Unified,
        total_equity: Figure::NONE,
        total_wallet_balance: Figure::NONE,
        total_margin_balance: Figure::NONE,
        total_available_balance: Figure::NONE,
        total_perp_upl: Decimal::ZERO.into(),
        total_initial_margin: Decimal::ZERO.into(),
        total_maintenance_margin: Decimal::ZERO.into(),
        coin,
    }
}

/// A position in /v5/position/list's shape (a flat one has size 0).
pub fn position(venue: &Venue, symbol: &str, p: &crate::sim::venue::Position) -> models::Position {
    let mark = venue.price(symbol).unwrap_or(p.entry_price);
    let position_side = if p.size > Decimal::ZERO {
        models::PositionSide::Buy
    } else if p.size < Decimal::ZERO {
        models::PositionSide::Sell
    } else {
        models::PositionSide::Flat
    };
    // Hedge mode: the Buy leg is positionIdx 1, the Sell leg 2.
    let position_idx = match (venue.hedge_mode(), position_side) {
        (false, _) => 0,
        (true, models::PositionSide::Sell) => 2,
        (true, _) => 1,
    };
    models::Position {
        category: Some("linear".into()),
        symbol: symbol.to_owned(),
        position_idx,
        side: position_side,
        size: p.size.abs().into(),
        avg_price: p.entry_price.into(),
        mark_price: mark.into(),
        position_value: (p.size.abs() * p.entry_price).normalize().into(),
        leverage: venue.settings.leverage.into(),
        unrealised_pnl: (p.size * (mark - p.entry_price)).normalize().into(),
        cum_realised_pnl: p.realised_pnl.into(),
        liq_price: Figure::NONE,
        position_status: "Normal".into(),
        trade_mode: 0,
        created_time: "1700000000000".into(),
        updated_time: Utc::now().timestamp_millis().to_string(),
    }
}

pub fn position_json(venue: &Venue, symbol: &str, p: &crate::sim::venue::Position) -> Value {
    to_json(&position(venue, symbol, p))
}

pub(super) fn positions(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    match category(q.get("category").map(String::as_str)) {
        Ok(Some(Category::Linear)) => {}
        Ok(_) => return params_error("positions exist in linear only"),
        Err(a) => return a,
    }
    if q.get("symbol").is_none() && q.get("settleCoin").is_none() {
        return params_error("symbol or settleCoin is required");
    }
    let mut list: Vec<models::Position> = venue
        .positions()
        .into_iter()
        .filter(|(symbol, _)| q.get("symbol").is_none_or(|s| s == symbol))
        .map(|(symbol, p)| position(venue, &symbol, &p))
        .collect();
    // Asked by symbol, hedge mode lists both legs, a flat one too.
    if let (Some(symbol), true) = (q.get("symbol"), venue.hedge_mode()) {
        for idx in [1, 2] {
            if !list.iter().any(|p| p.position_idx == idx) {
                let mut flat = position(venue, symbol, &Default::default());
                flat.position_idx = idx;
                list.push(flat);
            }
        }
    }
    Answer::ok(json!({"category": "linear", "list": to_json(&list), "nextPageCursor": ""}))
}

/// /v5/user/query-api: the double's one key (Withdraw as the settings say).
pub fn api_key(venue: &Venue) -> models::ApiKeyInfo {
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let wallet: &[&str] =
        if venue.settings.key_can_withdraw { &["AccountTransfer", "Withdraw"] } else { &["AccountTransfer"] };
    let mut permissions: std::collections::BTreeMap<String, Vec<String>> =
        ["Options", "Derivatives", "CopyTrading", "BlockTrade", "Exchange", "NFT", "Affiliate"]
            .into_iter()
            .map(|g| (g.to_owned(), Vec::new()))
            .collect();
    permissions.insert("ContractTrade".into(), words(&["Order", "Position"]));
    permissions.insert("Spot".into(), words(&["SpotTrade"]));
    permissions.insert("Wallet".into(), words(wallet));
    models::ApiKeyInfo {
        id: "1".into(),
        note: "botai exchange double".into(),
        api_key: venue.settings.api_key.clone(),
        read_only: 0,
        secret: String::new(),
        permissions,
        ips: vec!["*".into()],
        key_type: 1,
        deadline_day: 90,
        expired_at: String::new(),
        created_at: "2026-01-01T00:00:00Z".into(),
        unified: 0,
        uta: 1,
        user_id: 1,
        inviter_id: 0,
        vip_level: "No VIP".into(),
        mkt_maker_level: "0".into(),
        affiliate_id: 0,
        rsa_public_key: String::new(),
        is_master: true,
        parent_uid: "0".into(),
        kyc_level: "LEVEL_DEFAULT".into(),
        kyc_region: String::new(),
    }
}

/// /v5/account/info: a unified account (UTA 2.0 Pro) under cross margin.
pub fn account_info() -> models::AccountInfo {
    models::AccountInfo {
        unified_margin_status: 6,
        margin_mode: "REGULAR_MARGIN".into(),
        is_master_trader: false,
        spot_hedging_status: "OFF".into(),
        updated_time: Utc::now().timestamp_millis().to_string(),
        dcp_status: "OFF".into(),
        time_window: 0,
        smp_group: 0,
    }
}

pub(super) fn coins(venue: &Venue) -> Answer {
    let rows: Vec<Value> = venue
        .balances()
        .keys()
        .map(|coin| {
            json!({"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [{
                "chainType": coin, "confirmation": "1", "withdrawFee": "0", "depositMin": "0",
                "withdrawMin": "0", "chain": coin, "chainDeposit": "1", "chainWithdraw": "1",
                "minAccuracy": "8", "withdrawPercentageFee": "0"}]})
        })
        .collect();
    Answer::ok(json!({"rows": rows}))
}
