//! Roles (README "Roles and rights"): each component's role calls only what
//! it needs, the operator alone lifts a halt and configures channels, the
//! service login holds the components' rights and never the operator's;
//! the reader reads views and metrics only; nobody writes the tables but
//! through the functions; every function that writes runs as its owner
//! with a pinned search_path; TCP logins need the password.

use botai_tests::{connect, env_or, expect_sqlstate, unique};
use tokio_postgres::{Client, NoTls};

async fn as_role(role: &str) -> Client {
    let db = connect().await;
    db.batch_execute(&format!("SET ROLE {role}")).await.unwrap();
    db
}

#[tokio::test]
async fn the_service_role_uses_functions_but_cannot_write_tables() {
    let db = as_role("botai_service").await;
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let symbol = unique("svc").to_uppercase();
    let signal =
        serde_json::json!({"symbol": symbol, "direction": "BUY", "strategy": "s", "timestamp": now.to_rfc3339()});
    let accepted: bool = db.query_one("SELECT botai_check_and_register_signal($1)", &[&signal]).await.unwrap().get(0);
    assert!(accepted, "executes the functions");
    let read: i64 =
        db.query_one("SELECT count(*) FROM botai.signals WHERE symbol = $1", &[&symbol]).await.unwrap().get(0);
    assert_eq!(read, 1, "reads the tables");
    let d: f64 = db.query_one("SELECT botai_rate_acquire('binance', 'order')", &[]).await.unwrap().get(0);
    assert!(d >= 0.0, "books rate limits");
    for (what, sql) in [
        ("INSERT signals", "INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, payload) VALUES ('x', 'X', 'BUY', 's', now(), '{}')"),
        ("UPDATE balances", "UPDATE botai.balances SET available = total"),
        ("DELETE reservations", "DELETE FROM botai.reservations"),
        ("UPDATE rate_limits", "UPDATE botai.rate_limits SET max_weight = 1000000"),
        ("DELETE alerts", "DELETE FROM botai.alerts"),
        ("INSERT alert_rules", "INSERT INTO botai.alert_rules (rule, kind, threshold, severity) VALUES ('x', 'memory_usage', 1, 'info')"),
        ("TRUNCATE workers", "TRUNCATE botai.workers"),
    ] {
        expect_sqlstate(what, db.execute(sql, &[]).await, "42501");
    }
}

#[tokio::test]
async fn the_reader_reads_views_and_metrics_only() {
    let db = as_role("botai_reader").await;
    for sql in [
        "SELECT count(*) FROM botai.workers_status",
        "SELECT count(*) FROM botai.balances_status",
        "SELECT count(*) FROM botai.components_status",
        "SELECT count(*) FROM botai.open_alerts",
        "SELECT length(botai_metrics())::bigint",
        "SELECT length(botai_health()::text)::bigint",
        "SELECT length(botai_worker_stats()::text)::bigint",
    ] {
        let n: i64 = db.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
        assert!(n >= 0);
    }
    for (what, sql) in [
        ("read a table", "SELECT count(*) FROM botai.signals"),
        ("read balances table", "SELECT count(*) FROM botai.balances"),
        ("register a signal", "SELECT botai_register_signal('{}')"),
        ("reserve", "SELECT botai_reserve_balance('bybit', 'USDT', 1, 'x')"),
        ("book a request", "SELECT botai_rate_acquire('bybit', 'order')"),
        ("take a worker slot", "SELECT botai_register_worker('ml_manager')"),
        ("report an error", "SELECT botai_report_error('x', 'y')"),
        ("write a table", "DELETE FROM botai.signals"),
    ] {
        expect_sqlstate(what, db.query(sql, &[]).await, "42501");
    }
}

#[tokio::test]
async fn functions_that_write_run_as_their_owner_with_a_pinned_search_path() {
    let db = connect().await;
    let rows = db
        .query(
            "SELECT p.proname, p.prosecdef, coalesce(array_to_string(p.proconfig, ';'), '') \
             FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai' \
             WHERE p.proname IN ('botai_register_signal', 'botai_check_and_register_signal', 'botai_register_worker', \
               'botai_worker_heartbeat', 'botai_unregister_worker', 'botai_enqueue_task', 'botai_claim_task', \
               'botai_complete_task', 'botai_update_balance', 'botai_reserve_balance', 'botai_release_reservation', \
               'botai_commit_reservation', 'botai_check_balance_availability', 'botai_register_component', \
               'botai_heartbeat', 'botai_report_error', 'botai_reserve_order', 'botai_halt', 'botai_resume', \
               'botai_send_permit', 'botai_send_done', 'botai_position_reconcile', 'botai_mark_price', \
               'botai_position_adopt', 'botai_venue_trade')",
            &[],
        )
        .await
        .unwrap();
    // 25 names; botai_update_balance has two signatures (0.4.0 adds clock_skew).
    assert_eq!(rows.len(), 26);
    for r in rows {
        let (name, definer, config): (String, bool, String) = (r.get(0), r.get(1), r.get(2));
        assert!(definer, "{name} is SECURITY DEFINER");
        // Other settings (plan_cache_mode on the hot paths) may sit beside it.
        assert!(
            config.split(';').any(|c| c == "search_path=pg_catalog, pg_temp"),
            "{name} pins its search_path: {config}"
        );
    }
}

#[tokio::test]
async fn tcp_logins_need_the_password() {
    // make test gives botai_service its password and writes it to .env.
    let env = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.env"))
        .expect(".env with botai_service's password (scripts/cluster.sh credentials)");
    let password = env.lines().find_map(|l| l.strip_prefix("PGPASSWORD=")).expect("PGPASSWORD in .env").to_owned();
    let tcp = |password: Option<&str>| {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(env_or("PGPORT", "5555").parse().unwrap())
            .user("botai_service")
            .dbname(botai_tests::database());
        if let Some(p) = password {
            c.password(p);
        }
        c
    };
    let (client, conn) = tcp(Some(&password)).connect(NoTls).await.expect("login with the password");
    tokio::spawn(conn);
    let user: String = client.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, "botai_service");
    for wrong in [None, Some("not-the-password")] {
        let err = tcp(wrong).connect(NoTls).await.err().expect("refused");
        println!("  TCP login with {:?}: {err}", wrong.map(|_| "a wrong password").unwrap_or("no password"));
    }
}

/// Who may call each botai function, by name (every signature of it). A
/// function of the extension missing here fails the test: its rights must
/// be decided (migrations/repeatable/grants.sql) and stated here.
const RIGHTS: &[(&str, &[&str])] = &[
    ("botai_build_id", &[READER]),
    ("botai_fingerprint", &[READER]),
    ("botai_recent_signals", &[READER]),
    ("botai_signal_stats", &[READER]),
    ("botai_worker_stats", &[READER]),
    ("botai_metrics", &[READER]),
    ("botai_health", &[READER]),
    ("botai_component_health", &[READER]),
    ("botai_monitor_state", &[READER]),
    ("botai_rate_usage", &[READER]),
    ("botai_rate_stats", &[READER]),
    ("botai_rate_keys", &[READER]),
    ("botai_require_primary", &[READER]),
    ("alert_triggers", &[READER]),
    ("unrealized", &[READER]),
    ("botai_register_signal", &[ML]),
    ("botai_check_and_register_signal", &[ML]),
    ("botai_register_worker", &[ML, ENGINE]),
    ("botai_worker_heartbeat", &[ML, ENGINE]),
    ("botai_unregister_worker", &[ML, ENGINE]),
    ("botai_enqueue_task", &[ML, ENGINE]),
    ("botai_claim_task", &[ML, ENGINE]),
    ("botai_complete_task", &[ML, ENGINE]),
    ("botai_register_component", &[ML, ENGINE, ALERTER]),
    ("botai_heartbeat", &[ML, ENGINE, ALERTER]),
    ("botai_report_error", &[ML, ENGINE, ALERTER]),
    ("botai_rate_acquire", &[ENGINE, ALERTER]),
    ("botai_rate_book", &[ENGINE, ALERTER]),
    ("botai_rate_try_acquire", &[ENGINE, ALERTER]),
    ("botai_rate_penalize", &[ENGINE, ALERTER]),
    ("botai_rate_observe", &[ENGINE, ALERTER]),
    ("botai_update_balance", &[ENGINE]),
    ("botai_check_balance_availability", &[ENGINE]),
    ("botai_reserve_balance", &[ENGINE]),
    ("botai_release_reservation", &[ENGINE]),
    ("botai_commit_reservation", &[ENGINE]),
    ("botai_order_claim", &[ENGINE]),
    ("botai_order_finish", &[ENGINE]),
    ("botai_unhandled_signals", &[ENGINE]),
    ("botai_reserve_order", &[ENGINE]),
    ("botai_send_permit", &[ENGINE]),
    ("botai_send_done", &[ENGINE]),
    ("botai_position_reconcile", &[ENGINE]),
    ("botai_mark_price", &[ENGINE]),
    ("botai_position_adopt", &[ENGINE]),
    ("botai_venue_trade", &[ENGINE]),
    ("botai_alert_claim", &[ALERTER]),
    ("botai_alert_delivered", &[ALERTER]),
    ("botai_alert_failed", &[ALERTER]),
    ("botai_alert_next_due", &[ALERTER]),
    ("botai_halt", &[OPERATOR]),
    ("botai_resume", &[OPERATOR]),
    ("botai_alert_channel", &[OPERATOR]),
    ("botai_monitor_start", &[]),
    ("orders_changed", &[]),
    ("botai_rate_limits_changed", &[]),
    ("alert_event_owed", &[]),
];

const READER: &str = "botai_reader";
const ML: &str = "botai_ml";
const ENGINE: &str = "botai_engine";
const ALERTER: &str = "botai_alerter";
const OPERATOR: &str = "botai_operator";
const SERVICE: &str = "botai_service";

/// What a role may call: its own grants, and those of the roles it is a
/// member of (the components and the operator read what the reader does;
/// the service login holds the three components').
fn may_call(role: &str, granted: &[&str]) -> bool {
    let holds: &[&str] = match role {
        READER => &[READER],
        ML => &[ML, READER],
        ENGINE => &[ENGINE, READER],
        ALERTER => &[ALERTER, READER],
        OPERATOR => &[OPERATOR, READER],
        SERVICE => &[ML, ENGINE, ALERTER, READER],
        _ => &[],
    };
    granted.iter().any(|g| holds.contains(g))
}

#[tokio::test]
async fn every_function_is_callable_by_exactly_the_roles_listed() {
    let db = connect().await;
    let rows = db
        .query(
            "SELECT p.proname::text, p.oid::regprocedure::text, r.rolname::text, \
                    has_function_privilege(r.oid, p.oid, 'EXECUTE') \
             FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai' \
             CROSS JOIN pg_roles r \
             WHERE r.rolname IN ('botai_reader', 'botai_ml', 'botai_engine', 'botai_alerter', 'botai_operator', \
                                 'botai_service') \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .unwrap();
    let mut unlisted = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for r in &rows {
        let (name, signature, role, can): (String, String, String, bool) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some((_, granted)) = RIGHTS.iter().find(|(n, _)| *n == name) else {
            unlisted.insert(signature);
            continue;
        };
        checked += 1;
        if can != may_call(&role, granted) {
            wrong.push(format!("{role} {} call {signature}", if can { "may" } else { "may not" }));
        }
    }
    assert!(
        unlisted.is_empty(),
        "functions whose rights nobody decided (add them to migrations/repeatable/grants.sql and RIGHTS): {unlisted:?}"
    );
    assert!(wrong.is_empty(), "rights differ from the list:\n{}", wrong.join("\n"));
    println!("  {checked} (function, role) pairs as listed");
    // The service login is never the operator, and holds each component.
    let member = |role: &'static str, of: &'static str| {
        let db = &db;
        async move { db.query_one("SELECT pg_has_role($1, $2, 'MEMBER')", &[&role, &of]).await.unwrap().get::<_, bool>(0) }
    };
    assert!(!member(SERVICE, OPERATOR).await, "botai_service is not an operator");
    for c in [ML, ENGINE, ALERTER] {
        assert!(member(SERVICE, c).await, "botai_service holds {c}");
        assert!(!member(c, OPERATOR).await, "{c} is not an operator");
    }
}

/// The holes of issue 26 item 3, tried as the daemon's own roles: none can
/// lift the kill switch or silence alerts; each component touches only its
/// own rate keys; the clock skew stays the server owner's.
#[tokio::test]
async fn the_daemon_roles_cannot_lift_a_halt_or_silence_alerts() {
    let service = as_role(SERVICE).await;
    for (what, sql) in [
        ("resume", "SELECT botai_resume('the daemon itself')"),
        ("resume with an acknowledgement", "SELECT botai_resume('the daemon itself', ARRAY[1::bigint])"),
        ("halt (reduce_only would loosen a halt)", "SELECT botai_halt('x', 'reduce_only')"),
        ("reconfigure a channel", "SELECT botai_alert_channel('telegram', '{low_balance}')"),
        ("disable a channel", "SELECT botai_alert_channel('telegram', '{*}', false)"),
        ("edit a risk limit", "INSERT INTO botai.risk_limits (exchange, max_daily_loss) VALUES ('x', 1)"),
        ("edit an alert rule", "UPDATE botai.alert_rules SET enabled = false WHERE rule = 'daily_loss'"),
    ] {
        expect_sqlstate(&format!("botai_service: {what}"), service.query(sql, &[]).await, "42501");
    }
    // The engine's role cannot mark alert events delivered nor mute Telegram.
    let engine = as_role(ENGINE).await;
    for (what, sql) in [
        ("claim alert events", "SELECT * FROM botai_alert_claim('telegram', 'x', 10)"),
        ("mark one delivered", "SELECT botai_alert_delivered(1, 'telegram', 'x')"),
        ("penalize Telegram for a day", "SELECT botai_rate_penalize('telegram', 'chat', 86400)"),
        ("book Telegram's window", "SELECT botai_rate_acquire('telegram', 'chat')"),
    ] {
        expect_sqlstate(&format!("botai_engine: {what}"), engine.query(sql, &[]).await, "42501");
    }
    // The alert deliverer cannot book a venue's window full.
    let alerter = as_role(ALERTER).await;
    for (what, sql) in [
        ("book a venue's order window", "SELECT botai_rate_acquire('bybit', 'order')"),
        ("penalize a venue", "SELECT botai_rate_penalize('bybit', 'global', 600)"),
        ("reserve funds", "SELECT botai_reserve_balance('bybit', 'USDT', 1, 'x')"),
    ] {
        expect_sqlstate(&format!("botai_alerter: {what}"), alerter.query(sql, &[]).await, "42501");
    }
    // The ML manager registers signals, and trades nothing.
    let ml = as_role(ML).await;
    expect_sqlstate(
        "botai_ml: book an order",
        ml.query("SELECT botai_rate_acquire('bybit', 'order')", &[]).await,
        "42501",
    );
    // clock_skew below the server's botai.balance_clock_skew only for an
    // exchange the server's owner listed (botai.balance_same_clock_exchanges).
    let exchange = unique("skew");
    expect_sqlstate(
        "botai_service: clock_skew 0 for a venue",
        service.query("SELECT botai_update_balance($1, 'USDT', 10, 10, 0, now(), '0 s')", &[&exchange]).await,
        "22023",
    );
    let stored: bool = service
        .query_one("SELECT botai_update_balance($1, 'USDT', 10, 10, 0, now(), '5 s')", &[&exchange])
        .await
        .expect("a larger skew than the server's is the caller's to state")
        .get(0);
    assert!(stored);
    let paper: bool = service
        .query_one("SELECT botai_update_balance('paper', 'USDT', 10, 10, 0, now(), '0 s')", &[])
        .await
        .expect("paper is on the database's clock (the default list)")
        .get(0);
    assert!(paper);
    // The operator may resume; it edits rules, and never deletes one (a
    // rule's alerts, with the record of a halt and its acknowledgement, go
    // with it: that is the owner's).
    let operator = as_role(OPERATOR).await;
    expect_sqlstate(
        "botai_operator: delete an alert rule",
        operator.query("DELETE FROM botai.alert_rules WHERE rule = 'daily_loss'", &[]).await,
        "42501",
    );
    let said: String = operator.query_one("SELECT botai_resume('operator')", &[]).await.unwrap().get(0);
    assert!(said.starts_with("active"), "{said}");
}
