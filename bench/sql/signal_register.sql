\set n random(1, 2000000000)
SELECT accepted FROM botai_register_signal(jsonb_build_object('symbol', 'B' || :client_id || 'X' || :n, 'direction', 'BUY', 'strategy', 'bench', 'timestamp', now()));
