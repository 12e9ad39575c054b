//! The monitor's background workers.
//!
//! Which databases are served: every database that has the extension. A
//! launcher (a static background worker, connected to
//! `botai.monitor_launcher_database`, `postgres` by default) lists the
//! connectable databases every 10 s and starts one monitor per database that
//! has none; a monitor that finds no botai extension in its database exits
//! and its database is not tried again for 5 minutes. `CREATE EXTENSION
//! botai` starts the monitor of its database at once (botai_monitor_start).
//!
//! A monitor round runs in one transaction, and each step of it (expiring
//! reservations, requeuing tasks, evicting stale workers, pruning, and every
//! alert rule) in a subtransaction of its own: a failing step is logged,
//! rolled back and recorded in botai.rule_status, and the round goes on.
//! SIGTERM (server shutdown, pg_terminate_backend, DROP DATABASE … FORCE)
//! ends the monitor after its current step; the launcher starts a new one
//! within 10 s if the server keeps running.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

use crate::clock;
use crate::gucs;
use crate::monitor::rules;
use crate::shmem::{self, MonitorSlot};

const LAUNCHER_SCAN: Duration = Duration::from_secs(10);
/// A database found without the extension is not tried again before this.
const NO_EXTENSION_BACKOFF_US: i64 = 5 * 60 * 1_000_000;
/// A monitor started before the CREATE EXTENSION that started it commits
/// waits this long for the extension to become visible.
const EXTENSION_GRACE: Duration = Duration::from_secs(60);

/// Registers the launcher; called from _PG_init while preloading.
pub fn register_launcher() {
    BackgroundWorkerBuilder::new("botai monitor launcher")
        .set_type("botai monitor launcher")
        .set_library("botai")
        .set_function("botai_monitor_launcher_main")
        .enable_spi_access()
        // On a hot standby too (from a consistent state): the monitors it
        // starts idle until the server is promoted.
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

fn alive(pid: i32) -> bool {
    pid != 0 && unsafe { !pg_sys::BackendPidGetProc(pid).is_null() }
}

/// Starts the monitor of `dboid` unless one runs or is starting.
fn start_monitor(dboid: pg_sys::Oid, slot: &MonitorSlot) -> bool {
    let now = clock::wall();
    if alive(slot.pid.load(Ordering::Acquire)) {
        return false;
    }
    let starting = slot.starting_at.load(Ordering::Acquire);
    if starting != 0 && now - starting < 30_000_000 {
        return false;
    }
    slot.starting_at.store(now, Ordering::Release);
    let started = BackgroundWorkerBuilder::new("botai monitor")
        .set_type("botai monitor")
        .set_library("botai")
        .set_function("botai_monitor_main")
        .set_argument(Some(pg_sys::Datum::from(dboid.to_u32())))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .load_dynamic();
    if started.is_err() {
        slot.starting_at.store(0, Ordering::Release);
        warning!("botai: could not start the monitor of database {dboid}: no background worker slot free (max_worker_processes)");
    }
    started.is_ok()
}

/// Starts the monitor of the current database now (CREATE EXTENSION calls
/// it). True when a monitor was started, false when one already runs.
#[pg_extern(volatile)]
fn botai_monitor_start() -> bool {
    let dboid = unsafe { pg_sys::MyDatabaseId };
    match shmem::monitor_slot(dboid.to_u32()) {
        Ok(Some(slot)) => {
            slot.no_extension_at.store(0, Ordering::Release);
            start_monitor(dboid, slot)
        }
        Ok(None) => {
            warning!("botai: every monitor slot is taken; the launcher will retry");
            false
        }
        Err(e) => e.raise("botai_monitor_start"),
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn botai_monitor_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = gucs::monitor_launcher_database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("botai monitor launcher started (database {database})");
    loop {
        if gucs::MONITOR_ENABLED.get() {
            launch_round();
        }
        if !BackgroundWorker::wait_latch(Some(LAUNCHER_SCAN)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
}

fn launch_round() {
    // Every database that exists keeps its rate-limit windows and counters,
    // connectable or not: only a dropped database's are freed.
    let (existing, connectable): (Vec<u32>, Vec<pg_sys::Oid>) = BackgroundWorker::transaction(|| {
        Spi::connect(|client| {
            client
                .select("SELECT oid, datallowconn AND NOT datistemplate FROM pg_catalog.pg_database", None, &[])
                .map(|rows| {
                    let mut existing = Vec::new();
                    let mut connectable = Vec::new();
                    for r in rows {
                        let Ok(Some(oid)) = r.get::<pg_sys::Oid>(1) else { continue };
                        existing.push(oid.to_u32());
                        if r.get::<bool>(2).ok().flatten().unwrap_or(false) {
                            connectable.push(oid);
                        }
                    }
                    (existing, connectable)
                })
                .unwrap_or_default()
        })
    });
    if existing.is_empty() {
        return;
    }
    if let Err(e) = shmem::forget_databases(&existing) {
        warning!("botai monitor launcher: {e}");
    }
    let databases = connectable;
    let now = clock::wall();
    for dboid in databases {
        let Ok(Some(slot)) = shmem::monitor_slot(dboid.to_u32()) else { continue };
        let missing_at = slot.no_extension_at.load(Ordering::Acquire);
        if missing_at != 0 && now - missing_at < NO_EXTENSION_BACKOFF_US {
            continue;
        }
        start_monitor(dboid, slot);
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn botai_monitor_main(arg: pg_sys::Datum) {
    let dboid = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SIGTERM (pg_terminate_backend, shutdown, DROP DATABASE … FORCE) ends
    // the monitor wherever it is, a lock wait included, as it ends any
    // backend: PostgreSQL's own handler, acted on at the next interrupt check.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(terminate));
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(dboid), None);
    let Ok(Some(slot)) = shmem::monitor_slot(dboid.to_u32()) else {
        warning!("botai monitor: no monitor slot for database {dboid}");
        return;
    };
    let me = unsafe { pg_sys::MyProcPid };
    let previous = slot.pid.load(Ordering::Acquire);
    if alive(previous) && previous != me
        || slot.pid.compare_exchange(previous, me, Ordering::AcqRel, Ordering::Acquire).is_err()
    {
        return; // another monitor serves this database
    }
    slot.starting_at.store(0, Ordering::Release);
    log!("botai monitor started for database {dboid}");
    let started = std::time::Instant::now();
    loop {
        match round(slot) {
            Round::Done => {}
            Round::NoExtension if started.elapsed() > EXTENSION_GRACE => {
                slot.no_extension_at.store(clock::wall(), Ordering::Release);
                break;
            }
            Round::NoExtension => {
                if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
                    break;
                }
                pgrx::check_for_interrupts!();
                continue;
            }
        }
        let interval = Duration::from_secs(u64::try_from(gucs::MONITOR_INTERVAL.get()).unwrap_or(5));
        if !BackgroundWorker::wait_latch(Some(interval)) {
            break;
        }
        pgrx::check_for_interrupts!();
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    let _ = slot.pid.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire);
}

/// What PostgreSQL's die() does: ask for the process to end at the next
/// CHECK_FOR_INTERRUPTS (inside a lock wait too) and wake it.
unsafe extern "C-unwind" fn terminate(_signal: i32) {
    unsafe {
        pg_sys::InterruptPending = 1;
        pg_sys::ProcDiePending = 1;
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

enum Round {
    Done,
    NoExtension,
}

thread_local! {
    /// The database's botai objects are another release than the library's:
    /// said once, then the monitor idles until ALTER EXTENSION botai UPDATE.
    static STALE_SQL_REPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The longest a monitor step waits for a lock a client holds: a step
/// never waits on a client for longer; what stays locked is retried at the
/// next round.
const STEP_LOCK_TIMEOUT: &str = "1s";

/// One evaluation round in its own transaction. Never raises: a failure
/// outside the isolated steps aborts the round's transaction and is logged.
fn round(slot: &MonitorSlot) -> Round {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(|| run_round(slot))
        .catch_others(|e| {
            warning!("botai monitor: the round failed: {}", describe(&e));
            None
        })
        .execute();
    unsafe {
        match outcome {
            Some(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            None => {
                pg_sys::AbortCurrentTransaction();
                pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
                slot.round_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    outcome.unwrap_or(Round::Done)
}

fn run_round(slot: &MonitorSlot) -> Option<Round> {
    let Some(installed) = Spi::connect(crate::release::installed).ok().flatten() else {
        return Some(Round::NoExtension);
    };
    if installed != crate::release::LIBRARY {
        if !STALE_SQL_REPORTED.with(|r| r.replace(true)) {
            warning!(
                "botai monitor: this database has the SQL objects of botai {installed}, the library is {}; the \
                 monitor idles until ALTER EXTENSION botai UPDATE (botai db migrate does it)",
                crate::release::LIBRARY
            );
        }
        return Some(Round::Done);
    }
    STALE_SQL_REPORTED.with(|r| r.set(false));
    if crate::standby::in_recovery() {
        // A standby writes nothing: its tables are the primary's, replayed.
        // The round counts as done so that health does not call the monitor
        // stale; the first round after the promotion does the work.
        slot.last_round_at.store(clock::wall(), Ordering::Release);
        return Some(Round::Done);
    }
    if let Err(e) = crate::ratelimit::notice_promotion() {
        warning!("botai monitor: {e}");
    }
    // Bounded waits for every step of this round's transaction.
    let _ = Spi::run(&format!("SELECT pg_catalog.set_config('lock_timeout', '{STEP_LOCK_TIMEOUT}', true)"));
    let mut failures = 0u64;
    let retention = f64::from(gucs::SIGNAL_RETENTION.get().max(gucs::SIGNAL_DEDUP_WINDOW.get()));
    let history = f64::from(gucs::HISTORY_RETENTION.get());
    for (what, sql, horizon) in MAINTENANCE {
        let args = match horizon {
            Horizon::None => vec![],
            Horizon::AllWorkerTypes => vec![Option::<String>::None.into()],
            Horizon::Signals => vec![retention.into()],
            Horizon::History => vec![history.into()],
        };
        failures += u64::from(isolated(what, || Spi::run_with_args(sql, &args).map_err(|e| e.to_string())).is_none());
    }
    if gucs::WORKER_EVICT_STALE.get() {
        failures += u64::from(isolated("evict stale workers", || Spi::run(EVICT).map_err(|e| e.to_string())).is_none());
    }
    match isolated("load alert rules", || rules::load().map_err(|e| e.to_string())) {
        None => failures += 1,
        Some(all) => {
            for rule in all {
                let outcome = isolated_with_error(&rule.rule, || rules::evaluate(&rule).map_err(|e| e.to_string()));
                // A rule whose action is a trading state (halt, reduce_only)
                // holds trading through its open alerts (botai.trading_state
                // reads them): nothing to write here, and no lock a client
                // holds can keep the halt from being in force. The engines
                // and the dashboard hear of each change.
                if let (Ok(evaluated), Some(_)) = (&outcome, rules::trading_mode(&rule.action)) {
                    if !evaluated.opened.is_empty() || evaluated.resolved > 0 {
                        failures += u64::from(
                            isolated("announce the trading state", || {
                                Spi::run(ANNOUNCE_TRADING_STATE).map_err(|e| e.to_string())
                            })
                            .is_none(),
                        );
                    }
                }
                if let (Ok(evaluated), "restart_component") = (&outcome, rule.action.as_str()) {
                    for subject in &evaluated.opened {
                        failures += u64::from(
                            isolated("restart a component", || {
                                rules::restart(&rule, subject).map_err(|e| e.to_string())
                            })
                            .is_none(),
                        );
                    }
                }
                let error = outcome.as_ref().err().cloned();
                failures += u64::from(error.is_some());
                let failed_rounds = isolated("record rule status", || {
                    Spi::get_one_with_args::<i32>(RULE_STATUS, &[rule.rule.as_str().into(), error.as_deref().into()])
                        .map_err(|e| e.to_string())
                })
                .flatten()
                .unwrap_or(0);
                // A rule that keeps failing evaluates nothing: after a few
                // rounds that is an error of the monitor's own, critical for
                // a rule that halts trading (its halt cannot open), and so
                // an alert of the critical_error rule, delivered to people.
                if failed_rounds >= RULE_FAILURES_REPORTED
                    && (failed_rounds - RULE_FAILURES_REPORTED) % RULE_FAILURES_REPEAT == 0
                {
                    let critical = rules::trading_mode(&rule.action).is_some();
                    let message = format!(
                        "alert rule {} ({}) failed {failed_rounds} rounds in a row: {}{}",
                        rule.rule,
                        rule.kind,
                        error.as_deref().unwrap_or(""),
                        if critical { "; its halt cannot be put in force while it fails" } else { "" }
                    );
                    failures += u64::from(
                        isolated("report a failing rule", || {
                            Spi::run_with_args(REPORT_MONITOR_ERROR, &[message.as_str().into(), critical.into()])
                                .map_err(|e| e.to_string())
                        })
                        .is_none(),
                    );
                }
            }
        }
    }
    slot.rounds.fetch_add(1, Ordering::Relaxed);
    slot.round_errors.fetch_add(failures, Ordering::Relaxed);
    slot.last_round_at.store(clock::wall(), Ordering::Release);
    Some(Round::Done)
}

/// (what, statement, uses history retention rather than signal retention).
/// What a maintenance statement's $1 is.
enum Horizon {
    None,
    AllWorkerTypes,
    Signals,
    History,
}

/// Each statement skips rows a client has locked (SKIP LOCKED): they are
/// taken at a later round, and the monitor never waits on a client.
const MAINTENANCE: &[(&str, &str, Horizon)] = &[
    (
        "expire reservations",
        "UPDATE botai.reservations SET status = 'expired', closed_at = now(), \
           pending_seq = nextval('botai.reservation_pending_seq') \
         WHERE reservation_id IN (SELECT reservation_id FROM botai.reservations \
                                  WHERE status = 'held' AND expires_at <= now() FOR UPDATE SKIP LOCKED)",
        Horizon::None,
    ),
    ("requeue tasks of ended sessions", crate::workers::REQUEUE_ORPHANS_SQL, Horizon::AllWorkerTypes),
    (
        "prune signals",
        "DELETE FROM botai.signals WHERE signal_id IN ( \
           SELECT signal_id FROM botai.signals \
           WHERE accepted_at < now() - make_interval(secs => $1) AND signal_ts < now() - make_interval(secs => $1) \
           ORDER BY signal_id LIMIT 10000 FOR UPDATE SKIP LOCKED)",
        Horizon::Signals,
    ),
    (
        "prune history",
        "WITH e AS (DELETE FROM botai.component_errors WHERE error_id IN ( \
                      SELECT error_id FROM botai.component_errors WHERE reported_at < now() - make_interval(secs => $1) \
                      FOR UPDATE SKIP LOCKED)), \
              a AS (DELETE FROM botai.alerts WHERE alert_id IN ( \
                      SELECT a.alert_id FROM botai.alerts a WHERE a.status = 'resolved' \
                        AND a.resolved_at < now() - make_interval(secs => $1) \
                        AND NOT EXISTS (SELECT 1 FROM botai.alert_events e \
                                        JOIN botai.alert_deliveries d ON d.event_id = e.event_id \
                                        WHERE e.alert_id = a.alert_id AND d.status = 'pending') \
                        AND (a.action NOT IN ('halt', 'reduce_only') \
                             OR EXISTS (SELECT 1 FROM botai.alert_acknowledgements k WHERE k.alert_id = a.alert_id)) \
                      FOR UPDATE OF a SKIP LOCKED)), \
              r AS (DELETE FROM botai.reservations WHERE reservation_id IN ( \
                      SELECT reservation_id FROM botai.reservations WHERE status IN ('released', 'expired', 'retired') \
                        AND counted = 0 AND closed_at < now() - make_interval(secs => $1) FOR UPDATE SKIP LOCKED)), \
              t AS (DELETE FROM botai.tasks WHERE task_id IN ( \
                      SELECT task_id FROM botai.tasks WHERE status IN ('done', 'failed') \
                        AND completed_at < now() - make_interval(secs => $1) FOR UPDATE SKIP LOCKED)) \
         DELETE FROM botai.workers WHERE worker_id IN ( \
           SELECT worker_id FROM botai.workers WHERE unregistered_at < now() - make_interval(secs => $1) \
           FOR UPDATE SKIP LOCKED)",
        Horizon::History,
    ),
];

/// Ends the backends of workers that hold their slot without heartbeats.
const EVICT: &str = "WITH stale AS (SELECT worker_id, pid, heartbeat_age_seconds FROM botai.workers_status \
                                  WHERE state = 'stale'), \
                          ended AS (UPDATE botai.workers w SET unregistered_at = now(), status = 'stopped', \
                                      end_reason = format('evicted by the monitor: no heartbeat for %s s', \
                                                          round(s.heartbeat_age_seconds)) \
                                    FROM stale s WHERE w.worker_id = s.worker_id RETURNING s.pid) \
                     SELECT pg_catalog.pg_terminate_backend(pid) FROM ended";

/// Records an evaluation; returns how many rounds in a row the rule failed.
const RULE_STATUS: &str = "INSERT INTO botai.rule_status AS s (rule, last_evaluated_at, last_error, last_error_at, \
       failed_rounds) \
     VALUES ($1, now(), $2, CASE WHEN $2 IS NULL THEN NULL ELSE now() END, CASE WHEN $2 IS NULL THEN 0 ELSE 1 END) \
     ON CONFLICT (rule) DO UPDATE SET last_evaluated_at = now(), last_error = EXCLUDED.last_error, \
       last_error_at = coalesce(EXCLUDED.last_error_at, s.last_error_at), \
       failed_rounds = CASE WHEN EXCLUDED.last_error IS NULL THEN 0 ELSE s.failed_rounds + 1 END \
     RETURNING failed_rounds";

/// Rounds in a row a rule fails before the monitor reports it, and how
/// often it reports again while the rule keeps failing (within the
/// critical_error rule's window at the default interval).
const RULE_FAILURES_REPORTED: i32 = 3;
const RULE_FAILURES_REPEAT: i32 = 50;

/// The monitor's own errors, counted by high_error_rate and critical_error.
const REPORT_MONITOR_ERROR: &str = "INSERT INTO botai.component_errors (component, error, is_critical) \
     VALUES ('botai monitor', left($1, 4000), $2)";

/// Tells the engines and dashboards that botai.trading_state changed.
const ANNOUNCE_TRADING_STATE: &str = "SELECT pg_catalog.pg_notify('botai_trading_state', \
       jsonb_build_object('mode', mode, 'reason', left(reason, 2000), 'changed_by', changed_by)::text) \
     FROM botai.trading_state";

fn describe(e: &CaughtError) -> String {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.message().to_owned(),
        CaughtError::RustPanic { ereport, .. } => ereport.message().to_owned(),
    }
}

/// Runs `f` in a subtransaction; an error (raised or returned) rolls it back
/// and is logged. None on failure.
fn isolated<T>(what: &str, f: impl FnOnce() -> Result<T, String> + UnwindSafe + RefUnwindSafe) -> Option<T> {
    isolated_with_error(what, f).ok()
}

fn isolated_with_error<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, String> + UnwindSafe + RefUnwindSafe,
) -> Result<T, String> {
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let result = PgTryBuilder::new(f).catch_others(|e| Err(describe(&e))).execute();
        match &result {
            Ok(_) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => {
                pg_sys::FlushErrorState();
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        if let Err(message) = &result {
            warning!("botai monitor: {what} failed: {message}");
        }
        result
    }
}
