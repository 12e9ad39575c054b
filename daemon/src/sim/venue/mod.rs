//! The simulated venue behind the paper exchange and the exchange double: one
//! account (one UID, one API key) trading spot and USDT-margined linear
//! perpetuals at the replayed price, with slippage and fees charged the way
//! Bybit charges them (a spot BUY pays its fee in the base coin it receives,
//! everything else in the quote coin), funds locked while an order is open,
//! orders confirmed asynchronously (New → PartiallyFilled → Filled over
//! `fill_delay`), limit orders resting until the price crosses them,
//! conditional orders waiting for their trigger (Untriggered → Triggered →
//! New → Filled, as Bybit reports them), and the venue's own request limits
//! per endpoint class.
//!
//! Nothing here speaks a wire protocol: `paper.rs` calls it in-process, the
//! double's dialects (`double/`) put Bybit V5's and Binance's HTTP on it.
//! Time moves lazily: every call first settles what became due (`advance`),
//! so what a client observes is always what the clock says.

mod account;
mod faults;
mod limits;
mod matching;
mod orders;
mod settings;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::exchange::{Category, ForcedClose, Instrument};
use crate::market::replay::PriceSource;

pub use account::{AccountSetup, ForcedCloseSetup, Position};
pub use faults::{Faults, LoggedRequest, Rejections};
use limits::Window;
pub use limits::{LimitClass, LimitStatus, Refusal};
pub use orders::{Execution, OrderKind, PlaceError, Placement, VenueOrder, VenueStatus};
pub use settings::VenueSettings;

/// A change a private stream reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Order(VenueOrder),
    Execution(Execution),
    /// The venue closed a position by force (no order of the account's).
    ForcedClose(Execution, ForcedClose),
    Wallet,
    Position(String),
}

struct State {
    balances: BTreeMap<String, Decimal>,
    locked: BTreeMap<String, Decimal>,
    positions: BTreeMap<String, Position>,
    orders: Vec<VenueOrder>,
    by_link: HashMap<String, usize>,
    executions: Vec<Execution>,
    windows: BTreeMap<LimitClass, Window>,
    banned_until: Option<Instant>,
    faults: Faults,
    rejections: Rejections,
    log: VecDeque<LoggedRequest>,
    events: Vec<Event>,
    next_seq: u64,
    /// What the account borrowed per coin (a unified account's spotBorrow).
    borrowed: BTreeMap<String, Decimal>,
    /// The account keeps a long and a short leg per symbol.
    hedge_mode: bool,
    /// Last prices a test set, in place of the replay's.
    last_prices: BTreeMap<String, Decimal>,
}

pub struct Venue {
    pub settings: VenueSettings,
    base: String,
    quote: String,
    instruments: BTreeMap<(Category, String), Instrument>,
    prices: Arc<dyn PriceSource>,
    state: Mutex<State>,
    /// Wakes the private streams when `events` grew.
    pub changed: tokio::sync::Notify,
    /// Bumped to drop every stream connection (a fault).
    stream_generation: std::sync::atomic::AtomicU64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Venue {
    pub fn new(settings: VenueSettings, symbol: &str, base: &str, quote: &str, prices: Arc<dyn PriceSource>) -> Venue {
        let mut balances = BTreeMap::new();
        for (asset, amount) in &settings.initial {
            balances.insert(asset.clone(), *amount);
        }
        balances.entry(base.to_owned()).or_insert(Decimal::ZERO);
        balances.entry(quote.to_owned()).or_insert(Decimal::ZERO);
        let mut instruments = BTreeMap::new();
        // Bybit's rules for BTCUSDT: spot in steps of 0.0001 (the paper
        // exchange's since 0.1.0), the perpetual in steps of 0.001.
        instruments.insert(
            (Category::Spot, symbol.to_owned()),
            Instrument {
                symbol: symbol.to_owned(),
                base: base.to_owned(),
                quote: quote.to_owned(),
                qty_step: Decimal::new(1, 4),
                min_qty: Decimal::new(1, 4),
                min_notional: Decimal::new(5, 0),
                tick_size: Decimal::new(1, 1),
            },
        );
        instruments.insert(
            (Category::Linear, symbol.to_owned()),
            Instrument {
                symbol: symbol.to_owned(),
                base: base.to_owned(),
                quote: quote.to_owned(),
                qty_step: Decimal::new(1, 3),
                min_qty: Decimal::new(1, 3),
                min_notional: Decimal::new(5, 0),
                tick_size: Decimal::new(1, 1),
            },
        );
        let windows = settings.limits.iter().map(|(class, l)| (*class, Window::new(*l))).collect();
        Venue {
            settings,
            base: base.to_owned(),
            quote: quote.to_owned(),
            instruments,
            prices,
            state: Mutex::new(State {
                balances,
                locked: BTreeMap::new(),
                positions: BTreeMap::new(),
                orders: Vec::new(),
                by_link: HashMap::new(),
                executions: Vec::new(),
                windows,
                banned_until: None,
                faults: Faults::default(),
                rejections: Rejections::default(),
                log: VecDeque::new(),
                events: Vec::new(),
                next_seq: 1,
                borrowed: BTreeMap::new(),
                hedge_mode: false,
                last_prices: BTreeMap::new(),
            }),
            changed: tokio::sync::Notify::new(),
            stream_generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Changes whenever the streams are to be dropped.
    pub fn stream_generation(&self) -> u64 {
        self.stream_generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn instrument(&self, category: Category, symbol: &str) -> Option<Instrument> {
        self.instruments.get(&(category, symbol.to_owned())).cloned()
    }

    pub fn instruments(&self, category: Category) -> Vec<Instrument> {
        self.instruments.iter().filter(|((c, _), _)| *c == category).map(|(_, i)| i.clone()).collect()
    }

    pub fn price(&self, symbol: &str) -> Option<Decimal> {
        let set = self.state().last_prices.get(symbol).copied();
        set.or_else(|| self.prices.price(symbol))
    }

    /// The last price with the state held.
    fn price_in(&self, s: &State, symbol: &str) -> Option<Decimal> {
        s.last_prices.get(symbol).copied().or_else(|| self.prices.price(symbol))
    }

    /// Market time (the replay's clock on a replayed venue).
    pub fn market_now(&self) -> DateTime<Utc> {
        self.prices.market_now()
    }

    /// The one-minute bars behind the prices, oldest first (None: none).
    pub fn market_bars(&self, symbol: &str) -> Option<&[crate::market::Bar]> {
        self.prices.bars(symbol)
    }

    /// Events since `from` (an index into the venue's event log) and the next index.
    pub fn events_since(&self, from: usize) -> (Vec<Event>, usize) {
        self.advance();
        let s = self.state();
        let from = from.min(s.events.len());
        (s.events[from..].to_vec(), s.events.len())
    }

    pub fn event_count(&self) -> usize {
        self.state().events.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::exchange::{Side, Trigger, TriggerDirection};

    pub(crate) struct Fixed(pub Mutex<Decimal>);
    impl PriceSource for Fixed {
        fn price(&self, _: &str) -> Option<Decimal> {
            Some(*self.0.lock().unwrap())
        }
        fn market_now(&self) -> DateTime<Utc> {
            Utc::now()
        }
    }

    pub(crate) fn settings(fill_delay: Duration) -> VenueSettings {
        VenueSettings {
            initial: vec![("USDT".into(), Decimal::new(1000, 0))],
            taker_fee: Decimal::new(1, 3),
            maker_fee: Decimal::new(5, 4),
            slippage_bps: Decimal::ZERO,
            fill_delay,
            limits: vec![(LimitClass::Order, (2, Duration::from_secs(60)))],
            ban: Duration::from_secs(600),
            leverage: Decimal::ONE,
            api_key: "k".into(),
            api_secret: "s".into(),
            key_can_withdraw: false,
        }
    }

    fn venue(fill_delay: Duration) -> (Venue, Arc<Fixed>) {
        let prices = Arc::new(Fixed(Mutex::new(Decimal::new(40_000, 0))));
        (Venue::new(settings(fill_delay), "BTCUSDT", "BTC", "USDT", prices.clone()), prices)
    }

    fn buy(category: Category, qty: Decimal, link: &str) -> Placement {
        Placement {
            category,
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            kind: OrderKind::Market,
            qty,
            quote_qty: false,
            price: None,
            trigger: None,
            link_id: Some(link.into()),
            reduce_only: false,
            link_unique_while_open: false,
        }
    }

    #[test]
    fn a_spot_buy_pays_its_fee_in_the_base_coin() {
        let (v, _) = venue(Duration::ZERO);
        let o = v.place(&buy(Category::Spot, Decimal::new(1, 2), "a")).unwrap();
        assert_eq!(o.status, VenueStatus::Filled);
        assert_eq!(o.fee_asset, "BTC");
        let b = v.balances();
        assert_eq!(b["USDT"], Decimal::new(600, 0));
        assert_eq!(b["BTC"], Decimal::new(999, 5)); // 0.01 - 0.00001
        assert_eq!(v.wallet().iter().find(|w| w.0 == "USDT").unwrap().2, Decimal::ZERO, "nothing stays locked");
    }

    #[test]
    fn orders_fill_over_time_and_lock_funds_meanwhile() {
        let (v, _) = venue(Duration::from_millis(200));
        let o = v.place(&buy(Category::Spot, Decimal::new(1, 2), "a")).unwrap();
        assert_eq!(o.status, VenueStatus::New);
        let err = v.place(&buy(Category::Spot, Decimal::new(2, 2), "b")).unwrap_err();
        assert!(matches!(err, PlaceError::InsufficientBalance(_)), "the first order's 400 USDT are locked: {err:?}");
        std::thread::sleep(Duration::from_millis(120));
        let o = v.order(None, Some("a")).unwrap();
        assert_eq!((o.status, o.cum_qty), (VenueStatus::PartiallyFilled, Decimal::new(5, 3)));
        std::thread::sleep(Duration::from_millis(100));
        let o = v.order(None, Some("a")).unwrap();
        assert_eq!((o.status, o.cum_qty), (VenueStatus::Filled, Decimal::new(1, 2)));
        assert_eq!(v.executions().len(), 2);
    }

    #[test]
    fn a_limit_order_rests_until_the_price_crosses_and_can_be_cancelled() {
        let (v, prices) = venue(Duration::ZERO);
        let mut p = buy(Category::Spot, Decimal::new(1, 2), "l");
        p.kind = OrderKind::Limit;
        p.price = Some(Decimal::new(39_000, 0));
        assert_eq!(v.place(&p).unwrap().status, VenueStatus::New);
        *prices.0.lock().unwrap() = Decimal::new(38_900, 0);
        let o = v.order(None, Some("l")).unwrap();
        assert_eq!((o.status, o.avg_price()), (VenueStatus::Filled, Decimal::new(39_000, 0)));
        p.link_id = Some("m".into());
        p.price = Some(Decimal::new(38_000, 0));
        assert_eq!(v.place(&p).unwrap().status, VenueStatus::New);
        let c = v.cancel(Category::Spot, None, Some("m")).unwrap();
        assert_eq!(c.status, VenueStatus::Cancelled);
        assert!(v.cancel(Category::Spot, None, Some("m")).is_none(), "a closed order cannot be cancelled again");
    }

    #[test]
    fn a_conditional_order_waits_for_its_trigger_then_fills_as_bybit_reports() {
        let (v, prices) = venue(Duration::ZERO);
        let mut p = buy(Category::Linear, Decimal::new(1, 2), "t");
        p.trigger = Some(Trigger { price: Decimal::new(39_000, 0), direction: TriggerDirection::Rises });
        let refused = v.place(&p).unwrap_err();
        assert!(matches!(&refused, PlaceError::Invalid(m) if m.contains("expect Rising")), "{refused:?}");
        p.trigger = Some(Trigger { price: Decimal::new(41_000, 0), direction: TriggerDirection::Rises });
        let placed = v.place(&p).unwrap();
        assert_eq!((placed.status, placed.cum_qty), (VenueStatus::Untriggered, Decimal::ZERO));
        *prices.0.lock().unwrap() = Decimal::new(40_900, 0);
        assert_eq!(v.order(None, Some("t")).unwrap().status, VenueStatus::Untriggered);
        *prices.0.lock().unwrap() = Decimal::new(41_000, 0);
        let filled = v.order(None, Some("t")).unwrap();
        assert_eq!((filled.status, filled.avg_price()), (VenueStatus::Filled, Decimal::new(41_000, 0)));
        let (events, _) = v.events_since(0);
        let statuses: Vec<VenueStatus> =
            events.iter().filter_map(|e| if let Event::Order(o) = e { Some(o.status) } else { None }).collect();
        assert_eq!(
            statuses,
            [VenueStatus::Untriggered, VenueStatus::Triggered, VenueStatus::New, VenueStatus::Filled],
            "the passages the private stream pushes"
        );
    }

    #[test]
    fn a_linear_round_trip_realises_its_pnl() {
        let (v, prices) = venue(Duration::ZERO);
        v.place(&buy(Category::Linear, Decimal::new(1, 2), "o")).unwrap();
        assert_eq!(v.positions()["BTCUSDT"].size, Decimal::new(1, 2));
        *prices.0.lock().unwrap() = Decimal::new(41_000, 0);
        let mut close = buy(Category::Linear, Decimal::new(1, 2), "c");
        close.side = Side::Sell;
        close.reduce_only = true;
        v.place(&close).unwrap();
        assert!(v.positions().is_empty());
        // +10 USDT, fees 0.4 + 0.41.
        assert_eq!(v.balances()["USDT"], Decimal::new(100919, 2));
    }

    #[test]
    fn ids_are_used_once_and_limits_refuse() {
        let (v, _) = venue(Duration::ZERO);
        v.place(&buy(Category::Spot, Decimal::new(1, 3), "x")).unwrap();
        assert_eq!(v.place(&buy(Category::Spot, Decimal::new(1, 3), "x")), Err(PlaceError::DuplicateLinkId));
        assert!(v.admit(&[LimitClass::Order]).is_ok());
        assert!(v.admit(&[LimitClass::Order]).is_ok());
        assert!(matches!(v.admit(&[LimitClass::Order]), Err(Refusal::TooManyVisits { .. })));
        assert_eq!(v.limit_status(LimitClass::Order).unwrap().remaining, 0);
    }
}
