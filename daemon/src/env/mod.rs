//! Where each setting comes from: the environment over the config file.
//! A leaf below every component (it imports nothing of botai).
//!
//! Sources, strongest first: environment variables, the `.env` file (loaded
//! into the environment without overriding what is set), the config file
//! (TOML; `--config FILE`, or `botai.toml` in the working directory when it
//! exists; keys are the variable names in lower case), then each section's
//! defaults. A leaf: every component's section (`ml/config.rs`,
//! `exchange/config.rs`, …) reads its variables through [`Source`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

pub mod pg;

/// This machine's name, for instance and claimer ids.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}

/// Loads `.env` from the working directory or the nearest parent; variables
/// already set in the environment win.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

/// The file `make` writes the operator's connection to (OPERATOR_PGUSER,
/// OPERATOR_PGPASSWORD), read by the operator's commands only: the daemon
/// never holds the operator's password.
pub const OPERATOR_ENV: &str = "operator.env";

/// Reads `operator.env` (never overriding the environment), for the
/// operator's commands.
pub fn load_operator_env() {
    let _ = dotenvy::from_filename(OPERATOR_ENV);
}

/// Where each setting comes from: the environment over the config file.
pub struct Source {
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl Source {
    /// Reads the config file, if any (`path`, else `./botai.toml` when present).
    pub fn load(path: Option<&Path>) -> Result<Source> {
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("botai.toml")).filter(|p| p.exists()),
        };
        let mut file = BTreeMap::new();
        if let Some(p) = &chosen {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?;
            let table: toml::Table =
                text.parse().with_context(|| format!("config file {} is not valid TOML", p.display()))?;
            for (key, value) in table {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        bail!("config file {}: {key} must be a string, number or boolean, not {other}", p.display())
                    }
                };
                file.insert(key.to_uppercase(), value);
            }
        }
        Ok(Source { file, file_path: chosen })
    }

    /// An empty source: only the environment.
    pub fn environment_only() -> Source {
        Source { file: BTreeMap::new(), file_path: None }
    }

    pub fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty()).or_else(|| self.file.get(name).cloned())
    }

    pub fn where_from(&self, name: &str) -> String {
        if std::env::var(name).is_ok_and(|v| !v.trim().is_empty()) {
            format!("{name} (environment)")
        } else if let Some(p) = &self.file_path {
            format!("{} in {}", name.to_lowercase(), p.display())
        } else {
            name.to_owned()
        }
    }

    pub fn parse<T>(&self, name: &str, default: T, expected: &str, f: impl Fn(&str) -> Option<T>) -> Result<T> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => {
                f(raw.trim()).with_context(|| format!("{}: expected {expected}, got {raw:?}", self.where_from(name)))
            }
        }
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).map(|s| s.trim().to_owned()).unwrap_or_else(|| default.to_owned())
    }

    pub fn seconds(&self, name: &str, default: f64) -> Result<Duration> {
        let s = self.parse(name, default, "a positive number of seconds", |v| {
            v.trim_end_matches('s').parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0)
        })?;
        Ok(Duration::from_secs_f64(s))
    }

    pub fn switch(&self, name: &str, default: bool) -> Result<bool> {
        self.parse(name, default, "on or off", |v| match v.to_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        })
    }
}

/// An RFC 3339 time, or a date (its midnight, UTC).
pub fn timestamp(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = botai_core::timestamp::parse_rfc3339("", v) {
        return Some(t);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// A decimal above zero.
pub fn decimal_positive(v: &str) -> Option<Decimal> {
    v.parse::<Decimal>().ok().filter(|d| *d > Decimal::ZERO)
}

/// "10/1s" → 10 requests per 1 s.
pub fn limit(v: &str) -> Option<(u32, Duration)> {
    let (n, w) = v.split_once('/')?;
    let n = n.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
    let w = w.trim().trim_end_matches('s').parse::<f64>().ok().filter(|w| w.is_finite() && *w > 0.0)?;
    Some((n, Duration::from_secs_f64(w)))
}

/// HOST:PORT, or `off`.
pub fn listen(v: &str) -> Option<Option<SocketAddr>> {
    if v.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    v.parse::<SocketAddr>().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(limit("10/1s"), Some((10, Duration::from_secs(1))));
        assert_eq!(limit("600/5"), Some((600, Duration::from_secs(5))));
        assert_eq!(limit("0/1s"), None);
        assert_eq!(limit("ten"), None);
    }
}
