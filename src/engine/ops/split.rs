//! Split into several outputs along one axis.
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

pub struct Split;

impl OpDef for Split {
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
        _ => op_bail!("{} is not a Split", op.name()),
    }
}

pub(super) struct SplitKernel {
    pub(super) ps: Vec<Strided>,
}

impl CpuKernel for SplitKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        for (k, p) in self.ps.iter().enumerate() {
            let out = io.output(k);
            let n = p.len.min(out.len());
            par_fill(pool, &mut out[..n], &|d, s| p.copy_range(x, d, s));
        }
    }
}
