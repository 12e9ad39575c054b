//! The sixth guarantee, "no order beyond the risk limits" (issue 12): the
//! limits of botai.risk_limits hold however many engines submit at once, the
//! kill switch stops every send from its commit (counted at the exchange),
//! reduce-only lets only shrinking orders through, and a daily loss past
//! its limit halts trading within one monitor round. The position book
//! follows the fills.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botai_daemon::db::{Db, OrderCalls, OrderReservation, Reserved, RiskCalls, Settlement, WorkerCalls};
use botai_daemon::env::pg::PgSettings;
use botai_tests::{expect_sqlstate, free_port, Daemon, TestDatabase};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_postgres::Client;

const EXCHANGE: &str = "risk";
const PRICE: i64 = 40_000;

fn pg(dbname: &str) -> PgSettings {
    botai_tests::pg_settings(dbname)
}

/// A database with an exchange account `risk` (a generous rate limit, a
/// million USDT and 1,000 BTC) and `engines` registered trading engines.
async fn account(t: &TestDatabase, engines: usize) -> (Client, Vec<(Arc<Db>, String)>) {
    let db = t.connect().await;
    db.batch_execute(&format!(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ('{EXCHANGE}', 'global', 100000, 1); \
         SELECT botai_update_balance('{EXCHANGE}', 'USDT', 1000000, 1000000, 0); \
         SELECT botai_update_balance('{EXCHANGE}', 'BTC', 1000, 1000, 0);"
    ))
    .await
    .unwrap();
    let mut fleet = Vec::new();
    for i in 0..engines {
        let c = Db::connect(&pg(&t.name), "botai-tests risk").await.unwrap();
        let id = c.register_worker("trading_engine", Some(&format!("risk-{i}")), &json!({})).await.unwrap();
        fleet.push((Arc::new(c), id.expect("a slot")));
    }
    (db, fleet)
}

/// Registers accepted signals (each its own strategy: no cooldown between them).
async fn signals(db: &Client, n: usize, direction: &str, tag: &str) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for k in 0..n {
        let id: i64 = db
            .query_one(
                "SELECT signal_id FROM botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', \
                   'direction', $3::text, 'strategy', $2::text, 'timestamp', $1::text, 'price', 40000))",
                &[&Utc::now().to_rfc3339(), &format!("{tag}-{k}"), &direction],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    ids
}

/// Claims the signal and reserves an order of `qty` BTC for it.
async fn reserve(c: &Db, engine: &str, signal_id: i64, qty: Decimal) -> (i64, String, Reserved) {
    let claimed = c.order_claim(&[signal_id], engine, EXCHANGE, &["BTCUSDT"], None).await.unwrap();
    let (order, _) = claimed.into_iter().next().and_then(|c| c.owned()).expect("the signal is this engine's");
    let (asset, amount) = if order.direction == "BUY" {
        ("USDT", qty * Decimal::from(PRICE) * Decimal::new(101, 2))
    } else {
        ("BTC", qty)
    };
    let r = c
        .reserve_orders(
            engine,
            Duration::from_secs(60),
            &[OrderReservation {
                order_id: order.order_id,
                target: None,
                signal_id,
                qty,
                price: Decimal::from(PRICE),
                asset: asset.into(),
                amount,
                mark: Some((EXCHANGE.into(), "BTCUSDT".into(), Decimal::from(PRICE))),
            }],
        )
        .await
        .unwrap();
    (order.order_id, asset.to_owned(), r.into_iter().next().unwrap())
}

/// Records the order filled at `price` (the reservation committed).
async fn fill(c: &Db, engine: &str, order_id: i64, asset: &str, reservation: uuid::Uuid, qty: Decimal, price: i64) {
    let details = json!({"qty": qty, "price": price, "fee": "0.1", "fee_asset": "USDT", "fee_quote": "0.1"});
    let done = c
        .order_settle(
            engine,
            &[Settlement {
                order_id,
                signal_id: 0,
                asset: asset.into(),
                commit: Some((reservation, if asset == "BTC" { qty } else { qty * Decimal::from(price) })),
                status: "filled".into(),
                details,
            }],
        )
        .await
        .unwrap();
    assert_eq!(done, vec![true]);
}

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

/// Reduce-only: an order that would grow the position is refused, one that
/// shrinks it goes through — at the reservation and at the permit.
#[tokio::test(flavor = "multi_thread")]
async fn reduce_only_lets_only_orders_that_shrink_a_position_through() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    let (c, engine) = &fleet[0];
    let buys = signals(&db, 3, "BUY", "ro-buy").await;
    let sells = signals(&db, 2, "SELL", "ro-sell").await;
    let two = Decimal::new(2, 3);
    let (order, asset, r) = reserve(c, engine, buys[0], two).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, two, PRICE).await;
    // A BUY reserved before the switch: not permitted after it.
    let (pending_buy, _, r) = reserve(c, engine, buys[1], two).await;
    assert!(matches!(r, Reserved::Ok { .. }), "{r:?}");
    let said: String = db.query_one("SELECT botai_halt('risk review', 'reduce_only')", &[]).await.unwrap().get(0);
    assert!(said.starts_with("reduce_only (was active)"), "{said}");
    let (_, _, r) = reserve(c, engine, buys[2], Decimal::new(1, 3)).await;
    let Reserved::Refused(why) = r else { panic!("a BUY grew a long position under reduce_only") };
    assert!(why.starts_with("reduce_only:") && why.ends_with("risk review"), "{why}");
    let refused = c.send_permit(pending_buy).await.unwrap();
    assert!(refused.is_some_and(|w| w.starts_with("reduce_only")), "the permit refuses a growing order");
    assert!(!c.send_done().await.unwrap(), "a refused permit holds no share of the gate");
    // Selling 0.001 of a 0.002 long (with a 0.002 BUY still open: 0.004) shrinks it.
    let (sell, _, r) = reserve(c, engine, sells[0], Decimal::new(1, 3)).await;
    assert!(matches!(r, Reserved::Ok { .. }), "a shrinking SELL is allowed: {r:?}");
    assert_eq!(c.send_permit(sell).await.unwrap(), None);
    assert!(c.send_done().await.unwrap());
    // Selling 0.01 would turn the long into a short: not a reduction.
    let (_, _, r) = reserve(c, engine, sells[1], Decimal::new(1, 2)).await;
    assert!(matches!(r, Reserved::Refused(ref w) if w.starts_with("reduce_only")), "{r:?}");
    let said: String = db.query_one("SELECT botai_resume('review done')", &[]).await.unwrap().get(0);
    assert_eq!(said, "active (was reduce_only)");
    assert_eq!(c.send_permit(pending_buy).await.unwrap(), None, "resumed: the BUY may go");
    assert!(c.send_done().await.unwrap());
    // Hostile input: nothing changes.
    expect_sqlstate("an empty reason", db.query_one("SELECT botai_halt('  ')", &[]).await, "22023");
    expect_sqlstate("an unknown mode", db.query_one("SELECT botai_halt('x', 'paused')", &[]).await, "22023");
    expect_sqlstate(
        "a negative qty",
        db.query_one("SELECT * FROM botai_reserve_order(1, 'risk-0', -1, 1, 'USDT', 1)", &[]).await,
        "22023",
    );
    expect_sqlstate(
        "a NaN price",
        db.query_one("SELECT * FROM botai_reserve_order(1, 'risk-0', 1, 'NaN', 'USDT', 1)", &[]).await,
        "22023",
    );
    let mode: String = db.query_one("SELECT mode FROM botai.trading_state", &[]).await.unwrap().get(0);
    assert_eq!(mode, "active");
}

/// A day's loss at its limit: the monitor halts trading within one round
/// and opens a critical alert; the position book holds the realised loss.
#[tokio::test(flavor = "multi_thread")]
async fn a_daily_loss_breach_halts_trading_within_one_monitor_round() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('{EXCHANGE}', '*', 15)"
    ))
    .await
    .unwrap();
    let (c, engine) = &fleet[0];
    let buy = signals(&db, 1, "BUY", "loss-buy").await[0];
    let sell = signals(&db, 1, "SELL", "loss-sell").await[0];
    let later = signals(&db, 1, "BUY", "loss-later").await[0];
    let one = Decimal::new(1, 3);
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    // Sold 0.001 BTC 15,000 lower: a loss of 15 plus 0.2 of fees.
    fill(c, engine, order, &asset, reservation, one, PRICE - 15_000).await;
    let book = db
        .query_one("SELECT qty, realized_pnl, fees FROM botai.positions WHERE exchange = $1", &[&EXCHANGE])
        .await
        .unwrap();
    assert_eq!(book.get::<_, Decimal>(0), Decimal::ZERO);
    assert_eq!(book.get::<_, Decimal>(1), Decimal::new(-15, 0));
    assert_eq!(book.get::<_, Decimal>(2), Decimal::new(2, 1));
    let net: Decimal =
        db.query_one("SELECT net_pnl FROM botai.pnl_today WHERE exchange = $1", &[&EXCHANGE]).await.unwrap().get(0);
    assert_eq!(net, Decimal::new(-152, 1));
    let breached = Instant::now();
    t.wait_rounds(2).await;
    let state = db.query_one("SELECT mode, reason, changed_by FROM botai.trading_state", &[]).await.unwrap();
    let (mode, reason, by): (String, String, String) = (state.get(0), state.get(1), state.get(2));
    println!("  halted {:.1} s after the losing fill: {reason}", breached.elapsed().as_secs_f64());
    assert_eq!((mode.as_str(), by.as_str()), ("halted", "botai monitor"), "{reason}");
    let alert: Value = db
        .query_one(
            "SELECT details FROM botai.alerts WHERE rule = 'daily_loss' AND subject = $1 AND status = 'open'",
            &[&EXCHANGE],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alert["max_daily_loss"], json!(15));
    let (_, _, r) = reserve(c, engine, later, one).await;
    assert!(matches!(r, Reserved::Refused(ref w) if w.starts_with("halted: alert rule daily_loss")), "{r:?}");
    // Resuming needs the operator's explicit acknowledgement of the alert,
    // also once its condition has cleared (here: the rule disabled, as the
    // engine's own role could never do, and the alert resolved).
    let alert_id: i64 = db
        .query_one("SELECT alert_id FROM botai.alerts WHERE rule = 'daily_loss' AND status = 'open'", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute("UPDATE botai.alert_rules SET enabled = false WHERE rule = 'daily_loss'").await.unwrap();
    t.wait_rounds(2).await;
    let (mode, status): (String, String) = {
        let r = db
            .query_one(
                "SELECT t.mode, a.status FROM botai.trading_state t, botai.alerts a WHERE a.alert_id = $1",
                &[&alert_id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((mode.as_str(), status.as_str()), ("halted", "resolved"), "a rule's halt outlives its condition");
    expect_sqlstate("a resume that acknowledges nothing", db.query_one("SELECT botai_resume('x')", &[]).await, "55000");
    db.batch_execute("SET ROLE botai_operator").await.unwrap();
    let said: String = db
        .query_one("SELECT botai_resume('loss reviewed', acknowledge => ARRAY[$1::bigint])", &[&alert_id])
        .await
        .unwrap()
        .get(0);
    db.batch_execute("RESET ROLE").await.unwrap();
    assert!(said.starts_with("active") && said.contains("1 alert(s) acknowledged"), "{said}");
    let ack = db
        .query_one(
            "SELECT acknowledged_by, reason, acknowledged_at IS NOT NULL FROM botai.alert_acknowledgements \
             WHERE alert_id = $1",
            &[&alert_id],
        )
        .await
        .unwrap();
    let (by, why, at): (String, String, bool) = (ack.get(0), ack.get(1), ack.get(2));
    println!("  resumed by the operator ({by}): {said}");
    assert_eq!((why.as_str(), at), ("loss reviewed", true));
    // An acknowledged resume stands; the next breach opens a new alert,
    // which halts again.
    db.batch_execute("UPDATE botai.alert_rules SET enabled = true WHERE rule = 'daily_loss'").await.unwrap();
    t.wait_rounds(2).await;
    let (mode, holding): (String, Vec<i64>) = {
        let r = db.query_one("SELECT mode, halting_alerts FROM botai.trading_state", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(mode, "halted", "the loss is still there: a new alert, a new halt");
    assert!(!holding.contains(&alert_id) && holding.len() == 1, "{holding:?}");
}

/// Issue 26 item 2: a session holding the switch's row lock (an operator's
/// halt waiting for orders in flight, a `BEGIN; SELECT botai_resume(…)` left
/// open) cannot keep a rule's halt from force: the open alert itself holds
/// trading halted, in the round that opens it.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_halts_trading_while_another_session_holds_the_switch_row() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('{EXCHANGE}', '*', 15)"
    ))
    .await
    .unwrap();
    // The row the monitor wrote in 0.6.0, held for the whole test.
    let holder = t.connect().await;
    holder.batch_execute("BEGIN; SELECT * FROM botai.trading_switch FOR UPDATE").await.unwrap();
    let (c, engine) = &fleet[0];
    let one = Decimal::new(1, 3);
    let buy = signals(&db, 1, "BUY", "lock-buy").await[0];
    let sell = signals(&db, 1, "SELL", "lock-sell").await[0];
    let later = signals(&db, 1, "BUY", "lock-later").await[0];
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE - 15_000).await;
    t.wait_rounds(2).await;
    let (mode, by): (String, String) = {
        let r = db.query_one("SELECT mode, changed_by FROM botai.trading_state", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((mode.as_str(), by.as_str()), ("halted", "botai monitor"), "halted although the row is locked");
    let (_, _, r) = reserve(c, engine, later, one).await;
    assert!(matches!(r, Reserved::Refused(ref w) if w.starts_with("halted: alert rule daily_loss")), "{r:?}");
    let failing: i64 =
        db.query_one("SELECT count(*) FROM botai.rule_status WHERE last_error IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(failing, 0, "no rule failed meanwhile");
    holder.batch_execute("ROLLBACK").await.unwrap();
}

/// Issue 26 item 6: an order's own price never marks the position. A limit
/// SELL far above the market, refused, leaves the book marked at the market.
#[tokio::test(flavor = "multi_thread")]
async fn an_orders_own_price_never_marks_the_position() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_order_notional) VALUES ('{EXCHANGE}', '*', 100)"
    ))
    .await
    .unwrap();
    let (c, engine) = &fleet[0];
    let one = Decimal::new(1, 3);
    let buy = signals(&db, 1, "BUY", "mark-buy").await[0];
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    // The market falls to 30,000: a market price marks the book.
    assert!(c.mark_price(EXCHANGE, "BTCUSDT", Decimal::from(30_000)).await.unwrap());
    let sell = signals(&db, 1, "SELL", "mark-sell").await[0];
    let claimed = c.order_claim(&[sell], engine, EXCHANGE, &["BTCUSDT"], None).await.unwrap();
    let (o, _) = claimed.into_iter().next().and_then(|c| c.owned()).unwrap();
    let r = c
        .reserve_orders(
            engine,
            Duration::from_secs(60),
            &[OrderReservation {
                order_id: o.order_id,
                target: None,
                signal_id: sell,
                qty: one,
                price: Decimal::from(1_000_000),
                asset: "BTC".into(),
                amount: one,
                mark: None,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(&r[0], Reserved::Refused(w) if w.starts_with("max_order_notional")), "{r:?}");
    let book = db
        .query_one("SELECT last_price, unrealized_pnl FROM botai.positions_status WHERE exchange = $1", &[&EXCHANGE])
        .await
        .unwrap();
    let (last, unrealized): (Decimal, Decimal) = (book.get(0), book.get(1));
    println!("  after a refused limit SELL at 1,000,000: marked at {last}, unrealised {unrealized}");
    assert_eq!(last, Decimal::from(30_000), "the limit price did not mark the book");
    assert_eq!(unrealized, Decimal::from(-10));
}

/// Issue 26 item 7: a reconciliation that would give the book a position
/// without an entry price is refused; one with the price enters it, and
/// the closing fill is booked (a row left without an entry by 0.6.0
/// closes too).
#[tokio::test(flavor = "multi_thread")]
async fn a_reconciled_position_always_has_an_entry_price() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    let (c, engine) = &fleet[0];
    expect_sqlstate(
        "a flat book taking the venue's 0.001 without a price",
        db.query_one("SELECT botai_position_reconcile($1, 'BTCUSDT', 0.001)", &[&EXCHANGE]).await,
        "22023",
    );
    let qty: Option<Decimal> = db
        .query_opt("SELECT qty FROM botai.positions WHERE exchange = $1 AND qty <> 0", &[&EXCHANGE])
        .await
        .unwrap()
        .map(|r| r.get(0));
    assert_eq!(qty, None, "nothing written");
    let correction: Decimal = db
        .query_one("SELECT botai_position_reconcile($1, 'BTCUSDT', 0.001, 40000)", &[&EXCHANGE])
        .await
        .unwrap()
        .get(0);
    assert_eq!(correction, Decimal::new(1, 3));
    // A position 0.6.0 left without an entry: its closing fill is booked.
    db.batch_execute(&format!("UPDATE botai.positions SET avg_entry = NULL WHERE exchange = '{EXCHANGE}'"))
        .await
        .unwrap();
    let sell = signals(&db, 1, "SELL", "entry-sell").await[0];
    let one = Decimal::new(1, 3);
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (qty, status): (Decimal, String) = {
        let r = db
            .query_one(
                "SELECT p.qty, o.status FROM botai.positions p, botai.orders o WHERE p.exchange = $1 AND o.order_id = $2",
                &[&EXCHANGE, &order],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((qty, status.as_str()), (Decimal::ZERO, "filled"), "the closing fill is recorded");
}

/// Issue 26 item 8: one account's absurd figures (stored before 0.7.0
/// refused them) never stop the daily-loss rule for another account.
#[tokio::test(flavor = "multi_thread")]
async fn one_accounts_absurd_figures_never_stop_the_daily_loss_rule_for_another() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('forged', '*', 10), ('sane', '*', 10);          INSERT INTO botai.positions (exchange, symbol, qty, avg_entry, last_price) VALUES            ('forged', 'BTCUSDT', 1e200, 1, 1e200), ('forged', 'ETHUSDT', -1e200, 1e200, 1),            ('sane', 'BTCUSDT', 1, 100, 50)",
    )
    .await
    .unwrap();
    // And a forged fill of the day on the forged account.
    db.batch_execute(
        "INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, payload)            VALUES ('forged-1', 'BTCUSDT', 'BUY', 'x', now(), '{}');          INSERT INTO botai.orders (signal_id, fingerprint, client_order_id, engine, engine_epoch, exchange, symbol, side,            status, qty, price, realized_pnl, fee_quote, signal_accepted_at, finished_at)          SELECT signal_id, 'forged-1', 'botai-forged-1', 'e', 1, 'forged', 'BTCUSDT', 'BUY', 'filled', 1e200, 1e200,                 -1e400, 1e200, now(), now() FROM botai.signals WHERE fingerprint = 'forged-1'",
    )
    .await
    .unwrap();
    t.wait_rounds(2).await;
    let open: Vec<String> = db
        .query("SELECT subject FROM botai.alerts WHERE rule = 'daily_loss' AND status = 'open' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let error: Option<String> =
        db.query_one("SELECT last_error FROM botai.rule_status WHERE rule = 'daily_loss'", &[]).await.unwrap().get(0);
    println!("  daily_loss open on {open:?}; rule error: {error:?}");
    assert_eq!(error, None, "the rule evaluates");
    assert!(open.contains(&"sane".to_owned()), "the sane account 50 down against 10 is alerted: {open:?}");
}

/// Issue 26 item 9: a send permit for an order that does not exist is an
/// error and holds nothing, so an operator's halt does not wait for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_permit_for_no_order_is_refused_and_holds_no_gate() {
    let t = TestDatabase::create(&[]).await;
    let a = t.connect().await;
    expect_sqlstate(
        "a permit for order 987654321",
        a.query_one("SELECT botai_send_permit(987654321)", &[]).await,
        "P0002",
    );
    let b = t.connect().await;
    b.batch_execute("SET botai.halt_wait = 5").await.unwrap();
    let started = Instant::now();
    let said: String = b.query_one("SELECT botai_halt('no gate is held')", &[]).await.unwrap().get(0);
    println!("  halted in {:?}: {said}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "the halt waited for a permit nobody holds: {said}");
    assert!(!said.contains("not waited for"), "{said}");
}

/// The paper exchange in a process of its own, and engines trading a burst
/// of operator orders on it.
struct Venue {
    db: TestDatabase,
    _exchange: Daemon,
    url: String,
    env: Vec<(&'static str, String)>,
}

impl Venue {
    async fn start() -> Venue {
        let db = TestDatabase::migrated(&[]).await;
        let port = free_port();
        let env = vec![
            ("PAPER_LISTEN", format!("127.0.0.1:{port}")),
            ("REPLAY_FROM", "2022-01-10T00:00:00Z".into()),
            ("REPLAY_TO", "2022-01-10T12:00:00Z".into()),
            ("BALANCE_UPDATE_INTERVAL", "2".into()),
            ("MAX_SIGNAL_AGE", "600".into()),
        ];
        let exchange = Daemon::start("paper", &db.name, &["paper-exchange"], &env);
        exchange.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
        let url = format!("http://127.0.0.1:{port}");
        let mut env: Vec<_> = env.into_iter().filter(|(k, _)| *k != "PAPER_LISTEN").collect();
        env.push(("PAPER_EXCHANGE_URL", url.clone()));
        Venue { db, _exchange: exchange, url, env }
    }

    fn engine(&self, id: &str) -> Daemon {
        let mut env = self.env.clone();
        env.push(("ENGINE_ID", id.to_owned()));
        Daemon::start(id, &self.db.name, &["run", "--mode=core"], &env)
    }

    /// (client order id, arrival on the exchange's clock in ms) of every order it took.
    async fn arrivals(&self) -> Vec<(String, i64)> {
        let orders: Value =
            reqwest::get(format!("{}/botai-double/orders", self.url)).await.unwrap().json().await.unwrap();
        orders
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["link_id"].as_str().unwrap().to_owned(), o["created_ms"].as_i64().unwrap()))
            .collect()
    }
}

/// `botai_halt()` committed in the middle of a burst: not one order reaches
/// the exchange after its commit, although the burst had orders booked
/// seconds ahead by the rate limiter (permitted ones are answered before
/// the halt commits; the rest are refused and recorded skipped).
#[tokio::test(flavor = "multi_thread")]
async fn a_halt_committed_mid_burst_lets_no_order_reach_the_exchange_after_its_commit() {
    let v = Venue::start().await;
    let db = v.db.connect().await;
    let engines = [v.engine("halt-1"), v.engine("halt-2")];
    for e in &engines {
        e.wait_for_output("trading engine started", Duration::from_secs(60)).await;
    }
    // 300 operator orders of 0.0002 BTC at once: at the paper exchange's 9
    // orders a second the limiter books them many seconds ahead.
    botai_tests::operator_buys(&db, "halt", 300, "42000", "0.0002").await;
    // Halt once some orders reached the exchange.
    let deadline = Instant::now() + Duration::from_secs(60);
    while v.arrivals().await.len() < 20 {
        assert!(Instant::now() < deadline, "no orders reached the exchange:\n{}", engines[0].output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Utc::now().timestamp_millis();
    let said: String = db.query_one("SELECT botai_halt('halt test')", &[]).await.unwrap().get(0);
    let committed = Utc::now().timestamp_millis();
    // Whatever was still booked is refused; wait until every order is recorded.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open: i64 =
            db.query_one("SELECT count(*) FROM botai.orders WHERE status = 'claimed'", &[]).await.unwrap().get(0);
        let unclaimed: i64 = db
            .query_one(
                "SELECT count(*) FROM botai.signals s WHERE NOT EXISTS (SELECT 1 FROM botai.orders o WHERE o.signal_id = s.signal_id)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 && unclaimed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} orders still open, {unclaimed} signals unclaimed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arrivals = v.arrivals().await;
    let before = arrivals.iter().filter(|(_, at)| *at <= asked).count();
    let during = arrivals.iter().filter(|(_, at)| *at > asked && *at <= committed).count();
    let after: Vec<_> = arrivals.iter().filter(|(_, at)| *at > committed).collect();
    let r = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'filled'), \
                    count(*) FILTER (WHERE status = 'skipped' AND message LIKE 'halt%'), count(*) \
             FROM botai.orders",
            &[],
        )
        .await
        .unwrap();
    let (filled, halted, total): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    println!(
        "  {said}; the halt took {} ms; at the exchange: {before} orders before it, {during} while it waited, {} after \
         its commit; botai: {filled} filled, {halted} skipped by the halt, {total} orders",
        committed - asked,
        after.len()
    );
    if std::env::var("DEBUG_HALT").is_ok() {
        let mut a = arrivals.clone();
        a.sort_by_key(|x| x.1);
        for (id, at) in &a {
            println!("ARR {at} {id}");
        }
        for e in &engines {
            for l in e.output().lines().filter(|l| l.contains("10006") || l.contains("late") || l.contains("WARN")) {
                println!("ENG {l}");
            }
        }
        println!("HALT asked {asked} committed {committed}");
    }
    assert!(after.is_empty(), "orders reached the exchange after the halt committed: {after:?}");
    let outcomes: Vec<String> = db
        .query(
            "SELECT o || ' × ' || count(*) FROM (SELECT status || ' ' || coalesce(left(message, 80), '') AS o \
             FROM botai.orders) x GROUP BY o",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(filled + halted, 300, "every order filled or stopped by the halt: {outcomes:?}");
    assert_eq!(total, 300);
    assert_eq!(filled as usize, arrivals.len(), "every order at the exchange is botai's filled order");
    assert!(halted >= 100, "the halt stopped the rest of the burst ({halted} skipped)");
}
