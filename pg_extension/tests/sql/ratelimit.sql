-- Rate limits (SQL_API.md section 3): booking, the booked moment, what the
-- venue's headers say, and who may book which key. Run by
-- scripts/sql-golden.sh. Delays depend on the clock, so the file prints
-- what holds whatever the clock says.
\set VERBOSITY verbose

-- The configured limits of the paper venue (seeded by botai db migrate).
SET ROLE botai_reader;
SELECT endpoint, max_weight, window_seconds, default_weight FROM botai.rate_limits
WHERE exchange = 'paper' ORDER BY endpoint;
RESET ROLE;

-- The engine books; the booked moment is never before the transaction.
SET ROLE botai_engine;
SELECT botai_rate_acquire('paper', 'order') >= 0 AS waits_zero_or_more;
SELECT botai_rate_book('paper', 'order') >= now() AS booked_no_earlier_than_now;
SELECT botai_rate_try_acquire('paper', 'order') >= 0 AS try_answers;
-- Refusals, each with its SQLSTATE and nothing booked.
SELECT botai_rate_acquire('nowhere', 'order');
SELECT botai_rate_acquire('paper', '');
SELECT botai_rate_acquire('paper', 'order', 1000000);
SELECT botai_rate_acquire(NULL, 'order');
SELECT botai_rate_penalize('paper', 'order', -1);
-- The venue's headers: 7 of 10 left of its own window.
SELECT botai_rate_observe('paper', 'order', 7, 10) >= 0 AS observed;
-- A venue's key is the engine's, not the alert deliverer's.
RESET ROLE;
SET ROLE botai_alerter;
SELECT botai_rate_acquire('paper', 'order');
RESET ROLE;

-- Neither the ML manager nor a reader books.
SET ROLE botai_ml;
SELECT botai_rate_acquire('paper', 'order');
SELECT botai_rate_book('paper', 'order');
RESET ROLE;
SET ROLE botai_reader;
SELECT botai_rate_acquire('paper', 'order');
-- What a reader sees: the columns of the usage, statistics and keys.
SELECT endpoint, effective_limit, window_seconds FROM botai_rate_usage('paper') ORDER BY endpoint;
SELECT endpoint, requests >= 3 AS booked FROM botai_rate_stats('paper') WHERE endpoint = 'order';
SELECT exchange, endpoint FROM botai_rate_keys()
WHERE exchange = 'paper' AND endpoint IN ('order', 'global') ORDER BY endpoint;
RESET ROLE;
