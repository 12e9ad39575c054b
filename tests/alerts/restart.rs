//! `restart_component`: a stuck ML manager's session is ended, its standby
//! takes over, and it comes back as standby.

use std::time::{Duration, Instant};

use botai_tests::{count, Daemon, TestDatabase};
use serde_json::Value;

/// A rule whose action is restart_component ends the stuck component's
/// worker session: a frozen (SIGSTOP) ML manager loses its slot, its standby
/// takes over with a larger epoch, and the frozen one, thawed, finds its
/// session ended and goes back to standby.
#[tokio::test(flavor = "multi_thread")]
async fn restart_component_ends_a_stuck_ml_managers_session_and_its_standby_takes_over() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute(
        "UPDATE botai.alert_rules SET enabled = (rule = 'heartbeat_timeout'); \
         UPDATE botai.alert_rules SET threshold = 3 WHERE rule = 'heartbeat_timeout'",
    )
    .await
    .unwrap();
    let epoch = chrono::Utc::now() + chrono::Duration::seconds(3);
    let env = vec![
        ("REPLAY_EPOCH", epoch.to_rfc3339()),
        ("REPLAY_FROM", "2022-01-12T00:00:00Z".to_owned()),
        ("REPLAY_SPEED", "60".to_owned()),
        ("WORKER_HEARTBEAT_TIMEOUT", "2".to_owned()),
    ];
    let stuck = Daemon::start("ml-stuck", &t.name, &["run", "--mode=ml"], &env);
    stuck.wait_for_output("active ML manager", Duration::from_secs(30)).await;
    let standby = Daemon::start("ml-standby", &t.name, &["run", "--mode=ml"], &env);
    standby.wait_for_output("standing by to take over", Duration::from_secs(30)).await;
    let (first_worker, first_epoch): (String, i64) = {
        let r = db
            .query_one(
                "SELECT worker_id, epoch FROM botai.workers WHERE worker_type = 'ml_manager' AND unregistered_at IS NULL",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };

    let pid = stuck.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let frozen_at = Instant::now();
    standby.wait_for_output("took over as the active ML manager", Duration::from_secs(30)).await;
    println!("  the standby took over {:.1} s after the active manager froze", frozen_at.elapsed().as_secs_f64());
    let (end_reason, restart): (String, Value) = {
        let r = db
            .query_one(
                "SELECT w.end_reason, a.details->'restart' FROM botai.workers w, botai.alerts a \
                 WHERE w.worker_id = $1 AND a.rule = 'heartbeat_timeout' AND a.subject = 'ml_manager' \
                 ORDER BY a.alert_id LIMIT 1",
                &[&first_worker],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(end_reason.starts_with("restarted by the monitor: alert heartbeat_timeout"), "{end_reason}");
    assert_eq!(restart["done"], true, "{restart}");
    assert_eq!(restart["sessions"][0]["worker_id"], first_worker.as_str());
    let epoch_now: i64 = db
        .query_one("SELECT epoch FROM botai.workers WHERE worker_type = 'ml_manager' AND unregistered_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(epoch_now > first_epoch, "the standby's epoch {epoch_now} fences the old {first_epoch}");

    unsafe { libc::kill(pid, libc::SIGCONT) };
    stuck.wait_for_output("back to standby", Duration::from_secs(30)).await;
    let active = count(
        &db,
        "SELECT count(*) FROM botai.workers_status WHERE worker_type = 'ml_manager' AND state IN ('active', 'stale')",
    )
    .await;
    assert_eq!(active, 1, "one active manager after the thaw");
}
