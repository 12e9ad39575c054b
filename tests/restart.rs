//! What the rate limiter's windows are after the server restarts. This test
//! binary restarts the real server (cleanly, then by crashing a backend), so
//! it runs on its own: cargo runs test binaries one after another.

use std::time::Duration;

use botai_tests::{connect, unique};
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

fn as_root(args: &[&str]) {
    let out = botai_tests::as_root(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn reconnect() -> Client {
    botai_tests::reconnect_within(Duration::from_secs(30)).await
}

async fn exchange(db: &Client, max_weight: i32, window: f64) -> String {
    let name = unique("rs");
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ($1, 'order', $2, $3)",
        &[&name, &max_weight, &window],
    )
    .await
    .unwrap();
    name
}

async fn acquire(db: &Client, x: &str) -> (DateTime<Utc>, f64) {
    let r = db
        .query_one("SELECT now() + make_interval(secs => d), d FROM botai_rate_acquire($1, 'order') AS d", &[&x])
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// What a crash can hide: bookings up to this far ahead (set for the test).
const MAX_WAIT: i64 = 8;

fn restart(mode: &str) {
    as_root(&["pg_ctlcluster", "15", "botai", "restart", "-m", mode]);
}

#[tokio::test]
async fn windows_survive_a_clean_restart_and_count_as_full_after_a_crash() {
    let db = connect().await;
    db.batch_execute(&format!("ALTER SYSTEM SET botai.rate_limit_max_wait = {MAX_WAIT}")).await.unwrap();
    // --- clean restart: the windows are restored exactly --------------------
    let used = exchange(&db, 3, 6.0).await; // effective 2 per 6 s
    let unused = exchange(&db, 3, 6.0).await;
    let (first, _) = acquire(&db, &used).await;
    acquire(&db, &used).await;
    drop(db);
    restart("fast");
    let db = reconnect().await;
    let max_wait: String = db.query_one("SHOW botai.rate_limit_max_wait", &[]).await.unwrap().get(0);
    assert_eq!(max_wait, format!("{MAX_WAIT}s"));
    let (third, _) = acquire(&db, &used).await;
    println!(
        "  after a clean restart the third booking waits until {} ms after the first",
        (third - first).num_milliseconds()
    );
    // The window botai books is the venue's 6 s plus botai.rate_limit_send_jitter (200 ms).
    assert_eq!(
        third,
        first + chrono::Duration::milliseconds(6200),
        "restored exactly: the third fits when the first leaves"
    );
    let (_, delay) = acquire(&db, &unused).await;
    assert_eq!(delay, 0.0, "an unused key is free: what was booked before the restart is known");

    // --- crash: what was booked is unknown, windows count as full -----------
    // A booking 4 s ahead is handed out just before the crash; its client
    // sends at that moment whatever the server does.
    let ahead = exchange(&db, 3, 4.0).await; // effective 2 per 4 s
    acquire(&db, &ahead).await;
    acquire(&db, &ahead).await;
    let (booked_ahead, wait) = acquire(&db, &ahead).await;
    assert!(wait > 3.0, "booked ahead ({wait} s)");
    let fresh = exchange(&db, 100, 20.0).await;
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let crashed_at = Utc::now();
    as_root(&["kill", "-9", &pid.to_string()]);
    drop(db);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = reconnect().await;
    let (after, _) = acquire(&db, &ahead).await;
    println!(
        "  a booking handed out before the crash for {} ms after it; the first after the restart: {} ms after it",
        (booked_ahead - crashed_at).num_milliseconds(),
        (after - crashed_at).num_milliseconds()
    );
    assert!(after >= booked_ahead + chrono::Duration::seconds(4), "no window holds both");
    assert!(after >= crashed_at + chrono::Duration::seconds(MAX_WAIT + 4), "unknown until start + max_wait + window");
    let (booked, delay) = acquire(&db, &fresh).await;
    println!(
        "  after a backend crash a never-used key waits {delay:.1} s (booked {} ms after the crash)",
        (booked - crashed_at).num_milliseconds()
    );
    assert!(delay > 5.0, "after a crash even an unused key counts as full for its window");
    assert!(booked >= crashed_at + chrono::Duration::seconds(20 + MAX_WAIT));
    assert!(booked <= crashed_at + chrono::Duration::seconds(20 + MAX_WAIT + 3), "…for window + max_wait, not more");

    // --- immediate shutdown: saved, but backends died mid-booking ------------
    let other = exchange(&db, 100, 10.0).await;
    drop(db);
    let stopped_at = Utc::now();
    as_root(&["pg_ctlcluster", "15", "botai", "stop", "-m", "immediate"]);
    as_root(&["pg_ctlcluster", "15", "botai", "start"]);
    let db = reconnect().await;
    let (booked, delay) = acquire(&db, &other).await;
    println!("  after pg_ctl stop -m immediate a never-used key waits {delay:.1} s");
    assert!(booked >= stopped_at + chrono::Duration::seconds(10 + MAX_WAIT), "an immediate stop is a crash");

    // Leave the server as the other tests expect it: default settings,
    // cleanly restarted.
    db.batch_execute("ALTER SYSTEM RESET botai.rate_limit_max_wait").await.unwrap();
    drop(db);
    restart("fast");
    reconnect().await;
}
