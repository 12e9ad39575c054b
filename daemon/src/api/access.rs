//! Who may read the HTTP API, and how many at once.
//!
//! - The dashboard (`/`), `/api/*` and `/metrics` show balances, positions
//!   and orders: when the API listens on an address other machines reach,
//!   each request carries the bearer token (`Authorization: Bearer …`,
//!   API_TOKEN) or the cookie a browser gets by opening `/?token=…` once.
//!   `/health*` stays open, for probes.
//! - Connections are served by hyper with a header-read timeout that also
//!   closes idle kept-alive connections (API_HEADER_TIMEOUT), at most
//!   API_MAX_CONNECTIONS at once and a quarter of them from one address. A
//!   few more are kept for `/health*` and `/metrics` only, with a one-second
//!   header timeout, so a flood of idle or half-sent requests leaves the
//!   probes answering within a second; beyond those a connection is closed
//!   at once, and the process never runs out of file descriptors (which
//!   stopped `accept`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::alerts::config::Secret;
use crate::api::config::ApiConfig;

/// Connections kept for `/health*` and `/metrics` when the rest are taken.
pub const PROBE_CONNECTIONS: usize = 8;
/// How long a connection of those kept for probes may take to send its
/// request's headers: a probe sends them at once.
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections per client address, so one client cannot take them all.
#[derive(Clone, Default)]
struct PerAddress(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// One connection of an address, counted until dropped.
struct AddressSlot(PerAddress, std::net::IpAddr);

impl PerAddress {
    fn take(&self, ip: std::net::IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot(self.clone(), ip))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.1);
            }
        }
    }
}
/// The cookie a browser keeps the token in.
const COOKIE: &str = "botai_token";

/// The token the dashboard and `/api/*` need, when they need one.
#[derive(Clone)]
pub struct Gate {
    token: Option<Arc<Secret>>,
}

impl Gate {
    pub fn new(cfg: &ApiConfig) -> Gate {
        Gate { token: cfg.needs_token().then(|| cfg.token.clone()).flatten().map(Arc::new) }
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|v| v.strip_prefix('=')));
        [bearer, cookie].into_iter().flatten().any(|given| same(given, token.expose()))
    }
}

/// Compares in time independent of where the strings differ.
fn same(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    diff == 0
}

/// Middleware of the dashboard and `/api/*`.
pub async fn require_token(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if gate.admits(request.headers()) {
        return next.run(request).await;
    }
    // `/?token=…`: a browser's first visit sets the cookie and drops the
    // token from the address bar.
    if request.uri().path() == "/" {
        let given = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|p| p.strip_prefix("token="))
            .map(|t| url::form_urlencoded::parse(format!("t={t}").as_bytes()).map(|(_, v)| v.into_owned()).collect())
            .unwrap_or_else(String::new);
        if let Some(token) = &gate.token {
            if !given.is_empty() && same(&given, token.expose()) {
                let cookie = format!("{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict");
                return ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response();
            }
        }
    }
    let mut response =
        (StatusCode::UNAUTHORIZED, "botai: this needs the API token (Authorization: Bearer …, or /?token=… once)\n")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"botai\""));
    response
}

/// What a connection beyond API_MAX_CONNECTIONS may still ask.
async fn probes_only(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/health") || path == "/metrics" {
        return next.run(request).await;
    }
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "botai: too many connections; try again\n")
        .into_response()
}

/// Serves `router` on `listener` until `stop`, within the bounds above.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cfg: &ApiConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let general = Arc::new(Semaphore::new(cfg.max_connections));
    let probes = Arc::new(Semaphore::new(PROBE_CONNECTIONS));
    let per_address = PerAddress::default();
    let address_cap = (cfg.max_connections / 4).max(1);
    let probe_router = router.clone().layer(axum::middleware::from_fn(probes_only));
    let tracker = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(cfg.header_timeout).keep_alive(true);
    let mut probe_builder = hyper::server::conn::http1::Builder::new();
    probe_builder.timer(TokioTimer::new()).header_read_timeout(PROBE_HEADER_TIMEOUT).keep_alive(false);
    let mut refused_since_log = 0u64;
    let mut last_log = tokio::time::Instant::now();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a moment rather than spin.
                    warn!("the HTTP API could not accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let general_slot = per_address
            .take(peer.ip(), address_cap)
            .and_then(|a| general.clone().try_acquire_owned().ok().map(|p| (p, a)));
        let connection = if let Some((permit, address)) = general_slot {
            let c = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
            (permit, Some(address), c)
        } else if let Ok(permit) = probes.clone().try_acquire_owned() {
            let c =
                probe_builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(probe_router.clone()));
            (permit, None, c)
        } else {
            drop(stream);
            refused_since_log += 1;
            if last_log.elapsed() >= Duration::from_secs(60) {
                warn!(
                    refused = refused_since_log,
                    "the HTTP API is at its connection limit (API_MAX_CONNECTIONS {}): closing new connections",
                    cfg.max_connections
                );
                (refused_since_log, last_log) = (0, tokio::time::Instant::now());
            }
            continue;
        };
        let (permit, address, connection) = connection;
        let stop = stop.clone();
        tracker.spawn(async move {
            let _held = (permit, address);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(6), tracker.wait()).await;
    info!("HTTP API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(token: &str) -> Gate {
        Gate { token: Some(Arc::new(Secret::new(token))) }
    }

    #[test]
    fn the_token_is_taken_from_the_header_or_the_cookie() {
        let g = gate("0123456789abcdef0123");
        let mut h = HeaderMap::new();
        assert!(!g.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef0123".parse().unwrap());
        assert!(g.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef012".parse().unwrap());
        assert!(!g.admits(&h), "a prefix is not the token");
        h.insert(header::COOKIE, "a=b; botai_token=0123456789abcdef0123".parse().unwrap());
        assert!(g.admits(&h));
        assert!(Gate { token: None }.admits(&HeaderMap::new()), "no token needed on loopback");
    }
}
