//! Inference-mode BatchNormalization as a per-channel affine map (usually
//! folded into the preceding Conv by the passes).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::elementwise::*;
use super::OpDef;
// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
#[allow(unused_imports)]
use super::*;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{numel, Tensor};
use crate::op_bail;

pub struct BatchNorm;

impl OpDef for BatchNorm {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        match op {
            Op::BatchNormalization { .. } => {
                let x = required(ins, 0, "X")?;
                if !x.dtype.is_float() {
                    op_bail!("BatchNormalization needs a float input, got {}", x.dtype);
                }
                let c = bn_channels(x.shape)?;
                for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                    let v = required(ins, i, what)?;
                    if numel(v.shape) != c || v.shape.len() > 1 {
                        op_bail!(
                            "BatchNormalization {what} (input {i}) has shape {} but X ({}) has {c} channels",
                            shape_string(v.shape),
                            shape_string(x.shape)
                        );
                    }
                }
                Ok(vec![OutInfo {
                    dtype: x.dtype,
                    shape: x.shape.to_vec(),
                }])
            }
            _ => op_bail!("{} is not a BatchNormalization", op.name()),
        }
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
        match op {
            Op::Act(_) | Op::BatchNormalization { .. } => match x.data {
                TensorData::F32(_) => Ok(None),
                _ => Err(data_mismatch("input 0", x)),
            },
            _ => op_bail!("{} is not a BatchNormalization", op.name()),
        }
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        check_runtime_float(op, ins, outs)?;
        match op {
            Op::BatchNormalization { epsilon } => {
                let x = required(ins, 0, "X")?;
                check_float_data(op, 0, &x)?;
                let c = bn_channels(x.shape)?;
                let mut p: Vec<Vec<f32>> = Vec::with_capacity(4);
                for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                    let v = required(ins, i, what)?;
                    let Some(t) = v.value else {
                        op_bail!(
                            "BatchNormalization {what} (input {i}) must be a constant computable at boot"
                        );
                    };
                    let vals = t.to_f32_vec();
                    if vals.len() != c {
                        op_bail!(
                            "BatchNormalization {what} (input {i}) has {} values, expected {c}",
                            vals.len()
                        );
                    }
                    p.push(vals);
                }
                let eps = *epsilon as f64;
                let mut a = Vec::with_capacity(c);
                let mut b = Vec::with_capacity(c);
                let (scale, bias, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
                for (((&sc, &bi), &m), &v) in scale.iter().zip(bias).zip(mean).zip(var) {
                    let s = sc as f64 / (v as f64 + eps).sqrt();
                    a.push(s as f32);
                    b.push((bi as f64 - m as f64 * s) as f32);
                }
                let inner = x.shape.iter().skip(2).product::<usize>();
                Ok(Box::new(ChannelAffineKernel {
                    a,
                    b,
                    inner,
                    len: numel(x.shape),
                }))
            }
            _ => op_bail!("{} is not a BatchNormalization", op.name()),
        }
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
