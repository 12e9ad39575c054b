//! The position book: fills applied (`apply_fill`), market marks, and the
//! venue's word on a position (`botai_position_reconcile`).

use botai_core::names;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

use super::*;
use crate::amounts::{self, Sign};
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::locks;
use crate::statements::{writing, Statement};

/// A market price marks a position (never an order's own limit price).
static MARK_PRICE: Statement = Statement::new(
    "risk.mark_price",
    "UPDATE botai.positions SET last_price = $3 WHERE exchange = $1 AND symbol = $2 AND last_price IS DISTINCT FROM $3 \
     RETURNING true",
);
pub(crate) static POSITION_ROW: Statement = Statement::new(
    "risk.position_row",
    "INSERT INTO botai.positions (exchange, symbol) VALUES ($1, $2) ON CONFLICT (exchange, symbol) DO NOTHING",
);
/// A fill of signed quantity $3 at price $4 (fee $5 in the quote currency):
/// a fill on the position's side moves the average entry; one against it
/// realises (price − entry) on the part it closes, and a fill that flips
/// the position opens the rest at its price. Returns the realised P&L.
pub(crate) static POSITION_FILL: Statement = Statement::new(
    "risk.position_fill",
    "WITH old AS (SELECT qty, avg_entry FROM botai.positions WHERE exchange = $1 AND symbol = $2 FOR UPDATE) \
     UPDATE botai.positions p SET \
       qty = old.qty + $3, \
       avg_entry = CASE WHEN old.qty + $3 = 0 THEN NULL \
                        WHEN sign(old.qty) * sign($3) >= 0 \
                          THEN (abs(old.qty) * coalesce(old.avg_entry, $4) + abs($3) * $4) / (abs(old.qty) + abs($3)) \
                        WHEN abs($3) > abs(old.qty) THEN $4 \
                        ELSE old.avg_entry END, \
       realized_pnl = p.realized_pnl + CASE WHEN sign(old.qty) * sign($3) < 0 \
                        THEN least(abs(old.qty), abs($3)) * ($4 - coalesce(old.avg_entry, $4)) * sign(old.qty) \
                        ELSE 0 END, \
       fees = p.fees + $5, last_price = $4, trades = p.trades + 1, \
       opened_at = CASE WHEN old.qty = 0 OR sign(old.qty + $3) <> sign(old.qty) THEN now() ELSE p.opened_at END, \
       updated_at = now() \
     FROM old WHERE p.exchange = $1 AND p.symbol = $2 \
     RETURNING CASE WHEN sign(old.qty) * sign($3) < 0 \
                 THEN least(abs(old.qty), abs($3)) * ($4 - coalesce(old.avg_entry, $4)) * sign(old.qty) ELSE 0 END",
);
static ORDER_PNL: Statement =
    Statement::new("risk.order_pnl", "UPDATE botai.orders SET realized_pnl = $2 WHERE order_id = $1");
pub(crate) static OPEN_ORDERS: Statement = Statement::new(
    "risk.open_orders",
    "SELECT count(*) FROM botai.orders WHERE exchange = $1 AND symbol = $2 AND status = 'claimed' \
       AND planned_qty IS NOT NULL",
);
pub(crate) static BOOK_QTY: Statement =
    Statement::new("risk.book_qty", "SELECT qty FROM botai.positions WHERE exchange = $1 AND symbol = $2 FOR UPDATE");
static BOOK_SET: Statement = Statement::new(
    "risk.book_set",
    "UPDATE botai.positions SET qty = $3, \
       avg_entry = CASE WHEN $3 = 0 THEN NULL \
                        WHEN qty = 0 OR sign(qty) <> sign($3) THEN coalesce($4, avg_entry) ELSE avg_entry END, \
       opened_at = CASE WHEN $3 = 0 THEN NULL WHEN qty = 0 OR sign(qty) <> sign($3) THEN now() ELSE opened_at END, \
       last_price = coalesce($4, last_price), updated_at = now() \
     WHERE exchange = $1 AND symbol = $2",
);

/// A market price of `symbol` (a ticker, the last trade, the venue's mark)
/// for the position book's unrealised P&L and exposure: the only way a
/// price other than a fill's marks a position. An order's own price never
/// does (a limit SELL far above the market would show a gain that is not
/// there). True when a position of the symbol was marked.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_mark_price(exchange: Option<&str>, symbol: Option<&str>, price: Option<AnyNumeric>) -> bool {
    mark_price(exchange, symbol, price).or_raise("botai_mark_price")
}

fn mark_price(exchange: Option<&str>, symbol: Option<&str>, price: Option<AnyNumeric>) -> Result<bool> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let price = amounts::arg("price", price, Sign::Positive)?;
    writing(|client| {
        Ok(MARK_PRICE.one::<bool>(client, &[exchange.as_str().into(), symbol.into(), price.into()])?.unwrap_or(false))
    })
}

/// Applies a recorded fill to the position book; returns the realised P&L.
/// `side` BUY or SELL, `qty` and `price` positive, `fee_quote` the fee in
/// the quote currency (0 when unknown).
#[allow(clippy::too_many_arguments)]
pub fn apply_fill(
    client: &mut pgrx::spi::SpiClient<'_>,
    order_id: i64,
    exchange: &str,
    symbol: &str,
    side: &str,
    qty: AnyNumeric,
    price: AnyNumeric,
    fee_quote: AnyNumeric,
) -> Result<()> {
    POSITION_ROW.run(client, &[exchange.into(), symbol.into()])?;
    let realized = POSITION_FILL
        .one::<AnyNumeric>(
            client,
            &[exchange.into(), symbol.into(), signed(side, qty).into(), price.into(), fee_quote.into()],
        )?
        .unwrap_or_else(|| 0.into());
    ORDER_PNL.run(client, &[order_id.into(), realized.into()])?;
    Ok(())
}

/// What the venue says a position is. When the book differs and no order
/// of the symbol is open (whose fill could explain the difference), the
/// book takes the venue's quantity (realised P&L and fees stay; a new or
/// reversed position is entered at `price`). Returns the correction (venue
/// minus book): 0 when they agree, NULL when orders are open (compare
/// again later).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_position_reconcile(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    price: default!(Option<AnyNumeric>, "NULL"),
) -> Option<AnyNumeric> {
    reconcile(exchange, symbol, qty, price).or_raise("botai_position_reconcile")
}

fn reconcile(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
) -> Result<Option<AnyNumeric>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let qty = amounts::arg("qty", qty, Sign::Any)?;
    let price = amounts::optional("price", price, Sign::Positive)?;
    locks::xact_lock(locks::RISK_NS, locks::name_key(&[exchange.as_str()]));
    writing(|client| {
        let args = [exchange.as_str().into(), symbol.into()];
        if OPEN_ORDERS.one::<i64>(client, &args)?.unwrap_or(0) > 0 {
            return Ok(None);
        }
        POSITION_ROW.run(client, &args)?;
        let book = BOOK_QTY.one::<AnyNumeric>(client, &args)?.unwrap_or_else(|| 0.into());
        let correction = qty.clone() - book.clone();
        let zero = AnyNumeric::from(0);
        // A position the book takes on (from flat, or reversed) is entered
        // at the venue's price: without one its entry would be unknown, and
        // the fill that closes it could not be booked.
        let opens = qty != zero && (book == zero || (qty > zero) != (book > zero));
        if opens && price.is_none() {
            return Err(BotaiError::invalid(
                "price",
                format!(
                    "the venue's {symbol} position of {qty} is one the book does not have ({book}): it is entered at \
                     the venue's entry price, which must be given"
                ),
            ));
        }
        if correction != zero {
            BOOK_SET.run(client, &[exchange.as_str().into(), symbol.into(), qty.into(), price.into()])?;
        }
        Ok(Some(correction))
    })
}
