//! The account: balances and locked funds, linear positions, and what a
//! test sets up in it (borrowing, hedge mode, a position opened elsewhere,
//! a forced close).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{now_ms, Event, Execution, State, Venue};
use crate::exchange::{Category, ForcedClose, Side};

/// A linear position: signed size (long > 0) and average entry price.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Position {
    pub size: Decimal,
    pub entry_price: Decimal,
    pub realised_pnl: Decimal,
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

impl Venue {
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

    pub(super) fn available(&self, s: &State, asset: &str) -> Decimal {
        let total = s.balances.get(asset).copied().unwrap_or_default();
        let mut locked = s.locked.get(asset).copied().unwrap_or_default();
        if asset == self.quote {
            locked += self.position_margin(s);
        }
        total - locked
    }
}
