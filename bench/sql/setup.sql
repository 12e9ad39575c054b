-- Baseline tables for `make bench`: plain SQL doing the same job without botai.
CREATE SCHEMA IF NOT EXISTS botai_bench;
CREATE TABLE IF NOT EXISTS botai_bench.signals (
    fingerprint text PRIMARY KEY,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
TRUNCATE botai_bench.signals;

-- Rate limits: a key whose limit never delays (1e9 weight per 20 ms; the short
-- window keeps the booked log small at any tps this machine reaches).
INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description)
VALUES ('bench', 'default', 1000000000, 0.02, 1, 'make bench: a limit that never delays')
ON CONFLICT (exchange, endpoint) DO UPDATE SET max_weight = EXCLUDED.max_weight, window_seconds = EXCLUDED.window_seconds;

-- Balances: one hot balance, and the baseline's one hot row.
SELECT botai_update_balance('bench', 'USDT', 1e15, 1e15, 0);
CREATE TABLE IF NOT EXISTS botai_bench.hot (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO botai_bench.hot VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
