//! Specialisation: bind the graph's inputs to concrete shapes (or to
//! constant values, for integer inputs), then walk the nodes once in
//! topological order, folding every node whose inputs are all known at boot
//! and inferring the shape of everything else. Afterwards every tensor has a
//! concrete shape and dtype, and everything computable at boot is a
//! constant.
//!
//! Boot only; allocates.

use super::error::EngineError;
use super::ir::{Dim, Graph, Op, TensorId};
use super::ops::{self, ValueInfo};
use super::tensor::{checked_numel, shape_string, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// How the graph's runtime inputs are bound at boot.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    /// Shape per runtime input (graph-input order); `None` takes the
    /// declared shape, which must then be fully fixed.
    pub shapes: Vec<Option<Vec<usize>>>,
    /// Inputs bound to constant values (graph-input order), such as the
    /// integer shape/axes inputs of a test model.
    pub values: Vec<Option<Tensor>>,
    /// Values for symbolic dims by name (`batch`, `height`, ...).
    pub symbols: HashMap<String, usize>,
    /// Upper bound on any one tensor's bytes.
    pub max_tensor_bytes: u64,
}

impl Bindings {
    pub fn new() -> Bindings {
        Bindings {
            max_tensor_bytes: 1 << 31,
            ..Default::default()
        }
    }
}

/// Bind inputs, fold constants and infer every shape. See the module docs.
pub fn specialize(g: &mut Graph, b: &Bindings) -> Result<(), EngineError> {
    bind_inputs(g, b)?;
    let limit = if b.max_tensor_bytes == 0 {
        u64::MAX
    } else {
        b.max_tensor_bytes
    };
    for ni in 0..g.nodes.len() {
        let node = &g.nodes[ni];
        let op_name = node.op.name();
        let nerr = |msg: String| EngineError::node(&node.name, &op_name, msg);

        // Shape-only ops fold as soon as the input's shape is known.
        let shape_only = matches!(node.op, Op::Shape { .. } | Op::Size);
        let mut all_const = true;
        for (k, inp) in node.inputs.iter().enumerate() {
            if let Some(t) = *inp {
                let info = &g.tensors[t];
                if info.shape.is_none() && info.value.is_none() {
                    return Err(nerr(format!(
                        "input {k} ('{}') has no known shape",
                        info.name
                    )));
                }
                if info.value.is_none() {
                    all_const = false;
                }
            }
        }

        if all_const || shape_only {
            let holders: Vec<Option<Arc<Tensor>>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.map(|t| {
                        let info = &g.tensors[t];
                        match (&info.value, shape_only) {
                            (Some(v), _) => Arc::clone(v),
                            // Shape/Size only read the shape: a placeholder
                            // of the right shape with no data stands in.
                            (None, _) => {
                                Arc::new(placeholder(info.shape.as_deref().unwrap_or(&[])))
                            }
                        }
                    })
                })
                .collect();
            let args: Vec<Option<&Tensor>> = holders.iter().map(|h| h.as_deref()).collect();
            let outs = ops::eval(&node.op, &args).map_err(|e| nerr(e.0))?;
            if outs.len() < node.outputs.len() {
                return Err(nerr(format!(
                    "produced {} outputs, node declares {}",
                    outs.len(),
                    node.outputs.len()
                )));
            }
            let outputs = node.outputs.clone();
            for (t, v) in outputs.into_iter().zip(outs) {
                let info = &mut g.tensors[t];
                info.shape = Some(v.shape.clone());
                info.dtype = v.dtype;
                info.value = Some(Arc::new(v));
            }
            continue;
        }

        let infos = value_infos(g, &node.inputs);
        let outs = ops::infer(&node.op, &infos).map_err(|e| nerr(e.0))?;
        if outs.len() < node.outputs.len() {
            return Err(nerr(format!(
                "inferred {} outputs, node declares {}",
                outs.len(),
                node.outputs.len()
            )));
        }
        let outputs = node.outputs.clone();
        let node_name = node.name.clone();
        for (t, o) in outputs.into_iter().zip(outs) {
            let bytes = checked_numel(&o.shape)
                .map(|n| n as u128 * 4)
                .unwrap_or(u128::MAX);
            if bytes > limit as u128 {
                return Err(EngineError::MemoryLimit {
                    tensor: format!("{} (output of node '{node_name}')", g.tensors[t].name),
                    needed: bytes,
                    limit: limit as u128,
                });
            }
            let info = &mut g.tensors[t];
            info.shape = Some(o.shape);
            info.dtype = o.dtype;
        }
    }
    for &o in &g.outputs {
        let info = &g.tensors[o];
        if info.shape.is_none() && info.value.is_none() {
            return Err(EngineError::Other(format!(
                "graph output '{}' is never computed",
                info.name
            )));
        }
    }
    Ok(())
}

/// A tensor with a shape and no meaningful data, for shape-only ops.
fn placeholder(shape: &[usize]) -> Tensor {
    Tensor {
        dtype: super::tensor::DType::F32,
        shape: shape.to_vec(),
        data: super::tensor::TensorData::F32(Vec::new()),
    }
}

fn bind_inputs(g: &mut Graph, b: &Bindings) -> Result<(), EngineError> {
    let mut runtime = Vec::new();
    for (k, &t) in g.inputs.clone().iter().enumerate() {
        let info = &mut g.tensors[t];
        if let Some(Some(v)) = b.values.get(k) {
            check_declared(&info.name, info.declared.as_deref(), &v.shape, &b.symbols)?;
            info.shape = Some(v.shape.clone());
            info.dtype = v.dtype;
            info.value = Some(Arc::new(v.clone()));
            continue;
        }
        let shape = match b.shapes.get(k).cloned().flatten() {
            Some(s) => {
                check_declared(&info.name, info.declared.as_deref(), &s, &b.symbols)?;
                s
            }
            None => resolve_declared(&info.name, info.declared.as_deref(), &b.symbols)?,
        };
        if checked_numel(&shape).is_none() {
            return Err(EngineError::Input {
                name: info.name.clone(),
                msg: format!("shape {shape:?} overflows"),
            });
        }
        info.shape = Some(shape);
        runtime.push(t);
    }
    g.inputs = runtime;
    Ok(())
}

fn resolve_declared(
    name: &str,
    declared: Option<&[Dim]>,
    symbols: &HashMap<String, usize>,
) -> Result<Vec<usize>, EngineError> {
    let dims = declared.ok_or_else(|| EngineError::Input {
        name: name.to_string(),
        msg: "the model declares no shape; give one (--input-shape)".into(),
    })?;
    dims.iter()
        .map(|d| match d {
            Dim::Fixed(n) => Ok(*n),
            Dim::Symbol(s) => symbols.get(s).copied().ok_or_else(|| EngineError::Input {
                name: name.to_string(),
                msg: format!("dimension '{s}' is symbolic; give the input size (run/replay: --input-size 640x640 or model.input_size = [640, 640]; check/bench-model: --input-shape 1x3x640x640)"),
            }),
        })
        .collect()
}

fn check_declared(
    name: &str,
    declared: Option<&[Dim]>,
    shape: &[usize],
    symbols: &HashMap<String, usize>,
) -> Result<(), EngineError> {
    let Some(dims) = declared else { return Ok(()) };
    let show = || {
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Symbol(s) => s.clone(),
            })
            .collect::<Vec<_>>()
            .join("x")
    };
    if dims.len() != shape.len() {
        return Err(EngineError::Input {
            name: name.to_string(),
            msg: format!(
                "model input is {} but {} was given",
                show(),
                shape_string(shape)
            ),
        });
    }
    for (d, &s) in dims.iter().zip(shape) {
        let ok = match d {
            Dim::Fixed(n) => *n == s,
            Dim::Symbol(sym) => symbols.get(sym).is_none_or(|&v| v == s),
        };
        if !ok {
            return Err(EngineError::Input {
                name: name.to_string(),
                msg: format!(
                    "model input is {} but {} was given",
                    show(),
                    shape_string(shape)
                ),
            });
        }
    }
    Ok(())
}

/// What the op implementations see of a node's inputs: dtype, shape and
/// the value of constants.
pub fn value_infos<'a>(g: &'a Graph, inputs: &[Option<TensorId>]) -> Vec<Option<ValueInfo<'a>>> {
    inputs
        .iter()
        .map(|i| {
            i.map(|t| {
                let info = &g.tensors[t];
                ValueInfo {
                    dtype: info.value.as_ref().map(|v| v.dtype).unwrap_or(info.dtype),
                    shape: info
                        .value
                        .as_ref()
                        .map(|v| v.shape.as_slice())
                        .or(info.shape.as_deref())
                        .unwrap_or(&[]),
                    value: info.value.as_deref(),
                }
            })
        })
        .collect()
}
