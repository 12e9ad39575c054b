-- botai: views, SQL-language functions and the documentation of the
-- guarantees (COMMENT ON), created after every Rust function exists.

-- Which build of the library installed these objects (botai db migrate
-- compares it with botai_build_id() of the library now loaded).
CREATE TABLE botai.installation (
    build_id     text        NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());

-------------------------------------------------------------------------------
-- Signals
-------------------------------------------------------------------------------
CREATE FUNCTION botai_recent_signals(minutes integer DEFAULT 5) RETURNS SETOF botai.signals
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF minutes IS NULL OR minutes <= 0 THEN
        RAISE EXCEPTION 'botai_recent_signals: minutes must be a positive number, not %', coalesce(minutes::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT * FROM botai.signals s
        WHERE s.accepted_at >= now() - make_interval(mins => minutes)
        ORDER BY s.signal_id DESC;
END
$$;

COMMENT ON FUNCTION botai_fingerprint(text, text, text, timestamptz) IS
    'sha256 of json.dumps({"direction","strategy","symbol","timestamp_minute"}, sort_keys=True), first 16 hex characters. '
    'symbol upper-cased and trimmed, direction BUY or SELL, strategy trimmed, ts truncated to the minute in UTC.';
COMMENT ON FUNCTION botai_register_signal(jsonb, timestamptz) IS
    'Registers a signal {symbol, direction, strategy, timestamp, ...}. Of any number of concurrent identical calls '
    'exactly one is accepted and none raises a unique violation. reason: accepted | duplicate | stale | cooldown. '
    'An accepted signal is stored in botai.signals and announced with NOTIFY botai_signals at commit. now (default: '
    'the statement''s start) is the clock staleness and cooldown are judged by; a replay of past data passes its own.';
COMMENT ON FUNCTION botai_check_and_register_signal(jsonb, timestamptz) IS 'accepted of botai_register_signal.';
COMMENT ON FUNCTION botai_recent_signals(integer) IS 'Signals accepted in the last minutes, newest first.';
COMMENT ON FUNCTION botai_signal_stats() IS
    'Registration calls of this database since the server started (shared memory; reset by a restart).';

-------------------------------------------------------------------------------
-- Workers
-------------------------------------------------------------------------------
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

-------------------------------------------------------------------------------
-- Rate limits
-------------------------------------------------------------------------------
COMMENT ON FUNCTION botai_rate_acquire(text, text, integer) IS
    'Books the request at the earliest moment it fits every window that applies (the endpoint''s and the exchange''s '
    'global, exact sliding windows in shared memory) and returns the seconds from now() (the start of the calling '
    'transaction; at most 100 ms ago) until then: now() + the result is the booked moment. A caller that sleeps that long and then '
    'sends never exceeds a limit, however many sessions share the exchange. weight NULL = the endpoint''s '
    'default_weight; a weight above the effective limit is an error (22023). After a server restart every window '
    'counts as full for one window length.';
COMMENT ON FUNCTION botai_rate_book(text, text, integer) IS
    'Books like botai_rate_acquire and returns the booked moment itself (now(), or 100 ms before the clock in an '
    'older transaction, plus the wait): a caller that sends at that moment never exceeds a limit.';
COMMENT ON FUNCTION botai_rate_try_acquire(text, text, integer) IS
    'Books and returns 0 only when the request fits now; otherwise books nothing and returns the seconds until it '
    'would fit.';
COMMENT ON FUNCTION botai_rate_penalize(text, text, float8) IS
    'After the exchange answered "too many requests": nothing is booked on the key (on the whole exchange with '
    'endpoint global) until the seconds have passed.';
COMMENT ON FUNCTION botai_rate_observe(text, text, integer, integer, timestamptz) IS
    'What the venue''s limit headers said: of venue_limit, remaining are left until reset_at. When the venue counted '
    'more than botai booked in the current window (another process on the same key), the difference is booked in '
    'botai''s window until reset_at (at most one window length), so every session waits for it. Never loosens a '
    'window. Returns the weight added.';
COMMENT ON FUNCTION botai_rate_usage(text) IS
    'Per configured endpoint: weight booked in the current window, effective limit, utilization, and seconds until a '
    'request of the default weight would fit.';
COMMENT ON FUNCTION botai_rate_stats(text) IS
    'Per endpoint since the server started: bookings, bookings that had to wait and the total wait, try_acquire '
    'refusals, penalties.';

-------------------------------------------------------------------------------
-- Balances
-------------------------------------------------------------------------------
CREATE VIEW botai.balances_status AS
SELECT b.exchange,
       b.asset,
       b.total,
       b.available,
       b.locked,
       p.reserved,
       b.available - p.reserved AS free,
       b.as_of,
       b.updated_at,
       now() - b.as_of AS age
FROM botai.balances b
CROSS JOIN LATERAL (
    SELECT b.held
         - coalesce((SELECT sum(r.counted)
                     FROM botai.reservations r
                     WHERE r.exchange = b.exchange AND r.asset = b.asset AND r.counted > 0
                       AND r.status IN ('expired', 'retired')), 0)
         - coalesce((SELECT sum(r.counted)
                     FROM botai.reservations r
                     WHERE b.held_expiry_floor <= now()
                       AND r.exchange = b.exchange AND r.asset = b.asset AND r.status = 'held'
                       AND r.expires_at <= now() AND r.counted > 0), 0) AS reserved
    OFFSET 0 -- computed once per row, not once per output column
) p;
COMMENT ON VIEW botai.balances_status IS
    'Latest snapshot per exchange/asset; reserved = held (unexpired) plus committed reservations, exact at once '
    '(balances.held minus what closed reservations freed since the last fold); free = available - reserved.';

CREATE VIEW botai.reservations_status AS
SELECT r.reservation_id,
       r.exchange,
       r.asset,
       r.amount,
       r.committed_amount,
       r.purpose,
       r.metadata,
       CASE WHEN r.status = 'held' AND r.expires_at <= now() THEN 'expired' ELSE r.status END AS status,
       (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now())) AS holds_funds,
       r.created_at,
       r.expires_at,
       r.committed_at,
       r.closed_at,
       greatest(extract(epoch FROM r.expires_at - now()), 0)::float8 AS expires_in_seconds
FROM botai.reservations r;
COMMENT ON VIEW botai.reservations_status IS
    'Every reservation with its effective status: a held reservation past expires_at shows as expired at once, '
    'before the monitor records it.';

COMMENT ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz) IS
    'Stores the exchange''s balance snapshot taken at as_of (default now()); an older snapshot than the stored one '
    'changes nothing and returns false. Committed reservations older than the snapshot retire. Rejects NaN, '
    'infinities, negatives and available > total (22023).';
COMMENT ON FUNCTION botai_check_balance_availability(text, text, numeric) IS
    'free = available - held reservations; available when free >= amount * (1 + botai.balance_safety_margin).';
COMMENT ON FUNCTION botai_reserve_balance(text, text, numeric, text, jsonb, interval) IS
    'Holds amount and returns the reservation id, or NULL when free funds do not cover it (with the safety margin). '
    'However many sessions reserve at once, the held total never exceeds what was available. The hold ends at '
    'release, at expiry (ttl; it stops counting at once, no sweeper needed) or, after commit, at the next newer '
    'balance snapshot.';
COMMENT ON FUNCTION botai_release_reservation(uuid) IS
    'True when it was held; calling again is harmless and returns false. Unknown ids are an error (P0002).';
COMMENT ON FUNCTION botai_commit_reservation(uuid, numeric) IS
    'The order was placed: the reservation (or the smaller amount actually used) stays held until a balance snapshot '
    'taken after the commit arrives, then retires. The commit is stamped with the database clock at the call '
    '(clock_timestamp(), not the transaction start); a snapshot retires it only when its as_of (the exchange''s clock) '
    'is later by more than botai.balance_clock_skew. True once; false when not held (committed, released, expired).';

-------------------------------------------------------------------------------
-- Monitor
-------------------------------------------------------------------------------
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

-------------------------------------------------------------------------------
-- Alert delivery (0.5.0): the outbox the daemons deliver from
-------------------------------------------------------------------------------
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

-- The dashboard is pushed: every statement that records or moves orders
-- announces it once (NOTIFY collapses the same payload within a
-- transaction, so a batch of orders is one notification).
CREATE FUNCTION botai.orders_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('botai_orders', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_changed AFTER INSERT OR UPDATE ON botai.orders
    FOR EACH STATEMENT EXECUTE FUNCTION botai.orders_changed();

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

-- Start the monitor of this database now rather than at the launcher's next
-- scan (it waits for this transaction to commit before acting).
SELECT botai_monitor_start();

-------------------------------------------------------------------------------
-- Orders
-------------------------------------------------------------------------------
CREATE VIEW botai.orders_status AS
SELECT o.order_id, o.signal_id, o.client_order_id, o.engine, o.exchange, o.symbol, o.side, o.status, o.attempt,
       o.qty, o.price, o.notional, o.fee, o.exchange_order_id, o.ret_code, o.message, o.reservation_id,
       o.signal_accepted_at, o.claimed_at, o.finished_at,
       extract(epoch FROM o.finished_at - o.signal_accepted_at)::float8 * 1000 AS latency_ms,
       o.fee_asset, o.fee_quote, o.realized_pnl, o.planned_qty, o.planned_price
FROM botai.orders o;
COMMENT ON VIEW botai.orders_status IS
    'Every order with its latency from signal acceptance to the recorded outcome.';

COMMENT ON FUNCTION botai_order_claim(bigint, text, text) IS
    'Makes the calling engine (its worker id) the owner of the signal''s order: one row (order_id, client_order_id, '
    'attempt, signal details) when it now owns it, none when another live engine owns it or it was handled. At most '
    'one order per signal, whatever the number of engines; a dead engine''s claim can be taken over.';
COMMENT ON FUNCTION botai_order_claim(bigint, text, text, text[]) IS
    'botai_order_claim for an engine that trades only the given symbols of its exchange: a signal for another symbol '
    'or exchange is left unclaimed, for an engine that trades it.';
COMMENT ON FUNCTION botai_order_finish(bigint, text, text, jsonb) IS
    'Records the outcome of a claimed order (filled, rejected, failed, skipped, expired); only the claim holder can.';
COMMENT ON FUNCTION botai_unhandled_signals(interval, integer) IS
    'Signals accepted within lookback that have no order yet, or whose claim belongs to a dead engine.';

-------------------------------------------------------------------------------
-- Risk: the position book with its open orders, the day's P&L
-------------------------------------------------------------------------------
-- A position's unrealised P&L at its last price; NULL (unknown) when a figure
-- is outside botai's amounts (stored before 0.7.0 refused them at the door),
-- so that one absurd row cannot make a view, or a rule reading it, fail for
-- every account.
CREATE FUNCTION botai.unrealized(qty numeric, avg_entry numeric, last_price numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN abs(qty) < 1e16 AND abs(avg_entry) < 1e16 AND abs(last_price) < 1e16
                THEN qty * (last_price - avg_entry) END;
$$;
-- What is in force: the strictest of the operator's switch and every alert
-- of a rule that halts (daily_loss) that no operator acknowledged, open or
-- resolved. Such an alert holds trading from the round that opens it —
-- nothing has to be written for it, so no lock a client holds can keep it
-- from force — and past its condition (a new UTC day, a fresh mark, the
-- rule edited or disabled), until an operator acknowledges it
-- (botai_resume … acknowledge): only an operator lifts a rule's halt.
CREATE VIEW botai.trading_state AS
WITH held AS (
    SELECT bool_or(a.action = 'halt') AS halt,
           bool_or(a.action = 'reduce_only') AS reduce_only,
           array_agg(a.alert_id ORDER BY a.alert_id) AS alerts,
           string_agg(format('alert rule %s (%s) fired on %s (alert %s%s; acknowledge it to resume)', a.rule,
                             coalesce(r.kind, 'a deleted rule'), left(a.subject, 64), a.alert_id,
                             CASE WHEN a.status = 'resolved' THEN ', resolved' ELSE '' END),
                      '; ' ORDER BY a.alert_id) AS why,
           max(a.opened_at) AS since
    FROM botai.alerts a LEFT JOIN botai.alert_rules r ON r.rule = a.rule
    WHERE a.action IN ('halt', 'reduce_only')
      AND NOT EXISTS (SELECT 1 FROM botai.alert_acknowledgements k WHERE k.alert_id = a.alert_id)),
effective AS (
    SELECT s.*, h.alerts, h.why, h.since,
           CASE WHEN s.mode = 'halted' OR coalesce(h.halt, false) THEN 'halted'
                WHEN s.mode = 'reduce_only' OR coalesce(h.reduce_only, false) THEN 'reduce_only'
                ELSE 'active' END AS in_force
    FROM botai.trading_switch s CROSS JOIN held h)
SELECT e.in_force AS mode,
       CASE WHEN e.in_force = e.mode THEN e.reason ELSE e.why END AS reason,
       CASE WHEN e.in_force = e.mode THEN e.changed_by ELSE 'botai monitor' END AS changed_by,
       CASE WHEN e.in_force = e.mode THEN e.changed_at ELSE e.since END AS changed_at,
       e.mode AS switch_mode,
       coalesce(e.alerts, '{}') AS halting_alerts
FROM effective e;
COMMENT ON VIEW botai.trading_state IS
    'The trading state in force, which botai_reserve_order and botai_send_permit obey: the strictest of the operator''s '
    'switch (botai.trading_switch, switch_mode) and the alerts of rules whose action is halt or reduce_only that no '
    'operator acknowledged, open or resolved (halting_alerts). changed_by is ''botai monitor'' while such an alert is '
    'what holds trading.';

CREATE VIEW botai.pnl_today AS
SELECT e.exchange,
       coalesce(f.realized_pnl, 0) AS realized_pnl,
       coalesce(f.fees, 0) AS fees,
       coalesce(u.unrealized_pnl, 0) AS unrealized_pnl,
       coalesce(f.realized_pnl, 0) - coalesce(f.fees, 0) + coalesce(u.unrealized_pnl, 0) AS net_pnl,
       coalesce(f.fills, 0) AS fills
FROM (SELECT exchange FROM botai.positions UNION SELECT exchange FROM botai.risk_limits) e
LEFT JOIN (SELECT exchange, sum(realized_pnl) AS realized_pnl, sum(fee_quote) AS fees, count(*) FILTER (WHERE fill) AS fills
           FROM (SELECT exchange, coalesce(realized_pnl, 0) AS realized_pnl, coalesce(fee_quote, 0) AS fee_quote, true AS fill
                 FROM botai.orders
                 WHERE status = 'filled' AND finished_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                 UNION ALL
                 SELECT exchange, realized_pnl, fee_quote, kind <> 'funding'
                 FROM botai.venue_trades
                 WHERE booked_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') t
           GROUP BY exchange) f ON f.exchange = e.exchange
LEFT JOIN (SELECT exchange, sum(botai.unrealized(qty, avg_entry, last_price)) AS unrealized_pnl
           FROM botai.positions WHERE qty <> 0 GROUP BY exchange) u ON u.exchange = e.exchange;
COMMENT ON VIEW botai.pnl_today IS
    'Per exchange account, the UTC day so far: realised P&L and fees of the day''s fills and of the venue''s own '
    'trades (forced closes, funding; quote currency), the open '
    'positions'' unrealised P&L at their last price, and the net the daily loss limit is checked against.';

CREATE VIEW botai.pending_orders AS
SELECT order_id, exchange, symbol, side, planned_qty, planned_price,
       CASE WHEN side = 'BUY' THEN planned_qty ELSE -planned_qty END AS pending_qty
FROM botai.orders WHERE status = 'claimed' AND planned_qty IS NOT NULL;
COMMENT ON VIEW botai.pending_orders IS
    'Orders botai_reserve_order reserved and nobody finished yet, with what each will add to its position (signed, '
    'BUY positive): the one definition of "open orders" the risk checks, the position book and every engine use.';

CREATE VIEW botai.positions_status AS
SELECT p.exchange, p.symbol, p.qty, p.avg_entry, p.last_price,
       CASE WHEN abs(p.qty) < 1e16 AND p.last_price < 1e16 THEN abs(p.qty) * p.last_price END AS notional,
       CASE WHEN p.qty <> 0 THEN botai.unrealized(p.qty, p.avg_entry, p.last_price) ELSE 0 END AS unrealized_pnl,
       p.realized_pnl, p.fees, p.trades, coalesce(o.open_orders, 0) AS open_orders,
       coalesce(o.pending_qty, 0) AS pending_qty, p.opened_at, p.updated_at
FROM botai.positions p
LEFT JOIN (SELECT exchange, symbol, count(*) AS open_orders, sum(pending_qty) AS pending_qty
           FROM botai.pending_orders GROUP BY exchange, symbol) o ON o.exchange = p.exchange AND o.symbol = p.symbol;
COMMENT ON VIEW botai.positions_status IS
    'The position book with what its open orders (reserved, not finished) will add: what every engine, botai status '
    'and the dashboard show.';

COMMENT ON FUNCTION botai_reserve_order(bigint, text, numeric, numeric, text, numeric, interval, text, numeric) IS
    'Before an order is sent: checks the kill switch and botai.risk_limits against the position book and every open '
    'order, books the rate slot and reserves the funds, in one transaction serialized per exchange account. One row: '
    'reservation_id and booked_at, or refused naming the limit (nothing reserved). With target (the signed position '
    'the order works toward), an order that would carry the exposure past it is refused (at_target).';
COMMENT ON FUNCTION botai_send_permit(bigint) IS
    'Right before an order is sent: NULL when it may go (the session then holds a share of the send gate until '
    'botai_send_done()), or why not (halted, a halt being committed, reduce_only and the order does not reduce).';
COMMENT ON FUNCTION botai_send_done() IS
    'The venue answered an order this session was permitted to send: gives back its share of the send gate.';
COMMENT ON FUNCTION botai_halt(text, text) IS
    'The kill switch: no order is sent after this commits. Waits (up to botai.halt_wait, 30 s) for the orders already '
    'permitted to be answered. mode ''halted'' (default) or ''reduce_only''.';
COMMENT ON FUNCTION botai_resume(text, bigint[]) IS
    'Lifts the operator''s halt or reduce-only state (botai.trading_switch). An alert of a rule that halts (daily_loss) '
    'holds trading halted until an operator acknowledges it, open or resolved: resuming then needs each such alert '
    'acknowledged in the call (acknowledge => ARRAY[alert_id]), recorded in botai.alert_acknowledgements with who, when '
    'and why; otherwise refused (55000) naming them. For the operator role only.';
COMMENT ON FUNCTION botai_mark_price(text, text, numeric) IS
    'A market price of a symbol (ticker, last trade, the venue''s mark) for the position''s unrealised P&L and exposure. '
    'The only price besides fills that marks a position: an order''s own price never does. True when a position was marked.';
COMMENT ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz, interval) IS
    'botai_update_balance from a caller that knows how far as_of''s clock can be from the database''s: commits older '
    'than as_of minus clock_skew retire (instead of botai.balance_clock_skew).';
COMMENT ON FUNCTION botai_position_adopt(text, text, numeric, numeric, numeric) IS
    'The venue''s position of a symbol (signed quantity, the venue''s entry price, the market''s mark): with no order '
    'of the symbol open, the book takes the venue''s quantity and entry price (realised P&L and fees stay). Returns '
    'venue minus book (0 when they agree), NULL while orders are open.';
COMMENT ON FUNCTION botai_venue_trade(text, text, text, text, text, numeric, numeric, numeric) IS
    'A trade the venue made on its own: a forced close (kind liquidation, adl, delisting: side, quantity, price) or a '
    'funding fee (kind funding, no side, quantity or price), fee in the quote currency (positive paid). Booked once per '
    'venue_id into the position book and the day''s P&L (botai.venue_trades); returns the realised P&L, NULL when '
    'the venue_id was booked before.';
COMMENT ON FUNCTION botai_position_reconcile(text, text, numeric, numeric) IS
    'What the venue says a position is: with no order of the symbol open, the book takes the venue''s quantity. A '
    'position the book takes on (from flat, or reversed) needs the venue''s entry price (refused with 22023 without '
    'one). Returns venue minus book (0 when they agree), NULL while orders are open.';

-------------------------------------------------------------------------------
-- The per-order hot path plans its statements once per session. Each of
-- these functions runs a few fixed statements whose plans do not depend on
-- the values bound (index lookups by key); letting the plan cache re-plan
-- them for every call ("custom plans", the default for a statement's first
-- executions and whenever a generic plan looks costlier) spent more CPU than
-- executing them.
-------------------------------------------------------------------------------
ALTER FUNCTION botai_reserve_balance(text, text, numeric, text, jsonb, interval) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_release_reservation(uuid) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_commit_reservation(uuid, numeric) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_order_claim(bigint, text, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_order_finish(bigint, text, text, jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_order_claim(bigint, text, text, text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_reserve_order(bigint, text, numeric, numeric, text, numeric, interval, text, numeric) SET plan_cache_mode = force_generic_plan;

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
