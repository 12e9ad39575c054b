-- botai 0.6.0 → 0.7.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.7.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
--
-- 0.7.0 holds the guarantees at the boundaries (issue 26):
-- - amounts outside botai's domain (16 digits before the point, 12 after)
--   are refused at the door with 22003 (checked in the library);
-- - the trading state in force is a view: the operator's switch
--   (botai.trading_state renamed botai.trading_switch) and the alerts of
--   rules that halt, open or resolved, until an operator acknowledges them
--   (botai.alert_acknowledgements, through botai_resume), so a rule's halt
--   needs no write and no lock, and only an operator lifts it;
-- - a market price marks positions (botai_mark_price), an order's own
--   price no longer does; a reconciliation that opens a position needs its
--   entry price; views and rules survive absurd stored figures;
-- - rules that keep failing are reported; the NOTIFY queue is watched;
-- - alert deliveries: urgent first, a backlog due at once after a success.
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

-------------------------------------------------------------------------------
-- Functions of the library
-------------------------------------------------------------------------------
CREATE  FUNCTION "botai_mark_price"(
	"exchange" TEXT, /* Option < & str > */
	"symbol" TEXT, /* Option < & str > */
	"price" NUMERIC /* Option < AnyNumeric > */
) RETURNS bool /* bool */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_mark_price_wrapper';
REVOKE ALL ON FUNCTION botai_mark_price(text, text, numeric) FROM PUBLIC;

-- botai_resume(reason) becomes botai_resume(reason, acknowledge).
DROP FUNCTION botai_resume(text);
CREATE  FUNCTION "botai_resume"(
	"reason" TEXT DEFAULT 'resumed by an operator', /* Option < & str > */
	"acknowledge" bigint[] DEFAULT NULL /* :: std :: option :: Option < Vec < Option < i64 > > > */
) RETURNS TEXT /* String */
VOLATILE SECURITY DEFINER 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_resume_acknowledging_wrapper';
REVOKE ALL ON FUNCTION botai_resume(text, bigint[]) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Tables
-------------------------------------------------------------------------------
ALTER TABLE botai.trading_state RENAME TO trading_switch;
ALTER TABLE botai.trading_switch RENAME CONSTRAINT trading_state_pkey TO trading_switch_pkey;
ALTER TABLE botai.trading_switch RENAME CONSTRAINT trading_state_singleton_check TO trading_switch_singleton_check;
ALTER TABLE botai.trading_switch RENAME CONSTRAINT trading_state_mode_check TO trading_switch_mode_check;
COMMENT ON TABLE botai.trading_switch IS
    'The operator''s kill switch, one row (botai.trading_state until 0.7.0): active, reduce_only (only orders that shrink '
    'a position) or halted (no order is sent). Set it with botai_halt(reason[, mode]) and botai_resume(). What is in '
    'force is botai.trading_state: this switch and the open alerts of rules that halt.';

-- The alerts of rules that halt, for botai.trading_state.
CREATE INDEX alerts_halting_idx ON botai.alerts (alert_id) WHERE action IN ('halt', 'reduce_only');

-- 0.7.0: an operator's acknowledgement of an alert (botai_resume …
-- acknowledge): who, when and why. A table of its own, so that recording
-- one never locks the alert the monitor updates every round.
CREATE TABLE botai.alert_acknowledgements (
    alert_id        bigint      PRIMARY KEY REFERENCES botai.alerts ON DELETE CASCADE,
    acknowledged_by text        NOT NULL,
    acknowledged_at timestamptz NOT NULL DEFAULT now(),
    reason          text        NOT NULL
);
COMMENT ON TABLE botai.alert_acknowledgements IS
    'An operator took note of an alert (botai_resume(reason, acknowledge => ARRAY[alert_id])): who (the session''s '
    'login), when and why. An alert of a rule that halts holds trading halted, open or resolved, until it is '
    'acknowledged here.';

-- 0.6.0 halted when a rule's alert opened and let an operator's resume
-- stand while it stayed open; 0.7.0 holds trading until each such alert is
-- acknowledged. What 0.6.0 had already settled is acknowledged here, in
-- the upgrade's name: the alerts that resolved, and the open ones an
-- operator resumed after (the switch active, changed after the alert
-- opened, not by the monitor). An open one the switch still halts for
-- keeps holding trading.
INSERT INTO botai.alert_acknowledgements (alert_id, acknowledged_by, acknowledged_at, reason)
SELECT a.alert_id, 'botai 0.7.0 upgrade', now(),
       CASE WHEN a.status = 'resolved' THEN 'resolved before 0.7.0, which holds rule halts until acknowledged'
            ELSE format('carried over from 0.6.0: %s resumed trading at %s (%s) while it was open',
                        t.changed_by, t.changed_at, coalesce(t.reason, 'no reason given')) END
FROM botai.alerts a CROSS JOIN botai.trading_switch t
WHERE a.action IN ('halt', 'reduce_only')
  AND (a.status = 'resolved'
       OR (t.mode = 'active' AND t.changed_at > a.opened_at AND t.changed_by <> 'botai monitor'));

-- 0.7.0 gives every position an entry: one 0.6.0 left without (a
-- reconciliation without a price) is entered at its last price, and said.
DO $$
DECLARE
    entered text;
BEGIN
    WITH fixed AS (
        UPDATE botai.positions SET avg_entry = last_price
        WHERE qty <> 0 AND avg_entry IS NULL AND last_price IS NOT NULL
        RETURNING exchange || '/' || symbol AS position)
    SELECT string_agg(position, ', ') INTO entered FROM fixed;
    IF entered IS NOT NULL THEN
        RAISE WARNING 'botai 0.7.0: positions % had no entry price; entered at their last price (check them against the venue)',
            entered;
    END IF;
END
$$;

ALTER TABLE botai.rule_status ADD COLUMN failed_rounds integer NOT NULL DEFAULT 0;
COMMENT ON TABLE botai.rule_status IS
    'Written by the monitor after every evaluation: last_error is set while a rule fails (a bad row), NULL when it works; '
    'failed_rounds counts the rounds in a row it failed (from 3 on, the monitor reports it as its own error, critical '
    'for a rule that halts trading).';

ALTER TABLE botai.alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE botai.alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('heartbeat_timeout', 'high_error_rate', 'memory_usage', 'worker_offline', 'low_balance',
                    'rate_limit_exceeded', 'daily_loss', 'critical_error', 'notify_queue'));
INSERT INTO botai.alert_rules (rule, kind, threshold, window_seconds, severity, action, params, description) VALUES
    ('notify_queue',        'notify_queue',          5, 60, 'critical', 'notify', '{}',
     'The cluster''s NOTIFY queue is more than threshold percent full (pg_notification_queue_usage()): a session that LISTENs inside a transaction it never ends holds it; when it is full every NOTIFY, and so every signal, fails')
ON CONFLICT (rule) DO NOTHING;

-- Limits of botai's domain. A limit stored before 0.7.0 outside it keeps the
-- constraint unvalidated (every later write is checked) and is named here.
ALTER TABLE botai.risk_limits ADD CONSTRAINT risk_limits_in_domain CHECK (
        max_position_notional < 1e16 AND scale(max_position_notional) <= 12
        AND max_order_notional < 1e16 AND scale(max_order_notional) <= 12
        AND max_gross_exposure < 1e16 AND scale(max_gross_exposure) <= 12
        AND max_daily_loss < 1e16 AND scale(max_daily_loss) <= 12) NOT VALID;
DO $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(format('%s/%s', exchange, symbol), ', ') INTO bad FROM botai.risk_limits
    WHERE NOT (coalesce(max_position_notional < 1e16 AND scale(max_position_notional) <= 12, true)
           AND coalesce(max_order_notional < 1e16 AND scale(max_order_notional) <= 12, true)
           AND coalesce(max_gross_exposure < 1e16 AND scale(max_gross_exposure) <= 12, true)
           AND coalesce(max_daily_loss < 1e16 AND scale(max_daily_loss) <= 12, true));
    IF bad IS NULL THEN
        ALTER TABLE botai.risk_limits VALIDATE CONSTRAINT risk_limits_in_domain;
    ELSE
        RAISE WARNING 'botai 0.7.0: botai.risk_limits rows % hold limits outside botai''s amounts (below 10^16, at most '
            '12 decimals); correct them, then ALTER TABLE botai.risk_limits VALIDATE CONSTRAINT risk_limits_in_domain', bad;
    END IF;
END
$$;

COMMENT ON TABLE botai.alert_channels IS
    'Where alerts go (log, telegram, email, webhook), registered by an operator (botai_alert_channel; `botai alerts '
    'apply`): an event is owed to each enabled channel whose triggers match it (botai.alert_triggers), from the '
    'channel''s registration on. The daemons deliver the channels they have the secrets of.';

INSERT INTO botai.alert_channels (channel, triggers) VALUES ('log', '{*}') ON CONFLICT (channel) DO NOTHING;
SELECT pg_catalog.pg_extension_config_dump('botai.alert_channels', 'WHERE channel <> ''log''');

-------------------------------------------------------------------------------
-- Views and SQL functions
-------------------------------------------------------------------------------
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

CREATE FUNCTION botai.unrealized(qty numeric, avg_entry numeric, last_price numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN abs(qty) < 1e16 AND abs(avg_entry) < 1e16 AND abs(last_price) < 1e16
                THEN qty * (last_price - avg_entry) END;
$$;
CREATE OR REPLACE VIEW botai.pnl_today AS
SELECT e.exchange,
       coalesce(f.realized_pnl, 0) AS realized_pnl,
       coalesce(f.fees, 0) AS fees,
       coalesce(u.unrealized_pnl, 0) AS unrealized_pnl,
       coalesce(f.realized_pnl, 0) - coalesce(f.fees, 0) + coalesce(u.unrealized_pnl, 0) AS net_pnl,
       coalesce(f.fills, 0) AS fills
FROM (SELECT exchange FROM botai.positions UNION SELECT exchange FROM botai.risk_limits) e
LEFT JOIN (SELECT exchange, sum(coalesce(realized_pnl, 0)) AS realized_pnl, sum(coalesce(fee_quote, 0)) AS fees,
                  count(*) AS fills
           FROM botai.orders
           WHERE status = 'filled' AND finished_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           GROUP BY exchange) f ON f.exchange = e.exchange
LEFT JOIN (SELECT exchange, sum(botai.unrealized(qty, avg_entry, last_price)) AS unrealized_pnl
           FROM botai.positions WHERE qty <> 0 GROUP BY exchange) u ON u.exchange = e.exchange;

CREATE OR REPLACE VIEW botai.positions_status AS
SELECT p.exchange, p.symbol, p.qty, p.avg_entry, p.last_price,
       CASE WHEN abs(p.qty) < 1e16 AND p.last_price < 1e16 THEN abs(p.qty) * p.last_price END AS notional,
       CASE WHEN p.qty <> 0 THEN botai.unrealized(p.qty, p.avg_entry, p.last_price) ELSE 0 END AS unrealized_pnl,
       p.realized_pnl, p.fees, p.trades, coalesce(o.open_orders, 0) AS open_orders,
       coalesce(o.pending_qty, 0) AS pending_qty, p.opened_at, p.updated_at
FROM botai.positions p
LEFT JOIN (SELECT exchange, symbol, count(*) AS open_orders, sum(pending_qty) AS pending_qty
           FROM botai.pending_orders GROUP BY exchange, symbol) o ON o.exchange = p.exchange AND o.symbol = p.symbol;

CREATE OR REPLACE FUNCTION botai_component_health(component text) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION botai_alert_delivered(event_id bigint, channel text, claimer text) RETURNS boolean
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

COMMENT ON FUNCTION botai_resume(text, bigint[]) IS
    'Lifts the operator''s halt or reduce-only state (botai.trading_switch). An alert of a rule that halts (daily_loss) '
    'holds trading halted until an operator acknowledges it, open or resolved: resuming then needs each such alert '
    'acknowledged in the call (acknowledge => ARRAY[alert_id]), recorded in botai.alert_acknowledgements with who, when '
    'and why; otherwise refused (55000) naming them. For the operator role only.';
COMMENT ON FUNCTION botai_mark_price(text, text, numeric) IS
    'A market price of a symbol (ticker, last trade, the venue''s mark) for the position''s unrealised P&L and exposure. '
    'The only price besides fills that marks a position: an order''s own price never does. True when a position was marked.';
COMMENT ON FUNCTION botai_position_reconcile(text, text, numeric, numeric) IS
    'What the venue says a position is: with no order of the symbol open, the book takes the venue''s quantity. A '
    'position the book takes on (from flat, or reversed) needs the venue''s entry price (refused with 22023 without '
    'one). Returns venue minus book (0 when they agree), NULL while orders are open.';

REVOKE ALL ON FUNCTION botai.unrealized(numeric, numeric, numeric) FROM PUBLIC;
