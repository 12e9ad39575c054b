-- botai 0.2.0 → 0.3.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.3.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

-- Limits learned from the venue: its limit headers tighten botai's windows.
CREATE FUNCTION "botai_rate_observe"(
	"exchange" TEXT, /* Option < & str > */
	"endpoint" TEXT, /* Option < & str > */
	"remaining" INT, /* Option < i32 > */
	"venue_limit" INT, /* Option < i32 > */
	"reset_at" timestamp with time zone DEFAULT NULL /* Option < TimestampWithTimeZone > */
) RETURNS INT /* i32 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_rate_observe_wrapper';

COMMENT ON FUNCTION botai_rate_observe(text, text, integer, integer, timestamptz) IS
    'What the venue''s limit headers said: of venue_limit, remaining are left until reset_at. When the venue counted '
    'more than botai booked in the current window (another process on the same key), the difference is booked in '
    'botai''s window until reset_at (at most one window length), so every session waits for it. Never loosens a '
    'window. Returns the weight added.';

REVOKE ALL ON FUNCTION botai_rate_observe(text, text, integer, integer, timestamptz) FROM PUBLIC;

-- Bybit's documented V5 limits replace the placeholders of 0.1.0. A row an
-- operator edited (any value differing from the 0.1.0 seed) is left as it
-- is; botai_rate_observe corrects whatever the venue says differently.
UPDATE botai.rate_limits SET max_weight = 600, window_seconds = 5, default_weight = 1,
    description = 'Bybit V5: the IP limit, 600 requests per 5 s over all traffic; broken, HTTP 403 and a 10-minute wait (bybit-exchange.github.io/docs/v5/rate-limit, "HTTP IP limit")'
WHERE exchange = 'bybit' AND endpoint = 'global' AND (max_weight, window_seconds, default_weight) = (120, 60, 1);
UPDATE botai.rate_limits SET max_weight = 10, window_seconds = 1, default_weight = 1,
    description = 'Bybit V5: /v5/order/create, amend, cancel, per UID: 10/s for futures at the default level (spot allows 20/s) (docs/v5/rate-limit, "API Rate Limit Rules for VIPs", Default row)'
WHERE exchange = 'bybit' AND endpoint = 'order' AND (max_weight, window_seconds, default_weight) = (80, 60, 2);
UPDATE botai.rate_limits SET max_weight = 50, window_seconds = 1, default_weight = 1,
    description = 'Bybit V5: /v5/account/wallet-balance and account info, per UID: 50/s (docs/v5/rate-limit, API rate limit table)'
WHERE exchange = 'bybit' AND endpoint = 'account' AND (max_weight, window_seconds, default_weight) = (60, 60, 1);
-- Bybit limits market data by IP only (the global row).
DELETE FROM botai.rate_limits
WHERE exchange = 'bybit' AND endpoint = 'market_data' AND (max_weight, window_seconds, default_weight) = (100, 60, 1);
INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description) VALUES
    ('bybit', 'order_query', 50, 1, 1, 'Bybit V5: /v5/order/realtime, /v5/order/history, /v5/execution/list, per UID: 50/s (docs/v5/rate-limit, API rate limit table)'),
    ('bybit', 'position',    50, 1, 1, 'Bybit V5: /v5/position/list, per UID: 50/s (docs/v5/rate-limit, API rate limit table)')
ON CONFLICT (exchange, endpoint) DO NOTHING;

-- Binance USDⓈ-M's documented limits, likewise (rows an operator edited stay).
UPDATE botai.rate_limits SET max_weight = 2400, window_seconds = 60, default_weight = 1,
    description = 'Binance USDⓈ-M: request weight of the IP, 2400 per minute (exchangeInfo rateLimits REQUEST_WEIGHT); broken, HTTP 429, persisting, 418 and a ban'
WHERE exchange = 'binance' AND endpoint = 'global' AND (max_weight, window_seconds, default_weight) = (1200, 60, 1);
UPDATE botai.rate_limits SET max_weight = 200, window_seconds = 10, default_weight = 1,
    description = 'Binance USDⓈ-M: orders of the account, 300 per 10 s and 1200 per minute (exchangeInfo rateLimits ORDERS); 200 per 10 s keeps both'
WHERE exchange = 'binance' AND endpoint = 'order' AND (max_weight, window_seconds, default_weight) = (100, 10, 1);
-- Binance counts market data in the request weight (the global row).
DELETE FROM botai.rate_limits
WHERE exchange = 'binance' AND endpoint = 'market_data' AND (max_weight, window_seconds, default_weight) = (2400, 60, 1);
INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description) VALUES
    ('binance', 'account', 2400, 60, 5, 'Binance USDⓈ-M: balance, account and positions, weight 5 each in the request weight (endpoint docs)')
ON CONFLICT (exchange, endpoint) DO NOTHING;

-- Which build of the library ran this upgrade.
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());
