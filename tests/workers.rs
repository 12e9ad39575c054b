//! Workers (SQL_API.md §2) from outside: slots held by real sessions, freed
//! when a client process is killed, tasks claimed by many sessions at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botai_tests::{connect, expect_sqlstate, sessions, unique, PsqlProcess};
use serde_json::json;
use tokio::sync::Barrier;
use tokio_postgres::Client;

async fn register(db: &Client, worker_type: &str) -> Option<String> {
    db.query_one("SELECT botai_register_worker($1)", &[&worker_type]).await.unwrap().get(0)
}

async fn epoch_of(db: &Client, worker_id: &str) -> i64 {
    db.query_one("SELECT epoch FROM botai.workers WHERE worker_id = $1", &[&worker_id]).await.unwrap().get(0)
}

async fn heartbeat(db: &Client, worker_id: &str) -> bool {
    db.query_one("SELECT botai_worker_heartbeat($1, 'running', 1)", &[&worker_id]).await.unwrap().get(0)
}

#[tokio::test]
async fn slot_frees_when_holder_process_is_killed() {
    let worker_type = unique("ml_manager");
    let mut a = PsqlProcess::start().await.unwrap();
    let a_id = a.query(&format!("SELECT botai_register_worker('{worker_type}');")).await.unwrap()[0].clone();
    assert!(!a_id.is_empty(), "A registers");
    let b = connect().await;
    assert_eq!(register(&b, &worker_type).await, None, "B finds the only slot taken");
    assert!(!heartbeat(&b, &a_id).await, "B does not hold A's slot");
    assert_eq!(a.query(&format!("SELECT botai_worker_heartbeat('{a_id}');")).await.unwrap(), ["t"]);
    let a_epoch = epoch_of(&b, &a_id).await;

    // Kill the client process; no unregister, no goodbye.
    let killed_at = Instant::now();
    a.kill().await.unwrap();
    let b_id = loop {
        if let Some(id) = register(&b, &worker_type).await {
            break id;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(5), "slot still taken 5 s after the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let delay = killed_at.elapsed();
    println!("  slot taken by B {:.1} ms after SIGKILL of A's client process", delay.as_secs_f64() * 1e3);
    assert!(delay < Duration::from_secs(1), "B registered {delay:?} after the kill");
    let b_epoch = epoch_of(&b, &b_id).await;
    assert!(b_epoch > a_epoch, "fencing: epoch {b_epoch} must exceed {a_epoch}");
    assert!(heartbeat(&b, &b_id).await);
    let a_state: String =
        b.query_one("SELECT state FROM botai.workers_status WHERE worker_id = $1", &[&a_id]).await.unwrap().get(0);
    assert_eq!(a_state, "unregistered", "A's row is closed when its slot is taken again");
}

#[tokio::test]
async fn dead_holder_shows_as_dead_until_the_slot_is_taken() {
    let worker_type = unique("dead");
    let mut a = PsqlProcess::start().await.unwrap();
    let a_id = a.query(&format!("SELECT botai_register_worker('{worker_type}');")).await.unwrap()[0].clone();
    a.kill().await.unwrap();
    let db = connect().await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let state: String =
            db.query_one("SELECT state FROM botai.workers_status WHERE worker_id = $1", &[&a_id]).await.unwrap().get(0);
        if state == "dead" {
            break;
        }
        assert_eq!(state, "active");
        assert!(Instant::now() < deadline, "still {state} 2 s after the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn heartbeat_is_false_for_unknown_or_foreign_workers() {
    let worker_type = unique("hb");
    let a = connect().await;
    let b = connect().await;
    let id = register(&a, &worker_type).await.unwrap();
    assert!(heartbeat(&a, &id).await);
    assert!(!heartbeat(&b, &id).await, "a session that does not hold the slot");
    assert!(!heartbeat(&a, &unique("nobody")).await, "an unknown worker");
    // After unregistering, the lease is gone even for its former holder.
    let unregistered: bool = a.query_one("SELECT botai_unregister_worker($1)", &[&id]).await.unwrap().get(0);
    assert!(unregistered);
    assert!(!heartbeat(&a, &id).await);
    let again: bool = a.query_one("SELECT botai_unregister_worker($1)", &[&id]).await.unwrap().get(0);
    assert!(!again, "unregistering twice is harmless");
    assert!(register(&b, &worker_type).await.is_some(), "the slot is free at once");
}

#[tokio::test]
async fn registering_again_in_the_same_session_returns_the_same_id() {
    let worker_type = unique("same");
    let a = connect().await;
    let first = register(&a, &worker_type).await.unwrap();
    let second = register(&a, &worker_type).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(epoch_of(&a, &first).await, 1);
}

#[tokio::test]
async fn sixteen_sessions_race_for_one_slot_and_one_wins() {
    let worker_type = unique("race");
    let sessions = sessions(16).await;
    let barrier = Arc::new(Barrier::new(16));
    let mut handles = Vec::new();
    for db in sessions {
        let (barrier, worker_type) = (barrier.clone(), worker_type.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let id: Option<String> =
                db.query_one("SELECT botai_register_worker($1)", &[&worker_type]).await.unwrap().get(0);
            (id, db)
        }));
    }
    let mut winners = 0;
    let mut keep = Vec::new();
    for h in handles {
        let (id, db) = h.await.unwrap();
        winners += usize::from(id.is_some());
        keep.push(db);
    }
    assert_eq!(winners, 1, "max_workers = 1");
}

#[tokio::test]
async fn sixteen_sessions_claim_a_hundred_tasks_each_exactly_once() {
    const SESSIONS: usize = 16;
    const TASKS: i64 = 100;
    let worker_type = unique("claim");
    let admin = connect().await;
    admin
        .execute(
            "INSERT INTO botai.worker_types (worker_type, max_workers) VALUES ($1, $2)",
            &[&worker_type, &(SESSIONS as i32)],
        )
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let db = connect().await;
        let id = register(&db, &worker_type).await.expect("a slot for each of the 16");
        sessions.push((db, id));
    }
    let mut enqueued = HashSet::new();
    for i in 0..TASKS {
        let id: i64 = admin
            .query_one("SELECT botai_enqueue_task($1, $2)", &[&worker_type, &json!({"n": i})])
            .await
            .unwrap()
            .get(0);
        enqueued.insert(id);
    }
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut handles = Vec::new();
    for (db, id) in sessions {
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let rows = db.query("SELECT task_id FROM botai_claim_task($1)", &[&id]).await.unwrap();
                match rows.first() {
                    Some(r) => mine.push(r.get::<_, i64>(0)),
                    None => return (mine, db),
                }
            }
        }));
    }
    let mut claimed = Vec::new();
    let mut per_session = Vec::new();
    let mut keep = Vec::new();
    for h in handles {
        let (mine, db) = h.await.unwrap();
        per_session.push(mine.len());
        claimed.extend(mine);
        keep.push(db);
    }
    println!("  tasks claimed per session: {per_session:?}");
    let unique_claims: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), TASKS as usize, "no task handed out twice");
    assert_eq!(unique_claims, enqueued, "every task handed out");
}

#[tokio::test]
async fn task_of_a_killed_claimer_is_claimable_again() {
    let worker_type = unique("orphan");
    let admin = connect().await;
    admin
        .execute("INSERT INTO botai.worker_types (worker_type, max_workers) VALUES ($1, 2)", &[&worker_type])
        .await
        .unwrap();
    let task: i64 =
        admin.query_one("SELECT botai_enqueue_task($1, '{\"job\": 1}')", &[&worker_type]).await.unwrap().get(0);
    let mut a = PsqlProcess::start().await.unwrap();
    let a_id = a.query(&format!("SELECT botai_register_worker('{worker_type}');")).await.unwrap()[0].clone();
    let got = a.query(&format!("SELECT task_id FROM botai_claim_task('{a_id}');")).await.unwrap();
    assert_eq!(got, [task.to_string()]);

    let b = connect().await;
    let b_id = register(&b, &worker_type).await.unwrap();
    assert!(b.query("SELECT * FROM botai_claim_task($1)", &[&b_id]).await.unwrap().is_empty(), "A still works on it");
    a.kill().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let reclaimed = loop {
        let rows = b.query("SELECT task_id FROM botai_claim_task($1)", &[&b_id]).await.unwrap();
        if let Some(r) = rows.first() {
            break r.get::<_, i64>(0);
        }
        assert!(Instant::now() < deadline, "task not back in the queue 2 s after the claimer died");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(reclaimed, task);
    let attempts: i32 =
        b.query_one("SELECT attempts FROM botai.tasks WHERE task_id = $1", &[&task]).await.unwrap().get(0);
    assert_eq!(attempts, 2);
    let done: bool = b.query_one("SELECT botai_complete_task($1, true, '{\"ok\": 1}')", &[&task]).await.unwrap().get(0);
    assert!(done);
    let again: bool = b.query_one("SELECT botai_complete_task($1, true)", &[&task]).await.unwrap().get(0);
    assert!(!again, "completing twice is harmless");
}

#[tokio::test]
async fn unregister_requeues_claimed_tasks_and_dedup_key_deduplicates() {
    let worker_type = unique("dedup");
    let a = connect().await;
    let t1: i64 = a.query_one("SELECT botai_enqueue_task($1, '{}', 'k1')", &[&worker_type]).await.unwrap().get(0);
    let t2: i64 = a.query_one("SELECT botai_enqueue_task($1, '{}', 'k1')", &[&worker_type]).await.unwrap().get(0);
    assert_eq!(t1, t2, "same pending dedup_key, same task");
    let id = register(&a, &worker_type).await.unwrap();
    let claimed: i64 = a.query_one("SELECT task_id FROM botai_claim_task($1)", &[&id]).await.unwrap().get(0);
    assert_eq!(claimed, t1);
    let t3: i64 = a.query_one("SELECT botai_enqueue_task($1, '{}', 'k1')", &[&worker_type]).await.unwrap().get(0);
    assert_eq!(t3, t1, "still pending while claimed");
    assert!(a.query_one("SELECT botai_unregister_worker($1)", &[&id]).await.unwrap().get::<_, bool>(0));
    let status: String = a.query_one("SELECT status FROM botai.tasks WHERE task_id = $1", &[&t1]).await.unwrap().get(0);
    assert_eq!(status, "queued");
}

#[tokio::test]
async fn bad_worker_input_is_refused_with_sqlstate_and_nothing_written() {
    let db = connect().await;
    let name = unique("badw");
    let none: Option<&str> = None;
    expect_sqlstate("NULL worker_type", db.query_one("SELECT botai_register_worker($1)", &[&none]).await, "22004");
    expect_sqlstate("empty worker_type", db.query_one("SELECT botai_register_worker('  ')", &[]).await, "22023");
    let long = "w".repeat(65);
    expect_sqlstate(
        "65-character worker_type",
        db.query_one("SELECT botai_register_worker($1)", &[&long]).await,
        "22023",
    );
    expect_sqlstate(
        "65-character worker_id",
        db.query_one("SELECT botai_register_worker($1, $2)", &[&name, &long]).await,
        "22023",
    );
    expect_sqlstate(
        "metadata not an object",
        db.query_one("SELECT botai_register_worker($1, NULL, '[1]')", &[&name]).await,
        "22023",
    );
    let id = register(&db, &name).await.unwrap();
    expect_sqlstate(
        "heartbeat status 'sleeping'",
        db.query_one("SELECT botai_worker_heartbeat($1, 'sleeping')", &[&id]).await,
        "22023",
    );
    expect_sqlstate(
        "negative active_tasks",
        db.query_one("SELECT botai_worker_heartbeat($1, 'busy', -1)", &[&id]).await,
        "22023",
    );
    expect_sqlstate("NULL payload", db.query_one("SELECT botai_enqueue_task($1, NULL)", &[&name]).await, "22004");
    expect_sqlstate("unknown task", db.query_one("SELECT botai_complete_task(-1, true)", &[]).await, "P0002");
    let stranger = unique("stranger");
    expect_sqlstate(
        "claim for a stranger",
        db.query("SELECT * FROM botai_claim_task($1)", &[&stranger]).await,
        "55000",
    );
    // The failed calls wrote nothing: only the valid registration exists.
    let rows: i64 = db
        .query_one("SELECT count(*) FROM botai.workers WHERE worker_type = $1 OR worker_id = $2", &[&name, &long])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let heartbeat_age_unchanged: String =
        db.query_one("SELECT status FROM botai.workers WHERE worker_id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(heartbeat_age_unchanged, "running");
    let tasks: i64 =
        db.query_one("SELECT count(*) FROM botai.tasks WHERE worker_type = $1", &[&name]).await.unwrap().get(0);
    assert_eq!(tasks, 0);
}
