//! Where: select X or Y by a (boot-time) condition, with broadcasting.
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
use crate::engine::tensor::{Tensor, TensorData};

pub struct Where;

impl OpDef for Where {
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
