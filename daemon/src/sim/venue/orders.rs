//! Orders: what a client asks for, what the venue keeps of each, and
//! placing (funds locked, the venue's refusals), cancelling and finding them.

use std::time::Instant;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::{now_ms, Event, State, Venue};
use crate::exchange::{Category, Side, Trigger, TriggerDirection};

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
    pub(super) created: Instant,
    /// Funds still locked for the order: (asset, amount).
    #[serde(skip)]
    pub(super) locked: (String, Decimal),
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

impl Venue {
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
}
