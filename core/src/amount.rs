//! The value domain of botai's amounts: balances, reservations, quantities,
//! prices, fees, positions and limits.
//!
//! PostgreSQL's `numeric` holds numbers of up to 131,072 digits; the
//! daemon holds money in `rust_decimal::Decimal` (a 96-bit mantissa: 28
//! significant digits), the dashboard in JavaScript numbers and the Python
//! package in `decimal.Decimal`. A value that one of them cannot hold
//! exactly crashes or silently rounds a reader long after it was stored,
//! so every amount is checked where it enters botai:
//!
//! - at most [`MAX_INTEGER_DIGITS`] (16) digits before the decimal point,
//!   so |x| < 10^16 (a quadrillion: far above any account, any price and
//!   any coin's quantity on a venue), and
//! - at most [`MAX_SCALE`] (12) digits after it, trailing zeros aside
//!   (venues quote at most 8 to 10; a satoshi is 10^-8).
//!
//! 16 + 12 = 28 digits: every value of the domain is exact in a
//! `rust_decimal::Decimal` and in a Python `Decimal`. Anything else is
//! refused with SQLSTATE 22003 (numeric_value_out_of_range) and nothing is
//! written; the message quotes only a short prefix of the value.

use crate::names::InputError;

/// Digits before the decimal point: |x| < 10^16.
pub const MAX_INTEGER_DIGITS: usize = 16;
/// Digits after the decimal point (trailing zeros are not counted).
pub const MAX_SCALE: usize = 12;
/// Characters of a bad value quoted in an error message.
pub const QUOTED_CHARS: usize = 40;

/// A number as written: sign, the digits with no leading or trailing zeros,
/// and the power of ten of the last digit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    negative: bool,
    /// Significant digits, without leading zeros; empty for zero.
    digits: String,
    /// The value is digits × 10^exponent.
    exponent: i64,
}

/// Parses a decimal literal as PostgreSQL's `numeric` and JSON write it:
/// optional sign, digits with an optional fraction, an optional exponent.
/// None for anything else (NaN, Infinity, empty, stray characters).
fn parse(text: &str) -> Option<Written> {
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    if !(-1_000_000..=1_000_000).contains(&exponent) {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all = format!("{int}{frac}");
    let mut exponent = exponent - frac.len() as i64;
    let trimmed_end = all.trim_end_matches('0');
    exponent += (all.len() - trimmed_end.len()) as i64;
    let digits = trimmed_end.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return Some(Written { negative: false, digits, exponent: 0 });
    }
    Some(Written { negative, digits, exponent })
}

/// The first [`QUOTED_CHARS`] characters of `text`, saying how long it was
/// when cut: error messages never carry a whole hostile value.
pub fn quoted(text: &str) -> String {
    let n = text.chars().count();
    if n <= QUOTED_CHARS {
        return text.to_owned();
    }
    format!("{}… ({n} characters)", text.chars().take(QUOTED_CHARS).collect::<String>())
}

/// Checks that `text` (a numeric's text, a JSON number or a string holding
/// one) is a number of botai's domain. `argument` names it in the error:
/// `OutOfRange` (22003) outside the domain, `Invalid` (22023) when it is
/// not a finite number at all.
pub fn check(argument: &str, text: &str) -> Result<(), InputError> {
    let Some(w) = parse(text) else {
        return Err(InputError::invalid(argument, format!("must be a finite number, not {}", quoted(text))));
    };
    if w.digits.is_empty() {
        return Ok(());
    }
    let len = w.digits.len() as i64;
    // Digits before the point: len + exponent (when positive).
    let integer_digits = (len + w.exponent).max(0);
    // Digits after the point: -exponent (when negative).
    let scale = (-w.exponent).max(0);
    if integer_digits > MAX_INTEGER_DIGITS as i64 || scale > MAX_SCALE as i64 {
        let sign = if w.negative { "-" } else { "" };
        let size = if integer_digits > MAX_INTEGER_DIGITS as i64 {
            format!("about {sign}10^{}", integer_digits - 1)
        } else {
            format!("{scale} digits after the decimal point")
        };
        return Err(InputError::OutOfRange {
            argument: argument.to_owned(),
            message: format!(
                "{} ({size}) is outside botai's amounts: at most {MAX_INTEGER_DIGITS} digits before the decimal \
                 point and {MAX_SCALE} after",
                quoted(text.trim())
            ),
        });
    }
    Ok(())
}

/// Whether `text` is a number of the domain (readers that show a stored
/// value use this to mark one out of range).
pub fn within(text: &str) -> bool {
    check("value", text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        check("x", s).is_ok()
    }

    #[test]
    fn the_domain_has_sixteen_digits_before_and_twelve_after_the_point() {
        assert!(ok("9999999999999999.999999999999"));
        assert!(ok("-9999999999999999.999999999999"));
        assert!(!ok("10000000000000000"));
        assert!(!ok("0.0000000000001"));
        assert!(ok("0.000000000001"));
        assert!(ok("0"));
        assert!(ok("-0.00"));
        assert!(ok("1.500000000000000000000"), "trailing zeros are not digits of the value");
        assert!(ok("000000000000000000001"), "nor are leading zeros");
        assert!(ok("1e15") && !ok("1e16") && ok("1e-12") && !ok("1e-13"));
        assert!(ok("12.5E+3") && ok(" 7 "));
    }

    #[test]
    fn what_is_not_a_number_is_invalid_not_out_of_range() {
        for s in ["NaN", "Infinity", "-Infinity", "", ".", "1.2.3", "1e", "0x10", "1e99999999999", "--1"] {
            assert!(matches!(check("x", s), Err(InputError::Invalid { .. })), "{s:?}");
        }
    }

    #[test]
    fn huge_values_are_out_of_range_and_quoted_short() {
        let huge = format!("1{}", "0".repeat(100_000));
        let Err(InputError::OutOfRange { message, .. }) = check("qty", &huge) else { panic!("refused") };
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("10^100000"), "{message}");
        assert!(matches!(check("total", "1e400"), Err(InputError::OutOfRange { .. })));
        assert!(matches!(check("fee", "1e200"), Err(InputError::OutOfRange { .. })));
    }

    #[test]
    fn every_value_of_the_domain_fits_28_digits() {
        let w = parse("9999999999999999.999999999999").unwrap();
        assert_eq!(w.digits.len(), MAX_INTEGER_DIGITS + MAX_SCALE);
    }
}
