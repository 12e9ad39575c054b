//! Live one-minute bars from Bybit V5 (`MARKET_DATA=bybit`): the public
//! kline stream, with the history the model's window needs filled over REST.
//!
//! At start, `GET /v5/market/kline` (interval 1, the newest 1000, newest
//! first) gives the history; its first row is the candle still open and is
//! left for the stream. Then `{BYBIT_WS_URL}/v5/public/{category}`,
//! `subscribe` to `kline.1.{symbol}`, a ping every 20 s: a push with
//! `confirm: true` is a closed bar; every push's close is the last price. A
//! closed bar that does not follow the last one (pushes lost while the
//! stream was down, or a reconnection) is preceded by the missing bars,
//! fetched over REST for exactly that range. Repeats and older bars are
//! dropped. Reconnects with backoff (1 s doubling to 30 s).
//!
//! Bybit's `volume` is in the base coin and `turnover` in the quote
//! currency; bars carry volume in quote currency (as the shipped data and
//! the model's features do), so `turnover` is the bar's volume.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::SinkExt;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::replay::PriceSource;
use super::Bar;
use crate::exchange::bybit::models;
use crate::exchange::stream::{self, Reconnect};
use crate::exchange::Category;

const MINUTE: TimeDelta = TimeDelta::minutes(1);
/// Bars kept: a day, far more than a feature window.
const KEEP: usize = 1440;
const PING_EVERY: Duration = Duration::from_secs(20);

/// Where the bars come from.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub rest_url: String,
    /// The stream host (`{ws_url}/v5/public/{category}`).
    pub ws_url: String,
    pub category: Category,
    pub symbol: String,
    pub timeout: Duration,
}

/// The bars of one symbol as the venue closes them, shared by the
/// components of a process (the ML manager's feeds, the paper exchange's
/// prices).
pub struct LiveMarket {
    pub symbol: String,
    history: Mutex<VecDeque<Bar>>,
    bars: broadcast::Sender<Bar>,
    price: Mutex<Option<Decimal>>,
    pub connected: AtomicBool,
}

impl LiveMarket {
    /// Starts the stream (it runs until `stop`).
    pub fn start(settings: LiveSettings, stop: CancellationToken) -> anyhow::Result<Arc<LiveMarket>> {
        let http = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let market = Arc::new(LiveMarket {
            symbol: settings.symbol.clone(),
            history: Mutex::new(VecDeque::new()),
            bars: broadcast::channel(4096).0,
            price: Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        tokio::spawn(run(settings, http, market.clone(), stop));
        Ok(market)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, VecDeque<Bar>> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds closed bars (oldest first); the new ones are published.
    fn append(&self, bars: impl IntoIterator<Item = Bar>) -> usize {
        let mut added = 0;
        for bar in bars {
            let mut h = self.history();
            if h.back().is_some_and(|last| bar.ts <= last.ts) {
                continue;
            }
            h.push_back(bar);
            if h.len() > KEEP {
                h.pop_front();
            }
            drop(h);
            *self.price.lock().unwrap_or_else(|p| p.into_inner()) = Decimal::from_f64(bar.close);
            let _ = self.bars.send(bar);
            added += 1;
        }
        added
    }

    fn last_bar(&self) -> Option<DateTime<Utc>> {
        self.history().back().map(|b| b.ts)
    }

    /// A feed of the bars closing from now on, each with the history before it.
    pub fn feed(self: &Arc<Self>) -> LiveFeed {
        let rx = self.bars.subscribe();
        let history = self.history().iter().copied().collect();
        LiveFeed { market: self.clone(), rx, history }
    }
}

impl PriceSource for LiveMarket {
    fn price(&self, symbol: &str) -> Option<Decimal> {
        (symbol == self.symbol).then(|| *self.price.lock().unwrap_or_else(|p| p.into_inner())).flatten()
    }

    fn market_now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Closed bars one at a time, as ReplayFeed gives them.
pub struct LiveFeed {
    market: Arc<LiveMarket>,
    rx: broadcast::Receiver<Bar>,
    history: Vec<Bar>,
}

impl LiveFeed {
    /// The next closed bar: its index in the history, and the history up to
    /// and including it. None once the stream is gone for good.
    pub async fn next(&mut self) -> Option<(usize, &[Bar])> {
        loop {
            match self.rx.recv().await {
                Ok(bar) => {
                    if self.history.last().is_some_and(|last| bar.ts <= last.ts) {
                        continue;
                    }
                    self.history.push(bar);
                    if self.history.len() > 2 * KEEP {
                        self.history.drain(..KEEP);
                    }
                    let i = self.history.len() - 1;
                    return Some((i, &self.history));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!("the ML manager fell {n} bars behind the market; resuming from the latest history");
                    // The newest bar is handed on at once: the bars still in
                    // the channel are older and are skipped above.
                    self.history = self.market.history().iter().copied().collect();
                    if self.history.is_empty() {
                        continue;
                    }
                    let i = self.history.len() - 1;
                    return Some((i, &self.history));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

async fn run(settings: LiveSettings, http: reqwest::Client, market: Arc<LiveMarket>, stop: CancellationToken) {
    let mut reconnect = Reconnect::default();
    let url = format!("{}/v5/public/{}", settings.ws_url.trim_end_matches('/'), settings.category.as_str());
    loop {
        reconnect.session_starts();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = session(&settings, &http, &url, &market, &stop) => outcome,
        };
        market.connected.store(false, Ordering::Relaxed);
        if !reconnect.after("kline stream", &url, outcome, &stop).await {
            return;
        }
    }
}

async fn session(
    s: &LiveSettings,
    http: &reqwest::Client,
    url: &str,
    market: &LiveMarket,
    stop: &CancellationToken,
) -> Result<(), String> {
    // History first (or the gap since the last bar): the stream's first
    // closed bar must find its window.
    let mut bars = klines(s, http, market.last_bar().map(|last| last + MINUTE), None).await?;
    bars.pop(); // the newest row is the candle still open
    let backfilled = market.append(bars);
    let mut ws = stream::connect(url).await?;
    let topic = format!("kline.1.{}", s.symbol);
    let subscribe = models::OpRequest::new("klines", "subscribe", vec![json!(topic)]);
    ws.send(Message::Text(subscribe.text().into())).await.map_err(|e| e.to_string())?;
    market.connected.store(true, Ordering::Relaxed);
    info!(%url, %topic, backfilled, last_bar = ?market.last_bar(), "kline stream subscribed");
    let ping = models::OpRequest::new("ping", "ping", Vec::new()).text();
    let topic = topic.as_str();
    stream::pinged(&mut ws, stop, PING_EVERY, &ping, |text| async move { on_push(s, http, market, topic, &text).await })
        .await
}

async fn on_push(
    s: &LiveSettings,
    http: &reqwest::Client,
    market: &LiveMarket,
    topic: &str,
    text: &str,
) -> Result<(), String> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        warn!("the kline stream sent something that is not JSON");
        return Ok(());
    };
    if v.get("op").is_some() {
        let answer: models::OpResponse =
            serde_json::from_value(v).map_err(|e| format!("an answer that does not parse: {e}"))?;
        if answer.op == "subscribe" && answer.success != Some(true) {
            return Err(format!("subscribe refused by the venue: {}", answer.ret_msg));
        }
        return Ok(());
    }
    if v.get("topic").and_then(Value::as_str) != Some(topic) {
        return Ok(());
    }
    let push: models::PublicPush<Vec<models::WsKline>> = match serde_json::from_value(v) {
        Ok(p) => p,
        Err(e) => {
            warn!("a kline push that does not parse: {e}");
            return Ok(());
        }
    };
    for item in &push.data {
        let bar = match pushed_bar(item) {
            Ok(bar) => bar,
            Err(e) => {
                warn!("a kline push that does not parse: {e}");
                continue;
            }
        };
        if !item.confirm {
            *market.price.lock().unwrap_or_else(|p| p.into_inner()) = Decimal::from_f64(bar.close);
            continue;
        }
        if let Some(last) = market.last_bar() {
            if bar.ts > last + MINUTE {
                // Bars the stream did not bring: exactly that range over REST.
                let missing = klines(s, http, Some(last + MINUTE), Some(bar.ts - MINUTE)).await?;
                let filled = market.append(missing);
                info!(from = %(last + MINUTE), to = %(bar.ts - MINUTE), filled, "filled a gap in the bars over REST");
            }
        }
        market.append([bar]);
    }
    Ok(())
}

fn number(figure: models::Figure, key: &str) -> Result<f64, String> {
    let d = figure.known().ok_or_else(|| format!("{key} is empty"))?;
    d.to_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{key} is not a number: {d}"))
}

fn millis(ms: i64) -> Result<DateTime<Utc>, String> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| format!("{ms} is not a time"))
}

/// A kline push's item as a bar.
fn pushed_bar(item: &models::WsKline) -> Result<Bar, String> {
    Ok(Bar {
        ts: millis(item.start)?,
        open: number(item.open, "open")?,
        high: number(item.high, "high")?,
        low: number(item.low, "low")?,
        close: number(item.close, "close")?,
        volume: number(item.turnover, "turnover")?,
    })
}

/// A REST kline row `[start, open, high, low, close, volume, turnover]`.
fn listed_bar(row: &[String; 7]) -> Result<Bar, String> {
    let field = |i: usize| -> Result<f64, String> {
        row[i].parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("kline field {i}: {:?}", row[i]))
    };
    let start = row[0].parse::<i64>().map_err(|_| format!("kline start {:?}", row[0]))?;
    Ok(Bar {
        ts: millis(start)?,
        open: field(1)?,
        high: field(2)?,
        low: field(3)?,
        close: field(4)?,
        volume: field(6)?,
    })
}

/// One-minute bars from `from` (the newest 1000 without it) up to `to`,
/// oldest first, as the Bybit adapter reads them.
async fn klines(
    s: &LiveSettings,
    http: &reqwest::Client,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<Bar>, String> {
    let rows = crate::exchange::bybit::market::klines(http, &s.rest_url, s.category, &s.symbol, from, to).await?;
    rows.iter().map(listed_bar).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../data/bybit/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn the_recorded_kline_push_and_rest_row_become_bars_with_volume_in_quote() {
        let push = fixture("ws_kline.json");
        let push: models::PublicPush<Vec<models::WsKline>> = serde_json::from_value(push).unwrap();
        let bar = pushed_bar(&push.data[0]).unwrap();
        assert_eq!(bar.ts.timestamp_millis(), 1672324800000);
        assert_eq!((bar.open, bar.high, bar.low, bar.close), (16649.5, 16677.0, 16608.0, 16677.0));
        assert_eq!(bar.volume, 34666.4005, "turnover, the quote currency");
        let rest = fixture("http_get_klines_linear.json");
        let row: [String; 7] = serde_json::from_value(rest["result"]["list"][0].clone()).unwrap();
        let bar = listed_bar(&row).unwrap();
        assert_eq!((bar.ts.timestamp_millis(), bar.close, bar.volume), (1709891679000, 27455.0, 3390000.0));
        let row = ["1", "x", "1", "1", "1", "1", "1"].map(str::to_owned);
        assert!(listed_bar(&row).is_err());
        let empty: models::WsKline = serde_json::from_value(json!({"start": 1, "end": 2, "interval": "1", "open": "",
            "high": "1", "low": "1", "close": "1", "volume": "1", "turnover": "1", "confirm": true, "timestamp": 2}))
        .unwrap();
        assert!(pushed_bar(&empty).is_err(), "an empty open is no price");
    }

    fn bar(minute: i64) -> Bar {
        Bar { ts: millis(minute * 60_000).unwrap(), open: 1.0, high: 1.0, low: 1.0, close: minute as f64, volume: 1.0 }
    }

    #[tokio::test]
    async fn a_feed_gives_each_closed_bar_once_in_order_with_its_history() {
        let market = Arc::new(LiveMarket {
            symbol: "BTCUSDT".into(),
            history: Mutex::new(VecDeque::new()),
            bars: broadcast::channel(16).0,
            price: Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        assert_eq!(market.append([bar(1), bar(2)]), 2);
        let mut feed = market.feed();
        assert_eq!(market.append([bar(2), bar(3), bar(1), bar(4)]), 2, "repeats and older bars dropped");
        let (i, history) = feed.next().await.unwrap();
        assert_eq!((i, history.iter().map(|b| b.close).collect::<Vec<_>>()), (2, vec![1.0, 2.0, 3.0]));
        let (i, history) = feed.next().await.unwrap();
        assert_eq!((i, history[i].close), (3, 4.0));
        assert_eq!(market.price("BTCUSDT"), Decimal::from_f64(4.0));
    }
}
