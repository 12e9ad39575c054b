//! Binance USDⓈ-M's user data stream on the simulated venue, as Binance
//! documents it: a WebSocket at `/private/ws/{listenKey}` (also the
//! query form `/private/ws?listenKey=…`, and the older `/ws/{listenKey}`
//! testnet still serves) for the key `POST /fapi/v1/listenKey` handed out;
//! an unknown key is refused before the upgrade (-1125). Events:
//!
//! - `ORDER_TRADE_UPDATE` for each change of an order: `x` NEW, TRADE (with
//!   the trade's `l`, `L`, `n`, `N`, `t`), CANCELED; `X` the order's status;
//! - `ACCOUNT_UPDATE` after a fill or a cancel (balances `B`, positions `P`).
//!
//! The server pings every three minutes, as Binance does. Faults, as on the
//! Bybit stream: `drop_streams` closes every connection; `duplicate_pushes`
//! sends an event twice, the copy after the next event (out of order).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::binance::listen_key;
use crate::exchange::binance::models;
use crate::exchange::{ForcedClose, Side};
use crate::sim::venue::{Event, Execution, Venue, VenueOrder, VenueStatus};
use rust_decimal::Decimal;

/// `/private/ws/{listenKey}` and `/ws/{listenKey}`.
pub async fn by_path(State(venue): State<Arc<Venue>>, Path(key): Path<String>, ws: WebSocketUpgrade) -> Response {
    upgrade(venue, &key, ws)
}

/// `/private/ws?listenKey=…`.
pub async fn by_query(
    State(venue): State<Arc<Venue>>,
    Query(query): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(venue, query.get("listenKey").map_or("", String::as_str), ws)
}

fn upgrade(venue: Arc<Venue>, key: &str, ws: WebSocketUpgrade) -> Response {
    if key != listen_key(&venue) {
        let body = json!({"code": -1125, "msg": "This listenKey does not exist."});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    ws.on_upgrade(move |socket| serve(venue, socket))
}

async fn serve(venue: Arc<Venue>, mut socket: WebSocket) {
    let generation = venue.stream_generation();
    let mut cursor = venue.event_count();
    // A fill's execution waits for the order's event that follows it: on
    // Binance the two are one ORDER_TRADE_UPDATE.
    let mut trades: HashMap<String, Execution> = HashMap::new();
    let mut held_back: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ping = tokio::time::interval(Duration::from_secs(180));
    ping.tick().await;
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Binance ignores what a client sends on this stream (pongs included).
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = venue.changed.notified() => {}
            _ = tick.tick() => {}
        }
        if venue.stream_generation() != generation {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        let (events, next) = venue.events_since(cursor);
        cursor = next;
        for event in events {
            let Some(push) = event_json(&venue, &mut trades, event) else { continue };
            let push = push.to_string();
            let held = held_back.take();
            if venue.take_fault(|f| &mut f.duplicate_pushes) {
                held_back = Some(push.clone());
            }
            if socket.send(Message::Text(push.into())).await.is_err() {
                return;
            }
            if let Some(copy) = held {
                if socket.send(Message::Text(copy.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn event_json(venue: &Venue, trades: &mut HashMap<String, Execution>, event: Event) -> Option<Value> {
    let now = Utc::now().timestamp_millis();
    match event {
        Event::Execution(e) => {
            trades.insert(e.order_id.clone(), e);
            None
        }
        Event::Order(o) => {
            let trade = trades.remove(&o.order_id);
            let order = order_update(venue, &o, trade.as_ref());
            user_event(&models::UserEvent::OrderTradeUpdate {
                event_time: now,
                transaction_time: o.updated_ms,
                order: Box::new(order),
            })
        }
        Event::ForcedClose(e, kind) => {
            // The venue's own order: a liquidation (o LIQUIDATION, client id
            // autoclose-…) or an ADL (adl_autoclose), executed at once.
            let (client_order_id, order_type) = match kind {
                ForcedClose::Liquidation => (format!("autoclose-{}", e.time_ms), models::OrderType::Liquidation),
                ForcedClose::Adl => ("adl_autoclose".to_owned(), models::OrderType::Market),
                ForcedClose::Delisting => (format!("settlement_autoclose-{}", e.time_ms), models::OrderType::Market),
            };
            let order = models::OrderUpdate {
                symbol: e.symbol.clone(),
                client_order_id,
                side: models::Side::of(e.side),
                order_type,
                qty: e.qty.into(),
                price: e.price.into(),
                avg_price: e.price.into(),
                execution_type: models::ExecutionType::Calculated,
                status: models::OrderStatus::Filled,
                order_id: trade_id(&e) as i64 + 9_000_000,
                last_qty: e.qty.into(),
                last_price: e.price.into(),
                cum_qty: e.qty.into(),
                commission_asset: Some(e.fee_asset.clone()),
                commission: Some(e.fee.into()),
                trade_time: e.time_ms,
                trade_id: trade_id(&e) as i64,
                reduce_only: true,
                position_side: position_side(venue, e.side == Side::Sell),
                realised_profit: e.realised_pnl.into(),
            };
            user_event(&models::UserEvent::OrderTradeUpdate {
                event_time: now,
                transaction_time: e.time_ms,
                order: Box::new(order),
            })
        }
        Event::Wallet => {
            let balances = venue
                .wallet()
                .into_iter()
                .map(|(asset, total, _)| models::BalanceUpdate {
                    asset,
                    wallet_balance: total.into(),
                    cross_wallet_balance: total.into(),
                    balance_change: Decimal::ZERO.into(),
                })
                .collect();
            let update =
                models::AccountUpdate { reason: models::AccountUpdateReason::Order, balances, positions: vec![] };
            user_event(&models::UserEvent::AccountUpdate { event_time: now, transaction_time: now, update })
        }
        Event::Position(symbol) => {
            let p = venue.positions().remove(&symbol).unwrap_or_default();
            let mark = venue.price(&symbol).unwrap_or(p.entry_price);
            let position = models::PositionUpdate {
                position_amt: p.size.into(),
                entry_price: p.entry_price.into(),
                break_even_price: p.entry_price.into(),
                accumulated_realised: p.realised_pnl.into(),
                unrealised_pnl: (p.size * (mark - p.entry_price)).normalize().into(),
                margin_type: "cross".into(),
                isolated_wallet: Decimal::ZERO.into(),
                position_side: position_side(venue, p.size >= Decimal::ZERO),
                symbol,
            };
            let update = models::AccountUpdate {
                reason: models::AccountUpdateReason::Order,
                balances: vec![],
                positions: vec![position],
            };
            user_event(&models::UserEvent::AccountUpdate { event_time: now, transaction_time: now, update })
        }
    }
}

/// BOTH in one-way mode; hedge mode names the leg, LONG or SHORT.
fn position_side(venue: &Venue, long: bool) -> models::PositionSide {
    match (venue.hedge_mode(), long) {
        (false, _) => models::PositionSide::Both,
        (true, true) => models::PositionSide::Long,
        (true, false) => models::PositionSide::Short,
    }
}

fn user_event(e: &models::UserEvent) -> Option<Value> {
    serde_json::to_value(e).ok()
}

/// A trade's id as userTrades gives it (`exec-000000000042` → 42).
fn trade_id(e: &Execution) -> u64 {
    e.exec_id.trim_start_matches("exec-").parse().unwrap_or(0)
}

/// The `o` of an ORDER_TRADE_UPDATE.
fn order_update(venue: &Venue, o: &VenueOrder, trade: Option<&Execution>) -> models::OrderUpdate {
    let status = super::binance_state::status(o.status);
    let execution_type = match (trade, o.status) {
        (Some(_), _) => models::ExecutionType::Trade,
        (None, VenueStatus::Cancelled | VenueStatus::PartiallyFilledCanceled) => models::ExecutionType::Canceled,
        // The venue refuses such an order in its answer; the stream says it ended.
        (None, VenueStatus::Rejected) => models::ExecutionType::Expired,
        (None, _) => models::ExecutionType::New,
    };
    let zero = || Decimal::ZERO.into();
    models::OrderUpdate {
        symbol: o.symbol.clone(),
        client_order_id: o.link_id.clone(),
        side: models::Side::of(o.side),
        order_type: if o.price.is_some() { models::OrderType::Limit } else { models::OrderType::Market },
        qty: o.qty.into(),
        price: o.price.unwrap_or(Decimal::ZERO).into(),
        avg_price: if o.cum_qty.is_zero() { zero() } else { o.avg_price().into() },
        execution_type,
        status,
        order_id: o.seq as i64,
        last_qty: trade.map_or_else(zero, |t| t.qty.into()),
        last_price: trade.map_or_else(zero, |t| t.price.into()),
        cum_qty: o.cum_qty.into(),
        commission_asset: Some(trade.map_or_else(|| o.fee_asset.clone(), |t| t.fee_asset.clone())),
        commission: Some(trade.map_or_else(zero, |t| t.fee.into())),
        trade_time: o.updated_ms,
        trade_id: trade.map_or(0, trade_id) as i64,
        reduce_only: o.reduce_only,
        position_side: position_side(venue, o.side == Side::Buy),
        realised_profit: trade.map_or_else(zero, |t| t.realised_pnl.into()),
    }
}
