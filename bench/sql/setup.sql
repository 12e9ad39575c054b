-- Baseline tables for `make bench`: plain SQL doing the same job without botai.
CREATE SCHEMA IF NOT EXISTS botai_bench;
CREATE TABLE IF NOT EXISTS botai_bench.signals (
    fingerprint text PRIMARY KEY,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
TRUNCATE botai_bench.signals;

