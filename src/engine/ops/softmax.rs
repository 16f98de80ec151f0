//! Softmax and LogSoftmax along one axis (opset < 13: over the flattened
//! trailing dims).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::reduce;
#[allow(unused_imports)]
use super::reduce::*;
use super::OpDef;
use super::{OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::simd::Isa;
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
use crate::engine::tensor::{normalize_axis, numel, shape_string, Tensor};
use crate::op_bail;

pub struct Softmax;

impl OpDef for Softmax {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        reduce::infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        reduce::eval(op, ins)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        reduce::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let x = inp(0).ok_or_else(|| refuse(op, "needs an input"))?;
        let (outer, len, inner) = softmax_rows(op, cx.shape(x)).map_err(op_err)?;
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Softmax(SoftmaxParams {
                x: xp,
                y: yp,
                rows: (outer * inner) as i64,
                len: len as i64,
                inner: inner as i64,
                log: matches!(op, Op::LogSoftmax { .. }) as i32,
            }),
            outer * inner,
        ));
        Ok(v)
    }
}

/// `[outer, n, inner]` view of a softmax input: over `axis` (opset >= 13) or
/// over everything from `axis` on, as one row (legacy, opset < 13).
pub(super) fn softmax_layout(
    op: &Op,
    axis: i64,
    shape: &[usize],
) -> OpResult<(usize, usize, usize)> {
    let legacy = matches!(
        op,
        Op::Softmax { legacy: true, .. } | Op::LogSoftmax { legacy: true, .. }
    );
    let r = shape.len();
    if legacy {
        // axis may equal the rank here: everything is "outer".
        let a = if axis < 0 { axis + r as i64 } else { axis };
        if a < 0 || a > r as i64 {
            op_bail!(
                "{} axis {axis} is out of range for a rank-{r} input ({})",
                op.name(),
                shape_string(shape)
            );
        }
        let a = a as usize;
        return Ok((numel(&shape[..a]), numel(&shape[a..]), 1));
    }
    let a = normalize_axis(axis, r).ok_or_else(|| {
        OpError::new(format!(
            "{} axis {axis} is out of range for a rank-{r} input ({})",
            op.name(),
            shape_string(shape)
        ))
    })?;
    Ok((numel(&shape[..a]), shape[a], numel(&shape[a + 1..])))
}

/// Columns of a softmax over a non-last axis handled together: their
/// running max and sum live in stack arrays.
pub(super) const BLOCK: usize = 64;

pub(super) struct SoftmaxKernel {
    pub(super) outer: usize,
    pub(super) n: usize,
    pub(super) inner: usize,
    pub(super) log: bool,
}

impl CpuKernel for SoftmaxKernel {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = (!io.is_inplace()).then(|| io.input(0));
        let ob = Buf::from_slice(io.output(0));
        let (n, inner) = (self.n, self.inner);
        if n == 0 || inner == 0 {
            return;
        }
        let log = self.log;
        if inner == 1 {
            // Contiguous lanes.
            let grain = (GRAIN / n).max(1);
            par_chunks(pool, self.outer, grain, &|l0, l1| {
                for l in l0..l1 {
                    // SAFETY: lane l owns [l*n, (l+1)*n), disjoint per task.
                    let o = unsafe { buf_range(ob, l * n, (l + 1) * n) };
                    if let Some(x) = x {
                        o.copy_from_slice(&x[l * n..(l + 1) * n]);
                    }
                    softmax_lane(o, log);
                }
            });
            return;
        }
        let isa = Isa::cached();
        let blocks = inner.div_ceil(BLOCK);
        let units = self.outer * blocks;
        let grain = (GRAIN / (n * BLOCK.min(inner))).max(1);
        par_chunks(pool, units, grain, &|u0, u1| {
            for u in u0..u1 {
                let (outer, b) = (u / blocks, u % blocks);
                let j0 = b * BLOCK;
                let w = BLOCK.min(inner - j0);
                let base = outer * n * inner + j0;
                // Row i of this block: [base + i*inner, +w), owned by this
                // unit only.
                let row = |i: usize| {
                    let s = base + i * inner;
                    // SAFETY: units own disjoint column blocks of each row.
                    unsafe { buf_range(ob, s, s + w) }
                };
                if let Some(x) = x {
                    for i in 0..n {
                        let s = base + i * inner;
                        row(i).copy_from_slice(&x[s..s + w]);
                    }
                }
                softmax_block_isa(isa, n, w, &row, log);
            }
        });
    }
}

/// `exp(x)` for `x <= 0` (softmax's max-shifted inputs): Cephes' `expf`
/// range reduction and polynomial (relative error ~1e-7), written without
/// branches or libm calls so that loops over it vectorise. Below -87 the
/// result is flushed to 0 (the true value is under 1.7e-38).
#[inline(always)]
pub(super) fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 0.0);
    // t holds round(xc * log2 e) in its low mantissa bits: n as an integer
    // without a float-to-int conversion (those do not vectorise).
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * C1 - n * C2;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    let v = y * scale;
    let v = if x < -87.0 { 0.0 } else { v };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// Softmax (or log-softmax) of one contiguous lane, in place.
pub(super) fn softmax_lane(o: &mut [f32], log: bool) {
    let m = fold(o, f32::NEG_INFINITY, max_f32);
    if log {
        let mut s = 0.0;
        for &v in o.iter() {
            s += exp_nonpos(v - m);
        }
        let ls = s.ln();
        for v in o.iter_mut() {
            *v = (*v - m) - ls;
        }
    } else {
        for v in o.iter_mut() {
            *v = exp_nonpos(*v - m);
        }
        let s = fold(o, 0.0, |a, b| a + b);
        let r = 1.0 / s;
        for v in o.iter_mut() {
            *v *= r;
        }
    }
}

/// [`softmax_block`] compiled for the widest vectors `isa` has: the
/// baseline build is SSE2, and the columns of a block (64) fill four
/// AVX-512 registers. yolov8n's DFL softmax (16 rows of 8400 columns at
/// 640) took 3.7x OpenVINO's time in SSE2.
fn softmax_block_isa<'a>(
    isa: Isa,
    n: usize,
    w: usize,
    row: &dyn Fn(usize) -> &'a mut [f32],
    log: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU has AVX-512F.
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<'a>(n: usize, w: usize, row: &dyn Fn(usize) -> &'a mut [f32], log: bool) {
            softmax_block(n, w, row, log)
        }
        /// # Safety
        /// The CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<'a>(n: usize, w: usize, row: &dyn Fn(usize) -> &'a mut [f32], log: bool) {
            softmax_block(n, w, row, log)
        }
        match isa {
            // SAFETY: `Isa` is only these where the CPU has the features.
            Isa::Avx512 => return unsafe { avx512(n, w, row, log) },
            Isa::Avx2 => return unsafe { avx2(n, w, row, log) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    softmax_block(n, w, row, log)
}

/// Softmax over `n` rows of a block of `w <= BLOCK` columns, in place;
/// `row(i)` is row i's slice of the block.
#[inline(always)]
pub(super) fn softmax_block<'a>(
    n: usize,
    w: usize,
    row: &dyn Fn(usize) -> &'a mut [f32],
    log: bool,
) {
    let mut m = [f32::NEG_INFINITY; BLOCK];
    let mut s = [0.0f32; BLOCK];
    let (m, s) = (&mut m[..w], &mut s[..w]);
    for i in 0..n {
        for (mv, &v) in m.iter_mut().zip(row(i).iter()) {
            *mv = max_f32(*mv, v);
        }
    }
    if log {
        for i in 0..n {
            for ((sv, &v), &mv) in s.iter_mut().zip(row(i).iter()).zip(m.iter()) {
                *sv += exp_nonpos(v - mv);
            }
        }
        // Subtracted below as (x - max) - ln(sum).
        for sv in s.iter_mut() {
            *sv = sv.ln();
        }
        for i in 0..n {
            for ((v, &mv), &ls) in row(i).iter_mut().zip(m.iter()).zip(s.iter()) {
                *v = (*v - mv) - ls;
            }
        }
    } else {
        for i in 0..n {
            for ((v, sv), &mv) in row(i).iter_mut().zip(s.iter_mut()).zip(m.iter()) {
                *v = exp_nonpos(*v - mv);
                *sv += *v;
            }
        }
        for sv in s.iter_mut() {
            *sv = 1.0 / *sv;
        }
        for i in 0..n {
            for (v, &r) in row(i).iter_mut().zip(s.iter()) {
                *v *= r;
            }
        }
    }
}

/// `[outer, n, inner]` of a Softmax / LogSoftmax for another backend.
pub(crate) fn softmax_rows(op: &Op, shape: &[usize]) -> OpResult<(usize, usize, usize)> {
    match op {
        Op::Softmax { axis, .. } | Op::LogSoftmax { axis, .. } => softmax_layout(op, *axis, shape),
        _ => Err(OpError::new(format!("{} is not a softmax", op.name()))),
    }
}
