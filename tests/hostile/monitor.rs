//! The monitor's rounds: not stalled by an idle lock holder (and a stalled
//! monitor shows), not stopped by texts and numbers too long to notify.

use std::time::{Duration, Instant};

use botai_tests::{connect, TestDatabase};
use serde_json::Value;

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
