//! Trust boundaries (issue 26): what botai accepts at the door, what its
//! readers survive, who may make the engine work, and who may read the
//! API — each tried the way an attacker or a careless operator would, with
//! real sessions, real roles, the real daemon and HTTP. (The roles of each
//! component are in roles.rs; the kill switch's and the position book's
//! holes in risk/; alert backlogs in alerts/.)

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use botai_tests::{
    botai_binary, botai_command, count, expect_sqlstate, free_port, os_user, repo_root, wait_until, Daemon,
    TestDatabase,
};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// A session of `t` acting as `role`.
async fn as_role(t: &TestDatabase, role: &str) -> Client {
    let db = t.connect().await;
    db.batch_execute(&format!("SET ROLE {role}")).await.unwrap();
    db
}

/// Item 1, the door: every amount outside botai's domain (16 digits before
/// the point, 12 after) is refused with 22003 naming the argument, quoting
/// only a short prefix, and writing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn amounts_outside_the_domain_are_refused_with_22003_and_nothing_is_written() {
    let t = TestDatabase::migrated(&[]).await;
    let admin = t.connect().await;
    admin
        .batch_execute(
            "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ('venue', 'global', 1000, 1); \
             SELECT botai_update_balance('venue', 'USDT', 1000, 1000, 0)",
        )
        .await
        .unwrap();
    let service = as_role(&t, "botai_service").await;
    let huge = format!("1{}", "0".repeat(100_000));
    let cases: Vec<(&str, String)> = vec![
        ("a balance of 1e400", "SELECT botai_update_balance('venue', 'BTC', 1e400, 1e400, 0)".into()),
        ("a balance with 13 decimals", "SELECT botai_update_balance('venue', 'BTC', 1.0000000000001, 1, 0)".into()),
        ("a locked amount of 1e16", "SELECT botai_update_balance('venue', 'BTC', 1, 1, 1e16)".into()),
        ("a reservation of 1e17", "SELECT botai_reserve_balance('venue', 'USDT', 1e17, 'x')".into()),
        (
            "an availability check of 1e400",
            "SELECT * FROM botai_check_balance_availability('venue', 'USDT', 1e400)".into(),
        ),
        ("a reconciliation of 1e100000", format!("SELECT botai_position_reconcile('venue', 'BTCUSDT', {huge}, 1)")),
        (
            "a reconciliation priced 1e-13",
            "SELECT botai_position_reconcile('venue', 'BTCUSDT', 1, 0.0000000000001)".into(),
        ),
        ("a mark of 1e20", "SELECT botai_mark_price('venue', 'BTCUSDT', 1e20)".into()),
        ("an order of qty 1e200", "SELECT * FROM botai_reserve_order(1, 'e', 1e200, 1, 'USDT', 1)".into()),
        (
            "an order targeting -1e30",
            "SELECT * FROM botai_reserve_order(1, 'e', 1, 1, 'USDT', 1, '1 min', 'order', -1e30)".into(),
        ),
    ];
    for (what, sql) in &cases {
        let result = service.query(sql.as_str(), &[]).await;
        if let Err(e) = &result {
            let message = e.as_db_error().map(|d| d.message().len()).unwrap_or(0);
            assert!(message < 600, "{what}: the message quotes the whole value ({message} bytes)");
        }
        expect_sqlstate(what, result, "22003");
    }
    // A fill of 1e200 through the engine's own function, with a real claim.
    let engine = t.connect().await;
    let worker: String =
        engine.query_one("SELECT botai_register_worker('trading_engine', 'trust-e')", &[]).await.unwrap().get(0);
    let signal: i64 = admin
        .query_one(
            "SELECT signal_id FROM botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
               'strategy', 'trust', 'timestamp', now()::text, 'exchange', 'venue'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let order: i64 = engine
        .query_one("SELECT order_id FROM botai_order_claim($1, $2, 'venue')", &[&signal, &worker])
        .await
        .unwrap()
        .get(0);
    for (key, value) in [
        ("qty", json!(1e200)),
        ("price", json!("1e200")),
        ("fee_quote", json!(1e17)),
        ("net_qty", json!("0.1234567890123")),
    ] {
        let details = json!({"qty": 1, "price": 1, key: value});
        expect_sqlstate(
            &format!("a fill with {key} {value}"),
            engine.query("SELECT botai_order_finish($1, $2, 'filled', $3)", &[&order, &worker, &details]).await,
            "22003",
        );
    }
    // Nothing of it written.
    assert_eq!(count(&admin, "SELECT count(*) FROM botai.balances WHERE asset = 'BTC'").await, 0);
    assert_eq!(count(&admin, "SELECT count(*) FROM botai.reservations").await, 0);
    assert_eq!(count(&admin, "SELECT count(*) FROM botai.positions WHERE qty <> 0").await, 0);
    assert_eq!(count(&admin, "SELECT count(*) FROM botai.orders WHERE status <> 'claimed'").await, 0);
    // The domain's edges pass.
    let ok: bool = service
        .query_one("SELECT botai_update_balance('venue', 'BTC', 9999999999999999.999999999999, 0.000000000001, 0)", &[])
        .await
        .expect("the largest amount and the smallest fraction of the domain")
        .get(0);
    assert!(ok);
}

/// What an admin (or a release before 0.7.0) left in the tables: values no
/// `Decimal` and no f64 hold.
async fn store_absurd_values(db: &Client) {
    db.batch_execute(
        "INSERT INTO botai.balances (exchange, asset, total, available, locked, as_of) \
           VALUES ('venue', 'USDT', 1e400, 1e400, 0, now()), ('venue', 'BTC', 1, 1, 0, now()); \
         INSERT INTO botai.positions (exchange, symbol, qty, avg_entry, last_price, realized_pnl, fees, trades) \
           VALUES ('venue', 'BTCUSDT', 1e300, 1, 2, -1e300, 1e-300, 1); \
         INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, payload) \
           VALUES ('absurd-1', 'BTCUSDT', 'BUY', 'x', now(), '{\"price\": 1e400}'); \
         INSERT INTO botai.orders (signal_id, fingerprint, client_order_id, engine, engine_epoch, exchange, symbol, \
           side, status, qty, price, fee, signal_accepted_at, finished_at, details) \
         SELECT signal_id, 'absurd-1', 'botai-absurd-1', 'e', 1, 'venue', 'BTCUSDT', 'BUY', 'filled', 1e300, 1e300, \
                1e-300, now(), now(), '{\"qty\": 1e300}' FROM botai.signals WHERE fingerprint = 'absurd-1'; \
         INSERT INTO botai.components (component, metadata) VALUES ('absurd', '{\"memory_percent\": 1, \"x\": 1e400}'); \
         WITH a AS (INSERT INTO botai.alerts (rule, subject, severity, action, value, details) \
                    VALUES ('low_balance', 'venue/USDT', 'warning', 'notify', 1, '{\"free\": 1e400, \"threshold\": -1e400}') \
                    RETURNING alert_id) \
         INSERT INTO botai.alert_events (alert_id, event) SELECT alert_id, 'opened' FROM a;",
    )
    .await
    .unwrap();
}

/// Item 1, the readers: the daemon's API, its live feed and its alert
/// delivery, `botai status`, `positions` and `orders` survive every value
/// stored, showing what they cannot hold as out of range — never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn every_reader_survives_what_is_stored_and_shows_it_out_of_range() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute("UPDATE botai.alert_rules SET enabled = false").await.unwrap();
    store_absurd_values(&db).await;
    let port = free_port();
    let api =
        Daemon::start("trust-api", &t.name, &["run", "--mode=api"], &[("API_LISTEN", format!("127.0.0.1:{port}"))]);
    api.wait_for_output("HTTP API and dashboard", Duration::from_secs(30)).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let status = http.get(format!("{base}/api/status")).send().await.expect("/api/status answers");
    assert_eq!(status.status(), 200);
    let doc: Value = status.json().await.unwrap();
    let balances = doc["balances"].to_string();
    assert!(balances.contains("out of range"), "the balance of 1e400 is shown out of range: {balances}");
    // The live feed: its first event, then the process still answers.
    let mut events = http.get(format!("{base}/api/events")).send().await.expect("/api/events answers");
    let first = tokio::time::timeout(Duration::from_secs(15), async {
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = events.chunk().await.unwrap().expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("a first event");
    assert!(first.contains("event: status") && first.contains("out of range"), "{}", &first[..first.len().min(400)]);
    // The alert with 1e400 in its details reaches the log channel.
    wait_until("the alert delivered to the log", Duration::from_secs(30), async || {
        count(
            &db,
            "SELECT count(*) FROM botai.alert_deliveries d JOIN botai.alert_events e USING (event_id) \
             JOIN botai.alerts a USING (alert_id) \
             WHERE d.channel = 'log' AND d.status = 'delivered' AND a.subject = 'venue/USDT' AND e.event = 'opened'",
        )
        .await
            == 1
    })
    .await;
    let live = http.get(format!("{base}/health/live")).send().await.unwrap().status();
    assert_eq!(live, 200, "the process lives on");
    let output = api.output();
    assert!(!output.contains("panicked"), "{output}");

    // The operator's commands read the same values.
    for args in [&["status"][..], &["positions"], &["orders"]] {
        let (code, text) = botai_command(&t.name, args);
        assert!(matches!(code, Some(0) | Some(2)), "botai {args:?} exited {code:?}:\n{text}");
        assert!(!text.contains("panicked"), "botai {args:?}:\n{text}");
        if args[0] != "orders" {
            assert!(text.contains("out of range"), "botai {args:?} shows the value out of range:\n{text}");
        }
        println!("  botai {} exited {code:?}", args.join(" "));
    }
}

/// Item 4: a notification is a hint. Any login may send one; invented
/// signal ids are looked up once, dropped and counted — never retried,
/// never a component error each, never a log line each.
#[tokio::test(flavor = "multi_thread")]
async fn forged_signal_notifications_are_dropped_once_and_counted() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let port = free_port();
    let env = vec![("REPLAY_FROM", "2022-01-10T00:00:00Z".into()), ("REPLAY_TO", "2022-01-10T12:00:00Z".into())];
    let (_exchange, paper) = Daemon::double("trust-paper", &t.name, &env).await;
    let engine = Daemon::start(
        "trust-engine",
        &t.name,
        &["run", "--mode=core"],
        &[
            ("PAPER_EXCHANGE_URL", paper.clone()),
            ("API_LISTEN", format!("127.0.0.1:{port}")),
            ("ENGINE_ID", "trust-engine".into()),
        ],
    );
    engine.wait_for_output("trading engine started", Duration::from_secs(60)).await;
    let errors_before = count(&db, "SELECT count(*) FROM botai.component_errors").await;
    let reader = as_role(&t, "botai_reader").await;
    for round in 0..4 {
        let forged: Vec<String> = (0..50)
            .map(|i| {
                format!("SELECT pg_notify('botai_signals', '{{\"signal_id\": {}}}')", 900_000_001 + round * 50 + i)
            })
            .chain(["SELECT pg_notify('botai_signals', 'not json')".to_owned()])
            .collect();
        reader.batch_execute(&forged.join(";")).await.expect("NOTIFY needs no privilege");
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let errors = count(&db, "SELECT count(*) FROM botai.component_errors").await - errors_before;
    let log = engine.output();
    // A forged id is nine digits from 900000001; a log line's timestamp can
    // hold ".900000" in its fraction, which is no id.
    let names_a_forged_id = |line: &str| (900_000_001..=900_000_200).any(|id: u32| line.contains(&id.to_string()));
    let lines = log.lines().filter(|l| names_a_forged_id(l)).count();
    println!("  204 forged notifications: {errors} component errors, {lines} log lines naming them");
    assert_eq!(errors, 0, "no component error per forged id");
    assert!(lines == 0, "no log line per forged id:\n{log}");
    assert!(log.contains("dropping botai_signals notifications"), "said once: {log}");
    // The engine still trades: a real signal after the flood is handled.
    db.batch_execute(
        "SELECT botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', 'strategy', 'real', \
           'timestamp', now()::text, 'price', 42000, 'qty', '0.001'))",
    )
    .await
    .unwrap();
    wait_until("the real signal's order recorded", Duration::from_secs(30), async || {
        count(&db, "SELECT count(*) FROM botai.orders WHERE status <> 'claimed'").await == 1
    })
    .await;
}

/// A raw HTTP/1.1 exchange with the API (the test's own client, so it can
/// send half a request and wait).
fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (code, head.to_owned(), body.to_owned())
}

/// Item 5: an API reachable from other machines needs its token for the
/// dashboard and /api/*, drops half-sent requests after the header
/// timeout, and under a thousand idle connections (at systemd's 1024 open
/// files) still answers /health/live; /metrics and /health stay open.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_needs_its_token_off_loopback_and_keeps_answering_probes_under_a_flood() {
    let t = TestDatabase::migrated(&[]).await;
    let port = free_port();
    // Off loopback without a token: refused at start, in one line.
    let refused = Daemon::start(
        "api-open",
        &t.name,
        &["run", "--mode=api"],
        &[("API_LISTEN", format!("0.0.0.0:{port}")), ("API_TOKEN", String::new())],
    );
    let (status, out) = refused.wait(Duration::from_secs(30));
    assert!(!status.success() && out.contains("set API_TOKEN"), "{out}");
    let token = "0123456789abcdef0123456789";
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c").arg(format!("ulimit -n 1024 && exec {} run --mode=api", botai_binary().display()));
    let dir = repo_root().join("target/test-daemons").join(botai_tests::unique("api-flood"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("output.log")).unwrap();
    let mut api = cmd
        .current_dir(repo_root())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PGHOST", "/var/run/postgresql")
        .env("PGPORT", std::env::var("PGPORT").unwrap_or_else(|_| "5555".into()))
        .env("PGUSER", os_user())
        .env("PGDATABASE", &t.name)
        .env("LOG_DIR", dir.join("logs"))
        .env("API_LISTEN", format!("0.0.0.0:{port}"))
        .env("API_TOKEN", token)
        .env("API_HEADER_TIMEOUT", "2")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the API did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The token.
    let bearer = format!("Bearer {token}");
    assert_eq!(http_get(port, "/api/status", &[]).0, 401, "no token");
    assert_eq!(http_get(port, "/api/status", &[("Authorization", "Bearer wrong-token-wrong-token")]).0, 401);
    assert_eq!(http_get(port, "/", &[]).0, 401, "the dashboard too");
    assert_eq!(http_get(port, "/api/status", &[("Authorization", &bearer)]).0, 200);
    let (code, head, _) = http_get(port, &format!("/?token={token}"), &[]);
    assert!(code == 303 && head.contains("botai_token="), "a browser's first visit sets the cookie: {head}");
    assert_eq!(http_get(port, "/", &[("Cookie", &format!("botai_token={token}"))]).0, 200);
    for open in ["/health/live", "/health"] {
        assert_ne!(http_get(port, open, &[]).0, 401, "{open} needs no token");
    }
    assert_eq!(http_get(port, "/metrics", &[]).0, 401, "the metrics carry balances: the token off loopback");
    assert_eq!(http_get(port, "/metrics", &[("Authorization", &bearer)]).0, 200);
    // A half-sent request is dropped after the header timeout.
    let mut half = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let _ = half.read(&mut buf);
    println!("  a half-sent request was closed after {:.1} s", started.elapsed().as_secs_f64());
    assert!(started.elapsed() < Duration::from_secs(6), "closed by the header timeout");
    // 1,100 idle connections, each with half a request, at 1024 open files
    // (the test's own process may open them all).
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..1100 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET /api/status HTTP/1.1\r\n");
                flood.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    // Probes are answered at once, or once the header timeout has closed
    // the half-sent connections holding the few kept for them.
    let probe_started = Instant::now();
    let live = loop {
        let (live, _, _) = http_get(port, "/health/live", &[]);
        if live == 200 || probe_started.elapsed() > Duration::from_secs(8) {
            break live;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let answered_in = probe_started.elapsed();
    println!(
        "  {} idle half-sent connections open ({refused} refused by the test's own limits): /health/live answered \
         {live} in {:.0} ms",
        flood.len(),
        answered_in.as_secs_f64() * 1000.0
    );
    assert_eq!(live, 200, "the probe answers under the flood");
    assert!(answered_in < Duration::from_secs(3), "within the probes' one-second header timeout ({answered_in:?})");
    // Every flood connection was dropped by the API, none left open.
    let mut closed = 0;
    for s in flood.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        closed += usize::from(matches!(s.read(&mut [0u8; 64]), Ok(0) | Err(_)));
    }
    println!("  {closed} of {} flood connections closed by the API", flood.len());
    assert_eq!(closed, flood.len());
    drop(flood);
    let _ = api.kill();
    let _ = api.wait();
    let output = std::fs::read_to_string(dir.join("output.log")).unwrap_or_default();
    assert!(!output.contains("Too many open files"), "{output}");
}

/// Item 9: an error quotes at most a short prefix of a hostile value: a
/// 5 MB component name costs the server log a line, not 5 MB.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_argument_costs_the_server_log_a_line() {
    let t = TestDatabase::migrated(&[]).await;
    let log = std::path::Path::new("/var/log/postgresql/postgresql-15-botai.log");
    let size = || std::fs::metadata(log).map(|m| m.len()).expect("the server log (make test runs as root)");
    let before = size();
    let reader = as_role(&t, "botai_reader").await;
    for sql in [
        "SELECT botai_component_health(repeat('x', 5000000))",
        "SELECT botai_fingerprint(repeat('x', 5000000), 'BUY', 's', now())",
    ] {
        let e = reader.query(sql, &[]).await.expect_err("refused");
        let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
        println!("  {} bytes: {}", message.len(), &message[..message.len().min(120)]);
        assert!(message.len() < 2000, "the error quotes {} bytes of the argument", message.len());
    }
    let service = as_role(&t, "botai_service").await;
    let long = "y".repeat(5_000_000);
    for sql in
        ["SELECT botai_heartbeat('c', $1)", "SELECT botai_register_worker($1)", "SELECT botai_rate_acquire($1, 'x')"]
    {
        let e = service.query(sql, &[&long]).await.expect_err("refused");
        let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
        assert!(message.len() < 2000, "{sql}: the error quotes {} bytes", message.len());
    }
    // The other tests of this binary run beside this one and log their own
    // lines: count only the lines of this test's database (the cluster's
    // log_line_prefix names it, `%u@%d `), and look through everything
    // appended for a run of the arguments themselves.
    let appended = {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(log).expect("the server log");
        file.seek(SeekFrom::Start(before)).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let ours = format!("@{} ", t.name);
    let mine: usize = appended.lines().filter(|l| l.contains(&ours)).map(|l| l.len() + 1).sum();
    println!(
        "  five refusals of 5 MB arguments: this database's lines took {mine} bytes of the log ({} appended in all)",
        appended.len()
    );
    for run in ["x".repeat(1000), "y".repeat(1000)] {
        assert!(!appended.contains(&run), "the server log holds a run of 1000 {:?} from an argument", &run[..1]);
    }
    assert!(mine < 20_000, "the server log took {mine} bytes for five refused calls");
}

/// Item 9: botai's logins are configured not to sit in an open
/// transaction (a LISTEN inside one holds the cluster's NOTIFY queue) nor
/// to take the cluster's connections; whoever fills the queue anyway (a
/// session can lift its own timeout) is seen: the queue's use is a metric
/// and an alert naming the oldest open transaction.
#[tokio::test(flavor = "multi_thread")]
async fn the_notify_queue_is_watched_and_botai_logins_do_not_sit_in_transactions() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let limits: Vec<(String, i32, Option<Vec<String>>)> = db
        .query(
            "SELECT rolname::text, rolconnlimit, rolconfig::text[] FROM pg_roles WHERE rolname LIKE 'botai\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (role, limit, config) in &limits {
        println!("  {role}: connection limit {limit}, {config:?}");
        if role == "botai_admin" {
            continue;
        }
        assert!(*limit > 0, "{role} has a connection limit");
        assert!(
            config.as_ref().is_some_and(|c| c.iter().any(|s| s.starts_with("idle_in_transaction_session_timeout="))),
            "{role} cannot sit in an open transaction"
        );
    }
    // Fill the queue a little: a listener in an open transaction, then
    // notifications it cannot consume.
    db.batch_execute("UPDATE botai.alert_rules SET enabled = (rule = 'notify_queue'), threshold = 0.00001 WHERE true")
        .await
        .unwrap();
    let (listener, _rx) = t.listen(&["trust_queue"]).await;
    listener.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let notifier = t.connect().await;
    notifier
        .batch_execute("SELECT pg_notify('trust_queue', repeat('n', 7900)) FROM generate_series(1, 2000)")
        .await
        .unwrap();
    wait_until("the notify_queue alert opens", Duration::from_secs(30), async || {
        count(&db, "SELECT count(*) FROM botai.alerts WHERE rule = 'notify_queue' AND status = 'open'").await == 1
    })
    .await;
    let metrics: String = db.query_one("SELECT botai_metrics()", &[]).await.unwrap().get(0);
    let usage = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_monitor_notification_queue_usage "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the metric");
    println!("  NOTIFY queue in use: {:.4} %", usage * 100.0);
    assert!(usage > 0.0);
    listener.batch_execute("ROLLBACK").await.unwrap();
}

/// Item 9: the webhook channel never follows a redirect: a receiver that
/// answers 307 to another host gets the signed body, the other host never
/// does, and the delivery stays owed with the redirect named.
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_never_follows_a_redirect_with_the_signed_body() {
    use axum::routing::post;
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let elsewhere_hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let elsewhere = {
        let hits = elsewhere_hits.clone();
        axum::Router::new().fallback(post(move || {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { axum::http::StatusCode::NO_CONTENT }
        }))
    };
    let elsewhere_port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", elsewhere_port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, elsewhere).await });
    let redirector = axum::Router::new().fallback(post(move || async move {
        (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, format!("http://127.0.0.1:{elsewhere_port}/collect"))],
        )
    }));
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, redirector).await });
    db.batch_execute(
        "UPDATE botai.alert_rules SET enabled = (rule = 'critical_error'); \
         SELECT botai_alert_channel('webhook', ARRAY['*'])",
    )
    .await
    .unwrap();
    let api = Daemon::start(
        "trust-webhook",
        &t.name,
        &["run", "--mode=api"],
        &[
            ("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:{port}/hook")),
            ("ALERT_WEBHOOK_SECRET", "a-signing-key".into()),
        ],
    );
    api.wait_for_output("delivering alerts to webhook", Duration::from_secs(30)).await;
    db.batch_execute(
        "SELECT botai_register_component('redirected'); SELECT botai_report_error('redirected', 'x', true)",
    )
    .await
    .unwrap();
    wait_until("a failed attempt recorded", Duration::from_secs(30), async || {
        count(
            &db,
            "SELECT count(*) FROM botai.alert_deliveries WHERE channel = 'webhook' AND status = 'pending' \
             AND last_error LIKE '%redirect%'",
        )
        .await
            >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the signed body went elsewhere");
    let error: String = db
        .query_one("SELECT last_error FROM botai.alert_deliveries WHERE channel = 'webhook' LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    println!("  the webhook's 307 was not followed: {error}");
}
