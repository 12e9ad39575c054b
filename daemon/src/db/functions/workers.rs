//! Worker slots (guarantee 1): registration under a session lock, heartbeats
//! and the fencing epoch.

use super::*;

/// The wrappers of workers's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait WorkerCalls: Sql {
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

    /// The fencing epoch of a registration.
    async fn worker_epoch(&self, worker_id: &str) -> Result<Option<i64>> {
        let row =
            self.q_opt("worker epoch", "SELECT epoch FROM botai.workers WHERE worker_id = $1", &[&worker_id]).await?;
        row.map(|r| r.col(0, "worker epoch")).transpose()
    }
}

impl<C: Sql> WorkerCalls for C {}
