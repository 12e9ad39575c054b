//! Reading a signal document (the `jsonb` given to `botai_register_signal`)
//! and deciding whether its timestamp is fresh enough to act on.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::fingerprint::CanonicalSignal;
use crate::timestamp::parse_rfc3339;
use crate::InputError;

/// A signal may be at most this far in the future (clock skew between the
/// producer and the database), SQL_API.md §1.
pub const MAX_FUTURE: Duration = Duration::seconds(60);

/// The keys a signal must hold.
pub const REQUIRED_KEYS: [&str; 4] = ["symbol", "direction", "strategy", "timestamp"];

/// A validated signal document.
#[derive(Debug, Clone)]
pub struct SignalDocument {
    pub canonical: CanonicalSignal,
    /// The timestamp as given (not truncated), UTC.
    pub timestamp: DateTime<Utc>,
    /// `signal_strength` when present.
    pub strength: Option<f64>,
    /// `exchange` when present, lower-cased.
    pub exchange: Option<String>,
}

impl SignalDocument {
    /// Validates `doc`. Every problem names the key at fault.
    pub fn parse(doc: &Value) -> Result<SignalDocument, InputError> {
        let object = doc
            .as_object()
            .ok_or_else(|| InputError::invalid("signal", format!("must be a JSON object, not {}", json_kind(doc))))?;
        let symbol = required_string(object, "symbol")?;
        let direction = required_string(object, "direction")?;
        let strategy = required_string(object, "strategy")?;
        let timestamp = parse_rfc3339("signal.timestamp", required_string(object, "timestamp")?)?;
        let canonical = CanonicalSignal::new(symbol, direction, strategy, timestamp).map_err(prefix)?;
        let strength = match object.get("signal_strength") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Some(f),
                _ => return Err(InputError::invalid("signal.signal_strength", "must be a finite number")),
            },
            Some(other) => {
                return Err(InputError::invalid(
                    "signal.signal_strength",
                    format!("must be a number, not {}", json_kind(other)),
                ))
            }
        };
        let exchange = match object.get("exchange") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(crate::names::exchange(s).map_err(prefix)?),
            Some(other) => {
                return Err(InputError::invalid(
                    "signal.exchange",
                    format!("must be a string, not {}", json_kind(other)),
                ))
            }
        };
        Ok(SignalDocument { canonical, timestamp, strength, exchange })
    }
}

/// How a signal's timestamp relates to the dedup window at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Older than the dedup window.
    TooOld,
    /// More than [`MAX_FUTURE`] ahead of `now`.
    FromTheFuture,
}

/// A signal is acted on only while it is inside the dedup window: after it,
/// its fingerprint may already have been pruned, so accepting it could act on
/// it twice.
pub fn freshness(timestamp: DateTime<Utc>, now: DateTime<Utc>, dedup_window: Duration) -> Freshness {
    if timestamp < now - dedup_window {
        Freshness::TooOld
    } else if timestamp > now + MAX_FUTURE {
        Freshness::FromTheFuture
    } else {
        Freshness::Fresh
    }
}

fn required_string<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, InputError> {
    match object.get(key) {
        None => Err(InputError::Missing { argument: format!("signal.{key}") }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => {
            Err(InputError::invalid(format!("signal.{key}"), format!("must be a string, not {}", json_kind(other))))
        }
    }
}

fn prefix(e: InputError) -> InputError {
    let with_prefix = |a: String| if a.starts_with("signal.") { a } else { format!("signal.{a}") };
    match e {
        InputError::Empty { argument } => InputError::Empty { argument: with_prefix(argument) },
        InputError::TooLong { argument, chars, max } => {
            InputError::TooLong { argument: with_prefix(argument), chars, max }
        }
        InputError::Invalid { argument, message } => InputError::Invalid { argument: with_prefix(argument), message },
        InputError::Missing { argument } => InputError::Missing { argument: with_prefix(argument) },
        InputError::OutOfRange { argument, message } => {
            InputError::OutOfRange { argument: with_prefix(argument), message }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"symbol": "btcusdt", "direction": "buy", "strategy": "patchtst",
               "timestamp": "2025-01-14T10:31:05Z", "signal_strength": 0.7, "exchange": "ByBit"})
    }

    #[test]
    fn parses_a_full_signal() {
        let s = SignalDocument::parse(&doc()).unwrap();
        assert_eq!(s.canonical.symbol, "BTCUSDT");
        assert_eq!(s.strength, Some(0.7));
        assert_eq!(s.exchange.as_deref(), Some("bybit"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1, 2]), "signal"),
            (json!({"direction": "BUY", "strategy": "s", "timestamp": "2025-01-14T10:31:05Z"}), "signal.symbol"),
            (
                {
                    let mut d = doc();
                    d["direction"] = json!("HOLD");
                    d
                },
                "signal.direction",
            ),
            (
                {
                    let mut d = doc();
                    d["strategy"] = json!("");
                    d
                },
                "signal.strategy",
            ),
            (
                {
                    let mut d = doc();
                    d["strategy"] = json!("s".repeat(65));
                    d
                },
                "signal.strategy",
            ),
            (
                {
                    let mut d = doc();
                    d["symbol"] = json!(null);
                    d
                },
                "signal.symbol",
            ),
            (
                {
                    let mut d = doc();
                    d["timestamp"] = json!("2025-01-14 25:00");
                    d
                },
                "signal.timestamp",
            ),
            (
                {
                    let mut d = doc();
                    d["timestamp"] = json!(1736850665);
                    d
                },
                "signal.timestamp",
            ),
            (
                {
                    let mut d = doc();
                    d["signal_strength"] = json!("strong");
                    d
                },
                "signal.signal_strength",
            ),
            (
                {
                    let mut d = doc();
                    d["exchange"] = json!("");
                    d
                },
                "signal.exchange",
            ),
        ];
        for (value, argument) in cases {
            let err = SignalDocument::parse(&value).expect_err(&value.to_string());
            assert_eq!(err.argument(), argument, "{value}: {err}");
        }
    }

    #[test]
    fn freshness_bounds() {
        let now = parse_rfc3339("t", "2025-01-14T10:31:00Z").unwrap();
        let w = Duration::seconds(300);
        assert_eq!(freshness(now - Duration::seconds(300), now, w), Freshness::Fresh);
        assert_eq!(freshness(now - Duration::seconds(301), now, w), Freshness::TooOld);
        assert_eq!(freshness(now + Duration::seconds(60), now, w), Freshness::Fresh);
        assert_eq!(freshness(now + Duration::seconds(61), now, w), Freshness::FromTheFuture);
    }
}
