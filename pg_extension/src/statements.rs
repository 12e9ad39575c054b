//! Prepared statements kept for the life of a backend.
//!
//! Every SQL text the extension runs is a `static Statement`. The first call
//! in a backend prepares it (with the parameter types of that call) and keeps
//! the plan; later calls only bind and execute, so a hot path such as
//! reserve/release pays no parse or plan cost. PostgreSQL's plan cache
//! revalidates kept plans when the tables behind them change.
//!
//! Statements always run as "mutating" SPI calls: each one takes a fresh
//! snapshot under READ COMMITTED, so a statement that runs after a row lock
//! was granted sees what the previous lock holder committed. The
//! reservation guarantee depends on that.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};

use crate::error::BotaiError;

pub struct Statement {
    /// Unique, for the cache.
    pub name: &'static str,
    pub sql: &'static str,
}

thread_local! {
    static PREPARED: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

impl Statement {
    pub const fn new(name: &'static str, sql: &'static str) -> Statement {
        Statement { name, sql }
    }

    /// Runs the statement with `args`, preparing it on first use.
    pub fn run<'conn>(
        &self,
        client: &mut SpiClient<'conn>,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<SpiTupleTable<'conn>> {
        // The cache is not borrowed while the statement runs: a statement
        // may call a botai function that runs statements of its own.
        let cached = PREPARED.with(|cell| cell.borrow().get(self.name).cloned());
        let prepared = match cached {
            Some(p) => p,
            None => {
                let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
                let prepared = Rc::new(client.prepare_mut(self.sql, &types)?.keep());
                PREPARED.with(|cell| cell.borrow_mut().insert(self.name, prepared.clone()));
                prepared
            }
        };
        client.update(&*prepared, None, args)
    }

    /// Runs the statement and returns the first column of its first row.
    pub fn one<T: FromDatum + IntoDatum>(
        &self,
        client: &mut SpiClient<'_>,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<Option<T>> {
        let table = self.run(client, args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
    }
}

/// Runs `f` with an SPI connection, once the database's botai objects are
/// known to be this library's release (release.rs).
pub fn with_spi<T, E: From<BotaiError>>(
    f: impl FnOnce(&mut SpiClient<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    Spi::connect_mut(|client| {
        crate::release::ensure_current(client)?;
        f(client)
    })
}
