//! Parsing of signal timestamps (RFC 3339; a timestamp without an offset is
//! UTC) and the minute truncation the fingerprint uses.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};

use crate::InputError;

/// Parses an RFC 3339 timestamp. `T`, `t` or a space separate date and time;
/// fractional seconds are allowed; `Z` or `±HH:MM` gives the offset and a
/// missing offset means UTC. The ISO 8601 offsets `±HH` and `±HHMM` (what
/// PostgreSQL prints for `now()::text`) are read as `±HH:MM`. Anything else
/// (dates alone, epoch numbers, trailing text) is refused, so a typo never
/// turns into a silently different moment.
pub fn parse_rfc3339(argument: &str, text: &str) -> Result<DateTime<Utc>, InputError> {
    let normalized = normalize_offset(text.trim());
    let s = normalized.as_str();
    let bad = || {
        InputError::invalid(
            argument,
            format!("\"{}\" is not an RFC 3339 timestamp (expected e.g. 2025-01-14T10:31:05Z)", shorten(s)),
        )
    };
    if s.len() < 19 {
        return Err(bad());
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(s) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    // No offset: only the plain date-time forms, read as UTC.
    // Byte 19 may fall inside a multibyte character: then it is no timestamp.
    let Some(tail) = s.get(19..) else { return Err(bad()) };
    let has_offset = tail.contains(['+', '-', 'Z', 'z']);
    if has_offset {
        return Err(bad());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dt%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(bad())
}

/// `…±HH` and `…±HHMM` become `…±HH:MM`; anything else is returned as is.
fn normalize_offset(s: &str) -> String {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let sign_at = |i: usize| s.len() >= 20 && matches!(b.get(i), Some(b'+' | b'-'));
    let n = b.len();
    if n > 3 && sign_at(n - 3) && digits(n - 2..n) {
        format!("{s}:00")
    } else if n > 5 && sign_at(n - 5) && digits(n - 4..n) {
        format!("{}:{}", &s[..n - 2], &s[n - 2..])
    } else {
        s.to_owned()
    }
}

/// `ts` truncated to its minute (seconds and sub-seconds dropped), in UTC.
pub fn truncate_to_minute(ts: DateTime<Utc>) -> DateTime<Utc> {
    ts.with_second(0).and_then(|t| t.with_nanosecond(0)).expect("second 0 and nanosecond 0 always exist")
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 48 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(48).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, InputError> {
        parse_rfc3339("timestamp", s).map(|t| t.to_rfc3339())
    }

    #[test]
    fn accepts_rfc3339_forms() {
        assert_eq!(p("2025-01-14T10:31:05Z").unwrap(), "2025-01-14T10:31:05+00:00");
        assert_eq!(p("2025-01-14T13:31:05.123+03:00").unwrap(), "2025-01-14T10:31:05.123+00:00");
        assert_eq!(p("2025-01-14 10:31:05").unwrap(), "2025-01-14T10:31:05+00:00");
        assert_eq!(p("2025-01-14T10:31:05.999999").unwrap(), "2025-01-14T10:31:05.999999+00:00");
        assert_eq!(p("2025-01-14T05:01:00-05:30").unwrap(), "2025-01-14T10:31:00+00:00");
        // PostgreSQL's text output and ISO 8601 basic offsets.
        assert_eq!(p("2025-01-14 10:31:05.081292+00").unwrap(), "2025-01-14T10:31:05.081292+00:00");
        assert_eq!(p("2025-01-14T13:31:05+0300").unwrap(), "2025-01-14T10:31:05+00:00");
        assert_eq!(p("2025-01-14T13:31:05+03").unwrap(), "2025-01-14T10:31:05+00:00");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "yesterday",
            "2025-01-14",
            "1736850665",
            "2025-13-14T10:31:05Z",
            "2025-01-14T25:31:05Z",
            "2025-01-14T10:31:05+3",
            "2025-01-14T10:31:05+03:0",
            "2025-01-14T10:31:05Zjunk",
            "2025-02-30T10:31:05Z",
            "2025-01-14T10:31:0é",
            "2025-01-14T10:31:0🚀",
            "2025-01-14T10:31:\u{feff}5",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn minute_truncation() {
        let t = parse_rfc3339("t", "2025-01-14T10:31:59.999999Z").unwrap();
        assert_eq!(truncate_to_minute(t).to_rfc3339(), "2025-01-14T10:31:00+00:00");
    }
}
