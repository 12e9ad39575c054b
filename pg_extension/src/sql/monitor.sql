-- botai: the monitor (guarantee 5): components, open alerts, health, documentation.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

CREATE VIEW botai.components_status AS
WITH timeout AS (
    SELECT coalesce((SELECT min(r.threshold) FROM botai.alert_rules r
                     WHERE r.kind = 'heartbeat_timeout' AND r.enabled), 120) AS seconds
)
SELECT c.component,
       CASE WHEN c.status = 'stopped' THEN 'stopped'
            WHEN c.last_heartbeat < now() - make_interval(secs => t.seconds) THEN 'down'
            ELSE c.status END AS status,
       c.status AS reported_status,
       c.last_heartbeat,
       extract(epoch FROM now() - c.last_heartbeat)::float8 AS heartbeat_age_seconds,
       c.active_tasks,
       c.metadata,
       c.errors_total,
       (SELECT count(*) FROM botai.component_errors e
        WHERE e.component = c.component AND e.reported_at > now() - interval '1 minute') AS errors_last_minute,
       c.last_error,
       c.last_error_at,
       c.registered_at
FROM botai.components c, timeout t;
COMMENT ON VIEW botai.components_status IS
    'Each component with its effective status: down when its last heartbeat is older than the heartbeat_timeout '
    'rule''s threshold, stopped after a clean stop, else the status it reported.';

CREATE VIEW botai.open_alerts AS
SELECT alert_id, rule, subject, severity, action, opened_at, last_seen_at, value, details,
       extract(epoch FROM now() - opened_at)::float8 AS open_seconds
FROM botai.alerts WHERE status = 'open';
COMMENT ON VIEW botai.open_alerts IS 'Alerts currently open, one per (rule, subject).';


CREATE FUNCTION botai_component_health(component text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    doc jsonb;
BEGIN
    IF component IS NULL THEN
        RAISE EXCEPTION 'botai_component_health: component must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT jsonb_build_object(
               'component', s.component, 'status', s.status, 'reported_status', s.reported_status,
               'last_heartbeat', s.last_heartbeat, 'heartbeat_age_seconds', round(s.heartbeat_age_seconds::numeric, 3),
               'active_tasks', s.active_tasks, 'metadata', s.metadata, 'errors_total', s.errors_total,
               'errors_last_minute', s.errors_last_minute, 'last_error', s.last_error,
               'open_alerts', coalesce((SELECT jsonb_agg(jsonb_build_object('rule', a.rule, 'severity', a.severity,
                                                                           'opened_at', a.opened_at) ORDER BY a.opened_at)
                                        FROM botai.alerts a WHERE a.status = 'open' AND a.subject = s.component),
                                       '[]'::jsonb))
      INTO doc
      FROM botai.components_status s WHERE s.component = btrim(botai_component_health.component);
    IF doc IS NULL THEN
        RAISE EXCEPTION 'botai_component_health: no component named "%"%', left(component, 64),
            CASE WHEN length(component) > 64 THEN format('… (%s characters)', length(component)) ELSE '' END
            USING ERRCODE = 'P0002';
    END IF;
    RETURN doc;
END
$$;

CREATE FUNCTION botai_health() RETURNS jsonb
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
        'standby', pg_is_in_recovery(),
        'version', (SELECT extversion FROM pg_extension WHERE extname = 'botai'),
        'checked_at', now());
$$;

COMMENT ON FUNCTION botai_register_component(text, jsonb) IS
    'Registers (or re-registers) a component as healthy; true when it was not known before.';
COMMENT ON FUNCTION botai_heartbeat(text, text, integer, jsonb) IS
    'Records a heartbeat (status healthy, degraded, unhealthy or stopped; metadata may carry cpu_percent, '
    'memory_percent, latency_ms). False for an unregistered component. NOTIFY botai_heartbeats only when the status '
    'changes or the component comes back after going quiet, never on every beat.';
COMMENT ON FUNCTION botai_report_error(text, text, boolean) IS
    'Records an error of a component; the high_error_rate rule counts them.';
COMMENT ON FUNCTION botai_component_health(text) IS 'One component''s effective status, errors and open alerts.';
COMMENT ON FUNCTION botai_health() IS
    'The /health document: status (unhealthy on a down or unhealthy component or an open critical alert, degraded on '
    'a degraded one, an open warning, or a monitor whose last completed round is older than three intervals), '
    'components, database, alerts, monitor, uptime (seconds), standby (true on a server in recovery, which answers '
    'reads and refuses every write with 25006), version.';
COMMENT ON FUNCTION botai_require_primary(text) IS
    'Raises 25006 naming the function and this server when the server is a standby in recovery; nothing on a '
    'primary. Every botai function that writes checks it first.';
COMMENT ON FUNCTION botai_metrics() IS 'Prometheus text exposition (format 0.0.4) of this database.';
COMMENT ON FUNCTION botai_monitor_start() IS
    'Starts the monitor background worker of this database now (CREATE EXTENSION calls it).';
