//! botai's signals (guarantee 2): registration with its dedup verdict, and the
//! engine's sweep for signals no engine settled.

use super::*;

/// The verdict on a signal registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalVerdict {
    pub accepted: bool,
    /// accepted, duplicate, stale or cooldown
    pub reason: String,
    pub signal_id: Option<i64>,
    pub fingerprint: String,
}

/// The wrappers of signals's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait SignalCalls: Sql {
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

    /// When the last signal of (symbol, strategy, direction) was accepted
    /// (its signal timestamp).
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

    /// Whether every one of these signals has a finished order and, where
    /// it filled, a balance snapshot of its exchange taken after the record
    /// (what a stepped replay waits for before its next bar).
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
}

impl<C: Sql> SignalCalls for C {}
