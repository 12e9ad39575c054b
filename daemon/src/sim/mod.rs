//! The simulated venue and what runs on it: the venue itself (venue/), the
//! in-process paper exchange (paper.rs) and the exchange double (double/),
//! which serves the venue over HTTP and WebSocket in Bybit's and Binance's
//! own dialects, serialising the adapters' own model types.

pub mod double;
pub mod paper;
pub mod venue;
