//! Pad (constant, reflect, edge, wrap).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
use super::elementwise::row_segments;
use super::movement;
#[allow(unused_imports)]
use super::movement::*;
use super::OpDef;
#[allow(unused_imports)]
use super::*;
use super::{required, OutInfo, ValueInfo};
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
#[allow(unused_imports)]
use crate::engine::ir::*;
use crate::engine::ir::{Op, PadMode};
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{checked_numel, shape_string, strides, Tensor};
use crate::op_bail;

pub struct Pad;

impl OpDef for Pad {
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
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

/// The movement plan of this op: its output shapes and the copies that
/// produce them (the family's shared kernels run it).
pub(super) fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    match op {
        Op::Pad { mode, pads, value } => plan_pad(op, ins, *mode, pads, *value),
        _ => op_bail!("{} is not a Pad", op.name()),
    }
}

/// Pad: per output axis, the input index each output index reads (-1: the
/// constant value), so all four modes share one walk. The last axis keeps
/// its contiguous interior for plain copies.
#[derive(Debug, Clone)]
pub(super) struct PadPlan {
    pub(super) out_dims: Vec<usize>,
    pub(super) in_strides: Vec<usize>,
    pub(super) maps: Vec<Vec<i64>>,
    /// Output columns `[lo, hi)` of the last axis read input columns
    /// `lo - shift ..`.
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) shift: isize,
    pub(super) inner: usize,
    pub(super) len: usize,
}

impl PadPlan {
    pub(super) fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize, value: T) {
        let r = self.out_dims.len();
        if r == 0 {
            if let Some(d) = dst.first_mut() {
                *d = src[0];
            }
            return;
        }
        let last = &self.maps[r - 1];
        row_segments(s, s + dst.len(), self.inner, |row, col, n| {
            let at = row * self.inner + col - s;
            let d = &mut dst[at..at + n];
            // Source offset of this row, or None when it lies in padding.
            let mut off = Some(0usize);
            let mut rem = row;
            for ax in (0..r - 1).rev() {
                let i = rem % self.out_dims[ax];
                rem /= self.out_dims[ax];
                let m = self.maps[ax][i];
                if m < 0 {
                    off = None;
                    break;
                }
                off = off.map(|o| o + m as usize * self.in_strides[ax]);
            }
            let Some(off) = off else {
                d.fill(value);
                return;
            };
            let (c0, c1) = (col.max(self.lo), (col + n).min(self.hi));
            for (j, v) in d.iter_mut().enumerate() {
                let c = col + j;
                if c >= c0 && c < c1 {
                    continue;
                }
                let m = last[c];
                *v = if m < 0 { value } else { src[off + m as usize] };
            }
            if c0 < c1 {
                let from = (off as isize + c0 as isize - self.shift) as usize;
                d[c0 - col..c1 - col].copy_from_slice(&src[from..from + (c1 - c0)]);
            }
        });
    }
}

pub(super) fn plan_pad(
    op: &Op,
    ins: &[Option<ValueInfo>],
    mode: PadMode,
    pads: &Option<Vec<i64>>,
    value: f32,
) -> OpResult<Plan> {
    let x = required(ins, 0, "data")?;
    let r = x.shape.len();
    let pads = match pads {
        Some(p) => p.clone(),
        None => const_ints(ins, 1, "pads")?
            .ok_or_else(|| OpError::new("Pad needs pads (attribute or input 1)"))?,
    };
    let value = match ins.get(2).copied().flatten() {
        Some(v) => {
            let t = v.value.ok_or_else(|| {
                OpError::new("Pad constant_value (input 2) must be a constant computable at boot")
            })?;
            match t.numel() {
                0 => Scalar::from_f32(value),
                1 => Scalar::of(t).unwrap_or(Scalar::from_f32(value)),
                n => op_bail!("Pad constant_value must be a scalar, got {n} values"),
            }
        }
        None => Scalar::from_f32(value),
    };
    let axes: Vec<usize> = match const_ints(ins, 3, "axes")? {
        Some(a) => {
            let mut out = Vec::with_capacity(a.len());
            for &ax in &a {
                let n = norm_axis(op, "axis", ax, x.shape)?;
                if out.contains(&n) {
                    op_bail!("Pad axes {a:?} repeat axis {ax}");
                }
                out.push(n);
            }
            out
        }
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        op_bail!(
            "Pad pads {pads:?} has {} values but {} axes need {}",
            pads.len(),
            axes.len(),
            2 * axes.len()
        );
    }
    let mut before = vec![0i64; r];
    let mut after = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        before[a] = pads[i];
        after[a] = pads[axes.len() + i];
    }
    let mut shape = Vec::with_capacity(r);
    let mut maps = Vec::with_capacity(r);
    for d in 0..r {
        let n = x.shape[d] as i64;
        let o = n
            .checked_add(before[d])
            .and_then(|v| v.checked_add(after[d]))
            .filter(|&o| o >= 0)
            .ok_or_else(|| {
                OpError::new(format!(
                    "Pad pads {pads:?} make axis {d} of {} negative",
                    shape_string(x.shape)
                ))
            })?;
        if o as u64 > MAX_FOLD_ELEMS as u64 {
            op_bail!("Pad makes axis {d} {o} long");
        }
        // Negative pads crop first; the positive ones then pad what is
        // left, with reflect/edge/wrap relative to the cropped borders (as
        // ONNX Runtime does).
        let (cb, ce) = ((-before[d]).max(0), (-after[d]).max(0));
        // Cropping more than the axis holds leaves nothing (only constant
        // padding can then fill the output).
        let kept = (n - cb - ce).max(0);
        if mode != PadMode::Constant && kept == 0 && o > 0 {
            op_bail!("Pad mode {mode:?} cannot pad axis {d}, which is empty");
        }
        let pb = before[d].max(0);
        let map: Vec<i64> = (0..o)
            .map(|j| {
                let i = j - pb;
                let k = kept;
                let i = if (0..k).contains(&i) {
                    i
                } else {
                    match mode {
                        PadMode::Constant => return -1,
                        PadMode::Edge => i.max(0).min(k - 1),
                        PadMode::Wrap => i.rem_euclid(k),
                        PadMode::Reflect if k == 1 => 0,
                        PadMode::Reflect => {
                            let p = 2 * (k - 1);
                            let m = i.rem_euclid(p);
                            if m >= k {
                                p - m
                            } else {
                                m
                            }
                        }
                    }
                };
                i + cb
            })
            .collect();
        shape.push(o as usize);
        maps.push(map);
    }
    let (lo, hi, shift) = match r {
        0 => (0, 0, 0),
        _ => {
            let b = before[r - 1];
            let o = shape[r - 1] as i64;
            let lo = b.clamp(0, o);
            let hi = (b + x.shape[r - 1] as i64).clamp(lo, o);
            (lo as usize, hi as usize, b as isize)
        }
    };
    let len = checked_numel(&shape).unwrap_or(usize::MAX);
    Ok(Plan::Pad {
        p: PadPlan {
            in_strides: strides(x.shape),
            inner: shape.last().copied().unwrap_or(1),
            out_dims: shape.clone(),
            maps,
            lo,
            hi,
            shift,
            len,
        },
        shape,
        value,
    })
}

pub(super) struct PadKernel {
    pub(super) p: PadPlan,
    pub(super) value: f32,
}

impl CpuKernel for PadKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| {
            self.p.copy_range(x, d, s, self.value)
        });
    }
}
