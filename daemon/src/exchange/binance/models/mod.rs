//! Binance USDⓈ-M futures' messages, typed once: the adapter parses them,
//! the exchange double serialises them. Field names and enum words are the
//! venue's (developers.binance.com/docs/derivatives/usds-margined-futures,
//! "Common Definitions"); `tests/fixtures/venues/binance/` holds the
//! documentation's own example of each message, and every one parses into
//! these types. Fields botai does not read are left out (serde ignores them).

mod account;
mod market;
mod orders;
mod stream;

use serde::{Deserialize, Serialize};

pub use crate::exchange::figure::Figure;

pub use account::{Account, AccountAsset, AccountPosition, ApiRestrictions, Balance, PositionMode, PositionRisk};
pub use market::{ExchangeInfo, ServerTime, SymbolInfo, TickerPrice};
pub use orders::{Order, OrderStatus, OrderType};
pub use stream::{
    AccountUpdate, AccountUpdateReason, BalanceUpdate, ExecutionType, ListenKey, OrderUpdate, PositionUpdate, UserEvent,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn botai(self) -> crate::exchange::Side {
        match self {
            Side::Buy => crate::exchange::Side::Buy,
            Side::Sell => crate::exchange::Side::Sell,
        }
    }

    pub fn of(side: crate::exchange::Side) -> Side {
        match side {
            crate::exchange::Side::Buy => Side::Buy,
            crate::exchange::Side::Sell => Side::Sell,
        }
    }
}

/// `positionSide`: BOTH in one-way mode, LONG and SHORT in hedge mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum PositionSide {
    #[default]
    Both,
    Long,
    Short,
}

/// A refusal: `{"code": -2019, "msg": "Margin is insufficient."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: i64,
    pub msg: String,
}
