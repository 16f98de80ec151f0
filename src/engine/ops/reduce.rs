//! The Reduce* ops (Sum, Mean, Max, Min, Prod); Softmax and LogSoftmax,
//! which share its row layout, are in `softmax.rs`.
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! may allocate. Kernels' `run` is on the frame path (inference thread, work
//! split over the kernel pool) and never allocates: the reduction layout is
//! planned in `lower`.
//!
//! The reduction walk is written once, generic over the element type, and
//! serves both the f32 kernel and the integer/bool constant folding.

use super::elementwise::{check_runtime_float, row_offset};

use super::OpDef;

use super::{required, OutInfo, ValueInfo};

use crate::cuda::lower::*;

use crate::cuda::CudaError;

use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};

use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::{Op, ReduceOp};

use crate::engine::tensor::{normalize_axis, numel, shape_string, Storage, Tensor, TensorData};

#[allow(unused_imports)]
use super::softmax::*;
use crate::op_bail;

// ---------------------------------------------------------------------------
// infer
// ---------------------------------------------------------------------------

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let x = required(ins, 0, "input")?;
    match op {
        Op::Softmax { axis, .. } | Op::LogSoftmax { axis, .. } => {
            if !x.dtype.is_float() {
                op_bail!("{} needs a float input, got {}", op.name(), x.dtype);
            }
            softmax_layout(op, *axis, x.shape)?;
            Ok(vec![OutInfo {
                dtype: x.dtype,
                shape: x.shape.to_vec(),
            }])
        }
        Op::Reduce {
            op: r, keepdims, ..
        } => {
            check_reduce_dtype(op, *r, x.dtype.storage())?;
            let shape = match reduce_axes(op, ins, x.shape.len())? {
                None => x.shape.to_vec(),
                Some(axes) => reduced_shape(x.shape, &axes, *keepdims),
            };
            Ok(vec![OutInfo {
                dtype: x.dtype,
                shape,
            }])
        }
        _ => op_bail!("{} is not a reduction", op.name()),
    }
}

pub(super) fn check_reduce_dtype(op: &Op, r: ReduceOp, st: Storage) -> OpResult<()> {
    if st == Storage::Bool && !matches!(r, ReduceOp::Max | ReduceOp::Min) {
        op_bail!("{} does not take bool input", op.name());
    }
    Ok(())
}

/// The axes a Reduce reduces, sorted; `None` when it is the identity
/// (empty axes with `noop_with_empty_axes`).
pub(super) fn reduce_axes(
    op: &Op,
    ins: &[Option<ValueInfo>],
    rank: usize,
) -> OpResult<Option<Vec<usize>>> {
    let Op::Reduce {
        axes,
        noop_with_empty_axes,
        ..
    } = op
    else {
        op_bail!("{} is not a Reduce op", op.name());
    };
    let raw: Vec<i64> = match axes {
        Some(a) if !a.is_empty() => a.clone(),
        _ => match ins.get(1).copied().flatten() {
            Some(v) => match v.value {
                Some(t) => t.to_i64_vec(),
                None => op_bail!(
                    "{} axes (input 1) must be a constant computable at boot",
                    op.name()
                ),
            },
            None => Vec::new(),
        },
    };
    if raw.is_empty() {
        if *noop_with_empty_axes {
            return Ok(None);
        }
        return Ok(Some((0..rank).collect()));
    }
    let mut out = Vec::with_capacity(raw.len());
    for &a in &raw {
        let n = normalize_axis(a, rank).ok_or_else(|| {
            OpError::new(format!(
                "{} axis {a} is out of range for a rank-{rank} input",
                op.name()
            ))
        })?;
        if out.contains(&n) {
            op_bail!("{} axes {raw:?} repeat axis {a}", op.name());
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(Some(out))
}

pub(super) fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (d, &n) in shape.iter().enumerate() {
        if axes.contains(&d) {
            if keepdims {
                out.push(1);
            }
        } else {
            out.push(n);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The reduction walk (generic: f32 kernel and integer folding)
// ---------------------------------------------------------------------------

/// An input walked in order as rows of its last collapsed dim, with every
/// row's place in the output precomputed as strides (0 on reduced dims).
#[derive(Debug, Clone)]
pub(super) struct ReducePlan {
    /// Input dims with size-1 dims dropped and runs of kept / reduced dims
    /// merged.
    pub(super) dims: Vec<usize>,
    /// Output stride of each collapsed dim (0 when reduced).
    pub(super) out_strides: Vec<usize>,
    pub(super) inner: usize,
    pub(super) inner_reduced: bool,
    /// Independent slices along the first collapsed dim when it is kept
    /// (work can be split on them), else 1.
    pub(super) groups: usize,
    pub(super) in_len: usize,
    pub(super) out_len: usize,
    /// Input elements folded into each output.
    pub(super) count: usize,
}

impl ReducePlan {
    pub(super) fn new(shape: &[usize], axes: &[usize]) -> ReducePlan {
        let mut dims: Vec<usize> = Vec::new();
        let mut red: Vec<bool> = Vec::new();
        for (d, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let r = axes.contains(&d);
            if red.last() == Some(&r) {
                let l = dims.len() - 1;
                dims[l] *= n;
            } else {
                dims.push(n);
                red.push(r);
            }
        }
        let mut out_strides = vec![0usize; dims.len()];
        let mut s = 1;
        for d in (0..dims.len()).rev() {
            if !red[d] {
                out_strides[d] = s;
                s *= dims[d];
            }
        }
        let in_len = numel(shape);
        let count: usize = shape
            .iter()
            .enumerate()
            .filter(|(d, _)| axes.contains(d))
            .map(|(_, &n)| n)
            .product();
        let out_len: usize = shape
            .iter()
            .enumerate()
            .filter(|(d, _)| !axes.contains(d))
            .map(|(_, &n)| n)
            .product();
        // Split on the first dim only when it is kept and is not also the
        // row dim (rows must not straddle groups).
        let groups = match red.first() {
            Some(false) if in_len > 0 && dims.len() >= 2 => dims[0],
            _ => 1,
        };
        ReducePlan {
            inner: dims.last().copied().unwrap_or(1),
            inner_reduced: red.last().copied().unwrap_or(false),
            dims,
            out_strides,
            groups,
            in_len,
            out_len,
            count,
        }
    }

    /// Reduce groups `[g0, g1)` of `x` into `out`, the part of the output
    /// those groups own; `finish` maps each finished sum/max/...
    pub(super) fn run<T: Copy>(
        &self,
        x: &[T],
        out: &mut [T],
        (g0, g1): (usize, usize),
        init: T,
        comb: impl Fn(T, T) -> T + Copy,
        finish: impl Fn(T) -> T,
    ) {
        out.fill(init);
        if self.in_len > 0 {
            let rows_per_group = self.in_len / self.inner / self.groups;
            let out_base = g0 * (self.out_len / self.groups);
            for row in g0 * rows_per_group..g1 * rows_per_group {
                let xr = &x[row * self.inner..(row + 1) * self.inner];
                let oo = row_offset(&self.dims, &self.out_strides, row) - out_base;
                if self.inner_reduced {
                    out[oo] = comb(out[oo], fold(xr, init, comb));
                } else {
                    for (o, &v) in out[oo..oo + self.inner].iter_mut().zip(xr) {
                        *o = comb(*o, v);
                    }
                }
            }
        }
        for o in out.iter_mut() {
            *o = finish(*o);
        }
    }
}

/// Fold a row with eight independent accumulators (the ops are
/// associative), so sums and maxima vectorise.
#[inline]
pub(super) fn fold<T: Copy>(x: &[T], init: T, comb: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = comb(*a, v);
        }
    }
    let mut r = init;
    for a in acc {
        r = comb(r, a);
    }
    for &v in rem {
        r = comb(r, v);
    }
    r
}

#[inline(always)]
pub(super) fn max_f32(a: f32, b: f32) -> f32 {
    // NaN-propagating, like numpy's maximum.
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

#[inline(always)]
pub(super) fn min_f32(a: f32, b: f32) -> f32 {
    if b < a || b.is_nan() {
        b
    } else {
        a
    }
}

// ---------------------------------------------------------------------------
// lower and kernels
// ---------------------------------------------------------------------------

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    check_runtime_float(op, ins, outs)?;
    let x = required(ins, 0, "input")?;
    if !x.dtype.is_float() {
        op_bail!(
            "{}: input 0 is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
            op.name(),
            x.dtype
        );
    }
    match op {
        Op::Softmax { axis, .. } | Op::LogSoftmax { axis, .. } => {
            let (outer, n, inner) = softmax_layout(op, *axis, x.shape)?;
            Ok(Box::new(SoftmaxKernel {
                outer,
                n,
                inner,
                log: matches!(op, Op::LogSoftmax { .. }),
            }))
        }
        Op::Reduce { op: r, .. } => {
            let axes = reduce_axes(op, ins, x.shape.len())?.unwrap_or_default();
            Ok(Box::new(ReduceKernel {
                op: *r,
                plan: ReducePlan::new(x.shape, &axes),
            }))
        }
        _ => op_bail!("{} is not a reduction", op.name()),
    }
}

pub(super) struct ReduceKernel {
    pub(super) op: ReduceOp,
    pub(super) plan: ReducePlan,
}

impl CpuKernel for ReduceKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let ob = Buf::from_slice(io.output(0));
        let p = &self.plan;
        let per_group = p.in_len / p.groups.max(1);
        let out_per_group = p.out_len / p.groups.max(1);
        let grain = (GRAIN / per_group.max(1)).max(1);
        let scale = 1.0 / p.count as f32;
        let op = self.op;
        par_chunks(pool, p.groups, grain, &|g0, g1| {
            // SAFETY: groups own disjoint output ranges, valid for the run.
            let o = unsafe { buf_range(ob, g0 * out_per_group, g1 * out_per_group) };
            let g = (g0, g1);
            match op {
                ReduceOp::Sum => p.run(x, o, g, 0.0, |a, b| a + b, |v| v),
                ReduceOp::Mean => p.run(x, o, g, 0.0, |a, b| a + b, |v| v * scale),
                ReduceOp::Prod => p.run(x, o, g, 1.0, |a, b| a * b, |v| v),
                ReduceOp::Max => p.run(x, o, g, f32::NEG_INFINITY, max_f32, |v| v),
                ReduceOp::Min => p.run(x, o, g, f32::INFINITY, min_f32, |v| v),
            }
        });
    }
}

// ---------------------------------------------------------------------------
// eval: integer and bool reductions (f32 goes through the kernels)
// ---------------------------------------------------------------------------

/// Evaluation on owned tensors for constant folding; `Ok(None)` sends f32
/// data through the CPU kernel instead.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
    let x = ins
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
    if matches!(x.data, TensorData::F32(_)) {
        return Ok(None);
    }
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let outs = infer(op, &infos)?;
    let out = &outs[0];
    let Op::Reduce { op: r, .. } = op else {
        op_bail!("{} needs float input, got {}", op.name(), x.dtype);
    };
    let axes = reduce_axes(op, &infos, x.shape.len())?.unwrap_or_default();
    let plan = ReducePlan::new(&x.shape, &axes);
    let all = (0, plan.groups);
    let data = match &x.data {
        TensorData::I64(v) => {
            let mut o = vec![0i64; plan.out_len];
            let count = plan.count as i64;
            match r {
                ReduceOp::Sum => plan.run(v, &mut o, all, 0, i64::wrapping_add, |v| v),
                ReduceOp::Mean => {
                    if count == 0 {
                        op_bail!(
                            "ReduceMean of integers over an empty axis of {}",
                            shape_string(&x.shape)
                        );
                    }
                    plan.run(v, &mut o, all, 0, i64::wrapping_add, |v| v / count)
                }
                ReduceOp::Prod => plan.run(v, &mut o, all, 1, i64::wrapping_mul, |v| v),
                ReduceOp::Max => plan.run(v, &mut o, all, i64::MIN, i64::max, |v| v),
                ReduceOp::Min => plan.run(v, &mut o, all, i64::MAX, i64::min, |v| v),
            }
            let o = o
                .into_iter()
                .map(|v| super::elementwise::wrap_int(x.dtype, v))
                .collect();
            TensorData::I64(o)
        }
        TensorData::Bool(v) => {
            let mut o = vec![false; plan.out_len];
            match r {
                ReduceOp::Max => plan.run(v, &mut o, all, false, |a, b| a | b, |v| v),
                _ => plan.run(v, &mut o, all, true, |a, b| a & b, |v| v),
            }
            TensorData::Bool(o)
        }
        TensorData::F32(_) => return Ok(None),
    };
    Ok(Some(vec![Tensor {
        dtype: out.dtype,
        shape: out.shape.clone(),
        data,
    }]))
}

pub struct Reduce;

impl OpDef for Reduce {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops;
    use crate::engine::tensor::DType;

    fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), v.to_vec())
    }

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
            assert!(ok, "element {i}: got {g}, want {w}");
        }
    }

    fn eval1(op: &Op, ins: &[Option<&Tensor>]) -> Tensor {
        ops::eval(op, ins).unwrap().remove(0)
    }

    /// Kernel with a runtime input on `threads` threads, optionally in place.
    fn run_kernel(
        op: &Op,
        x: &Tensor,
        axes: Option<&Tensor>,
        threads: usize,
        inplace: bool,
    ) -> Tensor {
        let mut infos = vec![Some(ValueInfo {
            dtype: x.dtype,
            shape: &x.shape,
            value: None,
        })];
        if let Some(a) = axes {
            infos.push(Some(ValueInfo::of(a)));
        }
        let outs = infer(op, &infos).unwrap();
        let k = lower(op, &infos, &outs).unwrap();
        let mut xb = x.to_f32_vec();
        let mut ob = vec![f32::NAN; numel(&outs[0].shape)];
        let mut ins = vec![Buf::from_slice(&mut xb)];
        if axes.is_some() {
            ins.push(Buf::empty());
        }
        let pool = ThreadPool::new(threads);
        let res = if inplace {
            assert_eq!(k.inplace_input(), Some(0));
            let outs_b = [ins[0]];
            // SAFETY: output 0 is the in-place input's buffer.
            let io = unsafe { StepIo::new(&ins, &outs_b, true) };
            k.run(&io, &mut [], &pool);
            xb
        } else {
            let outs_b = [Buf::from_slice(&mut ob)];
            // SAFETY: distinct live buffers.
            let io = unsafe { StepIo::new(&ins, &outs_b, false) };
            k.run(&io, &mut [], &pool);
            ob
        };
        Tensor::from_f32(outs[0].shape.clone(), res)
    }

    /// numpy-style reference softmax over `axis` of a row-major tensor.
    fn naive_softmax(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f32> {
        let outer: usize = shape[..axis].iter().product();
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let mut out = vec![0.0; x.len()];
        for o in 0..outer {
            for j in 0..inner {
                let idx = |i: usize| (o * n + i) * inner + j;
                let m = (0..n)
                    .map(|i| x[idx(i)] as f64)
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..n).map(|i| (x[idx(i)] as f64 - m).exp()).sum();
                for i in 0..n {
                    let e = x[idx(i)] as f64 - m;
                    out[idx(i)] = if log {
                        (e - s.ln()) as f32
                    } else {
                        (e.exp() / s) as f32
                    };
                }
            }
        }
        out
    }

    #[test]
    fn exp_nonpos_is_accurate() {
        let mut x = 0.0f32;
        while x > -90.0 {
            let want = (x as f64).exp();
            let got = exp_nonpos(x) as f64;
            if x >= -87.0 {
                assert!(
                    ((got - want) / want).abs() < 3e-7,
                    "exp({x}) = {got}, want {want}"
                );
            } else {
                assert_eq!(got, 0.0);
            }
            x -= 0.013_7;
        }
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert!(exp_nonpos(f32::NAN).is_nan());
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn softmax_matches_numpy_values() {
        // scipy.special.softmax([[1, 2, 3], [-1, 0, 1000]], axis=-1)
        let x = f32t(&[2, 3], &[1.0, 2.0, 3.0, -1.0, 0.0, 1000.0]);
        let got = eval1(
            &Op::Softmax {
                axis: -1,
                legacy: false,
            },
            &[Some(&x)],
        );
        assert_close(
            got.as_f32().unwrap(),
            &[0.090_030_57, 0.244_728_48, 0.665_240_94, 0.0, 0.0, 1.0],
            1e-6,
        );
        let got = eval1(
            &Op::LogSoftmax {
                axis: 1,
                legacy: false,
            },
            &[Some(&x)],
        );
        assert_close(
            got.as_f32().unwrap(),
            &[-2.407_606, -1.407_606, -0.407_606, -1001.0, -1000.0, 0.0],
            1e-6,
        );
    }

    #[test]
    fn softmax_every_axis_threads_and_in_place() {
        let shape = [2, 3, 70, 2];
        let xv: Vec<f32> = (0..numel(&shape))
            .map(|i| ((i * 37 % 101) as f32) * 0.13 - 6.0)
            .collect();
        let x = f32t(&shape, &xv);
        for axis in -4i64..4 {
            let a = normalize_axis(axis, 4).unwrap();
            for log in [false, true] {
                let op = if log {
                    Op::LogSoftmax {
                        axis,
                        legacy: false,
                    }
                } else {
                    Op::Softmax {
                        axis,
                        legacy: false,
                    }
                };
                let want = naive_softmax(&xv, &shape, a, log);
                for (threads, inplace) in [(1, false), (3, false), (2, true)] {
                    let got = run_kernel(&op, &x, None, threads, inplace);
                    assert_close(got.as_f32().unwrap(), &want, 2e-6);
                }
            }
        }
    }

    #[test]
    fn legacy_softmax_flattens_from_axis() {
        // Opset < 13: axis=1 on [2, 2, 2] is a softmax over rows of 4.
        let x = f32t(&[2, 2, 2], &iota(8));
        let got = eval1(
            &Op::Softmax {
                axis: 1,
                legacy: true,
            },
            &[Some(&x)],
        );
        let want = naive_softmax(&iota(8), &[2, 4], 1, false);
        assert_close(got.as_f32().unwrap(), &want, 1e-6);
        let got = eval1(
            &Op::LogSoftmax {
                axis: -2,
                legacy: true,
            },
            &[Some(&x)],
        );
        assert_close(
            got.as_f32().unwrap(),
            &naive_softmax(&iota(8), &[2, 4], 1, true),
            1e-6,
        );
        let e = infer(
            &Op::Softmax {
                axis: 3,
                legacy: false,
            },
            &[Some(ValueInfo::of(&x))],
        )
        .unwrap_err();
        assert!(e.0.contains("axis 3") && e.0.contains("rank-3"), "{}", e.0);
    }

    fn reduce(op: ReduceOp, axes: Option<Vec<i64>>, keepdims: bool) -> Op {
        Op::Reduce {
            op,
            axes,
            keepdims,
            noop_with_empty_axes: false,
        }
    }

    #[test]
    fn reduce_values_match_numpy() {
        // x = np.arange(24).reshape(2, 3, 4) - 5
        let xv: Vec<f32> = iota(24).iter().map(|v| v - 5.0).collect();
        let x = f32t(&[2, 3, 4], &xv);
        let r = |o, axes: &[i64], k| eval1(&reduce(o, Some(axes.to_vec()), k), &[Some(&x)]);
        let t = r(ReduceOp::Sum, &[1], true);
        assert_eq!(t.shape, vec![2, 1, 4]);
        assert_eq!(
            t.as_f32().unwrap(),
            &[-3.0, 0.0, 3.0, 6.0, 33.0, 36.0, 39.0, 42.0]
        );
        let t = r(ReduceOp::Mean, &[0, -1], false);
        assert_eq!(t.shape, vec![3]);
        assert_eq!(t.as_f32().unwrap(), &[2.5, 6.5, 10.5]);
        let t = r(ReduceOp::Max, &[2], false);
        assert_eq!(t.as_f32().unwrap(), &[-2.0, 2.0, 6.0, 10.0, 14.0, 18.0]);
        let t = r(ReduceOp::Min, &[0, 2], true);
        assert_eq!(t.shape, vec![1, 3, 1]);
        assert_eq!(t.as_f32().unwrap(), &[-5.0, -1.0, 3.0]);
        let t = r(ReduceOp::Prod, &[2], false);
        assert_eq!(
            t.as_f32().unwrap(),
            &[120.0, 0.0, 360.0, 5040.0, 24024.0, 73440.0]
        );
        // No axes: everything; axes from a constant input.
        let t = eval1(&reduce(ReduceOp::Sum, None, false), &[Some(&x)]);
        assert_eq!(t.shape, Vec::<usize>::new());
        assert_eq!(t.as_f32().unwrap(), &[156.0]);
        let axes = Tensor::from_i64(vec![1], vec![-2]);
        let t = eval1(
            &reduce(ReduceOp::Sum, None, false),
            &[Some(&x), Some(&axes)],
        );
        assert_eq!(t.shape, vec![2, 4]);
        assert_eq!(
            t.as_f32().unwrap(),
            &[-3.0, 0.0, 3.0, 6.0, 33.0, 36.0, 39.0, 42.0]
        );
        // noop_with_empty_axes: identity.
        let noop = Op::Reduce {
            op: ReduceOp::Sum,
            axes: None,
            keepdims: true,
            noop_with_empty_axes: true,
        };
        let t = eval1(&noop, &[Some(&x)]);
        assert_eq!(t, x);
    }

    #[test]
    fn reduce_kernel_matches_naive_on_every_axis_set() {
        let shape = [3, 4, 5, 6];
        let xv: Vec<f32> = (0..numel(&shape))
            .map(|i| ((i * 7 % 23) as f32) - 11.0)
            .collect();
        let x = f32t(&shape, &xv);
        for mask in 0u32..16 {
            let axes: Vec<usize> = (0..4).filter(|d| mask & (1 << d) != 0).collect();
            if axes.is_empty() {
                continue;
            }
            for o in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Mean] {
                let op = reduce(o, Some(axes.iter().map(|&a| a as i64).collect()), true);
                let want = naive_reduce(&xv, &shape, &axes, o);
                for threads in [1, 3] {
                    let got = run_kernel(&op, &x, None, threads, false);
                    assert_close(got.as_f32().unwrap(), &want, 1e-6);
                }
                // Same axes given as a constant input.
                let at = Tensor::from_i64(
                    vec![axes.len()],
                    axes.iter().map(|&a| a as i64 - 4).collect(),
                );
                let got = run_kernel(&reduce(o, None, true), &x, Some(&at), 2, false);
                assert_close(got.as_f32().unwrap(), &want, 1e-6);
            }
        }
    }

    fn naive_reduce(x: &[f32], shape: &[usize], axes: &[usize], o: ReduceOp) -> Vec<f32> {
        let oshape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
            .collect();
        let mut acc: Vec<Vec<f32>> = vec![Vec::new(); numel(&oshape)];
        for (flat, &v) in x.iter().enumerate() {
            let (mut rem, mut oi, mut ostride) = (flat, 0, 1);
            for d in (0..shape.len()).rev() {
                let i = rem % shape[d];
                rem /= shape[d];
                if !axes.contains(&d) {
                    oi += i * ostride;
                    ostride *= shape[d];
                }
            }
            acc[oi].push(v);
        }
        acc.iter()
            .map(|v| match o {
                ReduceOp::Sum => v.iter().sum(),
                ReduceOp::Mean => v.iter().sum::<f32>() / v.len() as f32,
                ReduceOp::Max => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Min => v.iter().copied().fold(f32::INFINITY, f32::min),
                ReduceOp::Prod => v.iter().product(),
            })
            .collect()
    }

    #[test]
    fn integer_and_bool_reductions() {
        let x = Tensor::from_i64(vec![2, 3], vec![1, -2, 3, 4, 5, -7]);
        let r = |o, axes: Vec<i64>| eval1(&reduce(o, Some(axes), false), &[Some(&x)]);
        assert_eq!(r(ReduceOp::Sum, vec![1]).to_i64_vec(), vec![2, 2]);
        assert_eq!(r(ReduceOp::Prod, vec![0]).to_i64_vec(), vec![4, -10, -21]);
        assert_eq!(r(ReduceOp::Max, vec![1]).to_i64_vec(), vec![3, 5]);
        assert_eq!(r(ReduceOp::Min, vec![0, 1]).to_i64_vec(), vec![-7]);
        // Integer mean truncates toward zero: [2/3, 2/3], [5/2, 3/2, -4/2].
        assert_eq!(r(ReduceOp::Mean, vec![1]).to_i64_vec(), vec![0, 0]);
        assert_eq!(r(ReduceOp::Mean, vec![0]).to_i64_vec(), vec![2, 1, -2]);
        let t = r(ReduceOp::Sum, vec![1]);
        assert_eq!(t.dtype, DType::I64);
        let b = Tensor::from_bool(vec![2, 2], vec![true, false, false, false]);
        let t = eval1(&reduce(ReduceOp::Max, Some(vec![1]), false), &[Some(&b)]);
        assert_eq!(t.as_bool().unwrap(), &[true, false]);
        let t = eval1(&reduce(ReduceOp::Min, Some(vec![0]), false), &[Some(&b)]);
        assert_eq!(t.as_bool().unwrap(), &[false, false]);
    }

    #[test]
    fn empty_reductions_use_the_identity() {
        // ONNX reference: sum of nothing is 0, max of nothing is -inf.
        let x = f32t(&[2, 0], &[]);
        let t = eval1(&reduce(ReduceOp::Sum, Some(vec![1]), false), &[Some(&x)]);
        assert_eq!(t.as_f32().unwrap(), &[0.0, 0.0]);
        let t = eval1(&reduce(ReduceOp::Max, Some(vec![1]), true), &[Some(&x)]);
        assert_eq!(t.shape, vec![2, 1]);
        assert_eq!(t.as_f32().unwrap(), &[f32::NEG_INFINITY; 2]);
        let t = eval1(&reduce(ReduceOp::Sum, Some(vec![0]), false), &[Some(&x)]);
        assert_eq!(t.shape, vec![0]);
    }

    #[test]
    fn reduce_axis_errors_name_the_axis() {
        let x = f32t(&[2, 3], &iota(6));
        let v = [Some(ValueInfo::of(&x))];
        let e = infer(&reduce(ReduceOp::Sum, Some(vec![2]), true), &v).unwrap_err();
        assert!(e.0.contains("axis 2") && e.0.contains("rank-2"), "{}", e.0);
        let e = infer(&reduce(ReduceOp::Sum, Some(vec![1, -1]), true), &v).unwrap_err();
        assert!(e.0.contains("repeat"), "{}", e.0);
        let rt = ValueInfo {
            dtype: DType::I64,
            shape: &[1],
            value: None,
        };
        let e = infer(&reduce(ReduceOp::Sum, None, true), &[v[0], Some(rt)]).unwrap_err();
        assert!(e.0.contains("axes (input 1) must be a constant"), "{}", e.0);
    }
}
