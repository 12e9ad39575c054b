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

use botai_daemon::config::PgSettings;
use botai_daemon::db::{BotaiSql, Db, OrderReservation, Reserved, Settlement};
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
    let (order, _) = claimed.into_iter().next().flatten().expect("the signal is this engine's");
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
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
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
    // An operator's resume stands while the same alert stays open.
    db.batch_execute("SELECT botai_resume('loss reviewed')").await.unwrap();
    t.wait_rounds(2).await;
    let mode: String = db.query_one("SELECT mode FROM botai.trading_state", &[]).await.unwrap().get(0);
    assert_eq!(mode, "active", "the monitor halts when a breach opens, not again every round");
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
