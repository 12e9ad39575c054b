//! One typed wrapper per SQL function of the botai extension the daemon
//! calls. Implemented for `tokio_postgres::Client`, so a dedicated `Db` and
//! a pooled connection offer the same calls.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use super::value::{at_scale, details_at_scale, Amount, Cell, Json, Toward};
use super::{DbError, Result};

/// A connection that prepares each SQL text once and reuses the statement:
/// re-parsing and re-planning `SELECT botai_x($1, …)` on every call cost
/// more server CPU than the calls themselves.
#[allow(async_fn_in_trait)]
pub trait Sql {
    fn raw(&self) -> &Client;
    async fn statement(&self, sql: &str) -> std::result::Result<Statement, tokio_postgres::Error>;

    async fn q_one(&self, context: &'static str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let st = self.statement(sql).await.map_err(|e| DbError::from_pg(context, e))?;
        self.raw().query_one(&st, params).await.map_err(|e| DbError::from_pg(context, e))
    }

    async fn q_opt(&self, context: &'static str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let st = self.statement(sql).await.map_err(|e| DbError::from_pg(context, e))?;
        self.raw().query_opt(&st, params).await.map_err(|e| DbError::from_pg(context, e))
    }

    async fn q_all(&self, context: &'static str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let st = self.statement(sql).await.map_err(|e| DbError::from_pg(context, e))?;
        self.raw().query(&st, params).await.map_err(|e| DbError::from_pg(context, e))
    }
}

impl Sql for deadpool_postgres::Object {
    fn raw(&self) -> &Client {
        self
    }

    async fn statement(&self, sql: &str) -> std::result::Result<Statement, tokio_postgres::Error> {
        self.prepare_cached(sql).await
    }
}

/// The verdict on a signal registration.
/// Which orders `orders` lists.
#[derive(Debug, Clone, Copy)]
pub enum OrderFilter<'a> {
    All,
    Signal(i64),
    ClientOrderId(&'a str),
}

/// A row of botai.orders.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub signal_id: i64,
    pub client_order_id: String,
    pub exchange: String,
    pub symbol: String,
    pub side: String,
    pub status: String,
    pub qty: Option<Amount>,
    pub price: Option<Amount>,
    pub exchange_order_id: Option<String>,
    pub ret_code: Option<i32>,
    pub message: Option<String>,
    pub claimed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalVerdict {
    pub accepted: bool,
    /// accepted, duplicate, stale or cooldown
    pub reason: String,
    pub signal_id: Option<i64>,
    pub fingerprint: String,
}

/// An order to reserve (`reserve_orders`): its quantity at `price`, and
/// `amount` of `asset` held for it.
#[derive(Debug, Clone)]
pub struct OrderReservation {
    pub order_id: i64,
    /// The signed position the order works toward: refused (at_target) if
    /// the exposure would pass it. None: no target (an operator's order).
    pub target: Option<Decimal>,
    /// Its signal: concurrent batches lock order rows in (asset, signal) order.
    pub signal_id: i64,
    pub qty: Decimal,
    pub price: Decimal,
    pub asset: String,
    pub amount: Decimal,
    /// A market price (exchange, symbol, price) seen with the order, which
    /// marks the position book (`botai_mark_price`) before the checks: the
    /// order's own price never does.
    pub mark: Option<(String, String, Decimal)>,
}

/// What `botai_reserve_order` answered: the reservation and the booked
/// moment, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Ok { reservation: Uuid, booked_at: DateTime<Utc> },
    Refused(String),
}

/// A row of botai.positions_status.
#[derive(Debug, Clone)]
pub struct PositionRecord {
    pub exchange: String,
    pub symbol: String,
    pub qty: Amount,
    pub avg_entry: Option<Amount>,
    pub last_price: Option<Amount>,
    pub unrealized_pnl: Option<Amount>,
    pub realized_pnl: Amount,
    pub fees: Amount,
    pub trades: i64,
    pub open_orders: i64,
    pub pending_qty: Amount,
}

/// botai.trading_state: what is in force (the kill switch and the open
/// alerts of rules that halt).
#[derive(Debug, Clone)]
pub struct TradingState {
    pub mode: String,
    pub reason: Option<String>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    /// The open, unacknowledged alerts that hold trading halted.
    pub halting_alerts: Vec<i64>,
}

/// What came of a claimed order (`order_settle`): the reservation to commit
/// (id, amount used) of `asset`, the outcome and its details.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub order_id: i64,
    /// Its signal: concurrent batches lock order rows in (asset, signal) order.
    pub signal_id: i64,
    pub asset: String,
    pub commit: Option<(Uuid, Decimal)>,
    pub status: String,
    pub details: Value,
}

/// What `order_claim` answered for one signal id.
#[derive(Debug, Clone)]
pub enum Claim {
    /// This engine owns the order now, with the free funds of the asset it
    /// would spend (when asked).
    Owned(Box<ClaimedOrder>, Option<Decimal>),
    /// Another engine's, another exchange's or symbol's, or handled.
    Elsewhere,
    /// No signal has this id.
    NoSuchSignal,
}

impl Claim {
    /// The order, when this engine owns it.
    pub fn owned(self) -> Option<(ClaimedOrder, Option<Decimal>)> {
        match self {
            Claim::Owned(order, free) => Some((*order, free)),
            _ => None,
        }
    }
}

/// An order this engine now owns, with its signal.
#[derive(Debug, Clone)]
pub struct ClaimedOrder {
    pub order_id: i64,
    pub signal_id: i64,
    pub client_order_id: String,
    pub attempt: i32,
    pub exchange: String,
    pub symbol: String,
    /// BUY or SELL
    pub direction: String,
    pub strategy: String,
    pub strength: Option<f64>,
    pub payload: Value,
    pub signal_ts: DateTime<Utc>,
    pub accepted_at: DateTime<Utc>,
}

#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait BotaiSql {
    async fn register_signal(&self, signal: &Value, now: Option<DateTime<Utc>>) -> Result<SignalVerdict>;
    async fn register_worker(
        &self,
        worker_type: &str,
        worker_id: Option<&str>,
        metadata: &Value,
    ) -> Result<Option<String>>;
    async fn worker_heartbeat(
        &self,
        worker_id: &str,
        status: &str,
        active_tasks: i32,
        metadata: Option<&Value>,
    ) -> Result<bool>;
    async fn unregister_worker(&self, worker_id: &str) -> Result<bool>;
    /// The fencing epoch of a registration.
    async fn worker_epoch(&self, worker_id: &str) -> Result<Option<i64>>;
    async fn register_component(&self, component: &str, metadata: &Value) -> Result<bool>;
    async fn heartbeat(
        &self,
        component: &str,
        status: &str,
        active_tasks: i32,
        metadata: Option<&Value>,
    ) -> Result<bool>;
    async fn report_error(&self, component: &str, error: &str, is_critical: bool) -> Result<()>;
    async fn rate_acquire(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<f64>;
    /// Books like `rate_acquire` and answers the booked moment on the
    /// database's clock (`botai_rate_book`: the extension keeps the rule of
    /// where the wait counts from).
    async fn rate_book(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<DateTime<Utc>>;
    /// The database's clock (`clock_timestamp()`).
    async fn db_clock(&self) -> Result<DateTime<Utc>>;
    async fn rate_penalize(&self, exchange: &str, endpoint: &str, seconds: f64) -> Result<()>;
    /// What the venue's limit headers said; returns the weight botai added.
    async fn rate_observe(
        &self,
        exchange: &str,
        endpoint: &str,
        remaining: i32,
        venue_limit: i32,
        reset_at: Option<DateTime<Utc>>,
    ) -> Result<i32>;
    /// `botai_update_balance`; `clock_skew` (how far the snapshot's clock
    /// can be from the database's) replaces botai.balance_clock_skew when
    /// the caller knows it.
    #[allow(clippy::too_many_arguments)]
    async fn update_balance(
        &self,
        exchange: &str,
        asset: &str,
        total: Decimal,
        available: Decimal,
        locked: Decimal,
        as_of: DateTime<Utc>,
        clock_skew: Option<Duration>,
    ) -> Result<bool>;
    #[allow(clippy::too_many_arguments)]
    async fn reserve_balance(
        &self,
        exchange: &str,
        asset: &str,
        amount: Decimal,
        purpose: &str,
        metadata: Option<&Value>,
        ttl: Duration,
    ) -> Result<Option<Uuid>>;
    /// The assets botai holds a balance snapshot of for `exchange`.
    async fn balance_assets(&self, exchange: &str) -> Result<Vec<String>>;
    async fn release_reservation(&self, id: Uuid) -> Result<bool>;
    async fn commit_reservation(&self, id: Uuid, amount: Option<Decimal>) -> Result<bool>;
    /// Claims the orders of `signal_ids` (one statement, one transaction;
    /// ascending order, so engines claiming overlapping batches never
    /// deadlock) and reads, for each, the free funds of the asset it would
    /// spend when `free_of` = (quote, base) is given: `free` of
    /// `botai.balances_status`, exact at once (what retirements and expiries
    /// freed counts before any reservation folds it: sizing from the row's
    /// `held` alone saw a balance short for good once a snapshot retired
    /// more than it left, since only a reservation folds). One answer per id, in
    /// order: None where another engine owns the order or it was handled
    /// (and for a repeated id); `NoSuchSignal` where no signal has the id (a
    /// forged notification: looked up, not claimed, so one does not fail
    /// the batch of real ones).
    async fn order_claim(
        &self,
        signal_ids: &[i64],
        engine: &str,
        exchange: &str,
        symbols: &[&str],
        free_of: Option<(&str, &str)>,
    ) -> Result<Vec<Claim>>;
    /// `botai_position_reconcile`: the venue's quantity of a position; the
    /// correction the book took (0: none), None while orders are open.
    async fn position_reconcile(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        price: Option<Decimal>,
    ) -> Result<Option<Decimal>>;
    /// `botai_position_adopt`: the venue's position (quantity, entry price)
    /// taken by the book when it differs; the correction (0: none), None
    /// while orders are open.
    async fn position_adopt(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        entry: Option<Decimal>,
        mark: Option<Decimal>,
    ) -> Result<Option<Decimal>>;
    /// `botai_venue_trade`: a trade the venue made on its own (a forced
    /// close, a funding fee) booked once by its id; the realised P&L, None
    /// when it was booked already.
    #[allow(clippy::too_many_arguments)]
    async fn venue_trade(
        &self,
        exchange: &str,
        symbol: &str,
        kind: &str,
        venue_id: &str,
        side: Option<&str>,
        qty: Option<Decimal>,
        price: Option<Decimal>,
        fee: Decimal,
    ) -> Result<Option<Decimal>>;
    /// The position book's (qty, average entry) of a symbol; None when flat.
    async fn position(&self, exchange: &str, symbol: &str) -> Result<Option<(Decimal, Option<Decimal>)>>;
    /// When the last signal of (symbol, strategy, direction) was accepted
    /// (its signal timestamp).
    async fn last_signal_at(&self, symbol: &str, strategy: &str, direction: &str) -> Result<Option<DateTime<Utc>>>;
    /// (position, what the open orders will add) of a symbol, signed base
    /// quantities from the position book.
    async fn exposure(&self, exchange: &str, symbol: &str) -> Result<(Decimal, Decimal)>;
    /// `botai_reserve_order` for each order, in one statement: the kill
    /// switch and the risk limits checked, the rate slot booked (the answer
    /// carries the booked moment on the database's clock) and the funds
    /// reserved through the booked wait and `ttl` after it, atomically per
    /// order. Orders are taken in asset order, so concurrent batches lock
    /// balance rows in one order. One answer per order, in order.
    async fn reserve_orders(&self, engine: &str, ttl: Duration, orders: &[OrderReservation]) -> Result<Vec<Reserved>>;
    /// `botai_send_permit`: None when the order may be sent now (this
    /// session then holds a share of the send gate until `send_done`).
    async fn send_permit(&self, order_id: i64) -> Result<Option<String>>;
    async fn send_done(&self) -> Result<bool>;
    async fn halt(&self, reason: &str, mode: &str) -> Result<String>;
    /// `botai_resume`, acknowledging the open alerts of rules that halt
    /// (their ids) as the operator.
    async fn resume(&self, reason: &str, acknowledge: &[i64]) -> Result<String>;
    /// `botai_mark_price`: a market price of a symbol for the position book.
    async fn mark_price(&self, exchange: &str, symbol: &str, price: Decimal) -> Result<bool>;
    async fn trading_state(&self) -> Result<TradingState>;
    async fn positions(&self) -> Result<Vec<PositionRecord>>;
    /// Commits each settlement's reservation (if any) and records its
    /// outcome (`botai_order_finish`), in one statement, in asset order (a
    /// commit settles its balance row under the row's lock, so concurrent
    /// batches take those locks in one order). One answer per settlement:
    /// false where another engine took the order over.
    async fn order_settle(&self, engine: &str, settlements: &[Settlement]) -> Result<Vec<bool>>;
    async fn unhandled_signals(&self, lookback: Duration, max_rows: i32) -> Result<Vec<i64>>;
    /// Whether every one of these signals has a finished order and, where
    /// it filled, a balance snapshot of its exchange taken after the record
    /// (what a stepped replay waits for before its next bar).
    async fn signals_settled(&self, signal_ids: &[i64]) -> Result<bool>;
    /// Orders as botai recorded them, newest first (all, or one signal's,
    /// or one client order id's).
    async fn orders(&self, filter: OrderFilter<'_>, limit: i64) -> Result<Vec<OrderRecord>>;
    /// (endpoint, max_weight, window_seconds, effective limit) of an exchange.
    async fn rate_limits(&self, exchange: &str) -> Result<Vec<(String, i32, f64, i32)>>;
    async fn health(&self) -> Result<Value>;
    async fn metrics(&self) -> Result<String>;
}

impl<C: Sql> BotaiSql for C {
    async fn register_signal(&self, signal: &Value, now: Option<DateTime<Utc>>) -> Result<SignalVerdict> {
        let row = self
            .q_one(
                "botai_register_signal",
                "SELECT accepted, reason, signal_id, fingerprint FROM botai_register_signal($1, $2)",
                &[signal, &now],
            )
            .await?;
        let c = "botai_register_signal";
        Ok(SignalVerdict {
            accepted: row.col(0, c)?,
            reason: row.col(1, c)?,
            signal_id: row.col(2, c)?,
            fingerprint: row.col(3, c)?,
        })
    }

    async fn register_worker(
        &self,
        worker_type: &str,
        worker_id: Option<&str>,
        metadata: &Value,
    ) -> Result<Option<String>> {
        let row = self
            .q_one(
                "botai_register_worker",
                "SELECT botai_register_worker($1, $2, $3)",
                &[&worker_type, &worker_id, metadata],
            )
            .await?;
        row.col(0, "register_worker")
    }

    async fn worker_heartbeat(
        &self,
        worker_id: &str,
        status: &str,
        active_tasks: i32,
        metadata: Option<&Value>,
    ) -> Result<bool> {
        let row = self
            .q_one(
                "botai_worker_heartbeat",
                "SELECT botai_worker_heartbeat($1, $2, $3, $4)",
                &[&worker_id, &status, &active_tasks, &metadata],
            )
            .await?;
        row.col(0, "worker_heartbeat")
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<bool> {
        let row = self.q_one("botai_unregister_worker", "SELECT botai_unregister_worker($1)", &[&worker_id]).await?;
        row.col(0, "unregister_worker")
    }

    async fn worker_epoch(&self, worker_id: &str) -> Result<Option<i64>> {
        let row =
            self.q_opt("worker epoch", "SELECT epoch FROM botai.workers WHERE worker_id = $1", &[&worker_id]).await?;
        row.map(|r| r.col(0, "worker epoch")).transpose()
    }

    async fn register_component(&self, component: &str, metadata: &Value) -> Result<bool> {
        let row = self
            .q_one("botai_register_component", "SELECT botai_register_component($1, $2)", &[&component, metadata])
            .await?;
        row.col(0, "register_component")
    }

    async fn heartbeat(
        &self,
        component: &str,
        status: &str,
        active_tasks: i32,
        metadata: Option<&Value>,
    ) -> Result<bool> {
        let row = self
            .q_one(
                "botai_heartbeat",
                "SELECT botai_heartbeat($1, $2, $3, $4)",
                &[&component, &status, &active_tasks, &metadata],
            )
            .await?;
        row.col(0, "heartbeat")
    }

    async fn report_error(&self, component: &str, error: &str, is_critical: bool) -> Result<()> {
        self.q_all("botai_report_error", "SELECT botai_report_error($1, $2, $3)", &[&component, &error, &is_critical])
            .await?;
        Ok(())
    }

    async fn rate_acquire(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<f64> {
        let row = self
            .q_one("botai_rate_acquire", "SELECT botai_rate_acquire($1, $2, $3)", &[&exchange, &endpoint, &weight])
            .await?;
        row.col(0, "rate_acquire")
    }

    async fn rate_book(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<DateTime<Utc>> {
        let row = self
            .q_one("botai_rate_book", "SELECT botai_rate_book($1, $2, $3)", &[&exchange, &endpoint, &weight])
            .await?;
        row.col(0, "rate_book")
    }

    async fn balance_assets(&self, exchange: &str) -> Result<Vec<String>> {
        let rows = self
            .q_all(
                "botai.balances",
                "SELECT asset FROM botai.balances WHERE exchange = $1 ORDER BY asset",
                &[&exchange],
            )
            .await?;
        rows.iter().map(|r| r.col(0, "balance_assets")).collect()
    }

    async fn db_clock(&self) -> Result<DateTime<Utc>> {
        self.q_one("clock_timestamp", "SELECT clock_timestamp()", &[]).await?.col(0, "db_clock")
    }

    async fn rate_penalize(&self, exchange: &str, endpoint: &str, seconds: f64) -> Result<()> {
        self.q_all("botai_rate_penalize", "SELECT botai_rate_penalize($1, $2, $3)", &[&exchange, &endpoint, &seconds])
            .await?;
        Ok(())
    }

    async fn rate_observe(
        &self,
        exchange: &str,
        endpoint: &str,
        remaining: i32,
        venue_limit: i32,
        reset_at: Option<DateTime<Utc>>,
    ) -> Result<i32> {
        let row = self
            .q_one(
                "botai_rate_observe",
                "SELECT botai_rate_observe($1, $2, $3, $4, $5)",
                &[&exchange, &endpoint, &remaining, &venue_limit, &reset_at],
            )
            .await?;
        row.col(0, "rate_observe")
    }

    async fn update_balance(
        &self,
        exchange: &str,
        asset: &str,
        total: Decimal,
        available: Decimal,
        locked: Decimal,
        as_of: DateTime<Utc>,
        clock_skew: Option<Duration>,
    ) -> Result<bool> {
        let row = self
            .q_one(
                "botai_update_balance",
                "SELECT CASE WHEN $7::float8 IS NULL THEN botai_update_balance($1, $2, $3, $4, $5, $6) \
                        ELSE botai_update_balance($1, $2, $3, $4, $5, $6, make_interval(secs => $7)) END",
                &[
                    &exchange,
                    &asset,
                    &at_scale(total, Toward::Down),
                    &at_scale(available, Toward::Down),
                    &at_scale(locked, Toward::Down),
                    &as_of,
                    &clock_skew.map(|d| d.as_secs_f64()),
                ],
            )
            .await?;
        row.col(0, "update_balance")
    }

    async fn reserve_balance(
        &self,
        exchange: &str,
        asset: &str,
        amount: Decimal,
        purpose: &str,
        metadata: Option<&Value>,
        ttl: Duration,
    ) -> Result<Option<Uuid>> {
        let row = self
            .q_one(
                "botai_reserve_balance",
                "SELECT botai_reserve_balance($1, $2, $3, $4, $5, make_interval(secs => $6))",
                &[&exchange, &asset, &at_scale(amount, Toward::Up), &purpose, &metadata, &ttl.as_secs_f64()],
            )
            .await?;
        row.col(0, "reserve_balance")
    }

    async fn release_reservation(&self, id: Uuid) -> Result<bool> {
        let row = self.q_one("botai_release_reservation", "SELECT botai_release_reservation($1)", &[&id]).await?;
        row.col(0, "release_reservation")
    }

    async fn commit_reservation(&self, id: Uuid, amount: Option<Decimal>) -> Result<bool> {
        let amount = amount.map(|a| at_scale(a, Toward::Up));
        let row =
            self.q_one("botai_commit_reservation", "SELECT botai_commit_reservation($1, $2)", &[&id, &amount]).await?;
        row.col(0, "commit_reservation")
    }

    async fn order_claim(
        &self,
        signal_ids: &[i64],
        engine: &str,
        exchange: &str,
        symbols: &[&str],
        free_of: Option<(&str, &str)>,
    ) -> Result<Vec<Claim>> {
        let (with_free, quote, base) = match free_of {
            Some((q, b)) => (true, q, b),
            None => (false, "", ""),
        };
        let mut ids = signal_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows = self
            .q_all(
                "botai_order_claim",
                "SELECT u.signal_id, c.order_id, c.client_order_id, c.attempt, c.exchange, c.symbol, c.direction, \
                        c.strategy, c.strength, c.payload, c.signal_ts, c.accepted_at, \
                        CASE WHEN $6 THEN (SELECT b.free FROM botai.balances_status b WHERE b.exchange = c.exchange \
                           AND b.asset = CASE c.direction WHEN 'BUY' THEN $4 ELSE $5 END) END, \
                        k.known \
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(signal_id, i) \
                 CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM botai.signals s \
                                                    WHERE s.signal_id = u.signal_id) AS known) k \
                 LEFT JOIN LATERAL (SELECT * FROM botai_order_claim(u.signal_id, $2, $3, $7::text[]) \
                                    WHERE k.known) c ON true \
                 ORDER BY u.i",
                &[&ids, &engine, &exchange, &quote, &base, &with_free, &symbols],
            )
            .await?;
        let c = "botai_order_claim";
        let mut claimed: std::collections::HashMap<i64, Claim> = std::collections::HashMap::new();
        for r in rows {
            let signal_id: i64 = r.col(0, c)?;
            let claim = match (r.col::<bool>(13, c)?, r.col::<Option<i64>>(1, c)?) {
                (false, _) => Claim::NoSuchSignal,
                (true, None) => Claim::Elsewhere,
                (true, Some(order_id)) => {
                    let order = ClaimedOrder {
                        order_id,
                        signal_id,
                        client_order_id: r.col(2, c)?,
                        attempt: r.col(3, c)?,
                        exchange: r.col(4, c)?,
                        symbol: r.col(5, c)?,
                        direction: r.col(6, c)?,
                        strategy: r.col(7, c)?,
                        strength: r.col(8, c)?,
                        payload: r.col::<Json>(9, c)?.0,
                        signal_ts: r.col(10, c)?,
                        accepted_at: r.col(11, c)?,
                    };
                    // Free funds outside what a Decimal holds size nothing.
                    let free = r.col::<Option<Amount>>(12, c)?.and_then(|a| a.value());
                    Claim::Owned(Box::new(order), free)
                }
            };
            claimed.insert(signal_id, claim);
        }
        Ok(signal_ids.iter().map(|id| claimed.remove(id).unwrap_or(Claim::Elsewhere)).collect())
    }

    async fn reserve_orders(&self, engine: &str, ttl: Duration, orders: &[OrderReservation]) -> Result<Vec<Reserved>> {
        let mut order: Vec<usize> = (0..orders.len()).collect();
        // Claims lock order rows in signal order: so do reservations (a
        // claim meeting another engine's order locks its row).
        order.sort_by(|&a, &b| (&orders[a].asset, orders[a].signal_id).cmp(&(&orders[b].asset, orders[b].signal_id)));
        let ids: Vec<i64> = order.iter().map(|&i| orders[i].order_id).collect();
        let qtys: Vec<Decimal> = order.iter().map(|&i| orders[i].qty).collect();
        // At botai's scale: a price and a target to the nearest, what is
        // reserved up (the quantity is the venue's lot, sent as it is).
        let prices: Vec<Decimal> = order.iter().map(|&i| at_scale(orders[i].price, Toward::Nearest)).collect();
        let assets: Vec<&str> = order.iter().map(|&i| orders[i].asset.as_str()).collect();
        let amounts: Vec<Decimal> = order.iter().map(|&i| at_scale(orders[i].amount, Toward::Up)).collect();
        let targets: Vec<Option<Decimal>> =
            order.iter().map(|&i| orders[i].target.map(|t| at_scale(t, Toward::Nearest))).collect();
        // The latest market price of each symbol, marked in the same round
        // trip (pipelined on this connection, run before the reservations).
        let mut marks: Vec<&(String, String, Decimal)> = Vec::new();
        for m in orders.iter().rev().filter_map(|o| o.mark.as_ref()) {
            if !marks.iter().any(|k| k.0 == m.0 && k.1 == m.1) {
                marks.push(m);
            }
        }
        let mark_exchanges: Vec<&str> = marks.iter().map(|m| m.0.as_str()).collect();
        let mark_symbols: Vec<&str> = marks.iter().map(|m| m.1.as_str()).collect();
        let mark_prices: Vec<Decimal> = marks.iter().map(|m| at_scale(m.2, Toward::Nearest)).collect();
        let marked = async {
            if marks.is_empty() {
                return Ok(Vec::new());
            }
            self.q_all(
                "botai_mark_price",
                "SELECT botai_mark_price(u.e, u.s, u.p) FROM unnest($1::text[], $2::text[], $3::numeric[]) AS u(e, s, p)",
                &[&mark_exchanges, &mark_symbols, &mark_prices],
            )
            .await
        };
        let ttl_seconds = ttl.as_secs_f64();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
            [&engine, &ids, &qtys, &prices, &assets, &amounts, &ttl_seconds, &targets];
        let reserved = self.q_all(
            "botai_reserve_order",
            "SELECT u.i, r.reservation_id, r.booked_at, r.refused \
                 FROM unnest($2::bigint[], $3::numeric[], $4::numeric[], $5::text[], $6::numeric[], $8::numeric[]) \
                      WITH ORDINALITY AS u(order_id, qty, price, asset, amount, target, i) \
                 CROSS JOIN LATERAL botai_reserve_order(u.order_id, $1, u.qty, u.price, u.asset, u.amount, \
                                                        make_interval(secs => $7), 'order', u.target) r \
                 ORDER BY u.i",
            &params,
        );
        let (_, rows) = tokio::try_join!(marked, reserved)?;
        let mut answers = vec![Reserved::Refused("no answer".into()); orders.len()];
        for r in rows {
            let c = "botai_reserve_order";
            let position: i64 = r.col(0, c)?;
            let answer = match (r.col::<Option<Uuid>>(1, c)?, r.col::<Option<DateTime<Utc>>>(2, c)?, r.col(3, c)?) {
                (Some(reservation), Some(booked_at), None) => Reserved::Ok { reservation, booked_at },
                (_, _, refused) => Reserved::Refused(refused.unwrap_or_else(|| "no reservation".into())),
            };
            if let Some(slot) = usize::try_from(position - 1).ok().and_then(|i| order.get(i)) {
                answers[*slot] = answer;
            }
        }
        Ok(answers)
    }

    async fn position_reconcile(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        price: Option<Decimal>,
    ) -> Result<Option<Decimal>> {
        let row = self
            .q_one(
                "botai_position_reconcile",
                "SELECT botai_position_reconcile($1, $2, $3, $4)",
                &[&exchange, &symbol, &at_scale(qty, Toward::Nearest), &price.map(|p| at_scale(p, Toward::Nearest))],
            )
            .await?;
        row.col(0, "position_reconcile")
    }

    async fn position_adopt(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        entry: Option<Decimal>,
        mark: Option<Decimal>,
    ) -> Result<Option<Decimal>> {
        let nearest = |p: Decimal| at_scale(p, Toward::Nearest);
        let row = self
            .q_one(
                "botai_position_adopt",
                "SELECT botai_position_adopt($1, $2, $3, $4, $5)",
                &[&exchange, &symbol, &nearest(qty), &entry.map(nearest), &mark.map(nearest)],
            )
            .await?;
        row.col(0, "position_adopt")
    }

    async fn venue_trade(
        &self,
        exchange: &str,
        symbol: &str,
        kind: &str,
        venue_id: &str,
        side: Option<&str>,
        qty: Option<Decimal>,
        price: Option<Decimal>,
        fee: Decimal,
    ) -> Result<Option<Decimal>> {
        let nearest = |p: Decimal| at_scale(p, Toward::Nearest);
        let row = self
            .q_one(
                "botai_venue_trade",
                "SELECT botai_venue_trade($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&exchange, &symbol, &kind, &venue_id, &side, &qty.map(nearest), &price.map(nearest), &nearest(fee)],
            )
            .await?;
        row.col(0, "venue_trade")
    }

    async fn position(&self, exchange: &str, symbol: &str) -> Result<Option<(Decimal, Option<Decimal>)>> {
        let row = self
            .q_opt(
                "position",
                "SELECT qty, avg_entry FROM botai.positions WHERE exchange = $1 AND symbol = $2 AND qty <> 0",
                &[&exchange, &symbol],
            )
            .await?;
        row.map(|r| Ok((r.col(0, "position")?, r.col(1, "position")?))).transpose()
    }

    async fn last_signal_at(&self, symbol: &str, strategy: &str, direction: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .q_one(
                "last signal",
                "SELECT max(signal_ts) FROM botai.signals WHERE symbol = $1 AND strategy = $2 AND direction = $3",
                &[&symbol, &strategy, &direction],
            )
            .await?;
        row.col(0, "last_signal_at")
    }

    async fn exposure(&self, exchange: &str, symbol: &str) -> Result<(Decimal, Decimal)> {
        let r = self
            .q_one(
                "exposure",
                "SELECT coalesce((SELECT qty FROM botai.positions WHERE exchange = $1 AND symbol = $2), 0), \
                        coalesce((SELECT sum(pending_qty) FROM botai.pending_orders \
                                  WHERE exchange = $1 AND symbol = $2), 0)",
                &[&exchange, &symbol],
            )
            .await?;
        Ok((r.col(0, "exposure")?, r.col(1, "exposure")?))
    }

    async fn send_permit(&self, order_id: i64) -> Result<Option<String>> {
        let row = self.q_one("botai_send_permit", "SELECT botai_send_permit($1)", &[&order_id]).await?;
        row.col(0, "send_permit")
    }

    async fn send_done(&self) -> Result<bool> {
        self.q_one("botai_send_done", "SELECT botai_send_done()", &[]).await?.col(0, "send_done")
    }

    async fn halt(&self, reason: &str, mode: &str) -> Result<String> {
        self.q_one("botai_halt", "SELECT botai_halt($1, $2)", &[&reason, &mode]).await?.col(0, "halt")
    }

    async fn resume(&self, reason: &str, acknowledge: &[i64]) -> Result<String> {
        self.q_one("botai_resume", "SELECT botai_resume($1, $2)", &[&reason, &acknowledge]).await?.col(0, "resume")
    }

    async fn mark_price(&self, exchange: &str, symbol: &str, price: Decimal) -> Result<bool> {
        let price = at_scale(price, Toward::Nearest);
        self.q_one("botai_mark_price", "SELECT botai_mark_price($1, $2, $3)", &[&exchange, &symbol, &price])
            .await?
            .col(0, "mark_price")
    }

    async fn trading_state(&self) -> Result<TradingState> {
        let r = self
            .q_one(
                "trading state",
                "SELECT mode, reason, changed_by, changed_at, halting_alerts FROM botai.trading_state",
                &[],
            )
            .await?;
        let c = "trading state";
        Ok(TradingState {
            mode: r.col(0, c)?,
            reason: r.col(1, c)?,
            changed_by: r.col(2, c)?,
            changed_at: r.col(3, c)?,
            halting_alerts: r.col(4, c)?,
        })
    }

    async fn positions(&self) -> Result<Vec<PositionRecord>> {
        let rows = self
            .q_all(
                "positions",
                "SELECT exchange, symbol, qty, avg_entry, last_price, unrealized_pnl, realized_pnl, fees, trades, \
                        open_orders, pending_qty \
                 FROM botai.positions_status ORDER BY exchange, symbol",
                &[],
            )
            .await?;
        let c = "positions";
        rows.iter()
            .map(|r| {
                Ok(PositionRecord {
                    exchange: r.col(0, c)?,
                    symbol: r.col(1, c)?,
                    qty: r.col(2, c)?,
                    avg_entry: r.col(3, c)?,
                    last_price: r.col(4, c)?,
                    unrealized_pnl: r.col(5, c)?,
                    realized_pnl: r.col(6, c)?,
                    fees: r.col(7, c)?,
                    trades: r.col(8, c)?,
                    open_orders: r.col(9, c)?,
                    pending_qty: r.col(10, c)?,
                })
            })
            .collect()
    }

    async fn order_settle(&self, engine: &str, settlements: &[Settlement]) -> Result<Vec<bool>> {
        let mut order: Vec<usize> = (0..settlements.len()).collect();
        order.sort_by(|&a, &b| {
            (&settlements[a].asset, settlements[a].signal_id).cmp(&(&settlements[b].asset, settlements[b].signal_id))
        });
        let sorted: Vec<&Settlement> = order.iter().map(|&i| &settlements[i]).collect();
        let reservations: Vec<Option<Uuid>> = sorted.iter().map(|s| s.commit.map(|c| c.0)).collect();
        let amounts: Vec<Option<Decimal>> =
            sorted.iter().map(|s| s.commit.map(|c| at_scale(c.1, Toward::Up))).collect();
        let order_ids: Vec<i64> = sorted.iter().map(|s| s.order_id).collect();
        let statuses: Vec<&str> = sorted.iter().map(|s| s.status.as_str()).collect();
        let details: Vec<Value> = sorted.iter().map(|s| details_at_scale(&s.details)).collect();
        let rows = self
            .q_all(
                "settle orders",
                "SELECT u.i, CASE WHEN u.reservation IS NULL THEN NULL \
                                 ELSE botai_commit_reservation(u.reservation, u.amount) END, \
                        botai_order_finish(u.order_id, $1, u.status, u.details) \
                 FROM unnest($2::uuid[], $3::numeric[], $4::bigint[], $5::text[], $6::jsonb[]) \
                      WITH ORDINALITY AS u(reservation, amount, order_id, status, details, i) \
                 ORDER BY u.i",
                &[&engine, &reservations, &amounts, &order_ids, &statuses, &details],
            )
            .await?;
        let mut answers = vec![false; settlements.len()];
        for r in rows {
            let position: i64 = r.col(0, "settle orders")?;
            if let Some(slot) = usize::try_from(position - 1).ok().and_then(|i| order.get(i)) {
                answers[*slot] = r.col(2, "settle orders")?;
            }
        }
        Ok(answers)
    }

    async fn unhandled_signals(&self, lookback: Duration, max_rows: i32) -> Result<Vec<i64>> {
        let rows = self
            .q_all(
                "botai_unhandled_signals",
                "SELECT s FROM botai_unhandled_signals(make_interval(secs => $1), $2) AS s",
                &[&lookback.as_secs_f64(), &max_rows],
            )
            .await?;
        rows.iter().map(|r| r.col(0, "botai_unhandled_signals")).collect()
    }

    async fn signals_settled(&self, signal_ids: &[i64]) -> Result<bool> {
        let r = self
            .q_one(
                "signals_settled",
                "SELECT count(*) = cardinality($1::bigint[]) FROM botai.orders o \
                 WHERE o.signal_id = ANY ($1) AND o.status <> 'claimed' \
                   AND (o.status <> 'filled' OR NOT EXISTS ( \
                     SELECT 1 FROM botai.balances b WHERE b.exchange = o.exchange AND b.as_of < o.finished_at))",
                &[&signal_ids],
            )
            .await?;
        r.col(0, "signals_settled")
    }

    async fn orders(&self, filter: OrderFilter<'_>, limit: i64) -> Result<Vec<OrderRecord>> {
        let (signal, client) = match filter {
            OrderFilter::All => (None, None),
            OrderFilter::Signal(id) => (Some(id), None),
            OrderFilter::ClientOrderId(id) => (None, Some(id)),
        };
        let rows = self
            .q_all(
                "botai.orders",
                "SELECT signal_id, client_order_id, exchange, symbol, side, status, qty, price, exchange_order_id, \
                        ret_code, message, claimed_at \
                 FROM botai.orders \
                 WHERE ($1::bigint IS NULL OR signal_id = $1) AND ($2::text IS NULL OR client_order_id = $2) \
                 ORDER BY order_id DESC LIMIT $3",
                &[&signal, &client, &limit],
            )
            .await?;
        let c = "botai.orders";
        rows.iter()
            .map(|r| {
                Ok(OrderRecord {
                    signal_id: r.col(0, c)?,
                    client_order_id: r.col(1, c)?,
                    exchange: r.col(2, c)?,
                    symbol: r.col(3, c)?,
                    side: r.col(4, c)?,
                    status: r.col(5, c)?,
                    qty: r.col(6, c)?,
                    price: r.col(7, c)?,
                    exchange_order_id: r.col(8, c)?,
                    ret_code: r.col(9, c)?,
                    message: r.col(10, c)?,
                    claimed_at: r.col(11, c)?,
                })
            })
            .collect()
    }

    async fn rate_limits(&self, exchange: &str) -> Result<Vec<(String, i32, f64, i32)>> {
        let rows = self
            .q_all(
                "botai.rate_limits",
                "SELECT endpoint, max_weight, window_seconds, \
                        floor(max_weight * current_setting('botai.rate_limit_safety_margin')::float8)::int \
                 FROM botai.rate_limits WHERE exchange = $1 ORDER BY endpoint",
                &[&exchange],
            )
            .await?;
        let c = "botai.rate_limits";
        rows.iter().map(|r| Ok((r.col(0, c)?, r.col(1, c)?, r.col(2, c)?, r.col(3, c)?))).collect()
    }

    async fn health(&self) -> Result<Value> {
        let row = self.q_one("botai_health", "SELECT botai_health()", &[]).await?;
        Ok(row.col::<Json>(0, "health")?.0)
    }

    async fn metrics(&self) -> Result<String> {
        let row = self.q_one("botai_metrics", "SELECT botai_metrics()", &[]).await?;
        row.col(0, "metrics")
    }
}
