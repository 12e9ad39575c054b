//! Rate windows: kept while the database refuses connections, never booked
//! past the max wait, and limits added later applied at once.

use std::time::Duration;

use botai_tests::{connect, expect_sqlstate, unique, TestDatabase};

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
