//! The model contract: an ONNX file and its manifest `models/<name>.json`
//! (`ml/MODEL_CONTRACT.md`). The manifest says what the model reads (window,
//! bar interval, named features from the catalogue, volume unit), what it
//! returns (horizons), which output the trading rule uses, and the costs and
//! margin its signal rule was tuned for; the SHA-256 ties it to one ONNX
//! file. `model::SignalModel::load` then checks the ONNX signature against
//! it, so a team's model runs without code changes or is refused in one line.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::features::{Feature, FeatureSpec, SpecError};

/// The contract version this daemon reads.
pub const CONTRACT: &str = "botai-model/1";

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(
        "model manifest {path} not found: a model is an ONNX file and its manifest <name>.json beside it \
         (ml/MODEL_CONTRACT.md; `python3 ml/contract.py write` makes one)"
    )]
    Missing { path: PathBuf },
    #[error("model manifest {path} is unreadable: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("model manifest {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("model manifest {path} names feature `{name}`, which is not in the catalogue ({known})")]
    UnknownFeature { path: PathBuf, name: String, known: String },
    #[error("model manifest {path} says sha256 {expected} but {onnx} has {found}: the manifest is for another file")]
    Checksum { path: PathBuf, onnx: PathBuf, expected: String, found: String },
}

/// Raw manifest as written by `ml/contract.py`; unknown keys are refused so
/// that a misspelt key is an error, not a silent default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    contract: String,
    name: String,
    #[serde(default)]
    description: String,
    onnx: String,
    sha256: String,
    bar_interval: String,
    window: usize,
    features: Vec<String>,
    volume_unit: String,
    input: String,
    output: String,
    horizons_minutes: Vec<u32>,
    trade_horizon_minutes: u32,
    #[serde(default)]
    training: Option<Training>,
    signal: RawSignal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    costs: RawCosts,
    /// The margin the model's own validation chose (informative; the
    /// daemon applies `margin`).
    #[serde(default)]
    validation_margin: Option<f64>,
    margin: Option<f64>,
    #[serde(default)]
    chosen_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCosts {
    /// The venue of ml/costs.json the costs are for.
    #[serde(default)]
    venue: Option<String>,
    fee: f64,
    slippage: f64,
}

/// The data a model was trained on and its period, `[from, to)`: a replay
/// or an evaluation that overlaps it is in-sample for that model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    pub data: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Training {
    /// Whether `[from, to)` shares a moment with the training period.
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        from < self.to && self.from < to
    }
}

/// Venue costs per side, as fractions of the traded notional.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    pub fee: f64,
    pub slippage: f64,
}

impl Costs {
    /// What opening and closing a position costs.
    pub fn round_trip(&self) -> f64 {
        2.0 * (self.fee + self.slippage)
    }
}

/// A checked manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub onnx: PathBuf,
    pub sha256: String,
    pub spec: FeatureSpec,
    pub input: String,
    pub output: String,
    pub horizons: Vec<u32>,
    pub trade_horizon: u32,
    /// The costs the signal rule was tuned for, and their venue.
    pub costs: Costs,
    pub costs_venue: Option<String>,
    /// What the model was trained on; None when the manifest does not say.
    pub training: Option<Training>,
    /// The margin above the round trip chosen on validation; None when no
    /// margin made money there: the model emits no signals.
    pub margin: Option<f64>,
    pub margin_chosen_by: Option<String>,
}

impl Manifest {
    /// The manifest of a model: `path` itself when it ends in `.json`, else
    /// `<stem>.json` beside the ONNX file.
    pub fn path_for(model: &Path) -> PathBuf {
        if model.extension().is_some_and(|e| e == "json") {
            model.to_path_buf()
        } else {
            model.with_extension("json")
        }
    }

    /// Reads and checks the manifest and the checksum of the ONNX file it
    /// names (the ONNX signature is checked when the session is built).
    pub fn load(model: &Path) -> Result<Manifest, ContractError> {
        let path = Manifest::path_for(model);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ContractError::Missing { path }),
            Err(e) => return Err(ContractError::Unreadable { path, reason: e.to_string() }),
        };
        let raw: RawManifest = serde_json::from_str(&text)
            .map_err(|e| ContractError::Invalid { path: path.clone(), reason: e.to_string() })?;
        let manifest = Manifest::check(&path, raw)?;
        let bytes = std::fs::read(&manifest.onnx).map_err(|e| ContractError::Invalid {
            path: path.clone(),
            reason: format!("its ONNX file {} cannot be read: {e}", manifest.onnx.display()),
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if !found.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(ContractError::Checksum {
                path,
                onnx: manifest.onnx.clone(),
                expected: manifest.sha256.clone(),
                found,
            });
        }
        Ok(manifest)
    }

    fn check(path: &Path, raw: RawManifest) -> Result<Manifest, ContractError> {
        let invalid = |reason: String| ContractError::Invalid { path: path.to_path_buf(), reason };
        if raw.contract != CONTRACT {
            return Err(invalid(format!("contract is {:?}, this daemon reads {CONTRACT:?}", raw.contract)));
        }
        if raw.name.is_empty() {
            return Err(invalid("name is empty".into()));
        }
        if raw.onnx.is_empty() || raw.onnx.contains('/') || raw.onnx.contains('\\') {
            return Err(invalid(format!("onnx must be a file name beside the manifest, got {:?}", raw.onnx)));
        }
        if raw.sha256.len() != 64 || !raw.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!("sha256 must be 64 hex digits, got {:?}", raw.sha256)));
        }
        if raw.bar_interval != "1m" {
            return Err(invalid(format!(
                "bar_interval is {:?}: the daemon's bars are one minute (\"1m\")",
                raw.bar_interval
            )));
        }
        if raw.volume_unit != "quote" {
            return Err(invalid(format!(
                "volume_unit is {:?}: the daemon's bars carry volume in the quote currency (\"quote\"), \
                 so vol_z would mean something else than in training",
                raw.volume_unit
            )));
        }
        let mut features = Vec::with_capacity(raw.features.len());
        for name in &raw.features {
            match Feature::parse(name) {
                Some(f) => features.push(f),
                None => {
                    return Err(ContractError::UnknownFeature {
                        path: path.to_path_buf(),
                        name: name.clone(),
                        known: Feature::names(),
                    })
                }
            }
        }
        let spec = FeatureSpec::new(raw.window, features).map_err(|e: SpecError| invalid(e.to_string()))?;
        if raw.input.is_empty() || raw.output.is_empty() {
            return Err(invalid("input and output must name the ONNX input and output".into()));
        }
        if raw.horizons_minutes.is_empty() || raw.horizons_minutes.contains(&0) {
            return Err(invalid(format!("horizons_minutes must be positive minutes, got {:?}", raw.horizons_minutes)));
        }
        if raw.horizons_minutes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(format!("horizons_minutes must increase, got {:?}", raw.horizons_minutes)));
        }
        if !raw.horizons_minutes.contains(&raw.trade_horizon_minutes) {
            return Err(invalid(format!(
                "trade_horizon_minutes {} is not one of the outputs {:?}",
                raw.trade_horizon_minutes, raw.horizons_minutes
            )));
        }
        let costs = Costs { fee: raw.signal.costs.fee, slippage: raw.signal.costs.slippage };
        let fraction = |x: f64| x.is_finite() && (0.0..0.05).contains(&x);
        if !fraction(costs.fee) || !fraction(costs.slippage) {
            return Err(invalid(format!(
                "signal.costs fee and slippage must be fractions in [0, 0.05), got {costs:?}"
            )));
        }
        if raw.signal.margin.is_some_and(|m| !fraction(m)) {
            return Err(invalid(format!(
                "signal.margin must be a fraction in [0, 0.05) or null, got {:?}",
                raw.signal.margin
            )));
        }
        if raw.signal.validation_margin.is_some_and(|m| !fraction(m)) {
            return Err(invalid(format!(
                "signal.validation_margin must be a fraction in [0, 0.05) or null, got {:?}",
                raw.signal.validation_margin
            )));
        }
        if let Some(t) = &raw.training {
            if t.to <= t.from || t.data.is_empty() {
                return Err(invalid(format!("training must name its data and end after it starts, got {t:?}")));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Manifest {
            path: path.to_path_buf(),
            name: raw.name,
            description: raw.description,
            onnx: dir.join(&raw.onnx),
            sha256: raw.sha256,
            spec,
            input: raw.input,
            output: raw.output,
            horizons: raw.horizons_minutes,
            trade_horizon: raw.trade_horizon_minutes,
            costs,
            costs_venue: raw.signal.costs.venue,
            training: raw.training,
            margin: raw.signal.margin,
            margin_chosen_by: raw.signal.chosen_by,
        })
    }

    /// Index of the trade horizon among the outputs.
    pub fn trade_output(&self) -> usize {
        self.horizons.iter().position(|h| *h == self.trade_horizon).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Manifest, ContractError> {
        let mut doc = serde_json::json!({
            "contract": "botai-model/1", "name": "m", "description": "", "onnx": "m.onnx",
            "sha256": "0".repeat(64), "bar_interval": "1m", "window": 60,
            "features": ["body", "ret_15", "vol_z"], "volume_unit": "quote", "input": "features",
            "output": "returns", "horizons_minutes": [10, 30], "trade_horizon_minutes": 30,
            "signal": {"costs": {"fee": 0.0006, "slippage": 0.0001}, "margin": 0.001, "chosen_by": null}
        });
        edit(&mut doc);
        let raw: RawManifest = serde_json::from_value(doc)
            .map_err(|e| ContractError::Invalid { path: "m.json".into(), reason: e.to_string() })?;
        Manifest::check(Path::new("/models/m.json"), raw)
    }

    #[test]
    fn a_good_manifest_gives_the_spec_and_the_rule() {
        let m = raw(|_| {}).unwrap();
        assert_eq!(m.spec.raw_bars(), 75);
        assert_eq!(m.onnx, Path::new("/models/m.onnx"));
        assert_eq!(m.trade_output(), 1);
        assert!((m.costs.round_trip() - 0.0014).abs() < 1e-12);
        assert_eq!(m.training, None);
        let t = raw(|d| {
            d["training"] =
                serde_json::json!({"data": "x.csv", "from": "2022-01-01T00:00:00Z", "to": "2022-01-25T00:00:00Z"});
            d["signal"]["costs"]["venue"] = "binance_usdm".into();
            d["signal"]["validation_margin"] = 0.002.into();
        })
        .unwrap();
        assert_eq!(t.costs_venue.as_deref(), Some("binance_usdm"));
        let training = t.training.unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(training.overlaps(at("2022-01-24T23:00:00Z"), at("2022-02-01T00:00:00Z")));
        assert!(!training.overlaps(at("2022-01-25T00:00:00Z"), at("2022-02-01T00:00:00Z")), "[from, to)");
        assert!(!training.overlaps(at("2025-11-01T00:00:00Z"), at("2025-12-01T00:00:00Z")));
        assert_eq!(Manifest::path_for(Path::new("models/x.onnx")), Path::new("models/x.json"));
        assert_eq!(Manifest::path_for(Path::new("models/x.json")), Path::new("models/x.json"));
    }

    #[test]
    fn every_broken_field_is_refused_in_one_line_naming_it() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: [(&str, Edit); 14] = [
            ("contract", Box::new(|d| d["contract"] = "botai-model/2".into())),
            ("bar_interval", Box::new(|d| d["bar_interval"] = "5m".into())),
            ("volume_unit", Box::new(|d| d["volume_unit"] = "base".into())),
            ("window", Box::new(|d| d["window"] = 1.into())),
            ("not in the catalogue", Box::new(|d| d["features"] = serde_json::json!(["ret", "rsi_14"]))),
            ("named twice", Box::new(|d| d["features"] = serde_json::json!(["ret", "ret"]))),
            ("trade_horizon_minutes", Box::new(|d| d["trade_horizon_minutes"] = 15.into())),
            ("horizons_minutes", Box::new(|d| d["horizons_minutes"] = serde_json::json!([30, 10]))),
            ("sha256", Box::new(|d| d["sha256"] = "abc".into())),
            ("unknown field `windw`", Box::new(|d| d["windw"] = 60.into())),
            ("signal.margin", Box::new(|d| d["signal"]["margin"] = (-0.1).into())),
            ("signal.validation_margin", Box::new(|d| d["signal"]["validation_margin"] = 0.5.into())),
            (
                "training",
                Box::new(|d| {
                    d["training"] = serde_json::json!({"data": "x.csv", "from": "2022-02-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"})
                }),
            ),
            ("unknown field `vnue`", Box::new(|d| d["signal"]["costs"]["vnue"] = "x".into())),
        ];
        for (needle, edit) in cases {
            let err = raw(edit).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn missing_manifest_says_how_to_make_one() {
        let err = Manifest::load(Path::new("/nonexistent/model.onnx")).unwrap_err();
        assert!(matches!(err, ContractError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/model.json") && err.to_string().contains("ml/contract.py"));
    }
}
