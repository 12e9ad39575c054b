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
mod delivery;
mod email;
mod telegram;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::db::outbox::OutboxSql;
use crate::db::Db;
use crate::env::pg::PgSettings;

pub use config::AlertsConfig;
pub use delivery::{backoff, deliver, ONE_BY_ONE};

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

/// What /api/status shows of the channels this daemon delivers.
pub fn describe(channels: &[Arc<dyn Channel>]) -> Value {
    Value::Array(channels.iter().map(|c| c.describe()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
