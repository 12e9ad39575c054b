//! What the limiter shows: usage per endpoint, statistics, and the keys
//! of shared memory.

use super::*;

/// Per configured endpoint: weight in the current window, the effective
/// limit, and how long until a request of the default weight would fit.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_usage(
    exchange: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(endpoint, String),
        name!(used, i32),
        name!(effective_limit, i32),
        name!(window_seconds, f64),
        name!(utilization, f64),
        name!(next_free_in, f64),
    ),
> {
    TableIterator::new(usage(exchange).or_raise("botai_rate_usage"))
}

fn usage(exchange: Option<&str>) -> Result<Vec<UsageRow>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let rows = limits_of(&exchange)?;
    let mut out = Vec::new();
    for row in rows.iter() {
        let plan = plan(Some(&exchange), Some(&row.endpoint), None)?;
        let limiter = Limiter::lock(true)?;
        notice_promotion_locked(&limiter);
        let now = moments(&limiter);
        let mut views_idx = Vec::new();
        let mut from = now.base;
        for key in &plan.keys {
            let i = key_index(&limiter, &exchange, key, now.base)?;
            from = from.max(limiter.key(i).penalty_until);
            views_idx.push((i, key.window));
        }
        let views: Vec<(LogView<'_>, Window)> =
            views_idx.iter().map(|&(i, w)| (LogView::new(&limiter.key(i).log, limiter.entries(i)), w)).collect();
        let own = &views[0];
        let used = own.0.weight_in(now.base - own.1.length_us, now.base);
        let next = earliest_common_fit(&views, from, plan.weight);
        let window = row.window();
        out.push((
            row.endpoint.clone(),
            used as i32,
            window.limit as i32,
            row.window_seconds,
            if window.limit == 0 { 1.0 } else { used as f64 / window.limit as f64 },
            ((next - now.reference) as f64 / 1e6).max(0.0),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

type StatsRow = (String, i64, i64, f64, i64, i64);

/// Counters per endpoint since the server started: booked requests, how
/// many had to wait and for how long in total, try_acquire refusals,
/// penalties.
#[pg_extern(volatile, parallel_unsafe)]
fn botai_rate_stats(
    exchange: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(endpoint, String),
        name!(requests, i64),
        name!(delayed, i64),
        name!(total_wait_seconds, f64),
        name!(refused, i64),
        name!(penalties, i64),
    ),
> {
    TableIterator::new(stats(exchange).or_raise("botai_rate_stats"))
}

fn stats(exchange: Option<&str>) -> Result<Vec<StatsRow>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let limiter = Limiter::lock(false)?;
    let mut out: Vec<StatsRow> = (0..limiter.max_keys)
        .map(|i| limiter.key(i))
        .filter(|k| k.in_use != 0 && k.dboid == dboid && k.exchange() == exchange)
        .map(|k| {
            (
                k.endpoint().to_owned(),
                k.requests as i64,
                k.delayed as i64,
                k.wait_us as f64 / 1e6,
                k.refused as i64,
                k.penalties as i64,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A key of this database as the monitor and the metrics see it.
pub struct KeyState {
    pub exchange: String,
    pub endpoint: String,
    pub requests: u64,
    pub delayed: u64,
    pub refused: u64,
    pub penalties: u64,
    /// Seconds of penalty left.
    pub penalty_seconds: f64,
    /// Seconds until a request of the endpoint's default weight fits this
    /// key's window; None when the key has no configuration any more.
    pub next_free_in: Option<f64>,
}

/// Every key of this database.
pub fn keys() -> Result<Vec<KeyState>> {
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let names: Vec<(String, String)> = {
        let limiter = Limiter::lock(false)?;
        (0..limiter.max_keys)
            .map(|i| limiter.key(i))
            .filter(|k| k.in_use != 0 && k.dboid == dboid)
            .map(|k| (k.exchange().to_owned(), k.endpoint().to_owned()))
            .collect()
    };
    let mut out = Vec::with_capacity(names.len());
    for (exchange, endpoint) in names {
        // Configuration first (may run SQL), then the shared state.
        let row = limits_of(&exchange)?.iter().find(|r| r.endpoint == endpoint).cloned();
        let limiter = Limiter::lock(false)?;
        let Some(i) = (0..limiter.max_keys).find(|&i| limiter.key(i).is(dboid, &exchange, &endpoint)) else {
            continue;
        };
        let key = limiter.key(i);
        let now = clock::wall().max(limiter.header.limiter_clock.load(Ordering::Acquire));
        let next_free_in = row.map(|r| {
            let w = r.window();
            let weight = u64::from(r.default_weight.unsigned_abs()).min(w.limit.max(1));
            let view = LogView::new(&key.log, limiter.entries(i));
            let from = now.max(key.penalty_until);
            let at = view.earliest_fit(from, weight.min(w.limit), w);
            ((at - now) as f64 / 1e6).max(0.0)
        });
        out.push(KeyState {
            exchange: exchange.clone(),
            endpoint: endpoint.clone(),
            requests: key.requests,
            delayed: key.delayed,
            refused: key.refused,
            penalties: key.penalties,
            penalty_seconds: ((key.penalty_until - now) as f64 / 1e6).max(0.0),
            next_free_in,
        });
    }
    Ok(out)
}

/// Every rate-limit key of this database with its counters, penalty and
/// next free slot (the rate_limit_exceeded rule and the metrics read it).
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)] // pgrx reads the column names from the tuple written out here
fn botai_rate_keys() -> TableIterator<
    'static,
    (
        name!(exchange, String),
        name!(endpoint, String),
        name!(requests, i64),
        name!(delayed, i64),
        name!(refused, i64),
        name!(penalties, i64),
        name!(penalty_seconds, f64),
        name!(next_free_in, Option<f64>),
    ),
> {
    let keys = keys().or_raise("botai_rate_keys");
    TableIterator::new(keys.into_iter().map(|k| {
        (
            k.exchange,
            k.endpoint,
            k.requests as i64,
            k.delayed as i64,
            k.refused as i64,
            k.penalties as i64,
            k.penalty_seconds,
            k.next_free_in,
        )
    }))
}
