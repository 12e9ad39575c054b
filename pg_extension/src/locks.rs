//! Locks taken by the extension itself.
//!
//! They live in the lock manager's user lock method, as advisory locks do,
//! but with the `userlock` tag type, which no SQL-callable function can
//! produce: `pg_advisory_lock` and friends take `advisory` tags only. So no
//! role, however it calls `pg_advisory_*`, can hold, wait on or release a
//! botai lock. They stay visible to a DBA:
//!
//! ```sql
//! SELECT pid, classid, objid, mode, granted FROM pg_locks WHERE locktype = 'userlock';
//! ```
//!
//! `classid` says what the lock guards (WORKER_SLOT_NS: a worker slot,
//! objid = type_id * 1024 + slot; SIGNAL_COOLDOWN_NS: a (symbol, direction,
//! strategy) cooldown; BALANCE_SNAPSHOT_NS: an (exchange, asset) snapshot),
//! `objsubid` is 0. Like advisory locks, a session's are released by
//! `pg_advisory_unlock_all()` (and so `DISCARD ALL`) in that same session:
//! a worker slot must be held on a connection that never goes back to a pool.

use pgrx::pg_sys;

/// classid of worker slot locks: "bota" as a big-endian u32.
pub const WORKER_SLOT_NS: u32 = 0x626F_7461;
/// classid of the per-(symbol, direction, strategy) cooldown lock.
pub const SIGNAL_COOLDOWN_NS: u32 = 0x626F_7462;
/// classid of the per-(exchange, asset) lock that orders balance snapshots.
pub const BALANCE_SNAPSHOT_NS: u32 = 0x626F_7463;
/// Transaction locks serializing the claims of one signal (key: the
/// signal id folded to 32 bits).
pub const ORDER_CLAIM_NS: u32 = 0x626F_7464;

/// Transaction locks serializing the risk checks of one exchange account
/// (key: name_key of the exchange).
pub const RISK_NS: u32 = 0x626F_7465;
/// The send gate: every engine holds it in share mode (session level) from
/// the permit of an order until the venue answered it; `botai_halt` takes
/// it exclusively (transaction level) and so waits for those sends.
pub const SEND_GATE_NS: u32 = 0x626F_7466;
/// Held exclusively (transaction level) by a halt from its first statement
/// to its commit: a permit that cannot take it in share mode refuses, so
/// no new send starts while a halt waits for the gate.
pub const HALT_INTENT_NS: u32 = 0x626F_7467;

fn tag(namespace: u32, key: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: namespace,
        locktag_field3: key,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_USERLOCK as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

const MODE: pg_sys::LOCKMODE = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;

/// Session-level lock without waiting; true when this session now holds it.
/// Never increments the hold count of a lock this session already has.
/// Worker-slot tags are only ever taken at session level, so "held by me"
/// means held by this session.
pub fn try_session_lock(namespace: u32, key: u32) -> bool {
    if held_by_me(namespace, key) {
        return true;
    }
    let t = tag(namespace, key);
    unsafe { pg_sys::LockAcquire(&t, MODE, true, true) != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL }
}

pub fn held_by_me(namespace: u32, key: u32) -> bool {
    let t = tag(namespace, key);
    unsafe { pg_sys::LockHeldByMe(&t, MODE) }
}

/// Releases this session's hold of a session-level lock; false when it
/// held none. Stops at the first release that fails, so it ends whatever
/// else holds the tag (a transaction-level hold of the same session cannot
/// keep it looping).
pub fn release_session_lock(namespace: u32, key: u32) -> bool {
    let t = tag(namespace, key);
    let mut released = false;
    // try_session_lock never stacks holds; the bound only guards the loop.
    for _ in 0..8 {
        if !held_by_me(namespace, key) || !unsafe { pg_sys::LockRelease(&t, MODE, true) } {
            break;
        }
        released = true;
    }
    released
}

/// Transaction-level lock, waiting for it (interruptible, and subject to
/// lock_timeout and deadlock detection like any lock); released at commit
/// or abort.
pub fn xact_lock(namespace: u32, key: u32) {
    let t = tag(namespace, key);
    unsafe {
        pg_sys::LockAcquire(&t, MODE, false, false);
    }
}

/// Lock keys derived from names (botai-core, so clients compute the same).
pub use botai_core::lock_key::name_key;

/// Share mode without waiting; `session` holds it across transactions
/// (each successful call adds one hold, released by `release_share`).
pub fn try_share(namespace: u32, key: u32, session: bool) -> bool {
    let t = tag(namespace, key);
    unsafe {
        pg_sys::LockAcquire(&t, pg_sys::ShareLock as pg_sys::LOCKMODE, session, true)
            != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}

/// Releases one hold taken by `try_share`; false when none was held.
pub fn release_share(namespace: u32, key: u32, session: bool) -> bool {
    let t = tag(namespace, key);
    unsafe {
        pg_sys::LockHeldByMe(&t, pg_sys::ShareLock as pg_sys::LOCKMODE)
            && pg_sys::LockRelease(&t, pg_sys::ShareLock as pg_sys::LOCKMODE, session)
    }
}

/// Exclusive at transaction level without waiting; true when held now.
pub fn try_xact_lock(namespace: u32, key: u32) -> bool {
    let t = tag(namespace, key);
    unsafe { pg_sys::LockAcquire(&t, MODE, false, true) != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL }
}
