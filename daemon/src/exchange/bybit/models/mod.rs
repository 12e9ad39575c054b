//! Bybit V5's messages, typed once: the adapter parses them, the exchange
//! double serialises them, so the two cannot drift apart silently. Field
//! names and enum words are the venue's (https://bybit-exchange.github.io/docs/v5/enum);
//! `tests/fixtures/venues/bybit/` holds the documentation's own example of
//! each message, and every one parses into these types.
//!
//! Numbers travel as strings. An empty string is "not given" — Bybit leaves
//! a field empty where it does not apply (a cross-margin coin's
//! `totalPositionIM`) or is deprecated (`availableToWithdraw` of a unified
//! account) — and never reads as zero: [`Figure`] keeps the difference.
//! Fields botai does not read are left out of the types (serde ignores
//! them); fields it reads and the venue may leave out have defaults.

mod account;
mod market;
mod orders;
mod stream;

use serde::{Deserialize, Serialize};

pub use crate::exchange::figure::Figure;

pub use account::{AccountInfo, AccountType, ApiKeyInfo, Position, PositionSide, WalletAccount, WalletCoin};
pub use market::{InstrumentInfo, KlineList, LotSizeFilter, PriceFilter, ServerTime, Ticker};
pub use orders::{CancelOrder, CreateOrder, ExecType, Execution, Order, OrderAck, OrderStatus, OrderType};
pub use stream::{OpRequest, OpResponse, PublicPush, Push, WsKline};

/// Every answer: `{"retCode", "retMsg", "result", "retExtInfo", "time"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<T> {
    pub ret_code: i64,
    pub ret_msg: String,
    pub result: T,
    #[serde(default)]
    pub ret_ext_info: serde_json::Value,
    #[serde(default)]
    pub time: i64,
}

/// A page of a list (`list` and, for paged lists, `nextPageCursor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub list: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn an_empty_figure_is_not_zero() {
        let f: Figure = serde_json::from_str("\"\"").unwrap();
        assert_eq!(f.known(), None);
        let f: Figure = serde_json::from_str("\"0\"").unwrap();
        assert_eq!(f.known(), Some(Decimal::ZERO));
        assert_eq!(serde_json::to_string(&Figure::NONE).unwrap(), "\"\"");
        assert!(serde_json::from_str::<Figure>("\"ten\"").is_err());
    }
}
