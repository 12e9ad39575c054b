//! The HTTP API (`--mode=api`, and part of `all`): `GET /health` (the
//! seed's health document from botai, plus the daemon's own state),
//! `GET /health/live` and `GET /health/ready` (probes for systemd and
//! Kubernetes), `GET /metrics` (the extension's metrics and the daemon's
//! own, Prometheus text), `GET /api/status` (the dashboard's document), and
//! the dashboard at `/`, pushed over Server-Sent Events (`GET /api/events`,
//! live.rs).

pub mod access;
pub mod config;
pub mod live;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::api::config::ApiConfig;
use crate::db::dashboard::DashboardSql;
use crate::db::{self, MonitorCalls};
use crate::market::replay::Replay;
use crate::sim::paper::PaperExchange;
use crate::telemetry::Telemetry;

/// What the API shows of this process.
pub struct RunState {
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub replay: Option<Arc<Replay>>,
    pub paper: Option<Arc<PaperExchange>>,
    /// (market time, equity) samples of this run.
    pub equity: Mutex<Vec<(DateTime<Utc>, f64)>>,
    /// The account at each sample (for the report: price and exposure too).
    pub marks: Mutex<Vec<crate::report::Mark>>,
    /// What this daemon delivers alerts to (described without secrets).
    pub alert_channels: Value,
}

#[derive(Clone)]
pub struct Api {
    pub pool: Pool,
    pub telemetry: Arc<Telemetry>,
    pub run: Arc<RunState>,
    /// The dashboard document, pushed to every `/api/events` client.
    pub live: live::Feed,
}

/// The routes; the dashboard and `/api/*` behind `gate` (access.rs).
pub fn router(api: Api, gate: access::Gate) -> Router {
    // Balances, positions and orders: the dashboard, its document, and the
    // metrics (which carry them too) need the token off loopback.
    let guarded = Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status))
        .route("/api/events", get(live::events))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(gate, access::require_token));
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .merge(guarded)
        .with_state(api)
}

pub async fn serve(api: Api, cfg: ApiConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let listen = cfg.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("the HTTP API cannot listen on {listen}: {e}"))?;
    let guarded = if cfg.needs_token() { "; the dashboard, /api/* and /metrics need API_TOKEN" } else { "" };
    tracing::info!(
        max_connections = cfg.max_connections,
        header_timeout = ?cfg.header_timeout,
        "HTTP API and dashboard on http://{listen}/{guarded}"
    );
    let router = router(api, access::Gate::new(&cfg));
    access::serve(listener, router, &cfg, stop).await
}

fn daemon_state(api: &Api) -> Value {
    let now = Utc::now();
    json!({
        "mode": api.run.mode,
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": (now - api.run.started_at).num_milliseconds() as f64 / 1e3,
        "replay_progress": api.run.replay.as_ref().map(|r| r.progress(now)),
        "market_time": api.run.replay.as_ref().map(|r| r.market_time(now)),
    })
}

async fn health(State(api): State<Api>) -> Response {
    let doc = async {
        let conn = db::pooled(&api.pool).await?;
        conn.health().await
    }
    .await;
    match doc {
        Ok(mut doc) => {
            doc["daemon"] = daemon_state(&api);
            let code = if doc["status"] == "unhealthy" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            (code, Json(doc)).into_response()
        }
        Err(e) => {
            let doc = json!({"status": "unhealthy", "components": {}, "database": {"status": "unreachable", "error": e.to_string()},
                             "daemon": daemon_state(&api), "version": env!("CARGO_PKG_VERSION")});
            (StatusCode::SERVICE_UNAVAILABLE, Json(doc)).into_response()
        }
    }
}

/// Liveness: the process answers. A probe that fails this restarts it.
async fn live(State(api): State<Api>) -> Response {
    Json(json!({"status": "live", "daemon": daemon_state(&api)})).into_response()
}

/// Readiness: the database answers, with the botai extension this build
/// serves, within two seconds. A probe that fails this stops sending work
/// here; it does not restart the process.
async fn ready(State(api): State<Api>) -> Response {
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let conn = db::pooled(&api.pool).await?;
        // Every function of the extension refuses (55000) while the
        // installed SQL is not this library's release.
        conn.health().await.map(|_| ())
    })
    .await;
    let (code, why) = match check {
        Ok(Ok(())) => (StatusCode::OK, None),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, Some(e.to_string())),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("the database did not answer within 2 s".to_owned())),
    };
    let status = if why.is_none() { "ready" } else { "not_ready" };
    (code, Json(json!({"status": status, "reason": why, "daemon": daemon_state(&api)}))).into_response()
}

/// The daemon's prometheus-client text (OpenMetrics) as Prometheus 0.0.4
/// text, so it can follow the extension's exposition in one response. In
/// OpenMetrics a counter family `x` has samples `x_total`; in 0.0.4 the
/// HELP and TYPE lines name the samples, so they become `x_total` too.
pub fn as_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .filter(|name| !name.ends_with("_total"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

async fn metrics(State(api): State<Api>) -> Response {
    let extension = async {
        let conn = db::pooled(&api.pool).await?;
        conn.metrics().await
    }
    .await;
    let own = as_text_format(&api.telemetry.encode());
    match extension {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], format!("{text}{own}"))
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("# botai metrics unavailable: {e}\n{own}")).into_response(),
    }
}

/// The dashboard's document: the database's part (db/dashboard.rs) and
/// this process's own.
pub async fn status_doc(api: &Api) -> Result<Value, crate::db::DbError> {
    let conn = db::pooled(&api.pool).await?;
    let mut doc = conn.dashboard().await?;
    let t = &api.telemetry;
    doc["counters"] = json!({
        "bars": t.bars.get(), "predictions": t.predictions.get(), "skipped_bars": t.skipped_bars.get(),
        "signals": {"accepted": t.signals_with("accepted"), "duplicate": t.signals_with("duplicate"),
                    "stale": t.signals_with("stale"), "cooldown": t.signals_with("cooldown")},
        "orders": {"filled": t.orders_with(Some("filled"), None), "rejected": t.orders_with(Some("rejected"), None),
                   "skipped": t.orders_with(Some("skipped"), None), "rejected_10006": t.orders_with(None, Some(10006)),
                   "rejected_110007": t.orders_with(None, Some(110007))},
    });
    doc["equity"] = Value::Array(
        api.run
            .equity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, e)| json!([t.timestamp_millis(), e]))
            .collect(),
    );
    doc["daemon"] = daemon_state(api);
    doc["alert_channels"] = api.run.alert_channels.clone();
    doc["paper"] = json!(api.run.paper.as_ref().map(|p| json!({"balances": p.balances(), "rejections": {
        "rate_limit": p.rejections().rate_limit, "balance": p.rejections().balance}})));
    Ok(doc)
}

async fn status(State(api): State<Api>) -> Response {
    match status_doc(&api).await {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
