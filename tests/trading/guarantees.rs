//! The guarantees hold: with botai the exchange refuses nothing, and
//! switching them off shows why they are there.

use super::*;

/// A burst of 120 operator orders of `qty` BTC, registered at once, traded
/// by one engine with `switches` on the paper exchange in its own process:
/// (filled, 110007, 10006, other rejects) in botai.orders.
async fn burst_run(qty: &str, switches: &[(&'static str, &str)]) -> (i64, i64, i64, i64) {
    let mut venue = Venue::start(1200).await;
    venue.env.extend(switches.iter().map(|(k, v)| (*k, v.to_string())));
    let engine = venue.engine("burst");
    engine.wait_for_output("trading engine started", Duration::from_secs(60)).await;
    let db = venue.db.connect().await;
    // The price the engine reserves at is above the market's (about 42,000).
    botai_tests::operator_buys(&db, "burst", 120, "50000", qty).await;
    venue.settled(&db).await;
    venue.check_books(&db).await;
    outcomes(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn guarantees_on_no_110007_no_10006_and_off_they_appear() {
    // 0.01 BTC is about 420 USDT: 120 of them are five times the account's
    // 10,000 USDT. 0.001 BTC: all 120 are affordable, and more than the
    // venue's 50 orders per 5 s.
    let (big, small) = ("0.01", "0.001");
    let on = burst_run(big, &[]).await;
    let on_small = burst_run(small, &[]).await;
    let no_reservations = burst_run(big, &[("RESERVATIONS", "off")]).await;
    let no_limiter = burst_run(small, &[("RATE_LIMITER", "off")]).await;
    println!(
        "  (filled, 110007, 10006, other) with botai: {on:?} and {on_small:?}; reservations off: {no_reservations:?}; \
         limiter off: {no_limiter:?}"
    );
    assert!(on.0 > 0 && on_small.0 == 120, "orders were placed: {on:?}, {on_small:?}");
    assert_eq!((on.1, on.2, on.3), (0, 0, 0), "with botai's guarantees the exchange refuses nothing");
    assert_eq!((on_small.1, on_small.2, on_small.3), (0, 0, 0), "with botai's guarantees the exchange refuses nothing");
    assert!(no_reservations.1 > 0, "without reservations the engine overspends: 110007");
    assert!(no_limiter.2 > 0, "without the limiter the engine is too fast: 10006");
}
