//! How big an order is, and how much to reserve for it.

use rust_decimal::Decimal;

use crate::exchange::{Instrument, Side};
use crate::trading::config::Sizing;

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

/// The size of a position (base quantity) under the sizing policy at
/// `price`: a fixed notional; a fraction of the account's equity; or
/// volatility-scaled — the notional whose typical one-hour move
/// (`volatility_1h`, a fraction of the price) is the policy's fraction of
/// equity, never more than the equity itself. None when a volatility-scaled
/// policy has no volatility to scale by.
pub fn position_size(
    sizing: Sizing,
    equity: Decimal,
    price: Decimal,
    volatility_1h: Option<Decimal>,
) -> Option<Decimal> {
    if price <= Decimal::ZERO {
        return Some(Decimal::ZERO);
    }
    let equity = equity.max(Decimal::ZERO);
    Some(match sizing {
        Sizing::Notional(n) => n / price,
        Sizing::Fraction(f) => equity * f / price,
        Sizing::Volatility(r) => {
            let v = volatility_1h.filter(|v| *v > Decimal::ZERO)?;
            (equity * r / v).min(equity) / price
        }
    })
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
    /// The position is on the target's side and within REBALANCE_BAND of
    /// it: the gap (a target that moved with equity or volatility) is not
    /// worth a trade's fees.
    WithinBand(Decimal),
}

/// How far (a fraction of the target) a position may be from a target on
/// its own side before a signal tops it up or trims it.
pub const REBALANCE_BAND: Decimal = Decimal::from_parts(1, 0, 0, false, 1);

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
    let same_side =
        (target > Decimal::ZERO && exposure > Decimal::ZERO) || (target < Decimal::ZERO && exposure < Decimal::ZERO);
    if same_side && gap.abs() < target.abs() * REBALANCE_BAND && !gap.is_zero() {
        return Step::WithinBand(gap);
    }
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
        assert_eq!(position_size(Sizing::Notional(d(1000, 0)), d(5, 0), price, None), Some(d(25, 3)));
        assert_eq!(position_size(Sizing::Fraction(d(2, 1)), d(10_000, 0), price, None), Some(d(5, 2)));
        assert_eq!(position_size(Sizing::Fraction(d(2, 1)), d(-5, 0), price, None), Some(Decimal::ZERO));
        // 0.5 % of 10,000 a typical hour, the hour moving 1 %: 5,000 of notional.
        let vol = Sizing::Volatility(d(5, 3));
        assert_eq!(position_size(vol, d(10_000, 0), price, Some(d(1, 2))), Some(d(125, 3)));
        // A calm hour (0.1 %) would ask for 50,000: capped at the equity.
        assert_eq!(position_size(vol, d(10_000, 0), price, Some(d(1, 3))), Some(d(25, 2)));
        assert_eq!(position_size(vol, d(10_000, 0), price, None), None, "no volatility to scale by");
        assert_eq!(position_size(vol, d(10_000, 0), price, Some(Decimal::ZERO)), None);
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
        assert_eq!(toward(d(1, 6), Decimal::ZERO, Side::Buy, price, d(1, 3), false, &r), Step::BelowMinimum(d(1, 6)));
        // A target that moved by less than the band is not traded toward,
        // either way; 10 % or more is.
        assert_eq!(toward(d(5, 2), d(46, 3), Side::Buy, price, d(1, 3), false, &r), Step::WithinBand(d(4, 3)));
        assert_eq!(toward(d(-5, 2), d(-54, 3), Side::Buy, price, d(1, 3), true, &r), Step::WithinBand(d(4, 3)));
        assert!(matches!(toward(d(5, 2), d(45, 3), Side::Buy, price, d(1, 3), false, &r), Step::Trade(_)));
    }
}
