//! The HTTP API's section of the configuration (API_LISTEN, API_TOKEN,
//! API_MAX_CONNECTIONS, API_HEADER_TIMEOUT).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::alerts::config::Secret;
use crate::env::Source;

/// The HTTP API (api/): where it listens, its bearer token, and the bounds
/// that keep it answering under a flood of connections.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// API_LISTEN (127.0.0.1:8080).
    pub listen: SocketAddr,
    /// API_TOKEN: required for the dashboard and /api/* when `listen` is not
    /// a loopback address (make writes one to .env).
    pub token: Option<Secret>,
    /// API_MAX_CONNECTIONS: connections served at once, besides the few
    /// kept for /health/* and /metrics; by default a quarter of the open
    /// files this process may have (systemd's 1024: 256).
    pub max_connections: usize,
    /// API_HEADER_TIMEOUT (10 s): a request's headers must arrive within
    /// this, and an idle kept-alive connection is closed after it.
    pub header_timeout: Duration,
}

impl ApiConfig {
    /// Whether the dashboard and /api/* need the token: when the API can be
    /// reached from another machine.
    pub fn needs_token(&self) -> bool {
        !self.listen.ip().is_loopback()
    }
}

/// A quarter of RLIMIT_NOFILE (at least 16, at most 4096).
fn default_max_connections() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 { limit.rlim_cur } else { 1024 };
    usize::try_from(nofile / 4).unwrap_or(4096).clamp(16, 4096)
}

impl ApiConfig {
    pub fn load(src: &Source) -> Result<ApiConfig> {
        let api = ApiConfig {
            listen: src
                .parse("API_LISTEN", "127.0.0.1:8080".parse().expect("address"), "HOST:PORT", |v| v.parse().ok())?,
            token: src.raw("API_TOKEN").filter(|t| !t.trim().is_empty()).map(Secret::new),
            max_connections: src.parse(
                "API_MAX_CONNECTIONS",
                default_max_connections(),
                "a number of connections (1 or more)",
                |v| v.parse().ok().filter(|n: &usize| *n > 0),
            )?,
            header_timeout: src.seconds("API_HEADER_TIMEOUT", 10.0)?,
        };
        if let Some(t) = &api.token {
            if t.expose().len() < 16 {
                bail!("API_TOKEN must be at least 16 characters (make writes a random one to .env)");
            }
        }
        if api.needs_token() && api.token.is_none() {
            bail!(
                "API_LISTEN={} can be reached from other machines, and the API shows balances, positions and orders: \
                 set API_TOKEN (make writes one to .env), or listen on 127.0.0.1 behind a reverse proxy",
                api.listen
            );
        }
        Ok(api)
    }
}
