//! ONNX backend node tests (generated from the `onnx` package's own test
//! cases by `scripts/gen_conformance.py` into `tests/fixtures/onnx-node/`)
//! run through the whole engine: import, specialisation (integer inputs
//! bound as boot-time constants), passes, plan and CPU kernels.
//!
//! Every listed test must pass, or be in `SKIPS` with the reason; a skipped
//! test that starts passing fails too, so the list stays honest. Prints a
//! per-op pass count.

use perceptd::engine::{infer_once, onnx, Limits, Tensor};
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

fn run_case(dir: &Path, threads: usize) -> Result<(), String> {
    let (inputs, expected) = load_case(dir)?;
    let outs = infer_once(
        &dir.join("model.onnx"),
        &inputs,
        threads,
        &Limits::default(),
    )
    .map_err(|e| e.to_string())?;
    if outs.len() != expected.len() {
        return Err(format!(
            "{} outputs, expected {}",
            outs.len(),
            expected.len()
        ));
    }
    for (k, ((_, got), want)) in outs.iter().zip(&expected).enumerate() {
        close(got, want).map_err(|e| format!("output {k}: {e}"))?;
    }
    Ok(())
}

#[test]
fn onnx_backend_node_tests() {
    let index = std::fs::read_to_string(fixtures().join("INDEX.tsv"))
        .expect("tests/fixtures/onnx-node/INDEX.tsv");
    let mut per_op: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, op) = (cols[0], cols[1]);
        let entry = per_op.entry(op.to_string()).or_default();
        entry.0 += 1;
        let skip = SKIPS.iter().find(|(n, _)| *n == name);
        let dir = fixtures().join(name);
        let result = run_case(&dir, 1).and_then(|_| run_case(&dir, 3));
        match (result, skip) {
            (Ok(()), None) => entry.1 += 1,
            (Err(_), Some(_)) => entry.2 += 1,
            (Ok(()), Some((_, why))) => failures.push(format!(
                "{name}: passes now but is listed as skipped ({why})"
            )),
            (Err(e), None) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "{:<22} {:>5} {:>6} {:>7}",
        "op", "tests", "passed", "skipped"
    );
    let (mut t, mut p, mut s) = (0, 0, 0);
    for (op, (n, ok, sk)) in &per_op {
        println!("{op:<22} {n:>5} {ok:>6} {sk:>7}");
        t += n;
        p += ok;
        s += sk;
    }
    println!("{:<22} {t:>5} {p:>6} {s:>7}", "total");
    for (n, why) in SKIPS {
        println!("skipped {n}: {why}");
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
