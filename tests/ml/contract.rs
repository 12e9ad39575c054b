//! The model contract: the manifest beside a model, the catalogue of
//! features, models of other shapes, several symbols in one batch.

use botai_daemon::ml::contract::ContractError;
use botai_daemon::ml::manager::{predict_symbols, BarPredictions, Skipped, SymbolBars};
use sha2::{Digest, Sha256};

use super::*;

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
