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

pub fn size(
    sizing: Sizing,
    side: Side,
    free: Decimal,
    price: Decimal,
    buffer: Decimal,
    rules: &Instrument,
) -> Option<Sized> {
    if price <= Decimal::ZERO || free <= Decimal::ZERO {
        return None;
    }
    let per_unit = price * (Decimal::ONE + buffer);
    let wanted = match (sizing, side) {
        (Sizing::Notional(n), Side::Buy) => n / per_unit,
        (Sizing::Notional(n), Side::Sell) => n / price,
        (Sizing::Fraction(f), Side::Buy) => free * f / per_unit,
        (Sizing::Fraction(f), Side::Sell) => free * f,
    };
    let qty = rules.order_qty(wanted, price)?;
    let reserve = match side {
        Side::Buy => (qty * per_unit).round_dp(8),
        Side::Sell => qty,
    };
    Some(Sized { qty, reserve })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Instrument {
        crate::exchange::tests::btcusdt()
    }

    #[test]
    fn a_fraction_of_free_funds_never_reserves_more_than_that_fraction() {
        let s = size(
            Sizing::Fraction(Decimal::new(2, 1)),
            Side::Buy,
            Decimal::new(10_000, 0),
            Decimal::new(40_000, 0),
            Decimal::new(1, 3),
            &rules(),
        )
        .unwrap();
        assert_eq!(s.qty, Decimal::new(499, 4));
        assert!(s.reserve <= Decimal::new(2000, 0), "{s:?}");
        let sell = size(
            Sizing::Fraction(Decimal::new(5, 1)),
            Side::Sell,
            Decimal::new(1, 2),
            Decimal::new(40_000, 0),
            Decimal::ZERO,
            &rules(),
        )
        .unwrap();
        assert_eq!(sell, Sized { qty: Decimal::new(50, 4), reserve: Decimal::new(50, 4) });
    }

    #[test]
    fn too_small_or_no_funds_is_no_order() {
        assert_eq!(
            size(
                Sizing::Fraction(Decimal::ONE),
                Side::Sell,
                Decimal::ZERO,
                Decimal::new(40_000, 0),
                Decimal::ZERO,
                &rules()
            ),
            None
        );
        assert_eq!(
            size(
                Sizing::Notional(Decimal::new(3, 0)),
                Side::Buy,
                Decimal::new(100, 0),
                Decimal::new(40_000, 0),
                Decimal::ZERO,
                &rules()
            ),
            None
        );
    }
}
