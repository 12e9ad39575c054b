#![recursion_limit = "256"]
//! botai daemon: the processes around the botai extension. One module per
//! role; every SQL call goes through `db`.

pub mod alerts;
pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod env;
pub mod exchange;
pub mod logging;
pub mod market;
pub mod ml;
pub mod operator;
pub mod report;
pub mod run;
pub mod sim;
pub mod status;
pub mod systemd;
pub mod telemetry;
pub mod trading;
