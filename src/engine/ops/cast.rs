//! Cast between element types. Float-to-float casts run at run time (a
//! copy, or rounding to f16 precision on the CPU); the rest at boot.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::elementwise::*;
use super::unary::{MapFn, MapKernel};
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
use crate::engine::cpu::CpuKernel;
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::half::round_to_f16;
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{DType, Storage, Tensor, TensorData};
use crate::op_bail;

pub struct Cast;

impl OpDef for Cast {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        match op {
            Op::Cast { to } => {
                let x = required(ins, 0, "input")?;
                Ok(vec![OutInfo {
                    dtype: *to,
                    shape: x.shape.to_vec(),
                }])
            }
            _ => op_bail!("{} is not a Cast", op.name()),
        }
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
        match op {
            Op::Cast { to } => {
                if matches!(x.data, TensorData::F32(_)) && to.is_float() {
                    return Ok(None);
                }
                Ok(Some(vec![tensor(
                    *to,
                    x.shape.clone(),
                    cast_data(&x.data, *to),
                )]))
            }
            _ => op_bail!("{} is not a Cast", op.name()),
        }
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        let out = outs
            .first()
            .ok_or_else(|| OpError::new(format!("{} has no output", op.name())))?;
        match op {
            Op::Cast { to } => {
                let x = required(ins, 0, "input")?;
                // Run-time integers (held as exact f32 values, see
                // `ops::runs_on_integers`) cast to float are a copy; float
                // to integer would need rounding and range checks and is
                // not supported at run time.
                if x.value.is_none() && x.dtype.storage() == Storage::I64 && to.is_float() {
                    return Ok(Box::new(MapKernel {
                        f: if *to == DType::F16 {
                            MapFn::ToF16
                        } else {
                            MapFn::Copy
                        },
                        len: numel(&out.shape),
                    }));
                }
                check_runtime_float(op, ins, outs)?;
                check_float_data(op, 0, &x)?;
                let f = if *to == DType::F16 {
                    MapFn::ToF16
                } else {
                    MapFn::Copy
                };
                Ok(Box::new(MapKernel {
                    f,
                    len: numel(&out.shape),
                }))
            }
            _ => op_bail!("{} is not a Cast", op.name()),
        }
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

pub(super) fn cast_data(d: &TensorData, to: DType) -> TensorData {
    match (d, to.storage()) {
        (TensorData::F32(v), Storage::F32) => TensorData::F32(if to == DType::F16 {
            v.iter().map(|&x| round_to_f16(x)).collect()
        } else {
            v.clone()
        }),
        (TensorData::F32(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| wrap_int(to, x as i64)).collect())
        }
        (TensorData::F32(v), Storage::Bool) => {
            TensorData::Bool(v.iter().map(|&x| x != 0.0).collect())
        }
        (TensorData::I64(v), Storage::F32) => TensorData::F32(
            v.iter()
                .map(|&x| {
                    let f = x as f32;
                    if to == DType::F16 {
                        round_to_f16(f)
                    } else {
                        f
                    }
                })
                .collect(),
        ),
        (TensorData::I64(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| wrap_int(to, x)).collect())
        }
        (TensorData::I64(v), Storage::Bool) => {
            TensorData::Bool(v.iter().map(|&x| x != 0).collect())
        }
        (TensorData::Bool(v), Storage::F32) => {
            TensorData::F32(v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect())
        }
        (TensorData::Bool(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| x as i64).collect())
        }
        (TensorData::Bool(v), Storage::Bool) => TensorData::Bool(v.clone()),
    }
}
