//! Shape and data-movement ops: Concat, Split, Slice, Reshape, Transpose,
//! Flatten, Squeeze, Unsqueeze, Gather, Expand, Pad, Shape, Size, Range,
//! ConstantOfShape, Constant, Identity, Dropout.
//!
//! Every op is first resolved into a [`Plan`] (output shapes plus the index
//! arithmetic: collapsed strides, concat chunks, gather and pad index
//! tables), in one place. `infer` reads the shapes off the plan, `eval` runs
//! it on owned tensors of any element type, and `lower` wraps it in a
//! kernel that runs it on f32 arena slices: the data movement itself is
//! written once, generic over the element type.
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! allocate. Kernels' `run` is on the frame path (inference thread, work
//! split over the kernel pool by output range) and never allocates.

use super::elementwise::check_runtime_float;

use super::{required, OutInfo, ValueInfo};

use crate::cuda::lower::{copy, op_err, refuse, GpuCtx, GpuNode, Launch};

use crate::cuda::CudaError;

use crate::engine::cpu::CpuKernel;

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::Op;

use crate::engine::tensor::{
    broadcast_shapes, broadcast_strides, checked_numel, normalize_axis, numel, shape_string,
    strides, DType, Tensor, TensorData,
};

use crate::op_bail;
mod strided;
#[allow(unused_imports)]
use super::concat::*;
#[allow(unused_imports)]
use super::gather::*;
#[allow(unused_imports)]
use super::pad::*;
#[allow(unused_imports)]
use super::shape_values::*;
#[allow(unused_imports)]
use super::slice::*;
#[allow(unused_imports)]
use super::split::*;
#[allow(unused_imports)]
use super::views::*;
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

pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let p = plan_inner(op, ins)?;
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

pub(super) fn plan_inner(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let name = op.name();
    match op {
        Op::Constant(t) => Ok(Plan::Value(vec![(**t).clone()])),
        Op::Identity => {
            let x = required(ins, 0, "input")?;
            Ok(Plan::Copy {
                shape: x.shape.to_vec(),
                mask: false,
            })
        }
        Op::Dropout => {
            let x = required(ins, 0, "data")?;
            if let Some(Some(t)) = ins.get(2) {
                match t.value {
                    Some(v) if v.to_i64_vec().iter().all(|&b| b == 0) => {}
                    Some(_) => {
                        op_bail!("Dropout in training mode is not supported (inference only)")
                    }
                    None => op_bail!(
                        "Dropout training_mode (input 2) must be a constant computable at boot"
                    ),
                }
            }
            Ok(Plan::Copy {
                shape: x.shape.to_vec(),
                mask: true,
            })
        }
        Op::Reshape { allowzero } => {
            let x = required(ins, 0, "data")?;
            let want = const_ints(ins, 1, "shape")?
                .ok_or_else(|| OpError::new("Reshape needs input 1 (shape)"))?;
            Ok(Plan::Copy {
                shape: reshape_shape(x.shape, &want, *allowzero)?,
                mask: false,
            })
        }
        Op::Flatten { axis } => {
            let x = required(ins, 0, "input")?;
            let r = x.shape.len() as i64;
            let a = if *axis < 0 { axis + r } else { *axis };
            if a < 0 || a > r {
                op_bail!(
                    "Flatten axis {axis} is out of range for a rank-{r} input ({})",
                    shape_string(x.shape)
                );
            }
            let a = a as usize;
            Ok(Plan::Copy {
                shape: vec![numel(&x.shape[..a]), numel(&x.shape[a..])],
                mask: false,
            })
        }
        Op::Squeeze { axes } => {
            let x = required(ins, 0, "data")?;
            let axes = match axes {
                // Opset < 13: an empty attribute means "every 1"; an empty
                // axes input (opset 13) squeezes nothing.
                Some(a) if a.is_empty() => None,
                Some(a) => Some(a.clone()),
                None => const_ints(ins, 1, "axes")?,
            };
            let shape = match axes {
                None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let mut drop = vec![false; x.shape.len()];
                    for &a in &axes {
                        let n = norm_axis(op, "axis", a, x.shape)?;
                        if x.shape[n] != 1 {
                            op_bail!(
                                "Squeeze axis {a} has size {}, not 1, in {}",
                                x.shape[n],
                                shape_string(x.shape)
                            );
                        }
                        drop[n] = true;
                    }
                    x.shape
                        .iter()
                        .zip(&drop)
                        .filter(|(_, &d)| !d)
                        .map(|(&n, _)| n)
                        .collect()
                }
            };
            Ok(Plan::Copy { shape, mask: false })
        }
        Op::Unsqueeze { axes } => {
            let x = required(ins, 0, "data")?;
            let axes = match axes {
                Some(a) => a.clone(),
                None => const_ints(ins, 1, "axes")?
                    .ok_or_else(|| OpError::new("Unsqueeze needs axes (attribute or input 1)"))?,
            };
            let r = x.shape.len() + axes.len();
            let mut ins_at = vec![false; r];
            for &a in &axes {
                let n = normalize_axis(a, r).ok_or_else(|| {
                    OpError::new(format!(
                        "Unsqueeze axis {a} is out of range for a rank-{r} output (input {})",
                        shape_string(x.shape)
                    ))
                })?;
                if ins_at[n] {
                    op_bail!("Unsqueeze axes {axes:?} repeat axis {a}");
                }
                ins_at[n] = true;
            }
            let mut it = x.shape.iter();
            let shape = ins_at
                .iter()
                .map(|&u| {
                    if u {
                        1
                    } else {
                        it.next().copied().unwrap_or(1)
                    }
                })
                .collect();
            Ok(Plan::Copy { shape, mask: false })
        }
        Op::Transpose { perm } => {
            let x = required(ins, 0, "data")?;
            let r = x.shape.len();
            let perm: Vec<usize> = perm.clone().unwrap_or_else(|| (0..r).rev().collect());
            let mut seen = vec![false; r];
            if perm.len() != r {
                op_bail!(
                    "Transpose perm {perm:?} has {} values but the input is rank {r}",
                    perm.len()
                );
            }
            for &p in &perm {
                if p >= r || seen[p] {
                    op_bail!("Transpose perm {perm:?} is not a permutation of 0..{r}");
                }
                seen[p] = true;
            }
            let st = isize_strides(x.shape);
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let ps: Vec<isize> = perm.iter().map(|&p| st[p]).collect();
            Ok(Plan::Strided {
                p: Strided::new(&shape, &ps, 0),
                shape,
            })
        }
        Op::Slice { starts, ends, axes } => plan_slice(op, ins, starts, ends, axes),
        Op::Split {
            axis,
            split,
            num_outputs,
        } => {
            let x = required(ins, 0, "input")?;
            let a = norm_axis(op, "axis", *axis, x.shape)?;
            let dim = x.shape[a];
            let sizes: Vec<i64> = match (split, const_ints(ins, 1, "split")?) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(s)) if !s.is_empty() => s,
                _ => match num_outputs {
                    Some(0) => op_bail!("Split num_outputs must be at least 1"),
                    Some(n) if *n > MAX_SPLIT_OUTPUTS => {
                        op_bail!("Split num_outputs {n} is more than {MAX_SPLIT_OUTPUTS}")
                    }
                    Some(n) => {
                        let n = *n;
                        // Opset 18: ceil-sized chunks, the last one smaller.
                        let c = dim.div_ceil(n);
                        let last = dim as i64 - (c * (n - 1)) as i64;
                        if last < 0 {
                            op_bail!("Split of a dim of {dim} into {n} outputs leaves the last one {last} long");
                        }
                        let mut v = vec![c as i64; n - 1];
                        v.push(last);
                        v
                    }
                    None => op_bail!(
                        "Split has neither `split` nor `num_outputs` (the importer sets num_outputs to the node's output count)"
                    ),
                },
            };
            if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != dim as i64 {
                op_bail!(
                    "Split sizes {sizes:?} do not sum to {dim}, the size of axis {axis} of {}",
                    shape_string(x.shape)
                );
            }
            let st = isize_strides(x.shape);
            let mut shapes = Vec::with_capacity(sizes.len());
            let mut ps = Vec::with_capacity(sizes.len());
            let mut start = 0usize;
            for &s in &sizes {
                let mut shape = x.shape.to_vec();
                shape[a] = s as usize;
                ps.push(Strided::new(&shape, &st, start * st[a] as usize));
                shapes.push(shape);
                start += s as usize;
            }
            Ok(Plan::Split { shapes, ps })
        }
        Op::Concat { axis } => {
            let xs: Vec<ValueInfo> = ins
                .iter()
                .enumerate()
                .map(|(i, v)| v.ok_or_else(|| OpError::new(format!("Concat input {i} is missing"))))
                .collect::<OpResult<_>>()?;
            let Some(first) = xs.first() else {
                op_bail!("Concat needs at least one input");
            };
            let r = first.shape.len();
            let a = norm_axis(op, "axis", *axis, first.shape)?;
            let mut shape = first.shape.to_vec();
            shape[a] = 0;
            for (i, x) in xs.iter().enumerate() {
                let same_rest =
                    x.shape.len() == r && (0..r).all(|d| d == a || x.shape[d] == first.shape[d]);
                if !same_rest {
                    op_bail!(
                        "Concat input {i} has shape {} but input 0 has {} (only axis {axis} may differ)",
                        shape_string(x.shape),
                        shape_string(first.shape)
                    );
                }
                if x.dtype.storage() != first.dtype.storage() {
                    op_bail!(
                        "Concat input {i} is {} but input 0 is {}",
                        x.dtype,
                        first.dtype
                    );
                }
                shape[a] += x.shape[a];
            }
            let inner = numel(&shape[a + 1..]);
            let chunks: Vec<usize> = xs.iter().map(|x| x.shape[a] * inner).collect();
            let mut starts = Vec::with_capacity(chunks.len());
            let mut acc = 0;
            for &c in &chunks {
                starts.push(acc);
                acc += c;
            }
            let len = numel(&shape);
            Ok(Plan::Concat {
                p: ConcatPlan {
                    chunks,
                    starts,
                    row: acc,
                    len,
                },
                shape,
            })
        }
        Op::Gather { axis } => {
            let x = required(ins, 0, "data")?;
            let a = norm_axis(op, "axis", *axis, x.shape)?;
            let iv = required(ins, 1, "indices")?;
            let it = iv.value.ok_or_else(|| {
                OpError::new("Gather indices (input 1) must be a constant computable at boot")
            })?;
            if it.dtype.is_float() {
                op_bail!("Gather indices must be integers, got {}", it.dtype);
            }
            let n = x.shape[a];
            let idx = it
                .to_i64_vec()
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + n as i64 } else { i };
                    if j < 0 || j >= n as i64 {
                        op_bail!(
                            "Gather index {i} is out of range for axis {axis} of size {n} ({})",
                            shape_string(x.shape)
                        );
                    }
                    Ok(j as usize)
                })
                .collect::<OpResult<Vec<usize>>>()?;
            let mut shape = x.shape[..a].to_vec();
            shape.extend_from_slice(&it.shape);
            shape.extend_from_slice(&x.shape[a + 1..]);
            Ok(Plan::Gather {
                p: GatherPlan {
                    n,
                    inner: numel(&x.shape[a + 1..]),
                    idx,
                    len: checked_numel(&shape).unwrap_or(usize::MAX),
                },
                shape,
            })
        }
        Op::Expand => {
            let x = required(ins, 0, "input")?;
            let want = const_ints(ins, 1, "shape")?
                .ok_or_else(|| OpError::new("Expand needs input 1 (shape)"))?;
            if let Some(&d) = want.iter().find(|&&d| d < 0) {
                op_bail!("Expand shape {want:?} has a negative dim {d}");
            }
            let want: Vec<usize> = want.iter().map(|&d| d as usize).collect();
            let shape = broadcast_shapes(x.shape, &want).ok_or_else(|| {
                OpError::new(format!(
                    "Expand: input shape {} does not broadcast to {}",
                    shape_string(x.shape),
                    shape_string(&want)
                ))
            })?;
            let st: Vec<isize> = broadcast_strides(x.shape, &shape)
                .into_iter()
                .map(|s| s as isize)
                .collect();
            Ok(Plan::Strided {
                p: Strided::new(&shape, &st, 0),
                shape,
            })
        }
        Op::Pad { mode, pads, value } => plan_pad(op, ins, *mode, pads, *value),
        Op::Shape { start, end } => {
            let x = required(ins, 0, "data")?;
            let r = x.shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let s = clamp(*start);
            let e = clamp(end.unwrap_or(r));
            let dims: Vec<i64> = if s < e {
                x.shape[s..e].iter().map(|&d| d as i64).collect()
            } else {
                Vec::new()
            };
            Ok(Plan::Value(vec![Tensor::from_i64(vec![dims.len()], dims)]))
        }
        Op::Size => {
            let x = required(ins, 0, "data")?;
            Ok(Plan::Value(vec![Tensor::from_i64(
                vec![],
                vec![numel(x.shape) as i64],
            )]))
        }
        Op::Range => plan_range(ins),
        Op::ConstantOfShape(v) => {
            let dims = const_ints(ins, 0, "shape")?
                .ok_or_else(|| OpError::new("ConstantOfShape needs input 0 (shape)"))?;
            if let Some(&d) = dims.iter().find(|&&d| d < 0) {
                op_bail!("ConstantOfShape shape {dims:?} has a negative dim {d}");
            }
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            let n = checked_numel(&shape)
                .filter(|&n| n <= MAX_FOLD_ELEMS)
                .ok_or_else(|| {
                    OpError::new(format!(
                        "ConstantOfShape shape {dims:?} is larger than {MAX_FOLD_ELEMS} elements"
                    ))
                })?;
            if v.numel() != 1 {
                op_bail!(
                    "ConstantOfShape value must have one element, got {}",
                    v.numel()
                );
            }
            let data = match &v.data {
                TensorData::F32(d) => TensorData::F32(vec![d[0]; n]),
                TensorData::I64(d) => TensorData::I64(vec![d[0]; n]),
                TensorData::Bool(d) => TensorData::Bool(vec![d[0]; n]),
            };
            Ok(Plan::Value(vec![Tensor {
                dtype: v.dtype,
                shape,
                data,
            }]))
        }
        _ => op_bail!("{name} is not a data-movement op"),
    }
}

// ---------------------------------------------------------------------------
// infer / lower / eval
// ---------------------------------------------------------------------------

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let dtype = || {
        ins.first()
            .copied()
            .flatten()
            .map(|v| v.dtype)
            .unwrap_or(DType::F32)
    };
    Ok(match plan(op, ins)? {
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

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    check_runtime_float(op, ins, outs)?;
    let p = plan(op, ins)?;
    // Data inputs the kernel reads from the arena must be float.
    let data_inputs = match &p {
        Plan::Concat { .. } => ins.len(),
        Plan::Value(_) => 0,
        _ => 1,
    };
    for (i, v) in ins.iter().take(data_inputs).enumerate() {
        if let Some(v) = v {
            if !v.dtype.is_float() {
                op_bail!(
                    "{}: input {i} is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
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
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let p = plan(op, &infos)?;
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
pub fn copy_plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Option<Vec<CopyDesc>>> {
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
    Ok(Some(match plan(op, ins)? {
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
pub(super) fn lower_cuda_copies(n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
    let op = n.op();
    let plan = copy_plan(op, &n.infos)
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
