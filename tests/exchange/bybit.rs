//! The Bybit V5 adapter against the double, and the double against ccxt's
//! Bybit client.

use botai_daemon::exchange::limits::{SharedLimits, Unlimited};
use botai_daemon::exchange::ExchangeError;
use botai_daemon::sim::venue::Faults;
use botai_tests::{connect, unique};

use super::*;

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
