//! Binance USDⓈ-M's user data stream: the account's orders as the venue
//! changes them, so the engine learns of fills without polling.
//!
//! A listen key from `POST /fapi/v1/listenKey` (the API key only, no
//! signature), a WebSocket to `{ws_url}/{listenKey}`, and `PUT
//! /fapi/v1/listenKey` every 30 minutes to keep the key alive (it lapses
//! after 60). `ORDER_TRADE_UPDATE` events become order updates; the
//! commission of each trade (`n`, per trade id `t`) adds up to the order's
//! fee. `listenKeyExpired`, a failed keep-alive, a close (Binance closes
//! every connection after 24 hours) or ten minutes of silence (the venue
//! pings every three) start over with a fresh key, after a backoff of 1 s
//! doubling to 30 s. Repeated and out-of-order events are dropped as on
//! Bybit (stream.rs); what a disconnection hides, the engine's lookups find.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::binance::{decimal, order_status, quote_of, side, text, BinanceClient};
use super::stream::{self, Dedup, OrderFeed, Reconnect};
use super::{ExchangeError, OrderState};

const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(30 * 60);
const SILENCE: Duration = Duration::from_secs(10 * 60);

/// Keeps the stream up until `stop`.
pub async fn run(client: Arc<BinanceClient>, ws_url: String, feed: Arc<OrderFeed>, stop: CancellationToken) {
    let mut reconnect = Reconnect::default();
    let mut seen = Seen::default();
    loop {
        reconnect.session_starts();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = session(&client, &ws_url, &feed, &mut seen, &stop) => outcome,
        };
        feed.connected.store(false, Ordering::Relaxed);
        if !reconnect.after("user data stream", &ws_url, outcome, &stop).await {
            return;
        }
    }
}

async fn session(
    client: &BinanceClient,
    ws_url: &str,
    feed: &OrderFeed,
    seen: &mut Seen,
    stop: &CancellationToken,
) -> Result<(), String> {
    let key = client.listen_key(false).await.map_err(|e| format!("no listen key: {e}"))?;
    let url = format!("{}/{key}", ws_url.trim_end_matches('/'));
    let mut ws = stream::connect(&url).await?;
    feed.connected.store(true, Ordering::Relaxed);
    info!(url = %ws_url, "user data stream connected");
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE_EVERY);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            _ = keep_alive.tick() => {
                client.listen_key(true).await.map_err(|e| format!("the listen key's keep-alive failed: {e}"))?;
            }
            message = tokio::time::timeout(SILENCE, ws.next()) => {
                let message = match message {
                    Err(_) => return Err(format!("nothing heard for {SILENCE:?}")),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(Some(Ok(m))) => m,
                };
                match message {
                    Message::Text(text) if on_event(&text, feed, seen) == Flow::KeyExpired => {
                        return Err("the listen key expired".into());
                    }
                    Message::Ping(p) => ws.send(Message::Pong(p)).await.map_err(|e| e.to_string())?,
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Flow {
    Go,
    KeyExpired,
}

/// What the stream has seen: order updates (stream.rs) and the commission
/// of each trade, so a repeated trade is not charged twice.
#[derive(Default)]
struct Seen {
    orders: Dedup,
    fees: HashMap<String, (Decimal, Vec<i64>)>,
    fee_age: VecDeque<String>,
}

const REMEMBER: usize = 20_000;

impl Seen {
    /// The order's commission so far, with this trade's if it is new.
    fn fee(&mut self, order: &str, trade_id: i64, commission: Decimal) -> Decimal {
        if !self.fees.contains_key(order) {
            self.fee_age.push_back(order.to_owned());
            if self.fee_age.len() > REMEMBER {
                if let Some(old) = self.fee_age.pop_front() {
                    self.fees.remove(&old);
                }
            }
        }
        let (sum, trades) = self.fees.entry(order.to_owned()).or_default();
        if trade_id > 0 && !trades.contains(&trade_id) {
            trades.push(trade_id);
            *sum += commission;
        }
        *sum
    }
}

fn on_event(text: &str, feed: &OrderFeed, seen: &mut Seen) -> Flow {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        warn!("the user data stream sent something that is not JSON");
        return Flow::Go;
    };
    match v.get("e").and_then(Value::as_str) {
        Some("listenKeyExpired") => Flow::KeyExpired,
        // Balances and positions: the balance sync reads them.
        Some("ORDER_TRADE_UPDATE") => {
            match parse_order_update(&v, seen) {
                Ok((order, updated)) => {
                    if seen.orders.fresh_order(&order, updated) {
                        let _ = feed.updates.send(order);
                    } else {
                        debug!(client_order_id = %order.client_order_id, "dropped a repeated or older order event");
                    }
                }
                Err(e) => warn!("an ORDER_TRADE_UPDATE that does not parse: {e}"),
            }
            Flow::Go
        }
        _ => Flow::Go,
    }
}

/// An ORDER_TRADE_UPDATE as the order's state after it, and its time.
fn parse_order_update(v: &Value, seen: &mut Seen) -> Result<(OrderState, i64), ExchangeError> {
    let o = v.get("o").ok_or_else(|| ExchangeError::Transport("no \"o\" in ORDER_TRADE_UPDATE".into()))?;
    let side = side(&text(o, "S"))?;
    let status = order_status(&text(o, "X"))?;
    let symbol = text(o, "s");
    let exchange_order_id = text(o, "i");
    let trade_id = o.get("t").and_then(Value::as_i64).unwrap_or(0);
    let commission = if text(o, "x") == "TRADE" { decimal(o, "n")? } else { Decimal::ZERO };
    let fee = seen.fee(&exchange_order_id, trade_id, commission);
    let quote = quote_of(&symbol);
    let fee_asset = match text(o, "N") {
        n if n.is_empty() => quote.to_owned(),
        n => n,
    };
    let updated = o.get("T").and_then(Value::as_i64).or_else(|| v.get("E").and_then(Value::as_i64)).unwrap_or(0);
    Ok((
        OrderState {
            exchange_order_id,
            client_order_id: text(o, "c"),
            symbol,
            side,
            status,
            qty: decimal(o, "q")?,
            filled_qty: decimal(o, "z")?,
            avg_price: decimal(o, "ap")?,
            fee,
            fee_asset,
        },
        updated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{OrderStatus, Side};
    use serde_json::json;

    /// The example of "Event: Order Update" in Binance's USDⓈ-M docs (a
    /// trailing stop, NEW), then the same order traded twice.
    fn documented() -> Value {
        json!({"e": "ORDER_TRADE_UPDATE", "E": 1568879465651i64, "T": 1568879465650i64, "o": {
            "s": "BTCUSDT", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC", "q": "0.001",
            "p": "0", "ap": "0", "sp": "7103.04", "x": "NEW", "X": "NEW", "i": 8886774, "l": "0", "z": "0",
            "L": "0", "N": "USDT", "n": "0", "T": 1568879465650i64, "t": 0, "b": "0", "a": "9.91", "m": false,
            "R": false, "wt": "CONTRACT_PRICE", "ot": "TRAILING_STOP_MARKET", "ps": "LONG", "cp": false,
            "AP": "7476.89", "cr": "5.0", "pP": false, "si": 0, "ss": 0, "rp": "0", "V": "EXPIRE_TAKER",
            "pm": "OPPONENT", "gtd": 0}})
    }

    fn trade(v: &Value, status: &str, z: &str, t: i64, n: &str, at: i64) -> String {
        let mut v = v.clone();
        v["o"]["x"] = json!("TRADE");
        v["o"]["X"] = json!(status);
        v["o"]["z"] = json!(z);
        v["o"]["l"] = json!("0.0005");
        v["o"]["ap"] = json!("7100.5");
        v["o"]["t"] = json!(t);
        v["o"]["n"] = json!(n);
        v["o"]["T"] = json!(at);
        v.to_string()
    }

    #[test]
    fn the_documented_event_and_its_trades_become_order_updates_with_their_commission() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Seen::default();
        let new = documented();
        assert_eq!(on_event(&new.to_string(), &feed, &mut seen), Flow::Go);
        let o = rx.try_recv().unwrap();
        assert_eq!((o.client_order_id.as_str(), o.exchange_order_id.as_str()), ("TEST", "8886774"));
        assert_eq!((o.status, o.side, o.qty), (OrderStatus::New, Side::Sell, Decimal::new(1, 3)));
        let partial = trade(&new, "PARTIALLY_FILLED", "0.0005", 11, "0.0014", 1568879465700);
        let filled = trade(&new, "FILLED", "0.001", 12, "0.0014", 1568879465800);
        on_event(&partial, &feed, &mut seen);
        on_event(&partial, &feed, &mut seen);
        on_event(&filled, &feed, &mut seen);
        on_event(&partial, &feed, &mut seen);
        let p = rx.try_recv().unwrap();
        assert_eq!(
            (p.status, p.filled_qty, p.fee),
            (OrderStatus::PartiallyFilled, Decimal::new(5, 4), Decimal::new(14, 4))
        );
        let f = rx.try_recv().unwrap();
        assert_eq!((f.status, f.filled_qty), (OrderStatus::Filled, Decimal::new(1, 3)));
        assert_eq!((f.fee, f.fee_asset.as_str(), f.avg_price), (Decimal::new(28, 4), "USDT", Decimal::new(71005, 1)));
        assert!(rx.try_recv().is_err(), "repeats and the late partial fill were dropped, and charged once");
    }

    #[test]
    fn an_expired_key_starts_over_and_other_events_are_not_orders() {
        let feed = OrderFeed::default();
        let mut rx = feed.updates.subscribe();
        let mut seen = Seen::default();
        // "Event: User Data Stream Expired" (E as the current docs print it, a string).
        let expired = json!({"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"});
        assert_eq!(on_event(&expired.to_string(), &feed, &mut seen), Flow::KeyExpired);
        let account = json!({"e": "ACCOUNT_UPDATE", "E": 1564745798939i64, "T": 1564745798938i64, "a": {"m": "ORDER",
            "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}], "P": []}});
        assert_eq!(on_event(&account.to_string(), &feed, &mut seen), Flow::Go);
        assert_eq!(on_event("not json", &feed, &mut seen), Flow::Go);
        assert!(rx.try_recv().is_err());
    }
}
