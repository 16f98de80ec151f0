//! Slice (steps, negative indices, opset < 10 attributes).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
#[allow(unused_imports)]
use super::*;
use super::{required, OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
use crate::engine::cpu::CpuKernel;
#[allow(unused_imports)]
use crate::engine::cpu::*;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{numel, Tensor};
use crate::op_bail;

pub struct Slice;

impl OpDef for Slice {
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

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        movement::lower_cuda_copies(n, cx, plan)
    }
}

/// The movement plan of this op: its output shapes and the copies that
/// produce them (the family's shared kernels run it).
pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    match op {
        Op::Slice { starts, ends, axes } => plan_slice(op, ins, starts, ends, axes),
        _ => op_bail!("{} is not a Slice", op.name()),
    }
}

pub(super) fn plan_slice(
    op: &Op,
    ins: &[Option<ValueInfo>],
    starts: &Option<Vec<i64>>,
    ends: &Option<Vec<i64>>,
    axes: &Option<Vec<i64>>,
) -> OpResult<Plan> {
    let x = required(ins, 0, "data")?;
    let r = x.shape.len();
    let (starts, ends, axes, steps) = match starts {
        Some(s) => (
            s.clone(),
            ends.clone()
                .ok_or_else(|| OpError::new("Slice has `starts` but no `ends` attribute"))?,
            axes.clone(),
            None,
        ),
        None => (
            const_ints(ins, 1, "starts")?
                .ok_or_else(|| OpError::new("Slice needs input 1 (starts)"))?,
            const_ints(ins, 2, "ends")?
                .ok_or_else(|| OpError::new("Slice needs input 2 (ends)"))?,
            const_ints(ins, 3, "axes")?,
            const_ints(ins, 4, "steps")?,
        ),
    };
    let k = starts.len();
    if ends.len() != k {
        op_bail!("Slice starts {starts:?} and ends {ends:?} differ in length");
    }
    let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; k]);
    if axes.len() != k || steps.len() != k {
        op_bail!("Slice axes {axes:?} / steps {steps:?} must have {k} values like starts");
    }
    let in_st = isize_strides(x.shape);
    let mut shape = x.shape.to_vec();
    let mut st = in_st.clone();
    let mut base = 0usize;
    let mut seen = vec![false; r];
    for i in 0..k {
        let a = norm_axis(op, "axis", axes[i], x.shape)?;
        if seen[a] {
            op_bail!("Slice axes {axes:?} repeat axis {}", axes[i]);
        }
        seen[a] = true;
        let step = steps[i] as i128;
        if step == 0 {
            op_bail!("Slice step for axis {} is 0", axes[i]);
        }
        let d = x.shape[a] as i128;
        let (mut s, mut e) = (starts[i] as i128, ends[i] as i128);
        if s < 0 {
            s += d;
        }
        if e < 0 {
            e += d;
        }
        // max/min rather than clamp: a 0-long axis has d - 1 < 0.
        let (s, e) = if step > 0 {
            (s.max(0).min(d), e.max(0).min(d))
        } else {
            (s.max(0).min(d - 1), e.max(-1).min(d - 1))
        };
        let n = if step > 0 && e > s {
            (e - s + step - 1) / step
        } else if step < 0 && s > e {
            (s - e - step - 1) / -step
        } else {
            0
        };
        shape[a] = n as usize;
        if n > 0 {
            base += s as usize * in_st[a] as usize;
            st[a] = in_st[a] * step as isize;
        }
    }
    if numel(&shape) == 0 {
        base = 0;
    }
    Ok(Plan::Strided {
        p: Strided::new(&shape, &st, base),
        shape,
    })
}
