//! The deliverers: a worker per channel claims the deliveries due to it
//! from the outbox (`SKIP LOCKED`, for a lease), sends them — one by one,
//! or a backlog as one summary — and records each outcome; a listener
//! wakes the workers on `NOTIFY botai_alerts`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Alert, AlertsConfig, Channel, SendError, Summary};
use crate::db::outbox::{OutboxSql, OwedEvent};
use crate::db::{self, Db};
use crate::env::pg::PgSettings;
use crate::telemetry::Telemetry;

/// The longest a deliverer sleeps without looking (a missed wake-up, a
/// delivery another daemon gave back).
const IDLE: Duration = Duration::from_secs(30);

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
}
