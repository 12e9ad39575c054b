//! Deterministic generation: the random stream of a call, its arguments as
//! SQL literals, and the generator that fills them in.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

mod documents;
mod inputs;
mod values;

pub(crate) use inputs::EDGE_PAIRS;

/// SplitMix64: small, fast, and the same on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut r = Rng(seed);
        r.next();
        r
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True `percent` times out of 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
}

/// The generator of call `index`: its own stream, whichever session runs it.
pub(crate) fn call_rng(seed: u64, index: u64) -> Rng {
    Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// One argument as SQL.
#[derive(Clone)]
pub(crate) enum Lit {
    Null,
    /// A value, quoted as a string literal.
    Text(String),
    /// A literal written out already (invalid escapes).
    Raw(String),
    /// An expression (now(), repeat(...)).
    Expr(String),
}

impl Lit {
    pub(crate) fn text(s: impl Into<String>) -> Lit {
        Lit::Text(s.into())
    }

    pub(crate) fn sql(&self, ty: &str) -> String {
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
pub(crate) fn printable(s: &str) -> String {
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
pub(crate) fn shorten(s: &str, max: usize) -> String {
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

/// Ids of rows that exist, refreshed during the run.
#[derive(Default, Clone)]
pub(crate) struct Pools {
    pub(crate) reservations: Vec<String>,
    pub(crate) tasks: Vec<i64>,
    pub(crate) signals: Vec<i64>,
    pub(crate) orders: Vec<i64>,
    pub(crate) workers: Vec<String>,
    pub(crate) components: Vec<String>,
}

pub(crate) struct Gen<'a> {
    pub(crate) rng: Rng,
    pub(crate) pools: &'a Pools,
    pub(crate) function: &'a str,
    pub(crate) now: DateTime<Utc>,
    /// Index of the argument that gets a 10 MB value.
    pub(crate) huge_arg: Option<usize>,
}
