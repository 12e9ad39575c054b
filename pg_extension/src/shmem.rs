//! The extension's shared memory: one block, sized at server start.
//!
//! ```text
//! [Header][DbStats × MAX_DATABASES][MonitorSlot × MAX_DATABASES]
//! [RateKey × rate_limit_max_keys][Entry × rate_limit_max_keys × rate_limit_max_entries]
//! ```
//!
//! Shared memory is lost when the server restarts (and after a crash
//! restart); `Header::initialized_at` records when this block was made so
//! the rate limiter can treat every window as full until one window length
//! after that moment (see ratelimit.rs).

use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use botai_core::sliding_log::{Entry, LogHeader};
use pgrx::pg_sys;

use crate::error::BotaiError;
use crate::gucs;

/// Databases whose counters and monitor the block can track at once; slots
/// of dropped databases are recycled by the monitor launcher.
pub const MAX_DATABASES: usize = 256;

/// Longest name in bytes: 64 characters of up to 4 UTF-8 bytes.
pub const NAME_BYTES: usize = 256;

const TRANCHE: &std::ffi::CStr = c"botai";
const BLOCK: &std::ffi::CStr = c"botai shared state";
const LOCKS: i32 = 2;
/// Index of the rate limiter's LWLock in the tranche.
pub const LIMITER_LOCK: usize = 0;

#[repr(C)]
pub struct Header {
    /// When this block was created (TimestampTz, µs since 2000-01-01).
    pub initialized_at: i64,
    pub max_keys: u32,
    pub max_entries: u32,
    /// The rate limiter's clock: the largest "now" any booking used, so the
    /// limiter's time never runs backwards between sessions.
    pub limiter_clock: AtomicI64,
    pub locks: AtomicPtr<pg_sys::LWLockPadded>,
    /// 1 when what was booked before this start is known (restored, or
    /// botai never ran here); 0 after a crash (ratelimit_state.rs) and
    /// from a promotion on.
    pub state_known: AtomicU32,
    /// When what was booked elsewhere stopped being known: this block's
    /// creation, or the moment a promotion was noticed (ratelimit.rs).
    pub unknown_from: AtomicI64,
    /// 1 while a server that started in recovery (standby.signal or
    /// recovery.signal) has not been seen promoted.
    pub awaiting_promotion: AtomicU32,
    /// botai.rate_limit_max_wait at start, µs: how far ahead any booking
    /// of this server's life can reach.
    pub max_wait_us: i64,
}

/// Signal counters of one database (SQL_API.md §1 botai_signal_stats).
#[repr(C)]
pub struct DbStats {
    pub dboid: AtomicU32,
    pub total_checks: AtomicU64,
    pub unique_signals: AtomicU64,
    pub duplicates_found: AtomicU64,
    pub stale_rejected: AtomicU64,
    pub cooldown_rejected: AtomicU64,
}

/// The monitor background worker of one database.
#[repr(C)]
pub struct MonitorSlot {
    pub dboid: AtomicU32,
    /// 0 when no worker runs.
    pub pid: AtomicI32,
    /// Completed evaluation rounds and rounds that raised an error.
    pub rounds: AtomicU64,
    pub round_errors: AtomicU64,
    /// TimestampTz of the last completed round.
    pub last_round_at: AtomicI64,
    /// When a monitor was last launched and has not yet claimed the slot.
    pub starting_at: AtomicI64,
    /// When a monitor last found no botai extension in the database.
    pub no_extension_at: AtomicI64,
}

/// One rate-limit window: (database, exchange, endpoint).
#[repr(C)]
pub struct RateKey {
    pub in_use: u32,
    pub dboid: u32,
    pub exchange_len: u16,
    pub endpoint_len: u16,
    pub exchange: [u8; NAME_BYTES],
    pub endpoint: [u8; NAME_BYTES],
    /// Nothing is booked on this key before this moment (TimestampTz).
    pub penalty_until: i64,
    pub penalties: u64,
    pub requests: u64,
    pub delayed: u64,
    pub refused: u64,
    pub wait_us: u64,
    pub log: LogHeader,
}

impl RateKey {
    pub fn empty() -> RateKey {
        RateKey {
            in_use: 0,
            dboid: 0,
            exchange_len: 0,
            endpoint_len: 0,
            exchange: [0; NAME_BYTES],
            endpoint: [0; NAME_BYTES],
            penalty_until: 0,
            penalties: 0,
            requests: 0,
            delayed: 0,
            refused: 0,
            wait_us: 0,
            log: LogHeader::default(),
        }
    }

    pub fn exchange(&self) -> &str {
        std::str::from_utf8(&self.exchange[..self.exchange_len as usize]).unwrap_or("?")
    }

    pub fn endpoint(&self) -> &str {
        std::str::from_utf8(&self.endpoint[..self.endpoint_len as usize]).unwrap_or("?")
    }

    pub fn is(&self, dboid: u32, exchange: &str, endpoint: &str) -> bool {
        self.in_use != 0 && self.dboid == dboid && self.exchange() == exchange && self.endpoint() == endpoint
    }
}

#[derive(Clone, Copy)]
struct Layout {
    db_stats: usize,
    monitors: usize,
    keys: usize,
    entries: usize,
    total: usize,
}

fn align(offset: usize, to: usize) -> usize {
    offset.div_ceil(to) * to
}

fn layout(max_keys: usize, max_entries: usize) -> Layout {
    let db_stats = align(size_of::<Header>(), 64);
    let monitors = align(db_stats + MAX_DATABASES * size_of::<DbStats>(), 64);
    let keys = align(monitors + MAX_DATABASES * size_of::<MonitorSlot>(), 64);
    let entries = align(keys + max_keys * size_of::<RateKey>(), align_of::<Entry>().max(64));
    let total = entries + max_keys * max_entries * size_of::<Entry>();
    Layout { db_stats, monitors, keys, entries, total }
}

static HEADER: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());
static mut PREV_REQUEST_HOOK: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP_HOOK: pg_sys::shmem_startup_hook_type = None;

fn configured_layout() -> Layout {
    layout(gucs::RATE_LIMIT_MAX_KEYS.get() as usize, gucs::RATE_LIMIT_MAX_ENTRIES.get() as usize)
}

/// What keeps the windows across a restart (`ratelimit_state`, the state
/// file's owner): `restore` fills a fresh block and says whether the
/// windows are known again; `save` writes them at a clean shutdown.
#[derive(Clone, Copy)]
pub struct Persistence {
    pub restore: fn(&Limiter) -> bool,
    pub last_shutdown_was_clean: fn() -> bool,
    pub save: fn(&Limiter),
}

/// Set once, by `init`, in the postmaster before shared memory exists.
static PERSISTENCE: std::sync::OnceLock<Persistence> = std::sync::OnceLock::new();

/// Installs the hooks; called from _PG_init while preloading, with what
/// keeps the windows across restarts.
pub fn init(persistence: Persistence) {
    let _ = PERSISTENCE.set(persistence);
    unsafe {
        PREV_REQUEST_HOOK = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request);
        PREV_STARTUP_HOOK = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST_HOOK {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(configured_layout().total);
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), LOCKS);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP_HOOK {
            prev();
        }
        let l = configured_layout();
        // The postmaster runs this again when it re-creates shared memory
        // after a backend crashed: the windows are then unknown.
        let after_crash = !HEADER.load(Ordering::Acquire).is_null() && !pg_sys::IsUnderPostmaster;
        // AddinShmemInitLock is MainLWLockArray[21] (lwlocknames.h).
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let base = pg_sys::ShmemInitStruct(BLOCK.as_ptr(), l.total, &mut found).cast::<u8>();
        if !found {
            std::ptr::write_bytes(base, 0, l.total);
            let header = base.cast::<Header>();
            (*header).initialized_at = pg_sys::GetCurrentTimestamp();
            (*header).max_keys = gucs::RATE_LIMIT_MAX_KEYS.get() as u32;
            (*header).max_entries = gucs::RATE_LIMIT_MAX_ENTRIES.get() as u32;
            (*header).max_wait_us = i64::from(gucs::RATE_LIMIT_MAX_WAIT.get()) * 1_000_000;
            (*header).locks.store(pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr()), Ordering::Release);
            let limiter = Limiter::unlocked(base, l, &*header);
            let known = PERSISTENCE
                .get()
                .is_some_and(|p| (p.restore)(&limiter) && !after_crash && (p.last_shutdown_was_clean)());
            (*header).state_known.store(u32::from(known), Ordering::Release);
            (*header).unknown_from.store((*header).initialized_at, Ordering::Release);
            // The startup process has not read the signal files yet; the
            // postmaster runs this in the data directory.
            let standby = ["standby.signal", "recovery.signal"].iter().any(|f| std::path::Path::new(f).exists());
            (*header).awaiting_promotion.store(u32::from(standby), Ordering::Release);
        }
        HEADER.store(base.cast(), Ordering::Release);
        pg_sys::LWLockRelease(init_lock);
        if !pg_sys::IsUnderPostmaster {
            pg_sys::on_shmem_exit(Some(save_on_exit), pg_sys::Datum::from(0));
        }
    }
}

/// The postmaster's last act: save the windows, on a clean exit only.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn save_on_exit(code: i32, _arg: pg_sys::Datum) {
    if code != 0 {
        return;
    }
    if let Ok((base, l)) = base_and_layout() {
        let header = unsafe { &*base.cast::<Header>() };
        if let Some(p) = PERSISTENCE.get() {
            (p.save)(&Limiter::unlocked(base, l, header));
        }
    }
}

/// The block, or the "not preloaded" error.
pub fn header() -> Result<&'static Header, BotaiError> {
    let p = HEADER.load(Ordering::Acquire);
    if p.is_null() {
        return Err(BotaiError::NotPreloaded);
    }
    Ok(unsafe { &*p })
}

fn base_and_layout() -> Result<(*mut u8, Layout), BotaiError> {
    let h = header()?;
    let l = layout(h.max_keys as usize, h.max_entries as usize);
    Ok((h as *const Header as *mut u8, l))
}

/// The counters of database `dboid`, claiming a free slot the first time.
/// None only when every slot belongs to another live database.
pub fn db_stats(dboid: u32) -> Result<Option<&'static DbStats>, BotaiError> {
    let (base, l) = base_and_layout()?;
    let slots = unsafe { std::slice::from_raw_parts(base.add(l.db_stats).cast::<DbStats>(), MAX_DATABASES) };
    Ok(claim(slots, dboid, |s| &s.dboid))
}

/// The monitor slot of database `dboid`, claiming one the first time.
pub fn monitor_slot(dboid: u32) -> Result<Option<&'static MonitorSlot>, BotaiError> {
    Ok(claim(monitor_slots()?, dboid, |s| &s.dboid))
}

pub fn monitor_slots() -> Result<&'static [MonitorSlot], BotaiError> {
    let (base, l) = base_and_layout()?;
    Ok(unsafe { std::slice::from_raw_parts(base.add(l.monitors).cast::<MonitorSlot>(), MAX_DATABASES) })
}

pub fn all_db_stats() -> Result<&'static [DbStats], BotaiError> {
    let (base, l) = base_and_layout()?;
    Ok(unsafe { std::slice::from_raw_parts(base.add(l.db_stats).cast::<DbStats>(), MAX_DATABASES) })
}

fn claim<T>(slots: &'static [T], dboid: u32, id: impl Fn(&T) -> &AtomicU32) -> Option<&'static T> {
    if let Some(s) = slots.iter().find(|s| id(s).load(Ordering::Acquire) == dboid) {
        return Some(s);
    }
    for s in slots {
        if id(s).compare_exchange(0, dboid, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return Some(s);
        }
        if id(s).load(Ordering::Acquire) == dboid {
            return Some(s);
        }
    }
    None
}

/// Access to the rate limiter's keys and logs, under its LWLock (or, in the
/// postmaster, which holds no LWLocks, while no backend runs).
pub struct Limiter {
    lock: Option<*mut pg_sys::LWLock>,
    keys: *mut RateKey,
    entries: *mut Entry,
    pub max_keys: usize,
    pub max_entries: usize,
    pub header: &'static Header,
}

impl Limiter {
    /// Takes the limiter's lock (exclusive or shared) until the value drops.
    pub fn lock(exclusive: bool) -> Result<Limiter, BotaiError> {
        let (base, l) = base_and_layout()?;
        let header = header()?;
        let lock = unsafe { &raw mut (*header.locks.load(Ordering::Acquire).add(LIMITER_LOCK)).lock };
        let mode = if exclusive { pg_sys::LWLockMode::LW_EXCLUSIVE } else { pg_sys::LWLockMode::LW_SHARED };
        unsafe { pg_sys::LWLockAcquire(lock, mode) };
        Ok(Limiter {
            lock: Some(lock),
            keys: unsafe { base.add(l.keys).cast() },
            entries: unsafe { base.add(l.entries).cast() },
            max_keys: header.max_keys as usize,
            max_entries: header.max_entries as usize,
            header,
        })
    }

    /// Without the lock: only for the postmaster at start and exit.
    fn unlocked(base: *mut u8, l: Layout, header: &'static Header) -> Limiter {
        Limiter {
            lock: None,
            keys: unsafe { base.add(l.keys).cast() },
            entries: unsafe { base.add(l.entries).cast() },
            max_keys: header.max_keys as usize,
            max_entries: header.max_entries as usize,
            header,
        }
    }

    pub fn key(&self, index: usize) -> &RateKey {
        assert!(index < self.max_keys);
        unsafe { &*self.keys.add(index) }
    }

    /// The key and its log buffer, for writing. Callers hold the lock
    /// exclusively (Limiter::lock(true)).
    #[allow(clippy::mut_from_ref)]
    pub fn key_mut(&self, index: usize) -> (&mut RateKey, &mut [Entry]) {
        assert!(index < self.max_keys);
        unsafe {
            let key = &mut *self.keys.add(index);
            let buf = std::slice::from_raw_parts_mut(self.entries.add(index * self.max_entries), self.max_entries);
            (key, buf)
        }
    }

    pub fn entries(&self, index: usize) -> &[Entry] {
        assert!(index < self.max_keys);
        unsafe { std::slice::from_raw_parts(self.entries.add(index * self.max_entries), self.max_entries) }
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        // After an elog(ERROR) the abort path releases every LWLock itself.
        unsafe {
            if let Some(lock) = self.lock {
                if pg_sys::InterruptHoldoffCount > 0 {
                    pg_sys::LWLockRelease(lock);
                }
            }
        }
    }
}

/// Frees the slots of databases that no longer exist.
pub fn forget_databases(alive: &[u32]) -> Result<usize, BotaiError> {
    let mut freed = 0;
    for s in all_db_stats()? {
        let id = s.dboid.load(Ordering::Acquire);
        if id != 0 && !alive.contains(&id) {
            for c in [&s.total_checks, &s.unique_signals, &s.duplicates_found, &s.stale_rejected, &s.cooldown_rejected]
            {
                c.store(0, Ordering::Relaxed);
            }
            s.dboid.store(0, Ordering::Release);
            freed += 1;
        }
    }
    for s in monitor_slots()? {
        let id = s.dboid.load(Ordering::Acquire);
        if id != 0 && !alive.contains(&id) && s.pid.load(Ordering::Acquire) == 0 {
            s.rounds.store(0, Ordering::Relaxed);
            s.round_errors.store(0, Ordering::Relaxed);
            s.last_round_at.store(0, Ordering::Relaxed);
            s.starting_at.store(0, Ordering::Relaxed);
            s.no_extension_at.store(0, Ordering::Relaxed);
            s.dboid.store(0, Ordering::Release);
            freed += 1;
        }
    }
    let limiter = Limiter::lock(true)?;
    for i in 0..limiter.max_keys {
        let (key, _) = limiter.key_mut(i);
        if key.in_use != 0 && !alive.contains(&key.dboid) {
            key.in_use = 0;
            freed += 1;
        }
    }
    Ok(freed)
}
