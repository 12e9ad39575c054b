//! Three engines on one API key, with a ccxt script that botai knows
//! nothing of but what the venue's headers tell it: the venue refuses
//! nothing, on Bybit and on Binance.

use std::collections::BTreeMap;
use std::time::Instant;

use botai_tests::{repo_root, TestDatabase};
use chrono::Utc;

use super::*;

struct Run {
    filled: usize,
    orders_at_exchange: usize,
    refused_10006: u64,
    refused_110007: u64,
    lookups: usize,
    ccxt_codes: Value,
}

/// Six hours of the shipped month replayed in about a minute by one ML
/// manager, traded by three engines on Bybit V5 (the double), while ccxt
/// cancels `ccxt_rate` times a second on the same key.
async fn run(venue: &str, speed: u32, ccxt_rate: f64) -> Run {
    let db = TestDatabase::migrated(&[]).await;
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
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
        ("PAPER_FILL_DELAY", "0.2".to_owned()),
        // Bybit's limits for this key: 10 orders a second, and the IP's 600 per 5 s.
        ("PAPER_ORDER_LIMIT", "10/1s".to_owned()),
        ("PAPER_GLOBAL_LIMIT", "600/5s".to_owned()),
    ]);
    let (_double, url) = Daemon::double("double", &db.name, &double_env).await;
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
