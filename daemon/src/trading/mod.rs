//! The trading engine: accepted signals become orders, each through the
//! botai guarantees — rate limit, reserved funds, an idempotent client order
//! id, and a durable record of the outcome.

pub mod balance_sync;
pub mod config;
pub mod engine;
pub mod fault;
pub mod sizing;
