//! A signal model behind a small typed API: load ONNX Runtime once per
//! process, load a model with its manifest (`contract.rs`) and check the
//! ONNX signature against it, and predict every horizon for every window of a
//! bar (all symbols) in one batched run. No ort type leaks out of this module.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};

use super::contract::{ContractError, Manifest};
use super::features::{FeatureSpec, FeatureWindow};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// Needs the onnxruntime-gpu build of the library; there is no silent
    /// fallback to the CPU when it cannot be used.
    Cuda { device_id: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    pub device: Device,
    /// Threads ONNX Runtime may use inside one operator (at least 1). One is
    /// the default: a batch of a few windows is too small to gain from more,
    /// and the daemon shares the machine with PostgreSQL.
    pub intra_threads: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { device: Device::Cpu, intra_threads: 1 }
    }
}

/// Predicted log returns `ln(close[t + h] / close[t])`, `t` = the window's
/// newest bar, one per horizon of the manifest, in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub returns: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ONNX Runtime library not found at {path}: run `make onnxruntime` (or point ORT_DYLIB_PATH at libonnxruntime.so)")]
    RuntimeMissing { path: PathBuf },
    #[error("cannot load ONNX Runtime from {path}: {reason}; run `make onnxruntime` to install ONNX Runtime 1.31.1")]
    RuntimeUnloadable { path: PathBuf, reason: String },
    #[error(
        "ONNX Runtime is already loaded from {loaded}, cannot switch to {requested}: a process loads it only once"
    )]
    RuntimeAlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    #[error("ONNX Runtime is not loaded: call ml::model::init_runtime before loading a model")]
    RuntimeNotLoaded,
    #[error("model file {path} not found")]
    ModelMissing { path: PathBuf },
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("model file {path} is unreadable or not a valid ONNX model: {reason}")]
    ModelCorrupt { path: PathBuf, reason: String },
    #[error("model {path} has the wrong input: expected {expected}, found {found}")]
    WrongInput { path: PathBuf, expected: String, found: String },
    #[error("model {path} has the wrong output: expected {expected}, found {found}")]
    WrongOutput { path: PathBuf, expected: String, found: String },
    #[error(
        "CUDA device {device_id} is not available: {reason}. Device::Cuda needs the onnxruntime-gpu build \
         (`ML_DEVICE=cuda make onnxruntime`), an NVIDIA GPU with its driver, and the CUDA and cuDNN libraries \
         it was built for; or use Device::Cpu"
    )]
    CudaUnavailable { device_id: i32, reason: String },
    #[error("invalid model options: {0}")]
    InvalidOptions(String),
    #[error("cannot set up an ONNX Runtime session: {0}")]
    Session(String),
    #[error("feature window {index} of the batch has a non-finite value")]
    NonFiniteInput { index: usize },
    #[error("feature window {index} of the batch is {found}, the model reads {expected}")]
    WrongWindow { index: usize, expected: String, found: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("model output for window {index} of the batch is not finite: {values:?}")]
    NonFiniteOutput { index: usize, values: Vec<f32> },
}

/// The loaded library and its environment. ONNX Runtime allows one of each
/// per process (ort refuses a second environment, and a second library would
/// be ignored), so this is process-wide by nature, set once and never
/// changed; every `SignalModel` creates its session in it.
struct Runtime {
    dylib: PathBuf,
    environment: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises `init_runtime` so that two callers cannot both load.
static LOADING: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `dylib` (the daemon passes `ORT_DYLIB_PATH`, or
/// `.cache/onnxruntime/libonnxruntime.so` by default). Must run before
/// `SignalModel::load`. Calling it again with the same library does nothing;
/// with another library it is an error, since the first one stays loaded.
pub fn init_runtime(dylib: &Path) -> Result<(), ModelError> {
    let requested = std::path::absolute(dylib).unwrap_or_else(|_| dylib.to_path_buf());
    // Checked before ort sees the path: ort resolves a relative path against
    // the executable's directory and only reports a failed dlopen, while a
    // missing file is the usual case (the set-up step was not run).
    if !requested.is_file() {
        return Err(ModelError::RuntimeMissing { path: requested });
    }
    let requested = requested.canonicalize().unwrap_or(requested);

    let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return if runtime.dylib == requested {
            Ok(())
        } else {
            Err(ModelError::RuntimeAlreadyLoaded { loaded: runtime.dylib.clone(), requested })
        };
    }
    let unloadable = |reason: String| ModelError::RuntimeUnloadable { path: requested.clone(), reason };
    let environment = ort::init_from(&requested)
        .map_err(|e| unloadable(e.to_string()))?
        .with_name("botai")
        .with_telemetry(false)
        .build()
        .map_err(|e| unloadable(e.to_string()))?;
    // Cannot be taken: `LOADING` is held and `RUNTIME` was empty.
    let _ = RUNTIME.set(Runtime { dylib: requested, environment });
    Ok(())
}

/// A signal model, checked against its manifest when loaded.
pub struct SignalModel {
    session: Session,
    manifest: Manifest,
    path: PathBuf,
    device: Device,
}

impl std::fmt::Debug for SignalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalModel")
            .field("path", &self.path)
            .field("name", &self.manifest.name)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl SignalModel {
    /// Loads the model at `path` (its ONNX file or its manifest) and checks
    /// the manifest and then the ONNX input and output against it; a model
    /// that does not keep its contract is refused here, not at the first bar.
    pub fn load(path: &Path, options: &ModelOptions) -> Result<SignalModel, ModelError> {
        let runtime = RUNTIME.get().ok_or(ModelError::RuntimeNotLoaded)?;
        if options.intra_threads == 0 {
            // ONNX Runtime reads 0 as "one thread per core": say it explicitly.
            return Err(ModelError::InvalidOptions("intra_threads must be at least 1".into()));
        }
        let onnx = if path.extension().is_some_and(|e| e == "json") { None } else { Some(path) };
        if let Some(onnx) = onnx {
            check_file(onnx)?;
        }
        let manifest = Manifest::load(path)?;
        let path = manifest.onnx.clone();
        let path = path.as_path();
        check_file(path)?;

        let session_error = |e: ort::Error<SessionBuilder>| ModelError::Session(e.to_string());
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| ModelError::Session(e.to_string()))?
            .with_intra_threads(options.intra_threads)
            .map_err(session_error)?
            // The graph is one chain of operators: nothing to run side by side.
            .with_inter_threads(1)
            .map_err(session_error)?;
        if let Device::Cuda { device_id } = options.device {
            builder = with_cuda(builder, device_id, &runtime.dylib)?;
        }
        let session = builder.commit_from_file(path).map_err(|e| {
            let reason = e.message().to_string();
            match options.device {
                // The CUDA provider is created with the session: a missing GPU
                // or CUDA library only shows up here.
                Device::Cuda { device_id } if reason.to_ascii_lowercase().contains("cuda") => {
                    ModelError::CudaUnavailable { device_id, reason }
                }
                _ => ModelError::ModelCorrupt { path: path.to_path_buf(), reason },
            }
        })?;
        check_signature(&session, path, &manifest)?;
        Ok(SignalModel { session, manifest, path: path.to_path_buf(), device: options.device })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the model reads: the windows `predict` takes.
    pub fn spec(&self) -> &FeatureSpec {
        &self.manifest.spec
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Predicts every window in ONE run of the model (a batch of
    /// `windows.len()`: every symbol of a bar), in the order given. An empty
    /// slice does not run the model. A non-finite output is an error, never a
    /// prediction.
    pub fn predict(&mut self, windows: &[FeatureWindow]) -> Result<Vec<Prediction>, ModelError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, channels) = (self.manifest.spec.window(), self.manifest.spec.channels());
        for (index, w) in windows.iter().enumerate() {
            if (w.window(), w.channels()) != (rows, channels) {
                return Err(ModelError::WrongWindow {
                    index,
                    expected: format!("{rows} x {channels}"),
                    found: format!("{} x {}", w.window(), w.channels()),
                });
            }
            if !w.values().iter().all(|x| x.is_finite()) {
                return Err(ModelError::NonFiniteInput { index });
            }
        }
        let batch = windows.len();
        let mut flat = Vec::with_capacity(batch * rows * channels);
        for w in windows {
            flat.extend_from_slice(w.values());
        }
        let input = TensorRef::from_array_view(([batch, rows, channels], flat.as_slice()))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let (input_name, output_name) = (self.manifest.input.as_str(), self.manifest.output.as_str());
        let outputs =
            self.session.run(ort::inputs![input_name => input]).map_err(|e| ModelError::Inference(e.to_string()))?;
        let output =
            outputs.get(output_name).ok_or_else(|| ModelError::Inference(format!("no output `{output_name}`")))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| ModelError::Inference(e.to_string()))?;
        let horizons = self.manifest.horizons.len();
        if **shape != [batch as i64, horizons as i64] {
            return Err(ModelError::Inference(format!(
                "output `{output_name}` has shape {shape} for a batch of {batch}, expected [{batch}, {horizons}]"
            )));
        }
        values
            .chunks_exact(horizons)
            .enumerate()
            .map(|(index, row)| {
                if row.iter().all(|v| v.is_finite()) {
                    Ok(Prediction { returns: row.to_vec() })
                } else {
                    Err(ModelError::NonFiniteOutput { index, values: row.to_vec() })
                }
            })
            .collect()
    }
}

fn check_file(path: &Path) -> Result<(), ModelError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ModelError::ModelMissing { path: path.to_path_buf() })
        }
        Err(e) => Err(ModelError::ModelCorrupt { path: path.to_path_buf(), reason: e.to_string() }),
        Ok(meta) if !meta.is_file() => {
            Err(ModelError::ModelCorrupt { path: path.to_path_buf(), reason: "not a regular file".into() })
        }
        Ok(_) => Ok(()),
    }
}

/// Adds the CUDA execution provider, failing (not falling back to the CPU)
/// when the loaded library cannot use it.
fn with_cuda(builder: SessionBuilder, device_id: i32, dylib: &Path) -> Result<SessionBuilder, ModelError> {
    if device_id < 0 {
        return Err(ModelError::InvalidOptions(format!("CUDA device_id must be >= 0, got {device_id}")));
    }
    let unavailable = |reason: String| ModelError::CudaUnavailable { device_id, reason };
    // A CPU-only build does not list the provider at all; ask first so the
    // error says that rather than a generic registration failure.
    if !ep::CUDA::is_available().map_err(|e| unavailable(e.to_string()))? {
        return Err(unavailable(format!(
            "the ONNX Runtime loaded from {} is a CPU-only build (no CUDAExecutionProvider)",
            dylib.display()
        )));
    }
    // `error_on_failure`: by default ort only logs a provider that fails to
    // register and the session then quietly runs on the CPU.
    builder
        .with_execution_providers([ep::CUDA::default().with_device_id(device_id).build().error_on_failure()])
        .map_err(|e| unavailable(e.to_string()))
}

/// The ONNX signature against the manifest: one input `[batch, window,
/// features]`, one output `[batch, horizons]`, float32, batch dynamic.
fn check_signature(session: &Session, path: &Path, manifest: &Manifest) -> Result<(), ModelError> {
    let (window, channels, horizons) = (manifest.spec.window(), manifest.spec.channels(), manifest.horizons.len());
    let input_dims = [window as i64, channels as i64];
    if !matches!(session.inputs(), [input] if is_batched_f32(input, &manifest.input, &input_dims)) {
        return Err(ModelError::WrongInput {
            path: path.to_path_buf(),
            expected: format!(
                "one input `{}`: Tensor<f32>(batch, {window}, {channels}), batch dynamic (manifest {}: window {window}, \
                 features {})",
                manifest.input,
                manifest.path.display(),
                manifest.spec.features().iter().map(|f| f.name()).collect::<Vec<_>>().join(",")
            ),
            found: describe(session.inputs()),
        });
    }
    if !matches!(session.outputs(), [output] if is_batched_f32(output, &manifest.output, &[horizons as i64])) {
        return Err(ModelError::WrongOutput {
            path: path.to_path_buf(),
            expected: format!(
                "one output `{}`: Tensor<f32>(batch, {horizons}), batch dynamic (manifest {}: horizons {:?} minutes)",
                manifest.output,
                manifest.path.display(),
                manifest.horizons
            ),
            found: describe(session.outputs()),
        });
    }
    Ok(())
}

/// `name`: a float32 tensor `[batch, fixed...]` whose batch is dynamic: a
/// fixed batch could not take the varying number of windows of a bar.
fn is_batched_f32(outlet: &Outlet, name: &str, fixed: &[i64]) -> bool {
    let ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } = outlet.dtype() else {
        return false;
    };
    outlet.name() == name && shape.len() == fixed.len() + 1 && shape[0] == -1 && shape[1..] == *fixed
}

fn describe(outlets: &[Outlet]) -> String {
    if outlets.is_empty() {
        return "none".into();
    }
    outlets.iter().map(|o| format!("`{}`: {}", o.name(), o.dtype())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    //! Only failures to load the runtime are tested here: a process loads
    //! ONNX Runtime once, so a test in this binary that loaded it would change
    //! what the others see. Everything with a loaded runtime is in
    //! `tests/ml/`.

    use super::*;

    #[test]
    fn missing_runtime_library_says_to_run_make_onnxruntime() {
        let err = init_runtime(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(matches!(err, ModelError::RuntimeMissing { .. }), "{err:?}");
        assert!(err.to_string().contains("make onnxruntime"), "{err}");
    }

    #[test]
    fn unloadable_runtime_library_is_an_error_not_a_panic() {
        let not_a_library = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let err = init_runtime(&not_a_library).unwrap_err();
        assert!(matches!(err, ModelError::RuntimeUnloadable { .. }), "{err:?}");
        assert!(err.to_string().contains("make onnxruntime"), "{err}");
    }

    #[test]
    fn loading_a_model_before_the_runtime_is_an_error_not_a_panic() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/patchtst.onnx");
        let err = SignalModel::load(&model, &ModelOptions::default()).unwrap_err();
        assert!(matches!(err, ModelError::RuntimeNotLoaded), "{err:?}");
    }

    #[test]
    fn signal_model_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<SignalModel>();
        assert_send::<ModelError>();
    }
}
