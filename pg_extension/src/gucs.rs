//! Every `botai.*` setting, defined in one place at load time.
//!
//! Settings that define a guarantee shared by all sessions (the rate
//! limiter's safety margin and shared-memory sizes) are set in
//! postgresql.conf or by ALTER SYSTEM only. Settings the monitor acts on
//! (retention, heartbeat timeout, eviction, interval) are superuser-only and
//! may differ per database (ALTER DATABASE ... SET; the monitor of that
//! database reads them when it starts). Settings that shape one caller's own
//! view (dedup window, cooldown, balance margin) may be set per session.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static SIGNAL_DEDUP_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static SIGNAL_COOLDOWN: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static SIGNAL_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
pub static WORKER_HEARTBEAT_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static WORKER_EVICT_STALE: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static RATE_LIMIT_SAFETY_MARGIN: GucSetting<f64> = GucSetting::<f64>::new(0.9);
pub static RATE_LIMIT_MAX_KEYS: GucSetting<i32> = GucSetting::<i32>::new(128);
pub static RATE_LIMIT_MAX_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(8192);
pub static BALANCE_SAFETY_MARGIN: GucSetting<f64> = GucSetting::<f64>::new(0.02);
pub static BALANCE_CLOCK_SKEW: GucSetting<f64> = GucSetting::<f64>::new(2.0);
pub static RATE_LIMIT_MAX_WAIT: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static RATE_LIMIT_SEND_JITTER: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static HALT_WAIT: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static MONITOR_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static MONITOR_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static HISTORY_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
pub static BALANCE_SAME_CLOCK_EXCHANGES: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"paper"));
pub static MONITOR_LAUNCHER_DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"postgres"));

/// Whether the server's owner declared `exchange` to report balances on
/// the database's own clock (botai.balance_same_clock_exchanges).
pub fn same_clock(exchange: &str) -> bool {
    BALANCE_SAME_CLOCK_EXCHANGES
        .get()
        .and_then(|c| c.into_string().ok())
        .is_some_and(|list| list.split(',').any(|e| e.trim().eq_ignore_ascii_case(exchange)))
}

/// The database the monitor launcher connects to.
pub fn monitor_launcher_database() -> String {
    MONITOR_LAUNCHER_DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".into())
}

/// Registers every setting and reserves the `botai.` prefix, so a typo such
/// as `botai.signal_dedup_windw` is refused instead of silently ignored.
pub fn init() {
    GucRegistry::define_int_guc(
        c"botai.signal_dedup_window",
        c"Seconds a signal fingerprint is remembered; older signals are refused as stale.",
        c"A signal whose timestamp is older than this is never acted on: its fingerprint may already be pruned.",
        &SIGNAL_DEDUP_WINDOW,
        1,
        30 * 24 * 3600,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"botai.signal_cooldown",
        c"Seconds after an accepted signal during which the same symbol, direction and strategy is refused (0 = off).",
        c"Catches repeats across a minute boundary, which the per-minute fingerprint cannot.",
        &SIGNAL_COOLDOWN,
        0,
        30 * 24 * 3600,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"botai.signal_retention",
        c"How long accepted signals are kept before the monitor prunes them.",
        c"Never shorter than the dedup window: the monitor keeps at least that long.",
        &SIGNAL_RETENTION,
        60,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"botai.worker_heartbeat_timeout",
        c"Seconds without a heartbeat after which a worker that still holds its slot is stale.",
        c"",
        &WORKER_HEARTBEAT_TIMEOUT,
        1,
        24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"botai.worker_evict_stale",
        c"Whether the monitor ends the backend of a stale worker so its slot frees.",
        c"",
        &WORKER_EVICT_STALE,
        GucContext::Suset,
        GucFlags::empty(),
    );
    GucRegistry::define_float_guc(
        c"botai.rate_limit_safety_margin",
        c"Fraction of each exchange limit botai books up to (effective limit = floor(max_weight * margin)).",
        c"Cluster-wide, so every session books against the same effective limit.",
        &RATE_LIMIT_SAFETY_MARGIN,
        0.01,
        1.0,
        GucContext::Sighup,
        GucFlags::empty(),
    );
    GucRegistry::define_int_guc(
        c"botai.rate_limit_max_keys",
        c"Number of (database, exchange, endpoint) windows the rate limiter keeps in shared memory.",
        c"Shared memory is sized at server start: max_keys * (max_entries * 16 bytes + about 600 bytes).",
        &RATE_LIMIT_MAX_KEYS,
        8,
        65536,
        GucContext::Postmaster,
        GucFlags::empty(),
    );
    GucRegistry::define_int_guc(
        c"botai.rate_limit_max_entries",
        c"Booked requests one rate-limit window can hold (past window plus bookings ahead).",
        c"",
        &RATE_LIMIT_MAX_ENTRIES,
        64,
        1 << 20,
        GucContext::Postmaster,
        GucFlags::empty(),
    );
    GucRegistry::define_float_guc(
        c"botai.balance_safety_margin",
        c"Extra fraction of free funds a reservation or availability check requires.",
        c"free >= amount * (1 + margin). Any value keeps the held total within what is available.",
        &BALANCE_SAFETY_MARGIN,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::empty(),
    );
    GucRegistry::define_float_guc(
        c"botai.balance_clock_skew",
        c"Seconds by which the database clock may run behind the exchange's: a balance snapshot retires only commits made more than this before its as_of.",
        c"Commits are stamped with the database clock at the call (clock_timestamp()); snapshots carry the exchange's time (as_of). A commit inside the margin stays counted until the next snapshot: safe, never counted twice.",
        &BALANCE_CLOCK_SKEW,
        0.0,
        3600.0,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"botai.balance_same_clock_exchanges",
        c"Exchanges (comma-separated) whose balance snapshots are stamped with the database's own clock: only for these may botai_update_balance state a clock_skew below botai.balance_clock_skew.",
        c"botai's paper exchange by default. The skew protects the funds guarantee, so the server's owner decides it, not the component that reports balances.",
        &BALANCE_SAME_CLOCK_EXCHANGES,
        GucContext::Suset,
        GucFlags::empty(),
    );
    GucRegistry::define_int_guc(
        c"botai.halt_wait",
        c"Seconds botai_halt waits for the orders already permitted to be answered before it commits anyway (with a WARNING naming the sessions still sending).",
        c"0 halts at once without waiting: orders permitted before the halt may then still reach a venue after its commit.",
        &HALT_WAIT,
        0,
        3600,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"botai.rate_limit_send_jitter",
        c"Milliseconds added to every rate-limit window: a request sent up to this late after its booked moment still shares no venue window with the request booked one window after it.",
        c"Bookings are exact, sends are not: a caller wakes and its request travels a little late, and by different amounts. Without this allowance a burst sent late and the next burst sent on time can meet in one of the venue's windows. botai's engines do not send a request woken more than 100 ms (plus a database round trip) late.",
        &RATE_LIMIT_SEND_JITTER,
        0,
        10_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"botai.rate_limit_max_wait",
        c"Seconds ahead the rate limiter may book a request; a booking further ahead is refused (54000) and books nothing.",
        c"Bounds what a crash can hide: after one, every window counts as full until one window length plus this after the start, which covers every booking handed out before it.",
        &RATE_LIMIT_MAX_WAIT,
        1,
        3600,
        GucContext::Postmaster,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"botai.monitor_interval",
        c"Seconds between two evaluations of the alert rules by the monitor background worker.",
        c"",
        &MONITOR_INTERVAL,
        1,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"botai.monitor_enabled",
        c"Whether the monitor background worker evaluates rules and does maintenance.",
        c"",
        &MONITOR_ENABLED,
        GucContext::Suset,
        GucFlags::empty(),
    );
    GucRegistry::define_int_guc(
        c"botai.history_retention",
        c"How long the monitor keeps closed reservations, finished tasks, resolved alerts, errors and ended workers.",
        c"",
        &HISTORY_RETENTION,
        60,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"botai.monitor_launcher_database",
        c"Database the monitor launcher connects to in order to list the databases it serves.",
        c"The launcher starts one monitor per connectable database that has the botai extension.",
        &MONITOR_LAUNCHER_DATABASE,
        GucContext::Postmaster,
        GucFlags::empty(),
    );
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"botai".as_ptr());
    }
}
