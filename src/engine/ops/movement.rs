//! The data-movement family's shared machinery. Each movement op (files
//! `concat`, `split`, `slice`, `views`, `transpose`, `gather`, `pad`,
//! `shape_values`) resolves itself into a [`Plan`] (output shapes plus the
//! index arithmetic: collapsed strides, concat chunks, gather and pad index
//! tables) with its own `plan` function; from that plan this module infers
//! shapes, folds constants of any element type, builds the CPU kernel and
//! the GPU's strided copies. The data movement itself is written once,
//! generic over the element type (`movement/strided.rs`).
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! allocate. Kernels' `run` is on the frame path (inference thread, work
//! split over the kernel pool by output range) and never allocates.

use super::elementwise::check_runtime_numeric;

use super::{OutInfo, ValueInfo};

use crate::cuda::lower::{copy, op_err, refuse, GpuCtx, GpuNode, Launch};

use crate::cuda::CudaError;

use crate::engine::cpu::CpuKernel;

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::Op;

use crate::engine::tensor::{
    checked_numel, normalize_axis, numel, shape_string, strides, DType, Tensor, TensorData,
};

use crate::op_bail;
mod strided;
use super::concat::{ConcatKernel, ConcatPlan};
use super::gather::{GatherKernel, GatherPlan};
use super::pad::{PadKernel, PadPlan};
use super::shape_values::ValueKernel;
use super::split::SplitKernel;
use super::views::CopyKernel;
pub(super) use strided::*;

/// Largest tensor constant folding may create (elements): a model cannot
/// make boot allocate without bound through Range/Expand/ConstantOfShape.
pub(super) const MAX_FOLD_ELEMS: usize = 1 << 28;

/// Most outputs a Split may have (a bound for `num_outputs`).
pub(super) const MAX_SPLIT_OUTPUTS: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Plans: every shape rule of this family, in one place
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) enum Plan {
    /// Same elements, new shape (Reshape, Flatten, Squeeze, Unsqueeze,
    /// Identity, Dropout); `mask`: Dropout also yields its all-true mask.
    Copy {
        shape: Vec<usize>,
        mask: bool,
    },
    Strided {
        shape: Vec<usize>,
        p: Strided,
    },
    Split {
        shapes: Vec<Vec<usize>>,
        ps: Vec<Strided>,
    },
    Concat {
        shape: Vec<usize>,
        p: ConcatPlan,
    },
    Gather {
        shape: Vec<usize>,
        p: GatherPlan,
    },
    Pad {
        shape: Vec<usize>,
        p: PadPlan,
        value: Scalar,
    },
    /// Outputs fully known at boot (Constant, Shape, Size, Range,
    /// ConstantOfShape).
    Value(Vec<Tensor>),
}

pub(super) fn axis_err(op: &Op, what: &str, axis: i64, shape: &[usize]) -> OpError {
    OpError::new(format!(
        "{} {what} {axis} is out of range for a rank-{} input ({})",
        op.name(),
        shape.len(),
        shape_string(shape)
    ))
}

pub(super) fn norm_axis(op: &Op, what: &str, axis: i64, shape: &[usize]) -> OpResult<usize> {
    normalize_axis(axis, shape.len()).ok_or_else(|| axis_err(op, what, axis, shape))
}

/// Values of constant input `i` as i64, or `None` when the input is absent.
pub(super) fn const_ints(
    ins: &[Option<ValueInfo>],
    i: usize,
    what: &str,
) -> OpResult<Option<Vec<i64>>> {
    match ins.get(i).copied().flatten() {
        None => Ok(None),
        Some(v) => match v.value {
            Some(t) => {
                if t.dtype.is_float() {
                    op_bail!("input {i} ({what}) must hold integers, got {}", t.dtype);
                }
                Ok(Some(t.to_i64_vec()))
            }
            None => op_bail!("input {i} ({what}) must be a constant computable at boot"),
        },
    }
}

pub(super) fn isize_strides(shape: &[usize]) -> Vec<isize> {
    strides(shape).into_iter().map(|s| s as isize).collect()
}

pub(super) fn check_len(op: &Op, shape: &[usize]) -> OpResult<()> {
    if checked_numel(shape).is_none() {
        op_bail!(
            "{} output shape {} overflows",
            op.name(),
            shape_string(shape)
        );
    }
    Ok(())
}

/// An op's movement planner (each op file has one: `plan`).
pub(super) type Planner = fn(&Op, &[Option<ValueInfo>]) -> OpResult<Plan>;

/// `planner`'s plan for `op`, with every output size checked.
fn checked_plan(op: &Op, ins: &[Option<ValueInfo>], planner: Planner) -> OpResult<Plan> {
    let p = planner(op, ins)?;
    let shapes: Vec<&[usize]> = match &p {
        Plan::Copy { shape, .. }
        | Plan::Strided { shape, .. }
        | Plan::Concat { shape, .. }
        | Plan::Gather { shape, .. }
        | Plan::Pad { shape, .. } => vec![shape],
        Plan::Split { shapes, .. } => shapes.iter().map(|s| s.as_slice()).collect(),
        Plan::Value(_) => Vec::new(),
    };
    for s in shapes {
        check_len(op, s)?;
    }
    Ok(p)
}

// ---------------------------------------------------------------------------
// infer / lower / eval
// ---------------------------------------------------------------------------

pub fn infer(op: &Op, ins: &[Option<ValueInfo>], planner: Planner) -> OpResult<Vec<OutInfo>> {
    let dtype = || {
        ins.first()
            .copied()
            .flatten()
            .map(|v| v.dtype)
            .unwrap_or(DType::F32)
    };
    Ok(match checked_plan(op, ins, planner)? {
        Plan::Copy { shape, mask } => {
            let mut v = vec![OutInfo {
                dtype: dtype(),
                shape: shape.clone(),
            }];
            if mask {
                v.push(OutInfo {
                    dtype: DType::Bool,
                    shape,
                });
            }
            v
        }
        Plan::Strided { shape, .. }
        | Plan::Concat { shape, .. }
        | Plan::Gather { shape, .. }
        | Plan::Pad { shape, .. } => vec![OutInfo {
            dtype: dtype(),
            shape,
        }],
        Plan::Split { shapes, .. } => shapes
            .into_iter()
            .map(|shape| OutInfo {
                dtype: dtype(),
                shape,
            })
            .collect(),
        Plan::Value(ts) => ts
            .into_iter()
            .map(|t| OutInfo {
                dtype: t.dtype,
                shape: t.shape,
            })
            .collect(),
    })
}

pub fn lower(
    op: &Op,
    ins: &[Option<ValueInfo>],
    outs: &[OutInfo],
    planner: Planner,
) -> OpResult<Box<dyn CpuKernel>> {
    // Copies move integers held as f32 (TopK's indices) unchanged.
    check_runtime_numeric(op, ins, outs)?;
    let p = checked_plan(op, ins, planner)?;
    // Data inputs the kernel reads from the arena must be f32-held: float,
    // or run-time integers. Integer constants have no arena buffer.
    let data_inputs = match &p {
        Plan::Concat { .. } => ins.len(),
        Plan::Value(_) => 0,
        _ => 1,
    };
    for (i, v) in ins.iter().take(data_inputs).enumerate() {
        if let Some(v) = v {
            if !v.dtype.is_float() && v.value.is_some() {
                op_bail!(
                    "{}: input {i} is a {} constant moved at run time; only float constants may be (integer tensors must be computable at boot)",
                    op.name(),
                    v.dtype
                );
            }
        }
    }
    Ok(match p {
        Plan::Copy { shape, mask } => {
            if mask && outs.len() > 1 {
                op_bail!("Dropout's mask output is bool and cannot be computed at run time");
            }
            Box::new(CopyKernel { len: numel(&shape) })
        }
        Plan::Strided { p, .. } => Box::new(StridedKernel { p }),
        Plan::Split { mut ps, .. } => {
            if outs.len() > ps.len() {
                op_bail!("Split has {} outputs but {} sizes", outs.len(), ps.len());
            }
            // Only the outputs the node declares get buffers.
            ps.truncate(outs.len());
            Box::new(SplitKernel { ps })
        }
        Plan::Concat { p, .. } => Box::new(ConcatKernel { p }),
        Plan::Gather { p, .. } => Box::new(GatherKernel { p }),
        Plan::Pad { p, value, .. } => Box::new(PadKernel { p, value: value.f }),
        Plan::Value(ts) => {
            let vals = ts.first().map(|t| t.to_f32_vec()).unwrap_or_default();
            Box::new(ValueKernel { vals })
        }
    })
}

/// Run a single-source plan on a tensor of any element type.
pub(super) fn map_one<T: Elem>(
    x: &Tensor,
    len: usize,
    f: impl Fn(&[T], &mut [T]),
) -> OpResult<TensorData> {
    let src = T::slice(&x.data).ok_or_else(|| data_mismatch(x))?;
    let mut out = vec![T::default(); len];
    f(src, &mut out);
    Ok(T::wrap(out))
}

pub(super) fn data_mismatch(x: &Tensor) -> OpError {
    OpError::new(format!(
        "a {} tensor of shape {} holds data of another type",
        x.dtype,
        shape_string(&x.shape)
    ))
}

/// Dispatch a generic body on the storage of `x`.
macro_rules! by_storage {
    ($x:expr, $T:ident => $body:expr) => {
        match $x.data {
            TensorData::F32(_) => {
                type $T = f32;
                $body
            }
            TensorData::I64(_) => {
                type $T = i64;
                $body
            }
            TensorData::Bool(_) => {
                type $T = bool;
                $body
            }
        }
    };
}

/// Evaluation on owned tensors for constant folding (any element type).
pub fn eval(op: &Op, ins: &[Option<&Tensor>], planner: Planner) -> OpResult<Option<Vec<Tensor>>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let p = checked_plan(op, &infos, planner)?;
    let x = ins.first().copied().flatten();
    let x_or_err = || x.ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())));
    let fold_limit = |n: usize| -> OpResult<()> {
        if n > MAX_FOLD_ELEMS {
            op_bail!(
                "{} would fold a constant of {n} elements (limit {MAX_FOLD_ELEMS})",
                op.name()
            );
        }
        Ok(())
    };
    let out = |x: &Tensor, shape: Vec<usize>, data: TensorData| Tensor {
        dtype: x.dtype,
        shape,
        data,
    };
    Ok(Some(match p {
        Plan::Value(ts) => ts,
        Plan::Copy { shape, mask } => {
            let x = x_or_err()?;
            let n = numel(&shape);
            let mut v = vec![out(x, shape.clone(), x.data.clone())];
            if mask {
                v.push(Tensor::from_bool(shape, vec![true; n]));
            }
            v
        }
        Plan::Strided { shape, p } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
            vec![out(x, shape, data)]
        }
        Plan::Split { shapes, ps } => {
            let x = x_or_err()?;
            let mut v = Vec::with_capacity(ps.len());
            for (shape, p) in shapes.into_iter().zip(&ps) {
                let data =
                    by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
                v.push(out(x, shape, data));
            }
            v
        }
        Plan::Gather { shape, p } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
            vec![out(x, shape, data)]
        }
        Plan::Pad { shape, p, value } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0, T::scalar(value)))?);
            vec![out(x, shape, data)]
        }
        Plan::Concat { shape, p } => {
            let xs: Vec<&Tensor> = ins.iter().flatten().copied().collect();
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => {
                let srcs: Vec<&[T]> = xs
                    .iter()
                    .map(|t| T::slice(&t.data).ok_or_else(|| data_mismatch(t)))
                    .collect::<OpResult<_>>()?;
                let mut o = vec![T::default(); p.len];
                p.copy_range(&|k| srcs[k], &mut o, 0);
                T::wrap(o)
            });
            vec![out(x, shape, data)]
        }
    }))
}

/// One strided copy, for backends that move data with a single generic
/// kernel (the CUDA backend): over the multi-index `i` of `dims`,
/// `out[output][dst_base + sum(i * dst_strides)] =
/// in[input][src_base + sum(i * src_strides)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyDesc {
    pub input: usize,
    pub output: usize,
    pub dims: Vec<usize>,
    pub src_strides: Vec<isize>,
    pub src_base: isize,
    pub dst_strides: Vec<isize>,
    pub dst_base: isize,
}

pub(super) fn contiguous(dims: &[usize]) -> Vec<isize> {
    isize_strides(dims)
}

/// A data-movement op as strided copies; `None` for ops that are not plain
/// copies (Gather, Pad, boot-time values). Boot only; allocates.
pub fn copy_plan(
    op: &Op,
    ins: &[Option<ValueInfo>],
    planner: Planner,
) -> OpResult<Option<Vec<CopyDesc>>> {
    let one = |input: usize, output: usize, dims: Vec<usize>, src: Vec<isize>, base: isize| {
        let dst = contiguous(&dims);
        CopyDesc {
            input,
            output,
            src_strides: src,
            src_base: base,
            dst_strides: dst,
            dst_base: 0,
            dims,
        }
    };
    Ok(Some(match checked_plan(op, ins, planner)? {
        Plan::Copy { shape, .. } => {
            let n = numel(&shape);
            vec![one(0, 0, vec![n], vec![1], 0)]
        }
        Plan::Strided { p, .. } => vec![one(0, 0, p.dims.clone(), p.strides.clone(), p.base)],
        Plan::Split { ps, .. } => ps
            .iter()
            .enumerate()
            .map(|(k, p)| one(0, k, p.dims.clone(), p.strides.clone(), p.base))
            .collect(),
        Plan::Concat { p, .. } => {
            let outer = p.len.checked_div(p.row).unwrap_or(0);
            p.chunks
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(k, &c)| CopyDesc {
                    input: k,
                    output: 0,
                    dims: vec![outer, c],
                    src_strides: vec![c as isize, 1],
                    src_base: 0,
                    dst_strides: vec![p.row as isize, 1],
                    dst_base: p.starts[k] as isize,
                })
                .collect()
        }
        Plan::Gather { .. } | Plan::Pad { .. } | Plan::Value(_) => return Ok(None),
    }))
}

/// The GPU lowering every plain-copy movement op shares: its
/// [`copy_plan`] as `copy_nd` launches; ops that are not plain copies are
/// refused.
pub(super) fn lower_cuda_copies(
    n: &GpuNode,
    cx: &mut GpuCtx,
    planner: Planner,
) -> Result<Vec<Launch>, CudaError> {
    let op = n.op();
    let plan = copy_plan(op, &n.infos, planner)
        .map_err(op_err)?
        .ok_or_else(|| refuse(op, "not supported by the CUDA backend yet"))?;
    let mut v = Vec::new();
    for c in plan {
        let src = n
            .input(c.input)
            .ok_or_else(|| refuse(op, "missing input"))?;
        let sp = cx.ptr(src)?;
        let dp = cx.ptr(n.node.outputs[c.output])?;
        v.push(copy(
            dp,
            sp,
            &c.dims,
            &c.src_strides,
            c.src_base,
            &c.dst_strides,
            c.dst_base,
        )?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
