//! LayerNormalization (opset 17): each row of the trailing dims from `axis`
//! on is normalised to zero mean and unit variance, then scaled and shifted
//! (`Y = (X - mean) / sqrt(var + epsilon) * Scale + B`), as transformer
//! detectors (RT-DETR's encoder and decoder) use it. The optional `Mean`
//! and `InvStdDev` outputs are written when the node declares them.
//!
//! Scale and B must hold one value per element of a row (the normalised
//! shape, leading 1s allowed) or a single value; other broadcasts are
//! refused at boot. Sums are accumulated in f64.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path (inference thread, rows split over the pool) and never
//! allocates.

use super::movement::norm_axis;
use super::{required, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::Op;
use crate::engine::tensor::{numel, shape_string, Tensor};
use crate::op_bail;

pub struct LayerNorm;

/// `rows` rows of `n` elements; the statistics' shape.
struct Layout {
    rows: usize,
    n: usize,
    stat_shape: Vec<usize>,
}

fn layout(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Layout> {
    let Op::LayerNormalization { axis, .. } = op else {
        op_bail!("{} is not a LayerNormalization", op.name());
    };
    let x = required(ins, 0, "X")?;
    if !x.dtype.is_float() {
        op_bail!("LayerNormalization needs a float input, got {}", x.dtype);
    }
    let a = norm_axis(op, "axis", *axis, x.shape)?;
    let n = numel(&x.shape[a..]);
    for (i, what) in [(1, "Scale"), (2, "B")] {
        if let Some(Some(v)) = ins.get(i) {
            if !v.dtype.is_float() {
                op_bail!("LayerNormalization {what} must be float, got {}", v.dtype);
            }
            let k = numel(v.shape);
            let trailing_ok = v.shape.len() <= x.shape.len() - a
                || v.shape[..v.shape.len() - (x.shape.len() - a)]
                    .iter()
                    .all(|&d| d == 1);
            if !(k == 1 || (k == n && trailing_ok)) {
                op_bail!(
                    "LayerNormalization {what} {} must hold one value per element of the normalised shape {} (or one value)",
                    shape_string(v.shape),
                    shape_string(&x.shape[a..])
                );
            }
        }
    }
    let mut stat_shape = x.shape[..a].to_vec();
    stat_shape.resize(x.shape.len(), 1);
    Ok(Layout {
        rows: numel(&x.shape[..a]),
        n,
        stat_shape,
    })
}

impl OpDef for LayerNorm {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        let l = layout(op, ins)?;
        let x = required(ins, 0, "X")?;
        Ok(vec![
            OutInfo {
                dtype: x.dtype,
                shape: x.shape.to_vec(),
            },
            OutInfo {
                dtype: crate::engine::tensor::DType::F32,
                shape: l.stat_shape.clone(),
            },
            OutInfo {
                dtype: crate::engine::tensor::DType::F32,
                shape: l.stat_shape,
            },
        ])
    }

    fn eval(&self, _op: &Op, _ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        Ok(None)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        let Op::LayerNormalization { epsilon, .. } = op else {
            op_bail!("{} is not a LayerNormalization", op.name());
        };
        let l = layout(op, ins)?;
        let len_of = |i: usize| ins.get(i).copied().flatten().map(|v| numel(v.shape));
        Ok(Box::new(LayerNormKernel {
            rows: l.rows,
            n: l.n,
            epsilon: *epsilon as f64,
            scale_len: len_of(1).unwrap_or(0),
            bias_len: len_of(2).unwrap_or(0),
            stats: outs.len() > 1,
        }))
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

struct LayerNormKernel {
    rows: usize,
    n: usize,
    epsilon: f64,
    /// 0 (absent), 1 (one value) or n.
    scale_len: usize,
    bias_len: usize,
    /// Whether the node declares the Mean / InvStdDev outputs.
    stats: bool,
}

impl CpuKernel for LayerNormKernel {
    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let scale = if self.scale_len > 0 { io.input(1) } else { &[] };
        let bias = if self.bias_len > 0 && io.n_inputs() > 2 {
            io.input(2)
        } else {
            &[]
        };
        let y = Buf::from_slice(io.output(0));
        let (mean_b, inv_b) = if self.stats {
            (Buf::from_slice(io.output(1)), Buf::from_slice(io.output(2)))
        } else {
            (Buf::empty(), Buf::empty())
        };
        let n = self.n;
        let at = |v: &[f32], j: usize, default: f32| match v.len() {
            0 => default,
            1 => v[0],
            _ => v[j],
        };
        par_chunks(pool, self.rows, (GRAIN / n.max(1)).max(1), &|s, e| {
            // SAFETY: par_chunks hands out disjoint row ranges; each task
            // writes rows s..e of Y and of the statistics only.
            let yo = unsafe { buf_range(y, s * n, e * n) };
            // SAFETY: as above, rows s..e of each statistic (empty when the
            // node does not declare them).
            let (mo, io_) = if self.stats {
                unsafe { (buf_range(mean_b, s, e), buf_range(inv_b, s, e)) }
            } else {
                (&mut [][..], &mut [][..])
            };
            for r in s..e {
                let row = &x[r * n..(r + 1) * n];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = row
                    .iter()
                    .map(|&v| {
                        let d = v as f64 - mean;
                        d * d
                    })
                    .sum::<f64>()
                    / n as f64;
                let inv = 1.0 / (var + self.epsilon).sqrt();
                let out = &mut yo[(r - s) * n..(r - s + 1) * n];
                for (j, (o, &v)) in out.iter_mut().zip(row).enumerate() {
                    let norm = ((v as f64 - mean) * inv) as f32;
                    *o = norm * at(scale, j, 1.0) + at(bias, j, 0.0);
                }
                if let (Some(m), Some(i)) = (mo.get_mut(r - s), io_.get_mut(r - s)) {
                    *m = mean as f32;
                    *i = inv as f32;
                }
            }
        });
    }
}
