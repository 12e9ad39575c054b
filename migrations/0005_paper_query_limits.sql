-- The paper exchange also limits order lookups and wallet requests (50 per
-- second each, as Bybit's per-UID limits do); botai books them against
-- these rows, besides the global one. Without them a burst of lookups (an
-- engine taking over hundreds of claims at once) stayed within the global
-- window and drew 10006 from the venue.
INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description) VALUES
    ('paper', 'order_query', 50, 1, 1, 'Paper exchange: order and execution lookups, 50/s'),
    ('paper', 'account',     50, 1, 1, 'Paper exchange: wallet and account requests, 50/s')
ON CONFLICT (exchange, endpoint) DO NOTHING;
