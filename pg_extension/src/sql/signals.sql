-- botai: signals (guarantee 2): SQL functions and the documentation of the Rust ones.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

CREATE FUNCTION botai_recent_signals(minutes integer DEFAULT 5) RETURNS SETOF botai.signals
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF minutes IS NULL OR minutes <= 0 THEN
        RAISE EXCEPTION 'botai_recent_signals: minutes must be a positive number, not %', coalesce(minutes::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT * FROM botai.signals s
        WHERE s.accepted_at >= now() - make_interval(mins => minutes)
        ORDER BY s.signal_id DESC;
END
$$;

COMMENT ON FUNCTION botai_fingerprint(text, text, text, timestamptz) IS
    'sha256 of json.dumps({"direction","strategy","symbol","timestamp_minute"}, sort_keys=True), first 16 hex characters. '
    'symbol upper-cased and trimmed, direction BUY or SELL, strategy trimmed, ts truncated to the minute in UTC.';
COMMENT ON FUNCTION botai_register_signal(jsonb, timestamptz) IS
    'Registers a signal {symbol, direction, strategy, timestamp, ...}. Of any number of concurrent identical calls '
    'exactly one is accepted and none raises a unique violation. reason: accepted | duplicate | stale | cooldown. '
    'An accepted signal is stored in botai.signals and announced with NOTIFY botai_signals at commit. now (default: '
    'the statement''s start) is the clock staleness and cooldown are judged by; a replay of past data passes its own.';
COMMENT ON FUNCTION botai_check_and_register_signal(jsonb, timestamptz) IS 'accepted of botai_register_signal.';
COMMENT ON FUNCTION botai_recent_signals(integer) IS 'Signals accepted in the last minutes, newest first.';
COMMENT ON FUNCTION botai_signal_stats() IS
    'Registration calls of this database since the server started (shared memory; reset by a restart).';
