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
    pub qty: Option<Decimal>,
    pub price: Option<Decimal>,
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

/// Funds to reserve behind a rate-limit booking (`book_and_reserve`).
#[derive(Debug, Clone)]
pub struct Booking {
    pub asset: String,
    pub amount: Decimal,
    pub purpose: String,
    pub metadata: Value,
}

/// What came of a claimed order (`order_settle`): the reservation to commit
/// (id, amount used) of `asset`, the outcome and its details.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub order_id: i64,
    pub asset: String,
    pub commit: Option<(Uuid, Decimal)>,
    pub status: String,
    pub details: Value,
}

/// An order this engine now owns, with its signal.
#[derive(Debug, Clone)]
pub struct ClaimedOrder {
    pub order_id: i64,
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
    /// database's clock: the wait counts from the transaction's start, or
    /// from 100 ms before the clock in a transaction older than that (the
    /// extension's rule), read right after the booking, so never before it.
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
    async fn update_balance(
        &self,
        exchange: &str,
        asset: &str,
        total: Decimal,
        available: Decimal,
        locked: Decimal,
        as_of: DateTime<Utc>,
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
    /// (and for a repeated id).
    async fn order_claim(
        &self,
        signal_ids: &[i64],
        engine: &str,
        exchange: &str,
        free_of: Option<(&str, &str)>,
    ) -> Result<Vec<Option<(ClaimedOrder, Option<Decimal>)>>>;
    /// Books a request slot (`botai_rate_acquire`) and reserves its funds
    /// (`botai_reserve_balance`, held through the booked wait and `ttl`
    /// after it) for each booking, in one statement. Bookings are taken in
    /// asset order, so concurrent batches lock balance rows in one order.
    /// One (booked moment on the database's clock, reservation) per
    /// booking, in order.
    async fn book_and_reserve(
        &self,
        exchange: &str,
        endpoint: &str,
        ttl: Duration,
        bookings: &[Booking],
    ) -> Result<Vec<(DateTime<Utc>, Option<Uuid>)>>;
    /// Commits each settlement's reservation (if any) and records its
    /// outcome (`botai_order_finish`), in one statement, in asset order (a
    /// commit settles its balance row under the row's lock, so concurrent
    /// batches take those locks in one order). One answer per settlement:
    /// false where another engine took the order over.
    async fn order_settle(&self, engine: &str, settlements: &[Settlement]) -> Result<Vec<bool>>;
    async fn unhandled_signals(&self, lookback: Duration, max_rows: i32) -> Result<Vec<i64>>;
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
        Ok(SignalVerdict { accepted: row.get(0), reason: row.get(1), signal_id: row.get(2), fingerprint: row.get(3) })
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
        Ok(row.get(0))
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
        Ok(row.get(0))
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<bool> {
        let row = self.q_one("botai_unregister_worker", "SELECT botai_unregister_worker($1)", &[&worker_id]).await?;
        Ok(row.get(0))
    }

    async fn worker_epoch(&self, worker_id: &str) -> Result<Option<i64>> {
        let row =
            self.q_opt("worker epoch", "SELECT epoch FROM botai.workers WHERE worker_id = $1", &[&worker_id]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn register_component(&self, component: &str, metadata: &Value) -> Result<bool> {
        let row = self
            .q_one("botai_register_component", "SELECT botai_register_component($1, $2)", &[&component, metadata])
            .await?;
        Ok(row.get(0))
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
        Ok(row.get(0))
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
        Ok(row.get(0))
    }

    async fn rate_book(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<DateTime<Utc>> {
        let row = self
            .q_one(
                "botai_rate_acquire",
                "SELECT greatest(now(), clock_timestamp() - interval '100 ms') + make_interval(secs => s.d) \
                 FROM (SELECT botai_rate_acquire($1, $2, $3) AS d OFFSET 0) s",
                &[&exchange, &endpoint, &weight],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn balance_assets(&self, exchange: &str) -> Result<Vec<String>> {
        let rows = self
            .q_all(
                "botai.balances",
                "SELECT asset FROM botai.balances WHERE exchange = $1 ORDER BY asset",
                &[&exchange],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn db_clock(&self) -> Result<DateTime<Utc>> {
        Ok(self.q_one("clock_timestamp", "SELECT clock_timestamp()", &[]).await?.get(0))
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
        Ok(row.get(0))
    }

    async fn update_balance(
        &self,
        exchange: &str,
        asset: &str,
        total: Decimal,
        available: Decimal,
        locked: Decimal,
        as_of: DateTime<Utc>,
    ) -> Result<bool> {
        let row = self
            .q_one(
                "botai_update_balance",
                "SELECT botai_update_balance($1, $2, $3, $4, $5, $6)",
                &[&exchange, &asset, &total, &available, &locked, &as_of],
            )
            .await?;
        Ok(row.get(0))
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
                &[&exchange, &asset, &amount, &purpose, &metadata, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn release_reservation(&self, id: Uuid) -> Result<bool> {
        let row = self.q_one("botai_release_reservation", "SELECT botai_release_reservation($1)", &[&id]).await?;
        Ok(row.get(0))
    }

    async fn commit_reservation(&self, id: Uuid, amount: Option<Decimal>) -> Result<bool> {
        let row =
            self.q_one("botai_commit_reservation", "SELECT botai_commit_reservation($1, $2)", &[&id, &amount]).await?;
        Ok(row.get(0))
    }

    async fn order_claim(
        &self,
        signal_ids: &[i64],
        engine: &str,
        exchange: &str,
        free_of: Option<(&str, &str)>,
    ) -> Result<Vec<Option<(ClaimedOrder, Option<Decimal>)>>> {
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
                           AND b.asset = CASE c.direction WHEN 'BUY' THEN $4 ELSE $5 END) END \
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(signal_id, i) \
                 CROSS JOIN LATERAL botai_order_claim(u.signal_id, $2, $3) AS c \
                 ORDER BY u.i",
                &[&ids, &engine, &exchange, &quote, &base, &with_free],
            )
            .await?;
        let mut claimed: std::collections::HashMap<i64, (ClaimedOrder, Option<Decimal>)> = rows
            .into_iter()
            .map(|r| {
                let order = ClaimedOrder {
                    order_id: r.get(1),
                    client_order_id: r.get(2),
                    attempt: r.get(3),
                    exchange: r.get(4),
                    symbol: r.get(5),
                    direction: r.get(6),
                    strategy: r.get(7),
                    strength: r.get(8),
                    payload: r.get(9),
                    signal_ts: r.get(10),
                    accepted_at: r.get(11),
                };
                (r.get(0), (order, r.get(12)))
            })
            .collect();
        Ok(signal_ids.iter().map(|id| claimed.remove(id)).collect())
    }

    async fn book_and_reserve(
        &self,
        exchange: &str,
        endpoint: &str,
        ttl: Duration,
        bookings: &[Booking],
    ) -> Result<Vec<(DateTime<Utc>, Option<Uuid>)>> {
        let mut order: Vec<usize> = (0..bookings.len()).collect();
        order.sort_by(|&a, &b| bookings[a].asset.cmp(&bookings[b].asset));
        let assets: Vec<&str> = order.iter().map(|&i| bookings[i].asset.as_str()).collect();
        let amounts: Vec<Decimal> = order.iter().map(|&i| bookings[i].amount).collect();
        let purposes: Vec<&str> = order.iter().map(|&i| bookings[i].purpose.as_str()).collect();
        let metadata: Vec<&Value> = order.iter().map(|&i| &bookings[i].metadata).collect();
        // The subquery (not flattened: OFFSET 0) books one slot per row;
        // the reservation then holds through that row's wait.
        let rows = self
            .q_all(
                "book and reserve",
                "SELECT s.i, greatest(now(), clock_timestamp() - interval '100 ms') + make_interval(secs => s.d), \
                        botai_reserve_balance($1, s.asset, s.amount, s.purpose, s.metadata, \
                                                       make_interval(secs => $3 + s.d)) \
                 FROM (SELECT u.*, botai_rate_acquire($1, $2, NULL) AS d \
                       FROM unnest($4::text[], $5::numeric[], $6::text[], $7::jsonb[]) \
                            WITH ORDINALITY AS u(asset, amount, purpose, metadata, i) \
                       OFFSET 0) s \
                 ORDER BY s.i",
                &[&exchange, &endpoint, &ttl.as_secs_f64(), &assets, &amounts, &purposes, &metadata],
            )
            .await?;
        let mut answers = vec![(DateTime::<Utc>::MIN_UTC, None); bookings.len()];
        for r in rows {
            let position: i64 = r.get(0);
            answers[order[(position - 1) as usize]] = (r.get(1), r.get(2));
        }
        Ok(answers)
    }

    async fn order_settle(&self, engine: &str, settlements: &[Settlement]) -> Result<Vec<bool>> {
        let mut order: Vec<usize> = (0..settlements.len()).collect();
        order.sort_by(|&a, &b| settlements[a].asset.cmp(&settlements[b].asset));
        let sorted: Vec<&Settlement> = order.iter().map(|&i| &settlements[i]).collect();
        let reservations: Vec<Option<Uuid>> = sorted.iter().map(|s| s.commit.map(|c| c.0)).collect();
        let amounts: Vec<Option<Decimal>> = sorted.iter().map(|s| s.commit.map(|c| c.1)).collect();
        let order_ids: Vec<i64> = sorted.iter().map(|s| s.order_id).collect();
        let statuses: Vec<&str> = sorted.iter().map(|s| s.status.as_str()).collect();
        let details: Vec<&Value> = sorted.iter().map(|s| &s.details).collect();
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
            let position: i64 = r.get(0);
            answers[order[(position - 1) as usize]] = r.get(2);
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
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
        Ok(rows
            .iter()
            .map(|r| OrderRecord {
                signal_id: r.get(0),
                client_order_id: r.get(1),
                exchange: r.get(2),
                symbol: r.get(3),
                side: r.get(4),
                status: r.get(5),
                qty: r.get(6),
                price: r.get(7),
                exchange_order_id: r.get(8),
                ret_code: r.get(9),
                message: r.get(10),
                claimed_at: r.get(11),
            })
            .collect())
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
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }

    async fn health(&self) -> Result<Value> {
        let row = self.q_one("botai_health", "SELECT botai_health()", &[]).await?;
        Ok(row.get(0))
    }

    async fn metrics(&self) -> Result<String> {
        let row = self.q_one("botai_metrics", "SELECT botai_metrics()", &[]).await?;
        Ok(row.get(0))
    }
}
