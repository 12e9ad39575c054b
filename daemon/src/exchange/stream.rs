//! What the venues' private streams share: the feed the engine subscribes
//! to, and the memory that drops repeated and out-of-order order pushes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{AccountEvent, OrderState, OrderStatus};

/// What the stream publishes, and whether it is live.
pub struct OrderFeed {
    pub updates: broadcast::Sender<OrderState>,
    /// Forced closes and funding: what the venue did on its own.
    pub account: broadcast::Sender<AccountEvent>,
    pub connected: AtomicBool,
}

impl Default for OrderFeed {
    fn default() -> OrderFeed {
        OrderFeed {
            updates: broadcast::channel(4096).0,
            account: broadcast::channel(1024).0,
            connected: AtomicBool::new(false),
        }
    }
}

/// The venue's trade ids seen lately, so a repeated push of a forced close
/// or a funding fee is published once.
#[derive(Default)]
pub struct SeenIds {
    order: VecDeque<String>,
}

impl SeenIds {
    const KEEP: usize = 4096;

    /// True the first time `id` is seen (among the last 4,096).
    pub fn first(&mut self, id: &str) -> bool {
        if self.order.iter().any(|s| s == id) {
            return false;
        }
        if self.order.len() == Self::KEEP {
            self.order.pop_front();
        }
        self.order.push_back(id.to_owned());
        true
    }
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket, giving up after 10 s.
pub async fn connect(url: &str) -> Result<Socket, String> {
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "no connection within 10 s".to_owned())?
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(ws)
}

/// Reads a subscribed WebSocket until `stop`, the venue's close, or
/// silence: `ping` goes out every `every`, and no message for two intervals
/// (not even a pong) ends the session with an error; the venue's pings are
/// answered; each text goes to `on_text`, whose error ends the session.
pub async fn pinged<F, Fut>(
    ws: &mut Socket,
    stop: &CancellationToken,
    every: Duration,
    ping: &str,
    mut on_text: F,
) -> Result<(), String>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            _ = ticks.tick() => {
                if last_heard.elapsed() > 2 * every + Duration::from_secs(5) {
                    return Err("no message (not even a pong) for two ping intervals".into());
                }
                ws.send(Message::Text(ping.to_owned().into())).await.map_err(|e| e.to_string())?;
            }
            message = ws.next() => {
                let message = match message {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(m)) => m,
                };
                last_heard = tokio::time::Instant::now();
                match message {
                    Message::Text(text) => on_text(text.to_string()).await?,
                    Message::Ping(p) => ws.send(Message::Pong(p)).await.map_err(|e| e.to_string())?,
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

/// A stream's reconnections: a backoff of 1 s doubling to 30 s, back to
/// 1 s after a session that lasted a minute.
pub struct Reconnect {
    backoff: Duration,
    started: tokio::time::Instant,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect { backoff: Duration::from_secs(1), started: tokio::time::Instant::now() }
    }
}

impl Reconnect {
    pub fn session_starts(&mut self) {
        self.started = tokio::time::Instant::now();
    }

    /// Logs how the session ended and waits out the backoff; false when
    /// `stop` came first.
    pub async fn after(
        &mut self,
        stream: &str,
        url: &str,
        outcome: Result<(), String>,
        stop: &CancellationToken,
    ) -> bool {
        if stop.is_cancelled() {
            return false;
        }
        if self.started.elapsed() > Duration::from_secs(60) {
            self.backoff = Duration::from_secs(1);
        }
        let backoff = self.backoff;
        match outcome {
            Ok(()) => warn!(url, "the {stream} closed; reconnecting in {backoff:?}"),
            Err(e) => warn!(url, "the {stream} failed: {e}; reconnecting in {backoff:?}"),
        }
        self.backoff = (backoff * 2).min(Duration::from_secs(30));
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(backoff) => true,
        }
    }
}

fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::New => 0,
        OrderStatus::PartiallyFilled => 1,
        OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Rejected => 2,
    }
}

/// What the stream has seen, bounded.
#[derive(Default)]
pub struct Dedup {
    orders: HashMap<String, (i64, Decimal, u8)>,
    order_age: VecDeque<String>,
}

const REMEMBER: usize = 20_000;

impl Dedup {
    /// Whether this update is newer than the last one of its order.
    pub fn fresh_order(&mut self, o: &OrderState, updated_ms: i64) -> bool {
        let key = if o.client_order_id.is_empty() { o.exchange_order_id.clone() } else { o.client_order_id.clone() };
        let this = (updated_ms, o.filled_qty, rank(o.status));
        match self.orders.get(&key) {
            Some(last) if *last >= this => false,
            Some(_) => {
                self.orders.insert(key, this);
                true
            }
            None => {
                self.orders.insert(key.clone(), this);
                self.order_age.push_back(key);
                if self.order_age.len() > REMEMBER {
                    if let Some(old) = self.order_age.pop_front() {
                        self.orders.remove(&old);
                    }
                }
                true
            }
        }
    }
}
