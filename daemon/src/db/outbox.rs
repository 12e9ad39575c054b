//! The alert delivery outbox (extension 0.5.0): one typed wrapper per SQL
//! function.

use std::time::Duration;

use serde_json::Value;

use super::functions::Sql;
use super::Result;

/// An alert event owed to a channel, claimed for one attempt.
#[derive(Debug, Clone)]
pub struct OwedEvent {
    pub event_id: i64,
    /// This attempt's number, 1 for the first.
    pub attempts: i32,
    /// The alert as botai.alerts has it now, with `event` (opened or
    /// resolved), `event_id`, `occurred_at` and the rule's `kind`.
    pub alert: Value,
}

fn interval(d: Duration) -> String {
    format!("{:.3} seconds", d.as_secs_f64())
}

#[allow(async_fn_in_trait)]
pub trait OutboxSql {
    /// Registers the channel with the trigger names it takes; true when new.
    async fn alert_channel(&self, channel: &str, triggers: &[String], enabled: bool) -> Result<bool>;
    /// Claims up to `max_events` due deliveries of the channel for `lease`.
    async fn alert_claim(
        &self,
        channel: &str,
        claimer: &str,
        max_events: i32,
        lease: Duration,
    ) -> Result<Vec<OwedEvent>>;
    /// The channel accepted the event; false when the claim was lost.
    async fn alert_delivered(&self, event_id: i64, channel: &str, claimer: &str) -> Result<bool>;
    /// The channel refused or failed; due again after `retry_in`.
    async fn alert_failed(
        &self,
        event_id: i64,
        channel: &str,
        claimer: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<bool>;
    /// How long until the channel's next delivery is due; None when none is owed.
    async fn alert_next_due(&self, channel: &str) -> Result<Option<Duration>>;
}

impl<C: Sql> OutboxSql for C {
    async fn alert_channel(&self, channel: &str, triggers: &[String], enabled: bool) -> Result<bool> {
        let row = self
            .q_one("botai_alert_channel", "SELECT botai_alert_channel($1, $2, $3)", &[&channel, &triggers, &enabled])
            .await?;
        Ok(row.get(0))
    }

    async fn alert_claim(
        &self,
        channel: &str,
        claimer: &str,
        max_events: i32,
        lease: Duration,
    ) -> Result<Vec<OwedEvent>> {
        let rows = self
            .q_all(
                "botai_alert_claim",
                "SELECT event_id, attempts, alert FROM botai_alert_claim($1, $2, $3, $4::text::interval)",
                &[&channel, &claimer, &max_events, &interval(lease)],
            )
            .await?;
        Ok(rows.iter().map(|r| OwedEvent { event_id: r.get(0), attempts: r.get(1), alert: r.get(2) }).collect())
    }

    async fn alert_delivered(&self, event_id: i64, channel: &str, claimer: &str) -> Result<bool> {
        let row = self
            .q_one(
                "botai_alert_delivered",
                "SELECT botai_alert_delivered($1, $2, $3)",
                &[&event_id, &channel, &claimer],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn alert_failed(
        &self,
        event_id: i64,
        channel: &str,
        claimer: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<bool> {
        let row = self
            .q_one(
                "botai_alert_failed",
                "SELECT botai_alert_failed($1, $2, $3, $4, $5::text::interval)",
                &[&event_id, &channel, &claimer, &error, &interval(retry_in)],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn alert_next_due(&self, channel: &str) -> Result<Option<Duration>> {
        let row = self.q_one("botai_alert_next_due", "SELECT botai_alert_next_due($1)", &[&channel]).await?;
        Ok(row.get::<_, Option<f64>>(0).map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))))
    }
}
