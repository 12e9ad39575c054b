-- Nothing fails silently (SQL_API.md section 5): components, heartbeats,
-- errors, health and metrics. Run by scripts/sql-golden.sh with the
-- monitor off, so what it prints stays as the calls left it.
\set VERBOSITY verbose

SET ROLE botai_engine;
SELECT botai_register_component('golden-engine', '{"exchange": "paper"}');
SELECT botai_heartbeat('golden-engine', 'running', 3);
SELECT botai_heartbeat('golden-engine', 'sleepy');
SELECT botai_heartbeat('nobody-registered');
SELECT botai_report_error('golden-engine', 'the venue answered 10016', false);
SELECT botai_report_error('golden-engine', '', false);
RESET ROLE;
SET ROLE botai_reader;
SELECT component, status, active_tasks, errors_last_minute FROM botai.components_status
WHERE component = 'golden-engine';
SELECT botai_register_component('reader-component');
-- What health and the monitor's state say, by key (their values move).
SELECT jsonb_object_keys(botai_health()) ORDER BY 1;
SELECT botai_component_health('golden-engine') ->> 'status' AS status;
SELECT botai_component_health('nobody');
SELECT jsonb_object_keys(botai_monitor_state()) ORDER BY 1;
-- The metrics' families, in Prometheus' text format.
SELECT DISTINCT split_part(line, ' ', 3) AS family
FROM regexp_split_to_table(botai_metrics(), E'\n') AS line
WHERE line LIKE '# TYPE %' ORDER BY 1;
RESET ROLE;
-- The monitor's start is nobody's to call (the server starts it).
SET ROLE botai_operator;
SELECT botai_monitor_start();
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.components_status
\d botai.open_alerts
