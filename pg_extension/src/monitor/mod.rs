//! ProcessMonitor (SQL_API.md §5): nothing fails silently.
//!
//! Components register and heartbeat here and report their errors; a
//! background worker of the extension (worker.rs) evaluates the alert rules
//! (rules.rs) every `botai.monitor_interval`, so alerts fire even when no
//! daemon runs; health and Prometheus metrics (metrics.rs) read it all.
//!
//! `NOTIFY botai_heartbeats` is sent only when a component's status changes
//! (a reported status different from the last, or a beat after the
//! component had gone quiet past the heartbeat_timeout rule): NOTIFY takes a
//! cluster-wide lock at commit, and a notify per beat would serialise every
//! writer.

/// SQL for a numeric column as float8 that never fails: Prometheus values
/// and alert values are doubles, while an exchange may report any numeric
/// (1e400, 1e-1000), whose cast would raise and take the whole query down.
/// Clamped to ±1e300; magnitudes below 1e-300 become 0.
macro_rules! float8_clamped {
    ($column:literal) => {
        concat!(
            "(CASE WHEN abs(",
            $column,
            ") < 1e-300 THEN 0 ELSE least(greatest(",
            $column,
            ", -1e300), 1e300) END)::float8"
        )
    };
}

pub mod metrics;
pub mod rules;
pub mod worker;

use botai_core::names;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::json::{self, ClientJson};
use serde_json::Value;

use crate::error::{required, BotaiError, OrRaise, Result};
use crate::statements::{writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "../sql/monitor.sql",
    name = "monitor_sql",
    requires = [
        botai_heartbeat,
        botai_metrics,
        botai_monitor_start,
        botai_monitor_state,
        botai_register_component,
        botai_report_error,
        botai_require_primary
    ]
);
// Alert delivery: the outbox the daemons deliver alerts to people from.
pgrx::extension_sql_file!("../sql/alerts.sql", name = "alerts_sql", requires = [botai_require_primary]);

pub const COMPONENT_STATUSES: [&str; 4] = ["healthy", "degraded", "unhealthy", "stopped"];
/// Longest error text kept; longer ones are cut (and say so).
const MAX_ERROR_CHARS: usize = 4000;

/// Metadata is a JSON object; the numbers the rules read must be numbers.
fn metadata(argument: &'static str, value: Option<JsonB>) -> Result<Option<Value>> {
    let Some(JsonB(v)) = value else { return Ok(None) };
    let Some(object) = v.as_object() else {
        return Err(BotaiError::invalid(argument, "must be a JSON object"));
    };
    for key in ["cpu_percent", "memory_percent", "latency_ms"] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.is_finite() && f >= 0.0) => {}
            Some(other) => {
                return Err(BotaiError::invalid(argument, format!("{key} must be a number of at least 0, not {other}")))
            }
        }
    }
    if let Some(pid) = object.get("pid") {
        if !pid.as_i64().is_some_and(|p| p > 0 && p <= i64::from(i32::MAX)) {
            return Err(BotaiError::invalid(argument, format!("pid must be a process id, not {pid}")));
        }
    }
    Ok(Some(v))
}

fn announce(component: &str, status: &str, previous: Option<&str>) {
    let payload = serde_json::json!({"component": component, "status": status, "previous": previous}).to_string();
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::pg_notify,
            &["botai_heartbeats".into_datum(), payload.as_str().into_datum()],
        );
    }
}

static REGISTER: Statement = Statement::new(
    "monitor.register",
    "WITH prev AS (SELECT status FROM botai.components WHERE component = $1 FOR UPDATE) \
     INSERT INTO botai.components AS c (component, status, metadata) VALUES ($1, 'healthy', $2) \
     ON CONFLICT (component) DO UPDATE SET status = 'healthy', metadata = EXCLUDED.metadata, \
       registered_at = now(), last_heartbeat = now() \
     RETURNING (SELECT status FROM prev)",
);

/// Registers (or re-registers) a component as healthy. True when it was not
/// known before.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_register_component(component: Option<&str>, metadata: default!(Option<ClientJson>, "'{}'")) -> bool {
    register_component(component, metadata).or_raise("botai_register_component")
}

fn register_component(component: Option<&str>, meta: Option<ClientJson>) -> Result<bool> {
    let meta = json::arg(meta, "metadata")?;
    let component = names::name("component", required(component, "component")?)?;
    let meta = self::metadata("metadata", meta)?.unwrap_or_else(|| serde_json::json!({}));
    writing(|client| {
        let rows = REGISTER.run(client, &[component.into(), JsonB(meta).into()])?;
        let previous: Option<String> = rows.first().get(1)?;
        if previous.as_deref() != Some("healthy") {
            announce(component, "healthy", previous.as_deref());
        }
        Ok(previous.is_none())
    })
}

static HEARTBEAT: Statement = Statement::new(
    "monitor.heartbeat",
    "WITH prev AS ( \
       SELECT c.status, c.last_heartbeat < now() - make_interval(secs => coalesce( \
                (SELECT min(r.threshold) FROM botai.alert_rules r WHERE r.kind = 'heartbeat_timeout' AND r.enabled), \
                120)) AS was_quiet \
       FROM botai.components c WHERE c.component = $1 FOR UPDATE) \
     UPDATE botai.components c SET status = $2, active_tasks = $3, \
       metadata = c.metadata || coalesce($4, '{}'::jsonb), last_heartbeat = now() \
     FROM prev WHERE c.component = $1 \
     RETURNING prev.status, prev.was_quiet",
);

/// Records a heartbeat. False when the component is not registered.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_heartbeat(
    component: Option<&str>,
    status: default!(Option<&str>, "'healthy'"),
    active_tasks: default!(Option<i32>, 0),
    metadata: default!(Option<ClientJson>, "NULL"),
) -> bool {
    heartbeat(component, status, active_tasks, metadata).or_raise("botai_heartbeat")
}

fn heartbeat(
    component: Option<&str>,
    status: Option<&str>,
    active_tasks: Option<i32>,
    meta: Option<ClientJson>,
) -> Result<bool> {
    let meta = json::arg(meta, "metadata")?;
    let component = names::name("component", required(component, "component")?)?;
    let status = required(status, "status")?.trim().to_lowercase();
    if !COMPONENT_STATUSES.contains(&status.as_str()) {
        return Err(BotaiError::invalid(
            "status",
            format!("\"{status}\" is not one of {}", COMPONENT_STATUSES.join(", ")),
        ));
    }
    let active_tasks = required(active_tasks, "active_tasks")?;
    if active_tasks < 0 {
        return Err(BotaiError::invalid("active_tasks", format!("must not be negative (got {active_tasks})")));
    }
    let meta = self::metadata("metadata", meta)?;
    writing(|client| {
        let rows = HEARTBEAT
            .run(client, &[component.into(), status.as_str().into(), active_tasks.into(), meta.map(JsonB).into()])?;
        if rows.is_empty() {
            return Ok(false);
        }
        let row = rows.first();
        let previous: Option<String> = row.get(1)?;
        let was_quiet: bool = row.get(2)?.unwrap_or(false);
        if was_quiet || previous.as_deref() != Some(status.as_str()) {
            let previous = if was_quiet { Some("down") } else { previous.as_deref() };
            announce(component, &status, previous);
        }
        Ok(true)
    })
}

static REPORT_ERROR: Statement = Statement::new(
    "monitor.report_error",
    "WITH e AS (INSERT INTO botai.component_errors (component, error, is_critical) VALUES ($1, $2, $3) RETURNING 1) \
     UPDATE botai.components SET errors_total = errors_total + 1, last_error = $2, last_error_at = now() \
     WHERE component = $1 AND EXISTS (SELECT 1 FROM e)",
);

/// Records an error of a component (registered or not); the high_error_rate
/// rule counts them.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_report_error(component: Option<&str>, error: Option<&str>, is_critical: default!(Option<bool>, false)) {
    report_error(component, error, is_critical).or_raise("botai_report_error")
}

fn report_error(component: Option<&str>, error: Option<&str>, is_critical: Option<bool>) -> Result<()> {
    let component = names::name("component", required(component, "component")?)?;
    let error = required(error, "error")?.trim();
    if error.is_empty() {
        return Err(BotaiError::invalid("error", "must describe the error"));
    }
    let error = if error.chars().count() > MAX_ERROR_CHARS {
        format!("{}… (cut at {MAX_ERROR_CHARS} characters)", error.chars().take(MAX_ERROR_CHARS).collect::<String>())
    } else {
        error.to_owned()
    };
    let is_critical = required(is_critical, "is_critical")?;
    writing(|client| {
        REPORT_ERROR.run(client, &[component.into(), error.as_str().into(), is_critical.into()])?;
        Ok(())
    })
}

/// Seconds since the monitor of `slot` last completed a round; before its
/// first round, since the server started.
pub fn last_round_age_seconds(slot: &crate::shmem::MonitorSlot) -> f64 {
    let last = slot.last_round_at.load(std::sync::atomic::Ordering::Relaxed);
    let since = if last != 0 { last } else { unsafe { pg_sys::PgStartTime } };
    (crate::clock::wall() - since).max(0) as f64 / 1e6
}

/// A monitor is stalled when no round completed for three intervals (plus
/// the launcher's scan before the first one): alerts are then not being
/// evaluated, which botai_health() reports as degraded.
pub fn stalled(slot: &crate::shmem::MonitorSlot) -> bool {
    let interval = f64::from(crate::gucs::MONITOR_INTERVAL.get().max(1));
    let first_round_grace = if slot.last_round_at.load(std::sync::atomic::Ordering::Relaxed) == 0 { 10.0 } else { 0.0 };
    last_round_age_seconds(slot) > 3.0 * interval + first_round_grace
}

/// The monitor of this database: its pid (0 when none runs), rounds, failed
/// steps and last round, from shared memory.
#[pg_extern(volatile)]
fn botai_monitor_state() -> JsonB {
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let slot = crate::shmem::monitor_slot(dboid).or_raise("botai_monitor_state");
    use std::sync::atomic::Ordering::Relaxed;
    let state = match slot {
        None => serde_json::json!({"running": false, "stale": true}),
        Some(s) => {
            let pid = s.pid.load(Relaxed);
            let running = pid != 0 && unsafe { !pg_sys::BackendPidGetProc(pid).is_null() };
            let last = s.last_round_at.load(Relaxed);
            serde_json::json!({
                "running": running,
                "pid": if running { Some(pid) } else { None },
                "rounds": s.rounds.load(Relaxed),
                "failed_steps": s.round_errors.load(Relaxed),
                "last_round_at": (last != 0).then(|| crate::clock::to_chrono(last).to_rfc3339()),
                "interval_seconds": crate::gucs::MONITOR_INTERVAL.get(),
                "last_round_age_seconds": (last_round_age_seconds(s) * 1000.0).round() / 1000.0,
                "stale": stalled(s),
                "standby": crate::standby::in_recovery(),
            })
        }
    };
    JsonB(state)
}
