//! Element-wise ops with numpy broadcasting: arithmetic, comparisons, activations, Cast, Where, Clip, BatchNormalization.
//!
//! infer/lower run at boot and may allocate; kernels' `run` is on the frame
//! path and never allocates.

use super::{OutInfo, ValueInfo};
use crate::engine::cpu::CpuKernel;
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::tensor::Tensor;

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let _ = ins;
    Err(OpError::new(format!(
        "{} is not implemented yet",
        op.name()
    )))
}

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    let _ = (ins, outs);
    Err(OpError::new(format!(
        "{} is not implemented yet",
        op.name()
    )))
}

/// Evaluation on owned tensors for constant folding; `Ok(None)` sends f32
/// data through the CPU kernel instead.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
    let _ = (op, ins);
    Ok(None)
}
