//! Bybit V5: the REST client (client.rs), the venue's messages typed once
//! (models/, shared with the exchange double) and what they mean for
//! botai (parse.rs), the private stream
//! (stream.rs) and the public market data (market.rs).

mod client;
pub mod market;
pub mod models;
mod parse;
pub mod stream;

pub use client::*;
pub use parse::*;
