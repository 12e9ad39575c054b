//! The sixth guarantee: no order beyond the risk limits, and a kill switch.
//!
//! - `botai_reserve_order` is the one call an engine makes before sending an
//!   order: it checks the trading state (halted, reduce-only) and the limits
//!   of botai.risk_limits against the position book and every order still
//!   open, books the rate slot and reserves the funds — in one transaction,
//!   serialized per exchange account, so however many engines submit at
//!   once no limit is ever exceeded. A refusal is a return value naming the
//!   limit.
//! - `botai_halt` / `botai_resume`: the kill switch. A halt takes effect for
//!   every reservation at its commit, and it commits only after every order
//!   already permitted was answered by the venue: each engine holds the
//!   send gate in share mode (`botai_send_permit` … `botai_send_done`) from
//!   the permit of an order until the venue's answer, and the halt takes the
//!   gate exclusively. While a halt waits, new permits are refused.
//! - Halts of alert rules (action `halt` or `reduce_only`, daily_loss as
//!   seeded): the alert itself holds trading halted, from the round that
//!   opens it, whatever the operator's switch (botai.trading_switch) says
//!   and whoever holds that row's lock, and past its condition, until an
//!   operator acknowledges it (`botai_resume` … acknowledge, recorded in
//!   botai.alert_acknowledgements): botai.trading_state is the strictest of
//!   the switch and those alerts.
//! - The position book (botai.positions) follows every recorded fill
//!   (`apply_fill`, called by `botai_order_finish`).

use pgrx::AnyNumeric;

use crate::error::Result;
use crate::statements::Statement;

mod book;
mod kill_switch;
mod reserve;

pub use book::apply_fill;
pub(crate) use book::{BOOK_QTY, OPEN_ORDERS, POSITION_FILL, POSITION_ROW};

// The SQL objects and documentation of this module, created once the Rust
// functions they name exist.
pgrx::extension_sql_file!(
    "../sql/risk.sql",
    name = "risk_sql",
    requires = [
        botai_halt,
        botai_mark_price,
        botai_position_adopt,
        botai_position_reconcile,
        botai_reserve_order,
        botai_resume,
        botai_resume_acknowledging,
        botai_send_done,
        botai_send_permit,
        botai_venue_trade
    ]
);

/// The trading state in force (botai.trading_state): the operator's switch
/// and every open, unacknowledged alert of a rule whose action halts.
static STATE: Statement = Statement::new("risk.state", "SELECT mode, coalesce(reason, '') FROM botai.trading_state");

/// (mode, reason) of botai.trading_state.
fn trading_state(client: &mut pgrx::spi::SpiClient<'_>) -> Result<(String, String)> {
    let state = STATE.run(client, &[])?;
    if state.is_empty() {
        // The switch's one row deleted: nobody can say trading is allowed.
        return Ok(("halted".to_owned(), "botai.trading_switch has no row".to_owned()));
    }
    let r = state.first();
    Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default()))
}

/// Whether an order of signed quantity `signed` shrinks an exposure of
/// `exposure` without reversing it.
fn reduces(exposure: &AnyNumeric, signed: &AnyNumeric) -> bool {
    let zero = AnyNumeric::from(0);
    let after = exposure.clone() + signed.clone();
    *exposure != zero && (*exposure > zero) != (*signed > zero) && abs(&after) <= abs(exposure)
}

fn abs(n: &AnyNumeric) -> AnyNumeric {
    if *n < AnyNumeric::from(0) {
        AnyNumeric::from(0) - n.clone()
    } else {
        n.clone()
    }
}

fn signed(side: &str, qty: AnyNumeric) -> AnyNumeric {
    if side == "BUY" {
        qty
    } else {
        AnyNumeric::from(0) - qty
    }
}
