//! Softmax and LogSoftmax along one axis (opset < 13: over the flattened
//! trailing dims).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::{reduce, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::CpuKernel;
use crate::engine::error::OpResult;
use crate::engine::ir::*;
use crate::engine::tensor::*;

pub struct Softmax;

impl OpDef for Softmax {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        reduce::infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        reduce::eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        reduce::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let x = inp(0).ok_or_else(|| refuse(op, "needs an input"))?;
        let (outer, len, inner) = reduce::softmax_rows(op, cx.shape(x)).map_err(op_err)?;
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Softmax(SoftmaxParams {
                x: xp,
                y: yp,
                rows: (outer * inner) as i64,
                len: len as i64,
                inner: inner as i64,
                log: matches!(op, Op::LogSoftmax { .. }) as i32,
            }),
            outer * inner,
        ));
        Ok(v)
    }
}
