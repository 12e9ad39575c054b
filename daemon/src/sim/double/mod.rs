//! The exchange double: the simulated venue (venue/) served over HTTP in
//! the venues' own dialects — Bybit V5 under `/v5/` (bybit/, and its
//! private WebSocket stream at `/v5/private`, bybit_ws.rs, its klines over
//! REST and the public stream `/v5/public/{category}`, bybit_public.rs) and Binance
//! USDⓈ-M under `/fapi/` (binance.rs, and its user data stream at
//! `/private/ws/{listenKey}`, binance_ws.rs) — so botai's
//! adapters and ccxt, a client nobody here wrote, meet the same wire
//! protocol they meet on the real venue: signatures and `recv_window`
//! verified as documented, the limit headers on every answer, orders
//! confirmed asynchronously, unknown paths answered with the venue's
//! envelope.
//!
//! Tests steer it under `/botai-double/` (never a path of a real venue):
//! `POST faults` (venue::Faults as JSON), `GET requests` (every request as
//! received, with whether its signature verified; `DELETE` clears it),
//! `GET orders`, `GET state` (balances, positions, refusals), `POST account`
//! (venue::AccountSetup: borrowing, a position opened elsewhere, hedge mode,
//! a forced close pushed on the private streams).

pub mod binance;
pub mod binance_state;
pub mod binance_ws;
pub mod bybit;
pub mod bybit_public;
pub mod bybit_ws;
#[cfg(test)]
mod shapes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;

use super::venue::{AccountSetup, Faults, Venue};

/// The double's routes.
pub fn router(venue: Arc<Venue>) -> Router {
    Router::new()
        .route("/botai-double/faults", post(set_faults))
        .route("/botai-double/requests", get(requests).delete(clear_requests))
        .route("/botai-double/orders", get(orders))
        .route("/botai-double/state", get(state))
        .route("/botai-double/account", post(set_account))
        .route("/v5/private", get(bybit_ws::private))
        .route("/v5/public/{category}", get(bybit_public::stream))
        .route("/private/ws", get(binance_ws::by_query))
        .route("/private/ws/{key}", get(binance_ws::by_path))
        .route("/ws/{key}", get(binance_ws::by_path))
        .route("/v5/{*rest}", any(bybit_dialect))
        .route("/fapi/{*rest}", any(binance_dialect))
        .route("/sapi/{*rest}", any(binance_dialect))
        .fallback(any(bybit_dialect))
        .with_state(venue)
}

/// Serves the double until `shutdown` resolves.
pub async fn serve(
    venue: Arc<Venue>,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("the exchange double cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, "paper exchange serving Bybit V5 (the exchange double)");
    axum::serve(listener, router(venue)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

async fn bybit_dialect(
    State(venue): State<Arc<Venue>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bybit::handle(&venue, method, uri, headers, body).await
}

async fn binance_dialect(
    State(venue): State<Arc<Venue>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    binance::handle(&venue, method, uri, headers, body).await
}

async fn set_faults(State(venue): State<Arc<Venue>>, Json(faults): Json<Faults>) -> impl IntoResponse {
    venue.set_faults(faults);
    StatusCode::NO_CONTENT
}

/// Sets the account up as a venue could have it: borrowing, a position
/// opened elsewhere, hedge mode, a forced close (`venue::AccountSetup`).
async fn set_account(State(venue): State<Arc<Venue>>, Json(setup): Json<AccountSetup>) -> Response {
    match venue.set_account(setup) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn requests(State(venue): State<Arc<Venue>>) -> impl IntoResponse {
    Json(venue.requests())
}

async fn clear_requests(State(venue): State<Arc<Venue>>) -> impl IntoResponse {
    venue.clear_requests();
    StatusCode::NO_CONTENT
}

async fn orders(State(venue): State<Arc<Venue>>) -> impl IntoResponse {
    Json(venue.orders())
}

async fn state(State(venue): State<Arc<Venue>>) -> impl IntoResponse {
    Json(json!({
        "balances": venue.balances(),
        "wallet": venue.wallet().into_iter().map(|(a, t, l)| json!({"asset": a, "total": t, "locked": l})).collect::<Vec<_>>(),
        "positions": venue.positions(),
        "rejections": venue.rejections(),
        "executions": venue.executions().len(),
    }))
}
