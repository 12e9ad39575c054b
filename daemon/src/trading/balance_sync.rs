//! Keeps botai's balance snapshots current: every BALANCE_UPDATE_INTERVAL
//! the exchange's wallet goes to `botai_update_balance` with the moment the
//! exchange reported it, so a reservation committed after that moment stays
//! held until the next snapshot includes its order.
//!
//! The engine also keeps the last wallet itself: with reservations switched
//! off (the comparison run) it sizes orders from it, as a bot without botai
//! would, and learns from the exchange's 110007 when it overspent.

use std::sync::{Arc, RwLock};

use anyhow::Result;
use deadpool_postgres::Pool;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::db::{self, BalanceCalls};
use crate::exchange::{Exchange, Wallet};
use crate::trading::config::EngineSettings;

#[derive(Default)]
pub struct Snapshot {
    last: RwLock<Option<Wallet>>,
}

impl Snapshot {
    pub fn available(&self, asset: &str) -> Decimal {
        self.last.read().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(Decimal::ZERO, |w| w.available(asset))
    }

    pub fn wallet(&self) -> Option<Wallet> {
        self.last.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn store(&self, wallet: Wallet) {
        *self.last.write().unwrap_or_else(|p| p.into_inner()) = Some(wallet);
    }
}

/// One sync: the wallet from the exchange into botai and the local snapshot.
pub async fn sync_once(exchange: &dyn Exchange, pool: &Pool, snapshot: &Snapshot) -> Result<Wallet> {
    // The adapter books the request with botai's limiter (and passes a
    // refusal on to it).
    let wallet = exchange.wallet().await?;
    // The engine's own copy first: whoever sees the new balances in botai
    // (a stepped replay moving to its next bar) finds the engine sizing
    // from them too.
    snapshot.store(wallet.clone());
    // A venue on this host has our clock: no skew to allow for.
    let skew = exchange.shares_our_clock().then_some(std::time::Duration::ZERO);
    let conn = db::pooled(pool).await?;
    for a in &wallet.assets {
        conn.update_balance(exchange.name(), &a.asset, a.total, a.available, a.locked, wallet.as_of, skew).await?;
    }
    // Venues list only the coins an account holds (Bybit's unified wallet
    // drops a coin sold to nothing): an asset botai knows that the wallet
    // no longer lists is empty, not at its last value.
    for asset in conn.balance_assets(exchange.name()).await? {
        if !wallet.assets.iter().any(|a| a.asset == asset) {
            info!(exchange = exchange.name(), %asset, "the venue no longer lists this asset: its balance is now 0");
            let zero = Decimal::ZERO;
            conn.update_balance(exchange.name(), &asset, zero, zero, zero, wallet.as_of, skew).await?;
        }
    }
    Ok(wallet)
}

/// Syncs every BALANCE_UPDATE_INTERVAL until `stop`, and at once when
/// `now` is notified (a fill changed what the account holds: the coins a
/// BUY bought are botai's to sell only once a snapshot shows them).
pub async fn run(
    cfg: Arc<EngineSettings>,
    exchange: Arc<dyn Exchange>,
    pool: Pool,
    snapshot: Arc<Snapshot>,
    now: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.trading.balance_update_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = now.notified() => {}
        }
        if let Err(e) = sync_once(exchange.as_ref(), &pool, &snapshot).await {
            warn!("balance sync failed: {e:#}");
        }
    }
}
