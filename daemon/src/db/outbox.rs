//! The alert delivery outbox (extension 0.5.0): one typed wrapper per SQL
//! function.

use std::time::Duration;

use serde_json::Value;

use super::functions::Sql;
use super::value::{Cell, Json};
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

/// A row of botai.alert_channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub channel: String,
    pub triggers: Vec<String>,
    pub enabled: bool,
}

#[allow(async_fn_in_trait)]
pub trait OutboxSql {
    /// Every registered channel.
    async fn alert_channels(&self) -> Result<Vec<ChannelRow>>;
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
    /// The channel accepted every one of the events (a summary); how many
    /// were still this claimer's.
    async fn alert_delivered_many(&self, event_ids: &[i64], channel: &str, claimer: &str) -> Result<usize>;
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
    async fn alert_channels(&self) -> Result<Vec<ChannelRow>> {
        let c = "botai.alert_channels";
        self.q_all(c, "SELECT channel, triggers, enabled FROM botai.alert_channels ORDER BY channel", &[])
            .await?
            .iter()
            .map(|r| Ok(ChannelRow { channel: r.col(0, c)?, triggers: r.col(1, c)?, enabled: r.col(2, c)? }))
            .collect()
    }

    async fn alert_channel(&self, channel: &str, triggers: &[String], enabled: bool) -> Result<bool> {
        let row = self
            .q_one("botai_alert_channel", "SELECT botai_alert_channel($1, $2, $3)", &[&channel, &triggers, &enabled])
            .await?;
        row.col(0, "botai_alert_channel")
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
        let c = "botai_alert_claim";
        rows.iter()
            .map(|r| Ok(OwedEvent { event_id: r.col(0, c)?, attempts: r.col(1, c)?, alert: r.col::<Json>(2, c)?.0 }))
            .collect()
    }

    async fn alert_delivered(&self, event_id: i64, channel: &str, claimer: &str) -> Result<bool> {
        let row = self
            .q_one(
                "botai_alert_delivered",
                "SELECT botai_alert_delivered($1, $2, $3)",
                &[&event_id, &channel, &claimer],
            )
            .await?;
        row.col(0, "botai_alert_delivered")
    }

    async fn alert_delivered_many(&self, event_ids: &[i64], channel: &str, claimer: &str) -> Result<usize> {
        let c = "botai_alert_delivered";
        let row = self
            .q_one(
                c,
                "SELECT count(*) FILTER (WHERE botai_alert_delivered(e, $2, $3)) FROM unnest($1::bigint[]) AS e",
                &[&event_ids, &channel, &claimer],
            )
            .await?;
        Ok(usize::try_from(row.col::<i64>(0, c)?).unwrap_or(0))
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
        row.col(0, "botai_alert_failed")
    }

    async fn alert_next_due(&self, channel: &str) -> Result<Option<Duration>> {
        let row = self.q_one("botai_alert_next_due", "SELECT botai_alert_next_due($1)", &[&channel]).await?;
        let seconds: Option<f64> = row.col(0, "botai_alert_next_due")?;
        Ok(seconds.filter(|s| s.is_finite()).map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))))
    }
}
