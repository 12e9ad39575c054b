//! The position book and the risk state (guarantee 6): reconciliation and
//! adoption from the venue, the venue's own trades, marks, exposure, the
//! kill switch.

use super::*;

/// A row of botai.positions_status.
#[derive(Debug, Clone)]
pub struct PositionRecord {
    pub exchange: String,
    pub symbol: String,
    pub qty: Amount,
    pub avg_entry: Option<Amount>,
    pub last_price: Option<Amount>,
    pub unrealized_pnl: Option<Amount>,
    pub realized_pnl: Amount,
    pub fees: Amount,
    pub trades: i64,
    pub open_orders: i64,
    pub pending_qty: Amount,
}

/// botai.trading_state: what is in force (the kill switch and the open
/// alerts of rules that halt).
#[derive(Debug, Clone)]
pub struct TradingState {
    pub mode: String,
    pub reason: Option<String>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    /// The open, unacknowledged alerts that hold trading halted.
    pub halting_alerts: Vec<i64>,
}

/// The wrappers of risk's SQL functions, on any [`Sql`] connection.
#[allow(async_fn_in_trait)] // used within this crate only, on tokio's multi-threaded runtime
pub trait RiskCalls: Sql {
    /// `botai_position_reconcile`: the venue's quantity of a position; the
    /// correction the book took (0: none), None while orders are open.
    async fn position_reconcile(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        price: Option<Decimal>,
    ) -> Result<Option<Decimal>> {
        let row = self
            .q_one(
                "botai_position_reconcile",
                "SELECT botai_position_reconcile($1, $2, $3, $4)",
                &[&exchange, &symbol, &at_scale(qty, Toward::Nearest), &price.map(|p| at_scale(p, Toward::Nearest))],
            )
            .await?;
        row.col(0, "position_reconcile")
    }

    /// `botai_position_adopt`: the venue's position (quantity, entry price)
    /// taken by the book when it differs; the correction (0: none), None
    /// while orders are open.
    async fn position_adopt(
        &self,
        exchange: &str,
        symbol: &str,
        qty: Decimal,
        entry: Option<Decimal>,
        mark: Option<Decimal>,
    ) -> Result<Option<Decimal>> {
        let nearest = |p: Decimal| at_scale(p, Toward::Nearest);
        let row = self
            .q_one(
                "botai_position_adopt",
                "SELECT botai_position_adopt($1, $2, $3, $4, $5)",
                &[&exchange, &symbol, &nearest(qty), &entry.map(nearest), &mark.map(nearest)],
            )
            .await?;
        row.col(0, "position_adopt")
    }

    /// `botai_venue_trade`: a trade the venue made on its own (a forced
    /// close, a funding fee) booked once by its id; the realised P&L, None
    /// when it was booked already.
    #[allow(clippy::too_many_arguments)]
    async fn venue_trade(
        &self,
        exchange: &str,
        symbol: &str,
        kind: &str,
        venue_id: &str,
        side: Option<&str>,
        qty: Option<Decimal>,
        price: Option<Decimal>,
        fee: Decimal,
    ) -> Result<Option<Decimal>> {
        let nearest = |p: Decimal| at_scale(p, Toward::Nearest);
        let row = self
            .q_one(
                "botai_venue_trade",
                "SELECT botai_venue_trade($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&exchange, &symbol, &kind, &venue_id, &side, &qty.map(nearest), &price.map(nearest), &nearest(fee)],
            )
            .await?;
        row.col(0, "venue_trade")
    }

    /// The position book's (qty, average entry) of a symbol; None when flat.
    async fn position(&self, exchange: &str, symbol: &str) -> Result<Option<(Decimal, Option<Decimal>)>> {
        let row = self
            .q_opt(
                "position",
                "SELECT qty, avg_entry FROM botai.positions WHERE exchange = $1 AND symbol = $2 AND qty <> 0",
                &[&exchange, &symbol],
            )
            .await?;
        row.map(|r| Ok((r.col(0, "position")?, r.col(1, "position")?))).transpose()
    }

    /// (position, what the open orders will add) of a symbol, signed base
    /// quantities from the position book.
    async fn exposure(&self, exchange: &str, symbol: &str) -> Result<(Decimal, Decimal)> {
        let r = self
            .q_one(
                "exposure",
                "SELECT coalesce((SELECT qty FROM botai.positions WHERE exchange = $1 AND symbol = $2), 0), \
                        coalesce((SELECT sum(pending_qty) FROM botai.pending_orders \
                                  WHERE exchange = $1 AND symbol = $2), 0)",
                &[&exchange, &symbol],
            )
            .await?;
        Ok((r.col(0, "exposure")?, r.col(1, "exposure")?))
    }

    async fn halt(&self, reason: &str, mode: &str) -> Result<String> {
        self.q_one("botai_halt", "SELECT botai_halt($1, $2)", &[&reason, &mode]).await?.col(0, "halt")
    }

    /// `botai_resume`, acknowledging the open alerts of rules that halt
    /// (their ids) as the operator.
    async fn resume(&self, reason: &str, acknowledge: &[i64]) -> Result<String> {
        self.q_one("botai_resume", "SELECT botai_resume($1, $2)", &[&reason, &acknowledge]).await?.col(0, "resume")
    }

    /// `botai_mark_price`: a market price of a symbol for the position book.
    async fn mark_price(&self, exchange: &str, symbol: &str, price: Decimal) -> Result<bool> {
        let price = at_scale(price, Toward::Nearest);
        self.q_one("botai_mark_price", "SELECT botai_mark_price($1, $2, $3)", &[&exchange, &symbol, &price])
            .await?
            .col(0, "mark_price")
    }

    async fn trading_state(&self) -> Result<TradingState> {
        let r = self
            .q_one(
                "trading state",
                "SELECT mode, reason, changed_by, changed_at, halting_alerts FROM botai.trading_state",
                &[],
            )
            .await?;
        let c = "trading state";
        Ok(TradingState {
            mode: r.col(0, c)?,
            reason: r.col(1, c)?,
            changed_by: r.col(2, c)?,
            changed_at: r.col(3, c)?,
            halting_alerts: r.col(4, c)?,
        })
    }

    async fn positions(&self) -> Result<Vec<PositionRecord>> {
        let rows = self
            .q_all(
                "positions",
                "SELECT exchange, symbol, qty, avg_entry, last_price, unrealized_pnl, realized_pnl, fees, trades, \
                        open_orders, pending_qty \
                 FROM botai.positions_status ORDER BY exchange, symbol",
                &[],
            )
            .await?;
        let c = "positions";
        rows.iter()
            .map(|r| {
                Ok(PositionRecord {
                    exchange: r.col(0, c)?,
                    symbol: r.col(1, c)?,
                    qty: r.col(2, c)?,
                    avg_entry: r.col(3, c)?,
                    last_price: r.col(4, c)?,
                    unrealized_pnl: r.col(5, c)?,
                    realized_pnl: r.col(6, c)?,
                    fees: r.col(7, c)?,
                    trades: r.col(8, c)?,
                    open_orders: r.col(9, c)?,
                    pending_qty: r.col(10, c)?,
                })
            })
            .collect()
    }
}

impl<C: Sql> RiskCalls for C {}
