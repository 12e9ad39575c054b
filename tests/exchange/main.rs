//! The Bybit V5 adapter against the exchange double, and the double against
//! ccxt — a Bybit client nobody here wrote: signatures, clock, outcomes,
//! limits learned from the venue's headers. Counts are taken at the
//! exchange (the double's own book), never from botai's tables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botai_daemon::env::pg::PgSettings;
use botai_daemon::exchange::bybit::{BybitClient, BybitSettings};
use botai_daemon::exchange::limits::VenueLimits;
use botai_daemon::exchange::{Category, Exchange, OrderRequest, OrderStatus, Side};
use botai_daemon::market::replay::PriceSource;
use botai_daemon::sim::double;
use botai_daemon::sim::venue::{LimitClass, Venue, VenueSettings};
use botai_tests::{database, repo_root};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
mod binance;
mod bybit;

const KEY: &str = "test-key-0001";
const SECRET: &str = "test-secret-do-not-log";

struct Price(Mutex<Decimal>);

impl PriceSource for Price {
    fn price(&self, _: &str) -> Option<Decimal> {
        Some(*self.0.lock().unwrap())
    }
    fn market_now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The double on a free port, in this process.
struct Double {
    venue: Arc<Venue>,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn venue_settings(fill_delay: Duration) -> VenueSettings {
    VenueSettings {
        initial: vec![("USDT".into(), Decimal::new(10_000, 0))],
        taker_fee: Decimal::new(6, 4),
        maker_fee: Decimal::new(1, 4),
        slippage_bps: Decimal::new(2, 0),
        fill_delay,
        limits: vec![
            (LimitClass::Ip, (600, Duration::from_secs(5))),
            (LimitClass::Order, (10, Duration::from_secs(5))),
            (LimitClass::OrderQuery, (50, Duration::from_secs(1))),
            (LimitClass::Wallet, (50, Duration::from_secs(1))),
            (LimitClass::Weight, (2400, Duration::from_secs(60))),
            (LimitClass::Orders10s, (300, Duration::from_secs(10))),
            (LimitClass::Orders1m, (1200, Duration::from_secs(60))),
        ],
        ban: Duration::from_secs(600),
        leverage: Decimal::ONE,
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        key_can_withdraw: false,
    }
}

impl Double {
    async fn start(settings: VenueSettings) -> Double {
        let prices = Arc::new(Price(Mutex::new(Decimal::new(40_000, 0))));
        let venue = Arc::new(Venue::new(settings, "BTCUSDT", "BTC", "USDT", prices));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = double::router(venue.clone());
        tokio::spawn(async move {
            axum_serve(listener, router, rx).await;
        });
        Double { venue, url: format!("http://{addr}"), _stop: tx }
    }

    fn client(&self, name: &str, category: Category, limits: Arc<dyn VenueLimits>) -> BybitClient {
        self.client_with(name, category, limits, KEY, SECRET)
    }

    fn client_with(
        &self,
        name: &str,
        category: Category,
        limits: Arc<dyn VenueLimits>,
        key: &str,
        secret: &str,
    ) -> BybitClient {
        let settings = BybitSettings {
            rest_url: self.url.clone(),
            api_key: key.into(),
            api_secret: secret.into(),
            recv_window: Duration::from_millis(5000),
            category,
            timeout: Duration::from_secs(2),
            ws_url: Some(self.url.replacen("http", "ws", 1)),
        };
        BybitClient::new(name, settings, limits).unwrap()
    }

    /// Orders the double holds with this client order id.
    fn count(&self, link_id: &str) -> usize {
        self.venue.orders().iter().filter(|o| o.link_id == link_id).count()
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router, stop: tokio::sync::oneshot::Receiver<()>) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await;
}

fn order(id: &str, side: Side, qty: Decimal, price: Option<Decimal>) -> OrderRequest {
    OrderRequest { client_order_id: id.into(), symbol: "BTCUSDT".into(), side, qty, price, trigger: None }
}

fn pg() -> PgSettings {
    botai_tests::pg_settings(&database())
}

fn python() -> String {
    repo_root().join(".cache/venv/bin/python").display().to_string()
}

/// (method, path, parameters) of a logged request, parameters from the
/// query string or the JSON body, values as strings.
fn shape(r: &botai_daemon::sim::venue::LoggedRequest) -> (String, String, BTreeMap<String, String>) {
    let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
    if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) {
        for (k, v) in body {
            params.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
    }
    (r.method.clone(), r.path.clone(), params)
}

async fn connected_within(x: &dyn Exchange, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if x.stream_connected() == Some(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Every update of `id` pushed within `within`, until its final state.
async fn pushed(
    rx: &mut tokio::sync::broadcast::Receiver<botai_daemon::exchange::OrderState>,
    id: &str,
    within: Duration,
) -> Vec<(OrderStatus, Decimal)> {
    let mut seen = vec![];
    let _ = tokio::time::timeout(within, async {
        loop {
            let o = rx.recv().await.unwrap();
            if o.client_order_id == id {
                seen.push((o.status, o.filled_qty));
                if o.status.is_final() {
                    return;
                }
            }
        }
    })
    .await;
    seen
}
