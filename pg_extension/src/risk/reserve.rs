//! `botai_reserve_order`: the trading state and the risk limits checked
//! against the position book and every open order, the rate slot booked and
//! the funds reserved, in one transaction serialized per exchange account.

use botai_core::names;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};

use super::*;
use crate::amounts::{self, Sign};
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::gucs;
use crate::locks;
use crate::statements::{writing, Statement};

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
