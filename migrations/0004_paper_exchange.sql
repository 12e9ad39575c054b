-- The paper exchange's request limits as botai books them. The paper
-- exchange enforces its own (PAPER_ORDER_LIMIT 50/5s, PAPER_GLOBAL_LIMIT
-- 150/5s by default); these rows must say the same, or the limiter books
-- against the wrong numbers. Ten orders a second over five seconds rather
-- than one: the 10 % safety margin is then five requests of slack for the
-- jitter between a booked moment and the moment the order arrives.
INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description) VALUES
    ('paper', 'global', 150, 5, 1, 'Paper exchange: all requests of the account (PAPER_GLOBAL_LIMIT)'),
    ('paper', 'order',   50, 5, 1, 'Paper exchange: order placement and cancellation (PAPER_ORDER_LIMIT)')
ON CONFLICT (exchange, endpoint) DO NOTHING;
