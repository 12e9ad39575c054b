//! The kill switch: `botai_halt` and `botai_resume` (the operator's switch and
//! the acknowledgement of rule halts), and the send gate every permitted
//! order holds until its venue answered (`botai_send_permit` …
//! `botai_send_done`).

use pgrx::prelude::*;
use pgrx::AnyNumeric;

use super::*;
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::locks;
use crate::statements::{writing, Statement};

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
static PERMIT_ORDER: Statement = Statement::new(
    "risk.permit_order",
    "SELECT o.side, o.planned_qty, coalesce(p.qty, 0), \
            coalesce((SELECT sum(x.pending_qty) FROM botai.pending_orders x \
                      WHERE x.exchange = o.exchange AND x.symbol = o.symbol AND x.order_id <> o.order_id), 0) \
     FROM botai.orders o LEFT JOIN botai.positions p ON p.exchange = o.exchange AND p.symbol = o.symbol \
     WHERE o.order_id = $1",
);

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
