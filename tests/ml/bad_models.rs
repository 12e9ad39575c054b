//! Bad models: every way loading one must fail cleanly.

use botai_daemon::ml::features::WINDOW;

use super::*;

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
