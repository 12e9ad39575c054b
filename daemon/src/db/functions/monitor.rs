//! Components' heartbeats and errors, health and metrics (guarantee 5), and
//! the server's clock.

use super::*;

/// The wrappers of monitor's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait MonitorCalls: Sql {
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

    async fn health(&self) -> Result<Value> {
        let row = self.q_one("botai_health", "SELECT botai_health()", &[]).await?;
        Ok(row.col::<Json>(0, "health")?.0)
    }

    async fn metrics(&self) -> Result<String> {
        let row = self.q_one("botai_metrics", "SELECT botai_metrics()", &[]).await?;
        row.col(0, "metrics")
    }

    /// The database's clock (`clock_timestamp()`).
    async fn db_clock(&self) -> Result<DateTime<Utc>> {
        self.q_one("clock_timestamp", "SELECT clock_timestamp()", &[]).await?.col(0, "db_clock")
    }
}

impl<C: Sql> MonitorCalls for C {}
