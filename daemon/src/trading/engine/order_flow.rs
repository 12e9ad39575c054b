//! The path of one signal: claimed, sized (an operator's exact quantity
//! or a model's target), booked and funded in one statement, sent at the
//! booked moment, then followed to its end (`follow.rs`).

use super::*;

impl Engine {
    pub(super) async fn handle(&self, signal_id: i64) -> Result<()> {
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
}
