-- Roles and rights of botai: the single source (README "Roles and rights").
-- Applied by every `botai db migrate` (idempotent), so roles and objects
-- added by a new release are covered. Each component holds only the rights
-- it needs:
--
--   botai_admin     owner: configures everything (all privileges on the tables)
--   botai_operator  people and automation: the kill switch (botai_halt,
--                   botai_resume with the acknowledgement of a rule's halt),
--                   alert channels (botai_alert_channel), risk limits and
--                   alert rules (botai.risk_limits, botai.alert_rules)
--   botai_ml        the ML manager: its worker slot, signals, tasks
--   botai_engine    trading engines: claims, reservations, orders, the
--                   position book, balance snapshots, the venues' rate keys
--   botai_alerter   alert delivery: the outbox, Telegram's rate keys
--   botai_reader    dashboards: views, health, metrics
--   botai_service   the single-host convenience login of the daemon: a
--                   member of botai_ml, botai_engine and botai_alerter,
--                   never of botai_operator
--
-- Every component role and the operator read what the reader reads. The
-- function list below names every botai function; tests/roles.rs fails when
-- the extension has one this file does not name.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['botai_admin', 'botai_operator', 'botai_ml', 'botai_engine', 'botai_alerter',
                             'botai_reader', 'botai_service'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            -- Logins without a password: none can log in over TCP until one
            -- is given (scripts/cluster.sh gives botai_service and
            -- botai_operator theirs); botai_admin owns and never logs in.
            EXECUTE format('CREATE ROLE %I %s', r, CASE WHEN r = 'botai_admin' THEN 'NOLOGIN' ELSE 'LOGIN' END);
        END IF;
    END LOOP;
END
$$;

-- Memberships: the convenience login holds the three components' rights;
-- components and the operator read what the reader reads. botai_service is
-- never the operator: the daemon cannot lift a halt or silence a channel.
DO $$
DECLARE
    m record;
    pair record;
BEGIN
    FOR pair IN SELECT * FROM (VALUES ('botai_ml', 'botai_service'), ('botai_engine', 'botai_service'),
                                   ('botai_alerter', 'botai_service'), ('botai_reader', 'botai_ml'),
                                   ('botai_reader', 'botai_engine'), ('botai_reader', 'botai_alerter'),
                                   ('botai_reader', 'botai_operator')) AS v(granted, member) LOOP
        IF NOT pg_has_role(pair.member, pair.granted, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', pair.granted, pair.member);
        END IF;
    END LOOP;
    FOR m IN SELECT r.rolname AS member FROM pg_auth_members a
             JOIN pg_roles g ON g.oid = a.roleid AND g.rolname = 'botai_operator'
             JOIN pg_roles r ON r.oid = a.member
             WHERE r.rolname IN ('botai_service', 'botai_ml', 'botai_engine', 'botai_alerter', 'botai_reader') LOOP
        EXECUTE format('REVOKE botai_operator FROM %I', m.member);
    END LOOP;
END
$$;

-- Limits per login: a reader cannot take the cluster's connections, and no
-- session of botai's holds a transaction open (a LISTEN inside one holds the
-- cluster's NOTIFY queue; an open transaction holds row locks). Roles are
-- the cluster's, shared by every database: written only when they differ,
-- so migrations of several databases at once do not update them together.
DO $$
DECLARE
    l record;
BEGIN
    FOR l IN SELECT * FROM (VALUES ('botai_reader', 20, '60s'), ('botai_operator', 10, '5min'),
                                   ('botai_ml', 40, '60s'), ('botai_engine', 100, '60s'),
                                   ('botai_alerter', 40, '60s'), ('botai_service', 200, '60s'))
                    AS v(role, connections, idle) LOOP
        IF (SELECT rolconnlimit FROM pg_roles WHERE rolname = l.role) IS DISTINCT FROM l.connections THEN
            EXECUTE format('ALTER ROLE %I CONNECTION LIMIT %s', l.role, l.connections);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                       WHERE r.rolname = l.role AND s.setdatabase = 0
                         AND format('idle_in_transaction_session_timeout=%s', l.idle) = ANY (s.setconfig)) THEN
            EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', l.role, l.idle);
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON SCHEMA botai FROM PUBLIC;
GRANT USAGE ON SCHEMA botai TO botai_admin, botai_operator, botai_ml, botai_engine, botai_alerter, botai_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA botai
    FROM PUBLIC, botai_service, botai_reader, botai_ml, botai_engine, botai_alerter, botai_operator;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA botai
    FROM PUBLIC, botai_service, botai_reader, botai_ml, botai_engine, botai_alerter, botai_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA botai TO botai_admin;
-- Components read the tables (the engine its claims and book, the ML manager
-- its signals); they write only through the functions (SECURITY DEFINER).
GRANT SELECT ON ALL TABLES IN SCHEMA botai TO botai_ml, botai_engine, botai_alerter, botai_operator;
-- The operator's configuration: risk limits, and alert rules edited or
-- disabled, never deleted (deleting a rule deletes its alerts, and with them
-- the record of a halt and its acknowledgement; that is the owner's).
GRANT INSERT, UPDATE, DELETE ON botai.risk_limits TO botai_operator;
GRANT INSERT, UPDATE ON botai.alert_rules TO botai_operator;
-- The venues' configured limits: the rate functions a reader may call
-- (botai_rate_usage, _stats, _keys) run as their caller and read them.
GRANT SELECT ON botai.rate_limits TO botai_reader;

DO $$
DECLARE
    v record;
    f record;
    -- Who may call each function, by name (every signature of the name).
    rights constant jsonb := '{
        "botai_build_id":                   ["botai_reader"],
        "botai_fingerprint":                ["botai_reader"],
        "botai_recent_signals":             ["botai_reader"],
        "botai_signal_stats":               ["botai_reader"],
        "botai_worker_stats":               ["botai_reader"],
        "botai_metrics":                    ["botai_reader"],
        "botai_health":                     ["botai_reader"],
        "botai_component_health":           ["botai_reader"],
        "botai_monitor_state":              ["botai_reader"],
        "botai_rate_usage":                 ["botai_reader"],
        "botai_rate_stats":                 ["botai_reader"],
        "botai_rate_keys":                  ["botai_reader"],
        "botai_require_primary":            ["botai_reader"],
        "botai_register_signal":            ["botai_ml"],
        "botai_check_and_register_signal":  ["botai_ml"],
        "botai_register_worker":            ["botai_ml", "botai_engine"],
        "botai_worker_heartbeat":           ["botai_ml", "botai_engine"],
        "botai_unregister_worker":          ["botai_ml", "botai_engine"],
        "botai_enqueue_task":               ["botai_ml", "botai_engine"],
        "botai_claim_task":                 ["botai_ml", "botai_engine"],
        "botai_complete_task":              ["botai_ml", "botai_engine"],
        "botai_register_component":         ["botai_ml", "botai_engine", "botai_alerter"],
        "botai_heartbeat":                  ["botai_ml", "botai_engine", "botai_alerter"],
        "botai_report_error":               ["botai_ml", "botai_engine", "botai_alerter"],
        "botai_rate_acquire":               ["botai_engine", "botai_alerter"],
        "botai_rate_book":                  ["botai_engine", "botai_alerter"],
        "botai_rate_try_acquire":           ["botai_engine", "botai_alerter"],
        "botai_rate_penalize":              ["botai_engine", "botai_alerter"],
        "botai_rate_observe":               ["botai_engine", "botai_alerter"],
        "botai_update_balance":             ["botai_engine"],
        "botai_check_balance_availability": ["botai_engine"],
        "botai_reserve_balance":            ["botai_engine"],
        "botai_release_reservation":        ["botai_engine"],
        "botai_commit_reservation":         ["botai_engine"],
        "botai_order_claim":                ["botai_engine"],
        "botai_order_finish":               ["botai_engine"],
        "botai_unhandled_signals":          ["botai_engine"],
        "botai_reserve_order":              ["botai_engine"],
        "botai_send_permit":                ["botai_engine"],
        "botai_send_done":                  ["botai_engine"],
        "botai_position_reconcile":         ["botai_engine"],
        "botai_mark_price":                 ["botai_engine"],
        "botai_position_adopt":             ["botai_engine"],
        "botai_venue_trade":                ["botai_engine"],
        "botai_alert_claim":                ["botai_alerter"],
        "botai_alert_delivered":            ["botai_alerter"],
        "botai_alert_failed":               ["botai_alerter"],
        "botai_alert_next_due":             ["botai_alerter"],
        "botai_halt":                       ["botai_operator"],
        "botai_resume":                     ["botai_operator"],
        "botai_alert_channel":              ["botai_operator"],
        "botai_monitor_start":              [],
        "alert_triggers":                   ["botai_reader"],
        "unrealized":                       ["botai_reader"],
        "orders_changed":                   [],
        "botai_rate_limits_changed":        [],
        "alert_event_owed":                 []
    }';
    who text;
    unknown text[] := '{}';
BEGIN
    FOR v IN SELECT schemaname, viewname FROM pg_views WHERE schemaname = 'botai' LOOP
        EXECUTE format('GRANT SELECT ON %I.%I TO botai_reader', v.schemaname, v.viewname);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure AS sig, p.proname::text AS name FROM pg_proc p
        JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, botai_service, botai_reader, botai_ml, botai_engine, '
                       'botai_alerter, botai_operator', f.sig);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO botai_admin', f.sig);
        IF NOT rights ? f.name THEN
            unknown := unknown || f.name;
            CONTINUE;
        END IF;
        FOR who IN SELECT jsonb_array_elements_text(rights -> f.name) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.sig, who);
        END LOOP;
    END LOOP;
    IF cardinality(unknown) > 0 THEN
        -- A function nobody decided the rights of is executable by its
        -- owner only: say so, loudly, rather than guess.
        RAISE WARNING 'botai grants: no rights listed for %: only botai_admin may call them (add them to '
            'migrations/repeatable/grants.sql)', unknown;
    END IF;
END
$$;
