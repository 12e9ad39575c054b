//! Prepared statements kept for the life of a backend.
//!
//! Every SQL text the extension runs is a `static Statement`. The first call
//! in a backend prepares it (with the parameter types of that call) and keeps
//! the plan; later calls only bind and execute, so a hot path such as
//! reserve/release pays no parse or plan cost. PostgreSQL's plan cache
//! revalidates kept plans when the tables behind them change.
//!
//! Statements of writers run as "mutating" SPI calls (`run`): each one
//! takes a fresh snapshot under READ COMMITTED, so a statement that runs
//! after a row lock was granted sees what the previous lock holder
//! committed. The reservation guarantee depends on that. Statements of
//! functions that only read go through `read`, read-only, so they also
//! answer on a standby.

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

    /// The kept plan of this statement, prepared on first use (`mutating`:
    /// as a writer's statement). The cache is not borrowed while the
    /// statement runs: a statement may call a botai function that runs
    /// statements of its own.
    fn prepared(
        &self,
        client: &SpiClient<'_>,
        args: &[DatumWithOid<'_>],
        mutating: bool,
    ) -> SpiResult<Rc<OwnedPreparedStatement>> {
        if let Some(p) = PREPARED.with(|cell| cell.borrow().get(self.name).cloned()) {
            return Ok(p);
        }
        let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
        let statement =
            if mutating { client.prepare_mut(self.sql, &types)? } else { client.prepare(self.sql, &types)? };
        let prepared = Rc::new(statement.keep());
        PREPARED.with(|cell| cell.borrow_mut().insert(self.name, prepared.clone()));
        Ok(prepared)
    }

    /// Runs the statement with `args`, preparing it on first use.
    pub fn run<'conn>(
        &self,
        client: &mut SpiClient<'conn>,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<SpiTupleTable<'conn>> {
        let prepared = self.prepared(client, args, true)?;
        client.update(&*prepared, None, args)
    }

    /// Runs the statement, which only reads, preparing it on first use. It
    /// runs read-only while the transaction has written nothing (a mutating
    /// SPI call takes a transaction id, which a standby cannot give), so a
    /// statement is either read with this or run with `run`, never both.
    pub fn read<'conn>(&self, client: &SpiClient<'conn>, args: &[DatumWithOid<'_>]) -> SpiResult<SpiTupleTable<'conn>> {
        let prepared = self.prepared(client, args, false)?;
        client.select(&*prepared, None, args)
    }

    /// Reads the first column of the statement's first row.
    pub fn read_one<T: FromDatum + IntoDatum>(
        &self,
        client: &SpiClient<'_>,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<Option<T>> {
        let table = self.read(client, args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
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

/// Runs `f`, which only reads, with an SPI connection, once the database's
/// botai objects are known to be this library's release (release.rs).
pub fn reading<T, E: From<BotaiError>>(
    f: impl FnOnce(&mut SpiClient<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    Spi::connect_mut(|client| {
        crate::release::ensure_current(client)?;
        f(client)
    })
}

/// Runs `f`, which writes, with an SPI connection: on a primary whose botai
/// objects are this library's release; on a standby it refuses (25006,
/// standby.rs) before anything runs.
pub fn writing<T, E: From<BotaiError>>(
    f: impl FnOnce(&mut SpiClient<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    crate::standby::ensure_primary()?;
    reading(f)
}
