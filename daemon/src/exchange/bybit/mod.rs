//! Bybit V5: the REST client (client.rs), the venue's messages typed once
//! (models.rs, shared with the exchange double), and the private stream
//! (stream.rs).

mod client;
pub mod models;
pub mod stream;

pub use client::*;
