//! Inference-mode BatchNormalization as a per-channel affine map (usually
//! folded into the preceding Conv by the passes).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

//! Element-wise ops with numpy (multidirectional) broadcasting: arithmetic,
//! comparisons and logic (`Binary`), `Unary`, activations (`Act`), `Clip`,
//! `Cast`, `Where` and inference-mode `BatchNormalization`.
//!
//! Also owns the helpers the other op families share for their kernels:
//! the broadcast plan ([`Bcast`]), splitting a flat range over the thread
//! pool ([`par_chunks`]) and the "runtime tensors are f32" check.
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! may allocate. Each kernel's `run` is on the frame path (inference thread,
//! work split over the kernel pool) and never allocates: broadcast strides,
//! per-channel BatchNorm coefficients and captured constants are all
//! computed in `lower`.
//!
//! Integer and bool tensors only exist as boot-time constants, so their
//! arithmetic lives in `eval`; f32 data goes through the kernels (`eval`
//! returns `Ok(None)`), so there is one f32 implementation of each op.

use super::elementwise;
#[allow(unused_imports)]
use super::elementwise::*;
use super::OpDef;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::Op;
use crate::engine::tensor::{numel, Tensor};
use crate::op_bail;

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

/// Channels of a BatchNormalization input: dim 1, or 1 for a 1-D input.
pub(super) fn bn_channels(shape: &[usize]) -> OpResult<usize> {
    match shape.len() {
        0 => op_bail!("BatchNormalization needs an input of rank >= 1, got a scalar"),
        1 => Ok(1),
        _ => Ok(shape[1]),
    }
}

/// `y = a[c] * x + b[c]` per channel: inference-mode BatchNormalization.
pub(super) struct ChannelAffineKernel {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
    /// Elements per (n, c) plane.
    pub(super) inner: usize,
    pub(super) len: usize,
}

impl CpuKernel for ChannelAffineKernel {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = (!io.is_inplace()).then(|| io.input(0));
        let ob = Buf::from_slice(io.output(0));
        let c = self.a.len();
        if c == 0 || self.inner == 0 {
            return;
        }
        par_chunks(pool, self.len.min(ob.len), GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            row_segments(s, e, self.inner, |row, col, n| {
                let ch = row % c;
                let (a, b) = (self.a[ch], self.b[ch]);
                let start = row * self.inner + col;
                let dst = &mut o[start - s..start - s + n];
                match x {
                    Some(x) => {
                        for (d, &v) in dst.iter_mut().zip(&x[start..start + n]) {
                            *d = a * v + b;
                        }
                    }
                    None => {
                        for d in dst.iter_mut() {
                            *d = a * *d + b;
                        }
                    }
                }
            });
        });
    }
}
