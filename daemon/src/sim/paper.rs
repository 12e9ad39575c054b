//! The paper exchange in-process: `Exchange` straight on the simulated venue
//! (venue/), spot, with the venue's limits and refusals in Bybit's codes
//! (10006 "Too many visits!", 110007 insufficient balance, 110072 duplicate
//! client order id). `make run` trades on it by default; the double
//! (double/) serves the same venue over HTTP for engines in other processes
//! and for the Bybit and Binance adapters.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::venue::{LimitClass, OrderKind, PlaceError, Placement, Refusal, Rejections, Venue, VenueOrder, VenueStatus};
use crate::exchange::limits::{Unlimited, VenueLimits};
use crate::exchange::{
    ret_code, AssetBalance, Category, Exchange, ExchangeError, Instrument, OrderRequest, OrderState, OrderStatus,
    Wallet,
};

pub struct PaperExchange {
    name: String,
    symbol: String,
    pub venue: Arc<Venue>,
    /// botai's shared limiter, booked before every request but order
    /// create (the engine books that one with its reservation).
    limits: Arc<dyn VenueLimits>,
}

impl PaperExchange {
    pub fn new(venue: Arc<Venue>, symbol: &str) -> PaperExchange {
        PaperExchange { name: "paper".into(), symbol: symbol.to_owned(), venue, limits: Arc::new(Unlimited) }
    }

    pub fn with_limits(self, limits: Arc<dyn VenueLimits>) -> PaperExchange {
        PaperExchange { limits, ..self }
    }

    pub fn rejections(&self) -> Rejections {
        self.venue.rejections()
    }

    /// Account value in quote currency at the current price.
    pub fn equity(&self) -> Option<Decimal> {
        self.venue.equity(&self.symbol)
    }

    /// (account value, price, value held in the market) in quote currency.
    pub fn mark(&self) -> Option<(Decimal, Decimal, Decimal)> {
        self.venue.mark(&self.symbol)
    }

    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.venue.balances()
    }

    /// A refusal is also the limiter's business (in-process, no headers):
    /// `endpoint` waits as long as the venue said.
    async fn refused(&self, endpoint: &str, e: ExchangeError) -> ExchangeError {
        if let ExchangeError::RateLimited { retry_after, .. } = &e {
            self.limits.penalize(endpoint, *retry_after).await;
        }
        e
    }

    fn admit(&self, class: LimitClass) -> Result<(), ExchangeError> {
        self.venue.admit(&[LimitClass::Ip, LimitClass::Account, class]).map_err(refusal)
    }
}

/// A refused request in Bybit's terms.
pub fn refusal(r: Refusal) -> ExchangeError {
    match r {
        Refusal::TooManyVisits { retry_after } => ExchangeError::RateLimited {
            ret_code: ret_code::TOO_MANY_VISITS,
            message: "Too many visits!".into(),
            retry_after,
        },
        Refusal::Banned { retry_after } => {
            ExchangeError::RateLimited { ret_code: 403, message: "access too frequent".into(), retry_after }
        }
    }
}

/// An order of the venue as the trait describes it.
pub fn order_state(o: &VenueOrder) -> OrderState {
    OrderState {
        exchange_order_id: o.order_id.clone(),
        client_order_id: o.link_id.clone(),
        symbol: o.symbol.clone(),
        side: o.side,
        status: match o.status {
            VenueStatus::Untriggered | VenueStatus::Triggered | VenueStatus::New => OrderStatus::New,
            VenueStatus::PartiallyFilled => OrderStatus::PartiallyFilled,
            VenueStatus::Filled => OrderStatus::Filled,
            VenueStatus::Cancelled | VenueStatus::PartiallyFilledCanceled => OrderStatus::Cancelled,
            VenueStatus::Rejected => OrderStatus::Rejected,
        },
        qty: o.qty,
        filled_qty: o.cum_qty,
        avg_price: o.avg_price(),
        fee: o.cum_fee,
        fee_asset: o.fee_asset.clone(),
        venue_reason: o.reject_reason.clone().filter(|r| r != "EC_NoError"),
        realised_pnl: None,
    }
}

#[async_trait]
impl Exchange for PaperExchange {
    fn name(&self) -> &str {
        &self.name
    }

    fn shares_our_clock(&self) -> bool {
        true
    }

    fn conditional_orders(&self) -> bool {
        true
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        if let Err(e) = self.admit(LimitClass::Order) {
            return Err(self.refused("order", e).await);
        }
        let placement = Placement {
            category: Category::Spot,
            symbol: order.symbol.clone(),
            side: order.side,
            kind: if order.price.is_some() { OrderKind::Limit } else { OrderKind::Market },
            qty: order.qty,
            quote_qty: false,
            price: order.price,
            trigger: order.trigger,
            link_id: Some(order.client_order_id.clone()),
            reduce_only: false,
            link_unique_while_open: false,
        };
        match self.venue.place(&placement) {
            Ok(o) => Ok(order_state(&o)),
            Err(PlaceError::DuplicateLinkId) => {
                Err(ExchangeError::DuplicateOrder { client_order_id: order.client_order_id.clone() })
            }
            Err(PlaceError::InsufficientBalance(message)) => {
                Err(ExchangeError::InsufficientBalance { ret_code: ret_code::INSUFFICIENT_BALANCE, message })
            }
            Err(PlaceError::Invalid(message)) => {
                Err(ExchangeError::Rejected { ret_code: ret_code::PARAMS_ERROR, message })
            }
        }
    }

    async fn order(&self, _symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        self.limits.book("order_query").await?;
        if let Err(e) = self.admit(LimitClass::OrderQuery) {
            return Err(self.refused("order_query", e).await);
        }
        Ok(self.venue.order(None, Some(client_order_id)).as_ref().map(order_state))
    }

    async fn open_orders(&self, symbol: &str) -> Result<Vec<OrderState>, ExchangeError> {
        self.limits.book("order_query").await?;
        if let Err(e) = self.admit(LimitClass::OrderQuery) {
            return Err(self.refused("order_query", e).await);
        }
        let orders = self.venue.orders();
        Ok(orders.iter().filter(|o| o.symbol == symbol && o.status.is_open()).map(order_state).collect())
    }

    async fn cancel_order(&self, _symbol: &str, client_order_id: &str) -> Result<(), ExchangeError> {
        self.limits.book("order").await?;
        self.admit(LimitClass::Order)?;
        match self.venue.cancel(Category::Spot, None, Some(client_order_id)) {
            Some(_) => Ok(()),
            None => Err(ExchangeError::Rejected {
                ret_code: ret_code::ORDER_NOT_EXISTS,
                message: format!("order {client_order_id} does not exist or is too late to cancel"),
            }),
        }
    }

    async fn wallet(&self) -> Result<Wallet, ExchangeError> {
        self.limits.book("account").await?;
        if let Err(e) = self.admit(LimitClass::Wallet) {
            return Err(self.refused("global", e).await);
        }
        let assets = self
            .venue
            .wallet()
            .into_iter()
            .map(|(asset, total, locked)| AssetBalance { asset, total, available: total - locked, locked })
            .collect();
        // The exchange's wall clock: botai compares it with commit times.
        Ok(Wallet { as_of: Utc::now(), assets })
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
        Ok(Utc::now())
    }

    async fn last_price(&self, symbol: &str) -> Result<Decimal, ExchangeError> {
        self.venue.price(symbol).ok_or_else(|| ExchangeError::Rejected {
            ret_code: ret_code::PARAMS_ERROR,
            message: format!("no price for {symbol} yet"),
        })
    }

    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError> {
        self.venue.instrument(Category::Spot, symbol).ok_or_else(|| ExchangeError::Rejected {
            ret_code: ret_code::PARAMS_ERROR,
            message: format!("symbol {symbol} is not traded here"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::venue::tests::{settings, Fixed};
    use super::*;
    use crate::exchange::Side;

    fn paper(order_limit: u32) -> PaperExchange {
        let mut s = settings(Duration::ZERO);
        s.limits = vec![(LimitClass::Order, (order_limit, Duration::from_secs(60)))];
        let prices = Arc::new(Fixed(std::sync::Mutex::new(Decimal::new(40_000, 0))));
        PaperExchange::new(Arc::new(Venue::new(s, "BTCUSDT", "BTC", "USDT", prices)), "BTCUSDT")
    }

    fn buy(id: &str, qty: Decimal) -> OrderRequest {
        OrderRequest {
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty,
            price: None,
            trigger: None,
        }
    }

    #[tokio::test]
    async fn fills_debit_the_account_and_refuse_overdraw() {
        let p = paper(10);
        let f = p.place_order(&buy("a", Decimal::new(2, 2))).await.unwrap();
        assert_eq!((f.status, f.avg_price), (OrderStatus::Filled, Decimal::new(40_000, 0)));
        assert_eq!((f.fee, f.fee_asset.as_str()), (Decimal::new(2, 5), "BTC")); // 0.02 BTC * 0.001
        assert_eq!(p.balances()["USDT"], Decimal::new(200, 0));
        let err = p.place_order(&buy("b", Decimal::new(1, 2))).await.unwrap_err();
        assert_eq!(err.ret_code(), Some(110007));
        assert_eq!(p.rejections().balance, 1);
    }

    #[tokio::test]
    async fn a_client_order_id_is_used_once() {
        let p = paper(10);
        p.place_order(&buy("same", Decimal::new(1, 3))).await.unwrap();
        let err = p.place_order(&buy("same", Decimal::new(1, 3))).await.unwrap_err();
        assert!(matches!(err, ExchangeError::DuplicateOrder { .. }));
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_get_10006() {
        let p = paper(2);
        p.place_order(&buy("1", Decimal::new(1, 3))).await.unwrap();
        p.place_order(&buy("2", Decimal::new(1, 3))).await.unwrap();
        let err = p.place_order(&buy("3", Decimal::new(1, 3))).await.unwrap_err();
        assert!(matches!(err, ExchangeError::RateLimited { ret_code: 10006, .. }), "{err:?}");
        assert_eq!(p.rejections().rate_limit, 1);
        assert!(p.venue.order(None, Some("3")).is_none(), "a refused request places nothing");
    }
}
