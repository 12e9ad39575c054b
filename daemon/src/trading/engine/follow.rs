//! Following an acknowledged order to its end (the venue's pushes, or
//! lookups) and recording what it did.

use super::*;

impl Engine {
    /// Follows an acknowledged order until nothing more will execute: the
    /// venue confirms fills after the acknowledgement. With the venue's
    /// private stream the updates are pushed and a lookup is only the
    /// fallback (every 5 s); without it the order is looked up with backoff.
    /// Gives up (the claim stays, the reservation held) after a minute
    /// without a final state.
    pub(super) async fn until_final(
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
    pub(super) async fn settle_filled(
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
}
