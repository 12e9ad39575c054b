//! The ML manager's section of the configuration (MODEL_PATH, ORT_DYLIB,
//! ML_DEVICE, STRATEGY, SIGNAL_*, HOLD_FOR, STOP_LOSS).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::env::pg::PgSettings;
use crate::env::Source;

/// Where the ML model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlDevice {
    Cpu,
    Cuda(i32),
}

/// The model the ML manager runs when MODEL_PATH is unset.
pub const DEFAULT_MODEL_PATH: &str = "models/patchtst.onnx";

#[derive(Debug, Clone)]
pub struct MlConfig {
    pub model_path: PathBuf,
    pub ort_dylib: PathBuf,
    pub device: MlDevice,
    pub threads: usize,
    pub strategy: String,
    /// SIGNAL_THRESHOLD: a fixed minimum |predicted return| for a signal,
    /// replacing the cost rule (round trip + the model's margin). None: the
    /// cost rule.
    pub threshold: Option<f64>,
    /// SIGNAL_FEE, SIGNAL_SLIPPAGE: the venue's costs per side for the cost
    /// rule; None: the costs the model's manifest was tuned for.
    pub fee: Option<f64>,
    pub slippage: Option<f64>,
    /// |predicted return| at which signal_strength reaches 1.
    pub full_strength: f64,
    /// How long a position is held after the last signal in its direction;
    /// then the ML manager signals its exit. None: the model's trade horizon.
    pub hold_for: Option<Duration>,
    /// Loss from the average entry (a fraction) at which the ML manager
    /// signals an exit; None: no stop.
    pub stop_loss: Option<f64>,
}

impl MlConfig {
    pub fn load(src: &Source) -> Result<MlConfig> {
        let device =
            src.parse("ML_DEVICE", MlDevice::Cpu, "cpu, cuda or cuda:N", |v| match v.to_lowercase().as_str() {
                "cpu" => Some(MlDevice::Cpu),
                "cuda" | "gpu" => Some(MlDevice::Cuda(0)),
                other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(MlDevice::Cuda),
            })?;
        let ml = MlConfig {
            model_path: PathBuf::from(src.string("MODEL_PATH", DEFAULT_MODEL_PATH)),
            ort_dylib: PathBuf::from(src.string("ORT_DYLIB_PATH", ".cache/onnxruntime/libonnxruntime.so")),
            device,
            threads: src.parse("ML_THREADS", 1usize, "a number of threads (1-64)", |v| {
                v.parse().ok().filter(|n| (1..=64).contains(n))
            })?,
            strategy: src.string("STRATEGY", "patchtst"),
            threshold: src.parse("SIGNAL_THRESHOLD", None, "a return magnitude between 0 and 0.1", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..0.1).contains(t)).map(Some)
            })?,
            fee: src.parse("SIGNAL_FEE", None, "a fee rate per side between 0 and 0.01", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..=0.01).contains(t)).map(Some)
            })?,
            slippage: src.parse("SIGNAL_SLIPPAGE", None, "a slippage per side between 0 and 0.01", |v| {
                v.parse().ok().filter(|t: &f64| (0.0..=0.01).contains(t)).map(Some)
            })?,
            full_strength: src.parse("SIGNAL_FULL_STRENGTH", 0.003, "a positive return magnitude", |v| {
                v.parse().ok().filter(|t: &f64| *t > 0.0 && t.is_finite())
            })?,
            hold_for: match src.raw("HOLD_FOR") {
                None => None,
                Some(_) => Some(src.seconds("HOLD_FOR", 0.0)?),
            },
            stop_loss: src.parse(
                "STOP_LOSS",
                None,
                "off, or a loss fraction between 0 and 1 such as 0.01",
                |v| match v.trim().to_lowercase().as_str() {
                    "off" | "none" | "" => Some(None),
                    f => f.parse::<f64>().ok().filter(|f| *f > 0.0 && *f < 1.0).map(Some),
                },
            )?,
        };
        botai_core::names::name("STRATEGY", &ml.strategy).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(ml)
    }
}

/// What the ML manager runs with: its section and the few shared settings
/// it needs (built by `Config::ml_manager`).
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub pg: PgSettings,
    pub ml: MlConfig,
    /// The exchange its signals are for (EXCHANGE).
    pub exchange: String,
    /// SIGNAL_DEDUP_WINDOW: the cooldown a signal document asks for.
    pub signal_dedup_window: Duration,
    /// How often it beats (a quarter of WORKER_HEARTBEAT_TIMEOUT).
    pub heartbeat_every: Duration,
}
