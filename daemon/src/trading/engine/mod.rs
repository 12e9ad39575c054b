//! The trading engine (`botai run --mode=core`): every accepted signal
//! becomes at most one order.
//!
//! Signals arrive by `NOTIFY botai_signals`; on start, and every few seconds,
//! the engine also asks botai for accepted signals nobody handled (accepted
//! while no engine ran, a notification missed, or claimed by an engine that
//! died), so a signal is never lost. Each signal is then:
//!
//! 1. claimed (`botai_order_claim`): of any number of engines exactly one
//!    owns it;
//! 2. sized from the free funds of the asset it spends;
//! 3. booked against the exchange's limits (`botai_rate_acquire`);
//! 4. funded (`botai_reserve_balance`, held through the wait): no
//!    reservation, no order; then the engine sleeps until the booked moment
//!    and sends right then (a late send could crowd the exchange's window);
//! 5. placed with a client order id derived from the signal's fingerprint,
//!    so a retry — after a crash, by another engine — can never place it
//!    twice (the exchange refuses a second order with the same id, and a
//!    re-claimed order is first looked up at the exchange);
//! 6. settled: the reservation committed (filled) or released (refused), the
//!    outcome recorded (`botai_order_finish`), errors reported.
//!
//! With RESERVATIONS=off or RATE_LIMITER=off (switches for the comparison
//! runs only) steps 3 or 4 are skipped and the engine trusts its last
//! balance snapshot, as a bot without botai would.
//!
//! Here: start-up and the signal loop; `order_flow.rs` the path of one
//! signal, `follow.rs` an order to its end, `reconcile.rs` the book and the
//! open orders against the venue, `venue_events.rs` what the venue does on
//! its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use deadpool_postgres::Pool;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};
use uuid::Uuid;

use super::balance_sync::{self, Snapshot};
use super::fault::Step;
use super::sizing;
use crate::db::{
    self, BalanceCalls, Batcher, Claim, ClaimedOrder, Db, MonitorCalls, OrderCalls, OrderFilter, OrderReservation,
    RateLimitCalls, Reserved, RiskCalls, Settlement, SignalCalls, WorkerCalls,
};
use crate::exchange::{
    limits, AccountEvent, Exchange, ExchangeError, ForcedClose, Instrument, OrderRequest, OrderState, Position, Side,
    Trigger, TriggerDirection,
};
use crate::telemetry::{Reason, Telemetry};
use crate::trading::config::EngineSettings;

mod follow;
mod order_flow;
mod reconcile;
mod venue_events;

const WORKER_TYPE: &str = "trading_engine";
const ORDER_ENDPOINT: &str = "order";
const CATCH_UP_EVERY: Duration = Duration::from_secs(2);
/// How far before the last complete catch-up scan the next one looks: a
/// signal's accepted_at is its transaction's start, and it becomes visible
/// only at commit.
const CATCH_UP_MARGIN: Duration = Duration::from_secs(10);
/// Wait before a signal whose handling failed is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Most requests one batched statement carries.
const BATCH_MAX: usize = 64;
/// Batches of one kind running at once.
const BATCHES_IN_FLIGHT: usize = 2;
/// Pooled connections: two batches for each of the three batched steps,
/// and the rest (catch-up, errors, penalties, balance sync).
const POOL_SIZE: usize = 3 * BATCHES_IN_FLIGHT + 4;
/// How often the position book is compared with the venue.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How far back a reconciliation pass looks for claims of engines that
/// died: further than the catch-up (an order whose outcome stayed unknown
/// for days is still followed to its end).
const ORPHAN_LOOKBACK: Duration = Duration::from_secs(30 * 24 * 3600);
/// Every client order id botai makes starts so ('botai-' || fingerprint).
const CLIENT_ORDER_PREFIX: &str = "botai-";
/// Fee and slippage allowance reserved on top of a BUY's notional.
const BUY_BUFFER: Decimal = Decimal::from_parts(5, 0, 0, false, 3);

/// An order went out and no answer came back (a timeout, a 5xx, 10016):
/// it may exist at the venue.
#[derive(Debug)]
struct UnknownOutcome(String);

impl std::fmt::Display for UnknownOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "outcome unknown: {}", self.0)
    }
}

impl std::error::Error for UnknownOutcome {}

pub struct Engine {
    cfg: Arc<EngineSettings>,
    exchange: Arc<dyn Exchange>,
    pool: Pool,
    /// Claims, bookings with reservations, and settlements of concurrent
    /// signals go to the database together (one statement per batch).
    claims: Batcher<i64, Claim>,
    reservations: Batcher<OrderReservation, Reserved>,
    settlements: Batcher<Settlement, bool>,
    telemetry: Arc<Telemetry>,
    /// The connection holding this engine's share of the send gate while
    /// orders are on their way (`botai_send_permit` … `botai_send_done`):
    /// dedicated, never pooled, so a halt waits for exactly these sends.
    gate: Db,
    snapshot: Arc<Snapshot>,
    instrument: Instrument,
    /// The venue trades perpetuals: a SELL signal targets a short, and
    /// either side holds margin in the quote currency.
    shorts: bool,
    component: String,
    in_flight: Mutex<HashSet<i64>>,
    active: AtomicI32,
    /// Set when the engine stops: no more retries.
    stop: CancellationToken,
    /// Last known market price (f64 bits), from the signals.
    last_price: AtomicU64,
    /// Notified on every fill: the balance sync runs at once.
    filled: Arc<tokio::sync::Notify>,
    /// Open orders at the venue already reported as unexplained.
    unexplained: Mutex<HashSet<String>>,
}

/// Runs an engine until `stop`; returns after in-flight orders settled.
pub async fn run(
    cfg: Arc<EngineSettings>,
    exchange: Arc<dyn Exchange>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) -> Result<()> {
    // Whatever ends an engine but a stop — the database restarting, its
    // connection cut, a failover — it takes its slot again, with backoff:
    // nothing is lost meanwhile (signals wait in botai, claims are taken
    // over, orders in flight keep their reservations).
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        let outcome = run_for(cfg.clone(), exchange.clone(), telemetry.clone(), stop.clone(), None).await;
        if stop.is_cancelled() {
            return outcome;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        match outcome {
            Ok(()) => warn!("the trading engine ended; starting it again in {backoff:?}"),
            Err(e) => warn!("the trading engine failed: {e:#}; starting it again in {backoff:?}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// An engine for one signal only (`botai order`): the same claim, booking,
/// reservation, client order id and record, and nothing else traded.
pub async fn run_for(
    cfg: Arc<EngineSettings>,
    exchange: Arc<dyn Exchange>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
    only: Option<i64>,
) -> Result<()> {
    let mut lock = Db::connect(&cfg.pg, "botai trading_engine").await?;
    let engine_id = std::env::var("ENGINE_ID").ok().filter(|s| !s.trim().is_empty());
    let worker_id = lock
        .register_worker(WORKER_TYPE, engine_id.as_deref(), &json!({"pid": std::process::id()}))
        .await?
        .context("every trading_engine slot is held by a live engine (botai.worker_types.max_workers)")?;
    let component = format!("{WORKER_TYPE}:{worker_id}");
    lock.register_component(&component, &json!({"pid": std::process::id(), "worker_id": worker_id})).await?;
    lock.listen("botai_signals").await?;
    // Bookings are moments on the database's clock.
    limits::sync_db_clock(&lock).await?;
    let mut notifications = lock.take_notifications();
    let pool = db::pool(&cfg.pg, "botai trading_engine", POOL_SIZE)?;
    let instrument = exchange.instrument(&cfg.symbol).await.context("instrument rules from the exchange")?;
    let snapshot = Arc::new(Snapshot::default());
    // Reservations need a snapshot: no trading before the first sync. An
    // exchange or database that is briefly away delays the start, logged.
    let mut backoff = Duration::from_secs(1);
    let wallet = loop {
        match balance_sync::sync_once(exchange.as_ref(), &pool, &snapshot).await {
            Ok(wallet) => break wallet,
            Err(e) => {
                warn!("the first balance sync failed (again in {backoff:?}; no trading before it succeeds): {e:#}");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    info!(%worker_id, exchange = exchange.name(), assets = ?wallet.assets.iter().map(|a| (a.asset.clone(), a.available)).collect::<Vec<_>>(),
          reservations = cfg.trading.reservations, rate_limiter = cfg.trading.rate_limiter, "trading engine started");
    if !cfg.trading.reservations || !cfg.trading.rate_limiter {
        warn!(
            "comparison mode: reservations {}, rate limiter {} — botai's guarantees are OFF for this run",
            on_off(cfg.trading.reservations),
            on_off(cfg.trading.rate_limiter)
        );
    }
    let claims = {
        let (worker_id, exchange_name) = (worker_id.clone(), exchange.name().to_owned());
        let symbol = instrument.symbol.clone();
        Batcher::spawn(
            "claim",
            pool.clone(),
            BATCH_MAX,
            BATCHES_IN_FLIGHT,
            telemetry.batch_size("claim"),
            move |conn, ids: Vec<i64>| {
                let (worker_id, exchange_name, symbol) = (worker_id.clone(), exchange_name.clone(), symbol.clone());
                // Only this engine's exchange and symbol: other signals stay
                // for the engines that trade them.
                async move { conn.order_claim(&ids, &worker_id, &exchange_name, &[symbol.as_str()], None).await }
            },
        )
    };
    let reservations = {
        let (worker_id, ttl) = (worker_id.clone(), cfg.trading.reservation_ttl);
        Batcher::spawn(
            "reserve",
            pool.clone(),
            BATCH_MAX,
            BATCHES_IN_FLIGHT,
            telemetry.batch_size("reserve_order"),
            move |conn, orders: Vec<OrderReservation>| {
                let worker_id = worker_id.clone();
                async move { conn.reserve_orders(&worker_id, ttl, &orders).await }
            },
        )
    };
    let gate = Db::connect(&cfg.pg, "botai trading_engine send gate").await?;
    let settlements = {
        let worker_id = worker_id.clone();
        Batcher::spawn(
            "settle",
            pool.clone(),
            BATCH_MAX,
            BATCHES_IN_FLIGHT,
            telemetry.batch_size("settle"),
            move |conn, settlements: Vec<Settlement>| {
                let worker_id = worker_id.clone();
                async move { conn.order_settle(&worker_id, &settlements).await }
            },
        )
    };
    let engine = Arc::new(Engine {
        cfg: cfg.clone(),
        exchange: exchange.clone(),
        pool: pool.clone(),
        claims,
        reservations,
        settlements,
        telemetry,
        gate,
        snapshot: snapshot.clone(),
        shorts: cfg.shorts,
        instrument,
        component: component.clone(),
        in_flight: Mutex::new(HashSet::new()),
        active: AtomicI32::new(0),
        stop: stop.clone(),
        last_price: AtomicU64::new(0),
        filled: Arc::new(tokio::sync::Notify::new()),
        unexplained: Mutex::new(HashSet::new()),
    });
    let permits = Arc::new(Semaphore::new(cfg.trading.concurrency));
    // The book and the open orders against the venue before the first
    // order, then every few minutes.
    engine.reconcile(only.is_none().then_some(&permits)).await;
    let reconcile_stop = stop.child_token();
    let reconciler = tokio::spawn({
        let (engine, stop, permits) = (engine.clone(), reconcile_stop.clone(), permits.clone());
        async move {
            let mut tick = tokio::time::interval(RECONCILE_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                engine.reconcile(only.is_none().then_some(&permits)).await;
            }
        }
    });
    // What the venue does to the account on its own (forced closes,
    // funding), booked as its private stream pushes it.
    let venue_stop = stop.child_token();
    let venue_events = engine.exchange.account_events().map(|events| {
        let (engine, stop) = (engine.clone(), venue_stop.clone());
        tokio::spawn(async move { engine.venue_events(events, stop).await })
    });
    let sync_stop = stop.child_token();
    let sync = tokio::spawn(balance_sync::run(
        cfg.clone(),
        exchange.clone(),
        pool.clone(),
        snapshot,
        engine.filled.clone(),
        sync_stop.clone(),
    ));
    let mut beat = tokio::time::interval(cfg.heartbeat_every);
    let catch_up_stop = stop.child_token();
    let catch_up = match only {
        None => tokio::spawn(engine.clone().catch_up(permits.clone(), catch_up_stop.clone())),
        Some(signal_id) => {
            engine.spawn(signal_id, permits.clone());
            tokio::spawn(async {})
        }
    };
    let outcome = loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break Ok(()),
            _ = lock.closed() => break Err(anyhow::anyhow!("the engine's lock connection closed; its slot is gone")),
            _ = engine.gate.closed() => break Err(anyhow::anyhow!("the engine's send gate connection closed")),
            n = notifications.recv() => {
                let Some(n) = n else { break Err(anyhow::anyhow!("the notification stream ended")) };
                let id = serde_json::from_str::<Value>(n.payload()).ok().and_then(|v| v["signal_id"].as_i64());
                if only.is_some() {
                    continue;
                }
                // A notification is a hint: any session may send one. What
                // it names is looked up (the claim) and dropped when absent.
                match id {
                    Some(id) if id > 0 => engine.spawn(id, permits.clone()),
                    _ => engine.dropped_notification("no_signal_id"),
                }
            }
            _ = beat.tick() => {
                if let Err(e) = limits::sync_db_clock(&lock).await {
                    warn!("cannot read the database's clock: {e}");
                }
                if let Some(offset) = engine.exchange.clock_offset_ms() {
                    engine.telemetry.exchange_clock_offset.set(offset as f64 / 1000.0);
                }
                let active = engine.active.load(Ordering::Relaxed);
                match lock.worker_heartbeat(&worker_id, if active > 0 { "busy" } else { "idle" }, active, None).await {
                    Ok(true) => {}
                    Ok(false) => break Err(anyhow::anyhow!("the engine's worker slot is no longer its own")),
                    Err(e) => break Err(e.into()),
                }
                let meta = json!({"pid": std::process::id(), "worker_id": worker_id, "exchange": engine.exchange.name(),
                                  "clock_offset_ms": engine.exchange.clock_offset_ms(),
                                  "private_stream": engine.exchange.stream_connected(),
                                  "memory_percent": crate::telemetry::memory_percent()});
                if let Err(e) = lock.heartbeat(&component, "healthy", active, Some(&meta)).await {
                    break Err(e.into());
                }
            }
        }
    };
    catch_up_stop.cancel();
    let _ = catch_up.await;
    // Settle what is in flight before leaving (new signals stay for the next engine).
    let drain = tokio::time::timeout(Duration::from_secs(15), async {
        while engine.active.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    if drain.await.is_err() {
        warn!(
            "stopping with {} orders still in flight; their claims will be taken over",
            engine.active.load(Ordering::Relaxed)
        );
    }
    sync_stop.cancel();
    let _ = sync.await;
    reconcile_stop.cancel();
    let _ = reconciler.await;
    venue_stop.cancel();
    if let Some(task) = venue_events {
        let _ = task.await;
    }
    if !lock.is_closed() {
        let _ = lock.unregister_worker(&worker_id).await;
        let _ = lock.heartbeat(&component, "stopped", 0, None).await;
    }
    info!(%worker_id, "trading engine stopped");
    outcome
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The claim found no signal with that id (P0002 from botai_order_claim).
fn no_such_signal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<db::DbError>().is_some_and(
            |d| matches!(d, db::DbError::Sql { context: "botai_order_claim", code, .. } if code == "P0002"),
        )
    })
}

/// At most one log line a minute about dropped notifications.
static DROPPED_LOGGED_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

impl Engine {
    /// Counts a notification that named nothing to act on; says so in the
    /// log at most once a minute (a flood of forged ones is a metric, not
    /// megabytes of log).
    fn dropped_notification(&self, reason: &str) {
        self.telemetry.notifications_dropped.get_or_create(&Reason { reason: reason.to_owned() }).inc();
        let now = chrono::Utc::now().timestamp();
        let last = DROPPED_LOGGED_AT.load(Ordering::Relaxed);
        if now - last >= 60
            && DROPPED_LOGGED_AT.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let total: u64 = ["unknown_signal", "no_signal_id"]
                .iter()
                .map(|r| self.telemetry.notifications_dropped.get_or_create(&Reason { reason: (*r).to_owned() }).get())
                .sum();
            warn!(
                "dropping botai_signals notifications that name no signal ({total} so far, counted in \
                 botai_daemon_notifications_dropped_total): forged, or for a signal already pruned"
            );
        }
    }

    /// Every CATCH_UP_EVERY, hands the signals nobody handled to `spawn`:
    /// at first those of the last hour (or MAX_SIGNAL_AGE if longer), then
    /// those accepted since the last complete scan (with a margin for
    /// transactions that committed late). Runs beside the notification
    /// loop, never in it: a scan must not hold up fresh signals.
    async fn catch_up(self: Arc<Self>, permits: Arc<Semaphore>, stop: CancellationToken) {
        const MAX_ROWS: i32 = 1000;
        let full = self.cfg.trading.max_signal_age.max(Duration::from_secs(3600));
        let mut complete_at: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(CATCH_UP_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let lookback = complete_at.map_or(full, |t| (t.elapsed() + CATCH_UP_MARGIN).min(full));
            let started = tokio::time::Instant::now();
            let ids = match db::pooled(&self.pool).await {
                Ok(conn) => conn.unhandled_signals(lookback, MAX_ROWS).await,
                Err(e) => Err(e),
            };
            match ids {
                Ok(ids) => {
                    if ids.len() < MAX_ROWS as usize {
                        complete_at = Some(started);
                    }
                    for id in ids {
                        self.spawn(id, permits.clone());
                    }
                }
                Err(e) => warn!("catching up on unhandled signals failed: {e}"),
            }
        }
    }

    /// Handles `signal_id` in a task of its own, unless already in flight here.
    fn spawn(self: &Arc<Self>, signal_id: i64, permits: Arc<Semaphore>) {
        if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(signal_id) {
            return;
        }
        let engine = self.clone();
        self.active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                // A failure leaves the order claimed by this engine; it is
                // tried again (the claim taken anew, the exchange asked
                // whether the order went out) until it settles, or — never
                // sent and the signal older than MAX_SIGNAL_AGE — expires.
                let mut unknown_since: Option<tokio::time::Instant> = None;
                let mut alerted = false;
                loop {
                    let permit = permits.clone().acquire_owned().await;
                    let Err(e) = engine.handle(signal_id).await else { break };
                    drop(permit);
                    // No such signal: a forged or stale notification. Dropped
                    // once, counted, not retried, not logged one by one.
                    if no_such_signal(&e) {
                        engine.dropped_notification("unknown_signal");
                        break;
                    }
                    warn!("order for signal {signal_id} failed (again in {RETRY_AFTER:?}): {e:#}");
                    // An order sent without an answer, and the venue not yet
                    // able to say what became of it: critical once it lasts.
                    if e.downcast_ref::<UnknownOutcome>().is_some() || unknown_since.is_some() {
                        let since = *unknown_since.get_or_insert_with(tokio::time::Instant::now);
                        if !alerted && since.elapsed() >= engine.cfg.trading.unknown_order_alert {
                            alerted = true;
                            if let Ok(conn) = db::pooled(&engine.pool).await {
                                let message = format!(
                                    "signal {signal_id}: an order's outcome is unknown for {:.0} s (its funds stay held): {e:#}",
                                    since.elapsed().as_secs_f64()
                                );
                                let _ = conn.report_error(&engine.component, &message, true).await;
                            }
                        }
                    }
                    if let Ok(conn) = db::pooled(&engine.pool).await {
                        let _ =
                            conn.report_error(&engine.component, &format!("signal {signal_id}: {e:#}"), false).await;
                    }
                    tokio::select! {
                        _ = engine.stop.cancelled() => break,
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                }
                engine.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&signal_id);
                engine.active.fetch_sub(1, Ordering::Relaxed);
            },
            info_span!("signal", signal_id),
        ));
    }

    async fn finish(&self, order: &ClaimedOrder, status: &str, details: Value) -> Result<()> {
        self.record(order, None, status, details).await
    }

    /// Ends the process here when BOTAI_FAULT names this step (crash tests).
    fn fault(&self, step: Step, client_order_id: &str) {
        if let Some(fault) = &self.cfg.trading.fault {
            fault.at(step, client_order_id);
        }
    }

    /// The asset an order of `side` holds funds in: a perpetual's margin is
    /// in the quote currency on either side; spot spends the quote to buy
    /// and the base to sell.
    fn spend_asset(&self, side: Side) -> &str {
        match side {
            Side::Sell if !self.shorts => &self.cfg.trading.base,
            _ => &self.cfg.trading.quote,
        }
    }

    /// A pooled connection for the calls that are not batched.
    async fn conn(&self) -> Result<deadpool_postgres::Object> {
        Ok(db::pooled(&self.pool).await?)
    }

    /// Records the outcome (committing the reservation in the same statement).
    async fn record(
        &self,
        order: &ClaimedOrder,
        commit: Option<(Uuid, Decimal)>,
        status: &str,
        details: Value,
    ) -> Result<()> {
        let code = details.get("ret_code").and_then(Value::as_i64);
        let asset = self.spend_asset(Side::from_direction(&order.direction).unwrap_or(Side::Buy)).to_owned();
        let settlement = Settlement {
            order_id: order.order_id,
            signal_id: order.signal_id,
            asset,
            commit,
            status: status.to_owned(),
            details,
        };
        let mine = self.settlements.call(settlement).await?;
        if !mine {
            warn!(order_id = order.order_id, "another engine took the order over before it was recorded");
            return Ok(());
        }
        self.telemetry.order(status, code);
        let latency = Utc::now().signed_duration_since(order.accepted_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        self.telemetry.order_latency.observe(latency.max(0.0));
        debug!(order_id = order.order_id, status, "recorded");
        Ok(())
    }
}
