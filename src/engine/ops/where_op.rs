//! Where: select X or Y by a (boot-time) condition, with broadcasting.
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
use crate::engine::tensor::{Tensor, TensorData};
use crate::op_bail;

pub struct Where;

impl OpDef for Where {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        match op {
            Op::Where => {
                let c = required(ins, 0, "condition")?;
                let x = required(ins, 1, "X")?;
                let y = required(ins, 2, "Y")?;
                if c.dtype.is_float() {
                    op_bail!(
                        "Where's condition must be bool (or integer), got {}",
                        c.dtype
                    );
                }
                if x.dtype.storage() != y.dtype.storage() {
                    op_bail!(
                        "Where's X and Y differ in type: {} and {}",
                        x.dtype,
                        y.dtype
                    );
                }
                let xy = broadcast2(x.shape, y.shape, "Where (X, Y)")?;
                let shape = broadcast2(c.shape, &xy, "Where (condition, X/Y)")?;
                Ok(vec![OutInfo {
                    dtype: x.dtype,
                    shape,
                }])
            }
            _ => op_bail!("{} is not a Where", op.name()),
        }
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
        let outs = self.infer(op, &infos)?;
        let out = &outs[0];
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
        match op {
            Op::Where => {
                let c = &cond_bools(x)?;
                let (Some(xt), Some(yt)) = (ins[1], ins[2]) else {
                    op_bail!("Where needs inputs X and Y");
                };
                let bc = Bcast::new(&[&x.shape, &xt.shape, &yt.shape], &out.shape);
                let data = match (&xt.data, &yt.data) {
                    (TensorData::F32(a), TensorData::F32(b)) => {
                        TensorData::F32(eval_where(&bc, c, a, b))
                    }
                    (TensorData::I64(a), TensorData::I64(b)) => {
                        TensorData::I64(eval_where(&bc, c, a, b))
                    }
                    (TensorData::Bool(a), TensorData::Bool(b)) => {
                        TensorData::Bool(eval_where(&bc, c, a, b))
                    }
                    _ => op_bail!(
                        "Where's X and Y differ in type: {} and {}",
                        xt.dtype,
                        yt.dtype
                    ),
                };
                Ok(Some(vec![tensor(out.dtype, out.shape.clone(), data)]))
            }
            _ => op_bail!("{} is not a Where", op.name()),
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
        let c = required(ins, 0, "condition")?;
        if let (Op::Where, None) = (op, c.value) {
            // A run-time condition (a bool held as 1.0 / 0.0), choosing
            // between float tensors or run-time integers held as f32 (see
            // `ops::runs_on_integers`).
            for i in [1, 2] {
                let v = required(ins, i, if i == 1 { "X" } else { "Y" })?;
                if v.value.is_some() && !v.dtype.is_float() {
                    op_bail!(
                        "Where with a run-time condition: input {i} is a {} constant; only float constants may be",
                        v.dtype
                    );
                }
            }
            let (x, y) = (required(ins, 1, "X")?, required(ins, 2, "Y")?);
            return Ok(Box::new(RuntimeWhereKernel {
                bc: Bcast::new(&[c.shape, x.shape, y.shape], &out.shape),
            }));
        }
        check_runtime_float(op, ins, outs)?;
        match op {
            Op::Where => {
                let Some(ct) = c.value else {
                    op_bail!("Where condition (input 0) must be a constant computable at boot");
                };
                let cond = cond_bools(ct)?;
                let x = required(ins, 1, "X")?;
                let y = required(ins, 2, "Y")?;
                check_float_data(op, 1, &x)?;
                check_float_data(op, 2, &y)?;
                Ok(Box::new(WhereKernel {
                    cond,
                    bc: Bcast::new(&[c.shape, x.shape, y.shape], &out.shape),
                }))
            }
            _ => op_bail!("{} is not a Where", op.name()),
        }
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

/// `Where` over one row piece: the single implementation for every dtype.
#[inline]
pub(super) fn where_piece<T: Copy>(
    cond: &[bool],
    x: &[T],
    y: &[T],
    offs: [usize; 3],
    st: [usize; 3],
    out: &mut [T],
) {
    let [oc, ox, oy] = offs;
    let [sc, sx, sy] = st;
    for (i, o) in out.iter_mut().enumerate() {
        *o = if cond[oc + i * sc] {
            x[ox + i * sx]
        } else {
            y[oy + i * sy]
        };
    }
}

/// `Where` with a boot-time condition and runtime X/Y.
pub(super) struct WhereKernel {
    pub(super) cond: Vec<bool>,
    pub(super) bc: Bcast,
}

impl CpuKernel for WhereKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let (x, y) = (io.input(1), io.input(2));
        let ob = Buf::from_slice(io.output(0));
        let bc = &self.bc;
        let st = [bc.inner_stride(0), bc.inner_stride(1), bc.inner_stride(2)];
        par_chunks(pool, bc.len, GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            bc.segments::<3>(s, e, |start, n, offs| {
                where_piece(&self.cond, x, y, offs, st, &mut o[start - s..start - s + n]);
            });
        });
    }
}

/// `Where` with a run-time condition held as 1.0 / 0.0.
pub(super) struct RuntimeWhereKernel {
    pub(super) bc: Bcast,
}

impl CpuKernel for RuntimeWhereKernel {
    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let (c, x, y) = (io.input(0), io.input(1), io.input(2));
        let ob = Buf::from_slice(io.output(0));
        let bc = &self.bc;
        let st = [bc.inner_stride(0), bc.inner_stride(1), bc.inner_stride(2)];
        par_chunks(pool, bc.len, GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            bc.segments::<3>(s, e, |start, n, offs| {
                let [oc, ox, oy] = offs;
                let [sc, sx, sy] = st;
                for (i, v) in o[start - s..start - s + n].iter_mut().enumerate() {
                    *v = if c[oc + i * sc] != 0.0 {
                        x[ox + i * sx]
                    } else {
                        y[oy + i * sy]
                    };
                }
            });
        });
    }
}

/// Where's condition as bools (integer conditions: nonzero is true).
pub(super) fn cond_bools(t: &Tensor) -> OpResult<Vec<bool>> {
    match &t.data {
        TensorData::Bool(v) => Ok(v.clone()),
        TensorData::I64(v) => Ok(v.iter().map(|&c| c != 0).collect()),
        TensorData::F32(_) => Err(data_mismatch("Where condition (input 0)", t)),
    }
}

pub(super) fn eval_where<T: Copy + Default>(bc: &Bcast, c: &[bool], x: &[T], y: &[T]) -> Vec<T> {
    let mut out = vec![T::default(); bc.len];
    let st = [bc.inner_stride(0), bc.inner_stride(1), bc.inner_stride(2)];
    bc.segments::<3>(0, bc.len, |start, n, offs| {
        where_piece(c, x, y, offs, st, &mut out[start..start + n]);
    });
    out
}
