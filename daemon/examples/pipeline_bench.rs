//! Signals → paper orders through the whole pipeline, limits lifted
//! (`make bench`), beside a plain-SQL pipeline run the same way in the same
//! process, scenario by scenario.
//!
//! botai: a trading engine runs in this process on the in-process paper
//! exchange; drivers register signals through botai as fast as they can
//! (throughput) and then at fixed rates (latency). Every signal goes through
//! the full chain: dedup, NOTIFY, claim, the kill switch and risk limits
//! with the rate-limit booking and the reservation (botai_reserve_order),
//! the send gate, order at the paper exchange, commit, position book,
//! durable record. Latency is botai's
//! own record: from the signal's acceptance to its order's outcome.
//!
//! Baseline: what a bot does with plain SQL and no guarantees beyond one
//! order row per signal — the drivers INSERT the signal (unique key) and
//! pg_notify in one statement; a listener records each order with one
//! INSERT and one UPDATE of a hot balance row. Same drivers, same rates,
//! same concurrency, the same way of measuring.
//!
//!   cargo run --release -p botai-daemon --example pipeline_bench
//!
//! Uses PGDATABASE (make bench points it at the botai_bench database).
//! Environment: PIPELINE_BURST (5000), PIPELINE_RATES (250,500,1000),
//! PIPELINE_SECONDS (8), PIPELINE_DRIVERS (4), PIPELINE_WARMUP (3000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use botai_daemon::config::Config;
use botai_daemon::db::{self, Db, SignalCalls};
use botai_daemon::env::pg::PgSettings;
use botai_daemon::env::Source;
use botai_daemon::exchange::Exchange;
use botai_daemon::market::replay::Replay;
use botai_daemon::telemetry::Telemetry;
use chrono::Utc;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const BASELINE_SCHEMA: &str = "
    CREATE SCHEMA IF NOT EXISTS pipeline_baseline;
    CREATE TABLE IF NOT EXISTS pipeline_baseline.signals (
        signal_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tag         text NOT NULL,
        fingerprint text NOT NULL UNIQUE,
        payload     jsonb NOT NULL,
        accepted_at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE INDEX IF NOT EXISTS signals_tag_idx ON pipeline_baseline.signals (tag);
    CREATE TABLE IF NOT EXISTS pipeline_baseline.orders (
        signal_id   bigint PRIMARY KEY,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE TABLE IF NOT EXISTS pipeline_baseline.balance (id int PRIMARY KEY, amount numeric NOT NULL);
    INSERT INTO pipeline_baseline.balance VALUES (1, 1e15) ON CONFLICT DO NOTHING;";
const BASELINE_REGISTER: &str = "WITH s AS (INSERT INTO pipeline_baseline.signals (tag, fingerprint, payload) \
                                   VALUES ($1, md5($2::jsonb::text), $2::jsonb) ON CONFLICT DO NOTHING RETURNING signal_id) \
                                 SELECT pg_notify('pipeline_baseline', signal_id::text) FROM s";
const BASELINE_ORDER: &str = "WITH o AS (INSERT INTO pipeline_baseline.orders (signal_id) VALUES ($1) \
                                ON CONFLICT DO NOTHING RETURNING signal_id) \
                              UPDATE pipeline_baseline.balance SET amount = amount - 100 \
                              WHERE id = 1 AND EXISTS (SELECT 1 FROM o)";

#[derive(Clone, Copy, PartialEq)]
enum Pipeline {
    Botai,
    Baseline,
}

impl Pipeline {
    fn label(self) -> &'static str {
        match self {
            Pipeline::Botai => "botai",
            Pipeline::Baseline => "plain SQL",
        }
    }
}

/// (signals/s end to end, p50 ms, p99 ms) of one scenario.
struct Figures {
    throughput: f64,
    p50: f64,
    p99: f64,
}

fn env(key: &str, default: &str) -> String {
    std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let burst: usize = env("PIPELINE_BURST", "5000").parse()?;
    let rates: Vec<u32> =
        env("PIPELINE_RATES", "250,500,1000").split(',').map(|r| r.trim().parse()).collect::<Result<_, _>>()?;
    let paced_seconds: u64 = env("PIPELINE_SECONDS", "8").parse()?;
    let drivers: usize = env("PIPELINE_DRIVERS", "4").parse()?;
    // Limits lifted: the exchange and botai's rows allow far more than we send.
    for (k, v) in [
        ("PAPER_ORDER_LIMIT", "1000000000/1s"),
        ("PAPER_GLOBAL_LIMIT", "1000000000/1s"),
        // Bybit's per-address limit (600 / 5 s, then a 10-minute ban) too.
        ("PAPER_IP_LIMIT", "1000000000/1s"),
        ("PAPER_INITIAL_BALANCE", "USDT=1000000000000,BTC=1000000"),
        ("ORDER_SIZE", "notional:100"),
        ("MAX_SIGNAL_AGE", "600"),
        ("BALANCE_UPDATE_INTERVAL", "1"),
        ("REPLAY_SPEED", "1"),
        ("PAPER_LISTEN", "off"),
    ] {
        if std::env::var(k).is_err() {
            std::env::set_var(k, v);
        }
    }
    let cfg = Arc::new(Config::load(&Source::environment_only())?);
    let admin = Db::connect(&PgSettings::from_env()?, "pipeline bench").await?;
    admin
        .batch_execute(
            "UPDATE botai.rate_limits SET max_weight = 1000000000, window_seconds = 0.02 WHERE exchange = 'paper';
             UPDATE botai.worker_types SET max_workers = 8 WHERE worker_type = 'trading_engine';",
        )
        .await
        .context("lifting botai's limits for the paper exchange")?;
    admin.batch_execute(BASELINE_SCHEMA).await.context("the baseline's tables")?;
    let replay = Replay::load(&cfg.market, botai_daemon::ml::features::RAW_BARS)?;
    let exchange: Arc<dyn Exchange> = Arc::new(botai_daemon::run::venues::paper(&cfg, replay));
    let stop = CancellationToken::new();
    let engine = tokio::spawn(botai_daemon::trading::engine::run(
        Arc::new(cfg.engine()),
        exchange,
        Arc::new(Telemetry::new()),
        stop.clone(),
    ));
    let baseline = tokio::spawn(baseline_engine(cfg.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await; // registered, first balance sync done

    println!(
        "== pipeline: signals -> orders, limits lifted; {drivers} registering sessions, {} signals in flight per engine",
        cfg.trading.concurrency
    );
    println!(
        "   botai: register_signal -> NOTIFY -> claim -> rate limit + reservation -> paper order -> commit + record"
    );
    println!("   plain SQL: INSERT signal + pg_notify -> INSERT order + UPDATE of one hot balance row");
    // Fresh tables get their first autoanalyze within seconds, which
    // invalidates every cached plan of every session at once (a one-time
    // stall of a second or two); warm up and analyze first, then measure the
    // steady state.
    let warmup: usize = env("PIPELINE_WARMUP", "3000").parse()?;
    if warmup > 0 {
        for p in [Pipeline::Botai, Pipeline::Baseline] {
            drive(&cfg, p, drivers, &format!("warmup{}", Utc::now().format("%H%M%S")), warmup, None).await?;
        }
        admin
            .batch_execute(
                "ANALYZE botai.signals, botai.orders, botai.reservations, botai.balances, \
                 pipeline_baseline.signals, pipeline_baseline.orders",
            )
            .await?;
        println!("   warm-up: {warmup} signals through each, then ANALYZE");
    }
    let run = Utc::now().format("%H%M%S").to_string();
    let mut scenarios: Vec<(String, usize, Option<u32>)> = vec![(format!("burst of {burst}"), burst, None)];
    for rate in &rates {
        scenarios.push((
            format!("{rate}/s for {paced_seconds} s"),
            *rate as usize * paced_seconds as usize,
            Some(*rate),
        ));
    }
    println!("   {:<18} {:^26} {:^26}   {:^23}", "", "botai", "plain SQL", "botai / plain SQL");
    println!(
        "   {:<18} {:>10} {:>7} {:>7} {:>10} {:>7} {:>7}   {:>11} {:>11}",
        "scenario", "signals/s", "p50 ms", "p99 ms", "signals/s", "p50 ms", "p99 ms", "signals/s", "p99"
    );
    for (i, (name, count, rate)) in scenarios.iter().enumerate() {
        // The baseline first, then botai, seconds apart.
        let mut figures = Vec::new();
        for p in [Pipeline::Baseline, Pipeline::Botai] {
            let tag = format!("s{i}x{run}");
            drive(&cfg, p, drivers, &tag, *count, *rate).await?;
            figures.push(measure(&admin, p, &tag).await?);
        }
        let (base, ours) = (&figures[0], &figures[1]);
        println!(
            "   {name:<18} {:>10.0} {:>7.1} {:>7.1} {:>10.0} {:>7.1} {:>7.1}   {:>11.2} {:>11.2}",
            ours.throughput,
            ours.p50,
            ours.p99,
            base.throughput,
            base.p50,
            base.p99,
            ours.throughput / base.throughput,
            ours.p99 / base.p99
        );
    }
    println!(
        "   signals/s: signals / (last order recorded - first signal accepted), as the database recorded them; \
         under the offered rate when the pipeline could not keep up"
    );
    println!("   goal: >= 1000 signals/s and p99 < 10 ms");
    stop.cancel();
    let _ = engine.await;
    let _ = baseline.await;
    Ok(())
}

/// The baseline's engine: one order row and one hot-row update per
/// notified signal, at most ENGINE_CONCURRENCY at once.
async fn baseline_engine(cfg: Arc<Config>, stop: CancellationToken) -> Result<()> {
    let mut listener = Db::connect(&cfg.pg, "pipeline baseline engine").await?;
    listener.listen("pipeline_baseline").await?;
    let mut notifications = listener.take_notifications();
    let pool = db::pool(&cfg.pg, "pipeline baseline engine", 10)?;
    let permits = Arc::new(Semaphore::new(cfg.trading.concurrency));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            n = notifications.recv() => {
                let Some(n) = n else { anyhow::bail!("the baseline's notifications ended") };
                let id: i64 = n.payload().parse()?;
                let (pool, permits) = (pool.clone(), permits.clone());
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let conn = db::pooled(&pool).await?;
                    let st = conn.prepare_cached(BASELINE_ORDER).await?;
                    conn.execute(&st, &[&id]).await?;
                    Ok::<_, anyhow::Error>(())
                });
            }
        }
    }
}

/// Registers `count` fresh signals (tagged `tag`) on `pipeline`, at `rate`
/// per second or as fast as possible, and waits until every one has an
/// order.
async fn drive(
    cfg: &Arc<Config>,
    pipeline: Pipeline,
    drivers: usize,
    tag: &str,
    count: usize,
    rate: Option<u32>,
) -> Result<()> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..drivers {
        let (pg, tag) = (cfg.pg.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let db = Db::connect(&pg, "pipeline driver").await?;
            let register = db.prepare(BASELINE_REGISTER).await?;
            let mut i = d;
            while i < count {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let signal = json!({
                    "symbol": "BTCUSDT", "direction": if i % 2 == 0 { "BUY" } else { "SELL" },
                    "strategy": format!("{tag}-{i}"), "timestamp": Utc::now().to_rfc3339(), "price": 40000.0,
                    "exchange": "paper",
                    // An exact quantity (100 USDT's worth): every signal is an
                    // order through botai_reserve_order, the send gate and a
                    // fill, never a target already reached.
                    "qty": "0.0025",
                });
                match pipeline {
                    Pipeline::Botai => {
                        let v = db.register_signal(&signal, None).await?;
                        anyhow::ensure!(v.accepted, "signal {i} not accepted: {}", v.reason);
                    }
                    Pipeline::Baseline => {
                        let notified = db.query(&register, &[&tag, &signal]).await?;
                        anyhow::ensure!(notified.len() == 1, "baseline signal {i} not inserted");
                    }
                }
                i += drivers;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let db = Db::connect(&cfg.pg, "pipeline wait").await?;
    let pattern = format!("{tag}-%");
    loop {
        let row = match pipeline {
            Pipeline::Botai => {
                db.query_one(
                    "SELECT count(*) FROM botai.orders o JOIN botai.signals s USING (signal_id) \
                     WHERE s.strategy LIKE $1 AND o.status <> 'claimed'",
                    &[&pattern],
                )
                .await?
            }
            Pipeline::Baseline => {
                db.query_one(
                    "SELECT count(*) FROM pipeline_baseline.orders o \
                     JOIN pipeline_baseline.signals s USING (signal_id) WHERE s.tag = $1",
                    &[&tag],
                )
                .await?
            }
        };
        let done: i64 = row.get(0);
        if done as usize >= count {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "{}: only {done} of {count} orders after 10 minutes",
            pipeline.label()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Throughput (signals over the time from the first acceptance to the last
/// recorded order, both as the database recorded them) and latency
/// percentiles (acceptance to recorded order) of the signals tagged `tag`.
async fn measure(db: &Db, pipeline: Pipeline, tag: &str) -> Result<Figures> {
    let pattern = format!("{tag}-%");
    let row = match pipeline {
        Pipeline::Botai => {
            let statuses = db
                .query(
                    "SELECT o.status, count(*) FROM botai.orders o JOIN botai.signals s USING (signal_id) \
                     WHERE s.strategy LIKE $1 GROUP BY 1",
                    &[&pattern],
                )
                .await?;
            for s in statuses {
                let status: String = s.get(0);
                anyhow::ensure!(
                    status == "filled",
                    "{} orders {status}: the bench measures filled orders only",
                    s.get::<_, i64>(1)
                );
            }
            db.query_one(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY o.latency_ms), \
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY o.latency_ms), count(*), \
                        extract(epoch FROM max(o.finished_at) - min(s.accepted_at))::float8 \
                 FROM botai.orders_status o JOIN botai.signals s USING (signal_id) WHERE s.strategy LIKE $1",
                &[&pattern],
            )
            .await?
        }
        Pipeline::Baseline => {
            db.query_one(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), \
                        count(*), extract(epoch FROM max(r) - min(a))::float8 \
                 FROM (SELECT extract(epoch FROM o.recorded_at - s.accepted_at)::float8 * 1000 AS l, \
                              o.recorded_at AS r, s.accepted_at AS a \
                       FROM pipeline_baseline.orders o JOIN pipeline_baseline.signals s USING (signal_id) \
                       WHERE s.tag = $1) x",
                &[&tag],
            )
            .await?
        }
    };
    let (done, secs): (i64, f64) = (row.get(2), row.get(3));
    Ok(Figures { throughput: done as f64 / secs.max(1e-3), p50: row.get(0), p99: row.get(1) })
}
