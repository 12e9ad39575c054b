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
use crate::exchange::venue::{Event, Execution, Venue, VenueOrder, VenueStatus};
use crate::exchange::Side;

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
            Some(json!({"e": "ORDER_TRADE_UPDATE", "E": now, "T": o.updated_ms, "o": order_update(&o, trade.as_ref())}))
        }
        Event::Wallet => {
            let balances: Vec<Value> = venue
                .wallet()
                .into_iter()
                .map(|(asset, total, _)| json!({"a": asset, "wb": total.to_string(), "cw": total.to_string(), "bc": "0"}))
                .collect();
            Some(json!({"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": "ORDER", "B": balances, "P": []}}))
        }
        Event::Position(symbol) => {
            let p = venue.positions().remove(&symbol).unwrap_or_default();
            let mark = venue.price(&symbol).unwrap_or(p.entry_price);
            let position = json!({"s": symbol, "pa": p.size.to_string(), "ep": p.entry_price.to_string(),
                "bep": p.entry_price.to_string(), "cr": p.realised_pnl.to_string(),
                "up": (p.size * (mark - p.entry_price)).normalize().to_string(), "mt": "cross", "iw": "0",
                "ps": "BOTH"});
            Some(json!({"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": "ORDER", "B": [], "P": [position]}}))
        }
    }
}

/// A trade's id as userTrades gives it (`exec-000000000042` → 42).
fn trade_id(e: &Execution) -> u64 {
    e.exec_id.trim_start_matches("exec-").parse().unwrap_or(0)
}

/// The `o` of an ORDER_TRADE_UPDATE.
fn order_update(o: &VenueOrder, trade: Option<&Execution>) -> Value {
    let status = match o.status {
        VenueStatus::New => "NEW",
        VenueStatus::PartiallyFilled => "PARTIALLY_FILLED",
        VenueStatus::Filled => "FILLED",
        VenueStatus::Cancelled | VenueStatus::PartiallyFilledCanceled => "CANCELED",
        VenueStatus::Rejected => "REJECTED",
    };
    let execution = match (trade, o.status) {
        (Some(_), _) => "TRADE",
        (None, VenueStatus::Cancelled | VenueStatus::PartiallyFilledCanceled) => "CANCELED",
        (None, VenueStatus::Rejected) => "REJECTED",
        (None, _) => "NEW",
    };
    let kind = if o.price.is_some() { "LIMIT" } else { "MARKET" };
    let zero = || "0".to_owned();
    json!({
        "s": o.symbol, "c": o.link_id, "S": if o.side == Side::Buy { "BUY" } else { "SELL" }, "o": kind,
        "f": "GTC", "q": o.qty.to_string(), "p": o.price.map_or_else(zero, |p| p.to_string()),
        "ap": if o.cum_qty.is_zero() { zero() } else { o.avg_price().to_string() }, "sp": "0",
        "x": execution, "X": status, "i": o.seq,
        "l": trade.map_or_else(zero, |t| t.qty.to_string()), "z": o.cum_qty.to_string(),
        "L": trade.map_or_else(zero, |t| t.price.to_string()),
        "N": trade.map_or_else(|| o.fee_asset.clone(), |t| t.fee_asset.clone()),
        "n": trade.map_or_else(zero, |t| t.fee.to_string()),
        "T": o.updated_ms, "t": trade.map_or(0, trade_id),
        "b": "0", "a": "0", "m": o.price.is_some() && trade.is_some(), "R": o.reduce_only,
        "wt": "CONTRACT_PRICE", "ot": kind, "ps": "BOTH", "cp": false, "pP": false, "si": 0, "ss": 0,
        "rp": "0", "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0, "er": "0",
    })
}
