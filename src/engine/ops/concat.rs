//! Concat along one axis.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
#[allow(unused_imports)]
use super::*;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{GpuCtx, GpuNode, Launch};
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

pub struct Concat;

impl OpDef for Concat {
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

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        movement::lower_cuda_copies(n, cx, plan)
    }
}

/// The movement plan of this op: its output shapes and the copies that
/// produce them (the family's shared kernels run it).
pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    match op {
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
        _ => op_bail!("{} is not a Concat", op.name()),
    }
}

/// Concatenation: output rows of `row` elements, each made of one chunk
/// per input (`chunks[k]` elements, starting at `starts[k]` in the row).
#[derive(Debug, Clone)]
pub(super) struct ConcatPlan {
    pub(super) chunks: Vec<usize>,
    pub(super) starts: Vec<usize>,
    pub(super) row: usize,
    pub(super) len: usize,
}

impl ConcatPlan {
    /// Fill `dst`, the output elements `[s, s + dst.len())`; `src(k)` is
    /// input k's data.
    pub(super) fn copy_range<'a, T: Copy + 'a>(
        &self,
        src: &dyn Fn(usize) -> &'a [T],
        dst: &mut [T],
        s: usize,
    ) {
        let e = s + dst.len();
        let mut pos = s;
        while pos < e {
            let (o, q) = (pos / self.row, pos % self.row);
            // The input whose chunk holds column q (zero-sized ones never do).
            let mut k = 0;
            while k + 1 < self.chunks.len() && q >= self.starts[k] + self.chunks[k] {
                k += 1;
            }
            let w = q - self.starts[k];
            let n = (self.chunks[k] - w).min(e - pos);
            let from = o * self.chunks[k] + w;
            dst[pos - s..pos - s + n].copy_from_slice(&src(k)[from..from + n]);
            pos += n;
        }
    }
}

pub(super) struct ConcatKernel {
    pub(super) p: ConcatPlan,
}

impl CpuKernel for ConcatKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        let src = |k: usize| io.input(k);
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(&src, d, s));
    }
}
