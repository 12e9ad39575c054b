//! Validation of the names every SQL function takes (exchange, endpoint,
//! asset, worker type, component, strategy, symbol).
//!
//! Contract (SQL_API.md, general rules): non-empty after trimming, at most
//! 64 characters, stored trimmed; exchanges are case-insensitive and stored
//! lower-case, assets upper-case.

use thiserror::Error;

/// Longest name accepted, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 64;

/// A bad argument. `argument` names the SQL argument (or JSON key) so the
/// message tells the caller exactly what to fix; the extension maps every
/// variant to SQLSTATE 22023 (invalid_parameter_value), but `OutOfRange`
/// (a number outside botai's domain, amount.rs) to 22003.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("{argument} must not be empty")]
    Empty { argument: String },
    #[error("{argument} is {chars} characters long; at most {max} are allowed")]
    TooLong { argument: String, chars: usize, max: usize },
    #[error("{argument}: {message}")]
    Invalid { argument: String, message: String },
    #[error("{argument} is missing")]
    Missing { argument: String },
    #[error("{argument}: {message}")]
    OutOfRange { argument: String, message: String },
}

impl InputError {
    pub fn invalid(argument: impl Into<String>, message: impl Into<String>) -> Self {
        InputError::Invalid { argument: argument.into(), message: message.into() }
    }

    /// The argument (or JSON key) the error is about.
    pub fn argument(&self) -> &str {
        match self {
            InputError::Empty { argument }
            | InputError::TooLong { argument, .. }
            | InputError::Invalid { argument, .. }
            | InputError::Missing { argument }
            | InputError::OutOfRange { argument, .. } => argument,
        }
    }
}

/// Trims `raw` and checks it is a usable name.
pub fn name<'a>(argument: &str, raw: &'a str) -> Result<&'a str, InputError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InputError::Empty { argument: argument.to_owned() });
    }
    within_limit(argument, trimmed)?;
    Ok(trimmed)
}

fn within_limit(argument: &str, name: &str) -> Result<(), InputError> {
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(InputError::TooLong { argument: argument.to_owned(), chars, max: MAX_NAME_CHARS });
    }
    Ok(())
}

/// An exchange name: trimmed, lower-case.
pub fn exchange(raw: &str) -> Result<String, InputError> {
    name("exchange", raw).and_then(|n| mapped("exchange", n.to_lowercase()))
}

/// An asset (currency) name: trimmed, upper-case.
pub fn asset(raw: &str) -> Result<String, InputError> {
    name("asset", raw).and_then(|n| mapped("asset", n.to_uppercase()))
}

/// Case mapping can lengthen a name ('ß' becomes "SS"): the limit holds
/// for what is stored.
fn mapped(argument: &str, n: String) -> Result<String, InputError> {
    within_limit(argument, &n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_mapping_cannot_exceed_the_limit() {
        assert!(asset(&"ß".repeat(64)).is_err());
        assert_eq!(asset(&"ß".repeat(32)).unwrap(), "SS".repeat(32));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("component", "  ml  ").unwrap(), "ml");
        assert_eq!(name("component", &"x".repeat(64)).unwrap().len(), 64);
        assert!(matches!(name("component", &"x".repeat(65)), Err(InputError::TooLong { chars: 65, .. })));
        assert!(matches!(name("component", "   "), Err(InputError::Empty { .. })));
        // 64 characters of Cyrillic are 128 bytes and still allowed.
        assert!(name("strategy", &"ж".repeat(64)).is_ok());
    }

    #[test]
    fn exchange_and_asset_case() {
        assert_eq!(exchange(" ByBit ").unwrap(), "bybit");
        assert_eq!(asset("usdt").unwrap(), "USDT");
    }
}
