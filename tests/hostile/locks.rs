//! Locks: botai's own numbers taken by a transaction that then aborts, and
//! every advisory lock over them held by roles that are not botai's.

use std::time::{Duration, Instant};

use botai_core::lock_key::name_key;
use botai_tests::{connect, unique, PsqlProcess};
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
