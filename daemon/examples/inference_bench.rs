//! Batch inference latency of the signal model through ort (issue 5): for
//! each batch size, a warm-up and then many timed `SignalModel::predict`
//! calls on real windows; one JSON line per batch size with the median and
//! p90 in microseconds. `bench/inference.sh` runs it interleaved with
//! `bench/inference.py` (the same windows through onnxruntime in Python) and
//! prints the ratio.
//!
//!     cargo run --release -p botai-daemon --example inference_bench -- --iterations 1000
//!
//! The windows (shared with bench/inference.py, keep the two in step): a pool
//! of POOL windows of the shipped month whose newest bars are the rows
//! `120 + k * (n - 121) / (POOL - 1)` (integer division), k = 0..POOL; a
//! batch of b takes windows 0, 1, ..., b - 1 of the pool (cycling past POOL).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use botai_daemon::market::csv::load_bars;
use botai_daemon::ml::features::{self, FeatureWindow, RAW_BARS};
use botai_daemon::ml::model::{self, ModelOptions, SignalModel};
use clap::Parser;

const POOL: usize = 32;

#[derive(Parser)]
#[command(about = "Latency of SignalModel::predict (ort) for batches of real feature windows")]
struct Args {
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    /// Untimed calls before timing each batch size.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Timed calls per batch size.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// ONNX Runtime library (default: .cache/onnxruntime/libonnxruntime.so).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    dylib: Option<PathBuf>,
    /// Model (default: models/patchtst.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Bar file (default: data/market/btc-perp-1m-2022-01.csv.gz).
    #[arg(long)]
    bars: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.iterations > 0 && args.batches.iter().all(|&b| b > 0), "iterations and batch sizes must be > 0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dylib = args.dylib.unwrap_or_else(|| root.join(".cache/onnxruntime/libonnxruntime.so"));
    let model_path = args.model.unwrap_or_else(|| root.join("models/patchtst.onnx"));
    let bars_path = args.bars.unwrap_or_else(|| root.join("data/market/btc-perp-1m-2022-01.csv.gz"));

    model::init_runtime(&dylib)?;
    let mut model = SignalModel::load(&model_path, &ModelOptions { intra_threads: 1, ..ModelOptions::default() })?;
    let bars = load_bars(&bars_path)?;
    ensure!(bars.len() > RAW_BARS + POOL, "{} has too few bars", bars_path.display());
    let n = bars.len();
    let pool = (0..POOL)
        .map(|k| {
            let end = RAW_BARS - 1 + k * (n - RAW_BARS) / (POOL - 1);
            features::window(&bars[..=end]).with_context(|| format!("window ending at row {end}"))
        })
        .collect::<Result<Vec<FeatureWindow>>>()?;

    for &batch in &args.batches {
        let windows: Vec<FeatureWindow> = (0..batch).map(|k| pool[k % POOL].clone()).collect();
        for _ in 0..args.warmup {
            model.predict(&windows)?;
        }
        let mut micros = Vec::with_capacity(args.iterations);
        let mut checksum = 0.0f64;
        for _ in 0..args.iterations {
            let start = Instant::now();
            let predictions = model.predict(&windows)?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            // Same sum as the Python side: shows both ran the same model on
            // the same windows, and keeps the result observably used.
            checksum = predictions.iter().map(|p| f64::from(p.returns[1])).sum();
        }
        micros.sort_by(f64::total_cmp);
        let line = serde_json::json!({
            "impl": "rust-ort",
            "batch": batch,
            "iterations": args.iterations,
            "median_us": nearest_rank(&micros, 0.5),
            "p90_us": nearest_rank(&micros, 0.9),
            "checksum_15m": checksum,
        });
        println!("{line}");
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values (same definition as the Python side).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
