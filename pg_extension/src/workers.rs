//! WorkerCoordinator (SQL_API.md §2): slots held by session advisory locks,
//! heartbeats, fencing epochs and a small task queue.
//!
//! A slot is the advisory lock (WORKER_SLOT_NS, type_id * 1024 + slot). The
//! lock belongs to the registering session, so the slot is free the moment
//! that session's connection closes, however its process died; no timeout is
//! involved. Every registration bumps the type's epoch, a fencing token: a
//! newer holder always has a larger epoch than any before it.

use std::cell::RefCell;

use botai_core::names;
use pgrx::prelude::*;
use pgrx::{register_xact_callback, JsonB, PgXactCallbackEvent};

use crate::json::{self, ClientJson};

use crate::clock;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::locks::{self, WORKER_SLOT_NS};
use crate::statements::{writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "sql/workers.sql",
    name = "workers_sql",
    requires = [
        botai_claim_task,
        botai_complete_task,
        botai_enqueue_task,
        botai_register_worker,
        botai_unregister_worker,
        botai_worker_heartbeat
    ]
);

/// Slots per worker type (the lock key is type_id * SLOTS_PER_TYPE + slot).
const SLOTS_PER_TYPE: i32 = 1024;
const WORKER_STATUSES: [&str; 4] = ["running", "idle", "busy", "error"];

thread_local! {
    /// Slot locks taken by the current transaction, released if it aborts:
    /// a registration that did not commit must not keep a slot.
    static TAKEN_THIS_XACT: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Slot locks to release when the current transaction commits: an
    /// unregistration (or a registration that moved the worker id to another
    /// type) frees the slot only once its row update is visible to whoever
    /// takes the slot next; if it aborts, the session keeps the slot.
    static RELEASE_AT_COMMIT: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn my_pid() -> i32 {
    unsafe { pg_sys::MyProcPid }
}

fn my_backend_start() -> pgrx::datum::TimestampWithTimeZone {
    clock::timestamptz(unsafe { pg_sys::MyStartTimestamp })
}

fn take_slot(key: u32) -> bool {
    let already = locks::held_by_me(WORKER_SLOT_NS, key);
    if !locks::try_session_lock(WORKER_SLOT_NS, key) {
        return false;
    }
    if !already {
        TAKEN_THIS_XACT.with(|t| {
            let mut taken = t.borrow_mut();
            if taken.is_empty() {
                register_xact_callback(PgXactCallbackEvent::Abort, || {
                    for key in TAKEN_THIS_XACT.with(|t| std::mem::take(&mut *t.borrow_mut())) {
                        locks::release_session_lock(WORKER_SLOT_NS, key);
                    }
                });
                register_xact_callback(PgXactCallbackEvent::Commit, || {
                    TAKEN_THIS_XACT.with(|t| t.borrow_mut().clear());
                });
            }
            taken.push(key);
        });
    }
    true
}

/// Frees the slot when the current transaction commits.
fn release_slot_at_commit(key: u32) {
    RELEASE_AT_COMMIT.with(|r| {
        let mut keys = r.borrow_mut();
        if keys.is_empty() {
            register_xact_callback(PgXactCallbackEvent::Commit, || {
                for key in RELEASE_AT_COMMIT.with(|r| std::mem::take(&mut *r.borrow_mut())) {
                    locks::release_session_lock(WORKER_SLOT_NS, key);
                }
            });
            register_xact_callback(PgXactCallbackEvent::Abort, || {
                RELEASE_AT_COMMIT.with(|r| r.borrow_mut().clear());
            });
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    });
}

fn metadata_object(argument: &'static str, value: Option<JsonB>) -> Result<Option<serde_json::Value>> {
    match value {
        None => Ok(None),
        Some(JsonB(v)) if v.is_object() => Ok(Some(v)),
        Some(_) => Err(BotaiError::invalid(argument, "must be a JSON object")),
    }
}

static ENSURE_TYPE: Statement = Statement::new(
    "workers.ensure_type",
    "INSERT INTO botai.worker_types (worker_type) VALUES ($1) ON CONFLICT (worker_type) DO NOTHING",
);
static TYPE_INFO: Statement =
    Statement::new("workers.type_info", "SELECT type_id, max_workers FROM botai.worker_types WHERE worker_type = $1");
static MINE_OF_TYPE: Statement = Statement::new(
    "workers.mine_of_type",
    "SELECT worker_id, lock_key FROM botai.workers \
     WHERE worker_type = $1 AND backend_pid = $2 AND backend_start = $3 AND unregistered_at IS NULL",
);
static MINE_BY_ID: Statement = Statement::new(
    "workers.mine_by_id",
    "SELECT lock_key, worker_type FROM botai.workers \
     WHERE worker_id = $1 AND backend_pid = $2 AND backend_start = $3 AND unregistered_at IS NULL",
);
static NEXT_EPOCH: Statement = Statement::new(
    "workers.next_epoch",
    "UPDATE botai.worker_types SET last_epoch = last_epoch + 1 WHERE worker_type = $1 RETURNING last_epoch",
);
static ID_HOLDER: Statement = Statement::new(
    "workers.id_holder",
    "SELECT w.backend_pid FROM botai.workers w \
     WHERE w.worker_id = $1 AND w.unregistered_at IS NULL AND EXISTS ( \
       SELECT 1 FROM pg_catalog.pg_locks l \
       WHERE l.locktype = 'userlock' AND l.database = $2 AND l.classid = $3 AND l.objid = w.lock_key::oid \
         AND l.objsubid = 0 AND l.pid = w.backend_pid AND l.granted)",
);
static UPSERT: Statement = Statement::new(
    "workers.upsert",
    "INSERT INTO botai.workers AS w (worker_id, worker_type, slot, lock_key, epoch, backend_pid, backend_start, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (worker_id) DO UPDATE SET worker_type = EXCLUDED.worker_type, slot = EXCLUDED.slot, \
       lock_key = EXCLUDED.lock_key, epoch = EXCLUDED.epoch, backend_pid = EXCLUDED.backend_pid, \
       backend_start = EXCLUDED.backend_start, status = 'running', active_tasks = 0, metadata = EXCLUDED.metadata, \
       registered_at = now(), last_heartbeat = now(), unregistered_at = NULL, end_reason = NULL",
);
static CLOSE_PREVIOUS: Statement = Statement::new(
    "workers.close_previous",
    "UPDATE botai.workers SET unregistered_at = now(), status = 'stopped', \
       end_reason = 'session ended; slot taken by ' || $3 \
     WHERE worker_type = $1 AND slot = $2 AND worker_id <> $3 AND unregistered_at IS NULL",
);
static HEARTBEAT: Statement = Statement::new(
    "workers.heartbeat",
    "UPDATE botai.workers SET last_heartbeat = now(), status = $2, active_tasks = $3, \
       metadata = metadata || coalesce($4, '{}'::jsonb) \
     WHERE worker_id = $1",
);
static UNREGISTER: Statement = Statement::new(
    "workers.unregister",
    "UPDATE botai.workers SET unregistered_at = now(), status = 'stopped', end_reason = 'unregistered' \
     WHERE worker_id = $1",
);
static REQUEUE_OF_WORKER: Statement = Statement::new(
    "workers.requeue_of_worker",
    "UPDATE botai.tasks SET status = 'queued', claimed_by = NULL, claimed_pid = NULL, \
       claimed_backend_start = NULL, claimed_at = NULL \
     WHERE claimed_by = $1 AND status = 'claimed'",
);

/// Takes a slot of `worker_type` for the calling session and returns the
/// worker's id, or NULL when every slot is held by a live session.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_register_worker(
    worker_type: Option<&str>,
    worker_id: default!(Option<&str>, "NULL"),
    metadata: default!(Option<ClientJson>, "'{}'"),
) -> Option<String> {
    register(worker_type, worker_id, metadata).or_raise("botai_register_worker")
}

fn register(
    worker_type: Option<&str>,
    worker_id: Option<&str>,
    metadata: Option<ClientJson>,
) -> Result<Option<String>> {
    let metadata = json::arg(metadata, "metadata")?;
    let worker_type = names::name("worker_type", required(worker_type, "worker_type")?)?.to_owned();
    let wanted_id = worker_id.map(|id| names::name("worker_id", id).map(str::to_owned)).transpose()?;
    let metadata = metadata_object("metadata", metadata)?.unwrap_or_else(|| serde_json::json!({}));

    writing(|client| {
        ENSURE_TYPE.run(client, &[worker_type.as_str().into()])?;
        // Calling again from the same session returns the same registration.
        let mine =
            MINE_OF_TYPE.run(client, &[worker_type.as_str().into(), my_pid().into(), my_backend_start().into()])?;
        for row in mine {
            let (id, key) = (row.get::<String>(1)?, row.get::<i32>(2)?);
            if let (Some(id), Some(key)) = (id, key) {
                if locks::held_by_me(WORKER_SLOT_NS, key as u32) {
                    return Ok(Some(id));
                }
            }
        }
        let info = TYPE_INFO.run(client, &[worker_type.as_str().into()])?;
        let (type_id, max_workers) = {
            let row = info.first();
            (row.get::<i32>(1)?.unwrap_or(0), row.get::<i32>(2)?.unwrap_or(1))
        };
        if type_id >= i32::MAX / SLOTS_PER_TYPE {
            return Err(BotaiError::Limit {
                message: format!("worker type id {type_id} is too large for a lock key"),
                hint: "recreate botai.worker_types to renumber the types".into(),
            });
        }
        let Some((slot, key)) = (0..max_workers)
            .map(|slot| (slot, (type_id * SLOTS_PER_TYPE + slot) as u32))
            .find(|&(_, key)| take_slot(key))
        else {
            return Ok(None);
        };
        let epoch: i64 = NEXT_EPOCH.one(client, &[worker_type.as_str().into()])?.unwrap_or(0);
        let id = wanted_id.unwrap_or_else(|| generated_id(&worker_type, epoch));
        let holder: Option<i32> = ID_HOLDER.one(
            client,
            &[id.as_str().into(), unsafe { pg_sys::MyDatabaseId }.into(), pg_sys::Oid::from(WORKER_SLOT_NS).into()],
        )?;
        if let Some(pid) = holder.filter(|&pid| pid != my_pid()) {
            locks::release_session_lock(WORKER_SLOT_NS, key);
            return Err(BotaiError::InUse(format!(
                "worker_id \"{id}\" is registered by another live session (pid {pid})"
            )));
        }
        // The id registered by this session under another type gives up
        // that type's slot when this registration commits.
        if let Some((old_key, old_type)) = self::mine(client, &id)? {
            if old_type != worker_type && old_key != key {
                release_slot_at_commit(old_key);
            }
        }
        UPSERT.run(
            client,
            &[
                id.as_str().into(),
                worker_type.as_str().into(),
                slot.into(),
                (key as i32).into(),
                epoch.into(),
                my_pid().into(),
                my_backend_start().into(),
                JsonB(metadata).into(),
            ],
        )?;
        CLOSE_PREVIOUS.run(client, &[worker_type.as_str().into(), slot.into(), id.as_str().into()])?;
        Ok(Some(id))
    })
}

/// `<type>-<epoch>`, shortened to fit the 64-character limit.
fn generated_id(worker_type: &str, epoch: i64) -> String {
    let suffix = format!("-{epoch}");
    let room = names::MAX_NAME_CHARS - suffix.len();
    let prefix: String = worker_type.chars().take(room).collect();
    format!("{prefix}{suffix}")
}

/// The lock key and type of `worker_id` if the calling session registered it
/// and still holds its slot.
fn mine(client: &mut pgrx::spi::SpiClient<'_>, worker_id: &str) -> Result<Option<(u32, String)>> {
    let rows = MINE_BY_ID.run(client, &[worker_id.into(), my_pid().into(), my_backend_start().into()])?;
    if rows.is_empty() {
        return Ok(None);
    }
    let row = rows.first();
    let key = row.get::<i32>(1)?.unwrap_or(-1) as u32;
    let worker_type = row.get::<String>(2)?.unwrap_or_default();
    Ok(locks::held_by_me(WORKER_SLOT_NS, key).then_some((key, worker_type)))
}

/// Records a heartbeat. False when the worker is unknown or its slot is not
/// held by the calling session: a worker that lost its lease learns it here.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_worker_heartbeat(
    worker_id: Option<&str>,
    status: default!(Option<&str>, "'running'"),
    active_tasks: default!(Option<i32>, 0),
    metadata: default!(Option<ClientJson>, "NULL"),
) -> bool {
    heartbeat(worker_id, status, active_tasks, metadata).or_raise("botai_worker_heartbeat")
}

fn heartbeat(
    worker_id: Option<&str>,
    status: Option<&str>,
    active_tasks: Option<i32>,
    metadata: Option<ClientJson>,
) -> Result<bool> {
    let metadata = json::arg(metadata, "metadata")?;
    let worker_id = names::name("worker_id", required(worker_id, "worker_id")?)?;
    let status = required(status, "status")?.trim().to_lowercase();
    if !WORKER_STATUSES.contains(&status.as_str()) {
        return Err(BotaiError::invalid("status", format!("\"{status}\" is not one of running, idle, busy, error")));
    }
    let active_tasks = required(active_tasks, "active_tasks")?;
    if active_tasks < 0 {
        return Err(BotaiError::invalid("active_tasks", format!("must not be negative (got {active_tasks})")));
    }
    let metadata = metadata_object("metadata", metadata)?;
    writing(|client| {
        if mine(client, worker_id)?.is_none() {
            return Ok(false);
        }
        HEARTBEAT.run(
            client,
            &[worker_id.into(), status.as_str().into(), active_tasks.into(), metadata.map(JsonB).into()],
        )?;
        Ok(true)
    })
}

/// Frees the worker's slot at once and returns its claimed tasks to the
/// queue. False when the calling session does not hold that worker.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_unregister_worker(worker_id: Option<&str>) -> bool {
    unregister(worker_id).or_raise("botai_unregister_worker")
}

fn unregister(worker_id: Option<&str>) -> Result<bool> {
    let worker_id = names::name("worker_id", required(worker_id, "worker_id")?)?;
    writing(|client| {
        let Some((key, _)) = mine(client, worker_id)? else {
            return Ok(false);
        };
        UNREGISTER.run(client, &[worker_id.into()])?;
        REQUEUE_OF_WORKER.run(client, &[worker_id.into()])?;
        release_slot_at_commit(key);
        Ok(true)
    })
}

// --- task queue -------------------------------------------------------------

static ENQUEUE: Statement = Statement::new(
    "tasks.enqueue",
    "INSERT INTO botai.tasks (worker_type, payload, dedup_key) VALUES ($1, $2, $3) \
     ON CONFLICT (worker_type, dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'claimed') \
     DO NOTHING RETURNING task_id",
);
static PENDING_WITH_KEY: Statement = Statement::new(
    "tasks.pending_with_key",
    "SELECT task_id FROM botai.tasks WHERE worker_type = $1 AND dedup_key = $2 AND status IN ('queued', 'claimed')",
);
/// A claimed task whose claimer no longer holds its worker slot goes back to
/// the queue. Liveness is the slot's lock, read from the lock manager at
/// the time of the statement (pg_locks), never a per-transaction snapshot
/// of the activity table, in which a claimer that connected later looks dead.
pub const REQUEUE_ORPHANS_SQL: &str = "UPDATE botai.tasks t SET status = 'queued', claimed_by = NULL, \
       claimed_pid = NULL, claimed_backend_start = NULL, claimed_at = NULL \
     WHERE t.status = 'claimed' AND ($1::text IS NULL OR t.worker_type = $1) AND NOT EXISTS ( \
       SELECT 1 FROM botai.workers w \
       JOIN pg_catalog.pg_locks l ON l.locktype = 'userlock' AND l.classid = 1651471457::oid \
         AND l.objsubid = 0 AND l.objid = w.lock_key::oid AND l.pid = w.backend_pid AND l.granted \
         AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database()) \
       WHERE w.worker_id = t.claimed_by AND w.backend_pid = t.claimed_pid \
         AND w.backend_start = t.claimed_backend_start AND w.unregistered_at IS NULL) \
       AND t.task_id IN (SELECT c.task_id FROM botai.tasks c WHERE c.status = 'claimed' \
                         AND ($1::text IS NULL OR c.worker_type = $1) FOR UPDATE SKIP LOCKED)";
static REQUEUE_ORPHANS: Statement = Statement::new("tasks.requeue_orphans", REQUEUE_ORPHANS_SQL);
static CLAIM: Statement = Statement::new(
    "tasks.claim",
    "UPDATE botai.tasks SET status = 'claimed', claimed_by = $2, claimed_pid = $3, claimed_backend_start = $4, \
       claimed_at = now(), attempts = attempts + 1 \
     WHERE status = 'queued' AND task_id = ( \
       SELECT task_id FROM botai.tasks WHERE worker_type = $1 AND status = 'queued' \
       ORDER BY task_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING task_id, payload",
);
static COMPLETE: Statement = Statement::new(
    "tasks.complete",
    "UPDATE botai.tasks SET status = CASE WHEN $2 THEN 'done' ELSE 'failed' END, completed_at = now(), result = $3 \
     WHERE task_id = $1 AND status = 'claimed' AND claimed_pid = $4 AND claimed_backend_start = $5 \
     RETURNING task_id",
);
static TASK_EXISTS: Statement = Statement::new("tasks.exists", "SELECT task_id FROM botai.tasks WHERE task_id = $1");

/// Queues a task for workers of `worker_type`. With a `dedup_key`, a task
/// with the same key that is still queued or claimed is returned instead of
/// a new one.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_enqueue_task(
    worker_type: Option<&str>,
    payload: Option<ClientJson>,
    dedup_key: default!(Option<&str>, "NULL"),
) -> i64 {
    enqueue(worker_type, payload, dedup_key).or_raise("botai_enqueue_task")
}

fn enqueue(worker_type: Option<&str>, payload: Option<ClientJson>, dedup_key: Option<&str>) -> Result<i64> {
    let payload = json::arg(payload, "payload")?;
    let worker_type = names::name("worker_type", required(worker_type, "worker_type")?)?;
    let payload = required(payload, "payload")?;
    let dedup_key = dedup_key.map(|k| names::name("dedup_key", k)).transpose()?;
    writing(|client| {
        // A pending task with the key may finish between the two statements;
        // then the insert succeeds on the next round.
        for _ in 0..3 {
            let args = [worker_type.into(), JsonB(payload.0.clone()).into(), dedup_key.into()];
            if let Some(id) = ENQUEUE.one::<i64>(client, &args)? {
                return Ok(id);
            }
            if let Some(id) = PENDING_WITH_KEY.one::<i64>(client, &[worker_type.into(), dedup_key.into()])? {
                return Ok(id);
            }
        }
        Err(BotaiError::InUse(format!(
            "task with dedup_key \"{}\" keeps changing state; try again",
            dedup_key.unwrap_or("")
        )))
    })
}

/// Hands one queued task of the worker's type to the calling worker; never
/// the same task to two workers. Tasks whose claimer's session has ended go
/// back to the queue first.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_claim_task(worker_id: Option<&str>) -> TableIterator<'static, (name!(task_id, i64), name!(payload, JsonB))> {
    let claimed = claim(worker_id).or_raise("botai_claim_task");
    TableIterator::new(claimed)
}

fn claim(worker_id: Option<&str>) -> Result<Option<(i64, JsonB)>> {
    let worker_id = names::name("worker_id", required(worker_id, "worker_id")?)?;
    writing(|client| {
        let Some((_, worker_type)) = mine(client, worker_id)? else {
            return Err(BotaiError::WrongState(format!(
                "worker \"{worker_id}\" is not registered by this session (register it first, on this connection)"
            )));
        };
        REQUEUE_ORPHANS.run(client, &[worker_type.as_str().into()])?;
        let rows = CLAIM.run(
            client,
            &[worker_type.as_str().into(), worker_id.into(), my_pid().into(), my_backend_start().into()],
        )?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.first();
        Ok(row.get::<i64>(1)?.zip(row.get::<JsonB>(2)?))
    })
}

/// Finishes a task claimed by the calling session. False when the task is
/// not (or no longer) claimed by this session; unknown ids are an error.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_complete_task(task_id: Option<i64>, ok: Option<bool>, result: default!(Option<ClientJson>, "NULL")) -> bool {
    complete(task_id, ok, result).or_raise("botai_complete_task")
}

fn complete(task_id: Option<i64>, ok: Option<bool>, result: Option<ClientJson>) -> Result<bool> {
    let result = json::arg(result, "result")?;
    let task_id = required(task_id, "task_id")?;
    let ok = required(ok, "ok")?;
    writing(|client| {
        let done = COMPLETE
            .run(client, &[task_id.into(), ok.into(), result.into(), my_pid().into(), my_backend_start().into()])?;
        if !done.is_empty() {
            return Ok(true);
        }
        if TASK_EXISTS.one::<i64>(client, &[task_id.into()])?.is_none() {
            return Err(BotaiError::NotFound(format!("no task with task_id {task_id}")));
        }
        Ok(false)
    })
}
