//! Rate limits (SQL_API.md §3) from outside: many sessions booking the same
//! windows in shared memory.

use std::sync::Arc;
use std::time::Duration;

use botai_tests::{connect, expect_sqlstate, sessions, unique};
use chrono::{DateTime, Utc};
use tokio::sync::Barrier;
use tokio_postgres::Client;

/// A fresh exchange with the given (endpoint, max_weight, window_seconds, default_weight) rows.
async fn exchange(db: &Client, rows: &[(&str, i32, f64, i32)]) -> String {
    let name = unique("x");
    for (endpoint, max_weight, window, weight) in rows {
        db.execute(
            "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&name, endpoint, max_weight, window, weight],
        )
        .await
        .unwrap();
    }
    name
}

/// The booked moment: statement_timestamp() + delay (autocommit: now() + delay).
async fn acquire(db: &Client, exchange: &str, endpoint: &str, weight: Option<i32>) -> DateTime<Utc> {
    db.query_one(
        "SELECT now() + make_interval(secs => botai_rate_acquire($1, $2, $3))",
        &[&exchange, &endpoint, &weight],
    )
    .await
    .unwrap()
    .get(0)
}

/// Largest weight in any window (x - W, x] over the bookings.
fn max_in_window(bookings: &[(DateTime<Utc>, i64)], window: Duration) -> i64 {
    let mut sorted = bookings.to_vec();
    sorted.sort();
    let w = chrono::Duration::from_std(window).unwrap();
    let mut worst = 0;
    let mut lo = 0;
    let mut sum = 0;
    for hi in 0..sorted.len() {
        sum += sorted[hi].1;
        while sorted[lo].0 <= sorted[hi].0 - w {
            sum -= sorted[lo].1;
            lo += 1;
        }
        // Bookings at the same moment all belong to the window ending there.
        let mut same = sum;
        let mut k = hi + 1;
        while k < sorted.len() && sorted[k].0 == sorted[hi].0 {
            same += sorted[k].1;
            k += 1;
        }
        worst = worst.max(same);
    }
    worst
}

/// The longest wait of a request that fits at once. Not exactly zero: the
/// limiter's clock is shared by every session and never goes back, so a call
/// whose transaction started just before another session booked (the tests
/// of this binary run side by side) books at that booking's moment, a few
/// microseconds to milliseconds past its own start (CI saw 0.4 ms). A window
/// wait is seconds.
const FITS_NOW: f64 = 0.05;

#[tokio::test]
async fn sixteen_sessions_never_overbook_any_window() {
    const SESSIONS: usize = 16;
    // 320 requests: the last books about 45 s ahead, well inside
    // botai.rate_limit_max_wait (60 s).
    const CALLS: usize = 20;
    let admin = connect().await;
    // Effective limits with the 0.9 margin: order 18/2s, market 22/2s, global 27/3s.
    let x = exchange(&admin, &[("order", 20, 2.0, 1), ("market", 25, 2.0, 2), ("global", 30, 3.0, 1)]).await;
    let sessions = sessions(SESSIONS).await;
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut handles = Vec::new();
    for (n, db) in sessions.into_iter().enumerate() {
        let (barrier, x) = (barrier.clone(), x.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut booked = Vec::new();
            for i in 0..CALLS {
                let endpoint = if (n + i) % 3 == 0 { "market" } else { "order" };
                let weight = if endpoint == "market" { 2 } else { 1 };
                let r = db
                    .query_one(
                        "SELECT now() + make_interval(secs => botai_rate_acquire($1, $2)), \
                                extract(epoch FROM clock_timestamp() - now())::float8",
                        &[&x, &endpoint],
                    )
                    .await
                    .unwrap();
                booked.push((endpoint, r.get::<_, DateTime<Utc>>(0), weight, r.get::<_, f64>(1)));
            }
            booked
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let oldest = all.iter().map(|b| b.3).fold(0.0, f64::max);
    println!("  oldest statement at the end of its call: {:.1} ms", oldest * 1e3);
    let of = |e: &str| all.iter().filter(|b| b.0 == e).map(|b| (b.1, b.2)).collect::<Vec<_>>();
    let order = max_in_window(&of("order"), Duration::from_secs(2));
    let market = max_in_window(&of("market"), Duration::from_secs(2));
    let global = max_in_window(&all.iter().map(|b| (b.1, b.2)).collect::<Vec<_>>(), Duration::from_secs(3));
    let last = all.iter().map(|b| b.1).max().unwrap();
    let first = all.iter().map(|b| b.1).min().unwrap();
    println!(
        "  {} bookings over {:.1} s: max per window order {order}/18, market {market}/22, global {global}/27",
        all.len(),
        (last - first).num_milliseconds() as f64 / 1e3
    );
    assert!(order <= 18 && market <= 22 && global <= 27);
    // The limiter packs windows tightly: a loose limiter would pass too, so
    // also check it actually used the capacity.
    assert_eq!(global, 27, "the global window is filled to its limit, not below it");
    let stats: i64 = admin
        .query_one("SELECT sum(requests)::bigint FROM botai_rate_stats($1) WHERE endpoint <> 'global'", &[&x])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats, (SESSIONS * CALLS) as i64, "stats count every booking");
}

#[tokio::test]
async fn weight_above_the_effective_limit_is_an_error() {
    let db = connect().await;
    let x = exchange(&db, &[("order", 10, 1.0, 1)]).await;
    expect_sqlstate("weight 10 > 9", db.query_one("SELECT botai_rate_acquire($1, 'order', 10)", &[&x]).await, "22023");
    let ok: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order', 9)", &[&x]).await.unwrap().get(0);
    assert!(ok < FITS_NOW, "weight 9 fits at once: waited {ok}");
}

#[tokio::test]
async fn penalize_delays_the_next_acquire_by_at_least_the_penalty() {
    let db = connect().await;
    let x = exchange(&db, &[("order", 1000, 1.0, 1), ("market", 1000, 1.0, 1), ("global", 1000, 1.0, 1)]).await;
    let penalized_at: DateTime<Utc> =
        db.query_one("SELECT now() FROM (SELECT botai_rate_penalize($1, 'order', 2.5)) p", &[&x]).await.unwrap().get(0);
    let next = acquire(&db, &x, "order", None).await;
    println!("  next order booked {} ms after the penalty", (next - penalized_at).num_milliseconds());
    assert!(next >= penalized_at + chrono::Duration::milliseconds(2500));
    let other = acquire(&db, &x, "market", None).await;
    assert!(other < penalized_at + chrono::Duration::milliseconds(1000), "other endpoints are not penalised");

    // A penalty on `global` stops the whole exchange.
    let at: DateTime<Utc> =
        db.query_one("SELECT now() FROM (SELECT botai_rate_penalize($1, 'global', 3)) p", &[&x]).await.unwrap().get(0);
    assert!(acquire(&db, &x, "market", None).await >= at + chrono::Duration::seconds(3));
    let stats: i64 =
        db.query_one("SELECT sum(penalties)::bigint FROM botai_rate_stats($1)", &[&x]).await.unwrap().get(0);
    assert_eq!(stats, 2);
}

#[tokio::test]
async fn try_acquire_books_only_what_fits_now() {
    let db = connect().await;
    let x = exchange(&db, &[("order", 3, 30.0, 1)]).await; // effective 2 per 30 s
    async fn t(db: &Client, x: &str) -> f64 {
        db.query_one("SELECT botai_rate_try_acquire($1, 'order')", &[&x]).await.unwrap().get(0)
    }
    assert_eq!(t(&db, &x).await, 0.0);
    assert_eq!(t(&db, &x).await, 0.0);
    let wait = t(&db, &x).await;
    // The window botai books is the venue's plus botai.rate_limit_send_jitter (0.2 s).
    assert!(wait > 29.0 && wait <= 30.2, "third request waits for the first to leave the window: {wait}");
    let used: i32 =
        db.query_one("SELECT used FROM botai_rate_usage($1) WHERE endpoint = 'order'", &[&x]).await.unwrap().get(0);
    assert_eq!(used, 2, "the refused request booked nothing");
    let refused: i64 =
        db.query_one("SELECT refused FROM botai_rate_stats($1) WHERE endpoint = 'order'", &[&x]).await.unwrap().get(0);
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn usage_and_stats_add_up() {
    let db = connect().await;
    let x = exchange(&db, &[("order", 10, 60.0, 2), ("global", 100, 60.0, 1)]).await; // order: 9 per minute
    let mut delayed = 0;
    for _ in 0..6 {
        let d: f64 = db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get(0);
        delayed += i64::from(d > 0.001);
    }
    // Weight 2: four fit in 9, the fifth and sixth wait a minute.
    assert_eq!(delayed, 2);
    let row = db
        .query_one(
            "SELECT used, effective_limit, window_seconds, utilization, next_free_in FROM botai_rate_usage($1) \
             WHERE endpoint = 'order'",
            &[&x],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 8, "four bookings of weight 2 inside the current window");
    assert_eq!(row.get::<_, i32>(1), 9);
    assert_eq!(row.get::<_, f64>(2), 60.0);
    assert!((row.get::<_, f64>(3) - 8.0 / 9.0).abs() < 1e-9);
    assert!(row.get::<_, f64>(4) > 59.0, "the next weight-2 request fits only after the booked ones");
    let s = db
        .query_one(
            "SELECT requests, delayed, total_wait_seconds FROM botai_rate_stats($1) WHERE endpoint = 'order'",
            &[&x],
        )
        .await
        .unwrap();
    assert_eq!(s.get::<_, i64>(0), 6);
    assert_eq!(s.get::<_, i64>(1), 2);
    assert!(s.get::<_, f64>(2) > 119.0);
    let global_used: i32 =
        db.query_one("SELECT used FROM botai_rate_usage($1) WHERE endpoint = 'global'", &[&x]).await.unwrap().get(0);
    assert_eq!(global_used, 8, "bookings of an endpoint count on global too (those in the window now)");
}

#[tokio::test]
async fn editing_a_limit_applies_at_commit_to_every_session() {
    let admin = connect().await;
    let user = connect().await;
    let x = exchange(&admin, &[("order", 100, 60.0, 1)]).await;
    for _ in 0..5 {
        let d: f64 = user.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get(0);
        assert!(d < FITS_NOW, "fits at once: waited {d}");
    }
    // An edit that rolls back changes nothing.
    admin.batch_execute("BEGIN").await.unwrap();
    admin.execute("UPDATE botai.rate_limits SET max_weight = 2 WHERE exchange = $1", &[&x]).await.unwrap();
    admin.batch_execute("ROLLBACK").await.unwrap();
    let d: f64 = user.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get(0);
    assert!(d < FITS_NOW, "the rolled-back edit changed nothing: waited {d}");
    // A committed edit applies to the other session's very next call.
    admin.execute("UPDATE botai.rate_limits SET max_weight = 6 WHERE exchange = $1", &[&x]).await.unwrap();
    let d: f64 = user.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get(0);
    assert!(d > 59.0, "6 bookings already fill the new effective limit of 5; waited {d}");
}

#[tokio::test]
async fn bad_rate_limit_input_is_refused() {
    let db = connect().await;
    let x = exchange(&db, &[("order", 10, 1.0, 1)]).await;
    let none: Option<&str> = None;
    expect_sqlstate("NULL exchange", db.query_one("SELECT botai_rate_acquire($1)", &[&none]).await, "22004");
    expect_sqlstate("empty exchange", db.query_one("SELECT botai_rate_acquire(' ', 'order')", &[]).await, "22023");
    let unknown = unique("nowhere");
    expect_sqlstate(
        "unknown exchange",
        db.query_one("SELECT botai_rate_acquire($1, 'order')", &[&unknown]).await,
        "P0002",
    );
    expect_sqlstate(
        "endpoint without limit or global",
        db.query_one("SELECT botai_rate_acquire($1, 'klines')", &[&x]).await,
        "P0002",
    );
    expect_sqlstate("zero weight", db.query_one("SELECT botai_rate_acquire($1, 'order', 0)", &[&x]).await, "22023");
    expect_sqlstate(
        "negative weight",
        db.query_one("SELECT botai_rate_acquire($1, 'order', -3)", &[&x]).await,
        "22023",
    );
    for bad in ["'NaN'", "-1", "0", "'Infinity'"] {
        expect_sqlstate(
            &format!("penalize {bad} seconds"),
            db.query_one(&format!("SELECT botai_rate_penalize($1, 'order', {bad})"), &[&x]).await,
            "22023",
        );
    }
    expect_sqlstate(
        "penalize for a week",
        db.query_one("SELECT botai_rate_penalize($1, 'order', 604800)", &[&x]).await,
        "22003",
    );
    let stats =
        db.query("SELECT * FROM botai_rate_stats($1) WHERE requests > 0 OR penalties > 0", &[&x]).await.unwrap();
    assert!(stats.is_empty(), "nothing booked or penalised by refused calls");
}

/// The venue's limit headers (botai_rate_observe) tighten botai's window
/// for every session when something outside botai used the same key, until
/// the venue's reset; they never loosen it, and the same news twice counts
/// once.
#[tokio::test]
async fn the_venue_s_headers_tighten_the_window_for_every_session() {
    let admin = connect().await;
    // Effective 9 per 10 s.
    let x = exchange(&admin, &[("order", 10, 10.0, 1)]).await;
    let bot = connect().await;
    let other = connect().await;
    for _ in 0..2 {
        let wait: f64 = bot.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get(0);
        assert!(wait < FITS_NOW, "fits at once: waited {wait}");
    }
    // The venue says 3 of 10 are left, resetting in 5 s: it counted 7, botai sent 2.
    let observe = "SELECT botai_rate_observe($1, 'order', $2, 10, now() + interval '5 seconds')";
    let added: i32 = bot.query_one(observe, &[&x, &3i32]).await.unwrap().get(0);
    assert_eq!(added, 5, "the venue counted 5 requests botai did not send");
    let again: i32 = bot.query_one(observe, &[&x, &3i32]).await.unwrap().get(0);
    assert_eq!(again, 0, "the same headers twice count once");
    let looser: i32 = bot.query_one(observe, &[&x, &9i32]).await.unwrap().get(0);
    assert_eq!(looser, 0, "a venue that counted less never loosens botai's window");
    // Another session: 7 of the effective 9 are used; two fit now, the third
    // waits for the venue's reset, not for botai's whole window.
    let mut waits = Vec::new();
    for _ in 0..3 {
        waits.push(other.query_one("SELECT botai_rate_acquire($1, 'order')", &[&x]).await.unwrap().get::<_, f64>(0));
    }
    println!("  after the venue reported 7 of 10 used (botai sent 2): waits {waits:?}");
    assert!(waits[..2].iter().all(|w| *w < FITS_NOW), "two fit at once: {waits:?}");
    assert!(waits[2] > 4.0 && waits[2] <= 5.1, "the third waits until the venue's reset: {}", waits[2]);

    for (remaining, limit, code) in [(11, 10, "22023"), (-1, 10, "22023"), (0, 0, "22023")] {
        expect_sqlstate(
            "impossible headers",
            bot.query_one("SELECT botai_rate_observe($1, 'order', $2, $3)", &[&x, &remaining, &limit]).await,
            code,
        );
    }
    expect_sqlstate(
        "no remaining",
        bot.query_one("SELECT botai_rate_observe($1, 'order', NULL, 10)", &[&x]).await,
        "22004",
    );
}
