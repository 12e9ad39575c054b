//! Values read from the database, checked.
//!
//! A long-running component never panics on what the database holds:
//! `tokio_postgres::Row::get` panics on a value its Rust type cannot hold
//! (a numeric of 1e400 into a `Decimal`, a JSON number beyond an f64 into a
//! `serde_json::Value`), and botai stored such values before 0.7.0 refused
//! them at the door (an admin can still write any table). Every read goes
//! through [`Cell::col`] (an error naming the column, never a panic), and
//! two types read what botai shows whatever it is:
//!
//! - [`Amount`]: a numeric as a `Decimal`, or "out of range" with the
//!   stored value's magnitude;
//! - [`Json`]: a json/jsonb document in which a number no f64 holds is
//!   replaced by a string saying it is out of range.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;

use super::{DbError, Result};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// Reads column `idx` of a row as `T`, or says which column could not be.
pub trait Cell {
    fn col<'a, T: FromSql<'a>>(&'a self, idx: usize, context: &'static str) -> Result<T>;
}

impl Cell for Row {
    fn col<'a, T: FromSql<'a>>(&'a self, idx: usize, context: &'static str) -> Result<T> {
        self.try_get(idx).map_err(|e| DbError::Decode {
            context,
            column: self.columns().get(idx).map_or_else(|| format!("#{idx}"), |c| c.name().to_owned()),
            message: std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string()),
        })
    }
}

/// A stored amount: a `Decimal` when one holds it (botai's domain always
/// fits), else the magnitude of what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    Value(Decimal),
    /// Outside what botai works with; the text says roughly what it is
    /// ("about 1e400", "NaN").
    OutOfRange(String),
}

impl Amount {
    pub fn value(&self) -> Option<Decimal> {
        match self {
            Amount::Value(d) => Some(*d),
            Amount::OutOfRange(_) => None,
        }
    }

    /// Rounded to `dp` decimals for a table; "out of range (…)" otherwise.
    pub fn rounded(&self, dp: u32) -> String {
        match self {
            Amount::Value(d) => d.round_dp(dp).normalize().to_string(),
            Amount::OutOfRange(what) => format!("out of range ({what})"),
        }
    }

    /// `rounded` of an optional amount, "-" for NULL.
    pub fn show(amount: &Option<Amount>, dp: u32) -> String {
        amount.as_ref().map_or_else(|| "-".to_owned(), |a| a.rounded(dp))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Value(d) => write!(f, "{}", d.normalize()),
            Amount::OutOfRange(what) => write!(f, "out of range ({what})"),
        }
    }
}

impl<'a> FromSql<'a> for Amount {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Amount, BoxError> {
        match Decimal::from_sql(ty, raw) {
            Ok(d) => Ok(Amount::Value(d)),
            Err(_) => Ok(Amount::OutOfRange(numeric_magnitude(raw))),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Roughly what a numeric in PostgreSQL's binary form is: its sign and
/// power of ten (the wire form is ndigits, weight, sign, dscale, then
/// base-10000 digits).
fn numeric_magnitude(raw: &[u8]) -> String {
    let word = |i: usize| raw.get(i * 2..i * 2 + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (Some(ndigits), Some(weight), Some(sign)) = (word(0), word(1), word(2)) else {
        return "unreadable".into();
    };
    match sign {
        0xC000 => return "NaN".into(),
        0xD000 => return "Infinity".into(),
        0xF000 => return "-Infinity".into(),
        _ => {}
    }
    let first = if ndigits > 0 { word(4).unwrap_or(0) } else { 0 };
    if first == 0 {
        return "0".into();
    }
    let exponent = 4 * i64::from(weight as i16) + i64::from(first.ilog10());
    format!("about {}1e{exponent}", if sign == 0x4000 { "-" } else { "" })
}

/// Which way an amount is brought to botai's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// A price, a quantity, a target: the nearest (half to even).
    Nearest,
    /// What is reserved or spent: never less than it is.
    Up,
    /// What a venue says is available: never more than it is.
    Down,
}

/// `d` with at most botai's 12 decimals (botai_core::amount::MAX_SCALE):
/// the extension refuses more (22003), and a computed figure (equity ÷
/// price, an average fill price) easily has 28. Rounded `toward` what keeps
/// the guarantee: a reservation up, a balance down.
pub fn at_scale(d: Decimal, toward: Toward) -> Decimal {
    let dp = botai_core::amount::MAX_SCALE as u32;
    if d.scale() <= dp {
        return d;
    }
    let strategy = match toward {
        Toward::Nearest => rust_decimal::RoundingStrategy::MidpointNearestEven,
        Toward::Up => rust_decimal::RoundingStrategy::AwayFromZero,
        Toward::Down => rust_decimal::RoundingStrategy::ToZero,
    };
    d.round_dp_with_strategy(dp, strategy).normalize()
}

/// The numbers of an order's details (`qty`, `price`, `fee`, …) at botai's
/// scale, as strings or numbers as they were.
pub fn details_at_scale(details: &Value) -> Value {
    let mut out = details.clone();
    if let Some(object) = out.as_object_mut() {
        for key in ["qty", "net_qty", "price", "notional", "fee", "fee_quote"] {
            let Some(v) = object.get_mut(key) else { continue };
            let parsed = match v {
                Value::String(s) => s.parse::<Decimal>().ok(),
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                _ => None,
            };
            if let Some(d) = parsed.filter(|d| d.scale() > botai_core::amount::MAX_SCALE as u32) {
                // A fee rounds up, what was filled to the nearest.
                let toward = if key.starts_with("fee") { Toward::Up } else { Toward::Nearest };
                *v = Value::String(at_scale(d, toward).to_string());
            }
        }
    }
    out
}

/// A json or jsonb value as a `serde_json::Value`, whatever numbers it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub Value);

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Json, BoxError> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unknown jsonb version".into()),
            }
        } else {
            raw
        };
        let text = std::str::from_utf8(text)?;
        Ok(Json(parse_tolerant(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// Parses JSON text; a number no f64 holds (1e400) becomes a string
/// saying it is out of range, instead of failing the whole document.
pub fn parse_tolerant(text: &str) -> std::result::Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if e.is_data() || e.is_syntax() => serde_json::from_str(&replace_huge_numbers(text)).or(Err(e)),
        Err(e) => Err(e),
    }
}

/// The JSON text with each number that overflows an f64 replaced by a string.
fn replace_huge_numbers(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut in_string, mut escaped, mut copied) = (0, false, false, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let token = &text[start..i];
            if !token.parse::<f64>().is_ok_and(f64::is_finite) {
                out.push_str(&text[copied..start]);
                let sign = if token.starts_with('-') { "-" } else { "" };
                let digits = token.trim_start_matches(['-', '+']);
                let short: String = digits.chars().take(12).collect();
                out.push_str(&format!("\"out of range ({sign}{short}…, {} characters)\"", token.len()));
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_no_f64_holds_is_shown_out_of_range() {
        let huge = format!("1{}", "0".repeat(400));
        let doc = format!(r#"{{"total": {huge}, "name": "a \"1e999\" b", "ok": [1.5, -2e3], "neg": -{huge}}}"#);
        assert!(serde_json::from_str::<Value>(&doc).is_err(), "serde_json alone refuses it");
        let v = parse_tolerant(&doc).expect("parsed");
        assert!(v["total"].as_str().unwrap().starts_with("out of range (100000000000…"), "{v}");
        assert!(v["neg"].as_str().unwrap().starts_with("out of range (-1"), "{v}");
        assert_eq!(v["name"], "a \"1e999\" b", "strings are left alone");
        assert_eq!(v["ok"], serde_json::json!([1.5, -2000.0]));
    }

    #[test]
    fn amounts_are_brought_to_twelve_decimals_the_safe_way() {
        let d: Decimal = "0.0466907902416248395004085444".parse().unwrap();
        assert_eq!(at_scale(d, Toward::Nearest).to_string(), "0.046690790242");
        assert_eq!(at_scale(d, Toward::Up).to_string(), "0.046690790242");
        assert_eq!(at_scale(d, Toward::Down).to_string(), "0.046690790241");
        let d: Decimal = "-1.0000000000005".parse().unwrap();
        assert_eq!(at_scale(d, Toward::Up).to_string(), "-1.000000000001");
        assert_eq!(at_scale(Decimal::new(15, 1), Toward::Up), Decimal::new(15, 1), "short ones stay as they are");
        let v = details_at_scale(&serde_json::json!({"price": "42123.123456789012345", "fee": 0.1, "message": "x"}));
        assert_eq!(v["price"], "42123.123456789012");
        assert_eq!(v["fee"], 0.1);
    }

    #[test]
    fn a_numeric_beyond_decimal_is_read_as_its_magnitude() {
        // 1e400: one base-10000 digit (1) of weight 100, positive.
        let raw: Vec<u8> = [1u16, 100, 0, 0, 1].iter().flat_map(|w| w.to_be_bytes()).collect();
        let a = Amount::from_sql(&Type::NUMERIC, &raw).unwrap();
        assert_eq!(a, Amount::OutOfRange("about 1e400".into()));
        assert_eq!(a.rounded(4), "out of range (about 1e400)");
        // -1234 × 10^(4·75): -1.234e303.
        let raw: Vec<u8> = [1u16, 75, 0x4000, 0, 1234].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(Amount::from_sql(&Type::NUMERIC, &raw).unwrap(), Amount::OutOfRange("about -1e303".into()));
        let nan: Vec<u8> = [0u16, 0, 0xC000, 0].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(Amount::from_sql(&Type::NUMERIC, &nan).unwrap(), Amount::OutOfRange("NaN".into()));
    }
}
