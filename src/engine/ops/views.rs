//! Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout: the same
//! elements under a new shape. The planner usually aliases them away;
//! otherwise a plain copy.
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
use super::{OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::lower::{GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::ir::Op;
#[allow(unused_imports)]
use crate::engine::ir::*;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{checked_numel, numel, shape_string, Tensor};
use crate::op_bail;

pub struct Views;

impl OpDef for Views {
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
        Op::Identity => {
            let x = required(ins, 0, "input")?;
            Ok(Plan::Copy {
                shape: x.shape.to_vec(),
                mask: false,
            })
        }
        Op::Dropout => {
            let x = required(ins, 0, "data")?;
            if let Some(Some(t)) = ins.get(2) {
                match t.value {
                    Some(v) if v.to_i64_vec().iter().all(|&b| b == 0) => {}
                    Some(_) => {
                        op_bail!("Dropout in training mode is not supported (inference only)")
                    }
                    None => op_bail!(
                        "Dropout training_mode (input 2) must be a constant computable at boot"
                    ),
                }
            }
            Ok(Plan::Copy {
                shape: x.shape.to_vec(),
                mask: true,
            })
        }
        Op::Reshape { allowzero } => {
            let x = required(ins, 0, "data")?;
            let want = const_ints(ins, 1, "shape")?
                .ok_or_else(|| OpError::new("Reshape needs input 1 (shape)"))?;
            Ok(Plan::Copy {
                shape: reshape_shape(x.shape, &want, *allowzero)?,
                mask: false,
            })
        }
        Op::Flatten { axis } => {
            let x = required(ins, 0, "input")?;
            let r = x.shape.len() as i64;
            let a = if *axis < 0 { axis + r } else { *axis };
            if a < 0 || a > r {
                op_bail!(
                    "Flatten axis {axis} is out of range for a rank-{r} input ({})",
                    shape_string(x.shape)
                );
            }
            let a = a as usize;
            Ok(Plan::Copy {
                shape: vec![numel(&x.shape[..a]), numel(&x.shape[a..])],
                mask: false,
            })
        }
        Op::Squeeze { axes } => {
            let x = required(ins, 0, "data")?;
            let axes = match axes {
                // Opset < 13: an empty attribute means "every 1"; an empty
                // axes input (opset 13) squeezes nothing.
                Some(a) if a.is_empty() => None,
                Some(a) => Some(a.clone()),
                None => const_ints(ins, 1, "axes")?,
            };
            let shape = match axes {
                None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let mut drop = vec![false; x.shape.len()];
                    for &a in &axes {
                        let n = norm_axis(op, "axis", a, x.shape)?;
                        if x.shape[n] != 1 {
                            op_bail!(
                                "Squeeze axis {a} has size {}, not 1, in {}",
                                x.shape[n],
                                shape_string(x.shape)
                            );
                        }
                        drop[n] = true;
                    }
                    x.shape
                        .iter()
                        .zip(&drop)
                        .filter(|(_, &d)| !d)
                        .map(|(&n, _)| n)
                        .collect()
                }
            };
            Ok(Plan::Copy { shape, mask: false })
        }
        Op::Unsqueeze { axes } => {
            let x = required(ins, 0, "data")?;
            let axes = match axes {
                Some(a) => a.clone(),
                None => const_ints(ins, 1, "axes")?
                    .ok_or_else(|| OpError::new("Unsqueeze needs axes (attribute or input 1)"))?,
            };
            let r = x.shape.len() + axes.len();
            let mut ins_at = vec![false; r];
            for &a in &axes {
                let n = normalize_axis(a, r).ok_or_else(|| {
                    OpError::new(format!(
                        "Unsqueeze axis {a} is out of range for a rank-{r} output (input {})",
                        shape_string(x.shape)
                    ))
                })?;
                if ins_at[n] {
                    op_bail!("Unsqueeze axes {axes:?} repeat axis {a}");
                }
                ins_at[n] = true;
            }
            let mut it = x.shape.iter();
            let shape = ins_at
                .iter()
                .map(|&u| {
                    if u {
                        1
                    } else {
                        it.next().copied().unwrap_or(1)
                    }
                })
                .collect();
            Ok(Plan::Copy { shape, mask: false })
        }
        _ => op_bail!("{} is not a reshaping view", op.name()),
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
