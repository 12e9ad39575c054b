//! An order's life in botai.orders: claimed with its signal, reserved (funds
//! and risk, guarantees 4 and 6), permitted to send, settled; and the
//! orders listed.

use super::*;

/// Which orders `orders` lists.
#[derive(Debug, Clone, Copy)]
pub enum OrderFilter<'a> {
    All,
    Signal(i64),
    ClientOrderId(&'a str),
}

/// A row of botai.orders.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub signal_id: i64,
    pub client_order_id: String,
    pub exchange: String,
    pub symbol: String,
    pub side: String,
    pub status: String,
    pub qty: Option<Amount>,
    pub price: Option<Amount>,
    pub exchange_order_id: Option<String>,
    pub ret_code: Option<i32>,
    pub message: Option<String>,
    pub claimed_at: DateTime<Utc>,
}

/// An order to reserve (`reserve_orders`): its quantity at `price`, and
/// `amount` of `asset` held for it.
#[derive(Debug, Clone)]
pub struct OrderReservation {
    pub order_id: i64,
    /// The signed position the order works toward: refused (at_target) if
    /// the exposure would pass it. None: no target (an operator's order).
    pub target: Option<Decimal>,
    /// Its signal: concurrent batches lock order rows in (asset, signal) order.
    pub signal_id: i64,
    pub qty: Decimal,
    pub price: Decimal,
    pub asset: String,
    pub amount: Decimal,
    /// A market price (exchange, symbol, price) seen with the order, which
    /// marks the position book (`botai_mark_price`) before the checks: the
    /// order's own price never does.
    pub mark: Option<(String, String, Decimal)>,
}

/// What `botai_reserve_order` answered: the reservation and the booked
/// moment, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Ok { reservation: Uuid, booked_at: DateTime<Utc> },
    Refused(String),
}

/// What came of a claimed order (`order_settle`): the reservation to commit
/// (id, amount used) of `asset`, the outcome and its details.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub order_id: i64,
    /// Its signal: concurrent batches lock order rows in (asset, signal) order.
    pub signal_id: i64,
    pub asset: String,
    pub commit: Option<(Uuid, Decimal)>,
    pub status: String,
    pub details: Value,
}

/// What `order_claim` answered for one signal id.
#[derive(Debug, Clone)]
pub enum Claim {
    /// This engine owns the order now, with the free funds of the asset it
    /// would spend (when asked).
    Owned(Box<ClaimedOrder>, Option<Decimal>),
    /// Another engine's, another exchange's or symbol's, or handled.
    Elsewhere,
    /// No signal has this id.
    NoSuchSignal,
}

impl Claim {
    /// The order, when this engine owns it.
    pub fn owned(self) -> Option<(ClaimedOrder, Option<Decimal>)> {
        match self {
            Claim::Owned(order, free) => Some((*order, free)),
            _ => None,
        }
    }
}

/// An order this engine now owns, with its signal.
#[derive(Debug, Clone)]
pub struct ClaimedOrder {
    pub order_id: i64,
    pub signal_id: i64,
    pub client_order_id: String,
    pub attempt: i32,
    pub exchange: String,
    pub symbol: String,
    /// BUY or SELL
    pub direction: String,
    pub strategy: String,
    pub strength: Option<f64>,
    pub payload: Value,
    pub signal_ts: DateTime<Utc>,
    pub accepted_at: DateTime<Utc>,
}

/// The wrappers of orders's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait OrderCalls: Sql {
    /// Claims the orders of `signal_ids` (one statement, one transaction;
    /// ascending order, so engines claiming overlapping batches never
    /// deadlock) and reads, for each, the free funds of the asset it would
    /// spend when `free_of` = (quote, base) is given: `free` of
    /// `botai.balances_status`, exact at once (what retirements and expiries
    /// freed counts before any reservation folds it: sizing from the row's
    /// `held` alone saw a balance short for good once a snapshot retired
    /// more than it left, since only a reservation folds). One answer per id, in
    /// order: None where another engine owns the order or it was handled
    /// (and for a repeated id); `NoSuchSignal` where no signal has the id (a
    /// forged notification: looked up, not claimed, so one does not fail
    /// the batch of real ones).
    async fn order_claim(
        &self,
        signal_ids: &[i64],
        engine: &str,
        exchange: &str,
        symbols: &[&str],
        free_of: Option<(&str, &str)>,
    ) -> Result<Vec<Claim>> {
        let (with_free, quote, base) = match free_of {
            Some((q, b)) => (true, q, b),
            None => (false, "", ""),
        };
        let mut ids = signal_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows = self
            .q_all(
                "botai_order_claim",
                "SELECT u.signal_id, c.order_id, c.client_order_id, c.attempt, c.exchange, c.symbol, c.direction, \
                        c.strategy, c.strength, c.payload, c.signal_ts, c.accepted_at, \
                        CASE WHEN $6 THEN (SELECT b.free FROM botai.balances_status b WHERE b.exchange = c.exchange \
                           AND b.asset = CASE c.direction WHEN 'BUY' THEN $4 ELSE $5 END) END, \
                        k.known \
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(signal_id, i) \
                 CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM botai.signals s \
                                                    WHERE s.signal_id = u.signal_id) AS known) k \
                 LEFT JOIN LATERAL (SELECT * FROM botai_order_claim(u.signal_id, $2, $3, $7::text[]) \
                                    WHERE k.known) c ON true \
                 ORDER BY u.i",
                &[&ids, &engine, &exchange, &quote, &base, &with_free, &symbols],
            )
            .await?;
        let c = "botai_order_claim";
        let mut claimed: std::collections::HashMap<i64, Claim> = std::collections::HashMap::new();
        for r in rows {
            let signal_id: i64 = r.col(0, c)?;
            let claim = match (r.col::<bool>(13, c)?, r.col::<Option<i64>>(1, c)?) {
                (false, _) => Claim::NoSuchSignal,
                (true, None) => Claim::Elsewhere,
                (true, Some(order_id)) => {
                    let order = ClaimedOrder {
                        order_id,
                        signal_id,
                        client_order_id: r.col(2, c)?,
                        attempt: r.col(3, c)?,
                        exchange: r.col(4, c)?,
                        symbol: r.col(5, c)?,
                        direction: r.col(6, c)?,
                        strategy: r.col(7, c)?,
                        strength: r.col(8, c)?,
                        payload: r.col::<Json>(9, c)?.0,
                        signal_ts: r.col(10, c)?,
                        accepted_at: r.col(11, c)?,
                    };
                    // Free funds outside what a Decimal holds size nothing.
                    let free = r.col::<Option<Amount>>(12, c)?.and_then(|a| a.value());
                    Claim::Owned(Box::new(order), free)
                }
            };
            claimed.insert(signal_id, claim);
        }
        Ok(signal_ids.iter().map(|id| claimed.remove(id).unwrap_or(Claim::Elsewhere)).collect())
    }

    /// `botai_reserve_order` for each order, in one statement: the kill
    /// switch and the risk limits checked, the rate slot booked (the answer
    /// carries the booked moment on the database's clock) and the funds
    /// reserved through the booked wait and `ttl` after it, atomically per
    /// order. Orders are taken in asset order, so concurrent batches lock
    /// balance rows in one order. One answer per order, in order.
    async fn reserve_orders(&self, engine: &str, ttl: Duration, orders: &[OrderReservation]) -> Result<Vec<Reserved>> {
        let mut order: Vec<usize> = (0..orders.len()).collect();
        // Claims lock order rows in signal order: so do reservations (a
        // claim meeting another engine's order locks its row).
        order.sort_by(|&a, &b| (&orders[a].asset, orders[a].signal_id).cmp(&(&orders[b].asset, orders[b].signal_id)));
        let ids: Vec<i64> = order.iter().map(|&i| orders[i].order_id).collect();
        let qtys: Vec<Decimal> = order.iter().map(|&i| orders[i].qty).collect();
        // At botai's scale: a price and a target to the nearest, what is
        // reserved up (the quantity is the venue's lot, sent as it is).
        let prices: Vec<Decimal> = order.iter().map(|&i| at_scale(orders[i].price, Toward::Nearest)).collect();
        let assets: Vec<&str> = order.iter().map(|&i| orders[i].asset.as_str()).collect();
        let amounts: Vec<Decimal> = order.iter().map(|&i| at_scale(orders[i].amount, Toward::Up)).collect();
        let targets: Vec<Option<Decimal>> =
            order.iter().map(|&i| orders[i].target.map(|t| at_scale(t, Toward::Nearest))).collect();
        // The latest market price of each symbol, marked in the same round
        // trip (pipelined on this connection, run before the reservations).
        let mut marks: Vec<&(String, String, Decimal)> = Vec::new();
        for m in orders.iter().rev().filter_map(|o| o.mark.as_ref()) {
            if !marks.iter().any(|k| k.0 == m.0 && k.1 == m.1) {
                marks.push(m);
            }
        }
        let mark_exchanges: Vec<&str> = marks.iter().map(|m| m.0.as_str()).collect();
        let mark_symbols: Vec<&str> = marks.iter().map(|m| m.1.as_str()).collect();
        let mark_prices: Vec<Decimal> = marks.iter().map(|m| at_scale(m.2, Toward::Nearest)).collect();
        let marked = async {
            if marks.is_empty() {
                return Ok(Vec::new());
            }
            self.q_all(
                "botai_mark_price",
                "SELECT botai_mark_price(u.e, u.s, u.p) FROM unnest($1::text[], $2::text[], $3::numeric[]) AS u(e, s, p)",
                &[&mark_exchanges, &mark_symbols, &mark_prices],
            )
            .await
        };
        let ttl_seconds = ttl.as_secs_f64();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
            [&engine, &ids, &qtys, &prices, &assets, &amounts, &ttl_seconds, &targets];
        let reserved = self.q_all(
            "botai_reserve_order",
            "SELECT u.i, r.reservation_id, r.booked_at, r.refused \
                 FROM unnest($2::bigint[], $3::numeric[], $4::numeric[], $5::text[], $6::numeric[], $8::numeric[]) \
                      WITH ORDINALITY AS u(order_id, qty, price, asset, amount, target, i) \
                 CROSS JOIN LATERAL botai_reserve_order(u.order_id, $1, u.qty, u.price, u.asset, u.amount, \
                                                        make_interval(secs => $7), 'order', u.target) r \
                 ORDER BY u.i",
            &params,
        );
        let (_, rows) = tokio::try_join!(marked, reserved)?;
        let mut answers = vec![Reserved::Refused("no answer".into()); orders.len()];
        for r in rows {
            let c = "botai_reserve_order";
            let position: i64 = r.col(0, c)?;
            let answer = match (r.col::<Option<Uuid>>(1, c)?, r.col::<Option<DateTime<Utc>>>(2, c)?, r.col(3, c)?) {
                (Some(reservation), Some(booked_at), None) => Reserved::Ok { reservation, booked_at },
                (_, _, refused) => Reserved::Refused(refused.unwrap_or_else(|| "no reservation".into())),
            };
            if let Some(slot) = usize::try_from(position - 1).ok().and_then(|i| order.get(i)) {
                answers[*slot] = answer;
            }
        }
        Ok(answers)
    }

    /// `botai_send_permit`: None when the order may be sent now (this
    /// session then holds a share of the send gate until `send_done`).
    async fn send_permit(&self, order_id: i64) -> Result<Option<String>> {
        let row = self.q_one("botai_send_permit", "SELECT botai_send_permit($1)", &[&order_id]).await?;
        row.col(0, "send_permit")
    }

    async fn send_done(&self) -> Result<bool> {
        self.q_one("botai_send_done", "SELECT botai_send_done()", &[]).await?.col(0, "send_done")
    }

    /// Commits each settlement's reservation (if any) and records its
    /// outcome (`botai_order_finish`), in one statement, in asset order (a
    /// commit settles its balance row under the row's lock, so concurrent
    /// batches take those locks in one order). One answer per settlement:
    /// false where another engine took the order over.
    async fn order_settle(&self, engine: &str, settlements: &[Settlement]) -> Result<Vec<bool>> {
        let mut order: Vec<usize> = (0..settlements.len()).collect();
        order.sort_by(|&a, &b| {
            (&settlements[a].asset, settlements[a].signal_id).cmp(&(&settlements[b].asset, settlements[b].signal_id))
        });
        let sorted: Vec<&Settlement> = order.iter().map(|&i| &settlements[i]).collect();
        let reservations: Vec<Option<Uuid>> = sorted.iter().map(|s| s.commit.map(|c| c.0)).collect();
        let amounts: Vec<Option<Decimal>> =
            sorted.iter().map(|s| s.commit.map(|c| at_scale(c.1, Toward::Up))).collect();
        let order_ids: Vec<i64> = sorted.iter().map(|s| s.order_id).collect();
        let statuses: Vec<&str> = sorted.iter().map(|s| s.status.as_str()).collect();
        let details: Vec<Value> = sorted.iter().map(|s| details_at_scale(&s.details)).collect();
        let rows = self
            .q_all(
                "settle orders",
                "SELECT u.i, CASE WHEN u.reservation IS NULL THEN NULL \
                                 ELSE botai_commit_reservation(u.reservation, u.amount) END, \
                        botai_order_finish(u.order_id, $1, u.status, u.details) \
                 FROM unnest($2::uuid[], $3::numeric[], $4::bigint[], $5::text[], $6::jsonb[]) \
                      WITH ORDINALITY AS u(reservation, amount, order_id, status, details, i) \
                 ORDER BY u.i",
                &[&engine, &reservations, &amounts, &order_ids, &statuses, &details],
            )
            .await?;
        let mut answers = vec![false; settlements.len()];
        for r in rows {
            let position: i64 = r.col(0, "settle orders")?;
            if let Some(slot) = usize::try_from(position - 1).ok().and_then(|i| order.get(i)) {
                answers[*slot] = r.col(2, "settle orders")?;
            }
        }
        Ok(answers)
    }

    /// Orders as botai recorded them, newest first (all, or one signal's,
    /// or one client order id's).
    async fn orders(&self, filter: OrderFilter<'_>, limit: i64) -> Result<Vec<OrderRecord>> {
        let (signal, client) = match filter {
            OrderFilter::All => (None, None),
            OrderFilter::Signal(id) => (Some(id), None),
            OrderFilter::ClientOrderId(id) => (None, Some(id)),
        };
        let rows = self
            .q_all(
                "botai.orders",
                "SELECT signal_id, client_order_id, exchange, symbol, side, status, qty, price, exchange_order_id, \
                        ret_code, message, claimed_at \
                 FROM botai.orders \
                 WHERE ($1::bigint IS NULL OR signal_id = $1) AND ($2::text IS NULL OR client_order_id = $2) \
                 ORDER BY order_id DESC LIMIT $3",
                &[&signal, &client, &limit],
            )
            .await?;
        let c = "botai.orders";
        rows.iter()
            .map(|r| {
                Ok(OrderRecord {
                    signal_id: r.col(0, c)?,
                    client_order_id: r.col(1, c)?,
                    exchange: r.col(2, c)?,
                    symbol: r.col(3, c)?,
                    side: r.col(4, c)?,
                    status: r.col(5, c)?,
                    qty: r.col(6, c)?,
                    price: r.col(7, c)?,
                    exchange_order_id: r.col(8, c)?,
                    ret_code: r.col(9, c)?,
                    message: r.col(10, c)?,
                    claimed_at: r.col(11, c)?,
                })
            })
            .collect()
    }
}

impl<C: Sql> OrderCalls for C {}
