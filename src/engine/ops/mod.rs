//! Op implementations, one file per op family (see [`Family`]). Each family
//! provides, for its ops:
//!
//! * `infer`: output dtypes and shapes from input dtypes/shapes and any
//!   constant inputs (shape-carrying inputs must be constant at boot);
//! * `eval`: evaluation on owned tensors, used by constant folding. A family
//!   may return `Ok(None)` for f32 data, which then runs through its own CPU
//!   kernel (one implementation of each op, not two);
//! * `lower`: the CPU kernel for the run phase, with every parameter resolved
//!   and weights packed at boot.
//!
//! Everything here runs at boot and may allocate, except `CpuKernel::run`,
//! which is on the frame path (inference thread) and never allocates.

pub mod elementwise;
pub mod linear;
pub mod movement;
pub mod pool;
pub mod reduce;
pub mod resize;

use super::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use super::error::{OpError, OpResult};
use super::ir::{Family, Op};
use super::tensor::{DType, Tensor, TensorData};

/// What an op implementation knows about one of its inputs at boot.
#[derive(Debug, Clone, Copy)]
pub struct ValueInfo<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    /// The value, when the input is a constant (initializer or folded).
    pub value: Option<&'a Tensor>,
}

impl<'a> ValueInfo<'a> {
    pub fn of(t: &'a Tensor) -> ValueInfo<'a> {
        ValueInfo {
            dtype: t.dtype,
            shape: &t.shape,
            value: Some(t),
        }
    }
}

/// An output's dtype and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct OutInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Output dtypes and shapes of `op`.
pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    match op.family() {
        Family::Linear => linear::infer(op, ins),
        Family::Pool => pool::infer(op, ins),
        Family::Resize => resize::infer(op, ins),
        Family::Elementwise => elementwise::infer(op, ins),
        Family::Reduce => reduce::infer(op, ins),
        Family::Movement => movement::infer(op, ins),
    }
}

/// The run-phase kernel for `op` with these inputs and outputs.
pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    match op.family() {
        Family::Linear => linear::lower(op, ins, outs),
        Family::Pool => pool::lower(op, ins, outs),
        Family::Resize => resize::lower(op, ins, outs),
        Family::Elementwise => elementwise::lower(op, ins, outs),
        Family::Reduce => reduce::lower(op, ins, outs),
        Family::Movement => movement::lower(op, ins, outs),
    }
}

/// Evaluate `op` on constant inputs (constant folding). Allocates.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let direct = match op.family() {
        Family::Linear => None,
        Family::Pool => None,
        Family::Resize => None,
        Family::Elementwise => elementwise::eval(op, ins)?,
        Family::Reduce => reduce::eval(op, ins)?,
        Family::Movement => movement::eval(op, ins)?,
    };
    match direct {
        Some(out) => Ok(out),
        None => eval_with_kernel(op, ins),
    }
}

/// Run `op`'s CPU kernel once on owned buffers: the f32 path of [`eval`].
fn eval_with_kernel(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let outs = infer(op, &infos)?;
    let kernel = lower(op, &infos, &outs)?;
    // Inputs are copied: the kernel API hands out mutable views and the
    // constants must stay untouched.
    let mut in_bufs: Vec<Vec<f32>> = Vec::new();
    for t in ins.iter().flatten() {
        match &t.data {
            TensorData::F32(v) => in_bufs.push(v.clone()),
            _ => in_bufs.push(Vec::new()),
        }
    }
    let mut out_bufs: Vec<Vec<f32>> = Vec::new();
    for o in &outs {
        if o.dtype.storage() != super::tensor::Storage::F32 {
            return Err(OpError::new(format!(
                "{} has no evaluator for {} outputs",
                op.name(),
                o.dtype
            )));
        }
        out_bufs.push(vec![0.0; o.shape.iter().product()]);
    }
    let mut k = 0;
    let in_raw: Vec<Buf> = ins
        .iter()
        .map(|t| match t {
            Some(_) => {
                let b = Buf::from_slice(&mut in_bufs[k]);
                k += 1;
                b
            }
            None => Buf::empty(),
        })
        .collect();
    let out_raw: Vec<Buf> = out_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
    let mut scratch = vec![0.0f32; kernel.scratch_len()];
    let pool = ThreadPool::new(1);
    // SAFETY: every Buf points into a distinct live Vec above, each of the
    // declared length, and nothing else touches them during `run`.
    let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
    kernel.run(&io, &mut scratch, &pool);
    Ok(outs
        .into_iter()
        .zip(out_bufs)
        .map(|(o, v)| Tensor::from_f32(o.shape, v).with_dtype(o.dtype))
        .collect())
}

/// Input `i` or an error naming it; for ops with required inputs.
pub fn required<'a>(
    ins: &[Option<ValueInfo<'a>>],
    i: usize,
    what: &str,
) -> OpResult<ValueInfo<'a>> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError::new(format!("missing required input {i} ({what})")))
}

/// Constant value of input `i`, for shape-carrying inputs.
pub fn constant<'a>(ins: &[Option<ValueInfo<'a>>], i: usize, what: &str) -> OpResult<&'a Tensor> {
    let v = required(ins, i, what)?;
    v.value.ok_or_else(|| {
        OpError::new(format!(
            "input {i} ({what}) must be a constant computable at boot"
        ))
    })
}
