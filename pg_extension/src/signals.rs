//! SignalDeduplicator (SQL_API.md §1): every signal acted on once.
//!
//! A signal's identity is its fingerprint (botai-core). The unique key on
//! `botai.signals.fingerprint` with `INSERT … ON CONFLICT DO NOTHING` makes
//! exactly one of any number of concurrent identical calls the winner, and
//! never raises a unique violation: a loser waits for the winner's
//! transaction and then sees the conflict. Only the winner is stored and
//! announced with `NOTIFY botai_signals`, after its transaction commits.

use std::sync::atomic::Ordering;

use botai_core::fingerprint::CanonicalSignal;
use botai_core::signal::{freshness, Freshness, SignalDocument};
use chrono::Duration;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::json::{self, ClientJson};

use crate::clock;
use crate::error::{required, OrRaise, Result};
use crate::gucs;
use crate::locks;
use crate::shmem;
use crate::statements::{writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "sql/signals.sql",
    name = "signals_sql",
    requires = [botai_check_and_register_signal, botai_fingerprint, botai_register_signal, botai_signal_stats]
);

/// The verdict on one registration.
pub struct Verdict {
    pub accepted: bool,
    pub reason: &'static str,
    pub signal_id: Option<i64>,
    pub fingerprint: String,
}

/// sha256 of the canonical JSON, first 16 hex characters. Python computes
/// the same value with
/// `hashlib.sha256(json.dumps({...}, sort_keys=True).encode()).hexdigest()[:16]`.
#[pg_extern(immutable, strict, parallel_safe)]
fn botai_fingerprint(symbol: &str, direction: &str, strategy: &str, ts: TimestampWithTimeZone) -> String {
    let ts = clock::finite("ts", ts).or_raise("botai_fingerprint");
    CanonicalSignal::new(symbol, direction, strategy, ts).or_raise("botai_fingerprint").fingerprint()
}

#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_register_signal(
    signal: Option<ClientJson>,
    now: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> TableIterator<
    'static,
    (name!(accepted, bool), name!(reason, String), name!(signal_id, Option<i64>), name!(fingerprint, String)),
> {
    let v = register(signal, now).or_raise("botai_register_signal");
    TableIterator::once((v.accepted, v.reason.to_owned(), v.signal_id, v.fingerprint))
}

#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_check_and_register_signal(
    signal: Option<ClientJson>,
    now: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> bool {
    register(signal, now).or_raise("botai_check_and_register_signal").accepted
}

#[pg_extern(volatile)]
fn botai_signal_stats() -> TableIterator<
    'static,
    (
        name!(total_checks, i64),
        name!(unique_signals, i64),
        name!(duplicates_found, i64),
        name!(stale_rejected, i64),
        name!(cooldown_rejected, i64),
    ),
> {
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let stats = shmem::db_stats(dboid).or_raise("botai_signal_stats");
    let read = |f: fn(&shmem::DbStats) -> &std::sync::atomic::AtomicU64| {
        stats.map_or(0, |s| f(s).load(Ordering::Relaxed) as i64)
    };
    TableIterator::once((
        read(|s| &s.total_checks),
        read(|s| &s.unique_signals),
        read(|s| &s.duplicates_found),
        read(|s| &s.stale_rejected),
        read(|s| &s.cooldown_rejected),
    ))
}

static INSERT: Statement = Statement::new(
    "signals.insert",
    "INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, strength, exchange, payload) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT ON CONSTRAINT signals_fingerprint_key DO NOTHING \
     RETURNING signal_id",
);
static EXISTING: Statement =
    Statement::new("signals.existing", "SELECT signal_id FROM botai.signals WHERE fingerprint = $1");
static COOLDOWN: Statement = Statement::new(
    "signals.cooldown",
    "SELECT EXISTS (SELECT 1 FROM botai.signals \
       WHERE symbol = $1 AND direction = $2 AND strategy = $3 AND fingerprint <> $4 \
         AND signal_ts > $5 - make_interval(secs => $6) AND signal_ts < $5 + make_interval(secs => $6))",
);

/// `pg_notify('botai_signals', payload)`, called directly rather than
/// through a planned SELECT. Delivered when the transaction commits.
fn announce(payload: &str) {
    unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::pg_notify, &["botai_signals".into_datum(), payload.into_datum()]);
    }
}

/// `now` is the clock the signal is judged by (staleness, cooldown): the
/// statement's start unless the caller declares its own, as a replay or a
/// backtest of past data does. The fingerprint never depends on it.
fn register(signal: Option<ClientJson>, now: Option<TimestampWithTimeZone>) -> Result<Verdict> {
    // Not even counted on a standby: its counters are not the primary's.
    crate::standby::ensure_primary()?;
    let signal = json::arg(signal, "signal")?;
    let JsonB(doc) = required(signal, "signal")?;
    let parsed = SignalDocument::parse(&doc)?;
    let fingerprint = parsed.canonical.fingerprint();
    let stats = shmem::db_stats(unsafe { pg_sys::MyDatabaseId }.to_u32())?;
    let count = |f: fn(&shmem::DbStats) -> &std::sync::atomic::AtomicU64| {
        if let Some(s) = stats {
            f(s).fetch_add(1, Ordering::Relaxed);
        }
    };
    count(|s| &s.total_checks);

    let now = match now {
        Some(ts) => clock::finite("now", ts)?,
        None => clock::to_chrono(clock::statement_start()),
    };
    // A session may set a dedup window longer than the retention; the
    // monitor prunes a fingerprint once both its signal's time and its
    // acceptance are older than the retention, so a signal older than the
    // retention is judged stale: its fingerprint may already be gone.
    let window = Duration::seconds(i64::from(gucs::SIGNAL_DEDUP_WINDOW.get().min(gucs::SIGNAL_RETENTION.get())));
    if freshness(parsed.timestamp, now, window) != Freshness::Fresh {
        count(|s| &s.stale_rejected);
        return Ok(Verdict { accepted: false, reason: "stale", signal_id: None, fingerprint });
    }

    let c = &parsed.canonical;
    let ts = clock::timestamptz(clock::from_chrono(parsed.timestamp));
    let cooldown = gucs::SIGNAL_COOLDOWN.get();
    writing(|client| {
        if cooldown > 0 {
            // Two different minutes of the same signal have different
            // fingerprints; this lock makes the check-then-insert atomic.
            locks::xact_lock(
                locks::SIGNAL_COOLDOWN_NS,
                locks::name_key(&[&c.symbol, c.direction.as_str(), &c.strategy]),
            );
            let recent: bool = COOLDOWN
                .one(
                    client,
                    &[
                        c.symbol.as_str().into(),
                        c.direction.as_str().into(),
                        c.strategy.as_str().into(),
                        fingerprint.as_str().into(),
                        ts.into(),
                        f64::from(cooldown).into(),
                    ],
                )?
                .unwrap_or(false);
            if recent {
                count(|s| &s.cooldown_rejected);
                return Ok(Verdict {
                    accepted: false,
                    reason: "cooldown",
                    signal_id: None,
                    fingerprint: fingerprint.clone(),
                });
            }
        }
        let inserted: Option<i64> = INSERT.one(
            client,
            &[
                fingerprint.as_str().into(),
                c.symbol.as_str().into(),
                c.direction.as_str().into(),
                c.strategy.as_str().into(),
                ts.into(),
                parsed.strength.into(),
                parsed.exchange.as_deref().into(),
                JsonB(doc.clone()).into(),
            ],
        )?;
        match inserted {
            Some(id) => {
                let payload = serde_json::json!({
                    "signal_id": id,
                    "fingerprint": fingerprint,
                    "symbol": c.symbol,
                    "direction": c.direction.as_str(),
                    "strategy": c.strategy,
                });
                announce(&payload.to_string());
                count(|s| &s.unique_signals);
                Ok(Verdict {
                    accepted: true,
                    reason: "accepted",
                    signal_id: Some(id),
                    fingerprint: fingerprint.clone(),
                })
            }
            None => {
                count(|s| &s.duplicates_found);
                let existing: Option<i64> = EXISTING.one(client, &[fingerprint.as_str().into()])?;
                Ok(Verdict {
                    accepted: false,
                    reason: "duplicate",
                    signal_id: existing,
                    fingerprint: fingerprint.clone(),
                })
            }
        }
    })
}
