//! The shared rate-limit windows (guarantee 3): booking a request, penalties
//! and what the venue's own headers say.

use super::*;

/// The wrappers of ratelimit's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait RateLimitCalls: Sql {
    async fn rate_acquire(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<f64> {
        let row = self
            .q_one("botai_rate_acquire", "SELECT botai_rate_acquire($1, $2, $3)", &[&exchange, &endpoint, &weight])
            .await?;
        row.col(0, "rate_acquire")
    }

    /// Books like `rate_acquire` and answers the booked moment on the
    /// database's clock (`botai_rate_book`: the extension keeps the rule of
    /// where the wait counts from).
    async fn rate_book(&self, exchange: &str, endpoint: &str, weight: Option<i32>) -> Result<DateTime<Utc>> {
        let row = self
            .q_one("botai_rate_book", "SELECT botai_rate_book($1, $2, $3)", &[&exchange, &endpoint, &weight])
            .await?;
        row.col(0, "rate_book")
    }

    async fn rate_penalize(&self, exchange: &str, endpoint: &str, seconds: f64) -> Result<()> {
        self.q_all("botai_rate_penalize", "SELECT botai_rate_penalize($1, $2, $3)", &[&exchange, &endpoint, &seconds])
            .await?;
        Ok(())
    }

    /// What the venue's limit headers said; returns the weight botai added.
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

    /// (endpoint, max_weight, window_seconds, effective limit) of an exchange.
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
}

impl<C: Sql> RateLimitCalls for C {}
