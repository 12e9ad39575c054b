//! The operator's commands on the venue: `botai exchange check` (the first
//! command before trading live), and manual orders — `botai order buy|sell
//! SYMBOL QTY [--price P]`, `botai order cancel ID`, `botai orders` — which
//! go through the same guarantees as the engine's (a signal registered,
//! claimed by exactly one engine, the request booked with the shared limiter,
//! the funds reserved, a client order id, the outcome recorded).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::{Amount, Db, DbError, OrderCalls, OrderFilter, OrderRecord, RateLimitCalls, RiskCalls, SignalCalls};
use crate::env::pg::PgSettings;
use crate::exchange::{Side, Trigger, TriggerDirection};
use crate::telemetry::Telemetry;

/// `botai exchange check`: keys, clock, permissions, limits, balances.
pub async fn check(cfg: &Config, allow_withdraw: bool) -> Result<()> {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let x = crate::run::venues::connect(cfg, &stop)?;
    let url = match cfg.trading.exchange.as_str() {
        "bybit" => cfg.bybit.rest_url.clone(),
        "binance" => cfg.binance.rest_url.clone(),
        _ => cfg.trading.paper_url.clone().unwrap_or_default(),
    };
    println!("exchange     {} at {url}", x.name());
    let before = Utc::now();
    let server = x.server_time().await.context("the venue's time")?;
    let round_trip = Utc::now() - before;
    let offset = (server - (before + round_trip / 2)).num_milliseconds();
    println!(
        "clock        venue {} ms ahead of this machine (round trip {} ms)",
        offset,
        round_trip.num_milliseconds()
    );
    if offset.abs() > 1000 {
        println!("             (botai signs with the venue's time; keep this machine's clock synchronised anyway)");
    }
    let wallet = x.wallet().await.context("the wallet: are the API key and secret right?")?;
    println!("key          accepted (signed request verified by the venue)");
    match x.key_info().await? {
        Some(k) => {
            println!("permissions  {}", if k.permissions.is_empty() { "(none)" } else { &k.permissions });
            let ips = if k.ips.is_empty() { "any address".to_owned() } else { k.ips.join(", ") };
            println!("bound to     {ips}");
            if k.read_only || !k.can_trade {
                bail!("this key cannot trade (read-only or no trade permission): create a key with trading enabled");
            }
            if k.can_withdraw && !allow_withdraw {
                bail!(
                    "this key can WITHDRAW funds: botai never needs that, and a leaked key that can withdraw empties \
                     the account. Create a key without the Withdraw permission, or pass --allow-withdraw-permission"
                );
            }
            if k.can_withdraw {
                println!("             WARNING: the key can withdraw (allowed by --allow-withdraw-permission)");
            }
        }
        None => println!("permissions  (the venue does not report them)"),
    }
    let instrument = x.instrument(&cfg.market.symbol).await.context("the symbol's trading rules")?;
    println!(
        "symbol       {}: step {}, minimum {} ({} {} at least), tick {}",
        instrument.symbol,
        instrument.qty_step,
        instrument.min_qty,
        instrument.min_notional,
        instrument.quote,
        instrument.tick_size
    );
    if x.hedge_mode(&cfg.market.symbol).await.context("the account's position mode")? {
        bail!(
            "this account is in hedge mode (a long and a short leg per symbol): botai books one position per \
             symbol; switch the account to one-way mode"
        );
    }
    let limits = x.venue_limits();
    if limits.is_empty() {
        println!("limits       (no limit headers seen yet)");
    }
    for (endpoint, remaining, limit) in limits {
        println!("limits       {endpoint}: the venue says {remaining} of {limit} left in its window");
    }
    if let Ok(db) = Db::connect(&cfg.pg, "botai exchange check").await {
        for (endpoint, max_weight, window, effective) in db.rate_limits(x.name()).await? {
            println!("botai        {endpoint}: {effective} per {window} s booked (of {max_weight} configured)");
        }
    }
    for a in wallet.assets.iter().filter(|a| !a.total.is_zero()) {
        println!("balance      {} {} (available {}, locked {})", a.asset, a.total, a.available, a.locked);
    }
    println!("ok           ready to trade on {}", x.name());
    Ok(())
}

/// `botai order buy|sell`: one order through botai's guarantees.
pub async fn place(
    cfg: Arc<Config>,
    side: Side,
    symbol: &str,
    qty: Decimal,
    price: Option<Decimal>,
    trigger: Option<Decimal>,
) -> Result<()> {
    if qty <= Decimal::ZERO {
        bail!("QTY must be positive (got {qty})");
    }
    if price.is_some_and(|p| p <= Decimal::ZERO) {
        bail!("--price must be positive");
    }
    if trigger.is_some_and(|p| p <= Decimal::ZERO) {
        bail!("--trigger must be positive");
    }
    let stop = CancellationToken::new();
    let x = crate::run::venues::connect(&cfg, &stop)?;
    if trigger.is_some() && !x.conditional_orders() {
        bail!("{} takes no conditional orders from botai (--trigger): nothing was sent", x.name());
    }
    // The signal's price is the market's (it marks the position book); a
    // limit goes as limit_price only, never as a mark.
    let reference = x.last_price(symbol).await.context("the last price, to reserve the order's funds")?;
    // The way the market goes to the trigger, seen from here.
    let trigger = trigger.map(|at| Trigger::from_market(at, reference));
    if trigger.is_some_and(|t| t.price == reference) {
        bail!("--trigger {reference} is the last price already: place the order without it");
    }
    let db = Db::connect(&cfg.pg, "botai order").await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let strategy = format!("manual-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let signal = json!({
        "symbol": symbol, "direction": if side == Side::Buy { "BUY" } else { "SELL" }, "strategy": strategy,
        "timestamp": Utc::now().to_rfc3339(), "price": reference.to_string().parse::<f64>().unwrap_or(0.0),
        "exchange": x.name(), "qty": qty.normalize().to_string(),
        "limit_price": price.map(|p| p.normalize().to_string()), "operator": operator,
        "trigger_price": trigger.map(|t| t.price.normalize().to_string()),
        "trigger_direction": trigger.map(|t| match t.direction {
            TriggerDirection::Rises => "rises",
            TriggerDirection::Falls => "falls",
        }),
    });
    let verdict = db.register_signal(&signal, None).await?;
    let signal_id = verdict.signal_id.with_context(|| format!("botai refused the order: {}", verdict.reason))?;
    println!("order        {} {} {symbol} {}, signal {signal_id}", x.name(), side.as_str(), qty.normalize());
    if let Some(t) = trigger {
        let way = if t.direction == TriggerDirection::Rises { "rises" } else { "falls" };
        println!("trigger      waits at the venue until the last price {way} to {} (now {reference})", t.price);
    }
    let telemetry = Arc::new(Telemetry::new());
    let engine = tokio::spawn(crate::trading::engine::run_for(
        Arc::new(cfg.engine()),
        x,
        telemetry,
        stop.clone(),
        Some(signal_id),
    ));
    let resting = price.is_some() || trigger.is_some();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(if resting { 10 } else { 90 });
    let record = loop {
        let rows = db.orders(OrderFilter::Signal(signal_id), 1).await?;
        if let Some(r) = rows.into_iter().next().filter(|r| r.status != "claimed") {
            break Some(r);
        }
        if engine.is_finished() || tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let outcome = engine.await;
    match record {
        Some(r) => {
            print_order(&r);
            if r.status != "filled" {
                bail!("the order was not filled: {}", r.message.unwrap_or_default());
            }
            Ok(())
        }
        None => {
            if let Ok(Err(e)) = outcome {
                return Err(e.context("the order's engine"));
            }
            let rows = db.orders(OrderFilter::Signal(signal_id), 1).await?;
            match rows.first() {
                Some(r) => {
                    print_order(r);
                    println!(
                        "open         not final yet; any engine finishes recording it. `botai order cancel {}` cancels it",
                        r.client_order_id
                    );
                    Ok(())
                }
                None => bail!("no engine took the order within the wait (every trading_engine slot busy?)"),
            }
        }
    }
}

/// `botai order cancel ID`.
pub async fn cancel(cfg: &Config, client_order_id: &str) -> Result<()> {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let x = crate::run::venues::connect(cfg, &stop)?;
    let db = Db::connect(&cfg.pg, "botai order cancel").await?;
    let symbol = db
        .orders(OrderFilter::ClientOrderId(client_order_id), 1)
        .await?
        .first()
        .map_or_else(|| cfg.market.symbol.clone(), |r| r.symbol.clone());
    x.cancel_order(&symbol, client_order_id).await.with_context(|| format!("cancelling {client_order_id}"))?;
    println!("cancelled    {client_order_id} on {}", x.name());
    Ok(())
}

/// `botai orders`: the latest orders as botai recorded them.
pub async fn list(cfg: &Config, limit: i64) -> Result<()> {
    let db = Db::connect(&cfg.pg, "botai orders").await?;
    let rows = db.orders(OrderFilter::All, limit).await?;
    if rows.is_empty() {
        println!("(no orders)");
    }
    for r in rows {
        print_order(&r);
    }
    Ok(())
}

/// `botai positions`: the book, each account's day, the trading state.
pub async fn positions(cfg: &Config) -> Result<()> {
    let db = Db::connect(&cfg.pg, "botai positions").await?;
    let state = db.trading_state().await?;
    println!(
        "trading: {}{} (by {} at {})",
        state.mode,
        state.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(),
        state.changed_by,
        state.changed_at.format("%Y-%m-%d %H:%M:%S")
    );
    let rows = db.positions().await?;
    if rows.is_empty() {
        println!("(no positions)");
    }
    let amount = |d: &Option<Amount>| Amount::show(d, 8);
    for p in rows {
        println!(
            "{:<8} {:<10} qty {:<12} entry {:<12} last {:<12} unrealised {:<12} realised {:<12} fees {:<10} trades {:<6} open orders {} ({})",
            p.exchange,
            p.symbol,
            p.qty.rounded(8),
            amount(&p.avg_entry),
            amount(&p.last_price),
            amount(&p.unrealized_pnl),
            p.realized_pnl.rounded(8),
            p.fees.rounded(8),
            p.trades,
            p.open_orders,
            p.pending_qty.rounded(8),
        );
    }
    Ok(())
}

/// `botai halt`: botai_halt, with the operator's connection; returns once
/// no order can reach a venue any more.
pub async fn halt(pg: &PgSettings, reason: &str, mode: &str) -> Result<()> {
    let db = Db::connect(pg, "botai halt").await?;
    println!("{}", db.halt(reason, mode).await.map_err(DbError::for_operator)?);
    Ok(())
}

/// `botai resume`: botai_resume, with the operator's connection,
/// acknowledging the open alerts of rules that halt which `acknowledge`
/// names (their ids, as `botai status` and the refusal list them).
pub async fn resume(pg: &PgSettings, reason: &str, acknowledge: &[i64]) -> Result<()> {
    let db = Db::connect(pg, "botai resume").await?;
    println!("{}", db.resume(reason, acknowledge).await.map_err(DbError::for_operator)?);
    Ok(())
}

fn print_order(r: &OrderRecord) {
    let amount = |d: &Option<Amount>| d.as_ref().map_or_else(|| "-".to_owned(), Amount::to_string);
    println!(
        "{}  {:<8} {:<8} {:<4} {:<10} qty {:<12} price {:<12} {}{}",
        r.claimed_at.format("%Y-%m-%d %H:%M:%S"),
        r.status,
        r.exchange,
        r.side,
        r.symbol,
        amount(&r.qty),
        amount(&r.price),
        r.client_order_id,
        r.message.as_ref().map(|m| format!("  ({m})")).unwrap_or_default()
    );
}
