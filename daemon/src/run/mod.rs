//! `botai run`: starts the components of a mode and stops them cleanly.
//!
//! `all` (the default) runs everything in one process: the ML manager on
//! the replay, the trading engine on the in-process paper exchange (also
//! served over HTTP so other engines can join), the HTTP API and alert
//! delivery, with a progress bar and a summary line every 10 seconds; when
//! the replay ends the engines settle what is left and the report is
//! written. Ctrl-C or SIGTERM stops every component in order (the ML manager
//! and the engine give up their slots, in-flight orders settle; signals not
//! yet traded stay in botai for the next start); a second one exits at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use rust_decimal::prelude::ToPrimitive;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub mod venues;

use crate::alerts;
use crate::api::{self, Api, RunState};
use crate::config::Config;
use crate::db::{self, Db, SignalCalls};
use crate::exchange::Exchange;
use crate::market::live::{LiveMarket, LiveSettings};
use crate::market::replay::Replay;
use crate::market::Market;
use crate::sim::double;
use crate::sim::paper::PaperExchange;
use crate::telemetry::Telemetry;
use crate::{ml, report, trading};

/// Which components `botai run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every component below, on the paper exchange replaying the shipped data.
    All,
    /// The ML manager (signal source; one live instance, others stand by).
    Ml,
    /// The trading engine.
    Core,
    /// The HTTP API (health, metrics, dashboard) and alert delivery.
    Api,
}

const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Checks the database before anything starts, with the way out in the error.
async fn preflight(cfg: &Config) -> Result<()> {
    let db = Db::connect(&cfg.pg, "botai preflight").await?;
    let version = db.extension_version().await?.with_context(|| {
        format!("the botai extension is not installed in {}; run `make migrate`", cfg.pg.describe())
    })?;
    info!(%version, database = %cfg.pg.describe(), "connected");
    if let Some(wanted) = cfg.rate_limit_safety_margin {
        let actual = db::settings::rate_limit_safety_margin(&db).await?;
        if (actual - wanted).abs() > 1e-9 {
            warn!(
                "RATE_LIMIT_SAFETY_MARGIN={wanted} but the server uses {actual}: the margin is the server's \
                 (botai.rate_limit_safety_margin in postgresql.conf), shared by every client"
            );
        }
    }
    if let Some(threshold) = db::settings::heartbeat_timeout(&db).await? {
        if (threshold - cfg.monitor_alert_threshold.as_secs_f64()).abs() > 0.5 {
            warn!(
                "MONITOR_ALERT_THRESHOLD={}s but the heartbeat_timeout rule says {threshold}s; the rule decides \
                 (botai_admin: UPDATE botai.alert_rules SET threshold = … WHERE rule = 'heartbeat_timeout')",
                cfg.monitor_alert_threshold.as_secs()
            );
        }
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what systemd, `docker stop` and
/// `kill` send): both stop the daemon the same orderly way.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            warn!("cannot watch for SIGTERM ({e}); only Ctrl-C stops the daemon in order");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn run(cfg: Arc<Config>, mode: Mode) -> Result<()> {
    preflight(&cfg).await?;
    let started_at = Utc::now();
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("stopping (Ctrl-C or SIGTERM again to exit at once)");
            stop.cancel();
            shutdown_signal().await;
            std::process::exit(130);
        });
    }
    let telemetry = Arc::new(Telemetry::new());
    let trades = matches!(mode, Mode::All | Mode::Core);
    let needs_market = matches!(mode, Mode::All | Mode::Ml) || (trades && cfg.trading.paper_url.is_none());
    let market = if !needs_market {
        None
    } else if cfg.market.live_bybit {
        let settings = LiveSettings {
            rest_url: cfg.bybit.rest_url.clone(),
            ws_url: cfg.bybit.ws_url.clone(),
            category: cfg.bybit.category,
            symbol: cfg.market.symbol.clone(),
            timeout: cfg.bybit.timeout,
        };
        info!(symbol = %settings.symbol, rest = %settings.rest_url, ws = %settings.ws_url, "live market data from Bybit");
        Some(Market::Live(LiveMarket::start(settings, stop.child_token())?))
    } else {
        if cfg.market.epoch.is_none() && mode != Mode::All {
            warn!("REPLAY_EPOCH is not set: this process replays on its own clock; give every process of a replay the same REPLAY_EPOCH");
        }
        if cfg.market.stepped
            && (mode != Mode::All || cfg.trading.exchange != "paper" || cfg.trading.paper_url.is_some())
        {
            bail!(
                "REPLAY_SPEED=max steps the replay in one process: `botai run` (every component) on the in-process \
                 paper exchange (EXCHANGE=paper, no PAPER_EXCHANGE_URL); give processes of their own a speed and REPLAY_EPOCH"
            );
        }
        let r = Replay::load(&cfg.market, ml::features::RAW_BARS)?;
        info!(symbol = %r.symbol, bars = r.len(), from = %r.bar(r.first).ts, to = %r.bar(r.last).ts, speed = cfg.market.speed,
              epoch = %r.clock.epoch, "market replay");
        Some(Market::Replay(r))
    };
    let replay = market.as_ref().and_then(|m| m.replay().cloned());
    let mut tasks: JoinSet<(&'static str, Result<()>)> = JoinSet::new();
    let mut paper: Option<Arc<PaperExchange>> = None;
    let exchange: Option<Arc<dyn Exchange>> = if !trades {
        None
    } else if cfg.trading.exchange != "paper" || cfg.trading.paper_url.is_some() {
        Some(venues::connect(&cfg, &stop)?)
    } else {
        let prices = market.as_ref().expect("market data for the in-process paper exchange").prices();
        let p = Arc::new(venues::paper(&cfg, prices).with_limits(venues::shared_limits(&cfg, "paper")?));
        let venue = p.venue.clone();
        if let Some(listen) = cfg.paper.listen {
            let (v, stop2) = (venue.clone(), stop.clone());
            tasks.spawn(async move {
                ("paper exchange", double::serve(v, listen, async move { stop2.cancelled().await }).await)
            });
        }
        paper = Some(p.clone());
        Some(p)
    };
    let pool = db::pool(&cfg.pg, "botai api", 4)?;
    // Alert channels are built (and their configuration checked) before
    // anything runs; only a process serving the API delivers them.
    let delivers_alerts = matches!(mode, Mode::All | Mode::Api);
    let alert_channels = if delivers_alerts { alerts::channels(&cfg.alerts, &pool)? } else { Vec::new() };
    let run = Arc::new(RunState {
        mode: format!("{mode:?}").to_lowercase(),
        started_at,
        replay: replay.clone(),
        paper: paper.clone(),
        equity: Mutex::new(Vec::new()),
        marks: Mutex::new(Vec::new()),
        alert_channels: alerts::describe(&alert_channels),
    });
    if let (Some(r), Some(p)) = (replay.as_ref().filter(|r| r.is_stepped()), paper.clone()) {
        let (marks, replay) = (run.clone(), r.clone());
        r.on_settled(Box::new(move |i| {
            if (i - replay.first) % STEPPED_MARK_EVERY == 0 || i == replay.last {
                let at = replay.bar(i).ts + chrono::TimeDelta::minutes(1);
                if let Some(m) = mark(&p, at) {
                    marks.marks.lock().unwrap_or_else(|p| p.into_inner()).push(m);
                }
            }
        }));
    }
    let ml_stop = stop.child_token();
    let mut ml_task = None;
    if matches!(mode, Mode::All | Mode::Ml) {
        let (c, r, t, s) =
            (Arc::new(cfg.ml_manager()), market.clone().expect("market data"), telemetry.clone(), ml_stop.clone());
        ml_task = Some(tokio::spawn(ml::manager::run(c, r, t, s)));
    }
    let engine_stop = stop.child_token();
    if let Some(x) = exchange.clone() {
        let (c, t, s) = (Arc::new(cfg.engine()), telemetry.clone(), engine_stop.clone());
        tasks.spawn(async move { ("trading engine", trading::engine::run(c, x, t, s).await) });
    }
    if matches!(mode, Mode::All | Mode::Api) {
        let live = api::live::Feed::new(stop.clone());
        let api = Api { pool: pool.clone(), telemetry: telemetry.clone(), run: run.clone(), live };
        let (feed, pg) = (api.clone(), cfg.pg.clone());
        tasks.spawn(async move {
            api::live::run(feed, pg).await;
            ("dashboard feed", Ok(()))
        });
        let (access, s) = (cfg.api.clone(), stop.clone());
        tasks.spawn(async move { ("HTTP API", api::serve(api, access, s).await) });
        let (a, pg, p, t, s) = (cfg.alerts.clone(), cfg.pg.clone(), pool.clone(), telemetry.clone(), stop.clone());
        tasks.spawn(async move {
            alerts::deliver(a, pg, p, alert_channels, t, s).await;
            ("alert delivery", Ok(()))
        });
    }
    let progress = replay.clone().map(|r| {
        let (t, run, s) = (telemetry.clone(), run.clone(), stop.clone());
        let quote = cfg.trading.quote.clone();
        tokio::spawn(show_progress(r, t, run, quote, s))
    });

    crate::systemd::ready();
    let watchdog = tokio::spawn(crate::systemd::watchdog(stop.clone()));

    // Wait for the end of the replay, a failure, or Ctrl-C.
    let mut failed: Option<anyhow::Error> = None;
    let ml_done = async {
        match &mut ml_task {
            Some(t) => t.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        done = ml_done => {
            ml_task = None;
            match done {
                Ok(Ok(())) if !stop.is_cancelled() => {
                    info!("the replay is over; letting the engine settle the last signals");
                    settle(&pool, &cfg).await;
                }
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = Some(e.context("ML manager")),
                Err(e) => failed = Some(anyhow::anyhow!("ML manager panicked: {e}")),
            }
            stop.cancel();
        }
        Some(done) = tasks.join_next() => {
            match done {
                Ok((what, Err(e))) => failed = Some(e.context(what)),
                Ok((what, Ok(()))) => if !stop.is_cancelled() { failed = Some(anyhow::anyhow!("{what} stopped unexpectedly")) },
                Err(e) => failed = Some(anyhow::anyhow!("a component panicked: {e}")),
            }
            stop.cancel();
        }
    }
    stop.cancel();
    crate::systemd::stopping();
    let _ = watchdog.await;
    if let Some(t) = ml_task {
        if let Ok(Err(e)) = t.await {
            failed.get_or_insert(e.context("ML manager"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((what, Err(e))) = done {
            error!("{what}: {e:#}");
            failed.get_or_insert(e.context(what));
        }
    }
    if let Some(p) = progress {
        let _ = p.await;
    }
    if replay.is_some() && mode == Mode::All {
        let marks = run.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Err(e) = report::write(&cfg.report_dir, &pool, &telemetry, started_at, &marks, &cfg.trading.quote).await
        {
            error!("writing the report failed: {e:#}");
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// After the last bar: give engines time to trade the last signals.
async fn settle(pool: &deadpool_postgres::Pool, cfg: &Config) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let pending = async {
            let conn = db::pooled(pool).await?;
            conn.unhandled_signals(cfg.trading.max_signal_age.max(Duration::from_secs(3600)), 1).await
        }
        .await;
        match pending {
            Ok(ids) if ids.is_empty() => break,
            Ok(_) => {}
            Err(e) => {
                warn!("cannot tell whether signals are left: {e}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // In-flight orders settle inside the engine's own shutdown.
}

async fn show_progress(
    replay: Arc<Replay>,
    t: Arc<Telemetry>,
    run: Arc<RunState>,
    quote: String,
    stop: CancellationToken,
) {
    let bar = ProgressBar::new(replay.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} replay [{bar:40}] {pos}/{len} bars {percent}% {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    crate::logging::attach_progress(bar.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_summary = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        let done = replay.completed_at(now).map_or(0, |i| i + 1 - replay.first);
        bar.set_position(done as u64);
        if let Some(mark) = run.paper.as_ref().and_then(|p| mark(p, replay.market_time(now))) {
            t.equity.set(mark.equity);
            run.equity.lock().unwrap_or_else(|p| p.into_inner()).push((mark.at, mark.equity));
            // A stepped replay marks its bars itself (the moment a sample
            // lands on is the wall clock's).
            if !replay.is_stepped() {
                run.marks.lock().unwrap_or_else(|p| p.into_inner()).push(mark);
            }
        }
        bar.set_message(format!("{} {quote}", format_equity(t.equity_now())));
        if last_summary.elapsed() >= SUMMARY_EVERY {
            last_summary = tokio::time::Instant::now();
            info!("{}", summary_line(&t, &replay, now, &quote));
        }
        if replay.finished(now) {
            break;
        }
    }
    info!("{}", summary_line(&t, &replay, Utc::now(), &quote));
    bar.finish_and_clear();
}

/// The paper account's equity, the price and what it holds, at `at`.
fn mark(p: &PaperExchange, at: chrono::DateTime<Utc>) -> Option<report::Mark> {
    let (equity, price, held) = p.mark()?;
    Some(report::Mark {
        at,
        equity: equity.to_f64().unwrap_or(0.0),
        price: price.to_f64().unwrap_or(0.0),
        exposure: held.to_f64().unwrap_or(0.0),
    })
}

/// A stepped replay's report marks every this many bars, each once the bar
/// is settled.
const STEPPED_MARK_EVERY: usize = 5;

fn format_equity(e: f64) -> String {
    if e == 0.0 {
        "-".into()
    } else {
        format!("equity {e:.2}")
    }
}

fn summary_line(t: &Telemetry, replay: &Replay, now: chrono::DateTime<Utc>, quote: &str) -> String {
    format!(
        "market {} | bars {} | predictions {} | signals {} accepted, {} duplicate | orders {} filled, {} skipped, rejects {} (110007 {}, 10006 {}) | equity {:.2} {quote}",
        replay.market_time(now).format("%Y-%m-%d %H:%M"),
        t.bars.get(),
        t.predictions.get(),
        t.signals_with("accepted"),
        t.signals_with("duplicate"),
        t.orders_with(Some("filled"), None),
        t.orders_with(Some("skipped"), None),
        t.orders_with(Some("rejected"), None),
        t.orders_with(None, Some(110007)),
        t.orders_with(None, Some(10006)),
        t.equity_now(),
    )
}
