//! botai-core: the parts of botai's guarantees that are pure logic.
//!
//! Nothing here touches PostgreSQL, so `cargo test` and property tests reach
//! it directly; the extension (`pg_extension/`) converts SQL arguments and
//! calls into these modules, and the daemon uses the same code where it needs
//! the same answers (for example a fingerprint in a log line).

pub mod amount;
pub mod fingerprint;
pub mod lock_key;
pub mod names;
pub mod reservation;
pub mod signal;
pub mod sliding_log;
pub mod timestamp;

pub use names::InputError;
