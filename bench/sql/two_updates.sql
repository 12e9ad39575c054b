BEGIN;
UPDATE botai_bench.hot SET n = n + 1 WHERE id = 1;
UPDATE botai_bench.hot SET n = n - 1 WHERE id = 1;
COMMIT;
