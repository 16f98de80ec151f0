//! Binary element-wise ops with numpy broadcasting: arithmetic,
//! comparisons and logic. Comparisons and logic produce bool tensors and run
//! at boot only; arithmetic runs on the CPU and GPU.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::{elementwise, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::CpuKernel;
use crate::engine::error::OpResult;
use crate::engine::ir::*;
use crate::engine::tensor::*;

pub struct Binary;

impl OpDef for Binary {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        elementwise::infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        elementwise::eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        elementwise::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let out_shape = n.out_shape.clone();
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let Op::Binary(b) = op else {
            return Err(refuse(op, "is not a binary op"));
        };
        let code = binary_code(*b).ok_or_else(|| refuse(op, "only arithmetic runs on the GPU"))?;
        let (Some(a), Some(bb)) = (inp(0), inp(1)) else {
            return Err(refuse(op, "needs two inputs"));
        };
        let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(bb).to_vec());
        let (ap, bp, op_) = (cx.ptr(a)?, cx.ptr(bb)?, cx.ptr(out0)?);
        v.push(binary(op_, ap, bp, &out_shape, &sa, &sb, code)?);
        Ok(v)
    }
}
