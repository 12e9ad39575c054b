//! `botai_metrics()`: the Prometheus text exposition (format 0.0.4) of this
//! database, with the metric names of the original design.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use pgrx::prelude::*;

use crate::error::{BotaiError, OrRaise, Result};
use crate::ratelimit;
use crate::shmem;

/// One metric family: HELP, TYPE and its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Rows of a query as (labels…, value).
fn rows(sql: &str, labels: usize) -> Result<Vec<(Vec<String>, f64)>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(sql, None, &[])? {
            let mut ls = Vec::with_capacity(labels);
            for i in 1..=labels {
                ls.push(row.get::<String>(i)?.unwrap_or_default());
            }
            out.push((ls, row.get::<f64>(labels + 1)?.unwrap_or(0.0)));
        }
        Ok::<_, BotaiError>(out)
    })
}

#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_metrics() -> String {
    render().or_raise("botai_metrics")
}

/// The conventional counter name of one of the original design's: the
/// name with `_total` moved to its end.
fn conventional(seed: &'static str) -> &'static str {
    match seed {
        "signal_deduplicator_total_checks" => "signal_deduplicator_checks_total",
        "signal_deduplicator_duplicates_found" => "signal_deduplicator_duplicates_found_total",
        "signal_deduplicator_unique_signals" => "signal_deduplicator_unique_signals_total",
        "signal_deduplicator_stale_rejected" => "signal_deduplicator_stale_rejected_total",
        "signal_deduplicator_cooldown_rejected" => "signal_deduplicator_cooldown_rejected_total",
        "rate_limiter_blocked_requests" => "rate_limiter_blocked_requests_total",
        other => other,
    }
}

fn render() -> Result<String> {
    let mut families = Vec::new();

    let mut f = Family::new("worker_coordinator_active_workers", "gauge", "Workers holding a slot, per type.");
    for (l, v) in rows(
        "SELECT t.worker_type, count(w.worker_id) FILTER (WHERE w.state IN ('active', 'stale'))::float8 \
         FROM botai.worker_types t LEFT JOIN botai.workers_status w USING (worker_type) \
         GROUP BY t.worker_type ORDER BY 1",
        1,
    )? {
        f.add(vec![("type", l[0].clone())], v);
    }
    families.push(f);

    let mut f = Family::new(
        "worker_coordinator_min_workers",
        "gauge",
        "Live workers each type must have (botai.worker_types.min_workers); fewer opens worker_offline.",
    );
    for (l, v) in rows("SELECT worker_type, min_workers::float8 FROM botai.worker_types ORDER BY 1", 1)? {
        f.add(vec![("type", l[0].clone())], v);
    }
    families.push(f);

    let mut f = Family::new(
        "worker_coordinator_heartbeat_age_seconds",
        "gauge",
        "Seconds since the last heartbeat of each worker holding a slot.",
    );
    for (l, v) in rows(
        "SELECT worker_id, heartbeat_age_seconds FROM botai.workers_status \
         WHERE state IN ('active', 'stale') ORDER BY 1",
        1,
    )? {
        f.add(vec![("worker_id", l[0].clone())], v);
    }
    families.push(f);

    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let stats = shmem::db_stats(dboid)?;
    let read = |g: fn(&shmem::DbStats) -> &std::sync::atomic::AtomicU64| {
        stats.map_or(0.0, |s| g(s).load(Ordering::Relaxed) as f64)
    };
    for (name, help, value) in [
        (
            "signal_deduplicator_total_checks",
            "Signal registrations checked since the server started.",
            read(|s| &s.total_checks),
        ),
        ("signal_deduplicator_duplicates_found", "Registrations refused as duplicates.", read(|s| &s.duplicates_found)),
        ("signal_deduplicator_unique_signals", "Registrations accepted.", read(|s| &s.unique_signals)),
        ("signal_deduplicator_stale_rejected", "Registrations refused as stale.", read(|s| &s.stale_rejected)),
        (
            "signal_deduplicator_cooldown_rejected",
            "Registrations refused by the cooldown.",
            read(|s| &s.cooldown_rejected),
        ),
    ] {
        // The original design's names, kept as they are (dashboards of the
        // original platform read them); they are counters, but a counter's
        // name ends in _total, so they are exposed untyped and the same
        // value follows as a conventional counter.
        let mut seed = Family::new(name, "untyped", help);
        seed.add(vec![], value);
        families.push(seed);
        let mut f = Family::new(conventional(name), "counter", help);
        f.add(vec![], value);
        families.push(f);
    }

    let keys = ratelimit::keys()?;
    let mut requests =
        Family::new("rate_limiter_requests_total", "counter", "Requests booked, per exchange and endpoint.");
    let mut blocked = Family::new(
        "rate_limiter_blocked_requests",
        "untyped",
        "Requests that had to wait or were refused, per exchange.",
    );
    let mut penalties =
        Family::new("rate_limiter_penalties_total", "counter", "Penalties from exchanges, per exchange and endpoint.");
    let mut per_exchange: Vec<(String, f64)> = Vec::new();
    for k in &keys {
        requests.add(vec![("exchange", k.exchange.clone()), ("endpoint", k.endpoint.clone())], k.requests as f64);
        penalties.add(vec![("exchange", k.exchange.clone()), ("endpoint", k.endpoint.clone())], k.penalties as f64);
        // Global counts every request of the exchange once more: the waits
        // of an exchange are those of its endpoints.
        if k.endpoint != "global" {
            match per_exchange.iter_mut().find(|(e, _)| *e == k.exchange) {
                Some((_, n)) => *n += (k.delayed + k.refused) as f64,
                None => per_exchange.push((k.exchange.clone(), (k.delayed + k.refused) as f64)),
            }
        }
    }
    let mut blocked_total = Family::new(
        conventional("rate_limiter_blocked_requests"),
        "counter",
        "Requests that had to wait or were refused, per exchange.",
    );
    for (exchange, n) in per_exchange {
        blocked.add(vec![("exchange", exchange.clone())], n);
        blocked_total.add(vec![("exchange", exchange)], n);
    }
    families.extend([requests, blocked, blocked_total, penalties]);

    let mut utilization = Family::new(
        "rate_limiter_utilization",
        "gauge",
        "Weight booked in the current window over the effective limit, per exchange and endpoint (1 is full).",
    );
    let mut next_free = Family::new(
        "rate_limiter_next_free_seconds",
        "gauge",
        "Seconds until a request of the endpoint's default weight fits its window (0: now).",
    );
    Spi::connect(|client| {
        for row in client.select(
            "SELECT e.exchange, u.endpoint, u.utilization, coalesce(u.next_free_in, 0) \
             FROM (SELECT DISTINCT exchange FROM botai.rate_limits) e, LATERAL public.botai_rate_usage(e.exchange) u \
             ORDER BY 1, 2",
            None,
            &[],
        )? {
            let labels = vec![
                ("exchange", row.get::<String>(1)?.unwrap_or_default()),
                ("endpoint", row.get::<String>(2)?.unwrap_or_default()),
            ];
            utilization.add(labels.clone(), row.get::<f64>(3)?.unwrap_or(0.0));
            next_free.add(labels, row.get::<f64>(4)?.unwrap_or(0.0));
        }
        Ok::<_, BotaiError>(())
    })?;
    families.extend([utilization, next_free]);

    let mut total =
        Family::new("balance_manager_total_balance", "gauge", "Latest total balance, per exchange and asset.");
    let mut reserved =
        Family::new("balance_manager_reserved_balance", "gauge", "Held by reservations (held and committed).");
    let mut free = Family::new("balance_manager_free_balance", "gauge", "Available minus reserved.");
    Spi::connect(|client| {
        let sql = concat!(
            "SELECT exchange, asset, ",
            float8_clamped!("total"),
            ", ",
            float8_clamped!("reserved"),
            ", ",
            float8_clamped!("free"),
            " FROM botai.balances_status ORDER BY 1, 2"
        );
        for row in client.select(sql, None, &[])? {
            let labels = vec![
                ("exchange", row.get::<String>(1)?.unwrap_or_default()),
                ("symbol", row.get::<String>(2)?.unwrap_or_default()),
            ];
            total.add(labels.clone(), row.get::<f64>(3)?.unwrap_or(0.0));
            reserved.add(labels.clone(), row.get::<f64>(4)?.unwrap_or(0.0));
            free.add(labels, row.get::<f64>(5)?.unwrap_or(0.0));
        }
        Ok::<_, BotaiError>(())
    })?;
    families.extend([total, reserved, free]);

    let mut health = Family::new(
        "process_monitor_component_health",
        "gauge",
        "1 healthy, 0.5 degraded, 0 unhealthy, down (no heartbeat) or stopped.",
    );
    for (l, v) in rows(
        "SELECT component, CASE status WHEN 'healthy' THEN 1 WHEN 'degraded' THEN 0.5 ELSE 0 END::float8 \
         FROM botai.components_status ORDER BY 1",
        1,
    )? {
        health.add(vec![("name", l[0].clone())], v);
    }
    families.push(health);

    let mut age = Family::new(
        "process_monitor_heartbeat_age_seconds",
        "gauge",
        "Seconds since each component's last heartbeat (components not stopped).",
    );
    for (l, v) in rows(
        "SELECT component, heartbeat_age_seconds FROM botai.components_status WHERE status <> 'stopped' ORDER BY 1",
        1,
    )? {
        age.add(vec![("component", l[0].clone())], v);
    }
    let mut memory = Family::new(
        "process_monitor_memory_percent",
        "gauge",
        "memory_percent each component last reported in its heartbeat metadata.",
    );
    for (l, v) in rows(
        "SELECT component, (metadata->>'memory_percent')::float8 FROM botai.components_status \
         WHERE status <> 'stopped' AND jsonb_typeof(metadata->'memory_percent') = 'number' ORDER BY 1",
        1,
    )? {
        memory.add(vec![("component", l[0].clone())], v);
    }
    families.extend([age, memory]);

    let mut errors = Family::new("process_monitor_errors_total", "counter", "Errors reported, per component.");
    for (l, v) in rows(
        "SELECT component, errors_total::float8 FROM botai.components \
         UNION ALL SELECT e.component, count(*)::float8 FROM botai.component_errors e \
           WHERE NOT EXISTS (SELECT 1 FROM botai.components c WHERE c.component = e.component) GROUP BY e.component \
         ORDER BY 1",
        1,
    )? {
        errors.add(vec![("component", l[0].clone())], v);
    }
    families.push(errors);

    let mut alerts = Family::new("process_monitor_alerts_open", "gauge", "Open alerts, per rule and severity.");
    for (l, v) in rows(
        "SELECT rule, severity, count(*)::float8 FROM botai.alerts WHERE status = 'open' GROUP BY 1, 2 ORDER BY 1, 2",
        2,
    )? {
        alerts.add(vec![("rule", l[0].clone()), ("severity", l[1].clone())], v);
    }
    families.push(alerts);

    let mut owed = Family::new(
        "process_monitor_alert_deliveries_pending",
        "gauge",
        "Alert events owed to a channel and not yet accepted by it.",
    );
    let mut oldest = Family::new(
        "process_monitor_alert_delivery_oldest_pending_seconds",
        "gauge",
        "Age of the oldest alert event still owed to a channel (0 when none).",
    );
    let mut delivered = Family::new(
        "process_monitor_alert_deliveries_delivered",
        "gauge",
        "Alert events a channel accepted that are still on record (pruned with their alerts).",
    );
    Spi::connect(|client| {
        for row in client.select(
            "SELECT channel, pending::float8, coalesce(oldest_pending_seconds, 0), delivered::float8 \
             FROM botai.alert_deliveries_status ORDER BY 1",
            None,
            &[],
        )? {
            let labels = vec![("channel", row.get::<String>(1)?.unwrap_or_default())];
            owed.add(labels.clone(), row.get::<f64>(2)?.unwrap_or(0.0));
            oldest.add(labels.clone(), row.get::<f64>(3)?.unwrap_or(0.0));
            delivered.add(labels, row.get::<f64>(4)?.unwrap_or(0.0));
        }
        Ok::<_, BotaiError>(())
    })?;
    families.extend([owed, oldest, delivered]);

    let mut state = Family::new(
        "risk_trading_state",
        "gauge",
        "1 for the trading state in force (active, reduce_only or halted), 0 for the others.",
    );
    for (l, v) in rows(
        "SELECT m.mode, (m.mode = t.mode)::int::float8 FROM botai.trading_state t, \
           unnest(ARRAY['active', 'reduce_only', 'halted']) AS m(mode) ORDER BY 1",
        1,
    )? {
        state.add(vec![("mode", l[0].clone())], v);
    }
    let mut qty = Family::new("risk_position_qty", "gauge", "botai's net position, signed base quantity (short < 0).");
    let mut notional = Family::new(
        "risk_position_notional",
        "gauge",
        "Absolute position times its last price, in the quote currency.",
    );
    let mut unrealized =
        Family::new("risk_position_unrealized_pnl", "gauge", "Unrealised P&L of the position at its last price.");
    Spi::connect(|client| {
        let sql = concat!(
            "SELECT exchange, symbol, ",
            float8_clamped!("qty"),
            ", ",
            float8_clamped!("coalesce(notional, 0)"),
            ", ",
            float8_clamped!("coalesce(unrealized_pnl, 0)"),
            " FROM botai.positions_status ORDER BY 1, 2"
        );
        for row in client.select(sql, None, &[])? {
            let labels = vec![
                ("exchange", row.get::<String>(1)?.unwrap_or_default()),
                ("symbol", row.get::<String>(2)?.unwrap_or_default()),
            ];
            qty.add(labels.clone(), row.get::<f64>(3)?.unwrap_or(0.0));
            notional.add(labels.clone(), row.get::<f64>(4)?.unwrap_or(0.0));
            unrealized.add(labels, row.get::<f64>(5)?.unwrap_or(0.0));
        }
        Ok::<_, BotaiError>(())
    })?;
    families.extend([state, qty, notional, unrealized]);

    let mut pnl = Family::new(
        "risk_daily_net_pnl",
        "gauge",
        "Net P&L of the UTC day per exchange account: realised minus fees plus unrealised (botai.pnl_today).",
    );
    for (l, v) in rows(concat!("SELECT exchange, ", float8_clamped!("net_pnl"), " FROM botai.pnl_today ORDER BY 1"), 1)?
    {
        pnl.add(vec![("exchange", l[0].clone())], v);
    }
    let mut max_loss = Family::new(
        "risk_max_daily_loss",
        "gauge",
        "The daily loss at which the daily_loss rule halts trading, per exchange account (botai.risk_limits).",
    );
    for (l, v) in rows(
        concat!(
            "SELECT exchange, ",
            float8_clamped!("max_daily_loss"),
            " FROM botai.risk_limits WHERE symbol = '*' AND max_daily_loss IS NOT NULL ORDER BY 1"
        ),
        1,
    )? {
        max_loss.add(vec![("exchange", l[0].clone())], v);
    }
    families.extend([pnl, max_loss]);

    let monitor = shmem::monitor_slot(dboid)?;
    let mut rounds =
        Family::new("process_monitor_rounds_total", "counter", "Evaluation rounds of the monitor since it started.");
    rounds.add(vec![], monitor.map_or(0.0, |m| m.rounds.load(Ordering::Relaxed) as f64));
    let mut failures =
        Family::new("process_monitor_round_failures_total", "counter", "Steps of monitor rounds that failed.");
    failures.add(vec![], monitor.map_or(0.0, |m| m.round_errors.load(Ordering::Relaxed) as f64));
    let mut age = Family::new(
        "process_monitor_last_round_age_seconds",
        "gauge",
        "Seconds since the monitor last completed a round; more than three intervals means it is stalled.",
    );
    age.add(vec![], monitor.map_or(f64::INFINITY, super::last_round_age_seconds));
    let mut queue = Family::new(
        "process_monitor_notification_queue_usage",
        "gauge",
        "Fraction of the cluster's NOTIFY queue in use (pg_notification_queue_usage()); at 1 every NOTIFY fails.",
    );
    // Read-only (a standby answers metrics too: no transaction id).
    let usage = Spi::connect(|client| {
        let rows = client.select("SELECT pg_catalog.pg_notification_queue_usage()", Some(1), &[])?;
        Ok::<_, BotaiError>(if rows.is_empty() { None } else { rows.first().get_one::<f64>()? })
    })?;
    queue.add(vec![], usage.unwrap_or(0.0));
    families.extend([rounds, failures, age, queue]);

    let mut out = String::with_capacity(4096);
    for f in &families {
        f.render(&mut out);
    }
    Ok(out)
}
