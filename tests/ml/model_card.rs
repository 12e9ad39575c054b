//! The model card says what the committed evaluation report says.

use sha2::{Digest, Sha256};

use super::*;

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

    // Someone turns the shipped model on by hand: its margin is not the one
    // the selection rule of the report allows.
    let turned_on = models_copy("card-margin");
    let mpath = turned_on.join("patchtst.json");
    let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(turned_on.join("evaluation.json")).unwrap()).unwrap();
    let allowed = &report["selection"]["shipped_margin"];
    manifest["signal"]["margin"] = if allowed.is_null() { json!(0.002) } else { Value::Null };
    std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let (ok, printed) = model_card_check(&turned_on);
    assert!(!ok && printed.contains("but the selection rule of evaluation.json allows"), "{printed}");
    for dir in [changed, retrained, turned_on] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
