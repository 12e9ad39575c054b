//! The canonical fingerprint of a trading signal.
//!
//! Contract (SQL_API.md §1): sha256 over the UTF-8 bytes of exactly the JSON
//! text Python's `json.dumps(obj, sort_keys=True)` produces with default
//! settings for `{"direction", "strategy", "symbol", "timestamp_minute"}`,
//! first 16 lowercase hex characters. Python's defaults matter: `", "` and
//! `": "` separators and `ensure_ascii=True`, so every character outside
//! printable ASCII is written as a `\uXXXX` escape (lowercase hex, UTF-16
//! surrogate pairs above U+FFFF).

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};

use crate::timestamp::truncate_to_minute;
use crate::InputError;

/// Which way a signal trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Buy,
    Sell,
}

impl Direction {
    pub fn parse(raw: &str) -> Result<Direction, InputError> {
        match raw.trim().to_uppercase().as_str() {
            "BUY" => Ok(Direction::Buy),
            "SELL" => Ok(Direction::Sell),
            other => Err(InputError::invalid(
                "direction",
                format!("\"{other}\" is not a trading direction (expected BUY or SELL)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Buy => "BUY",
            Direction::Sell => "SELL",
        }
    }
}

/// The four fields a fingerprint is made of, already in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalSignal {
    /// upper(trim(symbol))
    pub symbol: String,
    pub direction: Direction,
    /// trim(strategy), case kept
    pub strategy: String,
    /// the signal's timestamp truncated to the minute, UTC
    pub minute: DateTime<Utc>,
}

impl CanonicalSignal {
    /// Canonicalises raw values; names are validated like every other name.
    pub fn new(symbol: &str, direction: &str, strategy: &str, ts: DateTime<Utc>) -> Result<Self, InputError> {
        let symbol = crate::names::name("symbol", symbol)?.to_uppercase();
        let direction = Direction::parse(direction)?;
        let strategy = crate::names::name("strategy", strategy)?.to_owned();
        let year = ts.year();
        if !(1..=9999).contains(&year) {
            return Err(InputError::invalid("timestamp", format!("year {year} is outside 1..9999")));
        }
        Ok(CanonicalSignal { symbol, direction, strategy, minute: truncate_to_minute(ts) })
    }

    /// The JSON text Python's `json.dumps(..., sort_keys=True)` gives.
    pub fn canonical_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"direction\": ");
        push_python_json_string(&mut out, self.direction.as_str());
        out.push_str(", \"strategy\": ");
        push_python_json_string(&mut out, &self.strategy);
        out.push_str(", \"symbol\": ");
        push_python_json_string(&mut out, &self.symbol);
        out.push_str(", \"timestamp_minute\": ");
        push_python_json_string(&mut out, &python_isoformat_minute(self.minute));
        out.push('}');
        out
    }

    /// 16 lowercase hex characters of sha256(canonical_json).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        let mut hex = String::with_capacity(16);
        for byte in &digest[..8] {
            write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
        }
        hex
    }
}

/// `datetime.isoformat()` of a UTC-aware datetime with zero seconds.
fn python_isoformat_minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:00+00:00").to_string()
}

/// Appends `s` as Python's json encoder does with ensure_ascii=True.
fn push_python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_rfc3339;

    fn sig(symbol: &str, direction: &str, strategy: &str, ts: &str) -> CanonicalSignal {
        CanonicalSignal::new(symbol, direction, strategy, parse_rfc3339("timestamp", ts).unwrap()).unwrap()
    }

    #[test]
    fn canonical_json_matches_python_layout() {
        let s = sig(" btcusdt ", "buy", " patchtst ", "2025-01-14T10:31:42.5Z");
        assert_eq!(
            s.canonical_json(),
            r#"{"direction": "BUY", "strategy": "patchtst", "symbol": "BTCUSDT", "timestamp_minute": "2025-01-14T10:31:00+00:00"}"#
        );
        // python3 -c 'import json,hashlib;print(hashlib.sha256(json.dumps({"direction":"BUY","strategy":"patchtst","symbol":"BTCUSDT","timestamp_minute":"2025-01-14T10:31:00+00:00"},sort_keys=True).encode()).hexdigest()[:16])'
        assert_eq!(s.fingerprint(), "98b76740f6ed153b");
    }

    #[test]
    fn escapes_like_python_ensure_ascii() {
        let mut out = String::new();
        push_python_json_string(&mut out, "Импульс \"q\" \\ \u{1}\u{7f}é😀");
        assert_eq!(out, r#""\u0418\u043c\u043f\u0443\u043b\u044c\u0441 \"q\" \\ \u0001\u007f\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn offset_and_seconds_do_not_matter_within_a_minute() {
        let a = sig("ETHUSDT", "SELL", "s", "2025-01-14T13:31:59+03:00");
        let b = sig("ethusdt", "sell", "s", "2025-01-14T10:31:00Z");
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = sig("ETHUSDT", "SELL", "s", "2025-01-14T10:32:00Z");
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn hold_is_not_a_direction() {
        assert!(Direction::parse("HOLD").is_err());
    }
}
