//! The signal model end to end, without a database: Rust features and
//! predictions against the Python reference (`ml/features.py`,
//! `ml/predict.py`, run with `.cache/venv`) on the real month of data, and
//! every way loading a model or building a window must fail cleanly.
//!
//! Needs `make onnxruntime` (ONNX Runtime in `.cache/onnxruntime`, the Python
//! reference in `.cache/venv`); without it these tests fail and say so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use botai_daemon::market::csv::load_bars;
use botai_daemon::market::Bar;
use botai_daemon::ml::features::{self, Feature, FeatureSpec, FeatureWindow};
use botai_daemon::ml::model::{self, ModelError, ModelOptions, Prediction, SignalModel};
use chrono::NaiveDateTime;
use serde_json::{json, Value};
mod bad_data;
mod bad_models;
mod contract;
mod cuda;
mod default_replay;
mod model_card;
mod parity;

const BARS: &str = "data/market/btc-perp-1m-2022-01.csv.gz";
const MODEL: &str = "models/patchtst.onnx";
const SECOND_MODEL: &str = "tests/fixtures/second_model.onnx";
const DYLIB: &str = ".cache/onnxruntime/libonnxruntime.so";
const PYTHON: &str = ".cache/venv/bin/python";
const FEATURE_TOLERANCE: f64 = 1e-6;
const PREDICTION_TOLERANCE: f64 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// A file `make onnxruntime` provides; its absence fails the test with the
/// command to run, never skips it.
fn provided_by_make_onnxruntime(relative: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(
        path.exists(),
        "{} not found: run `make onnxruntime` first (ONNX Runtime 1.31.1 and the Python reference in .cache)",
        path.display()
    );
    path
}

fn init_runtime() {
    let dylib = provided_by_make_onnxruntime(DYLIB);
    model::init_runtime(&dylib).unwrap_or_else(|e| panic!("{e}"));
}

fn load(path: &Path, options: &ModelOptions) -> Result<SignalModel, ModelError> {
    init_runtime();
    SignalModel::load(path, options)
}

fn signal_model() -> SignalModel {
    load(&root().join(MODEL), &ModelOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn bars() -> &'static [Bar] {
    static BARS_OF_THE_MONTH: OnceLock<Vec<Bar>> = OnceLock::new();
    BARS_OF_THE_MONTH.get_or_init(|| load_bars(&root().join(BARS)).unwrap_or_else(|e| panic!("{e}")))
}

/// Row of the bar that opens at `ts` (`2022-01-21 21:30`, UTC).
fn row_at(ts: &str) -> usize {
    let ts = NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M").unwrap().and_utc();
    bars().binary_search_by_key(&ts, |bar| bar.ts).unwrap_or_else(|_| panic!("no bar at {ts}"))
}

/// The window whose newest bar is row `end`, built by the Rust code.
fn rust_window(end: usize) -> FeatureWindow {
    features::window(&bars()[..=end]).unwrap_or_else(|e| panic!("window ending at row {end}: {e}"))
}

/// Runs a script of the Python reference and parses its JSON output.
fn python(args: &[&str], stdin: Option<&Value>) -> Value {
    let python = provided_by_make_onnxruntime(PYTHON);
    let mut child = Command::new(&python)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut input = child.stdin.take().unwrap();
    if let Some(doc) = stdin {
        serde_json::to_writer(&mut input, doc).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// The windows `ml/features.py` computes from `csv` for rows `end .. end + count`.
fn python_windows(csv: &str, end: usize, count: usize) -> Vec<Vec<Vec<f64>>> {
    python_windows_for(csv, end, count, &FeatureSpec::patchtst())
}

/// The same for any window length and features of the catalogue.
fn python_windows_for(csv: &str, end: usize, count: usize, spec: &FeatureSpec) -> Vec<Vec<Vec<f64>>> {
    let names = spec.features().iter().map(|f| f.name()).collect::<Vec<_>>().join(",");
    let (end, count, window) = (end.to_string(), count.to_string(), spec.window().to_string());
    let doc = python(
        &[
            "ml/features.py",
            "--csv",
            csv,
            "--end-index",
            &end,
            "--count",
            &count,
            "--window",
            &window,
            "--features",
            &names,
        ],
        None,
    );
    let windows = doc["windows"].as_array().expect("windows");
    windows
        .iter()
        .map(|w| {
            let rows = w.as_array().unwrap();
            assert_eq!(rows.len(), spec.window());
            rows.iter()
                .map(|row| {
                    let row = row.as_array().unwrap();
                    assert_eq!(row.len(), spec.channels());
                    row.iter().map(|v| v.as_f64().unwrap()).collect()
                })
                .collect()
        })
        .collect()
}

/// What `ml/predict.py` (onnxruntime in Python) returns for one batch.
fn python_predictions(windows: &[FeatureWindow]) -> Vec<Vec<f64>> {
    python_predictions_of(MODEL, windows)
}

fn python_predictions_of(model: &str, windows: &[FeatureWindow]) -> Vec<Vec<f64>> {
    // As f64: an f32 written as the shortest f64 text reads back exactly in
    // Python, and numpy's cast to float32 then gives the same f32.
    let batch: Vec<Vec<Vec<f64>>> =
        windows.iter().map(|w| w.rows().map(|row| row.iter().map(|&x| f64::from(x)).collect()).collect()).collect();
    let doc = python(&["ml/predict.py", "--model", model, "--input", "-"], Some(&json!({ "features": batch })));
    let rows = doc["returns"].as_array().expect("returns");
    rows.iter().map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()).collect()
}

/// A number the reference printed, as the f32 it was. Both scripts print
/// float32 values as exact decimal doubles, but serde_json's default parser
/// may land one f64 ulp off (about 1e-16 here); that is still nearest to
/// the same f32, so the cast recovers the exact value.
fn reference_f32(printed: f64) -> f32 {
    printed as f32
}

fn as_array(p: &Prediction) -> Vec<f64> {
    p.returns.iter().map(|&r| f64::from(r)).collect()
}

/// A file of the test's own in the temporary directory.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("botai-ml-test-{}-{name}", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes)).unwrap();
    path
}

/// An ONNX file of the test's own with a manifest beside it: the shipped
/// model's manifest with the file's own name and checksum, then `edit`.
fn scratch_model(name: &str, onnx: &[u8], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("botai-ml-test-{}-{name}", std::process::id()));
    botai_tests::model_with_manifest(&dir, name, onnx, edit)
}

fn shipped_bytes() -> Vec<u8> {
    std::fs::read(root().join(MODEL)).unwrap()
}

/// Running comparison of Rust windows against the reference's.
#[derive(Default)]
struct Parity {
    windows: usize,
    values: usize,
    identical: usize,
    max_diff: f64,
    max_vol_z: f32,
    clipped: usize,
    flat: usize,
}

impl Parity {
    fn compare(&mut self, what: &str, expected: &[Vec<f64>], actual: &FeatureWindow) {
        self.compare_spec(what, &FeatureSpec::patchtst(), expected, actual)
    }

    fn compare_spec(&mut self, what: &str, spec: &FeatureSpec, expected: &[Vec<f64>], actual: &FeatureWindow) {
        let channel = |f: Feature| spec.features().iter().position(|&g| g == f);
        assert_eq!(expected.len(), actual.window(), "{what}: rows");
        for (j, (want_row, got_row)) in expected.iter().zip(actual.rows()).enumerate() {
            assert_eq!(want_row.len(), got_row.len(), "{what}: channels");
            for (c, (&want, &got)) in want_row.iter().zip(got_row).enumerate() {
                let want = reference_f32(want);
                let diff = (f64::from(want) - f64::from(got)).abs();
                let name = spec.features()[c];
                assert!(diff <= FEATURE_TOLERANCE, "{what}, row {j}, {name}: Rust {got} vs Python {want}");
                self.max_diff = self.max_diff.max(diff);
                self.values += 1;
                self.identical += usize::from(want.to_bits() == got.to_bits());
            }
            if let Some(v) = channel(Feature::VolZ) {
                self.max_vol_z = self.max_vol_z.max(got_row[v].abs());
                self.clipped += usize::from(got_row[v].abs() == 5.0);
            }
            if let Some(r) = channel(Feature::Range) {
                self.flat += usize::from(got_row[r] == 0.0);
            }
        }
        self.windows += 1;
    }

    fn print(&self, data: &str) {
        println!(
            "feature parity ({data}): {} windows, {} values, max |Rust - Python| = {:e}, bit-identical {}/{}; \
             max |vol_z| {}, clipped {}, flat bars {}",
            self.windows,
            self.values,
            self.max_diff,
            self.identical,
            self.values,
            self.max_vol_z,
            self.clipped,
            self.flat
        );
    }
}
