//! Hostile input (SQL_API.md, general rules: bad input is refused with a
//! proper SQLSTATE and writes nothing): every `botai_*` function is called
//! with generated hostile arguments — NULLs, empty and 10 MB strings, every
//! numeric edge, malformed and deeply nested JSON, timestamps and intervals
//! at and past their limits, invalid UTF-8 escapes, names with control
//! characters — mixed with valid-looking names and ids of existing rows, so
//! that calls reach the deep code paths too (a third of the calls are valid
//! but for at most one argument).
//!
//! The functions come from the catalog at run time (those of the extension
//! whose names start with `botai_`), so a function added later is fuzzed as
//! well. Each call is one statement of literal SQL, every argument cast to
//! its declared type, in its own implicit transaction; eight sessions run
//! the calls at once, call i in session i mod 8, as the superuser,
//! `botai_service`, and each of botai's roles (reader, engine, ML manager,
//! alerter, operator).
//!
//! Afterwards: no backend crashed (a sentinel session opened before the run
//! still answers, and `pg_postmaster_start_time()` did not change: a
//! crash-restart ends every session), no connection was lost, no call ended
//! in XX000, reserving on the state the run left stays within what is
//! available, and the balances are consistent (`check_balances`). Every
//! other outcome is counted per function and SQLSTATE, and each of these
//! fails the run unless an explicit, commented list allows it: an error
//! that neither botai's checks nor PostgreSQL's refusal of an argument
//! explain (`ALLOWED`), a timeout (57014, `ALLOWED_TIMEOUTS`), a crash line
//! in the server log, an alert rule failing, a reader (views, health,
//! metrics) failing on the state the run left, and the daemon's own
//! readers — its API, `botai status|positions|orders` — failing or
//! panicking on it.
//!
//! `FUZZ_SEED` (printed at the start) reproduces the stream of generated
//! calls; `FUZZ_CALLS` sets their number (default 100,000). Ids of existing
//! rows and "now" are read at the moment of the call, so every finding is
//! printed with its SQL (control and invisible characters shown as \u{..}),
//! and written exactly to `target/fuzz/`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botai_tests::{connect_to, env_or, repo_root, sqlstate, TestDatabase};
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, SimpleQueryMessage};

const DEFAULT_SEED: u64 = 0x5EED_B07A_1F22;
const DEFAULT_CALLS: u64 = 100_000;
/// Calls with a 10 MB argument per 100,000 calls (they are slow).
const HUGE_PER_100K: u64 = 20;
const HUGE_BYTES: usize = 10 * 1024 * 1024;
const STATEMENT_TIMEOUT: &str = "5s";
/// Statement timeout plus a margin: no transaction of the run lasts longer.
const LONGEST_TRANSACTION: &str = "6 seconds";
const PROGRESS_EVERY: u64 = 10_000;
/// Findings printed per function (all are counted).
const SHOWN_PER_FUNCTION: usize = 6;

/// The SQLSTATEs the SQL API documents for bad input (and full shared
/// memory). Anything else raised inside a function is listed with a sample;
/// only XX000 fails.
const DOCUMENTED: &[&str] = &["22023", "22004", "22003", "P0002", "55000", "55006", "53200", "54000", "42501"];

#[derive(Clone, Copy, Debug)]
enum Role {
    Superuser,
    Service,
    Reader,
    Engine,
    Ml,
    Alerter,
    Operator,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Superuser => "superuser",
            Role::Service => "botai_service",
            Role::Reader => "botai_reader",
            Role::Engine => "botai_engine",
            Role::Ml => "botai_ml",
            Role::Alerter => "botai_alerter",
            Role::Operator => "botai_operator",
        }
    }
}

/// The sessions of the run and their roles: every role of botai (README
/// "Roles and rights"), the convenience login and the superuser twice.
const SESSIONS: [Role; 8] = [
    Role::Superuser,
    Role::Service,
    Role::Reader,
    Role::Engine,
    Role::Operator,
    Role::Service,
    Role::Alerter,
    Role::Ml,
];

/// Outcomes outside the documented refusals that a run may meet, each
/// with why it is right (function, SQLSTATE, origin, why). Anything else
/// fails the run: a finding that is only printed proves nothing.
const ALLOWED: &[(&str, &str, &str, &str)] = &[
    // Generated arguments also hit the checks PostgreSQL's own functions
    // make inside botai's SQL functions; listed as they are met.
];

/// Functions whose calls may meet the statement timeout, and why.
const ALLOWED_TIMEOUTS: &[(&str, &str)] = &[];

// --- deterministic generation ---------------------------------------------

/// SplitMix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed);
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True `percent` times out of 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
}

/// The generator of call `index`: its own stream, whichever session runs it.
fn call_rng(seed: u64, index: u64) -> Rng {
    Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// One argument as SQL.
#[derive(Clone)]
enum Lit {
    Null,
    /// A value, quoted as a string literal.
    Text(String),
    /// A literal written out already (invalid escapes).
    Raw(String),
    /// An expression (now(), repeat(...)).
    Expr(String),
}

impl Lit {
    fn text(s: impl Into<String>) -> Lit {
        Lit::Text(s.into())
    }

    fn sql(&self, ty: &str) -> String {
        match self {
            Lit::Null => format!("NULL::{ty}"),
            Lit::Text(s) => format!("{}::{ty}", quote(s)),
            Lit::Raw(r) => format!("{r}::{ty}"),
            Lit::Expr(e) => format!("({e})::{ty}"),
        }
    }
}

/// A string literal holding exactly `s` (PostgreSQL text cannot hold NUL,
/// and the generators never make one).
fn quote(s: &str) -> String {
    assert!(!s.contains('\0'), "generated text with NUL");
    if s.len() > 65_536 && !s.contains('$') {
        return format!("$fz${s}$fz$");
    }
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// `s` with control, bidirectional and invisible characters escaped, for
/// a terminal.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let invisible = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if invisible && c != ' ' {
            let _ = write!(out, "\\u{{{:X}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` cut to about `max` bytes for printing (saying how long it was), its
/// invisible characters escaped.
fn shorten(s: &str, max: usize) -> String {
    printable(&cut(s, max))
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut head = max * 3 / 4;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - max / 4;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…[{} bytes]…{}", &s[..head], s.len(), &s[tail..])
}

fn json_str<S: AsRef<str> + ?Sized>(s: &S) -> String {
    serde_json::to_string(s.as_ref()).expect("a string serializes")
}

const EXCHANGES: &[&str] = &["fuzz", "fuzz", "bybit", "binance", "paper", " ByBit ", "FUZZ", "fuzz2", "nowhere"];
const ASSETS: &[&str] = &["USDT", "USDT", "BTC", "usdt", " USDT\t", "ETH"];
const ENDPOINTS: &[&str] = &["order", "global", "market_data", "account", "default", " order ", "ORDER", "nope"];
const WORKER_TYPES: &[&str] = &["fuzz_ml", "fuzz_engine", "ml_manager", "trading_engine"];
const WORKER_IDS: &[&str] = &["fuzz_w1", "fuzz_w2", "fuzz_w3", "fuzz_seed_engine", " fuzz_w1 "];
const STATUSES: &[&str] = &[
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
const COMPONENTS: &[&str] = &["fuzz_comp", "fuzz_comp2", "ml_manager", "trading_engine", "daemon"];
const SYMBOLS: &[&str] = &["BTCUSDT", "btcusdt", "ETHUSDT", " BTCUSDT "];
const DIRECTIONS: &[&str] = &["BUY", "SELL", "buy", " sell ", "HOLD"];
const STRATEGIES: &[&str] = &["s", "patchtst", "fuzz"];
const OTHER_NAMES: &[&str] = &["order", "fuzz", "k1", "k2", "k3", "boom", "timeout talking to bybit", "x"];

/// Texts no name check should pass silently: controls, lengths at and past
/// 64 characters, case mappings that change the length, invisible and
/// bidirectional characters, quoting and escapes.
fn hostile_text(rng: &mut Rng) -> String {
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
const INVALID_ESCAPES: &[&str] = &[
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

const NUMERIC_EDGES: &[&str] = &[
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

const TIMESTAMP_EDGES: &[&str] = &[
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

const INTERVAL_EDGES: &[&str] = &[
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

const FLOAT_EDGES: &[&str] = &[
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
const BAD_SIGNAL_TIMESTAMPS: &[&str] = &[
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

const JSON_NUMBERS: &[&str] = &[
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
const EDGE_PAIRS: &[(&str, &str)] = &[
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

/// Ids of rows that exist, refreshed during the run.
#[derive(Default, Clone)]
struct Pools {
    reservations: Vec<String>,
    tasks: Vec<i64>,
    signals: Vec<i64>,
    orders: Vec<i64>,
    workers: Vec<String>,
    components: Vec<String>,
}

struct Gen<'a> {
    rng: Rng,
    pools: &'a Pools,
    function: &'a str,
    now: DateTime<Utc>,
    /// Index of the argument that gets a 10 MB value.
    huge_arg: Option<usize>,
}

impl Gen<'_> {
    /// A value the function accepts, of the kind its argument means.
    fn valid(&mut self, param: &Param) -> Lit {
        let rate = self.function.contains("rate");
        let name = param.name.as_str();
        match param.ty.as_str() {
            "text" => {
                let list: &[&str] = match name {
                    "exchange" if rate => &["bybit", "binance", "paper"],
                    "exchange" => &["fuzz", "fuzz", "fuzz", "paper"],
                    "asset" => &["USDT", "USDT", "BTC"],
                    "endpoint" => &["order", "global", "market_data", "account"],
                    "status" if self.function == "botai_worker_heartbeat" => &["running", "idle", "busy", "error"],
                    "status" if self.function == "botai_heartbeat" => &["healthy", "degraded", "unhealthy", "stopped"],
                    "status" => &["filled", "rejected", "failed", "skipped", "expired"],
                    "purpose" => &["order", "fuzz"],
                    "dedup_key" => &["k1", "k2", "k3"],
                    "error" => &["boom", "timeout talking to bybit"],
                    _ => return Lit::text(self.valid_name(name)),
                };
                Lit::text(*self.rng.pick(list))
            }
            "jsonb" => Lit::Text(match name {
                "signal" => {
                    let ts = self.fresh_timestamp();
                    format!(
                        r#"{{"symbol":"FZ{}USDT","direction":"{}","strategy":"s","timestamp":"{ts}"}}"#,
                        self.rng.below(400),
                        self.rng.pick(&["BUY", "SELL"])
                    )
                }
                "details" => {
                    let id = if self.pools.reservations.is_empty() {
                        "null".to_owned()
                    } else {
                        json_str(self.rng.pick(&self.pools.reservations))
                    };
                    format!(r#"{{"qty":"0.01","price":100.5,"fee":0.06,"ret_code":0,"reservation_id":{id}}}"#)
                }
                _ => self.rng.pick(&["{}", r#"{"job":1}"#, r#"{"memory_percent":42.5}"#]).to_string(),
            }),
            "numeric" => Lit::text(match name {
                "amount" => *self.rng.pick(&["1", "5", "10", "0.5", "20"]),
                "locked" => "0",
                _ => *self.rng.pick(&["1000", "1000", "900"]),
            }),
            "integer" => Lit::text(match name {
                "active_tasks" => "1",
                "weight" => "1",
                "max_rows" => "100",
                _ => "5",
            }),
            "bigint" => {
                let pool = match name {
                    "task_id" => &self.pools.tasks,
                    "signal_id" => &self.pools.signals,
                    _ => &self.pools.orders,
                };
                if pool.is_empty() {
                    Lit::text("1")
                } else {
                    Lit::Text(self.rng.pick(pool).to_string())
                }
            }
            "uuid" if !self.pools.reservations.is_empty() => Lit::Text(self.rng.pick(&self.pools.reservations).clone()),
            "boolean" => Lit::text(*self.rng.pick(&["true", "false"])),
            "double precision" => Lit::text(*self.rng.pick(&["1", "5", "0.5"])),
            "interval" => Lit::text(match name {
                "ttl" => *self.rng.pick(&["5 minutes", "2 seconds", "30 seconds"]),
                _ => "1 hour",
            }),
            "timestamp with time zone" => match name {
                "now" if self.rng.chance(50) => Lit::Null,
                "ts" => Lit::Text(self.now.format("%Y-%m-%d %H:%M:%S+00").to_string()),
                _ => Lit::Expr("now()".into()),
            },
            _ => self.value(usize::MAX, param),
        }
    }

    fn value(&mut self, position: usize, param: &Param) -> Lit {
        if self.huge_arg == Some(position) {
            return self.huge(&param.ty);
        }
        if self.rng.chance(7) {
            return Lit::Null;
        }
        match param.ty.as_str() {
            "text" | "character varying" | "name" => self.text(&param.name),
            "jsonb" | "json" => Lit::Text(self.jsonb(&param.name)),
            "numeric" => self.numeric(&param.name),
            "integer" | "smallint" => self.int4(&param.name),
            "bigint" => self.int8(&param.name),
            "double precision" | "real" => self.float8(&param.name),
            "boolean" => Lit::text(*self.rng.pick(&["true", "false", "t", "off"])),
            "uuid" => self.uuid(),
            "interval" => self.interval(&param.name),
            "timestamp with time zone" | "timestamp without time zone" | "date" => self.timestamptz(),
            _ => {
                if self.rng.chance(50) {
                    Lit::Null
                } else {
                    Lit::Text(hostile_text(&mut self.rng))
                }
            }
        }
    }

    fn huge(&mut self, ty: &str) -> Lit {
        if ty == "jsonb" || ty == "json" {
            let filler = "x".repeat(HUGE_BYTES);
            let doc = match self.rng.below(3) {
                0 => format!(
                    r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","x":"{filler}"}}"#,
                    self.fresh_timestamp()
                ),
                1 => format!(
                    r#"{{"symbol":"{filler}","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}}"#
                ),
                _ => format!("[{}1]", "1,".repeat(HUGE_BYTES / 2)),
            };
            return Lit::Text(doc);
        }
        let unit = *self.rng.pick(&["x", "é", "bybit ", "\u{1}", " "]);
        Lit::Text(unit.repeat(HUGE_BYTES / unit.len()))
    }

    fn text(&mut self, name: &str) -> Lit {
        let roll = self.rng.below(100);
        if roll < 45 {
            Lit::text(self.valid_name(name))
        } else if roll < 50 {
            Lit::Raw(self.rng.pick(INVALID_ESCAPES).to_string())
        } else if roll < 51 {
            Lit::Expr("convert_from('\\xff'::bytea, 'UTF8')".into())
        } else {
            Lit::Text(hostile_text(&mut self.rng))
        }
    }

    /// A name that passes validation, fitting the argument's meaning most of
    /// the time (so the call gets past the checks).
    fn valid_name(&mut self, name: &str) -> String {
        let list: &[&str] = if self.rng.chance(15) {
            const ALL: [&[&str]; 8] =
                [EXCHANGES, ASSETS, ENDPOINTS, WORKER_TYPES, WORKER_IDS, STATUSES, COMPONENTS, OTHER_NAMES];
            self.rng.pick::<&[&str]>(&ALL)
        } else {
            match name {
                "exchange" => EXCHANGES,
                "asset" => ASSETS,
                "endpoint" => ENDPOINTS,
                "worker_type" => WORKER_TYPES,
                "worker_id" | "engine" => {
                    if !self.pools.workers.is_empty() && self.rng.chance(40) {
                        return self.rng.pick(&self.pools.workers).clone();
                    }
                    WORKER_IDS
                }
                "status" => STATUSES,
                "component" => {
                    if !self.pools.components.is_empty() && self.rng.chance(30) {
                        return self.rng.pick(&self.pools.components).clone();
                    }
                    COMPONENTS
                }
                "symbol" => SYMBOLS,
                "direction" => DIRECTIONS,
                "strategy" => STRATEGIES,
                _ => OTHER_NAMES,
            }
        };
        self.rng.pick(list).to_string()
    }

    fn numeric(&mut self, name: &str) -> Lit {
        let roll = self.rng.below(100);
        if roll < 40 {
            let amounts: &[&str] = if name == "amount" {
                &["1", "5", "10", "0.01", "0.00000001", "4", "100", "980.3921568627451", "999.999999999999999999"]
            } else {
                &["1000", "1000", "100", "0", "1", "980", "1000.0000000001", "999.99", "10"]
            };
            return Lit::text(*self.rng.pick(amounts));
        }
        match roll {
            40..=44 => Lit::Text(format!("0.{}1", "0".repeat(999))),
            45..=46 => Lit::Text(format!("0.{}1", "0".repeat(16_382))),
            47 => Lit::Text(format!("0.{}1", "0".repeat(16_383))),
            48 => Lit::Expr("repeat('9', 131072)::numeric".into()),
            49 => Lit::Expr("(repeat('9', 131072) || '.' || repeat('9', 16383))::numeric".into()),
            50 => Lit::Expr("repeat('9', 131072)::numeric + 1".into()),
            51..=52 => Lit::Text("9".repeat(1000)),
            53 => Lit::Raw(self.rng.pick(INVALID_ESCAPES).to_string()),
            _ => Lit::text(*self.rng.pick(NUMERIC_EDGES)),
        }
    }

    fn int4(&mut self, name: &str) -> Lit {
        if self.rng.chance(45) {
            let usual: &[i64] = match name {
                "active_tasks" => &[0, 1, 3],
                "weight" => &[1, 2, 5, 10],
                "max_rows" => &[1, 10, 100, 1000],
                "minutes" => &[1, 5, 60, 1440],
                _ => &[0, 1, 5, 100],
            };
            return Lit::Text(self.rng.pick(usual).to_string());
        }
        let v: i64 = match self.rng.below(10) {
            0 => i64::from(i32::MIN),
            1 => i64::from(i32::MAX),
            2 => -1,
            3 => 0,
            4 => 65_536,
            5 => i64::from(i32::MAX) + 1,
            6 => i64::from(self.rng.next() as i32),
            7 => 1_000_000,
            _ => self.rng.between(-10, 10),
        };
        Lit::Text(v.to_string())
    }

    fn int8(&mut self, name: &str) -> Lit {
        if self.rng.chance(50) {
            let pool = match name {
                "task_id" => &self.pools.tasks,
                "signal_id" => &self.pools.signals,
                "order_id" => &self.pools.orders,
                _ => {
                    let pools = [&self.pools.tasks, &self.pools.signals, &self.pools.orders];
                    *self.rng.pick(&pools)
                }
            };
            if !pool.is_empty() {
                return Lit::Text(self.rng.pick(pool).to_string());
            }
        }
        let v: i128 = match self.rng.below(8) {
            0 => i128::from(i64::MIN),
            1 => i128::from(i64::MAX),
            2 => -1,
            3 => 0,
            4 => i128::from(i64::MAX) + 1,
            5 => i128::from(self.rng.next() as i64),
            _ => i128::from(self.rng.between(1, 100_000)),
        };
        Lit::Text(v.to_string())
    }

    fn float8(&mut self, name: &str) -> Lit {
        if name == "seconds" && self.rng.chance(40) {
            return Lit::text(*self.rng.pick(&["0.001", "1", "5", "60"]));
        }
        Lit::text(*self.rng.pick(FLOAT_EDGES))
    }

    fn uuid(&mut self) -> Lit {
        let roll = self.rng.below(100);
        if roll < 55 && !self.pools.reservations.is_empty() {
            return Lit::Text(self.rng.pick(&self.pools.reservations).clone());
        }
        match roll % 6 {
            0 => Lit::text("00000000-0000-0000-0000-000000000000"),
            1 => Lit::text("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            2 => Lit::text(*self.rng.pick(&["not-a-uuid", "", "{00000000-0000-0000-0000-000000000000}"])),
            3 => {
                // Time-ordered like the real ones (v7), from the far future.
                let (a, b) = (self.rng.next(), self.rng.next());
                Lit::Text(format!(
                    "ffff{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
                    a & 0xffff,
                    (a >> 16) & 0xffff,
                    (a >> 32) & 0xfff,
                    b & 0xfff,
                    (b >> 16) & 0xffff_ffff_ffff
                ))
            }
            _ => {
                let (a, b) = (self.rng.next(), self.rng.next());
                Lit::Text(format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    a & 0xffff_ffff,
                    (a >> 32) & 0xffff,
                    (a >> 48) & 0xfff,
                    b & 0xfff,
                    (b >> 16) & 0xffff_ffff_ffff
                ))
            }
        }
    }

    fn interval(&mut self, name: &str) -> Lit {
        if self.rng.chance(40) {
            let usual: &[&str] = match name {
                "ttl" => {
                    &["1 second", "2 seconds", "30 seconds", "5 minutes", "1 day", "23:59:59.999999", "1 microsecond"]
                }
                _ => &["1 hour", "1 day", "10 minutes", "7 days"],
            };
            return Lit::text(*self.rng.pick(usual));
        }
        Lit::text(*self.rng.pick(INTERVAL_EDGES))
    }

    fn timestamptz(&mut self) -> Lit {
        match self.rng.below(10) {
            0 => Lit::Expr("now()".into()),
            1 => Lit::Expr(
                (*self.rng.pick(&[
                    "now() - interval '1 minute'",
                    "now() + interval '59 seconds'",
                    "now() + interval '61 seconds'",
                    "now() - interval '1 day'",
                    "now() - interval '299 seconds'",
                    "clock_timestamp()",
                ]))
                .to_owned(),
            ),
            2 => Lit::Text(self.now.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()),
            _ => Lit::text(*self.rng.pick(TIMESTAMP_EDGES)),
        }
    }

    /// A timestamp inside the dedup window of now, in one of the accepted forms.
    fn fresh_timestamp(&mut self) -> String {
        let t = self.now + chrono::Duration::seconds(self.rng.between(-280, 50));
        match self.rng.below(5) {
            0 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            1 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            2 => t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
            3 => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            _ => t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        }
    }

    fn jsonb(&mut self, name: &str) -> String {
        let roll = self.rng.below(100);
        if roll < 15 {
            return self.hostile_document();
        }
        match name {
            "signal" => self.signal(),
            "metadata" | "details" | "result" | "payload" => self.object(name),
            _ if self.rng.chance(50) => self.signal(),
            _ => self.object(name),
        }
    }

    /// A signal document: valid and fresh, or with one thing wrong.
    fn signal(&mut self) -> String {
        let symbol = if self.rng.chance(60) {
            format!("FZ{}USDT", self.rng.below(400))
        } else {
            self.rng.pick(SYMBOLS).to_string()
        };
        let mut fields: Vec<(String, String)> = vec![
            ("symbol".into(), json_str(&symbol)),
            ("direction".into(), json_str(self.rng.pick(&["BUY", "SELL", "buy"]))),
            ("strategy".into(), json_str(self.rng.pick(&["s", "fuzz", "patchtst"]))),
            ("timestamp".into(), {
                let t = self.fresh_timestamp();
                json_str(&t)
            }),
        ];
        if self.rng.chance(40) {
            fields.push(("signal_strength".into(), "0.7".into()));
        }
        if self.rng.chance(30) {
            fields.push(("exchange".into(), json_str(self.rng.pick(&["fuzz", "ByBit", "paper"]))));
        }
        let mutations = match self.rng.below(100) {
            0..=34 => 0,
            35..=84 => 1,
            _ => 2,
        };
        for _ in 0..mutations {
            match self.rng.below(10) {
                0 => {
                    let i = self.rng.below(4.min(fields.len()));
                    fields.remove(i);
                }
                1 => {
                    let key = self.rng.pick(&["symbol", "timestamp", "direction"]).to_string();
                    let v = self.json_value(&key);
                    fields.push((key, v));
                }
                2 => {
                    let key =
                        if self.rng.chance(30) { json_str(&hostile_text(&mut self.rng)) } else { json_str("extra") };
                    // The escaped text between the quotes.
                    let key = key[1..key.len() - 1].to_owned();
                    let v = self.json_value("extra");
                    fields.push((key, v));
                }
                3 => {
                    let key = self.rng.pick(&["signal_strength", "exchange"]).to_string();
                    let v = self.json_value(&key);
                    fields.retain(|(k, _)| *k != key);
                    fields.push((key, v));
                }
                _ => {
                    let i = self.rng.below(fields.len());
                    let key = fields[i].0.clone();
                    fields[i].1 = self.json_value(&key);
                }
            }
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let doc = format!("{{{}}}", body.join(","));
        if self.rng.chance(3) {
            format!("[{doc}]")
        } else {
            doc
        }
    }

    /// A JSON value for `key`: wrong types, edges of its kind, huge and
    /// deeply nested values.
    fn json_value(&mut self, key: &str) -> String {
        let roll = self.rng.below(100);
        match key {
            "timestamp" if roll < 55 => json_str(self.rng.pick(BAD_SIGNAL_TIMESTAMPS)),
            "timestamp" if roll < 70 => {
                // A multibyte character at every byte position a slice might use.
                let t = self.now.format("%Y-%m-%dT%H:%M:%S").to_string();
                let at = 14 + self.rng.below(t.len() - 13);
                let c = *self.rng.pick(&["é", "ж", "🚀", "\u{202E}"]);
                json_str(&format!("{}{c}{}", &t[..at], &t[at..]))
            }
            "timestamp" if roll < 75 => {
                let t = self.fresh_timestamp();
                json_str(&format!("{t}{}", self.rng.pick(&["+0é", "é", "+03é0", "+ж", " ", "Z "])))
            }
            "signal_strength" if roll < 60 => self.rng.pick(JSON_NUMBERS).to_string(),
            "direction" if roll < 50 => json_str(self.rng.pick(&["HOLD", "BUY ", "ＢＵＹ", "bUy", "B\u{301}UY", ""])),
            "exchange" if roll < 40 => json_str(self.rng.pick(EXCHANGES)),
            _ => match self.rng.below(12) {
                0 => self.rng.pick(&["null", "true", "false", "[]", "{}", "[null]"]).to_string(),
                1 | 2 => self.rng.pick(JSON_NUMBERS).to_string(),
                3 => format!("0.{}1", "0".repeat(999)),
                4 => self.nested(),
                5 if self.rng.chance(10) => json_str(&"y".repeat(*self.rng.pick(&[65_536, 1_048_576]))),
                5 => json_str(&"y".repeat(*self.rng.pick(&[64, 65, 1000]))),
                6 => self
                    .rng
                    .pick(&[
                        r#""\u0000""#,
                        r#""BTC\u0000USDT""#,
                        r#""\\u0000""#,
                        r#""\ud800""#,
                        r#""\udc00\ud800""#,
                        r#""\ud83d\ude80""#,
                        r#""\uFFFF""#,
                        r#""\u0001\u001f""#,
                        r#""\u202e""#,
                    ])
                    .to_string(),
                _ => json_str(&hostile_text(&mut self.rng)),
            },
        }
    }

    fn nested(&mut self) -> String {
        let depth = *self.rng.pick(&[64, 127, 128, 129, 200, 2000, 10_000]);
        if self.rng.chance(50) {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
        }
    }

    /// An object argument (metadata, details, result, payload).
    fn object(&mut self, name: &str) -> String {
        match self.rng.below(10) {
            0 => "{}".into(),
            1 | 2 => {
                let v = self.metric_value();
                format!(r#"{{"memory_percent":{v},"cpu_percent":{}}}"#, self.metric_value())
            }
            3 | 4 if name == "details" || self.rng.chance(30) => {
                let mut body = Vec::new();
                for key in ["qty", "price", "notional", "fee", "ret_code"] {
                    if self.rng.chance(50) {
                        body.push(format!("\"{key}\":{}", self.metric_value()));
                    }
                }
                if self.rng.chance(50) {
                    let id = match self.rng.below(3) {
                        0 if !self.pools.reservations.is_empty() => json_str(self.rng.pick(&self.pools.reservations)),
                        1 => json_str("not-a-uuid"),
                        _ => self.json_value("reservation_id"),
                    };
                    body.push(format!("\"reservation_id\":{id}"));
                }
                for key in ["exchange_order_id", "message"] {
                    if self.rng.chance(30) {
                        body.push(format!("\"{key}\":{}", self.json_value(key)));
                    }
                }
                format!("{{{}}}", body.join(","))
            }
            5 => format!(r#"{{"job":1,"nested":{}}}"#, self.nested()),
            6 => {
                let v = self.json_value("extra");
                format!(r#"{{"a":{v}}}"#)
            }
            7 => self
                .rng
                .pick(&[
                    r#"{"\u0001":1}"#,
                    r#"{"":""}"#,
                    r#"{"\u0000":1}"#,
                    r#"{"a":1,"a":2}"#,
                    r#"{"memory_percent":"95","memory_percent":96}"#,
                    "[]",
                    "1",
                    r#""s""#,
                    "null",
                    "[{}]",
                ])
                .to_string(),
            8 if self.rng.chance(5) => {
                let body: Vec<String> = (0..10_000).map(|i| format!("\"k{i}\":{i}")).collect();
                format!("{{{}}}", body.join(","))
            }
            _ => format!(r#"{{"job":{},"note":{}}}"#, self.rng.below(1000), self.json_value("note")),
        }
    }

    fn metric_value(&mut self) -> String {
        match self.rng.below(4) {
            0 => json_str(self.rng.pick(&[
                "95", "1e400", "NaN", "inf", "-inf", " 1", "0x10", "1_000", "1e308", "-0", "abc", "", "1e-400",
            ])),
            1 => format!("\"{}\"", "9".repeat(400)),
            _ => self.rng.pick(JSON_NUMBERS).to_string(),
        }
    }

    /// Any document at all: structures and syntax PostgreSQL may or may not
    /// accept as jsonb.
    fn hostile_document(&mut self) -> String {
        match self.rng.below(14) {
            0 => self.rng.pick(&["null", "[]", "{}", "0", r#""str""#, "true", "1e400", "-0"]).to_string(),
            1 | 2 => self.nested(),
            3 => {
                let inner = self.nested();
                format!(
                    r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","x":{inner}}}"#,
                    self.fresh_timestamp()
                )
            }
            4 => {
                let s = self.signal();
                format!("[{s},{s}]")
            }
            5 => self
                .rng
                .pick(&["{", r#"{"a":}"#, "{'a':1}", "NaN", "[1,]", "", "\u{FEFF}{}", "{\"a\":1}x", "01"])
                .to_string(),
            6 => self
                .rng
                .pick(&[
                    r#""\u0000""#,
                    r#"{"symbol":"BTC\u0000USDT","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"symbol":"\\u0000","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"symbol":"\ud800","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"\u0000":1}"#,
                ])
                .to_string(),
            7 if self.rng.chance(10) => format!("[{}1]", "1,".repeat(100_000)),
            8 => format!(
                r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","signal_strength":{}}}"#,
                self.fresh_timestamp(),
                self.rng.pick(&["1e400", "-1e400", "1e-400", "1.7976931348623157e309", "4.9e-325"])
            ),
            9 => {
                let now = self.fresh_timestamp();
                format!(
                    r#"{{"symbol":"BTCUSDT","symbol":"ETHUSDT","direction":"BUY","strategy":"s","timestamp":"{now}"}}"#
                )
            }
            _ => self.object("any"),
        }
    }
}

// --- the functions ---------------------------------------------------------

#[derive(Clone, Debug)]
struct Param {
    name: String,
    ty: String,
}

#[derive(Clone, Debug)]
struct Function {
    name: String,
    /// schema.name, quoted.
    call: String,
    procedure: bool,
    identity: String,
    args: Vec<Param>,
    defaults: usize,
}

/// Every function of the extension whose name starts with botai_.
async fn discover(db: &Client) -> Vec<Function> {
    let rows = db
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), p.proname::text, p.prokind::text, \
                    pg_get_function_identity_arguments(p.oid), p.pronargdefaults::int4, \
                    ARRAY(SELECT format_type(a.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i) \
                          ORDER BY a.i), \
                    p.proargmodes::text[], p.proargnames \
             FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e' \
             JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND e.oid = d.refobjid \
             WHERE e.extname = 'botai' AND p.proname LIKE 'botai\\_%' \
             ORDER BY p.proname, 4",
            &[],
        )
        .await
        .expect("read the functions of the botai extension");
    rows.iter()
        .map(|r| {
            let types: Vec<String> = r.get(5);
            let modes: Option<Vec<String>> = r.get(6);
            let names: Vec<String> = r.get::<_, Option<Vec<String>>>(7).unwrap_or_default();
            // proargnames covers every argument, OUT and TABLE columns too.
            let input_names: Vec<String> = match modes {
                None => names,
                Some(modes) => modes
                    .iter()
                    .zip(names.iter().map(Some).chain(std::iter::repeat(None)))
                    .filter(|(m, _)| matches!(m.as_str(), "i" | "b" | "v"))
                    .map(|(_, n)| n.cloned().unwrap_or_default())
                    .collect(),
            };
            let args = types
                .into_iter()
                .enumerate()
                .map(|(i, ty)| Param { name: input_names.get(i).cloned().unwrap_or_default(), ty })
                .collect();
            Function {
                call: r.get(0),
                name: r.get(1),
                procedure: r.get::<_, String>(2) == "p",
                identity: r.get(3),
                defaults: r.get::<_, i32>(4) as usize,
                args,
            }
        })
        .collect()
}

/// Calls per function: the ones that write and branch most get more.
fn weight(f: &Function) -> u64 {
    const DEEP: &[&str] = &[
        "botai_register_signal",
        "botai_check_and_register_signal",
        "botai_reserve_balance",
        "botai_update_balance",
        "botai_commit_reservation",
        "botai_release_reservation",
        "botai_order_claim",
        "botai_order_finish",
        "botai_fingerprint",
    ];
    if f.args.is_empty() {
        1
    } else if DEEP.contains(&f.name.as_str()) {
        5
    } else {
        3
    }
}

struct Call {
    function: usize,
    sql: String,
    /// The arguments alone, comma-separated.
    args: String,
    /// The SQL with long arguments shortened.
    shown: String,
}

struct Plan {
    seed: u64,
    calls: u64,
    functions: Vec<Function>,
    cumulative: Vec<u64>,
    /// Functions with a text or jsonb argument (candidates for 10 MB ones).
    stringly: Vec<usize>,
    huge_calls: HashSet<u64>,
}

impl Plan {
    fn new(seed: u64, calls: u64, functions: Vec<Function>) -> Plan {
        let mut total = 0;
        let cumulative = functions
            .iter()
            .map(|f| {
                total += weight(f);
                total
            })
            .collect();
        let stringly = (0..functions.len())
            .filter(|&i| functions[i].args.iter().any(|p| matches!(p.ty.as_str(), "text" | "jsonb")))
            .collect();
        let wanted = (calls * HUGE_PER_100K).div_ceil(100_000).min(calls);
        let mut rng = Rng::new(seed ^ 0x4855_4745);
        let mut huge_calls = HashSet::new();
        while (huge_calls.len() as u64) < wanted {
            huge_calls.insert(rng.next() % calls);
        }
        Plan { seed, calls, functions, cumulative, stringly, huge_calls }
    }

    fn call(&self, index: u64, pools: &Pools) -> Call {
        let mut rng = call_rng(self.seed, index);
        let huge = self.huge_calls.contains(&index) && !self.stringly.is_empty();
        let function = if huge {
            *rng.pick(&self.stringly)
        } else {
            let total = *self.cumulative.last().expect("functions");
            let r = rng.next() % total;
            self.cumulative.partition_point(|&c| c <= r)
        };
        let f = &self.functions[function];
        let huge_arg = if huge {
            let candidates: Vec<usize> =
                (0..f.args.len()).filter(|&i| matches!(f.args[i].ty.as_str(), "text" | "jsonb")).collect();
            Some(*rng.pick(&candidates))
        } else {
            None
        };
        let mut count = f.args.len();
        if f.defaults > 0 && !huge && rng.chance(12) {
            count -= 1 + rng.below(f.defaults);
        }
        let mut g = Gen { rng, pools, function: &f.name, now: Utc::now(), huge_arg };
        // A third of the calls are valid but for at most one argument, so
        // they get past the checks into the statements; the rest are hostile
        // throughout.
        let mut lits: Vec<Lit> = if !huge && g.rng.chance(35) {
            let hostile = if count > 0 && g.rng.chance(70) { Some(g.rng.below(count)) } else { None };
            (0..count).map(|i| if Some(i) == hostile { g.value(i, &f.args[i]) } else { g.valid(&f.args[i]) }).collect()
        } else {
            (0..count).map(|i| g.value(i, &f.args[i])).collect()
        };
        // Fresh signals at the ends of both calendars.
        let signal = f.args.iter().position(|p| p.name == "signal" && p.ty == "jsonb");
        let now = f.args.iter().position(|p| p.name == "now" && p.ty.starts_with("timestamp"));
        if let (Some(s), Some(n), false) = (signal, now, huge) {
            if g.rng.chance(10) {
                let (now_value, ts) = *g.rng.pick(EDGE_PAIRS);
                while lits.len() <= s.max(n) {
                    lits.push(Lit::Null);
                }
                lits[s] = Lit::Text(format!(
                    r#"{{"symbol":"FZEDGE{}","direction":"BUY","strategy":"s","timestamp":"{ts}"}}"#,
                    g.rng.below(1000)
                ));
                lits[n] = Lit::text(now_value);
            }
        }
        let args: Vec<String> = lits.iter().zip(&f.args).map(|(l, p)| l.sql(&p.ty)).collect();
        let shown: Vec<String> = args.iter().map(|a| shorten(a, 240)).collect();
        let verb = if f.procedure { "CALL" } else { "SELECT * FROM" };
        Call {
            function,
            args: args.join(", "),
            sql: format!("{verb} {}({})", f.call, args.join(", ")),
            shown: format!("{verb} {}({})", f.call, shown.join(", ")),
        }
    }
}

// --- running -----------------------------------------------------------------

#[derive(Default)]
struct FunctionStats {
    calls: u64,
    outcomes: BTreeMap<String, u64>,
    slowest: Duration,
    slowest_call: String,
}

struct Sample {
    count: u64,
    message: String,
    call: String,
    role: &'static str,
    file: Option<PathBuf>,
}

#[derive(Default)]
struct Report {
    functions: BTreeMap<String, FunctionStats>,
    /// XX000 by (function, message shape).
    internal: BTreeMap<(String, String), Sample>,
    /// First occurrence of every (function, SQLSTATE, origin).
    samples: BTreeMap<(String, String, &'static str), Sample>,
    /// Outcomes per role.
    roles: BTreeMap<&'static str, BTreeMap<String, u64>>,
    lost: Vec<String>,
}

impl Report {
    fn merge(&mut self, other: Report) {
        for (name, s) in other.functions {
            let mine = self.functions.entry(name).or_default();
            mine.calls += s.calls;
            for (code, n) in s.outcomes {
                *mine.outcomes.entry(code).or_default() += n;
            }
            if s.slowest > mine.slowest {
                mine.slowest = s.slowest;
                mine.slowest_call = s.slowest_call;
            }
        }
        for (key, sample) in other.internal {
            match self.internal.get_mut(&key) {
                Some(mine) => mine.count += sample.count,
                None => {
                    self.internal.insert(key, sample);
                }
            }
        }
        for (key, sample) in other.samples {
            match self.samples.get_mut(&key) {
                Some(mine) => mine.count += sample.count,
                None => {
                    self.samples.insert(key, sample);
                }
            }
        }
        for (role, outcomes) in other.roles {
            let mine = self.roles.entry(role).or_default();
            for (code, n) in outcomes {
                *mine.entry(code).or_default() += n;
            }
        }
        self.lost.extend(other.lost);
    }
}

struct Shared {
    database: String,
    plan: Plan,
    done: AtomicU64,
    abort: AtomicBool,
    finished: AtomicBool,
    pools: Mutex<Arc<Pools>>,
    in_flight: Vec<Mutex<String>>,
    started: Instant,
    findings_dir: PathBuf,
    file_counter: AtomicU64,
}

impl Shared {
    /// Writes the exact SQL of a finding to target/fuzz/ (it may be 10 MB).
    fn save(&self, function: &str, what: &str, sql: &str) -> Option<PathBuf> {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        if n >= 200 {
            return None;
        }
        let path = self.findings_dir.join(format!("{what}-{function}-{n}.sql"));
        std::fs::write(&path, format!("{sql};\n")).ok()?;
        Some(path)
    }
}

/// Messages differ by their inputs; group XX000 by the shape of the message.
fn message_shape(message: &str) -> String {
    let shape: String = message.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(70).collect();
    shape
}

async fn open_session(database: &str, role: Role) -> Client {
    let db = connect_to(database).await;
    let set_role = match role {
        Role::Superuser => String::new(),
        other => format!("SET ROLE {};", other.label()),
    };
    // A fuzzed botai_send_permit holds the send gate for the rest of its
    // session: a fuzzed botai_halt must not wait for it.
    db.batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'; SET botai.halt_wait = 0; {set_role}"))
        .await
        .expect("set up a fuzz session");
    db
}

async fn run_session(index: usize, role: Role, shared: Arc<Shared>) -> Report {
    let db = open_session(&shared.database, role).await;
    let mut report = Report::default();
    // Call i runs in session i mod SESSIONS: as the same role in every run.
    let mut next = index as u64;
    while next < shared.plan.calls && !shared.abort.load(Ordering::Relaxed) {
        let i = next;
        next += SESSIONS.len() as u64;
        let pools = shared.pools.lock().unwrap().clone();
        let call = shared.plan.call(i, &pools);
        let function = shared.plan.functions[call.function].name.clone();
        *shared.in_flight[index].lock().unwrap() = format!("call #{i} as {}: {}", role.label(), call.shown);
        let started = Instant::now();
        let result = db.simple_query(&call.sql).await;
        let took = started.elapsed();
        let stats = report.functions.entry(function.clone()).or_default();
        stats.calls += 1;
        if took > stats.slowest {
            stats.slowest = took;
            stats.slowest_call = call.shown.clone();
        }
        let code = match &result {
            Ok(messages) => {
                debug_assert!(messages.iter().any(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))));
                "ok".to_owned()
            }
            Err(e) => match sqlstate(e) {
                Some(code) if !db.is_closed() => code,
                _ => {
                    let others: Vec<String> = shared
                        .in_flight
                        .iter()
                        .enumerate()
                        .filter(|&(s, _)| s != index)
                        .map(|(s, c)| format!("    session {s}: {}", c.lock().unwrap()))
                        .collect();
                    let file = shared.save(&function, "lost", &call.sql);
                    report.lost.push(format!(
                        "session {index} ({}) lost its connection ({e}) during call #{i}: {}\n  full SQL: {}\n  \
                         in flight in the other sessions:\n{}",
                        role.label(),
                        call.shown,
                        file.map(|p| p.display().to_string()).unwrap_or_else(|| "not saved".into()),
                        others.join("\n")
                    ));
                    shared.abort.store(true, Ordering::Relaxed);
                    break;
                }
            },
        };
        *stats.outcomes.entry(code.clone()).or_default() += 1;
        *report.roles.entry(role.label()).or_default().entry(code.clone()).or_default() += 1;
        if let Err(e) = &result {
            let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
            let message = shorten(&message, 300);
            if code == "XX000" {
                let key = (function.clone(), message_shape(&message));
                match report.internal.get_mut(&key) {
                    Some(s) => s.count += 1,
                    None => {
                        let file = shared.save(&function, "XX000", &call.sql);
                        report.internal.insert(
                            key,
                            Sample {
                                count: 1,
                                message: message.clone(),
                                call: call.shown.clone(),
                                role: role.label(),
                                file,
                            },
                        );
                    }
                }
            }
            // Where it came from: botai's own checks name the function;
            // otherwise it came from inside the function unless PostgreSQL
            // refuses the arguments alone too (a literal out of range, an
            // invalid escape).
            let raw = e.as_db_error().map(|d| d.message()).unwrap_or_default();
            // botai's own refusals name the function that raised them: the
            // one called, or one it calls (botai_reserve_order books with
            // botai_rate_acquire).
            let raised_by = raw.split_once(": ").map(|(f, _)| f).unwrap_or_default();
            let by_botai = raised_by == function
                || (raised_by.starts_with("botai_") && shared.plan.functions.iter().any(|f| f.name == raised_by));
            let origin = if by_botai {
                "raised by botai"
            } else if code == "42501" && raw.starts_with("permission denied for function") {
                "no EXECUTE privilege"
            } else if code == "42804" && raw.ends_with("unsupported return type trigger") {
                "a trigger function, not callable"
            } else if code == "XX000" || code == "57014" || call.args.is_empty() {
                "inside the function"
            } else if db.simple_query(&format!("SELECT {}", call.args)).await.is_err() {
                "PostgreSQL refused an argument"
            } else {
                "inside the function"
            };
            let key = (function.clone(), code.clone(), origin);
            match report.samples.get_mut(&key) {
                Some(s) => s.count += 1,
                None => {
                    report.samples.insert(
                        key,
                        Sample { count: 1, message, call: call.shown.clone(), role: role.label(), file: None },
                    );
                }
            }
        }
        let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            let secs = shared.started.elapsed().as_secs_f64();
            println!("  {done:>7} calls, {:.0} calls/s, {secs:.0} s", done as f64 / secs);
        }
    }
    report
}

/// Keeps the pools of existing ids fresh while the run lasts.
async fn refresh_pools(db: Client, shared: Arc<Shared>) -> Client {
    while !shared.finished.load(Ordering::Relaxed) {
        let row = db
            .query_one(
                "SELECT ARRAY(SELECT reservation_id::text FROM botai.reservations ORDER BY reservation_id DESC LIMIT 48) \
                     || ARRAY(SELECT reservation_id::text FROM botai.reservations WHERE exchange = 'fuzz' \
                              ORDER BY random() LIMIT 16), \
                        ARRAY(SELECT task_id FROM botai.tasks ORDER BY task_id DESC LIMIT 24) \
                     || ARRAY(SELECT task_id FROM botai.tasks WHERE status = 'claimed' ORDER BY task_id DESC LIMIT 24), \
                        ARRAY(SELECT signal_id FROM botai.signals ORDER BY signal_id DESC LIMIT 32), \
                        ARRAY(SELECT order_id FROM botai.orders ORDER BY order_id DESC LIMIT 32), \
                        ARRAY(SELECT worker_id FROM botai.workers WHERE unregistered_at IS NULL \
                              ORDER BY registered_at DESC LIMIT 32), \
                        ARRAY(SELECT component FROM botai.components ORDER BY last_heartbeat DESC LIMIT 16)",
                &[],
            )
            .await;
        if let Ok(row) = row {
            let pools = Pools {
                reservations: row.get(0),
                tasks: row.get(1),
                signals: row.get(2),
                orders: row.get(3),
                workers: row.get(4),
                components: row.get(5),
            };
            *shared.pools.lock().unwrap() = Arc::new(pools);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    db
}

/// State for the calls to reach deep paths: balances, reservations (one
/// expiring during the run, one committed, one released), a registered
/// engine (held by `db` for the whole run), tasks, a component, a signal and
/// its order.
async fn seed_state(db: &Client) {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let symbol = format!("FZSEED{}", &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase());
    let signal = format!(r#"{{"symbol":"{symbol}","direction":"BUY","strategy":"s","timestamp":"{now}"}}"#);
    db.batch_execute(&format!(
        "SELECT botai_update_balance('fuzz', 'USDT', 1000, 1000, 0); \
         SELECT botai_update_balance('fuzz', 'BTC', 10, 10, 0); \
         SELECT botai_reserve_balance('fuzz', 'USDT', 10, 'fuzz-seed', '{{\"seed\": true}}', '5 minutes') \
           FROM generate_series(1, 3); \
         SELECT botai_reserve_balance('fuzz', 'USDT', 5, 'fuzz-seed', NULL, '2 seconds'); \
         SELECT botai_commit_reservation(botai_reserve_balance('fuzz', 'USDT', 20, 'fuzz-seed'), 4); \
         SELECT botai_release_reservation(botai_reserve_balance('fuzz', 'BTC', 1, 'fuzz-seed')); \
         SELECT botai_register_worker('fuzz_engine', 'fuzz_seed_engine', '{{}}'); \
         SELECT botai_enqueue_task('fuzz_ml', '{{\"job\": 1}}', NULL); \
         SELECT botai_enqueue_task('fuzz_ml', '{{\"job\": 2}}', 'k1'); \
         SELECT botai_register_component('fuzz_comp', '{{}}'); \
         SELECT * FROM botai_order_claim((SELECT signal_id FROM botai_register_signal('{signal}')), \
                                         'fuzz_seed_engine', 'fuzz');"
    ))
    .await
    .expect("seed the fuzz state");
}

/// Reserving on the state the run left (pending folds, expired and retired
/// reservations, odd amounts): four sessions reserve a seventh of what is
/// available on up to ten balances until refused. No error, and afterwards
/// each balance that admitted any has reserved at most what is available
/// (nothing lowered `available` meanwhile).
async fn probe_admission(database: &str, db: &Client, failures: &mut Vec<String>) {
    let targets: Vec<(String, String, String)> = db
        .query(
            "SELECT exchange, asset, round(available / 7, 8)::text FROM botai.balances \
             WHERE available BETWEEN 0.000001 AND 1e12 ORDER BY exchange <> 'fuzz', exchange, asset LIMIT 10",
            &[],
        )
        .await
        .expect("balances to probe")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let targets = Arc::new(targets);
    let sessions: Vec<_> = [Role::Superuser, Role::Service, Role::Superuser, Role::Service]
        .into_iter()
        .map(|role| {
            let (targets, database) = (targets.clone(), database.to_owned());
            tokio::spawn(async move {
                let db = open_session(&database, role).await;
                let mut admitted = vec![0u32; targets.len()];
                let mut errors = Vec::new();
                for (t, (exchange, asset, amount)) in targets.iter().enumerate() {
                    for _ in 0..100 {
                        let r = db
                            .query_one(
                                "SELECT botai_reserve_balance($1, $2, $3::text::numeric, 'fuzz-probe')::text",
                                &[exchange, asset, amount],
                            )
                            .await;
                        match r {
                            Ok(row) if row.get::<_, Option<String>>(0).is_some() => admitted[t] += 1,
                            Ok(_) => break,
                            Err(e) => {
                                errors.push(format!(
                                    "botai_reserve_balance({exchange:?}, {asset:?}, {amount}) as {}: {} {}",
                                    role.label(),
                                    sqlstate(&e).unwrap_or_default(),
                                    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
                                ));
                                break;
                            }
                        }
                    }
                }
                (admitted, errors)
            })
        })
        .collect();
    let mut admitted = vec![0u32; targets.len()];
    for s in sessions {
        let (counts, errors) = s.await.expect("a probe session panicked");
        for (total, n) in admitted.iter_mut().zip(counts) {
            *total += n;
        }
        if !errors.is_empty() {
            failures.push(format!("reserving after the run failed:\n    {}", errors.join("\n    ")));
        }
    }
    for ((exchange, asset, amount), n) in targets.iter().zip(&admitted) {
        let row = db
            .query_one(
                "SELECT available::text, reserved::text, reserved <= available FROM botai.balances_status \
                 WHERE exchange = $1 AND asset = $2",
                &[exchange, asset],
            )
            .await
            .expect("balances_status");
        let (available, reserved, within): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        println!(
            "  {}/{}: {n} reservations of {amount} admitted; available {}, reserved {}",
            printable(exchange),
            printable(asset),
            shorten(&available, 40),
            shorten(&reserved, 40)
        );
        if *n > 0 && !within {
            failures.push(format!(
                "{exchange}/{asset}: after {n} reservations of {amount}, reserved {reserved} exceeds available {available}"
            ));
        }
    }
}

/// The balances are consistent by design (README "Balances: reserving costs
/// the same however many are open"):
/// - `held` is exactly the sum of the reservations' `counted`, always;
/// - each reservation counts what its state says (held: its amount,
///   committed: the committed amount, released: nothing, expired and
///   retired: nothing once folded, what it counted before until then);
/// - `reserved` of botai.balances_status is `held` minus what is pending,
///   so between 0 and `held`;
/// - reserving never takes more than was available: the reservations
///   admitted after the stored snapshot (by more than any transaction of the
///   run lasts) and still holding count at most its `available`.
///
/// A plain `reserved <= available` does not hold by design: a newer
/// snapshot may report less available than is already reserved (listed,
/// not failed).
async fn check_balances(db: &Client, failures: &mut Vec<String>) {
    let broken = botai_tests::balance_violations(db, None).await;
    if broken.is_empty() {
        println!("  ok: the balance invariant (held = sum(counted), reserved within 0..held)");
    } else {
        failures.push(format!("the balance invariant:\n    {}", broken.join("\n    ")));
    }
    let checks: [(&str, String); 2] = [
        (
            "reservations counting other than their state says",
            "SELECT r.reservation_id || ' ' || r.status || ': amount ' || r.amount || ', committed ' || \
                    coalesce(r.committed_amount::text, '-') || ', counted ' || r.counted \
             FROM botai.reservations r \
             WHERE NOT CASE r.status \
                 WHEN 'held' THEN r.counted = r.amount \
                 WHEN 'committed' THEN r.counted = r.committed_amount \
                 WHEN 'released' THEN r.counted = 0 \
                 WHEN 'expired' THEN r.counted IN (0, r.amount) \
                 WHEN 'retired' THEN r.counted IN (0, r.committed_amount) \
                 ELSE false END \
             LIMIT 20"
                .into(),
        ),
        (
            "reservations admitted after the stored snapshot hold more than it made available",
            format!(
                "SELECT b.exchange || '/' || b.asset || ': available ' || b.available || ' (stored ' || b.updated_at || \
                        '), held since by ' || count(*) || ' reservations: ' || sum(r.counted) \
                 FROM botai.balances b \
                 JOIN botai.reservations r ON r.exchange = b.exchange AND r.asset = b.asset \
                 WHERE r.created_at > b.updated_at + interval '{LONGEST_TRANSACTION}' \
                   AND (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now())) \
                 GROUP BY b.exchange, b.asset, b.available, b.updated_at \
                 HAVING sum(r.counted) > b.available"
            ),
        ),
    ];
    for (what, sql) in checks {
        // One statement: one snapshot, whatever the monitor does meanwhile.
        let rows = db.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        if rows.is_empty() {
            println!("  ok: no {what}");
        } else {
            let lines: Vec<String> = rows.iter().map(|r| format!("    {}", r.get::<_, String>(0))).collect();
            failures.push(format!("{what}:\n{}", lines.join("\n")));
        }
    }
    let covered: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM botai.balances b \
                 JOIN botai.reservations r ON r.exchange = b.exchange AND r.asset = b.asset \
                 WHERE r.created_at > b.updated_at + interval '{LONGEST_TRANSACTION}' \
                   AND (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now()))"
            ),
            &[],
        )
        .await
        .expect("coverage")
        .get(0);
    println!("  (the last check covered {covered} reservations holding funds)");
    let over = db
        .query(
            "SELECT s.exchange || '/' || s.asset || ': available ' || s.available || ', reserved ' || s.reserved \
             FROM botai.balances_status s WHERE s.reserved > s.available",
            &[],
        )
        .await
        .expect("balances_status");
    println!(
        "  balances whose reserved exceeds available (a later snapshot reported less; allowed by design): {}",
        over.len()
    );
    for r in over.iter().take(5) {
        println!("    {}", r.get::<_, String>(0));
    }
    let summary = db
        .query(
            "SELECT count(*)::text || ' balances, ' || (SELECT count(*) FROM botai.reservations)::text || \
                    ' reservations (' || (SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM \
                    (SELECT status, count(*) AS n FROM botai.reservations GROUP BY status) s) || ')' \
             FROM botai.balances",
            &[],
        )
        .await
        .expect("summary");
    println!("  {}", summary[0].get::<_, Option<String>>(0).unwrap_or_default());
}

/// `botai run --mode=api` and `botai status|positions|orders` on the state
/// the run left: the API answers /api/status, /health and /metrics, the
/// commands end with their own exit codes, nothing panics.
async fn daemon_readers(database: &str, failures: &mut Vec<String>) {
    let port = botai_tests::free_port();
    let api = botai_tests::Daemon::start(
        "fuzz-api",
        database,
        &["run", "--mode=api"],
        &[("API_LISTEN", format!("127.0.0.1:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/health/live")).await.is_err() {
        if Instant::now() > deadline {
            failures.push(format!("the API did not start on the fuzzed state:\n{}", api.output()));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/api/status", "/health", "/metrics", "/health/ready"] {
        match reqwest::get(format!("{base}{path}")).await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                println!("  GET {path}: {status}, {} bytes", body.len());
                let json_ok = path == "/metrics" || serde_json::from_str::<serde_json::Value>(&body).is_ok();
                if !(status == 200 || (path == "/health" && status == 503)) || !json_ok {
                    failures.push(format!("GET {path} on the fuzzed state: {status} {}", shorten(&body, 300)));
                }
            }
            Err(e) => failures.push(format!("GET {path} on the fuzzed state failed: {e}")),
        }
    }
    for args in [&["status"][..], &["positions"], &["orders"]] {
        let (code, text) = botai_tests::botai_command(database, args);
        println!("  botai {}: exit {code:?}, {} lines", args.join(" "), text.lines().count());
        if !matches!(code, Some(0) | Some(2)) || text.contains("panicked") {
            failures.push(format!(
                "botai {} on the fuzzed state exited {code:?}:\n{}",
                args.join(" "),
                shorten(&text, 2000)
            ));
        }
    }
    let output = api.output();
    if output.contains("panicked") {
        failures.push(format!("the API daemon panicked on the fuzzed state:\n{}", shorten(&output, 3000)));
    }
}

fn server_log() -> PathBuf {
    PathBuf::from(env_or("FUZZ_SERVER_LOG", "/var/log/postgresql/postgresql-15-botai.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_survives_hostile_arguments() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            }
            .expect("FUZZ_SEED: a number (decimal or 0x…)")
        })
        .unwrap_or(DEFAULT_SEED);
    let calls: u64 = env_or("FUZZ_CALLS", &DEFAULT_CALLS.to_string()).parse().expect("FUZZ_CALLS: a number");
    println!("fuzz: seed {seed:#x} (FUZZ_SEED={seed:#x} reproduces it), {calls} calls (FUZZ_CALLS)");

    // A database of its own, made like the real one (botai db migrate), so
    // the hostile state the run leaves (balances of odd exchanges, components,
    // workers) never reaches other tests; FUZZ_DATABASE names an existing one
    // instead, FUZZ_KEEP_DATABASE=1 keeps the new one for inspection.
    let (database, own) = match std::env::var("FUZZ_DATABASE").ok().filter(|d| !d.is_empty()) {
        Some(name) => (name, None),
        None => {
            let db = TestDatabase::migrated(&[]).await;
            (db.name.clone(), Some(db))
        }
    };
    println!("  database {database}");
    let admin = connect_to(&database).await;
    let functions = discover(&admin).await;
    assert!(!functions.is_empty(), "no botai_* functions found: is the extension installed in this database?");
    println!("  {} functions:", functions.len());
    for f in &functions {
        println!("    {}({})", f.name, f.identity);
    }
    let seeder = connect_to(&database).await;
    seed_state(&seeder).await;

    let sentinel = connect_to(&database).await;
    let postmaster_started: String =
        sentinel.query_one("SELECT pg_postmaster_start_time()::text", &[]).await.unwrap().get(0);
    let log_start = std::fs::metadata(server_log()).map(|m| m.len()).ok();

    let findings_dir = repo_root().join("target/fuzz");
    let _ = std::fs::remove_dir_all(&findings_dir);
    std::fs::create_dir_all(&findings_dir).unwrap();
    let shared = Arc::new(Shared {
        database: database.clone(),
        plan: Plan::new(seed, calls, functions),
        done: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        pools: Mutex::new(Arc::new(Pools::default())),
        in_flight: SESSIONS.iter().map(|_| Mutex::new(String::new())).collect(),
        started: Instant::now(),
        findings_dir,
        file_counter: AtomicU64::new(0),
    });
    let refresher = tokio::spawn(refresh_pools(seeder, shared.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let roles: Vec<&str> = SESSIONS.iter().map(|r| r.label()).collect();
    println!("  {} sessions: {}; statement_timeout {STATEMENT_TIMEOUT}", SESSIONS.len(), roles.join(", "));

    let handles: Vec<_> =
        SESSIONS.iter().enumerate().map(|(i, &role)| tokio::spawn(run_session(i, role, shared.clone()))).collect();
    let mut report = Report::default();
    for h in handles {
        report.merge(h.await.expect("a fuzz session panicked"));
    }
    shared.finished.store(true, Ordering::Relaxed);
    let seeder = refresher.await.unwrap();
    let elapsed = shared.started.elapsed().as_secs_f64();
    let done = shared.done.load(Ordering::Relaxed);
    println!("\n{done} calls in {elapsed:.1} s: {:.0} calls/s", done as f64 / elapsed);

    // The table: function, calls, outcomes by SQLSTATE.
    println!("\n{:<34} {:>7}  outcomes (SQLSTATE × calls)  slowest", "function", "calls");
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for (name, s) in &report.functions {
        let mut outcomes: Vec<(&String, &u64)> = s.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = outcomes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("{name:<34} {:>7}  {}  {:.0} ms", s.calls, text.join(" "), s.slowest.as_secs_f64() * 1e3);
        for (code, n) in &s.outcomes {
            *totals.entry(code.clone()).or_default() += n;
        }
    }
    let never: Vec<&str> = shared
        .plan
        .functions
        .iter()
        .filter(|f| !report.functions.contains_key(&f.name))
        .map(|f| f.name.as_str())
        .collect();
    let totals: Vec<String> = totals.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    println!("{:<34} {done:>7}  {}", "all", totals.join(" "));

    println!("\nBy role:");
    for (role, outcomes) in &report.roles {
        let mut outcomes: Vec<(&String, &u64)> = outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = outcomes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("  {role:<14} {}", text.join(" "));
    }
    let mut origins: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, _, origin), s) in &report.samples {
        *origins.entry(origin).or_default() += s.count;
    }
    let origins: Vec<String> = origins.iter().map(|(o, n)| format!("{o} ×{n}")).collect();
    println!("\nErrors by origin: {}", origins.join(", "));
    println!(
        "\nOne sample per function, SQLSTATE and origin, except the documented refusals raised by botai ({}), \
         arguments PostgreSQL refused before the call, missing privileges and XX000:",
        DOCUMENTED.join(", ")
    );
    let mut undocumented = Vec::new();
    for ((function, code, origin), s) in &report.samples {
        let expected = (DOCUMENTED.contains(&code.as_str()) && *origin == "raised by botai")
            || matches!(
                *origin,
                "PostgreSQL refused an argument" | "no EXECUTE privilege" | "a trigger function, not callable"
            )
            || code == "XX000"
            || code == "57014";
        if expected {
            continue;
        }
        let allowed = ALLOWED.iter().any(|(f, c, o, _)| (*f == "*" || f == function) && c == code && o == origin);
        let line =
            format!("  {function} {code} ({origin}) ×{}: {}\n      as {}: {}", s.count, s.message, s.role, s.call);
        println!("{}{line}", if allowed { "(allowed) " } else { "" });
        if !allowed {
            undocumented.push(line);
        }
    }
    let timeouts: Vec<String> = report
        .samples
        .iter()
        .filter(|((_, code, _), _)| code == "57014")
        .map(|((function, _, _), s)| format!("    {function} ×{}: as {}: {}", s.count, s.role, s.call))
        .collect();
    let timed_out: u64 = report.samples.iter().filter(|((_, code, _), _)| code == "57014").map(|(_, s)| s.count).sum();
    println!("\nTimeouts (57014, statement_timeout {STATEMENT_TIMEOUT}): {timed_out} calls");
    for t in &timeouts {
        println!("{t}");
    }
    let mut slow: Vec<(&String, &FunctionStats)> = report.functions.iter().collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1.slowest));
    println!("\nSlowest calls:");
    for (name, s) in slow.iter().take(5) {
        println!("  {name}: {:.0} ms: {}", s.slowest.as_secs_f64() * 1e3, shorten(&s.slowest_call, 400));
    }

    let mut failures = Vec::new();
    if !undocumented.is_empty() {
        failures.push(format!(
            "outcomes that are neither a documented refusal nor in ALLOWED (decide: fix botai, or allow with why):\n{}",
            undocumented.join("\n")
        ));
    }
    let unexplained_timeouts: Vec<&String> = timeouts
        .iter()
        .filter(|t| !ALLOWED_TIMEOUTS.iter().any(|(f, _)| t.trim_start().starts_with(&format!("{f} "))))
        .collect();
    if !unexplained_timeouts.is_empty() {
        failures.push(format!(
            "calls that met the statement timeout ({STATEMENT_TIMEOUT}) and are not in ALLOWED_TIMEOUTS:\n{}",
            unexplained_timeouts.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("\n")
        ));
    }
    if !never.is_empty() {
        failures.push(format!("functions never called: {}", never.join(", ")));
    }
    if !report.lost.is_empty() {
        failures.push(format!("connections lost (a backend crashed?):\n{}", report.lost.join("\n")));
    }

    // 1. The sentinel session is still there: no crash-restart.
    match sentinel.simple_query("SELECT 1").await {
        Ok(_) => println!("\n  ok: the sentinel session opened before the run still answers"),
        Err(e) => failures.push(format!("the sentinel session died: a backend crashed and the server restarted ({e})")),
    }
    // 2. Nor a restart of any kind.
    let check = connect_to(&database).await;
    let now_started: String = check.query_one("SELECT pg_postmaster_start_time()::text", &[]).await.unwrap().get(0);
    if now_started == postmaster_started {
        println!("  ok: pg_postmaster_start_time() unchanged ({now_started})");
    } else {
        failures.push(format!("the postmaster restarted: started {postmaster_started}, now {now_started}"));
    }
    // Crashes during the run show in the server log: unreadable, they would
    // go unseen, so that fails too.
    let readable = std::fs::read(server_log()).map(|_| ()).map_err(|e| e.to_string());
    if log_start.is_none() || readable.is_err() {
        failures.push(format!(
            "the server log {} cannot be read ({}): crashes during the run would go unseen (FUZZ_SERVER_LOG names it)",
            server_log().display(),
            readable.err().unwrap_or_else(|| "its size was unknown at the start".into())
        ));
    }
    if let Some(start) = log_start {
        if let Ok(log) = std::fs::read(server_log()) {
            let new = String::from_utf8_lossy(&log[(start as usize).min(log.len())..]).into_owned();
            let bad: Vec<&str> = new
                .lines()
                .filter(|l| {
                    l.contains("was terminated by signal") || l.contains("PANIC") || l.contains("server process")
                })
                .take(10)
                .collect();
            println!("  server log during the run: {} crash lines {}", bad.len(), bad.join("\n    "));
            if !bad.is_empty() {
                failures.push(format!("the server log has crash lines from the run:\n    {}", bad.join("\n    ")));
            }
        }
    }
    // 3. No internal errors.
    let internal: u64 = report.internal.values().map(|s| s.count).sum();
    if internal == 0 {
        println!("  ok: no call ended in XX000");
    } else {
        let mut text = format!("{internal} calls ended in XX000 (internal error):");
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for ((function, _), s) in &report.internal {
            let n = shown.entry(function.as_str()).or_default();
            *n += 1;
            if *n > SHOWN_PER_FUNCTION {
                continue;
            }
            let _ = write!(
                text,
                "\n  {function} ×{}: {}\n      as {}: {}\n      full SQL: {}",
                s.count,
                s.message,
                s.role,
                s.call,
                s.file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not saved".into())
            );
        }
        failures.push(text);
    }
    // 4. The balances are consistent, and reserving on what the run left
    // keeps them so.
    println!("\nReserving until refused on the state the run left:");
    probe_admission(&database, &check, &mut failures).await;
    println!("\nBalances:");
    check_balances(&check, &mut failures).await;

    // What the fuzzed state did to the readers and the monitor (reported).
    println!("\nAfter the run:");
    for sql in [
        "SELECT length(botai_metrics())::text",
        "SELECT length(botai_health()::text)::text",
        "SELECT length(botai_worker_stats()::text)::text",
        "SELECT botai_monitor_state()::text",
        "SELECT count(*)::text FROM botai.balances_status",
        "SELECT count(*)::text FROM botai.orders_status",
        "SELECT count(*)::text FROM botai.components_status",
    ] {
        match check.simple_query(sql).await {
            Ok(rows) => {
                let value = rows
                    .iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                        _ => None,
                    })
                    .unwrap_or_default();
                println!("  {sql}: {}", shorten(&value, 300));
            }
            Err(e) => failures.push(format!(
                "a reader fails on the state the run left: {sql}: ERROR {} {}",
                sqlstate(&e).unwrap_or_default(),
                shorten(e.as_db_error().map(|d| d.message()).unwrap_or_default(), 300)
            )),
        }
    }
    let rule_errors = check
        .query("SELECT rule || ': ' || last_error FROM botai.rule_status WHERE last_error IS NOT NULL", &[])
        .await
        .expect("rule_status");
    println!("  alert rules failing: {}", rule_errors.len());
    if !rule_errors.is_empty() {
        let listed: Vec<String> = rule_errors.iter().map(|r| shorten(&r.get::<_, String>(0), 300)).collect();
        failures.push(format!("alert rules fail on the state the run left:\n    {}", listed.join("\n    ")));
    }
    // The daemon's readers over the same state: its API and the operator's
    // commands answer, showing what they cannot hold as out of range.
    println!("\nThe daemon's readers:");
    daemon_readers(&database, &mut failures).await;
    drop(seeder);
    if let Some(db) = own {
        if env_or("FUZZ_KEEP_DATABASE", "") == "1" {
            println!("  kept database {} (FUZZ_KEEP_DATABASE=1)", db.name);
            std::mem::forget(db);
        }
    }

    if !failures.is_empty() {
        panic!("fuzz (seed {seed:#x}) found:\n\n{}", failures.join("\n\n"));
    }
}
