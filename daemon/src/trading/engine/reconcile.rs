//! Reconciliation with the venue: the position book and the open orders,
//! and the claims of engines that died.

use super::*;

impl Engine {
    /// One reconciliation pass, each part on its own (a failure is logged and
    /// tried again at the next pass): the position, the open orders, and —
    /// unless the engine trades one signal only — the claims of engines
    /// that died longer ago than the catch-up looks back.
    pub(super) async fn reconcile(self: &Arc<Self>, permits: Option<&Arc<Semaphore>>) {
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
    pub(super) async fn reconcile_orders(&self) -> Result<()> {
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
    pub(super) async fn reconcile_position(&self) -> Result<()> {
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
}
