//! Balances (SQL_API.md §4) from outside: many sessions reserving against
//! one balance, a concurrent observer, commit semantics against snapshots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use botai_tests::{connect, expect_sqlstate, unique};
use tokio::sync::Barrier;
use tokio_postgres::Client;
use uuid::Uuid;

async fn balance(db: &Client, exchange: &str, asset: &str, available: &str) {
    db.execute(
        "SELECT botai_update_balance($1, $2, $3::text::numeric, $3::text::numeric, 0)",
        &[&exchange, &asset, &available],
    )
    .await
    .unwrap();
}

async fn reserve(db: &Client, exchange: &str, asset: &str, amount: &str) -> Option<Uuid> {
    db.query_one("SELECT botai_reserve_balance($1, $2, $3::text::numeric, 'test')", &[&exchange, &asset, &amount])
        .await
        .unwrap()
        .get(0)
}

/// (available, held) from the status view, as f64 for comparisons.
async fn held(db: &Client, exchange: &str, asset: &str) -> (f64, f64) {
    let r = db
        .query_one(
            "SELECT available::float8, reserved::float8 FROM botai.balances_status WHERE exchange = $1 AND asset = $2",
            &[&exchange, &asset],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn sixty_four_sessions_reserve_exactly_what_the_funds_allow() {
    const SESSIONS: usize = 64;
    let admin = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    balance(&admin, &x, asset, "1000").await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let db = connect().await;
        db.batch_execute("SET botai.balance_safety_margin = 0").await.unwrap();
        sessions.push(db);
    }
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut handles = Vec::new();
    for db in sessions {
        let (barrier, x) = (barrier.clone(), x.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut got = 0;
            while reserve(&db, &x, "USDT", "10").await.is_some() {
                got += 1;
            }
            got
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    println!("  64 sessions reserved 10 each until refused: {total} reservations");
    assert_eq!(total, 100, "1000 available / 10 each");
    assert_eq!(held(&admin, &x, asset).await, (1000.0, 1000.0));
}

#[tokio::test]
async fn reserve_never_overdraws_under_64_sessions_with_releases_and_commits() {
    const SESSIONS: usize = 64;
    const ROUNDS: usize = 25;
    let admin = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    balance(&admin, &x, asset, "5000").await;
    let stop = Arc::new(AtomicBool::new(false));
    // The observer samples the held total while the sessions work.
    let observer = {
        let (stop, x) = (stop.clone(), x.clone());
        tokio::spawn(async move {
            let db = connect().await;
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let (available, held) = held(&db, &x, "USDT").await;
                assert!(held <= available + 1e-9, "held {held} > available {available}");
                samples += 1;
            }
            samples
        })
    };
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(connect().await);
    }
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut handles = Vec::new();
    for (n, db) in sessions.into_iter().enumerate() {
        let (barrier, x) = (barrier.clone(), x.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let (mut ok, mut refused) = (0, 0);
            let mut seed = n as u64 * 7919 + 1;
            let mut next = move || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) as usize
            };
            for _ in 0..ROUNDS {
                let amount = format!("{}.{:02}", 1 + next() % 200, next() % 100);
                match reserve(&db, &x, "USDT", &amount).await {
                    Some(id) => {
                        ok += 1;
                        match next() % 3 {
                            0 => assert!(db
                                .query_one("SELECT botai_release_reservation($1)", &[&id])
                                .await
                                .unwrap()
                                .get::<_, bool>(0)),
                            1 => assert!(db
                                .query_one("SELECT botai_commit_reservation($1)", &[&id])
                                .await
                                .unwrap()
                                .get::<_, bool>(0)),
                            _ => {}
                        }
                    }
                    None => refused += 1,
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for h in handles {
        let (o, r) = h.await.unwrap();
        ok += o;
        refused += r;
    }
    stop.store(true, Ordering::Relaxed);
    let samples = observer.await.unwrap();
    let (available, held_total) = held(&admin, &x, asset).await;
    println!("  {ok} reservations, {refused} refused, {samples} observer samples; held {held_total} of {available}");
    assert!(held_total <= available);
    assert!(refused > 0, "the funds ran out at some point: the limit was exercised");
    // The books balance: held = sum of held and committed amounts.
    let sum: f64 = admin
        .query_one(
            "SELECT coalesce(sum(amount), 0)::float8 FROM botai.reservations WHERE exchange = $1 \
             AND status IN ('held', 'committed')",
            &[&x],
        )
        .await
        .unwrap()
        .get(0);
    assert!((sum - held_total).abs() < 1e-6);
}

#[tokio::test]
async fn an_expired_reservation_stops_counting_without_a_sweeper() {
    let db = connect().await;
    db.batch_execute("SET botai.balance_safety_margin = 0").await.unwrap();
    // The monitor may mark an expired reservation at any moment; the proof
    // needs a snapshot in which it is still stored as held. Retry if the
    // monitor happened to get there first.
    for attempt in 1..=5 {
        let (x, asset) = (unique("bx"), "USDT");
        balance(&db, &x, asset, "1000").await;
        let id: Uuid = db
            .query_one("SELECT botai_reserve_balance($1, 'USDT', 900, 'short', NULL, '1 second')", &[&x])
            .await
            .unwrap()
            .get(0);
        assert!(reserve(&db, &x, asset, "200").await.is_none(), "900 held, 100 free");
        tokio::time::sleep(Duration::from_millis(1050)).await;
        db.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
        let stored: String = db
            .query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        let second = reserve(&db, &x, asset, "200").await;
        db.batch_execute("COMMIT").await.unwrap();
        assert!(second.is_some(), "the expired 900 no longer counts");
        if stored != "held" {
            println!("  attempt {attempt}: the monitor marked it first; again");
            continue;
        }
        let released: bool = db.query_one("SELECT botai_release_reservation($1)", &[&id]).await.unwrap().get(0);
        assert!(!released, "an expired reservation cannot be released");
        let committed: bool = db.query_one("SELECT botai_commit_reservation($1)", &[&id]).await.unwrap().get(0);
        assert!(!committed, "nor committed");
        let status: String = db
            .query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "expired");
        return;
    }
    panic!("the reservation was never observed stored as held after its expiry");
}

#[tokio::test]
async fn commit_holds_until_a_snapshot_newer_than_the_commit() {
    let db = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    db.batch_execute("SET botai.balance_safety_margin = 0").await.unwrap();
    db.execute("SELECT botai_update_balance($1, 'usdt', 1000, 1000, 0, now() - interval '1 minute')", &[&x])
        .await
        .unwrap();
    let id = reserve(&db, &x, asset, "600").await.unwrap();
    assert!(db.query_one("SELECT botai_commit_reservation($1)", &[&id]).await.unwrap().get::<_, bool>(0));
    assert!(!db.query_one("SELECT botai_commit_reservation($1)", &[&id]).await.unwrap().get::<_, bool>(0), "twice");
    assert!(!db.query_one("SELECT botai_release_reservation($1)", &[&id]).await.unwrap().get::<_, bool>(0));

    // A snapshot taken before the commit (fetched earlier, delivered late)
    // does not yet include the order: the 600 stays held.
    let stored: bool = db
        .query_one("SELECT botai_update_balance($1, 'USDT', 1000, 1000, 0, now() - interval '10 seconds')", &[&x])
        .await
        .unwrap()
        .get(0);
    assert!(stored);
    assert_eq!(held(&db, &x, asset).await, (1000.0, 600.0));
    assert!(reserve(&db, &x, asset, "500").await.is_none());
    // An older snapshot than the stored one is ignored.
    let older: bool = db
        .query_one("SELECT botai_update_balance($1, 'USDT', 5, 5, 0, now() - interval '30 seconds')", &[&x])
        .await
        .unwrap()
        .get(0);
    assert!(!older);
    // A snapshot taken after the commit includes the order: it retires.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let fresh: bool =
        db.query_one("SELECT botai_update_balance($1, 'USDT', 1000, 400, 600)", &[&x]).await.unwrap().get(0);
    assert!(fresh);
    assert_eq!(held(&db, &x, asset).await, (400.0, 0.0));
    let status: String =
        db.query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(status, "retired");
    assert!(reserve(&db, &x, asset, "300").await.is_some());
    assert!(reserve(&db, &x, asset, "200").await.is_none());
}

#[tokio::test]
async fn commit_of_a_smaller_amount_holds_only_that() {
    let db = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    db.batch_execute("SET botai.balance_safety_margin = 0").await.unwrap();
    balance(&db, &x, asset, "100").await;
    let id = reserve(&db, &x, asset, "80").await.unwrap();
    expect_sqlstate(
        "commit more than reserved",
        db.query_one("SELECT botai_commit_reservation($1, 81)", &[&id]).await,
        "22023",
    );
    assert!(db.query_one("SELECT botai_commit_reservation($1, 30)", &[&id]).await.unwrap().get::<_, bool>(0));
    assert_eq!(held(&db, &x, asset).await, (100.0, 30.0));
}

#[tokio::test]
async fn repeatable_read_reservers_cannot_overdraw_from_a_stale_snapshot() {
    let a = connect().await;
    let b = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    balance(&a, &x, asset, "100").await;
    for db in [&a, &b] {
        db.batch_execute("SET botai.balance_safety_margin = 0; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
            .await
            .unwrap();
    }
    assert!(reserve(&a, &x, asset, "80").await.is_some());
    let b_result = tokio::spawn(async move {
        let r = b
            .query_one("SELECT botai_reserve_balance($1, 'USDT', 80, 'test')", &[&x])
            .await
            .map(|r| r.get::<_, Option<Uuid>>(0));
        (r, b)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.batch_execute("COMMIT").await.unwrap();
    let (r, b) = b_result.await.unwrap();
    match r {
        Ok(id) => panic!("B reserved from a stale snapshot: {id:?}"),
        Err(e) => assert_eq!(botai_tests::sqlstate(&e).as_deref(), Some("40001"), "{e}"),
    }
    b.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn bad_balance_input_is_refused_and_nothing_written() {
    let db = connect().await;
    let (x, asset) = (unique("bx"), "USDT");
    balance(&db, &x, asset, "100").await;
    for bad in ["'NaN'", "-1", "0", "'Infinity'", "'-Infinity'"] {
        expect_sqlstate(
            &format!("reserve {bad}"),
            db.query_one(&format!("SELECT botai_reserve_balance($1, 'USDT', {bad}, 'test')"), &[&x]).await,
            "22023",
        );
        expect_sqlstate(
            &format!("check {bad}"),
            db.query_one(&format!("SELECT * FROM botai_check_balance_availability($1, 'USDT', {bad})"), &[&x]).await,
            "22023",
        );
    }
    for (what, sql) in [
        ("negative total", "SELECT botai_update_balance($1, 'USDT', -1, 0, 0)"),
        ("NaN available", "SELECT botai_update_balance($1, 'USDT', 10, 'NaN', 0)"),
        ("available > total", "SELECT botai_update_balance($1, 'USDT', 10, 11, 0)"),
        ("infinite locked", "SELECT botai_update_balance($1, 'USDT', 10, 10, 'Infinity')"),
        ("snapshot from the future", "SELECT botai_update_balance($1, 'USDT', 10, 10, 0, now() + interval '1 hour')"),
        ("zero ttl", "SELECT botai_reserve_balance($1, 'USDT', 1, 'test', NULL, '0 seconds')"),
        ("negative ttl", "SELECT botai_reserve_balance($1, 'USDT', 1, 'test', NULL, '-5 minutes')"),
        ("empty purpose", "SELECT botai_reserve_balance($1, 'USDT', 1, '')"),
        ("metadata array", "SELECT botai_reserve_balance($1, 'USDT', 1, 'test', '[1]')"),
    ] {
        expect_sqlstate(what, db.query_one(sql, &[&x]).await, "22023");
    }
    expect_sqlstate(
        "NULL amount",
        db.query_one("SELECT botai_reserve_balance($1, 'USDT', NULL, 'test')", &[&x]).await,
        "22004",
    );
    let unknown = Uuid::new_v4();
    expect_sqlstate(
        "release unknown",
        db.query_one("SELECT botai_release_reservation($1)", &[&unknown]).await,
        "P0002",
    );
    expect_sqlstate("commit unknown", db.query_one("SELECT botai_commit_reservation($1)", &[&unknown]).await, "P0002");
    let nowhere = unique("nowhere");
    expect_sqlstate(
        "no snapshot",
        db.query_one("SELECT botai_reserve_balance($1, 'USDT', 1, 't')", &[&nowhere]).await,
        "P0002",
    );
    let rows: i64 =
        db.query_one("SELECT count(*) FROM botai.reservations WHERE exchange = $1", &[&x]).await.unwrap().get(0);
    assert_eq!(rows, 0, "no reservation written by a refused call");
    assert_eq!(held(&db, &x, asset).await, (100.0, 0.0), "the snapshot is unchanged");
    let (ok, error): (bool, Option<String>) = {
        let r = db.query_one("SELECT * FROM botai_check_balance_availability($1, 'USDT', 99)", &[&x]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert!(!ok, "99 + 2% margin > 100");
    println!("  check 99 of 100: {}", error.unwrap());
}
