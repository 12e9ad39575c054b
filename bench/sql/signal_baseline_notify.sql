\set n random(1, 2000000000)
BEGIN;
INSERT INTO botai_bench.signals (fingerprint, payload) VALUES (md5('B' || :client_id || 'X' || :n), jsonb_build_object('symbol', 'B' || :client_id || 'X' || :n, 'direction', 'BUY', 'strategy', 'bench', 'timestamp', now())) ON CONFLICT DO NOTHING;
SELECT pg_notify('botai_bench', :n::text);
COMMIT;
