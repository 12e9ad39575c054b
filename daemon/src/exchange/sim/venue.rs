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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::exchange::config::PaperConfig;
use crate::exchange::{Category, ForcedClose, Instrument, Side, Trigger, TriggerDirection};
use crate::market::replay::PriceSource;

/// A request limit of the venue, per endpoint class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LimitClass {
    /// Every request from the address (Bybit: 600 per 5 s; broken → HTTP 403
    /// and a ban).
    Ip,
    /// Every request of the account (the paper exchange's global limit;
    /// broken → 10006).
    Account,
    /// Order create, amend, cancel.
    Order,
    /// Order and execution queries.
    OrderQuery,
    /// Wallet, positions, account and key information.
    Wallet,
    /// Binance: request weight per minute of the address (broken → 429).
    Weight,
    /// Binance: orders per 10 s of the account.
    Orders10s,
    /// Binance: orders per minute of the account.
    Orders1m,
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
}

/// What a venue's limit headers say after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    pub remaining: u32,
    pub limit: u32,
    /// When the window has room again (now when it has).
    pub reset_at: DateTime<Utc>,
}

/// Why the venue refused to serve a request at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// An endpoint limit: answer 10006 / HTTP 429.
    TooManyVisits { retry_after: Duration },
    /// The address is banned (Bybit HTTP 403, Binance 418) for this long.
    Banned { retry_after: Duration },
}

/// Faults a test asks for; each counter is spent by the requests it hits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Accept the next N orders, then never answer (the client times out).
    pub hang_after_accept: u32,
    /// Accept the next N orders, then answer HTTP 502.
    pub error_5xx_after_accept: u32,
    /// Answer the next N requests HTTP 503 without doing anything.
    pub error_5xx: u32,
    /// Accept the next N orders, then answer retCode 10016 (server error).
    pub ret_10016_after_accept: u32,
    /// Answer the next N requests 10006 / 429 whatever the windows say.
    pub too_many_visits: u32,
    /// Ban the address for this many seconds, starting now.
    pub ban_seconds: Option<f64>,
    /// Drop every WebSocket connection now.
    pub drop_streams: bool,
    /// Send each of the next N pushes twice, the second copy after the next push.
    pub duplicate_pushes: u32,
}

/// How an order executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    Market,
    Limit,
}

/// The states of an order, with Bybit's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VenueStatus {
    /// A conditional order waiting for its trigger.
    Untriggered,
    /// The trigger was reached: the order goes to the book as New (a
    /// passage, never where an order stays).
    Triggered,
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    PartiallyFilledCanceled,
    Rejected,
}

impl VenueStatus {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            VenueStatus::Untriggered | VenueStatus::Triggered | VenueStatus::New | VenueStatus::PartiallyFilled
        )
    }
}

/// An order as a client asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub kind: OrderKind,
    /// In the base coin, or in the quote coin when `quote_qty` (a spot
    /// market BUY by amount spent, Bybit's default for that order).
    pub qty: Decimal,
    pub quote_qty: bool,
    pub price: Option<Decimal>,
    /// A conditional order: it waits, holding its funds, until the last
    /// price reaches the trigger (Bybit holds no margin for an untriggered
    /// order; the double holds it from the start, the stricter reading).
    pub trigger: Option<Trigger>,
    pub link_id: Option<String>,
    pub reduce_only: bool,
    /// Binance's rule: a client order id is unique among open orders only
    /// (Bybit's: for good).
    pub link_unique_while_open: bool,
}

/// Why an order was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceError {
    /// A parameter the venue refuses (Bybit 10001 and neighbours).
    Invalid(String),
    /// Not enough available balance (Bybit 110007).
    InsufficientBalance(String),
    /// The client order id was used before (Bybit 110072).
    DuplicateLinkId,
}

/// One execution (a fill, whole or partial).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub exec_id: String,
    pub order_id: String,
    pub link_id: String,
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub fee_asset: String,
    pub time_ms: i64,
    /// What the execution realised (a linear position's closing part).
    pub realised_pnl: Decimal,
}

/// An order as the venue keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueOrder {
    pub seq: u64,
    pub order_id: String,
    pub link_id: String,
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub kind: OrderKind,
    /// Base quantity (for a quote-amount market BUY: 0 until it fills).
    pub qty: Decimal,
    /// The quote amount of a quote-amount market BUY.
    pub quote_amount: Option<Decimal>,
    pub price: Option<Decimal>,
    pub trigger: Option<Trigger>,
    pub status: VenueStatus,
    pub cum_qty: Decimal,
    pub cum_value: Decimal,
    pub cum_fee: Decimal,
    pub fee_asset: String,
    pub reduce_only: bool,
    pub reject_reason: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(skip)]
    created: Instant,
    /// Funds still locked for the order: (asset, amount).
    #[serde(skip)]
    locked: (String, Decimal),
}

impl VenueOrder {
    pub fn avg_price(&self) -> Decimal {
        if self.cum_qty.is_zero() {
            Decimal::ZERO
        } else {
            (self.cum_value / self.cum_qty).round_dp(8).normalize()
        }
    }

    pub fn leaves_qty(&self) -> Decimal {
        if self.status.is_open() {
            (self.qty - self.cum_qty).max(Decimal::ZERO)
        } else {
            Decimal::ZERO
        }
    }
}

/// A linear position: signed size (long > 0) and average entry price.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Position {
    pub size: Decimal,
    pub entry_price: Decimal,
    pub realised_pnl: Decimal,
}

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

/// What a test sets up in the account, as the venue would have it
/// (`POST /botai-double/account`): borrowing, a position opened elsewhere,
/// hedge mode, a forced close.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSetup {
    /// Per coin: what the account borrowed (counted in walletBalance).
    #[serde(default)]
    pub borrow: Option<BTreeMap<String, Decimal>>,
    #[serde(default)]
    pub hedge_mode: Option<bool>,
    /// A position opened outside botai: symbol, signed size, entry price.
    #[serde(default)]
    pub position: Option<(String, Decimal, Decimal)>,
    #[serde(default)]
    pub forced_close: Option<ForcedCloseSetup>,
    /// The market's last price for a symbol from now on, in place of the
    /// replay's (a conditional order's trigger reached on cue).
    #[serde(default)]
    pub last_price: Option<(String, Decimal)>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedCloseSetup {
    pub kind: ForcedClose,
    pub symbol: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
}

/// One request as the double received it (for the request-equality tests).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub api_key: Option<String>,
    pub signature_valid: Option<bool>,
    pub status: u16,
    pub code: i64,
}

/// Counters of what the venue refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rejections {
    pub rate_limit: u64,
    pub balance: u64,
    pub banned: u64,
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

    /// Counts a request against the limits of `classes`; refuses it when
    /// one is full (a full `Ip` window bans the address) or the address is
    /// banned.
    pub fn admit(&self, classes: &[LimitClass]) -> Result<(), Refusal> {
        self.admit_weighted(classes, 1)
    }

    /// `admit` for a request of `weight` (Binance's request weights).
    pub fn admit_weighted(&self, classes: &[LimitClass], weight: u32) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut s = self.state();
        if let Some(until) = s.banned_until {
            if until > now {
                s.rejections.banned += 1;
                return Err(Refusal::Banned { retry_after: until - now });
            }
            s.banned_until = None;
        }
        // The fault stands for an endpoint limit: not the address's.
        if s.faults.too_many_visits > 0 && classes.iter().any(|c| *c != LimitClass::Ip) {
            s.faults.too_many_visits -= 1;
            s.rejections.rate_limit += 1;
            return Err(Refusal::TooManyVisits { retry_after: Duration::from_secs(1) });
        }
        for class in classes {
            let Some(w) = s.windows.get_mut(class) else { continue };
            let wait = if w.limit < weight {
                Some(w.length)
            } else {
                w.prune(now);
                (w.sent.len() as u32 + weight > w.limit).then(|| {
                    let oldest = w.sent.front().copied().unwrap_or(now);
                    w.length.saturating_sub(now.duration_since(oldest))
                })
            };
            if let Some(retry_after) = wait {
                if *class == LimitClass::Ip {
                    s.banned_until = Some(now + self.settings.ban);
                    s.rejections.banned += 1;
                    return Err(Refusal::Banned { retry_after: self.settings.ban });
                }
                s.rejections.rate_limit += 1;
                return Err(Refusal::TooManyVisits { retry_after });
            }
        }
        for class in classes {
            if let Some(w) = s.windows.get_mut(class) {
                for _ in 0..weight {
                    w.sent.push_back(now);
                }
            }
        }
        Ok(())
    }

    /// How much of `class`'s window is used now (Binance's used-weight and
    /// order-count headers).
    pub fn used(&self, class: LimitClass) -> Option<u32> {
        let now = Instant::now();
        let mut s = self.state();
        let w = s.windows.get_mut(&class)?;
        w.prune(now);
        Some(w.sent.len() as u32)
    }

    /// What the limit headers of `class` say now.
    pub fn limit_status(&self, class: LimitClass) -> Option<LimitStatus> {
        let now = Instant::now();
        let mut s = self.state();
        let w = s.windows.get_mut(&class)?;
        w.prune(now);
        let remaining = w.limit.saturating_sub(w.sent.len() as u32);
        let reset_in = if remaining > 0 {
            Duration::ZERO
        } else {
            w.sent.front().map_or(Duration::ZERO, |t| w.length.saturating_sub(now.duration_since(*t)))
        };
        Some(LimitStatus {
            remaining,
            limit: w.limit,
            reset_at: Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default(),
        })
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.state();
        if let Some(seconds) = faults.ban_seconds.filter(|s| s.is_finite() && *s > 0.0) {
            s.banned_until = Some(Instant::now() + Duration::from_secs_f64(seconds.min(86_400.0)));
        }
        s.faults = Faults { ban_seconds: None, drop_streams: false, ..faults.clone() };
        drop(s);
        if faults.drop_streams {
            self.stream_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// Spends one unit of a fault counter, if any is left.
    pub fn take_fault(&self, pick: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
        let mut s = self.state();
        let counter = pick(&mut s.faults);
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }

    pub fn log_request(&self, request: LoggedRequest) {
        let mut s = self.state();
        if s.log.len() >= 20_000 {
            s.log.pop_front();
        }
        s.log.push_back(request);
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    pub fn rejections(&self) -> Rejections {
        self.state().rejections
    }

    pub fn count_rejection(&self, balance: bool) {
        let mut s = self.state();
        if balance {
            s.rejections.balance += 1;
        } else {
            s.rejections.rate_limit += 1;
        }
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

    /// Wallet balance (total) of every asset.
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.advance();
        self.state().balances.clone()
    }

    /// (asset, total, locked) for every asset; locked includes the margin of
    /// open positions.
    pub fn wallet(&self) -> Vec<(String, Decimal, Decimal)> {
        self.advance();
        let s = self.state();
        let margin = self.position_margin(&s);
        s.balances
            .iter()
            .map(|(asset, total)| {
                let mut locked = s.locked.get(asset).copied().unwrap_or_default();
                if *asset == self.quote {
                    locked += margin;
                }
                (asset.clone(), *total, locked.min(*total))
            })
            .collect()
    }

    fn position_margin(&self, s: &State) -> Decimal {
        s.positions.values().map(|p| p.size.abs() * p.entry_price / self.settings.leverage).sum()
    }

    pub fn borrowed(&self) -> BTreeMap<String, Decimal> {
        self.state().borrowed.clone()
    }

    pub fn hedge_mode(&self) -> bool {
        self.state().hedge_mode
    }

    /// Sets up the account as a test asks (see [`AccountSetup`]).
    pub fn set_account(&self, setup: AccountSetup) -> Result<(), String> {
        let mut s = self.state();
        if let Some(borrow) = setup.borrow {
            s.borrowed = borrow.into_iter().filter(|(_, b)| *b > Decimal::ZERO).collect();
            s.events.push(Event::Wallet);
        }
        if let Some(hedge) = setup.hedge_mode {
            s.hedge_mode = hedge;
        }
        if let Some((symbol, price)) = setup.last_price {
            if price <= Decimal::ZERO {
                return Err("a last price must be positive".into());
            }
            s.last_prices.insert(symbol, price);
            self.advance_locked(&mut s);
        }
        if let Some((symbol, size, entry_price)) = setup.position {
            if entry_price <= Decimal::ZERO && !size.is_zero() {
                return Err("a position needs a positive entry price".into());
            }
            if size.is_zero() {
                s.positions.remove(&symbol);
            } else {
                let realised_pnl = s.positions.get(&symbol).map_or(Decimal::ZERO, |p| p.realised_pnl);
                s.positions.insert(symbol.clone(), Position { size, entry_price, realised_pnl });
            }
            s.events.push(Event::Position(symbol));
        }
        if let Some(f) = setup.forced_close {
            let Some(p) = s.positions.get_mut(&f.symbol) else {
                return Err(format!("no {} position to close", f.symbol));
            };
            if f.qty <= Decimal::ZERO || f.qty > p.size.abs() || f.price <= Decimal::ZERO {
                return Err(format!("a forced close of {} at {} does not fit the position {}", f.qty, f.price, p.size));
            }
            let long = p.size > Decimal::ZERO;
            let realised = f.qty * (f.price - p.entry_price) * if long { Decimal::ONE } else { -Decimal::ONE };
            p.size += if long { -f.qty } else { f.qty };
            p.realised_pnl += realised - f.fee;
            if p.size.is_zero() {
                s.positions.remove(&f.symbol);
            }
            let quote = self.quote.clone();
            *s.balances.entry(quote.clone()).or_default() += realised - f.fee;
            let seq = s.executions.len() + 1;
            let execution = Execution {
                exec_id: format!("exec-{seq:012}"),
                order_id: format!("forced-{seq}"),
                link_id: String::new(),
                category: Category::Linear,
                symbol: f.symbol.clone(),
                side: if long { Side::Sell } else { Side::Buy },
                qty: f.qty,
                price: f.price,
                fee: f.fee,
                fee_asset: quote,
                time_ms: now_ms(),
                realised_pnl: realised,
            };
            s.executions.push(execution.clone());
            s.events.push(Event::ForcedClose(execution, f.kind));
            s.events.push(Event::Wallet);
            s.events.push(Event::Position(f.symbol));
        }
        drop(s);
        self.changed.notify_waiters();
        Ok(())
    }

    pub fn positions(&self) -> BTreeMap<String, Position> {
        self.advance();
        self.state().positions.clone()
    }

    /// Account value in the quote coin at the current price.
    pub fn equity(&self, symbol: &str) -> Option<Decimal> {
        let price = self.price(symbol)?;
        self.advance();
        let s = self.state();
        let quote = s.balances.get(&self.quote).copied().unwrap_or_default();
        let base = s.balances.get(&self.base).copied().unwrap_or_default();
        let unrealised: Decimal = s.positions.values().map(|p| p.size * (price - p.entry_price)).sum();
        Some(quote + base * price + unrealised)
    }

    /// (account value, price, value of what the account holds in the
    /// market: base coins and the positions' notional), in the quote
    /// currency at the current price.
    pub fn mark(&self, symbol: &str) -> Option<(Decimal, Decimal, Decimal)> {
        let equity = self.equity(symbol)?;
        let price = self.price(symbol)?;
        let s = self.state();
        let base = s.balances.get(&self.base).copied().unwrap_or_default();
        let positions: Decimal = s.positions.values().map(|p| p.size.abs()).sum();
        Some((equity, price, (base + positions) * price))
    }

    fn available(&self, s: &State, asset: &str) -> Decimal {
        let total = s.balances.get(asset).copied().unwrap_or_default();
        let mut locked = s.locked.get(asset).copied().unwrap_or_default();
        if asset == self.quote {
            locked += self.position_margin(s);
        }
        total - locked
    }

    /// Accepts an order (funds locked) or refuses it; fills follow.
    pub fn place(&self, p: &Placement) -> Result<VenueOrder, PlaceError> {
        let instrument = self
            .instrument(p.category, &p.symbol)
            .ok_or_else(|| PlaceError::Invalid(format!("symbol {} is not traded in {}", p.symbol, p.category)))?;
        let market = self.price(&p.symbol).ok_or_else(|| PlaceError::Invalid("no market price yet".into()))?;
        if p.qty <= Decimal::ZERO {
            return Err(PlaceError::Invalid(format!("qty {} must be positive", p.qty)));
        }
        if let Some(id) = &p.link_id {
            if id.is_empty()
                || id.len() > 36
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(PlaceError::Invalid("orderLinkId must be 1 to 36 letters, digits, - or _".into()));
            }
        }
        let price = match (p.kind, p.price) {
            (OrderKind::Limit, Some(price)) if price > Decimal::ZERO => {
                if !(price / instrument.tick_size).fract().is_zero() {
                    return Err(PlaceError::Invalid(format!(
                        "price {price} is not a multiple of the tick size {}",
                        instrument.tick_size
                    )));
                }
                price
            }
            (OrderKind::Limit, _) => return Err(PlaceError::Invalid("a Limit order needs a positive price".into())),
            (OrderKind::Market, _) => market,
        };
        // Bybit refuses a trigger already reached: "expect Rising, but
        // trigger_price[…] <= current[…]" (and Falling the other way).
        let price = match p.trigger {
            Some(t) if t.price <= Decimal::ZERO => {
                return Err(PlaceError::Invalid("triggerPrice must be positive".into()))
            }
            Some(t) if t.reached(market) => {
                let (expect, cmp) = match t.direction {
                    TriggerDirection::Rises => ("Rising", "<="),
                    TriggerDirection::Falls => ("Falling", ">="),
                };
                return Err(PlaceError::Invalid(format!(
                    "expect {expect}, but trigger_price[{}] {cmp} current[{market}]",
                    t.price
                )));
            }
            Some(t) if p.kind == OrderKind::Market => t.price,
            _ => price,
        };
        let quote_amount = (p.quote_qty && p.kind == OrderKind::Market && p.side == Side::Buy).then_some(p.qty);
        let qty = match quote_amount {
            Some(_) => Decimal::ZERO,
            None => {
                if !(p.qty / instrument.qty_step).fract().is_zero() {
                    return Err(PlaceError::Invalid(format!(
                        "qty {} is not a multiple of the step {}",
                        p.qty, instrument.qty_step
                    )));
                }
                if p.qty < instrument.min_qty {
                    return Err(PlaceError::Invalid(format!(
                        "qty {} is below the minimum {}",
                        p.qty, instrument.min_qty
                    )));
                }
                p.qty
            }
        };
        let notional = quote_amount.unwrap_or(qty * price);
        if notional < instrument.min_notional {
            return Err(PlaceError::Invalid(format!(
                "order value {notional} is below the minimum {}",
                instrument.min_notional
            )));
        }
        let slip = Decimal::ONE + self.settings.slippage_bps * Decimal::new(2, 4);
        let (lock_asset, lock) = match (p.category, p.side) {
            (Category::Spot, Side::Buy) => (
                self.quote.clone(),
                quote_amount.unwrap_or(qty * price * if p.kind == OrderKind::Market { slip } else { Decimal::ONE }),
            ),
            (Category::Spot, Side::Sell) => (self.base.clone(), qty),
            (Category::Linear, _) => {
                let reducing = {
                    let s = self.state();
                    let size = s.positions.get(&p.symbol).map_or(Decimal::ZERO, |x| x.size);
                    (p.side == Side::Sell && size > Decimal::ZERO) || (p.side == Side::Buy && size < Decimal::ZERO)
                };
                if p.reduce_only && !reducing {
                    return Err(PlaceError::Invalid("reduce-only order would increase the position".into()));
                }
                let margin = if reducing { Decimal::ZERO } else { notional * slip / self.settings.leverage };
                (self.quote.clone(), margin + notional * slip * self.settings.taker_fee)
            }
        };
        let lock = lock.round_dp_with_strategy(8, RoundingStrategy::AwayFromZero);
        let mut s = self.state();
        if let Some(id) = &p.link_id {
            if let Some(&i) = s.by_link.get(id) {
                if !p.link_unique_while_open || s.orders[i].status.is_open() {
                    return Err(PlaceError::DuplicateLinkId);
                }
            }
        }
        let available = self.available(&s, &lock_asset);
        if available < lock {
            s.rejections.balance += 1;
            return Err(PlaceError::InsufficientBalance(format!(
                "Insufficient balance: {lock_asset} available {available}, needed {lock}"
            )));
        }
        *s.locked.entry(lock_asset.clone()).or_default() += lock;
        let seq = s.next_seq;
        s.next_seq += 1;
        let order_id = format!("{:08x}-double-{seq:012}", 0xb07a1u32);
        let link_id = p.link_id.clone().unwrap_or_default();
        let fee_asset = match (p.category, p.side) {
            (Category::Spot, Side::Buy) => self.base.clone(),
            _ => self.quote.clone(),
        };
        let ts = now_ms();
        let order = VenueOrder {
            seq,
            order_id,
            link_id: link_id.clone(),
            category: p.category,
            symbol: p.symbol.clone(),
            side: p.side,
            kind: p.kind,
            qty,
            quote_amount,
            price: (p.kind == OrderKind::Limit).then_some(price),
            trigger: p.trigger,
            status: if p.trigger.is_some() { VenueStatus::Untriggered } else { VenueStatus::New },
            cum_qty: Decimal::ZERO,
            cum_value: Decimal::ZERO,
            cum_fee: Decimal::ZERO,
            fee_asset,
            reduce_only: p.reduce_only,
            reject_reason: None,
            created_ms: ts,
            updated_ms: ts,
            created: Instant::now(),
            locked: (lock_asset, lock),
        };
        let index = s.orders.len();
        if !link_id.is_empty() {
            s.by_link.insert(link_id, index);
        }
        s.orders.push(order.clone());
        s.events.push(Event::Order(order.clone()));
        self.advance_locked(&mut s);
        let now = s.orders[index].clone();
        drop(s);
        self.changed.notify_waiters();
        Ok(now)
    }

    /// Cancels an open order; None when there is no such open order.
    pub fn cancel(&self, category: Category, order_id: Option<&str>, link_id: Option<&str>) -> Option<VenueOrder> {
        self.advance();
        let mut s = self.state();
        let index = Self::find_index(&s, order_id, link_id)?;
        let o = &mut s.orders[index];
        if o.category != category || !o.status.is_open() {
            return None;
        }
        o.status = if o.cum_qty.is_zero() { VenueStatus::Cancelled } else { VenueStatus::PartiallyFilledCanceled };
        o.updated_ms = now_ms();
        let (asset, amount) = std::mem::replace(&mut o.locked, (String::new(), Decimal::ZERO));
        let order = o.clone();
        *s.locked.entry(asset).or_default() -= amount;
        s.events.push(Event::Order(order.clone()));
        s.events.push(Event::Wallet);
        drop(s);
        self.changed.notify_waiters();
        Some(order)
    }

    fn find_index(s: &State, order_id: Option<&str>, link_id: Option<&str>) -> Option<usize> {
        match (order_id.filter(|i| !i.is_empty()), link_id.filter(|i| !i.is_empty())) {
            (Some(id), _) => s.orders.iter().position(|o| o.order_id == id),
            (None, Some(link)) => s.by_link.get(link).copied(),
            (None, None) => None,
        }
    }

    /// The order with Binance's numeric id (the venue's sequence number).
    pub fn order_by_seq(&self, seq: u64) -> Option<VenueOrder> {
        self.advance();
        self.state().orders.iter().find(|o| o.seq == seq).cloned()
    }

    pub fn order(&self, order_id: Option<&str>, link_id: Option<&str>) -> Option<VenueOrder> {
        self.advance();
        let s = self.state();
        Self::find_index(&s, order_id, link_id).map(|i| s.orders[i].clone())
    }

    /// Every order, in the order the venue took them.
    pub fn orders(&self) -> Vec<VenueOrder> {
        self.advance();
        self.state().orders.clone()
    }

    pub fn executions(&self) -> Vec<Execution> {
        self.advance();
        self.state().executions.clone()
    }

    /// Settles the fills that became due.
    pub fn advance(&self) {
        let mut s = self.state();
        let before = s.events.len();
        self.advance_locked(&mut s);
        let grew = s.events.len() > before;
        drop(s);
        if grew {
            self.changed.notify_waiters();
        }
    }

    fn advance_locked(&self, s: &mut State) {
        let now = Instant::now();
        for i in 0..s.orders.len() {
            if !s.orders[i].status.is_open() {
                continue;
            }
            let o = &s.orders[i];
            let Some(market) = self.price_in(s, &o.symbol) else { continue };
            let Some(instrument) = self.instrument(o.category, &o.symbol) else { continue };
            if o.status == VenueStatus::Untriggered {
                if !o.trigger.is_some_and(|t| t.reached(market)) {
                    continue;
                }
                // Reached: reported Triggered, then in the book as New, its
                // fill delay counted from here.
                let o = &mut s.orders[i];
                o.status = VenueStatus::Triggered;
                o.updated_ms = now_ms();
                let triggered = o.clone();
                o.status = VenueStatus::New;
                o.created = now;
                let new = o.clone();
                s.events.push(Event::Order(triggered));
                s.events.push(Event::Order(new));
            }
            let o = &s.orders[i];
            let (fill_price, target_fraction, maker) = match o.kind {
                OrderKind::Market => {
                    let slip = self.settings.slippage_bps / Decimal::new(10_000, 0);
                    let slipped = match o.side {
                        Side::Buy => market * (Decimal::ONE + slip),
                        Side::Sell => market * (Decimal::ONE - slip),
                    };
                    let price = (slipped / instrument.tick_size)
                        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                        * instrument.tick_size;
                    let delay = self.settings.fill_delay;
                    let elapsed = now.duration_since(o.created);
                    let fraction = if delay.is_zero() || elapsed >= delay {
                        Decimal::ONE
                    } else if elapsed >= delay / 2 {
                        Decimal::new(5, 1)
                    } else {
                        Decimal::ZERO
                    };
                    (price, fraction, false)
                }
                OrderKind::Limit => {
                    let limit = o.price.unwrap_or(market);
                    let crossed = match o.side {
                        Side::Buy => market <= limit,
                        Side::Sell => market >= limit,
                    };
                    (limit, if crossed { Decimal::ONE } else { Decimal::ZERO }, true)
                }
            };
            if target_fraction.is_zero() {
                continue;
            }
            // A quote-amount market BUY learns its base quantity at the fill.
            if let Some(amount) = o.quote_amount {
                if o.qty.is_zero() {
                    let qty = (amount / fill_price / instrument.qty_step).floor() * instrument.qty_step;
                    s.orders[i].qty = qty.normalize();
                }
            }
            let o = &s.orders[i];
            let target = if target_fraction == Decimal::ONE {
                o.qty
            } else {
                ((o.qty * target_fraction) / instrument.qty_step).floor() * instrument.qty_step
            };
            let chunk = target - o.cum_qty;
            if chunk > Decimal::ZERO {
                self.execute(s, i, chunk, fill_price, maker);
            }
            let o = &mut s.orders[i];
            if o.status.is_open() && o.cum_qty >= o.qty {
                o.status = VenueStatus::Filled;
                o.updated_ms = now_ms();
                let (asset, amount) = std::mem::replace(&mut o.locked, (String::new(), Decimal::ZERO));
                let order = o.clone();
                *s.locked.entry(asset).or_default() -= amount;
                s.events.push(Event::Order(order));
            }
        }
    }

    /// One execution of `qty` at `price` for order `i`.
    fn execute(&self, s: &mut State, i: usize, qty: Decimal, price: Decimal, maker: bool) {
        let rate = if maker { self.settings.maker_fee } else { self.settings.taker_fee };
        let o = s.orders[i].clone();
        let value = qty * price;
        let (fee, cost_asset, cost) = match (o.category, o.side) {
            (Category::Spot, Side::Buy) => ((qty * rate).round_dp(8), self.quote.clone(), value),
            (Category::Spot, Side::Sell) => ((value * rate).round_dp(8), self.base.clone(), qty),
            (Category::Linear, _) => ((value * rate).round_dp(8), self.quote.clone(), Decimal::ZERO),
        };
        let available_total = s.balances.get(&cost_asset).copied().unwrap_or_default();
        if cost > available_total {
            // Cannot happen while locks cover fills; ends the order rather
            // than overdrawing.
            let o = &mut s.orders[i];
            o.status = VenueStatus::PartiallyFilledCanceled;
            o.reject_reason = Some("EC_InsufficientBalance".into());
            return;
        }
        let mut realised_pnl = Decimal::ZERO;
        match (o.category, o.side) {
            (Category::Spot, Side::Buy) => {
                *s.balances.entry(self.quote.clone()).or_default() -= value;
                *s.balances.entry(self.base.clone()).or_default() += qty - fee;
            }
            (Category::Spot, Side::Sell) => {
                *s.balances.entry(self.base.clone()).or_default() -= qty;
                *s.balances.entry(self.quote.clone()).or_default() += value - fee;
            }
            (Category::Linear, side) => {
                let signed = if side == Side::Buy { qty } else { -qty };
                let p = s.positions.entry(o.symbol.clone()).or_default();
                let mut realised = Decimal::ZERO;
                if p.size.is_zero() || p.size.is_sign_positive() == signed.is_sign_positive() {
                    let new_size = p.size + signed;
                    p.entry_price = ((p.entry_price * p.size.abs() + price * qty) / new_size.abs()).round_dp(8);
                    p.size = new_size;
                } else {
                    let closing = qty.min(p.size.abs());
                    realised = closing
                        * (price - p.entry_price)
                        * if p.size > Decimal::ZERO { Decimal::ONE } else { -Decimal::ONE };
                    let new_size = p.size + signed;
                    if new_size.is_zero() {
                        p.entry_price = Decimal::ZERO;
                    } else if new_size.is_sign_positive() != p.size.is_sign_positive() {
                        p.entry_price = price;
                    }
                    p.size = new_size;
                }
                p.realised_pnl += realised - fee;
                if p.size.is_zero() {
                    s.positions.remove(&o.symbol);
                }
                *s.balances.entry(self.quote.clone()).or_default() += realised - fee;
                realised_pnl = realised;
            }
        }
        // The lock shrinks by what the fill consumed (spot) or its share (linear).
        let o = &mut s.orders[i];
        let share = match (o.category, o.side) {
            (Category::Spot, _) => cost,
            (Category::Linear, _) if o.qty > Decimal::ZERO => o.locked.1 * qty / (o.qty - o.cum_qty).max(qty),
            _ => Decimal::ZERO,
        };
        let release = share.min(o.locked.1);
        o.locked.1 -= release;
        let lock_asset = o.locked.0.clone();
        o.cum_qty += qty;
        o.cum_value += value;
        o.cum_fee += fee;
        o.updated_ms = now_ms();
        if o.cum_qty < o.qty {
            o.status = VenueStatus::PartiallyFilled;
        }
        let seq = s.executions.len() + 1;
        let execution = Execution {
            exec_id: format!("exec-{seq:012}"),
            order_id: o.order_id.clone(),
            link_id: o.link_id.clone(),
            category: o.category,
            symbol: o.symbol.clone(),
            side: o.side,
            qty,
            price,
            fee,
            fee_asset: o.fee_asset.clone(),
            time_ms: o.updated_ms,
            realised_pnl,
        };
        let order = o.clone();
        *s.locked.entry(lock_asset).or_default() -= release;
        s.executions.push(execution.clone());
        s.events.push(Event::Execution(execution));
        if order.cum_qty < order.qty {
            // The final fill's order event comes with its Filled state.
            s.events.push(Event::Order(order.clone()));
        }
        s.events.push(Event::Wallet);
        if order.category == Category::Linear {
            s.events.push(Event::Position(order.symbol));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
