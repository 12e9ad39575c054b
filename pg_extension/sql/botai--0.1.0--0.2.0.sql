-- botai 0.1.0 → 0.2.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.2.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

-- The extension's own locks are 'userlock' locks, a lock tag no SQL
-- function can take (pg_advisory_* take 'advisory' ones), so no role can
-- squat a worker slot, a balance's snapshot lock or a signal's cooldown lock.
CREATE OR REPLACE VIEW botai.workers_status AS
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

COMMENT ON COLUMN botai.worker_types.type_id IS
    'Part of the lock key of the type''s slots: in pg_locks, locktype ''userlock'', classid 1651471457, '
    'objid type_id * 1024 + slot, objsubid 0, held by the registering session.';

CREATE OR REPLACE FUNCTION botai_health() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH components AS (SELECT component, status FROM botai.components_status),
         alerts AS (SELECT severity, count(*) AS n FROM botai.alerts WHERE status = 'open' GROUP BY severity),
         monitor AS (SELECT public.botai_monitor_state() AS state)
    SELECT jsonb_build_object(
        'status', CASE
            WHEN EXISTS (SELECT 1 FROM components WHERE status IN ('down', 'unhealthy'))
              OR EXISTS (SELECT 1 FROM alerts WHERE severity = 'critical') THEN 'unhealthy'
            WHEN EXISTS (SELECT 1 FROM components WHERE status = 'degraded')
              OR EXISTS (SELECT 1 FROM alerts WHERE severity = 'warning')
              OR (SELECT (state->>'stale')::boolean FROM monitor) THEN 'degraded'
            ELSE 'healthy' END,
        'components', coalesce((SELECT jsonb_object_agg(component, status) FROM components), '{}'::jsonb),
        'database', jsonb_build_object(
            'status', 'connected',
            'name', current_database(),
            'server_version', current_setting('server_version'),
            'size_bytes', pg_database_size(current_database()),
            'connections', (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())),
        'alerts', jsonb_build_object(
            'open', coalesce((SELECT sum(n) FROM alerts), 0),
            'by_severity', coalesce((SELECT jsonb_object_agg(severity, n) FROM alerts), '{}'::jsonb)),
        'monitor', (SELECT state FROM monitor),
        'uptime', round(extract(epoch FROM now() - pg_postmaster_start_time())::numeric, 1),
        'version', (SELECT extversion FROM pg_extension WHERE extname = 'botai'),
        'checked_at', now());
$$;
COMMENT ON FUNCTION botai_health() IS
    'The /health document: status (unhealthy on a down or unhealthy component or an open critical alert, degraded on '
    'a degraded one, an open warning, or a monitor whose last completed round is older than three intervals), '
    'components, database, alerts, monitor, uptime (seconds), version.';

COMMENT ON FUNCTION botai_commit_reservation(uuid, numeric) IS
    'The order was placed: the reservation (or the smaller amount actually used) stays held until a balance snapshot '
    'taken after the commit arrives, then retires. The commit is stamped with the database clock at the call '
    '(clock_timestamp(), not the transaction start); a snapshot retires it only when its as_of (the exchange''s clock) '
    'is later by more than botai.balance_clock_skew. True once; false when not held (committed, released, expired).';
-- Nothing of botai is executable by PUBLIC: botai db migrate grants EXECUTE
-- to botai_service and botai_admin, and the read-only functions to
-- botai_reader (migrations/repeatable/grants.sql).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

-- Which build of the library ran this upgrade.
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());
