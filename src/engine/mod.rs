//! perceptd's inference engine: ONNX protobuf → graph IR → passes → plan →
//! arena → run.
//!
//! Boot (load, specialise, fold, fuse, plan, pack weights) may allocate and
//! take time. [`CpuModel::run`] is the frame path: a loop over resolved steps
//! that never allocates.

pub mod cpu;
pub mod error;
pub mod ir;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod tensor;

pub use error::EngineError;
pub use tensor::{DType, Tensor};
pub mod passes;
pub mod plan;
pub mod specialize;

pub use model::{CpuModel, PlanStats};
pub use onnx::Limits;
pub use specialize::Bindings;

use std::path::Path;

/// Load, specialise, optimise and lower a model for the CPU backend.
/// Boot only.
pub fn build_cpu_model(
    path: &Path,
    bindings: &Bindings,
    threads: usize,
    limits: &Limits,
) -> Result<CpuModel, EngineError> {
    let mut g = onnx::load_model(path, limits)?;
    specialize::specialize(&mut g, bindings)?;
    passes::optimize(&mut g);
    CpuModel::build(&g, threads)
}

/// Run `path` once on concrete inputs (graph-input order), the way
/// `perceptd infer` and the conformance tests do: float inputs bind the
/// input shapes, integer and bool inputs become boot-time constants.
/// Returns the outputs in graph-output order with their names. Allocates.
pub fn infer_once(
    path: &Path,
    inputs: &[Tensor],
    threads: usize,
    limits: &Limits,
) -> Result<Vec<(String, Tensor)>, EngineError> {
    let mut g = onnx::load_model(path, limits)?;
    if inputs.len() != g.inputs.len() {
        let names: Vec<&str> = g.inputs.iter().map(|&t| g.tensors[t].name.as_str()).collect();
        return Err(EngineError::Other(format!(
            "{}: the model has {} inputs ({}) but {} were given",
            path.display(),
            names.len(),
            names.join(", "),
            inputs.len()
        )));
    }
    let mut b = Bindings::new();
    b.max_tensor_bytes = limits.max_tensor_bytes;
    for t in inputs {
        if t.dtype.is_float() {
            b.shapes.push(Some(t.shape.clone()));
            b.values.push(None);
        } else {
            b.shapes.push(None);
            b.values.push(Some(t.clone()));
        }
    }
    specialize::specialize(&mut g, &b)?;
    passes::optimize(&mut g);
    let mut m = CpuModel::build(&g, threads)?;
    for (k, t) in inputs.iter().filter(|t| t.dtype.is_float()).enumerate() {
        let dst = m.input_mut(k);
        let src = t.as_f32().unwrap_or(&[]);
        if dst.len() != src.len() {
            return Err(EngineError::Other(format!("input {k}: {} values for a buffer of {}", src.len(), dst.len())));
        }
        dst.copy_from_slice(src);
    }
    m.run();
    Ok((0..m.outputs().len()).map(|i| (m.outputs()[i].name.clone(), m.output_tensor(i))).collect())
}
