//! How big an order is, and how much to reserve for it.

use rust_decimal::Decimal;

use crate::config::Sizing;
use crate::exchange::{Instrument, Side};

/// An order's size and the funds it needs held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sized {
    /// Base quantity, rounded to the instrument's step.
    pub qty: Decimal,
    /// Amount of the spent asset to reserve: quote for a BUY (notional, fee
    /// and slippage allowance), base for a SELL.
    pub reserve: Decimal,
}

/// Sizes an order from the free funds of the asset it spends (quote for a
/// BUY, base for a SELL). None when it would be below the exchange's
/// minimums. `buffer` covers fee and slippage on a BUY.
/// An exact quantity (an operator's order): None unless it is a multiple of
/// the step and meets the minimum quantity and value.
pub fn exact(qty: Decimal, side: Side, price: Decimal, buffer: Decimal, rules: &Instrument) -> Option<Sized> {
    if price <= Decimal::ZERO || rules.order_qty(qty, price) != Some(qty.normalize()) {
        return None;
    }
    let reserve = match side {
        Side::Buy => (qty * price * (Decimal::ONE + buffer)).round_dp(8),
        Side::Sell => qty,
    };
    Some(Sized { qty: qty.normalize(), reserve })
}

/// The size of a position (base quantity) under the sizing policy: a fixed
/// notional, or a fraction of the account's equity, at `price`.
pub fn position_size(sizing: Sizing, equity: Decimal, price: Decimal) -> Decimal {
    if price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    match sizing {
        Sizing::Notional(n) => n / price,
        Sizing::Fraction(f) => (equity.max(Decimal::ZERO) * f) / price,
    }
}

/// What to do to move an exposure (position plus open orders, signed base
/// quantity) toward `target` with an order of `side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This order: never past the target (rounded down to the step).
    Trade(Sized),
    /// The exposure is at the target, or beyond it on this side: nothing
    /// to do (a repeated signal).
    AtTarget,
    /// The way to the target is smaller than the venue's minimum order.
    BelowMinimum(Decimal),
}

/// The order of `side` that moves `exposure` toward `target`. A BUY
/// reserves its notional plus `buffer` in the quote currency; a SELL
/// reserves the base it sells, or (`quote_margin`, a perpetual) its
/// notional plus `buffer` in the quote currency.
pub fn toward(
    target: Decimal,
    exposure: Decimal,
    side: Side,
    price: Decimal,
    buffer: Decimal,
    quote_margin: bool,
    rules: &Instrument,
) -> Step {
    let gap = target - exposure;
    let wanted = match side {
        Side::Buy if gap > Decimal::ZERO => gap,
        Side::Sell if gap < Decimal::ZERO => -gap,
        _ => return Step::AtTarget,
    };
    let Some(qty) = rules.order_qty(wanted, price) else {
        return Step::BelowMinimum(wanted);
    };
    let reserve = match side {
        Side::Sell if !quote_margin => qty,
        _ => (qty * price * (Decimal::ONE + buffer)).round_dp(8),
    };
    Step::Trade(Sized { qty, reserve })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Instrument {
        crate::exchange::tests::btcusdt()
    }

    fn d(n: i64, scale: u32) -> Decimal {
        Decimal::new(n, scale)
    }

    #[test]
    fn a_position_is_sized_by_notional_or_by_a_fraction_of_equity() {
        let price = d(40_000, 0);
        assert_eq!(position_size(Sizing::Notional(d(1000, 0)), d(5, 0), price), d(25, 3));
        assert_eq!(position_size(Sizing::Fraction(d(2, 1)), d(10_000, 0), price), d(5, 2));
        assert_eq!(position_size(Sizing::Fraction(d(2, 1)), d(-5, 0), price), Decimal::ZERO);
    }

    #[test]
    fn the_order_moves_toward_the_target_and_never_past_it() {
        let (price, r) = (d(40_000, 0), rules());
        // Flat, target 0.05 long: buy 0.05, reserving notional and buffer in USDT.
        let Step::Trade(s) = toward(d(5, 2), Decimal::ZERO, Side::Buy, price, d(1, 3), false, &r) else { panic!() };
        assert_eq!(s.qty, d(5, 2));
        assert_eq!(s.reserve, d(20020, 1));
        // Half way there (position plus open orders): only the rest, rounded down.
        let Step::Trade(s) = toward(d(5, 2), d(24999, 6), Side::Buy, price, d(1, 3), false, &r) else { panic!() };
        assert_eq!(s.qty, d(250, 4));
        // A repeated signal: at the target, or beyond it, nothing.
        assert_eq!(toward(d(5, 2), d(5, 2), Side::Buy, price, d(1, 3), false, &r), Step::AtTarget);
        assert_eq!(toward(d(5, 2), d(6, 2), Side::Buy, price, d(1, 3), false, &r), Step::AtTarget);
        // Spot: a SELL takes a long to flat and reserves the base it sells.
        let Step::Trade(s) = toward(Decimal::ZERO, d(5, 2), Side::Sell, price, d(1, 3), false, &r) else { panic!() };
        assert_eq!(s, Sized { qty: d(5, 2), reserve: d(5, 2) });
        assert_eq!(toward(Decimal::ZERO, Decimal::ZERO, Side::Sell, price, d(1, 3), false, &r), Step::AtTarget);
        // A perpetual flips a long into a short: the whole way, margin in USDT.
        let Step::Trade(s) = toward(d(-5, 2), d(5, 2), Side::Sell, price, Decimal::ZERO, true, &r) else { panic!() };
        assert_eq!(s, Sized { qty: d(1, 1), reserve: d(4000, 0) });
        // A step smaller than the venue's minimum order is no order.
        assert_eq!(toward(d(5, 2), d(49999, 6), Side::Buy, price, d(1, 3), false, &r), Step::BelowMinimum(d(1, 6)));
    }
}
