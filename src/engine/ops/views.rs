//! Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout: the same
//! elements under a new shape. The planner usually aliases them away;
//! otherwise a plain copy.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::{movement, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::CpuKernel;
use crate::engine::error::OpResult;
use crate::engine::ir::*;
use crate::engine::tensor::*;

pub struct Views;

impl OpDef for Views {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        movement::infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        movement::eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        movement::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        movement::lower_cuda_copies(n, cx)
    }
}
