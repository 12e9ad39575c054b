//! The limits of botai.risk_limits hold however many engines submit at
//! once: open orders, the position, the notional of one order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::*;

/// 8 engines, each in its own session, submit 1,000 orders between them as
/// fast as they can; each accepted order stays open a few milliseconds and
/// then fills. The open-orders limit and the position limit are never
/// exceeded: open orders are counted by the test between the reservation's
/// answer and the fill's record (so the count it sees is never above what
/// botai counted), and the position is what the fills add up to.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_engines_and_a_thousand_concurrent_submissions_never_exceed_a_limit() {
    let t = TestDatabase::migrated(&[]).await;
    let (db, fleet) = account(&t, 8).await;
    // 0.001 BTC per order (40 USDT): at most 5 open at once, and a position
    // of at most 12,000 USDT (300 orders' worth).
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_position_notional, max_open_orders) \
         VALUES ('{EXCHANGE}', 'BTCUSDT', 12000, 5)"
    ))
    .await
    .unwrap();
    let ids = signals(&db, 1000, "BUY", "burst").await;
    let queue = Arc::new(Mutex::new(ids.into_iter().collect::<VecDeque<_>>()));
    let open = Arc::new(AtomicI64::new(0));
    let most_open = Arc::new(AtomicI64::new(0));
    let filled = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
    let qty = Decimal::new(1, 3);
    let started = Instant::now();
    let tasks: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, (c, engine))| {
            let (c, engine, queue, open, most_open, filled, refusals) = (
                c.clone(),
                engine.clone(),
                queue.clone(),
                open.clone(),
                most_open.clone(),
                filled.clone(),
                refusals.clone(),
            );
            tokio::spawn(async move {
                let mut n = i as u64;
                loop {
                    let Some(signal_id) = queue.lock().unwrap().pop_front() else { break };
                    let (order_id, asset, answer) = reserve(&c, &engine, signal_id, qty).await;
                    match answer {
                        Reserved::Ok { reservation, .. } => {
                            let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                            most_open.fetch_max(now_open, Ordering::SeqCst);
                            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                            tokio::time::sleep(Duration::from_micros(500 + (n >> 33) % 4000)).await;
                            open.fetch_sub(1, Ordering::SeqCst);
                            fill(&c, &engine, order_id, &asset, reservation, qty, PRICE).await;
                            filled.fetch_add(1, Ordering::SeqCst);
                        }
                        Reserved::Refused(why) => {
                            let name = why.split(':').next().unwrap_or_default().to_owned();
                            *refusals.lock().unwrap().entry(name).or_default() += 1;
                            let done = c
                                .order_settle(
                                    &engine,
                                    &[Settlement {
                                        order_id,
                                        signal_id,
                                        asset: asset.clone(),
                                        commit: None,
                                        status: "skipped".into(),
                                        details: json!({"message": why}),
                                    }],
                                )
                                .await
                                .unwrap();
                            assert_eq!(done, vec![true]);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let filled = filled.load(Ordering::SeqCst);
    let most_open = most_open.load(Ordering::SeqCst);
    let refusals = refusals.lock().unwrap().clone();
    let book = db
        .query_one(
            "SELECT qty, realized_pnl, trades FROM botai.positions WHERE exchange = $1 AND symbol = 'BTCUSDT'",
            &[&EXCHANGE],
        )
        .await
        .unwrap();
    let (position, trades): (Decimal, i64) = (book.get(0), book.get(2));
    println!(
        "  1,000 submissions from 8 sessions in {:.1} s: {filled} filled, at most {most_open} open at once, \
         position {position} BTC; refused: {refusals:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(most_open <= 5, "{most_open} orders were open at once; the limit is 5");
    assert!(most_open >= 2, "the sessions did run concurrently ({most_open} open at most)");
    assert_eq!(filled, 300, "exactly the position limit's worth of orders went through");
    assert_eq!(position, Decimal::new(300, 3), "the position book adds the fills up");
    assert_eq!(trades, 300);
    assert_eq!(refusals.values().sum::<usize>(), 700, "every other submission was refused: {refusals:?}");
    assert!(refusals.get("max_position_notional").is_some_and(|&n| n > 0), "the position limit stopped some");
}

/// Open orders are checked the same way, whatever their side: with 5 open
/// BUYs allowed, a session that submits while others hold orders open
/// sees `max_open_orders`.
#[tokio::test(flavor = "multi_thread")]
async fn the_open_orders_limit_names_itself_and_frees_as_orders_end() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_open_orders, max_order_notional) VALUES ('{EXCHANGE}', '*', 2, 100)"
    ))
    .await
    .unwrap();
    let (c, engine) = &fleet[0];
    let ids = signals(&db, 5, "BUY", "open").await;
    let qty = Decimal::new(1, 3);
    let (a, asset, first) = reserve(c, engine, ids[0], qty).await;
    let (_, _, second) = reserve(c, engine, ids[1], qty).await;
    let (_, _, third) = reserve(c, engine, ids[2], qty).await;
    assert!(matches!(first, Reserved::Ok { .. }) && matches!(second, Reserved::Ok { .. }));
    let Reserved::Refused(why) = third else { panic!("a third open order was let through") };
    assert!(why.starts_with("max_open_orders: risk/BTCUSDT already has 2 open orders (limit 2)"), "{why}");
    let Reserved::Ok { reservation, .. } = first else { unreachable!() };
    fill(c, engine, a, &asset, reservation, qty, PRICE).await;
    let (_, _, fourth) = reserve(c, engine, ids[3], qty).await;
    assert!(matches!(fourth, Reserved::Ok { .. }), "a filled order no longer counts as open: {fourth:?}");
    // 0.003 BTC at 40,000 is 120 USDT, above the per-order limit of 100.
    let (_, _, big) = reserve(c, engine, ids[4], Decimal::new(3, 3)).await;
    let Reserved::Refused(why) = big else { panic!("an order above max_order_notional went through") };
    assert!(why.starts_with("max_order_notional"), "{why}");
    let reserved: i64 =
        db.query_one("SELECT count(*) FROM botai.reservations WHERE status = 'held'", &[]).await.unwrap().get(0);
    assert_eq!(reserved, 2, "a refused order reserves nothing");
}
