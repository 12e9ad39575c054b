-- The botai extension and who may use what.
CREATE EXTENSION IF NOT EXISTS botai;

-- State is written through the functions only: nobody but botai_admin
-- touches the tables, and readers see views.
REVOKE ALL ON SCHEMA botai FROM PUBLIC;
GRANT USAGE ON SCHEMA botai TO botai_admin, botai_service, botai_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA botai FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA botai TO botai_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA botai TO botai_service;
GRANT SELECT ON botai.workers_status TO botai_reader;

-- Every botai function: executable by the service role (and the admin), not
-- by PUBLIC; readers get only the read-only ones below.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO botai_service, botai_admin', f);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION botai_fingerprint(text, text, text, timestamptz),
                          botai_recent_signals(integer),
                          botai_signal_stats(),
                          botai_worker_stats()
    TO botai_reader;
