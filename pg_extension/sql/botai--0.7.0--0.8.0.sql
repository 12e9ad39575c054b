-- botai 0.7.0 → 0.8.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.8.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
--
-- 0.8.0 books what the venue says and does (issue 27):
-- - botai_position_adopt: the venue's position taken with the venue's
--   entry price (botai_position_reconcile stays, for spot and 0.7.0 callers);
-- - botai_venue_trade and botai.venue_trades: forced closes (liquidation,
--   ADL, delisting) and funding fees, once per venue id, into the position
--   book and the day's P&L (botai.pnl_today counts them).
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

CREATE TABLE botai.venue_trades (
    trade_id      bigserial   PRIMARY KEY,
    exchange      text        NOT NULL,
    symbol        text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('liquidation', 'adl', 'delisting', 'funding')),
    venue_id      text        NOT NULL,
    side          text        CHECK (side IN ('BUY', 'SELL')),
    qty           numeric     NOT NULL DEFAULT 0,
    price         numeric,
    fee_quote     numeric     NOT NULL DEFAULT 0,
    realized_pnl  numeric     NOT NULL DEFAULT 0,
    booked_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (exchange, venue_id),
    CHECK ((kind = 'funding') = (side IS NULL))
);
COMMENT ON TABLE botai.venue_trades IS
    'Trades the venue made on its own (botai_venue_trade): forced closes (liquidation, adl, delisting) and funding '
    'fees, each once per venue id, booked into the position book and the day''s P&L.';
CREATE INDEX venue_trades_booked_idx ON botai.venue_trades (exchange, booked_at);

CREATE OR REPLACE VIEW botai.pnl_today AS
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


-------------------------------------------------------------------------------
-- Functions of the library
-------------------------------------------------------------------------------
CREATE  FUNCTION "botai_position_adopt"(
	"exchange" TEXT, /* Option < & str > */
	"symbol" TEXT, /* Option < & str > */
	"qty" NUMERIC, /* Option < AnyNumeric > */
	"entry" NUMERIC, /* Option < AnyNumeric > */
	"mark" NUMERIC DEFAULT NULL /* Option < AnyNumeric > */
) RETURNS NUMERIC /* Option < AnyNumeric > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_position_adopt_wrapper';
REVOKE ALL ON FUNCTION botai_position_adopt(text, text, numeric, numeric, numeric) FROM PUBLIC;

CREATE  FUNCTION "botai_venue_trade"(
	"exchange" TEXT, /* Option < & str > */
	"symbol" TEXT, /* Option < & str > */
	"kind" TEXT, /* Option < & str > */
	"venue_id" TEXT, /* Option < & str > */
	"side" TEXT, /* Option < & str > */
	"qty" NUMERIC, /* Option < AnyNumeric > */
	"price" NUMERIC, /* Option < AnyNumeric > */
	"fee" NUMERIC /* Option < AnyNumeric > */
) RETURNS NUMERIC /* Option < AnyNumeric > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_venue_trade_wrapper';
REVOKE ALL ON FUNCTION botai_venue_trade(text, text, text, text, text, numeric, numeric, numeric) FROM PUBLIC;

COMMENT ON FUNCTION botai_position_adopt(text, text, numeric, numeric, numeric) IS
    'The venue''s position of a symbol (signed quantity, the venue''s entry price, the market''s mark): with no order '
    'of the symbol open, the book takes the venue''s quantity and entry price (realised P&L and fees stay). Returns '
    'venue minus book (0 when they agree), NULL while orders are open.';
COMMENT ON FUNCTION botai_venue_trade(text, text, text, text, text, numeric, numeric, numeric) IS
    'A trade the venue made on its own: a forced close (kind liquidation, adl, delisting: side, quantity, price) or a '
    'funding fee (kind funding, no side, quantity or price), fee in the quote currency (positive paid). Booked once per '
    'venue_id into the position book and the day''s P&L (botai.venue_trades); returns the realised P&L, NULL when '
    'the venue_id was booked before.';
