-- botai schema: the tables behind the SQL API.
--
-- Functions live in the extension's schema (public by default) so clients
-- call them by plain name; state lives here, in schema botai, which clients
-- never write directly (see the grants applied by migrations/).

CREATE SCHEMA botai;
COMMENT ON SCHEMA botai IS 'State of the botai coordination layer. Write through the botai_* functions only.';

-------------------------------------------------------------------------------
-- Signals (SQL_API.md §1)
-------------------------------------------------------------------------------
CREATE TABLE botai.signals (
    signal_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint  text        NOT NULL,
    symbol       text        NOT NULL,
    direction    text        NOT NULL CHECK (direction IN ('BUY', 'SELL')),
    strategy     text        NOT NULL,
    signal_ts    timestamptz NOT NULL,
    strength     float8,
    exchange     text,
    payload      jsonb       NOT NULL,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signals_fingerprint_key UNIQUE (fingerprint)
);
CREATE INDEX signals_cooldown_idx ON botai.signals (symbol, direction, strategy, signal_ts);
-- Append-only and time-ordered: a BRIN index serves retention and "recent"
-- at a fraction of a B-tree's cost per insert.
CREATE INDEX signals_accepted_at_idx ON botai.signals USING brin (accepted_at);
COMMENT ON TABLE botai.signals IS
    'Accepted signals, one row per fingerprint. Rejected (duplicate, stale, cooldown) calls leave no row.';

-------------------------------------------------------------------------------
-- Workers (SQL_API.md §2)
-------------------------------------------------------------------------------
CREATE TABLE botai.worker_types (
    worker_type  text    PRIMARY KEY CHECK (length(worker_type) BETWEEN 1 AND 64 AND worker_type = btrim(worker_type)),
    type_id      integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    max_workers  integer NOT NULL DEFAULT 1 CHECK (max_workers BETWEEN 1 AND 1024),
    min_workers  integer NOT NULL DEFAULT 0 CHECK (min_workers >= 0),
    last_epoch   bigint  NOT NULL DEFAULT 0,
    description  text
);
COMMENT ON TABLE botai.worker_types IS
    'Worker types and their slot counts. last_epoch is the fencing token of the latest registration.';
COMMENT ON COLUMN botai.worker_types.type_id IS
    'Part of the lock key of the type''s slots: in pg_locks, locktype ''userlock'', classid 1651471457, '
    'objid type_id * 1024 + slot, objsubid 0, held by the registering session.';

CREATE TABLE botai.workers (
    worker_id       text        PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 64),
    worker_type     text        NOT NULL REFERENCES botai.worker_types ON UPDATE CASCADE ON DELETE CASCADE,
    slot            integer     NOT NULL,
    lock_key        integer     NOT NULL,
    epoch           bigint      NOT NULL,
    backend_pid     integer     NOT NULL,
    backend_start   timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'running'
                                CHECK (status IN ('running', 'idle', 'busy', 'error', 'stopped')),
    active_tasks    integer     NOT NULL DEFAULT 0 CHECK (active_tasks >= 0),
    metadata        jsonb       NOT NULL DEFAULT '{}',
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    unregistered_at timestamptz,
    end_reason      text
);
CREATE INDEX workers_type_slot_idx ON botai.workers (worker_type, slot);
CREATE INDEX workers_backend_idx ON botai.workers (backend_pid) WHERE unregistered_at IS NULL;

CREATE TABLE botai.tasks (
    task_id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_type           text        NOT NULL CHECK (length(worker_type) BETWEEN 1 AND 64),
    payload               jsonb       NOT NULL,
    dedup_key             text,
    status                text        NOT NULL DEFAULT 'queued'
                                      CHECK (status IN ('queued', 'claimed', 'done', 'failed')),
    attempts              integer     NOT NULL DEFAULT 0,
    claimed_by            text,
    claimed_pid           integer,
    claimed_backend_start timestamptz,
    claimed_at            timestamptz,
    completed_at          timestamptz,
    result                jsonb,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_queued_idx ON botai.tasks (worker_type, task_id) WHERE status = 'queued';
CREATE INDEX tasks_claimed_idx ON botai.tasks (worker_type) WHERE status = 'claimed';
CREATE UNIQUE INDEX tasks_dedup_key_idx ON botai.tasks (worker_type, dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('queued', 'claimed');

CREATE TABLE botai.orders (
    order_id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signal_id          bigint      NOT NULL,
    fingerprint        text        NOT NULL,
    client_order_id    text        NOT NULL,
    engine             text        NOT NULL,
    engine_epoch       bigint      NOT NULL,
    exchange           text        NOT NULL,
    symbol             text        NOT NULL,
    side               text        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    status             text        NOT NULL DEFAULT 'claimed'
                                   CHECK (status IN ('claimed', 'filled', 'rejected', 'failed', 'skipped', 'expired')),
    attempt            integer     NOT NULL DEFAULT 1,
    qty                numeric,
    price              numeric,
    notional           numeric,
    fee                numeric,
    exchange_order_id  text,
    ret_code           integer,
    message            text,
    reservation_id     uuid,
    details            jsonb,
    signal_accepted_at timestamptz NOT NULL,
    claimed_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    -- 0.4.0: what botai_reserve_order reserved it for, and what its fill did.
    planned_qty        numeric,
    planned_price      numeric,
    fee_asset          text,
    fee_quote          numeric,
    realized_pnl       numeric,
    CONSTRAINT orders_signal_id_key UNIQUE (signal_id),
    CONSTRAINT orders_client_order_id_key UNIQUE (client_order_id)
);
CREATE INDEX orders_claimed_idx ON botai.orders (engine) WHERE status = 'claimed';
-- Each order leaves a dead entry in orders_claimed_idx, which the engines'
-- catch-up walks: vacuum after a fixed number of dead rows.
ALTER TABLE botai.orders SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
-- Orders reserved and not finished: what the risk checks add to positions.
CREATE INDEX orders_open_idx ON botai.orders (exchange, symbol) WHERE status = 'claimed' AND planned_qty IS NOT NULL;
-- The day's fills, for the daily loss.
CREATE INDEX orders_filled_idx ON botai.orders (exchange, finished_at) WHERE status = 'filled';
COMMENT ON TABLE botai.orders IS
    'One row per accepted signal a trading engine handled: at most one order per signal. client_order_id derives '
    'from the fingerprint, so a retry can never place a second order at the exchange.';

-------------------------------------------------------------------------------
-- Rate limits (SQL_API.md §3): configuration only; the windows are in
-- shared memory.
-------------------------------------------------------------------------------
CREATE TABLE botai.rate_limits (
    exchange        text    NOT NULL CHECK (length(exchange) BETWEEN 1 AND 64 AND exchange = lower(btrim(exchange))),
    endpoint        text    NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 64 AND endpoint = btrim(endpoint)),
    max_weight      integer NOT NULL CHECK (max_weight > 0),
    window_seconds  float8  NOT NULL CHECK (window_seconds > 0 AND window_seconds <= 86400),
    default_weight  integer NOT NULL DEFAULT 1 CHECK (default_weight > 0),
    description     text,
    PRIMARY KEY (exchange, endpoint)
);
COMMENT ON TABLE botai.rate_limits IS
    'Request limits per exchange and endpoint; endpoint ''global'' applies to every request of the exchange. '
    'The effective limit is floor(max_weight * botai.rate_limit_safety_margin). Edits apply at commit, to every session.';

INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds, default_weight, description) VALUES
    ('bybit',   'global',      600,   5, 1, 'Bybit V5: the IP limit, 600 requests per 5 s over all traffic; broken, HTTP 403 and a 10-minute wait (bybit-exchange.github.io/docs/v5/rate-limit, "HTTP IP limit")'),
    ('bybit',   'order',        10,   1, 1, 'Bybit V5: /v5/order/create, amend, cancel, per UID: 10/s for futures at the default level (spot allows 20/s) (docs/v5/rate-limit, "API Rate Limit Rules for VIPs", Default row)'),
    ('bybit',   'order_query',  50,   1, 1, 'Bybit V5: /v5/order/realtime, /v5/order/history, /v5/execution/list, per UID: 50/s (docs/v5/rate-limit, API rate limit table)'),
    ('bybit',   'position',     50,   1, 1, 'Bybit V5: /v5/position/list, per UID: 50/s (docs/v5/rate-limit, API rate limit table)'),
    ('bybit',   'account',      50,   1, 1, 'Bybit V5: /v5/account/wallet-balance and account info, per UID: 50/s (docs/v5/rate-limit, API rate limit table)'),
    ('binance', 'global',     2400,  60, 1, 'Binance USDⓈ-M: request weight of the IP, 2400 per minute (exchangeInfo rateLimits REQUEST_WEIGHT); broken, HTTP 429, persisting, 418 and a ban'),
    ('binance', 'order',       200,  10, 1, 'Binance USDⓈ-M: orders of the account, 300 per 10 s and 1200 per minute (exchangeInfo rateLimits ORDERS); 200 per 10 s keeps both'),
    ('binance', 'account',    2400,  60, 5, 'Binance USDⓈ-M: balance, account and positions, weight 5 each in the request weight (endpoint docs)'),
    ('telegram', 'global',      30,   1, 1, 'Telegram Bot API: about 30 messages per second over all chats (core.telegram.org/bots/faq, "broadcasting to users")'),
    ('telegram', 'chat',         2,   2, 1, 'Telegram Bot API: about one message per second to one chat; booked at 90 %, one per 2 s (bots/faq)'),
    ('telegram', 'group',       20,  60, 1, 'Telegram Bot API: at most 20 messages per minute to one group (bots/faq)');

-------------------------------------------------------------------------------
-- Balances (SQL_API.md §4)
-------------------------------------------------------------------------------
CREATE TABLE botai.balances (
    exchange     text        NOT NULL,
    asset        text        NOT NULL,
    total        numeric     NOT NULL CHECK (total >= 0),
    available    numeric     NOT NULL CHECK (available >= 0 AND available <= total),
    locked       numeric     NOT NULL CHECK (locked >= 0),
    as_of        timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    held         numeric     NOT NULL DEFAULT 0 CHECK (held >= 0),
    held_expiry_floor timestamptz NOT NULL DEFAULT '-infinity',
    fold_mark    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (exchange, asset)
);
COMMENT ON TABLE botai.balances IS
    'Latest balance snapshot per exchange and asset; as_of is when the exchange reported it.';
COMMENT ON COLUMN botai.balances.held IS
    'Sum of reservations.counted for this exchange/asset, written only under the row''s lock by reservers. '
    'The reserved figure is held minus what released, committed, expired and retired reservations freed since '
    'the last fold (botai.balances_status computes it).';

CREATE TABLE botai.reservations (
    reservation_id   uuid        PRIMARY KEY, -- time-ordered (UUIDv7), made by botai_reserve_balance
    exchange         text        NOT NULL,
    asset            text        NOT NULL,
    amount           numeric     NOT NULL CHECK (amount > 0),
    purpose          text        NOT NULL,
    metadata         jsonb,
    status           text        NOT NULL DEFAULT 'held'
                                 CHECK (status IN ('held', 'committed', 'released', 'expired', 'retired')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    committed_at     timestamptz,
    committed_amount numeric     CHECK (committed_amount > 0 AND committed_amount <= amount),
    closed_at        timestamptz,
    counted          numeric     NOT NULL CHECK (counted >= 0 AND counted <= amount),
    pending_seq      bigint
);
CREATE SEQUENCE botai.reservation_pending_seq;
COMMENT ON COLUMN botai.balances.held_expiry_floor IS
    'No held reservation of this exchange/asset expires before this moment (written under the row''s lock): '
    'until then nobody needs to look for lapsed reservations.';
COMMENT ON COLUMN botai.balances.fold_mark IS
    'Reservers fold the reservations whose pending_seq is above this (a margin below the newest they folded); '
    'a full fold, when the funds look short, takes every one.';
COMMENT ON COLUMN botai.reservations.counted IS
    'What this reservation contributes to balances.held; changed only under the balance row''s lock.';
COMMENT ON COLUMN botai.reservations.pending_seq IS
    'Order in which reservations were retired or expired without settling balances.held (folded later).';
-- Reservations still counted though they hold nothing now (retired by a
-- balance snapshot, expired by the monitor): what a fold visits.
CREATE INDEX reservations_unfolded_idx ON botai.reservations (exchange, asset, pending_seq)
    WHERE counted > 0 AND status IN ('expired', 'retired');
CREATE INDEX reservations_held_idx ON botai.reservations (exchange, asset, expires_at) WHERE status = 'held';
CREATE INDEX reservations_committed_idx ON botai.reservations (exchange, asset, committed_at)
    WHERE status = 'committed';
-- Every reservation passes through the partial indexes above and leaves a
-- dead entry behind in each; reservers walk those entries until VACUUM
-- removes them. Vacuum after a fixed number of dead rows, not after a
-- fraction of a table that keeps its history.
ALTER TABLE botai.reservations SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

-------------------------------------------------------------------------------
-- Monitor (SQL_API.md §5)
-------------------------------------------------------------------------------
CREATE TABLE botai.components (
    component      text        PRIMARY KEY CHECK (length(component) BETWEEN 1 AND 64),
    status         text        NOT NULL DEFAULT 'healthy'
                               CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'stopped')),
    active_tasks   integer     NOT NULL DEFAULT 0 CHECK (active_tasks >= 0),
    metadata       jsonb       NOT NULL DEFAULT '{}',
    registered_at  timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    errors_total   bigint      NOT NULL DEFAULT 0,
    last_error     text,
    last_error_at  timestamptz
);

CREATE TABLE botai.component_errors (
    error_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component    text        NOT NULL,
    error        text        NOT NULL,
    is_critical  boolean     NOT NULL DEFAULT false,
    reported_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX component_errors_recent_idx ON botai.component_errors (component, reported_at);

CREATE TABLE botai.alert_rules (
    rule            text    PRIMARY KEY CHECK (length(rule) BETWEEN 1 AND 64),
    kind            text    NOT NULL CHECK (kind IN ('heartbeat_timeout', 'high_error_rate', 'memory_usage',
                                                     'worker_offline', 'low_balance', 'rate_limit_exceeded',
                                                     'daily_loss', 'critical_error', 'notify_queue')),
    threshold       float8  NOT NULL,
    window_seconds  float8  NOT NULL DEFAULT 60 CHECK (window_seconds > 0),
    severity        text    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    action          text    NOT NULL DEFAULT 'notify'
                            CHECK (action IN ('notify', 'restart_component', 'page', 'halt', 'reduce_only')),
    enabled         boolean NOT NULL DEFAULT true,
    params          jsonb   NOT NULL DEFAULT '{}',
    description     text
);
COMMENT ON TABLE botai.alert_rules IS
    'Alert rules evaluated by the botai monitor background worker every botai.monitor_interval. '
    'Edits apply at the next evaluation.';

INSERT INTO botai.alert_rules (rule, kind, threshold, window_seconds, severity, action, params, description) VALUES
    ('heartbeat_timeout',   'heartbeat_timeout',   120, 60, 'critical', 'restart_component', '{}',
     'A component has not sent a heartbeat for threshold seconds'),
    ('high_error_rate',     'high_error_rate',      10, 60, 'warning',  'notify', '{}',
     'A component reported more than threshold errors within window_seconds'),
    ('memory_usage',        'memory_usage',         90, 60, 'warning',  'notify', '{}',
     'A component reports memory_percent above threshold'),
    ('worker_offline',      'worker_offline',        0, 60, 'critical', 'notify', '{}',
     'A worker''s session ended without unregistering and its slot has not been taken again'),
    ('low_balance',         'low_balance',           0, 60, 'warning',  'notify', '{}',
     'Free balance (available minus held reservations) below the threshold; per exchange/asset thresholds in params, e.g. {"bybit/USDT": 100}'),
    ('rate_limit_exceeded', 'rate_limit_exceeded',  30, 60, 'warning',  'notify', '{}',
     'An exchange penalised us (botai_rate_penalize) or the next free slot is more than threshold seconds away'),
    ('daily_loss',          'daily_loss',            0, 60, 'critical', 'halt',   '{}',
     'An exchange account lost at least its max_daily_loss today (botai.risk_limits, symbol ''*''; UTC day, realised minus fees plus unrealised): trading is halted'),
    ('critical_error',      'critical_error',        0, 300, 'critical', 'notify', '{}',
     'A component reported more than threshold critical errors (botai_report_error(..., true)) within window_seconds'),
    ('notify_queue',        'notify_queue',          5, 60, 'critical', 'notify', '{}',
     'The cluster''s NOTIFY queue is more than threshold percent full (pg_notification_queue_usage()): a session that LISTENs inside a transaction it never ends holds it; when it is full every NOTIFY, and so every signal, fails');

CREATE TABLE botai.alerts (
    alert_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule         text        NOT NULL REFERENCES botai.alert_rules ON UPDATE CASCADE ON DELETE CASCADE,
    subject      text        NOT NULL,
    severity     text        NOT NULL,
    action       text        NOT NULL,
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    opened_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    value        float8,
    details      jsonb
);
CREATE UNIQUE INDEX alerts_one_open_idx ON botai.alerts (rule, subject) WHERE status = 'open';
-- The alerts of rules that halt (botai.trading_state reads those nobody
-- acknowledged on every reservation and send permit): a handful.
CREATE INDEX alerts_halting_idx ON botai.alerts (alert_id) WHERE action IN ('halt', 'reduce_only');

-- 0.7.0: an operator's acknowledgement of an alert (botai_resume …
-- acknowledge): who, when and why. A table of its own, so that recording
-- one never locks the alert the monitor updates every round.
CREATE TABLE botai.alert_acknowledgements (
    alert_id        bigint      PRIMARY KEY REFERENCES botai.alerts ON DELETE CASCADE,
    acknowledged_by text        NOT NULL,
    acknowledged_at timestamptz NOT NULL DEFAULT now(),
    reason          text        NOT NULL
);
COMMENT ON TABLE botai.alert_acknowledgements IS
    'An operator took note of an alert (botai_resume(reason, acknowledge => ARRAY[alert_id])): who (the session''s '
    'login), when and why. An alert of a rule that halts holds trading halted, open or resolved, until it is '
    'acknowledged here.';

-- Delivery of alerts to people (0.5.0): every open and resolve is an event;
-- each event is owed once to every channel registered when it happened.
CREATE TABLE botai.alert_events (
    event_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint      NOT NULL REFERENCES botai.alerts ON DELETE CASCADE,
    event        text        NOT NULL CHECK (event IN ('opened', 'resolved')),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (alert_id, event)
);
COMMENT ON TABLE botai.alert_events IS
    'Each opening and resolution of an alert, written by the monitor in the statement that opens or resolves it.';

CREATE TABLE botai.alert_channels (
    channel       text        PRIMARY KEY CHECK (channel ~ '^[a-z][a-z0-9_]{0,31}$'),
    triggers      text[]      NOT NULL,
    enabled       boolean     NOT NULL DEFAULT true,
    registered_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE botai.alert_channels IS
    'Where alerts go (log, telegram, email, webhook), registered by an operator (botai_alert_channel; `botai alerts '
    'apply`): an event is owed to each enabled channel whose triggers match it (botai.alert_triggers), from the '
    'channel''s registration on. The daemons deliver the channels they have the secrets of.';
-- Every daemon that delivers alerts writes them to its log: owed from the start.
INSERT INTO botai.alert_channels (channel, triggers) VALUES ('log', '{*}');

CREATE TABLE botai.alert_deliveries (
    event_id        bigint      NOT NULL REFERENCES botai.alert_events ON DELETE CASCADE,
    channel         text        NOT NULL REFERENCES botai.alert_channels ON UPDATE CASCADE ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claimed_until   timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX alert_deliveries_due_idx ON botai.alert_deliveries (channel, next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE botai.alert_deliveries IS
    'The delivery outbox: one row per event and channel, created with the event. A deliverer claims due rows '
    '(SKIP LOCKED, for a lease), sends, and marks them delivered, or failed with the time of the next attempt.';

CREATE TABLE botai.rule_status (
    rule              text        PRIMARY KEY REFERENCES botai.alert_rules ON UPDATE CASCADE ON DELETE CASCADE,
    last_evaluated_at timestamptz NOT NULL,
    last_error        text,
    last_error_at     timestamptz,
    failed_rounds     integer     NOT NULL DEFAULT 0
);
COMMENT ON TABLE botai.rule_status IS
    'Written by the monitor after every evaluation: last_error is set while a rule fails (a bad row), NULL when it works; '
    'failed_rounds counts the rounds in a row it failed (from 3 on, the monitor reports it as its own error, critical '
    'for a rule that halts trading).';

-------------------------------------------------------------------------------
-- Risk (SQL_API.md §6): the kill switch, the limits, the position book.
-------------------------------------------------------------------------------
CREATE TABLE botai.trading_switch (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    mode        text        NOT NULL DEFAULT 'active' CHECK (mode IN ('active', 'reduce_only', 'halted')),
    reason      text,
    changed_by  text        NOT NULL DEFAULT session_user,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO botai.trading_switch DEFAULT VALUES;
COMMENT ON TABLE botai.trading_switch IS
    'The operator''s kill switch, one row (botai.trading_state until 0.7.0): active, reduce_only (only orders that shrink '
    'a position) or halted (no order is sent). Set it with botai_halt(reason[, mode]) and botai_resume(). What is in '
    'force is botai.trading_state: this switch and the open alerts of rules that halt.';

CREATE TABLE botai.risk_limits (
    exchange              text    NOT NULL CHECK (length(exchange) BETWEEN 1 AND 64 AND exchange = lower(btrim(exchange))),
    symbol                text    NOT NULL DEFAULT '*' CHECK (length(symbol) BETWEEN 1 AND 64 AND symbol = btrim(symbol)),
    max_position_notional numeric CHECK (max_position_notional > 0),
    max_order_notional    numeric CHECK (max_order_notional > 0),
    max_open_orders       integer CHECK (max_open_orders > 0),
    max_gross_exposure    numeric CHECK (max_gross_exposure > 0),
    max_daily_loss        numeric CHECK (max_daily_loss > 0),
    description           text,
    PRIMARY KEY (exchange, symbol),
    CONSTRAINT risk_limits_account_only CHECK (symbol = '*' OR (max_gross_exposure IS NULL AND max_daily_loss IS NULL)),
    -- 0.7.0: botai's amounts (botai_core::amount): below 10^16, at most 12 decimals.
    CONSTRAINT risk_limits_in_domain CHECK (
        max_position_notional < 1e16 AND scale(max_position_notional) <= 12
        AND max_order_notional < 1e16 AND scale(max_order_notional) <= 12
        AND max_gross_exposure < 1e16 AND scale(max_gross_exposure) <= 12
        AND max_daily_loss < 1e16 AND scale(max_daily_loss) <= 12)
);
COMMENT ON TABLE botai.risk_limits IS
    'Risk limits checked by botai_reserve_order atomically with the reservation. A row per exchange and symbol; the '
    'row with symbol ''*'' holds the account''s limits (max_gross_exposure, max_daily_loss) and the per-symbol limits '
    'of symbols without a row of their own. NULL is no limit. Edits apply to the next reservation.';

CREATE TABLE botai.positions (
    exchange      text        NOT NULL,
    symbol        text        NOT NULL,
    qty           numeric     NOT NULL DEFAULT 0,
    avg_entry     numeric,
    realized_pnl  numeric     NOT NULL DEFAULT 0,
    fees          numeric     NOT NULL DEFAULT 0,
    last_price    numeric,
    trades        bigint      NOT NULL DEFAULT 0,
    opened_at     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol)
);
COMMENT ON TABLE botai.positions IS
    'The position book: botai''s net position per exchange and symbol (signed base quantity: negative is short), '
    'moved by every fill botai_order_finish records; average entry, realised P&L and fees in the quote currency.';

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

-- worker_types holds only what users add, so pg_dump keeps it whole. The
-- seeded tables (rate_limits, alert_rules) are not marked: a restore would
-- collide with the rows CREATE EXTENSION seeds; dump them with --data-only.
SELECT pg_catalog.pg_extension_config_dump('botai.worker_types', '');
SELECT pg_catalog.pg_extension_config_dump('botai.risk_limits', '');
-- The channels an operator registered (the seeded log channel is the install's).
SELECT pg_catalog.pg_extension_config_dump('botai.alert_channels', 'WHERE channel <> ''log''');
