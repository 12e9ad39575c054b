//! What the dashboard, `/api/status` and `botai status` show of the
//! database, read in one statement (the live feed runs it after every
//! change it is told of).

use serde_json::Value;

use super::functions::Sql;
use super::value::{Cell, Json};
use super::Result;

const DASHBOARD: &str = "\
SELECT jsonb_build_object(
  'health', botai_health(),
  'trading_state', (SELECT jsonb_build_object('mode', t.mode, 'reason', t.reason, 'changed_by', t.changed_by,
                                              'changed_at', t.changed_at, 'halting_alerts', t.halting_alerts)
                    FROM botai.trading_state t),
  'balances', coalesce((SELECT jsonb_agg(jsonb_build_object('exchange', b.exchange, 'asset', b.asset,
                                   'total', b.total, 'available', b.available, 'reserved', b.reserved, 'free', b.free,
                                   'age_seconds', round(extract(epoch FROM b.age)::numeric, 1))
                                 ORDER BY b.exchange, b.asset) FROM botai.balances_status b), '[]'),
  'components', coalesce((SELECT jsonb_agg(jsonb_build_object('component', c.component, 'status', c.status,
                                   'pid', c.metadata->>'pid', 'heartbeat_age_seconds', c.heartbeat_age_seconds,
                                   'active_tasks', c.active_tasks, 'errors_last_minute', c.errors_last_minute,
                                   'exchange', c.metadata->>'exchange', 'clock_offset_ms', c.metadata->>'clock_offset_ms',
                                   'private_stream', c.metadata->>'private_stream') ORDER BY c.component)
                          FROM botai.components_status c), '[]'),
  'workers', coalesce((SELECT jsonb_agg(jsonb_build_object('worker_id', w.worker_id, 'worker_type', w.worker_type,
                                   'state', w.state, 'epoch', w.epoch, 'pid', w.pid) ORDER BY w.worker_type, w.slot)
                       FROM botai.workers_status w WHERE w.state <> 'unregistered'), '[]'),
  'reservations', coalesce((SELECT jsonb_agg(r ORDER BY r.exchange, r.asset) FROM (
        SELECT exchange, asset, count(*) FILTER (WHERE status = 'held') AS held,
               coalesce(sum(amount) FILTER (WHERE status = 'held'), 0) AS held_amount,
               count(*) FILTER (WHERE status = 'committed') AS committed,
               coalesce(sum(committed_amount) FILTER (WHERE status = 'committed'), 0) AS committed_amount
        FROM botai.reservations_status WHERE holds_funds GROUP BY exchange, asset) r), '[]'),
  'positions', coalesce((SELECT jsonb_agg(jsonb_build_object('exchange', p.exchange, 'symbol', p.symbol, 'qty', p.qty,
                                   'avg_entry', p.avg_entry, 'last_price', p.last_price, 'notional', p.notional,
                                   'unrealized_pnl', p.unrealized_pnl, 'realized_pnl', p.realized_pnl, 'fees', p.fees,
                                   'open_orders', p.open_orders) ORDER BY p.exchange, p.symbol)
                         FROM botai.positions_status p WHERE p.qty <> 0 OR p.open_orders > 0 OR p.trades > 0), '[]'),
  'rate_limits', coalesce((SELECT jsonb_agg(jsonb_build_object('exchange', e.exchange, 'endpoint', u.endpoint,
                                   'used', u.used, 'limit', u.effective_limit, 'window_seconds', u.window_seconds,
                                   'utilization', u.utilization, 'next_free_in', u.next_free_in)
                                 ORDER BY e.exchange, u.endpoint)
                         FROM (SELECT DISTINCT exchange FROM botai.rate_limits) e,
                              LATERAL botai_rate_usage(e.exchange) u), '[]'),
  'orders', coalesce((SELECT jsonb_agg(o ORDER BY o.order_id DESC) FROM (
        SELECT order_id, signal_id, side, status, qty, price, fee, ret_code, round(latency_ms::numeric, 1) AS latency_ms,
               finished_at FROM botai.orders_status ORDER BY order_id DESC LIMIT 15) o), '[]'),
  'alerts', coalesce((SELECT jsonb_agg(a ORDER BY a.opened_at DESC) FROM (
        SELECT rule, subject, severity, action, opened_at, round(open_seconds::numeric) AS open_seconds
        FROM botai.open_alerts ORDER BY opened_at DESC LIMIT 20) a), '[]'),
  'open_alert_count', (SELECT count(*) FROM botai.open_alerts),
  'alert_events', coalesce((SELECT jsonb_agg(x ORDER BY x.event_id DESC) FROM (
        SELECT e.event_id, e.event, e.occurred_at, a.rule, a.subject, a.severity,
               coalesce((SELECT jsonb_object_agg(d.channel, d.status) FROM botai.alert_deliveries d
                         WHERE d.event_id = e.event_id), '{}') AS deliveries
        FROM botai.alert_events e JOIN botai.alerts a ON a.alert_id = e.alert_id
        ORDER BY e.event_id DESC LIMIT 20) x), '[]'),
  'alert_deliveries', coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.channel)
                                FROM botai.alert_deliveries_status s), '[]'))";

#[allow(async_fn_in_trait)]
pub trait DashboardSql {
    /// Health, trading state, balances, each component and worker,
    /// reservations, positions, rate-limit usage per endpoint, the latest
    /// orders, open alerts, the latest alert events with their deliveries,
    /// and each channel's outbox. `botai status` prints the same document.
    async fn dashboard(&self) -> Result<Value>;
}

impl<C: Sql> DashboardSql for C {
    async fn dashboard(&self) -> Result<Value> {
        // Whatever the tables hold: an amount no f64 holds is shown as out of range.
        Ok(self.q_one("dashboard", DASHBOARD, &[]).await?.col::<Json>(0, "dashboard")?.0)
    }
}
