//! Cast between element types. Float-to-float casts run at run time (a
//! copy, or rounding to f16 precision on the CPU); the rest at boot.
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

pub struct Cast;

impl OpDef for Cast {
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
        let Op::Cast { to } = n.op() else {
            return Err(refuse(n.op(), "is not a Cast"));
        };
        if !to.is_float() {
            return Err(refuse(n.op(), "not supported by the CUDA backend yet"));
        }
        let op = n.op();
        let g = cx.graph();
        let out0 = n.out0();
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let x = inp(0).ok_or_else(|| refuse(op, "needs an input"))?;
        if !g.tensors[x].dtype.is_float() {
            return Err(refuse(op, "casts from integers run at boot only"));
        }
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(copy(yp, xp, &[out_len], &[1], 0, &[1], 0)?);
        Ok(v)
    }
}
