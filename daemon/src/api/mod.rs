//! The HTTP API (`--mode=api`, and part of `all`): `GET /health` (the
//! seed's health document from botai, plus the daemon's own state),
//! `GET /metrics` (the extension's metrics and the daemon's own, Prometheus
//! text), a live dashboard at `/` fed by `GET /api/status`, and alert
//! delivery (alerts.rs).

pub mod alerts;

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

use crate::db::{self, BotaiSql};
use crate::exchange::paper::PaperExchange;
use crate::market::replay::Replay;
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
    pub alerts: Arc<alerts::Recent>,
}

#[derive(Clone)]
pub struct Api {
    pub pool: Pool,
    pub telemetry: Arc<Telemetry>,
    pub run: Arc<RunState>,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .with_state(api)
}

pub async fn serve(api: Api, listen: std::net::SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("the HTTP API cannot listen on {listen}: {e}"))?;
    tracing::info!("HTTP API and dashboard on http://{listen}/");
    axum::serve(listener, router(api)).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    Ok(())
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

/// The daemon's prometheus-client text (OpenMetrics) as Prometheus 0.0.4
/// text, so it can follow the extension's exposition in one response.
pub fn as_text_format(openmetrics: &str) -> String {
    openmetrics.lines().filter(|l| *l != "# EOF").map(|l| format!("{l}\n")).collect()
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

async fn status(State(api): State<Api>) -> Response {
    let result = async {
        let conn = db::pooled(&api.pool).await?;
        let health = conn.health().await?;
        let rows = |sql: &'static str| {
            let conn = &conn;
            async move {
                let rows = conn.query(sql, &[]).await.map_err(|e| crate::db::DbError::from_pg("status", e))?;
                Ok::<_, crate::db::DbError>(rows.iter().map(|r| r.get::<_, Value>(0)).collect::<Vec<_>>())
            }
        };
        let balances = rows("SELECT to_jsonb(b) FROM botai.balances_status b ORDER BY exchange, asset").await?;
        let orders = rows(
            "SELECT to_jsonb(o) FROM (SELECT order_id, signal_id, side, status, qty, price, fee, ret_code, \
             round(latency_ms::numeric, 1) AS latency_ms, finished_at FROM botai.orders_status \
             ORDER BY order_id DESC LIMIT 15) o",
        )
        .await?;
        let alerts = rows("SELECT to_jsonb(a) FROM (SELECT rule, subject, severity, opened_at FROM botai.open_alerts ORDER BY opened_at DESC LIMIT 20) a").await?;
        let t = &api.telemetry;
        let counters = json!({
            "bars": t.bars.get(), "predictions": t.predictions.get(), "skipped_bars": t.skipped_bars.get(),
            "signals": {"accepted": t.signals_with("accepted"), "duplicate": t.signals_with("duplicate"),
                        "stale": t.signals_with("stale"), "cooldown": t.signals_with("cooldown")},
            "orders": {"filled": t.orders_with(Some("filled"), None), "rejected": t.orders_with(Some("rejected"), None),
                       "skipped": t.orders_with(Some("skipped"), None), "rejected_10006": t.orders_with(None, Some(10006)),
                       "rejected_110007": t.orders_with(None, Some(110007))},
        });
        let equity: Vec<Value> = api
            .run
            .equity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, e)| json!([t.timestamp_millis(), e]))
            .collect();
        Ok::<_, crate::db::DbError>(json!({
            "health": health, "daemon": daemon_state(&api), "balances": balances, "orders": orders,
            "alerts": alerts, "delivered_alerts": api.run.alerts.list(), "counters": counters, "equity": equity,
            "paper": api.run.paper.as_ref().map(|p| json!({"balances": p.balances(), "rejections": {
                "rate_limit": p.rejections().rate_limit, "balance": p.rejections().balance}})),
        }))
    }
    .await;
    match result {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
