//! What the venue does to the account on its own (forced closes, funding
//! fees), booked once.

use super::*;

impl Engine {
    /// Books what the venue does to the account on its own: a forced close
    /// of this engine's symbol (a critical alert, the fill into the book
    /// and the day's P&L) and funding fees, each once (by the venue's id).
    pub(super) async fn venue_events(
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

    pub(super) async fn venue_event(&self, event: &AccountEvent) -> Result<()> {
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
    pub(super) fn fee_in_quote(&self, fee: Decimal, asset: &str, price: Decimal) -> Decimal {
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
}
