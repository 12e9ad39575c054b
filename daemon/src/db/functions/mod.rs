//! One typed wrapper per SQL function of the botai extension the daemon
//! calls, a module per guarantee. Each module's trait has its wrappers as
//! provided methods over [`Sql`], implemented for every [`Sql`]
//! connection, so a dedicated `Db` and a pooled connection offer the same
//! calls and each wrapper is written once.

mod balances;
mod monitor;
mod orders;
mod ratelimit;
mod risk;
mod signals;
mod workers;

pub use balances::BalanceCalls;
pub use monitor::MonitorCalls;
pub use orders::{Claim, ClaimedOrder, OrderCalls, OrderFilter, OrderRecord, OrderReservation, Reserved, Settlement};
pub use ratelimit::RateLimitCalls;
pub use risk::{PositionRecord, RiskCalls, TradingState};
pub use signals::{SignalCalls, SignalVerdict};
pub use workers::WorkerCalls;

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
