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
use botai_daemon::ml::contract::ContractError;
use botai_daemon::ml::features::{self, BarField, Feature, FeatureError, FeatureSpec, FeatureWindow, RAW_BARS, WINDOW};
use botai_daemon::ml::manager::{predict_symbols, BarPredictions, Skipped, SymbolBars};
use botai_daemon::ml::model::{self, Device, ModelError, ModelOptions, Prediction, SignalModel};
use chrono::{NaiveDateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

// ---------------------------------------------------------------- parity

#[test]
fn rust_features_equal_python_reference_over_the_whole_month() {
    let last = bars().len() - 1;
    // (first window's newest row, windows): the first possible window, a
    // quiet day, the sell-off (largest 1-minute moves on Jan 21 evening, the
    // volume spike of Jan 23, the month's low close and the largest return
    // of Jan 24), and the windows ending at the last bar.
    let ranges = [
        (RAW_BARS - 1, 40),
        (row_at("2022-01-10 12:00"), 30),
        (row_at("2022-01-21 21:30"), 80),
        (row_at("2022-01-23 08:00"), 40),
        (row_at("2022-01-24 10:50"), 30),
        (row_at("2022-01-24 20:40"), 30),
        (last - 39, 40),
    ];
    assert_eq!(ranges[0].0, 120);

    let mut parity = Parity::default();
    for (first, count) in ranges {
        let reference = python_windows(BARS, first, count);
        for (k, expected) in reference.iter().enumerate() {
            let end = first + k;
            parity.compare(&format!("window ending at row {end} ({})", bars()[end].ts), expected, &rust_window(end));
        }
    }
    assert!(parity.windows >= 290);
    parity.print("real month");
}

#[test]
fn rust_features_equal_python_reference_on_edge_case_bars() {
    // Bars the real month lacks: flat bars (clv 0), volume spikes past the
    // ±5 clip, zero volume, a stretch of constant volume; through a plain
    // .csv, so the loader's other path is compared too.
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    let start = NaiveDateTime::parse_from_str("2022-03-01 00:00", "%Y-%m-%d %H:%M").unwrap();
    let mut close = 40_000.0f64;
    for i in 0..400u32 {
        let ts = start + chrono::Duration::minutes(i64::from(i));
        close += f64::from((i * 7919) % 23) - 11.0;
        let (high, low) =
            if i % 5 == 0 { (close, close) } else { (close + f64::from(i % 13), close - f64::from(i % 17) - 0.5) };
        let volume = match i {
            _ if i % 97 == 0 => 5.0e12,
            _ if i % 31 == 0 => 0.0,
            200..=330 => 250_000.125,
            _ => 1.0e5 + f64::from((i * 104_729) % 1_000_003) * 3.7,
        };
        csv += &format!("{}.000000,{},{high},{low},{close},{volume}\n", ts.format("%Y-%m-%d %H:%M:%S"), close - 1.0);
    }
    let path = scratch_file("edge-cases.csv", csv.as_bytes());
    let bars = load_bars(&path).unwrap();
    let reference = python_windows(path.to_str().unwrap(), RAW_BARS - 1, bars.len() - RAW_BARS + 1);
    std::fs::remove_file(&path).unwrap();

    let mut parity = Parity::default();
    for (k, expected) in reference.iter().enumerate() {
        let end = RAW_BARS - 1 + k;
        parity.compare(&format!("window ending at row {end}"), expected, &features::window(&bars[..=end]).unwrap());
    }
    assert!(parity.clipped > 0 && parity.flat > 0 && parity.max_vol_z == 5.0, "edge cases not reached");
    parity.print("edge cases");
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

#[test]
fn rust_predictions_equal_python_onnxruntime_for_batches_of_1_8_and_32() {
    let mut model = signal_model();
    let last = bars().len() - 1;
    let sell_off = row_at("2022-01-21 21:30");
    let batches: [Vec<usize>; 3] = [
        vec![last],
        (0..8).map(|k| sell_off + 7 * k).collect(),
        (0..32).map(|k| RAW_BARS - 1 + k * (last - RAW_BARS) / 31).collect(),
    ];
    let mut max_diff = 0.0f64;
    for ends in &batches {
        let windows: Vec<FeatureWindow> = ends.iter().map(|&end| rust_window(end)).collect();
        let rust = model.predict(&windows).unwrap_or_else(|e| panic!("{e}"));
        let reference = python_predictions(&windows);
        assert_eq!(rust.len(), windows.len());
        assert_eq!(reference.len(), windows.len());
        let (mut batch_max, mut identical) = (0.0f64, 0usize);
        for ((end, got), want) in ends.iter().zip(&rust).zip(&reference) {
            assert_eq!(want.len(), 3);
            for (h, (g, &w)) in as_array(got).into_iter().zip(want).enumerate() {
                let w = reference_f32(w);
                let diff = (g - f64::from(w)).abs();
                assert!(
                    diff <= PREDICTION_TOLERANCE,
                    "batch {}, row {end}, horizon {h}: Rust {g} vs Python {w}",
                    ends.len()
                );
                batch_max = batch_max.max(diff);
                identical += usize::from(g as f32 == w);
            }
        }
        println!(
            "prediction parity: batch {:2}: max |Rust - Python| = {batch_max:e}, bit-identical {identical}/{}",
            ends.len(),
            3 * ends.len()
        );
        max_diff = max_diff.max(batch_max);
    }
    println!("prediction parity: max |Rust - Python| over all batches = {max_diff:e}");
}

#[test]
fn a_window_predicts_the_same_alone_and_inside_a_batch() {
    let mut model = signal_model();
    let ends: Vec<usize> = (0..8).map(|k| row_at("2022-01-24 10:50") + 3 * k).collect();
    let windows: Vec<FeatureWindow> = ends.iter().map(|&end| rust_window(end)).collect();
    let batched = model.predict(&windows).unwrap();
    for (window, in_batch) in windows.iter().zip(&batched) {
        let alone = model.predict(std::slice::from_ref(window)).unwrap();
        for (a, b) in as_array(&alone[0]).into_iter().zip(as_array(in_batch)) {
            assert!((a - b).abs() <= 1e-7, "alone {a} vs in batch {b}");
        }
    }
}

#[test]
fn empty_batch_gives_no_predictions() {
    assert_eq!(signal_model().predict(&[]).unwrap(), Vec::new());
}

#[test]
fn intra_op_threads_are_configurable_and_zero_is_refused() {
    let path = root().join(MODEL);
    let mut two = load(&path, &ModelOptions { intra_threads: 2, ..ModelOptions::default() }).unwrap();
    let window = rust_window(row_at("2022-01-21 22:49"));
    let (a, b) = (
        two.predict(std::slice::from_ref(&window)).unwrap().remove(0),
        signal_model().predict(&[window]).unwrap().remove(0),
    );
    for (x, y) in as_array(&a).into_iter().zip(as_array(&b)) {
        assert!((x - y).abs() <= 1e-7);
    }
    let err = load(&path, &ModelOptions { intra_threads: 0, ..ModelOptions::default() }).unwrap_err();
    assert!(matches!(err, ModelError::InvalidOptions(_)), "{err:?}");
}

#[test]
fn init_runtime_twice_is_harmless_but_another_library_is_refused() {
    init_runtime();
    init_runtime();
    let dylib = provided_by_make_onnxruntime(DYLIB);
    // another spelling of the same library is the same library
    model::init_runtime(&dylib.parent().unwrap().join("../onnxruntime/libonnxruntime.so")).unwrap();
    let other = root().join(MODEL);
    let err = model::init_runtime(&other).unwrap_err();
    assert!(matches!(err, ModelError::RuntimeAlreadyLoaded { .. }), "{err:?}");
    let missing = model::init_runtime(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
    assert!(missing.to_string().contains("make onnxruntime"), "{missing}");
}

// ---------------------------------------------------------------- bad models

#[test]
fn missing_model_file_is_model_missing() {
    let err = load(&root().join("models/no-such-model.onnx"), &ModelOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-model.onnx"), "{err}");
}

#[test]
fn random_bytes_are_refused_as_a_corrupt_model_with_ort_message() {
    // xorshift: the same "random" file on every run
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = scratch_model("random", &bytes, |_| {});
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    assert!(matches!(&err, ModelError::ModelCorrupt { reason, .. } if !reason.is_empty()), "{err:?}");
    println!("random bytes: {err}");
}

#[test]
fn truncated_model_is_refused_as_corrupt() {
    let bytes = shipped_bytes();
    let path = scratch_model("truncated", &bytes[..bytes.len() / 2], |_| {});
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    assert!(matches!(&err, ModelError::ModelCorrupt { reason, .. } if !reason.is_empty()), "{err:?}");
    println!("truncated model: {err}");
}

#[test]
fn directory_instead_of_model_file_is_refused_as_unreadable() {
    let err = load(&root().join("models"), &ModelOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::ModelCorrupt { .. }), "{err:?}");
}

#[test]
fn model_with_a_60_bar_input_is_refused_naming_expected_and_found() {
    let err = load(&root().join("tests/fixtures/wrong_window.onnx"), &ModelOptions::default()).unwrap_err();
    let ModelError::WrongInput { expected, found, .. } = &err else { panic!("expected WrongInput, got {err:?}") };
    assert!(expected.contains("120, 4"), "{expected}");
    assert!(found.contains("60, 4"), "{found}");
    println!("wrong input: {err}");
}

#[test]
fn model_with_two_outputs_per_window_is_refused() {
    let err = load(&root().join("tests/fixtures/wrong_output.onnx"), &ModelOptions::default()).unwrap_err();
    let ModelError::WrongOutput { expected, found, .. } = &err else { panic!("expected WrongOutput, got {err:?}") };
    assert!(expected.contains("batch, 3") && found.contains("batch, 2"), "{err}");
}

#[test]
fn non_finite_model_output_is_an_error_not_a_prediction() {
    let mut model = load(&root().join("tests/fixtures/nonfinite_output.onnx"), &ModelOptions::default()).unwrap();
    let window = rust_window(row_at("2022-01-10 12:00"));
    let err = model.predict(&[window.clone(), window]).unwrap_err();
    assert!(matches!(err, ModelError::NonFiniteOutput { index: 0, .. }), "{err:?}");
}

#[test]
fn non_finite_feature_is_refused_before_inference() {
    let mut window = rust_window(row_at("2022-01-10 12:00"));
    window.values_mut()[(WINDOW - 1) * 4] = f32::NAN;
    let good = rust_window(row_at("2022-01-10 12:01"));
    let err = signal_model().predict(&[good, window]).unwrap_err();
    assert!(matches!(err, ModelError::NonFiniteInput { index: 1 }), "{err:?}");
}

// ---------------------------------------------------------------- the model contract

#[test]
fn a_model_without_a_manifest_is_refused_saying_how_to_make_one() {
    let path = scratch_file("no-manifest.onnx", &shipped_bytes());
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, ModelError::Contract(ContractError::Missing { .. })), "{err:?}");
    assert!(err.to_string().contains("no-manifest.json") && err.to_string().contains("ml/contract.py"), "{err}");
    println!("no manifest: {err}");
}

#[test]
fn a_manifest_for_another_file_is_refused_by_its_checksum() {
    let second = std::fs::read(root().join(SECOND_MODEL)).unwrap();
    let path =
        scratch_model("checksum", &shipped_bytes(), |m| m["sha256"] = json!(format!("{:x}", Sha256::digest(&second))));
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    assert!(matches!(err, ModelError::Contract(ContractError::Checksum { .. })), "{err:?}");
    println!("checksum: {err}");
}

#[test]
fn a_manifest_naming_a_feature_outside_the_catalogue_is_refused() {
    let path = scratch_model("unknown-feature", &shipped_bytes(), |m| {
        m["features"] = json!(["ret", "range", "rsi_14", "vol_z"])
    });
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let ModelError::Contract(ContractError::UnknownFeature { name, known, .. }) = &err else {
        panic!("expected UnknownFeature, got {err:?}")
    };
    assert_eq!(name, "rsi_14");
    assert!(known.contains("vol_z") && known.contains("ret_15"), "{known}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    println!("unknown feature: {err}");
}

#[test]
fn a_manifest_missing_a_feature_the_model_reads_is_refused() {
    // The model reads 4 channels; the manifest names 3.
    let path = scratch_model("missing-feature", &shipped_bytes(), |m| m["features"] = json!(["ret", "range", "clv"]));
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let ModelError::WrongInput { expected, found, .. } = &err else { panic!("expected WrongInput, got {err:?}") };
    assert!(expected.contains("120, 3") && expected.contains("ret,range,clv"), "{expected}");
    assert!(found.contains("120, 4"), "{found}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    println!("missing feature: {err}");
}

#[test]
fn a_manifest_with_the_wrong_window_is_refused() {
    let path = scratch_model("wrong-window", &shipped_bytes(), |m| m["window"] = json!(60));
    let err = load(&path, &ModelOptions::default()).unwrap_err();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let ModelError::WrongInput { expected, found, .. } = &err else { panic!("expected WrongInput, got {err:?}") };
    assert!(expected.contains("60, 4") && found.contains("120, 4"), "{err}");
    println!("wrong window: {err}");
}

#[test]
fn a_manifest_with_a_misspelt_key_or_another_volume_unit_is_refused() {
    for (what, edit) in [
        (
            "unknown field `horizon_minutes`",
            Box::new(|m: &mut Value| m["horizon_minutes"] = json!([15])) as Box<dyn Fn(&mut Value)>,
        ),
        ("volume_unit", Box::new(|m: &mut Value| m["volume_unit"] = json!("base"))),
        ("trade_horizon_minutes", Box::new(|m: &mut Value| m["trade_horizon_minutes"] = json!(30))),
    ] {
        let path = scratch_model("misspelt", &shipped_bytes(), edit);
        let err = load(&path, &ModelOptions::default()).unwrap_err();
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        assert!(matches!(err, ModelError::Contract(ContractError::Invalid { .. })), "{err:?}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}

#[test]
fn the_manifest_itself_can_be_the_model_path() {
    let mut model = load(&root().join("models/patchtst.json"), &ModelOptions::default()).unwrap();
    assert_eq!(model.path(), root().join(MODEL));
    assert_eq!(model.manifest().horizons, [5, 15, 60]);
    assert_eq!(model.predict(&[rust_window(row_at("2022-01-10 12:00"))]).unwrap()[0].returns.len(), 3);
}

/// Every feature of the catalogue, 60 bars: the second fixture's spec and more.
fn catalogue_spec() -> FeatureSpec {
    FeatureSpec::new(60, Feature::ALL.to_vec()).unwrap()
}

#[test]
fn every_catalogue_feature_equals_the_python_reference() {
    let spec = catalogue_spec();
    assert_eq!(spec.raw_bars(), 75);
    let mut parity = Parity::default();
    for (first, count) in [(spec.raw_bars() - 1, 40), (row_at("2022-01-21 21:30"), 80), (bars().len() - 30, 30)] {
        let reference = python_windows_for(BARS, first, count, &spec);
        assert_eq!(reference.len(), count);
        for (k, expected) in reference.iter().enumerate() {
            let end = first + k;
            let actual = spec.compute(&bars()[..=end]).unwrap();
            parity.compare_spec(&format!("catalogue window ending at row {end}"), &spec, expected, &actual);
        }
    }
    parity.print("all six catalogue features, 60 bars");
}

#[test]
fn a_differently_shaped_model_runs_and_predicts_like_python_onnxruntime() {
    let mut model = load(&root().join(SECOND_MODEL), &ModelOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let spec = model.spec().clone();
    assert_eq!((spec.window(), spec.channels(), spec.raw_bars()), (60, 3, 75));
    assert_eq!((model.manifest().horizons.as_slice(), model.manifest().trade_output()), (&[10, 30][..], 1));
    let ends: Vec<usize> = (0..16).map(|k| row_at("2022-01-21 21:30") + 5 * k).collect();
    let windows: Vec<FeatureWindow> = ends.iter().map(|&e| spec.compute(&bars()[..=e]).unwrap()).collect();
    let reference = python_windows_for(BARS, ends[0], 1, &spec);
    Parity::default().compare_spec("second model's first window", &spec, &reference[0], &windows[0]);
    let rust = model.predict(&windows).unwrap();
    let python = python_predictions_of(SECOND_MODEL, &windows);
    for (got, want) in rust.iter().zip(&python) {
        assert_eq!(got.returns.len(), 2);
        for (g, w) in got.returns.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() <= PREDICTION_TOLERANCE, "Rust {g} vs Python {w}");
        }
    }
    // The shipped model's windows are not this model's.
    let err = model.predict(&[rust_window(ends[0])]).unwrap_err();
    assert!(matches!(err, ModelError::WrongWindow { index: 0, .. }), "{err:?}");
}

#[test]
fn several_symbols_are_predicted_in_one_batch_and_a_gappy_one_is_skipped() {
    let mut model = signal_model();
    let end = row_at("2022-01-24 10:50");
    let a = &bars()[..=end];
    let b = &bars()[..=end - 500];
    let mut gappy = bars()[end - 300..=end].to_vec();
    gappy.remove(250);
    let symbols = [
        SymbolBars { symbol: "BTCUSDT", bars: a },
        SymbolBars { symbol: "GAPPY", bars: &gappy },
        SymbolBars { symbol: "ETHUSDT", bars: b },
    ];
    let BarPredictions { predicted, skipped } = predict_symbols(&mut model, &symbols).unwrap();
    assert_eq!(predicted.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [0, 2]);
    assert!(matches!(skipped.as_slice(), [(1, Skipped::Gap(_))]), "{skipped:?}");
    for (k, p) in &predicted {
        let alone = model.predict(&[features::window(symbols[*k].bars).unwrap()]).unwrap().remove(0);
        for (x, y) in as_array(p).into_iter().zip(as_array(&alone)) {
            assert!((x - y).abs() <= 1e-7, "{}: batched {x} vs alone {y}", symbols[*k].symbol);
        }
    }
}

// ---------------------------------------------------------------- bad data

/// The 121 real bars of the window ending at Jan 21 22:49, with `spoil`
/// applied to the bar `at` (0 = the extra oldest bar).
fn spoiled(at: usize, spoil: impl FnOnce(&mut Bar)) -> (Vec<Bar>, chrono::DateTime<Utc>) {
    let end = row_at("2022-01-21 22:49");
    let mut raw = bars()[end + 1 - RAW_BARS..=end].to_vec();
    spoil(&mut raw[at]);
    let ts = raw[at].ts;
    (raw, ts)
}

#[test]
fn nan_close_rejects_the_window_naming_bar_and_field() {
    let (raw, ts) = spoiled(60, |bar| bar.close = f64::NAN);
    let err = features::window(&raw).unwrap_err();
    assert!(
        matches!(err, FeatureError::InvalidPrice { ts: t, field: BarField::Close, value } if t == ts && value.is_nan())
    );
    assert!(err.to_string().contains("2022-01-21") && err.to_string().contains("close"), "{err}");
}

#[test]
fn zero_price_rejects_the_window() {
    let (raw, ts) = spoiled(0, |bar| bar.open = 0.0);
    let err = features::window(&raw).unwrap_err();
    assert_eq!(err, FeatureError::InvalidPrice { ts, field: BarField::Open, value: 0.0 });
}

#[test]
fn negative_volume_rejects_the_window() {
    let (raw, ts) = spoiled(RAW_BARS - 1, |bar| bar.volume = -1.0);
    assert_eq!(features::window(&raw).unwrap_err(), FeatureError::InvalidVolume { ts, value: -1.0 });
}

#[test]
fn infinite_high_rejects_the_window() {
    let (raw, ts) = spoiled(100, |bar| bar.high = f64::INFINITY);
    let err = features::window(&raw).unwrap_err();
    assert_eq!(err, FeatureError::InvalidPrice { ts, field: BarField::High, value: f64::INFINITY });
}

#[test]
fn too_few_bars_says_how_many_are_missing() {
    let err = features::window(&bars()[..RAW_BARS - 1]).unwrap_err();
    assert_eq!(err, FeatureError::TooFewBars { needed: RAW_BARS, got: RAW_BARS - 1 });
    assert!(err.to_string().contains("1 missing"), "{err}");
}

// ---------------------------------------------------------------- CUDA

#[test]
fn cuda_device_without_a_cuda_runtime_is_a_clear_error_never_a_cpu_fallback() {
    let dylib = provided_by_make_onnxruntime(DYLIB).canonicalize().unwrap();
    // The onnxruntime-gpu wheel ships its CUDA provider next to the library;
    // the CPU wheel (what `make onnxruntime` installs by default) does not.
    let gpu_build = dylib.with_file_name("libonnxruntime_providers_cuda.so").exists();
    let result = load(&root().join(MODEL), &ModelOptions { device: Device::Cuda { device_id: 0 }, intra_threads: 1 });
    match result {
        Err(err @ ModelError::CudaUnavailable { .. }) => {
            let message = err.to_string();
            assert!(message.contains("CUDA") && message.contains("onnxruntime-gpu"), "{message}");
            println!("Device::Cuda: {message}");
        }
        Err(other) => panic!("expected CudaUnavailable, got {other:?}"),
        Ok(mut model) => {
            assert!(gpu_build, "a CPU-only ONNX Runtime ({}) accepted Device::Cuda", dylib.display());
            let window = rust_window(row_at("2022-01-10 12:00"));
            let (gpu, cpu) = (
                model.predict(std::slice::from_ref(&window)).unwrap().remove(0),
                signal_model().predict(&[window]).unwrap().remove(0),
            );
            for (g, c) in as_array(&gpu).into_iter().zip(as_array(&cpu)) {
                assert!((g - c).abs() <= 1e-4, "CUDA {g} vs CPU {c}");
            }
        }
    }
}

// ---------------------------------------------------------------- model card

/// `python3 ml/model_card.py --check` over a models directory: its exit
/// status and what it printed.
fn model_card_check(models: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(root().join("ml/model_card.py"))
        .arg("--check")
        .arg("--models")
        .arg(models)
        .output()
        .expect("python3 (Debian's) runs ml/model_card.py");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A copy of models/ (the files the card is made of) to change.
fn models_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("botai-ml-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["evaluation.json", "patchtst.json", "patchtst.onnx", "MODEL_CARD.md"] {
        std::fs::copy(root().join("models").join(file), dir.join(file)).unwrap();
    }
    dir
}

#[test]
fn the_committed_model_card_is_the_card_of_the_committed_report() {
    let (ok, printed) = model_card_check(&root().join("models"));
    assert!(ok, "{printed}");
    println!("{}", printed.trim());
}

#[test]
fn a_model_card_that_no_longer_says_what_the_report_says_is_caught() {
    // One figure of the report changes: the shipped model's walk-forward net result.
    let changed = models_copy("card-figure");
    let path = changed.join("evaluation.json");
    let mut report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let net = report["overall"]["predictors"]["shipped"]["spot"]["net"].as_f64().unwrap();
    report["overall"]["predictors"]["shipped"]["spot"]["net"] = json!(net + 0.5);
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    let (ok, printed) = model_card_check(&changed);
    assert!(!ok && printed.contains("is not the card of evaluation.json"), "{printed}");

    // The model is retrained (another file, its manifest updated) but not evaluated again.
    let retrained = models_copy("card-retrained");
    let mut onnx = std::fs::read(retrained.join("patchtst.onnx")).unwrap();
    onnx.extend_from_slice(b"retrained");
    std::fs::write(retrained.join("patchtst.onnx"), &onnx).unwrap();
    let path = retrained.join("evaluation.json");
    let mut report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    report["shipped_model"] =
        json!({ "onnx": "models/patchtst.onnx", "sha256": format!("{:x}", Sha256::digest(shipped_bytes())) });
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    let mpath = retrained.join("patchtst.json");
    let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    manifest["sha256"] = json!(format!("{:x}", Sha256::digest(&onnx)));
    std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let (ok, printed) = model_card_check(&retrained);
    assert!(!ok && printed.contains("judged another patchtst.onnx"), "{printed}");
    for dir in [changed, retrained] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
