-- Roles of botai (SQL_API.md "Roles"). Created once per cluster; passwords
-- are not set here (scripts/cluster.sh gives botai_service one, kept in .env).
--   botai_admin    owns and configures: writes the configuration tables
--   botai_service  runs the daemon and other clients: executes the functions,
--                  cannot write botai.* tables directly
--   botai_reader   dashboards: reads views and metrics only
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'botai_admin') THEN
        CREATE ROLE botai_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'botai_service') THEN
        CREATE ROLE botai_service LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'botai_reader') THEN
        CREATE ROLE botai_reader LOGIN;
    END IF;
END
$$;
