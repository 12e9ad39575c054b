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
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{quote_of, BinanceClient};
use super::models;
use crate::exchange::stream::{self, Dedup, OrderFeed, Reconnect, SeenIds};
use crate::exchange::{AccountEvent, ExchangeError, ForcedClose, OrderState};

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
    /// Per order: the commission and realised profit so far, and the trades counted.
    fees: HashMap<String, (Decimal, Decimal, Vec<i64>)>,
    fee_age: VecDeque<String>,
    /// The venue's forced-close trades and funding fees published.
    executions: SeenIds,
}

const REMEMBER: usize = 20_000;

impl Seen {
    /// The order's commission and realised profit so far, with this
    /// trade's if it is new.
    fn trade(&mut self, order: &str, trade_id: i64, commission: Decimal, profit: Decimal) -> (Decimal, Decimal) {
        if !self.fees.contains_key(order) {
            self.fee_age.push_back(order.to_owned());
            if self.fee_age.len() > REMEMBER {
                if let Some(old) = self.fee_age.pop_front() {
                    self.fees.remove(&old);
                }
            }
        }
        let (fee, realised, trades) = self.fees.entry(order.to_owned()).or_default();
        if trade_id > 0 && !trades.contains(&trade_id) {
            trades.push(trade_id);
            *fee += commission;
            *realised += profit;
        }
        (*fee, *realised)
    }
}

fn on_event(text: &str, feed: &OrderFeed, seen: &mut Seen) -> Flow {
    let event: models::UserEvent = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            warn!("a user data stream event that does not parse as the venue documents it: {e}");
            return Flow::Go;
        }
    };
    match event {
        models::UserEvent::ListenKeyExpired { .. } => return Flow::KeyExpired,
        models::UserEvent::OrderTradeUpdate { event_time, order, .. } => {
            if let Some(kind) = order.forced_close() {
                forced_close(kind, &order, feed, seen);
                return Flow::Go;
            }
            match parse_order_update(&order, event_time, seen) {
                Ok((order, updated)) => {
                    if seen.orders.fresh_order(&order, updated) {
                        let _ = feed.updates.send(order);
                    } else {
                        debug!(client_order_id = %order.client_order_id, "dropped a repeated or older order event");
                    }
                }
                Err(e) => warn!("an ORDER_TRADE_UPDATE that does not parse: {e}"),
            }
        }
        models::UserEvent::AccountUpdate { event_time, transaction_time, update } => {
            // Balances and positions: the balance sync and reconciliation
            // ask for them; a funding fee is booked from here.
            if update.reason == models::AccountUpdateReason::FundingFee {
                let symbol = match update.positions.as_slice() {
                    [one] => Some(one.symbol.clone()),
                    _ => None,
                };
                for b in &update.balances {
                    let Some(change) = b.balance_change.known() else { continue };
                    let id = format!("funding:{}:{}:{}", b.asset, transaction_time.max(event_time), change);
                    if !change.is_zero() && seen.executions.first(&id) {
                        // bc is the wallet's change: a fee paid is negative.
                        let _ = feed.account.send(AccountEvent::Funding {
                            symbol: symbol.clone().unwrap_or_default(),
                            amount: -change,
                            asset: b.asset.clone(),
                            venue_id: id,
                        });
                    }
                }
            }
        }
        models::UserEvent::MarginCall { cross_wallet_balance, .. } => {
            warn!(
                cross_wallet_balance = %cross_wallet_balance.or_zero(),
                "the venue sent a MARGIN_CALL: a position is near its liquidation"
            );
        }
        models::UserEvent::Other => {}
    }
    Flow::Go
}

/// A trade of the venue's own order that closes a position by force.
fn forced_close(kind: ForcedClose, o: &models::OrderUpdate, feed: &OrderFeed, seen: &mut Seen) {
    let qty = o.last_qty.or_zero();
    let traded = matches!(o.execution_type, models::ExecutionType::Trade | models::ExecutionType::Calculated);
    if !traded || qty.is_zero() {
        return;
    }
    let id = format!("{}:{}", o.order_id, o.trade_id);
    if !seen.executions.first(&id) {
        return;
    }
    let _ = feed.account.send(AccountEvent::ForcedClose {
        kind,
        symbol: o.symbol.clone(),
        side: o.side.botai(),
        qty,
        price: o.last_price.known().or(o.avg_price.known()).unwrap_or_default(),
        fee: o.commission.map(|c| c.or_zero()).unwrap_or_default(),
        fee_asset: o.commission_asset.clone().unwrap_or_else(|| quote_of(&o.symbol).to_owned()),
        venue_id: id,
    });
}

/// An ORDER_TRADE_UPDATE as the order's state after it, and its time.
fn parse_order_update(
    o: &models::OrderUpdate,
    event_time: i64,
    seen: &mut Seen,
) -> Result<(OrderState, i64), ExchangeError> {
    let exchange_order_id = o.order_id.to_string();
    let commission = match o.execution_type {
        models::ExecutionType::Trade => o.commission.map(|c| c.or_zero()).unwrap_or_default(),
        _ => Decimal::ZERO,
    };
    let (fee, realised) = seen.trade(&exchange_order_id, o.trade_id, commission, o.realised_profit.or_zero());
    let fee_asset =
        o.commission_asset.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| quote_of(&o.symbol).to_owned());
    let updated = if o.trade_time > 0 { o.trade_time } else { event_time };
    let qty = o.qty.required("q").map_err(ExchangeError::Transport)?;
    Ok((
        OrderState {
            exchange_order_id,
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side.botai(),
            status: o.status.botai(),
            qty,
            filled_qty: o.cum_qty.or_zero(),
            avg_price: o.avg_price.or_zero(),
            fee,
            fee_asset,
            venue_reason: None,
            realised_pnl: Some(realised),
        },
        updated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{OrderStatus, Side};
    use serde_json::{json, Value};

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

    /// A liquidation and an ADL as the user stream reports them: the
    /// venue's own order (o LIQUIDATION, x CALCULATED, client id
    /// autoclose-…; adl_autoclose, or the legacy NEW_ADL): account events
    /// with their commission, never order updates, each trade once.
    #[test]
    fn forced_closes_are_account_events_with_their_fee() {
        let feed = OrderFeed::default();
        let (mut orders, mut account) = (feed.updates.subscribe(), feed.account.subscribe());
        let mut seen = Seen::default();
        let mut liquidation = documented();
        for (k, v) in [
            ("c", json!("autoclose-1700000000")),
            ("o", json!("LIQUIDATION")),
            ("x", json!("CALCULATED")),
            ("X", json!("FILLED")),
            ("l", json!("0.001")),
            ("L", json!("38000")),
            ("z", json!("0.001")),
            ("n", json!("0.95")),
            ("N", json!("USDT")),
            ("t", json!(77)),
            ("i", json!(991)),
            ("rp", json!("-12")),
        ] {
            liquidation["o"][k] = v;
        }
        on_event(&liquidation.to_string(), &feed, &mut seen);
        on_event(&liquidation.to_string(), &feed, &mut seen);
        match account.try_recv().unwrap() {
            AccountEvent::ForcedClose { kind, qty, price, fee, side, .. } => assert_eq!(
                (kind, qty, price, fee, side),
                (ForcedClose::Liquidation, Decimal::new(1, 3), Decimal::new(38000, 0), Decimal::new(95, 2), Side::Sell)
            ),
            other => panic!("{other:?}"),
        }
        assert!(account.try_recv().is_err(), "the repeat is dropped");
        let mut adl = liquidation.clone();
        adl["o"]["c"] = json!("adl_autoclose");
        adl["o"]["o"] = json!("MARKET");
        adl["o"]["X"] = json!("NEW_ADL");
        adl["o"]["t"] = json!(78);
        on_event(&adl.to_string(), &feed, &mut seen);
        assert!(matches!(account.try_recv().unwrap(), AccountEvent::ForcedClose { kind: ForcedClose::Adl, .. }));
        assert!(orders.try_recv().is_err(), "forced closes are no order of ours");
    }

    #[test]
    fn a_funding_fee_is_an_account_event() {
        let feed = OrderFeed::default();
        let mut account = feed.account.subscribe();
        let mut seen = Seen::default();
        let funding = json!({"e": "ACCOUNT_UPDATE", "E": 1564745798939i64, "T": 1564745798938i64, "a": {"m": "FUNDING_FEE",
            "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "-0.25"}],
            "P": [{"s": "BTCUSDT", "pa": "0.01", "ep": "40000", "bep": "40000", "cr": "0", "up": "0", "mt": "isolated",
                   "iw": "10", "ps": "BOTH"}]}});
        on_event(&funding.to_string(), &feed, &mut seen);
        on_event(&funding.to_string(), &feed, &mut seen);
        match account.try_recv().unwrap() {
            AccountEvent::Funding { symbol, amount, asset, .. } => {
                assert_eq!((symbol.as_str(), amount, asset.as_str()), ("BTCUSDT", Decimal::new(25, 2), "USDT"))
            }
            other => panic!("{other:?}"),
        }
        assert!(account.try_recv().is_err(), "the repeat is dropped");
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
