//! Rust features and predictions against the Python reference on the real
//! month of data.

use botai_daemon::ml::features::RAW_BARS;

use super::*;

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
