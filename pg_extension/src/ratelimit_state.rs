//! What the rate limiter keeps across a restart of the server.
//!
//! Shared memory dies with the server, but the exchange still counts the
//! requests sent just before. Rules, decided when the postmaster creates the
//! shared memory:
//!
//! * clean shutdown before: the postmaster wrote every window to
//!   `pg_stat/botai_ratelimit.state` on its way out; they are restored
//!   exactly (booked moments are absolute times) and the file is removed;
//! * crash before (postmaster killed, or a backend crash that makes the
//!   postmaster re-create shared memory): the marker file
//!   `pg_stat/botai_ratelimit.running`, created at start and removed only
//!   after a successful save, is still there, so what was booked is unknown
//!   and every window counts as full for one window length after start;
//! * neither file: botai never ran on this data directory, nothing was
//!   booked through it.
//!
//! The postmaster holds no LWLock, so the save reads the windows as they
//! are; the loader validates every log (sorted, within capacity) and treats
//! the whole state as unknown if anything is off.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use botai_core::sliding_log::SlidingLog;

use crate::shmem::{Limiter, RateKey, NAME_BYTES};

const MAGIC: &[u8; 8] = b"BOTAIRL1";

fn dir() -> PathBuf {
    let data = unsafe { std::ffi::CStr::from_ptr(pgrx::pg_sys::DataDir) };
    PathBuf::from(data.to_string_lossy().into_owned()).join("pg_stat")
}

fn state_file() -> PathBuf {
    dir().join("botai_ratelimit.state")
}

fn marker_file() -> PathBuf {
    dir().join("botai_ratelimit.running")
}

/// Whether PostgreSQL itself shut down cleanly last time: pg_control says so
/// only after a shutdown checkpoint (smart or fast). `pg_ctl stop -m
/// immediate` exits the postmaster normally, so the windows were saved, but
/// backends were killed mid-booking: that stop counts as a crash. Read
/// before the startup process touches pg_control.
pub fn last_shutdown_was_clean() -> bool {
    let mut crc_ok = false;
    let state = unsafe {
        let control = pgrx::pg_sys::get_controlfile(pgrx::pg_sys::DataDir, &mut crc_ok);
        if control.is_null() {
            return false;
        }
        (*control).state
    };
    crc_ok
        && (state == pgrx::pg_sys::DBState::DB_SHUTDOWNED || state == pgrx::pg_sys::DBState::DB_SHUTDOWNED_IN_RECOVERY)
}

/// Makes the directory entries of `dir` durable (a created, renamed or
/// removed file).
fn sync_dir() -> std::io::Result<()> {
    fs::File::open(dir())?.sync_all()
}

/// Restores the windows into freshly zeroed keys. Returns whether what was
/// booked before this start is known.
///
/// The marker is made durable before the saved state is consumed: if this
/// start is cut short, the next one finds the marker and treats the windows
/// as unknown, never a state file that no longer describes them.
pub fn restore(limiter: &Limiter) -> bool {
    let had_marker = marker_file().exists();
    let saved = fs::read(state_file()).ok();
    let marked = fs::File::create(marker_file()).and_then(|f| f.sync_all()).and_then(|_| sync_dir());
    if let Err(e) = &marked {
        pgrx::warning!(
            "botai: could not write {}: {e}; every rate-limit window counts as full after this start",
            marker_file().display()
        );
    }
    if saved.is_some() {
        if let Err(e) = fs::remove_file(state_file()).and_then(|_| sync_dir()) {
            pgrx::warning!("botai: could not remove {}: {e}", state_file().display());
        }
    }
    if marked.is_err() {
        return false;
    }
    match saved {
        Some(bytes) => match decode(&bytes, limiter) {
            Ok(keys) => {
                pgrx::log!("botai: restored {keys} rate-limit windows saved at the last shutdown");
                true
            }
            Err(why) => {
                for i in 0..limiter.max_keys {
                    limiter.key_mut(i).0.in_use = 0;
                }
                pgrx::warning!(
                    "botai: ignoring {}: {why}; every rate-limit window counts as full for one window length",
                    state_file().display()
                );
                false
            }
        },
        None if had_marker => {
            pgrx::log!(
                "botai: the server did not shut down cleanly; every rate-limit window counts as full for one window length"
            );
            false
        }
        None => true,
    }
}

/// Writes every window (clean shutdown of the postmaster only).
pub fn save(limiter: &Limiter) {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    let keys: Vec<usize> = (0..limiter.max_keys).filter(|&i| limiter.key(i).in_use != 0).collect();
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for i in keys {
        let k = limiter.key(i);
        out.extend_from_slice(&k.dboid.to_le_bytes());
        out.extend_from_slice(&k.exchange_len.to_le_bytes());
        out.extend_from_slice(&k.endpoint_len.to_le_bytes());
        out.extend_from_slice(&k.exchange[..usize::from(k.exchange_len)]);
        out.extend_from_slice(&k.endpoint[..usize::from(k.endpoint_len)]);
        for v in [k.penalty_until as u64, k.penalties, k.requests, k.delayed, k.refused, k.wait_us] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let view = botai_core::sliding_log::LogView::new(&k.log, limiter.entries(i));
        out.extend_from_slice(&(view.len() as u32).to_le_bytes());
        for j in 0..view.len() {
            let e = view.get(j);
            out.extend_from_slice(&e.at.to_le_bytes());
            out.extend_from_slice(&e.weight.to_le_bytes());
        }
    }
    let sum = fnv64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    let tmp = state_file().with_extension("tmp");
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&out).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, state_file()))
        .and_then(|_| sync_dir());
    match written {
        // Only a durable save clears the marker: a failed one leaves the
        // next start treating the windows as unknown.
        Ok(()) => {
            if let Err(e) = fs::remove_file(marker_file()).and_then(|_| sync_dir()) {
                pgrx::warning!("botai: could not remove {}: {e}", marker_file().display());
            }
        }
        Err(e) => pgrx::warning!("botai: could not save the rate-limit windows: {e}"),
    }
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self.bytes.get(self.at..self.at + n).ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

fn decode(bytes: &[u8], limiter: &Limiter) -> Result<usize, String> {
    if bytes.len() < MAGIC.len() + 12 || &bytes[..8] != MAGIC {
        return Err("not a botai rate-limit state file".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if fnv64(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { bytes: body, at: 8 };
    let count = r.u32()? as usize;
    if count > limiter.max_keys {
        return Err(format!("{count} keys saved, botai.rate_limit_max_keys is {}", limiter.max_keys));
    }
    for slot in 0..count {
        let (key, buf) = limiter.key_mut(slot);
        *key = RateKey::empty();
        key.dboid = r.u32()?;
        key.exchange_len = r.u16()?;
        key.endpoint_len = r.u16()?;
        let (el, pl) = (usize::from(key.exchange_len), usize::from(key.endpoint_len));
        if el > NAME_BYTES || pl > NAME_BYTES {
            return Err("name too long".into());
        }
        key.exchange[..el].copy_from_slice(r.take(el)?);
        key.endpoint[..pl].copy_from_slice(r.take(pl)?);
        key.penalty_until = r.u64()? as i64;
        key.penalties = r.u64()?;
        key.requests = r.u64()?;
        key.delayed = r.u64()?;
        key.refused = r.u64()?;
        key.wait_us = r.u64()?;
        let n = r.u32()? as usize;
        if n > buf.len() {
            return Err(format!("a window holds {n} entries, botai.rate_limit_max_entries is {}", buf.len()));
        }
        let mut log = SlidingLog::new(&mut key.log, buf);
        let mut last = i64::MIN;
        for _ in 0..n {
            let at = r.u64()? as i64;
            let weight = r.u32()?;
            if at < last {
                return Err("a window is out of order".into());
            }
            last = at;
            log.book(at, weight).map_err(|e| e.to_string())?;
        }
        key.in_use = 1;
    }
    if r.at != body.len() {
        return Err("trailing bytes".into());
    }
    Ok(count)
}
