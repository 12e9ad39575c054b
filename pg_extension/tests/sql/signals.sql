-- Signals (SQL_API.md section 1): fingerprints, one winner per signal, and
-- who may do what. Run by scripts/sql-golden.sh; pg_extension/tests/expected/
-- signals.out is what psql printed.
\set VERBOSITY verbose

-- The fingerprint is deterministic: canonical symbol, direction and
-- strategy, the minute in UTC. Anyone may compute it.
SET ROLE botai_reader;
SELECT botai_fingerprint('btcusdt', 'buy', 'momentum', '2025-01-14 10:31:42+00');
SELECT botai_fingerprint(' BTCUSDT ', 'BUY', ' momentum ', '2025-01-14 11:31:05+01') AS same_minute_in_utc;
SELECT botai_fingerprint('BTCUSDT', 'HOLD', 'momentum', '2025-01-14 10:31:00+00');
SELECT botai_fingerprint('', 'BUY', 'momentum', '2025-01-14 10:31:00+00');
-- The reader registers nothing.
SELECT * FROM botai_register_signal('{"symbol": "BTCUSDT", "direction": "BUY", "strategy": "s", "timestamp": "2025-01-14T10:31:00Z"}');
RESET ROLE;

-- The ML manager registers: the first of two identical signals wins, the
-- second is a duplicate; an old one is stale; a signal without its
-- fields is refused and nothing is written.
SET ROLE botai_ml;
-- One transaction: now() is the same minute for both.
BEGIN;
SELECT accepted, reason, signal_id FROM botai_register_signal(jsonb_build_object(
    'symbol', 'BTCUSDT', 'direction', 'BUY', 'strategy', 'golden', 'timestamp', date_trunc('minute', now())));
SELECT accepted, reason, signal_id FROM botai_register_signal(jsonb_build_object(
    'symbol', 'btcusdt', 'direction', 'buy', 'strategy', 'golden', 'timestamp', date_trunc('minute', now())));
COMMIT;
SELECT accepted, reason FROM botai_register_signal(
    '{"symbol": "BTCUSDT", "direction": "SELL", "strategy": "golden", "timestamp": "2020-01-01T00:00:00Z"}');
SELECT botai_check_and_register_signal(jsonb_build_object(
    'symbol', 'ETHUSDT', 'direction', 'SELL', 'strategy', 'golden', 'timestamp', date_trunc('minute', now())));
SELECT * FROM botai_register_signal('{"symbol": "BTCUSDT", "direction": "BUY", "strategy": "golden"}');
SELECT * FROM botai_register_signal('{"symbol": "BTCUSDT", "direction": "UP", "strategy": "golden", "timestamp": "2025-01-14T10:31:00Z"}');
SELECT * FROM botai_register_signal('[1, 2]');
-- Other keys are kept as given: an order's quantity is checked when the
-- order is sized and recorded (botai_order_finish refuses 1e30 with 22003).
SELECT accepted, reason, signal_id FROM botai_register_signal(jsonb_build_object(
    'symbol', 'BTCUSDT', 'direction', 'SELL', 'strategy', 'golden', 'timestamp', date_trunc('minute', now()),
    'qty', '1e30'));
RESET ROLE;

-- What was kept, as a reader sees it.
SET ROLE botai_reader;
SELECT symbol, direction, strategy FROM botai_recent_signals(60) ORDER BY signal_id;
SELECT * FROM botai_signal_stats();
RESET ROLE;
