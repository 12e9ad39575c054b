//! Binance USDⓈ-M: the adapter against the double, and the double against
//! ccxt's binanceusdm client.

use botai_daemon::exchange::binance::{BinanceClient, BinanceSettings};
use botai_daemon::exchange::limits::{SharedLimits, Unlimited};
use botai_daemon::exchange::ExchangeError;
use botai_daemon::sim::venue::Faults;
use botai_tests::{connect, unique};

use super::*;

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
