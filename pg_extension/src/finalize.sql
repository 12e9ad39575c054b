-- botai: what runs after every other object exists: generic plans for the
-- hot path, nothing executable by PUBLIC, and the monitor started.

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

-- Start the monitor of this database now rather than at the launcher's next
-- scan (it waits for this transaction to commit before acting).
SELECT botai_monitor_start();
