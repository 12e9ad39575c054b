//! Long and open transactions: what another session's snapshot, an open
//! transaction or its rollback may not change.

use std::time::Duration;

use botai_tests::{connect, unique, TestDatabase};

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
