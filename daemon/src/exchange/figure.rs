//! The venues' numbers: decimals in strings, where an empty string is "not
//! given" (Bybit leaves a field empty where it does not apply or is
//! deprecated) and must never read as zero.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A decimal as the venues send it: `"123.45"` (a number is read too), or
/// `""` when not given — never read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figure(pub Option<Decimal>);

impl Figure {
    pub const NONE: Figure = Figure(None);

    pub fn of(d: Decimal) -> Figure {
        Figure(Some(d))
    }

    pub fn known(self) -> Option<Decimal> {
        self.0
    }

    /// The figure, where an empty one plainly means nothing (a new
    /// order's `cumExecFee`).
    pub fn or_zero(self) -> Decimal {
        self.0.unwrap_or(Decimal::ZERO)
    }

    /// The figure, or an error naming the field when it is empty.
    pub fn required(self, field: &str) -> Result<Decimal, String> {
        self.0.ok_or_else(|| format!("{field} is empty"))
    }
}

impl From<Decimal> for Figure {
    fn from(d: Decimal) -> Figure {
        Figure(Some(d))
    }
}

impl Serialize for Figure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.collect_str(&d),
            None => s.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for Figure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Figure, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Figure;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal in a string, or \"\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Figure, E> {
                if v.is_empty() {
                    return Ok(Figure(None));
                }
                v.parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(v))
                    .map(|d| Figure(Some(d)))
                    .map_err(|_| E::custom(format!("{v:?} is not a decimal")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Figure, E> {
                Ok(Figure(Some(Decimal::from(v))))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Figure, E> {
                Ok(Figure(Some(Decimal::from(v))))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Figure, E> {
                use rust_decimal::prelude::FromPrimitive;
                Decimal::from_f64(v).map(|d| Figure(Some(d))).ok_or_else(|| E::custom(format!("{v} is not a decimal")))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Figure, E> {
                Ok(Figure(None))
            }
        }
        d.deserialize_any(Visitor)
    }
}
