//! Configuration, read once and validated before anything starts.
//!
//! Sources, strongest first: environment variables, the `.env` file (loaded
//! into the environment without overriding what is set), the config file
//! (TOML; `--config FILE`, or `botai.toml` in the working directory when it
//! exists; keys are the variable names in lower case), then the defaults
//! below. Every value is parsed into its type here, with an error that names
//! the variable and says what was expected; secrets never appear in logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::config::TargetSessionAttrs;

/// This machine's name, for instance and claimer ids.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}

/// Loads `.env` from the working directory or the nearest parent; variables
/// already set in the environment win.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

/// The file `make` writes the operator's connection to (OPERATOR_PGUSER,
/// OPERATOR_PGPASSWORD), read by the operator's commands only: the daemon
/// never holds the operator's password.
pub const OPERATOR_ENV: &str = "operator.env";

/// Reads `operator.env` (never overriding the environment), for the
/// operator's commands.
pub fn load_operator_env() {
    let _ = dotenvy::from_filename(OPERATOR_ENV);
}

/// Where each setting comes from: the environment over the config file.
pub struct Source {
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl Source {
    /// Reads the config file, if any (`path`, else `./botai.toml` when present).
    pub fn load(path: Option<&Path>) -> Result<Source> {
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("botai.toml")).filter(|p| p.exists()),
        };
        let mut file = BTreeMap::new();
        if let Some(p) = &chosen {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?;
            let table: toml::Table =
                text.parse().with_context(|| format!("config file {} is not valid TOML", p.display()))?;
            for (key, value) in table {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        bail!("config file {}: {key} must be a string, number or boolean, not {other}", p.display())
                    }
                };
                file.insert(key.to_uppercase(), value);
            }
        }
        Ok(Source { file, file_path: chosen })
    }

    /// An empty source: only the environment.
    pub fn environment_only() -> Source {
        Source { file: BTreeMap::new(), file_path: None }
    }

    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty()).or_else(|| self.file.get(name).cloned())
    }

    fn where_from(&self, name: &str) -> String {
        if std::env::var(name).is_ok_and(|v| !v.trim().is_empty()) {
            format!("{name} (environment)")
        } else if let Some(p) = &self.file_path {
            format!("{} in {}", name.to_lowercase(), p.display())
        } else {
            name.to_owned()
        }
    }

    fn parse<T>(&self, name: &str, default: T, expected: &str, f: impl Fn(&str) -> Option<T>) -> Result<T> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => {
                f(raw.trim()).with_context(|| format!("{}: expected {expected}, got {raw:?}", self.where_from(name)))
            }
        }
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).map(|s| s.trim().to_owned()).unwrap_or_else(|| default.to_owned())
    }

    pub(crate) fn seconds(&self, name: &str, default: f64) -> Result<Duration> {
        let s = self.parse(name, default, "a positive number of seconds", |v| {
            v.trim_end_matches('s').parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0)
        })?;
        Ok(Duration::from_secs_f64(s))
    }

    pub(crate) fn switch(&self, name: &str, default: bool) -> Result<bool> {
        self.parse(name, default, "on or off", |v| match v.to_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        })
    }
}

/// How to reach PostgreSQL: the libpq variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
#[derive(Clone)]
pub struct PgSettings {
    /// One host, or several (`PGHOST=a,b`), tried in order as libpq does:
    /// a primary and its standbys.
    pub hosts: Vec<String>,
    /// One port for every host, or one per host (`PGPORT=5555,5556`).
    pub ports: Vec<u16>,
    /// `PGTARGETSESSIONATTRS`: `read-write` (the default: every daemon
    /// writes, and a standby refuses writes) or `any`.
    pub target_session_attrs: TargetSessionAttrs,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl std::fmt::Debug for PgSettings {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("hosts", &self.hosts)
            .field("ports", &self.ports)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// The name of the user running the process, as libpq uses by default.
fn os_user() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

impl PgSettings {
    pub fn from_env() -> Result<PgSettings> {
        Self::from_source(&Source::environment_only())
    }

    pub fn from_source(src: &Source) -> Result<PgSettings> {
        let ports = src.parse(
            "PGPORT",
            vec![5555u16],
            "a TCP port number (1-65535), or one per host separated by commas",
            |v| v.split(',').map(|p| p.trim().parse().ok().filter(|&p: &u16| p > 0)).collect(),
        )?;
        let user = match src.raw("PGUSER") {
            Some(u) => u,
            None => os_user().context("PGUSER is not set and the operating-system user has no name")?,
        };
        let hosts: Vec<String> =
            src.string("PGHOST", "/var/run/postgresql").split(',').map(|h| h.trim().to_owned()).collect();
        for host in &hosts {
            if host.is_empty() {
                bail!("PGHOST has an empty host: use host names or socket directories separated by commas");
            }
            if host.starts_with('/') && !PathBuf::from(host).is_dir() {
                bail!("PGHOST: {host} is not a directory: use a socket directory or a host name");
            }
        }
        if ports.len() > 1 && ports.len() != hosts.len() {
            bail!(
                "PGPORT has {} ports for {} hosts in PGHOST: give one port for all, or one per host",
                ports.len(),
                hosts.len()
            );
        }
        let target_session_attrs =
            src.parse("PGTARGETSESSIONATTRS", TargetSessionAttrs::ReadWrite, "read-write or any", |v| match v {
                "read-write" => Some(TargetSessionAttrs::ReadWrite),
                "any" => Some(TargetSessionAttrs::Any),
                _ => None,
            })?;
        Ok(PgSettings {
            hosts,
            ports,
            target_session_attrs,
            user,
            password: src.raw("PGPASSWORD"),
            dbname: src.string("PGDATABASE", "bot_trading_v3"),
        })
    }

    /// The operator's connection (`botai halt`, `resume`, `alerts apply`):
    /// the daemon's server and database, as OPERATOR_PGUSER with
    /// OPERATOR_PGPASSWORD when set (make writes them to operator.env);
    /// without them, PG* as they are (a superuser over the socket, or a
    /// person's own login granted botai_operator).
    pub fn operator(src: &Source) -> Result<PgSettings> {
        let mut pg = Self::from_source(src)?;
        if let Some(user) = src.raw("OPERATOR_PGUSER") {
            pg.user = user;
            pg.password = src.raw("OPERATOR_PGPASSWORD");
        }
        Ok(pg)
    }

    /// `host:port`, comma-separated when there are several.
    pub fn servers(&self) -> String {
        let port = |i: usize| self.ports.get(i).or(self.ports.first()).copied().unwrap_or(5555);
        self.hosts.iter().enumerate().map(|(i, h)| format!("{h}:{}", port(i))).collect::<Vec<_>>().join(",")
    }

    /// `user@host:port/db`, without the password.
    pub fn describe(&self) -> String {
        format!("{}@{}/{}", self.user, self.servers(), self.dbname)
    }

    /// Hosts are tried in order; with `read-write`, a standby (in recovery,
    /// `transaction_read_only` on) is passed over, so after a failover the
    /// next connection finds the new primary.
    pub fn to_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        for host in &self.hosts {
            c.host(host);
        }
        for port in &self.ports {
            c.port(*port);
        }
        c.user(&self.user)
            .dbname(&self.dbname)
            .application_name(application_name)
            .target_session_attrs(self.target_session_attrs);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c.connect_timeout(Duration::from_secs(10));
        c
    }
}

/// Where the ML model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlDevice {
    Cpu,
    Cuda(i32),
}

#[derive(Debug, Clone)]
pub struct MlConfig {
    pub model_path: PathBuf,
    pub ort_dylib: PathBuf,
    pub device: MlDevice,
    pub threads: usize,
    pub strategy: String,
    /// SIGNAL_THRESHOLD: a fixed minimum |predicted return| for a signal,
    /// replacing the cost rule (round trip + the model's margin). None: the
    /// cost rule.
    pub threshold: Option<f64>,
    /// SIGNAL_FEE, SIGNAL_SLIPPAGE: the venue's costs per side for the cost
    /// rule; None: the costs the model's manifest was tuned for.
    pub fee: Option<f64>,
    pub slippage: Option<f64>,
    /// |predicted return| at which signal_strength reaches 1.
    pub full_strength: f64,
    /// How long a position is held after the last signal in its direction;
    /// then the ML manager signals its exit. None: the model's trade horizon.
    pub hold_for: Option<Duration>,
    /// Loss from the average entry (a fraction) at which the ML manager
    /// signals an exit; None: no stop.
    pub stop_loss: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// MARKET_DATA: a file of one-minute bars to replay, or `bybit` for
    /// Bybit's live klines (market/live.rs, on BYBIT_REST_URL / BYBIT_WS_URL
    /// and BYBIT_CATEGORY).
    pub data_path: PathBuf,
    pub live_bybit: bool,
    pub symbol: String,
    /// Replayed minutes per wall-clock minute.
    pub speed: f64,
    /// REPLAY_SPEED=max: the replay steps bar by bar, each bar's signals
    /// traded and settled before the next (market/replay.rs): the same data
    /// gives the same orders and P&L on any machine and under any load.
    pub stepped: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Wall-clock moment the replay's first bar starts; components in other
    /// processes pass the same value to share the replay clock.
    pub epoch: Option<DateTime<Utc>>,
}

/// How big an order is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sizing {
    /// A fixed notional in quote currency.
    Notional(Decimal),
    /// A fraction of the free funds of the asset spent (quote for BUY, base for SELL).
    Fraction(Decimal),
    /// Volatility-scaled: a position whose typical one-hour move (the
    /// signal's `volatility_1h`) is this fraction of equity, at most the
    /// whole equity.
    Volatility(Decimal),
}

#[derive(Debug, Clone)]
pub struct TradingConfig {
    pub exchange: String,
    pub quote: String,
    pub base: String,
    pub sizing: Sizing,
    /// Signals older than this when an engine gets to them are not traded.
    pub max_signal_age: Duration,
    pub reservation_ttl: Duration,
    /// The switches the comparison runs flip: without reservations
    /// the engine trusts its last balance snapshot, without the limiter it
    /// sends at once.
    pub reservations: bool,
    pub rate_limiter: bool,
    /// Whether the venue's limit headers feed botai's windows (a switch for
    /// comparison runs only).
    pub limit_headers: bool,
    pub balance_update_interval: Duration,
    /// How long an order may stay without a known outcome before it is
    /// reported critical (its funds stay held all along).
    pub unknown_order_alert: Duration,
    pub concurrency: usize,
    /// Remote paper exchange (HTTP); None = in-process.
    pub paper_url: Option<String>,
    /// BOTAI_FAULT, for the crash tests only: the step of an order's life
    /// where the process ends (trading/fault.rs).
    pub fault: Option<std::sync::Arc<crate::trading::fault::Fault>>,
}

#[derive(Debug, Clone)]
pub struct PaperConfig {
    pub initial: Vec<(String, Decimal)>,
    pub taker_fee: Decimal,
    pub slippage_bps: Decimal,
    /// (requests, window) per UID for order endpoints and for everything.
    pub order_limit: (u32, Duration),
    pub global_limit: (u32, Duration),
    /// Where the in-process paper exchange also serves HTTP (None = off).
    pub listen: Option<SocketAddr>,
    /// Market orders fill half after half of this, fully after all of it
    /// (0: at once).
    pub fill_delay: Duration,
    /// The address's limit over every request (Bybit: 600 per 5 s); broken,
    /// it bans the address for 10 minutes.
    pub ip_limit: (u32, Duration),
    /// The key the double's account accepts (PAPER_API_KEY, PAPER_API_SECRET).
    pub api_key: String,
    pub api_secret: String,
    /// The double reports the key as able to withdraw (PAPER_KEY_CAN_WITHDRAW).
    pub key_can_withdraw: bool,
}

/// Binance USDⓈ-M futures: where and which key.
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    pub credentials: Option<BybitCredentials>,
    /// BINANCE_REST_URL, else fapi.binance.com or (BINANCE_TESTNET=true) testnet.binancefuture.com.
    pub rest_url: String,
    /// BINANCE_SAPI_URL (key permissions), else api.binance.com (testnet: the REST URL).
    pub sapi_url: String,
    /// BINANCE_WS_URL, the user data stream's base (the stream connects to
    /// `{ws_url}/{listenKey}`): wss://fstream.binance.com/private/ws, or
    /// (BINANCE_TESTNET=true) wss://fstream.binancefuture.com/ws, or beside
    /// an overridden BINANCE_REST_URL on the same host.
    pub ws_url: String,
    pub testnet: bool,
    pub recv_window: Duration,
    pub timeout: Duration,
}

/// Bybit V5: where, which key, which market.
#[derive(Debug, Clone)]
pub struct BybitConfig {
    pub credentials: Option<BybitCredentials>,
    /// BYBIT_REST_URL, else mainnet or (BYBIT_TESTNET=true) testnet.
    pub rest_url: String,
    /// BYBIT_WS_URL, else mainnet's or testnet's stream host.
    pub ws_url: String,
    pub testnet: bool,
    pub category: crate::exchange::Category,
    pub recv_window: Duration,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct BybitCredentials {
    pub api_key: String,
    pub api_secret: String,
}

impl std::fmt::Debug for BybitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail: String = self.api_key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        write!(f, "BybitCredentials {{ api_key: ***{tail}, api_secret: *** }}")
    }
}

/// The HTTP API (api/): where it listens, its bearer token, and the bounds
/// that keep it answering under a flood of connections.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// API_LISTEN (127.0.0.1:8080).
    pub listen: SocketAddr,
    /// API_TOKEN: required for the dashboard and /api/* when `listen` is not
    /// a loopback address (make writes one to .env).
    pub token: Option<crate::alerts::config::Secret>,
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
    pub alerts: crate::alerts::AlertsConfig,
}

fn timestamp(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = botai_core::timestamp::parse_rfc3339("", v) {
        return Some(t);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

fn decimal_positive(v: &str) -> Option<Decimal> {
    v.parse::<Decimal>().ok().filter(|d| *d > Decimal::ZERO)
}

/// "10/1s" → 10 requests per 1 s.
fn limit(v: &str) -> Option<(u32, Duration)> {
    let (n, w) = v.split_once('/')?;
    let n = n.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
    let w = w.trim().trim_end_matches('s').parse::<f64>().ok().filter(|w| w.is_finite() && *w > 0.0)?;
    Some((n, Duration::from_secs_f64(w)))
}

fn listen(v: &str) -> Option<Option<SocketAddr>> {
    if v.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    v.parse::<SocketAddr>().ok().map(Some)
}

impl Config {
    pub fn load(src: &Source) -> Result<Config> {
        let pg = PgSettings::from_source(src)?;
        let device =
            src.parse("ML_DEVICE", MlDevice::Cpu, "cpu, cuda or cuda:N", |v| match v.to_lowercase().as_str() {
                "cpu" => Some(MlDevice::Cpu),
                "cuda" | "gpu" => Some(MlDevice::Cuda(0)),
                other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(MlDevice::Cuda),
            })?;
        let ml = MlConfig {
            model_path: PathBuf::from(src.string("MODEL_PATH", "models/patchtst.onnx")),
            ort_dylib: PathBuf::from(src.string("ORT_DYLIB_PATH", ".cache/onnxruntime/libonnxruntime.so")),
            device,
            threads: src.parse("ML_THREADS", 1usize, "a number of threads (1-64)", |v| {
                v.parse().ok().filter(|n| (1..=64).contains(n))
            })?,
            strategy: src.string("STRATEGY", "patchtst"),
            threshold: src.parse("SIGNAL_THRESHOLD", None, "a return magnitude between 0 and 0.1", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..0.1).contains(t)).map(Some)
            })?,
            fee: src.parse("SIGNAL_FEE", None, "a fee rate per side between 0 and 0.01", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..=0.01).contains(t)).map(Some)
            })?,
            slippage: src.parse("SIGNAL_SLIPPAGE", None, "a slippage per side between 0 and 0.01", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..=0.01).contains(t)).map(Some)
            })?,
            full_strength: src.parse("SIGNAL_FULL_STRENGTH", 0.003, "a positive return magnitude", |v| {
                v.parse().ok().filter(|t: &f64| *t > 0.0 && t.is_finite())
            })?,
            hold_for: match src.raw("HOLD_FOR") {
                None => None,
                Some(_) => Some(src.seconds("HOLD_FOR", 0.0)?),
            },
            stop_loss: src.parse(
                "STOP_LOSS",
                None,
                "off, or a loss fraction between 0 and 1 such as 0.01",
                |v| match v.trim().to_lowercase().as_str() {
                    "off" | "none" | "" => Some(None),
                    f => f.parse::<f64>().ok().filter(|f| *f > 0.0 && *f < 1.0).map(Some),
                },
            )?,
        };
        botai_core::names::name("STRATEGY", &ml.strategy).map_err(|e| anyhow::anyhow!("{e}"))?;
        let market = MarketConfig {
            data_path: PathBuf::from(src.string("MARKET_DATA", "data/market/btc-perp-1m-2022-01.csv.gz")),
            live_bybit: src.string("MARKET_DATA", "").eq_ignore_ascii_case("bybit"),
            symbol: src.string("SYMBOL", "BTCUSDT").to_uppercase(),
            speed: src.parse("REPLAY_SPEED", 3000.0, "a speed-up factor between 1 and 1000000, or max", |v| {
                if v.eq_ignore_ascii_case("max") {
                    return Some(1_000_000.0);
                }
                v.trim_end_matches('x').parse().ok().filter(|s: &f64| (1.0..=1_000_000.0).contains(s))
            })?,
            stepped: src.string("REPLAY_SPEED", "").eq_ignore_ascii_case("max"),
            from: src.parse("REPLAY_FROM", None, "an RFC 3339 time or a date", |v| timestamp(v).map(Some))?,
            to: src.parse("REPLAY_TO", None, "an RFC 3339 time or a date", |v| timestamp(v).map(Some))?,
            epoch: src.parse("REPLAY_EPOCH", None, "an RFC 3339 time", |v| timestamp(v).map(Some))?,
        };
        if let (Some(from), Some(to)) = (market.from, market.to) {
            if to <= from {
                bail!("REPLAY_TO ({to}) must be after REPLAY_FROM ({from})");
            }
        }
        let sizing = src.parse(
            "ORDER_SIZE",
            Sizing::Fraction(Decimal::new(2, 1)),
            "notional:AMOUNT, fraction:F (0 < F <= 1) or volatility:R (0 < R <= 0.1)",
            |v| {
                let (kind, amount) = v.split_once(':')?;
                let amount = decimal_positive(amount.trim())?;
                match kind.trim() {
                    "notional" => Some(Sizing::Notional(amount)),
                    "fraction" if amount <= Decimal::ONE => Some(Sizing::Fraction(amount)),
                    "volatility" if amount <= Decimal::new(1, 1) => Some(Sizing::Volatility(amount)),
                    _ => None,
                }
            },
        )?;
        let paper_url = src.raw("PAPER_EXCHANGE_URL").map(|u| u.trim().trim_end_matches('/').to_owned());
        if let Some(u) = &paper_url {
            if !u.starts_with("http://") && !u.starts_with("https://") {
                bail!("PAPER_EXCHANGE_URL: expected an http:// URL, got {u:?}");
            }
        }
        let trading = TradingConfig {
            exchange: src.string("EXCHANGE", "paper").to_lowercase(),
            quote: src.string("QUOTE_ASSET", "USDT").to_uppercase(),
            base: src.string("BASE_ASSET", "BTC").to_uppercase(),
            sizing,
            max_signal_age: src.seconds("MAX_SIGNAL_AGE", 60.0)?,
            reservation_ttl: src.seconds("RESERVATION_TTL", 30.0)?,
            reservations: src.switch("RESERVATIONS", true)?,
            rate_limiter: src.switch("RATE_LIMITER", true)?,
            limit_headers: src.switch("LIMIT_HEADERS", true)?,
            balance_update_interval: src.seconds("BALANCE_UPDATE_INTERVAL", 5.0)?,
            unknown_order_alert: src.seconds("UNKNOWN_ORDER_ALERT", 60.0)?,
            concurrency: src.parse("ENGINE_CONCURRENCY", 64usize, "a number of signals in flight (1-1024)", |v| {
                v.parse().ok().filter(|n| (1..=1024).contains(n))
            })?,
            paper_url,
            fault: match src.raw("BOTAI_FAULT") {
                Some(f) => Some(std::sync::Arc::new(crate::trading::fault::Fault::parse(&f)?)),
                None => None,
            },
        };
        match trading.exchange.as_str() {
            "paper" | "bybit" | "binance" => {}
            other => bail!("EXCHANGE={other}: expected paper, bybit or binance"),
        }
        let paper = PaperConfig {
            initial: src.parse(
                "PAPER_INITIAL_BALANCE",
                vec![("USDT".to_owned(), Decimal::new(10_000, 0))],
                "ASSET=AMOUNT[,ASSET=AMOUNT…]",
                |v| {
                    v.split(',')
                        .map(|kv| {
                            let (a, n) = kv.split_once('=')?;
                            let n = n.trim().parse::<Decimal>().ok().filter(|n| *n >= Decimal::ZERO)?;
                            Some((a.trim().to_uppercase(), n))
                        })
                        .collect()
                },
            )?,
            taker_fee: src.parse("PAPER_TAKER_FEE", Decimal::new(6, 4), "a fee rate between 0 and 0.01", |v| {
                v.parse::<Decimal>().ok().filter(|f| *f >= Decimal::ZERO && *f <= Decimal::new(1, 2))
            })?,
            slippage_bps: src.parse(
                "PAPER_SLIPPAGE_BPS",
                Decimal::new(2, 0),
                "basis points between 0 and 500",
                |v| v.parse::<Decimal>().ok().filter(|s| *s >= Decimal::ZERO && *s <= Decimal::new(500, 0)),
            )?,
            order_limit: src.parse(
                "PAPER_ORDER_LIMIT",
                (50, Duration::from_secs(5)),
                "REQUESTS/SECONDS, e.g. 50/5s",
                limit,
            )?,
            global_limit: src.parse(
                "PAPER_GLOBAL_LIMIT",
                (150, Duration::from_secs(5)),
                "REQUESTS/SECONDS, e.g. 150/5s",
                limit,
            )?,
            listen: src.parse(
                "PAPER_LISTEN",
                Some("127.0.0.1:8090".parse().expect("address")),
                "HOST:PORT or off",
                listen,
            )?,
            fill_delay: Duration::from_secs_f64(src.parse(
                "PAPER_FILL_DELAY",
                0.0,
                "seconds between 0 and 60",
                |v| v.trim_end_matches('s').parse::<f64>().ok().filter(|s| (0.0..=60.0).contains(s)),
            )?),
            ip_limit: src.parse(
                "PAPER_IP_LIMIT",
                (600, Duration::from_secs(5)),
                "REQUESTS/SECONDS, e.g. 600/5s",
                limit,
            )?,
            api_key: src.string("PAPER_API_KEY", "botai-paper-key"),
            api_secret: src.string("PAPER_API_SECRET", "botai-paper-secret"),
            key_can_withdraw: src.switch("PAPER_KEY_CAN_WITHDRAW", false)?,
        };
        let credentials = match (src.raw("BYBIT_API_KEY"), src.raw("BYBIT_API_SECRET")) {
            (Some(api_key), Some(api_secret)) => Some(BybitCredentials { api_key, api_secret }),
            (None, None) => None,
            _ => bail!("BYBIT_API_KEY and BYBIT_API_SECRET go together: set both or neither"),
        };
        let testnet = src.switch("BYBIT_TESTNET", false)?;
        let rest_url = src
            .string("BYBIT_REST_URL", if testnet { "https://api-testnet.bybit.com" } else { "https://api.bybit.com" })
            .trim_end_matches('/')
            .to_owned();
        if !rest_url.starts_with("https://") && !rest_url.starts_with("http://") {
            bail!("{}: expected an https:// URL, got {rest_url:?}", src.where_from("BYBIT_REST_URL"));
        }
        let ws_url = src
            .string("BYBIT_WS_URL", if testnet { "wss://stream-testnet.bybit.com" } else { "wss://stream.bybit.com" })
            .trim_end_matches('/')
            .to_owned();
        if !ws_url.starts_with("wss://") && !ws_url.starts_with("ws://") {
            bail!("{}: expected a wss:// URL, got {ws_url:?}", src.where_from("BYBIT_WS_URL"));
        }
        let bybit = BybitConfig {
            credentials,
            rest_url,
            ws_url,
            testnet,
            category: src.parse("BYBIT_CATEGORY", crate::exchange::Category::Spot, "spot or linear", |v| {
                crate::exchange::Category::parse(&v.to_lowercase())
            })?,
            recv_window: Duration::from_millis(src.parse(
                "BYBIT_RECV_WINDOW",
                5000u64,
                "milliseconds between 1 and 60000",
                |v| v.trim_end_matches("ms").parse().ok().filter(|ms| (1..=60_000).contains(ms)),
            )?),
            timeout: src.seconds("BYBIT_TIMEOUT", 10.0)?,
        };
        if trading.exchange == "bybit" && bybit.credentials.is_none() {
            bail!("EXCHANGE=bybit needs BYBIT_API_KEY and BYBIT_API_SECRET (environment, .env or the config file)");
        }
        let binance_credentials = match (src.raw("BINANCE_API_KEY"), src.raw("BINANCE_API_SECRET")) {
            (Some(api_key), Some(api_secret)) => Some(BybitCredentials { api_key, api_secret }),
            (None, None) => None,
            _ => bail!("BINANCE_API_KEY and BINANCE_API_SECRET go together: set both or neither"),
        };
        let binance_testnet = src.switch("BINANCE_TESTNET", false)?;
        let binance_rest = src
            .string(
                "BINANCE_REST_URL",
                if binance_testnet { "https://testnet.binancefuture.com" } else { "https://fapi.binance.com" },
            )
            .trim_end_matches('/')
            .to_owned();
        if !binance_rest.starts_with("https://") && !binance_rest.starts_with("http://") {
            bail!("{}: expected an https:// URL, got {binance_rest:?}", src.where_from("BINANCE_REST_URL"));
        }
        let binance_ws = src
            .string(
                "BINANCE_WS_URL",
                &if src.raw("BINANCE_REST_URL").is_some() {
                    format!("{}/private/ws", binance_rest.replacen("http", "ws", 1))
                } else if binance_testnet {
                    "wss://fstream.binancefuture.com/ws".to_owned()
                } else {
                    "wss://fstream.binance.com/private/ws".to_owned()
                },
            )
            .trim_end_matches('/')
            .to_owned();
        if !binance_ws.starts_with("wss://") && !binance_ws.starts_with("ws://") {
            bail!("{}: expected a wss:// URL, got {binance_ws:?}", src.where_from("BINANCE_WS_URL"));
        }
        let binance = BinanceConfig {
            credentials: binance_credentials,
            ws_url: binance_ws,
            sapi_url: src
                .string(
                    "BINANCE_SAPI_URL",
                    if binance_testnet || src.raw("BINANCE_REST_URL").is_some() {
                        binance_rest.as_str()
                    } else {
                        "https://api.binance.com"
                    },
                )
                .trim_end_matches('/')
                .to_owned(),
            rest_url: binance_rest,
            testnet: binance_testnet,
            recv_window: Duration::from_millis(src.parse(
                "BINANCE_RECV_WINDOW",
                5000u64,
                "milliseconds between 1 and 60000",
                |v| v.trim_end_matches("ms").parse().ok().filter(|ms| (1..=60_000).contains(ms)),
            )?),
            timeout: src.seconds("BINANCE_TIMEOUT", 10.0)?,
        };
        if trading.exchange == "binance" && binance.credentials.is_none() {
            bail!(
                "EXCHANGE=binance needs BINANCE_API_KEY and BINANCE_API_SECRET (environment, .env or the config file)"
            );
        }
        let api = ApiConfig {
            listen: src
                .parse("API_LISTEN", "127.0.0.1:8080".parse().expect("address"), "HOST:PORT", |v| v.parse().ok())?,
            token: src.raw("API_TOKEN").filter(|t| !t.trim().is_empty()).map(crate::alerts::config::Secret::new),
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
            alerts: crate::alerts::AlertsConfig::load(src)?,
        })
    }

    /// How often workers and components beat: a quarter of the timeout.
    pub fn heartbeat_every(&self) -> Duration {
        (self.worker_heartbeat_timeout / 4).max(Duration::from_millis(250))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(limit("10/1s"), Some((10, Duration::from_secs(1))));
        assert_eq!(limit("600/5"), Some((600, Duration::from_secs(5))));
        assert_eq!(limit("0/1s"), None);
        assert_eq!(limit("ten"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = BybitCredentials { api_key: "AAAABBBBCCCC1234".into(), api_secret: "topsecret".into() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("topsecret") && !shown.contains("AAAABBBB"));
        assert!(shown.contains("1234"));
    }
}
