//! `EXCHANGE=bybit` end to end, as real processes, against the exchange
//! double speaking Bybit V5: signed requests, fills from the private
//! stream, and one API key's order limit shared by three engines and a
//! ccxt script that botai knows nothing of but what the venue's headers
//! tell it. Everything is counted at the exchange.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use botai_tests::{free_port, repo_root, Daemon, TestDatabase};
use chrono::Utc;
use serde_json::Value;

const KEY: &str = "live-test-key";
const SECRET: &str = "live-test-secret";

struct Run {
    filled: usize,
    orders_at_exchange: usize,
    refused_10006: u64,
    refused_110007: u64,
    lookups: usize,
    ccxt_codes: Value,
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Six hours of the shipped month replayed in about a minute by one ML
/// manager, traded by three engines on Bybit V5 (the double), while ccxt
/// cancels `ccxt_rate` times a second on the same key.
async fn run(venue: &str, speed: u32, ccxt_rate: f64) -> Run {
    let db = TestDatabase::migrated(&[]).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let replay: Vec<(&str, String)> = vec![
        ("REPLAY_FROM", "2022-01-10T06:00:00Z".into()),
        ("REPLAY_TO", "2022-01-10T12:00:00Z".into()),
        ("REPLAY_SPEED", speed.to_string()),
        ("REPLAY_EPOCH", (Utc::now() + chrono::Duration::seconds(5)).to_rfc3339()),
        ("MAX_SIGNAL_AGE", "600".into()),
        ("ORDER_SIZE", "fraction:0.02".into()),
        // Positions held a minute of market time after their last signal:
        // many open and close over the six hours.
        ("HOLD_FOR", "60".into()),
        // The engine is under test, not the model's economics: the old fixed
        // threshold, below the round trip cost, so that it trades.
        ("SIGNAL_THRESHOLD", "0.0004".into()),
        ("BALANCE_UPDATE_INTERVAL", "2".into()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
    ];
    let mut double_env = replay.clone();
    double_env.extend([
        ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
        ("PAPER_FILL_DELAY", "0.2".to_owned()),
        // Bybit's limits for this key: 10 orders a second, and the IP's 600 per 5 s.
        ("PAPER_ORDER_LIMIT", "10/1s".to_owned()),
        ("PAPER_GLOBAL_LIMIT", "600/5s".to_owned()),
    ]);
    let double = Daemon::start("double", &db.name, &["paper-exchange"], &double_env);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let mut engine_env = replay.clone();
    if venue == "bybit" {
        engine_env.extend([
            ("EXCHANGE", "bybit".to_owned()),
            ("BYBIT_REST_URL", url.clone()),
            ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
            ("BYBIT_API_KEY", KEY.to_owned()),
            ("BYBIT_API_SECRET", SECRET.to_owned()),
            ("BYBIT_CATEGORY", "spot".to_owned()),
        ]);
    } else {
        engine_env.extend([
            ("EXCHANGE", "binance".to_owned()),
            ("BINANCE_REST_URL", url.clone()),
            ("BINANCE_API_KEY", KEY.to_owned()),
            ("BINANCE_API_SECRET", SECRET.to_owned()),
        ]);
    }
    let engines: Vec<Daemon> = (1..=3)
        .map(|i| {
            let mut env = engine_env.clone();
            env.push(("ENGINE_ID", format!("bybit-engine-{i}")));
            Daemon::start(&format!("engine-{i}"), &db.name, &["run", "--mode=core"], &env)
        })
        .collect();
    let started = if venue == "bybit" { "private stream subscribed" } else { "user data stream connected" };
    for e in &engines {
        e.wait_for_output(started, Duration::from_secs(30)).await;
    }
    // `botai status` shows each engine's venue clock and stream (after a heartbeat).
    tokio::time::sleep(Duration::from_secs(2)).await;
    // (It exits non-zero: no ML manager runs yet, an open critical alert.)
    let (_, status) = botai(&db.name, &[], &["status"]);
    let engines_shown: Vec<&str> =
        status.lines().filter(|l| l.contains(&format!(" {venue} ")) && l.contains(" ms ")).collect();
    assert_eq!(engines_shown.len(), 3, "each engine's clock offset:\n{status}");
    assert!(engines_shown.iter().all(|l| l.ends_with("connected")), "streams connected:\n{status}");
    // The ML manager's signals name the exchange they are for.
    let ml = Daemon::start("ml", &db.name, &["run", "--mode=ml"], &engine_env);
    let ccxt = {
        let (url, rate) = (url.clone(), ccxt_rate.to_string());
        // As long as the replay: six hours of bars at `speed`.
        let seconds = (6.0 * 3600.0 / f64::from(speed)).to_string();
        std::thread::spawn(move || {
            // The script that spends the key's order limit speaks Bybit; on
            // Binance the engines share the key among themselves only.
            if rate == "0" {
                return Value::Null;
            }
            let out = std::process::Command::new(repo_root().join(".cache/venv/bin/python"))
                .arg(repo_root().join("tests/ccxt/bybit.py"))
                .args([url.as_str(), KEY, SECRET, "steady", rate.as_str(), &seconds])
                .output()
                .expect("ccxt");
            assert!(out.status.success(), "ccxt failed: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        })
    };
    let (status, output) = ml.wait(Duration::from_secs(180));
    assert!(status.success(), "{output}");
    let client = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM botai.signals s WHERE NOT EXISTS \
                 (SELECT 1 FROM botai.orders o WHERE o.signal_id = s.signal_id AND o.status <> 'claimed')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} signals never settled; engine 1:\n{}", engines[0].output());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ccxt_codes = ccxt.join().unwrap()["codes"].clone();
    let orders = get(&format!("{url}/botai-double/orders")).await;
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders.as_array().unwrap() {
        *per_id.entry(o["link_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 1), "an order placed twice at the exchange");
    let filled = orders.as_array().unwrap().iter().filter(|o| o["status"] == "Filled").count();
    let state = get(&format!("{url}/botai-double/state")).await;
    let requests = get(&format!("{url}/botai-double/requests")).await;
    let requests = requests.as_array().unwrap();
    assert_eq!(state["rejections"]["banned"], 0);
    for r in requests {
        assert_ne!(r["signature_valid"], false, "{r}");
    }
    // Lookups of one order by its client order id (not the listings of
    // open orders reconciliation asks for).
    let lookups = requests
        .iter()
        .filter(|r| {
            (r["path"] == "/v5/order/realtime" && r["query"].as_str().is_some_and(|q| q.contains("orderLinkId=")))
                || (r["path"] == "/fapi/v1/order" && r["method"] == "GET")
        })
        .count();
    let refused = |code: i64| {
        requests.iter().filter(|r| r["code"] == code || (code == 10006 && r["status"] == 429)).count() as u64
    };
    let refused_110007 = refused(110007) + refused(-2019);
    let botai_filled: i64 =
        client.query_one("SELECT count(*) FROM botai.orders WHERE status = 'filled'", &[]).await.unwrap().get(0);
    assert_eq!(botai_filled as usize, filled, "botai's filled orders are the exchange's");
    drop(engines);
    Run { filled, orders_at_exchange: per_id.len(), refused_10006: refused(10006), refused_110007, lookups, ccxt_codes }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_engines_and_a_ccxt_script_share_one_key_and_the_venue_refuses_nothing() {
    let r = run("bybit", 240, 2.0).await;
    println!(
        "  {} orders at the exchange, {} filled; refused: 10006 × {}, 110007 × {}; order lookups {}; ccxt {}",
        r.orders_at_exchange, r.filled, r.refused_10006, r.refused_110007, r.lookups, r.ccxt_codes
    );
    // Spot: a position bought is sold once a balance snapshot shows its
    // coins (seconds of wall time, minutes of this fast replay).
    assert!(r.filled >= 10, "the engines traded: {}", r.filled);
    assert_eq!((r.refused_10006, r.refused_110007), (0, 0), "the venue refused nothing, to botai or to ccxt");
    assert!(r.lookups * 10 < r.orders_at_exchange, "fills came from the private stream: {} lookups", r.lookups);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_engines_trade_binance_usdm_through_the_same_trait() {
    let r = run("binance", 240, 0.0).await;
    println!(
        "  Binance: {} orders at the exchange, {} filled; refused: 429 × {}, -2019 × {}; order lookups {}",
        r.orders_at_exchange, r.filled, r.refused_10006, r.refused_110007, r.lookups
    );
    // USDT-margined: a BUY targets a long, a SELL a short.
    assert!(r.filled > 20, "the engines traded: {}", r.filled);
    assert_eq!((r.refused_10006, r.refused_110007), (0, 0), "the venue refused nothing");
    assert!(r.lookups * 10 < r.orders_at_exchange, "fills came from the user data stream: {} lookups", r.lookups);
}

/// Runs `botai <args>` to the end: (success, stdout and stderr).
fn botai(db: &str, env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let d = Daemon::start(args[0], db, args, env);
    let (status, output) = d.wait(Duration::from_secs(120));
    (status.success(), output)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_checks_the_key_and_trades_by_hand_through_botai() {
    let db = TestDatabase::migrated(&[]).await;
    let start_double = |withdraw: bool| {
        let port = free_port();
        let env = vec![
            ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
            ("PAPER_API_KEY", KEY.to_owned()),
            ("PAPER_API_SECRET", SECRET.to_owned()),
            ("PAPER_KEY_CAN_WITHDRAW", withdraw.to_string()),
        ];
        (Daemon::start("double", &db.name, &["paper-exchange"], &env), format!("http://127.0.0.1:{port}"))
    };
    let (double, url) = start_double(false);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let env = |url: &str, secret: &str| {
        vec![
            ("EXCHANGE", "bybit".to_owned()),
            ("BYBIT_REST_URL", url.to_owned()),
            ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
            ("BYBIT_API_KEY", KEY.to_owned()),
            ("BYBIT_API_SECRET", secret.to_owned()),
        ]
    };

    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["exchange", "check"]);
    assert!(ok, "{out}");
    for line in
        ["clock", "key          accepted", "permissions  ContractTrade", "balance      USDT 10000", "ready to trade"]
    {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains(SECRET), "the secret never printed");
    let (ok, out) = botai(&db.name, &env(&url, "wrong-secret"), &["exchange", "check"]);
    assert!(!ok && out.contains("10004"), "a wrong secret fails the check:\n{out}");

    // A key that can withdraw is refused unless the operator says so.
    let (withdrawing, wurl) = start_double(true);
    withdrawing.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let (ok, out) = botai(&db.name, &env(&wurl, SECRET), &["exchange", "check"]);
    assert!(!ok && out.contains("can WITHDRAW"), "{out}");
    let (ok, out) = botai(&db.name, &env(&wurl, SECRET), &["exchange", "check", "--allow-withdraw-permission"]);
    assert!(ok && out.contains("WARNING: the key can withdraw"), "{out}");

    // A market order, by hand: booked, funded, filled, recorded — once at the exchange.
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.001"]);
    assert!(ok && out.contains("filled"), "{out}");
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.00001"]);
    assert!(!ok && out.contains("does not meet"), "a quantity off the rules is refused before the venue:\n{out}");
    // A limit order far below the market rests; cancelling it ends it.
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.001", "--price", "10000"]);
    assert!(ok && out.contains("not final yet"), "{out}");
    let client = db.connect().await;
    let id: String = client
        .query_one(
            "SELECT client_order_id FROM botai.orders o JOIN botai.signals s USING (signal_id) \
                    WHERE s.payload->>'limit_price' = '10000'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "cancel", &id]);
    assert!(ok, "{out}");
    let orders = get(&format!("{url}/botai-double/orders")).await;
    let statuses: Vec<(String, String)> = orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["kind"].as_str().unwrap().to_owned(), o["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        statuses,
        vec![("Market".to_owned(), "Filled".to_owned()), ("Limit".to_owned(), "Cancelled".to_owned())],
        "at the exchange: the market order once, filled; the limit order cancelled; nothing else"
    );
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["orders"]);
    assert!(ok && out.contains("filled") && out.contains(&id), "{out}");
    let committed: i64 = client
        .query_one("SELECT count(*) FROM botai.reservations WHERE status IN ('committed', 'retired')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(committed, 1, "the market order's funds were reserved and committed");
}

/// The ML manager on Bybit's live klines (`MARKET_DATA=bybit`, the double
/// serving the replay's bars as Bybit does: REST history, then the public
/// stream) signals exactly what it signals on the replay of the same bars
/// — through a dropped stream, whose missing bars come back over REST.
#[tokio::test(flavor = "multi_thread")]
async fn the_ml_manager_on_live_bybit_klines_signals_as_on_the_replay() {
    let (live_db, replay_db) = (TestDatabase::migrated(&[]).await, TestDatabase::migrated(&[]).await);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let epoch = Utc::now() + chrono::Duration::seconds(6);
    let replay: Vec<(&str, String)> = vec![
        ("REPLAY_FROM", "2022-01-11T00:00:00Z".into()),
        ("REPLAY_TO", "2022-01-11T03:00:00Z".into()),
        ("REPLAY_SPEED", "240".into()),
        ("REPLAY_EPOCH", epoch.to_rfc3339()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
        // The same signals on both feeds is under test: a threshold they pass.
        ("SIGNAL_THRESHOLD", "0.0004".into()),
    ];
    let mut double_env = replay.clone();
    double_env.push(("PAPER_LISTEN", format!("127.0.0.1:{port}")));
    let double = Daemon::start("double", &live_db.name, &["paper-exchange"], &double_env);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let mut live_env = replay.clone();
    live_env.extend([
        ("MARKET_DATA", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.clone()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_CATEGORY", "linear".to_owned()),
    ]);
    let mut live = Daemon::start("ml-live", &live_db.name, &["run", "--mode=ml"], &live_env);
    let on_replay = Daemon::start("ml-replay", &replay_db.name, &["run", "--mode=ml"], &replay);
    live.wait_for_output("kline stream subscribed", Duration::from_secs(30)).await;
    // Halfway through the replayed window: the venue drops the stream.
    let halfway = epoch + chrono::Duration::milliseconds(90 * 60_000 / 240);
    tokio::time::sleep((halfway - Utc::now()).to_std().unwrap_or_default()).await;
    reqwest::Client::new()
        .post(format!("{url}/botai-double/faults"))
        .json(&serde_json::json!({"drop_streams": true}))
        .send()
        .await
        .unwrap();
    let (status, output) = on_replay.wait(Duration::from_secs(120));
    assert!(status.success(), "{output}");
    // The live manager never ends by itself: give it the last bar's push, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    live.kill();
    let out = live.output();
    // Reconnected; the bars closed meanwhile came over REST (a window with
    // a gap is skipped, so a missing bar would cost the next 121 bars' signals).
    assert!(out.matches("kline stream subscribed").count() >= 2, "the stream was dropped and taken up again:\n{out}");
    let signals = |db: tokio_postgres::Client| async move {
        let rows = db.query("SELECT payload->>'bar_time', direction FROM botai.signals ORDER BY 1", &[]).await.unwrap();
        rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>()
    };
    let (from_live, from_replay) = (signals(live_db.connect().await).await, signals(replay_db.connect().await).await);
    println!("  signals: live {}, replay {}", from_live.len(), from_replay.len());
    assert!(from_replay.len() > 10, "the replay signalled: {}", from_replay.len());
    // The live manager subscribed before the replayed window opened (the
    // double's market clock starts a few seconds early): from the window's
    // first signal on, the two agree signal for signal.
    let first = from_replay.first().map(|s| s.0.clone()).unwrap_or_default();
    let live_in_window: Vec<_> = from_live.iter().filter(|s| s.0 >= first).cloned().collect();
    assert_eq!(live_in_window, from_replay, "the same bars, the same signals");
}

/// An order the venue accepted but whose answer was lost (10016) is asked
/// about on the retry before anything else: even when the signal is by then
/// older than MAX_SIGNAL_AGE it is followed to its fill, never recorded
/// expired while it exists at the exchange.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_whose_answer_was_lost_is_looked_up_not_expired_however_old() {
    let db = TestDatabase::migrated(&[]).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let replay: Vec<(&str, String)> = vec![
        ("REPLAY_FROM", "2022-01-10T06:00:00Z".into()),
        ("REPLAY_SPEED", "60".into()),
        ("MAX_SIGNAL_AGE", "2".into()),
        ("ORDER_SIZE", "notional:100".into()),
    ];
    let mut double_env = replay.clone();
    double_env.extend([
        ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
    ]);
    let double = Daemon::start("double", &db.name, &["paper-exchange"], &double_env);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let mut env = replay.clone();
    env.extend([
        ("EXCHANGE", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.clone()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_API_KEY", KEY.to_owned()),
        ("BYBIT_API_SECRET", SECRET.to_owned()),
        ("ENGINE_ID", "engine-u".to_owned()),
    ]);
    let engine = Daemon::start("engine", &db.name, &["run", "--mode=core"], &env);
    engine.wait_for_output("trading engine started", Duration::from_secs(30)).await;
    // The venue takes the next order and answers 10016: the outcome is unknown.
    reqwest::Client::new()
        .post(format!("{url}/botai-double/faults"))
        .json(&serde_json::json!({"ret_10016_after_accept": 1}))
        .send()
        .await
        .unwrap();
    let client = db.connect().await;
    let price: f64 = get(&format!("{url}/v5/market/tickers?category=spot&symbol=BTCUSDT")).await["result"]["list"][0]
        ["lastPrice"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    client
        .execute(
            "SELECT botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
               'strategy', 'lost-answer', 'timestamp', now()::text, 'price', $1::float8, 'exchange', 'bybit'))",
            &[&price],
        )
        .await
        .unwrap();
    // The retry comes 5 s later, when the signal is older than MAX_SIGNAL_AGE (2 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        let row = client.query_opt("SELECT status FROM botai.orders WHERE status <> 'claimed'", &[]).await.unwrap();
        if let Some(row) = row {
            break row.get::<_, String>(0);
        }
        assert!(Instant::now() < deadline, "the order never settled:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let orders = get(&format!("{url}/botai-double/orders")).await;
    let at_exchange: Vec<&Value> = orders.as_array().unwrap().iter().collect();
    assert_eq!(at_exchange.len(), 1, "the order went out once");
    assert_eq!(at_exchange[0]["status"], "Filled");
    assert_eq!(status, "filled", "botai records what the venue did, not 'expired':\n{}", engine.output());
}

/// An order the venue took while its answer was lost, and the venue then
/// unable to answer any lookup (every request a 503): the order stays
/// claimed, never expired or rejected, its funds stay held, and after
/// UNKNOWN_ORDER_ALERT a critical error is reported (an alert). Once the
/// venue answers again, the order is recorded as what it did: filled.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_unknown_past_its_alert_time_is_critical_and_keeps_its_funds_held() {
    let db = TestDatabase::migrated(&[]).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let replay: Vec<(&str, String)> = vec![
        ("REPLAY_FROM", "2022-01-10T06:00:00Z".into()),
        ("REPLAY_SPEED", "60".into()),
        ("ORDER_SIZE", "notional:100".into()),
        ("UNKNOWN_ORDER_ALERT", "3".into()),
    ];
    let mut double_env = replay.clone();
    double_env.extend([
        ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
    ]);
    let double = Daemon::start("double", &db.name, &["paper-exchange"], &double_env);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let mut env = replay.clone();
    env.extend([
        ("EXCHANGE", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.clone()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_API_KEY", KEY.to_owned()),
        ("BYBIT_API_SECRET", SECRET.to_owned()),
        ("ENGINE_ID", "engine-u".to_owned()),
    ]);
    let engine = Daemon::start("engine", &db.name, &["run", "--mode=core"], &env);
    engine.wait_for_output("trading engine started", Duration::from_secs(30)).await;
    let faults = |f: Value| {
        let url = url.clone();
        async move {
            reqwest::Client::new().post(format!("{url}/botai-double/faults")).json(&f).send().await.unwrap();
        }
    };
    faults(serde_json::json!({"ret_10016_after_accept": 1})).await;
    let client = db.connect().await;
    let price: f64 = get(&format!("{url}/v5/market/tickers?category=spot&symbol=BTCUSDT")).await["result"]["list"][0]
        ["lastPrice"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    client
        .execute(
            "SELECT botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
               'strategy', 'unknown', 'timestamp', now()::text, 'price', $1::float8, 'exchange', 'bybit'))",
            &[&price],
        )
        .await
        .unwrap();
    // Once the venue has the order, it answers nothing any more.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{url}/botai-double/orders")).await.as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the order never reached the venue:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults(serde_json::json!({"error_5xx": 1_000_000})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert: String = loop {
        let row = client
            .query_opt(
                "SELECT error FROM botai.component_errors WHERE is_critical AND error LIKE '%outcome is unknown%'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "no critical error for the unknown order:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status: String = client.query_one("SELECT status FROM botai.orders", &[]).await.unwrap().get(0);
    assert_eq!(status, "claimed", "an order of unknown outcome is neither expired nor rejected");
    let held: rust_decimal::Decimal = client
        .query_one("SELECT reserved FROM botai.balances_status WHERE exchange = 'bybit' AND asset = 'USDT'", &[])
        .await
        .unwrap()
        .get(0);
    let notional: rust_decimal::Decimal =
        client.query_one("SELECT planned_qty * planned_price FROM botai.orders", &[]).await.unwrap().get(0);
    assert!(held >= notional, "its funds stay held: {held} USDT for an order of {notional}");
    // The venue answers again: the order is recorded as what it did.
    faults(serde_json::json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: String = client.query_one("SELECT status FROM botai.orders", &[]).await.unwrap().get(0);
        if status == "filled" {
            break;
        }
        assert_eq!(status, "claimed", "{}", engine.output());
        assert!(Instant::now() < deadline, "the order never settled:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("  held {held} USDT while unknown; reported: {alert}");
}

/// The double for one test, as its own process: (process, its URL).
async fn start_double(db: &str, extra: &[(&str, String)]) -> (Daemon, String) {
    let port = free_port();
    let mut env = vec![
        ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
        ("PAPER_FILL_DELAY", "0.1".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let double = Daemon::start("double", db, &["paper-exchange"], &env);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    (double, format!("http://127.0.0.1:{port}"))
}

/// Sets the double's account up as a venue could have it (venue::AccountSetup).
async fn account(url: &str, setup: Value) {
    let r = reqwest::Client::new().post(format!("{url}/botai-double/account")).json(&setup).send().await.unwrap();
    assert!(r.status().is_success(), "{setup}: {}", r.text().await.unwrap());
}

fn bybit_env(url: &str, category: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EXCHANGE", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.to_owned()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_API_KEY", KEY.to_owned()),
        ("BYBIT_API_SECRET", SECRET.to_owned()),
        ("BYBIT_CATEGORY", category.to_owned()),
    ]
}

fn binance_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EXCHANGE", "binance".to_owned()),
        ("BINANCE_REST_URL", url.to_owned()),
        ("BINANCE_WS_URL", format!("{}/private/ws", url.replacen("http", "ws", 1))),
        ("BINANCE_API_KEY", KEY.to_owned()),
        ("BINANCE_API_SECRET", SECRET.to_owned()),
    ]
}

/// Issue 27 items 2 and 1 (hedge mode): a unified account that borrowed
/// 200 USDT shows walletBalance 10200 and spotBorrow 200; botai counts the
/// 10000 of its own. An account in hedge mode is refused by `botai exchange
/// check` in one line, on either venue.
#[tokio::test(flavor = "multi_thread")]
async fn exchange_check_counts_no_borrowed_money_and_refuses_hedge_mode() {
    let db = TestDatabase::migrated(&[]).await;
    let (_double, url) = start_double(&db.name, &[]).await;
    account(&url, serde_json::json!({"borrow": {"USDT": "200"}})).await;
    let (ok, out) = botai(&db.name, &bybit_env(&url, "spot"), &["exchange", "check"]);
    assert!(ok, "{out}");
    assert!(out.contains("balance      USDT 10000 (available 10000"), "own funds only, not the 10200:\n{out}");

    account(&url, serde_json::json!({"hedge_mode": true, "borrow": {}})).await;
    let (ok, out) = botai(&db.name, &bybit_env(&url, "linear"), &["exchange", "check"]);
    assert!(!ok && out.contains("hedge mode"), "Bybit hedge mode refused:\n{out}");
    let (ok, out) = botai(&db.name, &binance_env(&url), &["exchange", "check"]);
    assert!(!ok && out.contains("hedge mode"), "Binance hedge mode refused:\n{out}");
    account(&url, serde_json::json!({"hedge_mode": false})).await;
    let (ok, out) = botai(&db.name, &binance_env(&url), &["exchange", "check"]);
    assert!(ok, "one-way mode passes:\n{out}");
}

/// Issue 27 items 1 and 3 on Binance, through a real engine: a position
/// the venue holds (0.002 @ 50,000, opened elsewhere) is adopted at the
/// venue's entry price, not the ticker; an ADL then a liquidation pushed by
/// the user stream close it in the book, with their fees, in the day's P&L,
/// each with a critical alert — and a repeated push books nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_venue_position_is_adopted_at_its_entry_and_forced_closes_are_booked() {
    let db = TestDatabase::migrated(&[]).await;
    let (double, url) = start_double(&db.name, &[]).await;
    account(&url, serde_json::json!({"position": ["BTCUSDT", "0.002", "50000"]})).await;
    let mut env = binance_env(&url);
    env.push(("ENGINE_ID", "venue-engine".to_owned()));
    let engine = Daemon::start("engine", &db.name, &["run", "--mode=core"], &env);
    engine.wait_for_output("user data stream connected", Duration::from_secs(30)).await;
    let client = db.connect().await;
    let position = || async {
        client
            .query_opt(
                "SELECT qty, avg_entry FROM botai.positions WHERE exchange = 'binance' AND symbol = 'BTCUSDT'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| (r.get::<_, rust_decimal::Decimal>(0), r.get::<_, Option<rust_decimal::Decimal>>(1)))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while position().await.map(|p| p.0) != Some("0.002".parse().unwrap()) {
        assert!(Instant::now() < deadline, "never adopted; engine:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(position().await, Some(("0.002".parse().unwrap(), Some("50000".parse().unwrap()))), "the venue's entry");

    account(
        &url,
        serde_json::json!({"forced_close": {"kind": "adl", "symbol": "BTCUSDT", "qty": "0.001",
        "price": "41000", "fee": "0.5"}}),
    )
    .await;
    account(
        &url,
        serde_json::json!({"forced_close": {"kind": "liquidation", "symbol": "BTCUSDT", "qty": "0.001",
        "price": "39000", "fee": "0.3"}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let booked: i64 = client.query_one("SELECT count(*) FROM botai.venue_trades", &[]).await.unwrap().get(0);
        if booked == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{booked} forced closes booked; engine:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trades: Vec<(String, rust_decimal::Decimal, rust_decimal::Decimal)> = client
        .query("SELECT kind, realized_pnl, fee_quote FROM botai.venue_trades ORDER BY trade_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(
        trades,
        vec![("adl".to_owned(), d("-9"), d("0.5")), ("liquidation".to_owned(), d("-11"), d("0.3"))],
        "each closed 0.001 against the venue's entry of 50,000, with its fee"
    );
    assert_eq!(position().await.map(|p| p.0), Some(d("0")), "the book is flat, as the venue");
    let day = client
        .query_one("SELECT realized_pnl, fees FROM botai.pnl_today WHERE exchange = 'binance'", &[])
        .await
        .unwrap();
    assert_eq!((day.get::<_, rust_decimal::Decimal>(0), day.get::<_, rust_decimal::Decimal>(1)), (d("-20"), d("0.8")));
    let alerts: Vec<String> = client
        .query(
            "SELECT error FROM botai.component_errors WHERE is_critical AND error LIKE 'the venue %' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts.iter().any(|m| m.contains("AUTO-DELEVERAGED")) && alerts.iter().any(|m| m.contains("LIQUIDATED")));
    drop(engine);
    drop(double);
}

/// Issue 27 (conditional orders), end to end through botai's CLI on
/// Bybit linear: `botai order buy --trigger` above the market waits at the
/// venue as Untriggered; the last price reaches the trigger; the private
/// stream pushes Triggered, New, then Filled, and the order is recorded
/// filled — a Triggered read as final would have ended it unfilled. On
/// Binance (conditional orders are algo orders there) the command refuses
/// it and nothing reaches the venue.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_order_waits_for_its_trigger_and_is_recorded_filled() {
    let db = TestDatabase::migrated(&[]).await;
    let (_double, url) = start_double(&db.name, &[]).await;
    account(&url, serde_json::json!({"last_price": ["BTCUSDT", "40000"]})).await;
    let order = Daemon::start(
        "order",
        &db.name,
        &["order", "buy", "BTCUSDT", "0.001", "--trigger", "41000"],
        &bybit_env(&url, "linear"),
    );
    let at_venue =
        || async { get(&format!("{url}/botai-double/orders")).await.as_array().cloned().unwrap_or_default() };
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_venue().await.is_empty() {
        assert!(Instant::now() < deadline, "the order never reached the venue:\n{}", order.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let placed = &at_venue().await[0];
    assert_eq!(placed["status"], "Untriggered", "{placed}");
    assert_eq!(placed["trigger"]["direction"], "Rises", "{placed}");
    let client = db.connect().await;
    let recorded = || async {
        client
            .query_opt(
                "SELECT o.status FROM botai.orders o JOIN botai.signals s USING (signal_id) \
                  WHERE s.payload->>'trigger_price' = '41000'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| r.get::<_, String>(0))
    };
    assert_eq!(recorded().await.as_deref(), Some("claimed"), "not final while it waits");
    account(&url, serde_json::json!({"last_price": ["BTCUSDT", "41000"]})).await;
    let (status, out) = order.wait(Duration::from_secs(60));
    assert!(status.success() && out.contains("filled"), "{out}");
    assert!(out.contains("rises to 41000 (now 40000)"), "{out}");
    assert_eq!(recorded().await.as_deref(), Some("filled"));
    let orders = at_venue().await;
    assert_eq!(orders.len(), 1, "one order at the venue: {orders:?}");
    assert_eq!(orders[0]["status"], "Filled");

    let (ok, out) = botai(&db.name, &binance_env(&url), &["order", "buy", "BTCUSDT", "0.001", "--trigger", "42000"]);
    assert!(!ok && out.contains("no conditional orders"), "{out}");
    assert_eq!(at_venue().await.len(), 1, "nothing sent to Binance");
}
