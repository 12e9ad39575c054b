//! The kill switch: reduce-only lets only shrinking orders through, a halt
//! waits for no permit nobody holds, and a halt stops every send from its
//! commit (counted at the exchange).

use std::time::Instant;

use botai_tests::{expect_sqlstate, Daemon};
use serde_json::Value;

use super::*;

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
        let mut env = vec![
            ("REPLAY_FROM", "2022-01-10T00:00:00Z".into()),
            ("REPLAY_TO", "2022-01-10T12:00:00Z".into()),
            ("BALANCE_UPDATE_INTERVAL", "2".into()),
            ("MAX_SIGNAL_AGE", "600".into()),
        ];
        let (exchange, url) = Daemon::double("paper", &db.name, &env).await;
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
