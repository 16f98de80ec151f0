//! Split into several outputs along one axis.
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

use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::Op;
use crate::engine::tensor::Tensor;

pub struct Split;

impl OpDef for Split {
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

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        movement::lower_cuda_copies(n, cx)
    }
}

pub(super) struct SplitKernel {
    pub(super) ps: Vec<Strided>,
}

impl CpuKernel for SplitKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        for (k, p) in self.ps.iter().enumerate() {
            let out = io.output(k);
            let n = p.len.min(out.len());
            par_fill(pool, &mut out[..n], &|d, s| p.copy_range(x, d, s));
        }
    }
}
