//! Gather along one axis, with boot-time indices (a movement plan), or
//! with indices computed at run time (RT-DETR picks its top-k encoder
//! features and anchors with TopK's indices): the indices are then f32-held
//! integers in the arena (see `ops::runs_on_integers`), and an index
//! outside the axis, which ONNX leaves undefined and TopK never gives,
//! yields NaN rather than an out-of-bounds read.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
use super::elementwise::row_segments;
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
#[allow(unused_imports)]
use super::*;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
use crate::engine::tensor::Tensor;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::op_bail;

pub struct Gather;

/// Whether the indices are only known at run time.
fn run_time_indices(ins: &[Option<ValueInfo>]) -> bool {
    matches!(ins.get(1), Some(Some(v)) if v.value.is_none())
}

impl OpDef for Gather {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        if run_time_indices(ins) {
            let (_, shape) = dynamic_plan(op, ins)?;
            return Ok(vec![OutInfo {
                dtype: required(ins, 0, "data")?.dtype,
                shape,
            }]);
        }
        movement::infer(op, ins, plan)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        movement::eval(op, ins, plan)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        if run_time_indices(ins) {
            let x = required(ins, 0, "data")?;
            if !x.dtype.is_float() && x.value.is_some() {
                op_bail!(
                    "Gather: data is a {} constant gathered at run time; only float constants may be",
                    x.dtype
                );
            }
            let (p, _) = dynamic_plan(op, ins)?;
            return Ok(Box::new(DynamicGatherKernel { p }));
        }
        movement::lower(op, ins, outs, plan)
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

/// The movement plan of this op: its output shapes and the copies that
/// produce them (the family's shared kernels run it).
pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    match op {
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
        _ => op_bail!("{} is not a Gather", op.name()),
    }
}

/// Gather along an axis: output `[outer, K, inner]` from data
/// `[outer, n, inner]` through the (normalised) index table.
#[derive(Debug, Clone)]
pub(super) struct GatherPlan {
    pub(super) n: usize,
    pub(super) inner: usize,
    pub(super) idx: Vec<usize>,
    pub(super) len: usize,
}

impl GatherPlan {
    pub(super) fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
        let k = self.idx.len();
        row_segments(s, s + dst.len(), self.inner, |row, col, len| {
            let (o, j) = (row / k, row % k);
            let from = (o * self.n + self.idx[j]) * self.inner + col;
            let at = row * self.inner + col - s;
            dst[at..at + len].copy_from_slice(&src[from..from + len]);
        });
    }
}

pub(super) struct GatherKernel {
    pub(super) p: GatherPlan,
}

impl CpuKernel for GatherKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(x, d, s));
    }
}

/// Gather with run-time indices: output `[outer, K, inner]` from data
/// `[outer, n, inner]`, `K` = the number of indices.
#[derive(Debug, Clone)]
struct DynamicPlan {
    n: usize,
    k: usize,
    inner: usize,
}

fn dynamic_plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(DynamicPlan, Vec<usize>)> {
    let Op::Gather { axis } = op else {
        op_bail!("{} is not a Gather", op.name());
    };
    let x = required(ins, 0, "data")?;
    let iv = required(ins, 1, "indices")?;
    if iv.dtype.is_float() || iv.dtype == DType::Bool {
        op_bail!("Gather indices must be integers, got {}", iv.dtype);
    }
    if x.shape.is_empty() {
        op_bail!("Gather data must have rank at least 1");
    }
    let a = norm_axis(op, "axis", *axis, x.shape)?;
    let mut shape = x.shape[..a].to_vec();
    shape.extend_from_slice(iv.shape);
    shape.extend_from_slice(&x.shape[a + 1..]);
    if checked_numel(&shape).is_none() {
        op_bail!("Gather output {} is too large", shape_string(&shape));
    }
    Ok((
        DynamicPlan {
            n: x.shape[a],
            k: numel(iv.shape),
            inner: numel(&x.shape[a + 1..]),
        },
        shape,
    ))
}

struct DynamicGatherKernel {
    p: DynamicPlan,
}

impl CpuKernel for DynamicGatherKernel {
    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let (x, idx) = (io.input(0), io.input(1));
        let out = io.output(0);
        let p = &self.p;
        let n = p.n as i64;
        par_fill(pool, out, &|d, s| {
            for (off, o) in d.iter_mut().enumerate() {
                let e = s + off;
                let col = e % p.inner;
                let row = e / p.inner;
                let (outer, j) = (row / p.k, row % p.k);
                let v = idx[j];
                let i = v as i64;
                let i = if i < 0 { i + n } else { i };
                *o = if v.fract() == 0.0 && (0..n).contains(&i) {
                    x[(outer * p.n + i as usize) * p.inner + col]
                } else {
                    f32::NAN
                };
            }
        });
    }
}
