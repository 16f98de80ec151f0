//! Transpose and Expand: one strided copy each.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::movement::*;
// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
#[allow(unused_imports)]
use super::*;
use super::{movement, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
use crate::engine::cpu::CpuKernel;
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::op_bail;

pub struct Transpose;

impl OpDef for Transpose {
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
        _ => op_bail!("{} is not a Transpose or Expand", op.name()),
    }
}
