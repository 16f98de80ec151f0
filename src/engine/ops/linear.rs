//! Conv, MatMul and Gemm: the GEMM-backed ops. Owns the packed SIMD GEMM, im2col/implicit-GEMM and direct depthwise convolution, fused bias + activation epilogues.
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
