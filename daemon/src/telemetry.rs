//! The daemon's own counters: read by the periodic summary line and the
//! end-of-run report, and exposed at /metrics through prometheus-client
//! beside the extension's metrics.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Requests that woke too late for their booked moment and booked again
/// (the limiter, `exchange::limits::until_booked`, counts them; exported as
/// `botai_late_departures`). Process-wide: the limiter is a free function.
pub static LATE_DEPARTURES: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);

/// This process's resident memory as a percentage of the machine's, for
/// component heartbeats (the memory_usage rule reads it); None where /proc
/// does not say.
pub fn memory_percent() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kib: f64 =
        meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    (total_kib > 0.0).then(|| (100.0 * resident_pages * page / (total_kib * 1024.0) * 1000.0).round() / 1000.0)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Delivery {
    pub channel: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub status: String,
    pub ret_code: String,
}

pub struct Telemetry {
    registry: Mutex<Registry>,
    pub bars: Counter,
    pub predictions: Counter,
    pub skipped_bars: Counter,
    pub signals: Family<Reason, Counter>,
    pub orders: Family<Outcome, Counter>,
    /// Seconds from signal acceptance to the order's outcome recorded.
    pub order_latency: Histogram,
    pub equity: Gauge<f64, AtomicU64>,
    pub exchange_penalties: Counter,
    /// Order updates the venue's private stream pushed that the engine used.
    pub order_pushes: Counter,
    /// The venue's clock minus ours (seconds), as last measured.
    pub exchange_clock_offset: Gauge<f64, AtomicU64>,
    /// Orders botai_reserve_order or botai_send_permit refused, by the
    /// limit or state named (funds, halted, max_position_notional…).
    pub risk_refusals: Family<Reason, Counter>,
    /// Requests per batched statement, by engine step.
    pub batch_sizes: Family<Stage, Histogram, fn() -> Histogram>,
    /// Attempts to deliver an alert event, by channel and outcome.
    pub alert_deliveries: Family<Delivery, Counter>,
    /// Notifications dropped because what they named was not there (a
    /// signal id that does not exist, a payload without one): hints only,
    /// never retried.
    pub notifications_dropped: Family<Reason, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let t = Telemetry {
            registry: Mutex::new(Registry::with_prefix("botai_daemon")),
            bars: Counter::default(),
            predictions: Counter::default(),
            skipped_bars: Counter::default(),
            signals: Family::default(),
            orders: Family::default(),
            order_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            equity: Gauge::default(),
            exchange_penalties: Counter::default(),
            order_pushes: Counter::default(),
            exchange_clock_offset: Gauge::default(),
            risk_refusals: Family::default(),
            batch_sizes: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 8))),
            alert_deliveries: Family::default(),
            notifications_dropped: Family::default(),
        };
        {
            let mut r = t.registry.lock().expect("fresh registry");
            r.register("bars", "Bars the ML manager processed", t.bars.clone());
            r.register(
                "notifications_dropped",
                "botai_signals notifications naming nothing this engine can act on (no such signal, no signal id)",
                t.notifications_dropped.clone(),
            );
            r.register("predictions", "Model predictions", t.predictions.clone());
            r.register("skipped_bars", "Bars skipped (gaps, invalid data, model errors)", t.skipped_bars.clone());
            r.register("signals", "Signal registrations by verdict", t.signals.clone());
            r.register("orders", "Orders by outcome and exchange retCode", t.orders.clone());
            r.register(
                "order_latency_seconds",
                "From signal acceptance to the order's outcome recorded",
                t.order_latency.clone(),
            );
            r.register("equity", "Account value in quote currency", t.equity.clone());
            r.register("exchange_penalties", "Rate-limit answers from the exchange", t.exchange_penalties.clone());
            r.register(
                "late_departures",
                "Requests that woke too late for their booked moment and booked again",
                LATE_DEPARTURES.clone(),
            );
            r.register(
                "order_pushes",
                "Order updates pushed by the venue's private stream that the engine used",
                t.order_pushes.clone(),
            );
            r.register(
                "exchange_clock_offset_seconds",
                "The venue's clock minus the daemon's, as last measured (signed requests carry our time plus it)",
                t.exchange_clock_offset.clone(),
            );
            r.register(
                "order_refusals",
                "Orders refused before sending, by the limit or trading state that stopped them",
                t.risk_refusals.clone(),
            );
            r.register(
                "engine_batch_size",
                "Requests per batched statement of the trading engine",
                t.batch_sizes.clone(),
            );
            r.register(
                "alert_deliveries",
                "Attempts to deliver an alert event, by channel and outcome (delivered, failed)",
                t.alert_deliveries.clone(),
            );
        }
        t
    }

    /// The batch-size histogram of one engine step.
    pub fn batch_size(&self, stage: &str) -> Histogram {
        self.batch_sizes.get_or_create(&Stage { stage: stage.to_owned() }).clone()
    }

    /// A refusal of botai_reserve_order / botai_send_permit: counted by
    /// the name it starts with ("max_open_orders: …" → max_open_orders).
    pub fn risk_refusal(&self, why: &str) {
        let name = why.split(':').next().unwrap_or("other").trim();
        self.risk_refusals.get_or_create(&Reason { reason: name.to_owned() }).inc();
    }

    pub fn alert_delivery(&self, channel: &str, outcome: &str) {
        self.alert_deliveries
            .get_or_create(&Delivery { channel: channel.to_owned(), outcome: outcome.to_owned() })
            .inc();
    }

    pub fn signal(&self, reason: &str) {
        self.signals.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    pub fn order(&self, status: &str, ret_code: Option<i64>) {
        let ret_code = ret_code.map_or_else(String::new, |c| c.to_string());
        self.orders.get_or_create(&Outcome { status: status.to_owned(), ret_code }).inc();
    }

    pub fn signals_with(&self, reason: &str) -> u64 {
        self.signals.get_or_create(&Reason { reason: reason.to_owned() }).get()
    }

    /// Orders with this status (any retCode), or with this retCode (any status).
    pub fn orders_with(&self, status: Option<&str>, ret_code: Option<i64>) -> u64 {
        let mut n = 0;
        let code = ret_code.map(|c| c.to_string());
        for (status_label, count) in self.order_counts() {
            let (s, c) = status_label;
            if status.is_none_or(|want| want == s) && code.as_ref().is_none_or(|want| *want == c) {
                n += count;
            }
        }
        n
    }

    fn order_counts(&self) -> Vec<((String, String), u64)> {
        let mut out = Vec::new();
        for status in ["filled", "rejected", "skipped", "failed", "expired"] {
            for code in ["", "10006", "110007", "110072", "403"] {
                let c = self.orders.get_or_create(&Outcome { status: status.into(), ret_code: code.into() }).get();
                if c > 0 {
                    out.push(((status.to_owned(), code.to_owned()), c));
                }
            }
        }
        out
    }

    /// The Prometheus text of the daemon's own metrics.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
        out
    }

    pub fn equity_now(&self) -> f64 {
        self.equity.get()
    }
}
