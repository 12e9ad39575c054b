//! The trading engine end to end (issue 6), as real processes on the paper
//! exchange: the guarantees hold (and switching them off shows why they are
//! there), a killed engine loses no signal and places nothing twice, two
//! engines share the work without doubling an order, and a killed
//! component shows as down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use botai_tests::{free_port, Daemon, TestDatabase};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::Client;
mod funds;
mod guarantees;
mod recovery;
mod replay;
mod sharing;
mod status;

/// A decimal the double serialised (as a string or a number).
fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.to_string().parse().unwrap(),
        other => panic!("not a decimal: {other}"),
    }
}

/// Six hours of the month around a busy morning, replayed fast.
fn short_replay(speed: u32) -> Vec<(&'static str, String)> {
    vec![
        ("REPLAY_FROM", "2022-01-10T00:00:00Z".into()),
        ("REPLAY_TO", "2022-01-10T12:00:00Z".into()),
        ("REPLAY_SPEED", speed.to_string()),
        ("ORDER_SIZE", "fraction:0.05".into()),
        // Positions held 5 minutes of market time: more of them in 12 hours.
        ("HOLD_FOR", "300".into()),
        // The engine is under test, not the model's economics: the old fixed
        // threshold, below the round trip cost, so that it trades.
        ("SIGNAL_THRESHOLD", "0.0004".into()),
        ("BALANCE_UPDATE_INTERVAL", "2".into()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
    ]
}

/// (filled, 110007 rejects, 10006 rejects, other rejects) in botai.orders.
async fn outcomes(db: &Client) -> (i64, i64, i64, i64) {
    let r = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'filled'), \
                    count(*) FILTER (WHERE ret_code = 110007), \
                    count(*) FILTER (WHERE ret_code = 10006), \
                    count(*) FILTER (WHERE status = 'rejected' AND ret_code NOT IN (110007, 10006)) \
             FROM botai.orders",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// The paper exchange in a process of its own, the ML manager, and the
/// given engines, all on one replay clock.
struct Venue {
    db: TestDatabase,
    exchange: Daemon,
    exchange_url: String,
    env: Vec<(&'static str, String)>,
}

impl Venue {
    async fn start(speed: u32) -> Venue {
        Venue::start_with(speed, &[]).await
    }

    /// With `extra` settings for every process (the exchange's too).
    async fn start_with(speed: u32, extra: &[(&'static str, &str)]) -> Venue {
        let db = TestDatabase::migrated(&[]).await;
        let mut env = short_replay(speed);
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env.push(("REPLAY_EPOCH", (Utc::now() + chrono::Duration::seconds(4)).to_rfc3339()));
        env.push(("MAX_SIGNAL_AGE", "600".into()));
        let (exchange, exchange_url) = Daemon::double("paper", &db.name, &env).await;
        env.push(("PAPER_EXCHANGE_URL", exchange_url.clone()));
        Venue { db, exchange, exchange_url, env }
    }

    fn engine(&self, id: &str) -> Daemon {
        let mut env = self.env.clone();
        env.push(("ENGINE_ID", id.to_owned()));
        Daemon::start(id, &self.db.name, &["run", "--mode=core"], &env)
    }

    fn ml(&self) -> Daemon {
        Daemon::start("ml", &self.db.name, &["run", "--mode=ml"], &self.env)
    }

    /// Every order the exchange took: client order id → count (the
    /// double's own view, not the Bybit API's).
    async fn exchange_orders(&self) -> BTreeMap<String, usize> {
        let orders: Value = reqwest::get(format!("{}/botai-double/orders", self.exchange_url))
            .await
            .expect("paper exchange")
            .json()
            .await
            .unwrap();
        let mut seen = BTreeMap::new();
        for o in orders.as_array().unwrap() {
            *seen.entry(o["link_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        seen
    }

    /// Every order the exchange holds, as the double serialises it.
    async fn exchange_order_states(&self) -> Vec<Value> {
        let orders: Value =
            reqwest::get(format!("{}/botai-double/orders", self.exchange_url)).await.unwrap().json().await.unwrap();
        orders.as_array().unwrap().clone()
    }

    /// The total of `asset` in the exchange's account.
    async fn exchange_total(&self, asset: &str) -> Decimal {
        let state: Value =
            reqwest::get(format!("{}/botai-double/state", self.exchange_url)).await.unwrap().json().await.unwrap();
        state["wallet"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["asset"] == asset)
            .map_or(Decimal::ZERO, |a| dec(&a["total"]))
    }

    /// Waits until every accepted signal has a finished order.
    async fn settled(&self, db: &Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let open: i64 = db
                .query_one(
                    "SELECT count(*) FROM botai.signals s \
                     WHERE NOT EXISTS (SELECT 1 FROM botai.orders o WHERE o.signal_id = s.signal_id AND o.status <> 'claimed')",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if open == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{open} signals still without a finished order; exchange:\n{}",
                self.exchange.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// No signal lost, at most one order per signal, and what the exchange
    /// filled is exactly what botai recorded as filled, each once.
    async fn check_books(&self, db: &Client) {
        let signals: i64 = db.query_one("SELECT count(*) FROM botai.signals", &[]).await.unwrap().get(0);
        let orders: i64 = db.query_one("SELECT count(*) FROM botai.orders", &[]).await.unwrap().get(0);
        assert_eq!(signals, orders, "every accepted signal has exactly one order (none lost)");
        let filled: BTreeSet<String> = db
            .query("SELECT client_order_id FROM botai.orders WHERE status = 'filled'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let at_exchange = self.exchange_orders().await;
        assert!(at_exchange.values().all(|&n| n == 1), "an order placed twice at the exchange");
        let placed: BTreeSet<String> = at_exchange.keys().cloned().collect();
        assert_eq!(placed, filled, "the exchange's orders are exactly botai's filled orders");
        let by_engine = db
            .query("SELECT engine, count(*) FROM botai.orders WHERE status = 'filled' GROUP BY engine", &[])
            .await
            .unwrap();
        let by_engine: BTreeMap<String, i64> = by_engine.iter().map(|r| (r.get(0), r.get(1))).collect();
        println!("  {signals} signals, {} filled at the exchange, by engine {by_engine:?}", placed.len());
    }
}
