//! Alert delivery: listens to `NOTIFY botai_alerts` (sent by the extension's
//! monitor on every open and resolve) and delivers each alert: a log line
//! (critical ones at error level, so they also reach the errors file), the
//! dashboard's list, and ALERT_WEBHOOK_URL when set (JSON POST). Reconnects
//! when its connection drops; alerts raised meanwhile stay open in
//! botai.alerts and show in /health.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::PgSettings;
use crate::db::Db;

/// The last alerts delivered, newest first.
#[derive(Default)]
pub struct Recent(Mutex<VecDeque<Value>>);

impl Recent {
    fn push(&self, alert: Value) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.push_front(alert);
        q.truncate(50);
    }

    pub fn list(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

pub async fn deliver(pg: PgSettings, webhook: Option<String>, recent: std::sync::Arc<Recent>, stop: CancellationToken) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok();
    while !stop.is_cancelled() {
        let mut db = match Db::connect(&pg, "botai alerts").await {
            Ok(db) => db,
            Err(e) => {
                warn!("alert delivery cannot reach the database: {e}");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(2)) => continue }
            }
        };
        if let Err(e) = db.listen("botai_alerts").await {
            warn!("alert delivery cannot LISTEN: {e}");
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(2)) => continue }
        }
        let mut notifications = db.take_notifications();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = db.closed() => { warn!("alert delivery lost its connection; reconnecting"); break; }
                n = notifications.recv() => {
                    let Some(n) = n else { break };
                    let Some(alert) = verified(&db, n.payload()).await else { continue };
                    let (event, rule, subject, severity) =
                        (&alert["event"], &alert["rule"], &alert["subject"], alert["severity"].as_str().unwrap_or(""));
                    match (event.as_str(), severity) {
                        (Some("opened"), "critical") => error!(%rule, %subject, action = %alert["action"], "ALERT opened"),
                        (Some("opened"), _) => warn!(%rule, %subject, severity, "alert opened"),
                        _ => info!(%rule, %subject, "alert resolved"),
                    }
                    recent.push(alert.clone());
                    if let (Some(url), Some(http)) = (&webhook, &http) {
                        if let Err(e) = http.post(url).json(&alert).send().await.and_then(|r| r.error_for_status()) {
                            // The URL may carry a token: never in the logs.
                            warn!("alert webhook failed: {}", e.without_url());
                        }
                    }
                }
            }
        }
    }
}

/// The alert a notification announces, read from botai.alerts: anyone may
/// `NOTIFY botai_alerts` with any text, so the payload only says which
/// alert changed (its id and event); what is delivered is the row. A
/// payload naming no alert, or an event the row does not bear out, is
/// logged and dropped.
async fn verified(db: &Db, payload: &str) -> Option<Value> {
    let announced: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let (Some(id), Some(event)) = (announced["alert_id"].as_i64(), announced["event"].as_str()) else {
        warn!(payload_bytes = payload.len(), "ignoring a botai_alerts notification that names no alert");
        return None;
    };
    let mut row = match db.alert(id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            warn!(alert_id = id, "ignoring a botai_alerts notification for an alert that does not exist");
            return None;
        }
        Err(e) => {
            warn!(alert_id = id, "cannot check a botai_alerts notification: {e}");
            return None;
        }
    };
    let consistent = match event {
        "opened" => true, // it may have resolved since; the opening happened
        "resolved" => row["status"] == "resolved",
        _ => false,
    };
    if !consistent {
        warn!(alert_id = id, event, "ignoring a botai_alerts notification the alert row does not bear out");
        return None;
    }
    row["event"] = Value::String(event.to_owned());
    Some(row)
}
