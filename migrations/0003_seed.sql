-- Seed configuration of the platform: the worker types the daemon runs.
INSERT INTO botai.worker_types (worker_type, max_workers, min_workers, description) VALUES
    ('ml_manager', 1, 1, 'The ML signal generator: exactly one live instance, the others wait as hot standbys'),
    ('trading_engine', 8, 0, 'Trading engines: each accepted signal is handled by exactly one of them')
ON CONFLICT (worker_type) DO NOTHING;
