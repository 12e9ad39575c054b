//! The holes a review of the extension found under hostile roles, long
//! transactions and odd input (issue 10), each reproduced from outside with
//! real sessions: a test per defect, which failed before its fix.

mod locks;
mod monitor;
mod public;
mod rate_limits;
mod transactions;
