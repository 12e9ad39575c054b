//! Amounts at the door: every numeric argument (balances, reservations,
//! quantities, prices, targets) and every number of an order's details is
//! checked against botai's domain (botai_core::amount: at most 16 digits
//! before the decimal point and 12 after) before anything is written.
//! Outside it: 22003, naming the argument and quoting a short prefix.

use botai_core::amount;
use pgrx::AnyNumeric;
use serde_json::Value;

use crate::error::{required, BotaiError, Result};

/// Which values of the domain an argument takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Any (a signed position, a target).
    Any,
    /// Zero or more (a balance).
    NonNegative,
    /// More than zero (an order's quantity, a price, a reservation).
    Positive,
}

/// A required numeric argument of the domain with the given sign.
pub fn arg(argument: &'static str, value: Option<AnyNumeric>, sign: Sign) -> Result<AnyNumeric> {
    let v = required(value, argument)?;
    check(argument, &v, sign)?;
    Ok(v)
}

/// An optional numeric argument (NULL passes).
pub fn optional(argument: &'static str, value: Option<AnyNumeric>, sign: Sign) -> Result<Option<AnyNumeric>> {
    match value {
        None => Ok(None),
        Some(v) => {
            check(argument, &v, sign)?;
            Ok(Some(v))
        }
    }
}

fn check(argument: &str, v: &AnyNumeric, sign: Sign) -> Result<()> {
    let text = v.to_string();
    amount::check(argument, &text)?;
    let zero = AnyNumeric::from(0);
    let fits = match sign {
        Sign::Any => true,
        Sign::NonNegative => *v >= zero,
        Sign::Positive => *v > zero,
    };
    if !fits {
        let what = if sign == Sign::Positive { "positive" } else { "zero or more" };
        return Err(BotaiError::invalid(argument, format!("must be {what} (got {})", amount::quoted(&text))));
    }
    Ok(())
}

/// A number in a JSON document (`details.qty`): a JSON number or a string
/// holding one, as the statement that stores it will read it (`->>` then
/// `::numeric`); null passes.
pub fn json(argument: &str, value: &Value) -> Result<()> {
    let text = match value {
        Value::Null => return Ok(()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => {
            return Err(BotaiError::invalid(
                argument,
                format!("must be a number, not {}", amount::quoted(&other.to_string())),
            ))
        }
    };
    Ok(amount::check(argument, &text)?)
}
