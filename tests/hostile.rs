//! The holes a review of the extension found under hostile roles, long
//! transactions and odd input (issue 10), each reproduced from outside with
//! real sessions: a test per defect, which failed before its fix.

use std::time::{Duration, Instant};

use botai_core::lock_key::name_key;
use botai_tests::{connect, expect_sqlstate, unique, PsqlProcess, TestDatabase};
use serde_json::Value;
use tokio_postgres::Client;

const WORKER_SLOT_NS: i64 = 0x626F_7461;
const SIGNAL_COOLDOWN_NS: i64 = 0x626F_7462;
const BALANCE_SNAPSHOT_NS: i64 = 0x626F_7463;

async fn role_session(role: &str) -> Client {
    let db = connect().await;
    db.batch_execute(&format!("SET ROLE {role}")).await.unwrap();
    db
}

/// Item 1: a transaction that registered a worker and then took a
/// transaction-level lock with the slot's own numbers, rolled back. Before
/// the fix the abort callback spun forever inside AbortTransaction.
#[tokio::test]
async fn an_aborted_registration_with_a_lock_on_its_slot_numbers_ends_at_once() {
    let db = connect().await;
    let worker_type = unique("abort");
    db.execute("INSERT INTO botai.worker_types (worker_type) VALUES ($1)", &[&worker_type]).await.unwrap();
    let key: i32 = db
        .query_one("SELECT type_id * 1024 FROM botai.worker_types WHERE worker_type = $1", &[&worker_type])
        .await
        .unwrap()
        .get(0);
    for (what, finish) in [("register", "ROLLBACK"), ("unregister", "COMMIT")] {
        let mut psql = PsqlProcess::start().await.unwrap();
        let started = Instant::now();
        let setup = match what {
            "register" => format!("BEGIN; SELECT botai_register_worker('{worker_type}');"),
            _ => format!(
                "SELECT botai_register_worker('{worker_type}', 'w-{worker_type}'); BEGIN; \
                 SELECT botai_unregister_worker('w-{worker_type}');"
            ),
        };
        psql.query(&setup).await.unwrap();
        for sql in [
            format!("SELECT pg_advisory_xact_lock({WORKER_SLOT_NS}::bigint::int4, {key});"),
            format!("SELECT pg_advisory_xact_lock(({WORKER_SLOT_NS}::bigint << 32) | {key});"),
        ] {
            // Not every form is valid for every number; what matters is the end.
            let _ = psql.query(&sql).await;
        }
        let out = psql.query(&format!("{finish}; SELECT 'alive';")).await.expect("the session answers");
        assert!(out.iter().any(|l| l == "alive"), "{what}: {out:?}");
        println!("  {what} + transaction lock on the slot's numbers + {finish}: done in {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let again: Option<String> = db.query_one("SELECT botai_register_worker($1)", &[&worker_type]).await.unwrap().get(0);
    assert!(again.is_some(), "the slot is free again");
}

/// Item 2: a reader and a service session holding every pg_advisory* lock
/// over the numbers botai's locks use cannot deny or delay a botai function.
#[tokio::test]
async fn advisory_locks_of_any_role_cannot_delay_or_deny_a_botai_function() {
    let admin = connect().await;
    let worker_type = unique("squat");
    admin
        .execute("INSERT INTO botai.worker_types (worker_type, max_workers) VALUES ($1, 2)", &[&worker_type])
        .await
        .unwrap();
    let type_id: i32 = admin
        .query_one("SELECT type_id FROM botai.worker_types WHERE worker_type = $1", &[&worker_type])
        .await
        .unwrap()
        .get(0);
    let exchange = unique("sq");
    let (symbol, strategy) = (unique("SYM").to_uppercase(), unique("strat"));
    let mut keys: Vec<(i64, i64)> = (0..2).map(|slot| (WORKER_SLOT_NS, i64::from(type_id * 1024 + slot))).collect();
    keys.push((BALANCE_SNAPSHOT_NS, i64::from(name_key(&[&exchange, "USDT"]))));
    keys.push((SIGNAL_COOLDOWN_NS, i64::from(name_key(&[&symbol, "BUY", &strategy]))));
    let reader = role_session("botai_reader").await;
    let service = role_session("botai_service").await;
    let mut taken = 0;
    for (session, shared) in [(&reader, false), (&service, true)] {
        for (ns, key) in &keys {
            let (ns32, key32) = (*ns as u32 as i32, *key as u32 as i32);
            let big = (ns << 32) | key;
            let f = if shared { "pg_try_advisory_lock_shared" } else { "pg_try_advisory_lock" };
            for sql in [format!("SELECT {f}({ns32}, {key32})"), format!("SELECT {f}({big})")] {
                let got: bool = session.query_one(&sql, &[]).await.unwrap().get(0);
                taken += usize::from(got);
            }
        }
    }
    // And a transaction holding the xact variants, left open.
    service.batch_execute("BEGIN").await.unwrap();
    for (ns, key) in &keys {
        let (ns32, key32) = (*ns as u32 as i32, *key as u32 as i32);
        service.query_one(&format!("SELECT pg_try_advisory_xact_lock_shared({ns32}, {key32})"), &[]).await.unwrap();
    }
    assert!(taken >= keys.len() * 2, "the squatters hold their locks ({taken})");

    let victim = connect().await;
    victim.batch_execute("SET statement_timeout = '5s'").await.unwrap();
    let started = Instant::now();
    let w1: Option<String> =
        victim.query_one("SELECT botai_register_worker($1)", &[&worker_type]).await.unwrap().get(0);
    let other = connect().await;
    let w2: Option<String> = other.query_one("SELECT botai_register_worker($1)", &[&worker_type]).await.unwrap().get(0);
    assert!(w1.is_some() && w2.is_some(), "both slots are botai's to give: {w1:?} {w2:?}");
    let stored: bool = victim
        .query_one("SELECT botai_update_balance($1, 'USDT', 100, 100, 0)", &[&exchange])
        .await
        .expect("a snapshot is stored, not left waiting")
        .get(0);
    assert!(stored);
    victim.batch_execute("SET botai.signal_cooldown = 60").await.unwrap();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let signal = serde_json::json!({"symbol": symbol, "direction": "BUY", "strategy": strategy, "timestamp": now});
    let accepted: bool = victim
        .query_one("SELECT botai_check_and_register_signal($1)", &[&signal])
        .await
        .expect("registration under a cooldown is not blocked")
        .get(0);
    assert!(accepted);
    println!(
        "  {taken} advisory locks held by botai_reader and botai_service; botai calls done in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let userlocks: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND classid = {WORKER_SLOT_NS}"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(userlocks >= 2, "a DBA sees the slots in pg_locks");
}

/// Item 4: a database that stops accepting new connections is still alive;
/// its windows must stay.
#[tokio::test]
async fn a_database_that_refuses_new_connections_keeps_its_rate_windows() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ('keep', 'global', 10, 600)",
        &[],
    )
    .await
    .unwrap();
    for _ in 0..5 {
        db.query_one("SELECT botai_rate_acquire('keep', 'global')", &[]).await.unwrap();
    }
    let admin = connect().await;
    admin.batch_execute(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", t.name)).await.unwrap();
    // The launcher scans every 10 s.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let used: i64 = db
        .query_one("SELECT used FROM botai_rate_usage('keep') WHERE endpoint = 'global'", &[])
        .await
        .unwrap()
        .get::<_, i32>(0)
        .into();
    admin.batch_execute(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", t.name)).await.unwrap();
    assert_eq!(used, 5, "the five bookings are still counted");
}

/// Item 5: a client that holds a row lock the monitor's steps need, idle in
/// its transaction, must not stop the rounds; a monitor that stops anyway
/// shows in botai_health(); pg_terminate_backend ends the monitor.
#[tokio::test]
async fn an_idle_lock_holder_does_not_stall_the_monitor_and_a_stalled_monitor_shows() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.query_one("SELECT botai_update_balance('m', 'USDT', 100, 100, 0)", &[]).await.unwrap();
    let id: uuid::Uuid = db
        .query_one("SELECT botai_reserve_balance('m', 'USDT', 1, 'x', NULL, interval '1 second')", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let holder = t.connect().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder.query_one("SELECT botai_release_reservation($1)", &[&id]).await.unwrap();
    // The holder now sits idle in its transaction with the row locked.
    t.wait_rounds(3).await;
    let health: Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    assert_eq!(health["monitor"]["stale"], false, "{health}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    // Stop the monitor's process (SIGSTOP): no round completes; health says so.
    let pid = t.monitor().await["pid"].as_i64().expect("a running monitor") as i32;
    let signal = |sig: i32| unsafe { libc::kill(pid, sig) };
    assert_eq!(signal(libc::SIGSTOP), 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let health: Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    let metrics: String = db.query_one("SELECT botai_metrics()", &[]).await.unwrap().get(0);
    assert_eq!(signal(libc::SIGCONT), 0);
    println!("  monitor stopped 5 s: {}", health["monitor"]);
    assert_eq!(health["monitor"]["stale"], true);
    assert_eq!(health["status"], "degraded");
    assert!(metrics.contains("process_monitor_last_round_age_seconds"), "a metric too");

    // pg_terminate_backend ends it, even inside a step; the launcher starts another.
    let admin = connect().await;
    let ended: bool = admin.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap().get(0);
    assert!(ended);
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let now = t.monitor().await;
        if now["running"] == true && now["pid"].as_i64() != Some(i64::from(pid)) {
            break;
        }
        assert!(Instant::now() < deadline, "no new monitor after the old one was terminated: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Item 6: error texts and numbers too long for a NOTIFY payload must not
/// stop an alert from opening or resolving.
#[tokio::test]
async fn long_error_texts_do_not_stop_alerts_from_opening_or_resolving() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.execute("UPDATE botai.alert_rules SET window_seconds = 3 WHERE rule = 'high_error_rate'", &[]).await.unwrap();
    let (_listener, mut alerts) = t.listen(&["botai_alerts"]).await;
    db.query_one("SELECT botai_register_component('wordy')", &[]).await.unwrap();
    for _ in 0..11 {
        db.execute("SELECT botai_report_error('wordy', repeat('é', 4000))", &[]).await.unwrap();
    }
    let huge = format!("1{}", "0".repeat(3000));
    // Stored as a release before 0.7.0 took it (the door refuses it now).
    db.execute(
        &format!("INSERT INTO botai.balances (exchange, asset, total, available, locked, as_of) VALUES ('wordy', 'USDT', {huge}, {huge}, 0, now())"),
        &[],
    )
    .await
    .unwrap();
    db.execute(
        &format!("UPDATE botai.alert_rules SET params = jsonb_build_object('wordy/USDT', 2 * {huge}::numeric) WHERE rule = 'low_balance'"),
        &[],
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        let Ok(Some(n)) = tokio::time::timeout_at(deadline, alerts.recv()).await else { break };
        assert!(n.payload().len() < 8000);
        let p: Value = serde_json::from_str(n.payload()).expect("a whole JSON document");
        seen.push(format!("{} {}", p["event"].as_str().unwrap_or(""), p["rule"].as_str().unwrap_or("")));
    }
    println!("  events: {seen:?}");
    assert!(seen.contains(&"opened high_error_rate".to_owned()), "{seen:?}");
    assert!(seen.contains(&"resolved high_error_rate".to_owned()), "{seen:?}");
    assert!(seen.contains(&"opened low_balance".to_owned()), "{seen:?}");
    let errors: i64 =
        db.query_one("SELECT count(*) FROM botai.rule_status WHERE last_error IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(errors, 0, "no rule fails");
    let kept: i32 = db
        .query_one("SELECT length(details->>'last_error') FROM botai.alerts WHERE rule = 'high_error_rate'", &[])
        .await
        .unwrap()
        .get::<_, Option<i32>>(0)
        .unwrap_or(0);
    println!("  the alert row keeps the whole detail ({kept} characters of the last error)");
}

/// Item 7: a claimer whose session began after the transaction that looks
/// for dead claimers took its activity snapshot is alive; its task stays.
#[tokio::test]
async fn a_live_claimer_keeps_its_task_whatever_snapshot_another_session_holds() {
    let admin = connect().await;
    let worker_type = unique("claim");
    admin
        .execute("INSERT INTO botai.worker_types (worker_type, max_workers) VALUES ($1, 2)", &[&worker_type])
        .await
        .unwrap();
    let old = connect().await;
    let old_worker: String = old
        .query_one("SELECT botai_register_worker($1)", &[&worker_type])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap();
    old.batch_execute("BEGIN").await.unwrap();
    old.query("SELECT count(*) FROM pg_stat_activity", &[]).await.unwrap(); // the transaction's activity snapshot
    let newcomer = connect().await;
    let new_worker: String = newcomer
        .query_one("SELECT botai_register_worker($1)", &[&worker_type])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap();
    let task: i64 =
        admin.query_one("SELECT botai_enqueue_task($1, '{\"n\": 1}')", &[&worker_type]).await.unwrap().get(0);
    let claimed = newcomer.query("SELECT task_id FROM botai_claim_task($1)", &[&new_worker]).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let second = old.query("SELECT task_id FROM botai_claim_task($1)", &[&old_worker]).await.unwrap();
    old.batch_execute("COMMIT").await.unwrap();
    assert!(second.is_empty(), "task {task} was handed to a second worker while its claimer lives");
    let by: String =
        admin.query_one("SELECT claimed_by FROM botai.tasks WHERE task_id = $1", &[&task]).await.unwrap().get(0);
    assert_eq!(by, new_worker);
}

/// Item 9: reserve, place and commit in one transaction; a snapshot taken
/// after the transaction began but before the commit must not retire it.
#[tokio::test]
async fn a_commit_is_stamped_when_it_happens_not_when_its_transaction_began() {
    let db = connect().await;
    let exchange = unique("cm");
    db.execute("SELECT botai_update_balance($1, 'USDT', 100, 100, 0, now() - interval '1 minute')", &[&exchange])
        .await
        .unwrap();
    db.batch_execute("BEGIN").await.unwrap();
    let began: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let id: uuid::Uuid =
        db.query_one("SELECT botai_reserve_balance($1, 'USDT', 50, 'test')", &[&exchange]).await.unwrap().get(0);
    tokio::time::sleep(Duration::from_millis(5000)).await; // the order is being placed
    db.query_one("SELECT botai_commit_reservation($1)", &[&id]).await.unwrap();
    db.batch_execute("COMMIT").await.unwrap();
    // The exchange's snapshot from 3 s after the transaction began: the order
    // (placed 5 s in) is not in it.
    let other = connect().await;
    other
        .execute(
            "SELECT botai_update_balance($1, 'USDT', 100, 100, 0, $2)",
            &[&exchange, &(began + chrono::Duration::seconds(3))],
        )
        .await
        .unwrap();
    let status: String = other
        .query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "committed", "an older snapshot than the commit must not retire it");

    // The database clock may run behind the exchange's by
    // botai.balance_clock_skew (2 s): a snapshot within that of the commit
    // keeps it held; a later one retires it.
    let committed_at: chrono::DateTime<chrono::Utc> = other
        .query_one("SELECT committed_at FROM botai.reservations WHERE reservation_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    let status_after = |seconds: i64| {
        let (other, exchange) = (&other, &exchange);
        async move {
            other
                .execute(
                    "SELECT botai_update_balance($1, 'USDT', 100, 100, 0, $2)",
                    &[exchange, &(committed_at + chrono::Duration::seconds(seconds))],
                )
                .await
                .unwrap();
            other
                .query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(status_after(1).await, "committed", "within the clock skew allowance");
    assert_eq!(status_after(3).await, "retired", "past it");
}

/// Item 10: a session's dedup window longer than the retention must not
/// let a pruned fingerprint be accepted again.
#[tokio::test]
async fn no_fingerprint_is_pruned_while_a_session_still_considers_it() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1"), ("botai.signal_retention", "60")]).await;
    let db = t.connect().await;
    db.batch_execute("SET botai.signal_dedup_window = '1h'").await.unwrap();
    let at = |minutes: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes)).format("%Y-%m-%dT%H:%M:%S").to_string()
    };
    let old =
        serde_json::json!({"symbol": "BTCUSDT", "direction": "BUY", "strategy": "retention", "timestamp": at(30)});
    let recent =
        serde_json::json!({"symbol": "BTCUSDT", "direction": "SELL", "strategy": "retention", "timestamp": at(0)});
    let register = |s: serde_json::Value| {
        let db = &db;
        async move { db.query_one("SELECT botai_check_and_register_signal($1)", &[&s]).await.unwrap().get::<_, bool>(0) }
    };
    let (old_first, recent_first) = (register(old.clone()).await, register(recent.clone()).await);
    assert!(recent_first, "a fresh signal is accepted");
    // Everything was accepted ten minutes ago, as far as the monitor can
    // tell: past the retention (60 s) and the monitor's own window (300 s).
    db.execute("UPDATE botai.signals SET accepted_at = accepted_at - interval '10 minutes'", &[]).await.unwrap();
    t.wait_rounds(2).await;
    let (old_again, recent_again) = (register(old).await, register(recent).await);
    println!(
        "  30-minute-old signal, 1 h session window, 60 s retention: accepted {old_first} then {old_again}; \
         a fresh one: {recent_first} then {recent_again}"
    );
    assert!(!(old_first && old_again), "the same signal was accepted twice");
    assert!(!recent_again, "a fingerprint inside the window is never pruned");
}

/// Item 3: a booking may not reach further ahead than
/// botai.rate_limit_max_wait; past it nothing is booked and the caller is told.
#[tokio::test]
async fn a_booking_past_the_max_wait_is_refused_and_books_nothing() {
    let db = connect().await;
    let exchange = unique("far");
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ($1, 'order', 2, 40)",
        &[&exchange],
    )
    .await
    .unwrap();
    let max_wait: String = db.query_one("SHOW botai.rate_limit_max_wait", &[]).await.unwrap().get(0);
    assert_eq!(max_wait, "1min");
    let first: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await.unwrap().get(0);
    let second: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await.unwrap().get(0);
    assert_eq!(first, 0.0);
    // The window botai books is 40 s plus botai.rate_limit_send_jitter (0.2 s).
    assert!(second > 39.0 && second <= 40.2, "{second}");
    expect_sqlstate(
        "a booking 80 s ahead",
        db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await,
        "54000",
    );
    let requests: i64 = db
        .query_one("SELECT requests FROM botai_rate_stats($1) WHERE endpoint = 'order'", &[&exchange])
        .await
        .unwrap()
        .get(0);
    assert_eq!(requests, 2, "the refused booking left nothing behind");
}

/// Item 11: limits added after a lookup found none apply at once.
#[tokio::test]
async fn limits_added_after_a_lookup_found_none_apply_at_once() {
    let db = connect().await;
    let exchange = unique("late");
    expect_sqlstate(
        "no limits yet",
        db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await,
        "P0002",
    );
    let admin = connect().await;
    admin
        .execute(
            "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ($1, 'order', 5, 1)",
            &[&exchange],
        )
        .await
        .unwrap();
    let wait: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&exchange]).await.unwrap().get(0);
    assert_eq!(wait, 0.0);
}

/// Item 11: a worker id registered again under another type frees its old
/// slot; an unregistration frees the slot only when it commits.
#[tokio::test]
async fn slots_follow_the_committed_registration() {
    let admin = connect().await;
    let (a, b) = (unique("ta"), unique("tb"));
    for t in [&a, &b] {
        admin.execute("INSERT INTO botai.worker_types (worker_type) VALUES ($1)", &[t]).await.unwrap();
    }
    let id = unique("w");
    let one = connect().await;
    one.query_one("SELECT botai_register_worker($1, $2)", &[&a, &id]).await.unwrap();
    one.query_one("SELECT botai_register_worker($1, $2)", &[&b, &id]).await.unwrap();
    let two = connect().await;
    let got: Option<String> = two.query_one("SELECT botai_register_worker($1)", &[&a]).await.unwrap().get(0);
    assert!(got.is_some(), "the slot of type A is free once its worker id moved to type B");

    one.batch_execute("BEGIN").await.unwrap();
    let done: bool = one.query_one("SELECT botai_unregister_worker($1)", &[&id]).await.unwrap().get(0);
    assert!(done);
    let three = connect().await;
    let early: Option<String> = three.query_one("SELECT botai_register_worker($1)", &[&b]).await.unwrap().get(0);
    assert!(early.is_none(), "the slot is still held until the unregistration commits");
    one.batch_execute("ROLLBACK").await.unwrap();
    let beat: bool = one.query_one("SELECT botai_worker_heartbeat($1)", &[&id]).await.unwrap().get(0);
    assert!(beat, "a rolled-back unregistration leaves the worker registered");
    one.query_one("SELECT botai_unregister_worker($1)", &[&id]).await.unwrap();
    let after: Option<String> = three.query_one("SELECT botai_register_worker($1)", &[&b]).await.unwrap().get(0);
    assert!(after.is_some(), "free after the commit");
}

/// Item 11: until the grants are applied nothing of botai is executable by
/// PUBLIC.
#[tokio::test]
async fn a_fresh_install_grants_nothing_to_public() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    let public: Vec<String> = db
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p \
             JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai' \
             WHERE has_function_privilege('public', p.oid, 'EXECUTE') \
                OR p.proacl IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(public.is_empty(), "executable by PUBLIC: {public:?}");
}

/// A tiny HTTP server on loopback that hands every request body to the test.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=secret", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let body = &buf[end + 4..end + 4 + length];
                        let _ = tx.send(serde_json::from_slice(body).unwrap_or(Value::Null));
                        let _ =
                            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

/// Item 11: anyone can `pg_notify('botai_alerts', …)`; the notification only
/// wakes the deliverer, which sends what the outbox owes, read from
/// botai.alerts: a forged payload delivers nothing.
#[tokio::test]
async fn a_forged_alert_notification_is_not_delivered() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let (url, mut posts) = webhook_receiver().await;
    // The operator turned the channel on (`botai alerts apply`).
    db.query_one("SELECT botai_alert_channel('webhook', ARRAY['*'])", &[]).await.unwrap();
    let mut daemon = botai_tests::Daemon::start(
        "alerts",
        &t.name,
        &["run", "--mode=api"],
        &[("ALERT_WEBHOOK_URL", url), ("ALERT_WEBHOOK_SECRET", "hmac-key".to_owned())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN botai_alerts' AND state = 'idle'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if listening > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon never listened:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forger = t.connect().await;
    forger.batch_execute("SET ROLE botai_reader").await.unwrap();
    forger
        .batch_execute(
            "SELECT pg_notify('botai_alerts', '{\"event\": \"opened\", \"alert_id\": 987654321, \"rule\": \"forged\", \
             \"subject\": \"x\", \"severity\": \"critical\", \"action\": \"page\"}'); \
             SELECT pg_notify('botai_alerts', 'not even json')",
        )
        .await
        .unwrap();
    db.query_one("SELECT botai_register_component('noisy')", &[]).await.unwrap();
    for _ in 0..11 {
        db.execute("SELECT botai_report_error('noisy', 'boom')", &[]).await.unwrap();
    }
    let mut delivered = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(body)) = tokio::time::timeout_at(until, posts.recv()).await {
        let real = body["rule"] == "high_error_rate";
        delivered.push(body);
        if real {
            break;
        }
    }
    let output = daemon.output();
    daemon.kill();
    println!("  delivered: {delivered:?}");
    assert!(delivered.iter().all(|b| b["rule"] != "forged"), "a forged alert was delivered");
    let real = delivered.iter().find(|b| b["rule"] == "high_error_rate").expect("the real alert is delivered");
    assert_eq!(real["subject"], "noisy");
    assert_eq!(real["status"], "open", "the delivered alert is the row");
    assert!(!output.contains("secret"), "the webhook's token never reaches the log");
}
