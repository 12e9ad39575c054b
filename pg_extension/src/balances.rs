//! BalanceManager (SQL_API.md §4): no order without funds.
//!
//! Free funds are `available − reserved`, where reserved is what held
//! reservations (unexpired) and committed ones (their order is on the
//! exchange but not yet in a balance snapshot) hold. A reservation is
//! admitted only while its balance row is locked and only if the free funds
//! cover it, so however many sessions reserve at once the reserved total
//! never exceeds what was available.
//!
//! Reserving costs the same however many reservations are open: the balance
//! row carries `held`, the sum of every reservation's `counted` amount, and
//! only a session holding the row's lock writes either. Release, commit,
//! expiry and retirement change a reservation's status without that lock
//! (so they never queue behind reservers); the amounts they free are
//! *pending* until the next reservation *folds* them into `held`, a few
//! dozen at a time through a partial index of exactly those rows. Readers
//! (the status view, the availability check) subtract what is pending, so
//! every reader sees the exact figure at once.
//!
//! `reserve` first locks the balance row (reading its latest version);
//! folds, when there is anything to fold, run as statements of their own
//! with a fresh snapshot taken after the lock was granted, so they see every
//! change of the previous lock holder. Every admission writes the row, so a
//! concurrent reserver under REPEATABLE READ fails with a serialization
//! error instead of overdrawing from a stale snapshot.

use botai_core::names;
use botai_core::reservation::{ReservationEvent, ReservationStatus};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};

use crate::amounts::{self, Sign};
use crate::json::{self, ClientJson};

use crate::clock;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::locks;
use crate::statements::{reading, writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "sql/balances.sql",
    name = "balances_sql",
    requires = [
        botai_check_balance_availability,
        botai_commit_reservation,
        botai_release_reservation,
        botai_reserve_balance,
        botai_update_balance,
        botai_update_balance_skew
    ]
);

/// Longest reservation TTL accepted.
const MAX_TTL_MICROS: i128 = 24 * 3600 * 1_000_000;

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
static NEWER_SNAPSHOT: Statement = Statement::new(
    "balances.newer",
    "SELECT coalesce((SELECT as_of < $3 FROM botai.balances WHERE exchange = $1 AND asset = $2), true)",
);
static RETIRE_COMMITTED: Statement = Statement::new(
    "balances.retire_committed",
    "UPDATE botai.reservations SET status = 'retired', closed_at = now(), \
       pending_seq = nextval('botai.reservation_pending_seq') \
     WHERE exchange = $1 AND asset = $2 AND status = 'committed' AND committed_at < $3 - make_interval(secs => $4)",
);
static FREE: Statement =
    Statement::new("balances.free", "SELECT free FROM botai.balances_status WHERE exchange = $1 AND asset = $2");
/// Locks the balance row; returns (available, held, whether a held
/// reservation may have lapsed, whether retired or expired reservations
/// wait to be folded, fold_mark). The pending probe reads this statement's
/// snapshot, taken before the lock was granted: a row that became pending
/// just then is folded by a later reservation (until then the figure errs
/// on the safe side, less free).
static LOCK_BALANCE: Statement = Statement::new(
    "balances.lock",
    "SELECT b.available, b.held, b.held_expiry_floor <= now(), \
            EXISTS (SELECT 1 FROM botai.reservations r \
                    WHERE r.exchange = $1 AND r.asset = $2 AND r.counted > 0 \
                      AND r.status IN ('expired', 'retired') AND r.pending_seq > b.fold_mark), \
            b.fold_mark \
     FROM botai.balances b WHERE b.exchange = $1 AND b.asset = $2 FOR NO KEY UPDATE",
);
/// Rows a fold takes at a time (per kind: retired or expired, and lapsed).
const FOLD_BATCH: i64 = 64;
/// How far below the newest folded row (in `pending_seq`) a bounded fold
/// starts looking: a row retired or expired that many changes before it
/// became visible (its transaction stayed open meanwhile) is left to a full
/// fold. Bounded folds walk at most about this many index entries of rows
/// already folded (dead until VACUUM), however long since the last VACUUM.
const FOLD_MARGIN: i64 = 1000;
/// Folds up to $3 (NULL: all) pending reservations of ($1, $2) into `held`:
/// retired and expired ones with `pending_seq` above $4 (0: all), and held
/// ones past their expiry (marked expired now). Then moves `fold_mark` to
/// $5 below the newest row folded and, after a search for lapsed ones,
/// `held_expiry_floor` to the earliest expiry of the held ones left (until
/// then no search is needed). Returns the balance row's held afterwards.
///
/// Rows another transaction has locked (a release or commit settling
/// itself, a snapshot retiring them, the monitor expiring them) are
/// skipped, not waited for: waiting while this session holds the balance
/// row would stall every reserver. Their lockers settle them, or a later
/// fold does. The WHERE clauses of `closed` and `lapsed` match the partial
/// indexes `reservations_unfolded_idx` and `reservations_held_idx`.
static FOLD: Statement = Statement::new(
    "balances.fold",
    "WITH closed AS ( \
        SELECT r.reservation_id, r.counted FROM botai.reservations r \
        WHERE r.exchange = $1 AND r.asset = $2 AND r.counted > 0 AND r.status IN ('expired', 'retired') \
          AND r.pending_seq > $4 \
        LIMIT $3 FOR UPDATE SKIP LOCKED), \
     lapsed AS ( \
        SELECT r.reservation_id, r.counted FROM botai.reservations r \
        WHERE r.exchange = $1 AND r.asset = $2 AND r.status = 'held' AND r.expires_at <= now() AND r.counted > 0 \
        LIMIT $3 FOR UPDATE SKIP LOCKED), \
     due AS (SELECT * FROM closed UNION ALL SELECT * FROM lapsed), \
     folded AS ( \
        UPDATE botai.reservations r \
        SET counted = 0, \
            status = CASE WHEN r.status = 'held' THEN 'expired' ELSE r.status END, \
            closed_at = CASE WHEN r.status = 'held' THEN now() ELSE r.closed_at END \
        FROM due WHERE r.reservation_id = due.reservation_id \
        RETURNING due.counted AS freed, r.pending_seq AS seq), \
     total AS (SELECT coalesce(sum(freed), 0) AS freed, max(seq) AS seq FROM folded), \
     next_expiry AS ( \
        SELECT CASE WHEN (SELECT count(*) FROM lapsed) >= coalesce($3, 9223372036854775807) THEN '-infinity' \
                    ELSE coalesce((SELECT r.expires_at FROM botai.reservations r \
                                   WHERE r.exchange = $1 AND r.asset = $2 AND r.status = 'held' \
                                     AND r.expires_at > now() \
                                   ORDER BY r.expires_at LIMIT 1), 'infinity') END AS at) \
     UPDATE botai.balances b \
     SET held = b.held - (SELECT freed FROM total), \
         fold_mark = greatest(b.fold_mark, coalesce((SELECT seq FROM total) - $5, 0)), \
         held_expiry_floor = (SELECT at FROM next_expiry) \
     WHERE b.exchange = $1 AND b.asset = $2 \
     RETURNING b.held",
);
/// The common case in one statement: nothing to fold (no pending
/// retirements or expiries, no held reservation past the floor) and the
/// funds cover $3 with the margin ($7 = what is needed). The UPDATE waits for
/// the balance row's lock and re-checks its conditions on the latest
/// version; no row back means "take the careful way", not "refused".
static RESERVE_FAST: Statement = Statement::new(
    "balances.reserve_fast",
    "WITH booked AS ( \
        UPDATE botai.balances b \
        SET held = b.held + $3, held_expiry_floor = least(b.held_expiry_floor, now() + $6) \
        WHERE b.exchange = $1 AND b.asset = $2 AND b.available - b.held >= $7 AND b.held_expiry_floor > now() \
          AND NOT EXISTS (SELECT 1 FROM botai.reservations r \
                          WHERE r.exchange = $1 AND r.asset = $2 AND r.counted > 0 \
                            AND r.status IN ('expired', 'retired') AND r.pending_seq > b.fold_mark) \
        RETURNING b.exchange) \
     INSERT INTO botai.reservations (reservation_id, exchange, asset, amount, counted, purpose, metadata, expires_at) \
     SELECT $8, $1, $2, $3, $3, $4, $5, now() + $6 FROM booked \
     RETURNING reservation_id",
);
/// Admits ($1, $2, $3 amount, $4 purpose, $5 metadata, $6 ttl), the
/// balance row locked and the funds checked: the reservation row and the
/// balance row's held total and earliest expiry, in one statement.
static PLACE: Statement = Statement::new(
    "balances.place",
    "WITH placed AS ( \
        INSERT INTO botai.reservations (reservation_id, exchange, asset, amount, counted, purpose, metadata, expires_at) \
        VALUES ($7, $1, $2, $3, $3, $4, $5, now() + $6) RETURNING reservation_id, expires_at) \
     UPDATE botai.balances b \
     SET held = b.held + $3, held_expiry_floor = least(b.held_expiry_floor, placed.expires_at) \
     FROM placed WHERE b.exchange = $1 AND b.asset = $2 \
     RETURNING placed.reservation_id",
);
/// Release, commit and expiry of one reservation settle `held` at once,
/// under the balance row's lock (waited for: these are single rows, and the
/// reservation row is locked first, the order every writer follows).
/// A held reservation counts its whole amount (`counted` changes only when
/// it leaves `held`), so releasing subtracts `amount`. The UPDATE re-checks
/// `status = 'held'` on the latest version: a fold that expired it first
/// wins, and the release returns false.
static RELEASE: Statement = Statement::new(
    "balances.release",
    "WITH released AS ( \
        UPDATE botai.reservations SET status = 'released', closed_at = now(), counted = 0 \
        WHERE reservation_id = $1 AND status = 'held' AND expires_at > now() \
        RETURNING exchange, asset, amount) \
     UPDATE botai.balances b SET held = b.held - released.amount \
     FROM released WHERE b.exchange = released.exchange AND b.asset = released.asset \
     RETURNING true",
);
static RESERVATION_STATE: Statement = Statement::new(
    "balances.state",
    "SELECT status, expires_at <= now(), amount, counted FROM botai.reservations \
     WHERE reservation_id = $1 FOR UPDATE",
);
/// ($1 reservation, $2 its counted amount), its row locked by `state`.
static MARK_EXPIRED: Statement = Statement::new(
    "balances.mark_expired",
    "WITH expired AS ( \
        UPDATE botai.reservations SET status = 'expired', closed_at = now(), counted = 0 \
        WHERE reservation_id = $1 RETURNING exchange, asset) \
     UPDATE botai.balances b SET held = b.held - $2 \
     FROM expired WHERE b.exchange = expired.exchange AND b.asset = expired.asset AND $2 > 0",
);
/// ($1 reservation, $2 amount used, $3 what that frees), its row locked by
/// `state`. The committed amount stays counted until a balance snapshot
/// retires it.
static COMMIT: Statement = Statement::new(
    "balances.commit",
    "WITH committed AS ( \
        UPDATE botai.reservations SET status = 'committed', committed_at = clock_timestamp(), committed_amount = $2, \
          counted = $2 \
        WHERE reservation_id = $1 RETURNING exchange, asset) \
     UPDATE botai.balances b SET held = b.held - $3 \
     FROM committed WHERE b.exchange = committed.exchange AND b.asset = committed.asset AND $3 > 0",
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
    update_balance(exchange, asset, total, available, locked, as_of, None).or_raise("botai_update_balance")
}

/// `botai_update_balance` from a caller that knows how far `as_of`'s clock
/// can be from the database's: commits made more than `clock_skew` before
/// `as_of` retire (instead of `botai.balance_clock_skew`). An exchange
/// simulated on the database's own host, for one, has no skew: its coins
/// bought are botai's to sell as soon as a snapshot shows them.
#[pg_extern(volatile, security_definer, name = "botai_update_balance")]
#[search_path(pg_catalog, pg_temp)]
fn botai_update_balance_skew(
    exchange: Option<&str>,
    asset: Option<&str>,
    total: Option<AnyNumeric>,
    available: Option<AnyNumeric>,
    locked: Option<AnyNumeric>,
    as_of: Option<TimestampWithTimeZone>,
    clock_skew: Option<Interval>,
) -> bool {
    let skew = match required(clock_skew, "clock_skew") {
        Ok(s) if s.as_micros() >= 0 && s.as_micros() <= 3_600_000_000 => s.as_micros() as f64 / 1e6,
        Ok(_) => BotaiError::invalid("clock_skew", "must be between 0 and 1 hour").raise("botai_update_balance"),
        Err(e) => e.raise("botai_update_balance"),
    };
    if let Some(name) = exchange {
        let server = gucs::BALANCE_CLOCK_SKEW.get();
        if skew < server && !gucs::same_clock(name.trim()) {
            BotaiError::invalid(
                "clock_skew",
                format!(
                    "{skew} s is below the server's botai.balance_clock_skew ({server} s): only an exchange listed in \
                     botai.balance_same_clock_exchanges (set by the server's owner) reports on the database's clock"
                ),
            )
            .raise("botai_update_balance");
        }
    }
    update_balance(exchange, asset, total, available, locked, as_of, Some(skew)).or_raise("botai_update_balance")
}

fn update_balance(
    exchange: Option<&str>,
    asset: Option<&str>,
    total: Option<AnyNumeric>,
    available: Option<AnyNumeric>,
    locked: Option<AnyNumeric>,
    as_of: Option<TimestampWithTimeZone>,
    clock_skew: Option<f64>,
) -> Result<bool> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let total = amounts::arg("total", total, Sign::NonNegative)?;
    let available = amounts::arg("available", available, Sign::NonNegative)?;
    let locked = amounts::arg("locked", locked, Sign::NonNegative)?;
    if available > total {
        return Err(BotaiError::invalid("available", format!("{available} is more than total {total}")));
    }
    let as_of_value = required(as_of, "as_of")?;
    let as_of_time = clock::finite("as_of", as_of_value)?;
    if as_of_time > clock::to_chrono(clock::transaction_start()) + chrono::Duration::seconds(60) {
        return Err(BotaiError::invalid("as_of", "is more than 60 seconds in the future"));
    }
    if as_of_time < chrono::DateTime::UNIX_EPOCH {
        return Err(BotaiError::invalid("as_of", "is before 1970: no venue reported a balance then"));
    }
    writing(|client| {
        // Snapshots of one balance are stored one at a time (a lock of their
        // own, which reservers never take): the comparison below then sees
        // any snapshot stored concurrently, and an older one returns false
        // instead of failing.
        locks::xact_lock(locks::BALANCE_SNAPSHOT_NS, locks::name_key(&[exchange.as_str(), asset.as_str()]));
        // Retire first and take the balance row's lock last: readers see
        // both at commit (one transaction), and reservers wait for the row
        // only as long as the upsert and the commit take.
        let newer = NEWER_SNAPSHOT
            .one::<bool>(client, &[exchange.as_str().into(), asset.as_str().into(), as_of_value.into()])?
            .unwrap_or(true);
        if !newer {
            return Ok(false);
        }
        RETIRE_COMMITTED.run(
            client,
            &[
                exchange.as_str().into(),
                asset.as_str().into(),
                as_of_value.into(),
                clock_skew.unwrap_or_else(|| gucs::BALANCE_CLOCK_SKEW.get()).into(),
            ],
        )?;
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
        if !stored {
            // Only a REPEATABLE READ caller, whose snapshot predates a newer
            // one stored meanwhile, gets here: undo the retirement with the
            // rest of this call.
            return Err(BotaiError::InUse(format!(
                "a newer balance snapshot for {exchange}/{asset} was stored concurrently; this one is older"
            )));
        }
        Ok(true)
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
    let value = amounts::arg("amount", value, Sign::Positive)?;
    let free: Option<AnyNumeric> = reading(|client| {
        Ok::<_, BotaiError>(FREE.read_one(client, &[exchange.as_str().into(), asset.as_str().into()])?)
    })?;
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
    metadata: default!(Option<ClientJson>, "NULL"),
    ttl: default!(Option<Interval>, "'5 minutes'"),
) -> Option<Uuid> {
    reserve(exchange, asset, amount, purpose, metadata, ttl).or_raise("botai_reserve_balance")
}

fn reserve(
    exchange: Option<&str>,
    asset: Option<&str>,
    value: Option<AnyNumeric>,
    purpose: Option<&str>,
    metadata: Option<ClientJson>,
    ttl: Option<Interval>,
) -> Result<Option<Uuid>> {
    let metadata = json::arg(metadata, "metadata")?;
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let value = amounts::arg("amount", value, Sign::Positive)?;
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
    let needed = value.clone() * (AnyNumeric::from(1) + AnyNumeric::try_from(margin()).unwrap_or_else(|_| 0.into()));
    let id = Uuid::from_bytes(*uuid::Uuid::now_v7().as_bytes());
    writing(|client| {
        let fast = RESERVE_FAST.run(
            client,
            &[
                exchange.as_str().into(),
                asset.as_str().into(),
                value.clone().into(),
                purpose.into(),
                metadata.as_ref().map(|JsonB(m)| JsonB(m.clone())).into(),
                ttl.into(),
                needed.clone().into(),
                id.into(),
            ],
        )?;
        if !fast.is_empty() {
            return Ok(fast.first().get_one::<Uuid>()?);
        }
        let key = [exchange.as_str().into(), asset.as_str().into()];
        let locked = LOCK_BALANCE.run(client, &key)?;
        if locked.is_empty() {
            return Err(BotaiError::NotFound(format!(
                "no balance snapshot for {exchange}/{asset}: call botai_update_balance first"
            )));
        }
        let row = locked.first();
        let available = row.get::<AnyNumeric>(1)?.unwrap_or_else(|| 0.into());
        let mut held = row.get::<AnyNumeric>(2)?.unwrap_or_else(|| 0.into());
        let lapsed_due = row.get::<bool>(3)?.unwrap_or(true);
        let pending = row.get::<bool>(4)?.unwrap_or(true);
        let mark = row.get::<i64>(5)?.unwrap_or(0);
        let fold = |client: &mut pgrx::spi::SpiClient<'_>, limit: Option<i64>, mark: i64| -> Result<AnyNumeric> {
            let args = [exchange.as_str().into(), asset.as_str().into(), limit.into(), mark.into(), FOLD_MARGIN.into()];
            Ok(FOLD.one::<AnyNumeric>(client, &args)?.unwrap_or_else(|| 0.into()))
        };
        // Recent retirements and expiries, a batch at a time; everything
        // only when the funds would otherwise look short.
        if pending || lapsed_due {
            held = fold(client, Some(FOLD_BATCH), mark)?;
        }
        if available.clone() - held.clone() < needed {
            held = fold(client, None, 0)?;
            if available - held < needed {
                return Ok(None);
            }
        }
        let placed = PLACE.one::<Uuid>(
            client,
            &[
                exchange.as_str().into(),
                asset.as_str().into(),
                value.into(),
                purpose.into(),
                metadata.into(),
                ttl.into(),
                id.into(),
            ],
        )?;
        Ok(placed)
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
    writing(|client| {
        if RELEASE.one::<bool>(client, &[id.into()])?.unwrap_or(false) {
            return Ok(true);
        }
        // Not released: unknown (an error), already closed, committed, or
        // held past its expiry (recorded as expired now).
        let state = state(client, id)?;
        if state.expired_by_time {
            MARK_EXPIRED.run(client, &[id.into(), state.counted.into()])?;
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
    /// What it contributes to the balance row's `held`.
    counted: AnyNumeric,
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
    let counted = row.get::<AnyNumeric>(4)?.unwrap_or_else(|| 0.into());
    let expired_by_time = past_expiry && status.on(ReservationEvent::Expire).is_some();
    Ok(State { status, expired_by_time, amount, counted })
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
    let used = amounts::optional("amount", used, Sign::Positive)?;
    writing(|client| {
        let state = state(client, id)?;
        if state.expired_by_time {
            // Its time ran out before the order was confirmed: it no longer
            // holds funds and is not revived.
            MARK_EXPIRED.run(client, &[id.into(), state.counted.into()])?;
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
        let freed = state.counted - used.clone();
        COMMIT.run(client, &[id.into(), used.into(), freed.into()])?;
        Ok(true)
    })
}
