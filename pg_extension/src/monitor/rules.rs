//! Alert rules: what each kind of rule looks at, and how alerts open and
//! resolve.
//!
//! A rule row (botai.alert_rules) names a kind and gives its threshold,
//! window, severity, action and params; each kind is a fixed query here
//! returning the subjects that breach the rule now, as (subject, value,
//! details). One statement per rule then opens an alert for each new
//! subject (at most one open alert per rule and subject), refreshes the
//! ones still firing, resolves the ones that cleared, and sends
//! `NOTIFY botai_alerts` for every open and resolve. Thresholds, severities
//! and params are data, read at every evaluation: editing a row changes the
//! next round, no restart needed.

use pgrx::prelude::*;

/// One row of botai.alert_rules.
pub struct Rule {
    pub rule: String,
    pub kind: String,
    pub threshold: f64,
    pub window_seconds: f64,
    pub severity: String,
    pub action: String,
    pub enabled: bool,
    /// The params column as jsonb text, handed to the rule's query as it
    /// is: never turned into a Rust value (numbers in it may exceed an f64).
    pub params: String,
}

/// The subjects breaching a rule of this kind now. Parameters: $1 threshold,
/// $2 window_seconds, $3 params.
fn firing(kind: &str) -> Option<&'static str> {
    Some(match kind {
        // A component that has not sent a heartbeat for `threshold` seconds.
        "heartbeat_timeout" => {
            "SELECT c.component AS subject, extract(epoch FROM now() - c.last_heartbeat)::float8 AS value, \
                    jsonb_build_object('last_heartbeat', c.last_heartbeat, 'reported_status', c.status, \
                                       'active_tasks', c.active_tasks) AS details \
             FROM botai.components c \
             WHERE c.status <> 'stopped' AND c.last_heartbeat < now() - make_interval(secs => $1)"
        }
        // More than `threshold` errors within `window_seconds`.
        "high_error_rate" => {
            "SELECT e.component AS subject, count(*)::float8 AS value, \
                    jsonb_build_object('errors', count(*), 'window_seconds', $2, \
                                       'critical', count(*) FILTER (WHERE e.is_critical), \
                                       'last_error', (array_agg(e.error ORDER BY e.reported_at DESC))[1]) AS details \
             FROM botai.component_errors e \
             WHERE e.reported_at > now() - make_interval(secs => $2) \
             GROUP BY e.component HAVING count(*) > $1"
        }
        // A live component reporting memory_percent above `threshold`.
        "memory_usage" => {
            "SELECT c.component AS subject, (c.metadata->>'memory_percent')::float8 AS value, \
                    jsonb_build_object('memory_percent', c.metadata->'memory_percent', \
                                       'last_heartbeat', c.last_heartbeat) AS details \
             FROM botai.components c \
             WHERE c.status <> 'stopped' AND c.metadata ? 'memory_percent' \
               AND (c.metadata->>'memory_percent')::float8 > $1"
        }
        // A worker whose session ended without unregistering (dead for more
        // than `threshold` seconds, until its slot is taken again), and a
        // worker type with fewer live workers than its min_workers.
        "worker_offline" => {
            "SELECT w.worker_id AS subject, w.heartbeat_age_seconds AS value, \
                    jsonb_build_object('worker_type', w.worker_type, 'pid', w.pid, 'epoch', w.epoch, \
                                       'last_heartbeat', w.last_heartbeat) AS details \
             FROM botai.workers_status w WHERE w.state = 'dead' AND w.heartbeat_age_seconds > $1 \
             UNION ALL \
             SELECT 'type:' || t.worker_type, (t.min_workers - coalesce(l.live, 0))::float8, \
                    jsonb_build_object('worker_type', t.worker_type, 'min_workers', t.min_workers, \
                                       'live', coalesce(l.live, 0)) \
             FROM botai.worker_types t \
             LEFT JOIN (SELECT worker_type, count(*) AS live FROM botai.workers_status \
                        WHERE state IN ('active', 'stale') GROUP BY worker_type) l USING (worker_type) \
             WHERE coalesce(l.live, 0) < t.min_workers"
        }
        // Free funds below a threshold: params {"exchange/ASSET": amount},
        // `threshold` for balances without an entry. Every params value must
        // be a number: a bad row fails here, loudly, every round.
        "low_balance" => concat!(
            "SELECT b.exchange || '/' || b.asset AS subject, ",
            float8_clamped!("b.free"),
            " AS value, \
                    jsonb_build_object('free', b.free, 'threshold', th.threshold, 'available', b.available, \
                                       'reserved', b.reserved) AS details \
             FROM botai.balances_status b \
             CROSS JOIN LATERAL (SELECT coalesce(($3 ->> (b.exchange || '/' || b.asset))::numeric, \
                                                 $1::numeric) AS threshold) th \
             WHERE (SELECT bool_and(p.v::numeric IS NOT NULL) FROM jsonb_each_text($3) AS p(k, v)) \
                   IS DISTINCT FROM false \
               AND b.free < th.threshold"
        ),
        // An exchange penalised us, or the next free slot is more than
        // `threshold` seconds away (sustained delay).
        "rate_limit_exceeded" => {
            "SELECT k.exchange || '/' || k.endpoint AS subject, \
                    greatest(k.penalty_seconds, coalesce(k.next_free_in, 0)) AS value, \
                    jsonb_build_object('penalty_seconds', k.penalty_seconds, 'next_free_in', k.next_free_in, \
                                       'penalties', k.penalties, 'delayed', k.delayed, 'refused', k.refused) AS details \
             FROM public.botai_rate_keys() k \
             WHERE k.penalty_seconds > 0 OR k.next_free_in > $1"
        }
        // More than `threshold` critical errors (botai_report_error with
        // is_critical) within `window_seconds`.
        "critical_error" => {
            "SELECT e.component AS subject, count(*)::float8 AS value, \
                    jsonb_build_object('critical_errors', count(*), 'window_seconds', $2, \
                                       'last_error', (array_agg(e.error ORDER BY e.reported_at DESC))[1], \
                                       'last_error_at', max(e.reported_at)) AS details \
             FROM botai.component_errors e \
             WHERE e.is_critical AND e.reported_at > now() - make_interval(secs => $2) \
             GROUP BY e.component HAVING count(*) > $1"
        }
        // An exchange account whose net P&L of the day (UTC: realised minus
        // fees, plus the open positions' unrealised) is a loss of at least
        // its max_daily_loss (botai.risk_limits, symbol '*').
        // Each account on its own: the value is clamped, the comparison is
        // numeric, so one account's absurd figures (1e200 fills) never stop
        // the rule for the others.
        "daily_loss" => concat!(
            "SELECT l.exchange AS subject, ",
            float8_clamped!("(-p.net_pnl)"),
            " AS value, \
                    jsonb_build_object('loss', -p.net_pnl, 'max_daily_loss', l.max_daily_loss, \
                                       'realized_pnl', p.realized_pnl, 'fees', p.fees, \
                                       'unrealized_pnl', p.unrealized_pnl) AS details \
             FROM botai.risk_limits l JOIN botai.pnl_today p ON p.exchange = l.exchange \
             WHERE l.symbol = '*' AND l.max_daily_loss IS NOT NULL AND -p.net_pnl >= l.max_daily_loss"
        ),
        // The cluster's NOTIFY queue more than `threshold` percent full: a
        // listener that never ends its transaction holds its tail, and a
        // full queue fails every NOTIFY (signals, alerts, trading state).
        "notify_queue" => {
            "SELECT 'cluster' AS subject, u.pct AS value, \
                    jsonb_build_object('usage_percent', round(u.pct::numeric, 4), \
                                       'oldest_listening_transaction', ( \
                                         SELECT jsonb_build_object('pid', a.pid, 'usename', a.usename, \
                                                                   'state', a.state, 'xact_start', a.xact_start) \
                                         FROM pg_catalog.pg_stat_activity a \
                                         WHERE a.xact_start IS NOT NULL AND a.backend_type = 'client backend' \
                                         ORDER BY a.xact_start LIMIT 1)) AS details \
             FROM (SELECT pg_catalog.pg_notification_queue_usage() * 100 AS pct) u WHERE u.pct > $1"
        }
        _ => return None,
    })
}

/// The trading state an action sets, if it is one.
pub fn trading_mode(action: &str) -> Option<&'static str> {
    match action {
        "halt" => Some("halted"),
        "reduce_only" => Some("reduce_only"),
        _ => None,
    }
}

/// The largest NOTIFY payload botai sends, in bytes; PostgreSQL refuses
/// payloads of 8000 bytes or more, which would fail the whole rule. A
/// larger announcement leaves out `details` (the row in botai.alerts keeps
/// them whole; read it by `alert_id`) and cuts the subject to 256
/// characters, so it always fits: rule names are at most 64 characters.
const NOTIFY_PAYLOAD_BYTES: usize = 7000;

/// What one evaluation of a rule changed.
#[derive(Default)]
pub struct Evaluated {
    /// The subjects of the alerts it opened.
    pub opened: Vec<String>,
    pub resolved: usize,
}

/// Opens, refreshes and resolves the alerts of one rule, recording each
/// change as an event (botai.alert_events: the delivery outbox owes it to
/// every channel) and announcing it.
pub fn evaluate(rule: &Rule) -> Result<Evaluated, pgrx::spi::SpiError> {
    let Some(query) = firing(&rule.kind) else {
        return Ok(Evaluated::default());
    };
    // $3 arrives as text; each query reads it as jsonb.
    let query = query.replace("$3", "($3::jsonb)");
    let firing_set = if rule.enabled { query } else { format!("{query} LIMIT 0") };
    let sql = format!(
        "WITH firing AS ({firing_set}), \
         upserted AS ( \
           INSERT INTO botai.alerts AS a (rule, subject, severity, action, value, details) \
           SELECT $4, f.subject, $5, $6, f.value, f.details FROM firing f \
           ON CONFLICT (rule, subject) WHERE status = 'open' DO UPDATE SET last_seen_at = now(), \
             value = EXCLUDED.value, details = EXCLUDED.details, severity = EXCLUDED.severity, \
             action = EXCLUDED.action \
           RETURNING a.alert_id, a.subject, a.value, a.details, (a.xmax = 0) AS opened), \
         resolved AS ( \
           UPDATE botai.alerts a SET status = 'resolved', resolved_at = now() \
           WHERE a.rule = $4 AND a.status = 'open' \
             AND NOT EXISTS (SELECT 1 FROM firing f WHERE f.subject = a.subject) \
           RETURNING a.alert_id, a.subject, a.value, a.details), \
         events AS ( \
           SELECT 'opened' AS event, alert_id, subject, value, details FROM upserted WHERE opened \
           UNION ALL SELECT 'resolved', alert_id, subject, value, details FROM resolved), \
         recorded AS ( \
           INSERT INTO botai.alert_events (alert_id, event) SELECT alert_id, event FROM events \
           RETURNING event_id, alert_id, event) \
         SELECT e.event, e.subject, pg_catalog.pg_notify('botai_alerts', \
                  CASE WHEN octet_length(p.doc::text) <= {NOTIFY_PAYLOAD_BYTES} THEN p.doc::text \
                       ELSE (p.doc - 'details' - 'subject' || jsonb_build_object('details_omitted', true, \
                               'subject', left(e.subject, 256)))::text END) IS NULL \
         FROM events e JOIN recorded r ON r.alert_id = e.alert_id AND r.event = e.event \
         CROSS JOIN LATERAL (SELECT jsonb_build_object( \
                  'event', e.event, 'event_id', r.event_id, 'alert_id', e.alert_id, 'rule', $4, \
                  'subject', e.subject, 'severity', $5, 'action', $6, 'value', e.value, 'details', e.details) AS doc) p"
    );
    Spi::connect_mut(|client| {
        let rows = client.update(
            sql.as_str(),
            None,
            &[
                rule.threshold.into(),
                rule.window_seconds.into(),
                rule.params.as_str().into(),
                rule.rule.as_str().into(),
                rule.severity.as_str().into(),
                rule.action.as_str().into(),
            ],
        )?;
        let mut evaluated = Evaluated::default();
        for row in rows {
            match row.get::<String>(1)?.as_deref() {
                Some("opened") => evaluated.opened.push(row.get::<String>(2)?.unwrap_or_default()),
                _ => evaluated.resolved += 1,
            }
        }
        Ok(evaluated)
    })
}

/// The `restart_component` action: the worker session of the component an
/// alert opened on (the worker_id its metadata names) is ended, as the
/// monitor evicts a stale worker: its slot frees at once, a standby takes
/// it, and the daemon's supervisor starts the component again on a new
/// session. What was done is kept in the alert's details (`restart`). A
/// component that names no live worker session is left as it is, and the
/// details say so.
const RESTART: &str = "WITH target AS ( \
       SELECT w.worker_id, w.pid FROM botai.components c \
       JOIN botai.workers_status w ON w.worker_id = c.metadata->>'worker_id' \
       WHERE c.component = $1 AND w.state IN ('active', 'stale')), \
     ended AS ( \
       UPDATE botai.workers w SET unregistered_at = now(), status = 'stopped', \
              end_reason = format('restarted by the monitor: alert %s on component %s', $2, $1) \
       FROM target t WHERE w.worker_id = t.worker_id RETURNING t.worker_id, t.pid), \
     terminated AS ( \
       SELECT jsonb_agg(jsonb_build_object('worker_id', e.worker_id, 'backend_pid', e.pid, \
                                           'terminated', pg_catalog.pg_terminate_backend(e.pid))) AS sessions \
       FROM ended e) \
     UPDATE botai.alerts a SET details = coalesce(a.details, '{}'::jsonb) || jsonb_build_object('restart', \
              CASE WHEN t.sessions IS NULL \
                   THEN jsonb_build_object('done', false, 'why', 'the component names no live worker session') \
                   ELSE jsonb_build_object('done', true, 'at', now(), 'sessions', t.sessions) END) \
     FROM terminated t WHERE a.rule = $2 AND a.subject = $1 AND a.status = 'open'";

pub fn restart(rule: &Rule, subject: &str) -> Result<(), pgrx::spi::SpiError> {
    Spi::run_with_args(RESTART, &[subject.into(), rule.rule.as_str().into()])
}

/// Every rule row, in name order.
pub fn load() -> Result<Vec<Rule>, pgrx::spi::SpiError> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT rule, kind, threshold, window_seconds, severity, action, enabled, params::text \
             FROM botai.alert_rules ORDER BY rule",
            None,
            &[],
        )?;
        let mut rules = Vec::new();
        for r in rows {
            rules.push(Rule {
                rule: r.get(1)?.unwrap_or_default(),
                kind: r.get(2)?.unwrap_or_default(),
                threshold: r.get(3)?.unwrap_or(0.0),
                window_seconds: r.get(4)?.unwrap_or(60.0),
                severity: r.get(5)?.unwrap_or_default(),
                action: r.get(6)?.unwrap_or_default(),
                enabled: r.get(7)?.unwrap_or(false),
                params: r.get::<String>(8)?.unwrap_or_else(|| "{}".to_owned()),
            });
        }
        Ok(rules)
    })
}
