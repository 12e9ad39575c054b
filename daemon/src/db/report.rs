//! What the end-of-run report reads: the run's orders as
//! `botai.orders_status` shows them.

use chrono::{DateTime, Utc};

use super::functions::Sql;
use super::value::{Amount, Cell};
use super::Result;

const RUN_ORDERS: &str = "\
SELECT order_id, signal_id, client_order_id, engine, symbol, side, status, qty::text, price::text, notional::text,
       fee::text, ret_code, message, latency_ms, signal_accepted_at, finished_at, fee_asset, fee_quote, realized_pnl
FROM botai.orders_status WHERE claimed_at >= $1 ORDER BY order_id";

/// An order of the run. Amounts the report writes as they are stored come
/// as text; those it sums as [`Amount`].
#[derive(Debug, Clone)]
pub struct RunOrder {
    pub order_id: i64,
    pub signal_id: i64,
    pub client_order_id: String,
    pub engine: String,
    pub symbol: String,
    pub side: String,
    pub status: String,
    pub qty: Option<String>,
    pub price: Option<String>,
    pub notional: Option<String>,
    pub fee: Option<String>,
    pub ret_code: Option<i32>,
    pub message: Option<String>,
    pub latency_ms: Option<f64>,
    pub signal_accepted_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fee_asset: Option<String>,
    pub fee_quote: Option<Amount>,
    pub realized_pnl: Option<Amount>,
}

/// The orders claimed since `since`, oldest first.
pub async fn run_orders<C: Sql>(conn: &C, since: DateTime<Utc>) -> Result<Vec<RunOrder>> {
    let rows = conn.q_all("run orders", RUN_ORDERS, &[&since]).await?;
    rows.iter()
        .map(|r| {
            Ok(RunOrder {
                order_id: r.col(0, "run orders")?,
                signal_id: r.col(1, "run orders")?,
                client_order_id: r.col(2, "run orders")?,
                engine: r.col(3, "run orders")?,
                symbol: r.col(4, "run orders")?,
                side: r.col(5, "run orders")?,
                status: r.col(6, "run orders")?,
                qty: r.col(7, "run orders")?,
                price: r.col(8, "run orders")?,
                notional: r.col(9, "run orders")?,
                fee: r.col(10, "run orders")?,
                ret_code: r.col(11, "run orders")?,
                message: r.col(12, "run orders")?,
                latency_ms: r.col(13, "run orders")?,
                signal_accepted_at: r.col(14, "run orders")?,
                finished_at: r.col(15, "run orders")?,
                fee_asset: r.col(16, "run orders")?,
                fee_quote: r.col(17, "run orders")?,
                realized_pnl: r.col(18, "run orders")?,
            })
        })
        .collect()
}
