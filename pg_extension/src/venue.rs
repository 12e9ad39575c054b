//! What the venue says about an account that botai's own orders do not:
//!
//! - `botai_position_adopt`: the venue's position, quantity and entry price.
//!   When the book differs and no order of the symbol is open, the book
//!   takes both (a correction booked at a traded price would give stop-loss
//!   and daily-loss checks the wrong sign).
//! - `botai_venue_trade`: a trade the venue made on its own — a liquidation,
//!   an auto-deleveraging, a delisting close — or a funding fee, booked into
//!   the position and the day's P&L once per venue id (botai.venue_trades;
//!   a repeated push books nothing).

use botai_core::names;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

use crate::amounts::{self, Sign};
use crate::error::{required, BotaiError, OrRaise, Result};
use crate::locks;
use crate::risk::{BOOK_QTY, OPEN_ORDERS, POSITION_FILL, POSITION_ROW};
use crate::roles;
use crate::statements::{writing, Statement};

static ADOPT: Statement = Statement::new(
    "venue.adopt",
    "UPDATE botai.positions SET qty = $3, \
       avg_entry = CASE WHEN $3 = 0 THEN NULL ELSE $4 END, \
       opened_at = CASE WHEN $3 = 0 THEN NULL WHEN qty = 0 OR sign(qty) <> sign($3) THEN now() ELSE opened_at END, \
       last_price = coalesce($5, last_price), updated_at = now() \
     WHERE exchange = $1 AND symbol = $2",
);

/// The venue's position of `symbol`: signed quantity `qty` at its entry
/// price `entry` (required unless flat), `mark` the market's price when
/// known. When the book differs and no order of the symbol is open, the
/// book takes the venue's quantity and entry (realised P&L and fees stay).
/// Returns the correction (venue minus book): 0 when they agree, NULL when
/// orders are open (compare again later).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_position_adopt(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    entry: Option<AnyNumeric>,
    mark: default!(Option<AnyNumeric>, "NULL"),
) -> Option<AnyNumeric> {
    adopt(exchange, symbol, qty, entry, mark).or_raise("botai_position_adopt")
}

fn adopt(
    exchange: Option<&str>,
    symbol: Option<&str>,
    qty: Option<AnyNumeric>,
    entry: Option<AnyNumeric>,
    mark: Option<AnyNumeric>,
) -> Result<Option<AnyNumeric>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    roles::trading_exchange(&exchange)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let qty = amounts::arg("qty", qty, Sign::Any)?;
    let entry = amounts::optional("entry", entry, Sign::Positive)?;
    let mark = amounts::optional("mark", mark, Sign::Positive)?;
    let zero = AnyNumeric::from(0);
    if qty != zero && entry.is_none() {
        return Err(BotaiError::invalid(
            "entry",
            format!("the venue's {symbol} position of {qty} needs the venue's entry price"),
        ));
    }
    locks::xact_lock(locks::RISK_NS, locks::name_key(&[exchange.as_str()]));
    writing(|client| {
        let args = [exchange.as_str().into(), symbol.into()];
        if OPEN_ORDERS.one::<i64>(client, &args)?.unwrap_or(0) > 0 {
            return Ok(None);
        }
        POSITION_ROW.run(client, &args)?;
        let book = BOOK_QTY.one::<AnyNumeric>(client, &args)?.unwrap_or_else(|| 0.into());
        let correction = qty.clone() - book;
        if correction != zero {
            ADOPT.run(client, &[exchange.as_str().into(), symbol.into(), qty.into(), entry.into(), mark.into()])?;
        }
        Ok(Some(correction))
    })
}

static RECORD: Statement = Statement::new(
    "venue.record",
    "INSERT INTO botai.venue_trades (exchange, symbol, kind, venue_id, side, qty, price, fee_quote) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (exchange, venue_id) DO NOTHING RETURNING trade_id",
);
static RECORD_PNL: Statement =
    Statement::new("venue.record_pnl", "UPDATE botai.venue_trades SET realized_pnl = $2 WHERE trade_id = $1");
static FUNDING: Statement = Statement::new(
    "venue.funding",
    "UPDATE botai.positions SET fees = fees + $3, updated_at = now() WHERE exchange = $1 AND symbol = $2",
);

const KINDS: [&str; 4] = ["liquidation", "adl", "delisting", "funding"];

/// A trade the venue made on its own in `symbol`: `kind` liquidation, adl
/// or delisting (a forced close: `side` BUY or SELL, `qty` and `price`
/// positive) or funding (no side, quantity or price); `fee` in the quote
/// currency, positive when paid (a funding fee received is negative).
/// `venue_id` is the venue's id of the trade: the second call with it books
/// nothing and returns NULL. Otherwise books it into the position and the
/// day's P&L (botai.pnl_today) and returns the realised P&L.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn botai_venue_trade(
    exchange: Option<&str>,
    symbol: Option<&str>,
    kind: Option<&str>,
    venue_id: Option<&str>,
    side: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
    fee: Option<AnyNumeric>,
) -> Option<AnyNumeric> {
    venue_trade(exchange, symbol, kind, venue_id, side, qty, price, fee).or_raise("botai_venue_trade")
}

#[allow(clippy::too_many_arguments)]
fn venue_trade(
    exchange: Option<&str>,
    symbol: Option<&str>,
    kind: Option<&str>,
    venue_id: Option<&str>,
    side: Option<&str>,
    qty: Option<AnyNumeric>,
    price: Option<AnyNumeric>,
    fee: Option<AnyNumeric>,
) -> Result<Option<AnyNumeric>> {
    let exchange = names::exchange(required(exchange, "exchange")?)?;
    roles::trading_exchange(&exchange)?;
    let symbol = names::name("symbol", required(symbol, "symbol")?)?;
    let kind = required(kind, "kind")?;
    if !KINDS.contains(&kind) {
        return Err(BotaiError::invalid("kind", format!("{kind:?} is not one of {}", KINDS.join(", "))));
    }
    let venue_id = required(venue_id, "venue_id")?;
    if venue_id.is_empty() || venue_id.chars().count() > 128 {
        return Err(BotaiError::invalid("venue_id", "must be the venue's id of the trade, 1 to 128 characters"));
    }
    let fee = amounts::arg("fee", fee, Sign::Any)?;
    let (side, qty, price) = if kind == "funding" {
        if side.is_some() || qty.is_some() || price.is_some() {
            return Err(BotaiError::invalid("kind", "a funding fee has no side, quantity or price (pass NULL)"));
        }
        (None, AnyNumeric::from(0), None)
    } else {
        let side = required(side, "side")?;
        if side != "BUY" && side != "SELL" {
            return Err(BotaiError::invalid("side", format!("{side:?} is not BUY or SELL")));
        }
        (Some(side), amounts::arg("qty", qty, Sign::Positive)?, Some(amounts::arg("price", price, Sign::Positive)?))
    };
    locks::xact_lock(locks::RISK_NS, locks::name_key(&[exchange.as_str()]));
    writing(|client| {
        let Some(trade_id) = RECORD.one::<i64>(
            client,
            &[
                exchange.as_str().into(),
                symbol.into(),
                kind.into(),
                venue_id.into(),
                side.into(),
                qty.clone().into(),
                price.clone().into(),
                fee.clone().into(),
            ],
        )?
        else {
            return Ok(None);
        };
        POSITION_ROW.run(client, &[exchange.as_str().into(), symbol.into()])?;
        let (Some(side), Some(price)) = (side, price) else {
            FUNDING.run(client, &[exchange.as_str().into(), symbol.into(), fee.into()])?;
            return Ok(Some(0.into()));
        };
        let signed = if side == "BUY" { qty } else { AnyNumeric::from(0) - qty };
        let realized = POSITION_FILL
            .one::<AnyNumeric>(
                client,
                &[exchange.as_str().into(), symbol.into(), signed.into(), price.into(), fee.into()],
            )?
            .unwrap_or_else(|| 0.into());
        RECORD_PNL.run(client, &[trade_id.into(), realized.clone().into()])?;
        Ok(Some(realized))
    })
}
