//! The ML manager: one active instance at a time, the others hot standbys.
//!
//! The active manager holds the `ml_manager` worker slot (a session advisory
//! lock in botai) on a dedicated connection. A manager that finds the slot
//! taken does not exit: it retries every 50 ms and takes over the moment
//! the slot frees, which is the moment the active manager's connection
//! closes, however its process died. The active manager heartbeats as a
//! worker and as a component, and stops acting at once when its lease is
//! gone (a heartbeat returns false) or its lock connection fails: it never
//! registers a signal it is not entitled to.
//!
//! For each completed bar it computes the feature windows of every symbol
//! (the features and window the model's manifest names), runs them through
//! the model in one batch, turns each prediction at the manifest's trade
//! horizon into a signal (direction from the sign, strength from the
//! magnitude, nothing that does not clear the round trip cost plus the
//! model's margin: [`SignalRule`]) and registers it with botai; each signal
//! carries the manager's worker id and fencing epoch.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::prelude::ToPrimitive;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::contract::Manifest;
use super::features::{FeatureError, FeatureWindow};
use super::model::{self, Device, ModelError, ModelOptions, Prediction, SignalModel};
use super::signal_rule::{signal_for, SignalRule};
use crate::db::{Db, MonitorCalls, RiskCalls, SignalCalls, WorkerCalls};
use crate::market::replay::window_is_contiguous;
use crate::market::{hourly_volatility, Market};
use crate::ml::config::{ManagerSettings, MlDevice};
use crate::telemetry::Telemetry;

const WORKER_TYPE: &str = "ml_manager";
const COMPONENT: &str = "ml_manager";
const STANDBY_COMPONENT: &str = "ml_manager:standby";
const TAKEOVER_RETRY: Duration = Duration::from_millis(50);

/// Loads ONNX Runtime and the model, refusing clearly when either is wrong.
pub fn load_model(cfg: &ManagerSettings) -> Result<SignalModel> {
    model::init_runtime(&cfg.ml.ort_dylib)?;
    let device = match cfg.ml.device {
        MlDevice::Cpu => Device::Cpu,
        MlDevice::Cuda(device_id) => Device::Cuda { device_id },
    };
    let options = ModelOptions { device, intra_threads: cfg.ml.threads };
    Ok(SignalModel::load(&cfg.ml.model_path, &options)?)
}

/// One symbol's bars up to the bar being predicted (its last).
#[derive(Debug, Clone, Copy)]
pub struct SymbolBars<'a> {
    pub symbol: &'a str,
    pub bars: &'a [crate::market::Bar],
}

/// Why a symbol got no prediction for a bar.
#[derive(Debug, thiserror::Error)]
pub enum Skipped {
    #[error("its feature window has a gap in the data at {0}")]
    Gap(DateTime<Utc>),
    #[error(transparent)]
    Features(#[from] FeatureError),
}

/// What one bar's batched run gave: a prediction per symbol that had a
/// window (its index among the symbols), and why the others had none.
#[derive(Debug)]
pub struct BarPredictions {
    pub predicted: Vec<(usize, Prediction)>,
    pub skipped: Vec<(usize, Skipped)>,
}

/// The windows of every symbol for its newest bar, predicted in ONE run of
/// the model. Symbols whose window cannot be built are skipped (each says
/// why); the others keep their order.
pub fn predict_symbols(model: &mut SignalModel, symbols: &[SymbolBars<'_>]) -> Result<BarPredictions, ModelError> {
    let spec = model.spec();
    let (mut ready, mut windows, mut skipped) = (Vec::new(), Vec::<FeatureWindow>::new(), Vec::new());
    for (k, s) in symbols.iter().enumerate() {
        let raw = &s.bars[s.bars.len().saturating_sub(spec.raw_bars())..];
        if let Err(gap) = window_is_contiguous(raw) {
            skipped.push((k, Skipped::Gap(gap)));
            continue;
        }
        match spec.compute(raw) {
            Ok(w) => {
                ready.push(k);
                windows.push(w);
            }
            Err(e) => skipped.push((k, e.into())),
        }
    }
    let predictions = model.predict(&windows)?;
    Ok(BarPredictions { predicted: ready.into_iter().zip(predictions).collect(), skipped })
}

/// The manager's lease: the slot, its epoch and the connection holding it.
struct Lease {
    db: Db,
    worker_id: String,
    epoch: i64,
}

/// Runs the ML manager until `stop` is cancelled or the replay ends.
pub async fn run(
    cfg: Arc<ManagerSettings>,
    market: Market,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) -> Result<()> {
    let mut model = load_model(&cfg)?;
    let rule = SignalRule::new(model.manifest(), &cfg.ml);
    let manifest = model.manifest();
    info!(
        model = %manifest.name, file = %model.path().display(), device = ?model.device(), threads = cfg.ml.threads,
        window = manifest.spec.window(), features = manifest.spec.features().len(), horizons = ?manifest.horizons,
        trade_horizon = manifest.trade_horizon, "signal model loaded"
    );
    match rule {
        SignalRule::CostAware { .. } => info!("signal rule: {}", rule.describe()),
        _ => warn!("signal rule: {}", rule.describe()),
    }
    if let (Some(training), Some(replay)) = (&manifest.training, market.replay()) {
        let (from, to) = replay.period();
        if training.overlaps(from, to) {
            warn!(
                "the replay ({from} .. {to}) overlaps the data {} was trained on ({}, {} .. {}): its results here \
                 are in-sample",
                manifest.name, training.data, training.from, training.to
            );
        }
    }
    let instance = format!("{}:{}", crate::env::hostname(), std::process::id());
    loop {
        let Some(lease) = take_slot(&cfg, &instance, &stop).await? else {
            return Ok(());
        };
        match act(&cfg, &market, &telemetry, &mut model, &rule, &lease, &stop).await {
            Ok(Finished::Stopped) | Ok(Finished::ReplayOver) => {
                if !lease.db.is_closed() {
                    let _ = lease.db.unregister_worker(&lease.worker_id).await;
                    let _ = lease.db.heartbeat(COMPONENT, "stopped", 0, None).await;
                }
                return Ok(());
            }
            Ok(Finished::LostLease(why)) => {
                warn!(worker_id = %lease.worker_id, epoch = lease.epoch, "stopped acting: {why}; back to standby");
            }
            Err(e) => {
                warn!(worker_id = %lease.worker_id, "the active ML manager failed: {e:#}; back to standby");
            }
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        tokio::time::sleep(TAKEOVER_RETRY).await;
    }
}

/// Waits (as a standby, heartbeating) until this process holds the slot.
async fn take_slot(cfg: &ManagerSettings, instance: &str, stop: &CancellationToken) -> Result<Option<Lease>> {
    let mut announced_standby = false;
    let mut last_beat = tokio::time::Instant::now() - cfg.heartbeat_every;
    loop {
        let db = match Db::connect(&cfg.pg, "botai ml_manager").await {
            Ok(db) => db,
            Err(e) => {
                warn!("cannot reach the database: {e}; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        crate::db::settings::set_signal_dedup_window(&db, cfg.signal_dedup_window.as_secs())
            .await
            .context("setting botai.signal_dedup_window")?;
        let metadata = json!({"instance": instance, "pid": std::process::id()});
        loop {
            if stop.is_cancelled() {
                if announced_standby {
                    let _ = db.heartbeat(STANDBY_COMPONENT, "stopped", 0, None).await;
                }
                return Ok(None);
            }
            match db.register_worker(WORKER_TYPE, None, &metadata).await {
                Ok(Some(worker_id)) => {
                    let epoch = db.worker_epoch(&worker_id).await?.unwrap_or(0);
                    if announced_standby {
                        info!(%worker_id, epoch, "took over as the active ML manager");
                        let _ = db.heartbeat(STANDBY_COMPONENT, "stopped", 0, None).await;
                    } else {
                        info!(%worker_id, epoch, "active ML manager");
                    }
                    db.register_component(
                        COMPONENT,
                        &json!({"pid": std::process::id(), "worker_id": worker_id, "epoch": epoch}),
                    )
                    .await?;
                    return Ok(Some(Lease { db, worker_id, epoch }));
                }
                Ok(None) => {
                    if !announced_standby {
                        info!("another ML manager is active; standing by to take over");
                        db.register_component(
                            STANDBY_COMPONENT,
                            &json!({"pid": std::process::id(), "instance": instance}),
                        )
                        .await?;
                        announced_standby = true;
                    }
                    if last_beat.elapsed() >= cfg.heartbeat_every {
                        db.heartbeat(STANDBY_COMPONENT, "healthy", 0, None).await?;
                        last_beat = tokio::time::Instant::now();
                    }
                }
                Err(e) if e.is_connection_lost() => {
                    warn!("lost the database connection while standing by: {e}");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(TAKEOVER_RETRY) => {}
            }
        }
    }
}

enum Finished {
    Stopped,
    ReplayOver,
    LostLease(String),
}

async fn act(
    cfg: &ManagerSettings,
    market: &Market,
    telemetry: &Telemetry,
    model: &mut SignalModel,
    rule: &SignalRule,
    lease: &Lease,
    stop: &CancellationToken,
) -> Result<Finished> {
    let mut feed = market.feed();
    let strategy = market.strategy(&cfg.ml.strategy);
    let mut beat = tokio::time::interval(cfg.heartbeat_every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_bar: Option<DateTime<Utc>> = None;
    let mut handled = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(Finished::Stopped),
            _ = lease.db.closed() => return Ok(Finished::LostLease("its lock connection closed".into())),
            _ = beat.tick() => {
                let meta = json!({"last_bar": last_bar, "bars": handled, "epoch": lease.epoch});
                match lease.db.worker_heartbeat(&lease.worker_id, "running", 0, Some(&meta)).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(Finished::LostLease("the slot is no longer ours".into())),
                    Err(e) => return Ok(Finished::LostLease(format!("heartbeat failed: {e}"))),
                }
                let component_meta = json!({"pid": std::process::id(), "worker_id": lease.worker_id, "epoch": lease.epoch,
                                            "memory_percent": crate::telemetry::memory_percent()});
                lease.db.heartbeat(COMPONENT, "healthy", 1, Some(&component_meta)).await?;
            }
            next = feed.next() => {
                let Some((i, history)) = next else { return Ok(Finished::ReplayOver) };
                if lease.db.is_closed() {
                    return Ok(Finished::LostLease("its lock connection closed".into()));
                }
                let bar = history[i];
                last_bar = Some(bar.ts);
                handled += 1;
                telemetry.bars.inc();
                let accepted = on_bar(cfg, market.symbol(), &strategy, telemetry, model, rule, lease, i, history).await?;
                if market.replay().is_some_and(|r| r.is_stepped()) && !accepted.is_empty() {
                    // A stepped replay moves on once this bar's trades are settled.
                    let stepped = until_settled(lease, &accepted);
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(Finished::Stopped),
                        settled = stepped => settled?,
                    }
                }
            }
        }
    }
}

/// Waits until the signals have finished orders and the balances a fill
/// changed are synced: then a stepped replay's next bar sees what this one
/// did. Says so, every 10 s, when no engine settles them.
async fn until_settled(lease: &Lease, signal_ids: &[i64]) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut told = started;
    let mut pause = Duration::from_micros(500);
    while !lease.db.signals_settled(signal_ids).await? {
        if told.elapsed() >= Duration::from_secs(10) {
            told = tokio::time::Instant::now();
            warn!(
                "REPLAY_SPEED=max: signals {signal_ids:?} are not settled after {:.0} s; the replay waits for an engine",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(())
}

/// Features, one batched model run, signals: for every symbol of the bar
/// (the shipped data has one). Returns the ids of the signals accepted.
#[allow(clippy::too_many_arguments)]
async fn on_bar(
    cfg: &ManagerSettings,
    symbol: &str,
    strategy: &str,
    telemetry: &Telemetry,
    model: &mut SignalModel,
    rule: &SignalRule,
    lease: &Lease,
    i: usize,
    history: &[crate::market::Bar],
) -> Result<Vec<i64>> {
    let mut accepted = Vec::new();
    let bar = &history[i];
    let bar_close = bar.ts + TimeDelta::minutes(1);
    let symbols = [SymbolBars { symbol, bars: &history[..=i] }];
    // Inference is CPU work: keep it off the threads the engine's timers run on.
    let BarPredictions { predicted, skipped } = match tokio::task::block_in_place(|| predict_symbols(model, &symbols)) {
        Ok(p) => p,
        Err(e) => {
            telemetry.skipped_bars.inc();
            warn!(bar = %bar.ts, "skipping bar: {e}");
            return Ok(accepted);
        }
    };
    for (k, why) in skipped {
        telemetry.skipped_bars.inc();
        warn!(bar = %bar.ts, symbol = symbols[k].symbol, "skipping bar: {why}");
    }
    let manifest = model.manifest();
    let trade = manifest.trade_output();
    for (k, p) in &predicted {
        let SymbolBars { symbol, bars } = symbols[*k];
        let close = bars[bars.len() - 1].close;
        telemetry.predictions.inc();
        let signal = signal_for(rule.judged(p.returns[trade], bars), rule, cfg.ml.full_strength);
        tracing::info!(
            target: "botai_daemon::ml::predictions",
            bar = %bar.ts, symbol, returns = ?p.returns, trade_horizon = manifest.trade_horizon,
            signal = signal.map_or("none", |s| s.0),
            "prediction"
        );
        let document = match signal {
            Some((direction, strength)) => signal_document(
                cfg, manifest, strategy, lease, symbol, direction, strength, close, bar.ts, bar_close, p,
            ),
            None => match exit_for(cfg, manifest, lease, strategy, symbol, close, bar_close).await? {
                Some((direction, reason)) => {
                    let mut d = signal_document(
                        cfg,
                        manifest,
                        &format!("{strategy}:exit"),
                        lease,
                        symbol,
                        direction,
                        1.0,
                        close,
                        bar.ts,
                        bar_close,
                        p,
                    );
                    d["intent"] = json!("exit");
                    d["reason"] = json!(reason);
                    d
                }
                None => continue,
            },
        };
        let mut document = document;
        // The typical move of an hour, for volatility-scaled sizing.
        let raw = &bars[bars.len().saturating_sub(VOLATILITY_BARS + 1)..];
        if let Some(v) = hourly_volatility(raw, VOLATILITY_BARS.min(raw.len() - 1)) {
            document["volatility_1h"] = json!(v);
        }
        let verdict = lease.db.register_signal(&document, Some(bar_close)).await?;
        telemetry.signal(&verdict.reason);
        if verdict.accepted {
            accepted.extend(verdict.signal_id);
        }
        tracing::debug!(
            signal_id = ?verdict.signal_id, fingerprint = %verdict.fingerprint, reason = %verdict.reason,
            "signal {} {symbol}", document["direction"]
        );
    }
    Ok(accepted)
}

/// One-minute returns the signal's `volatility_1h` is measured over.
const VOLATILITY_BARS: usize = 60;

/// A position worth less than this (quote currency) is dust, not a position
/// to close: below every venue's minimum order.
const DUST_NOTIONAL: f64 = 5.0;
/// An exit signalled is signalled again (if the position is still open)
/// only this much market time later: the engines need a moment to close it.
const EXIT_AGAIN_AFTER: TimeDelta = TimeDelta::minutes(5);

/// The exit a position of the model's calls for on a bar without a new
/// signal: (direction, reason) once HOLD_FOR has passed since the last
/// signal in the position's direction, or the loss from its average entry
/// reached STOP_LOSS. A position the model never signalled (an operator's)
/// is left alone. Read from the position book and botai.signals, so a
/// standby that takes over knows as much as the manager before it.
async fn exit_for(
    cfg: &ManagerSettings,
    manifest: &Manifest,
    lease: &Lease,
    strategy: &str,
    symbol: &str,
    close: f64,
    bar_close: DateTime<Utc>,
) -> Result<Option<(&'static str, &'static str)>> {
    let Some((qty, avg_entry)) = lease.db.position(&cfg.exchange, symbol).await? else {
        return Ok(None);
    };
    // What is left after a spot position was sold down to the venue's step
    // is no position to close.
    if (qty.to_f64().unwrap_or(0.0) * close).abs() < DUST_NOTIONAL {
        return Ok(None);
    }
    let long = qty > rust_decimal::Decimal::ZERO;
    let (held, exit) = if long { ("BUY", "SELL") } else { ("SELL", "BUY") };
    let Some(last) = lease.db.last_signal_at(symbol, strategy, held).await? else {
        return Ok(None);
    };
    if lease.db.last_signal_at(symbol, &format!("{strategy}:exit"), exit).await?.is_some_and(|t| {
        // An exit already signalled after the last entry, too recently.
        t > last && bar_close - t < EXIT_AGAIN_AFTER
    }) {
        return Ok(None);
    }
    let stopped = match (cfg.ml.stop_loss, avg_entry.and_then(|a| a.to_f64())) {
        (Some(stop), Some(avg)) if avg > 0.0 => {
            let moved = (close - avg) / avg;
            (if long { moved } else { -moved }) <= -stop
        }
        _ => false,
    };
    if stopped {
        return Ok(Some((exit, "stop")));
    }
    let held_for = (bar_close - last).to_std().unwrap_or_default();
    Ok((held_for >= hold_for(cfg, manifest)).then_some((exit, "holding period")))
}

/// How long a position is held after its last signal: `HOLD_FOR`, else the
/// model's trade horizon.
pub fn hold_for(cfg: &ManagerSettings, manifest: &Manifest) -> Duration {
    cfg.ml.hold_for.unwrap_or(Duration::from_secs(u64::from(manifest.trade_horizon) * 60))
}

#[allow(clippy::too_many_arguments)]
fn signal_document(
    cfg: &ManagerSettings,
    manifest: &Manifest,
    strategy: &str,
    lease: &Lease,
    symbol: &str,
    direction: &str,
    strength: f64,
    close: f64,
    bar_open: DateTime<Utc>,
    bar_close: DateTime<Utc>,
    p: &Prediction,
) -> Value {
    let mut document = json!({
        "symbol": symbol,
        "direction": direction,
        "strategy": strategy,
        "timestamp": bar_close.to_rfc3339(),
        "signal_strength": strength,
        "exchange": cfg.exchange,
        "price": close,
        "bar_time": bar_open.to_rfc3339(),
        "model": manifest.name,
        "predicted_return": p.returns[manifest.trade_output()],
        "trade_horizon_minutes": manifest.trade_horizon,
        "worker_id": lease.worker_id,
        "epoch": lease.epoch,
    });
    // One `returns_<h>m` per output, as the shipped model's signals always had.
    for (h, r) in manifest.horizons.iter().zip(&p.returns) {
        document[format!("returns_{h}m")] = json!(r);
    }
    document
}
