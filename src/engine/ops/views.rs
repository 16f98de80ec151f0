//! Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout: the same
//! elements under a new shape. The planner usually aliases them away;
//! otherwise a plain copy.
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
use crate::engine::tensor::{checked_numel, numel, shape_string, Tensor};
use crate::op_bail;

pub struct Views;

impl OpDef for Views {
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

pub(super) fn reshape_shape(
    input: &[usize],
    want: &[i64],
    allowzero: bool,
) -> OpResult<Vec<usize>> {
    let total = numel(input);
    let mut out = Vec::with_capacity(want.len());
    let mut infer_at = None;
    for (i, &d) in want.iter().enumerate() {
        match d {
            -1 => {
                if infer_at.replace(i).is_some() {
                    op_bail!("Reshape shape {want:?} has more than one -1");
                }
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&n) => out.push(n),
                None => op_bail!(
                    "Reshape shape {want:?} copies dim {i} (0) but the input {} has rank {}",
                    shape_string(input),
                    input.len()
                ),
            },
            d if d < 0 => op_bail!("Reshape shape {want:?} has an invalid dim {d}"),
            d => out.push(d as usize),
        }
    }
    if allowzero && infer_at.is_some() && want.contains(&0) {
        op_bail!("Reshape shape {want:?} has both 0 and -1 with allowzero set");
    }
    if let Some(i) = infer_at {
        let known = checked_numel(&out).unwrap_or(usize::MAX);
        if known == 0 || !total.is_multiple_of(known) {
            op_bail!(
                "Reshape cannot infer the -1 in {want:?} for input {} ({total} elements)",
                shape_string(input)
            );
        }
        out[i] = total / known;
    }
    if checked_numel(&out) != Some(total) {
        op_bail!(
            "Reshape from {} ({total} elements) to {want:?} ({}) changes the element count",
            shape_string(input),
            shape_string(&out)
        );
    }
    Ok(out)
}

/// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: the planner
/// may alias them away; otherwise a copy (nothing to do in place).
pub(super) struct CopyKernel {
    pub(super) len: usize,
}

impl CpuKernel for CopyKernel {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        if io.is_inplace() {
            return;
        }
        let x = io.input(0);
        let out = io.output(0);
        let n = self.len.min(out.len()).min(x.len());
        par_fill(pool, &mut out[..n], &|d, s| {
            d.copy_from_slice(&x[s..s + d.len()])
        });
    }
}
