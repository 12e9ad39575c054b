//! Roles (SQL_API.md "Roles"): the service role executes the functions but
//! cannot write the tables; the reader reads views and metrics only; every
//! function that writes runs as its owner with a pinned search_path; TCP
//! logins need the password.

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
               'botai_send_permit', 'botai_send_done', 'botai_position_reconcile')",
            &[],
        )
        .await
        .unwrap();
    // 22 names; botai_update_balance has two signatures (0.4.0 adds clock_skew).
    assert_eq!(rows.len(), 23);
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
