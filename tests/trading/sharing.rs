//! Engines share the work without doubling an order.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn two_engines_share_the_signals_and_no_signal_gets_two_orders() {
    let venue = Venue::start(1200).await;
    let db = venue.db.connect().await;
    let ml = venue.ml();
    let a = venue.engine("engine-a");
    let b = venue.engine("engine-b");
    let (status, output) = ml.wait(Duration::from_secs(120));
    assert!(status.success(), "{output}");
    venue.settled(&db).await;
    venue.check_books(&db).await;
    let per_signal: i64 = db
        .query_one("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM botai.orders GROUP BY signal_id) c", &[])
        .await
        .unwrap()
        .get(0);
    assert!(per_signal <= 1);
    // Both engines must have been in the race for the test to prove anything:
    // each claimed signals (whichever won a signal's claim handled it).
    let claimed: BTreeMap<String, i64> = db
        .query("SELECT engine, count(*) FROM botai.orders GROUP BY engine", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    println!("  signals claimed by engine {claimed:?}");
    assert_eq!(
        claimed.len(),
        2,
        "both engines claimed signals: {claimed:?}\nengine-a:\n{}\nengine-b:\n{}",
        a.output(),
        b.output()
    );
}

/// Engines woken by one notification claim the same signals at the same
/// moment, in batches as the engine does: one winner per signal, and the
/// others get nothing — not a unique violation on client_order_id (seen
/// with three engines: INSERT … ON CONFLICT settles races on its arbiter,
/// signal_id, only).
#[tokio::test(flavor = "multi_thread")]
async fn engines_claiming_one_signal_at_once_get_one_winner_and_no_error() {
    use botai_daemon::db::{Db, OrderCalls, WorkerCalls};

    let t = TestDatabase::migrated(&[]).await;
    let db = t.connect().await;
    let pg = botai_tests::pg_settings(&t.name);
    let mut engines = Vec::new();
    for i in 0..8 {
        let c = Db::connect(&pg, "botai-tests race").await.unwrap();
        let id = c.register_worker("trading_engine", Some(&format!("race-{i}")), &serde_json::json!({})).await.unwrap();
        engines.push((std::sync::Arc::new(c), id.expect("a slot")));
    }
    let mut errors = Vec::new();
    let mut claimed = 0;
    for n in 0..40 {
        let mut ids = Vec::new();
        for k in 0..4 {
            let id: i64 = db
                .query_one(
                    "SELECT signal_id FROM botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', \
                       'direction', 'BUY', 'strategy', $2::text, 'timestamp', $1::text, 'price', 40000))",
                    &[&Utc::now().to_rfc3339(), &format!("race-{n}-{k}")],
                )
                .await
                .unwrap()
                .get(0);
            ids.push(id);
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(engines.len()));
        let tasks: Vec<_> = engines
            .iter()
            .map(|(c, id)| {
                let (c, id, barrier, ids) = (c.clone(), id.clone(), barrier.clone(), ids.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    c.order_claim(&ids, &id, "paper", &["BTCUSDT"], Some(("USDT", "BTC"))).await
                })
            })
            .collect();
        let mut winners = vec![0; ids.len()];
        for t in tasks {
            match t.await.unwrap() {
                Ok(rows) => {
                    for (i, r) in rows.iter().enumerate() {
                        winners[i] += usize::from(matches!(r, botai_daemon::db::Claim::Owned(..)));
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        assert!(winners.iter().all(|&w| w <= 1), "a signal claimed twice: {winners:?}");
        claimed += winners.iter().sum::<usize>();
    }
    assert!(errors.is_empty(), "{} of 320 batch claims failed, first: {}", errors.len(), errors[0]);
    assert_eq!(claimed, 160, "every signal claimed once");
}
