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
use botai_daemon::exchange::limits::{SharedLimits, Unlimited, VenueLimits};
use botai_daemon::exchange::sim::double;
use botai_daemon::exchange::sim::venue::{Faults, LimitClass, Venue, VenueSettings};
use botai_daemon::exchange::{Category, Exchange, ExchangeError, OrderRequest, OrderStatus, Side};
use botai_daemon::market::replay::PriceSource;
use botai_tests::{connect, database, repo_root, unique};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

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

/// botai's limits for a fresh exchange name, the double's own numbers.
async fn shared_limits(exchange: &str) -> Arc<SharedLimits> {
    let db = connect().await;
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES \
         ($1, 'global', 600, 5), ($1, 'order', 10, 5), ($1, 'order_query', 50, 1), ($1, 'account', 50, 1)",
        &[&exchange],
    )
    .await
    .unwrap();
    Arc::new(SharedLimits {
        pool: botai_daemon::db::pool(&pg(), "botai-tests exchange", 4).unwrap(),
        exchange: exchange.to_owned(),
        component: format!("exchange:{exchange}"),
        observe: true,
    })
}

async fn until_final(x: &BybitClient, id: &str) -> botai_daemon::exchange::OrderState {
    for _ in 0..200 {
        if let Some(o) = x.order("BTCUSDT", id).await.unwrap() {
            if o.status.is_final() {
                return o;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("order {id} never reached a final state");
}

fn python() -> String {
    repo_root().join(".cache/venv/bin/python").display().to_string()
}

/// Runs tests/ccxt/bybit.py against the double.
fn ccxt(url: &str, args: &[&str]) -> Value {
    let script = repo_root().join("tests/ccxt/bybit.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args([url, KEY, SECRET])
        .args(args)
        .output()
        .expect("the test venv's python (make test installs ccxt into .cache/venv)");
    assert!(out.status.success(), "ccxt {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ccxt printed no JSON ({e}): {:?}", out.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn ccxt_trades_against_the_double_with_nothing_changed_but_its_urls() {
    let d = Double::start(venue_settings(Duration::from_millis(200))).await;
    let url = d.url.clone();
    let result = tokio::task::spawn_blocking(move || ccxt(&url, &["trade"])).await.unwrap();
    println!("ccxt: {result}");
    assert_eq!(result["markets"], serde_json::json!(["BTC/USDT", "BTC/USDT:USDT"]));
    assert_eq!(result["spot_amount_step"], 0.0001);
    assert_eq!(result["perp_amount_step"], 0.001);
    assert_eq!(result["usdt_before"], 10000.0);
    assert_eq!(result["spot_market"]["status"], "closed");
    assert_eq!(result["spot_market"]["filled"], 0.001);
    assert_eq!(result["open_orders"], serde_json::json!(["ccxt-spot-limit"]));
    assert_eq!(result["spot_limit"], "canceled");
    assert_eq!(result["perp_market"], "closed");
    assert_eq!(result["position"]["side"], "long");
    assert_eq!(result["position"]["contracts"], 0.002);
    // A spot BUY pays its fee in BTC: 0.001 - 0.001 × 0.0006.
    assert_eq!(result["btc_after"], 0.0009994);
    // At the exchange: exactly the three orders, each once, each signature verified.
    for id in ["ccxt-spot-market", "ccxt-spot-limit", "ccxt-perp"] {
        assert_eq!(d.count(id), 1, "{id} at the exchange");
    }
    let requests = d.venue.requests();
    let private: Vec<_> = requests.iter().filter(|r| r.signature_valid.is_some()).collect();
    assert!(private.len() >= 12, "ccxt's private calls: {}", private.len());
    for r in &requests {
        assert_eq!((r.status, r.code), (200, 0), "{r:?}");
        assert_ne!(r.signature_valid, Some(false), "{r:?}");
    }
    println!(
        "ccxt made {} requests ({} signed), all answered retCode 0 with verified signatures",
        requests.len(),
        private.len()
    );
}

/// (method, path, parameters) of a logged request, parameters from the
/// query string or the JSON body, values as strings.
fn shape(r: &botai_daemon::exchange::sim::venue::LoggedRequest) -> (String, String, BTreeMap<String, String>) {
    let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
    if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&r.body) {
        for (k, v) in body {
            params.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
    }
    (r.method.clone(), r.path.clone(), params)
}

#[tokio::test(flavor = "multi_thread")]
async fn botai_sends_the_requests_ccxt_sends_for_the_same_actions() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let url = d.url.clone();
    let ccxt_said = tokio::task::spawn_blocking(move || ccxt(&url, &["actions"])).await.unwrap();
    assert_eq!(ccxt_said["done"], true);
    let theirs: Vec<_> = d.venue.requests().iter().map(shape).collect();
    d.venue.clear_requests();

    let spot = d.client("eq", Category::Spot, Arc::new(Unlimited));
    spot.wallet().await.unwrap();
    let perp = d.client("eq", Category::Linear, Arc::new(Unlimited));
    perp.positions().await.unwrap();
    spot.place_order(&order("eq-market-botai", Side::Buy, Decimal::new(1, 3), None)).await.unwrap();
    spot.place_order(&order("eq-limit-botai", Side::Buy, Decimal::new(1, 3), Some(Decimal::new(20_000, 0))))
        .await
        .unwrap();
    spot.cancel_order("BTCUSDT", "eq-limit-botai").await.unwrap();
    let ours: Vec<_> = d.venue.requests().iter().map(shape).collect();
    for r in d.venue.requests() {
        let private = !r.path.starts_with("/v5/market/");
        assert_eq!(r.signature_valid, private.then_some(true), "botai signs what is private, and it verifies: {r:?}");
    }

    // The same action on both sides: the same method, path and parameters
    // (client order ids aside, which differ by construction).
    let pick = |list: &[(String, String, BTreeMap<String, String>)], path: &str, nth: usize| {
        let mut found =
            list.iter().filter(|(_, p, _)| p == path).nth(nth).cloned().unwrap_or_else(|| panic!("no {path} #{nth}"));
        found.2.remove("orderLinkId");
        found
    };
    let mut compared = 0;
    for (path, nth) in [
        ("/v5/account/wallet-balance", 0),
        ("/v5/position/list", 0),
        ("/v5/order/create", 0),
        ("/v5/order/create", 1),
        ("/v5/order/cancel", 0),
    ] {
        let (t, o) = (pick(&theirs, path, nth), pick(&ours, path, nth));
        assert_eq!(t, o, "{path} #{nth}: ccxt (left) and botai (right) differ");
        compared += 1;
    }
    println!("{compared} requests equal to ccxt's: method, path and every parameter");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_keys_are_refused_and_a_skewed_clock_is_measured_again() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let wrong_secret = d.client_with("k", Category::Spot, Arc::new(Unlimited), KEY, "not-the-secret");
    let e = wrong_secret.wallet().await.unwrap_err();
    assert_eq!(e.ret_code(), Some(10004), "{e}");
    let wrong_key = d.client_with("k", Category::Spot, Arc::new(Unlimited), "nobody", SECRET);
    assert_eq!(wrong_key.wallet().await.unwrap_err().ret_code(), Some(10003));
    assert!(!format!("{e}").contains(SECRET), "no secret in an error");

    let x = d.client("k", Category::Spot, Arc::new(Unlimited));
    x.sync_clock().await.unwrap();
    assert!(x.clock_offset_ms().unwrap().abs() < 1000, "the double's clock is ours");
    // As if the offset were measured 20 s wrong: the venue refuses the
    // timestamp (10002), the client measures again and succeeds.
    x.assume_clock_offset_ms(-20_000);
    d.venue.clear_requests();
    x.wallet().await.expect("re-synced and sent once more");
    let codes: Vec<(String, i64)> = d.venue.requests().iter().map(|r| (r.path.clone(), r.code)).collect();
    assert_eq!(
        codes,
        vec![
            ("/v5/account/wallet-balance".to_owned(), 10002),
            ("/v5/market/time".to_owned(), 0),
            ("/v5/account/wallet-balance".to_owned(), 0)
        ]
    );
    assert!(x.clock_offset_ms().unwrap().abs() < 1000);
    // An order refused for its timestamp did nothing, so it is sent again
    // — and exists once.
    x.assume_clock_offset_ms(20_000);
    let placed = x.place_order(&order("skewed", Side::Buy, Decimal::new(1, 3), None)).await.unwrap();
    assert_eq!(placed.status, OrderStatus::New, "an acknowledgement");
    assert_eq!(d.count("skewed"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_whose_answer_is_lost_is_unknown_never_refused() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let x = d.client("u", Category::Spot, Arc::new(Unlimited));
    let qty = Decimal::new(1, 3);
    let cases: [(&str, Faults, bool); 4] = [
        ("hang", Faults { hang_after_accept: 1, ..Faults::default() }, true),
        ("bad-gateway", Faults { error_5xx_after_accept: 1, ..Faults::default() }, true),
        ("ret-10016", Faults { ret_10016_after_accept: 1, ..Faults::default() }, true),
        ("unavailable", Faults { error_5xx: 1, ..Faults::default() }, false),
    ];
    for (id, faults, placed) in cases {
        d.venue.set_faults(faults);
        let e = x.place_order(&order(id, Side::Buy, qty, None)).await.unwrap_err();
        assert!(matches!(e, ExchangeError::Transport(_)), "{id}: outcome unknown, got {e:?}");
        assert_eq!(d.count(id), usize::from(placed), "{id} at the exchange");
        // The lookup tells what happened.
        let found = x.order("BTCUSDT", id).await.unwrap();
        assert_eq!(found.is_some(), placed, "{id}: the lookup");
        if placed {
            // A retry with the same id never trades twice.
            let again = x.place_order(&order(id, Side::Buy, qty, None)).await.unwrap_err();
            assert!(matches!(again, ExchangeError::DuplicateOrder { .. }), "{id}: {again:?}");
            assert_eq!(d.count(id), 1);
        }
    }
    // Refusals are refusals.
    let e = x.place_order(&order("too-big", Side::Buy, Decimal::new(1, 0), None)).await.unwrap_err();
    assert!(matches!(e, ExchangeError::InsufficientBalance { ret_code: 110007, .. }), "{e:?}");
    let e = x.place_order(&order("odd-step", Side::Buy, Decimal::new(12345, 8), None)).await.unwrap_err();
    assert!(matches!(e, ExchangeError::Rejected { ret_code: 10001, .. }), "{e:?}");
    assert_eq!(d.count("too-big") + d.count("odd-step"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn fills_are_confirmed_after_the_acknowledgement() {
    let d = Double::start(venue_settings(Duration::from_millis(300))).await;
    let x = d.client("f", Category::Linear, Arc::new(Unlimited));
    let ack = x.place_order(&order("slow", Side::Buy, Decimal::new(4, 3), None)).await.unwrap();
    assert_eq!((ack.status, ack.filled_qty), (OrderStatus::New, Decimal::ZERO));
    let mut seen = vec![];
    for _ in 0..100 {
        let o = x.order("BTCUSDT", "slow").await.unwrap().unwrap();
        if seen.last() != Some(&o.status) {
            seen.push(o.status);
        }
        if o.status.is_final() {
            assert_eq!(o.filled_qty, Decimal::new(4, 3));
            assert_eq!(o.fee_asset, "USDT");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, vec![OrderStatus::New, OrderStatus::PartiallyFilled, OrderStatus::Filled]);
    let positions = x.positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].size, Decimal::new(4, 3));
    let final_state = until_final(&x, "slow").await;
    assert!(final_state.avg_price > Decimal::new(40_000, 0), "a market BUY pays the slippage");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_venue_s_headers_and_refusals_reach_every_botai_session() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let exchange = unique("bybit_t");
    let limits = shared_limits(&exchange).await;
    let x = d.client(&exchange, Category::Spot, limits.clone());
    let db = connect().await;
    let used = |endpoint: &'static str| {
        let (db, exchange) = (&db, exchange.clone());
        async move {
            db.query_opt("SELECT used FROM botai_rate_usage($1) WHERE endpoint = $2", &[&exchange, &endpoint])
                .await
                .unwrap()
                .map_or(0, |r| r.get::<_, i32>(0))
        }
    };

    // Another process on the same key (ccxt) spends 6 of the 10 order requests.
    let url = d.url.clone();
    let load = tokio::task::spawn_blocking(move || ccxt(&url, &["load", "6"])).await.unwrap();
    assert_eq!(load["codes"], serde_json::json!([110001, 110001, 110001, 110001, 110001, 110001]));
    assert_eq!(used("order").await, 0, "botai knows nothing of them yet");
    // botai cancels once: the venue's answer says 3 are left of 10.
    let e = x.cancel_order("BTCUSDT", "nothing-to-cancel").await.unwrap_err();
    assert_eq!(e.ret_code(), Some(110001));
    assert_eq!(used("order").await, 7, "botai's window took the other process's 6 requests");

    // 10006: botai's window for the endpoint is penalised until the reset.
    d.venue.set_faults(Faults { too_many_visits: 1, ..Faults::default() });
    let e = x.wallet().await.unwrap_err();
    assert!(matches!(e, ExchangeError::RateLimited { ret_code: 10006, .. }), "{e:?}");
    let wait: f64 = db
        .query_one("SELECT botai_rate_try_acquire($1, 'account')", &[&exchange])
        .await
        .unwrap()
        .get::<_, Option<f64>>(0)
        .unwrap_or(-1.0);
    assert!(wait != 0.0, "penalised: a booking now must wait (got {wait})");

    // HTTP 403: the whole exchange waits 10 minutes, and a critical error is recorded.
    d.venue.set_faults(Faults { ban_seconds: Some(600.0), ..Faults::default() });
    let e = x.server_time().await.unwrap_err();
    assert!(matches!(e, ExchangeError::RateLimited { ret_code: 403, .. }), "{e:?}");
    let e = db.query_one("SELECT botai_rate_acquire($1, 'order_query')", &[&exchange]).await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("54000"), "every endpoint waits out the ban: {e}");
    assert!(format!("{e:?}").contains("would have to wait 59"), "{e:?}");
    // And the adapter sends nothing while it lasts.
    let sent = d.venue.requests().len();
    let e = x.wallet().await.unwrap_err();
    assert!(matches!(e, ExchangeError::RateLimited { .. }), "{e:?}");
    assert_eq!(d.venue.requests().len(), sent, "nothing reached the venue during the ban");
    let critical: i64 = db
        .query_one(
            "SELECT count(*) FROM botai.component_errors WHERE component = $1 AND is_critical",
            &[&format!("exchange:{exchange}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(critical, 1);
    assert_eq!(d.venue.rejections().banned, 1);
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

#[tokio::test(flavor = "multi_thread")]
async fn fills_arrive_on_the_private_stream_through_repeats_and_drops() {
    let d = Double::start(venue_settings(Duration::from_millis(300))).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let x = Arc::new(d.client("s", Category::Linear, Arc::new(Unlimited)));
    x.start_stream(stop.clone());
    assert!(connected_within(&*x, Duration::from_secs(5)).await, "authenticated and subscribed");

    // Fills without polling: New, PartiallyFilled, Filled, pushed; no lookup made.
    let mut rx = x.order_updates().expect("the stream is connected");
    x.place_order(&order("pushed-1", Side::Buy, Decimal::new(4, 3), None)).await.unwrap();
    let seen = pushed(&mut rx, "pushed-1", Duration::from_secs(5)).await;
    assert_eq!(
        seen,
        vec![
            (OrderStatus::New, Decimal::ZERO),
            (OrderStatus::PartiallyFilled, Decimal::new(2, 3)),
            (OrderStatus::Filled, Decimal::new(4, 3))
        ]
    );
    let lookups = d.venue.requests().iter().filter(|r| r.path.starts_with("/v5/order/realtime")).count();
    assert_eq!(lookups, 0, "learned from the stream, not by polling");

    // Every push sent twice, the copy late: each state still arrives once, in order.
    d.venue.set_faults(Faults { duplicate_pushes: 50, ..Faults::default() });
    x.place_order(&order("pushed-2", Side::Buy, Decimal::new(4, 3), None)).await.unwrap();
    let seen = pushed(&mut rx, "pushed-2", Duration::from_secs(5)).await;
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        [OrderStatus::New, OrderStatus::PartiallyFilled, OrderStatus::Filled]
    );

    // The venue drops the connection: the client reconnects and subscribes again.
    d.venue.set_faults(Faults { drop_streams: true, ..Faults::default() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(connected_within(&*x, Duration::from_secs(5)).await, "reconnected");
    let mut rx = x.order_updates().unwrap();
    x.place_order(&order("pushed-3", Side::Sell, Decimal::new(8, 3), None)).await.unwrap();
    let seen = pushed(&mut rx, "pushed-3", Duration::from_secs(5)).await;
    assert_eq!(seen.last().map(|s| s.0), Some(OrderStatus::Filled), "{seen:?}");

    // A wrong secret never authenticates.
    let wrong = d.client_with("w", Category::Linear, Arc::new(Unlimited), KEY, "wrong");
    wrong.start_stream(stop.clone());
    assert!(!connected_within(&wrong, Duration::from_secs(1)).await);
}

// --- Binance USDⓈ-M -----------------------------------------------------------

use botai_daemon::exchange::binance::{BinanceClient, BinanceSettings};

impl Double {
    fn binance(&self, name: &str, limits: Arc<dyn VenueLimits>, secret: &str) -> BinanceClient {
        self.binance_with(name, limits, KEY, secret, None)
    }

    fn binance_with(
        &self,
        name: &str,
        limits: Arc<dyn VenueLimits>,
        key: &str,
        secret: &str,
        ws_url: Option<String>,
    ) -> BinanceClient {
        let settings = BinanceSettings {
            rest_url: self.url.clone(),
            sapi_url: self.url.clone(),
            ws_url,
            api_key: key.into(),
            api_secret: secret.into(),
            recv_window: Duration::from_millis(5000),
            timeout: Duration::from_secs(2),
        };
        BinanceClient::new(name, settings, limits).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binance_fills_arrive_on_the_user_data_stream_through_repeats_and_drops() {
    let d = Double::start(venue_settings(Duration::from_millis(300))).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let ws = Some(format!("{}/private/ws", d.url.replacen("http", "ws", 1)));
    let x = Arc::new(d.binance_with("bs", Arc::new(Unlimited), KEY, SECRET, ws.clone()));
    x.start_stream(stop.clone());
    assert!(connected_within(&*x, Duration::from_secs(5)).await, "a listen key, then the stream");
    let listen_keys =
        d.venue.requests().iter().filter(|r| r.path == "/fapi/v1/listenKey" && r.method == "POST").count();
    assert_eq!(listen_keys, 1);

    // Fills without polling: New, PartiallyFilled, Filled, pushed; no lookup made.
    let mut rx = x.order_updates().expect("the stream is connected");
    let placed = x.place_order(&order("bn-pushed-1", Side::Buy, Decimal::new(4, 3), None)).await.unwrap();
    assert_eq!(placed.status, OrderStatus::New, "acknowledged before it fills");
    let seen = pushed(&mut rx, "bn-pushed-1", Duration::from_secs(5)).await;
    assert_eq!(
        seen,
        vec![
            (OrderStatus::New, Decimal::ZERO),
            (OrderStatus::PartiallyFilled, Decimal::new(2, 3)),
            (OrderStatus::Filled, Decimal::new(4, 3))
        ]
    );
    let lookups = d.venue.requests().iter().filter(|r| r.path == "/fapi/v1/order" && r.method == "GET").count();
    assert_eq!(lookups, 0, "learned from the stream, not by polling");

    // Every event sent twice, the copy late: each state arrives once, in
    // order, and the commission of each trade is counted once.
    d.venue.set_faults(Faults { duplicate_pushes: 50, ..Faults::default() });
    let mut all = x.order_updates().unwrap();
    x.place_order(&order("bn-pushed-2", Side::Buy, Decimal::new(4, 3), None)).await.unwrap();
    let seen = pushed(&mut rx, "bn-pushed-2", Duration::from_secs(5)).await;
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        [OrderStatus::New, OrderStatus::PartiallyFilled, OrderStatus::Filled]
    );
    let mut last = None;
    while let Ok(o) = all.try_recv() {
        if o.client_order_id == "bn-pushed-2" {
            last = Some(o);
        }
    }
    let last = last.unwrap();
    let charged: Decimal = d.venue.executions().iter().filter(|e| e.link_id == "bn-pushed-2").map(|e| e.fee).sum();
    assert!(charged > Decimal::ZERO);
    assert_eq!((last.fee, last.fee_asset.as_str()), (charged, "USDT"), "each trade's commission once");

    // The venue drops the connection: a fresh key, a new connection.
    d.venue.set_faults(Faults { drop_streams: true, ..Faults::default() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(connected_within(&*x, Duration::from_secs(5)).await, "reconnected");
    let mut rx = x.order_updates().unwrap();
    x.place_order(&order("bn-pushed-3", Side::Sell, Decimal::new(4, 3), None)).await.unwrap();
    let seen = pushed(&mut rx, "bn-pushed-3", Duration::from_secs(5)).await;
    assert_eq!(seen.last().map(|s| s.0), Some(OrderStatus::Filled), "{seen:?}");

    // A wrong API key gets no listen key, so no stream.
    let wrong = Arc::new(d.binance_with("bw", Arc::new(Unlimited), "not-the-key", SECRET, ws));
    wrong.start_stream(stop.clone());
    assert!(!connected_within(&*wrong, Duration::from_secs(1)).await);
    // A listen key nobody handed out is refused before the upgrade.
    let refused = reqwest::Client::new()
        .get(format!("{}/private/ws/made-up", d.url))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], -1125, "an unknown listen key connects to nothing");
}

fn ccxt_binance(url: &str, args: &[&str]) -> Value {
    let script = repo_root().join("tests/ccxt/binanceusdm.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args([url, KEY, SECRET])
        .args(args)
        .output()
        .expect("the test venv's python");
    assert!(out.status.success(), "ccxt binanceusdm {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ccxt_binanceusdm_trades_against_the_double_with_nothing_changed_but_its_urls() {
    let d = Double::start(venue_settings(Duration::from_millis(200))).await;
    let url = d.url.clone();
    let result = tokio::task::spawn_blocking(move || ccxt_binance(&url, &["trade"])).await.unwrap();
    println!("ccxt binanceusdm: {result}");
    assert_eq!(result["markets"], serde_json::json!(["BTC/USDT:USDT"]));
    assert_eq!(result["amount_step"], 0.001);
    assert_eq!(result["usdt_before"], 10000.0);
    assert_eq!(result["market"], "closed");
    assert_eq!(result["open_orders"], serde_json::json!(["ccxt-limit"]));
    assert_eq!(result["limit"], "canceled");
    assert_eq!(
        (result["position"]["side"].as_str(), result["position"]["contracts"].as_f64()),
        (Some("long"), Some(0.002))
    );
    for id in ["ccxt-market", "ccxt-limit"] {
        assert_eq!(d.count(id), 1, "{id} at the exchange");
    }
    for r in d.venue.requests() {
        assert_eq!((r.status, r.code), (200, 0), "{r:?}");
        assert_ne!(r.signature_valid, Some(false), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn botai_sends_the_binance_requests_ccxt_sends() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let url = d.url.clone();
    assert_eq!(tokio::task::spawn_blocking(move || ccxt_binance(&url, &["actions"])).await.unwrap()["done"], true);
    let theirs: Vec<_> = d.venue.requests().iter().map(shape).collect();
    d.venue.clear_requests();
    let x = d.binance("eq", Arc::new(Unlimited), SECRET);
    x.place_order(&order("eq-market-botai", Side::Buy, Decimal::new(2, 3), None)).await.unwrap();
    x.place_order(&order("eq-limit-botai", Side::Buy, Decimal::new(2, 3), Some(Decimal::new(20_000, 0))))
        .await
        .unwrap();
    x.order("BTCUSDT", "eq-limit-botai").await.unwrap().expect("the resting order");
    x.cancel_order("BTCUSDT", "eq-limit-botai").await.unwrap();
    let ours: Vec<_> = d.venue.requests().iter().map(shape).collect();
    // Values that differ by construction: the ids, the moment, the signature
    // over them, and recvWindow (ccxt's default is 10000 ms, Binance's 5000).
    let pick = |list: &[(String, String, BTreeMap<String, String>)], method: &str, path: &str, nth: usize| {
        let mut found = list
            .iter()
            .filter(|(m, p, _)| m == method && p == path)
            .nth(nth)
            .cloned()
            .unwrap_or_else(|| panic!("no {method} {path} #{nth}"));
        for k in ["newClientOrderId", "origClientOrderId", "timestamp", "signature", "recvWindow"] {
            if found.2.remove(k).is_some() {
                found.2.insert(k.to_owned(), "…".to_owned());
            }
        }
        found
    };
    let mut compared = 0;
    for (method, path, nth) in [
        ("POST", "/fapi/v1/order", 0),
        ("POST", "/fapi/v1/order", 1),
        ("GET", "/fapi/v1/order", 0),
        ("DELETE", "/fapi/v1/order", 0),
    ] {
        assert_eq!(
            pick(&theirs, method, path, nth),
            pick(&ours, method, path, nth),
            "{method} {path} #{nth}: ccxt (left), botai (right)"
        );
        compared += 1;
    }
    for r in d.venue.requests() {
        assert_ne!(r.signature_valid, Some(false), "{r:?}");
    }
    println!("{compared} Binance requests equal to ccxt's: method, path and every parameter");
}

#[tokio::test(flavor = "multi_thread")]
async fn binance_answers_map_to_what_they_mean() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let wrong = d.binance("b", Arc::new(Unlimited), "not-the-secret");
    assert_eq!(wrong.wallet().await.unwrap_err().ret_code(), Some(-1022));
    let x = d.binance("b", Arc::new(Unlimited), SECRET);
    // A skewed clock: -1021, measured again, sent once more.
    x.assume_clock_offset_ms(-30_000);
    x.wallet().await.expect("re-synced");
    assert!(x.clock_offset_ms().unwrap().abs() < 1000);
    // -2019: margin insufficient.
    let e = x.place_order(&order("huge", Side::Buy, Decimal::new(5, 0), None)).await.unwrap_err();
    assert!(matches!(e, ExchangeError::InsufficientBalance { ret_code: -2019, .. }), "{e:?}");
    // -4116 while the first order with the id is open; once it closed,
    // Binance takes the id again — so only a lookup tells a retry apart.
    let resting = order("reused", Side::Buy, Decimal::new(2, 3), Some(Decimal::new(20_000, 0)));
    x.place_order(&resting).await.unwrap();
    let e = x.place_order(&resting).await.unwrap_err();
    assert!(matches!(e, ExchangeError::DuplicateOrder { .. }), "{e:?}");
    x.cancel_order("BTCUSDT", "reused").await.unwrap();
    x.place_order(&resting).await.expect("Binance accepts a closed order's client id again");
    assert_eq!(d.count("reused"), 2, "the double keeps Binance's rule");
    // Unknown outcomes.
    for (id, faults) in [
        ("b-502", Faults { error_5xx_after_accept: 1, ..Faults::default() }),
        ("b-1007", Faults { ret_10016_after_accept: 1, ..Faults::default() }),
        ("b-hang", Faults { hang_after_accept: 1, ..Faults::default() }),
    ] {
        d.venue.set_faults(faults);
        let e = x.place_order(&order(id, Side::Buy, Decimal::new(2, 3), None)).await.unwrap_err();
        assert!(matches!(e, ExchangeError::Transport(_)), "{id}: {e:?}");
        assert_eq!(d.count(id), 1);
        assert!(x.order("BTCUSDT", id).await.unwrap().is_some(), "{id}: the lookup finds it");
    }
    assert!(x.order("BTCUSDT", "never-sent").await.unwrap().is_none(), "-2013 is no order");
}

#[tokio::test(flavor = "multi_thread")]
async fn binance_weights_429_and_418_reach_botai() {
    let d = Double::start(venue_settings(Duration::ZERO)).await;
    let exchange = unique("binance_t");
    let db = connect().await;
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight) VALUES \
         ($1, 'global', 2400, 60, 1), ($1, 'order', 200, 10, 1), ($1, 'account', 2400, 60, 5)",
        &[&exchange],
    )
    .await
    .unwrap();
    let limits = Arc::new(SharedLimits {
        pool: botai_daemon::db::pool(&pg(), "botai-tests binance", 4).unwrap(),
        exchange: exchange.clone(),
        component: format!("exchange:{exchange}"),
        observe: true,
    });
    let x = d.binance(&exchange, limits, SECRET);
    let used = |endpoint: &'static str| {
        let (db, exchange) = (&db, exchange.clone());
        async move {
            db.query_opt("SELECT used FROM botai_rate_usage($1) WHERE endpoint = $2", &[&exchange, &endpoint])
                .await
                .unwrap()
                .map_or(0, |r| r.get::<_, i32>(0))
        }
    };
    // ccxt places two orders on the key; botai's next order answer counts three.
    let url = d.url.clone();
    tokio::task::spawn_blocking(move || ccxt_binance(&url, &["actions"])).await.unwrap();
    let wait: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await.unwrap().get(0);
    assert_eq!(wait, 0.0);
    x.place_order(&order("counted", Side::Buy, Decimal::new(2, 3), None)).await.unwrap();
    assert_eq!(used("order").await, 3, "botai's order window took ccxt's two orders");
    let weight = used("global").await;
    assert!(weight > 10, "and the address's weight ccxt used: {weight}");
    // 429: the endpoint waits Retry-After.
    d.venue.set_faults(Faults { too_many_visits: 1, ..Faults::default() });
    let e = x.wallet().await.unwrap_err();
    assert!(matches!(e, ExchangeError::RateLimited { ret_code: 429, .. }), "{e:?}");
    let next: Option<f64> =
        db.query_one("SELECT botai_rate_try_acquire($1, 'account')", &[&exchange]).await.unwrap().get(0);
    assert!(next != Some(0.0), "penalised after 429: {next:?}");
    // 418: banned; every request of the exchange waits, a critical error recorded.
    d.venue.set_faults(Faults { ban_seconds: Some(600.0), ..Faults::default() });
    let e = x.server_time().await.unwrap_err();
    assert!(matches!(e, ExchangeError::RateLimited { ret_code: 418, .. }), "{e:?}");
    let sent = d.venue.requests().len();
    assert!(x.last_price("BTCUSDT").await.is_err());
    assert_eq!(d.venue.requests().len(), sent, "nothing reached the venue during the ban");
    let critical: i64 = db
        .query_one(
            "SELECT count(*) FROM botai.component_errors WHERE component = $1 AND is_critical",
            &[&format!("exchange:{exchange}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(critical, 1);
}
