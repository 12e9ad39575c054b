//! The venue's settings: balances to start with, fees, slippage, the fill
//! delay, request limits, the key.

use std::time::Duration;

use rust_decimal::Decimal;

use super::LimitClass;
use crate::exchange::config::PaperConfig;

/// The venue's settings, from `PaperConfig` or a test.
#[derive(Debug, Clone)]
pub struct VenueSettings {
    pub initial: Vec<(String, Decimal)>,
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    pub slippage_bps: Decimal,
    /// Market orders fill half way after half of this, fully after all of it.
    pub fill_delay: Duration,
    pub limits: Vec<(LimitClass, (u32, Duration))>,
    /// How long a broken IP limit bans the address.
    pub ban: Duration,
    pub leverage: Decimal,
    pub api_key: String,
    pub api_secret: String,
    /// Whether the key reports the Withdraw permission (to test refusing it).
    pub key_can_withdraw: bool,
}

impl VenueSettings {
    pub fn from_config(cfg: &PaperConfig) -> VenueSettings {
        VenueSettings {
            initial: cfg.initial.clone(),
            taker_fee: cfg.taker_fee,
            maker_fee: cfg.taker_fee * Decimal::new(5, 1),
            slippage_bps: cfg.slippage_bps,
            fill_delay: cfg.fill_delay,
            limits: vec![
                (LimitClass::Ip, cfg.ip_limit),
                (LimitClass::Account, cfg.global_limit),
                (LimitClass::Order, cfg.order_limit),
                (LimitClass::OrderQuery, (50, Duration::from_secs(1))),
                (LimitClass::Wallet, (50, Duration::from_secs(1))),
                // Binance USDⓈ-M's documented limits (exchangeInfo's rateLimits).
                (LimitClass::Weight, (2400, Duration::from_secs(60))),
                (LimitClass::Orders10s, (300, Duration::from_secs(10))),
                (LimitClass::Orders1m, (1200, Duration::from_secs(60))),
            ],
            ban: Duration::from_secs(600),
            leverage: Decimal::ONE,
            api_key: cfg.api_key.clone(),
            api_secret: cfg.api_secret.clone(),
            key_can_withdraw: cfg.key_can_withdraw,
        }
    }
}
