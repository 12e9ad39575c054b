-- botai 0.5.0 → 0.6.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.6.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
--
-- 0.6.0 runs on a streaming standby: every function that writes refuses
-- there with 25006 naming the server (the Rust functions check it in the
-- library; the SQL and PL/pgSQL ones call botai_require_primary first),
-- botai_health() says whether the server is a standby, and the monitor
-- idles in recovery and starts its rounds once promoted.
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

CREATE FUNCTION "botai_require_primary"(
	"function" TEXT /* &str */
) RETURNS void
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_require_primary_wrapper';
REVOKE ALL ON FUNCTION botai_require_primary(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION botai_alert_channel(channel text, triggers text[], enabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known constant text[] := ARRAY['worker_offline', 'high_error_rate', 'low_balance', 'critical_error',
                                   'worker_restart', 'rate_limit_exceeded', '*'];
    unknown text[];
    inserted boolean;
BEGIN
    PERFORM public.botai_require_primary('botai_alert_channel');
    IF channel IS NULL OR triggers IS NULL OR enabled IS NULL THEN
        RAISE EXCEPTION 'botai_alert_channel: channel, triggers and enabled must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF channel !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'botai_alert_channel: channel "%" must be 1 to 32 lowercase letters, digits or _, starting with a letter',
            channel USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(DISTINCT t ORDER BY t) INTO unknown FROM unnest(triggers) t WHERE t IS NULL OR NOT t = ANY (known);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'botai_alert_channel: unknown trigger(s) % for channel "%"', unknown, channel
            USING ERRCODE = '22023', HINT = 'known triggers: ' || array_to_string(known, ', ');
    END IF;
    INSERT INTO botai.alert_channels AS c (channel, triggers, enabled)
    VALUES (botai_alert_channel.channel, ARRAY(SELECT DISTINCT t FROM unnest(triggers) t ORDER BY t),
            botai_alert_channel.enabled)
    ON CONFLICT ON CONSTRAINT alert_channels_pkey DO UPDATE
       SET triggers = EXCLUDED.triggers, enabled = EXCLUDED.enabled,
           updated_at = CASE WHEN (c.triggers, c.enabled) IS DISTINCT FROM (EXCLUDED.triggers, EXCLUDED.enabled)
                             THEN now() ELSE c.updated_at END
    RETURNING (xmax = 0) INTO inserted;
    RETURN inserted;
END
$$;

CREATE OR REPLACE FUNCTION botai_alert_claim(channel text, claimer text, max_events integer DEFAULT 1,
                                  lease interval DEFAULT '1 minute')
RETURNS TABLE (event_id bigint, attempts integer, alert jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.botai_require_primary('botai_alert_claim');
    IF channel IS NULL OR claimer IS NULL OR max_events IS NULL OR lease IS NULL THEN
        RAISE EXCEPTION 'botai_alert_claim: arguments must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF channel !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'botai_alert_claim: no channel can be named "%"', left(channel, 64) USING ERRCODE = '22023';
    END IF;
    IF length(claimer) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'botai_alert_claim: claimer must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF max_events < 1 OR max_events > 1000 THEN
        RAISE EXCEPTION 'botai_alert_claim: max_events % is not between 1 and 1000', max_events USING ERRCODE = '22023';
    END IF;
    IF lease <= interval '0' OR lease > interval '1 hour' THEN
        RAISE EXCEPTION 'botai_alert_claim: lease % is not between 0 and 1 hour', lease USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH due AS (
        SELECT d.event_id FROM botai.alert_deliveries d
        WHERE d.channel = botai_alert_claim.channel AND d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.claimed_until IS NULL OR d.claimed_until <= now())
        ORDER BY d.event_id LIMIT max_events
        FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE botai.alert_deliveries d
           SET claimed_by = claimer, claimed_until = now() + lease, attempts = d.attempts + 1
          FROM due WHERE d.event_id = due.event_id AND d.channel = botai_alert_claim.channel
        RETURNING d.event_id, d.attempts)
    SELECT c.event_id, c.attempts,
           to_jsonb(a) || jsonb_build_object('event', e.event, 'event_id', e.event_id, 'occurred_at', e.occurred_at,
                                             'kind', r.kind)
    FROM claimed c
    JOIN botai.alert_events e ON e.event_id = c.event_id
    JOIN botai.alerts a ON a.alert_id = e.alert_id
    JOIN botai.alert_rules r ON r.rule = a.rule
    ORDER BY c.event_id;
END
$$;

CREATE OR REPLACE FUNCTION botai_alert_delivered(event_id bigint, channel text, claimer text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT public.botai_require_primary('botai_alert_delivered');
    WITH done AS (
        UPDATE botai.alert_deliveries d
           SET status = 'delivered', delivered_at = now(), claimed_until = NULL, last_error = NULL
         WHERE d.event_id = botai_alert_delivered.event_id AND d.channel = botai_alert_delivered.channel
           AND d.status = 'pending' AND d.claimed_by = claimer
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM done);
$$;

CREATE OR REPLACE FUNCTION botai_alert_failed(event_id bigint, channel text, claimer text, error text, retry_in interval)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed boolean;
BEGIN
    PERFORM public.botai_require_primary('botai_alert_failed');
    IF retry_in IS NULL OR retry_in < interval '0' OR retry_in > interval '1 day' THEN
        RAISE EXCEPTION 'botai_alert_failed: retry_in % is not between 0 and 1 day', retry_in USING ERRCODE = '22023';
    END IF;
    UPDATE botai.alert_deliveries d
       SET next_attempt_at = now() + retry_in, claimed_until = NULL, last_error = left(error, 1000)
     WHERE d.event_id = botai_alert_failed.event_id AND d.channel = botai_alert_failed.channel
       AND d.status = 'pending' AND d.claimed_by = claimer;
    changed := FOUND;
    RETURN changed;
END
$$;

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
        'standby', pg_is_in_recovery(),
        'version', (SELECT extversion FROM pg_extension WHERE extname = 'botai'),
        'checked_at', now());
$$;

COMMENT ON FUNCTION botai_health() IS
    'The /health document: status (unhealthy on a down or unhealthy component or an open critical alert, degraded on '
    'a degraded one, an open warning, or a monitor whose last completed round is older than three intervals), '
    'components, database, alerts, monitor, uptime (seconds), standby (true on a server in recovery, which answers '
    'reads and refuses every write with 25006), version.';

COMMENT ON FUNCTION botai_require_primary(text) IS
    'Raises 25006 naming the function and this server when the server is a standby in recovery; nothing on a '
    'primary. Every botai function that writes checks it first.';
