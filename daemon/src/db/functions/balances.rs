//! Balances and reservations (guarantee 4).

use super::*;

/// The wrappers of balances's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait BalanceCalls: Sql {
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

    #[allow(clippy::too_many_arguments)]
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

    /// The assets botai holds a balance snapshot of for `exchange`.
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
}

impl<C: Sql> BalanceCalls for C {}
