//! GatherElements: `out[i0, .., ia, ..] = data[i0, .., indices[i0, .., ia, ..], ..]`
//! along one axis, with the index tensor as large as the output. NMS-free
//! detection heads (YOLOv10, YOLO26) pick their final boxes and scores
//! with it, from indices TopK computes at run time.
//!
//! Indices may be a boot-time constant (checked against the axis at boot)
//! or a run-time integer tensor, held in the arena as exact f32 values
//! (see `ops::runs_on_integers`). A run-time index outside the axis, which
//! ONNX leaves undefined and which TopK-derived indices never are, gives
//! NaN in the output rather than reading out of bounds.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path (inference thread, split over the pool by output range) and
//! never allocates.

use super::movement::norm_axis;
use super::movement::par_fill;
use super::{required, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
use crate::engine::tensor::{numel, shape_string, strides, Tensor, TensorData};
use crate::op_bail;

pub struct GatherElements;

/// Output shape (= the indices' shape) and the data's strides, resolved.
#[derive(Debug, Clone)]
struct Plan {
    axis: usize,
    /// Data length along the axis.
    n: usize,
    out_shape: Vec<usize>,
    /// Data strides per dimension.
    data_strides: Vec<usize>,
}

impl Plan {
    fn new(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
        let Op::GatherElements { axis } = op else {
            op_bail!("{} is not a GatherElements", op.name());
        };
        let x = required(ins, 0, "data")?;
        let ix = required(ins, 1, "indices")?;
        if ix.dtype.is_float() || ix.dtype == crate::engine::tensor::DType::Bool {
            op_bail!("GatherElements indices must be integers, got {}", ix.dtype);
        }
        if x.shape.len() != ix.shape.len() || x.shape.is_empty() {
            op_bail!(
                "GatherElements data ({}) and indices ({}) must have the same rank, at least 1",
                shape_string(x.shape),
                shape_string(ix.shape)
            );
        }
        let a = norm_axis(op, "axis", *axis, x.shape)?;
        for (d, (&i, &s)) in ix.shape.iter().zip(x.shape).enumerate() {
            if d != a && i > s {
                op_bail!(
                    "GatherElements indices ({}) are larger than data ({}) in dimension {d}",
                    shape_string(ix.shape),
                    shape_string(x.shape)
                );
            }
        }
        if let Some(t) = ix.value {
            let n = x.shape[a] as i64;
            if let Some(&bad) = t.to_i64_vec().iter().find(|&&i| i < -n || i >= n) {
                op_bail!(
                    "GatherElements index {bad} is out of range for axis {axis} of size {n} ({})",
                    shape_string(x.shape)
                );
            }
        }
        Ok(Plan {
            axis: a,
            n: x.shape[a],
            out_shape: ix.shape.to_vec(),
            data_strides: strides(x.shape),
        })
    }

    /// Data offset of output element `e` whose index value is `j` (already
    /// in 0..n).
    #[inline]
    fn source(&self, mut e: usize, j: usize) -> usize {
        let mut off = 0;
        for d in (0..self.out_shape.len()).rev() {
            let dim = self.out_shape[d];
            let c = e % dim;
            e /= dim;
            off += if d == self.axis { j } else { c } * self.data_strides[d];
        }
        off
    }

    /// The index value as a position on the axis, if it is one.
    #[inline]
    fn position(&self, i: i64) -> Option<usize> {
        let n = self.n as i64;
        let j = if i < 0 { i + n } else { i };
        (0..n).contains(&j).then_some(j as usize)
    }
}

impl OpDef for GatherElements {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        let p = Plan::new(op, ins)?;
        Ok(vec![OutInfo {
            dtype: required(ins, 0, "data")?.dtype,
            shape: p.out_shape,
        }])
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
        let p = Plan::new(op, &infos)?;
        let (Some(x), Some(ix)) = (ins[0], ins.get(1).copied().flatten()) else {
            op_bail!("GatherElements needs data and indices");
        };
        let idx = ix.to_i64_vec();
        let src = |e: usize| -> OpResult<usize> {
            let j = p.position(idx[e]).ok_or_else(|| {
                OpError::new(format!("GatherElements index {} is out of range", idx[e]))
            })?;
            Ok(p.source(e, j))
        };
        let len = numel(&p.out_shape);
        let data = match &x.data {
            TensorData::F32(v) => {
                TensorData::F32((0..len).map(|e| Ok(v[src(e)?])).collect::<OpResult<_>>()?)
            }
            TensorData::I64(v) => {
                TensorData::I64((0..len).map(|e| Ok(v[src(e)?])).collect::<OpResult<_>>()?)
            }
            TensorData::Bool(v) => {
                TensorData::Bool((0..len).map(|e| Ok(v[src(e)?])).collect::<OpResult<_>>()?)
            }
        };
        Ok(Some(vec![Tensor {
            dtype: x.dtype,
            shape: p.out_shape,
            data,
        }]))
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        _outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        let p = Plan::new(op, ins)?;
        let x = required(ins, 0, "data")?;
        if x.value.is_some() && !x.dtype.is_float() {
            op_bail!(
                "GatherElements: data is a {} constant gathered at run time; only float constants may be",
                x.dtype
            );
        }
        if x.dtype == crate::engine::tensor::DType::Bool {
            op_bail!("GatherElements: bool data cannot be gathered at run time");
        }
        // Constant indices are converted once; run-time ones are read from
        // the arena as f32-held integers.
        let const_idx = required(ins, 1, "indices")?.value.map(|t| {
            t.to_i64_vec()
                .into_iter()
                .map(|i| p.position(i).unwrap_or(0) as f32)
                .collect()
        });
        Ok(Box::new(GatherElementsKernel { p, const_idx }))
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

struct GatherElementsKernel {
    p: Plan,
    /// Constant indices, normalised to 0..n at boot.
    const_idx: Option<Vec<f32>>,
}

impl CpuKernel for GatherElementsKernel {
    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let idx: &[f32] = match &self.const_idx {
            Some(c) => c,
            None => io.input(1),
        };
        let out = io.output(0);
        par_fill(pool, out, &|d, s| {
            for (k, o) in d.iter_mut().enumerate() {
                let e = s + k;
                let v = idx[e];
                // An index that is not an integer on the axis (cannot come
                // from TopK) reads nothing.
                *o = match (v.fract() == 0.0)
                    .then(|| self.p.position(v as i64))
                    .flatten()
                {
                    Some(j) => x[self.p.source(e, j)],
                    None => f32::NAN,
                };
            }
        });
    }
}
