//! The monitor (SQL_API.md §5) on a real server in real time, with no
//! daemon running: the extension's own background worker opens and resolves
//! alerts. Each test has a database of its own (rules are per database).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use botai_tests::{expect_sqlstate, unique, PsqlProcess, TestDatabase};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{Client, Notification};

/// The next notification whose payload matches, within `within`.
async fn next_event(
    rx: &mut UnboundedReceiver<Notification>,
    within: Duration,
    matches: impl Fn(&Value) -> bool,
) -> Option<(Value, Instant)> {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(n)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let payload: Value = serde_json::from_str(n.payload()).unwrap();
        if matches(&payload) {
            return Some((payload, Instant::now()));
        }
    }
    None
}

async fn open_alerts(db: &Client, rule: &str, subject: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM botai.alerts WHERE rule = $1 AND subject = $2 AND status = 'open'",
        &[&rule, &subject],
    )
    .await
    .unwrap()
    .get(0)
}

/// The rule's last evaluation error, if its last evaluation failed.
async fn last_error(db: &Client, rule: &str) -> Option<String> {
    db.query_one("SELECT last_error FROM botai.rule_status WHERE rule = $1", &[&rule]).await.unwrap().get(0)
}

#[tokio::test]
async fn heartbeat_timeout_opens_an_alert_and_a_heartbeat_resolves_it() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let (_listener, mut alerts) = t.listen(&["botai_alerts"]).await;
    // A short threshold, by editing the rule row like an operator would.
    db.execute("UPDATE botai.alert_rules SET threshold = 3 WHERE rule = 'heartbeat_timeout'", &[]).await.unwrap();
    let interval = t.monitor().await["interval_seconds"].as_f64().unwrap();
    assert!(db.query_one("SELECT botai_register_component('engine')", &[]).await.unwrap().get::<_, bool>(0));
    assert!(db.query_one("SELECT botai_heartbeat('engine')", &[]).await.unwrap().get::<_, bool>(0));
    let last_beat = Instant::now();

    let ours = |event: &'static str| move |p: &Value| p["event"] == event && p["subject"] == "engine";
    let (opened, at) = next_event(&mut alerts, Duration::from_secs(30), ours("opened")).await.expect("alert opened");
    let after = at - last_beat;
    println!(
        "  heartbeat_timeout opened {:.1} s after the last beat (threshold 3 s, interval {interval} s)",
        after.as_secs_f64()
    );
    assert!(after >= Duration::from_secs(3), "not before the threshold");
    assert!(after <= Duration::from_secs_f64(3.0 + interval + 1.5), "within the threshold plus one interval");
    assert_eq!(opened["rule"], "heartbeat_timeout");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["action"], "restart_component");
    assert_eq!(open_alerts(&db, "heartbeat_timeout", "engine").await, 1);
    let health: Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    assert_eq!(health["components"]["engine"], "down");
    assert_eq!(health["status"], "unhealthy");

    // Still quiet: the alert stays one alert, with no new notification.
    t.wait_rounds(2).await;
    assert!(next_event(&mut alerts, Duration::from_millis(200), ours("opened")).await.is_none());
    assert_eq!(open_alerts(&db, "heartbeat_timeout", "engine").await, 1);

    let beat = Instant::now();
    assert!(db.query_one("SELECT botai_heartbeat('engine')", &[]).await.unwrap().get::<_, bool>(0));
    let (resolved, at) =
        next_event(&mut alerts, Duration::from_secs(10), ours("resolved")).await.expect("alert resolved");
    println!("  resolved {:.1} s after the heartbeat", (at - beat).as_secs_f64());
    assert_eq!(resolved["alert_id"], opened["alert_id"]);
    assert_eq!(open_alerts(&db, "heartbeat_timeout", "engine").await, 0);
}

#[tokio::test]
async fn eleven_errors_in_a_minute_open_one_high_error_rate_alert() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let (_listener, mut alerts) = t.listen(&["botai_alerts"]).await;
    for (component, errors) in [("noisy", 11), ("quiet", 10)] {
        db.query_one("SELECT botai_register_component($1)", &[&component]).await.unwrap();
        for i in 0..errors {
            db.execute("SELECT botai_report_error($1, $2)", &[&component, &format!("order rejected #{i}")])
                .await
                .unwrap();
        }
    }
    t.wait_rounds(2).await;
    let is_rule = |p: &Value| p["event"] == "opened" && p["rule"] == "high_error_rate";
    let (opened, _) = next_event(&mut alerts, Duration::from_secs(5), is_rule).await.expect("an alert");
    assert_eq!(opened["subject"], "noisy");
    assert_eq!(opened["value"], 11.0);
    assert!(next_event(&mut alerts, Duration::from_secs(2), is_rule).await.is_none(), "one alert, not eleven");
    assert_eq!(open_alerts(&db, "high_error_rate", "noisy").await, 1);
    assert_eq!(open_alerts(&db, "high_error_rate", "quiet").await, 0, "10 per minute is the threshold, not above it");
    let health: Value = db.query_one("SELECT botai_component_health('noisy')", &[]).await.unwrap().get(0);
    assert_eq!(health["errors_total"], 11);
    assert_eq!(health["errors_last_minute"], 11);
    assert_eq!(health["open_alerts"][0]["rule"], "high_error_rate");
}

#[tokio::test]
async fn the_monitor_survives_a_failing_rule_and_terminated_clients() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    // A rule row that fails at every evaluation: a threshold that is no number.
    db.execute(
        "INSERT INTO botai.alert_rules (rule, kind, threshold, severity, params) \
         VALUES ('broken_low_balance', 'low_balance', 0, 'warning', '{\"bybit/USDT\": \"plenty\"}')",
        &[],
    )
    .await
    .unwrap();
    db.execute("UPDATE botai.alert_rules SET threshold = 2 WHERE rule = 'heartbeat_timeout'", &[]).await.unwrap();
    let before = t.monitor().await;
    t.wait_rounds(2).await;
    let error = last_error(&db, "broken_low_balance").await;
    println!("  the broken rule fails: {}", error.as_deref().unwrap_or("?"));
    assert!(error.unwrap().contains("numeric"));

    // The other rules still work: a quiet component is noticed.
    db.query_one("SELECT botai_register_component('lonely')", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while open_alerts(&db, "heartbeat_timeout", "lonely").await == 0 {
        assert!(Instant::now() < deadline, "heartbeat_timeout did not fire while another rule was failing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Terminating a client (a session that did work) does not touch the monitor.
    let victim = t.connect().await;
    victim.query_one("SELECT botai_register_component('victim')", &[]).await.unwrap();
    let victim_pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let killed: bool = db.query_one("SELECT pg_terminate_backend($1)", &[&victim_pid]).await.unwrap().get(0);
    assert!(killed);
    t.wait_rounds(2).await;
    let after = t.monitor().await;
    assert_eq!(after["pid"], before["pid"], "the same monitor process throughout");
    assert!(after["rounds"].as_u64() > before["rounds"].as_u64());
    assert!(after["failed_steps"].as_u64().unwrap() >= 2, "the failures are counted");

    // Fixing the row heals the rule.
    db.execute("UPDATE botai.alert_rules SET params = '{\"bybit/USDT\": 10}' WHERE rule = 'broken_low_balance'", &[])
        .await
        .unwrap();
    t.wait_rounds(2).await;
    let error = last_error(&db, "broken_low_balance").await;
    assert_eq!(error, None);
}

#[tokio::test]
async fn the_monitor_marks_expired_reservations() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.execute("SELECT botai_update_balance('bybit', 'USDT', 100, 100, 0)", &[]).await.unwrap();
    let id: uuid::Uuid = db
        .query_one("SELECT botai_reserve_balance('bybit', 'USDT', 10, 'order', NULL, '1 second')", &[])
        .await
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = db
            .query_one("SELECT status FROM botai.reservations WHERE reservation_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        if status == "expired" {
            break;
        }
        assert_eq!(status, "held");
        assert!(Instant::now() < deadline, "not marked expired 10 s after its 1 s TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker registered by a psql process that then never heartbeats.
async fn silent_worker(t: &TestDatabase, worker_type: &str) -> (PsqlProcess, String) {
    let mut p = PsqlProcess::start_on(&t.name).await.unwrap();
    let id = p.query(&format!("SELECT botai_register_worker('{worker_type}');")).await.unwrap()[0].clone();
    (p, id)
}

#[tokio::test]
async fn a_stale_slot_holder_is_evicted_only_when_eviction_is_on() {
    let settings = |evict: &'static str| {
        [("botai.monitor_interval", "1"), ("botai.worker_heartbeat_timeout", "2"), ("botai.worker_evict_stale", evict)]
    };
    let on = TestDatabase::create(&settings("on")).await;
    let off = TestDatabase::create(&settings("off")).await;
    let (_a, on_id) = silent_worker(&on, "ml_manager").await;
    let (_b, off_id) = silent_worker(&off, "ml_manager").await;
    let started = Instant::now();

    let on_db = on.connect().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let taken = loop {
        let id: Option<String> =
            on_db.query_one("SELECT botai_register_worker('ml_manager')", &[]).await.unwrap().get(0);
        if let Some(id) = id {
            break id;
        }
        assert!(Instant::now() < deadline, "the stale holder was not evicted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "  eviction on: slot free {:.1} s after the last heartbeat (timeout 2 s)",
        started.elapsed().as_secs_f64()
    );
    assert_ne!(taken, on_id);
    let reason: String =
        on_db.query_one("SELECT end_reason FROM botai.workers WHERE worker_id = $1", &[&on_id]).await.unwrap().get(0);
    assert!(reason.starts_with("evicted"), "{reason}");

    // Eviction off: as long again and more, the stale holder keeps its slot.
    off.wait_rounds(3).await;
    let off_db = off.connect().await;
    let state: String = off_db
        .query_one("SELECT state FROM botai.workers_status WHERE worker_id = $1", &[&off_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "stale");
    let id: Option<String> = off_db.query_one("SELECT botai_register_worker('ml_manager')", &[]).await.unwrap().get(0);
    assert_eq!(id, None, "not evicted when botai.worker_evict_stale is off");
}

#[tokio::test]
async fn heartbeats_notify_only_on_a_change_of_status() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    let (_listener, mut beats) = t.listen(&["botai_heartbeats"]).await;
    db.query_one("SELECT botai_register_component('steady')", &[]).await.unwrap();
    for _ in 0..5 {
        db.query_one("SELECT botai_heartbeat('steady', 'healthy', 1, '{\"cpu_percent\": 12.5}')", &[]).await.unwrap();
    }
    db.query_one("SELECT botai_heartbeat('steady', 'degraded')", &[]).await.unwrap();
    db.query_one("SELECT botai_heartbeat('steady', 'degraded')", &[]).await.unwrap();
    let mut seen = Vec::new();
    while let Some((p, _)) = next_event(&mut beats, Duration::from_millis(500), |_| true).await {
        seen.push((p["status"].as_str().unwrap().to_owned(), p["previous"].clone()));
    }
    assert_eq!(
        seen,
        vec![("healthy".to_owned(), Value::Null), ("degraded".to_owned(), json!("healthy"))],
        "a notification on registration and on the change, none for the seven beats"
    );
    assert!(!db.query_one("SELECT botai_heartbeat('never_registered')", &[]).await.unwrap().get::<_, bool>(0));
}

#[tokio::test]
async fn metrics_parse_and_match_what_was_done() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    let now: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let signal = |symbol: &str, ts: chrono::DateTime<chrono::Utc>| json!({"symbol": symbol, "direction": "BUY", "strategy": "m", "timestamp": ts.to_rfc3339()});
    for s in [
        signal("BTCUSDT", now),
        signal("BTCUSDT", now),
        signal("ETHUSDT", now),
        signal("ETHUSDT", now - chrono::Duration::hours(1)),
    ] {
        db.query_one("SELECT * FROM botai_register_signal($1)", &[&s]).await.unwrap();
    }
    let worker: String = db.query_one("SELECT botai_register_worker('ml_manager')", &[]).await.unwrap().get(0);
    db.execute("INSERT INTO botai.rate_limits VALUES ('paper', 'order', 100, 60, 1, NULL)", &[]).await.unwrap();
    for _ in 0..4 {
        db.query_one("SELECT botai_rate_acquire('paper', 'order')", &[]).await.unwrap();
    }
    db.execute("SELECT botai_update_balance('paper', 'USDT', 1000, 900, 100)", &[]).await.unwrap();
    db.query_one("SELECT botai_reserve_balance('paper', 'USDT', 250.5, 'order')", &[]).await.unwrap();
    db.query_one("SELECT botai_register_component('engine \"one\"')", &[]).await.unwrap();
    for _ in 0..3 {
        db.execute("SELECT botai_report_error('engine \"one\"', 'boom')", &[]).await.unwrap();
    }
    db.query_one("SELECT botai_heartbeat('engine \"one\"', 'degraded')", &[]).await.unwrap();

    let text: String = db.query_one("SELECT botai_metrics()", &[]).await.unwrap().get(0);
    promtool_accepts(&text);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        }
    };
    assert_eq!(value("signal_deduplicator_total_checks", &[]), 4.0);
    assert_eq!(value("signal_deduplicator_unique_signals", &[]), 2.0);
    assert_eq!(value("signal_deduplicator_duplicates_found", &[]), 1.0);
    assert_eq!(value("signal_deduplicator_stale_rejected", &[]), 1.0);
    // The conventional counter beside each of the original design's names.
    for (seed, conventional) in [
        ("signal_deduplicator_total_checks", "signal_deduplicator_checks_total"),
        ("signal_deduplicator_unique_signals", "signal_deduplicator_unique_signals_total"),
        ("signal_deduplicator_duplicates_found", "signal_deduplicator_duplicates_found_total"),
        ("signal_deduplicator_stale_rejected", "signal_deduplicator_stale_rejected_total"),
        ("signal_deduplicator_cooldown_rejected", "signal_deduplicator_cooldown_rejected_total"),
    ] {
        assert_eq!(value(seed, &[]), value(conventional, &[]), "{conventional}");
        assert!(
            text.contains(&format!("# TYPE {seed} untyped\n"))
                && text.contains(&format!("# TYPE {conventional} counter\n"))
        );
    }
    assert_eq!(value("rate_limiter_blocked_requests_total", &[("exchange", "paper")]), 0.0);
    assert_eq!(value("worker_coordinator_active_workers", &[("type", "ml_manager")]), 1.0);
    assert!(value("worker_coordinator_heartbeat_age_seconds", &[("worker_id", &worker)]) >= 0.0);
    assert_eq!(value("rate_limiter_requests_total", &[("exchange", "paper"), ("endpoint", "order")]), 4.0);
    assert_eq!(value("rate_limiter_blocked_requests", &[("exchange", "paper")]), 0.0);
    assert_eq!(value("balance_manager_total_balance", &[("exchange", "paper"), ("symbol", "USDT")]), 1000.0);
    assert_eq!(value("balance_manager_reserved_balance", &[("exchange", "paper"), ("symbol", "USDT")]), 250.5);
    // prometheus-parse mangles escaped quotes in label values (promtool
    // above parsed them): check those two lines as text.
    assert!(text.contains("process_monitor_component_health{name=\"engine \\\"one\\\"\"} 0.5\n"), "{text}");
    assert!(text.contains("process_monitor_errors_total{component=\"engine \\\"one\\\"\"} 3\n"), "{text}");
    // Every family has its HELP and TYPE.
    let families: HashMap<_, _> = scrape.docs.iter().collect();
    for name in [
        "worker_coordinator_active_workers",
        "signal_deduplicator_total_checks",
        "rate_limiter_requests_total",
        "balance_manager_reserved_balance",
        "process_monitor_component_health",
        "process_monitor_errors_total",
    ] {
        assert!(families.contains_key(&name.to_owned()), "HELP for {name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "TYPE for {name}");
    }
}

/// Prometheus's own linter (promtool, from Debian's prometheus package,
/// fetched by scripts/deps.sh) must report nothing: the original design's
/// counter names are exposed untyped, their conventional `_total` counters
/// beside them.
pub fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/bin/promtool");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/deps.sh fetches it into .cache/bin)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let remarks = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && remarks.trim().is_empty(), "promtool check metrics: {remarks}");
    println!("  promtool check metrics: {} lines, no remarks", text.lines().count());
}

#[tokio::test]
async fn health_document_and_bad_monitor_input() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    db.query_one("SELECT botai_register_component('api', '{\"pid\": 4242}')", &[]).await.unwrap();
    let health: Value = db.query_one("SELECT botai_health()", &[]).await.unwrap().get(0);
    for key in ["status", "components", "database", "uptime", "version", "alerts", "monitor"] {
        assert!(health.get(key).is_some(), "{key} in {health}");
    }
    assert_eq!(health["components"]["api"], "healthy");
    assert_eq!(health["database"]["status"], "connected");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "the extension is the release of this build");
    assert_eq!(health["monitor"]["running"], true);

    let component = unique("c");
    for (what, sql) in [
        ("status 'sleepy'", format!("SELECT botai_heartbeat('{component}', 'sleepy')")),
        ("negative active_tasks", format!("SELECT botai_heartbeat('{component}', 'healthy', -1)")),
        (
            "memory_percent not a number",
            format!("SELECT botai_heartbeat('{component}', 'healthy', 0, '{{\"memory_percent\": \"lots\"}}')"),
        ),
        ("metadata array", format!("SELECT botai_register_component('{component}', '[]')")),
        ("pid not a pid", format!("SELECT botai_register_component('{component}', '{{\"pid\": -1}}')")),
        ("empty error", format!("SELECT botai_report_error('{component}', '  ')")),
        ("65-character component", format!("SELECT botai_register_component('{}')", "c".repeat(65))),
    ] {
        expect_sqlstate(what, db.query_one(&sql, &[]).await, "22023");
    }
    expect_sqlstate("NULL component", db.query_one("SELECT botai_heartbeat(NULL)", &[]).await, "22004");
    expect_sqlstate("unknown component", db.query_one("SELECT botai_component_health('ghost')", &[]).await, "P0002");
    let rows: i64 =
        db.query_one("SELECT count(*) FROM botai.components WHERE component = $1", &[&component]).await.unwrap().get(0);
    assert_eq!(rows, 0, "nothing written by refused calls");
}
