//! Operators watch the fleet live (issue 13), tested against the real
//! things: the dashboard in Debian's chromium (headless, driven over the
//! DevTools protocol) shows a halt, an alert, a component going unhealthy
//! and an order within a second of the change; Debian's Prometheus scrapes
//! a running daemon and evaluates every Grafana panel's query and every
//! shipped alerting rule; promtool checks the configuration, the rules and
//! the exposition; systemd-analyze verifies the shipped units and the
//! daemon speaks the service manager's notify protocol.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use botai_tests::{free_port, repo_root, Daemon, TestDatabase};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn cache_bin(name: &str) -> PathBuf {
    let p = repo_root().join(".cache/bin").join(name);
    assert!(p.exists(), "{} is missing: scripts/deps.sh fetches it (make test does)", p.display());
    p
}

fn artifacts() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}")).text().await.unwrap()
}

async fn wait_http(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while reqwest::get(url).await.map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "{url} did not answer within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- the dashboard in a real browser ------------------------------------------

/// A headless chromium and one page of it, driven over the DevTools protocol.
struct Browser {
    child: std::process::Child,
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    _profile: PathBuf,
}

impl Browser {
    async fn launch(width: u32, height: u32) -> Browser {
        let port = free_port();
        let profile = std::env::temp_dir().join(botai_tests::unique("chromium-profile"));
        let child = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.display()),
                &format!("--window-size={width},{height}"),
                "about:blank",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromium (Debian's package; scripts/deps.sh installs it)");
        let list = format!("http://127.0.0.1:{port}/json/list");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            if let Ok(r) = reqwest::get(&list).await {
                if let Ok(targets) = r.json::<Vec<Value>>().await {
                    if let Some(page) = targets.iter().find(|t| t["type"] == "page") {
                        break page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
                    }
                }
            }
            assert!(Instant::now() < deadline, "chromium's DevTools endpoint did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("DevTools websocket");
        Browser { child, ws, next_id: 0, _profile: profile }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(Message::Text(json!({"id": id, "method": method, "params": params}).to_string().into()))
            .await
            .unwrap();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await.expect("DevTools answer");
            let Some(Ok(Message::Text(text))) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page; how long it took.
    async fn until(&mut self, what: &str, expression: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.eval(expression).await == true {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "the dashboard did not show {what} within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn screenshot(&mut self, name: &str) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).expect("base64 PNG");
        let path = artifacts().join(name);
        std::fs::write(&path, png).unwrap();
        println!("  screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_chromium_shows_a_halt_an_alert_a_sick_component_and_an_order_within_a_second() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute("UPDATE botai.alert_rules SET enabled = (rule = 'high_error_rate')").await.unwrap();
    db.batch_execute(
        "SELECT botai_update_balance('paper', 'USDT', 123456.78901234, 120000.5, 3456.28901234); \
         SELECT botai_reserve_balance('paper', 'USDT', 250.5, 'order')",
    )
    .await
    .unwrap();
    let port = free_port();
    let daemon =
        Daemon::start("dashboard", &t.name, &["run", "--mode=api"], &[("API_LISTEN", format!("127.0.0.1:{port}"))]);
    let url = format!("http://127.0.0.1:{port}/");
    wait_http(&format!("{url}health/live"), Duration::from_secs(30)).await;

    let mut page = Browser::launch(420, 900).await;
    page.call("Page.enable", json!({})).await;
    page.call("Page.navigate", json!({"url": url})).await;
    page.until(
        "the pushed document",
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(15),
    )
    .await;
    page.until(
        "the balance",
        "document.getElementById('balances').textContent.includes('120,000.5')",
        Duration::from_secs(5),
    )
    .await;

    // A halt from psql.
    let at = Instant::now();
    db.query_one("SELECT botai_halt('dashboard test')", &[]).await.unwrap();
    let halt = at.elapsed()
        + page
            .until("the halt", "document.getElementById('trading').textContent === 'halted'", Duration::from_secs(5))
            .await;

    // A component turning unhealthy.
    db.query_one("SELECT botai_register_component('dash-engine')", &[]).await.unwrap();
    page.until(
        "the component",
        "document.getElementById('components').textContent.includes('dash-engine')",
        Duration::from_secs(5),
    )
    .await;
    let at = Instant::now();
    db.query_one("SELECT botai_heartbeat('dash-engine', 'unhealthy')", &[]).await.unwrap();
    let sick = at.elapsed()
        + page
            .until(
                "the unhealthy component",
                "[...document.querySelectorAll('#components tr')].some(r => r.textContent === 'dash-engineunhealthy')",
                Duration::from_secs(5),
            )
            .await;

    // An alert: measured from the monitor's announcement of it.
    let (_listener, mut alerts) = t.listen(&["botai_alerts"]).await;
    for _ in 0..11 {
        db.execute("SELECT botai_report_error('dash-engine', 'boom')", &[]).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), alerts.recv()).await.expect("the alert opens").unwrap();
    let at = Instant::now();
    let alert = at.elapsed()
        + page
            .until(
                "the alert",
                "document.getElementById('alerts').textContent.includes('high_error_rate')",
                Duration::from_secs(5),
            )
            .await;

    // An order claimed by an engine.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let signal = json!({"symbol": "BTCUSDT", "direction": "BUY", "strategy": "dash", "timestamp": now});
    db.query_one("SELECT botai_register_worker('trading_engine', 'dash-engine-1', '{}')", &[]).await.unwrap();
    let at = Instant::now();
    let order_id: i64 = db
        .query_one(
            "SELECT order_id FROM botai_order_claim((SELECT signal_id FROM botai_register_signal($1)), 'dash-engine-1', 'paper')",
            &[&signal],
        )
        .await
        .unwrap()
        .get(0);
    let order = at.elapsed()
        + page
            .until(
                "the order",
                &format!(
                    "[...document.querySelectorAll('#orders tr')].some(r => r.cells[0].textContent === '{order_id}' \
                     && r.cells[3].textContent === 'claimed')"
                ),
                Duration::from_secs(5),
            )
            .await;
    println!(
        "  shown after: halt {:.0} ms, unhealthy component {:.0} ms, alert {:.0} ms, order {:.0} ms",
        halt.as_secs_f64() * 1e3,
        sick.as_secs_f64() * 1e3,
        alert.as_secs_f64() * 1e3,
        order.as_secs_f64() * 1e3
    );
    for (what, took) in [("halt", halt), ("component", sick), ("alert", alert), ("order", order)] {
        assert!(took < Duration::from_secs(1), "the {what} took {took:?} to show");
    }

    // Readable at a phone's width: the page itself never scrolls sideways
    // (wide tables scroll inside their card); and at 1,400 px every card
    // fits the window.
    let fits = "document.documentElement.scrollWidth <= window.innerWidth";
    assert_eq!(page.eval(fits).await, true, "the page overflows 420 px");
    page.screenshot("dashboard-420px.png").await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(page.eval(fits).await, true, "the page overflows 1,400 px");
    let cards_fit =
        "[...document.querySelectorAll('.card')].every(c => c.getBoundingClientRect().right <= window.innerWidth)";
    assert_eq!(page.eval(cards_fit).await, true, "a card is cut off at 1,400 px");
    page.screenshot("dashboard-1400px.png").await;
    drop(daemon);
}

// --- Prometheus, promtool, Grafana's queries ----------------------------------

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(cache_bin("promtool"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The left side of a rule's comparison: the series it watches, which must
/// exist while the system runs (the comparison itself holds only when the
/// alert fires).
fn watched(expr: &str) -> &str {
    [" >= ", " > ", " < ", " == "].iter().filter_map(|op| expr.find(op)).min().map_or(expr, |at| &expr[..at])
}

async fn query(prometheus: &str, promql: &str) -> Value {
    let r: Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "success", "{promql}: {r}");
    r["data"]["result"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_daemon_and_every_panel_and_alerting_rule_evaluates_to_series() {
    let deploy = repo_root().join("deploy");
    let (ok, out) = promtool(&["check", "config", deploy.join("prometheus/prometheus.yml").to_str().unwrap()], None);
    assert!(ok, "promtool check config: {out}");
    let (ok, out) = promtool(&["check", "rules", deploy.join("prometheus/botai.rules.yml").to_str().unwrap()], None);
    assert!(ok, "promtool check rules: {out}");

    // A daemon trading a replay on the paper exchange, every part running.
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('paper', '*', 1000000) \
         ON CONFLICT (exchange, symbol) DO UPDATE SET max_daily_loss = EXCLUDED.max_daily_loss",
    )
    .await
    .unwrap();
    // The operator turned the webhook channel on (`botai alerts apply`).
    db.query_one("SELECT botai_alert_channel('webhook', ARRAY['*'])", &[]).await.unwrap();
    let port = free_port();
    let epoch = chrono::Utc::now() + chrono::Duration::seconds(2);
    let daemon = Daemon::start(
        "prometheus",
        &t.name,
        &["run", "--mode=all"],
        &[
            ("API_LISTEN", format!("127.0.0.1:{port}")),
            ("REPLAY_EPOCH", epoch.to_rfc3339()),
            ("REPLAY_FROM", "2022-01-12T00:00:00Z".into()),
            ("REPLAY_SPEED", "600".into()),
            ("SIGNAL_THRESHOLD", "0".into()),
            ("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook".into()),
            ("ALERT_WEBHOOK_SECRET", "k".into()),
        ],
    );
    let daemon_url = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{daemon_url}/health/ready"), Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.query_one("SELECT count(*) FROM botai.orders WHERE status = 'filled'", &[]).await.unwrap().get::<_, i64>(0)
        < 3
    {
        assert!(Instant::now() < deadline, "no fills within 120 s:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A delivery owed (the webhook receiver does not exist) and an open alert.
    db.query_one("SELECT botai_register_component('prom-probe')", &[]).await.unwrap();
    db.execute("SELECT botai_report_error('prom-probe', 'boom', true)", &[]).await.unwrap();

    let exposition = get_text(&format!("{daemon_url}/metrics")).await;
    let (ok, remarks) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(ok && remarks.trim().is_empty(), "promtool check metrics on /metrics: {remarks}");
    println!("  promtool check metrics: {} lines from /metrics, no remarks", exposition.lines().count());

    // Debian's Prometheus with the shipped configuration, pointed at the daemon.
    let dir = std::env::temp_dir().join(botai_tests::unique("prometheus"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(deploy.join("prometheus/prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("- botai.rules.yml", &format!("- {}", deploy.join("prometheus/botai.rules.yml").display()));
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let prom_port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prometheus = std::process::Command::new(cache_bin("prometheus"))
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus");
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_http(&format!("{prom}/-/ready"), Duration::from_secs(60)).await;
    // Enough scrapes for a rate over a minute's range.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(&prom, "count_over_time(up{job=\"botai\"}[1m])").await;
        if up[0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) >= 12.0 {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape the daemon: {up}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let up = query(&prom, "up{job=\"botai\"}").await;
    assert_eq!(up[0]["value"][1], "1", "the scrape succeeds: {up}");

    // Every panel of the Grafana dashboard.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy.join("grafana/dashboards/botai.json")).unwrap()).unwrap();
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], "botai-prometheus");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "1m");
            let result = query(&prom, &expr).await;
            assert!(
                result.as_array().is_some_and(|r| !r.is_empty()),
                "panel {}: {expr} returns no series",
                panel["title"]
            );
            panels.push(panel["title"].as_str().unwrap().to_owned());
        }
    }
    for title in [
        "Worker Status",
        "Signal Deduplication Rate",
        "API Rate Limits",
        "Balance Reservations",
        "System Health",
        "Positions",
        "Orders",
    ] {
        assert!(panels.iter().any(|p| p == title), "the dashboard has a {title} panel");
    }
    println!(
        "  {} panel queries of {} panels returned series",
        panels.len(),
        dashboard["panels"].as_array().unwrap().len()
    );

    // Every alerting rule: loaded, evaluated without error, watching series that exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let r: Value = reqwest::get(format!("{prom}/api/v1/rules")).await.unwrap().json().await.unwrap();
        let rules: Vec<Value> = r["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if !rules.is_empty()
            && rules.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")))
        {
            break rules;
        }
        assert!(Instant::now() < deadline, "Prometheus did not evaluate the rules: {r}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule {}: {}", rule["name"], rule["lastError"]);
        let expr = rule["query"].as_str().unwrap();
        let series = query(&prom, watched(expr)).await;
        assert!(
            series.as_array().is_some_and(|s| !s.is_empty()),
            "rule {}: {} returns no series",
            rule["name"],
            watched(expr)
        );
    }
    let firing: Vec<String> = rules
        .iter()
        .filter(|r| r["state"] == "firing" || r["state"] == "pending")
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    println!(
        "  {} alerting rules evaluated, healthy, watching live series; pending or firing: {firing:?}",
        rules.len()
    );
    assert!(firing.iter().any(|n| n == "BotaiCriticalAlertOpen"), "the open critical alert is seen by Prometheus too");
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    drop(daemon);
}

// --- systemd ------------------------------------------------------------------

#[test]
fn the_shipped_systemd_units_verify() {
    let dir = std::env::temp_dir().join(botai_tests::unique("units"));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = repo_root().join("deploy/systemd");
    let binary = botai_tests::botai_binary();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.ends_with(".service") || name.ends_with(".target")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".service") {
            for needed in ["Type=notify", "WatchdogSec=", "Restart=on-failure"] {
                assert!(text.contains(needed), "{name} lacks {needed}");
            }
        }
        // Where this machine has the binary; the rest is verified as shipped.
        std::fs::write(dir.join(&name), text.replace("/opt/botai/bin/botai", binary.to_str().unwrap())).unwrap();
        units.push(if name.contains("@.") { name.replace("@.", "@1.") } else { name });
    }
    assert!(units.len() >= 4, "{units:?}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(&dir)
        .output()
        .expect("systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The botai user and /etc/botai/botai.env belong to the installation, not this machine.
    let problems: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.contains("/etc/botai/botai.env")).collect();
    assert!(out.status.success() && problems.is_empty(), "systemd-analyze verify {units:?}:\n{text}");
    println!("  systemd-analyze verify: {units:?} clean");
}

/// The daemon speaks sd_notify: READY=1 once started, WATCHDOG=1 every half
/// of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_tells_systemd_it_is_ready_and_pings_the_watchdog() {
    let t = TestDatabase::migrated(&[]).await;
    let socket = std::env::temp_dir().join(botai_tests::unique("notify.sock"));
    let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    listener.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let daemon = Daemon::start(
        "notify",
        &t.name,
        &["run", "--mode=api"],
        &[("NOTIFY_SOCKET", socket.display().to_string()), ("WATCHDOG_USEC", "1000000".into())],
    );
    let mut seen: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).count() < 4 {
        let n = listener.recv(&mut buf).unwrap_or_else(|e| panic!("no notification ({e}):\n{}", daemon.output()));
        seen.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
    }
    assert!(seen[0].1.contains("READY=1"), "READY=1 comes first: {seen:?}");
    let pings: Vec<Instant> = seen.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).map(|(t, _)| *t).collect();
    let gaps: Vec<f64> = pings.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(gaps.iter().all(|g| *g < 0.9), "pings every half of WATCHDOG_USEC (1 s): {gaps:?}");
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let stopping = loop {
        let n = listener.recv(&mut buf).expect("STOPPING=1");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.contains("STOPPING=1") {
            break m;
        }
    };
    println!("  READY=1, watchdog pings {gaps:?} s apart, then {stopping:?}");
    let (status, _) = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "a clean stop on SIGTERM");
    let _ = std::fs::remove_file(socket);
}
