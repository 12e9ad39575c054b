//! Alerts reach people (issue 13): Telegram, e-mail and webhooks, each event
//! delivered once per channel however many daemons run, nothing lost while
//! the receivers are down, none while no daemon runs, and a daemon killed
//! mid-send leaves the event to another. The receivers are real servers on
//! loopback: an HTTP server answering like the Bot API (429 included), a
//! real SMTP server (aiosmtpd, with AUTH), a webhook receiver that checks
//! the HMAC signature. And `restart_component`: a stuck ML manager's
//! session is ended, its standby takes over, and it comes back as standby.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use botai_tests::{count, free_port, repo_root, wait_until, Daemon, TestDatabase};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

const BOT_TOKEN: &str = "7301234567:AAH-test-bot-token-never-logged";
const CHAT_ID: &str = "424242";
const SMTP_USER: &str = "alerts@botai.test";
const SMTP_PASSWORD: &str = "smtp-password-never-logged";
const WEBHOOK_SECRET: &str = "webhook-hmac-key-never-logged";
const WEBHOOK_PATH_TOKEN: &str = "path-token-never-logged";

// --- receivers ----------------------------------------------------------------

/// An HTTP server on a fixed loopback port that can go down and come back.
struct Server {
    port: u16,
    router: Router,
    stop: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Server {
    fn new(router: Router) -> Server {
        Server { port: free_port(), router, stop: None }
    }

    async fn up(&mut self) {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let token = CancellationToken::new();
        let (router, t) = (self.router.clone(), token.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(async move { t.cancelled().await }).await;
        });
        self.stop = Some((token, task));
    }

    /// Refuses connections from now on (open ones are closed).
    async fn down(&mut self) {
        if let Some((token, task)) = self.stop.take() {
            token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Messages the fake Bot API accepted: (when, body).
#[derive(Default)]
struct TelegramLog {
    accepted: Mutex<Vec<(Instant, Value)>>,
    requests: AtomicU32,
    too_many: AtomicU32,
    bad_token: AtomicU32,
}

/// Answers like the Bot API: `POST /bot<token>/sendMessage`; the first
/// message gets 429 with retry_after, a wrong token 401.
async fn bot_api(State(log): State<Arc<TelegramLog>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let n = log.requests.fetch_add(1, Ordering::SeqCst);
    if uri.path() != format!("/bot{BOT_TOKEN}/sendMessage") {
        log.bad_token.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        );
    }
    if n == 0 {
        log.too_many.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
                              "parameters": {"retry_after": 3}})),
        );
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut accepted = log.accepted.lock().unwrap();
    accepted.push((Instant::now(), message.clone()));
    let id = accepted.len();
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": {"message_id": id, "chat": {"id": message["chat_id"]},
                                                             "text": message["text"]}})),
    )
}

#[derive(Default)]
struct WebhookLog {
    /// Event ids of the calls answered 2xx.
    accepted: Mutex<Vec<i64>>,
    /// Event ids of every call that reached the handler.
    seen: Mutex<Vec<i64>>,
    bad_signature: AtomicU32,
    /// Hold the first call without answering (a daemon killed mid-send).
    hang_first: AtomicBool,
    /// Calls answered 2xx (a summary is one call for many events).
    calls: AtomicU32,
}

fn hmac_hex(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the signature over the raw body, as a receiver would.
async fn webhook(State(log): State<Arc<WebhookLog>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    if uri.path() != format!("/hooks/{WEBHOOK_PATH_TOKEN}") {
        return StatusCode::NOT_FOUND;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (timestamp, signature) = (header("x-botai-timestamp"), header("x-botai-signature"));
    let age = timestamp.parse::<i64>().map(|t| (chrono::Utc::now().timestamp() - t).abs()).unwrap_or(i64::MAX);
    if signature != hmac_hex(WEBHOOK_SECRET.as_bytes(), &timestamp, &body) || age > 300 {
        log.bad_signature.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // One event, or a backlog summarised: every event whole in `events`.
    let (ids, key) = if doc["summary"] == true {
        let ids: Vec<i64> = doc["events"]
            .as_array()
            .map(|e| e.iter().filter_map(|a| a["event_id"].as_i64()).collect())
            .unwrap_or_default();
        (ids, "botai-summary-".to_owned())
    } else {
        let id = doc["event_id"].as_i64().unwrap_or(-1);
        (vec![id], format!("botai-alert-{id}"))
    };
    let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
    if header("x-botai-event-id") != listed.join(",") || !header("idempotency-key").starts_with(&key) {
        return StatusCode::BAD_REQUEST;
    }
    log.seen.lock().unwrap().extend(&ids);
    if log.hang_first.swap(false, Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    log.accepted.lock().unwrap().extend(&ids);
    log.calls.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

/// aiosmtpd (tests/alerts/smtp_sink.py) on a fixed port, its accepted
/// messages collected from its output.
struct Smtp {
    port: u16,
    child: Option<std::process::Child>,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl Smtp {
    fn new() -> Smtp {
        Smtp { port: free_port(), child: None, accepted: Default::default() }
    }

    async fn up(&mut self) {
        let python = repo_root().join(".cache/venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/test-python.sh (make test does)", python.display());
        let mut child = std::process::Command::new(python)
            .arg(repo_root().join("tests/alerts/smtp_sink.py"))
            .args([self.port.to_string().as_str(), SMTP_USER, SMTP_PASSWORD])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let (accepted, (ready_tx, ready_rx)) = (self.accepted.clone(), std::sync::mpsc::channel());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v.get("listening").is_some() {
                    let _ = ready_tx.send(());
                } else if v.get("message_id").is_some() {
                    accepted.lock().unwrap().push(v);
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).expect("the SMTP server started");
        self.child = Some(child);
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.down();
    }
}

// --- the system under test ----------------------------------------------------

/// Every channel on, pointed at the receivers.
fn channel_env(telegram: u16, smtp: u16, webhook: u16) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.into()),
        ("TELEGRAM_CHAT_ID", CHAT_ID.into()),
        ("TELEGRAM_API_URL", format!("http://127.0.0.1:{telegram}")),
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", smtp.to_string()),
        ("SMTP_SECURITY", "none".into()),
        ("SMTP_USERNAME", SMTP_USER.into()),
        ("SMTP_PASSWORD", SMTP_PASSWORD.into()),
        ("ALERT_EMAIL_FROM", "botai@botai.test".into()),
        ("ALERT_EMAIL_TO", "ops@botai.test, oncall@botai.test".into()),
        ("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:{webhook}/hooks/{WEBHOOK_PATH_TOKEN}")),
        ("ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("ALERT_RETRY_MAX", "5".into()),
    ]
}

/// Only the critical_error rule, its alerts resolving `window` seconds
/// after the last critical error: each component reporting one gives two
/// events, opened then resolved. Waits until the alerts the other rules
/// opened (a fresh database has no ml_manager: worker_offline) are
/// resolved; returns the last event id then.
async fn only_critical_errors(db: &Client, window: u32) -> i64 {
    db.batch_execute(&format!(
        "UPDATE botai.alert_rules SET enabled = (rule = 'critical_error'); \
         UPDATE botai.alert_rules SET window_seconds = {window} WHERE rule = 'critical_error'"
    ))
    .await
    .unwrap();
    // A round already running may have read the rules before the update
    // (and open, say, worker_offline after it): two more rounds, and the
    // last has seen them.
    let rounds = "SELECT (botai_monitor_state()->>'rounds')::bigint";
    let after_update = count(db, rounds).await;
    wait_until("two monitor rounds", Duration::from_secs(30), async || count(db, rounds).await >= after_update + 2)
        .await;
    wait_until("the other rules' alerts resolved", Duration::from_secs(30), async || {
        count(db, "SELECT count(*) FROM botai.alerts WHERE status = 'open' AND rule <> 'critical_error'").await == 0
    })
    .await;
    count(db, "SELECT coalesce(max(event_id), 0) FROM botai.alert_events").await
}

async fn critical_error(db: &Client, component: &str) {
    db.query_one("SELECT botai_register_component($1)", &[&component]).await.unwrap();
    db.execute("SELECT botai_report_error($1, 'the disk is on fire', true)", &[&component]).await.unwrap();
}

/// The event ids a message's text covers: one ("… (event 17) at …"), or
/// a summary's ("botai events 17, 18, 21 (…").
fn events_in_text(text: &str) -> Vec<i64> {
    if let Some(at) = text.find("botai events ") {
        let list = text[at + 13..].split(" (").next().unwrap();
        return list.split(", ").map(|id| id.trim().parse().unwrap()).collect();
    }
    let at = text.find("(event ").expect("the message names its event") + 7;
    vec![text[at..].split(')').next().unwrap().parse().unwrap()]
}

/// `botai alerts apply` with `env`, as the operator (the test's superuser).
fn apply_channels(database: &str, env: &[(&'static str, String)]) -> String {
    let mut env = env.to_vec();
    env.push(("OPERATOR_PGUSER", botai_tests::os_user()));
    let (status, out) =
        Daemon::start("alerts-apply", database, &["alerts", "apply"], &env).wait(Duration::from_secs(30));
    assert!(status.success(), "botai alerts apply failed:\n{out}");
    out
}

fn no_secret(what: &str, text: &str) {
    for secret in [BOT_TOKEN, SMTP_PASSWORD, WEBHOOK_SECRET, WEBHOOK_PATH_TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret ({}…)", &secret[..8]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_events_reach_each_channel_exactly_once_from_two_daemons_across_a_minute_of_receivers_down() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let before = only_critical_errors(&db, 4).await;
    let events_since = format!("SELECT count(*) FROM botai.alert_events WHERE event_id > {before}");

    let telegram_log = Arc::new(TelegramLog::default());
    let mut telegram = Server::new(Router::new().fallback(bot_api).with_state(telegram_log.clone()));
    let webhook_log = Arc::new(WebhookLog::default());
    let mut hooks = Server::new(Router::new().fallback(webhook).with_state(webhook_log.clone()));
    let mut smtp = Smtp::new();
    telegram.up().await;
    hooks.up().await;
    smtp.up().await;

    let api_port = free_port();
    let mut env = channel_env(telegram.port, smtp.port, hooks.port);
    // The operator turns the channels on; the daemons only deliver them.
    let applied = apply_channels(&t.name, &env);
    for channel in ["telegram", "email", "webhook"] {
        assert!(applied.contains(&format!("{channel:<9} enabled")), "{applied}");
    }
    env.push(("API_LISTEN", format!("127.0.0.1:{api_port}")));
    let a = Daemon::start("alerts-a", &t.name, &["run", "--mode=api"], &env);
    let b =
        Daemon::start("alerts-b", &t.name, &["run", "--mode=api"], &channel_env(telegram.port, smtp.port, hooks.port));
    for d in [&a, &b] {
        for channel in ["log", "telegram", "email", "webhook"] {
            d.wait_for_output(&format!("delivering alerts to {channel} "), Duration::from_secs(30)).await;
        }
    }

    // Four events with the receivers up.
    for c in ["disk-1", "disk-2"] {
        critical_error(&db, c).await;
    }
    wait_until("four events", Duration::from_secs(30), async || count(&db, &events_since).await == 4).await;

    // The receivers go down for a minute; thirty events happen meanwhile.
    let down_at = Instant::now();
    telegram.down().await;
    hooks.down().await;
    smtp.down();
    for k in 3..18 {
        critical_error(&db, &format!("disk-{k}")).await;
    }
    wait_until("34 events", Duration::from_secs(30), async || count(&db, &events_since).await == 34).await;
    wait_until("failed attempts recorded while the receivers are down", Duration::from_secs(30), async || {
        count(
            &db,
            "SELECT count(DISTINCT channel) FROM botai.alert_deliveries \
             WHERE status = 'pending' AND attempts > 0 AND last_error IS NOT NULL",
        )
        .await
            == 3
    })
    .await;
    let owed = count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'pending'").await;
    println!("  receivers down: {owed} deliveries owed, retried with backoff");
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_at.elapsed())).await;
    telegram.up().await;
    hooks.up().await;
    smtp.up().await;
    let up_at = Instant::now();
    // A fresh alert as the receivers return (a warning: not what goes
    // first anyway): it must not wait behind the backlog (issue 26 item 10).
    db.batch_execute(
        "UPDATE botai.alert_rules SET enabled = true, window_seconds = 4 WHERE rule = 'high_error_rate'; \
         SELECT botai_register_component('fresh'); \
         SELECT botai_report_error('fresh', 'boom') FROM generate_series(1, 11)",
    )
    .await
    .unwrap();
    let fresh_at = Instant::now();
    let mut fresh_event = 0;
    wait_until("the fresh alert opens", Duration::from_secs(30), async || {
        fresh_event = count(
            &db,
            "SELECT coalesce(max(e.event_id), 0) FROM botai.alert_events e JOIN botai.alerts a USING (alert_id) \
             WHERE a.rule = 'high_error_rate' AND e.event = 'opened'",
        )
        .await;
        fresh_event > 0
    })
    .await;
    // E-mail takes high_error_rate (Telegram, as configured, does not).
    wait_until("the fresh alert reaches the e-mail", Duration::from_secs(120), async || {
        smtp.accepted.lock().unwrap().iter().any(|m| {
            let id = m["message_id"].as_str().unwrap_or_default();
            if id.starts_with("<botai-summary-") {
                events_in_text(m["body"].as_str().unwrap_or_default()).contains(&fresh_event)
            } else {
                id.starts_with(&format!("<botai-alert-{fresh_event}@"))
            }
        })
    })
    .await;
    let fresh_took = fresh_at.elapsed();
    println!(
        "  the fresh alert (event {fresh_event}) reached the e-mail {:.1} s after it was raised, beside a backlog of 30",
        fresh_took.as_secs_f64()
    );

    wait_until("every delivery made", Duration::from_secs(120), async || {
        count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'pending'").await == 0
    })
    .await;
    println!("  every owed delivery made {:.1} s after the receivers came back", up_at.elapsed().as_secs_f64());
    // Anything sent twice would arrive now.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let events: BTreeSet<i64> = db
        .query("SELECT event_id FROM botai.alert_events WHERE event_id > $1", &[&before])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let described: Vec<String> = db
        .query(
            "SELECT e.event_id || ' ' || e.event || ' ' || a.rule || ' ' || a.subject FROM botai.alert_events e \
             JOIN botai.alerts a USING (alert_id) WHERE e.event_id > $1 ORDER BY 1",
            &[&before],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // 34 events of critical_error, and the fresh one (its resolution may
    // follow).
    assert!(events.len() >= 35, "{described:#?}");
    let delivered = count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'delivered'").await;
    let owed_in_all = count(&db, "SELECT count(*) FROM botai.alert_deliveries").await;
    assert_eq!(delivered, owed_in_all, "every event owed to a channel was delivered to it");
    // What each channel takes (its triggers): every critical_error event;
    // high_error_rate only where the triggers say so.
    let owed = async |channel: &str| -> BTreeSet<i64> {
        db.query(
            "SELECT event_id FROM botai.alert_deliveries WHERE channel = $1 AND event_id > $2",
            &[&channel, &before],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };

    let messages: Vec<(Instant, Value)> = telegram_log.accepted.lock().unwrap().clone();
    let telegram_events: Vec<i64> =
        messages.iter().flat_map(|(_, m)| events_in_text(m["text"].as_str().unwrap())).collect();
    let emails: Vec<Value> = smtp.accepted.lock().unwrap().clone();
    let email_events: Vec<i64> = emails
        .iter()
        .flat_map(|m| {
            let id = m["message_id"].as_str().unwrap();
            if id.starts_with("<botai-summary-") {
                events_in_text(m["body"].as_str().unwrap())
            } else {
                vec![id.trim_start_matches("<botai-alert-").split('@').next().unwrap().parse().unwrap()]
            }
        })
        .collect();
    let webhook_events: Vec<i64> = webhook_log.accepted.lock().unwrap().clone();
    let summaries = messages.iter().filter(|(_, m)| m["text"].as_str().unwrap().starts_with("[SUMMARY]")).count();
    println!(
        "  {} events: telegram {} messages ({summaries} summaries, {} answered 429), e-mail {}, webhook {} calls; \
         bad signatures {}, bad tokens {}",
        events.len(),
        messages.len(),
        telegram_log.too_many.load(Ordering::SeqCst),
        emails.len(),
        webhook_log.calls.load(Ordering::SeqCst),
        webhook_log.bad_signature.load(Ordering::SeqCst),
        telegram_log.bad_token.load(Ordering::SeqCst)
    );
    for (channel, got) in [("telegram", &telegram_events), ("email", &email_events), ("webhook", &webhook_events)] {
        let expected = owed(channel).await;
        assert!(expected.len() >= 34, "{channel}: owed {expected:?}");
        assert_eq!(got.len(), expected.len(), "{channel}: each event in exactly one message, got {got:?}");
        let distinct: BTreeSet<i64> = got.iter().copied().collect();
        assert_eq!(distinct, expected, "{channel}: each event once");
    }
    assert!(summaries >= 1, "the backlog went as a summary");
    assert!(messages.len() < events.len() / 2, "a backlog is not sent one message per event");
    assert!(fresh_took < Duration::from_secs(20), "the fresh alert waited behind the backlog: {fresh_took:?}");
    assert_eq!(telegram_log.too_many.load(Ordering::SeqCst), 1, "the Bot API's 429 was met, and retried");
    assert_eq!(telegram_log.bad_token.load(Ordering::SeqCst), 0);
    assert_eq!(webhook_log.bad_signature.load(Ordering::SeqCst), 0, "every webhook call is signed");
    for m in &messages {
        assert_eq!(m.1["chat_id"], CHAT_ID);
    }
    // Telegram's pace: never two messages to the chat within a second.
    let gaps: Vec<f64> = messages.windows(2).map(|w| (w[1].0 - w[0].0).as_secs_f64()).collect();
    let closest = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    println!("  closest two Telegram messages: {closest:.2} s apart");
    assert!(closest >= 1.0, "two messages to one chat within a second: {gaps:?}");
    for e in &emails {
        assert_eq!(e["auth"], SMTP_USER, "the e-mail was sent authenticated");
        assert_eq!(e["to"], json!(["ops@botai.test", "oncall@botai.test"]));
        let subject = e["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("[botai] [CRITICAL] critical_error opened: disk-")
                || subject.starts_with("[botai] [RESOLVED] critical_error resolved: disk-")
                || subject.starts_with("[botai] [SUMMARY] ")
                || subject.contains("high_error_rate"),
            "{subject}"
        );
    }

    // Both daemons took part or stood ready; neither leaked a secret.
    let by: Vec<(String, i64)> = db
        .query("SELECT split_part(claimed_by, ':', 2), count(*) FROM botai.alert_deliveries GROUP BY 1 ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    println!("  deliveries by daemon pid: {by:?}");
    let status = reqwest::get(format!("http://127.0.0.1:{api_port}/api/status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("\"alert_channels\""), "{status}");
    no_secret("/api/status", &status);
    let errors: String = db
        .query_one("SELECT coalesce(string_agg(last_error, ' | '), '') FROM botai.alert_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    no_secret("botai.alert_deliveries.last_error", &errors);
    no_secret("daemon a's log", &a.output());
    no_secret("daemon b's log", &b.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_raised_with_no_daemon_running_is_delivered_and_a_send_killed_midway_is_made_by_another_daemon() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    only_critical_errors(&db, 3600).await;
    // The channel exists (a daemon ran before); no daemon runs now.
    db.query_one("SELECT botai_alert_channel('webhook', ARRAY['critical_error'])", &[]).await.unwrap();
    critical_error(&db, "lonely").await;
    wait_until("the event is owed", Duration::from_secs(30), async || {
        count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE channel = 'webhook' AND status = 'pending'").await
            == 1
    })
    .await;

    let log = Arc::new(WebhookLog::default());
    log.hang_first.store(true, Ordering::SeqCst);
    let mut hooks = Server::new(Router::new().fallback(webhook).with_state(log.clone()));
    hooks.up().await;
    let env = |_: &str| {
        vec![
            ("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:{}/hooks/{WEBHOOK_PATH_TOKEN}", hooks.port)),
            ("ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("ALERT_CLAIM_LEASE", "6".to_owned()),
        ]
    };
    let mut first = Daemon::start("alerts-first", &t.name, &["run", "--mode=api"], &env("first"));
    wait_until("the first daemon sends the event", Duration::from_secs(30), async || {
        !log.seen.lock().unwrap().is_empty()
    })
    .await;
    // Killed while the receiver has the request and has not answered.
    first.kill();
    let killed_at = Instant::now();
    assert!(log.accepted.lock().unwrap().is_empty());
    let second = Daemon::start("alerts-second", &t.name, &["run", "--mode=api"], &env("second"));
    wait_until("another daemon delivers it", Duration::from_secs(30), async || {
        !log.accepted.lock().unwrap().is_empty()
    })
    .await;
    println!(
        "  delivered by the second daemon {:.1} s after the first was killed mid-send",
        killed_at.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = log.accepted.lock().unwrap().clone();
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "accepted once: {accepted:?}");
    assert_eq!(seen.len(), 2, "the receiver saw the same event id twice (the channel's at-least-once): {seen:?}");
    assert_eq!(seen[0], seen[1]);
    let (status, attempts): (String, i32) = {
        let r = db
            .query_one("SELECT status, attempts FROM botai.alert_deliveries WHERE channel = 'webhook'", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((status.as_str(), attempts), ("delivered", 2));
    let _ = second;
}

/// A rule whose action is restart_component ends the stuck component's
/// worker session: a frozen (SIGSTOP) ML manager loses its slot, its standby
/// takes over with a larger epoch, and the frozen one, thawed, finds its
/// session ended and goes back to standby.
#[tokio::test(flavor = "multi_thread")]
async fn restart_component_ends_a_stuck_ml_managers_session_and_its_standby_takes_over() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute(
        "UPDATE botai.alert_rules SET enabled = (rule = 'heartbeat_timeout'); \
         UPDATE botai.alert_rules SET threshold = 3 WHERE rule = 'heartbeat_timeout'",
    )
    .await
    .unwrap();
    let epoch = chrono::Utc::now() + chrono::Duration::seconds(3);
    let env = vec![
        ("REPLAY_EPOCH", epoch.to_rfc3339()),
        ("REPLAY_FROM", "2022-01-12T00:00:00Z".to_owned()),
        ("REPLAY_SPEED", "60".to_owned()),
        ("WORKER_HEARTBEAT_TIMEOUT", "2".to_owned()),
    ];
    let stuck = Daemon::start("ml-stuck", &t.name, &["run", "--mode=ml"], &env);
    stuck.wait_for_output("active ML manager", Duration::from_secs(30)).await;
    let standby = Daemon::start("ml-standby", &t.name, &["run", "--mode=ml"], &env);
    standby.wait_for_output("standing by to take over", Duration::from_secs(30)).await;
    let (first_worker, first_epoch): (String, i64) = {
        let r = db
            .query_one(
                "SELECT worker_id, epoch FROM botai.workers WHERE worker_type = 'ml_manager' AND unregistered_at IS NULL",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };

    let pid = stuck.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let frozen_at = Instant::now();
    standby.wait_for_output("took over as the active ML manager", Duration::from_secs(30)).await;
    println!("  the standby took over {:.1} s after the active manager froze", frozen_at.elapsed().as_secs_f64());
    let (end_reason, restart): (String, Value) = {
        let r = db
            .query_one(
                "SELECT w.end_reason, a.details->'restart' FROM botai.workers w, botai.alerts a \
                 WHERE w.worker_id = $1 AND a.rule = 'heartbeat_timeout' AND a.subject = 'ml_manager' \
                 ORDER BY a.alert_id LIMIT 1",
                &[&first_worker],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(end_reason.starts_with("restarted by the monitor: alert heartbeat_timeout"), "{end_reason}");
    assert_eq!(restart["done"], true, "{restart}");
    assert_eq!(restart["sessions"][0]["worker_id"], first_worker.as_str());
    let epoch_now: i64 = db
        .query_one("SELECT epoch FROM botai.workers WHERE worker_type = 'ml_manager' AND unregistered_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(epoch_now > first_epoch, "the standby's epoch {epoch_now} fences the old {first_epoch}");

    unsafe { libc::kill(pid, libc::SIGCONT) };
    stuck.wait_for_output("back to standby", Duration::from_secs(30)).await;
    let active = count(
        &db,
        "SELECT count(*) FROM botai.workers_status WHERE worker_type = 'ml_manager' AND state IN ('active', 'stale')",
    )
    .await;
    assert_eq!(active, 1, "one active manager after the thaw");
}
