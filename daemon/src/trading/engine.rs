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
use crate::config::Config;
use crate::db::{
    self, Batcher, BotaiSql, Claim, ClaimedOrder, Db, OrderFilter, OrderReservation, Reserved, Settlement,
};
use crate::exchange::{
    limits, AccountEvent, Exchange, ExchangeError, ForcedClose, Instrument, OrderRequest, OrderState, Position, Side,
    Trigger, TriggerDirection,
};
use crate::telemetry::{Reason, Telemetry};

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
    cfg: Arc<Config>,
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
    cfg: Arc<Config>,
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
    cfg: Arc<Config>,
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
    let instrument = exchange.instrument(&cfg.market.symbol).await.context("instrument rules from the exchange")?;
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
        shorts: match cfg.trading.exchange.as_str() {
            "binance" => true,
            "bybit" => cfg.bybit.category == crate::exchange::Category::Linear,
            _ => false,
        },
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
    let mut beat = tokio::time::interval(cfg.heartbeat_every());
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

    async fn handle(&self, signal_id: i64) -> Result<()> {
        let (order, _) = match self.claims.call(signal_id).await? {
            Claim::Owned(order, free) => (*order, free),
            Claim::Elsewhere => return Ok(()), // another engine owns it, or it was handled
            Claim::NoSuchSignal => {
                // A notification naming no signal: forged, or pruned since.
                self.dropped_notification("unknown_signal");
                return Ok(());
            }
        };
        debug!(client_order_id = %order.client_order_id, attempt = order.attempt, "claimed");
        let Some(side) = Side::from_direction(&order.direction) else {
            bail!("signal direction {:?} is neither BUY nor SELL", order.direction);
        };
        // A claim taken again (this engine's retry, or one taken over from an
        // engine that died) may have sent its order: the venue is asked
        // first, and an order it knows is followed to its end however old
        // the signal is. Only an order never sent can expire.
        if order.attempt > 1 {
            // A claim taken over from an engine that died: was the order sent?
            let updates = self.exchange.order_updates();
            match self.exchange.order(&order.symbol, &order.client_order_id).await {
                Ok(Some(placed)) => {
                    let placed = self.until_final(placed, updates).await?;
                    return self.settle_filled(&order, side, &placed, None).await;
                }
                Ok(None) => {}
                Err(e) => bail!("cannot tell whether the order of a taken-over claim was sent: {e}"),
            }
        }
        if Utc::now() - order.accepted_at > chrono::Duration::from_std(self.cfg.trading.max_signal_age)? {
            return self
                .finish(&order, "expired", json!({"message": "older than MAX_SIGNAL_AGE when an engine got to it"}))
                .await;
        }
        let price = order.payload.get("price").and_then(Value::as_f64).filter(|p| p.is_finite() && *p > 0.0);
        let Some(price) = price.and_then(Decimal::from_f64) else {
            return self.finish(&order, "skipped", json!({"message": "signal carries no price"})).await;
        };
        self.last_price.store(price.to_f64().unwrap_or(0.0).to_bits(), Ordering::Relaxed);
        // A perpetual holds margin in the quote currency on either side; spot
        // spends the quote to buy and the base to sell.
        let spend_asset = self.spend_asset(side);
        // An operator's order (`botai order`) says its quantity and maybe a limit price.
        let manual_qty = order.payload.get("qty").and_then(Value::as_str).and_then(|q| q.parse::<Decimal>().ok());
        let limit_price =
            order.payload.get("limit_price").and_then(Value::as_str).and_then(|p| p.parse::<Decimal>().ok());
        // A conditional order (`botai order --trigger`): the trigger and the
        // way the market goes to it, as the operator's command saw it.
        let trigger =
            order.payload.get("trigger_price").and_then(Value::as_str).and_then(|p| p.parse::<Decimal>().ok());
        let trigger = trigger.map(|at| match order.payload.get("trigger_direction").and_then(Value::as_str) {
            Some("rises") => Trigger { price: at, direction: TriggerDirection::Rises },
            Some("falls") => Trigger { price: at, direction: TriggerDirection::Falls },
            _ => Trigger::from_market(at, price),
        });
        // What the order is expected to cost per unit: its limit, else its
        // trigger, else the market.
        let order_price = limit_price.or(trigger.map(|t| t.price)).unwrap_or(price);
        let (size, target) = match manual_qty {
            Some(qty) => {
                let buffer = if side == Side::Buy { BUY_BUFFER } else { Decimal::ZERO };
                let Some(size) = sizing::exact(qty, side, order_price, buffer, &self.instrument) else {
                    let message = format!(
                        "qty {qty} does not meet {}'s rules (step {}, minimum {}, minimum value {})",
                        self.instrument.symbol,
                        self.instrument.qty_step,
                        self.instrument.min_qty,
                        self.instrument.min_notional
                    );
                    return self.finish(&order, "rejected", json!({"message": message})).await;
                };
                (size, None)
            }
            // A model's signal sets a target position; the order is the
            // difference between it and the exposure (the position and the
            // orders still open), and botai_reserve_order refuses it if
            // another engine's order got there first.
            None => {
                let exit = order.payload.get("intent").and_then(Value::as_str) == Some("exit");
                let (position, pending) = self.conn().await?.exposure(&order.exchange, &order.symbol).await?;
                let exposure = position + pending;
                let equity = self.snapshot.available(&self.cfg.trading.quote)
                    + self.snapshot.available(&self.cfg.trading.base) * price;
                let volatility = order.payload.get("volatility_1h").and_then(Value::as_f64).and_then(Decimal::from_f64);
                let Some(size) = sizing::position_size(self.cfg.trading.sizing, equity, price, volatility) else {
                    let message =
                        "ORDER_SIZE=volatility:… sizes from the signal's volatility_1h, and this signal has none";
                    return self.finish(&order, "skipped", json!({"message": message})).await;
                };
                let target = match (exit, side) {
                    (true, _) => Decimal::ZERO,
                    (false, Side::Buy) => size,
                    (false, Side::Sell) if self.shorts => -size,
                    (false, Side::Sell) => Decimal::ZERO,
                };
                let buffer = BUY_BUFFER;
                let at = format!("position {position}, open orders {pending}, target {}", target.round_dp(8));
                match sizing::toward(target, exposure, side, price, buffer, self.shorts, &self.instrument) {
                    sizing::Step::Trade(size) => (size, Some(target)),
                    sizing::Step::AtTarget => {
                        return self
                            .finish(&order, "skipped", json!({"message": format!("at_target: already there ({at})")}))
                            .await;
                    }
                    sizing::Step::WithinBand(gap) => {
                        let message = format!(
                            "within_band: {gap} to the target is less than {} % of it ({at})",
                            sizing::REBALANCE_BAND * Decimal::ONE_HUNDRED
                        );
                        return self.finish(&order, "skipped", json!({"message": message})).await;
                    }
                    sizing::Step::BelowMinimum(gap) => {
                        let message = format!("below_minimum: {gap} to the target is less than one order ({at})");
                        return self.finish(&order, "skipped", json!({"message": message})).await;
                    }
                }
            }
        };
        // Book the request, fund it, then send exactly at the booked moment:
        // an order sent late can crowd the exchange's window. Booking and
        // reserving share one statement; the reservation is held through
        // the wait and RESERVATION_TTL after it.
        let meta = json!({"signal_id": signal_id, "order_id": order.order_id});
        let ttl = self.cfg.trading.reservation_ttl;
        let guarded = self.cfg.trading.rate_limiter && self.cfg.trading.reservations;
        let (booked, reservation) = match (self.cfg.trading.rate_limiter, self.cfg.trading.reservations) {
            // The kill switch, the risk limits, the rate slot and the funds:
            // one call, atomic.
            (true, true) => match self
                .reservations
                .call(OrderReservation {
                    order_id: order.order_id,
                    target,
                    signal_id,
                    qty: size.qty,
                    price: order_price,
                    asset: spend_asset.to_owned(),
                    amount: size.reserve,
                    // The signal's market price marks the position; a limit
                    // price never does.
                    mark: Some((order.exchange.clone(), order.symbol.clone(), price)),
                })
                .await?
            {
                Reserved::Ok { reservation, booked_at } => (Some(booked_at), Some(Some(reservation))),
                Reserved::Refused(why) => {
                    self.telemetry.risk_refusal(&why);
                    return self.finish(&order, "skipped", json!({"message": why, "qty": size.qty})).await;
                }
            },
            (true, false) => {
                (Some(self.conn().await?.rate_book(self.exchange.name(), ORDER_ENDPOINT, None).await?), None)
            }
            (false, true) => {
                let id = self
                    .conn()
                    .await?
                    .reserve_balance(
                        self.exchange.name(),
                        spend_asset,
                        size.reserve,
                        &order.client_order_id,
                        Some(&meta),
                        ttl,
                    )
                    .await?;
                (None, Some(id))
            }
            (false, false) => (None, None),
        };
        let reservation = match reservation {
            Some(Some(id)) => Some((id, size.reserve)),
            Some(None) => {
                return self.finish(&order, "skipped", json!({"message": format!("free {spend_asset} does not cover {}", size.reserve), "qty": size.qty})).await;
            }
            None => None,
        };
        // The kill switch once more, right before the send: a halt commits
        // only after the venue answered every order permitted here.
        if guarded {
            if let Some(why) = self.gate.send_permit(order.order_id).await? {
                if let Some((id, _)) = reservation {
                    self.conn().await?.release_reservation(id).await?;
                }
                self.telemetry.risk_refusal(&why);
                return self.finish(&order, "skipped", json!({"message": why, "qty": size.qty})).await;
            }
        }
        let request = OrderRequest {
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side,
            qty: size.qty,
            price: limit_price,
            trigger,
        };
        // Subscribed before sending: a fill pushed before the answer arrives is not missed.
        let updates = self.exchange.order_updates();
        let sent = async {
            if let Some(mut booked) = booked {
                // Woken too late for the booked moment: not sent on that slot.
                let mut attempt = 1;
                while limits::until_booked(booked, attempt).await.is_err() {
                    booked = self.conn().await?.rate_book(self.exchange.name(), ORDER_ENDPOINT, None).await?;
                    attempt += 1;
                }
            }
            self.fault(Step::BeforeSend, &request.client_order_id);
            anyhow::Ok(self.exchange.place_order(&request).await)
        }
        .await;
        if guarded {
            // The venue answered (or the send failed): the gate's share goes back.
            if let Err(e) = self.gate.send_done().await {
                warn!("giving back the send gate failed: {e}");
            }
        }
        match sent? {
            Ok(placed) => {
                self.fault(Step::AfterSend, &placed.client_order_id);
                let placed = self.until_final(placed, updates).await?;
                self.settle_filled(&order, side, &placed, reservation).await
            }
            Err(ExchangeError::DuplicateOrder { .. }) => {
                match self.exchange.order(&order.symbol, &order.client_order_id).await? {
                    Some(placed) => {
                        let placed = self.until_final(placed, updates).await?;
                        self.settle_filled(&order, side, &placed, reservation).await
                    }
                    None => bail!("the exchange reports a duplicate order it cannot find"),
                }
            }
            Err(e) => {
                if let ExchangeError::Transport(_) = e {
                    // Outcome unknown: the claim stays, and the next attempt
                    // asks the venue first. The funds stay spoken for
                    // however long that takes: the reservation is committed
                    // whole, so it stays held until a balance snapshot newer
                    // than this moment shows what the order really did
                    // (a reservation merely held would lapse at its TTL).
                    if let Some((id, amount)) = reservation {
                        self.conn().await?.commit_reservation(id, Some(amount)).await?;
                    }
                    return Err(UnknownOutcome(format!("placing {}: {e}", order.client_order_id)).into());
                }
                let code = e.ret_code();
                {
                    // Not held across the settlement below: the batchers
                    // need the pool's connections.
                    let conn = self.conn().await?;
                    if let Some((id, _)) = reservation {
                        conn.release_reservation(id).await?;
                    }
                    if let ExchangeError::RateLimited { .. } = &e {
                        // The adapter has passed the penalty on to botai's limiter.
                        self.telemetry.exchange_penalties.inc();
                    }
                    conn.report_error(&self.component, &format!("order {} refused: {e}", order.client_order_id), false)
                        .await?;
                }
                self.finish(&order, "rejected", json!({"ret_code": code, "message": e.to_string(), "qty": size.qty}))
                    .await
            }
        }
    }

    /// Follows an acknowledged order until nothing more will execute: the
    /// venue confirms fills after the acknowledgement. With the venue's
    /// private stream the updates are pushed and a lookup is only the
    /// fallback (every 5 s); without it the order is looked up with backoff.
    /// Gives up (the claim stays, the reservation held) after a minute
    /// without a final state.
    async fn until_final(
        &self,
        mut placed: OrderState,
        mut updates: Option<tokio::sync::broadcast::Receiver<OrderState>>,
    ) -> Result<OrderState> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut pause = Duration::from_millis(50);
        while !placed.status.is_final() {
            if !placed.filled_qty.is_zero() {
                self.fault(Step::MidFill, &placed.client_order_id);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("order {} is still {:?} after a minute", placed.client_order_id, placed.status);
            }
            let wait = if updates.is_some() { Duration::from_secs(5) } else { pause };
            let pushed = match updates.as_mut() {
                Some(rx) => {
                    let id = placed.client_order_id.clone();
                    tokio::time::timeout(wait, async {
                        loop {
                            match rx.recv().await {
                                Ok(o) if o.client_order_id == id => return Some(o),
                                Ok(_) => {}
                                // Lagged or closed: look it up instead.
                                Err(_) => return None,
                            }
                        }
                    })
                    .await
                    .ok()
                    .flatten()
                }
                None => {
                    tokio::time::sleep(wait).await;
                    None
                }
            };
            if let Some(o) = pushed {
                self.telemetry.order_pushes.inc();
                placed = o;
                continue;
            }
            if updates.is_some() {
                // The stream said nothing in time: it may be down.
                updates = None;
            }
            pause = (pause * 2).min(Duration::from_secs(2));
            placed = self.exchange.order(&placed.symbol, &placed.client_order_id).await?.with_context(|| {
                format!("order {} was acknowledged but the venue cannot find it", placed.client_order_id)
            })?;
        }
        Ok(placed)
    }

    /// Records a fill; commits its reservation (id, reserved amount) with
    /// what the fill actually spent, at most the reserved amount (a fill
    /// that cost more shows in the exchange's next snapshot).
    async fn settle_filled(
        &self,
        order: &ClaimedOrder,
        side: Side,
        placed: &OrderState,
        reservation: Option<(Uuid, Decimal)>,
    ) -> Result<()> {
        self.fault(Step::AfterAnswer, &placed.client_order_id);
        if placed.filled_qty.is_zero() {
            // Ended without executing (the venue rejected or cancelled it):
            // nothing was spent.
            if let Some((id, _)) = reservation {
                self.conn().await?.release_reservation(id).await?;
            }
            let because = placed.venue_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let message = format!("the venue ended the order {:?} with nothing filled{because}", placed.status);
            let details = json!({"message": message, "exchange_order_id": placed.exchange_order_id,
                                 "venue_reason": placed.venue_reason});
            return self.finish(order, "rejected", details).await;
        }
        // The exchange's next balance snapshot will include this order; until
        // then the amount it spent stays held.
        let commit = reservation.map(|(id, reserved)| {
            let spent_asset = self.spend_asset(side);
            let spent = if spent_asset == self.cfg.trading.quote { placed.notional() } else { placed.filled_qty }
                + if placed.fee_asset == spent_asset { placed.fee } else { Decimal::ZERO };
            (id, spent.min(reserved))
        });
        // The fee in the quote currency, for the position book's P&L.
        let fee_quote = if placed.fee_asset == self.cfg.trading.quote {
            placed.fee
        } else if placed.fee_asset == self.cfg.trading.base {
            placed.fee * placed.avg_price
        } else {
            Decimal::ZERO
        };
        // A spot BUY whose fee the venue took in the coin bought holds
        // that much less of it: the position changes by the net.
        let net_qty = if side == Side::Buy && !self.shorts && placed.fee_asset == self.cfg.trading.base {
            placed.filled_qty - placed.fee
        } else {
            placed.filled_qty
        };
        let details = json!({
            "qty": placed.filled_qty, "net_qty": net_qty, "price": placed.avg_price, "notional": placed.notional(), "fee": placed.fee,
            "fee_asset": placed.fee_asset, "fee_quote": fee_quote.round_dp(12), "exchange_status": format!("{:?}", placed.status),
            "exchange_order_id": placed.exchange_order_id, "reservation_id": reservation.map(|r| r.0),
            // What the venue says about the order beside the fill.
            "venue_reason": placed.venue_reason, "venue_realised_pnl": placed.realised_pnl,
        });
        self.record(order, commit, "filled", details).await?;
        self.filled.notify_one();
        Ok(())
    }

    async fn finish(&self, order: &ClaimedOrder, status: &str, details: Value) -> Result<()> {
        self.record(order, None, status, details).await
    }

    /// One reconciliation pass, each part on its own (a failure is logged and
    /// tried again at the next pass): the position, the open orders, and —
    /// unless the engine trades one signal only — the claims of engines
    /// that died longer ago than the catch-up looks back.
    async fn reconcile(self: &Arc<Self>, permits: Option<&Arc<Semaphore>>) {
        if let Err(e) = self.reconcile_position().await {
            warn!("reconciling the position with the venue failed (again in {RECONCILE_EVERY:?}): {e:#}");
        }
        if let Err(e) = self.reconcile_orders().await {
            warn!("reconciling the open orders with the venue failed (again in {RECONCILE_EVERY:?}): {e:#}");
        }
        let Some(permits) = permits else { return };
        let orphans = match db::pooled(&self.pool).await {
            Ok(conn) => conn.unhandled_signals(ORPHAN_LOOKBACK, 1000).await,
            Err(e) => Err(e),
        };
        match orphans {
            Ok(ids) => ids.into_iter().for_each(|id| self.spawn(id, permits.clone())),
            Err(e) => warn!("looking for claims of engines that died failed (again in {RECONCILE_EVERY:?}): {e}"),
        }
    }

    /// Compares the venue's open orders in this engine's symbol with
    /// botai's record. An open order botai holds a claim on is on its way —
    /// or its engine died between the send and the record, and the claim's
    /// next owner adopts it (finds it by its client order id, follows it to
    /// its end and records it). Any other open order cannot be explained —
    /// botai recorded it finished, has no record of it, or did not place it
    /// (an operator's, another bot's) — and is reported critical (an alert),
    /// once per engine run; it is never cancelled: it may be someone's.
    async fn reconcile_orders(&self) -> Result<()> {
        let open = self.exchange.open_orders(&self.instrument.symbol).await?;
        if open.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        for o in open {
            let recorded = conn.orders(OrderFilter::ClientOrderId(&o.client_order_id), 1).await?;
            let why = match recorded.first() {
                Some(r) if r.status == "claimed" => continue,
                Some(r) => format!("botai recorded it {}", r.status),
                None if o.client_order_id.starts_with(CLIENT_ORDER_PREFIX) => "botai has no record of it".to_owned(),
                None => "botai did not place it".to_owned(),
            };
            if !self.unexplained.lock().unwrap_or_else(|p| p.into_inner()).insert(o.client_order_id.clone()) {
                continue;
            }
            let message = format!(
                "an order open at {} that botai cannot explain: {} {} {} {:?} (filled {}, client order id {:?}, \
                 venue id {}): {why}",
                self.exchange.name(),
                o.side.as_str(),
                o.qty,
                o.symbol,
                o.status,
                o.filled_qty,
                o.client_order_id,
                o.exchange_order_id
            );
            warn!("{message}");
            conn.report_error(&self.component, &message, true).await?;
        }
        Ok(())
    }

    /// Compares the book's position in this engine's symbol with the
    /// venue's: a perpetual's position as the venue lists it; on spot,
    /// botai's position cannot be more than the base the account holds, nor
    /// negative. A difference no open order explains corrects the book and
    /// is reported as a critical error (an alert).
    async fn reconcile_position(&self) -> Result<()> {
        let (exchange, symbol) = (self.exchange.name(), self.instrument.symbol.as_str());
        let (book, _) = self.conn().await?.exposure(exchange, symbol).await?;
        let price = match self.last_price.load(Ordering::Relaxed) {
            0 => self.exchange.last_price(symbol).await.ok(),
            bits => Decimal::from_f64(f64::from_bits(bits)),
        };
        if !self.shorts {
            let Some(wallet) = self.snapshot.wallet() else { return Ok(()) };
            let held =
                wallet.assets.iter().find(|a| a.asset == self.cfg.trading.base).map_or(Decimal::ZERO, |a| a.total);
            let venue = book.clamp(Decimal::ZERO, held);
            if venue == book {
                return Ok(());
            }
            let conn = self.conn().await?;
            if let Some(correction) = conn.position_reconcile(exchange, symbol, venue, price).await? {
                if !correction.is_zero() {
                    let message = format!(
                        "the {exchange}/{symbol} position in botai's book was {book}, the account holds {venue}: \
                         the book was corrected by {correction}"
                    );
                    warn!("{message}");
                    conn.report_error(&self.component, &message, true).await?;
                }
            }
            return Ok(());
        }
        let positions = self.exchange.positions().await?;
        let mine: Vec<&Position> = positions.iter().filter(|p| p.symbol == symbol).collect();
        let conn = self.conn().await?;
        if mine.iter().any(|p| p.leg.is_some()) {
            let message = format!(
                "the {exchange} account holds {symbol} in hedge mode (a long and a short leg): botai books one \
                 position per symbol and adopts neither; switch the account to one-way mode"
            );
            warn!("{message}");
            return conn.report_error(&self.component, &message, true).await.map_err(Into::into);
        }
        let (venue, entry) = mine.first().map_or((Decimal::ZERO, None), |p| (p.size, Some(p.entry_price)));
        if venue == book {
            return Ok(());
        }
        if let Some(correction) = conn.position_adopt(exchange, symbol, venue, entry, price).await? {
            if !correction.is_zero() {
                let at = entry.map(|e| format!(" at the venue's entry price {e}")).unwrap_or_default();
                let message = format!(
                    "the {exchange}/{symbol} position in botai's book was {book}, the venue's is {venue}: the book \
                     took the venue's position{at} (a correction of {correction})"
                );
                warn!("{message}");
                conn.report_error(&self.component, &message, true).await?;
            }
        }
        Ok(())
    }

    /// Books what the venue does to the account on its own: a forced close
    /// of this engine's symbol (a critical alert, the fill into the book
    /// and the day's P&L) and funding fees, each once (by the venue's id).
    async fn venue_events(
        self: Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<AccountEvent>,
        stop: CancellationToken,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => event,
            };
            let event = match event {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    warn!("{n} venue events were missed; reconciliation adopts the venue's position");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if let Err(e) = self.venue_event(&event).await {
                warn!("cannot book the venue's {event:?}: {e:#}");
                if let Ok(conn) = self.conn().await {
                    let message = format!("cannot book what the venue did on its own ({event:?}): {e:#}");
                    let _ = conn.report_error(&self.component, &message, true).await;
                }
            }
        }
    }

    async fn venue_event(&self, event: &AccountEvent) -> Result<()> {
        let (exchange, symbol) = (self.exchange.name(), self.instrument.symbol.as_str());
        match event {
            AccountEvent::ForcedClose { kind, symbol: s, side, qty, price, fee, fee_asset, venue_id }
                if s == symbol =>
            {
                let fee_quote = self.fee_in_quote(*fee, fee_asset, *price);
                let side_word = if *side == Side::Buy { "BUY" } else { "SELL" };
                let conn = self.conn().await?;
                let booked = conn
                    .venue_trade(
                        exchange,
                        symbol,
                        kind.as_str(),
                        venue_id,
                        Some(side_word),
                        Some(*qty),
                        Some(*price),
                        fee_quote,
                    )
                    .await?;
                if let Some(realized) = booked {
                    let what = match kind {
                        ForcedClose::Liquidation => "LIQUIDATED",
                        ForcedClose::Adl => "AUTO-DELEVERAGED (ADL)",
                        ForcedClose::Delisting => "closed by delisting",
                    };
                    let message = format!(
                        "the venue {what} {qty} {symbol} on {exchange} ({side_word} at {price}, fee {fee} {fee_asset}): \
                         booked, realised {realized}"
                    );
                    warn!("{message}");
                    conn.report_error(&self.component, &message, true).await?;
                    self.filled.notify_one();
                }
            }
            AccountEvent::Funding { symbol: s, amount, asset, venue_id } => {
                // Cross-margin funding may name no symbol: it is this
                // engine's when it holds a position (booked once, by id).
                let conn = self.conn().await?;
                let mine = if s.is_empty() { !conn.exposure(exchange, symbol).await?.0.is_zero() } else { s == symbol };
                if !mine {
                    return Ok(());
                }
                let fee = self.fee_in_quote(*amount, asset, Decimal::ZERO);
                conn.venue_trade(exchange, symbol, "funding", venue_id, None, None, None, fee).await?;
            }
            AccountEvent::ForcedClose { .. } => {}
        }
        Ok(())
    }

    /// A fee in the quote currency (a base-coin fee at `price`; another
    /// asset's counts 0, said in the log).
    fn fee_in_quote(&self, fee: Decimal, asset: &str, price: Decimal) -> Decimal {
        if asset == self.cfg.trading.quote || asset.is_empty() {
            fee
        } else if asset == self.cfg.trading.base && price > Decimal::ZERO {
            fee * price
        } else {
            warn!(
                "a venue fee of {fee} {asset} is in neither {} nor {}: counted 0",
                self.cfg.trading.quote, self.cfg.trading.base
            );
            Decimal::ZERO
        }
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
