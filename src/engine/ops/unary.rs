//! Unary math (`Unary`), activations (`Act`) and `Clip`: one map kernel on
//! the CPU, one `unary` kernel on the GPU.
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
use crate::engine::cpu::activation::apply_inplace;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
use crate::engine::half::round_to_f16;
#[allow(unused_imports)]
use crate::engine::ir::*;
use crate::engine::ir::{Activation, Op, UnaryOp};
use crate::engine::tensor::Tensor;
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::op_bail;

pub struct Unary;

impl OpDef for Unary {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        let name = op.name();
        match op {
            Op::Unary(u) => {
                let x = required(ins, 0, "X")?;
                let st = x.dtype.storage();
                match u {
                    UnaryOp::Not => {
                        if st != Storage::Bool {
                            op_bail!("Not needs a bool input, got {}", x.dtype);
                        }
                    }
                    UnaryOp::Neg
                    | UnaryOp::Abs
                    | UnaryOp::Sign
                    | UnaryOp::Floor
                    | UnaryOp::Ceil
                    | UnaryOp::Round => {
                        if st == Storage::Bool {
                            op_bail!("{name} does not take a bool input");
                        }
                    }
                    _ => {
                        if st != Storage::F32 {
                            op_bail!("{name} needs a float input, got {}", x.dtype);
                        }
                    }
                }
                Ok(vec![OutInfo {
                    dtype: x.dtype,
                    shape: x.shape.to_vec(),
                }])
            }
            Op::Act(_) => {
                let x = required(ins, 0, "X")?;
                if !x.dtype.is_float() {
                    op_bail!("{name} needs a float input, got {}", x.dtype);
                }
                Ok(vec![OutInfo {
                    dtype: x.dtype,
                    shape: x.shape.to_vec(),
                }])
            }
            Op::Clip { .. } => {
                let x = required(ins, 0, "input")?;
                if x.dtype.storage() == Storage::Bool {
                    op_bail!("Clip does not take a bool input");
                }
                clip_bounds_i64(op, ins)?;
                Ok(vec![OutInfo {
                    dtype: x.dtype,
                    shape: x.shape.to_vec(),
                }])
            }
            _ => op_bail!("{} is not a unary op, activation or Clip", op.name()),
        }
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
        match op {
            Op::Unary(u) => match &x.data {
                TensorData::F32(_) => Ok(None),
                TensorData::I64(v) => {
                    let d = x.dtype;
                    let r = v
                        .iter()
                        .map(|&a| match u {
                            UnaryOp::Neg => wrap_int(d, a.wrapping_neg()),
                            UnaryOp::Abs => wrap_int(d, a.wrapping_abs()),
                            UnaryOp::Sign => a.signum(),
                            _ => a,
                        })
                        .collect();
                    Ok(Some(vec![tensor(d, x.shape.clone(), TensorData::I64(r))]))
                }
                TensorData::Bool(v) => {
                    let r = v.iter().map(|&a| !a).collect();
                    Ok(Some(vec![tensor(
                        x.dtype,
                        x.shape.clone(),
                        TensorData::Bool(r),
                    )]))
                }
            },
            Op::Act(_) | Op::BatchNormalization { .. } => match x.data {
                TensorData::F32(_) => Ok(None),
                _ => Err(data_mismatch("input 0", x)),
            },
            Op::Clip { .. } => match &x.data {
                TensorData::F32(_) => Ok(None),
                TensorData::I64(v) => {
                    let (lo, hi) = clip_bounds_i64(op, &infos)?;
                    let r = v.iter().map(|&a| a.max(lo).min(hi)).collect();
                    Ok(Some(vec![tensor(
                        x.dtype,
                        x.shape.clone(),
                        TensorData::I64(r),
                    )]))
                }
                TensorData::Bool(_) => Err(data_mismatch("input 0", x)),
            },
            _ => op_bail!("{} is not a unary op, activation or Clip", op.name()),
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
        // Not on a run-time bool (held as 1.0 / 0.0, see
        // `ops::runs_on_integers`).
        if let Op::Unary(UnaryOp::Not) = op {
            let x = required(ins, 0, "X")?;
            if x.value.is_some() {
                op_bail!("Not of a constant is folded at boot, not run");
            }
            return Ok(Box::new(MapKernel {
                f: MapFn::Unary(UnaryOp::Not),
                len: numel(&out.shape),
            }));
        }
        check_runtime_float(op, ins, outs)?;
        match op {
            Op::Unary(u) => {
                let x = required(ins, 0, "X")?;
                check_float_data(op, 0, &x)?;
                Ok(Box::new(MapKernel {
                    f: MapFn::Unary(*u),
                    len: numel(&out.shape),
                }))
            }
            Op::Act(a) => {
                let x = required(ins, 0, "X")?;
                check_float_data(op, 0, &x)?;
                Ok(Box::new(MapKernel {
                    f: MapFn::Act(*a),
                    len: numel(&out.shape),
                }))
            }
            Op::Clip { .. } => {
                let x = required(ins, 0, "input")?;
                check_float_data(op, 0, &x)?;
                let (lo, hi) = clip_bounds_f32(op, ins)?;
                Ok(Box::new(MapKernel {
                    f: MapFn::Act(Activation::Clip(lo, hi)),
                    len: numel(&out.shape),
                }))
            }
            _ => op_bail!("{} is not a unary op, activation or Clip", op.name()),
        }
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let (code, alpha, beta) = match op {
            Op::Unary(u) => (
                unary_code(*u).ok_or_else(|| refuse(op, "Not is boolean"))?,
                0.0,
                0.0,
            ),
            Op::Act(a) => act_code(*a),
            _ => {
                let (lo, hi) = clip_bounds(op, &n.infos).map_err(op_err)?;
                (8, lo, hi)
            }
        };
        let x = inp(0).ok_or_else(|| refuse(op, "needs an input"))?;
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Unary(UnaryParams {
                out: yp,
                x: xp,
                n: out_len as i64,
                op: code,
                alpha,
                beta,
            }),
            out_len,
        ));
        Ok(v)
    }
}

/// Clip's optional bound from the attribute or constant input `i`.
pub(super) fn clip_bound(
    attr: Option<f32>,
    ins: &[Option<ValueInfo>],
    i: usize,
    what: &str,
) -> OpResult<Option<Tensor>> {
    if let Some(v) = attr {
        return Ok(Some(Tensor::from_f32(vec![], vec![v])));
    }
    let Some(Some(v)) = ins.get(i) else {
        return Ok(None);
    };
    let Some(t) = v.value else {
        op_bail!("Clip {what} (input {i}) must be a constant computable at boot");
    };
    match t.numel() {
        0 => Ok(None),
        1 => Ok(Some(t.clone())),
        n => op_bail!("Clip {what} (input {i}) must be a scalar, got {n} values"),
    }
}

pub(super) fn clip_attrs(op: &Op) -> (Option<f32>, Option<f32>) {
    match op {
        Op::Clip { min, max } => (*min, *max),
        _ => (None, None),
    }
}

pub(super) fn clip_bounds_f32(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(f32, f32)> {
    let (min, max) = clip_attrs(op);
    let lo = clip_bound(min, ins, 1, "min")?;
    let hi = clip_bound(max, ins, 2, "max")?;
    let f =
        |t: Option<Tensor>, d: f32| t.and_then(|t| t.to_f32_vec().first().copied()).unwrap_or(d);
    Ok((f(lo, f32::NEG_INFINITY), f(hi, f32::INFINITY)))
}

pub(super) fn clip_bounds_i64(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(i64, i64)> {
    let (min, max) = clip_attrs(op);
    let lo = clip_bound(min, ins, 1, "min")?;
    let hi = clip_bound(max, ins, 2, "max")?;
    let f =
        |t: Option<Tensor>, d: i64| t.and_then(|t| t.to_i64_vec().first().copied()).unwrap_or(d);
    Ok((f(lo, i64::MIN), f(hi, i64::MAX)))
}

pub(super) fn unary_f32(u: UnaryOp, x: f32) -> f32 {
    match u {
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Erf => erf(x as f64) as f32,
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else if x.is_nan() {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        // A run-time bool held as 1.0 / 0.0 (infer takes bool inputs only).
        UnaryOp::Not => (x == 0.0) as u8 as f32,
    }
}

/// The error function in f64 (accurate to ~1e-15): its Taylor series for
/// |x| < 2.5, the continued fraction of erfc beyond.
pub(super) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    if ax < 2.5 {
        // 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while n < 200.0 {
            n += 1.0;
            term *= -x2 / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        return sum * std::f64::consts::FRAC_2_SQRT_PI;
    }
    let r = 1.0 - erfc_large(ax);
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// erfc(x) for x >= 2.5 by the modified Lentz method on
/// erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
pub(super) fn erfc_large(x: f64) -> f64 {
    if x > 6.0 {
        return 0.0; // below 1e-17
    }
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..200 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = x + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

#[derive(Debug, Clone, Copy)]
pub(super) enum MapFn {
    Unary(UnaryOp),
    Act(Activation),
    ToF16,
    Copy,
}

/// Same-shape one-input ops (Unary, activations, Clip, float Cast).
pub(super) struct MapKernel {
    pub(super) f: MapFn,
    pub(super) len: usize,
}

impl CpuKernel for MapKernel {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = (!io.is_inplace()).then(|| io.input(0));
        let ob = Buf::from_slice(io.output(0));
        let f = self.f;
        par_chunks(pool, self.len.min(ob.len), GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            if let Some(x) = x {
                o.copy_from_slice(&x[s..e]);
            }
            match f {
                MapFn::Act(a) => apply_inplace(a, o),
                MapFn::Unary(u) => {
                    for v in o.iter_mut() {
                        *v = unary_f32(u, *v);
                    }
                }
                MapFn::ToF16 => {
                    for v in o.iter_mut() {
                        *v = round_to_f16(*v);
                    }
                }
                MapFn::Copy => {}
            }
        });
    }
}

/// Clip's float bounds (attributes or constant inputs), for another backend.
pub(crate) fn clip_bounds(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(f32, f32)> {
    clip_bounds_f32(op, ins)
}
