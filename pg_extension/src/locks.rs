//! Advisory locks taken by the extension itself.
//!
//! The tags are exactly those of `pg_advisory_lock(int4, int4)`, so they show
//! in `pg_locks` as locktype 'advisory' with classid = namespace, objid = key,
//! objsubid = 2, and a DBA can see who holds a worker slot.

use pgrx::pg_sys;

/// classid of worker slot locks: "bota" as a big-endian u32.
pub const WORKER_SLOT_NS: u32 = 0x626F_7461;
/// classid of the per-(symbol, direction, strategy) cooldown lock.
pub const SIGNAL_COOLDOWN_NS: u32 = 0x626F_7462;
/// classid of the per-(exchange, asset) lock that orders balance snapshots.
pub const BALANCE_SNAPSHOT_NS: u32 = 0x626F_7463;

fn tag(namespace: u32, key: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: namespace,
        locktag_field3: key,
        locktag_field4: 2,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

const MODE: pg_sys::LOCKMODE = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;

/// Session-level lock without waiting; true when this session now holds it.
/// Never increments the hold count of a lock this session already has.
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

/// Releases a session-level lock; false when it was not held.
pub fn release_session_lock(namespace: u32, key: u32) -> bool {
    let t = tag(namespace, key);
    let mut released = false;
    while held_by_me(namespace, key) {
        released |= unsafe { pg_sys::LockRelease(&t, MODE, true) };
        if !released {
            break;
        }
    }
    released
}

/// Transaction-level lock, waiting for it; released at commit or abort.
pub fn xact_lock(namespace: u32, key: u32) {
    let t = tag(namespace, key);
    unsafe {
        pg_sys::LockAcquire(&t, MODE, false, false);
    }
}

/// 32-bit FNV-1a, for lock keys derived from names.
pub fn name_key(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in part.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}
