-- Workers and tasks (SQL_API.md section 2): a slot per session, fencing
-- epochs, and a task never handed to two workers. Run by
-- scripts/sql-golden.sh.
\set VERBOSITY verbose

-- The ML manager takes the one ml_manager slot; the same session asking
-- again gets the same worker.
SET ROLE botai_ml;
SELECT botai_register_worker('ml_manager', 'ml-golden-1');
SELECT botai_register_worker('ml_manager', 'ml-golden-1');
SELECT botai_worker_heartbeat('ml-golden-1', 'busy', 2);
SELECT botai_worker_heartbeat('nobody');
SELECT botai_worker_heartbeat('ml-golden-1', 'dancing');
SELECT botai_register_worker('');
-- A type botai.worker_types does not list has one slot (the default); this
-- session already holds one, so it gets the same worker again.
SELECT botai_register_worker('no_such_type');
SELECT worker_id, worker_type, state, epoch > 0 AS fenced FROM botai.workers_status
WHERE worker_id = 'ml-golden-1';

-- Tasks: enqueued once per dedup key, claimed by one worker, completed once.
SELECT botai_enqueue_task('ml_manager', '{"retrain": "BTCUSDT"}', 'retrain-btc') AS task \gset
SELECT botai_enqueue_task('ml_manager', '{"retrain": "BTCUSDT"}', 'retrain-btc') = :task AS same_task;
SELECT payload FROM botai_claim_task('ml-golden-1');
SELECT count(*) AS nothing_left FROM botai_claim_task('ml-golden-1');
SELECT botai_complete_task(:task, true, '{"auc": 0.61}');
SELECT botai_complete_task(:task, true);
SELECT botai_enqueue_task('ml_manager', '"not an object"');
SELECT botai_unregister_worker('ml-golden-1');
SELECT botai_unregister_worker('ml-golden-1');
RESET ROLE;

-- A reader registers nothing and sees the totals.
SET ROLE botai_reader;
SELECT botai_register_worker('ml_manager');
SELECT jsonb_object_keys(botai_worker_stats()) ORDER BY 1;
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.workers_status
