//! The venues' sections of the configuration: the paper exchange
//! (PAPER_*), Bybit V5 (BYBIT_*) and Binance USDⓈ-M (BINANCE_*).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use rust_decimal::Decimal;

use super::Category;
use crate::env::{limit, listen, Source};

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
    pub category: Category,
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

impl PaperConfig {
    pub fn load(src: &Source) -> Result<PaperConfig> {
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
        Ok(paper)
    }
}

impl BybitConfig {
    pub fn load(src: &Source) -> Result<BybitConfig> {
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
            category: src
                .parse("BYBIT_CATEGORY", Category::Spot, "spot or linear", |v| Category::parse(&v.to_lowercase()))?,
            recv_window: Duration::from_millis(src.parse(
                "BYBIT_RECV_WINDOW",
                5000u64,
                "milliseconds between 1 and 60000",
                |v| v.trim_end_matches("ms").parse().ok().filter(|ms| (1..=60_000).contains(ms)),
            )?),
            timeout: src.seconds("BYBIT_TIMEOUT", 10.0)?,
        };
        Ok(bybit)
    }
}

impl BinanceConfig {
    pub fn load(src: &Source) -> Result<BinanceConfig> {
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
        Ok(binance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = BybitCredentials { api_key: "AAAABBBBCCCC1234".into(), api_secret: "topsecret".into() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("topsecret") && !shown.contains("AAAABBBB"));
        assert!(shown.contains("1234"));
    }
}
