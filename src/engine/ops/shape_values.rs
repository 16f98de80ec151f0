//! Constant, Shape, Size, Range and ConstantOfShape: outputs fully known at
//! boot, folded before any backend runs; a kernel that writes the value
//! exists for completeness on the CPU.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
use super::elementwise::wrap_int;
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
#[allow(unused_imports)]
use super::*;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{shape_string, Storage, Tensor, TensorData};
use crate::op_bail;

pub struct ShapeValues;

impl OpDef for ShapeValues {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        movement::infer(op, ins, plan)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        movement::eval(op, ins, plan)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        movement::lower(op, ins, outs, plan)
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(
            n.op(),
            "outputs known at boot are folded, never run on the GPU",
        ))
    }
}

/// The movement plan of this op: its output shapes and the copies that
/// produce them (the family's shared kernels run it).
pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    match op {
        Op::Constant(t) => Ok(Plan::Value(vec![(**t).clone()])),
        Op::Shape { start, end } => {
            let x = required(ins, 0, "data")?;
            let r = x.shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let s = clamp(*start);
            let e = clamp(end.unwrap_or(r));
            let dims: Vec<i64> = if s < e {
                x.shape[s..e].iter().map(|&d| d as i64).collect()
            } else {
                Vec::new()
            };
            Ok(Plan::Value(vec![Tensor::from_i64(vec![dims.len()], dims)]))
        }
        Op::Size => {
            let x = required(ins, 0, "data")?;
            Ok(Plan::Value(vec![Tensor::from_i64(
                vec![],
                vec![numel(x.shape) as i64],
            )]))
        }
        Op::Range => plan_range(ins),
        Op::ConstantOfShape(v) => {
            let dims = const_ints(ins, 0, "shape")?
                .ok_or_else(|| OpError::new("ConstantOfShape needs input 0 (shape)"))?;
            if let Some(&d) = dims.iter().find(|&&d| d < 0) {
                op_bail!("ConstantOfShape shape {dims:?} has a negative dim {d}");
            }
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            let n = checked_numel(&shape)
                .filter(|&n| n <= MAX_FOLD_ELEMS)
                .ok_or_else(|| {
                    OpError::new(format!(
                        "ConstantOfShape shape {dims:?} is larger than {MAX_FOLD_ELEMS} elements"
                    ))
                })?;
            if v.numel() != 1 {
                op_bail!(
                    "ConstantOfShape value must have one element, got {}",
                    v.numel()
                );
            }
            let data = match &v.data {
                TensorData::F32(d) => TensorData::F32(vec![d[0]; n]),
                TensorData::I64(d) => TensorData::I64(vec![d[0]; n]),
                TensorData::Bool(d) => TensorData::Bool(vec![d[0]; n]),
            };
            Ok(Plan::Value(vec![Tensor {
                dtype: v.dtype,
                shape,
                data,
            }]))
        }
        _ => op_bail!("{} is not an op with a boot-time value", op.name()),
    }
}

pub(super) fn plan_range(ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let mut v = Vec::with_capacity(3);
    for (i, what) in [(0, "start"), (1, "limit"), (2, "delta")] {
        let t = super::constant(ins, i, what)?;
        if t.numel() != 1 {
            op_bail!(
                "Range {what} (input {i}) must be a scalar, got shape {}",
                shape_string(&t.shape)
            );
        }
        v.push(t);
    }
    let dtype = v[0].dtype;
    let too_big = |n: i128| {
        OpError::new(format!(
            "Range would produce {n} elements (limit {MAX_FOLD_ELEMS})"
        ))
    };
    let t = match dtype.storage() {
        Storage::I64 => {
            let [s, l, d] = [0, 1, 2].map(|i| v[i].to_i64_vec()[0] as i128);
            if d == 0 {
                op_bail!("Range delta is 0");
            }
            let n = ((l - s + d - d.signum()) / d).max(0);
            if n > MAX_FOLD_ELEMS as i128 {
                return Err(too_big(n));
            }
            let data = (0..n)
                .map(|i| wrap_int(dtype, (s + i * d) as i64))
                .collect();
            Tensor {
                dtype,
                shape: vec![n as usize],
                data: TensorData::I64(data),
            }
        }
        Storage::F32 => {
            let [s, l, d] = [0, 1, 2].map(|i| v[i].to_f32_vec()[0] as f64);
            if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
                op_bail!("Range start {s}, limit {l}, delta {d} do not give a finite range");
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if n > MAX_FOLD_ELEMS as f64 {
                return Err(too_big(n as i128));
            }
            let n = n as usize;
            let data = (0..n).map(|i| (s + i as f64 * d) as f32).collect();
            Tensor {
                dtype,
                shape: vec![n],
                data: TensorData::F32(data),
            }
        }
        Storage::Bool => op_bail!("Range does not take bool inputs"),
    };
    Ok(Plan::Value(vec![t]))
}

/// An output known at boot, written each run.
pub(super) struct ValueKernel {
    pub(super) vals: Vec<f32>,
}

impl CpuKernel for ValueKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], _pool: &ThreadPool) {
        let out = io.output(0);
        let n = self.vals.len().min(out.len());
        out[..n].copy_from_slice(&self.vals[..n]);
    }
}
