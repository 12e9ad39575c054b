-- Risk (SQL_API.md and README "Risk"): the kill switch any operator pulls
-- from psql, and that only an operator lifts; the position book marked by
-- market prices, adopted at the venue's entry, and the venue's own trades
-- booked once. Run by scripts/sql-golden.sh.
\set VERBOSITY verbose

-- The operator halts; the trading daemon's roles can neither halt nor lift it.
SET ROLE botai_operator;
SELECT botai_halt('golden drill');
SELECT mode, reason FROM botai.trading_state;
SELECT botai_halt('golden drill', 'sideways');
RESET ROLE;
SET ROLE botai_engine;
SELECT botai_resume('the engine wants to trade');
SELECT botai_halt('the engine halts');
RESET ROLE;
SET ROLE botai_ml;
SELECT botai_resume('the model wants to trade');
RESET ROLE;
SET ROLE botai_operator;
SELECT botai_halt('closing only', 'reduce_only');
SELECT botai_resume('drill over');
SELECT mode FROM botai.trading_state;
-- Limits are the operator's to set.
INSERT INTO botai.risk_limits (exchange, symbol, max_position_notional, max_daily_loss) VALUES ('golden', '*', 5000, 100);
RESET ROLE;
SET ROLE botai_engine;
INSERT INTO botai.risk_limits (exchange, symbol, max_position_notional, max_daily_loss) VALUES ('golden', 'ETHUSDT', 1e9, 1e9);
-- The venue's position adopted at its entry; a mark moves its unrealised P&L.
SELECT botai_position_adopt('golden', 'BTCUSDT', 0.002, 50000);
SELECT botai_mark_price('golden', 'BTCUSDT', 49000);
SELECT symbol, qty, avg_entry, last_price, unrealized_pnl FROM botai.positions_status WHERE exchange = 'golden';
-- A liquidation of half, booked once however often the venue says it.
SELECT botai_venue_trade('golden', 'BTCUSDT', 'liquidation', 'L-1', 'SELL', 0.001, 39000, 0.3);
SELECT botai_venue_trade('golden', 'BTCUSDT', 'liquidation', 'L-1', 'SELL', 0.001, 39000, 0.3);
SELECT botai_venue_trade('golden', 'BTCUSDT', 'funding', 'F-1', NULL, NULL, NULL, 0.2);
SELECT qty, avg_entry, realized_pnl, fees FROM botai.positions WHERE exchange = 'golden';
SELECT realized_pnl, fees FROM botai.pnl_today WHERE exchange = 'golden';
-- Refusals.
SELECT botai_position_adopt('golden', 'BTCUSDT', 0.5, NULL);
SELECT botai_venue_trade('golden', 'BTCUSDT', 'adl', 'A-1', NULL, 1, 1, 0);
SELECT botai_venue_trade('golden', 'BTCUSDT', 'margin_call', 'M-1', 'SELL', 1, 1, 0);
SELECT botai_mark_price('golden', 'BTCUSDT', 1e300);
SELECT botai_mark_price('golden', 'BTCUSDT', 0);
RESET ROLE;
SET ROLE botai_reader;
SELECT botai_mark_price('golden', 'BTCUSDT', 50000);
SELECT exchange, symbol, max_position_notional, max_daily_loss FROM botai.risk_limits WHERE exchange = 'golden';
RESET ROLE;

-- The views' columns, as a reader selects them.
\d botai.trading_state
\d botai.pnl_today
\d botai.pending_orders
\d botai.positions_status
