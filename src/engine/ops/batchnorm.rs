//! Inference-mode BatchNormalization as a per-channel affine map (usually
//! folded into the preceding Conv by the passes).
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

pub struct BatchNorm;

impl OpDef for BatchNorm {
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
        let g = cx.graph();
        let out0 = n.out0();
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let Op::BatchNormalization { epsilon } = op else {
            return Err(refuse(op, "is not a BatchNormalization"));
        };
        let x = inp(0).ok_or_else(|| refuse(op, "needs X"))?;
        let get = |i: usize| -> Option<Vec<f32>> {
            let t = inp(i)?;
            g.tensors[t].value.as_ref()?.as_f32().map(|d| d.to_vec())
        };
        let (Some(sc), Some(bi), Some(mean), Some(var)) = (get(1), get(2), get(3), get(4)) else {
            return Err(refuse(op, "needs constant scale, bias, mean and var"));
        };
        let sx = cx.shape(x).to_vec();
        if sx.len() < 2 || sc.len() != sx[1] {
            return Err(refuse(op, "channel count mismatch"));
        }
        let scale: Vec<f32> = sc
            .iter()
            .zip(&var)
            .map(|(s, v)| s / (v + epsilon).sqrt())
            .collect();
        let shift: Vec<f32> = bi
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let (sp, hp) = (
            cx.upload(&scale, "BN scale")?,
            cx.upload(&shift, "BN shift")?,
        );
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Channel(ChannelParams {
                y: yp,
                x: xp,
                scale: sp,
                shift: hp,
                n: out_len as i64,
                inner: numel(&sx[2..]) as i64,
                channels: sx[1] as i32,
                act: 0,
                alpha: 0.0,
                beta: 0.0,
            }),
            out_len,
        ));
        Ok(v)
    }
}
