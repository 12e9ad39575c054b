//! Balances (SQL_API.md §4) from outside: many sessions reserving against
//! one balance, a concurrent observer, commit semantics against snapshots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use botai_tests::{connect, expect_sqlstate, sessions, unique};
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
    let sessions = sessions(SESSIONS).await;
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
                        let done = match next() % 4 {
                            0 => Some(db.query_one("SELECT botai_release_reservation($1)", &[&id]).await),
                            1 => Some(db.query_one("SELECT botai_commit_reservation($1)", &[&id]).await),
                            // The order used less than was held.
                            2 => Some(
                                db.query_one(
                                    "SELECT botai_commit_reservation($1, round($2::text::numeric / 3, 12))",
                                    &[&id, &amount],
                                )
                                .await,
                            ),
                            _ => None,
                        };
                        if let Some(done) = done {
                            assert!(done.unwrap().get::<_, bool>(0));
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
    books_balance(&admin, &x, held_total).await;
    // One more reservation folds what is pending; the figures stay exact.
    let (_, before) = held(&admin, &x, asset).await;
    let id = reserve(&admin, &x, asset, "0.01").await.expect("funds left for 0.01");
    admin.query_one("SELECT botai_release_reservation($1)", &[&id]).await.unwrap();
    let (_, after) = held(&admin, &x, asset).await;
    assert!((after - before).abs() < 1e-9, "folding changed the reserved figure: {before} -> {after}");
    books_balance(&admin, &x, after).await;
}

/// The reserved figure of the status view equals the sum over reservations
/// that hold funds (held and unexpired at the full amount, committed at the
/// committed amount), and the balance invariant holds
/// (`botai_tests::balance_violations`).
async fn books_balance(db: &Client, exchange: &str, reserved: f64) {
    let row = db
        .query_one(
            "SELECT coalesce(sum(coalesce(committed_amount, amount)), 0)::float8 \
             FROM botai.reservations_status WHERE exchange = $1 AND holds_funds",
            &[&exchange],
        )
        .await
        .unwrap();
    let exact: f64 = row.get(0);
    assert!((exact - reserved).abs() < 1e-6, "view says {reserved} reserved, the reservations hold {exact}");
    let broken = botai_tests::balance_violations(db, Some(exchange)).await;
    assert!(broken.is_empty(), "the balance invariant: {broken:?}");
}

#[tokio::test]
async fn a_reservation_that_needs_everything_freed_gets_it_however_much_is_pending() {
    // A balance snapshot retires every committed reservation it includes
    // without settling the balance row; reservers fold those amounts a
    // batch at a time. A reservation that only fits once all of them are
    // folded (far more than one batch) is still admitted.
    let db = connect().await;
    // Snapshots 10 ms after the commits: no allowance for clock skew here.
    db.batch_execute("SET botai.balance_safety_margin = 0; SET botai.balance_clock_skew = 0").await.unwrap();
    let (x, asset) = (unique("bx"), "USDT");
    balance(&db, &x, asset, "300").await;
    let mut ids = Vec::new();
    while let Some(id) = reserve(&db, &x, asset, "1").await {
        ids.push(id);
    }
    assert_eq!(ids.len(), 300);
    for (i, id) in ids.iter().enumerate() {
        let sql =
            if i % 2 == 0 { "SELECT botai_commit_reservation($1)" } else { "SELECT botai_commit_reservation($1, 0.5)" };
        assert!(db.query_one(sql, &[id]).await.unwrap().get::<_, bool>(0));
    }
    // 150 at 1 and 150 at 0.5 stay held until a snapshot includes them.
    assert_eq!(held(&db, &x, asset).await, (300.0, 225.0));
    books_balance(&db, &x, 225.0).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    db.execute("SELECT botai_update_balance($1, 'USDT', 300, 300, 0)", &[&x]).await.unwrap();
    let pending: i64 = db
        .query_one(
            "SELECT count(*) FROM botai.reservations WHERE exchange = $1 AND status = 'retired' AND counted > 0",
            &[&x],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 300, "retired, not yet folded into the balance row");
    assert_eq!(held(&db, &x, asset).await, (300.0, 0.0), "readers see the retirement at once");
    assert!(reserve(&db, &x, asset, "300").await.is_some(), "all 300 free once every retirement is folded");
    books_balance(&db, &x, 300.0).await;
    assert!(reserve(&db, &x, asset, "0.01").await.is_none());
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
    // Snapshots 10 ms after the commit: no allowance for clock skew here
    // (tests/hostile/transactions.rs checks the allowance).
    db.batch_execute("SET botai.balance_safety_margin = 0; SET botai.balance_clock_skew = 0").await.unwrap();
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

/// Engines starting together each send their first snapshot at once (the
/// bug this guards: the older one failed with 55006 and the engine exited).
/// Concurrent snapshots never fail: the newest is stored, older ones
/// return false, and a snapshot's figures are stored whole.
#[tokio::test]
async fn concurrent_snapshots_store_the_newest_and_never_fail() {
    const SESSIONS: usize = 16;
    let x = unique("bx");
    let admin = connect().await;
    balance(&admin, &x, "USDT", "1").await;
    let start = chrono::Utc::now();
    for round in 0..5 {
        let taken = start + chrono::Duration::seconds(round);
        let sessions = sessions(SESSIONS).await;
        let barrier = Arc::new(Barrier::new(SESSIONS));
        let mut handles = Vec::new();
        for (i, db) in sessions.into_iter().enumerate() {
            let (barrier, x) = (barrier.clone(), x.clone());
            // Session i reports i as its figure, taken i ms after the
            // round's instant: the newest snapshot is session 15's, with 15.
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                db.query_one(
                    "SELECT botai_update_balance($1, 'USDT', $2::int, $2::int, 0, \
                       $3::timestamptz + $2::int * interval '1 millisecond')",
                    &[&x, &(i as i32), &taken],
                )
                .await
                .map(|r| r.get::<_, bool>(0))
            }));
        }
        let mut stored = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(s) => stored += usize::from(s),
                Err(e) => panic!("a concurrent snapshot failed: {e:?}"),
            }
        }
        assert!(stored >= 1, "round {round}: the newest snapshot was stored");
        let (available, _) = held(&admin, &x, "USDT").await;
        assert_eq!(available, (SESSIONS - 1) as f64, "round {round}: the newest snapshot's figures");
    }
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

#[tokio::test]
async fn expiry_is_exact_with_mixed_lifetimes_for_reservers_and_readers() {
    // The balance row remembers the earliest expiry among held
    // reservations, so reservers skip the search for lapsed ones until
    // then: a short reservation placed after a long one, or after a search,
    // must still stop counting the moment it expires.
    let db = connect().await;
    db.batch_execute("SET botai.balance_safety_margin = 0").await.unwrap();
    let (x, asset) = (unique("bx"), "USDT");
    balance(&db, &x, asset, "100").await;
    let reserve_for = |amount: &'static str, ttl: &'static str| {
        let (db, x) = (&db, x.clone());
        async move {
            db.query_one(
                "SELECT botai_reserve_balance($1, 'USDT', $2::text::numeric, 'test', NULL, $3::text::interval)",
                &[&x, &amount, &ttl],
            )
            .await
            .unwrap()
            .get::<_, Option<Uuid>>(0)
        }
    };
    assert!(reserve_for("40", "10 minutes").await.is_some());
    assert!(reserve_for("40", "1 second").await.is_some());
    assert!(reserve_for("40", "10 minutes").await.is_none(), "20 free");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Readers see the lapsed 40 at once, before any reserver folds it.
    assert_eq!(held(&db, &x, asset).await, (100.0, 40.0));
    assert!(reserve_for("40", "1 second").await.is_some(), "the 1-second 40 lapsed");
    assert!(reserve_for("30", "10 minutes").await.is_none(), "40 + 40 held, 20 free");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(held(&db, &x, asset).await, (100.0, 40.0));
    assert!(reserve_for("60", "10 minutes").await.is_some(), "the second 1-second 40 lapsed too");
    books_balance(&db, &x, 100.0).await;
}

/// A snapshot from a venue on the database's own clock (the paper exchange
/// in the daemon's process) says so with `clock_skew => 0`: it retires the
/// commits made before it at once, where the default allowance
/// (botai.balance_clock_skew, 2 s) keeps them held two seconds longer. A
/// negative or absurd skew is refused and changes nothing.
#[tokio::test]
async fn a_snapshot_on_the_database_s_clock_retires_commits_made_before_it_at_once() {
    let db = connect().await;
    let x = unique("skew");
    balance(&db, &x, "BTC", "1").await;
    let id = reserve(&db, &x, "BTC", "0.5").await.expect("reserved");
    db.execute("SELECT botai_commit_reservation($1)", &[&id]).await.unwrap();
    let snapshot = |skew: Option<&'static str>| {
        let db = &db;
        let x = x.clone();
        async move {
            let sql = match skew {
                None => "SELECT botai_update_balance($1, 'BTC', 0.5, 0.5, 0, clock_timestamp())",
                Some(_) => "SELECT botai_update_balance($1, 'BTC', 0.5, 0.5, 0, clock_timestamp(), $2::text::interval)",
            };
            match skew {
                None => db.query_one(sql, &[&x]).await,
                Some(s) => db.query_one(sql, &[&x, &s]).await,
            }
        }
    };
    // The venue spent the 0.5: a snapshot right after the commit.
    snapshot(None).await.unwrap();
    let (available, held_now) = held(&db, &x, "BTC").await;
    assert_eq!((available, held_now), (0.5, 0.5), "within the default skew the commit still holds its 0.5");
    expect_sqlstate("a negative skew", snapshot(Some("-1 second")).await, "22023");
    // A skew below the server's only for a venue the server's owner listed
    // as on the database's clock (botai.balance_same_clock_exchanges).
    expect_sqlstate("a venue not on the database's clock", snapshot(Some("0")).await, "22023");
    db.batch_execute(&format!("SET botai.balance_same_clock_exchanges = 'paper, {x}'")).await.unwrap();
    snapshot(Some("0")).await.unwrap();
    let (available, held_now) = held(&db, &x, "BTC").await;
    assert_eq!((available, held_now), (0.5, 0.0), "on the same clock the snapshot includes the commit: retired");
}
