//! The ML manager: the signal model (features, ONNX inference) and the
//! single active manager with hot standbys.

pub mod config;
pub mod contract;
pub mod features;
pub mod manager;
pub mod model;
pub mod signal_rule;
