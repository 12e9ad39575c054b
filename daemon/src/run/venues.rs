//! From the configuration to connected venues: the adapters (Bybit V5 for
//! Bybit and for a paper exchange in another process, Binance USDⓈ-M), the
//! in-process paper exchange, and botai's shared limiter each books its
//! requests in. The only place that reads the whole configuration for a
//! venue: the adapters themselves take their own settings.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::exchange::binance::{BinanceClient, BinanceSettings};
use crate::exchange::bybit::{BybitClient, BybitSettings};
use crate::exchange::limits::{SharedLimits, Unlimited, VenueLimits};
use crate::exchange::{Category, Exchange};
use crate::market::replay::PriceSource;
use crate::sim::paper::PaperExchange;
use crate::sim::venue::{Venue, VenueSettings};

/// The adapter of the configured venue, for a command (in `botai run` the
/// paper exchange is in-process: [`paper`]).
pub fn connect(cfg: &Config, stop: &CancellationToken) -> Result<Arc<dyn Exchange>> {
    match (cfg.trading.exchange.as_str(), &cfg.trading.paper_url) {
        ("bybit", _) => Ok(bybit(cfg, "bybit", stop)?),
        ("binance", _) => Ok(binance(cfg, stop)?),
        ("paper", Some(_)) => Ok(bybit(cfg, "paper", stop)?),
        ("paper", None) => bail!(
            "EXCHANGE=paper trades in-process inside `botai run`; for commands, serve it with \
             `botai paper-exchange` and set PAPER_EXCHANGE_URL"
        ),
        (other, _) => bail!("EXCHANGE={other} is not supported here"),
    }
}

/// The Bybit V5 adapter for `name` ("bybit", or "paper" for a paper
/// exchange in another process, PAPER_EXCHANGE_URL), its limits shared
/// through botai.
pub fn bybit(cfg: &Config, name: &str, stop: &CancellationToken) -> Result<Arc<BybitClient>> {
    let settings = if name == "paper" {
        BybitSettings {
            rest_url: cfg.trading.paper_url.clone().unwrap_or_default(),
            api_key: cfg.paper.api_key.clone(),
            api_secret: cfg.paper.api_secret.clone(),
            recv_window: cfg.bybit.recv_window,
            category: Category::Spot,
            timeout: cfg.bybit.timeout,
            ws_url: cfg.trading.paper_url.as_ref().map(|u| u.replacen("http", "ws", 1)),
        }
    } else {
        let credentials = cfg
            .bybit
            .credentials
            .clone()
            .ok_or_else(|| anyhow!("EXCHANGE=bybit needs BYBIT_API_KEY and BYBIT_API_SECRET"))?;
        BybitSettings {
            rest_url: cfg.bybit.rest_url.clone(),
            api_key: credentials.api_key,
            api_secret: credentials.api_secret,
            recv_window: cfg.bybit.recv_window,
            category: cfg.bybit.category,
            timeout: cfg.bybit.timeout,
            ws_url: Some(cfg.bybit.ws_url.clone()),
        }
    };
    let limits = shared_limits(cfg, name)?;
    let client = Arc::new(BybitClient::new(name, settings, limits)?);
    client.start_stream(stop.child_token());
    Ok(client)
}

/// The Binance USDⓈ-M adapter, its limits shared through botai.
pub fn binance(cfg: &Config, stop: &CancellationToken) -> Result<Arc<BinanceClient>> {
    let credentials = cfg
        .binance
        .credentials
        .clone()
        .ok_or_else(|| anyhow!("EXCHANGE=binance needs BINANCE_API_KEY and BINANCE_API_SECRET"))?;
    let settings = BinanceSettings {
        rest_url: cfg.binance.rest_url.clone(),
        sapi_url: cfg.binance.sapi_url.clone(),
        ws_url: Some(cfg.binance.ws_url.clone()),
        api_key: credentials.api_key,
        api_secret: credentials.api_secret,
        recv_window: cfg.binance.recv_window,
        timeout: cfg.binance.timeout,
    };
    let client = Arc::new(BinanceClient::new("binance", settings, shared_limits(cfg, "binance")?)?);
    client.start_stream(stop.child_token());
    Ok(client)
}

/// botai's shared limiter for the requests to exchange `name` (nothing,
/// in a RATE_LIMITER=off comparison run).
pub fn shared_limits(cfg: &Config, name: &str) -> Result<Arc<dyn VenueLimits>> {
    if !cfg.trading.rate_limiter {
        return Ok(Arc::new(Unlimited));
    }
    let pool = crate::db::pool(&cfg.pg, &format!("botai exchange {name}"), 4)?;
    Ok(Arc::new(SharedLimits {
        pool,
        exchange: name.to_owned(),
        component: format!("exchange:{name}"),
        observe: cfg.trading.limit_headers,
    }))
}

/// A fresh in-process paper exchange from the configuration (PAPER_*,
/// SYMBOL, the assets).
pub fn paper(cfg: &Config, prices: Arc<dyn PriceSource>) -> PaperExchange {
    let venue = Venue::new(
        VenueSettings::from_config(&cfg.paper),
        &cfg.market.symbol,
        &cfg.trading.base,
        &cfg.trading.quote,
        prices,
    );
    PaperExchange::new(Arc::new(venue), &cfg.market.symbol)
}
