-- botai: rate limits (guarantee 3): the documentation of the Rust functions.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

COMMENT ON FUNCTION botai_rate_acquire(text, text, integer) IS
    'Books the request at the earliest moment it fits every window that applies (the endpoint''s and the exchange''s '
    'global, exact sliding windows in shared memory) and returns the seconds from now() (the start of the calling '
    'transaction; at most 100 ms ago) until then: now() + the result is the booked moment. A caller that sleeps that long and then '
    'sends never exceeds a limit, however many sessions share the exchange. weight NULL = the endpoint''s '
    'default_weight; a weight above the effective limit is an error (22023). After a server restart every window '
    'counts as full for one window length.';
COMMENT ON FUNCTION botai_rate_book(text, text, integer) IS
    'Books like botai_rate_acquire and returns the booked moment itself (now(), or 100 ms before the clock in an '
    'older transaction, plus the wait): a caller that sends at that moment never exceeds a limit.';
COMMENT ON FUNCTION botai_rate_try_acquire(text, text, integer) IS
    'Books and returns 0 only when the request fits now; otherwise books nothing and returns the seconds until it '
    'would fit.';
COMMENT ON FUNCTION botai_rate_penalize(text, text, float8) IS
    'After the exchange answered "too many requests": nothing is booked on the key (on the whole exchange with '
    'endpoint global) until the seconds have passed.';
COMMENT ON FUNCTION botai_rate_observe(text, text, integer, integer, timestamptz) IS
    'What the venue''s limit headers said: of venue_limit, remaining are left until reset_at. When the venue counted '
    'more than botai booked in the current window (another process on the same key), the difference is booked in '
    'botai''s window until reset_at (at most one window length), so every session waits for it. Never loosens a '
    'window. Returns the weight added.';
COMMENT ON FUNCTION botai_rate_usage(text) IS
    'Per configured endpoint: weight booked in the current window, effective limit, utilization, and seconds until a '
    'request of the default weight would fit.';
COMMENT ON FUNCTION botai_rate_stats(text) IS
    'Per endpoint since the server started: bookings, bookings that had to wait and the total wait, try_acquire '
    'refusals, penalties.';
