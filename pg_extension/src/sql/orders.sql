-- botai: orders: the dashboard's push, the orders view, documentation.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

-- The dashboard is pushed: every statement that records or moves orders
-- announces it once (NOTIFY collapses the same payload within a
-- transaction, so a batch of orders is one notification).
CREATE FUNCTION botai.orders_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('botai_orders', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_changed AFTER INSERT OR UPDATE ON botai.orders
    FOR EACH STATEMENT EXECUTE FUNCTION botai.orders_changed();


-------------------------------------------------------------------------------
-- Orders
-------------------------------------------------------------------------------
CREATE VIEW botai.orders_status AS
SELECT o.order_id, o.signal_id, o.client_order_id, o.engine, o.exchange, o.symbol, o.side, o.status, o.attempt,
       o.qty, o.price, o.notional, o.fee, o.exchange_order_id, o.ret_code, o.message, o.reservation_id,
       o.signal_accepted_at, o.claimed_at, o.finished_at,
       extract(epoch FROM o.finished_at - o.signal_accepted_at)::float8 * 1000 AS latency_ms,
       o.fee_asset, o.fee_quote, o.realized_pnl, o.planned_qty, o.planned_price
FROM botai.orders o;
COMMENT ON VIEW botai.orders_status IS
    'Every order with its latency from signal acceptance to the recorded outcome.';

COMMENT ON FUNCTION botai_order_claim(bigint, text, text) IS
    'Makes the calling engine (its worker id) the owner of the signal''s order: one row (order_id, client_order_id, '
    'attempt, signal details) when it now owns it, none when another live engine owns it or it was handled. At most '
    'one order per signal, whatever the number of engines; a dead engine''s claim can be taken over.';
COMMENT ON FUNCTION botai_order_claim(bigint, text, text, text[]) IS
    'botai_order_claim for an engine that trades only the given symbols of its exchange: a signal for another symbol '
    'or exchange is left unclaimed, for an engine that trades it.';
COMMENT ON FUNCTION botai_order_finish(bigint, text, text, jsonb) IS
    'Records the outcome of a claimed order (filled, rejected, failed, skipped, expired); only the claim holder can.';
COMMENT ON FUNCTION botai_unhandled_signals(interval, integer) IS
    'Signals accepted within lookback that have no order yet, or whose claim belongs to a dead engine.';
