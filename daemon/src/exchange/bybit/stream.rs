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

use super::models;
use super::parse::{parse_order, quote_of};
use crate::exchange::stream::{self, Dedup, OrderFeed, Reconnect, SeenIds, Socket};
use crate::exchange::{sign, AccountEvent, Category, Side};

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
    let mut seen = Seen::default();
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
    seen: &mut Seen,
    stop: &CancellationToken,
) -> Result<(), String> {
    let url = format!("{}/v5/private", s.ws_url.trim_end_matches('/'));
    let mut ws = stream::connect(&url).await?;
    let expires = Utc::now().timestamp_millis() + (s.clock_offset_ms)() + 10_000;
    let signature = sign::hmac_sha256_hex(&s.api_secret, &format!("GET/realtime{expires}"));
    let auth = models::OpRequest::new("auth", "auth", vec![json!(s.api_key), json!(expires), json!(signature)]);
    ws.send(Message::Text(auth.text().into())).await.map_err(|e| e.to_string())?;
    expect_success(&mut ws, "auth").await?;
    let mut topics = vec!["order", "execution", "wallet"];
    if s.category == Category::Linear {
        topics.push("position");
    }
    let subscribe = models::OpRequest::new("subscribe", "subscribe", topics.iter().map(|t| json!(t)).collect());
    ws.send(Message::Text(subscribe.text().into())).await.map_err(|e| e.to_string())?;
    expect_success(&mut ws, "subscribe").await?;
    feed.connected.store(true, Ordering::Relaxed);
    info!(%url, ?topics, "private stream subscribed");
    let ping = models::OpRequest::new("ping", "ping", Vec::new()).text();
    stream::pinged(&mut ws, stop, PING_EVERY, &ping, |text| {
        on_message(&text, s.category, feed, seen);
        std::future::ready(Ok(()))
    })
    .await
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
        let Ok(answer) = serde_json::from_str::<models::OpResponse>(&text) else { continue };
        if answer.op == op {
            return if answer.success == Some(true) {
                Ok(())
            } else {
                // The venue's own words (ret_msg, or retMsg as it also says).
                Err(format!("{op} refused by the venue: {}", answer.ret_msg))
            };
        }
    }
}

/// What the stream remembers between messages: order pushes by update,
/// executions by id.
#[derive(Default)]
pub struct Seen {
    pub orders: Dedup,
    pub executions: SeenIds,
}

fn on_message(text: &str, category: Category, feed: &OrderFeed, seen: &mut Seen) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        warn!("the private stream sent something that is not JSON");
        return;
    };
    // Wallet and position pushes are not read: the balance sync and
    // reconciliation ask for them; executions are read for what the venue
    // does on its own (forced closes, funding).
    match v.get("topic").and_then(Value::as_str) {
        Some("order") => on_orders(v, category, feed, &mut seen.orders),
        Some("execution") => on_executions(v, feed, &mut seen.executions),
        _ => {}
    }
}

fn on_orders(v: Value, category: Category, feed: &OrderFeed, seen: &mut Dedup) {
    let push: models::Push<models::Order> = match serde_json::from_value(v) {
        Ok(p) => p,
        Err(e) => return warn!("an order push that does not parse: {e}"),
    };
    for item in &push.data {
        let category = item.category.as_deref().and_then(Category::parse).unwrap_or(category);
        match parse_order(item, category) {
            Ok(order) => {
                let updated = item.updated_time.parse().unwrap_or(0);
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

/// Executions the venue made without an order of ours: ADL, takeover
/// liquidation, delisting, and funding fees.
fn on_executions(v: Value, feed: &OrderFeed, seen: &mut SeenIds) {
    let push: models::Push<models::Execution> = match serde_json::from_value(v) {
        Ok(p) => p,
        Err(e) => return warn!("an execution push that does not parse: {e}"),
    };
    for e in push.data {
        if let Some(event) = account_event(&e) {
            if seen.first(&e.exec_id) {
                let _ = feed.account.send(event);
            }
        }
    }
}

/// The account event an execution is, if the venue made it on its own.
pub fn account_event(e: &models::Execution) -> Option<AccountEvent> {
    let asset = e.fee_currency.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| quote_of(&e.symbol).to_owned());
    if e.exec_type == models::ExecType::Funding {
        return Some(AccountEvent::Funding {
            symbol: e.symbol.clone(),
            amount: e.exec_fee.or_zero(),
            asset,
            venue_id: e.exec_id.clone(),
        });
    }
    let kind = e.exec_type.forced_close()?;
    Some(AccountEvent::ForcedClose {
        kind,
        symbol: e.symbol.clone(),
        side: match e.side {
            models::Side::Buy => Side::Buy,
            models::Side::Sell => Side::Sell,
        },
        qty: e.exec_qty.or_zero(),
        price: e.exec_price.or_zero(),
        fee: e.exec_fee.or_zero(),
        fee_asset: asset,
        venue_id: e.exec_id.clone(),
    })
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
        let mut seen = Seen::default();
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
        let mut seen = Seen::default();
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

    /// A conditional order passes Untriggered → Triggered → New → Filled:
    /// nothing before Filled ends it (Triggered is "instantaneous state for
    /// conditional orders from Untriggered to New", not a cancel).
    #[test]
    fn a_conditional_order_is_live_until_it_fills() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Seen::default();
        let filled: Value = serde_json::from_str(&fixture("ws_account_order_filled.json")).unwrap();
        let mut statuses = Vec::new();
        for (i, word) in ["Untriggered", "Triggered", "New", "Filled"].into_iter().enumerate() {
            let mut push = filled.clone();
            push["data"][0]["orderStatus"] = json!(word);
            push["data"][0]["stopOrderType"] = json!("Stop");
            push["data"][0]["triggerPrice"] = json!("16000");
            push["data"][0]["updatedTime"] = json!((1_672_364_262_000_i64 + i as i64).to_string());
            if word != "Filled" {
                push["data"][0]["cumExecQty"] = json!("0");
                push["data"][0]["cumExecValue"] = json!("0");
                push["data"][0]["cumExecFee"] = json!("0");
                push["data"][0]["avgPrice"] = json!("");
            }
            on_message(&push.to_string(), Category::Linear, &feed, &mut seen);
            while let Ok(o) = rx.try_recv() {
                statuses.push(o.status);
            }
        }
        assert_eq!(statuses.last(), Some(&OrderStatus::Filled));
        assert!(
            statuses[..statuses.len() - 1].iter().all(|s| !s.is_final()),
            "no status before Filled ends the order: {statuses:?}"
        );
    }

    /// A forced close arrives as an execution of the venue's own (Bybit
    /// BustTrade / AdlTrade): an account event, published once.
    #[test]
    fn a_forced_close_execution_is_an_account_event_once() {
        let feed = OrderFeed::default();
        let mut rx = feed.account.subscribe();
        let mut seen = Seen::default();
        let path = format!("{}/../tests/fixtures/venues/bybit/ws.private.execution.json", env!("CARGO_MANIFEST_DIR"));
        let mut push: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        push["data"][0]["execType"] = json!("BustTrade");
        push["data"][0]["createType"] = json!("CreateByTakeOver_PassThrough");
        on_message(&push.to_string(), Category::Linear, &feed, &mut seen);
        on_message(&push.to_string(), Category::Linear, &feed, &mut seen);
        match rx.try_recv().unwrap() {
            AccountEvent::ForcedClose { kind, qty, .. } => {
                assert_eq!((kind, qty), (crate::exchange::ForcedClose::Liquidation, rust_decimal::Decimal::new(5, 1)))
            }
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err(), "the repeat is dropped");
    }

    #[test]
    fn the_recorded_wallet_and_kline_pushes_are_not_orders() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Seen::default();
        on_message(&fixture("ws_account_wallet.json"), Category::Linear, &feed, &mut seen);
        on_message(&fixture("ws_kline.json"), Category::Linear, &feed, &mut seen);
        on_message("not json", Category::Linear, &feed, &mut seen);
        assert!(rx.try_recv().is_err());
    }
}
