//! Gather along one axis with boot-time indices.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

//! Shape and data-movement ops: Concat, Split, Slice, Reshape, Transpose,
//! Flatten, Squeeze, Unsqueeze, Gather, Expand, Pad, Shape, Size, Range,
//! ConstantOfShape, Constant, Identity, Dropout.
//!
//! Every op is first resolved into a [`Plan`] (output shapes plus the index
//! arithmetic: collapsed strides, concat chunks, gather and pad index
//! tables), in one place. `infer` reads the shapes off the plan, `eval` runs
//! it on owned tensors of any element type, and `lower` wraps it in a
//! kernel that runs it on f32 arena slices: the data movement itself is
//! written once, generic over the element type.
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! allocate. Kernels' `run` is on the frame path (inference thread, work
//! split over the kernel pool by output range) and never allocates.

use super::elementwise::row_segments;
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::Op;
use crate::engine::tensor::Tensor;

pub struct Gather;

impl OpDef for Gather {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        movement::infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        movement::eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        movement::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

/// Gather along an axis: output `[outer, K, inner]` from data
/// `[outer, n, inner]` through the (normalised) index table.
#[derive(Debug, Clone)]
pub(super) struct GatherPlan {
    pub(super) n: usize,
    pub(super) inner: usize,
    pub(super) idx: Vec<usize>,
    pub(super) len: usize,
}

impl GatherPlan {
    pub(super) fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
        let k = self.idx.len();
        row_segments(s, s + dst.len(), self.inner, |row, col, len| {
            let (o, j) = (row / k, row % k);
            let from = (o * self.n + self.idx[j]) * self.inner + col;
            let at = row * self.inner + col - s;
            dst[at..at + len].copy_from_slice(&src[from..from + len]);
        });
    }
}

pub(super) struct GatherKernel {
    pub(super) p: GatherPlan,
}

impl CpuKernel for GatherKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(x, d, s));
    }
}
