-- botai: workers and the task queue (guarantee 1): views, SQL functions, documentation.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

CREATE VIEW botai.workers_status AS
WITH held AS MATERIALIZED (
    -- The slot locks held right now, read once (pg_locks is not cheap).
    SELECT l.objid, l.pid FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'userlock' AND l.classid = 1651471457::oid AND l.objsubid = 0 AND l.granted
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
)
SELECT w.worker_id,
       w.worker_type,
       w.slot,
       w.epoch,
       w.backend_pid AS pid,
       w.status,
       w.active_tasks,
       w.metadata,
       w.registered_at,
       w.last_heartbeat,
       extract(epoch FROM now() - w.last_heartbeat)::float8 AS heartbeat_age_seconds,
       CASE
           WHEN w.unregistered_at IS NOT NULL THEN 'unregistered'
           WHEN NOT EXISTS (SELECT 1 FROM held h WHERE h.objid = w.lock_key::oid AND h.pid = w.backend_pid) THEN 'dead'
           WHEN w.last_heartbeat < now() - current_setting('botai.worker_heartbeat_timeout')::interval THEN 'stale'
           ELSE 'active'
       END AS state,
       w.unregistered_at,
       w.end_reason
FROM botai.workers w;
COMMENT ON VIEW botai.workers_status IS
    'Every worker registration with its state: active (holds its slot, heartbeat fresh), stale (holds its slot, '
    'no heartbeat for botai.worker_heartbeat_timeout), dead (its session ended without unregistering), unregistered.';

CREATE FUNCTION botai_worker_stats() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH live AS (
        SELECT * FROM botai.workers_status
        WHERE state IN ('active', 'stale') OR unregistered_at IS NULL OR registered_at > now() - interval '1 hour'
    )
    SELECT jsonb_build_object(
        'types', coalesce((
            SELECT jsonb_object_agg(t.worker_type, jsonb_build_object(
                'max_workers', t.max_workers,
                'epoch', t.last_epoch,
                'active', (SELECT count(*) FROM live l WHERE l.worker_type = t.worker_type AND l.state = 'active'),
                'stale', (SELECT count(*) FROM live l WHERE l.worker_type = t.worker_type AND l.state = 'stale'),
                'dead', (SELECT count(*) FROM live l WHERE l.worker_type = t.worker_type AND l.state = 'dead')))
            FROM botai.worker_types t), '{}'::jsonb),
        'statuses', coalesce((
            SELECT jsonb_object_agg(s.status, s.n) FROM (
                SELECT status, count(*) AS n FROM live WHERE state IN ('active', 'stale') GROUP BY status) s),
            '{}'::jsonb),
        'workers', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'worker_id', l.worker_id, 'worker_type', l.worker_type, 'slot', l.slot, 'epoch', l.epoch,
                'pid', l.pid, 'status', l.status, 'state', l.state, 'active_tasks', l.active_tasks,
                'heartbeat_age_seconds', round(l.heartbeat_age_seconds::numeric, 3))
                ORDER BY l.worker_type, l.slot, l.registered_at DESC)
            FROM live l), '[]'::jsonb));
$$;

COMMENT ON FUNCTION botai_register_worker(text, text, jsonb) IS
    'Takes one of the type''s slots (botai.worker_types.max_workers) with a session-level advisory lock and returns '
    'the worker id, or NULL when every slot is held by a live session. The slot is free the moment the session ends, '
    'however the process died. Each registration gets a larger epoch (fencing token). Calling again from the same '
    'session returns the same id. Register on a dedicated connection, never a pooled one.';
COMMENT ON FUNCTION botai_worker_heartbeat(text, text, integer, jsonb) IS
    'Records a heartbeat; false when the worker is unknown or the calling session does not hold its slot.';
COMMENT ON FUNCTION botai_unregister_worker(text) IS
    'Frees the slot at once and requeues the worker''s claimed tasks; false unless the calling session holds it.';
COMMENT ON FUNCTION botai_enqueue_task(text, jsonb, text) IS
    'Queues a task; with dedup_key, an equal pending (queued or claimed) task is returned instead of a new one.';
COMMENT ON FUNCTION botai_claim_task(text) IS
    'Hands one queued task to the calling worker, never the same task to two workers. Tasks whose claimer''s '
    'session ended are queued again first.';
COMMENT ON FUNCTION botai_complete_task(bigint, boolean, jsonb) IS
    'Marks a task claimed by this session done (ok) or failed; false when it is not claimed by this session.';
