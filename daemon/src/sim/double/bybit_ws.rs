//! Bybit V5's private WebSocket stream (`/v5/private`) on the simulated
//! venue, as Bybit documents it:
//!
//! - `{"op":"auth","args":[api_key, expires, signature]}` where the
//!   signature is HMAC-SHA256 (hex) of `GET/realtime{expires}` and
//!   `expires` (ms) is in the future; answered `{"success":…,"op":"auth"}`;
//! - `{"op":"subscribe","args":["order","execution","wallet","position"]}`
//!   (authenticated connections only);
//! - `{"op":"ping"}` answered `{"op":"pong","args":[ms]}`;
//! - pushes `{"id","topic","creationTime","data":[…]}` in the REST shapes.
//!
//! Faults: `drop_streams` closes every connection; `duplicate_pushes` sends
//! a push twice, the copy after the next push (out of order).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};

use super::bybit::{execution, execution_json, order_json, position_json, wallet_account};
use crate::exchange::bybit::models;
use crate::exchange::sign;
use crate::exchange::ForcedClose;
use crate::sim::venue::{Event, Venue};

pub async fn private(State(venue): State<Arc<Venue>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve(venue, socket))
}

struct Connection {
    id: String,
    authenticated: bool,
    topics: BTreeSet<String>,
    push_seq: u64,
    held_back: Option<String>,
}

async fn serve(venue: Arc<Venue>, mut socket: WebSocket) {
    let generation = venue.stream_generation();
    let mut c = Connection {
        id: format!("double-{}", uuid::Uuid::new_v4().simple()),
        authenticated: false,
        topics: BTreeSet::new(),
        push_seq: 0,
        held_back: None,
    };
    // Pushes start from the moment of subscription.
    let mut cursor = venue.event_count();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { return };
                let text = match message {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => return,
                    _ => continue,
                };
                let subscribed_before = !c.topics.is_empty();
                let reply = handle(&venue, &mut c, &text);
                if !subscribed_before && !c.topics.is_empty() {
                    cursor = venue.event_count();
                }
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
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
        if c.topics.is_empty() {
            continue;
        }
        let (events, next) = venue.events_since(cursor);
        cursor = next;
        for event in events {
            let Some(push) = push(&venue, &mut c, &event) else { continue };
            let held = c.held_back.take();
            if venue.take_fault(|f| &mut f.duplicate_pushes) {
                c.held_back = Some(push.clone());
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

fn handle(venue: &Venue, c: &mut Connection, text: &str) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({"success": false, "ret_msg": "Unrecognized request", "conn_id": c.id});
    };
    let op = request.get("op").and_then(Value::as_str).unwrap_or_default();
    let req_id = request.get("req_id").cloned().unwrap_or(json!(""));
    let args: Vec<String> = request
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
        .unwrap_or_default();
    let reply = |success: bool, message: &str| json!({"success": success, "ret_msg": message, "op": op, "conn_id": c.id, "req_id": req_id});
    match op {
        "ping" => {
            json!({"req_id": req_id, "op": "pong", "args": [Utc::now().timestamp_millis().to_string()], "conn_id": c.id})
        }
        "auth" => {
            let [key, expires, signature] = args.as_slice() else {
                return reply(false, "Params Error");
            };
            if *key != venue.settings.api_key {
                return reply(false, "Invalid apikey");
            }
            let Ok(expires_ms) = expires.parse::<i64>() else { return reply(false, "Params Error") };
            if expires_ms <= Utc::now().timestamp_millis() {
                return reply(false, "Params Error: auth expired");
            }
            if !sign::verify_hex(&venue.settings.api_secret, &format!("GET/realtime{expires}"), signature) {
                return reply(false, "Request not authorized");
            }
            c.authenticated = true;
            reply(true, "")
        }
        "subscribe" => {
            if !c.authenticated {
                return reply(false, "Request not authorized");
            }
            for topic in &args {
                let base = topic.split('.').next().unwrap_or_default();
                if !["order", "execution", "wallet", "position"].contains(&base) {
                    return reply(false, &format!("error:handler not found,topic:{topic}"));
                }
            }
            c.topics.extend(args.iter().map(|t| t.split('.').next().unwrap_or_default().to_owned()));
            reply(true, "")
        }
        "unsubscribe" => {
            for topic in &args {
                c.topics.remove(topic.split('.').next().unwrap_or_default());
            }
            reply(true, "")
        }
        _ => reply(false, &format!("unknown op {op:?}")),
    }
}

fn push(venue: &Venue, c: &mut Connection, event: &Event) -> Option<String> {
    let (topic, data) = match event {
        Event::Order(o) => ("order", json!([order_json(o)])),
        Event::Execution(e) => ("execution", json!([execution_json(e)])),
        Event::ForcedClose(e, kind) => {
            // The venue's own execution: its execType and createType say why.
            let mut x = execution(e);
            (x.exec_type, x.create_type) = match kind {
                ForcedClose::Liquidation => (models::ExecType::BustTrade, Some("CreateByTakeOver_PassThrough".into())),
                ForcedClose::Adl => (models::ExecType::AdlTrade, Some("CreateByAdl_PassThrough".into())),
                ForcedClose::Delisting => (models::ExecType::Delivery, Some("CreateBySettle".into())),
            };
            ("execution", json!([serde_json::to_value(&x).unwrap_or(Value::Null)]))
        }
        Event::Wallet => ("wallet", json!([serde_json::to_value(wallet_account(venue)).unwrap_or(Value::Null)])),
        Event::Position(symbol) => {
            let p = venue.positions().remove(symbol).unwrap_or_default();
            ("position", json!([position_json(venue, symbol, &p)]))
        }
    };
    if !c.topics.contains(topic) {
        return None;
    }
    c.push_seq += 1;
    let now = Utc::now().timestamp_millis();
    Some(
        json!({"id": format!("{}-{}", c.id, c.push_seq), "topic": topic, "creationTime": now, "data": data})
            .to_string(),
    )
}
