//! The frozen first release, filled with data in every state: refused by
//! the current library until upgraded in place, then its data kept and its
//! catalog equal to a fresh install's.

use botai_tests::{expect_sqlstate, TestDatabase};

use super::*;

/// A 0.1.0 database as a running platform leaves it, written the way the
/// 0.1.0 functions write it (the current library refuses to run them on
/// 0.1.0 objects, which is the point): balances and reservations in every
/// state with held = the sum of what each counts, signals, worker
/// registrations of ended sessions, tasks in every state, orders, open and
/// resolved alerts, edited rules, limits and worker types.
const FILL_0_1_0: &str = r#"
INSERT INTO botai.worker_types (worker_type, max_workers, min_workers, description)
VALUES ('up_engine', 3, 1, 'an engine type of the user');
UPDATE botai.worker_types SET last_epoch = 7 WHERE worker_type = 'up_engine';
INSERT INTO botai.workers (worker_id, worker_type, slot, lock_key, epoch, backend_pid, backend_start, status,
                           active_tasks, metadata, unregistered_at, end_reason)
SELECT 'up-engine-7', 'up_engine', 0, t.type_id * 1024, 7, 999999, now() - interval '1 hour', 'running', 2,
       '{"host": "a"}'::jsonb, NULL::timestamptz, NULL FROM botai.worker_types t WHERE t.worker_type = 'up_engine'
UNION ALL
SELECT 'up-engine-6', 'up_engine', 1, t.type_id * 1024 + 1, 6, 999998, now() - interval '2 hours', 'stopped', 0,
       '{}'::jsonb, now() - interval '90 minutes', 'unregistered' FROM botai.worker_types t WHERE t.worker_type = 'up_engine';

INSERT INTO botai.tasks (worker_type, payload, dedup_key, status, attempts, claimed_by, claimed_pid,
                         claimed_backend_start, claimed_at, completed_at, result) VALUES
    ('up_engine', '{"n": 1}', 'k1', 'queued', 0, NULL, NULL, NULL, NULL, NULL, NULL),
    ('up_engine', '{"n": 2}', 'k2', 'claimed', 1, 'up-engine-7', 999999, now() - interval '1 hour', now(), NULL, NULL),
    ('up_engine', '{"n": 3}', NULL, 'done', 1, 'up-engine-7', 999999, now() - interval '1 hour', now(), now(), '{"ok": 1}'),
    ('up_engine', '{"n": 4}', NULL, 'failed', 2, 'up-engine-6', 999998, now() - interval '2 hours', now(), now(), NULL);

INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, strength, exchange, payload, accepted_at)
VALUES (botai_fingerprint('BTCUSDT', 'BUY', 'up', now()), 'BTCUSDT', 'BUY', 'up', now(), 0.5, 'up',
        '{"symbol": "BTCUSDT", "direction": "BUY", "strategy": "up"}', now()),
       (botai_fingerprint('ETHUSDT', 'SELL', 'up', now() - interval '1 hour'), 'ETHUSDT', 'SELL', 'up',
        now() - interval '1 hour', NULL, NULL, '{"symbol": "ETHUSDT"}', now() - interval '1 hour');

-- 1000 available; held 100 (live), committed 50, a held one past its expiry
-- 30, expired 20 and retired 40 (both not yet folded), released 10.
INSERT INTO botai.balances (exchange, asset, total, available, locked, as_of, held)
VALUES ('up', 'USDT', 1200, 1000, 200, now() - interval '1 minute', 240);
INSERT INTO botai.reservations (reservation_id, exchange, asset, amount, purpose, metadata, status, created_at,
                                expires_at, committed_at, committed_amount, closed_at, counted, pending_seq) VALUES
    ('018f0000-0000-7000-8000-000000000001', 'up', 'USDT', 100, 'held', NULL, 'held', now(), now() + interval '1 day',
     NULL, NULL, NULL, 100, NULL),
    ('018f0000-0000-7000-8000-000000000002', 'up', 'USDT', 60, 'committed', '{"order": 1}', 'committed', now(),
     now() + interval '1 minute', now(), 50, NULL, 50, NULL),
    ('018f0000-0000-7000-8000-000000000003', 'up', 'USDT', 30, 'lapsed', NULL, 'held', now() - interval '1 hour',
     now() - interval '30 minutes', NULL, NULL, NULL, 30, NULL),
    ('018f0000-0000-7000-8000-000000000004', 'up', 'USDT', 20, 'expired', NULL, 'expired', now() - interval '1 hour',
     now() - interval '40 minutes', NULL, NULL, now() - interval '40 minutes', 20,
     nextval('botai.reservation_pending_seq')),
    ('018f0000-0000-7000-8000-000000000005', 'up', 'USDT', 45, 'retired', NULL, 'retired', now() - interval '1 hour',
     now() - interval '59 minutes', now() - interval '59 minutes', 40, now() - interval '2 minutes', 40,
     nextval('botai.reservation_pending_seq')),
    ('018f0000-0000-7000-8000-000000000006', 'up', 'USDT', 10, 'released', NULL, 'released', now() - interval '1 hour',
     now() - interval '59 minutes', NULL, NULL, now() - interval '59 minutes', 0, NULL);

INSERT INTO botai.orders (signal_id, fingerprint, client_order_id, engine, engine_epoch, exchange, symbol, side,
                          status, qty, price, notional, fee, exchange_order_id, reservation_id, signal_accepted_at,
                          finished_at)
SELECT s.signal_id, s.fingerprint, 'botai-' || s.fingerprint, 'up-engine-7', 7, 'up', s.symbol, s.direction,
       CASE WHEN s.direction = 'BUY' THEN 'filled' ELSE 'claimed' END, 0.001, 50000, 50, 0.03, 'x-1',
       '018f0000-0000-7000-8000-000000000002', s.accepted_at, CASE WHEN s.direction = 'BUY' THEN now() END
FROM botai.signals s WHERE s.strategy = 'up';

INSERT INTO botai.components (component, status, metadata, errors_total, last_error, last_error_at)
VALUES ('up_component', 'degraded', '{"memory_percent": 12}', 1, 'boom', now());
INSERT INTO botai.component_errors (component, error, is_critical) VALUES ('up_component', 'boom', true);

UPDATE botai.alert_rules SET threshold = 45, params = '{"note": "edited"}' WHERE rule = 'rate_limit_exceeded';
UPDATE botai.alert_rules SET enabled = false WHERE rule = 'memory_usage';
INSERT INTO botai.alert_rules (rule, kind, threshold, window_seconds, severity, action, params, description)
VALUES ('up_low_usdt', 'low_balance', 0, 60, 'critical', 'page', '{"up/USDT": 100000}', 'a rule of the user');
INSERT INTO botai.alerts (rule, subject, severity, action, status, value, details, resolved_at) VALUES
    ('up_low_usdt', 'up/USDT', 'critical', 'page', 'open', 4, '{"free": 4}', NULL),
    ('high_error_rate', 'up_component', 'warning', 'notify', 'resolved', 12, NULL, now());
INSERT INTO botai.rule_status (rule, last_evaluated_at, last_error, last_error_at)
VALUES ('up_low_usdt', now(), NULL, NULL);

INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description)
VALUES ('up', 'global', 10, 5, 1, 'limits of the user');
UPDATE botai.rate_limits SET max_weight = 110 WHERE exchange = 'bybit' AND endpoint = 'global';
"#;

/// What the upgrade must keep: every row of every 0.1.0 table, compared on
/// the 0.1.0 columns.
async fn table_contents(db: &Client, columns_of: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, columns) in columns_of {
        let sql = format!(
            "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM (SELECT {columns} FROM {table}) r"
        );
        let rows: String = db.query_one(&sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
        out.push((table.clone(), rows));
    }
    out
}

#[tokio::test]
async fn a_filled_first_release_upgrades_in_place_to_a_catalog_equal_to_a_fresh_install() {
    let old = TestDatabase::without_extension(&[]).await;
    let db = old.connect().await;
    db.batch_execute(&format!("CREATE EXTENSION botai VERSION '{FIRST_RELEASE}'")).await.expect("install 0.1.0");
    assert_eq!(version(&db).await, FIRST_RELEASE);
    let current = library_version(&db).await;
    assert_ne!(current, FIRST_RELEASE, "the library is a later release than the frozen one");

    // --- the new library refuses the old objects, clearly ------------------
    for call in [
        "SELECT botai_register_worker('up_engine')",
        "SELECT botai_reserve_balance('up', 'USDT', 1, 'test')",
        "SELECT botai_check_and_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
         'strategy', 'x', 'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')))",
        "SELECT botai_rate_acquire('bybit', 'order')",
    ] {
        let e = db.batch_execute(call).await.expect_err("the library must refuse 0.1.0 objects");
        let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
        println!("  {call}: {message}");
        expect_sqlstate::<()>(call, Err(e), "55000");
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(message.contains("ALTER EXTENSION botai UPDATE"), "says what to run: {message}");
        assert!(message.contains(FIRST_RELEASE) && message.contains(&current), "names both versions: {message}");
    }

    // --- data in every state, as 0.1.0 wrote it ----------------------------
    db.batch_execute(FILL_0_1_0).await.expect("fill the 0.1.0 database");
    let columns_of: Vec<(String, String)> = db
        .query(
            "SELECT c.oid::regclass::text, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) \
             FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE c.relnamespace = 'botai'::regnamespace AND c.relkind = 'r' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(columns_of.len() >= 12, "every 0.1.0 table: {columns_of:?}");
    let before = table_contents(&db, &columns_of).await;

    // --- the upgrade --------------------------------------------------------
    db.batch_execute("ALTER EXTENSION botai UPDATE").await.expect("ALTER EXTENSION botai UPDATE");
    drop(db);
    let db = old.connect().await;
    assert_eq!(version(&db).await, current);
    let after = table_contents(&db, &columns_of).await;
    for ((table, was), (_, now)) in before.iter().zip(&after) {
        if table == "botai.installation" {
            // The upgrade records the build that ran it, after the rows kept.
            assert!(now.starts_with(was.as_str()), "{table}: the upgrade changed its rows");
            continue;
        }
        if table == "botai.rate_limits" {
            // 0.3.0 replaces the untouched Bybit placeholders with Bybit's
            // documented limits (checked below); every other row stays.
            // 0.3.0 replaces Binance's placeholders likewise.
            let others = |rows: &str| {
                rows.lines()
                    .filter(|l| {
                        !l.starts_with("(bybit,") && !l.starts_with("(binance,") && !l.starts_with("(telegram,")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(others(was), others(now), "{table}: the upgrade changed rows it must keep");
            continue;
        }
        if table == "botai.alert_rules" {
            // 0.4.0 adds the daily loss rule, 0.5.0 the critical error rule,
            // 0.7.0 the NOTIFY queue's; every other row stays as it was.
            let others = |rows: &str| {
                rows.lines()
                    .filter(|l| {
                        !l.starts_with("(daily_loss,")
                            && !l.starts_with("(critical_error,")
                            && !l.starts_with("(notify_queue,")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(others(was), others(now), "{table}: the upgrade changed rows it must keep");
            assert!(now.contains("(daily_loss,daily_loss,"), "0.4.0 adds the daily_loss rule: {now}");
            assert!(now.contains("(critical_error,critical_error,"), "0.5.0 adds the critical_error rule: {now}");
            assert!(now.contains("(notify_queue,notify_queue,"), "0.7.0 adds the notify_queue rule: {now}");
            continue;
        }
        assert_eq!(was, now, "{table}: the upgrade changed its rows");
    }
    let bybit: Vec<(String, i32, f64)> = db
        .query(
            "SELECT endpoint, max_weight, window_seconds FROM botai.rate_limits WHERE exchange = 'bybit' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(String, i32, f64)> = [
        ("account", 50, 1.0),
        ("global", 110, 60.0), // the operator's edit is kept
        ("order", 10, 1.0),
        ("order_query", 50, 1.0),
        ("position", 50, 1.0),
    ]
    .into_iter()
    .map(|(e, w, s)| (e.to_owned(), w, s))
    .collect();
    assert_eq!(bybit, expected, "Bybit's documented limits, the operator's edit kept, market_data gone");
    let binance: Vec<(String, i32, f64, i32)> = db
        .query(
            "SELECT endpoint, max_weight, window_seconds, default_weight FROM botai.rate_limits \
             WHERE exchange = 'binance' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        binance,
        vec![
            ("account".to_owned(), 2400, 60.0, 5),
            ("global".to_owned(), 2400, 60.0, 1),
            ("order".to_owned(), 200, 10.0, 1)
        ],
        "Binance USDⓈ-M's documented limits"
    );
    println!("  {} tables kept every row across the upgrade", before.len());

    // --- the guarantees still hold on the upgraded data ---------------------
    // 0.4.0: the kill switch starts active and works on the upgraded data.
    let mode: String = db.query_one("SELECT mode FROM botai.trading_state", &[]).await.unwrap().get(0);
    assert_eq!(mode, "active", "an upgraded database trades until someone halts it");
    let halted: String = db.query_one("SELECT botai_halt('upgrade test')", &[]).await.unwrap().get(0);
    assert!(halted.starts_with("halted (was active)"), "{halted}");
    db.batch_execute("SELECT botai_resume('upgrade test done')").await.unwrap();
    let free: rust_decimal::Decimal = db
        .query_one("SELECT free FROM botai.balances_status WHERE exchange = 'up' AND asset = 'USDT'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(free, rust_decimal::Decimal::from(850), "1000 available - 100 held - 50 committed");
    let too_much: Option<uuid::Uuid> =
        db.query_one("SELECT botai_reserve_balance('up', 'USDT', 840, 'test')", &[]).await.unwrap().get(0);
    assert!(too_much.is_none(), "840 × 1.02 is more than the 850 free");
    let fits: Option<uuid::Uuid> =
        db.query_one("SELECT botai_reserve_balance('up', 'USDT', 800, 'test')", &[]).await.unwrap().get(0);
    let fits = fits.expect("800 × 1.02 fits in 850");
    let nothing_left: Option<uuid::Uuid> =
        db.query_one("SELECT botai_reserve_balance('up', 'USDT', 50, 'test')", &[]).await.unwrap().get(0);
    assert!(nothing_left.is_none(), "the new reservation counts with the old ones");
    let released: bool = db.query_one("SELECT botai_release_reservation($1)", &[&fits]).await.unwrap().get(0);
    assert!(released);
    let old_held = uuid::Uuid::parse_str("018f0000-0000-7000-8000-000000000001").unwrap();
    let committed: bool =
        db.query_one("SELECT botai_commit_reservation($1, 90::numeric)", &[&old_held]).await.unwrap().get(0);
    assert!(committed, "a reservation held under 0.1.0 commits under the new release");
    let consistent: bool = db
        .query_one(
            "SELECT b.held = (SELECT sum(r.counted) FROM botai.reservations r \
                              WHERE r.exchange = b.exchange AND r.asset = b.asset) \
             FROM botai.balances b WHERE b.exchange = 'up'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(consistent, "held is the sum of what the reservations count");

    let duplicate: bool = db
        .query_one(
            "SELECT botai_check_and_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
               'strategy', 'up', 'timestamp', to_char(s.signal_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'))) \
             FROM botai.signals s WHERE s.strategy = 'up' AND s.direction = 'BUY'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!duplicate, "a signal accepted under 0.1.0 is still a duplicate");

    let state: String = db
        .query_one("SELECT state FROM botai.workers_status WHERE worker_id = 'up-engine-7'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "dead", "a 0.1.0 registration whose session ended shows as dead");
    let worker: Option<String> = db.query_one("SELECT botai_register_worker('up_engine')", &[]).await.unwrap().get(0);
    let worker = worker.expect("a slot of the user's type");
    let epoch: i64 =
        db.query_one("SELECT epoch FROM botai.workers WHERE worker_id = $1", &[&worker]).await.unwrap().get(0);
    assert!(epoch > 7, "the fencing epoch continues from 0.1.0's ({epoch})");
    let claimed = db.query("SELECT task_id, payload FROM botai_claim_task($1)", &[&worker]).await.unwrap();
    assert_eq!(claimed.len(), 1, "the queued 0.1.0 task is handed out");
    let wait: f64 = db.query_one("SELECT botai_rate_acquire('up', 'global')", &[]).await.unwrap().get(0);
    assert_eq!(wait, 0.0, "the user's limits apply");

    // The monitor of the database, idle while the objects were 0.1.0, works.
    old.wait_rounds(1).await;
    let open: i64 =
        db.query_one("SELECT count(*) FROM botai.open_alerts WHERE rule = 'up_low_usdt'", &[]).await.unwrap().get(0);
    assert_eq!(open, 1, "the open alert of 0.1.0 is still the one open alert of its rule and subject");

    // 0.5.0: an alert opened before the outbox existed is delivered once it
    // has an event, to a channel registered on the upgraded database.
    let new_channel: bool =
        db.query_one("SELECT botai_alert_channel('webhook', ARRAY['critical_error'])", &[]).await.unwrap().get(0);
    assert!(new_channel);
    db.batch_execute(
        "INSERT INTO botai.alert_events (alert_id, event) SELECT alert_id, 'opened' FROM botai.alerts \
         WHERE rule = 'up_low_usdt' AND status = 'open'",
    )
    .await
    .unwrap();
    let claimed =
        db.query("SELECT event_id, alert FROM botai_alert_claim('webhook', 'upgrade-test')", &[]).await.unwrap();
    assert_eq!(claimed.len(), 1, "the event is owed to the webhook channel");
    let alert: serde_json::Value = claimed[0].get(1);
    assert_eq!(alert["rule"], "up_low_usdt");
    let event_id: i64 = claimed[0].get(0);
    let delivered: bool =
        db.query_one("SELECT botai_alert_delivered($1, 'webhook', 'upgrade-test')", &[&event_id]).await.unwrap().get(0);
    assert!(delivered);

    // 0.6.0: the upgraded database says it is on a primary, and the PL/pgSQL
    // writers check it (botai_require_primary exists and passes here).
    let health: serde_json::Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    assert_eq!(health["standby"], false, "{health}");
    db.batch_execute("SELECT botai_require_primary('upgrade-test')").await.unwrap();

    // --- the upgraded catalog is a fresh install's --------------------------
    let fresh = TestDatabase::create(&[]).await;
    let fresh_db = fresh.connect().await;
    assert_eq!(version(&fresh_db).await, current);
    let (upgraded, installed) = (catalog(&db).await, catalog(&fresh_db).await);
    let only_upgraded: Vec<_> = upgraded.difference(&installed).collect();
    let only_fresh: Vec<_> = installed.difference(&upgraded).collect();
    assert!(
        only_upgraded.is_empty() && only_fresh.is_empty(),
        "the upgraded catalog differs from a fresh install\n--- only after the upgrade:\n{}\n--- only in a fresh \
         install:\n{}",
        only_upgraded.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        only_fresh.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    println!("  the upgraded catalog equals a fresh {current} install ({} objects and parts compared)", upgraded.len());
}
