-- Balances and reservations (SQL_API.md section 4): no order without
-- funds. Run by scripts/sql-golden.sh; reservation ids are random, so the
-- file keeps them in psql variables (\gset) and prints what they did.
\set VERBOSITY verbose

SET ROLE botai_engine;
-- A snapshot of the venue's figures: 1000 USDT, 900 of them available.
SELECT botai_update_balance('golden', 'usdt', 1000, 900, 100);
SELECT exchange, asset, total, available FROM botai.balances WHERE exchange = 'golden';
SELECT * FROM botai_check_balance_availability('golden', 'USDT', 500);
SELECT * FROM botai_check_balance_availability('golden', 'USDT', 5000);
-- Reserve 500: held; a second 500 does not fit what is left (NULL).
SELECT botai_reserve_balance('golden', 'USDT', 500, 'order-1') AS first \gset
SELECT botai_reserve_balance('golden', 'USDT', 500, 'order-2') IS NULL AS refused_no_funds;
SELECT status, amount FROM botai.reservations WHERE reservation_id = :'first';
-- Committed at what the fill spent; released twice is false the second time.
SELECT botai_commit_reservation(:'first', 480);
SELECT status, committed_amount FROM botai.reservations WHERE reservation_id = :'first';
SELECT botai_reserve_balance('golden', 'USDT', 100, 'order-3') AS third \gset
SELECT botai_release_reservation(:'third');
SELECT botai_release_reservation(:'third');
SELECT exchange, asset, reserved FROM botai.balances_status WHERE exchange = 'golden';
-- Refusals: amounts outside botai's domain, negative, NaN, an empty asset.
SELECT botai_reserve_balance('golden', 'USDT', 1e20, 'order-4');
SELECT botai_reserve_balance('golden', 'USDT', -1, 'order-4');
SELECT botai_reserve_balance('golden', 'USDT', 'NaN', 'order-4');
SELECT botai_update_balance('golden', '', 1, 1, 0);
SELECT botai_update_balance('golden', 'USDT', 1, 2, 0);
RESET ROLE;

-- Only the engine moves funds.
SET ROLE botai_ml;
SELECT botai_reserve_balance('golden', 'USDT', 1, 'order-5');
RESET ROLE;
SET ROLE botai_reader;
SELECT botai_update_balance('golden', 'USDT', 1, 1, 0);
SELECT asset, total, available, reserved, free FROM botai.balances_status WHERE exchange = 'golden';
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.balances_status
\d botai.reservations_status
