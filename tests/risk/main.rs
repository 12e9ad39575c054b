//! The sixth guarantee, "no order beyond the risk limits" (issue 12): the
//! limits of botai.risk_limits hold however many engines submit at once, the
//! kill switch stops every send from its commit (counted at the exchange),
//! reduce-only lets only shrinking orders through, and a daily loss past
//! its limit halts trading within one monitor round. The position book
//! follows the fills.

use std::sync::Arc;
use std::time::Duration;

use botai_daemon::db::{Db, OrderCalls, OrderReservation, Reserved, Settlement, WorkerCalls};
use botai_daemon::env::pg::PgSettings;
use botai_tests::TestDatabase;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use tokio_postgres::Client;

mod daily_loss;
mod kill_switch;
mod limits;
mod positions;

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
