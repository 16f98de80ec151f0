//! perceptd's inference engine: ONNX protobuf → graph IR → passes → plan →
//! arena → run.
//!
//! Boot (load, specialise, fold, fuse, plan, pack weights) may allocate and
//! take time. [`CpuModel::run`] is the frame path: a loop over resolved steps
//! that never allocates.

pub mod cpu;
pub mod error;
pub mod half;
pub mod ir;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod tensor;

pub use error::EngineError;
pub use tensor::{DType, Tensor};
pub mod passes;
pub mod plan;
pub mod profile;
pub mod specialize;

pub use model::{is_view, plan_arena, ArenaPlan, CpuModel, PlanStats};
pub use onnx::Limits;
pub use specialize::Bindings;

use std::path::Path;

/// Load, specialise and optimise a model: the graph every backend lowers.
/// Boot only.
pub fn load_optimized(
    path: &Path,
    bindings: &Bindings,
    limits: &Limits,
) -> Result<ir::Graph, EngineError> {
    let mut g = onnx::load_model(path, limits)?;
    specialize::specialize(&mut g, bindings)?;
    passes::optimize(&mut g);
    Ok(g)
}

/// Load, specialise, optimise and lower a model for the CPU backend.
/// Boot only.
pub fn build_cpu_model(
    path: &Path,
    bindings: &Bindings,
    threads: usize,
    limits: &Limits,
) -> Result<CpuModel, EngineError> {
    let g = load_optimized(path, bindings, limits)?;
    CpuModel::build_within(&g, threads, limits.max_plan_bytes)
}

/// Load `path` and specialise it to concrete inputs (graph-input order),
/// the way `perceptd infer` and the conformance tests do: float inputs bind
/// the input shapes, integer and bool inputs (and inputs used only as op
/// parameters) become boot-time constants. Returns the optimised graph and
/// the indexes, into `inputs`, of the run-time inputs, in the graph's
/// run-time input order. Every backend lowers the same graph. Allocates.
pub fn specialize_for_inputs(
    path: &Path,
    inputs: &[Tensor],
    limits: &Limits,
) -> Result<(ir::Graph, Vec<usize>), EngineError> {
    let mut g = onnx::load_model(path, limits)?;
    if inputs.len() != g.inputs.len() {
        let names: Vec<&str> = g
            .inputs
            .iter()
            .map(|&t| g.tensors[t].name.as_str())
            .collect();
        return Err(EngineError::Other(format!(
            "{}: the model has {} inputs ({}) but {} were given",
            path.display(),
            names.len(),
            names.join(", "),
            inputs.len()
        )));
    }
    // Integer and bool inputs, and inputs used only as op parameters
    // (weights, scales, ...), are bound as constants; the rest are data.
    let param_only: Vec<bool> = g
        .inputs
        .iter()
        .map(|&t| {
            let mut uses = g.nodes.iter().flat_map(|n| {
                n.inputs
                    .iter()
                    .enumerate()
                    .filter(move |(_, i)| **i == Some(t))
                    .map(move |(k, _)| n.op.is_param_input(k))
            });
            let first = uses.next();
            first == Some(true) && uses.all(|p| p)
        })
        .collect();
    let mut b = Bindings::new();
    b.max_tensor_bytes = limits.max_tensor_bytes;
    let mut runtime = Vec::new();
    for (k, (t, &param)) in inputs.iter().zip(&param_only).enumerate() {
        if t.dtype.is_float() && !param {
            b.shapes.push(Some(t.shape.clone()));
            b.values.push(None);
            runtime.push(k);
        } else {
            b.shapes.push(None);
            b.values.push(Some(t.clone()));
        }
    }
    specialize::specialize(&mut g, &b)?;
    passes::optimize(&mut g);
    Ok((g, runtime))
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
    let (g, runtime) = specialize_for_inputs(path, inputs, limits)?;
    let mut m = CpuModel::build_within(&g, threads, limits.max_plan_bytes)?;
    for (k, &i) in runtime.iter().enumerate() {
        let t = &inputs[i];
        let dst = m.input_mut(k);
        let src = t.as_f32().unwrap_or(&[]);
        if dst.len() != src.len() {
            return Err(EngineError::Other(format!(
                "input {k}: {} values for a buffer of {}",
                src.len(),
                dst.len()
            )));
        }
        dst.copy_from_slice(src);
    }
    m.run();
    Ok((0..m.outputs().len())
        .map(|i| (m.outputs()[i].name.clone(), m.output_tensor(i)))
        .collect())
}
