-- botai: alert delivery (guarantee 5): the outbox the daemons deliver from.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

CREATE FUNCTION botai.alert_triggers(kind text, severity text, action text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN kind IN ('worker_offline', 'heartbeat_timeout') THEN 'worker_offline' END,
        CASE WHEN kind = 'high_error_rate' THEN 'high_error_rate' END,
        CASE WHEN kind = 'low_balance' THEN 'low_balance' END,
        CASE WHEN kind = 'rate_limit_exceeded' THEN 'rate_limit_exceeded' END,
        CASE WHEN kind = 'critical_error' OR severity = 'critical' THEN 'critical_error' END,
        CASE WHEN action = 'restart_component' THEN 'worker_restart' END,
        '*'], NULL);
$$;
COMMENT ON FUNCTION botai.alert_triggers(text, text, text) IS
    'The original design''s alert triggers an alert of this rule kind, severity and action answers to: '
    'worker_offline (worker_offline, heartbeat_timeout), high_error_rate, low_balance, rate_limit_exceeded (the rules '
    'of those kinds), critical_error (the critical_error rule and every critical alert, daily_loss among them), '
    'worker_restart (rules whose action is restart_component); ''*'' answers every alert.';

-- Each event is owed to every enabled channel it matches, in the same
-- transaction that opened or resolved the alert: nothing is lost between
-- the monitor and the deliverers, whether or not one runs.
CREATE FUNCTION botai.alert_event_owed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO botai.alert_deliveries (event_id, channel)
    SELECT NEW.event_id, c.channel
    FROM botai.alerts a
    JOIN botai.alert_rules r ON r.rule = a.rule
    JOIN botai.alert_channels c
      ON c.enabled AND c.triggers && botai.alert_triggers(r.kind, a.severity, a.action)
    WHERE a.alert_id = NEW.alert_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_event_owed AFTER INSERT ON botai.alert_events
    FOR EACH ROW EXECUTE FUNCTION botai.alert_event_owed();

CREATE FUNCTION botai_alert_channel(channel text, triggers text[], enabled boolean DEFAULT true) RETURNS boolean
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
    SELECT array_agg(DISTINCT left(t, 64) ORDER BY left(t, 64)) INTO unknown
    FROM unnest(triggers) t WHERE t IS NULL OR NOT t = ANY (known);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'botai_alert_channel: unknown trigger(s) % for channel "%"', left(unknown::text, 200), channel
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
COMMENT ON FUNCTION botai_alert_channel(text, text[], boolean) IS
    'Registers (or updates) an alert channel and the triggers it takes (botai.alert_triggers names; ''*'' for all). '
    'Every alert event from then on is owed to it once, until it is disabled. True when it was not known before.';

CREATE FUNCTION botai_alert_claim(channel text, claimer text, max_events integer DEFAULT 1,
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
    -- Most urgent first: openings of critical alerts, the newest first (what
    -- is breaking now), then every other event in the order it happened.
    RETURN QUERY
    WITH due AS (
        SELECT d.event_id, (a.severity = 'critical' AND e.event = 'opened') AS urgent
        FROM botai.alert_deliveries d
        JOIN botai.alert_events e ON e.event_id = d.event_id
        JOIN botai.alerts a ON a.alert_id = e.alert_id
        WHERE d.channel = botai_alert_claim.channel AND d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.claimed_until IS NULL OR d.claimed_until <= now())
        ORDER BY (a.severity = 'critical' AND e.event = 'opened') DESC,
                 CASE WHEN a.severity = 'critical' AND e.event = 'opened' THEN -d.event_id ELSE d.event_id END
        LIMIT max_events
        FOR UPDATE OF d SKIP LOCKED),
    claimed AS (
        UPDATE botai.alert_deliveries d
           SET claimed_by = claimer, claimed_until = now() + lease, attempts = d.attempts + 1
          FROM due WHERE d.event_id = due.event_id AND d.channel = botai_alert_claim.channel
        RETURNING d.event_id, d.attempts, due.urgent)
    SELECT c.event_id, c.attempts,
           to_jsonb(a) || jsonb_build_object('event', e.event, 'event_id', e.event_id, 'occurred_at', e.occurred_at,
                                             'kind', r.kind)
    FROM claimed c
    JOIN botai.alert_events e ON e.event_id = c.event_id
    JOIN botai.alerts a ON a.alert_id = e.alert_id
    JOIN botai.alert_rules r ON r.rule = a.rule
    ORDER BY c.urgent DESC, CASE WHEN c.urgent THEN -c.event_id ELSE c.event_id END;
END
$$;
COMMENT ON FUNCTION botai_alert_claim(text, text, integer, interval) IS
    'Claims up to max_events due deliveries of a channel for lease (other deliverers skip them until it ends: a '
    'deliverer that dies mid-send gives them back then), the openings of critical alerts first (newest first), then '
    'the rest in the order they happened. Each row: the event, how many attempts it is on (this one included), and '
    'the alert as it is in botai.alerts with its event.';

CREATE FUNCTION botai_alert_delivered(event_id bigint, channel text, claimer text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT public.botai_require_primary('botai_alert_delivered');
    WITH done AS (
        UPDATE botai.alert_deliveries d
           SET status = 'delivered', delivered_at = now(), claimed_until = NULL, last_error = NULL
         WHERE d.event_id = botai_alert_delivered.event_id AND d.channel = botai_alert_delivered.channel
           AND d.status = 'pending' AND d.claimed_by = claimer
        RETURNING 1),
    -- The channel takes events again: what waits for a later attempt after
    -- its failures is due now (its deliverer collapses a backlog into one
    -- summary rather than trickling it out over the backoff).
    backlog AS ( -- a data-modifying WITH runs whether or not it is read
        UPDATE botai.alert_deliveries d SET next_attempt_at = now()
         WHERE d.channel = botai_alert_delivered.channel AND d.status = 'pending' AND d.next_attempt_at > now()
           AND d.attempts > 0 AND EXISTS (SELECT 1 FROM done)
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM done);
$$;
COMMENT ON FUNCTION botai_alert_delivered(bigint, text, text) IS
    'The channel accepted the event: it is never sent again, and the channel''s deliveries waiting for a later attempt '
    'after failures are due now. False when the delivery is no longer this claimer''s (its lease ran out and another '
    'deliverer took it) or was already delivered.';

CREATE FUNCTION botai_alert_failed(event_id bigint, channel text, claimer text, error text, retry_in interval)
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
COMMENT ON FUNCTION botai_alert_failed(bigint, text, text, text, interval) IS
    'The channel did not accept the event: it is due again after retry_in (the backoff, or the channel''s own '
    'retry_after), with error kept (it must not carry secrets). False when the delivery is no longer this claimer''s.';

CREATE FUNCTION botai_alert_next_due(channel text) RETURNS float8
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- greatest() skips NULLs: nothing owed (min() NULL) must stay NULL, not 0.
    SELECT CASE WHEN s.due IS NOT NULL THEN greatest(0, extract(epoch FROM s.due - now()))::float8 END
    FROM (SELECT min(greatest(d.next_attempt_at, coalesce(d.claimed_until, d.next_attempt_at))) AS due
          FROM botai.alert_deliveries d
          WHERE d.channel = botai_alert_next_due.channel AND d.status = 'pending') s;
$$;
COMMENT ON FUNCTION botai_alert_next_due(text) IS
    'Seconds until the channel''s next delivery is due (0: now), NULL when nothing is owed to it.';

CREATE VIEW botai.alert_deliveries_status AS
SELECT c.channel, c.enabled, c.triggers,
       count(d.*) FILTER (WHERE d.status = 'pending') AS pending,
       count(d.*) FILTER (WHERE d.status = 'delivered') AS delivered,
       coalesce(sum(d.attempts) FILTER (WHERE d.status = 'pending'), 0) AS pending_attempts,
       extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.status = 'pending'))::float8 AS oldest_pending_seconds,
       max(d.delivered_at) AS last_delivered_at,
       (array_agg(d.last_error ORDER BY d.event_id DESC) FILTER (WHERE d.status = 'pending' AND d.last_error IS NOT NULL))[1]
           AS last_error
FROM botai.alert_channels c
LEFT JOIN botai.alert_deliveries d ON d.channel = c.channel
GROUP BY c.channel, c.enabled, c.triggers;
COMMENT ON VIEW botai.alert_deliveries_status IS
    'Per alert channel: deliveries owed (pending) and made, the oldest still owed, and the last error of one owed.';
