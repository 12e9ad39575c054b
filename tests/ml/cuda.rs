//! CUDA: a clear error without a CUDA runtime, never a CPU fallback.

use botai_daemon::ml::model::Device;

use super::*;

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
