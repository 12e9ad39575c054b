//! Configuration, read once and validated before anything starts.
//!
//! Where values come from is [`crate::env`] (the environment over `.env`
//! over the config file over the defaults; how to reach PostgreSQL is
//! [`crate::env::pg`]), below every component.
//! Each component's section sits beside its owner and reads its own
//! variables — `ml/config.rs`, `market/config.rs`, `trading/config.rs`,
//! `exchange/config.rs`, `api/config.rs`, `alerts/config.rs` — and
//! [`Config`] gathers them, with the checks that span sections. Every value
//! is parsed into its type, with an error that names the variable and says
//! what was expected; secrets never appear in logs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::alerts::config::AlertsConfig;
use crate::api::config::ApiConfig;
use crate::env::pg::PgSettings;
use crate::env::Source;
use crate::exchange::config::{BinanceConfig, BybitConfig, PaperConfig};
use crate::exchange::Category;
use crate::market::config::MarketConfig;
use crate::ml::config::{ManagerSettings, MlConfig};
use crate::trading::config::{EngineSettings, TradingConfig};

#[derive(Debug, Clone)]
pub struct Config {
    pub pg: PgSettings,
    pub ml: MlConfig,
    pub market: MarketConfig,
    pub trading: TradingConfig,
    pub paper: PaperConfig,
    pub bybit: BybitConfig,
    pub binance: BinanceConfig,
    /// The HTTP API: where it listens and who may read it.
    pub api: ApiConfig,
    pub worker_heartbeat_timeout: Duration,
    pub signal_dedup_window: Duration,
    pub rate_limit_safety_margin: Option<f64>,
    pub monitor_alert_threshold: Duration,
    pub log_dir: PathBuf,
    pub report_dir: PathBuf,
    /// Where alerts go (config/alerts.yaml and the environment).
    pub alerts: AlertsConfig,
}

impl Config {
    pub fn load(src: &Source) -> Result<Config> {
        let pg = PgSettings::from_source(src)?;
        let ml = MlConfig::load(src)?;
        let market = MarketConfig::load(src)?;
        let trading = TradingConfig::load(src)?;
        let paper = PaperConfig::load(src)?;
        let bybit = BybitConfig::load(src)?;
        if trading.exchange == "bybit" && bybit.credentials.is_none() {
            bail!("EXCHANGE=bybit needs BYBIT_API_KEY and BYBIT_API_SECRET (environment, .env or the config file)");
        }
        let binance = BinanceConfig::load(src)?;
        if trading.exchange == "binance" && binance.credentials.is_none() {
            bail!(
                "EXCHANGE=binance needs BINANCE_API_KEY and BINANCE_API_SECRET (environment, .env or the config file)"
            );
        }
        let api = ApiConfig::load(src)?;
        Ok(Config {
            pg,
            ml,
            market,
            trading,
            paper,
            bybit,
            binance,
            api,
            worker_heartbeat_timeout: src.seconds("WORKER_HEARTBEAT_TIMEOUT", 60.0)?,
            signal_dedup_window: src.seconds("SIGNAL_DEDUP_WINDOW", 300.0)?,
            rate_limit_safety_margin: src.parse("RATE_LIMIT_SAFETY_MARGIN", None, "a fraction in (0, 1]", |v| {
                v.parse::<f64>().ok().filter(|m| *m > 0.0 && *m <= 1.0).map(Some)
            })?,
            monitor_alert_threshold: src.seconds("MONITOR_ALERT_THRESHOLD", 120.0)?,
            log_dir: PathBuf::from(src.string("LOG_DIR", "data/logs")),
            report_dir: PathBuf::from(src.string("REPORT_DIR", "data/reports")),
            alerts: AlertsConfig::load(src)?,
        })
    }

    /// How often workers and components beat: a quarter of the timeout.
    pub fn heartbeat_every(&self) -> Duration {
        (self.worker_heartbeat_timeout / 4).max(Duration::from_millis(250))
    }

    /// The ML manager's settings.
    pub fn ml_manager(&self) -> ManagerSettings {
        ManagerSettings {
            pg: self.pg.clone(),
            ml: self.ml.clone(),
            exchange: self.trading.exchange.clone(),
            signal_dedup_window: self.signal_dedup_window,
            heartbeat_every: self.heartbeat_every(),
        }
    }

    /// The trading engine's settings.
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            pg: self.pg.clone(),
            trading: self.trading.clone(),
            symbol: self.market.symbol.clone(),
            shorts: match self.trading.exchange.as_str() {
                "binance" => true,
                "bybit" => self.bybit.category == Category::Linear,
                _ => false,
            },
            heartbeat_every: self.heartbeat_every(),
        }
    }
}
