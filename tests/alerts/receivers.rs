//! The receivers, real servers on loopback: an HTTP server answering like
//! the Bot API (429 included), a real SMTP server (aiosmtpd, with AUTH), a
//! webhook receiver that checks the HMAC signature.

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
use botai_tests::{free_port, repo_root};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::*;

/// An HTTP server on a fixed loopback port that can go down and come back.
pub(crate) struct Server {
    pub(crate) port: u16,
    router: Router,
    stop: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Server {
    pub(crate) fn new(router: Router) -> Server {
        Server { port: free_port(), router, stop: None }
    }

    pub(crate) async fn up(&mut self) {
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
    pub(crate) async fn down(&mut self) {
        if let Some((token, task)) = self.stop.take() {
            token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Messages the fake Bot API accepted: (when, body).
#[derive(Default)]
pub(crate) struct TelegramLog {
    pub(crate) accepted: Mutex<Vec<(Instant, Value)>>,
    requests: AtomicU32,
    pub(crate) too_many: AtomicU32,
    pub(crate) bad_token: AtomicU32,
}

/// Answers like the Bot API: `POST /bot<token>/sendMessage`; the first
/// message gets 429 with retry_after, a wrong token 401.
pub(crate) async fn bot_api(State(log): State<Arc<TelegramLog>>, uri: Uri, body: Bytes) -> impl IntoResponse {
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
pub(crate) struct WebhookLog {
    /// Event ids of the calls answered 2xx.
    pub(crate) accepted: Mutex<Vec<i64>>,
    /// Event ids of every call that reached the handler.
    pub(crate) seen: Mutex<Vec<i64>>,
    pub(crate) bad_signature: AtomicU32,
    /// Hold the first call without answering (a daemon killed mid-send).
    pub(crate) hang_first: AtomicBool,
    /// Calls answered 2xx (a summary is one call for many events).
    pub(crate) calls: AtomicU32,
}

fn hmac_hex(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the signature over the raw body, as a receiver would.
pub(crate) async fn webhook(
    State(log): State<Arc<WebhookLog>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
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
pub(crate) struct Smtp {
    pub(crate) port: u16,
    child: Option<std::process::Child>,
    pub(crate) accepted: Arc<Mutex<Vec<Value>>>,
}

impl Smtp {
    pub(crate) fn new() -> Smtp {
        Smtp { port: free_port(), child: None, accepted: Default::default() }
    }

    pub(crate) async fn up(&mut self) {
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

    pub(crate) fn down(&mut self) {
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
