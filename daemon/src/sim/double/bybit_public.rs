//! Bybit V5's market data on the simulated venue, from the bars behind its
//! prices (the replay), on the venue's market clock:
//!
//! - `GET /v5/market/kline` (`category`, `symbol`, `interval` 1, `start`,
//!   `end`, `limit` 1–1000, default 200): rows `[start, open, high, low,
//!   close, volume, turnover]` as strings, newest first, the first one the
//!   candle still open (as Bybit answers);
//! - the public WebSocket `/v5/public/{spot|linear}`: `subscribe` to
//!   `kline.1.{symbol}`; a push each time a candle closes (`confirm: true`)
//!   and about once a second for the candle still open (`confirm: false`);
//!   `{"op":"ping"}` answered with Bybit's public pong (`op` ping, `ret_msg`
//!   pong). Fault `drop_streams` closes every connection.
//!
//! The shipped bars carry volume in quote currency: it is served as
//! `turnover`, and `volume` as turnover / close (base coin).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::market::Bar;
use crate::sim::venue::Venue;

const MINUTE: TimeDelta = TimeDelta::minutes(1);

/// `[start, open, high, low, close, volume, turnover]`, as Bybit lists a kline.
fn row(bar: &Bar) -> Value {
    let volume = if bar.close > 0.0 { bar.volume / bar.close } else { 0.0 };
    json!([
        bar.ts.timestamp_millis().to_string(),
        bar.open.to_string(),
        bar.high.to_string(),
        bar.low.to_string(),
        bar.close.to_string(),
        volume.to_string(),
        bar.volume.to_string()
    ])
}

/// The candle open at `now`: its bar's open, nothing traded yet.
fn open_candle(bar: &Bar) -> Bar {
    Bar { ts: bar.ts, open: bar.open, high: bar.open, low: bar.open, close: bar.open, volume: 0.0 }
}

/// How many bars have closed at `now`, and the candle open at `now`.
fn at(bars: &[Bar], now: DateTime<Utc>) -> (usize, Option<Bar>) {
    let complete = bars.partition_point(|b| b.ts + MINUTE <= now);
    (complete, bars.get(complete).filter(|b| b.ts <= now).map(open_candle))
}

/// `GET /v5/market/kline`: Ok(result) or Err((retCode, retMsg)).
pub fn kline(venue: &Venue, q: &BTreeMap<String, String>) -> Result<Value, (i64, String)> {
    let symbol = q.get("symbol").ok_or((10001, "params error: symbol is required".to_owned()))?;
    let category = q.get("category").map_or("linear", String::as_str);
    if !["spot", "linear"].contains(&category) {
        return Err((10001, format!("params error: category {category} is not traded here")));
    }
    match q.get("interval").map(String::as_str) {
        Some("1") => {}
        Some(other) => {
            return Err((10001, format!("params error: interval {other}: the double serves 1-minute klines")))
        }
        None => return Err((10001, "params error: interval is required".to_owned())),
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 200,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return Err((10001, "params error: limit must be 1 to 1000".to_owned())),
    };
    let ms = |k: &str| -> Result<Option<i64>, (i64, String)> {
        q.get(k).map(|v| v.parse::<i64>().map_err(|_| (10001, format!("params error: {k} is not a time")))).transpose()
    };
    let (start, end) = (ms("start")?, ms("end")?);
    let bars = venue.market_bars(symbol).ok_or((10001, format!("params error: symbol {symbol} is not traded")))?;
    let (complete, open) = at(bars, venue.market_now());
    let list: Vec<Value> = open
        .iter()
        .chain(bars[..complete].iter().rev())
        .skip_while(|b| end.is_some_and(|e| b.ts.timestamp_millis() > e))
        .take_while(|b| start.is_none_or(|s| b.ts.timestamp_millis() >= s))
        .take(limit)
        .map(row)
        .collect();
    Ok(json!({"category": category, "symbol": symbol, "list": list}))
}

pub async fn stream(State(venue): State<Arc<Venue>>, Path(category): Path<String>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve(venue, category, socket))
}

fn push(topic: &str, bar: &Bar, confirm: bool, now_ms: i64) -> String {
    let r = row(bar);
    json!({"topic": topic, "type": "snapshot", "ts": now_ms, "data": [{
        "start": bar.ts.timestamp_millis(), "end": (bar.ts + MINUTE).timestamp_millis() - 1, "interval": "1",
        "open": r[1], "high": r[2], "low": r[3], "close": r[4], "volume": r[5], "turnover": r[6],
        "confirm": confirm, "timestamp": now_ms}]})
    .to_string()
}

async fn serve(venue: Arc<Venue>, category: String, mut socket: WebSocket) {
    let generation = venue.stream_generation();
    let conn_id = uuid::Uuid::new_v4().to_string();
    // symbol → the start of the last candle pushed as closed.
    let mut topics: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut open_every = tokio::time::interval(Duration::from_secs(1));
    loop {
        let mut push_open = false;
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                let reply = handle(&venue, &category, &conn_id, &mut topics, &text);
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {}
            _ = open_every.tick() => push_open = true,
        }
        if venue.stream_generation() != generation {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        let now = venue.market_now();
        for (symbol, last) in topics.iter_mut() {
            let Some(bars) = venue.market_bars(symbol) else { continue };
            let topic = format!("kline.1.{symbol}");
            let now_ms = Utc::now().timestamp_millis();
            let (complete, open) = at(bars, now);
            let from = last.map_or(complete, |l| bars.partition_point(|b| b.ts <= l));
            for bar in &bars[from.min(complete)..complete] {
                *last = Some(bar.ts);
                if socket.send(Message::Text(push(&topic, bar, true, now_ms).into())).await.is_err() {
                    return;
                }
            }
            if let Some(open) = open.filter(|_| push_open) {
                if socket.send(Message::Text(push(&topic, &open, false, now_ms).into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn handle(
    venue: &Venue,
    category: &str,
    conn_id: &str,
    topics: &mut BTreeMap<String, Option<DateTime<Utc>>>,
    text: &str,
) -> Value {
    let request: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let op = request.get("op").and_then(Value::as_str).unwrap_or_default();
    let req_id = request.get("req_id").cloned().unwrap_or(json!(""));
    let reply = |success: bool, message: &str| json!({"success": success, "ret_msg": message, "conn_id": conn_id, "req_id": req_id, "op": op});
    match op {
        "ping" => reply(true, "pong"),
        "subscribe" => {
            let args: Vec<&str> = request
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut symbols = Vec::new();
            for topic in &args {
                match topic.strip_prefix("kline.1.") {
                    Some(symbol) if venue.market_bars(symbol).is_some() => symbols.push(symbol.to_owned()),
                    _ => return reply(false, &format!("Invalid symbol :[{topic}]")),
                }
            }
            // Pushes of closed candles start after the one closed last.
            let now = venue.market_now();
            for symbol in symbols {
                let last = venue
                    .market_bars(&symbol)
                    .and_then(|bars| bars[..bars.partition_point(|b| b.ts + MINUTE <= now)].last().map(|b| b.ts));
                topics.insert(symbol, last);
            }
            reply(true, if category == "spot" { "subscribe" } else { "" })
        }
        _ => reply(false, &format!("Invalid op: {op}")),
    }
}
