-- Orders: every accepted signal becomes at most one order — one engine
-- claims it, reserves and books it in one statement, and records how it
-- ended. Run by scripts/sql-golden.sh (the paper venue's seeded limits;
-- ids are this fresh database's own).
\set VERBOSITY verbose

SET ROLE botai_ml;
SELECT signal_id AS signal FROM botai_register_signal(jsonb_build_object(
    'symbol', 'BTCUSDT', 'direction', 'BUY', 'strategy', 'orders-golden', 'timestamp', date_trunc('minute', now()),
    'exchange', 'paper', 'price', 40000, 'qty', '0.001')) \gset
RESET ROLE;

SET ROLE botai_engine;
SELECT botai_register_worker('trading_engine', 'engine-a');
SELECT botai_update_balance('paper', 'USDT', 10000, 10000, 0);
SELECT botai_unhandled_signals() = :signal AS unhandled;
-- The engine claims it; an engine that is no registered worker is refused.
SELECT order_id AS order_id, client_order_id LIKE 'botai-%' AS botai_id, attempt, exchange, symbol, direction
FROM botai_order_claim(:signal, 'engine-a', 'paper') \gset
SELECT :order_id > 0 AS claimed, :'botai_id' AS botai_id;
SELECT count(*) AS second_claim FROM botai_order_claim(:signal, 'engine-b', 'paper');
-- Funds and the rate slot in one statement; the send permit; the end.
SELECT reservation_id IS NOT NULL AS reserved, booked_at >= now() - interval '1 second' AS booked, refused
FROM botai_reserve_order(:order_id, 'engine-a', 0.001, 40000, 'USDT', 40.5);
SELECT botai_send_permit(:order_id);
SELECT botai_send_done();
SELECT botai_order_finish(:order_id, 'engine-b', 'filled', '{"qty": 0.001, "price": 40000}');
SELECT botai_order_finish(:order_id, 'engine-a', 'filled', '{"qty": 0.001, "price": 40000, "fee_quote": 0.04}');
SELECT botai_order_finish(:order_id, 'engine-a', 'filled', '{"qty": 0.001, "price": 40000}');
SELECT status, qty, price FROM botai.orders WHERE order_id = :order_id;
SELECT qty, avg_entry, trades FROM botai.positions WHERE exchange = 'paper' AND symbol = 'BTCUSDT';
-- Refusals.
SELECT botai_order_finish(:order_id, 'engine-a', 'exploded');
SELECT * FROM botai_order_claim(NULL, 'engine-a', 'paper');
SELECT * FROM botai_reserve_order(:order_id, 'engine-a', -1, 40000, 'USDT', 1);
RESET ROLE;

-- Nobody but the engine claims or finishes orders.
SET ROLE botai_ml;
SELECT * FROM botai_order_claim(:signal, 'ml', 'paper');
RESET ROLE;
SET ROLE botai_reader;
SELECT botai_order_finish(:order_id, 'engine-a', 'failed');
SELECT order_id, signal_id, side, status FROM botai.orders_status WHERE order_id = :order_id;
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.orders_status
