//! On a hot standby every botai function that writes refuses with 25006
//! naming the standby, every read answers, the monitor idles; promoted, the
//! monitor starts its rounds and every rate window counts as full for the
//! furthest booking plus one window.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::Client;

use super::cluster::pair;
use super::*;

/// The error of a statement: (SQLSTATE, message).
async fn error_of(db: &Client, sql: &str) -> Option<(String, String)> {
    match db.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => {
            let db_error = e.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
            Some((db_error.code().code().to_owned(), db_error.message().to_owned()))
        }
    }
}

/// Every function of botai that writes, called with arguments that would
/// work on a primary.
const WRITERS: &[(&str, &str)] = &[
    ("botai_check_and_register_signal", "SELECT botai_check_and_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', 'strategy', 's', 'timestamp', now()))"),
    ("botai_register_signal", "SELECT botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', 'strategy', 's', 'timestamp', now()))"),
    ("botai_register_worker", "SELECT botai_register_worker('trading_engine')"),
    ("botai_worker_heartbeat", "SELECT botai_worker_heartbeat('w')"),
    ("botai_unregister_worker", "SELECT botai_unregister_worker('w')"),
    ("botai_enqueue_task", "SELECT botai_enqueue_task('ml_manager', '{}')"),
    ("botai_claim_task", "SELECT * FROM botai_claim_task('w')"),
    ("botai_complete_task", "SELECT botai_complete_task(1, true)"),
    ("botai_rate_acquire", "SELECT botai_rate_acquire('paper', 'order')"),
    ("botai_rate_book", "SELECT botai_rate_book('paper', 'order')"),
    ("botai_rate_try_acquire", "SELECT botai_rate_try_acquire('paper', 'order')"),
    ("botai_rate_penalize", "SELECT botai_rate_penalize('paper', 'order', 1)"),
    ("botai_rate_observe", "SELECT botai_rate_observe('paper', 'order', 10, 50)"),
    ("botai_update_balance", "SELECT botai_update_balance('paper', 'USDT', 10, 10, 0)"),
    ("botai_reserve_balance", "SELECT botai_reserve_balance('paper', 'USDT', 1, 'test')"),
    ("botai_release_reservation", "SELECT botai_release_reservation(gen_random_uuid())"),
    ("botai_commit_reservation", "SELECT botai_commit_reservation(gen_random_uuid())"),
    ("botai_halt", "SELECT botai_halt('drill')"),
    ("botai_resume", "SELECT botai_resume()"),
    ("botai_send_permit", "SELECT botai_send_permit(1)"),
    ("botai_reserve_order", "SELECT * FROM botai_reserve_order(1, 'e', 1, 1, 'USDT', 1)"),
    ("botai_position_reconcile", "SELECT botai_position_reconcile('paper', 'BTCUSDT', 0)"),
    ("botai_mark_price", "SELECT botai_mark_price('paper', 'BTCUSDT', 1)"),
    ("botai_position_adopt", "SELECT botai_position_adopt('paper', 'BTCUSDT', 0, NULL)"),
    (
        "botai_venue_trade",
        "SELECT botai_venue_trade('paper', 'BTCUSDT', 'funding', 'standby-1', NULL, NULL, NULL, 0.1)",
    ),
    ("botai_order_claim", "SELECT * FROM botai_order_claim(1, 'e', 'paper')"),
    ("botai_order_finish", "SELECT botai_order_finish(1, 'e', 'filled')"),
    ("botai_register_component", "SELECT botai_register_component('c')"),
    ("botai_heartbeat", "SELECT botai_heartbeat('c')"),
    ("botai_report_error", "SELECT botai_report_error('c', 'e')"),
    ("botai_alert_channel", "SELECT botai_alert_channel('log', ARRAY['*'])"),
    ("botai_alert_claim", "SELECT * FROM botai_alert_claim('log', 'me')"),
    ("botai_alert_delivered", "SELECT botai_alert_delivered(1, 'log', 'me')"),
    ("botai_alert_failed", "SELECT botai_alert_failed(1, 'log', 'me', 'e', '1 second')"),
    ("botai_require_primary", "SELECT botai_require_primary('my_function')"),
];

/// Every function of botai that only reads.
const READERS: &[(&str, &str)] = &[
    ("botai_health", "SELECT botai_health()"),
    ("botai_metrics", "SELECT botai_metrics()"),
    ("botai_monitor_state", "SELECT botai_monitor_state()"),
    ("botai_component_health", "SELECT botai_component_health('c')"),
    ("botai_worker_stats", "SELECT botai_worker_stats()"),
    ("botai_signal_stats", "SELECT * FROM botai_signal_stats()"),
    ("botai_recent_signals", "SELECT * FROM botai_recent_signals()"),
    ("botai_unhandled_signals", "SELECT * FROM botai_unhandled_signals()"),
    ("botai_fingerprint", "SELECT botai_fingerprint('BTCUSDT', 'BUY', 's', now())"),
    ("botai_check_balance_availability", "SELECT botai_check_balance_availability('paper', 'USDT', 1)"),
    ("botai_rate_usage", "SELECT * FROM botai_rate_usage('paper')"),
    ("botai_rate_stats", "SELECT * FROM botai_rate_stats('paper')"),
    ("botai_rate_keys", "SELECT * FROM botai_rate_keys()"),
    ("botai_alert_next_due", "SELECT botai_alert_next_due('log')"),
    ("botai_build_id", "SELECT botai_build_id()"),
    // Gives back a share of a session lock; false when none is held.
    ("botai_send_done", "SELECT botai_send_done()"),
    // Callable, but not by clients: the monitor start is CREATE EXTENSION's.
    ("botai_monitor_start", "SELECT 1"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_answers_reads_refuses_writes_with_25006_and_is_promoted_with_full_windows() {
    let _serial = SERIAL.lock().await;
    let (primary, standby) = pair("sb", &[]);
    primary.psql(DATABASE, "SELECT botai_register_component('c')");
    let db = standby.connect().await;
    // Replication brings the extension and the data of the primary.
    let until = Instant::now() + Duration::from_secs(30);
    // (until then the view may not exist yet)
    while !matches!(db.query_opt("SELECT 1 FROM botai.components_status WHERE component = 'c'", &[]).await, Ok(Some(_)))
    {
        assert!(Instant::now() < until, "the standby never replayed the primary's botai objects and rows");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every botai function is classified here: a new one must say which
    // it is.
    let functions: BTreeSet<String> = db
        .query(
            "SELECT DISTINCT p.proname::text FROM pg_proc p \
             JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai' \
             WHERE p.proname LIKE 'botai\\_%' AND p.prorettype <> 'trigger'::regtype",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let classified: BTreeSet<String> = WRITERS.iter().chain(READERS).map(|(f, _)| f.to_string()).collect();
    assert_eq!(functions, classified, "every botai function is listed as a writer or a reader");

    for (function, sql) in WRITERS {
        let (code, message) = error_of(&db, sql).await.unwrap_or_else(|| panic!("{function} wrote on a standby"));
        assert_eq!(code, "25006", "{function}: {message}");
        let named = if *function == "botai_require_primary" { "my_function" } else { function };
        assert!(
            message.starts_with(&format!("{named}: "))
                && message.contains("is a standby")
                && message.contains(&standby.name),
            "{function}: the message names the function and the standby: {message}"
        );
    }
    for (function, sql) in READERS {
        assert_eq!(error_of(&db, sql).await, None, "{function} answers on a standby");
    }
    let views: Vec<String> = db
        .query("SELECT viewname::text FROM pg_views WHERE schemaname = 'botai'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(views.len() >= 10, "botai's status views: {views:?}");
    for v in &views {
        assert_eq!(error_of(&db, &format!("SELECT * FROM botai.{v}")).await, None, "botai.{v} reads on a standby");
    }
    let health: Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    assert_eq!(health["standby"], true, "{health}");
    // The monitor runs on the standby and writes nothing.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let m: Value = db.query_one("SELECT botai_monitor_state()", &[]).await.unwrap().get(0);
        if m["running"] == true && m["standby"] == true && m["last_round_at"].is_string() {
            assert_eq!(m["rounds"], 0, "no round's work on a standby: {m}");
            break;
        }
        assert!(Instant::now() < until, "no idle monitor on the standby: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  on the standby: {} writers refused with 25006, {} readers and {} views answered",
        WRITERS.len(),
        READERS.len(),
        views.len()
    );

    // Promotion (the old primary stopped first: one primary at a time).
    drop(db);
    run_root("stop the primary", &["pg_ctlcluster", "15", &primary.name, "stop", "-m", "fast"]);
    standby.promote();
    let promoted = Instant::now();
    let db = standby.connect().await;
    let delay: f64 = db.query_one("SELECT botai_rate_acquire('paper', 'order')", &[]).await.unwrap().get(0);
    let window = 5.0 + 0.2; // paper/order: 5 s, plus botai.rate_limit_send_jitter
    let elapsed = promoted.elapsed().as_secs_f64();
    println!(
        "  first booking after the promotion waits {delay:.2} s (furthest booking {MAX_WAIT_S} s + window {window} s)"
    );
    assert!(
        delay >= f64::from(MAX_WAIT_S) + window - elapsed - 1.5,
        "after a promotion a window counts as full for max_wait plus its length: {delay}"
    );
    assert!(delay <= f64::from(MAX_WAIT_S) + window + 1.0, "no longer than that: {delay}");
    // The monitor's rounds begin; writes work.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let m: Value = db.query_one("SELECT botai_monitor_state()", &[]).await.unwrap().get(0);
        if m["rounds"].as_u64().unwrap_or(0) > 0 && m["standby"] == false {
            break;
        }
        assert!(Instant::now() < until, "the monitor does not start its rounds after the promotion: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.batch_execute("SELECT botai_register_component('after-promotion')").await.unwrap();
    let log = standby.log();
    assert!(log.contains("botai: this server was promoted"), "the promotion is logged");
    assert!(!log.contains("round failed") && !log.contains("TransactionIds"), "no failed round on the standby:\n{log}");
}
