//! The keys in shared memory (created on first use, counted full while
//! the state is unknown) and the writer's lock, which first notices a
//! promotion.

use super::*;

pub(super) fn write_name(dst: &mut [u8; NAME_BYTES], src: &str) -> u16 {
    let bytes = src.as_bytes();
    dst[..bytes.len()].copy_from_slice(bytes);
    bytes.len() as u16
}

/// Index of the key in shared memory, creating it (under the exclusive
/// lock) when missing.
pub(super) fn key_index(limiter: &Limiter, exchange: &str, wanted: &PlanKey, base: i64) -> Result<usize> {
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
pub(super) fn lock_to_write() -> Result<Limiter> {
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
pub(super) fn notice_promotion_locked(limiter: &Limiter) {
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
pub(super) fn promotion_unnoticed(header: &crate::shmem::Header) -> bool {
    header.awaiting_promotion.load(Ordering::Acquire) != 0 && !crate::standby::in_recovery()
}
