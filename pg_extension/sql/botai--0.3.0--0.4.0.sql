-- botai 0.3.0 → 0.4.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.4.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
--
-- 0.4.0 adds the sixth guarantee, "no order beyond the risk limits": the
-- kill switch (botai.trading_state, botai_halt, botai_resume, the send
-- gate), botai.risk_limits checked by botai_reserve_order atomically with
-- the rate slot and the reservation, and the position book moved by every
-- recorded fill; and a claim that leaves other exchanges' and symbols'
-- signals to the engines that trade them.
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

-- Orders: what botai_reserve_order reserved them for, what their fill did.
ALTER TABLE botai.orders
    ADD COLUMN planned_qty   numeric,
    ADD COLUMN planned_price numeric,
    ADD COLUMN fee_asset     text,
    ADD COLUMN fee_quote     numeric,
    ADD COLUMN realized_pnl  numeric;
-- Fills recorded before 0.4.0 named their fee's currency in details.
UPDATE botai.orders SET fee_asset = details->>'fee_asset' WHERE details ? 'fee_asset';
CREATE INDEX orders_open_idx ON botai.orders (exchange, symbol) WHERE status = 'claimed' AND planned_qty IS NOT NULL;
CREATE INDEX orders_filled_idx ON botai.orders (exchange, finished_at) WHERE status = 'filled';

-- Alert rules: the daily loss, and actions that set the trading state.
ALTER TABLE botai.alert_rules DROP CONSTRAINT alert_rules_kind_check,
    ADD CONSTRAINT alert_rules_kind_check CHECK (kind IN ('heartbeat_timeout', 'high_error_rate', 'memory_usage',
        'worker_offline', 'low_balance', 'rate_limit_exceeded', 'daily_loss'));
ALTER TABLE botai.alert_rules DROP CONSTRAINT alert_rules_action_check,
    ADD CONSTRAINT alert_rules_action_check CHECK (action IN ('notify', 'restart_component', 'page', 'halt', 'reduce_only'));
INSERT INTO botai.alert_rules (rule, kind, threshold, window_seconds, severity, action, params, description) VALUES
    ('daily_loss',          'daily_loss',            0, 60, 'critical', 'halt',   '{}',
     'An exchange account lost at least its max_daily_loss today (botai.risk_limits, symbol ''*''; UTC day, realised minus fees plus unrealised): trading is halted')
ON CONFLICT (rule) DO NOTHING;

-------------------------------------------------------------------------------
-- Risk (SQL_API.md §6): the kill switch, the limits, the position book.
-------------------------------------------------------------------------------
CREATE TABLE botai.trading_state (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    mode        text        NOT NULL DEFAULT 'active' CHECK (mode IN ('active', 'reduce_only', 'halted')),
    reason      text,
    changed_by  text        NOT NULL DEFAULT session_user,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO botai.trading_state DEFAULT VALUES;
COMMENT ON TABLE botai.trading_state IS
    'The kill switch, one row: active, reduce_only (only orders that shrink a position) or halted (no order is sent). '
    'Set it with botai_halt(reason[, mode]) and botai_resume(); botai_reserve_order and botai_send_permit obey it.';

CREATE TABLE botai.risk_limits (
    exchange              text    NOT NULL CHECK (length(exchange) BETWEEN 1 AND 64 AND exchange = lower(btrim(exchange))),
    symbol                text    NOT NULL DEFAULT '*' CHECK (length(symbol) BETWEEN 1 AND 64 AND symbol = btrim(symbol)),
    max_position_notional numeric CHECK (max_position_notional > 0),
    max_order_notional    numeric CHECK (max_order_notional > 0),
    max_open_orders       integer CHECK (max_open_orders > 0),
    max_gross_exposure    numeric CHECK (max_gross_exposure > 0),
    max_daily_loss        numeric CHECK (max_daily_loss > 0),
    description           text,
    PRIMARY KEY (exchange, symbol),
    CONSTRAINT risk_limits_account_only CHECK (symbol = '*' OR (max_gross_exposure IS NULL AND max_daily_loss IS NULL))
);
COMMENT ON TABLE botai.risk_limits IS
    'Risk limits checked by botai_reserve_order atomically with the reservation. A row per exchange and symbol; the '
    'row with symbol ''*'' holds the account''s limits (max_gross_exposure, max_daily_loss) and the per-symbol limits '
    'of symbols without a row of their own. NULL is no limit. Edits apply to the next reservation.';

CREATE TABLE botai.positions (
    exchange      text        NOT NULL,
    symbol        text        NOT NULL,
    qty           numeric     NOT NULL DEFAULT 0,
    avg_entry     numeric,
    realized_pnl  numeric     NOT NULL DEFAULT 0,
    fees          numeric     NOT NULL DEFAULT 0,
    last_price    numeric,
    trades        bigint      NOT NULL DEFAULT 0,
    opened_at     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol)
);
COMMENT ON TABLE botai.positions IS
    'The position book: botai''s net position per exchange and symbol (signed base quantity: negative is short), '
    'moved by every fill botai_order_finish records; average entry, realised P&L and fees in the quote currency.';

SELECT pg_catalog.pg_extension_config_dump('botai.risk_limits', '');

CREATE FUNCTION "botai_reserve_order"(
	"order_id" bigint, /* Option < i64 > */
	"engine" TEXT, /* Option < & str > */
	"qty" NUMERIC, /* Option < AnyNumeric > */
	"price" NUMERIC, /* Option < AnyNumeric > */
	"asset" TEXT, /* Option < & str > */
	"amount" NUMERIC, /* Option < AnyNumeric > */
	"ttl" interval DEFAULT '5 minutes', /* Option < pgrx :: datum :: Interval > */
	"endpoint" TEXT DEFAULT 'order', /* Option < & str > */
	"target" NUMERIC DEFAULT NULL /* Option < AnyNumeric > */
) RETURNS TABLE (
	"reservation_id" uuid,  /* Option < Uuid > */
	"booked_at" timestamp with time zone,  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"refused" TEXT  /* Option < String > */
)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_reserve_order_wrapper';

CREATE FUNCTION "botai_send_permit"(
	"order_id" bigint /* Option < i64 > */
) RETURNS TEXT /* Option < String > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_send_permit_wrapper';

CREATE FUNCTION "botai_send_done"() RETURNS bool /* bool */
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_send_done_wrapper';

CREATE FUNCTION "botai_halt"(
	"reason" TEXT, /* Option < & str > */
	"mode" TEXT DEFAULT 'halted' /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_halt_wrapper';

CREATE FUNCTION "botai_resume"(
	"reason" TEXT DEFAULT 'resumed by an operator' /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_resume_wrapper';

CREATE FUNCTION "botai_order_claim"(
	"signal_id" bigint, /* Option < i64 > */
	"engine" TEXT, /* Option < & str > */
	"exchange" TEXT, /* Option < & str > */
	"symbols" TEXT[] /* :: std :: option :: Option < Vec < Option < String > > > */
) RETURNS TABLE (
	"order_id" bigint,  /* i64 */
	"client_order_id" TEXT,  /* String */
	"attempt" INT,  /* i32 */
	"exchange" TEXT,  /* String */
	"symbol" TEXT,  /* String */
	"direction" TEXT,  /* String */
	"strategy" TEXT,  /* String */
	"strength" double precision,  /* Option < f64 > */
	"payload" jsonb,  /* JsonB */
	"signal_ts" timestamp with time zone,  /* pgrx :: datum :: TimestampWithTimeZone */
	"accepted_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
VOLATILE SECURITY DEFINER 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_order_claim_for_wrapper';

CREATE FUNCTION "botai_position_reconcile"(
	"exchange" TEXT, /* Option < & str > */
	"symbol" TEXT, /* Option < & str > */
	"qty" NUMERIC, /* Option < AnyNumeric > */
	"price" NUMERIC DEFAULT NULL /* Option < AnyNumeric > */
) RETURNS NUMERIC /* Option < AnyNumeric > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_position_reconcile_wrapper';

CREATE FUNCTION "botai_update_balance"(
	"exchange" TEXT, /* Option < & str > */
	"asset" TEXT, /* Option < & str > */
	"total" NUMERIC, /* Option < AnyNumeric > */
	"available" NUMERIC, /* Option < AnyNumeric > */
	"locked" NUMERIC, /* Option < AnyNumeric > */
	"as_of" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"clock_skew" interval /* Option < Interval > */
) RETURNS bool /* bool */
VOLATILE SECURITY DEFINER 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_update_balance_skew_wrapper';

-------------------------------------------------------------------------------
-- Risk: the position book with its open orders, the day's P&L
-------------------------------------------------------------------------------
CREATE VIEW botai.pnl_today AS
SELECT e.exchange,
       coalesce(f.realized_pnl, 0) AS realized_pnl,
       coalesce(f.fees, 0) AS fees,
       coalesce(u.unrealized_pnl, 0) AS unrealized_pnl,
       coalesce(f.realized_pnl, 0) - coalesce(f.fees, 0) + coalesce(u.unrealized_pnl, 0) AS net_pnl,
       coalesce(f.fills, 0) AS fills
FROM (SELECT exchange FROM botai.positions UNION SELECT exchange FROM botai.risk_limits) e
LEFT JOIN (SELECT exchange, sum(coalesce(realized_pnl, 0)) AS realized_pnl, sum(coalesce(fee_quote, 0)) AS fees,
                  count(*) AS fills
           FROM botai.orders
           WHERE status = 'filled' AND finished_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           GROUP BY exchange) f ON f.exchange = e.exchange
LEFT JOIN (SELECT exchange, sum(qty * (last_price - avg_entry)) AS unrealized_pnl
           FROM botai.positions WHERE qty <> 0 GROUP BY exchange) u ON u.exchange = e.exchange;
COMMENT ON VIEW botai.pnl_today IS
    'Per exchange account, the UTC day so far: realised P&L and fees of the day''s fills (quote currency), the open '
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
       abs(p.qty) * p.last_price AS notional,
       CASE WHEN p.qty <> 0 THEN p.qty * (p.last_price - p.avg_entry) ELSE 0 END AS unrealized_pnl,
       p.realized_pnl, p.fees, p.trades, coalesce(o.open_orders, 0) AS open_orders,
       coalesce(o.pending_qty, 0) AS pending_qty, p.opened_at, p.updated_at
FROM botai.positions p
LEFT JOIN (SELECT exchange, symbol, count(*) AS open_orders, sum(pending_qty) AS pending_qty
           FROM botai.pending_orders GROUP BY exchange, symbol) o ON o.exchange = p.exchange AND o.symbol = p.symbol;
COMMENT ON VIEW botai.positions_status IS
    'The position book with what its open orders (reserved, not finished) will add: what every engine, botai status '
    'and the dashboard show.';

CREATE OR REPLACE VIEW botai.orders_status AS
SELECT o.order_id, o.signal_id, o.client_order_id, o.engine, o.exchange, o.symbol, o.side, o.status, o.attempt,
       o.qty, o.price, o.notional, o.fee, o.exchange_order_id, o.ret_code, o.message, o.reservation_id,
       o.signal_accepted_at, o.claimed_at, o.finished_at,
       extract(epoch FROM o.finished_at - o.signal_accepted_at)::float8 * 1000 AS latency_ms,
       o.fee_asset, o.fee_quote, o.realized_pnl, o.planned_qty, o.planned_price
FROM botai.orders o;

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
COMMENT ON FUNCTION botai_resume(text) IS 'Lifts a halt or the reduce-only state.';
COMMENT ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz, interval) IS
    'botai_update_balance from a caller that knows how far as_of''s clock can be from the database''s: commits older '
    'than as_of minus clock_skew retire (instead of botai.balance_clock_skew).';
COMMENT ON FUNCTION botai_position_reconcile(text, text, numeric, numeric) IS
    'What the venue says a position is: with no order of the symbol open, the book takes the venue''s quantity. '
    'Returns venue minus book (0 when they agree), NULL while orders are open.';

COMMENT ON FUNCTION botai_order_claim(bigint, text, text, text[]) IS
    'botai_order_claim for an engine that trades only the given symbols of its exchange: a signal for another symbol '
    'or exchange is left unclaimed, for an engine that trades it.';

ALTER FUNCTION botai_reserve_order(bigint, text, numeric, numeric, text, numeric, interval, text, numeric) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION botai_order_claim(bigint, text, text, text[]) SET plan_cache_mode = force_generic_plan;

REVOKE ALL ON FUNCTION botai_reserve_order(bigint, text, numeric, numeric, text, numeric, interval, text, numeric) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_send_permit(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_send_done() FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_halt(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_resume(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_order_claim(bigint, text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_position_reconcile(text, text, numeric, numeric) FROM PUBLIC;
REVOKE ALL ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz, interval) FROM PUBLIC;

-- Which build of the library ran this upgrade.
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());
