//! BalanceManager (SQL_API.md §4): no order without funds.
//!
//! Free funds are `available − held`, where held is the sum of reservations
//! that are `held` and not past `expires_at`, plus `committed` ones (their
//! order is on the exchange but not yet in a balance snapshot). A
//! reservation is admitted only while its balance row is locked and only if
//! the free funds cover it, so however many sessions reserve at once the
//! held total never exceeds what was available.
//!
//! Why two statements in `reserve`: the first locks (and bumps) the balance
//! row, the second computes the held sum with a fresh snapshot taken after
//! the lock was granted, so it sees every reservation of the previous lock
//! holder. One statement would compute the sum with a snapshot from before
//! the wait. Bumping the row (rather than SELECT … FOR UPDATE) also makes a
//! concurrent reserver under REPEATABLE READ fail with a serialization error
//! instead of overdrawing from a stale snapshot.

use botai_core::names;
use botai_core::reservation::{ReservationEvent, ReservationStatus};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};

use crate::clock;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::statements::{with_spi, Statement};

/// Longest reservation TTL accepted.
const MAX_TTL_MICROS: i128 = 24 * 3600 * 1_000_000;

/// A finite numeric, at least zero (or above zero when `positive`).
fn amount(argument: &'static str, value: Option<AnyNumeric>, positive: bool) -> Result<AnyNumeric> {
    let v = required(value, argument)?;
    let text = v.to_string();
    if matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
        return Err(BotaiError::invalid(argument, format!("must be a finite number, not {text}")));
    }
    let zero = AnyNumeric::from(0);
    if v < zero || (positive && v == zero) {
        let what = if positive { "positive" } else { "zero or more" };
        return Err(BotaiError::invalid(argument, format!("must be {what} (got {text})")));
    }
    Ok(v)
}

fn margin() -> f64 {
    gucs::BALANCE_SAFETY_MARGIN.get()
}

static UPSERT_BALANCE: Statement = Statement::new(
    "balances.upsert",
    "INSERT INTO botai.balances AS b (exchange, asset, total, available, locked, as_of) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (exchange, asset) DO UPDATE SET total = EXCLUDED.total, available = EXCLUDED.available, \
       locked = EXCLUDED.locked, as_of = EXCLUDED.as_of, updated_at = now() \
     WHERE b.as_of < EXCLUDED.as_of \
     RETURNING true",
);
static RETIRE_COMMITTED: Statement = Statement::new(
    "balances.retire_committed",
    "UPDATE botai.reservations SET status = 'retired', closed_at = now() \
     WHERE exchange = $1 AND asset = $2 AND status = 'committed' AND committed_at < $3",
);
/// The held total of ($1 exchange, $2 asset): held and unexpired, plus
/// committed (at the committed amount).
macro_rules! held_sum {
    () => {
        "coalesce((SELECT sum(CASE WHEN r.status = 'committed' THEN coalesce(r.committed_amount, r.amount) \
                                        ELSE r.amount END) \
              FROM botai.reservations r \
              WHERE r.exchange = $1 AND r.asset = $2 AND r.status IN ('held', 'committed') \
                AND (r.status = 'committed' OR r.expires_at > now())), 0)"
    };
}
static FREE: Statement = Statement::new(
    "balances.free",
    concat!("SELECT b.available - ", held_sum!(), " FROM botai.balances b WHERE b.exchange = $1 AND b.asset = $2"),
);
static LOCK_BALANCE: Statement = Statement::new(
    "balances.lock",
    "UPDATE botai.balances SET reserve_seq = reserve_seq + 1 WHERE exchange = $1 AND asset = $2 RETURNING available",
);
static INSERT_RESERVATION: Statement = Statement::new(
    "balances.reserve",
    concat!(
        "INSERT INTO botai.reservations (exchange, asset, amount, purpose, metadata, expires_at) \
         SELECT $1, $2, $3, $4, $5, now() + $6 \
         WHERE $7 - ",
        held_sum!(),
        " >= $3 * (1 + $8::numeric) \
         RETURNING reservation_id"
    ),
);
static RELEASE: Statement = Statement::new(
    "balances.release",
    "UPDATE botai.reservations SET status = 'released', closed_at = now() \
     WHERE reservation_id = $1 AND status = 'held' AND expires_at > now() RETURNING true",
);
static RESERVATION_STATE: Statement = Statement::new(
    "balances.state",
    "SELECT status, expires_at <= now(), amount FROM botai.reservations WHERE reservation_id = $1 FOR UPDATE",
);
static MARK_EXPIRED: Statement = Statement::new(
    "balances.mark_expired",
    "UPDATE botai.reservations SET status = 'expired', closed_at = now() WHERE reservation_id = $1",
);
static COMMIT: Statement = Statement::new(
    "balances.commit",
    "UPDATE botai.reservations SET status = 'committed', committed_at = now(), committed_amount = $2 \
     WHERE reservation_id = $1",
);

/// The latest balance snapshot from the exchange, taken at `as_of`. A
/// snapshot older than the stored one changes nothing and returns false.
/// Committed reservations older than the snapshot retire: the exchange's own
/// figure now includes their orders.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_update_balance(
    exchange: Option<&str>,
    asset: Option<&str>,
    total: Option<AnyNumeric>,
    available: Option<AnyNumeric>,
    locked: Option<AnyNumeric>,
    as_of: default!(Option<TimestampWithTimeZone>, "now()"),
) -> bool {
    update_balance(exchange, asset, total, available, locked, as_of).or_raise("botai_update_balance")
}

fn update_balance(
    exchange: Option<&str>,
    asset: Option<&str>,
    total: Option<AnyNumeric>,
    available: Option<AnyNumeric>,
    locked: Option<AnyNumeric>,
    as_of: Option<TimestampWithTimeZone>,
) -> Result<bool> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let total = amount("total", total, false)?;
    let available = amount("available", available, false)?;
    let locked = amount("locked", locked, false)?;
    if available > total {
        return Err(BotaiError::invalid("available", format!("{available} is more than total {total}")));
    }
    let as_of_value = required(as_of, "as_of")?;
    let as_of_time = clock::finite("as_of", as_of_value)?;
    if as_of_time > clock::to_chrono(clock::transaction_start()) + chrono::Duration::seconds(60) {
        return Err(BotaiError::invalid("as_of", "is more than 60 seconds in the future"));
    }
    with_spi(|client| {
        let stored = UPSERT_BALANCE
            .one::<bool>(
                client,
                &[
                    exchange.as_str().into(),
                    asset.as_str().into(),
                    total.into(),
                    available.into(),
                    locked.into(),
                    as_of_value.into(),
                ],
            )?
            .unwrap_or(false);
        if stored {
            RETIRE_COMMITTED.run(client, &[exchange.as_str().into(), asset.as_str().into(), as_of_value.into()])?;
        }
        Ok(stored)
    })
}

/// Whether `amount` (plus the safety margin) fits the free funds now.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_check_balance_availability(
    exchange: Option<&str>,
    asset: Option<&str>,
    amount: Option<AnyNumeric>,
) -> TableIterator<'static, (name!(available, bool), name!(error, Option<String>))> {
    TableIterator::once(check(exchange, asset, amount).or_raise("botai_check_balance_availability"))
}

fn check(exchange: Option<&str>, asset: Option<&str>, value: Option<AnyNumeric>) -> Result<(bool, Option<String>)> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let value = amount("amount", value, true)?;
    let free: Option<AnyNumeric> =
        with_spi(|client| FREE.one(client, &[exchange.as_str().into(), asset.as_str().into()]))?;
    let Some(free) = free else {
        return Ok((false, Some(format!("no balance snapshot for {exchange}/{asset}"))));
    };
    let m = margin();
    let needed = value.clone() * (AnyNumeric::from(1) + AnyNumeric::try_from(m).unwrap_or_else(|_| 0.into()));
    if free >= needed {
        Ok((true, None))
    } else {
        Ok((
            false,
            Some(format!(
                "insufficient free balance on {exchange}/{asset}: free {free} < required {needed} \
                 (amount {value} + {}% safety margin)",
                m * 100.0
            )),
        ))
    }
}

/// Holds `amount` and returns the reservation id, or NULL when the free
/// funds do not cover it.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_reserve_balance(
    exchange: Option<&str>,
    asset: Option<&str>,
    amount: Option<AnyNumeric>,
    purpose: Option<&str>,
    metadata: default!(Option<JsonB>, "NULL"),
    ttl: default!(Option<Interval>, "'5 minutes'"),
) -> Option<Uuid> {
    reserve(exchange, asset, amount, purpose, metadata, ttl).or_raise("botai_reserve_balance")
}

fn reserve(
    exchange: Option<&str>,
    asset: Option<&str>,
    value: Option<AnyNumeric>,
    purpose: Option<&str>,
    metadata: Option<JsonB>,
    ttl: Option<Interval>,
) -> Result<Option<Uuid>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let value = amount("amount", value, true)?;
    let purpose = names::name("purpose", required(purpose, "purpose")?)?;
    if let Some(JsonB(m)) = &metadata {
        if !m.is_object() {
            return Err(BotaiError::invalid("metadata", "must be a JSON object"));
        }
    }
    let ttl = required(ttl, "ttl")?;
    let ttl_micros = ttl.as_micros();
    if ttl_micros <= 0 || ttl_micros > MAX_TTL_MICROS {
        return Err(BotaiError::invalid("ttl", "must be longer than zero and at most 1 day"));
    }
    with_spi(|client| {
        let available: Option<AnyNumeric> =
            LOCK_BALANCE.one(client, &[exchange.as_str().into(), asset.as_str().into()])?;
        let Some(available) = available else {
            return Err(BotaiError::NotFound(format!(
                "no balance snapshot for {exchange}/{asset}: call botai_update_balance first"
            )));
        };
        Ok(INSERT_RESERVATION.one::<Uuid>(
            client,
            &[
                exchange.as_str().into(),
                asset.as_str().into(),
                value.into(),
                purpose.into(),
                metadata.into(),
                ttl.into(),
                available.into(),
                margin().into(),
            ],
        )?)
    })
}

/// Lets a held reservation go. True when it was held; calling again is
/// harmless and returns false.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_release_reservation(reservation_id: Option<Uuid>) -> bool {
    release(reservation_id).or_raise("botai_release_reservation")
}

fn release(reservation_id: Option<Uuid>) -> Result<bool> {
    let id = required(reservation_id, "reservation_id")?;
    with_spi(|client| {
        if RELEASE.one::<bool>(client, &[id.into()])?.unwrap_or(false) {
            return Ok(true);
        }
        // Not released: unknown (an error), already closed, committed, or
        // held past its expiry (recorded as expired now).
        let state = state(client, id)?;
        if state.expired_by_time {
            MARK_EXPIRED.run(client, &[id.into()])?;
        }
        Ok(false)
    })
}

/// A reservation as stored, its row locked.
struct State {
    status: ReservationStatus,
    /// Held and past expires_at: the Expire event applies.
    expired_by_time: bool,
    amount: AnyNumeric,
}

fn state(client: &mut pgrx::spi::SpiClient<'_>, id: Uuid) -> Result<State> {
    let rows = RESERVATION_STATE.run(client, &[id.into()])?;
    if rows.is_empty() {
        return Err(BotaiError::NotFound(format!("no reservation with id {id}")));
    }
    let row = rows.first();
    let status = row.get::<String>(1)?.and_then(|s| ReservationStatus::parse(&s)).unwrap_or(ReservationStatus::Retired);
    let past_expiry = row.get::<bool>(2)?.unwrap_or(true);
    let amount = row.get::<AnyNumeric>(3)?.unwrap_or_else(|| 0.into());
    let expired_by_time = past_expiry && status.on(ReservationEvent::Expire).is_some();
    Ok(State { status, expired_by_time, amount })
}

/// The order was placed: the reservation (or the smaller `amount` actually
/// used) stays held until a balance snapshot taken after now arrives.
/// False when the reservation is not held (already committed, released,
/// expired); unknown ids are an error.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_commit_reservation(reservation_id: Option<Uuid>, amount: default!(Option<AnyNumeric>, "NULL")) -> bool {
    commit(reservation_id, amount).or_raise("botai_commit_reservation")
}

fn commit(reservation_id: Option<Uuid>, used: Option<AnyNumeric>) -> Result<bool> {
    let id = required(reservation_id, "reservation_id")?;
    let used = used.map(|u| amount("amount", Some(u), true)).transpose()?;
    with_spi(|client| {
        let state = state(client, id)?;
        if state.expired_by_time {
            // Its time ran out before the order was confirmed: it no longer
            // holds funds and is not revived.
            MARK_EXPIRED.run(client, &[id.into()])?;
            return Ok(false);
        }
        if state.status.on(ReservationEvent::Commit).is_none() {
            return Ok(false);
        }
        let reserved = state.amount;
        let used = match used {
            Some(u) if u > reserved => {
                return Err(BotaiError::invalid("amount", format!("{u} is more than the reserved {reserved}")));
            }
            Some(u) => u,
            None => reserved,
        };
        COMMIT.run(client, &[id.into(), used.into()])?;
        Ok(true)
    })
}
