-- Alerts: the rules the monitor evaluates, the channels an operator
-- routes them to, and the deliverer's outbox (each event once per
-- channel). Run by scripts/sql-golden.sh with the monitor off: no rule
-- fires here, so the outbox stays empty and the file shows its contract.
\set VERBOSITY verbose

-- The rules and channels are the operator's to read and edit (a reader
-- sees the delivery status view).
SET ROLE botai_reader;
SELECT rule FROM botai.alert_rules;
SELECT channel, enabled FROM botai.alert_deliveries_status ORDER BY channel;
RESET ROLE;
SET ROLE botai_operator;
SELECT rule, severity, action, enabled FROM botai.alert_rules ORDER BY rule;
RESET ROLE;

-- The operator routes; unknown triggers are refused and nothing changes.
SET ROLE botai_operator;
SELECT botai_alert_channel('email', ARRAY['critical_error', 'worker_offline']);
SELECT botai_alert_channel('email', ARRAY['critical_error', 'worker_offline']);
SELECT botai_alert_channel('email', ARRAY['coffee_low']);
SELECT botai_alert_channel(NULL, ARRAY['*']);
UPDATE botai.alert_rules SET threshold = 120 WHERE rule = 'heartbeat_timeout';
DELETE FROM botai.alert_rules WHERE rule = 'heartbeat_timeout';
RESET ROLE;

-- The deliverer claims what is owed (nothing yet) and says what happened.
SET ROLE botai_alerter;
SELECT count(*) AS owed FROM botai_alert_claim('email', 'alerter-1', 10);
SELECT botai_alert_next_due('email') IS NULL AS nothing_owed;
SELECT botai_alert_delivered(1, 'email', 'alerter-1');
SELECT botai_alert_failed(1, 'email', 'alerter-1', 'smtp: 421', interval '1 minute');
SELECT * FROM botai_alert_claim('email', 'alerter-1', 0);
SELECT botai_alert_channel('email', ARRAY['*']);
RESET ROLE;

-- The trading daemon neither routes nor silences alerts.
SET ROLE botai_engine;
SELECT botai_alert_channel('email', ARRAY[]::text[], false);
UPDATE botai.alert_rules SET enabled = false WHERE rule = 'daily_loss';
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.alert_deliveries_status
