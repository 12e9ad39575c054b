//! What the generators draw from: names valid and not, hostile texts, and
//! the edges of every type.

use super::Rng;

pub(super) const EXCHANGES: &[&str] =
    &["fuzz", "fuzz", "bybit", "binance", "paper", " ByBit ", "FUZZ", "fuzz2", "nowhere"];
pub(super) const ASSETS: &[&str] = &["USDT", "USDT", "BTC", "usdt", " USDT\t", "ETH"];
pub(super) const ENDPOINTS: &[&str] =
    &["order", "global", "market_data", "account", "default", " order ", "ORDER", "nope"];
pub(super) const WORKER_TYPES: &[&str] = &["fuzz_ml", "fuzz_engine", "ml_manager", "trading_engine"];
pub(super) const WORKER_IDS: &[&str] = &["fuzz_w1", "fuzz_w2", "fuzz_w3", "fuzz_seed_engine", " fuzz_w1 "];
pub(super) const STATUSES: &[&str] = &[
    "running",
    "idle",
    "busy",
    "error",
    "stopped",
    "healthy",
    "degraded",
    "unhealthy",
    "filled",
    "rejected",
    "failed",
    "skipped",
    "expired",
    "claimed",
    " FILLED ",
    "Healthy",
];
pub(super) const COMPONENTS: &[&str] = &["fuzz_comp", "fuzz_comp2", "ml_manager", "trading_engine", "daemon"];
pub(super) const SYMBOLS: &[&str] = &["BTCUSDT", "btcusdt", "ETHUSDT", " BTCUSDT "];
pub(super) const DIRECTIONS: &[&str] = &["BUY", "SELL", "buy", " sell ", "HOLD"];
pub(super) const STRATEGIES: &[&str] = &["s", "patchtst", "fuzz"];
pub(super) const OTHER_NAMES: &[&str] = &["order", "fuzz", "k1", "k2", "k3", "boom", "timeout talking to bybit", "x"];

/// Texts no name check should pass silently: controls, lengths at and past
/// 64 characters, case mappings that change the length, invisible and
/// bidirectional characters, quoting and escapes.
pub(super) fn hostile_text(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => {
            rng.pick(&["", " ", "\t", "\n\r\t ", "\u{3000}", "\u{00A0}", "\u{200B}", "\u{2028}", "\u{85}"]).to_string()
        }
        1 => {
            let n = 1 + rng.below(20);
            (0..n)
                .map(|_| match rng.below(3) {
                    0 => char::from_u32(1 + rng.below(31) as u32).unwrap(),
                    1 => '\u{7f}',
                    _ => char::from_u32(0x80 + rng.below(32) as u32).unwrap(),
                })
                .collect()
        }
        2 => rng
            .pick(&[
                "bybit\u{1}",
                "\u{7}USDT",
                "fuzz\n",
                "BTC\u{8}USDT",
                "fuzz_w1\r",
                "\u{1b}[31mfuzz",
                "fuzz\u{7f}",
                "USDT\u{9c}",
            ])
            .to_string(),
        3 => {
            let (unit, max) = *rng.pick(&[
                ("x", 66),
                ("ж", 66),
                ("ß", 66),
                ("İ", 66),
                ("ﬃ", 40),
                ("ǅ", 66),
                ("🚀", 66),
                ("e\u{301}", 40),
            ]);
            let n = *rng.pick(&[1, 32, 33, 63, 64, 65, max]);
            unit.repeat(n)
        }
        4 => "é".repeat(1 + rng.below(200)),
        5 => rng
            .pick(&[
                "\u{202E}bybit",
                "\u{200F}USDT\u{200E}",
                "\u{FEFF}fuzz",
                "fuzz\u{200D}",
                "\u{10FFFF}",
                "\u{FFFD}",
                "\u{FFFF}",
                "𝔘𝔖𝔇𝔗",
                "ＵＳＤＴ",
                "\u{202E}\u{2066}x\u{2069}",
            ])
            .to_string(),
        6 => rng
            .pick(&[
                "'; DROP TABLE botai.balances; --",
                "$fz$",
                "\\",
                "\\\\'",
                "%s%n%x%p",
                "{}",
                "NULL",
                "null",
                "\\x00",
                "\\u0000",
                "${jndi:ldap://x}",
                "../../etc/passwd",
                "'",
                "\"",
                "botai_test",
            ])
            .to_string(),
        7 => rng.pick(&["NaN", "-0", "1e400", "Infinity", "0", "-1", "2147483648"]).to_string(),
        8 => "a".repeat(*rng.pick(&[100, 1000, 4096, 8192])),
        9 if rng.chance(10) => "b".repeat(100_000),
        _ => {
            const ALPHABET: &[char] = &[
                'a', 'Z', '0', ' ', '_', '-', '\'', '"', '\\', '$', '\u{1}', '\t', '\n', 'é', 'ж', 'ß', '🚀',
                '\u{202E}', '\u{FEFF}', '\u{85}', '%', '{', '[',
            ];
            let n = 1 + rng.below(80);
            (0..n).map(|_| *rng.pick(ALPHABET)).collect()
        }
    }
}

/// Literals PostgreSQL itself must refuse (22021 and friends), never botai.
pub(super) const INVALID_ESCAPES: &[&str] = &[
    r"E'\xff'",
    r"E'abc\xc3\x28'",
    r"E'\xed\xa0\x80'",
    r"E'\xf4\x90\x80\x80'",
    r"E'\xc0\xaf'",
    r"E'\uD800'",
    r"E'\U00110000'",
    r"E'\u0000'",
    r"E'\x00'",
    r"U&'\0000'",
    r"E'\xfe\xff'",
    r"E'fuzz\x80'",
    r"E'\400'",
];

pub(super) const NUMERIC_EDGES: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-inf",
    "-0",
    "0",
    "-0.0",
    "0.0000",
    "-1",
    "-100",
    "-0.0000000001",
    "1e-1000",
    "-1e-1000",
    "1e1000",
    "-1e1000",
    "9.999e999",
    "123456789012345678901234567890.123456789",
    "1e1001",
    "0.5e-999",
];

pub(super) const TIMESTAMP_EDGES: &[&str] = &[
    "infinity",
    "-infinity",
    "4713-01-01 00:00:00+00 BC",
    "4714-11-24 00:00:00+00 BC",
    "4714-11-24 00:00:30+00 BC",
    "4714-11-23 23:59:59+00 BC",
    "294276-12-31 23:59:59.999999+00",
    "294276-12-31 23:59:00+00",
    "294277-01-01 00:00:00+00",
    "262143-12-31 23:59:59+00",
    "262144-01-01 00:00:00+00",
    "10000-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "1970-01-01 00:00:00+00",
    "2000-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "epoch",
    "today",
    "2025-02-30 00:00:00+00",
    "2025-01-14 10:31:05+14:59",
];

pub(super) const INTERVAL_EDGES: &[&str] = &[
    "0",
    "1 microsecond",
    "-1 microsecond",
    "-5 minutes",
    "-1 day",
    "178000000 years",
    "-178000000 years",
    "2147483647 days",
    "-2147483648 days",
    "2147483647 months",
    "-2147483648 months",
    "1 month",
    "-1 month +31 days",
    "1 month -30 days",
    "1 day -86399 seconds",
    "2562047788 hours",
    "-2562047788 hours",
    "2147483647 days 2562047788:00:54.775807",
    "178956970 years 7 months 2147483647 days 2562047788:00:54.775807",
    "-178956970 years -8 months -2147483648 days -2562047788:00:54.775808",
    "@ 1 year ago",
    "P1Y2M3DT4H5M6S",
    "0.000001 seconds",
    "1000000000000 seconds",
    "24:00:00",
    "86400.000001 seconds",
];

pub(super) const FLOAT_EDGES: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0",
    "1e308",
    "1.7976931348623157e308",
    "5e-324",
    "2.2250738585072014e-308",
    "1e-300",
    "-1",
    "0.001",
    "1",
    "60",
    "86400",
    "86400.000001",
    "86399.999999",
    "1e10",
    "1e309",
];

/// Timestamps inside signal documents: multibyte characters where a byte
/// index could land, years past what chrono holds (262143) and past what
/// PostgreSQL holds (294276), every malformed offset.
pub(super) const BAD_SIGNAL_TIMESTAMPS: &[&str] = &[
    "2025-01-14T10:31:0é",
    "2025-01-14T10:31:00é",
    "2025-01-14T10:31é0",
    "2025-01-14T10:3é:00",
    "2025-01-14T10:31:00.é",
    "2025-01-14T10:31:00+0é:00",
    "2025-01-14T10:31:00é+0300",
    "2025-01-14T10:31:00ж+03",
    "éééééééééééééééééééé",
    "2025-01-14T10:31:00+ééé",
    "２０２５-01-14T10:31:00Z",
    "+262144-01-01T00:00:00Z",
    "262144-01-01T00:00:00",
    "+262143-12-31T23:59:59Z",
    "262143-12-31T23:59:59",
    "+294276-12-31T23:59:59Z",
    "294277-01-01T00:00:00",
    "99999-12-31T23:59:59",
    "+99999-12-31T23:59:59",
    "-262144-01-01T00:00:00",
    "-4713-11-24T00:00:00",
    "-004713-11-24T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0000-00-00T00:00:00Z",
    "-0001-01-01T00:00:00",
    "2025-02-30T10:31:05Z",
    "2025-01-14T24:00:00Z",
    "2025-01-14T23:59:60Z",
    "2025-01-14T23:59:60.999999999Z",
    "2025-01-14T10:31:05+23:59",
    "2025-01-14T10:31:05-23:59",
    "2025-01-14T10:31:05+24:00",
    "2025-01-14T10:31:05.0000000000001Z",
    "2025-01-14T10:31:05.99999999999999999999Z",
    "2025-01-14T10:31:05\u{0001}",
    "1736850665",
    "",
    "   ",
    "2025-01-14",
    "now",
    "infinity",
    "-infinity",
    "2025-01-14 10:31:05.081292+00",
    "2025-01-14T10:31:05+0300",
    "2025-01-14T10:31:05+03",
    "2025-01-14T10:31:05Zjunk",
    "2025-01-14T10:31:05+3",
    "2025-01-14t10:31:05z",
    "2025-01-14T10:31:05-00:00",
    "2025-01-14T10:31:05+99:99",
    "2025-01-14T10:31:05+",
    "2025-01-14T10:31:05-",
    "2025-01-14T10:31:05+-0300",
    "2025-01-14T10:31:05\u{202E}",
    "\u{FEFF}2025-01-14T10:31:05Z",
    "2025-01-14T10:31:05\t",
    "2025-01-14T10:31:05+14:00",
    "2025-01-14T10:31:05-14:00",
];

pub(super) const JSON_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.7",
    "1e400",
    "-1e400",
    "1e-400",
    "1E+308",
    "1.7976931348623157e308",
    "1.7976931348623157e309",
    "4.9e-324",
    "4.9e-325",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "2147483648",
    "1e1000",
    "1e-1000",
    "0.0000000000000000000000000000000000001",
    "1.5",
];

/// Pairs of (`now`, signal timestamp) at the ends of both calendars, so the
/// signal is fresh and its timestamp is converted and stored.
pub(crate) const EDGE_PAIRS: &[(&str, &str)] = &[
    ("294276-12-31 23:59:00+00", "+294276-12-31T23:59:00Z"),
    ("262143-12-31 23:59:00+00", "+262143-12-31T23:59:30Z"),
    ("262143-12-31 23:59:00+00", "262143-12-31T23:59:30"),
    ("4714-11-24 00:00:30+00 BC", "-4713-11-24T00:00:00Z"),
    ("4714-11-24 00:00:30+00 BC", "-4713-11-24T00:00:00"),
    ("4714-11-24 00:00:00+00 BC", "-4713-11-23T23:59:30"),
    ("4714-11-24 00:00:00+00 BC", "-004713-11-23T23:59:30Z"),
    ("2000-01-01 00:00:00+00", "2000-01-01T00:00:00Z"),
    ("1970-01-01 00:00:00+00", "1969-12-31T23:59:59.999999Z"),
    ("0001-01-01 00:01:00+00", "0001-01-01T00:00:30Z"),
    ("0001-12-31 23:59:00+00 BC", "0000-12-31T23:59:30"),
    ("9999-12-31 23:59:00+00", "9999-12-31T23:59:59.999999999Z"),
];
