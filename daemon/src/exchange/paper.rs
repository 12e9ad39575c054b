//! The paper exchange: a simulated spot account that fills market orders at
//! the replayed price, with slippage and a taker fee, keeps its own
//! balances, enforces its own request limits per account, and answers like
//! Bybit when they are broken (retCode 10006 "Too many visits!", 110007
//! insufficient balance, 110072 duplicate client order id).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::{
    ret_code, AssetBalance, Exchange, ExchangeError, Instrument, OrderRequest, OrderState, OrderStatus, Side, Wallet,
};
use crate::config::PaperConfig;
use crate::market::replay::PriceSource;

/// Which of the exchange's limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Order placement and cancellation (and the global limit).
    Order,
    /// Everything else (global limit only).
    Other,
}

/// A sliding window of request times.
struct Window {
    limit: u32,
    length: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    fn new((limit, length): (u32, Duration)) -> Window {
        Window { limit, length, sent: VecDeque::new() }
    }

    fn prune(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= self.length) {
            self.sent.pop_front();
        }
    }

    /// None when the request fits, else how long until it would.
    fn check(&mut self, now: Instant) -> Option<Duration> {
        self.prune(now);
        if (self.sent.len() as u32) < self.limit {
            None
        } else {
            let oldest = *self.sent.front().expect("full window");
            Some(self.length.saturating_sub(now.duration_since(oldest)))
        }
    }

    fn remaining(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.limit.saturating_sub(self.sent.len() as u32)
    }
}

/// The X-Bapi-Limit headers of a response.
#[derive(Debug, Clone, Copy)]
pub struct LimitStatus {
    pub remaining: u32,
    pub limit: u32,
    pub reset_at: DateTime<Utc>,
}

struct State {
    balances: BTreeMap<String, Decimal>,
    orders: HashMap<String, OrderState>,
    order_window: Window,
    global_window: Window,
    next_order_no: u64,
    /// Counters for the end-of-run report.
    rejected_rate_limit: u64,
    rejected_balance: u64,
}

/// Counters of what the exchange refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    pub rate_limit: u64,
    pub balance: u64,
}

pub struct PaperExchange {
    name: String,
    instrument: Instrument,
    taker_fee: Decimal,
    slippage: Decimal,
    prices: Arc<dyn PriceSource>,
    state: Mutex<State>,
}

impl PaperExchange {
    pub fn new(
        cfg: &PaperConfig,
        symbol: &str,
        base: &str,
        quote: &str,
        prices: Arc<dyn PriceSource>,
    ) -> PaperExchange {
        let mut balances = BTreeMap::new();
        for (asset, amount) in &cfg.initial {
            balances.insert(asset.clone(), *amount);
        }
        balances.entry(base.to_owned()).or_insert(Decimal::ZERO);
        balances.entry(quote.to_owned()).or_insert(Decimal::ZERO);
        PaperExchange {
            name: "paper".into(),
            instrument: Instrument {
                symbol: symbol.to_owned(),
                base: base.to_owned(),
                quote: quote.to_owned(),
                qty_step: Decimal::new(1, 4),
                min_qty: Decimal::new(1, 4),
                min_notional: Decimal::new(5, 0),
                tick_size: Decimal::new(1, 1),
            },
            taker_fee: cfg.taker_fee,
            slippage: cfg.slippage_bps / Decimal::new(10_000, 0),
            prices,
            state: Mutex::new(State {
                balances,
                orders: HashMap::new(),
                order_window: Window::new(cfg.order_limit),
                global_window: Window::new(cfg.global_limit),
                next_order_no: 1,
                rejected_rate_limit: 0,
                rejected_balance: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request against the limits; 10006 when a limit is full.
    pub fn admit(&self, endpoint: Endpoint) -> Result<(), ExchangeError> {
        let now = Instant::now();
        let mut s = self.state();
        let mut wait = s.global_window.check(now);
        if endpoint == Endpoint::Order {
            wait = wait.max(s.order_window.check(now));
        }
        if let Some(retry_after) = wait {
            s.rejected_rate_limit += 1;
            return Err(ExchangeError::RateLimited {
                ret_code: ret_code::TOO_MANY_VISITS,
                message: "Too many visits!".into(),
                retry_after,
            });
        }
        s.global_window.sent.push_back(now);
        if endpoint == Endpoint::Order {
            s.order_window.sent.push_back(now);
        }
        Ok(())
    }

    /// Remaining requests of the limit an endpoint counts against.
    pub fn limit_status(&self, endpoint: Endpoint) -> LimitStatus {
        let now = Instant::now();
        let mut s = self.state();
        let w = if endpoint == Endpoint::Order { &mut s.order_window } else { &mut s.global_window };
        let remaining = w.remaining(now);
        let reset_in = w.sent.front().map_or(Duration::ZERO, |t| w.length.saturating_sub(now.duration_since(*t)));
        LimitStatus {
            remaining,
            limit: w.limit,
            reset_at: Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default(),
        }
    }

    pub fn rejections(&self) -> Rejections {
        let s = self.state();
        Rejections { rate_limit: s.rejected_rate_limit, balance: s.rejected_balance }
    }

    /// Account value in quote currency at the current price.
    pub fn equity(&self) -> Option<Decimal> {
        let price = self.prices.price(&self.instrument.symbol)?;
        let s = self.state();
        let quote = s.balances.get(&self.instrument.quote).copied().unwrap_or_default();
        let base = s.balances.get(&self.instrument.base).copied().unwrap_or_default();
        Some(quote + base * price)
    }

    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.state().balances.clone()
    }

    /// Fills a market order (limits already admitted).
    pub fn fill(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        if order.symbol != self.instrument.symbol {
            return Err(ExchangeError::Rejected {
                ret_code: ret_code::PARAMS_ERROR,
                message: format!("symbol {} is not traded here", order.symbol),
            });
        }
        let Some(price) = self.prices.price(&order.symbol) else {
            return Err(ExchangeError::Rejected {
                ret_code: ret_code::PARAMS_ERROR,
                message: "no market price".into(),
            });
        };
        if order.qty <= Decimal::ZERO || order.qty < self.instrument.min_qty {
            return Err(ExchangeError::Rejected {
                ret_code: ret_code::PARAMS_ERROR,
                message: format!("qty {} is below the minimum {}", order.qty, self.instrument.min_qty),
            });
        }
        let slipped = match order.side {
            Side::Buy => price * (Decimal::ONE + self.slippage),
            Side::Sell => price * (Decimal::ONE - self.slippage),
        };
        let avg_price = (slipped / self.instrument.tick_size)
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            * self.instrument.tick_size;
        let notional = order.qty * avg_price;
        let fee = (notional * self.taker_fee).round_dp(8);
        let (base, quote) = (self.instrument.base.clone(), self.instrument.quote.clone());
        let mut s = self.state();
        if s.orders.contains_key(&order.client_order_id) {
            return Err(ExchangeError::DuplicateOrder { client_order_id: order.client_order_id.clone() });
        }
        let (spend_asset, spend, gain_asset, gain) = match order.side {
            Side::Buy => (quote, notional + fee, base, order.qty),
            Side::Sell => (base, order.qty, quote, notional - fee),
        };
        let have = s.balances.get(&spend_asset).copied().unwrap_or_default();
        if have < spend {
            s.rejected_balance += 1;
            return Err(ExchangeError::InsufficientBalance {
                ret_code: ret_code::INSUFFICIENT_BALANCE,
                message: format!("Insufficient available balance: {spend_asset} {have} < {spend}"),
            });
        }
        *s.balances.entry(spend_asset).or_default() -= spend;
        *s.balances.entry(gain_asset).or_default() += gain;
        let exchange_order_id = format!("paper-{}", s.next_order_no);
        s.next_order_no += 1;
        let state = OrderState {
            exchange_order_id,
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            status: OrderStatus::Filled,
            qty: order.qty,
            filled_qty: order.qty,
            avg_price,
            fee,
        };
        s.orders.insert(order.client_order_id.clone(), state.clone());
        Ok(state)
    }

    /// Every order, in the order the exchange took them.
    pub fn all_orders(&self) -> Vec<OrderState> {
        let mut all: Vec<OrderState> = self.state().orders.values().cloned().collect();
        all.sort_by_key(|o| o.exchange_order_id.trim_start_matches("paper-").parse::<u64>().unwrap_or(0));
        all
    }

    pub fn find(&self, client_order_id: &str) -> Option<OrderState> {
        self.state().orders.get(client_order_id).cloned()
    }

    pub fn snapshot(&self) -> Wallet {
        let s = self.state();
        Wallet {
            // The exchange's wall clock: botai compares it with commit times.
            as_of: Utc::now(),
            assets: s
                .balances
                .iter()
                .map(|(asset, amount)| AssetBalance {
                    asset: asset.clone(),
                    total: *amount,
                    available: *amount,
                    locked: Decimal::ZERO,
                })
                .collect(),
        }
    }

    pub fn instrument_rules(&self) -> Instrument {
        self.instrument.clone()
    }
}

#[async_trait]
impl Exchange for PaperExchange {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        self.admit(Endpoint::Order)?;
        self.fill(order)
    }

    async fn order(&self, _symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        self.admit(Endpoint::Other)?;
        Ok(self.find(client_order_id))
    }

    async fn cancel_order(&self, _symbol: &str, client_order_id: &str) -> Result<(), ExchangeError> {
        self.admit(Endpoint::Order)?;
        // Market orders fill at once: there is never anything to cancel.
        Err(ExchangeError::Rejected {
            ret_code: ret_code::ORDER_NOT_EXISTS,
            message: format!("order {client_order_id} does not exist or is too late to cancel"),
        })
    }

    async fn wallet(&self) -> Result<Wallet, ExchangeError> {
        self.admit(Endpoint::Other)?;
        Ok(self.snapshot())
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
        Ok(Utc::now())
    }

    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError> {
        if symbol != self.instrument.symbol {
            return Err(ExchangeError::Rejected {
                ret_code: ret_code::PARAMS_ERROR,
                message: format!("symbol {symbol} is not traded here"),
            });
        }
        Ok(self.instrument.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Decimal);
    impl PriceSource for Fixed {
        fn price(&self, _: &str) -> Option<Decimal> {
            Some(self.0)
        }
        fn market_now(&self) -> DateTime<Utc> {
            Utc::now()
        }
    }

    fn paper(order_limit: u32) -> PaperExchange {
        let cfg = PaperConfig {
            initial: vec![("USDT".into(), Decimal::new(1000, 0))],
            taker_fee: Decimal::new(1, 3),
            slippage_bps: Decimal::ZERO,
            order_limit: (order_limit, Duration::from_secs(60)),
            global_limit: (100, Duration::from_secs(60)),
            listen: None,
        };
        PaperExchange::new(&cfg, "BTCUSDT", "BTC", "USDT", Arc::new(Fixed(Decimal::new(40_000, 0))))
    }

    fn buy(id: &str, qty: Decimal) -> OrderRequest {
        OrderRequest { client_order_id: id.into(), symbol: "BTCUSDT".into(), side: Side::Buy, qty }
    }

    #[tokio::test]
    async fn fills_debit_the_account_with_fee_and_refuse_overdraw() {
        let p = paper(10);
        let f = p.place_order(&buy("a", Decimal::new(2, 2))).await.unwrap();
        assert_eq!(f.avg_price, Decimal::new(40_000, 0));
        assert_eq!(f.fee, Decimal::new(8, 1)); // 800 * 0.001
        assert_eq!(p.balances()["USDT"], Decimal::new(1992, 1)); // 1000 - 800 - 0.8
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
        assert!(p.find("3").is_none(), "a refused request places nothing");
    }
}
