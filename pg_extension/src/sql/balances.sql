-- botai: balances and reservations (guarantee 4): views and documentation.
-- Created after the Rust functions it names exist (extension_sql_file! with
-- requires, beside the module's Rust code); part of every botai--VERSION.sql.

CREATE VIEW botai.balances_status AS
SELECT b.exchange,
       b.asset,
       b.total,
       b.available,
       b.locked,
       p.reserved,
       b.available - p.reserved AS free,
       b.as_of,
       b.updated_at,
       now() - b.as_of AS age
FROM botai.balances b
CROSS JOIN LATERAL (
    SELECT b.held
         - coalesce((SELECT sum(r.counted)
                     FROM botai.reservations r
                     WHERE r.exchange = b.exchange AND r.asset = b.asset AND r.counted > 0
                       AND r.status IN ('expired', 'retired')), 0)
         - coalesce((SELECT sum(r.counted)
                     FROM botai.reservations r
                     WHERE b.held_expiry_floor <= now()
                       AND r.exchange = b.exchange AND r.asset = b.asset AND r.status = 'held'
                       AND r.expires_at <= now() AND r.counted > 0), 0) AS reserved
    OFFSET 0 -- computed once per row, not once per output column
) p;
COMMENT ON VIEW botai.balances_status IS
    'Latest snapshot per exchange/asset; reserved = held (unexpired) plus committed reservations, exact at once '
    '(balances.held minus what closed reservations freed since the last fold); free = available - reserved.';

CREATE VIEW botai.reservations_status AS
SELECT r.reservation_id,
       r.exchange,
       r.asset,
       r.amount,
       r.committed_amount,
       r.purpose,
       r.metadata,
       CASE WHEN r.status = 'held' AND r.expires_at <= now() THEN 'expired' ELSE r.status END AS status,
       (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now())) AS holds_funds,
       r.created_at,
       r.expires_at,
       r.committed_at,
       r.closed_at,
       greatest(extract(epoch FROM r.expires_at - now()), 0)::float8 AS expires_in_seconds
FROM botai.reservations r;
COMMENT ON VIEW botai.reservations_status IS
    'Every reservation with its effective status: a held reservation past expires_at shows as expired at once, '
    'before the monitor records it.';

COMMENT ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz) IS
    'Stores the exchange''s balance snapshot taken at as_of (default now()); an older snapshot than the stored one '
    'changes nothing and returns false. Committed reservations older than the snapshot retire. Rejects NaN, '
    'infinities, negatives and available > total (22023).';
COMMENT ON FUNCTION botai_check_balance_availability(text, text, numeric) IS
    'free = available - held reservations; available when free >= amount * (1 + botai.balance_safety_margin).';
COMMENT ON FUNCTION botai_reserve_balance(text, text, numeric, text, jsonb, interval) IS
    'Holds amount and returns the reservation id, or NULL when free funds do not cover it (with the safety margin). '
    'However many sessions reserve at once, the held total never exceeds what was available. The hold ends at '
    'release, at expiry (ttl; it stops counting at once, no sweeper needed) or, after commit, at the next newer '
    'balance snapshot.';
COMMENT ON FUNCTION botai_release_reservation(uuid) IS
    'True when it was held; calling again is harmless and returns false. Unknown ids are an error (P0002).';
COMMENT ON FUNCTION botai_commit_reservation(uuid, numeric) IS
    'The order was placed: the reservation (or the smaller amount actually used) stays held until a balance snapshot '
    'taken after the commit arrives, then retires. The commit is stamped with the database clock at the call '
    '(clock_timestamp(), not the transaction start); a snapshot retires it only when its as_of (the exchange''s clock) '
    'is later by more than botai.balance_clock_skew. True once; false when not held (committed, released, expired).';
COMMENT ON FUNCTION botai_update_balance(text, text, numeric, numeric, numeric, timestamptz, interval) IS
    'botai_update_balance from a caller that knows how far as_of''s clock can be from the database''s: commits older '
    'than as_of minus clock_skew retire (instead of botai.balance_clock_skew).';
