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
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};
use uuid::Uuid;

use super::balance_sync::{self, Snapshot};
use super::sizing;
use crate::config::Config;
use crate::db::{self, Batcher, Booking, BotaiSql, ClaimedOrder, Db, Settlement};
use crate::exchange::{limits, Exchange, ExchangeError, Instrument, OrderRequest, OrderState, Side};
use crate::telemetry::Telemetry;

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
/// Fee and slippage allowance reserved on top of a BUY's notional.
const BUY_BUFFER: Decimal = Decimal::from_parts(5, 0, 0, false, 3);

type Claimed = Option<(ClaimedOrder, Option<Decimal>)>;

pub struct Engine {
    cfg: Arc<Config>,
    exchange: Arc<dyn Exchange>,
    pool: Pool,
    /// Claims, bookings with reservations, and settlements of concurrent
    /// signals go to the database together (one statement per batch).
    claims: Batcher<i64, Claimed>,
    bookings: Batcher<Booking, (DateTime<Utc>, Option<Uuid>)>,
    settlements: Batcher<Settlement, bool>,
    telemetry: Arc<Telemetry>,
    snapshot: Arc<Snapshot>,
    instrument: Instrument,
    component: String,
    in_flight: Mutex<HashSet<i64>>,
    active: AtomicI32,
    /// Set when the engine stops: no more retries.
    stop: CancellationToken,
    /// Last known market price (f64 bits), from the signals.
    last_price: AtomicU64,
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
        // Free funds matter to fraction sizing only (and cost a sum).
        let free_of = (cfg.trading.reservations && matches!(cfg.trading.sizing, crate::config::Sizing::Fraction(_)))
            .then(|| (cfg.trading.quote.clone(), cfg.trading.base.clone()));
        Batcher::spawn(
            "claim",
            pool.clone(),
            BATCH_MAX,
            BATCHES_IN_FLIGHT,
            telemetry.batch_size("claim"),
            move |conn, ids: Vec<i64>| {
                let (worker_id, exchange_name, free_of) = (worker_id.clone(), exchange_name.clone(), free_of.clone());
                async move {
                    let free_of = free_of.as_ref().map(|(q, b)| (q.as_str(), b.as_str()));
                    conn.order_claim(&ids, &worker_id, &exchange_name, free_of).await
                }
            },
        )
    };
    let bookings = {
        let (exchange_name, ttl) = (exchange.name().to_owned(), cfg.trading.reservation_ttl);
        Batcher::spawn(
            "book and reserve",
            pool.clone(),
            BATCH_MAX,
            BATCHES_IN_FLIGHT,
            telemetry.batch_size("book_and_reserve"),
            move |conn, bookings: Vec<Booking>| {
                let exchange_name = exchange_name.clone();
                async move { conn.book_and_reserve(&exchange_name, ORDER_ENDPOINT, ttl, &bookings).await }
            },
        )
    };
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
        bookings,
        settlements,
        telemetry,
        snapshot: snapshot.clone(),
        instrument,
        component: component.clone(),
        in_flight: Mutex::new(HashSet::new()),
        active: AtomicI32::new(0),
        stop: stop.clone(),
        last_price: AtomicU64::new(0),
    });
    let sync_stop = stop.child_token();
    let sync =
        tokio::spawn(balance_sync::run(cfg.clone(), exchange.clone(), pool.clone(), snapshot, sync_stop.clone()));
    let permits = Arc::new(Semaphore::new(cfg.trading.concurrency));
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
            n = notifications.recv() => {
                let Some(n) = n else { break Err(anyhow::anyhow!("the notification stream ended")) };
                let id = serde_json::from_str::<Value>(n.payload()).ok().and_then(|v| v["signal_id"].as_i64());
                if only.is_some() {
                    continue;
                }
                match id {
                    Some(id) => engine.spawn(id, permits.clone()),
                    None => warn!(payload = n.payload(), "ignoring a botai_signals notification without signal_id"),
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
                                  "private_stream": engine.exchange.stream_connected()});
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

impl Engine {
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
                loop {
                    let permit = permits.clone().acquire_owned().await;
                    let Err(e) = engine.handle(signal_id).await else { break };
                    drop(permit);
                    warn!("order for signal {signal_id} failed (again in {RETRY_AFTER:?}): {e:#}");
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
        let Some((order, free_in_botai)) = self.claims.call(signal_id).await? else {
            return Ok(()); // another engine owns it, or it was handled
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
        let (spend_asset, buffer) = match side {
            Side::Buy => (&self.cfg.trading.quote, BUY_BUFFER),
            Side::Sell => (&self.cfg.trading.base, Decimal::ZERO),
        };
        let fraction = matches!(self.cfg.trading.sizing, crate::config::Sizing::Fraction(_));
        let free = match (self.cfg.trading.reservations, fraction) {
            // botai's free funds, read with the claim.
            (true, true) => free_in_botai.unwrap_or_default(),
            // Fixed notional: free funds only decide via the reservation.
            (true, false) => Decimal::MAX,
            // Comparison runs without reservations: the last snapshot.
            (false, _) => self.snapshot.available(spend_asset),
        };
        // An operator's order (`botai order`) says its quantity and maybe a limit price.
        let manual_qty = order.payload.get("qty").and_then(Value::as_str).and_then(|q| q.parse::<Decimal>().ok());
        let limit_price =
            order.payload.get("limit_price").and_then(Value::as_str).and_then(|p| p.parse::<Decimal>().ok());
        let sized = match manual_qty {
            Some(qty) => sizing::exact(qty, side, limit_price.unwrap_or(price), buffer, &self.instrument),
            None => sizing::size(self.cfg.trading.sizing, side, free, price, buffer, &self.instrument),
        };
        let Some(size) = sized else {
            if let Some(qty) = manual_qty {
                let message = format!(
                    "qty {qty} does not meet {}'s rules (step {}, minimum {}, minimum value {})",
                    self.instrument.symbol,
                    self.instrument.qty_step,
                    self.instrument.min_qty,
                    self.instrument.min_notional
                );
                return self.finish(&order, "rejected", json!({"message": message})).await;
            }
            return self
                .finish(
                    &order,
                    "skipped",
                    json!({"message": format!("no funds for a minimum order: free {spend_asset} {free}")}),
                )
                .await;
        };
        // Book the request, fund it, then send exactly at the booked moment:
        // an order sent late can crowd the exchange's window. Booking and
        // reserving share one statement; the reservation is held through
        // the wait and RESERVATION_TTL after it.
        let meta = json!({"signal_id": signal_id, "order_id": order.order_id});
        let ttl = self.cfg.trading.reservation_ttl;
        let (booked, reservation) = match (self.cfg.trading.rate_limiter, self.cfg.trading.reservations) {
            (true, true) => {
                let (booked, id) = self
                    .bookings
                    .call(Booking {
                        asset: spend_asset.clone(),
                        amount: size.reserve,
                        purpose: order.client_order_id.clone(),
                        metadata: meta,
                    })
                    .await?;
                (Some(booked), Some(id))
            }
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
        if let Some(mut booked) = booked {
            // Woken too late for the booked moment: not sent on that slot.
            let mut attempt = 1;
            while limits::until_booked(booked, attempt).await.is_err() {
                booked = self.conn().await?.rate_book(self.exchange.name(), ORDER_ENDPOINT, None).await?;
                attempt += 1;
            }
        }
        let request = OrderRequest {
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side,
            qty: size.qty,
            price: limit_price,
        };
        // Subscribed before sending: a fill pushed before the answer arrives is not missed.
        let updates = self.exchange.order_updates();
        match self.exchange.place_order(&request).await {
            Ok(placed) => {
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
                    // Outcome unknown: leave the claim for reconciliation,
                    // and the reservation held (it expires after its TTL)
                    // in case the order went through.
                    bail!("placing {}: {e}", order.client_order_id);
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
        if placed.filled_qty.is_zero() {
            // Ended without executing (the venue rejected or cancelled it):
            // nothing was spent.
            if let Some((id, _)) = reservation {
                self.conn().await?.release_reservation(id).await?;
            }
            let message = format!("the venue ended the order {:?} with nothing filled", placed.status);
            return self
                .finish(order, "rejected", json!({"message": message, "exchange_order_id": placed.exchange_order_id}))
                .await;
        }
        // The exchange's next balance snapshot will include this order; until
        // then the amount it spent stays held.
        let commit = reservation.map(|(id, reserved)| {
            let spent_asset = match side {
                Side::Buy => &self.cfg.trading.quote,
                Side::Sell => &self.cfg.trading.base,
            };
            let spent = match side {
                Side::Buy => placed.notional(),
                Side::Sell => placed.filled_qty,
            } + if placed.fee_asset == *spent_asset { placed.fee } else { Decimal::ZERO };
            (id, spent.min(reserved))
        });
        let details = json!({
            "qty": placed.filled_qty, "price": placed.avg_price, "notional": placed.notional(), "fee": placed.fee,
            "fee_asset": placed.fee_asset, "exchange_status": format!("{:?}", placed.status),
            "exchange_order_id": placed.exchange_order_id, "reservation_id": reservation.map(|r| r.0),
        });
        self.record(order, commit, "filled", details).await
    }

    async fn finish(&self, order: &ClaimedOrder, status: &str, details: Value) -> Result<()> {
        self.record(order, None, status, details).await
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
        let asset = match Side::from_direction(&order.direction) {
            Some(Side::Buy) => self.cfg.trading.quote.clone(),
            _ => self.cfg.trading.base.clone(),
        };
        let settlement = Settlement { order_id: order.order_id, asset, commit, status: status.to_owned(), details };
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
