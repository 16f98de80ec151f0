//! Gather along one axis with boot-time indices.
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

impl OpDef for Gather {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
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
