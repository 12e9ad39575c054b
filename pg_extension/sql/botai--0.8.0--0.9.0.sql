-- botai 0.8.0 → 0.9.0, run by ALTER EXTENSION botai UPDATE (botai db migrate
-- does it). Every object it changes ends exactly as a fresh 0.9.0 install
-- creates it (tests/upgrade.rs compares the two catalogs); the data stays.
--
-- 0.9.0 writes each rule once (issue 28):
-- - botai_rate_book: books as botai_rate_acquire and returns the booked
--   moment itself, so no caller computes "now(), or 100 ms before the clock
--   in an older transaction, plus the wait" (the daemon did; the order
--   reservation now books through the same Rust function);
-- - botai_alert_next_due answers NULL when nothing is owed to the channel,
--   as documented (it answered 0, "due now", and an idle deliverer asked
--   again every 50 ms instead of waiting for a notification).
\echo Use "ALTER EXTENSION botai UPDATE" to load this file. \quit

CREATE  FUNCTION "botai_rate_book"(
	"exchange" TEXT, /* Option < & str > */
	"endpoint" TEXT DEFAULT 'default', /* Option < & str > */
	"weight" INT DEFAULT NULL /* Option < i32 > */
) RETURNS timestamp with time zone /* pgrx :: datum :: TimestampWithTimeZone */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'botai_rate_book_wrapper';
REVOKE ALL ON FUNCTION botai_rate_book(text, text, integer) FROM PUBLIC;
COMMENT ON FUNCTION botai_rate_book(text, text, integer) IS
    'Books like botai_rate_acquire and returns the booked moment itself (now(), or 100 ms before the clock in an '
    'older transaction, plus the wait): a caller that sends at that moment never exceeds a limit.';

CREATE OR REPLACE FUNCTION botai_alert_next_due(channel text) RETURNS float8
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- greatest() skips NULLs: nothing owed (min() NULL) must stay NULL, not 0.
    SELECT CASE WHEN s.due IS NOT NULL THEN greatest(0, extract(epoch FROM s.due - now()))::float8 END
    FROM (SELECT min(greatest(d.next_attempt_at, coalesce(d.claimed_until, d.next_attempt_at))) AS due
          FROM botai.alert_deliveries d
          WHERE d.channel = botai_alert_next_due.channel AND d.status = 'pending') s;
$$;
