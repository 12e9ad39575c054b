//! Standbys: botai on a hot standby of a streaming-replication pair.
//!
//! The library is preloaded on the standby too, so promotion finds it ready.
//! While the server is in recovery it answers what only reads (health,
//! metrics, the status views, `botai_rate_usage`) and every function that
//! writes — a table, or the rate limiter's shared memory, which is not
//! replicated — refuses with SQLSTATE 25006 (read_only_sql_transaction) and
//! a message naming the server, before it touches anything. Without the
//! check such a call ends deep inside PostgreSQL ("cannot assign
//! TransactionIds during recovery", XX000).
//!
//! Rate windows across a promotion are ratelimit.rs's business: a server
//! that started in recovery knows nothing of what its primary booked.

use pgrx::prelude::*;

use crate::error::{BotaiError, Result};

/// True while the server replays WAL: a standby, or a primary recovering
/// from a crash (no client is connected then).
pub fn in_recovery() -> bool {
    unsafe { pg_sys::RecoveryInProgress() }
}

/// `cluster_name` and port of this server, for messages.
pub fn server_name() -> String {
    let port = unsafe { pg_sys::PostPortNumber };
    let cluster = unsafe {
        let name = pg_sys::cluster_name;
        if name.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    };
    if cluster.is_empty() {
        format!("port {port}")
    } else {
        format!("{cluster}, port {port}")
    }
}

/// Ok on a primary; on a standby, the 25006 error every writer raises.
pub fn ensure_primary() -> Result<()> {
    if in_recovery() {
        return Err(BotaiError::Standby { server: server_name() });
    }
    Ok(())
}

/// The same refusal for botai's functions written in SQL and PL/pgSQL (the
/// alert outbox), which call this first with their own name.
#[pg_extern(volatile, parallel_safe)]
fn botai_require_primary(function: &str) {
    if let Err(e) = ensure_primary() {
        let function: String = function.chars().take(64).collect();
        pgrx::pg_sys::panic::ErrorReport::new(e.sqlstate(), format!("{function}: {e}"), "botai_require_primary")
            .report(PgLogLevel::ERROR);
    }
}
