//! Matching, done lazily: every call first settles what became due — a
//! conditional order reaching its trigger, a market order filling over the
//! fill delay, a limit order the price crossed — and books each execution
//! (balances, positions, fees, the locks it frees).

use std::time::Instant;

use rust_decimal::{Decimal, RoundingStrategy};

use super::{now_ms, Event, Execution, OrderKind, State, Venue, VenueStatus};
use crate::exchange::{Category, Side};

impl Venue {
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

    pub(super) fn advance_locked(&self, s: &mut State) {
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
