//! Bybit V5's private WebSocket stream: the account's orders as the venue
//! changes them, so the engine learns of fills without polling.
//!
//! Connects to `{ws_url}/v5/private`, authenticates (HMAC-SHA256 of
//! `GET/realtime{expires}`), subscribes to `order`, `execution` and `wallet`
//! (and `position` for linear; the order pushes are what it reads), pings every 20 s as Bybit asks, and on any
//! failure reconnects with backoff (1 s doubling to 30 s) and subscribes
//! again. Pushes can repeat or arrive out of order: an order update older
//! than, or equal to, the last one seen for that order (by update time,
//! then executed quantity, then state) is dropped. What a disconnection
//! hides, the engine's lookups find: the stream only saves it the polling.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::bybit::parse_order;
use super::stream::{self, Dedup, OrderFeed, Reconnect, Socket};
use super::{sign, Category};

const PING_EVERY: Duration = Duration::from_secs(20);

/// The stream's settings.
pub struct StreamSettings {
    pub ws_url: String,
    pub api_key: String,
    pub api_secret: String,
    pub category: Category,
    /// Venue clock minus ours, for `expires`.
    pub clock_offset_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// Keeps the stream up until `stop`.
pub async fn run(settings: StreamSettings, feed: Arc<OrderFeed>, stop: CancellationToken) {
    let mut reconnect = Reconnect::default();
    let mut seen = Dedup::default();
    loop {
        reconnect.session_starts();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = session(&settings, &feed, &mut seen, &stop) => outcome,
        };
        feed.connected.store(false, Ordering::Relaxed);
        if !reconnect.after("private stream", &settings.ws_url, outcome, &stop).await {
            return;
        }
    }
}

async fn session(
    s: &StreamSettings,
    feed: &OrderFeed,
    seen: &mut Dedup,
    stop: &CancellationToken,
) -> Result<(), String> {
    let url = format!("{}/v5/private", s.ws_url.trim_end_matches('/'));
    let mut ws = stream::connect(&url).await?;
    let expires = Utc::now().timestamp_millis() + (s.clock_offset_ms)() + 10_000;
    let signature = sign::hmac_sha256_hex(&s.api_secret, &format!("GET/realtime{expires}"));
    let auth = json!({"req_id": "auth", "op": "auth", "args": [s.api_key, expires, signature]});
    ws.send(Message::Text(auth.to_string().into())).await.map_err(|e| e.to_string())?;
    expect_success(&mut ws, "auth").await?;
    let mut topics = vec!["order", "execution", "wallet"];
    if s.category == Category::Linear {
        topics.push("position");
    }
    let subscribe = json!({"req_id": "subscribe", "op": "subscribe", "args": topics});
    ws.send(Message::Text(subscribe.to_string().into())).await.map_err(|e| e.to_string())?;
    expect_success(&mut ws, "subscribe").await?;
    feed.connected.store(true, Ordering::Relaxed);
    info!(%url, ?topics, "private stream subscribed");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > 2 * PING_EVERY + Duration::from_secs(5) {
                    return Err("no message (not even a pong) for two ping intervals".into());
                }
                let ping = json!({"req_id": "ping", "op": "ping"});
                ws.send(Message::Text(ping.to_string().into())).await.map_err(|e| e.to_string())?;
            }
            message = ws.next() => {
                let message = match message {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(m)) => m,
                };
                last_heard = tokio::time::Instant::now();
                match message {
                    Message::Text(text) => on_message(&text, s.category, feed, seen),
                    Message::Ping(p) => ws.send(Message::Pong(p)).await.map_err(|e| e.to_string())?,
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

async fn expect_success(ws: &mut Socket, op: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("no answer to {op} within 10 s"))?
            .ok_or_else(|| format!("closed before answering {op}"))?
            .map_err(|e| e.to_string())?;
        let Message::Text(text) = message else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        if v.get("op").and_then(Value::as_str) == Some(op) {
            return if v.get("success").and_then(Value::as_bool) == Some(true) {
                Ok(())
            } else {
                Err(format!("{op} refused: {}", v.get("ret_msg").and_then(Value::as_str).unwrap_or_default()))
            };
        }
    }
}

fn on_message(text: &str, category: Category, feed: &OrderFeed, seen: &mut Dedup) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        warn!("the private stream sent something that is not JSON");
        return;
    };
    // Executions and wallet changes are not read: the order push carries
    // the fill, the balance sync the wallet.
    if v.get("topic").and_then(Value::as_str) != Some("order") {
        return;
    }
    for item in v.get("data").and_then(Value::as_array).into_iter().flatten() {
        let category = item.get("category").and_then(Value::as_str).and_then(Category::parse).unwrap_or(category);
        match parse_order(item, category) {
            Ok(order) => {
                let updated = item.get("updatedTime").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or(0);
                if seen.fresh_order(&order, updated) {
                    let _ = feed.updates.send(order);
                } else {
                    debug!(client_order_id = %order.client_order_id, "dropped a repeated or older order push");
                }
            }
            Err(e) => warn!("an order push that does not parse: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::OrderStatus;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../data/bybit/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_recorded_push_is_published_once_however_often_it_comes() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Dedup::default();
        let push = fixture("ws_account_order_filled.json");
        on_message(&push, Category::Linear, &feed, &mut seen);
        on_message(&push, Category::Linear, &feed, &mut seen);
        let o = rx.try_recv().unwrap();
        assert_eq!((o.client_order_id.as_str(), o.status), ("test-client-order-001", OrderStatus::Filled));
        assert!(rx.try_recv().is_err(), "the repeat was dropped");
    }

    #[test]
    fn an_older_update_arriving_late_is_dropped() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Dedup::default();
        let filled: Value = serde_json::from_str(&fixture("ws_account_order_filled.json")).unwrap();
        let mut partial = filled.clone();
        partial["data"][0]["orderStatus"] = json!("PartiallyFilled");
        partial["data"][0]["cumExecQty"] = json!("0.050");
        partial["data"][0]["updatedTime"] = json!("1672364262450");
        on_message(&filled.to_string(), Category::Linear, &feed, &mut seen);
        on_message(&partial.to_string(), Category::Linear, &feed, &mut seen);
        assert_eq!(rx.try_recv().unwrap().status, OrderStatus::Filled);
        assert!(rx.try_recv().is_err(), "the partial fill came after the fill: dropped");
    }

    #[test]
    fn the_recorded_wallet_and_kline_pushes_are_not_orders() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Dedup::default();
        on_message(&fixture("ws_account_wallet.json"), Category::Linear, &feed, &mut seen);
        on_message(&fixture("ws_kline.json"), Category::Linear, &feed, &mut seen);
        on_message("not json", Category::Linear, &feed, &mut seen);
        assert!(rx.try_recv().is_err());
    }
}
