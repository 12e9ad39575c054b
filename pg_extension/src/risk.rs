//! The sixth guarantee: no order beyond the risk limits, and a kill switch.
//!
//! - `botai_reserve_order` is the one call an engine makes before sending an
//!   order: it checks the trading state (halted, reduce-only) and the limits
//!   of botai.risk_limits against the position book and every order still
//!   open, books the rate slot and reserves the funds — in one transaction,
//!   serialized per exchange account, so however many engines submit at
//!   once no limit is ever exceeded. A refusal is a return value naming the
//!   limit.
//! - `botai_halt` / `botai_resume`: the kill switch. A halt takes effect for
//!   every reservation at its commit, and it commits only after every order
//!   already permitted was answered by the venue: each engine holds the
//!   send gate in share mode (`botai_send_permit` … `botai_send_done`) from
//!   the permit of an order until the venue's answer, and the halt takes the
//!   gate exclusively. While a halt waits, new permits are refused.
//! - Halts of alert rules (action `halt` or `reduce_only`, daily_loss as
//!   seeded): the alert itself holds trading halted, from the round that
//!   opens it, whatever the operator's switch (botai.trading_switch) says
//!   and whoever holds that row's lock, and past its condition, until an
//!   operator acknowledges it (`botai_resume` … acknowledge, recorded in
//!   botai.alert_acknowledgements): botai.trading_state is the strictest of
//!   the switch and those alerts.
//! - The position book (botai.positions) follows every recorded fill
//!   (`apply_fill`, called by `botai_order_finish`).

use botai_core::names;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};

use crate::amounts::{self, Sign};
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::locks;
use crate::statements::{writing, Statement};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "sql/risk.sql",
    name = "risk_sql",
    requires = [
        botai_halt,
        botai_mark_price,
        botai_position_adopt,
        botai_position_reconcile,
        botai_reserve_order,
        botai_resume,
        botai_resume_acknowledging,
        botai_send_done,
        botai_send_permit,
        botai_venue_trade
    ]
);

/// The trading state in force (botai.trading_state): the operator's switch
/// and every open, unacknowledged alert of a rule whose action halts.
static STATE: Statement = Statement::new("risk.state", "SELECT mode, coalesce(reason, '') FROM botai.trading_state");
/// The state, and the order a permit is asked for (status, reserved?).
static PERMIT_STATE: Statement = Statement::new(
    "risk.permit_state",
    "SELECT s.mode, coalesce(s.reason, ''), o.status, o.planned_qty IS NOT NULL \
     FROM botai.trading_state s LEFT JOIN botai.orders o ON o.order_id = $1",
);
static SET_STATE: Statement = Statement::new(
    "risk.set_state",
    "WITH old AS (SELECT mode FROM botai.trading_switch FOR UPDATE) \
     UPDATE botai.trading_switch t SET mode = $1, reason = $2, changed_by = session_user, changed_at = now() \
     FROM old RETURNING old.mode, \
       pg_catalog.pg_notify('botai_trading_state', \
         jsonb_build_object('mode', $1, 'reason', $2, 'changed_by', session_user)::text) IS NULL",
);
/// Records an operator's acknowledgement of the alerts $1 that exist and
/// nobody acknowledged yet, with who and why (a row of its own: the alert,
/// which the monitor updates every round, is not locked).
static ACKNOWLEDGE: Statement = Statement::new(
    "risk.acknowledge",
    "INSERT INTO botai.alert_acknowledgements (alert_id, acknowledged_by, reason) \
     SELECT a.alert_id, session_user, $2 FROM botai.alerts a WHERE a.alert_id = ANY ($1) \
     ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
);
/// The alerts of rules that halt trading (action halt or reduce_only) that
/// nobody acknowledged, open or resolved: each holds trading halted,
/// whatever the switch says. (alert_id, rule, subject, action, status).
/// Read, not locked: an acknowledgement that races a new alert leaves the
/// new one holding trading, which is the safe side.
static HALTING_ALERTS: Statement = Statement::new(
    "risk.halting_alerts",
    "SELECT a.alert_id, a.rule, a.subject, a.action, a.status FROM botai.alerts a \
     WHERE a.action IN ('halt', 'reduce_only') \
       AND NOT EXISTS (SELECT 1 FROM botai.alert_acknowledgements k WHERE k.alert_id = a.alert_id) \
     ORDER BY a.alert_id",
);
/// The sessions holding the send gate (for a halt that could not wait them out).
static GATE_HOLDERS: Statement = Statement::new(
    "risk.gate_holders",
    "SELECT coalesce(string_agg(pid::text, ', ' ORDER BY pid), '') FROM pg_catalog.pg_locks \
     WHERE locktype = 'userlock' AND classid = $1::oid AND granted AND pid <> pg_catalog.pg_backend_pid()",
);
static ORDER: Statement = Statement::new(
    "risk.order",
    "SELECT exchange, symbol, side, client_order_id, signal_id FROM botai.orders \
     WHERE order_id = $1 AND engine = $2 AND status = 'claimed' FOR UPDATE",
);
static ORDER_EXISTS: Statement =
    Statement::new("risk.order_exists", "SELECT status FROM botai.orders WHERE order_id = $1");
static HAS_LIMITS: Statement =
    Statement::new("risk.has_limits", "SELECT EXISTS (SELECT 1 FROM botai.risk_limits WHERE exchange = $1)");
/// The symbol's limits (its own row, else the exchange's '*' row) and the
/// account's, beside the exposure they are checked against: the position,
/// what the orders still open will add (signed), their count, the gross
/// exposure of the other symbols and the day's net P&L.
static EXPOSURE: Statement = Statement::new(
    "risk.exposure",
    "WITH lim AS (SELECT \
        coalesce(s.max_position_notional, a.max_position_notional) AS max_position_notional, \
        coalesce(s.max_order_notional, a.max_order_notional) AS max_order_notional, \
        coalesce(s.max_open_orders, a.max_open_orders) AS max_open_orders, \
        a.max_gross_exposure, a.max_daily_loss \
      FROM (SELECT 1) one \
      LEFT JOIN botai.risk_limits s ON s.exchange = $1 AND s.symbol = $2 \
      LEFT JOIN botai.risk_limits a ON a.exchange = $1 AND a.symbol = '*'), \
     open AS (SELECT symbol, sum(pending_qty) AS pending, count(*) AS n, max(planned_price) AS price \
              FROM botai.pending_orders WHERE exchange = $1 AND order_id <> $3 GROUP BY symbol), \
     book AS (SELECT coalesce(p.symbol, o.symbol) AS symbol, coalesce(p.qty, 0) AS qty, \
                     coalesce(o.pending, 0) AS pending, coalesce(o.n, 0) AS n, \
                     coalesce(p.last_price, o.price) AS price \
              FROM (SELECT * FROM botai.positions WHERE exchange = $1) p \
              FULL JOIN open o ON o.symbol = p.symbol) \
     SELECT lim.*, \
            coalesce((SELECT qty FROM book WHERE symbol = $2), 0), \
            coalesce((SELECT pending FROM book WHERE symbol = $2), 0), \
            coalesce((SELECT n FROM book WHERE symbol = $2), 0)::bigint, \
            coalesce((SELECT sum(abs(qty + pending) * coalesce(price, 0)) FROM book WHERE symbol <> $2), 0), \
            coalesce((SELECT net_pnl FROM botai.pnl_today WHERE exchange = $1), 0) \
     FROM lim",
);
static RESERVE: Statement = Statement::new(
    "risk.reserve",
    "SELECT public.botai_reserve_balance($1, $2, $3, $4, jsonb_build_object('order_id', $5::bigint, \
       'signal_id', $6::bigint), $7 + make_interval(secs => $8))",
);
/// The safety margin of botai_reserve_balance covers what a price can do
/// to an amount; the coins an order sells are known to the last unit.
static MARGIN_OFF: Statement = Statement::new(
    "risk.margin_off",
    "SELECT current_setting('botai.balance_safety_margin'), set_config('botai.balance_safety_margin', '0', true)",
);
static MARGIN_SET: Statement =
    Statement::new("risk.margin_set", "SELECT set_config('botai.balance_safety_margin', $1, true)");
static PLAN: Statement = Statement::new(
    "risk.plan",
    "UPDATE botai.orders SET planned_qty = $2, planned_price = $3, reservation_id = $4 WHERE order_id = $1",
);
/// A market price marks a position (never an order's own limit price).
static MARK_PRICE: Statement = Statement::new(
    "risk.mark_price",
    "UPDATE botai.positions SET last_price = $3 WHERE exchange = $1 AND symbol = $2 AND last_price IS DISTINCT FROM $3 \
     RETURNING true",
);
static PERMIT_ORDER: Statement = Statement::new(
    "risk.permit_order",
    "SELECT o.side, o.planned_qty, coalesce(p.qty, 0), \
            coalesce((SELECT sum(x.pending_qty) FROM botai.pending_orders x \
                      WHERE x.exchange = o.exchange AND x.symbol = o.symbol AND x.order_id <> o.order_id), 0) \
     FROM botai.orders o LEFT JOIN botai.positions p ON p.exchange = o.exchange AND p.symbol = o.symbol \
     WHERE o.order_id = $1",
);
pub(crate) static POSITION_ROW: Statement = Statement::new(
    "risk.position_row",
    "INSERT INTO botai.positions (exchange, symbol) VALUES ($1, $2) ON CONFLICT (exchange, symbol) DO NOTHING",
);
/// A fill of signed quantity $3 at price $4 (fee $5 in the quote currency):
/// a fill on the position's side moves the average entry; one against it
/// realises (price − entry) on the part it closes, and a fill that flips
/// the position opens the rest at its price. Returns the realised P&L.
pub(crate) static POSITION_FILL: Statement = Statement::new(
    "risk.position_fill",
    "WITH old AS (SELECT qty, avg_entry FROM botai.positions WHERE exchange = $1 AND symbol = $2 FOR UPDATE) \
     UPDATE botai.positions p SET \
       qty = old.qty + $3, \
       avg_entry = CASE WHEN old.qty + $3 = 0 THEN NULL \
                        WHEN sign(old.qty) * sign($3) >= 0 \
                          THEN (abs(old.qty) * coalesce(old.avg_entry, $4) + abs($3) * $4) / (abs(old.qty) + abs($3)) \
                        WHEN abs($3) > abs(old.qty) THEN $4 \
                        ELSE old.avg_entry END, \
       realized_pnl = p.realized_pnl + CASE WHEN sign(old.qty) * sign($3) < 0 \
                        THEN least(abs(old.qty), abs($3)) * ($4 - coalesce(old.avg_entry, $4)) * sign(old.qty) \
                        ELSE 0 END, \
       fees = p.fees + $5, last_price = $4, trades = p.trades + 1, \
       opened_at = CASE WHEN old.qty = 0 OR sign(old.qty + $3) <> sign(old.qty) THEN now() ELSE p.opened_at END, \
       updated_at = now() \
     FROM old WHERE p.exchange = $1 AND p.symbol = $2 \
     RETURNING CASE WHEN sign(old.qty) * sign($3) < 0 \
                 THEN least(abs(old.qty), abs($3)) * ($4 - coalesce(old.avg_entry, $4)) * sign(old.qty) ELSE 0 END",
);
static ORDER_PNL: Statement =
    Statement::new("risk.order_pnl", "UPDATE botai.orders SET realized_pnl = $2 WHERE order_id = $1");

fn reason_arg(reason: Option<&str>) -> Result<String> {
    let reason = required(reason, "reason")?.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(BotaiError::invalid("reason", "must say why, in 1 to 500 characters"));
    }
    Ok(reason.to_owned())
}

/// The kill switch: no engine sends a new order after this commits. Waits
/// (up to botai.halt_wait) until every order already permitted was answered by its
/// venue, so nothing reaches a venue after the commit; `mode` is 'halted'
/// (nothing is sent) or 'reduce_only' (only orders that shrink a position).
/// Returns what it did, in one line.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_halt(reason: Option<&str>, mode: default!(Option<&str>, "'halted'")) -> String {
    halt(reason, mode).or_raise("botai_halt")
}

fn halt(reason: Option<&str>, mode: Option<&str>) -> Result<String> {
    let reason = reason_arg(reason)?;
    let mode = required(mode, "mode")?.trim().to_lowercase();
    if mode != "halted" && mode != "reduce_only" {
        return Err(BotaiError::invalid("mode", format!("\"{mode}\" is neither halted nor reduce_only")));
    }
    // Halts queue here; from now on no permit is granted.
    locks::xact_lock(locks::HALT_INTENT_NS, 0);
    writing(|client| {
        let was = SET_STATE.one::<String>(client, &[mode.as_str().into(), reason.as_str().into()])?;
        // How long to wait for the sends already permitted to be answered
        // before committing anyway (a kill switch must never fail); the
        // engines answer within their HTTP timeout.
        let wait_micros = i64::from(gucs::HALT_WAIT.get()) * 1_000_000;
        let started = unsafe { pg_sys::GetCurrentTimestamp() };
        let mut waited = false;
        while !locks::try_xact_lock(locks::SEND_GATE_NS, 0) {
            if unsafe { pg_sys::GetCurrentTimestamp() } - started >= wait_micros {
                let holders = GATE_HOLDERS.one::<String>(client, &[i64::from(locks::SEND_GATE_NS).into()])?;
                pgrx::warning!(
                    "botai_halt: sessions {} still hold orders in flight after botai.halt_wait ({} s); \
                     halting without waiting for them",
                    holders.unwrap_or_default(),
                    gucs::HALT_WAIT.get()
                );
                return Ok(format!(
                    "{mode} (was {}); orders still in flight were not waited for",
                    was.unwrap_or_default()
                ));
            }
            waited = true;
            unsafe {
                pg_sys::pg_usleep(2_000);
            }
            pgrx::check_for_interrupts!();
        }
        let waited = if waited { "; the orders in flight were answered first" } else { "" };
        Ok(format!("{mode} (was {}){waited}", was.unwrap_or_default()))
    })
}

/// Lifts a halt or the reduce-only state: engines trade again. 0.1.0 to
/// 0.6.0 declared it with one argument; their install scripts still name
/// this symbol, so it stays (without SQL of its own since 0.7.0).
#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn botai_resume(reason: default!(Option<&str>, "'resumed by an operator'")) -> String {
    resume(reason, None).or_raise("botai_resume")
}

/// Lifts a halt or the reduce-only state. A halt that an alert rule
/// imposed holds while its alert is open: resuming then needs the
/// operator's explicit acknowledgement of each such alert
/// (`acknowledge`, their alert ids), recorded on the alert with who, when
/// and why. Only the operator role may call it.
#[pg_extern(volatile, security_definer, name = "botai_resume")]
#[search_path(pg_catalog, pg_temp)]
fn botai_resume_acknowledging(
    reason: default!(Option<&str>, "'resumed by an operator'"),
    acknowledge: default!(Option<Vec<Option<i64>>>, "NULL"),
) -> String {
    let acknowledge = acknowledge.map(|ids| ids.into_iter().flatten().collect::<Vec<_>>());
    resume(reason, acknowledge).or_raise("botai_resume")
}

fn resume(reason: Option<&str>, acknowledge: Option<Vec<i64>>) -> Result<String> {
    let reason = reason_arg(reason)?;
    let acknowledge = acknowledge.unwrap_or_default();
    writing(|client| {
        let (was, _) = trading_state(client)?;
        let acknowledged = if acknowledge.is_empty() {
            0
        } else {
            ACKNOWLEDGE.run(client, &[acknowledge.clone().into(), reason.as_str().into()])?.len()
        };
        // What still holds trading after the acknowledgements of this call
        // (a fresh statement: it sees them).
        let holding = HALTING_ALERTS.run(client, &[])?;
        let mut unacknowledged = Vec::new();
        for r in holding {
            unacknowledged.push(format!(
                "alert {} (rule {} on {}, action {}, {})",
                r.get::<i64>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                botai_core::amount::quoted(&r.get::<String>(3)?.unwrap_or_default()),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
            ));
        }
        if !unacknowledged.is_empty() {
            // Raised: the acknowledgements of this call are rolled back too.
            return Err(BotaiError::WrongState(format!(
                "trading is held by {} not acknowledged: acknowledge it to resume, e.g. SELECT botai_resume('why', \
                 acknowledge => ARRAY[<alert id>]) as an operator (or `botai resume REASON --acknowledge ID`)",
                unacknowledged.join(", ")
            )));
        }
        SET_STATE.run(client, &["active".into(), reason.as_str().into()])?;
        let acked = match acknowledged {
            0 => String::new(),
            n => format!("; {n} alert(s) acknowledged"),
        };
        Ok(format!("active (was {was}){acked}"))
    })
}

/// (mode, reason) of botai.trading_state.
fn trading_state(client: &mut pgrx::spi::SpiClient<'_>) -> Result<(String, String)> {
    let state = STATE.run(client, &[])?;
    if state.is_empty() {
        // The switch's one row deleted: nobody can say trading is allowed.
        return Ok(("halted".to_owned(), "botai.trading_switch has no row".to_owned()));
    }
    let r = state.first();
    Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default()))
}

/// Whether an order of signed quantity `signed` shrinks an exposure of
/// `exposure` without reversing it.
fn reduces(exposure: &AnyNumeric, signed: &AnyNumeric) -> bool {
    let zero = AnyNumeric::from(0);
    let after = exposure.clone() + signed.clone();
    *exposure != zero && (*exposure > zero) != (*signed > zero) && abs(&after) <= abs(exposure)
}

fn abs(n: &AnyNumeric) -> AnyNumeric {
    if *n < AnyNumeric::from(0) {
        AnyNumeric::from(0) - n.clone()
    } else {
        n.clone()
    }
}

fn signed(side: &str, qty: AnyNumeric) -> AnyNumeric {
    if side == "BUY" {
        qty
    } else {
        AnyNumeric::from(0) - qty
    }
}

/// Before sending a reserved order: NULL when it may go — the session then
/// holds a share of the send gate until `botai_send_done()`, which the
/// engine calls once the venue answered — or why not (trading halted, a
/// halt under way, reduce-only and the order does not reduce).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_send_permit(order_id: Option<i64>) -> Option<String> {
    permit(order_id).or_raise("botai_send_permit")
}

fn permit(order_id: Option<i64>) -> Result<Option<String>> {
    crate::standby::ensure_primary()?;
    let order_id = required(order_id, "order_id")?;
    // A halt holds its intent from its first statement to its commit.
    if !locks::try_share(locks::HALT_INTENT_NS, 0, false) {
        return Ok(Some("halting: an operator's halt is being committed".into()));
    }
    locks::release_share(locks::HALT_INTENT_NS, 0, false);
    if !locks::try_share(locks::SEND_GATE_NS, 0, true) {
        return Ok(Some("halting: an operator's halt is being committed".into()));
    }
    let verdict = writing(|client| {
        let rows = PERMIT_STATE.run(client, &[order_id.into()])?;
        if rows.is_empty() {
            return Ok(Some("halted: botai.trading_state has no row".into()));
        }
        let r = rows.first();
        let (mode, reason) = (r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default());
        let Some(status) = r.get::<String>(3)? else {
            return Err(BotaiError::NotFound(format!("no order with order_id {order_id}")));
        };
        if status != "claimed" {
            return Ok(Some(format!("order {order_id} is {status}: there is nothing to send")));
        }
        if !r.get::<bool>(4)?.unwrap_or(false) {
            return Err(BotaiError::WrongState(format!(
                "order {order_id} has no reservation (botai_reserve_order first)"
            )));
        }
        match mode.as_str() {
            "halted" => return Ok(Some(format!("halted: {reason}"))),
            "reduce_only" => {}
            _ => return Ok(None),
        }
        let rows = PERMIT_ORDER.run(client, &[order_id.into()])?;
        if rows.is_empty() {
            return Err(BotaiError::NotFound(format!("no order with order_id {order_id}")));
        }
        let r = rows.first();
        let side = r.get::<String>(1)?.unwrap_or_default();
        let Some(qty) = r.get::<AnyNumeric>(2)? else {
            return Err(BotaiError::WrongState(format!(
                "order {order_id} has no reservation (botai_reserve_order first)"
            )));
        };
        let exposure =
            r.get::<AnyNumeric>(3)?.unwrap_or_else(|| 0.into()) + r.get::<AnyNumeric>(4)?.unwrap_or_else(|| 0.into());
        if reduces(&exposure, &signed(&side, qty)) {
            Ok(None)
        } else {
            Ok(Some(format!("reduce_only: the order does not shrink the position ({reason})")))
        }
    });
    match verdict {
        Ok(None) => Ok(None),
        other => {
            locks::release_share(locks::SEND_GATE_NS, 0, true);
            other
        }
    }
}

/// The venue answered an order this session was permitted to send: gives
/// back its share of the send gate. False when the session held none.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_send_done() -> bool {
    locks::release_share(locks::SEND_GATE_NS, 0, true)
}

/// A market price of `symbol` (a ticker, the last trade, the venue's mark)
/// for the position book's unrealised P&L and exposure: the only way a
/// price other than a fill's marks a position. An order's own price never
/// does (a limit SELL far above the market would show a gain that is not
/// there). True when a position of the symbol was marked.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_mark_price(exchange: Option<&str>, symbol: Option<&str>, price: Option<AnyNumeric>) -> bool {
    mark_price(exchange, symbol, price).or_raise("botai_mark_price")
}

fn mark_price(exchange: Option<&str>, symbol: Option<&str>, price: Option<AnyNumeric>) -> Result<bool> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let price = amounts::arg("price", price, Sign::Positive)?;
    writing(|client| {
        Ok(MARK_PRICE.one::<bool>(client, &[exchange.as_str().into(), symbol.into(), price.into()])?.unwrap_or(false))
    })
}

/// Reserves an order: checks the trading state and the risk limits,
/// reserves `amount` of `asset` (for `ttl` past the furthest moment a
/// booking can have) and books the rate slot of (exchange, `endpoint`),
/// all in one transaction, serialized
/// with every other reservation of the same exchange account. One row:
/// the reservation and the booked moment, or `refused` naming the limit or
/// state that stops it (nothing is reserved then).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn botai_reserve_order(
    order_id: Option<i64>,
    engine: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
    asset: Option<&str>,
    amount: Option<AnyNumeric>,
    ttl: default!(Option<pgrx::datum::Interval>, "'5 minutes'"),
    endpoint: default!(Option<&str>, "'order'"),
    target: default!(Option<AnyNumeric>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(reservation_id, Option<Uuid>),
        name!(booked_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(refused, Option<String>),
    ),
> {
    let row = reserve_order(order_id, engine, qty, price, asset, amount, ttl, endpoint, target)
        .or_raise("botai_reserve_order");
    TableIterator::once(row)
}

type Reserved = (Option<Uuid>, Option<pgrx::datum::TimestampWithTimeZone>, Option<String>);

#[allow(clippy::too_many_arguments)]
fn reserve_order(
    order_id: Option<i64>,
    engine: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
    asset: Option<&str>,
    amount: Option<AnyNumeric>,
    ttl: Option<pgrx::datum::Interval>,
    endpoint: Option<&str>,
    target: Option<AnyNumeric>,
) -> Result<Reserved> {
    let order_id = required(order_id, "order_id")?;
    let engine = names::name("engine", required(engine, "engine")?)?;
    let qty = amounts::arg("qty", qty, Sign::Positive)?;
    let price = amounts::arg("price", price, Sign::Positive)?;
    let asset = names::asset(required(asset, "asset")?)?;
    let amount = amounts::arg("amount", amount, Sign::Positive)?;
    let ttl = required(ttl, "ttl")?;
    let endpoint = names::name("endpoint", required(endpoint, "endpoint")?)?;
    let target = amounts::optional("target", target, Sign::Any)?;
    let refuse = |why: String| Ok((None, None, Some(why)));
    writing(|client| {
        let order = ORDER.run(client, &[order_id.into(), engine.into()])?;
        if order.is_empty() {
            return match ORDER_EXISTS.one::<String>(client, &[order_id.into()])? {
                None => Err(BotaiError::NotFound(format!("no order with order_id {order_id}"))),
                Some(status) => refuse(format!("not_owner: order {order_id} is {status}, not claimed by {engine}")),
            };
        }
        let o = order.first();
        let exchange = o.get::<String>(1)?.unwrap_or_default();
        crate::roles::trading_exchange(&exchange)?;
        let symbol = o.get::<String>(2)?.unwrap_or_default();
        let side = o.get::<String>(3)?.unwrap_or_default();
        let client_order_id = o.get::<String>(4)?.unwrap_or_default();
        let signal_id = o.get::<i64>(5)?.unwrap_or_default();
        let (mode, reason) = trading_state(client)?;
        if mode == "halted" {
            return refuse(format!("halted: {reason}"));
        }
        let limited = HAS_LIMITS.one::<bool>(client, &[exchange.as_str().into()])?.unwrap_or(false);
        if limited || mode == "reduce_only" || target.is_some() {
            // Every reservation of this account waits here for the one
            // before it to commit, then sees its order among the open ones.
            locks::xact_lock(locks::RISK_NS, locks::name_key(&[exchange.as_str()]));
            let rows = EXPOSURE.run(client, &[exchange.as_str().into(), symbol.as_str().into(), order_id.into()])?;
            let r = rows.first();
            let max_position = r.get::<AnyNumeric>(1)?;
            let max_order = r.get::<AnyNumeric>(2)?;
            let max_open = r.get::<i32>(3)?;
            let max_gross = r.get::<AnyNumeric>(4)?;
            let max_loss = r.get::<AnyNumeric>(5)?;
            let position = r.get::<AnyNumeric>(6)?.unwrap_or_else(|| 0.into());
            let pending = r.get::<AnyNumeric>(7)?.unwrap_or_else(|| 0.into());
            let open = r.get::<i64>(8)?.unwrap_or(0);
            let others_gross = r.get::<AnyNumeric>(9)?.unwrap_or_else(|| 0.into());
            let net_pnl = r.get::<AnyNumeric>(10)?.unwrap_or_else(|| 0.into());
            let exposure = position.clone() + pending.clone();
            let order_qty = signed(&side, qty.clone());
            let after = exposure.clone() + order_qty.clone();
            let shrinks = reduces(&exposure, &order_qty);
            let at = format!("{exchange}/{symbol}");
            if let Some(t) = &target {
                // The order may move the exposure toward the target, never past it.
                let passes = if side == "BUY" { after > *t } else { after < *t };
                if passes {
                    return refuse(format!(
                        "at_target: {at} exposure {exposure} (position {position}, open orders {pending}) and {side} {qty} \
                         would pass the target {t}"
                    ));
                }
            }
            if mode == "reduce_only" && !shrinks {
                return refuse(format!(
                    "reduce_only: {side} {qty} would not shrink the {at} position ({position}, {pending} pending): {reason}"
                ));
            }
            let notional = qty.clone() * price.clone();
            if let Some(max) = max_order.filter(|m| notional > *m) {
                return refuse(format!("max_order_notional: {at} order of {notional} exceeds {max}"));
            }
            if let Some(max) = max_open.filter(|m| open + 1 > i64::from(*m)) {
                return refuse(format!("max_open_orders: {at} already has {open} open orders (limit {max})"));
            }
            let after_notional = abs(&after) * price.clone();
            if let Some(max) = max_position.filter(|m| after_notional > *m && !shrinks) {
                return refuse(format!(
                    "max_position_notional: the {at} position would reach {after_notional} (limit {max})"
                ));
            }
            let gross = others_gross + after_notional;
            if let Some(max) = max_gross.filter(|m| gross > *m && !shrinks) {
                return refuse(format!(
                    "max_gross_exposure: {exchange} gross exposure would reach {gross} (limit {max})"
                ));
            }
            let loss = AnyNumeric::from(0) - net_pnl;
            if let Some(max) = max_loss.filter(|m| loss >= *m && !shrinks) {
                return refuse(format!("max_daily_loss: {exchange} has lost {loss} today (limit {max})"));
            }
        }
        // Funds first: a refused order must not spend a rate slot (slots
        // booked for orders that then find no funds crowd out the rest).
        // Held through the furthest wait a booking can have, and TTL after.
        let furthest_wait =
            f64::from(gucs::RATE_LIMIT_MAX_WAIT.get()) + f64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) / 1000.0;
        // Reserving the very quantity the order sells: no margin on top.
        let exact = amount == qty;
        let margin = if exact { MARGIN_OFF.one::<String>(client, &[])? } else { None };
        let reservation = RESERVE.one::<Uuid>(
            client,
            &[
                exchange.as_str().into(),
                asset.as_str().into(),
                amount.clone().into(),
                client_order_id.as_str().into(),
                order_id.into(),
                signal_id.into(),
                ttl.into(),
                furthest_wait.into(),
            ],
        )?;
        if let Some(margin) = margin {
            MARGIN_SET.run(client, &[margin.as_str().into()])?;
        }
        let Some(reservation) = reservation else {
            return refuse(format!("funds: free {exchange}/{asset} does not cover {amount}"));
        };
        let booked_at = Some(crate::clock::timestamptz(crate::ratelimit::book_moment(&exchange, endpoint, None)?));
        PLAN.run(client, &[order_id.into(), qty.into(), price.into(), reservation.into()])?;
        Ok((Some(reservation), booked_at, None))
    })
}

/// Applies a recorded fill to the position book; returns the realised P&L.
/// `side` BUY or SELL, `qty` and `price` positive, `fee_quote` the fee in
/// the quote currency (0 when unknown).
#[allow(clippy::too_many_arguments)]
pub fn apply_fill(
    client: &mut pgrx::spi::SpiClient<'_>,
    order_id: i64,
    exchange: &str,
    symbol: &str,
    side: &str,
    qty: AnyNumeric,
    price: AnyNumeric,
    fee_quote: AnyNumeric,
) -> Result<()> {
    POSITION_ROW.run(client, &[exchange.into(), symbol.into()])?;
    let realized = POSITION_FILL
        .one::<AnyNumeric>(
            client,
            &[exchange.into(), symbol.into(), signed(side, qty).into(), price.into(), fee_quote.into()],
        )?
        .unwrap_or_else(|| 0.into());
    ORDER_PNL.run(client, &[order_id.into(), realized.into()])?;
    Ok(())
}

pub(crate) static OPEN_ORDERS: Statement = Statement::new(
    "risk.open_orders",
    "SELECT count(*) FROM botai.orders WHERE exchange = $1 AND symbol = $2 AND status = 'claimed' \
       AND planned_qty IS NOT NULL",
);
pub(crate) static BOOK_QTY: Statement =
    Statement::new("risk.book_qty", "SELECT qty FROM botai.positions WHERE exchange = $1 AND symbol = $2 FOR UPDATE");
static BOOK_SET: Statement = Statement::new(
    "risk.book_set",
    "UPDATE botai.positions SET qty = $3, \
       avg_entry = CASE WHEN $3 = 0 THEN NULL \
                        WHEN qty = 0 OR sign(qty) <> sign($3) THEN coalesce($4, avg_entry) ELSE avg_entry END, \
       opened_at = CASE WHEN $3 = 0 THEN NULL WHEN qty = 0 OR sign(qty) <> sign($3) THEN now() ELSE opened_at END, \
       last_price = coalesce($4, last_price), updated_at = now() \
     WHERE exchange = $1 AND symbol = $2",
);

/// What the venue says a position is. When the book differs and no order
/// of the symbol is open (whose fill could explain the difference), the
/// book takes the venue's quantity (realised P&L and fees stay; a new or
/// reversed position is entered at `price`). Returns the correction (venue
/// minus book): 0 when they agree, NULL when orders are open (compare
/// again later).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_position_reconcile(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    price: default!(Option<AnyNumeric>, "NULL"),
) -> Option<AnyNumeric> {
    reconcile(exchange, symbol, qty, price).or_raise("botai_position_reconcile")
}

fn reconcile(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
) -> Result<Option<AnyNumeric>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let qty = amounts::arg("qty", qty, Sign::Any)?;
    let price = amounts::optional("price", price, Sign::Positive)?;
    locks::xact_lock(locks::RISK_NS, locks::name_key(&[exchange.as_str()]));
    writing(|client| {
        let args = [exchange.as_str().into(), symbol.into()];
        if OPEN_ORDERS.one::<i64>(client, &args)?.unwrap_or(0) > 0 {
            return Ok(None);
        }
        POSITION_ROW.run(client, &args)?;
        let book = BOOK_QTY.one::<AnyNumeric>(client, &args)?.unwrap_or_else(|| 0.into());
        let correction = qty.clone() - book.clone();
        let zero = AnyNumeric::from(0);
        // A position the book takes on (from flat, or reversed) is entered
        // at the venue's price: without one its entry would be unknown, and
        // the fill that closes it could not be booked.
        let opens = qty != zero && (book == zero || (qty > zero) != (book > zero));
        if opens && price.is_none() {
            return Err(BotaiError::invalid(
                "price",
                format!(
                    "the venue's {symbol} position of {qty} is one the book does not have ({book}): it is entered at \
                     the venue's entry price, which must be given"
                ),
            ));
        }
        if correction != zero {
            BOOK_SET.run(client, &[exchange.as_str().into(), symbol.into(), qty.into(), price.into()])?;
        }
        Ok(Some(correction))
    })
}
