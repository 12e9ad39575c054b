//! The simulated venue's state in Binance USDⓈ-M's models: orders,
//! balances, the account, positions and the instruments, as the double's
//! REST answers and user stream send them.

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::exchange::binance::models::{self, Figure};
use crate::exchange::Category;
use crate::sim::venue::{OrderKind, Venue, VenueOrder, VenueStatus};

/// The venue's order status in Binance's words (REST and user stream).
pub fn status(s: VenueStatus) -> models::OrderStatus {
    match s {
        // Never on this venue's order endpoint (conditional orders are
        // algo orders there); the book's word for an order not yet filled.
        VenueStatus::Untriggered | VenueStatus::Triggered | VenueStatus::New => models::OrderStatus::New,
        VenueStatus::PartiallyFilled => models::OrderStatus::PartiallyFilled,
        VenueStatus::Filled => models::OrderStatus::Filled,
        VenueStatus::Cancelled | VenueStatus::PartiallyFilledCanceled => models::OrderStatus::Canceled,
        VenueStatus::Rejected => models::OrderStatus::Rejected,
    }
}

/// An order in /fapi/v1/order's shape.
/// An order in /fapi/v1/order's shape.
pub fn order(o: &VenueOrder) -> models::Order {
    let kind = if o.kind == OrderKind::Market { models::OrderType::Market } else { models::OrderType::Limit };
    models::Order {
        order_id: o.seq as i64,
        client_order_id: o.link_id.clone(),
        symbol: o.symbol.clone(),
        side: models::Side::of(o.side),
        position_side: models::PositionSide::Both,
        status: status(o.status),
        order_type: kind,
        orig_qty: o.qty.into(),
        executed_qty: o.cum_qty.into(),
        avg_price: if o.cum_qty.is_zero() { Decimal::ZERO.into() } else { o.avg_price().into() },
        cum_quote: o.cum_value.normalize().into(),
        price: o.price.unwrap_or(Decimal::ZERO).into(),
        reduce_only: o.reduce_only,
        time_in_force: "GTC".into(),
        update_time: o.updated_ms,
        cum_qty: Some(o.cum_qty.into()),
        orig_type: Some(kind),
        stop_price: Some(Decimal::ZERO.into()),
        close_position: Some(false),
        working_type: Some("CONTRACT_PRICE".into()),
        price_protect: Some(false),
        price_match: Some("NONE".into()),
        self_trade_prevention_mode: Some("EXPIRE_MAKER".into()),
        good_till_date: Some(0),
        time: Some(o.created_ms),
    }
}

pub fn order_json(o: &VenueOrder) -> Value {
    serde_json::to_value(order(o)).unwrap_or(Value::Null)
}

/// /fapi/v2/account: the wallet's assets and the positions (v2's shape;
/// ccxt reads it for balances).
pub fn account(venue: &Venue) -> models::Account {
    let now = Utc::now().timestamp_millis();
    let figure = |d: Decimal| Figure::from(d);
    let zero = || Figure::from(Decimal::ZERO);
    let assets: Vec<models::AccountAsset> = venue
        .wallet()
        .into_iter()
        .map(|(asset, total, locked)| models::AccountAsset {
            asset,
            wallet_balance: figure(total),
            unrealized_profit: zero(),
            margin_balance: figure(total),
            maint_margin: zero(),
            initial_margin: figure(locked),
            position_initial_margin: figure(locked),
            open_order_initial_margin: zero(),
            cross_wallet_balance: figure(total),
            cross_un_pnl: zero(),
            available_balance: figure(total - locked),
            max_withdraw_amount: figure(total - locked),
            margin_available: Some(true),
            update_time: now,
        })
        .collect();
    let positions = position_risks(venue)
        .into_iter()
        .map(|p| models::AccountPosition {
            symbol: p.symbol,
            initial_margin: zero(),
            maint_margin: zero(),
            unrealized_profit: p.un_realized_profit,
            position_initial_margin: Some(zero()),
            open_order_initial_margin: Some(zero()),
            leverage: Some(p.leverage),
            isolated: Some(p.margin_type == "isolated"),
            entry_price: Some(p.entry_price),
            max_notional: p.max_notional_value,
            bid_notional: Some(zero()),
            ask_notional: Some(zero()),
            notional: None,
            isolated_margin: None,
            isolated_wallet: None,
            position_side: p.position_side,
            position_amt: p.position_amt,
            update_time: p.update_time,
        })
        .collect();
    models::Account {
        fee_tier: Some(0),
        fee_burn: Some(false),
        can_trade: Some(true),
        can_deposit: Some(true),
        can_withdraw: Some(venue.settings.key_can_withdraw),
        update_time: Some(0),
        multi_assets_margin: Some(false),
        trade_group_id: Some(-1),
        total_initial_margin: zero(),
        total_maint_margin: zero(),
        total_wallet_balance: zero(),
        total_unrealized_profit: zero(),
        total_margin_balance: zero(),
        total_position_initial_margin: zero(),
        total_open_order_initial_margin: zero(),
        total_cross_wallet_balance: zero(),
        total_cross_un_pnl: zero(),
        available_balance: zero(),
        max_withdraw_amount: zero(),
        assets,
        positions,
    }
}

/// /sapi/v1/account/apiRestrictions: what the account's key may do (reading
/// and futures; withdrawals when PAPER_KEY_CAN_WITHDRAW is on).
pub fn api_restrictions(venue: &Venue) -> models::ApiRestrictions {
    models::ApiRestrictions {
        create_time: 1_700_000_000_000,
        enable_reading: true,
        enable_futures: true,
        enable_withdrawals: venue.settings.key_can_withdraw,
        ..models::ApiRestrictions::default()
    }
}

/// /fapi/v2/balance.
pub fn balance_list(venue: &Venue) -> Vec<models::Balance> {
    venue
        .wallet()
        .into_iter()
        .map(|(asset, total, locked)| models::Balance {
            account_alias: "double".into(),
            asset,
            balance: total.into(),
            cross_wallet_balance: total.into(),
            cross_un_pnl: Decimal::ZERO.into(),
            available_balance: (total - locked).into(),
            max_withdraw_amount: (total - locked).into(),
            margin_available: true,
            update_time: Utc::now().timestamp_millis(),
        })
        .collect()
}

/// /fapi/v2/positionRisk: one entry per position (per leg in hedge mode).
pub fn position_risks(venue: &Venue) -> Vec<models::PositionRisk> {
    let hedge = venue.hedge_mode();
    venue
        .positions()
        .into_iter()
        .map(|(symbol, p)| {
            let mark = venue.price(&symbol).unwrap_or(p.entry_price);
            models::PositionRisk {
                position_amt: p.size.into(),
                entry_price: p.entry_price.into(),
                break_even_price: p.entry_price.into(),
                mark_price: mark.into(),
                un_realized_profit: (p.size * (mark - p.entry_price)).normalize().into(),
                liquidation_price: Decimal::ZERO.into(),
                leverage: venue.settings.leverage.into(),
                margin_type: "cross".into(),
                position_side: match (hedge, p.size >= Decimal::ZERO) {
                    (false, _) => models::PositionSide::Both,
                    (true, true) => models::PositionSide::Long,
                    (true, false) => models::PositionSide::Short,
                },
                update_time: Utc::now().timestamp_millis(),
                isolated_margin: Some(Decimal::ZERO.into()),
                is_auto_add_margin: Some("false".into()),
                notional: Some((p.size * mark).normalize().into()),
                isolated_wallet: Some(Decimal::ZERO.into()),
                max_notional_value: Some(Decimal::from(1_000_000).into()),
                symbol,
            }
        })
        .collect()
}

/// /fapi/v1/exchangeInfo of the venue's linear instruments.
pub fn exchange_info(venue: &Venue) -> Value {
    let symbols: Vec<Value> = venue
        .instruments(Category::Linear)
        .into_iter()
        .map(|i| {
            json!({"symbol": i.symbol, "pair": i.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000i64,
                   "onboardDate": 1569398400000i64, "status": "TRADING", "maintMarginPercent": "2.5000",
                   "requiredMarginPercent": "5.0000", "baseAsset": i.base, "quoteAsset": i.quote, "marginAsset": i.quote,
                   "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
                   "underlyingType": "COIN", "underlyingSubType": ["PoW"], "triggerProtect": "0.0500",
                   "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                   "filters": [
                       {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": i.tick_size.to_string()},
                       {"filterType": "LOT_SIZE", "minQty": i.min_qty.to_string(), "maxQty": "1000", "stepSize": i.qty_step.to_string()},
                       {"filterType": "MARKET_LOT_SIZE", "minQty": i.min_qty.to_string(), "maxQty": "120", "stepSize": i.qty_step.to_string()},
                       {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                       {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                       {"filterType": "MIN_NOTIONAL", "notional": i.min_notional.to_string()},
                       {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
                   ],
                   "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                   "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"]})
        })
        .collect();
    json!({
        "timezone": "UTC", "serverTime": Utc::now().timestamp_millis(), "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    })
}
