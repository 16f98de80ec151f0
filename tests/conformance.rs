//! ONNX backend node tests (generated from the `onnx` package's own test
//! cases by `scripts/gen_conformance.py` into `tests/fixtures/onnx-node/`)
//! run from one harness through every backend: the whole engine (import,
//! specialisation with integer inputs bound as boot-time constants,
//! passes) and then
//!
//! * the CPU backend (plan and CPU kernels, 1 and 3 threads), and
//! * the CUDA backend's lowering (`cuda::lower`, FP32) executed by the GPU
//!   emulator (`cuda::emu`, the test double at the GPU boundary that runs
//!   every launch of the lowered plan on the CPU).
//!
//! Real CUDA is detected at run time and reported; the node-level plans
//! are run on a device by `perceptd gpu-check`, not here (CI has no GPU).
//!
//! Every listed test must pass on every backend, or be in `SKIPS` (all
//! backends) with the reason; a skipped test that starts passing fails
//! too, so the list stays honest. Cases the GPU lowering refuses (an op or
//! a form of it with no GPU path) are counted and listed with the refusal,
//! never silently dropped. Prints per-op counts for each backend.

use perceptd::cuda::driver::Device;
use perceptd::cuda::emu::run_plan;
use perceptd::cuda::emu_gpu::EmuGpu;
use perceptd::cuda::lower::{build, Precision};
use perceptd::engine::{infer_once, onnx, specialize_for_inputs, Limits, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The ONNX backend runner's tolerances for node tests.
const RTOL: f32 = 1e-3;
const ATOL: f32 = 1e-7;

/// Tests we do not pass, with the reason.
const SKIPS: &[(&str, &str)] = &[
    ("test_batchnorm_epsilon_training_mode", "training mode (batch statistics outputs) is not inference; rejected at boot as unsupported"),
    ("test_batchnorm_example_training_mode", "training mode (batch statistics outputs) is not inference; rejected at boot as unsupported"),
    ("test_identity_opt", "optional-typed input: the engine runs tensors only"),
    ("test_identity_sequence", "sequence-typed input: the engine runs tensors only"),
    ("test_maxpool_with_argmax_2d_precomputed_pads", "MaxPool's indices output is not supported (rejected at boot)"),
    ("test_maxpool_with_argmax_2d_precomputed_strides", "MaxPool's indices output is not supported (rejected at boot)"),
    ("test_maxpool_2d_uint8", "uint8 data at run time: run-phase tensors are float32"),
    ("test_pow_types_int32_float32", "integer output computed from a run-time float input: run-phase tensors are float32"),
    ("test_pow_types_int64_float32", "integer output computed from a run-time float input: run-phase tensors are float32"),
    (
        "test_resize_downsample_scales_cubic_align_corners",
        "expected data comes from onnx's reference, which uses length*scale for align_corners; we, like onnxruntime 1.32, use the integer output length (ours equals onnxruntime's output)",
    ),
    (
        "test_resize_downsample_scales_linear_align_corners",
        "expected data comes from onnx's reference, which uses length*scale for align_corners; we, like onnxruntime 1.32, use the integer output length (ours equals onnxruntime's output)",
    ),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx-node")
}

fn load_case(dir: &Path) -> Result<(Vec<Tensor>, Vec<Tensor>), String> {
    let data = dir.join("test_data_set_0");
    let limits = Limits::default();
    let read_all = |prefix: &str| -> Result<Vec<Tensor>, String> {
        let mut v = Vec::new();
        for i in 0.. {
            let p = data.join(format!("{prefix}_{i}.pb"));
            if !p.exists() {
                break;
            }
            v.push(
                onnx::read_tensor_file(&p, &limits)
                    .map_err(|e| e.to_string())?
                    .1,
            );
        }
        Ok(v)
    };
    Ok((read_all("input")?, read_all("output")?))
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    if got.dtype.storage() != want.dtype.storage() {
        return Err(format!("dtype {}, expected {}", got.dtype, want.dtype));
    }
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs();
        if !ok {
            return Err(format!("element {i}: got {a}, expected {b}"));
        }
    }
    Ok(())
}

/// Why a backend produced no outputs for a case.
enum Failure {
    /// The CUDA lowering declined the graph (an op with no GPU path).
    Refused(String),
    /// Anything else: load, specialisation, planning, or wrong numbers.
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Cpu,
    EmulatedCuda,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "CPU",
            Backend::EmulatedCuda => "emulated CUDA",
        }
    }
}

/// The CUDA backend's FP32 plan for the case, run by the emulator.
fn run_emulated_cuda(dir: &Path, inputs: &[Tensor]) -> Result<Vec<Tensor>, Failure> {
    let (g, runtime) = specialize_for_inputs(&dir.join("model.onnx"), inputs, &Limits::default())
        .map_err(|e| Failure::Error(e.to_string()))?;
    // The emulated GPU (a test double at the GPU boundary): its "device"
    // memory is host memory, so ports can be written and read directly.
    let dev = Device::open(EmuGpu::new(false), 0).map_err(|e| Failure::Error(e.to_string()))?;
    let plan = build(&g, Precision::Fp32, &dev).map_err(|e| Failure::Refused(e.to_string()))?;
    if plan.inputs.len() != runtime.len() {
        return Err(Failure::Error(format!(
            "{} run-time inputs, plan has {}",
            runtime.len(),
            plan.inputs.len()
        )));
    }
    for (port, &i) in plan.inputs.iter().zip(&runtime) {
        let src = inputs[i].as_f32().unwrap_or(&[]);
        if src.len() != port.len {
            return Err(Failure::Error(format!(
                "input {i}: {} values for a buffer of {}",
                src.len(),
                port.len
            )));
        }
        // SAFETY: an emulated plan's ports are host addresses of arena
        // buffers of `port.len` f32s, owned by `plan`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), port.ptr as *mut f32, port.len) };
    }
    run_plan(&plan);
    Ok(plan
        .outputs
        .iter()
        .zip(&g.outputs)
        .map(|(port, &t)| match &port.constant {
            Some(c) => (**c).clone(),
            None => {
                // SAFETY: as above, for an output port.
                let v = unsafe { std::slice::from_raw_parts(port.ptr as *const f32, port.len) };
                Tensor::from_f32(port.shape.clone(), v.to_vec()).with_dtype(g.tensors[t].dtype)
            }
        })
        .collect())
}

fn outputs_on(
    backend: Backend,
    dir: &Path,
    inputs: &[Tensor],
    threads: usize,
) -> Result<Vec<Tensor>, Failure> {
    match backend {
        Backend::Cpu => infer_once(&dir.join("model.onnx"), inputs, threads, &Limits::default())
            .map(|v| v.into_iter().map(|(_, t)| t).collect())
            .map_err(|e| Failure::Error(e.to_string())),
        Backend::EmulatedCuda => run_emulated_cuda(dir, inputs),
    }
}

fn run_case(dir: &Path, backend: Backend) -> Result<(), Failure> {
    let (inputs, expected) = load_case(dir).map_err(Failure::Error)?;
    let runs: &[usize] = match backend {
        Backend::Cpu => &[1, 3],
        Backend::EmulatedCuda => &[1],
    };
    for &threads in runs {
        let outs = outputs_on(backend, dir, &inputs, threads)?;
        if outs.len() != expected.len() {
            return Err(Failure::Error(format!(
                "{} outputs, expected {}",
                outs.len(),
                expected.len()
            )));
        }
        for (k, (got, want)) in outs.iter().zip(&expected).enumerate() {
            close(got, want).map_err(|e| Failure::Error(format!("output {k}: {e}")))?;
        }
    }
    Ok(())
}

/// Per op: tests, then per backend (passed, skipped, refused).
type Counts = (usize, [(usize, usize, usize); 2]);

#[test]
fn onnx_backend_node_tests() {
    let index = std::fs::read_to_string(fixtures().join("INDEX.tsv"))
        .expect("tests/fixtures/onnx-node/INDEX.tsv");
    let backends = [Backend::Cpu, Backend::EmulatedCuda];
    let mut per_op: BTreeMap<String, Counts> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, op) = (cols[0], cols[1]);
        let entry = per_op.entry(op.to_string()).or_default();
        entry.0 += 1;
        let skip = SKIPS.iter().find(|(n, _)| *n == name);
        let dir = fixtures().join(name);
        for (b, backend) in backends.into_iter().enumerate() {
            let counts = &mut entry.1[b];
            match (run_case(&dir, backend), skip) {
                (Ok(()), None) => counts.0 += 1,
                (Err(_), Some(_)) => counts.1 += 1,
                (Ok(()), Some((_, why))) => failures.push(format!(
                    "{name} ({}): passes now but is listed as skipped ({why})",
                    backend.name()
                )),
                (Err(Failure::Refused(why)), None) => {
                    counts.2 += 1;
                    refused.push(format!("{name}: {why}"));
                }
                (Err(Failure::Error(e)), None) => {
                    failures.push(format!("{name} ({}): {e}", backend.name()))
                }
            }
        }
    }
    println!(
        "{:<22} {:>5} | {:>6} {:>7} | {:>6} {:>7} {:>7}",
        "op", "tests", "CPU ok", "skipped", "GPU ok", "skipped", "refused"
    );
    let mut tot = (0, [(0, 0, 0); 2]);
    for (op, (n, per)) in &per_op {
        let [(c0, c1, _), (g0, g1, g2)] = *per;
        println!("{op:<22} {n:>5} | {c0:>6} {c1:>7} | {g0:>6} {g1:>7} {g2:>7}");
        tot.0 += n;
        for (t, p) in tot.1.iter_mut().zip(per) {
            t.0 += p.0;
            t.1 += p.1;
            t.2 += p.2;
        }
    }
    let [(c0, c1, _), (g0, g1, g2)] = tot.1;
    println!(
        "{:<22} {:>5} | {c0:>6} {c1:>7} | {g0:>6} {g1:>7} {g2:>7}",
        "total", tot.0
    );
    println!("(GPU = the CUDA backend's FP32 lowering run by the emulator)");
    for (n, why) in SKIPS {
        println!("skipped on every backend {n}: {why}");
    }
    for r in &refused {
        println!("refused by the GPU lowering {r}");
    }
    match perceptd::cuda::probe(0) {
        Ok(info) => println!(
            "real CUDA: {} present; node plans run on it through `perceptd gpu-check`, not in this test",
            info.describe()
        ),
        Err(e) => println!("real CUDA: none here ({e}); emulated only"),
    }
    // The CPU backend refuses nothing: every case it does not pass is a
    // listed skip (checked above).
    assert_eq!(tot.1[0].2, 0);
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
