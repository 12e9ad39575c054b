//! Alert delivery: what the extension's monitor decides reaches people.
//!
//! Every opening and resolution of an alert is an event the monitor writes
//! with the change (`botai.alert_events`), and in the same transaction owes
//! to every registered channel (`botai.alert_deliveries`, the outbox). Each
//! daemon running the API delivers the channels it is configured for: it
//! claims due deliveries with `SKIP LOCKED` for a lease, sends, and marks
//! them delivered, or failed with the time of the next attempt (a backoff,
//! or the channel's own `retry_after`), all kept in PostgreSQL. So however
//! many daemons run, an event goes to a channel once; one raised while none
//! runs goes when one starts; a daemon killed mid-send leaves its claim to
//! lapse and another sends it (the channel's own at-least-once: it may see
//! that event twice, with the same event id). `NOTIFY botai_alerts` only
//! wakes the deliverers: what they send is read from `botai.alerts`, so a
//! forged notification sends nothing.
//!
//! Channels: `log` (always: one log line per event, from one daemon),
//! `telegram`, `email`, `webhook` (config.rs says how to turn each on).

pub mod config;
mod email;
mod telegram;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::PgSettings;
use crate::db::outbox::{OutboxSql, OwedEvent};
use crate::db::{self, Db};
use crate::telemetry::Telemetry;

pub use config::AlertsConfig;

/// The longest a deliverer sleeps without looking (a missed wake-up, a
/// delivery another daemon gave back).
const IDLE: Duration = Duration::from_secs(30);

/// Why a channel did not take an event.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong, never carrying a secret.
    pub message: String,
    /// When the channel said to come back (Telegram's retry_after, an HTTP
    /// Retry-After); otherwise the backoff decides.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), retry_after: None }
    }
}

/// A place alerts go.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Its name in botai.alert_channels.
    fn name(&self) -> &'static str;
    /// The triggers it takes (config::TRIGGERS).
    fn triggers(&self) -> Vec<String>;
    /// Events claimed at once: 1 for a channel that paces its sends.
    fn batch(&self) -> i32 {
        10
    }
    /// Sends one event; Ok once the channel has accepted it.
    async fn send(&self, alert: &Alert) -> Result<(), SendError>;
    /// What /api/status shows of it: never a secret.
    fn describe(&self) -> Value;
}

/// One alert event as claimed: the alert row with its event.
#[derive(Debug, Clone)]
pub struct Alert {
    pub event_id: i64,
    pub doc: Value,
}

impl Alert {
    fn str(&self, key: &str) -> &str {
        self.doc[key].as_str().unwrap_or("")
    }

    pub fn event(&self) -> &str {
        self.str("event")
    }

    pub fn rule(&self) -> &str {
        self.str("rule")
    }

    pub fn subject(&self) -> &str {
        self.str("subject")
    }

    pub fn severity(&self) -> &str {
        self.str("severity")
    }

    /// One line: `[CRITICAL] heartbeat_timeout opened: ml_manager`.
    pub fn title(&self) -> String {
        let tag = if self.event() == "resolved" { "RESOLVED".to_owned() } else { self.severity().to_uppercase() };
        format!("[{tag}] {} {}: {}", self.rule(), self.event(), self.subject())
    }

    /// The message people read: the title, what was measured, what was
    /// done, and where to look.
    pub fn text(&self) -> String {
        let d = &self.doc;
        let mut lines = vec![self.title()];
        if let Some(v) = d["value"].as_f64() {
            lines.push(format!("value: {}", (v * 1000.0).round() / 1000.0));
        }
        let action = self.str("action");
        if self.event() == "opened" && !action.is_empty() && action != "notify" {
            lines.push(format!("action: {action}"));
        }
        if let Some(details) = d.get("details").filter(|v| !v.is_null()) {
            let mut s = details.to_string();
            if s.len() > 1500 {
                let cut = (0..=1500).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                s.truncate(cut);
                s.push('…');
            }
            lines.push(format!("details: {s}"));
        }
        let at = if self.event() == "resolved" { &d["resolved_at"] } else { &d["opened_at"] };
        lines.push(format!(
            "botai alert {} (event {}) at {}",
            d["alert_id"],
            self.event_id,
            at.as_str().unwrap_or("?")
        ));
        lines.join("\n")
    }
}

/// The `log` channel: one line per event, at error level for a critical
/// opening (so it also reaches the errors file).
struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    fn triggers(&self) -> Vec<String> {
        vec!["*".to_owned()]
    }

    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        let (rule, subject, event_id) = (alert.rule(), alert.subject(), alert.event_id);
        match (alert.event(), alert.severity()) {
            ("opened", "critical") => {
                error!(rule, subject, event_id, action = alert.str("action"), details = %alert.doc["details"], "ALERT opened")
            }
            ("opened", severity) => {
                warn!(rule, subject, event_id, severity, details = %alert.doc["details"], "alert opened")
            }
            _ => info!(rule, subject, event_id, "alert resolved"),
        }
        Ok(())
    }

    fn describe(&self) -> Value {
        json!({"channel": "log"})
    }
}

/// The channels this daemon delivers, from its configuration.
pub fn channels(cfg: &AlertsConfig, pool: &Pool) -> anyhow::Result<Vec<Arc<dyn Channel>>> {
    let mut out: Vec<Arc<dyn Channel>> = vec![Arc::new(LogChannel)];
    if let Some(t) = &cfg.telegram {
        out.push(Arc::new(telegram::Telegram::new(t.clone(), pool.clone())?));
    }
    if let Some(e) = &cfg.email {
        out.push(Arc::new(email::Email::new(e.clone())?));
    }
    if let Some(w) = &cfg.webhook {
        out.push(Arc::new(webhook::Webhook::new(w.clone())?));
    }
    Ok(out)
}

/// The wait before attempt `attempts + 1` when the channel named none:
/// 1 s, 2 s, 4 s … up to `max`.
pub fn backoff(attempts: i32, max: Duration) -> Duration {
    let exp = attempts.clamp(1, 20) - 1;
    Duration::from_secs(1u64 << exp).min(max)
}

/// Delivers the channels until `stop`.
pub async fn deliver(
    cfg: AlertsConfig,
    pg: PgSettings,
    pool: Pool,
    channels: Vec<Arc<dyn Channel>>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) {
    let claimer = format!("{}:{}:{:08x}", crate::config::hostname(), std::process::id(), rand_u32());
    let wakes: Vec<Arc<Notify>> = channels.iter().map(|_| Arc::new(Notify::new())).collect();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (pg, wakes, stop) = (pg.clone(), wakes.clone(), stop.clone());
        tasks.spawn(async move { listen(pg, wakes, stop).await });
    }
    for (channel, wake) in channels.into_iter().zip(wakes) {
        let worker = ChannelWorker {
            channel,
            pool: pool.clone(),
            claimer: claimer.clone(),
            retry_max: cfg.retry_max,
            lease: cfg.lease,
            wake,
            telemetry: telemetry.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move { worker.run(stop).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// Wakes every channel on `NOTIFY botai_alerts`, and once after each
/// (re)connection, when notifications may have been missed. The payload
/// is not trusted: it only says "look".
async fn listen(pg: PgSettings, wakes: Vec<Arc<Notify>>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let connected = async {
            let mut db = Db::connect(&pg, "botai alerts").await?;
            db.listen("botai_alerts").await?;
            Ok::<_, db::DbError>((db.take_notifications(), db))
        }
        .await;
        let (mut notifications, db) = match connected {
            Ok(c) => c,
            Err(e) => {
                warn!("alert delivery cannot listen for alerts (again in {backoff:?}): {e}");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        wakes.iter().for_each(|w| w.notify_one());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = db.closed() => { warn!("alert delivery lost its LISTEN connection; reconnecting"); break; }
                n = notifications.recv() => {
                    if n.is_none() { break }
                    wakes.iter().for_each(|w| w.notify_one());
                }
            }
        }
        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
    }
}

struct ChannelWorker {
    channel: Arc<dyn Channel>,
    pool: Pool,
    claimer: String,
    retry_max: Duration,
    /// How long a claim keeps other deliverers off an event: twice the
    /// longest a send may take.
    lease: Duration,
    wake: Arc<Notify>,
    telemetry: Arc<Telemetry>,
}

impl ChannelWorker {
    async fn run(self, stop: CancellationToken) {
        let name = self.channel.name();
        // Registered first: from then on every event it takes is owed to it.
        let mut backoff = Duration::from_millis(500);
        loop {
            let registered = async {
                let conn = db::pooled(&self.pool).await?;
                conn.alert_channel(name, &self.channel.triggers(), true).await
            }
            .await;
            match registered {
                Ok(new) => {
                    let triggers = self.channel.triggers().join(", ");
                    info!(new, "delivering alerts to {name} (triggers: {triggers})");
                    break;
                }
                Err(e) => {
                    warn!(channel = name, "cannot register the alert channel (again in {backoff:?}): {e}");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        let mut db_backoff = Duration::from_millis(500);
        while !stop.is_cancelled() {
            match self.round(&stop).await {
                Ok(Some(idle)) => {
                    db_backoff = Duration::from_millis(500);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(idle) => {}
                    }
                }
                Ok(None) => db_backoff = Duration::from_millis(500),
                Err(e) => {
                    warn!(channel = name, "alert delivery cannot reach the outbox (again in {db_backoff:?}): {e}");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(db_backoff) => {} }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Claims and sends what is due. Some(wait) when nothing was: how long
    /// until something is.
    async fn round(&self, stop: &CancellationToken) -> Result<Option<Duration>, db::DbError> {
        let name = self.channel.name();
        let conn = db::pooled(&self.pool).await?;
        let owed = conn.alert_claim(name, &self.claimer, self.channel.batch(), self.lease).await?;
        if owed.is_empty() {
            let next = conn.alert_next_due(name).await?;
            return Ok(Some(next.map_or(IDLE, |d| d.min(IDLE).max(Duration::from_millis(50)))));
        }
        drop(conn);
        for OwedEvent { event_id, attempts, alert } in owed {
            if stop.is_cancelled() {
                // Not sent: the claim lapses and it is sent later.
                break;
            }
            let alert = Alert { event_id, doc: alert };
            let limit = self.lease / 2;
            let sent = match tokio::time::timeout(limit, self.channel.send(&alert)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::new(format!("no answer within {limit:?}"))),
            };
            let conn = db::pooled(&self.pool).await?;
            match sent {
                Ok(()) => {
                    self.telemetry.alert_delivery(name, "delivered");
                    if !conn.alert_delivered(event_id, name, &self.claimer).await? {
                        warn!(
                            channel = name,
                            event_id, "delivered after its claim lapsed: another daemon may send it too"
                        );
                    }
                }
                Err(e) => {
                    self.telemetry.alert_delivery(name, "failed");
                    let wait = e.retry_after.unwrap_or_else(|| backoff(attempts, self.retry_max));
                    warn!(channel = name, event_id, attempts, "alert not delivered (again in {wait:?}): {}", e.message);
                    conn.alert_failed(event_id, name, &self.claimer, &e.message, wait).await?;
                }
            }
        }
        Ok(None)
    }
}

fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

/// What /api/status shows of the channels this daemon delivers.
pub fn describe(channels: &[Arc<dyn Channel>]) -> Value {
    Value::Array(channels.iter().map(|c| c.describe()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(i32::MAX, max), max);
    }

    #[test]
    fn the_text_names_the_alert_and_its_event() {
        let a = Alert {
            event_id: 7,
            doc: json!({"event": "opened", "rule": "heartbeat_timeout", "subject": "ml_manager", "severity": "critical",
                        "action": "restart_component", "value": 130.25, "details": {"x": 1}, "alert_id": 3,
                        "opened_at": "2026-12-02T10:00:00Z"}),
        };
        let t = a.text();
        assert!(t.starts_with("[CRITICAL] heartbeat_timeout opened: ml_manager\n"), "{t}");
        assert!(t.contains("action: restart_component") && t.contains("event 7"), "{t}");
    }
}
