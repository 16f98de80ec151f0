//! Unary math (`Unary`), activations (`Act`) and `Clip`: one map kernel on
//! the CPU, one `unary` kernel on the GPU.
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

pub struct Unary;

impl OpDef for Unary {
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
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let (code, alpha, beta) = match op {
            Op::Unary(u) => (
                unary_code(*u).ok_or_else(|| refuse(op, "Not is boolean"))?,
                0.0,
                0.0,
            ),
            Op::Act(a) => act_code(*a),
            _ => {
                let (lo, hi) = elementwise::clip_bounds(op, &n.infos).map_err(op_err)?;
                (8, lo, hi)
            }
        };
        let x = inp(0).ok_or_else(|| refuse(op, "needs an input"))?;
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Unary(UnaryParams {
                out: yp,
                x: xp,
                n: out_len as i64,
                op: code,
                alpha,
                beta,
            }),
            out_len,
        ));
        Ok(v)
    }
}
