//! The dashboard pushed, not polled: one LISTEN connection per API process
//! hears every change botai announces (an alert, a heartbeat that changes a
//! component's status, the trading state, an order, a signal); within
//! [`QUIET`] of one the dashboard document is read once and pushed to every
//! `GET /api/events` client (Server-Sent Events, event `status`). With no
//! client connected nothing is read. What only time changes (a component
//! going quiet, uptime) is read again every [`REFRESH`]; a component that
//! goes quiet also opens an alert, which is announced.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{status_doc, Api};
use crate::db::Db;
use crate::env::pg::PgSettings;

/// The channels whose notifications mean the dashboard changed.
const CHANNELS: &[&str] = &["botai_alerts", "botai_heartbeats", "botai_trading_state", "botai_orders", "botai_signals"];
/// The longest a change waits before it is pushed; also the shortest time
/// between two pushes (at most five a second, however busy the system).
pub const QUIET: Duration = Duration::from_millis(200);
/// How often the document is read again without being told of a change.
const REFRESH: Duration = Duration::from_secs(5);

/// The latest dashboard document, as JSON text, for every client.
#[derive(Clone)]
pub struct Feed {
    doc: Arc<watch::Sender<Option<Arc<str>>>>,
    stop: CancellationToken,
}

impl Feed {
    pub fn new(stop: CancellationToken) -> Feed {
        Feed { doc: Arc::new(watch::channel(None).0), stop }
    }
}

/// Keeps the feed current until `stop`.
pub async fn run(api: Api, pg: PgSettings) {
    let stop = api.live.stop.clone();
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let connected = async {
            let mut db = Db::connect(&pg, "botai dashboard").await?;
            for c in CHANNELS {
                db.listen(c).await?;
            }
            Ok::<_, crate::db::DbError>((db.take_notifications(), db))
        }
        .await;
        let (mut notifications, db) = match connected {
            Ok(c) => c,
            Err(e) => {
                warn!("the dashboard feed cannot listen (again in {backoff:?}): {e}");
                let doc = serde_json::json!({"error": format!("database unreachable: {e}")}).to_string();
                api.live.doc.send_replace(Some(doc.into()));
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        let mut dirty = true;
        let mut push = tokio::time::interval(QUIET);
        let mut refresh = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = db.closed() => break,
                n = notifications.recv() => {
                    if n.is_none() { break }
                    dirty = true;
                }
                _ = refresh.tick() => dirty = true,
                _ = push.tick() => {
                    if dirty && api.live.doc.receiver_count() > 0 {
                        dirty = false;
                        let doc = match status_doc(&api).await {
                            Ok(doc) => doc.to_string(),
                            Err(e) => serde_json::json!({"error": e.to_string()}).to_string(),
                        };
                        api.live.doc.send_replace(Some(doc.into()));
                    }
                }
            }
        }
        warn!("the dashboard feed lost its LISTEN connection; reconnecting");
    }
}

/// `GET /api/events`: the dashboard document now, then after every change.
pub async fn events(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (rx, stop) = (api.live.doc.subscribe(), api.live.stop.clone());
    let stream = futures_util::stream::unfold((rx, stop, true), |(mut rx, stop, mut first)| async move {
        loop {
            if !first {
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    changed = rx.changed() => changed.ok()?,
                }
            }
            first = false;
            let doc = rx.borrow_and_update().clone();
            if let Some(doc) = doc {
                return Some((Ok(Event::default().event("status").data(&*doc)), (rx, stop, false)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
