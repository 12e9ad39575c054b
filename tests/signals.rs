//! Signals (SQL_API.md §1) from outside: real sessions, real NOTIFY.

use std::sync::Arc;
use std::time::Duration;

use botai_tests::{connect, expect_sqlstate, listen, python, sessions, unique};
use serde_json::{json, Value};
use tokio::sync::Barrier;

/// The contract, written independently in Python: what a Python client
/// computes for the same signal.
const PYTHON_FINGERPRINT: &str = r#"
import hashlib, json, sys
from datetime import datetime, timezone
for symbol, direction, strategy, ts in json.loads(sys.argv[1]):
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    minute = t.astimezone(timezone.utc).replace(second=0, microsecond=0)
    doc = {"direction": direction.strip().upper(), "strategy": strategy.strip(),
           "symbol": symbol.strip().upper(), "timestamp_minute": minute.isoformat()}
    print(hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16])
"#;

fn python_fingerprints(vectors: &[[&str; 4]]) -> Vec<String> {
    let arg = serde_json::to_string(vectors).unwrap();
    python(PYTHON_FINGERPRINT, &[&arg]).expect("python3").lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn fingerprint_equals_python_for_test_vectors() {
    let vectors: Vec<[&str; 4]> = vec![
        ["BTCUSDT", "BUY", "patchtst", "2025-01-14T10:31:00Z"],
        [" ethusdt ", "sell", "Импульс-v2", "2025-03-01T23:59:00Z"],
        ["SOLUSDT", "BUY", r#"mean "rev" \ v2"#, "2025-01-14T10:31:00Z"],
        ["BTCUSDT", "BUY", "patchtst", "2025-01-14T10:31:59.999999Z"],
        ["BTCUSDT", "SELL", "patchtst", "2025-01-14T13:31:45.5+03:00"],
        ["BTCUSDT", "SELL", "patchtst", "2025-01-14T05:01:07-05:30"],
        ["xrpusdt", "Buy", "Ünïcödé 😀\ttab", "2024-02-29T00:00:01Z"],
    ];
    let expected = python_fingerprints(&vectors);
    assert_eq!(expected.len(), vectors.len());
    let db = connect().await;
    for (v, want) in vectors.iter().zip(&expected) {
        let got: String = db
            .query_one("SELECT botai_fingerprint($1, $2, $3, $4::text::timestamptz)", &[&v[0], &v[1], &v[2], &v[3]])
            .await
            .unwrap()
            .get(0);
        println!("  {v:?} -> {got}");
        assert_eq!(&got, want, "fingerprint of {v:?}");
    }
    // Seconds, sub-seconds and the offset do not matter within a minute.
    assert_eq!(expected[0], expected[3]);
    assert_eq!(expected[4], expected[5]);
}

#[tokio::test]
async fn registered_signal_fingerprint_equals_python() {
    let db = connect().await;
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    // A non-UTC offset, sub-seconds and a non-ASCII strategy, through jsonb.
    let ts = now.with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap()).to_rfc3339();
    let symbol = unique("fp").to_uppercase();
    let signal = json!({"symbol": symbol, "direction": "buy", "strategy": " Импульс \"q\" ", "timestamp": ts});
    let row = db.query_one("SELECT accepted, fingerprint FROM botai_register_signal($1)", &[&signal]).await.unwrap();
    let accepted: bool = row.get(0);
    let fingerprint: String = row.get(1);
    assert!(accepted);
    let want = python_fingerprints(&[[&symbol, "buy", " Импульс \"q\" ", &ts]]);
    assert_eq!(fingerprint, want[0]);
}

#[tokio::test]
async fn thirty_two_sessions_register_one_signal_exactly_one_accepted() {
    const SESSIONS: usize = 32;
    let (_listener, mut notifications) = listen(&["botai_signals"]).await;
    let symbol = unique("race").to_uppercase();
    let sessions = sessions(SESSIONS).await;
    let now: chrono::DateTime<chrono::Utc> = sessions[0].query_one("SELECT now()", &[]).await.unwrap().get(0);
    let signal = Arc::new(json!({
        "symbol": symbol, "direction": "SELL", "strategy": "race", "timestamp": now.to_rfc3339(),
        "signal_strength": 0.8, "exchange": "bybit"
    }));
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut handles = Vec::new();
    for db in sessions {
        let (signal, barrier) = (signal.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            db.query_one("SELECT accepted, reason, signal_id, fingerprint FROM botai_register_signal($1)", &[&*signal])
                .await
                .map(|r| {
                    (r.get::<_, bool>(0), r.get::<_, String>(1), r.get::<_, Option<i64>>(2), r.get::<_, String>(3))
                })
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap().expect("no session may see an error"));
    }
    let accepted: Vec<_> = results.iter().filter(|r| r.0).collect();
    let duplicates = results.iter().filter(|r| !r.0 && r.1 == "duplicate").count();
    println!("  {SESSIONS} sessions: {} accepted, {duplicates} duplicate", accepted.len());
    assert_eq!(accepted.len(), 1);
    assert_eq!(duplicates, SESSIONS - 1);
    let (winner_id, fingerprint) = (accepted[0].2.unwrap(), accepted[0].3.clone());
    assert!(results.iter().all(|r| r.3 == fingerprint));
    assert!(results.iter().all(|r| r.2 == Some(winner_id)), "duplicates report the winner's id");

    // Exactly one notification for this fingerprint.
    let mut ours = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(n)) = tokio::time::timeout_at(deadline, notifications.recv()).await {
        let payload: Value = serde_json::from_str(n.payload()).unwrap();
        if payload["fingerprint"] == json!(fingerprint) {
            assert_eq!(payload["signal_id"], json!(winner_id));
            ours += 1;
        }
    }
    assert_eq!(ours, 1, "one NOTIFY botai_signals for one accepted signal");
    let db = connect().await;
    let stored: i64 =
        db.query_one("SELECT count(*) FROM botai.signals WHERE symbol = $1", &[&symbol]).await.unwrap().get(0);
    assert_eq!(stored, 1);
}

async fn register(db: &tokio_postgres::Client, signal: Value) -> (bool, String) {
    let r = db.query_one("SELECT accepted, reason FROM botai_register_signal($1)", &[&signal]).await.unwrap();
    (r.get(0), r.get(1))
}

fn at(now: chrono::DateTime<chrono::Utc>, offset_seconds: i64) -> String {
    (now + chrono::Duration::seconds(offset_seconds)).to_rfc3339()
}

#[tokio::test]
async fn stale_signals_are_refused() {
    let db = connect().await;
    let window: i64 = db
        .query_one("SELECT extract(epoch FROM current_setting('botai.signal_dedup_window')::interval)::bigint", &[])
        .await
        .unwrap()
        .get(0);
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let symbol = unique("stale").to_uppercase();
    let sig = |ts: String| json!({"symbol": symbol, "direction": "BUY", "strategy": "s", "timestamp": ts});
    assert_eq!(register(&db, sig(at(now, -window - 5))).await, (false, "stale".into()));
    assert_eq!(register(&db, sig(at(now, 120))).await, (false, "stale".into()), "more than 60 s in the future");
    assert_eq!(register(&db, sig(at(now, -window + 30))).await, (true, "accepted".into()));
    let stored: i64 =
        db.query_one("SELECT count(*) FROM botai.signals WHERE symbol = $1", &[&symbol]).await.unwrap().get(0);
    assert_eq!(stored, 1, "stale signals leave no row");
}

#[tokio::test]
async fn cooldown_refuses_the_same_signal_a_minute_later() {
    let db = connect().await;
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let symbol = unique("cool").to_uppercase();
    let sig = |ts: String| json!({"symbol": symbol, "direction": "BUY", "strategy": "cool", "timestamp": ts});
    db.batch_execute("SET botai.signal_cooldown = 90").await.unwrap();
    assert_eq!(register(&db, sig(at(now, -60))).await, (true, "accepted".into()));
    assert_eq!(register(&db, sig(at(now, 0))).await, (false, "cooldown".into()));
    // The other direction is a different signal.
    let sell = json!({"symbol": symbol, "direction": "SELL", "strategy": "cool", "timestamp": at(now, 0)});
    assert_eq!(register(&db, sell).await, (true, "accepted".into()));

    // Without a cooldown, the same pair one minute apart is two signals.
    let other = connect().await;
    let symbol2 = unique("nocool").to_uppercase();
    let sig2 = |ts: String| json!({"symbol": symbol2, "direction": "BUY", "strategy": "cool", "timestamp": ts});
    assert_eq!(register(&other, sig2(at(now, -60))).await, (true, "accepted".into()));
    assert_eq!(register(&other, sig2(at(now, 0))).await, (true, "accepted".into()));
}

#[tokio::test]
async fn recent_signals_are_newest_first() {
    let db = connect().await;
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let symbol = unique("recent").to_uppercase();
    for offset in [-180, -120, -60] {
        let s = json!({"symbol": symbol, "direction": "BUY", "strategy": "r", "timestamp": at(now, offset)});
        assert!(register(&db, s).await.0);
    }
    let rows = db
        .query("SELECT signal_id, signal_ts FROM botai_recent_signals(5) WHERE symbol = $1", &[&symbol])
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
}

#[tokio::test]
async fn bad_signals_are_refused_with_sqlstate_and_nothing_written() {
    let db = connect().await;
    let symbol = unique("bad").to_uppercase();
    let ok = json!({"symbol": symbol, "direction": "BUY", "strategy": "s", "timestamp": "2099-01-01T00:00:00Z"});
    let with = |key: &str, value: Value| {
        let mut s = ok.clone();
        s[key] = value;
        s
    };
    let without = |key: &str| {
        let mut s = ok.clone();
        s.as_object_mut().unwrap().remove(key);
        s
    };
    let cases: Vec<(&str, Value)> = vec![
        ("missing symbol", without("symbol")),
        ("missing direction", without("direction")),
        ("missing strategy", without("strategy")),
        ("missing timestamp", without("timestamp")),
        ("direction HOLD", with("direction", json!("HOLD"))),
        ("empty strategy", with("strategy", json!("   "))),
        ("65-character strategy", with("strategy", json!("s".repeat(65)))),
        ("empty symbol", with("symbol", json!(""))),
        ("null symbol", with("symbol", Value::Null)),
        ("numeric direction", with("direction", json!(1))),
        ("malformed timestamp", with("timestamp", json!("2025-13-01T00:00:00Z"))),
        ("words as timestamp", with("timestamp", json!("yesterday"))),
        ("epoch number as timestamp", with("timestamp", json!(1736850665))),
        ("date without time", with("timestamp", json!("2025-01-14"))),
        ("strength not a number", with("signal_strength", json!("strong"))),
        ("array instead of object", json!([ok.clone()])),
    ];
    for (what, signal) in cases {
        expect_sqlstate(what, db.query_one("SELECT * FROM botai_register_signal($1)", &[&signal]).await, "22023");
    }
    expect_sqlstate(
        "NULL signal",
        db.query_one("SELECT * FROM botai_register_signal($1)", &[&Option::<Value>::None]).await,
        "22004",
    );
    expect_sqlstate(
        "fingerprint with HOLD",
        db.query_one("SELECT botai_fingerprint('BTC', 'HOLD', 's', now())", &[]).await,
        "22023",
    );
    expect_sqlstate(
        "fingerprint at infinity",
        db.query_one("SELECT botai_fingerprint('BTC', 'BUY', 's', 'infinity')", &[]).await,
        "22023",
    );
    expect_sqlstate("recent_signals(0)", db.query("SELECT * FROM botai_recent_signals(0)", &[]).await, "22023");
    // 64 characters is the limit, not an error.
    let long = with("strategy", json!("s".repeat(64)));
    let reason: String = db.query_one("SELECT reason FROM botai_register_signal($1)", &[&long]).await.unwrap().get(0);
    assert_eq!(reason, "stale", "a valid signal from 2099 is merely too far in the future");
    let stored: i64 =
        db.query_one("SELECT count(*) FROM botai.signals WHERE symbol = $1", &[&symbol]).await.unwrap().get(0);
    assert_eq!(stored, 0, "nothing written");
}
