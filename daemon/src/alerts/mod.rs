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

use crate::db::outbox::{OutboxSql, OwedEvent};
use crate::db::{self, Db};
use crate::env::pg::PgSettings;
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
    /// Whether a backlog is collapsed into one summary (every channel a
    /// person reads; not the log, which writes each event).
    fn collapses(&self) -> bool {
        true
    }
    /// Sends one event; Ok once the channel has accepted it.
    async fn send(&self, alert: &Alert) -> Result<(), SendError>;
    /// Sends a backlog as one message; Ok once the channel has accepted it.
    async fn send_summary(&self, summary: &Summary) -> Result<(), SendError>;
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

/// Events owed to a channel at once beyond what is sent one by one: one
/// message saying what happened, per rule, and when (Alertmanager groups
/// alerts the same way). The events are in it whole for machines (the
/// webhook's `events`).
#[derive(Debug, Clone)]
pub struct Summary {
    pub events: Vec<Alert>,
}

impl Summary {
    /// Identifies the summary (Message-ID, Idempotency-Key): its events.
    pub fn id(&self) -> String {
        let first = self.events.iter().map(|a| a.event_id).min().unwrap_or(0);
        let last = self.events.iter().map(|a| a.event_id).max().unwrap_or(0);
        format!("summary-{first}-{last}-{}", self.events.len())
    }

    pub fn title(&self) -> String {
        let critical = self.events.iter().filter(|a| a.severity() == "critical" && a.event() == "opened").count();
        let critical = if critical > 0 { format!(", {critical} critical opening(s)") } else { String::new() };
        format!("[SUMMARY] {} alert events{critical}", self.events.len())
    }

    /// (rule, opened, resolved, worst severity), in rule order.
    fn by_rule(&self) -> Vec<(String, usize, usize, String)> {
        let mut rules: std::collections::BTreeMap<String, (usize, usize, String)> = Default::default();
        for a in &self.events {
            let e = rules.entry(a.rule().to_owned()).or_default();
            if a.event() == "resolved" {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
            let rank = |s: &str| ["info", "warning", "critical"].iter().position(|x| *x == s).unwrap_or(0);
            if rank(a.severity()) >= rank(&e.2) {
                e.2 = a.severity().to_owned();
            }
        }
        rules.into_iter().map(|(rule, (o, r, sev))| (rule, o, r, sev)).collect()
    }

    fn span(&self) -> (String, String) {
        let mut times: Vec<&str> = self.events.iter().filter_map(|a| a.doc["occurred_at"].as_str()).collect();
        times.sort_unstable();
        (times.first().unwrap_or(&"?").to_string(), times.last().unwrap_or(&"?").to_string())
    }

    pub fn text(&self) -> String {
        let (oldest, newest) = self.span();
        let mut lines = vec![
            self.title(),
            format!("owed to this channel while deliveries were delayed; oldest {oldest}, newest {newest}"),
        ];
        for (rule, opened, resolved, severity) in self.by_rule() {
            lines.push(format!("{rule} ({severity}): {opened} opened, {resolved} resolved"));
        }
        let subjects: Vec<String> = self
            .events
            .iter()
            .filter(|a| a.event() == "opened")
            .map(|a| format!("{} on {}", a.rule(), a.subject()))
            .take(10)
            .collect();
        if !subjects.is_empty() {
            lines.push(format!("opened: {}", subjects.join("; ")));
        }
        let mut ids: Vec<i64> = self.events.iter().map(|a| a.event_id).collect();
        ids.sort_unstable();
        let listed: Vec<String> = ids.iter().take(200).map(i64::to_string).collect();
        let more = if ids.len() > 200 { format!(" and {} more", ids.len() - 200) } else { String::new() };
        lines.push(format!(
            "botai events {}{more} (SELECT * FROM botai.open_alerts for what is open now)",
            listed.join(", ")
        ));
        lines.join("\n")
    }

    /// The webhook's body: the summary and every event whole.
    pub fn doc(&self) -> Value {
        let (oldest, newest) = self.span();
        json!({
            "summary": true,
            "count": self.events.len(),
            "oldest": oldest,
            "newest": newest,
            "by_rule": self.by_rule().into_iter().map(|(rule, opened, resolved, severity)| json!({
                "rule": rule, "opened": opened, "resolved": resolved, "severity": severity})).collect::<Vec<_>>(),
            "events": self.events.iter().map(|a| a.doc.clone()).collect::<Vec<_>>(),
        })
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

    fn collapses(&self) -> bool {
        false
    }

    async fn send_summary(&self, summary: &Summary) -> Result<(), SendError> {
        for a in &summary.events {
            self.send(a).await?;
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

/// The channels an operator's configuration turns on, with their triggers
/// (None: off). `log` is always on, for every alert.
pub fn wanted(cfg: &AlertsConfig) -> Vec<(&'static str, Option<Vec<String>>)> {
    let triggers = |t: &Vec<String>| {
        let mut t = t.clone();
        t.sort();
        t.dedup();
        t
    };
    vec![
        ("log", Some(vec!["*".to_owned()])),
        ("telegram", cfg.telegram.as_ref().map(|c| triggers(&c.triggers))),
        ("email", cfg.email.as_ref().map(|c| triggers(&c.triggers))),
        ("webhook", cfg.webhook.as_ref().map(|c| triggers(&c.triggers))),
    ]
}

/// `botai alerts apply`, with the operator's connection: makes
/// botai.alert_channels say what the configuration says — a configured
/// channel enabled with its triggers; with `prune`, a channel not
/// configured here disabled (its history stays), else left as it is (the
/// operator need not hold every channel's secret) — and prints each
/// channel's state. Every daemon delivers the enabled channels it holds the
/// secrets of.
pub async fn apply(cfg: &AlertsConfig, pg: &PgSettings, prune: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let db = Db::connect(pg, "botai alerts apply").await?;
    let registered = db.alert_channels().await.context("reading botai.alert_channels")?;
    for (name, triggers) in wanted(cfg) {
        let now = registered.iter().find(|r| r.channel == name);
        match (triggers, now) {
            (Some(t), _) => {
                let changed = now.is_none_or(|r| !r.enabled || r.triggers != t);
                db.alert_channel(name, &t, true).await.map_err(crate::db::DbError::for_operator)?;
                let what = if changed { "enabled" } else { "unchanged" };
                println!("{name:<9} {what} (triggers: {})", t.join(", "));
            }
            (None, Some(r)) if r.enabled && prune => {
                db.alert_channel(name, &r.triggers, false).await.map_err(crate::db::DbError::for_operator)?;
                println!("{name:<9} disabled (not configured here; its history stays)");
            }
            (None, Some(r)) if r.enabled => println!(
                "{name:<9} enabled, not configured here: left as it is (`botai alerts apply --prune` disables it)"
            ),
            (None, _) => println!("{name:<9} off"),
        }
    }
    Ok(())
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
    let claimer = format!("{}:{}:{:08x}", crate::env::hostname(), std::process::id(), rand_u32());
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
        // Which channels are owed events is the operator's decision
        // (`botai alerts apply`): this daemon only says when it holds a
        // channel's secrets that nobody enabled, or takes other triggers.
        let mut backoff = Duration::from_millis(500);
        loop {
            let registered = async { db::pooled(&self.pool).await?.alert_channels().await }.await;
            match registered {
                Ok(rows) => {
                    let mut triggers = self.channel.triggers();
                    triggers.sort();
                    triggers.dedup();
                    match rows.iter().find(|r| r.channel == name) {
                        Some(r) if r.enabled => {
                            if name != "log" && r.triggers != triggers {
                                warn!(
                                    "{name}: this daemon's configuration says triggers {triggers:?}, botai.alert_channels \
                                     {:?} (applied by an operator), which decide",
                                    r.triggers
                                );
                            }
                            info!("delivering alerts to {name} (triggers: {})", r.triggers.join(", "));
                        }
                        _ => warn!(
                            "{name} is configured here but not enabled in botai.alert_channels: no event is owed to it \
                             until an operator runs `botai alerts apply`"
                        ),
                    }
                    break;
                }
                Err(e) => {
                    warn!(channel = name, "cannot read the alert channels (again in {backoff:?}): {e}");
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
    ///
    /// The claim comes most urgent first (critical openings, newest first).
    /// Up to [`ONE_BY_ONE`] events are sent one by one; when more are owed
    /// (a receiver that was down, a storm), the critical openings among the
    /// first [`ONE_BY_ONE`] still go alone and everything else goes in one
    /// summary, so no event waits behind more than that many others.
    async fn round(&self, stop: &CancellationToken) -> Result<Option<Duration>, db::DbError> {
        let name = self.channel.name();
        let conn = db::pooled(&self.pool).await?;
        let owed = conn.alert_claim(name, &self.claimer, CLAIM_AT_ONCE, self.lease).await?;
        if owed.is_empty() {
            let next = conn.alert_next_due(name).await?;
            return Ok(Some(next.map_or(IDLE, |d| d.min(IDLE).max(Duration::from_millis(50)))));
        }
        drop(conn);
        let owed: Vec<(Alert, i32)> = owed
            .into_iter()
            .map(|OwedEvent { event_id, attempts, alert }| (Alert { event_id, doc: alert }, attempts))
            .collect();
        let collapse = self.channel.collapses() && owed.len() > ONE_BY_ONE;
        let (alone, rest): (Vec<_>, Vec<_>) = owed.into_iter().enumerate().partition(|(i, (a, _))| {
            !collapse || (*i < ONE_BY_ONE && a.severity() == "critical" && a.event() == "opened")
        });
        let mut sends: Vec<Vec<(Alert, i32)>> = alone.into_iter().map(|(_, e)| vec![e]).collect();
        if !rest.is_empty() {
            sends.push(rest.into_iter().map(|(_, e)| e).collect());
        }
        // Everything claimed is sent, or given back, within three quarters
        // of the lease: no other deliverer takes a claim while this one may
        // still send it. The first failure ends the round (the channel is
        // down, or refuses): what is left is due again with the same wait.
        let deadline = tokio::time::Instant::now() + self.lease * 3 / 4;
        let mut sends = sends.into_iter();
        while let Some(events) = sends.next() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if stop.is_cancelled() || left.is_zero() {
                let unsent: Vec<(Alert, i32)> = std::iter::once(events).chain(sends).flatten().collect();
                let why = if stop.is_cancelled() { "the daemon is stopping" } else { "the round ran out of its lease" };
                self.give_back(&unsent, why).await?;
                return Ok(None);
            }
            let limit = left.min(self.lease / 2);
            let send = async {
                if events.len() == 1 {
                    self.channel.send(&events[0].0).await
                } else {
                    let summary = Summary { events: events.iter().map(|(a, _)| a.clone()).collect() };
                    info!(channel = name, events = events.len(), "a backlog of alert events goes as one summary");
                    self.channel.send_summary(&summary).await
                }
            };
            let sent = match tokio::time::timeout(limit, send).await {
                Ok(r) => r,
                Err(_) => Err(SendError::new(format!("no answer within {limit:?}"))),
            };
            let failed =
                sent.as_ref().err().map(|e| e.retry_after.unwrap_or_else(|| backoff(events[0].1, self.retry_max)));
            self.record(&events, sent).await?;
            if let Some(wait) = failed {
                let unsent: Vec<(Alert, i32)> = sends.flatten().collect();
                if !unsent.is_empty() {
                    self.give_back_after(&unsent, "not sent: the channel failed on an earlier event", wait).await?;
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Gives claimed events back unsent, due now.
    async fn give_back(&self, events: &[(Alert, i32)], why: &str) -> Result<(), db::DbError> {
        self.give_back_after(events, why, Duration::ZERO).await
    }

    /// Gives claimed events back unsent, due after `wait`.
    async fn give_back_after(&self, events: &[(Alert, i32)], why: &str, wait: Duration) -> Result<(), db::DbError> {
        let name = self.channel.name();
        let conn = db::pooled(&self.pool).await?;
        for (alert, _) in events {
            conn.alert_failed(alert.event_id, name, &self.claimer, why, wait).await?;
        }
        Ok(())
    }

    /// Records what came of sending `events` (one event, or a summary).
    async fn record(&self, events: &[(Alert, i32)], sent: Result<(), SendError>) -> Result<(), db::DbError> {
        let name = self.channel.name();
        let conn = db::pooled(&self.pool).await?;
        match sent {
            Ok(()) => {
                let ids: Vec<i64> = events.iter().map(|(a, _)| a.event_id).collect();
                for _ in &ids {
                    self.telemetry.alert_delivery(name, "delivered");
                }
                let recorded = conn.alert_delivered_many(&ids, name, &self.claimer).await?;
                if recorded < ids.len() {
                    warn!(
                        channel = name,
                        events = ids.len() - recorded,
                        "delivered after the claim lapsed: another daemon may send them too"
                    );
                }
            }
            Err(e) => {
                for (alert, attempts) in events {
                    self.telemetry.alert_delivery(name, "failed");
                    let wait = e.retry_after.unwrap_or_else(|| backoff(*attempts, self.retry_max));
                    warn!(
                        channel = name,
                        event_id = alert.event_id,
                        attempts,
                        "alert not delivered (again in {wait:?}): {}",
                        e.message
                    );
                    conn.alert_failed(alert.event_id, name, &self.claimer, &e.message, wait).await?;
                }
            }
        }
        Ok(())
    }
}

/// Events sent one by one in a round; more owed at once are a backlog.
pub const ONE_BY_ONE: usize = 3;
/// Events claimed in a round: a summary carries at most this many less
/// [`ONE_BY_ONE`] (a webhook's body stays well under a receiver's usual
/// 1 MB limit); a larger backlog takes another summary the next round.
const CLAIM_AT_ONCE: i32 = 100;

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
    fn a_summary_counts_each_rule_and_names_every_event() {
        let event = |id: i64, rule: &str, event: &str, severity: &str, at: &str| Alert {
            event_id: id,
            doc: json!({"event": event, "rule": rule, "subject": "s", "severity": severity, "occurred_at": at}),
        };
        let s = Summary {
            events: vec![
                event(12, "high_error_rate", "opened", "warning", "2026-12-07T10:00:05Z"),
                event(10, "worker_offline", "opened", "critical", "2026-12-07T10:00:01Z"),
                event(11, "worker_offline", "resolved", "critical", "2026-12-07T10:00:03Z"),
            ],
        };
        let text = s.text();
        assert!(text.starts_with("[SUMMARY] 3 alert events, 1 critical opening(s)\n"), "{text}");
        assert!(text.contains("oldest 2026-12-07T10:00:01Z, newest 2026-12-07T10:00:05Z"), "{text}");
        assert!(text.contains("worker_offline (critical): 1 opened, 1 resolved"), "{text}");
        assert!(text.contains("high_error_rate (warning): 1 opened, 0 resolved"), "{text}");
        assert!(text.contains("botai events 10, 11, 12 "), "{text}");
        assert_eq!(s.id(), "summary-10-12-3");
        assert_eq!(s.doc()["events"].as_array().unwrap().len(), 3);
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
