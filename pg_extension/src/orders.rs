//! Orders: which trading engine handles which accepted signal, and what came
//! of it, recorded durably.
//!
//! Each accepted signal gets at most one row in botai.orders (unique on
//! signal_id): `botai_order_claim` makes exactly one of any number of
//! engines the owner; a claim whose engine's worker slot is gone (the engine
//! died) can be taken over, and the new owner finds out at the exchange
//! whether the order was already sent, by its client order id, which derives
//! from the signal's fingerprint and so is the same on every attempt.

use botai_core::names;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB};

use crate::amounts;
use crate::json::{self, ClientJson};
use crate::locks;

use crate::error::{required, BotaiError, OrRaise, Result};
use crate::statements::{reading, writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "sql/orders.sql",
    name = "orders_sql",
    requires = [botai_order_claim, botai_order_claim_for, botai_order_finish, botai_unhandled_signals]
);

/// Outcomes an engine records (`claimed` is the state before).
const OUTCOMES: [&str; 5] = ["filled", "rejected", "failed", "skipped", "expired"];

/// True while the claiming engine still runs: the same worker id in the
/// same registration (epoch) holding its slot. An engine restarted under
/// the same id is a new registration and takes the old claims over.
macro_rules! claimer_alive {
    ($o:expr) => {
        concat!(
            "EXISTS (SELECT 1 FROM botai.workers_status w WHERE w.worker_id = ",
            $o,
            ".engine AND w.epoch = ",
            $o,
            ".engine_epoch AND w.state IN ('active', 'stale'))"
        )
    };
}

static CLAIM: Statement = Statement::new(
    "orders.claim",
    concat!(
        "INSERT INTO botai.orders AS o (signal_id, fingerprint, client_order_id, engine, engine_epoch, exchange, \
           symbol, side, signal_accepted_at) \
         SELECT s.signal_id, s.fingerprint, 'botai-' || s.fingerprint, $2, $4, coalesce(s.exchange, $3), s.symbol, \
                s.direction, s.accepted_at \
         FROM botai.signals s WHERE s.signal_id = $1 \
         ON CONFLICT ON CONSTRAINT orders_signal_id_key DO UPDATE \
           SET engine = EXCLUDED.engine, engine_epoch = EXCLUDED.engine_epoch, attempt = o.attempt + 1, \
               claimed_at = now() \
           WHERE o.status = 'claimed' \
             AND ((o.engine = EXCLUDED.engine AND o.engine_epoch = EXCLUDED.engine_epoch) OR NOT ",
        claimer_alive!("o"),
        ") RETURNING o.order_id, o.client_order_id, o.attempt, o.exchange"
    ),
);
/// An order the claim cannot take: finished, or claimed by another live
/// engine. Read without locking the row, so an engine meeting another's
/// order does not lock it (and wait on, or deadlock with, that engine's
/// reservation or settlement); a claim it could take goes on to CLAIM.
static TAKEN: Statement = Statement::new(
    "orders.taken",
    concat!(
        "SELECT EXISTS (SELECT 1 FROM botai.orders o WHERE o.signal_id = $1 AND (o.status <> 'claimed' \
           OR (NOT (o.engine = $2 AND o.engine_epoch = $3) AND ",
        claimer_alive!("o"),
        ")))"
    ),
);
/// The epoch of the engine's current registration: only a registered
/// engine claims (its claims are made on pooled connections, not on the
/// one holding its slot). A plain row lookup: liveness is checked only
/// when a claim is taken over.
static ENGINE_EPOCH: Statement = Statement::new(
    "orders.engine_epoch",
    "SELECT epoch FROM botai.workers WHERE worker_id = $1 AND unregistered_at IS NULL",
);
static SIGNAL: Statement = Statement::new(
    "orders.signal",
    "SELECT symbol, direction, strategy, strength, payload, signal_ts, accepted_at, exchange \
     FROM botai.signals WHERE signal_id = $1",
);
static FINISH: Statement = Statement::new(
    "orders.finish",
    "UPDATE botai.orders SET status = $3, finished_at = now(), \
       qty = ($4->>'qty')::numeric, price = ($4->>'price')::numeric, notional = ($4->>'notional')::numeric, \
       fee = ($4->>'fee')::numeric, exchange_order_id = $4->>'exchange_order_id', \
       ret_code = ($4->>'ret_code')::integer, message = $4->>'message', \
       reservation_id = coalesce(($4->>'reservation_id')::uuid, reservation_id), details = $4, \
       fee_asset = $4->>'fee_asset', fee_quote = ($4->>'fee_quote')::numeric \
     WHERE order_id = $1 AND engine = $2 AND status = 'claimed' \
     RETURNING order_id, exchange, symbol, side, coalesce(($4->>'net_qty')::numeric, qty), price, \
               coalesce(fee_quote, 0)",
);
static ORDER_EXISTS: Statement =
    Statement::new("orders.exists", "SELECT order_id FROM botai.orders WHERE order_id = $1");
/// Signals without an order (an anti-join on the orders' unique key), and
/// claims whose engine registration is gone (the few claimed orders,
/// checked against the live registrations read once).
static UNHANDLED: Statement = Statement::new(
    "orders.unhandled",
    "WITH live AS MATERIALIZED ( \
       SELECT worker_id, epoch FROM botai.workers_status WHERE state IN ('active', 'stale')) \
     SELECT signal_id FROM ( \
       SELECT s.signal_id FROM botai.signals s \
       WHERE s.accepted_at > now() - $1 \
         AND NOT EXISTS (SELECT 1 FROM botai.orders o WHERE o.signal_id = s.signal_id) \
       UNION \
       SELECT o.signal_id FROM botai.orders o \
       WHERE o.status = 'claimed' AND o.signal_accepted_at > now() - $1 \
         AND NOT EXISTS (SELECT 1 FROM live WHERE live.worker_id = o.engine AND live.epoch = o.engine_epoch)) u \
     ORDER BY signal_id LIMIT $2",
);

/// Makes the calling engine the owner of the signal's order. One row when
/// this engine now owns it (a new claim, its own earlier claim, or the claim
/// of an engine that died), none when another live engine owns it or the
/// signal was already handled. `engine` is the engine's worker id.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // pgrx reads the column names from the tuple written out here
fn botai_order_claim(
    signal_id: Option<i64>,
    engine: Option<&str>,
    exchange: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(order_id, i64),
        name!(client_order_id, String),
        name!(attempt, i32),
        name!(exchange, String),
        name!(symbol, String),
        name!(direction, String),
        name!(strategy, String),
        name!(strength, Option<f64>),
        name!(payload, JsonB),
        name!(signal_ts, pgrx::datum::TimestampWithTimeZone),
        name!(accepted_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    TableIterator::new(claim(signal_id, engine, exchange, None).or_raise("botai_order_claim"))
}

/// `botai_order_claim` for an engine that trades only `symbols` (and only
/// its `exchange`): a signal for another symbol or exchange is left
/// unclaimed, for an engine that trades it.
#[pg_extern(volatile, security_definer, name = "botai_order_claim")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn botai_order_claim_for(
    signal_id: Option<i64>,
    engine: Option<&str>,
    exchange: Option<&str>,
    symbols: Option<Vec<Option<String>>>,
) -> TableIterator<
    'static,
    (
        name!(order_id, i64),
        name!(client_order_id, String),
        name!(attempt, i32),
        name!(exchange, String),
        name!(symbol, String),
        name!(direction, String),
        name!(strategy, String),
        name!(strength, Option<f64>),
        name!(payload, JsonB),
        name!(signal_ts, pgrx::datum::TimestampWithTimeZone),
        name!(accepted_at, pgrx::datum::TimestampWithTimeZone),
    ),
> {
    let symbols = match required(symbols, "symbols") {
        Ok(list) => list.into_iter().flatten().collect::<Vec<_>>(),
        Err(e) => e.raise("botai_order_claim"),
    };
    TableIterator::new(claim(signal_id, engine, exchange, Some(symbols)).or_raise("botai_order_claim"))
}

#[allow(clippy::type_complexity)]
fn claim(
    signal_id: Option<i64>,
    engine: Option<&str>,
    exchange: Option<&str>,
    symbols: Option<Vec<String>>,
) -> Result<
    Option<(
        i64,
        String,
        i32,
        String,
        String,
        String,
        String,
        Option<f64>,
        JsonB,
        pgrx::datum::TimestampWithTimeZone,
        pgrx::datum::TimestampWithTimeZone,
    )>,
> {
    let signal_id = required(signal_id, "signal_id")?;
    let engine = names::name("engine", required(engine, "engine")?)?;
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    crate::roles::trading_exchange(&exchange)?;
    writing(|client| {
        let signal = SIGNAL.run(client, &[signal_id.into()])?;
        if signal.is_empty() {
            return Err(BotaiError::NotFound(format!("no signal with signal_id {signal_id}")));
        }
        let s = signal.first();
        let for_other_exchange = s.get::<String>(8)?.is_some_and(|e| e.trim().to_lowercase() != exchange);
        let symbol = s.get::<String>(1)?.unwrap_or_default();
        if for_other_exchange || symbols.as_ref().is_some_and(|list| !list.contains(&symbol)) {
            // Another engine's signal: left for it, untouched.
            return Ok(None);
        }
        let details = (
            s.get::<String>(1)?.unwrap_or_default(),
            s.get::<String>(2)?.unwrap_or_default(),
            s.get::<String>(3)?.unwrap_or_default(),
            s.get::<f64>(4)?,
            s.get::<JsonB>(5)?.unwrap_or(JsonB(serde_json::Value::Null)),
            s.get::<pgrx::datum::TimestampWithTimeZone>(6)?,
            s.get::<pgrx::datum::TimestampWithTimeZone>(7)?,
        );
        let Some(epoch) = ENGINE_EPOCH.one::<i64>(client, &[engine.into()])? else {
            return Err(BotaiError::WrongState(format!(
                "engine \"{engine}\" is not a registered worker (botai_register_worker first)"
            )));
        };
        // Engines that claim one signal at once wait for each other here:
        // INSERT … ON CONFLICT settles a race on its arbiter (signal_id)
        // only, and the concurrent insert's client_order_id, unique too,
        // would otherwise end the loser in a unique violation (23505, seen
        // with three engines woken by one notification). After the wait the
        // loser sees the winner's row and takes the conflict path.
        locks::xact_lock(locks::ORDER_CLAIM_NS, ((signal_id as u64) ^ ((signal_id as u64) >> 32)) as u32);
        if TAKEN.one::<bool>(client, &[signal_id.into(), engine.into(), epoch.into()])?.unwrap_or(false) {
            return Ok(None);
        }
        let claimed = CLAIM.run(client, &[signal_id.into(), engine.into(), exchange.as_str().into(), epoch.into()])?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let c = claimed.first();
        let (Some(order_id), Some(client_order_id), Some(attempt), Some(exchange)) =
            (c.get::<i64>(1)?, c.get::<String>(2)?, c.get::<i32>(3)?, c.get::<String>(4)?)
        else {
            return Ok(None);
        };
        let (symbol, direction, strategy, strength, payload, signal_ts, accepted_at) = details;
        Ok(Some((
            order_id,
            client_order_id,
            attempt,
            exchange,
            symbol,
            direction,
            strategy,
            strength,
            payload,
            signal_ts.expect("NOT NULL"),
            accepted_at.expect("NOT NULL"),
        )))
    })
}

/// Records what came of a claimed order: `status` is filled, rejected,
/// failed, skipped or expired; `details` may carry qty, price, notional,
/// fee, fee_asset, fee_quote (the fee in the quote currency), net_qty (what
/// the position changed by, when not qty: a spot BUY whose fee was taken
/// in the coin bought),
/// exchange_order_id, ret_code, message, reservation_id. A fill (filled,
/// qty and price) moves the position book (botai.positions). Only the
/// engine that holds the claim can finish it; false otherwise (another
/// engine took it over, or it is already finished).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_order_finish(
    order_id: Option<i64>,
    engine: Option<&str>,
    status: Option<&str>,
    details: default!(Option<ClientJson>, "'{}'"),
) -> bool {
    finish(order_id, engine, status, details).or_raise("botai_order_finish")
}

fn finish(
    order_id: Option<i64>,
    engine: Option<&str>,
    status: Option<&str>,
    details: Option<ClientJson>,
) -> Result<bool> {
    let details = json::arg(details, "details")?;
    let order_id = required(order_id, "order_id")?;
    let engine = names::name("engine", required(engine, "engine")?)?;
    let status = required(status, "status")?.trim().to_lowercase();
    if !OUTCOMES.contains(&status.as_str()) {
        return Err(BotaiError::invalid("status", format!("\"{status}\" is not one of {}", OUTCOMES.join(", "))));
    }
    let details = details.map(|j| j.0).unwrap_or_else(|| serde_json::json!({}));
    let Some(object) = details.as_object() else {
        return Err(BotaiError::invalid("details", "must be a JSON object"));
    };
    // The amounts the statement below stores (and the position book takes)
    // must be botai's amounts: a forged 1e200 fill would otherwise reach
    // every reader and rule.
    for key in ["qty", "net_qty", "price", "notional", "fee", "fee_quote"] {
        if let Some(v) = object.get(key) {
            amounts::json(&format!("details.{key}"), v)?;
        }
    }
    // The other typed keys the statement reads: an integer code, a uuid.
    match object.get("ret_code") {
        None | Some(serde_json::Value::Null) => {}
        Some(v) => {
            let code = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            if code.is_none_or(|c| i32::try_from(c).is_err()) {
                return Err(BotaiError::invalid(
                    "details",
                    format!(
                        "ret_code must be a whole number of 32 bits, not {}",
                        botai_core::amount::quoted(&v.to_string())
                    ),
                ));
            }
        }
    }
    match object.get("reservation_id") {
        None | Some(serde_json::Value::Null) => {}
        Some(v) => {
            if v.as_str().is_none_or(|s| uuid::Uuid::parse_str(s).is_err()) {
                return Err(BotaiError::invalid(
                    "details",
                    format!("reservation_id must be a uuid, not {}", botai_core::amount::quoted(&v.to_string())),
                ));
            }
        }
    }
    writing(|client| {
        let done =
            FINISH.run(client, &[order_id.into(), engine.into(), status.as_str().into(), JsonB(details).into()])?;
        if !done.is_empty() {
            // A fill moves the position book in the same transaction.
            let d = done.first();
            let (qty, price) = (d.get::<AnyNumeric>(5)?, d.get::<AnyNumeric>(6)?);
            let zero = AnyNumeric::from(0);
            if let (true, Some(qty), Some(price)) = (status == "filled", qty, price) {
                if qty > zero && price > zero {
                    let (exchange, symbol, side) = (
                        d.get::<String>(2)?.unwrap_or_default(),
                        d.get::<String>(3)?.unwrap_or_default(),
                        d.get::<String>(4)?.unwrap_or_default(),
                    );
                    let fee = d.get::<AnyNumeric>(7)?.unwrap_or(zero);
                    crate::risk::apply_fill(client, order_id, &exchange, &symbol, &side, qty, price, fee)?;
                }
            }
            return Ok(true);
        }
        if ORDER_EXISTS.one::<i64>(client, &[order_id.into()])?.is_none() {
            return Err(BotaiError::NotFound(format!("no order with order_id {order_id}")));
        }
        Ok(false)
    })
}

/// Accepted signals of the last `lookback` without an order, or whose claim
/// belongs to an engine that died: what an engine catches up on when it
/// starts.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_unhandled_signals(
    lookback: default!(Option<pgrx::datum::Interval>, "'1 hour'"),
    max_rows: default!(Option<i32>, 1000),
) -> SetOfIterator<'static, i64> {
    SetOfIterator::new(unhandled(lookback, max_rows).or_raise("botai_unhandled_signals"))
}

/// The longest look back: ten years of signals.
const MAX_LOOKBACK_MICROS: i128 = 10 * 366 * 24 * 3600 * 1_000_000;

fn unhandled(lookback: Option<pgrx::datum::Interval>, max_rows: Option<i32>) -> Result<Vec<i64>> {
    let lookback = required(lookback, "lookback")?;
    if lookback.as_micros() <= 0 || lookback.as_micros() > MAX_LOOKBACK_MICROS {
        return Err(BotaiError::invalid("lookback", "must be longer than zero and at most ten years"));
    }
    let max_rows = required(max_rows, "max_rows")?;
    if max_rows <= 0 {
        return Err(BotaiError::invalid("max_rows", format!("must be positive (got {max_rows})")));
    }
    reading(|client| {
        let rows = UNHANDLED.read(client, &[lookback.into(), i64::from(max_rows).into()])?;
        let mut ids = Vec::new();
        for r in rows {
            if let Some(id) = r.get::<i64>(1)? {
                ids.push(id);
            }
        }
        Ok(ids)
    })
}
