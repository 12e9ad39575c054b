-- botai: risk (guarantee 6): the position book with its open orders, the day's P&L, the state in force.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

-- A position's unrealised P&L at its last price; NULL (unknown) when a figure
-- is outside botai's amounts (stored before 0.7.0 refused them at the door),
-- so that one absurd row cannot make a view, or a rule reading it, fail for
-- every account.
CREATE FUNCTION botai.unrealized(qty numeric, avg_entry numeric, last_price numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN abs(qty) < 1e16 AND abs(avg_entry) < 1e16 AND abs(last_price) < 1e16
                THEN qty * (last_price - avg_entry) END;
$$;
-- What is in force: the strictest of the operator's switch and every alert
-- of a rule that halts (daily_loss) that no operator acknowledged, open or
-- resolved. Such an alert holds trading from the round that opens it —
-- nothing has to be written for it, so no lock a client holds can keep it
-- from force — and past its condition (a new UTC day, a fresh mark, the
-- rule edited or disabled), until an operator acknowledges it
-- (botai_resume … acknowledge): only an operator lifts a rule's halt.
CREATE VIEW botai.trading_state AS
WITH held AS (
    SELECT bool_or(a.action = 'halt') AS halt,
           bool_or(a.action = 'reduce_only') AS reduce_only,
           array_agg(a.alert_id ORDER BY a.alert_id) AS alerts,
           string_agg(format('alert rule %s (%s) fired on %s (alert %s%s; acknowledge it to resume)', a.rule,
                             coalesce(r.kind, 'a deleted rule'), left(a.subject, 64), a.alert_id,
                             CASE WHEN a.status = 'resolved' THEN ', resolved' ELSE '' END),
                      '; ' ORDER BY a.alert_id) AS why,
           max(a.opened_at) AS since
    FROM botai.alerts a LEFT JOIN botai.alert_rules r ON r.rule = a.rule
    WHERE a.action IN ('halt', 'reduce_only')
      AND NOT EXISTS (SELECT 1 FROM botai.alert_acknowledgements k WHERE k.alert_id = a.alert_id)),
effective AS (
    SELECT s.*, h.alerts, h.why, h.since,
           CASE WHEN s.mode = 'halted' OR coalesce(h.halt, false) THEN 'halted'
                WHEN s.mode = 'reduce_only' OR coalesce(h.reduce_only, false) THEN 'reduce_only'
                ELSE 'active' END AS in_force
    FROM botai.trading_switch s CROSS JOIN held h)
SELECT e.in_force AS mode,
       CASE WHEN e.in_force = e.mode THEN e.reason ELSE e.why END AS reason,
       CASE WHEN e.in_force = e.mode THEN e.changed_by ELSE 'botai monitor' END AS changed_by,
       CASE WHEN e.in_force = e.mode THEN e.changed_at ELSE e.since END AS changed_at,
       e.mode AS switch_mode,
       coalesce(e.alerts, '{}') AS halting_alerts
FROM effective e;
COMMENT ON VIEW botai.trading_state IS
    'The trading state in force, which botai_reserve_order and botai_send_permit obey: the strictest of the operator''s '
    'switch (botai.trading_switch, switch_mode) and the alerts of rules whose action is halt or reduce_only that no '
    'operator acknowledged, open or resolved (halting_alerts). changed_by is ''botai monitor'' while such an alert is '
    'what holds trading.';

CREATE VIEW botai.pnl_today AS
SELECT e.exchange,
       coalesce(f.realized_pnl, 0) AS realized_pnl,
       coalesce(f.fees, 0) AS fees,
       coalesce(u.unrealized_pnl, 0) AS unrealized_pnl,
       coalesce(f.realized_pnl, 0) - coalesce(f.fees, 0) + coalesce(u.unrealized_pnl, 0) AS net_pnl,
       coalesce(f.fills, 0) AS fills
FROM (SELECT exchange FROM botai.positions UNION SELECT exchange FROM botai.risk_limits) e
LEFT JOIN (SELECT exchange, sum(realized_pnl) AS realized_pnl, sum(fee_quote) AS fees, count(*) FILTER (WHERE fill) AS fills
           FROM (SELECT exchange, coalesce(realized_pnl, 0) AS realized_pnl, coalesce(fee_quote, 0) AS fee_quote, true AS fill
                 FROM botai.orders
                 WHERE status = 'filled' AND finished_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                 UNION ALL
                 SELECT exchange, realized_pnl, fee_quote, kind <> 'funding'
                 FROM botai.venue_trades
                 WHERE booked_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') t
           GROUP BY exchange) f ON f.exchange = e.exchange
LEFT JOIN (SELECT exchange, sum(botai.unrealized(qty, avg_entry, last_price)) AS unrealized_pnl
           FROM botai.positions WHERE qty <> 0 GROUP BY exchange) u ON u.exchange = e.exchange;
COMMENT ON VIEW botai.pnl_today IS
    'Per exchange account, the UTC day so far: realised P&L and fees of the day''s fills and of the venue''s own '
    'trades (forced closes, funding; quote currency), the open '
    'positions'' unrealised P&L at their last price, and the net the daily loss limit is checked against.';

CREATE VIEW botai.pending_orders AS
SELECT order_id, exchange, symbol, side, planned_qty, planned_price,
       CASE WHEN side = 'BUY' THEN planned_qty ELSE -planned_qty END AS pending_qty
FROM botai.orders WHERE status = 'claimed' AND planned_qty IS NOT NULL;
COMMENT ON VIEW botai.pending_orders IS
    'Orders botai_reserve_order reserved and nobody finished yet, with what each will add to its position (signed, '
    'BUY positive): the one definition of "open orders" the risk checks, the position book and every engine use.';

CREATE VIEW botai.positions_status AS
SELECT p.exchange, p.symbol, p.qty, p.avg_entry, p.last_price,
       CASE WHEN abs(p.qty) < 1e16 AND p.last_price < 1e16 THEN abs(p.qty) * p.last_price END AS notional,
       CASE WHEN p.qty <> 0 THEN botai.unrealized(p.qty, p.avg_entry, p.last_price) ELSE 0 END AS unrealized_pnl,
       p.realized_pnl, p.fees, p.trades, coalesce(o.open_orders, 0) AS open_orders,
       coalesce(o.pending_qty, 0) AS pending_qty, p.opened_at, p.updated_at
FROM botai.positions p
LEFT JOIN (SELECT exchange, symbol, count(*) AS open_orders, sum(pending_qty) AS pending_qty
           FROM botai.pending_orders GROUP BY exchange, symbol) o ON o.exchange = p.exchange AND o.symbol = p.symbol;
COMMENT ON VIEW botai.positions_status IS
    'The position book with what its open orders (reserved, not finished) will add: what every engine, botai status '
    'and the dashboard show.';

COMMENT ON FUNCTION botai_reserve_order(bigint, text, numeric, numeric, text, numeric, interval, text, numeric) IS
    'Before an order is sent: checks the kill switch and botai.risk_limits against the position book and every open '
    'order, books the rate slot and reserves the funds, in one transaction serialized per exchange account. One row: '
    'reservation_id and booked_at, or refused naming the limit (nothing reserved). With target (the signed position '
    'the order works toward), an order that would carry the exposure past it is refused (at_target).';
COMMENT ON FUNCTION botai_send_permit(bigint) IS
    'Right before an order is sent: NULL when it may go (the session then holds a share of the send gate until '
    'botai_send_done()), or why not (halted, a halt being committed, reduce_only and the order does not reduce).';
COMMENT ON FUNCTION botai_send_done() IS
    'The venue answered an order this session was permitted to send: gives back its share of the send gate.';
COMMENT ON FUNCTION botai_halt(text, text) IS
    'The kill switch: no order is sent after this commits. Waits (up to botai.halt_wait, 30 s) for the orders already '
    'permitted to be answered. mode ''halted'' (default) or ''reduce_only''.';
COMMENT ON FUNCTION botai_resume(text, bigint[]) IS
    'Lifts the operator''s halt or reduce-only state (botai.trading_switch). An alert of a rule that halts (daily_loss) '
    'holds trading halted until an operator acknowledges it, open or resolved: resuming then needs each such alert '
    'acknowledged in the call (acknowledge => ARRAY[alert_id]), recorded in botai.alert_acknowledgements with who, when '
    'and why; otherwise refused (55000) naming them. For the operator role only.';
COMMENT ON FUNCTION botai_mark_price(text, text, numeric) IS
    'A market price of a symbol (ticker, last trade, the venue''s mark) for the position''s unrealised P&L and exposure. '
    'The only price besides fills that marks a position: an order''s own price never does. True when a position was marked.';
COMMENT ON FUNCTION botai_position_adopt(text, text, numeric, numeric, numeric) IS
    'The venue''s position of a symbol (signed quantity, the venue''s entry price, the market''s mark): with no order '
    'of the symbol open, the book takes the venue''s quantity and entry price (realised P&L and fees stay). Returns '
    'venue minus book (0 when they agree), NULL while orders are open.';
COMMENT ON FUNCTION botai_venue_trade(text, text, text, text, text, numeric, numeric, numeric) IS
    'A trade the venue made on its own: a forced close (kind liquidation, adl, delisting: side, quantity, price) or a '
    'funding fee (kind funding, no side, quantity or price), fee in the quote currency (positive paid). Booked once per '
    'venue_id into the position book and the day''s P&L (botai.venue_trades); returns the realised P&L, NULL when '
    'the venue_id was booked before.';
COMMENT ON FUNCTION botai_position_reconcile(text, text, numeric, numeric) IS
    'What the venue says a position is: with no order of the symbol open, the book takes the venue''s quantity. A '
    'position the book takes on (from flat, or reversed) needs the venue''s entry price (refused with 22023 without '
    'one). Returns venue minus book (0 when they agree), NULL while orders are open.';
