-- Privileges on every botai object, applied by every `botai db migrate`
-- (idempotent), so objects added by a new extension version are covered.
--   botai_admin    all privileges on the tables (configuration: rate_limits,
--                  alert_rules, worker_types)
--   botai_service  executes the functions; reads the tables; writes nothing
--                  directly (the writing functions are SECURITY DEFINER)
--   botai_reader   reads the views and the read-only functions

REVOKE ALL ON SCHEMA botai FROM PUBLIC;
GRANT USAGE ON SCHEMA botai TO botai_admin, botai_service, botai_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA botai FROM PUBLIC, botai_service, botai_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA botai TO botai_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA botai TO botai_service;

DO $$
DECLARE
    v record;
    f regprocedure;
    read_only text[] := ARRAY['botai_fingerprint', 'botai_recent_signals', 'botai_signal_stats',
                              'botai_worker_stats', 'botai_build_id', 'botai_metrics', 'botai_health',
                              'botai_component_health'];
BEGIN
    FOR v IN SELECT schemaname, viewname FROM pg_views WHERE schemaname = 'botai' LOOP
        EXECUTE format('GRANT SELECT ON %I.%I TO botai_reader', v.schemaname, v.viewname);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO botai_service, botai_admin', f);
        IF split_part(f::text, '(', 1) = ANY (read_only) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO botai_reader', f);
        END IF;
    END LOOP;
END
$$;
