//! botai: the coordination layer of a crypto-trading fleet, inside PostgreSQL.
//!
//! This file is wiring only: each guarantee is a module of its own.

use pgrx::prelude::*;

mod amounts;
mod balances;
mod clock;
mod error;
mod gucs;
mod json;
mod locks;
mod monitor;
mod orders;
mod ratelimit;
mod ratelimit_state;
mod release;
mod risk;
mod roles;
mod shmem;
mod signals;
mod standby;
mod statements;
mod venue;
mod workers;

pgrx::pg_module_magic!();

pgrx::extension_sql_file!("schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("sql/installation.sql", name = "installation", requires = [botai_build_id]);
pgrx::extension_sql_file!("finalize.sql", name = "finalize", finalize);

/// Which build of the extension this library is (version and a hash of its
/// sources); CREATE EXTENSION records it in botai.installation.
#[pg_extern(immutable, parallel_safe)]
fn botai_build_id() -> &'static str {
    env!("BOTAI_BUILD_ID")
}

/// Refuses to load unless preloaded: the rate limiter's shared memory and
/// the monitor's background worker only exist when the library is loaded at
/// server start.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        error::BotaiError::NotPreloaded.raise("botai");
    }
    gucs::init();
    shmem::init(shmem::Persistence {
        restore: ratelimit_state::restore,
        last_shutdown_was_clean: ratelimit_state::last_shutdown_was_clean,
        save: ratelimit_state::save,
    });
    ratelimit::init();
    monitor::worker::register_launcher();
}
