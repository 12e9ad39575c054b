//! A booking: the plan of the keys a request counts against, the moment
//! it counts from (the 100 ms rule), and the booking itself.

use super::*;

/// The limits a request to (exchange, endpoint) must fit: its endpoint's and
/// the exchange's `global`, whichever exist.
pub(super) struct Plan {
    pub(super) exchange: String,
    /// The endpoint's key first, then global's.
    pub(super) keys: Vec<PlanKey>,
    pub(super) weight: u64,
}

pub(super) struct PlanKey {
    pub(super) endpoint: String,
    pub(super) window: Window,
    /// "exchange\0endpoint": this backend's cache of key indices.
    pub(super) cache_key: String,
}

pub(super) fn plan(exchange: Option<&str>, endpoint: Option<&str>, weight: Option<i32>) -> Result<Plan> {
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
pub(super) struct Now {
    pub(super) reference: i64,
    pub(super) base: i64,
}

pub(super) fn moments(limiter: &Limiter) -> Now {
    let reference = clock::transaction_start().max(clock::wall() - STALE_TRANSACTION_US);
    let previous = limiter.header.limiter_clock.fetch_max(reference, Ordering::AcqRel);
    Now { reference, base: previous.max(reference) }
}

/// Books `plan` at the earliest moment it fits (with `only_if_now`, only if
/// that is now). Returns the moment, whether it booked, and the clock.
/// Everything that allocates happens before the lock is taken.
pub(super) fn book(plan: &Plan, only_if_now: bool) -> Result<(i64, bool, Now)> {
    // How far ahead a booking may be: botai.rate_limit_max_wait, plus the
    // send-jitter allowance every window carries (a window as long as the
    // maximum wait still books its next request).
    let max_ahead_us = i64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) * 1000;
    let limiter = lock_to_write()?;
    let max_ahead_us = limiter.header.max_wait_us + max_ahead_us;
    let now = moments(&limiter);
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
