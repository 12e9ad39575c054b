//! Binance USDⓈ-M futures: the REST client (client.rs), the venue's
//! messages typed once (models/, shared with the exchange double), and the
//! user data stream (stream.rs).

mod client;
pub mod models;
pub mod stream;

pub use client::*;
