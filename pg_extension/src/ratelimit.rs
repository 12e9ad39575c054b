//! RateLimiter (SQL_API.md §3): exact sliding windows in shared memory.
//!
//! Each (database, exchange, endpoint) key keeps a log of booked requests in
//! shared memory (shmem.rs), so every session books against the same
//! windows with no table write and no WAL. `botai_rate_acquire` books a
//! request at the earliest moment it fits the endpoint's window and the
//! exchange's `global` window (botai-core's sliding-log math) and returns how
//! long to wait until then.
//!
//! Time. The returned delay counts from `now()`, the start of the calling
//! transaction: `now() + delay` is exactly the booked moment (a caller in
//! autocommit mode, as a bot is, gets the delay from the moment of its call).
//! In a transaction older than 100 ms the delay counts from 100 ms ago
//! instead, so a long transaction can neither book in the past nor be told
//! to send late. The limiter keeps a shared clock that never runs backwards
//! across sessions.
//!
//! Restart. Shared memory does not survive a restart, and requests sent just
//! before it still count at the exchange. So a key behaves as if its whole
//! window had been used at the moment the shared memory was created:
//! nothing is booked on it until one window length after the server started.
//!
//! Privileges. These functions write no table, only shared memory, so they
//! run with the caller's rights (no SECURITY DEFINER, whose per-call
//! search_path switch costs more than the booking itself); the caller needs
//! SELECT on botai.rate_limits, which the migrations grant to botai_service.
//!
//! Configuration. Rows of `botai.rate_limits` are cached per backend; a
//! trigger on the table sends a relcache invalidation at commit, which every
//! backend receives before its next statement, so an edit applies at once to
//! everyone (and a rolled-back edit to no one).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use botai_core::names;
use botai_core::sliding_log::{earliest_common_fit, LogView, SlidingLog, Window};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::clock;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::shmem::{Limiter, RateKey, NAME_BYTES};
use crate::statements::{reading, Statement};

/// The endpoint whose limit covers every request of an exchange.
const GLOBAL: &str = "global";
/// A transaction older than this books from `clock - STALE_TRANSACTION_US`.
const STALE_TRANSACTION_US: i64 = 100_000;

#[derive(Debug, Clone)]
struct LimitRow {
    endpoint: String,
    max_weight: i32,
    window_seconds: f64,
    default_weight: i32,
}

impl LimitRow {
    fn window(&self) -> Window {
        let margin = gucs::RATE_LIMIT_SAFETY_MARGIN.get();
        Window {
            limit: (f64::from(self.max_weight) * margin).floor().max(0.0) as u64,
            // The window as botai books it: the venue's, plus the allowance
            // for requests sent late (botai.rate_limit_send_jitter).
            length_us: (self.window_seconds * 1e6).round().max(1.0) as i64
                + i64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) * 1000,
        }
    }
}

thread_local! {
    /// exchange → its rows; cleared by the relcache callback.
    static LIMITS: RefCell<HashMap<String, Rc<[LimitRow]>>> = RefCell::new(HashMap::new());
    /// OID of botai.rate_limits in this database, once known.
    static LIMITS_RELID: RefCell<Option<pg_sys::Oid>> = const { RefCell::new(None) };
    /// "exchange\0endpoint" → index of its key in shared memory.
    static KEY_INDEX: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// Registered once in _PG_init; runs in every backend when a relcache
/// invalidation arrives.
#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let ours = LIMITS_RELID.with(|r| *r.borrow());
    if relid == pg_sys::InvalidOid || Some(relid) == ours {
        LIMITS.with(|l| l.borrow_mut().clear());
        if relid == pg_sys::InvalidOid {
            LIMITS_RELID.with(|r| *r.borrow_mut() = None);
        }
    }
}

pub fn init() {
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0)) };
}

mod invalidation {
    use pgrx::prelude::*;

    /// Sends a relcache invalidation for botai.rate_limits at commit, so
    /// every backend reloads the limits before its next statement.
    #[pg_trigger]
    fn botai_rate_limits_changed<'a>(
        trigger: &'a PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
        let relid = trigger.relid().expect("a trigger knows its table");
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
        Ok(None)
    }

    pgrx::extension_sql!(
        r#"
CREATE TRIGGER rate_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON botai.rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION botai_rate_limits_changed();
"#,
        name = "rate_limits_trigger",
        requires = ["schema", botai_rate_limits_changed]
    );
}

static LOAD_LIMITS: Statement = Statement::new(
    "ratelimit.load",
    "SELECT endpoint, max_weight, window_seconds, default_weight, 'botai.rate_limits'::regclass::oid \
     FROM botai.rate_limits WHERE exchange = $1",
);

fn limits_of(exchange: &str) -> Result<Rc<[LimitRow]>> {
    if let Some(rows) = LIMITS.with(|l| l.borrow().get(exchange).cloned()) {
        return Ok(rows);
    }
    let (rows, relid) = reading(|client| {
        let table = LOAD_LIMITS.read(client, &[exchange.into()])?;
        let mut rows = Vec::new();
        let mut relid = None;
        for r in table {
            rows.push(LimitRow {
                endpoint: r.get::<String>(1)?.unwrap_or_default(),
                max_weight: r.get::<i32>(2)?.unwrap_or(0),
                window_seconds: r.get::<f64>(3)?.unwrap_or(1.0),
                default_weight: r.get::<i32>(4)?.unwrap_or(1),
            });
            relid = r.get::<pg_sys::Oid>(5)?;
        }
        Ok::<_, BotaiError>((rows, relid))
    })?;
    if relid.is_some() {
        LIMITS_RELID.with(|r| *r.borrow_mut() = relid);
    }
    let rows: Rc<[LimitRow]> = rows.into();
    // An exchange without rows is not cached: its rows may be added later,
    // and the relcache callback can only invalidate what it knows of.
    if !rows.is_empty() {
        LIMITS.with(|l| l.borrow_mut().insert(exchange.to_owned(), rows.clone()));
    }
    Ok(rows)
}

/// The limits a request to (exchange, endpoint) must fit: its endpoint's and
/// the exchange's `global`, whichever exist.
struct Plan {
    exchange: String,
    /// The endpoint's key first, then global's.
    keys: Vec<PlanKey>,
    weight: u64,
}

struct PlanKey {
    endpoint: String,
    window: Window,
    /// "exchange\0endpoint": this backend's cache of key indices.
    cache_key: String,
}

fn plan(exchange: Option<&str>, endpoint: Option<&str>, weight: Option<i32>) -> Result<Plan> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let endpoint = names::name("endpoint", required(endpoint, "endpoint")?)?.to_owned();
    let rows = limits_of(&exchange)?;
    if rows.is_empty() {
        return Err(BotaiError::NotFound(format!("no rate limits are configured for exchange \"{exchange}\"")));
    }
    let own = rows.iter().find(|r| r.endpoint == endpoint).cloned();
    let global = rows.iter().find(|r| r.endpoint == GLOBAL).cloned();
    let mut keys: Vec<(String, LimitRow)> = Vec::with_capacity(2);
    if let Some(row) = &own {
        keys.push((endpoint.clone(), row.clone()));
    }
    if endpoint != GLOBAL {
        if let Some(row) = &global {
            keys.push((GLOBAL.to_owned(), row.clone()));
        }
    }
    if keys.is_empty() {
        return Err(BotaiError::NotFound(format!(
            "exchange \"{exchange}\" has no limit for endpoint \"{endpoint}\" and no \"global\" limit"
        )));
    }
    let weight = match weight {
        Some(w) if w <= 0 => return Err(BotaiError::invalid("weight", format!("must be positive (got {w})"))),
        Some(w) => w,
        None => own.as_ref().or(global.as_ref()).map_or(1, |r| r.default_weight),
    };
    for (name, row) in &keys {
        let limit = row.window().limit;
        if u64::from(weight.unsigned_abs()) > limit {
            return Err(BotaiError::invalid(
                "weight",
                format!(
                    "{weight} exceeds the effective limit {limit} of {exchange}/{name} \
                     (max_weight {} × botai.rate_limit_safety_margin {}): it could never be sent",
                    row.max_weight,
                    gucs::RATE_LIMIT_SAFETY_MARGIN.get()
                ),
            ));
        }
    }
    let keys = keys
        .into_iter()
        .map(|(endpoint, row)| PlanKey { cache_key: format!("{exchange}\0{endpoint}"), window: row.window(), endpoint })
        .collect();
    Ok(Plan { exchange, keys, weight: u64::from(weight.unsigned_abs()) })
}

/// The moments a booking counts from. `reference` is what the returned delay
/// is measured from; `base` is the limiter's monotonic "now".
struct Now {
    reference: i64,
    base: i64,
}

fn now(limiter: &Limiter) -> Now {
    let reference = clock::transaction_start().max(clock::wall() - STALE_TRANSACTION_US);
    let previous = limiter.header.limiter_clock.fetch_max(reference, Ordering::AcqRel);
    Now { reference, base: previous.max(reference) }
}

fn write_name(dst: &mut [u8; NAME_BYTES], src: &str) -> u16 {
    let bytes = src.as_bytes();
    dst[..bytes.len()].copy_from_slice(bytes);
    bytes.len() as u16
}

/// Index of the key in shared memory, creating it (under the exclusive
/// lock) when missing.
fn key_index(limiter: &Limiter, exchange: &str, wanted: &PlanKey, base: i64) -> Result<usize> {
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let endpoint = wanted.endpoint.as_str();
    if let Some(i) = KEY_INDEX.with(|k| k.borrow().get(&wanted.cache_key).copied()) {
        if limiter.key(i).is(dboid, exchange, endpoint) {
            return Ok(i);
        }
    }
    let found = (0..limiter.max_keys).find(|&i| limiter.key(i).is(dboid, exchange, endpoint));
    let index = match found {
        Some(i) => i,
        None => {
            let free = (0..limiter.max_keys).find(|&i| limiter.key(i).in_use == 0).ok_or_else(|| {
                BotaiError::SharedMemoryFull {
                    message: format!(
                        "the rate limiter holds its maximum of {} keys; cannot add {exchange}/{endpoint}",
                        limiter.max_keys
                    ),
                    hint: "raise botai.rate_limit_max_keys in postgresql.conf and restart the server".into(),
                }
            })?;
            let (key, buf) = limiter.key_mut(free);
            *key = RateKey::empty();
            key.in_use = 1;
            key.dboid = dboid;
            key.exchange_len = write_name(&mut key.exchange, exchange);
            key.endpoint_len = write_name(&mut key.endpoint, endpoint);
            // Unknown bookings before a crash or a promotion: the window
            // counts as full at the moment they became unknown (the
            // server's start, ratelimit_state.rs, or the promotion).
            let window = wanted.window;
            let started = limiter.header.unknown_from.load(Ordering::Acquire);
            if limiter.header.state_known.load(Ordering::Acquire) == 0
                && base < started + window.length_us
                && window.limit > 0
            {
                SlidingLog::new(&mut key.log, buf).book(started, window.limit as u32).expect("an empty log has room");
            }
            free
        }
    };
    KEY_INDEX.with(|k| k.borrow_mut().insert(wanted.cache_key.clone(), index));
    Ok(index)
}

/// The limiter, locked to book, penalize or observe (whose SQL functions
/// refuse on a standby before anything: its shared memory is not the
/// primary's, and nothing here is replicated); the first writer after a
/// promotion starts the period in which every window counts as full.
fn lock_to_write() -> Result<Limiter> {
    let limiter = Limiter::lock(true)?;
    notice_promotion_locked(&limiter);
    Ok(limiter)
}

/// Promotion. A server that started in recovery never saw what its primary
/// booked: the primary may have handed out bookings up to
/// `botai.rate_limit_max_wait` past its last moment, and the venue counts
/// requests sent just before the failover. So, as after a crash, from the
/// moment the promotion is noticed (no earlier than the promotion itself:
/// the monitor looks every round, every booking looks first) every key
/// counts as full for the furthest booking plus one window length. The
/// standby must run with the primary's botai.rate_limit_* settings.
fn notice_promotion_locked(limiter: &Limiter) {
    let header = limiter.header;
    if !promotion_unnoticed(header) {
        return;
    }
    let at = clock::wall().max(header.limiter_clock.load(Ordering::Acquire));
    header.unknown_from.store(at, Ordering::Release);
    header.state_known.store(0, Ordering::Release);
    header.awaiting_promotion.store(0, Ordering::Release);
    let max_ahead_s = (header.max_wait_us + i64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) * 1000) as f64 / 1e6;
    log!(
        "botai: this server was promoted; what the former primary booked is unknown, so every rate-limit window \
         counts as full until {max_ahead_s:.1} s plus its own length from now"
    );
}

/// Called by the monitor every round: notices a promotion even when no
/// session books.
pub fn notice_promotion() -> Result<()> {
    if promotion_unnoticed(crate::shmem::header()?) {
        notice_promotion_locked(&Limiter::lock(true)?);
    }
    Ok(())
}

/// A server that started in recovery is out of it, and no one noticed yet.
fn promotion_unnoticed(header: &crate::shmem::Header) -> bool {
    header.awaiting_promotion.load(Ordering::Acquire) != 0 && !crate::standby::in_recovery()
}

/// Books `plan` at the earliest moment it fits (with `only_if_now`, only if
/// that is now). Returns the moment, whether it booked, and the clock.
/// Everything that allocates happens before the lock is taken.
fn book(plan: &Plan, only_if_now: bool) -> Result<(i64, bool, Now)> {
    // How far ahead a booking may be: botai.rate_limit_max_wait, plus the
    // send-jitter allowance every window carries (a window as long as the
    // maximum wait still books its next request).
    let max_ahead_us = i64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) * 1000;
    let limiter = lock_to_write()?;
    let max_ahead_us = limiter.header.max_wait_us + max_ahead_us;
    let now = now(&limiter);
    let mut indexes = [(0usize, Window { limit: 0, length_us: 1 }); 2];
    let mut from = now.base;
    // How far ahead a booking may go counts from now, or from the end of a
    // key's unknown period after a crash, whichever is later.
    let mut cap_from = now.reference;
    for (slot, key) in indexes.iter_mut().zip(&plan.keys) {
        let i = key_index(&limiter, &plan.exchange, key, now.base)?;
        let (k, buf) = limiter.key_mut(i);
        SlidingLog::new(&mut k.log, buf).prune(now.base - key.window.length_us);
        from = from.max(k.penalty_until);
        if limiter.header.state_known.load(Ordering::Acquire) == 0 {
            // What was booked before a crash is unknown, and may reach up to
            // max_wait past the start: a request shares no window with it
            // only from one window length after that.
            let unknown_until =
                limiter.header.unknown_from.load(Ordering::Acquire) + max_ahead_us + key.window.length_us;
            from = from.max(unknown_until);
            cap_from = cap_from.max(unknown_until);
        }
        *slot = (i, key.window);
    }
    let indexes = &indexes[..plan.keys.len()];
    let view = |&(i, w): &(usize, Window)| (LogView::new(&limiter.key(i).log, limiter.entries(i)), w);
    let at = match indexes {
        [one] => {
            let (log, w) = view(one);
            log.earliest_fit(from, plan.weight, w)
        }
        [one, two] => earliest_common_fit(&[view(one), view(two)], from, plan.weight),
        _ => unreachable!("a plan has one or two keys"),
    };
    let fits_now = at == now.base;
    if !only_if_now && at - cap_from > max_ahead_us {
        return Err(BotaiError::Limit {
            message: format!(
                "{}/{} would have to wait {:.3} s, more than botai.rate_limit_max_wait ({} s, plus \
                 botai.rate_limit_send_jitter); nothing was booked",
                plan.exchange,
                plan.keys[0].endpoint,
                (at - now.reference) as f64 / 1e6,
                limiter.header.max_wait_us / 1_000_000
            ),
            hint: "callers are asking faster than the limit allows: slow them down, or raise \
                   botai.rate_limit_max_wait (postgresql.conf, restart)"
                .into(),
        });
    }
    if only_if_now && !fits_now {
        for &(i, _) in indexes {
            limiter.key_mut(i).0.refused += 1;
        }
        return Ok((at, false, now));
    }
    for (&(i, _), key) in indexes.iter().zip(&plan.keys) {
        let log = LogView::new(&limiter.key(i).log, limiter.entries(i));
        if log.len() == log.capacity() {
            return Err(BotaiError::Limit {
                message: format!(
                    "the window of {}/{} already holds {} booked requests (its maximum)",
                    plan.exchange,
                    key.endpoint,
                    log.capacity()
                ),
                hint: "callers are booking far ahead of the limit; raise botai.rate_limit_max_entries \
                       (postgresql.conf, restart) or slow the callers down"
                    .into(),
            });
        }
    }
    for &(i, _) in indexes {
        let (key, buf) = limiter.key_mut(i);
        SlidingLog::new(&mut key.log, buf).book(at, plan.weight as u32).expect("room checked above");
        key.requests += 1;
        if !fits_now {
            key.delayed += 1;
            key.wait_us += (at - now.base) as u64;
        }
    }
    Ok((at, true, now))
}

/// Books the request at the earliest moment it fits every window that
/// applies and returns the seconds until then (0 = send now).
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_acquire(
    exchange: Option<&str>,
    endpoint: default!(Option<&str>, "'default'"),
    weight: default!(Option<i32>, "NULL"),
) -> f64 {
    crate::standby::ensure_primary().or_raise("botai_rate_acquire");
    let plan = plan(exchange, endpoint, weight).or_raise("botai_rate_acquire");
    crate::roles::may_book(&plan.exchange).or_raise("botai_rate_acquire");
    let (at, _, now) = book(&plan, false).or_raise("botai_rate_acquire");
    (at - now.reference) as f64 / 1e6
}

/// Books and returns 0 only when the request fits now; otherwise books
/// nothing and returns the seconds until it would fit.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_try_acquire(
    exchange: Option<&str>,
    endpoint: default!(Option<&str>, "'default'"),
    weight: default!(Option<i32>, "NULL"),
) -> f64 {
    crate::standby::ensure_primary().or_raise("botai_rate_try_acquire");
    let plan = plan(exchange, endpoint, weight).or_raise("botai_rate_try_acquire");
    crate::roles::may_book(&plan.exchange).or_raise("botai_rate_try_acquire");
    let (at, booked, now) = book(&plan, true).or_raise("botai_rate_try_acquire");
    if booked {
        0.0
    } else {
        ((at - now.reference) as f64 / 1e6).max(f64::MIN_POSITIVE)
    }
}

/// After the exchange answered "too many requests": nothing is booked on the
/// key (on the whole exchange, with endpoint `global`) for `seconds`.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_penalize(exchange: Option<&str>, endpoint: Option<&str>, seconds: Option<f64>) {
    penalize(exchange, endpoint, seconds).or_raise("botai_rate_penalize")
}

fn penalize(exchange: Option<&str>, endpoint: Option<&str>, seconds: Option<f64>) -> Result<()> {
    crate::standby::ensure_primary()?;
    let seconds = required(seconds, "seconds")?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(BotaiError::invalid("seconds", format!("must be a positive number of seconds (got {seconds})")));
    }
    if seconds > 86_400.0 {
        return Err(BotaiError::OutOfRange(format!("seconds: {seconds} is more than a day")));
    }
    let plan = plan(exchange, endpoint, Some(1))?;
    crate::roles::may_book(&plan.exchange)?;
    let limiter = lock_to_write()?;
    let now = now(&limiter);
    let i = key_index(&limiter, &plan.exchange, &plan.keys[0], now.base)?;
    let (key, _) = limiter.key_mut(i);
    key.penalty_until = key.penalty_until.max(now.base + (seconds * 1e6) as i64);
    key.penalties += 1;
    Ok(())
}

/// What the venue said about a key's window, from the limit headers of its
/// last answer (Bybit's `X-Bapi-Limit-Status`, `X-Bapi-Limit`,
/// `X-Bapi-Limit-Reset-Timestamp`; Binance's used-weight headers): of
/// `venue_limit`, `remaining` are left until `reset_at`. When the venue has
/// counted more than botai booked in the current window — requests of
/// another process on the same key, a person's script — the difference is
/// booked in botai's window so that it leaves at `reset_at` (at the latest
/// one window length from now), and every session waits for it. Never
/// loosens: a venue that counted less changes nothing. Returns the weight
/// added.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_observe(
    exchange: Option<&str>,
    endpoint: Option<&str>,
    remaining: Option<i32>,
    venue_limit: Option<i32>,
    reset_at: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i32 {
    observe(exchange, endpoint, remaining, venue_limit, reset_at).or_raise("botai_rate_observe")
}

fn observe(
    exchange: Option<&str>,
    endpoint: Option<&str>,
    remaining: Option<i32>,
    venue_limit: Option<i32>,
    reset_at: Option<TimestampWithTimeZone>,
) -> Result<i32> {
    crate::standby::ensure_primary()?;
    let remaining = required(remaining, "remaining")?;
    let venue_limit = required(venue_limit, "venue_limit")?;
    if venue_limit <= 0 {
        return Err(BotaiError::invalid("venue_limit", format!("must be positive (got {venue_limit})")));
    }
    if !(0..=venue_limit).contains(&remaining) {
        return Err(BotaiError::invalid(
            "remaining",
            format!("must be between 0 and venue_limit {venue_limit} (got {remaining})"),
        ));
    }
    let reset_at = reset_at.map(|t| clock::finite("reset_at", t).map(clock::from_chrono)).transpose()?;
    let plan = plan(exchange, endpoint, Some(1))?;
    crate::roles::may_book(&plan.exchange)?;
    let key = &plan.keys[0];
    let limiter = lock_to_write()?;
    let now = now(&limiter);
    let i = key_index(&limiter, &plan.exchange, key, now.base)?;
    let (k, buf) = limiter.key_mut(i);
    let mut log = SlidingLog::new(&mut k.log, buf);
    log.prune(now.base - key.window.length_us);
    // What botai sent in the window the venue counts: bookings up to now
    // (those ahead have not been sent yet).
    let sent = log.view().weight_in(now.base - key.window.length_us, now.base);
    let counted = u64::from((venue_limit - remaining).unsigned_abs());
    let external = counted.saturating_sub(sent);
    if external == 0 {
        return Ok(0);
    }
    let leaves_at = reset_at.unwrap_or(i64::MAX).min(now.base + key.window.length_us).max(now.base);
    let weight = u32::try_from(external).unwrap_or(u32::MAX);
    if log.view().len() == log.view().capacity() {
        return Err(BotaiError::Limit {
            message: format!(
                "the window of {}/{} is full; cannot record the venue's usage",
                plan.exchange, key.endpoint
            ),
            hint: "raise botai.rate_limit_max_entries (postgresql.conf, restart)".into(),
        });
    }
    log.book(leaves_at - key.window.length_us, weight).expect("room checked above");
    Ok(i32::try_from(weight).unwrap_or(i32::MAX))
}

type UsageRow = (String, i32, i32, f64, f64, f64);

/// Per configured endpoint: weight in the current window, the effective
/// limit, and how long until a request of the default weight would fit.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_usage(
    exchange: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(endpoint, String),
        name!(used, i32),
        name!(effective_limit, i32),
        name!(window_seconds, f64),
        name!(utilization, f64),
        name!(next_free_in, f64),
    ),
> {
    TableIterator::new(usage(exchange).or_raise("botai_rate_usage"))
}

fn usage(exchange: Option<&str>) -> Result<Vec<UsageRow>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let rows = limits_of(&exchange)?;
    let mut out = Vec::new();
    for row in rows.iter() {
        let plan = plan(Some(&exchange), Some(&row.endpoint), None)?;
        let limiter = Limiter::lock(true)?;
        notice_promotion_locked(&limiter);
        let now = now(&limiter);
        let mut views_idx = Vec::new();
        let mut from = now.base;
        for key in &plan.keys {
            let i = key_index(&limiter, &exchange, key, now.base)?;
            from = from.max(limiter.key(i).penalty_until);
            views_idx.push((i, key.window));
        }
        let views: Vec<(LogView<'_>, Window)> =
            views_idx.iter().map(|&(i, w)| (LogView::new(&limiter.key(i).log, limiter.entries(i)), w)).collect();
        let own = &views[0];
        let used = own.0.weight_in(now.base - own.1.length_us, now.base);
        let next = earliest_common_fit(&views, from, plan.weight);
        let window = row.window();
        out.push((
            row.endpoint.clone(),
            used as i32,
            window.limit as i32,
            row.window_seconds,
            if window.limit == 0 { 1.0 } else { used as f64 / window.limit as f64 },
            ((next - now.reference) as f64 / 1e6).max(0.0),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

type StatsRow = (String, i64, i64, f64, i64, i64);

/// Counters per endpoint since the server started: booked requests, how
/// many had to wait and for how long in total, try_acquire refusals,
/// penalties.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_stats(
    exchange: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(endpoint, String),
        name!(requests, i64),
        name!(delayed, i64),
        name!(total_wait_seconds, f64),
        name!(refused, i64),
        name!(penalties, i64),
    ),
> {
    TableIterator::new(stats(exchange).or_raise("botai_rate_stats"))
}

fn stats(exchange: Option<&str>) -> Result<Vec<StatsRow>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let limiter = Limiter::lock(false)?;
    let mut out: Vec<StatsRow> = (0..limiter.max_keys)
        .map(|i| limiter.key(i))
        .filter(|k| k.in_use != 0 && k.dboid == dboid && k.exchange() == exchange)
        .map(|k| {
            (
                k.endpoint().to_owned(),
                k.requests as i64,
                k.delayed as i64,
                k.wait_us as f64 / 1e6,
                k.refused as i64,
                k.penalties as i64,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A key of this database as the monitor and the metrics see it.
pub struct KeyState {
    pub exchange: String,
    pub endpoint: String,
    pub requests: u64,
    pub delayed: u64,
    pub refused: u64,
    pub penalties: u64,
    /// Seconds of penalty left.
    pub penalty_seconds: f64,
    /// Seconds until a request of the endpoint's default weight fits this
    /// key's window; None when the key has no configuration any more.
    pub next_free_in: Option<f64>,
}

/// Every key of this database.
pub fn keys() -> Result<Vec<KeyState>> {
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let names: Vec<(String, String)> = {
        let limiter = Limiter::lock(false)?;
        (0..limiter.max_keys)
            .map(|i| limiter.key(i))
            .filter(|k| k.in_use != 0 && k.dboid == dboid)
            .map(|k| (k.exchange().to_owned(), k.endpoint().to_owned()))
            .collect()
    };
    let mut out = Vec::with_capacity(names.len());
    for (exchange, endpoint) in names {
        // Configuration first (may run SQL), then the shared state.
        let row = limits_of(&exchange)?.iter().find(|r| r.endpoint == endpoint).cloned();
        let limiter = Limiter::lock(false)?;
        let Some(i) = (0..limiter.max_keys).find(|&i| limiter.key(i).is(dboid, &exchange, &endpoint)) else {
            continue;
        };
        let key = limiter.key(i);
        let now = clock::wall().max(limiter.header.limiter_clock.load(Ordering::Acquire));
        let next_free_in = row.map(|r| {
            let w = r.window();
            let weight = u64::from(r.default_weight.unsigned_abs()).min(w.limit.max(1));
            let view = LogView::new(&key.log, limiter.entries(i));
            let from = now.max(key.penalty_until);
            let at = view.earliest_fit(from, weight.min(w.limit), w);
            ((at - now) as f64 / 1e6).max(0.0)
        });
        out.push(KeyState {
            exchange: exchange.clone(),
            endpoint: endpoint.clone(),
            requests: key.requests,
            delayed: key.delayed,
            refused: key.refused,
            penalties: key.penalties,
            penalty_seconds: ((key.penalty_until - now) as f64 / 1e6).max(0.0),
            next_free_in,
        });
    }
    Ok(out)
}

/// Every rate-limit key of this database with its counters, penalty and
/// next free slot (the rate_limit_exceeded rule and the metrics read it).
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)] // pgrx reads the column names from the tuple written out here
fn botai_rate_keys() -> TableIterator<
    'static,
    (
        name!(exchange, String),
        name!(endpoint, String),
        name!(requests, i64),
        name!(delayed, i64),
        name!(refused, i64),
        name!(penalties, i64),
        name!(penalty_seconds, f64),
        name!(next_free_in, Option<f64>),
    ),
> {
    let keys = keys().or_raise("botai_rate_keys");
    TableIterator::new(keys.into_iter().map(|k| {
        (
            k.exchange,
            k.endpoint,
            k.requests as i64,
            k.delayed as i64,
            k.refused as i64,
            k.penalties as i64,
            k.penalty_seconds,
            k.next_free_in,
        )
    }))
}
