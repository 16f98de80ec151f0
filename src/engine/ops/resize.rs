//! Resize (and opset-10 Upsample semantics): nearest/linear/cubic, every coordinate transformation mode, scales or sizes.
//!
//! Owns the output-shape rules (scales, sizes with `keep_aspect_ratio_policy`,
//! `axes`, constant `roi`), the per-axis sampling tables built at boot, and
//! three kernels:
//! * a copy, when every axis maps onto itself;
//! * nearest: one gather through per-axis index tables, with a fast path
//!   for integer upsampling of the last two axes (yolov8's 2x);
//! * linear / cubic (with antialias and `exclude_outside`): separable
//!   passes, one per resized axis in ascending order, through scratch.
//!
//! Semantics follow the opset-19 spec and `onnx/reference/ops/op_resize.py`:
//! output dims are `floor(in * scale)`; coordinates are computed in f64;
//! where the reference uses the fractional `scale * in` for the output
//! length (`align_corners`, `pytorch_half_pixel`, `tf_crop_and_resize`) we
//! use the integer output length as the spec text and onnxruntime do, and
//! `pytorch_half_pixel` maps a length-1 output to 0 as the spec says.
//! `antialias` is ignored by nearest (it has no filter to widen) and so is
//! `exclude_outside` (a nearest sample has no neighbours to renormalise by).
//! With `tf_crop_and_resize`, a sample outside the input along any axis is
//! `extrapolation_value`.
//!
//! infer/lower run at boot and may allocate; kernels' `run` is on the frame
//! path (inference thread, work split on the kernel pool) and never
//! allocates.

use super::OpDef;
use super::{required, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::pool::{par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::{CoordTransform, KeepAspect, NearestMode, Op, ResizeAttrs, ResizeMode};
use crate::engine::tensor::{checked_numel, normalize_axis, shape_string, Tensor};
use crate::op_bail;

/// Output elements one parallel task aims to produce.
const TASK_ELEMS: usize = 16 * 1024;

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let Op::Resize(a) = op else {
        op_bail!("{} is not Resize", op.name());
    };
    let plan = plan(a, ins)?;
    Ok(vec![OutInfo {
        dtype: required(ins, 0, "X")?.dtype,
        shape: plan.out,
    }])
}

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    let Op::Resize(a) = op else {
        op_bail!("{} is not Resize", op.name());
    };
    let plan = plan(a, ins)?;
    if outs.len() != 1 || outs[0].shape != plan.out {
        op_bail!(
            "Resize output shape {} does not match the inferred {}",
            outs.first()
                .map(|o| shape_string(&o.shape))
                .unwrap_or_else(|| "(none)".into()),
            shape_string(&plan.out)
        );
    }
    let maps: Vec<AxisMap> = (0..plan.input.len())
        .map(|d| AxisMap::new(a, plan.input[d], plan.out[d], plan.scale[d], plan.roi[d]))
        .collect();
    if maps.iter().all(|m| m.is_identity()) {
        return Ok(Box::new(Identity {
            len: plan.input.iter().product(),
        }));
    }
    let extrapolation = a.extrapolation_value;
    if a.mode == ResizeMode::Nearest {
        return Ok(Box::new(Nearest::new(&plan, maps, extrapolation)));
    }
    Ok(Box::new(Separable::new(&plan, maps, extrapolation)))
}

/// Shapes and per-axis sampling parameters, resolved from the attributes
/// and the constant inputs.
struct Plan {
    input: Vec<usize>,
    out: Vec<usize>,
    /// Scale per axis (1 for axes not resized).
    scale: Vec<f64>,
    /// `tf_crop_and_resize` region per axis, `(0, 1)` elsewhere.
    roi: Vec<(f64, f64)>,
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// A constant, non-empty optional input; `None` when absent or empty.
fn optional_const<'a>(
    ins: &[Option<ValueInfo<'a>>],
    i: usize,
    what: &str,
) -> OpResult<Option<&'a Tensor>> {
    let Some(Some(v)) = ins.get(i) else {
        return Ok(None);
    };
    if v.shape.contains(&0) {
        return Ok(None);
    }
    match v.value {
        Some(t) => Ok(Some(t)),
        None => op_bail!("Resize: input {i} ({what}) must be a constant computable at boot"),
    }
}

fn plan(a: &ResizeAttrs, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let x = required(ins, 0, "X")?;
    if !x.dtype.is_float() {
        op_bail!("Resize: input X is {}, expected a float type", x.dtype);
    }
    let input = x.shape.to_vec();
    let r = input.len();
    if r == 0 {
        op_bail!("Resize: input X is a scalar");
    }
    if input.contains(&0) {
        op_bail!("Resize: input X {} is empty", shape_string(&input));
    }
    let (roi_at, scales_at, sizes_at) = if a.scales_at_input1 {
        (None, 1, None)
    } else {
        (Some(1), 2, Some(3))
    };
    let scales = optional_const(ins, scales_at, "scales")?;
    let sizes = match sizes_at {
        Some(i) => optional_const(ins, i, "sizes")?,
        None => None,
    };
    let axes: Vec<usize> = match &a.axes {
        None => (0..r).collect(),
        Some(ax) => {
            let mut out = Vec::with_capacity(ax.len());
            for &v in ax {
                let Some(n) = normalize_axis(v, r) else {
                    op_bail!(
                        "Resize: axes {} has {v}, out of range for input {}",
                        list(ax),
                        shape_string(&input)
                    );
                };
                if out.contains(&n) {
                    op_bail!("Resize: axes {} repeats axis {v}", list(ax));
                }
                out.push(n);
            }
            out
        }
    };
    let what = match &a.axes {
        Some(ax) => format!("axes {}", list(ax)),
        None => format!("rank of input {}", shape_string(&input)),
    };
    let mut out = input.clone();
    let mut scale = vec![1.0f64; r];
    match (scales, sizes) {
        (Some(_), Some(_)) => op_bail!("Resize: scales and sizes are both given"),
        (None, None) => op_bail!("Resize: neither scales nor sizes is given"),
        (Some(s), None) => {
            let s = s.to_f32_vec();
            if s.len() != axes.len() {
                op_bail!(
                    "Resize: scales {} has {} values, expected {} ({what})",
                    list(&s),
                    s.len(),
                    axes.len()
                );
            }
            if s.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
                op_bail!("Resize: scales {} must be positive and finite", list(&s));
            }
            for (&d, &v) in axes.iter().zip(&s) {
                scale[d] = v as f64;
                let o = (input[d] as f64 * v as f64).floor();
                if o < 1.0 {
                    op_bail!(
                        "Resize: output dim {d} would be empty (input {} * scale {v})",
                        input[d]
                    );
                }
                if o > u32::MAX as f64 {
                    op_bail!(
                        "Resize: output dim {d} is too large (input {} * scale {v})",
                        input[d]
                    );
                }
                out[d] = o as usize;
            }
        }
        (None, Some(s)) => {
            let s = s.to_i64_vec();
            if s.len() != axes.len() {
                op_bail!(
                    "Resize: sizes {} has {} values, expected {} ({what})",
                    list(&s),
                    s.len(),
                    axes.len()
                );
            }
            if s.iter().any(|&v| v < 1 || v > u32::MAX as i64) {
                op_bail!("Resize: sizes {} must be positive", list(&s));
            }
            let ratio = |i: usize| s[i] as f64 / input[axes[i]] as f64;
            match a.keep_aspect {
                KeepAspect::Stretch => {
                    for (i, &d) in axes.iter().enumerate() {
                        out[d] = s[i] as usize;
                        scale[d] = ratio(i);
                    }
                }
                KeepAspect::NotLarger | KeepAspect::NotSmaller => {
                    let mut pick = ratio(0);
                    for i in 1..axes.len() {
                        pick = if a.keep_aspect == KeepAspect::NotLarger {
                            pick.min(ratio(i))
                        } else {
                            pick.max(ratio(i))
                        };
                    }
                    for &d in &axes {
                        scale[d] = pick;
                        // round_int: nearest, halves up.
                        let o = (pick * input[d] as f64 + 0.5).floor();
                        if !(1.0..=u32::MAX as f64).contains(&o) {
                            op_bail!(
                                "Resize: sizes {} with keep_aspect_ratio_policy {:?} give output dim {d} = {o} (input {})",
                                list(&s),
                                a.keep_aspect,
                                input[d]
                            );
                        }
                        out[d] = o as usize;
                    }
                }
            }
        }
    }
    let mut roi = vec![(0.0f64, 1.0f64); r];
    if a.coord == CoordTransform::TfCropAndResize {
        let t = match roi_at {
            Some(i) => optional_const(ins, i, "roi")?,
            None => None,
        };
        let Some(t) = t else {
            op_bail!(
                "Resize: coordinate_transformation_mode tf_crop_and_resize needs the roi input"
            );
        };
        let v = t.to_f32_vec();
        if v.len() != 2 * axes.len() {
            op_bail!(
                "Resize: roi {} has {} values, expected {} (starts and ends for {what})",
                list(&v),
                v.len(),
                2 * axes.len()
            );
        }
        if v.iter().any(|x| !x.is_finite()) {
            op_bail!("Resize: roi {} must be finite", list(&v));
        }
        for (i, &d) in axes.iter().enumerate() {
            roi[d] = (v[i] as f64, v[axes.len() + i] as f64);
        }
    }
    if checked_numel(&out).is_none() {
        op_bail!("Resize: output {out:?} overflows");
    }
    Ok(Plan {
        input,
        out,
        scale,
        roi,
    })
}

/// How one axis samples its input: for every output index, `taps` clamped
/// input indices and weights, and whether it is extrapolated.
#[derive(Debug, Clone)]
struct AxisMap {
    input: usize,
    output: usize,
    taps: usize,
    idx: Vec<usize>,
    w: Vec<f32>,
    /// Empty unless some output index is extrapolated.
    extrap: Vec<bool>,
}

/// Source coordinate of output index `o` along one axis.
fn source_coord(
    coord: CoordTransform,
    o: f64,
    scale: f64,
    input: usize,
    output: usize,
    roi: (f64, f64),
) -> f64 {
    let n = input as f64;
    match coord {
        CoordTransform::HalfPixel => (o + 0.5) / scale - 0.5,
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = output as f64 / (scale * n);
            let offset = n / 2.0 * (1.0 - adjustment);
            offset + (o + 0.5) / scale - 0.5
        }
        CoordTransform::PytorchHalfPixel => {
            if output > 1 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordTransform::AlignCorners => {
            if output > 1 {
                o * (n - 1.0) / (output as f64 - 1.0)
            } else {
                0.0
            }
        }
        CoordTransform::Asymmetric => o / scale,
        CoordTransform::TfHalfPixelForNn => (o + 0.5) / scale,
        CoordTransform::TfCropAndResize => {
            let (start, end) = roi;
            if output > 1 {
                o * (end - start) * (n - 1.0) / (output as f64 - 1.0) + start * (n - 1.0)
            } else {
                0.5 * (start + end) * (n - 1.0)
            }
        }
    }
}

/// Keys cubic convolution kernel with coefficient `a` at distance `x`.
fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

impl AxisMap {
    fn new(a: &ResizeAttrs, input: usize, output: usize, scale: f64, roi: (f64, f64)) -> AxisMap {
        let cubic_a = a.cubic_coeff_a as f64;
        // Filter support: offset of the first tap from `base` and tap count.
        // Antialias widens the filter by 1/scale when downscaling.
        let aa = a.antialias && a.mode != ResizeMode::Nearest;
        let s_aa = scale.min(1.0);
        let (first_off, taps): (i64, usize) = match a.mode {
            ResizeMode::Nearest => (0, 1),
            ResizeMode::Linear if aa => {
                let start = (-1.0 / s_aa).floor() as i64 + 1;
                (start, (2 - 2 * start) as usize)
            }
            ResizeMode::Linear => (0, 2),
            ResizeMode::Cubic if aa => {
                let start = (-2.0 / s_aa).floor() as i64 + 1;
                (start, (2 - 2 * start) as usize)
            }
            ResizeMode::Cubic => (-1, 4),
        };
        let mut m = AxisMap {
            input,
            output,
            taps,
            idx: Vec::with_capacity(output * taps),
            w: Vec::with_capacity(output * taps),
            extrap: Vec::new(),
        };
        let last = input as i64 - 1;
        let mut coeffs = vec![0f64; taps];
        let mut flags = vec![false; output];
        for (o, flag) in flags.iter_mut().enumerate() {
            let x = source_coord(a.coord, o as f64, scale, input, output, roi);
            *flag = a.coord == CoordTransform::TfCropAndResize && (x < 0.0 || x > last as f64);
            let fl = x.floor();
            if a.mode == ResizeMode::Nearest {
                let frac = x - fl;
                let up = match a.nearest {
                    _ if frac == 0.0 => false,
                    NearestMode::RoundPreferFloor => frac > 0.5,
                    NearestMode::RoundPreferCeil => frac >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
                let i = (fl as i64 + up as i64).clamp(0, last);
                m.idx.push(i as usize);
                m.w.push(1.0);
                continue;
            }
            // The sample sits in (base, base + 1]: an integer x takes the
            // right end, so its own tap carries the whole weight.
            let base = if fl == x { fl - 1.0 } else { fl };
            let ratio = x - base;
            for (t, c) in coeffs.iter_mut().enumerate() {
                let off = (first_off + t as i64) as f64;
                *c = match (a.mode, aa) {
                    (ResizeMode::Linear, false) => {
                        if t == 0 {
                            1.0 - ratio
                        } else {
                            ratio
                        }
                    }
                    (ResizeMode::Linear, true) => {
                        (1.0 - ((off - ratio) * s_aa).abs()).clamp(0.0, 1.0)
                    }
                    (ResizeMode::Cubic, false) => cubic(off - ratio, cubic_a),
                    (ResizeMode::Cubic, true) => cubic((off - ratio) * s_aa, cubic_a),
                    (ResizeMode::Nearest, _) => 0.0,
                };
            }
            if aa {
                let sum: f64 = coeffs.iter().sum();
                if sum != 0.0 {
                    coeffs.iter_mut().for_each(|c| *c /= sum);
                }
            }
            let base = base as i64 + first_off;
            if a.exclude_outside {
                for (t, c) in coeffs.iter_mut().enumerate() {
                    let i = base + t as i64;
                    if i < 0 || i > last {
                        *c = 0.0;
                    }
                }
                let sum: f64 = coeffs.iter().sum();
                if sum != 0.0 {
                    coeffs.iter_mut().for_each(|c| *c /= sum);
                }
            }
            for (t, &c) in coeffs.iter().enumerate() {
                m.idx.push((base + t as i64).clamp(0, last) as usize);
                m.w.push(c as f32);
            }
        }
        if flags.iter().any(|&f| f) {
            m.extrap = flags;
        }
        m
    }

    /// Every output index reads exactly its own input index.
    fn is_identity(&self) -> bool {
        self.input == self.output
            && self.extrap.is_empty()
            && (0..self.output).all(|o| {
                let (idx, w) = (
                    &self.idx[o * self.taps..][..self.taps],
                    &self.w[o * self.taps..][..self.taps],
                );
                idx.iter()
                    .zip(w)
                    .all(|(&i, &w)| if i == o { true } else { w == 0.0 })
                    && idx
                        .iter()
                        .zip(w)
                        .filter(|(&i, _)| i == o)
                        .map(|(_, &w)| w)
                        .sum::<f32>()
                        == 1.0
            })
    }

    fn extrapolated(&self, o: usize) -> bool {
        !self.extrap.is_empty() && self.extrap[o]
    }

    /// For nearest maps: `Some(k)` when output `o` reads input `o / k`.
    fn integer_upsample(&self) -> Option<usize> {
        if self.taps != 1 || !self.extrap.is_empty() || !self.output.is_multiple_of(self.input) {
            return None;
        }
        let k = self.output / self.input;
        self.idx
            .iter()
            .enumerate()
            .all(|(o, &i)| i == o / k)
            .then_some(k)
    }
}

/// `len` elements of `b` from `off`, mutable. Taking the `Buf` by reference
/// lets parallel closures capture the (Sync) `Buf` rather than its raw
/// pointer field.
///
/// # Safety
/// `off + len <= b.len`, and no other live reference overlaps the range.
unsafe fn sub_mut<'a>(b: &Buf, off: usize, len: usize) -> &'a mut [f32] {
    // SAFETY: the caller guarantees the range is inside the buffer and
    // exclusively ours.
    unsafe { std::slice::from_raw_parts_mut(b.ptr.add(off), len) }
}

/// Every axis maps onto itself: the output is the input.
struct Identity {
    len: usize,
}

impl CpuKernel for Identity {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], _pool: &ThreadPool) {
        if io.is_inplace() {
            return;
        }
        let (x, y) = (io.input(0), io.output(0));
        if x.len() >= self.len && y.len() >= self.len {
            y[..self.len].copy_from_slice(&x[..self.len]);
        }
    }
}

/// Nearest: `out[o0, .., on] = in[idx0[o0], .., idxn[on]]`.
struct Nearest {
    maps: Vec<AxisMap>,
    in_strides: Vec<usize>,
    in_len: usize,
    out_len: usize,
    /// Rows of the output (all dims but the last) and rows per task.
    rows: usize,
    rows_per_task: usize,
    extrapolation: f32,
    /// Integer upsampling of the last two axes by `(ky, kx)`, every other
    /// axis unchanged.
    upsample: Option<(usize, usize)>,
}

impl Nearest {
    fn new(plan: &Plan, maps: Vec<AxisMap>, extrapolation: f32) -> Nearest {
        let r = maps.len();
        let mut in_strides = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * plan.input[i + 1];
        }
        let row = plan.out[r - 1];
        let rows = plan.out[..r - 1].iter().product();
        let upsample = if r >= 2 && maps[..r - 2].iter().all(|m| m.is_identity()) {
            match (
                maps[r - 2].integer_upsample(),
                maps[r - 1].integer_upsample(),
            ) {
                (Some(ky), Some(kx)) => Some((ky, kx)),
                _ => None,
            }
        } else {
            None
        };
        Nearest {
            in_len: plan.input.iter().product(),
            out_len: plan.out.iter().product(),
            rows,
            rows_per_task: (TASK_ELEMS / row.max(1)).max(1),
            maps,
            in_strides,
            extrapolation,
            upsample,
        }
    }

    /// Output rows `rows` (in units of the last axis).
    fn gather_rows(&self, x: &[f32], y: &Buf, rows: std::ops::Range<usize>) {
        let r = self.maps.len();
        let last = &self.maps[r - 1];
        let row_len = last.output;
        let identity_row = last.is_identity();
        for q in rows {
            let (mut rem, mut base, mut extrap) = (q, 0usize, false);
            for d in (0..r - 1).rev() {
                let m = &self.maps[d];
                let c = rem % m.output;
                rem /= m.output;
                base += m.idx[c] * self.in_strides[d];
                extrap |= m.extrapolated(c);
            }
            // SAFETY: row q is written by this task only and lies inside the
            // output (rows * row_len == out_len, checked in run).
            let dst = unsafe { sub_mut(y, q * row_len, row_len) };
            let src = &x[base..base + last.input];
            if extrap {
                dst.fill(self.extrapolation);
            } else if identity_row {
                dst.copy_from_slice(src);
            } else if last.extrap.is_empty() {
                for (d, &i) in dst.iter_mut().zip(&last.idx) {
                    *d = src[i];
                }
            } else {
                for (o, (d, &i)) in dst.iter_mut().zip(&last.idx).enumerate() {
                    *d = if last.extrapolated(o) {
                        self.extrapolation
                    } else {
                        src[i]
                    };
                }
            }
        }
    }

    /// One plane of the integer-upsampling fast path.
    fn upsample_plane(&self, src: &[f32], dst: &mut [f32], ky: usize, kx: usize) {
        let r = self.maps.len();
        let w = self.maps[r - 1].input;
        let ow = w * kx;
        for (src_row, dst_rows) in src.chunks_exact(w).zip(dst.chunks_exact_mut(ow * ky)) {
            let (first, rest) = dst_rows.split_at_mut(ow);
            if kx == 2 {
                for (d, &v) in first.chunks_exact_mut(2).zip(src_row) {
                    d[0] = v;
                    d[1] = v;
                }
            } else {
                for (d, &v) in first.chunks_exact_mut(kx).zip(src_row) {
                    d.fill(v);
                }
            }
            for copy in rest.chunks_exact_mut(ow) {
                copy.copy_from_slice(first);
            }
        }
    }
}

impl CpuKernel for Nearest {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let y = Buf::from_slice(io.output(0));
        if x.len() < self.in_len || y.len < self.out_len {
            return;
        }
        if let Some((ky, kx)) = self.upsample {
            let r = self.maps.len();
            let in_plane = self.maps[r - 2].input * self.maps[r - 1].input;
            let out_plane = in_plane * ky * kx;
            let planes = self.in_len / in_plane;
            let grain = (GRAIN / out_plane.max(1)).max(1);
            par_chunks(pool, planes, grain, &|p0, p1| {
                for p in p0..p1 {
                    let src = &x[p * in_plane..(p + 1) * in_plane];
                    // SAFETY: plane p's output range is in bounds (checked
                    // above) and written by this task only.
                    let dst = unsafe { sub_mut(&y, p * out_plane, out_plane) };
                    self.upsample_plane(src, dst, ky, kx);
                }
            });
            return;
        }
        let per = self.rows_per_task;
        pool.parallel_for(self.rows.div_ceil(per), &|t| {
            self.gather_rows(x, &y, t * per..((t + 1) * per).min(self.rows));
        });
    }
}

/// Where a separable pass reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Input,
    Output,
    /// Scratch from this offset.
    Scratch(usize),
}

/// Resampling of one axis: `[outer, input, inner] -> [outer, output, inner]`.
struct Pass {
    map: AxisMap,
    outer: usize,
    inner: usize,
    src: Loc,
    dst: Loc,
    /// Work units (rows of `inner`, or whole lines when `inner == 1`) per task.
    units_per_task: usize,
}

impl Pass {
    fn units(&self) -> usize {
        if self.inner == 1 {
            self.outer
        } else {
            self.outer * self.map.output
        }
    }

    fn src_len(&self) -> usize {
        self.outer * self.map.input * self.inner
    }

    fn dst_len(&self) -> usize {
        self.outer * self.map.output * self.inner
    }

    fn run_units(&self, src: &[f32], dst: &Buf, units: std::ops::Range<usize>, extrapolation: f32) {
        let m = &self.map;
        let n = m.taps;
        if self.inner == 1 {
            for g in units {
                let line = &src[g * m.input..(g + 1) * m.input];
                // SAFETY: line g of the destination is written by this task
                // only and lies inside it (sizes checked in run).
                let out = unsafe { sub_mut(dst, g * m.output, m.output) };
                if n == 2 && m.extrap.is_empty() {
                    // Linear: the common case, without the generic tap loop.
                    for (v, (idx, w)) in out
                        .iter_mut()
                        .zip(m.idx.chunks_exact(2).zip(m.w.chunks_exact(2)))
                    {
                        *v = line[idx[0]] * w[0] + line[idx[1]] * w[1];
                    }
                    continue;
                }
                for (o, (v, (idx, w))) in out
                    .iter_mut()
                    .zip(m.idx.chunks_exact(n).zip(m.w.chunks_exact(n)))
                    .enumerate()
                {
                    *v = if m.extrapolated(o) {
                        extrapolation
                    } else {
                        idx.iter().zip(w).map(|(&i, &w)| line[i] * w).sum()
                    };
                }
            }
            return;
        }
        let inner = self.inner;
        for q in units {
            let (g, o) = (q / m.output, q % m.output);
            // SAFETY: row q of the destination is written by this task only
            // and lies inside it (sizes checked in run).
            let out = unsafe { sub_mut(dst, q * inner, inner) };
            if m.extrapolated(o) {
                out.fill(extrapolation);
                continue;
            }
            let plane = &src[g * m.input * inner..(g + 1) * m.input * inner];
            let (idx, w) = (&m.idx[o * n..(o + 1) * n], &m.w[o * n..(o + 1) * n]);
            let row = |i: usize| &plane[i * inner..(i + 1) * inner];
            let r0 = row(idx[0]);
            for (d, &s) in out.iter_mut().zip(r0) {
                *d = s * w[0];
            }
            for (&i, &wt) in idx.iter().zip(w).skip(1) {
                if wt == 0.0 {
                    continue;
                }
                for (d, &s) in out.iter_mut().zip(row(i)) {
                    *d += s * wt;
                }
            }
        }
    }
}

/// Linear / cubic: one pass per resized axis.
struct Separable {
    passes: Vec<Pass>,
    scratch: usize,
    extrapolation: f32,
}

impl Separable {
    fn new(plan: &Plan, maps: Vec<AxisMap>, extrapolation: f32) -> Separable {
        let r = maps.len();
        let mut shape = plan.input.clone();
        let mut passes = Vec::new();
        for (d, map) in maps.into_iter().enumerate() {
            if map.is_identity() {
                continue;
            }
            let outer: usize = shape[..d].iter().product();
            let inner: usize = shape[d + 1..r].iter().product();
            shape[d] = map.output;
            let unit = if inner == 1 { map.output } else { inner };
            passes.push(Pass {
                units_per_task: (TASK_ELEMS / (unit * map.taps).max(1)).max(1),
                map,
                outer,
                inner,
                src: Loc::Input,
                dst: Loc::Output,
            });
        }
        // Intermediates alternate between two halves of scratch.
        let half = passes[..passes.len().saturating_sub(1)]
            .iter()
            .map(|p| p.dst_len())
            .max()
            .unwrap_or(0);
        let n = passes.len();
        for i in 0..n {
            if i > 0 {
                passes[i].src = passes[i - 1].dst;
            }
            if i + 1 < n {
                passes[i].dst = Loc::Scratch((i % 2) * half);
            }
        }
        let scratch = match n {
            0 | 1 => 0,
            2 => half,
            _ => 2 * half,
        };
        Separable {
            passes,
            scratch,
            extrapolation,
        }
    }
}

impl CpuKernel for Separable {
    fn scratch_len(&self) -> usize {
        self.scratch
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let y = Buf::from_slice(io.output(0));
        let s = Buf::from_slice(scratch);
        if s.len < self.scratch {
            return;
        }
        for p in &self.passes {
            let fits = |loc: Loc, len: usize| match loc {
                Loc::Input => x.len() >= len,
                Loc::Output => y.len >= len,
                Loc::Scratch(off) => off + len <= s.len,
            };
            if !fits(p.src, p.src_len()) || !fits(p.dst, p.dst_len()) {
                return;
            }
            let src: &[f32] = match p.src {
                Loc::Input => x,
                // SAFETY: in bounds (checked above); the previous pass has
                // finished writing it and nothing writes it during this one
                // (a pass's source and destination never share a region).
                Loc::Scratch(off) => unsafe { sub_mut(&s, off, p.src_len()) },
                Loc::Output => return,
            };
            let dst = match p.dst {
                Loc::Output => y,
                Loc::Scratch(off) => Buf {
                    // SAFETY: off + dst_len <= s.len (checked above).
                    ptr: unsafe { s.ptr.add(off) },
                    len: p.dst_len(),
                },
                Loc::Input => return,
            };
            let per = p.units_per_task;
            let units = p.units();
            pool.parallel_for(units.div_ceil(per), &|t| {
                p.run_units(
                    src,
                    &dst,
                    t * per..((t + 1) * per).min(units),
                    self.extrapolation,
                );
            });
        }
    }
}

/// Per-axis sampling tables of a Resize for another backend (the CUDA
/// backend samples the same taps on the GPU): for every axis `(input,
/// output, taps, idx, w, extrapolated)`, `idx`/`w` holding `output * taps`
/// entries. Boot only; allocates.
#[allow(clippy::type_complexity)]
pub(crate) fn axis_tables(
    op: &Op,
    ins: &[Option<ValueInfo>],
) -> OpResult<Vec<(usize, usize, usize, Vec<usize>, Vec<f32>, bool)>> {
    let Op::Resize(a) = op else {
        op_bail!("{} is not Resize", op.name());
    };
    let plan = plan(a, ins)?;
    Ok((0..plan.input.len())
        .map(|d| {
            let m = AxisMap::new(a, plan.input[d], plan.out[d], plan.scale[d], plan.roi[d]);
            let ex = m.extrap.iter().any(|&e| e);
            (m.input, m.output, m.taps, m.idx, m.w, ex)
        })
        .collect())
}

pub struct Resize;

impl OpDef for Resize {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        infer(op, ins)
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let _ = (op, ins);
        Ok(None)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let x = inp(0).ok_or_else(|| refuse(op, "needs X"))?;
        let sx = cx.shape(x).to_vec();
        let t = axis_tables(op, &n.infos).map_err(op_err)?;
        let r = sx.len();
        if r < 2 || t.iter().any(|a| a.5) {
            return Err(refuse(op, "extrapolated or rank < 2 resizes"));
        }
        if t[..r - 2].iter().any(|a| a.0 != a.1) {
            return Err(refuse(
                op,
                "only the last two axes may be resized on the GPU",
            ));
        }
        let (ty, tx) = (&t[r - 2], &t[r - 1]);
        let yidx: Vec<i32> = ty.3.iter().map(|&i| i as i32).collect();
        let xidx: Vec<i32> = tx.3.iter().map(|&i| i as i32).collect();
        let (yi, yw) = (
            cx.upload_any(&yidx, "resize rows")?,
            cx.upload(&ty.4, "resize row weights")?,
        );
        let (xi, xw) = (
            cx.upload_any(&xidx, "resize columns")?,
            cx.upload(&tx.4, "resize column weights")?,
        );
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Resize(ResizeParams {
                x: xp,
                y: yp,
                yidx: yi,
                yw,
                xidx: xi,
                xw,
                n: out_len as i64,
                h: ty.0 as i32,
                w: tx.0 as i32,
                oh: ty.1 as i32,
                ow: tx.1 as i32,
                ytaps: ty.2 as i32,
                xtaps: tx.2 as i32,
            }),
            out_len,
        ));
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
