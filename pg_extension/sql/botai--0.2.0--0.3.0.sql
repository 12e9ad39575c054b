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

-- Which build of the library ran this upgrade.
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());
