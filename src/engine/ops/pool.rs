//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool with full ONNX attribute semantics.
//!
//! Owns the pooling geometry (output shapes for explicit pads, `auto_pad`
//! and `ceil_mode`), the per-axis window tables built at boot, and the
//! kernels: a separable 2-D path (column pass into a one-row buffer, then a
//! row pass; 1-D runs through it as a 1xW plane), a generic N-D path for
//! three or more spatial dims, and the global reductions.
//!
//! Semantics, per axis with dilated window `sw = (k - 1) * d + 1`:
//! * explicit pads: `out = floor((in + pb + pe - sw) / s) + 1`, or `ceil` in
//!   ceil_mode, where a last window that would start in the right padding
//!   is dropped;
//! * `VALID`: no padding, `out = floor((in - sw) / s) + 1`; `SAME_*`:
//!   `out = ceil(in / s)` and `pad = max(0, (out - 1) * s + sw - in)`, split
//!   with the odd element at the end (`SAME_UPPER`) or the start
//!   (`SAME_LOWER`); `ceil_mode` does not change these shapes.
//! * MaxPool treats padding as -inf (a window entirely in padding gives
//!   -inf). AveragePool divides by the taps inside the input, or with
//!   `count_include_pad` by the taps inside the padded input: positions a
//!   ceil_mode window reaches beyond the end padding never count. A window
//!   with no counted tap gives NaN (0 / 0), as the ONNX reference does.
//!
//! infer/lower run at boot and may allocate; kernels' `run` is on the frame
//! path (inference thread, work split over N*C planes on the kernel pool)
//! and never allocates.

use super::OpDef;
use super::{required, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::{AutoPad, Op, PoolAttrs};
use crate::engine::tensor::{checked_numel, shape_string};
use crate::engine::tensor::{numel, Tensor};
use crate::op_bail;

/// Most spatial dims the N-D path handles (its counters live on the stack).
const MAX_SPATIAL: usize = 8;

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let x = required(ins, 0, "X")?;
    if !x.dtype.is_float() {
        op_bail!(
            "{} input X is {}, expected a float type",
            op.name(),
            x.dtype
        );
    }
    let shape = match op {
        Op::MaxPool(a) | Op::AveragePool(a) => {
            let geom = geometry(op, a, x.shape)?;
            let mut s = x.shape[..2].to_vec();
            s.extend(geom.iter().map(|g| g.output));
            s
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            if x.shape.len() < 2 {
                op_bail!(
                    "{} needs an input of rank >= 2 (N, C, spatial...), got {}",
                    op.name(),
                    shape_string(x.shape)
                );
            }
            let mut s = x.shape.to_vec();
            for d in s.iter_mut().skip(2) {
                *d = 1;
            }
            s
        }
        _ => op_bail!("{} is not a pooling op", op.name()),
    };
    Ok(vec![OutInfo {
        dtype: x.dtype,
        shape,
    }])
}

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    let x = required(ins, 0, "X")?;
    let expect = infer(op, ins)?;
    if outs.len() != 1 || outs[0].shape != expect[0].shape {
        op_bail!(
            "{} output shape {} does not match the inferred {}",
            op.name(),
            outs.first()
                .map(|o| shape_string(&o.shape))
                .unwrap_or_else(|| "(none)".into()),
            shape_string(&expect[0].shape)
        );
    }
    let planes = x.shape.iter().take(2).product::<usize>();
    match op {
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            let plane = x.shape.iter().skip(2).product::<usize>();
            Ok(Box::new(GlobalKernel {
                max: matches!(op, Op::GlobalMaxPool),
                planes,
                plane,
            }))
        }
        Op::MaxPool(a) | Op::AveragePool(a) => {
            let kind = if matches!(op, Op::MaxPool(_)) {
                Kind::Max
            } else {
                Kind::Avg
            };
            let geom = geometry(op, a, x.shape)?;
            let cip = kind == Kind::Avg && a.count_include_pad;
            let mut axes: Vec<AxisTable> = geom.iter().map(|g| AxisTable::new(g, cip)).collect();
            if axes.len() == 1 {
                // 1-D runs as a 1xW plane through the 2-D path.
                let unit = AxisGeom {
                    input: 1,
                    output: 1,
                    kernel: 1,
                    stride: 1,
                    dilation: 1,
                    pad_begin: 0,
                    pad_end: 0,
                };
                axes.insert(0, AxisTable::new(&unit, cip));
            }
            let in_plane = geom.iter().map(|g| g.input).product();
            let out_plane = geom.iter().map(|g| g.output).product();
            let mut in_strides = vec![1usize; axes.len()];
            for i in (0..axes.len().saturating_sub(1)).rev() {
                in_strides[i] = in_strides[i + 1] * axes[i + 1].input;
            }
            let row = if axes.len() == 2 { axes[1].input } else { 0 };
            Ok(Box::new(WindowKernel {
                kind,
                planes,
                in_plane,
                out_plane,
                axes,
                in_strides,
                row,
            }))
        }
        _ => op_bail!("{} is not a pooling op", op.name()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

/// Resolved geometry of one spatial axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AxisGeom {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
}

fn list(v: &[usize]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Attribute `values` for `r` spatial dims: the ONNX default when empty,
/// else exactly `r * per_dim` positive (or, for pads, any) values.
fn per_axis(
    name: &str,
    values: &[usize],
    default: usize,
    per_dim: usize,
    r: usize,
    input: &[usize],
    allow_zero: bool,
) -> OpResult<Vec<usize>> {
    if values.is_empty() {
        return Ok(vec![default; r * per_dim]);
    }
    if values.len() != r * per_dim {
        op_bail!(
            "{name} {} has {} values but input {} has {r} spatial dims (expected {})",
            list(values),
            values.len(),
            shape_string(input),
            r * per_dim
        );
    }
    if !allow_zero && values.contains(&0) {
        op_bail!("{name} {} must be positive", list(values));
    }
    Ok(values.to_vec())
}

/// Output size and padding of every spatial axis, or an error naming the
/// attribute or dim that makes the pooling impossible.
fn geometry(op: &Op, a: &PoolAttrs, shape: &[usize]) -> OpResult<Vec<AxisGeom>> {
    let name = op.name();
    if shape.len() < 3 {
        op_bail!(
            "{name} needs an input of rank >= 3 (N, C, spatial...), got {}",
            shape_string(shape)
        );
    }
    let r = shape.len() - 2;
    if r > MAX_SPATIAL {
        op_bail!(
            "{name} supports at most {MAX_SPATIAL} spatial dims, input is {}",
            shape_string(shape)
        );
    }
    if a.kernel_shape.len() != r {
        op_bail!(
            "kernel_shape {} does not match {r} spatial dims of input {}",
            list(&a.kernel_shape),
            shape_string(shape)
        );
    }
    if a.kernel_shape.contains(&0) {
        op_bail!("kernel_shape {} must be positive", list(&a.kernel_shape));
    }
    let strides = per_axis("strides", &a.strides, 1, 1, r, shape, false)?;
    let dilations = per_axis("dilations", &a.dilations, 1, 1, r, shape, false)?;
    let pads = per_axis("pads", &a.pads, 0, 2, r, shape, true)?;
    if a.auto_pad != AutoPad::NotSet && pads.iter().any(|&p| p != 0) {
        op_bail!(
            "pads {} cannot be combined with auto_pad {:?}",
            list(&pads),
            a.auto_pad
        );
    }
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let input = shape[2 + i];
        let (k, s, d) = (a.kernel_shape[i], strides[i], dilations[i]);
        if input == 0 {
            op_bail!(
                "{name} input {} has an empty spatial dim {i}",
                shape_string(shape)
            );
        }
        let window = match (k - 1).checked_mul(d).and_then(|w| w.checked_add(1)) {
            Some(w) => w,
            None => op_bail!(
                "kernel_shape {} with dilations {} overflows",
                list(&a.kernel_shape),
                list(&dilations)
            ),
        };
        let (output, pb, pe) = match a.auto_pad {
            AutoPad::NotSet => {
                let (pb, pe) = (pads[i], pads[r + i]);
                let padded = input.saturating_add(pb).saturating_add(pe);
                if padded < window {
                    op_bail!(
                        "window {window} (kernel {k}, dilation {d}) is larger than the padded input {padded} (input {input} + pads {pb}+{pe}) on spatial dim {i} of {}",
                        shape_string(shape)
                    );
                }
                let span = padded - window;
                let mut o = if a.ceil_mode {
                    span.div_ceil(s) + 1
                } else {
                    span / s + 1
                };
                // A ceil_mode window must start inside the input or the
                // left padding.
                if a.ceil_mode && (o - 1) * s >= input + pb {
                    o -= 1;
                }
                (o, pb, pe)
            }
            AutoPad::Valid => {
                if input < window {
                    op_bail!(
                        "window {window} (kernel {k}, dilation {d}) is larger than input dim {input} on spatial dim {i} of {} with auto_pad VALID",
                        shape_string(shape)
                    );
                }
                ((input - window) / s + 1, 0, 0)
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = input.div_ceil(s);
                let total = ((o - 1) * s + window).saturating_sub(input);
                let (pb, pe) = if a.auto_pad == AutoPad::SameUpper {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                (o, pb, pe)
            }
        };
        out.push(AxisGeom {
            input,
            output,
            kernel: k,
            stride: s,
            dilation: d,
            pad_begin: pb,
            pad_end: pe,
        });
    }
    if checked_numel(&out.iter().map(|g| g.output).collect::<Vec<_>>())
        .and_then(|n| n.checked_mul(shape[0]))
        .and_then(|n| n.checked_mul(shape[1]))
        .is_none()
    {
        op_bail!("{name} output for input {} overflows", shape_string(shape));
    }
    Ok(out)
}

/// Per-output-position window of one axis, resolved at boot.
#[derive(Debug, Clone)]
struct AxisTable {
    input: usize,
    /// Input step between taps (the dilation).
    step: usize,
    kernel: usize,
    /// Input index of the first tap inside the input.
    first: Vec<usize>,
    /// Taps inside the input.
    taps: Vec<usize>,
    /// Taps counted in AveragePool's divisor.
    count: Vec<usize>,
    /// Output positions `lo..hi` have every tap inside the input.
    lo: usize,
    hi: usize,
    /// Input index of the first tap of output `lo`, and the stride.
    lo_start: usize,
    stride: usize,
}

impl AxisTable {
    fn new(g: &AxisGeom, count_include_pad: bool) -> AxisTable {
        let (k, s, d) = (g.kernel as i64, g.stride as i64, g.dilation as i64);
        let input = g.input as i64;
        let mut t = AxisTable {
            input: g.input,
            step: g.dilation,
            kernel: g.kernel,
            first: Vec::with_capacity(g.output),
            taps: Vec::with_capacity(g.output),
            count: Vec::with_capacity(g.output),
            lo: g.output,
            hi: g.output,
            lo_start: 0,
            stride: g.stride,
        };
        for o in 0..g.output as i64 {
            let start = o * s - g.pad_begin as i64;
            // Taps j with 0 <= start + j*d < input.
            let j0 = if start >= 0 { 0 } else { (-start + d - 1) / d };
            let j1 = if input - 1 - start >= 0 {
                ((input - 1 - start) / d + 1).min(k)
            } else {
                0
            };
            let taps = (j1 - j0).max(0);
            // Taps inside the padded input: start + j*d < input + pad_end
            // (start >= -pad_begin always holds).
            let limit = input + g.pad_end as i64 - 1 - start;
            let padded = if limit >= 0 {
                (limit / d + 1).min(k)
            } else {
                0
            };
            t.first.push(if taps > 0 {
                (start + j0 * d) as usize
            } else {
                0
            });
            t.taps.push(taps as usize);
            t.count
                .push(if count_include_pad { padded } else { taps } as usize);
            if taps == k {
                if t.lo == g.output {
                    t.lo = o as usize;
                    t.lo_start = start as usize;
                }
                t.hi = o as usize + 1;
            }
        }
        if t.lo == g.output {
            t.hi = g.output;
        }
        t
    }
}

/// MaxPool / AveragePool over N*C planes.
struct WindowKernel {
    kind: Kind,
    planes: usize,
    in_plane: usize,
    out_plane: usize,
    /// Spatial axes (at least two: 1-D gets a unit leading axis).
    axes: Vec<AxisTable>,
    in_strides: Vec<usize>,
    /// Row buffer length per plane for the 2-D path (0 for N-D).
    row: usize,
}

#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

impl WindowKernel {
    /// One plane of the 2-D path: combine the window's rows into `buf`,
    /// then reduce `buf` along the row for every output column.
    fn plane_2d(&self, src: &[f32], dst: &mut [f32], buf: &mut [f32]) {
        let (ay, ax) = (&self.axes[0], &self.axes[1]);
        let w = ax.input;
        let ow = ax.first.len();
        let max = self.kind == Kind::Max;
        let init = if max { f32::NEG_INFINITY } else { 0.0 };
        for (oy, out_row) in dst.chunks_exact_mut(ow).enumerate() {
            let ny = ay.taps[oy];
            let y0 = ay.first[oy];
            let row: &[f32] = if ny == 1 {
                &src[y0 * w..(y0 + 1) * w]
            } else {
                if ny == 0 {
                    buf.fill(init);
                } else {
                    buf.copy_from_slice(&src[y0 * w..(y0 + 1) * w]);
                    for j in 1..ny {
                        let r = &src[(y0 + j * ay.step) * w..][..w];
                        if max {
                            for (b, &v) in buf.iter_mut().zip(r) {
                                *b = fmax(*b, v);
                            }
                        } else {
                            for (b, &v) in buf.iter_mut().zip(r) {
                                *b += v;
                            }
                        }
                    }
                }
                &*buf
            };
            let cy = ay.count[oy];
            let edge = |ox: usize| -> f32 {
                let mut acc = init;
                let mut xi = ax.first[ox];
                for _ in 0..ax.taps[ox] {
                    acc = if max {
                        fmax(acc, row[xi])
                    } else {
                        acc + row[xi]
                    };
                    xi += ax.step;
                }
                if max {
                    acc
                } else {
                    acc / (cy * ax.count[ox]) as f32
                }
            };
            for ox in (0..ax.lo).chain(ax.hi..ow) {
                out_row[ox] = edge(ox);
            }
            if ax.lo >= ax.hi {
                continue;
            }
            let inner = &mut out_row[ax.lo..ax.hi];
            if ax.stride == 1 && ax.step == 1 {
                // Contiguous shifted slices: vectorises.
                let n = inner.len();
                inner.copy_from_slice(&row[ax.lo_start..ax.lo_start + n]);
                for j in 1..ax.kernel {
                    let shifted = &row[ax.lo_start + j..ax.lo_start + j + n];
                    if max {
                        for (o, &v) in inner.iter_mut().zip(shifted) {
                            *o = fmax(*o, v);
                        }
                    } else {
                        for (o, &v) in inner.iter_mut().zip(shifted) {
                            *o += v;
                        }
                    }
                }
                if !max {
                    let div = (cy * ax.kernel) as f32;
                    for o in inner.iter_mut() {
                        *o /= div;
                    }
                }
            } else {
                let mut start = ax.lo_start;
                for o in inner.iter_mut() {
                    let mut acc = init;
                    let mut xi = start;
                    for _ in 0..ax.kernel {
                        acc = if max {
                            fmax(acc, row[xi])
                        } else {
                            acc + row[xi]
                        };
                        xi += ax.step;
                    }
                    *o = if max {
                        acc
                    } else {
                        acc / (cy * ax.kernel) as f32
                    };
                    start += ax.stride;
                }
            }
        }
    }

    /// One plane of the N-D path (three or more spatial dims).
    fn plane_nd(&self, src: &[f32], dst: &mut [f32]) {
        let r = self.axes.len();
        let max = self.kind == Kind::Max;
        let init = if max { f32::NEG_INFINITY } else { 0.0 };
        let mut oc = [0usize; MAX_SPATIAL];
        for out in dst.iter_mut() {
            let mut base = 0;
            let mut count = 1;
            let mut empty = false;
            for ((t, &o), &st) in self.axes.iter().zip(&oc).zip(&self.in_strides) {
                base += t.first[o] * st;
                count *= t.count[o];
                empty |= t.taps[o] == 0;
            }
            let mut acc = init;
            if !empty {
                let mut tc = [0usize; MAX_SPATIAL];
                let mut off = base;
                'taps: loop {
                    let v = src[off];
                    acc = if max { fmax(acc, v) } else { acc + v };
                    let mut a = r;
                    loop {
                        if a == 0 {
                            break 'taps;
                        }
                        a -= 1;
                        let t = &self.axes[a];
                        let step = t.step * self.in_strides[a];
                        tc[a] += 1;
                        off += step;
                        if tc[a] < t.taps[oc[a]] {
                            break;
                        }
                        off -= tc[a] * step;
                        tc[a] = 0;
                    }
                }
            }
            *out = if max { acc } else { acc / count as f32 };
            let mut a = r;
            while a > 0 {
                a -= 1;
                oc[a] += 1;
                if oc[a] < self.axes[a].first.len() {
                    break;
                }
                oc[a] = 0;
            }
        }
    }
}

impl CpuKernel for WindowKernel {
    fn scratch_len(&self) -> usize {
        self.planes * self.row
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let y = Buf::from_slice(io.output(0));
        let s = Buf::from_slice(scratch);
        if x.len() < self.planes * self.in_plane
            || y.len < self.planes * self.out_plane
            || s.len < self.planes * self.row
        {
            return;
        }
        pool.parallel_for(self.planes, &|p| {
            let src = &x[p * self.in_plane..(p + 1) * self.in_plane];
            // SAFETY: plane p owns output elements [p*out_plane, (p+1)*out_plane)
            // and scratch [p*row, (p+1)*row), in bounds (checked above) and
            // disjoint from every other task's; the output does not alias the
            // input (no in-place support).
            let (dst, buf) = unsafe {
                (
                    sub_mut(&y, p * self.out_plane, self.out_plane),
                    sub_mut(&s, p * self.row, self.row),
                )
            };
            if self.axes.len() == 2 {
                self.plane_2d(src, dst, buf);
            } else {
                self.plane_nd(src, dst);
            }
        });
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

/// GlobalAveragePool / GlobalMaxPool: one reduction per N*C plane.
struct GlobalKernel {
    max: bool,
    planes: usize,
    plane: usize,
}

impl CpuKernel for GlobalKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let y = Buf::from_slice(io.output(0));
        if x.len() < self.planes * self.plane || y.len < self.planes {
            return;
        }
        pool.parallel_for(self.planes, &|p| {
            let src = &x[p * self.plane..(p + 1) * self.plane];
            // Eight independent lanes so the loop vectorises.
            let mut lanes = [if self.max { f32::NEG_INFINITY } else { 0.0 }; 8];
            let mut chunks = src.chunks_exact(8);
            for c in &mut chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l = if self.max { fmax(*l, v) } else { *l + v };
                }
            }
            for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
                *l = if self.max { fmax(*l, v) } else { *l + v };
            }
            let v = if self.max {
                lanes.iter().copied().fold(f32::NEG_INFINITY, fmax)
            } else {
                lanes.iter().sum::<f32>() / self.plane as f32
            };
            // SAFETY: task p writes only element p of the output, which is
            // in bounds (checked above) and written by no other task.
            unsafe { sub_mut(&y, p, 1)[0] = v };
        });
    }
}

/// Resolved geometry of each spatial axis of a pool, for another backend:
/// `(input, output, kernel, stride, dilation, pad_begin, pad_end)`.
/// Boot only; allocates.
#[allow(clippy::type_complexity)]
pub(crate) fn axis_geometry(
    op: &Op,
    a: &PoolAttrs,
    shape: &[usize],
) -> OpResult<Vec<(usize, usize, usize, usize, usize, usize, usize)>> {
    Ok(geometry(op, a, shape)?
        .into_iter()
        .map(|g| {
            (
                g.input,
                g.output,
                g.kernel,
                g.stride,
                g.dilation,
                g.pad_begin,
                g.pad_end,
            )
        })
        .collect())
}

pub struct WindowPool;

impl OpDef for WindowPool {
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
        let (Op::MaxPool(a) | Op::AveragePool(a)) = op else {
            return Err(refuse(op, "is not a windowed pool"));
        };
        let x = inp(0).ok_or_else(|| refuse(op, "needs X"))?;
        let sx = cx.shape(x).to_vec();
        let geo = axis_geometry(op, a, &sx).map_err(op_err)?;
        if geo.len() != 2 {
            return Err(refuse(op, "only 2-D pooling runs on the GPU"));
        }
        let (gy, gx) = (geo[0], geo[1]);
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(kernel(
            Params::Pool(PoolParams {
                x: xp,
                y: yp,
                n: out_len as i64,
                h: gy.0 as i32,
                w: gx.0 as i32,
                oh: gy.1 as i32,
                ow: gx.1 as i32,
                kh: gy.2 as i32,
                kw: gx.2 as i32,
                sh: gy.3 as i32,
                sw: gx.3 as i32,
                dh: gy.4 as i32,
                dw: gx.4 as i32,
                ph: gy.5 as i32,
                pw: gx.5 as i32,
                pad_end_h: gy.6 as i32,
                pad_end_w: gx.6 as i32,
                is_max: matches!(op, Op::MaxPool(_)) as i32,
                count_include_pad: a.count_include_pad as i32,
            }),
            out_len,
        ));
        Ok(v)
    }
}

pub struct GlobalPool;

impl OpDef for GlobalPool {
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
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let x = inp(0).ok_or_else(|| refuse(op, "needs X"))?;
        let sx = cx.shape(x).to_vec();
        if sx.len() < 3 {
            return Err(refuse(op, "needs N x C x spatial"));
        }
        let rows = sx[0] * sx[1];
        let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
        v.push(Launch::Kernel {
            params: Params::GlobalPool(GlobalPoolParams {
                x: xp,
                y: yp,
                rows: rows as i64,
                len: numel(&sx[2..]) as i64,
                is_max: matches!(op, Op::GlobalMaxPool) as i32,
            }),
            grid: rows.clamp(1, 65_535) as u32,
            block: 256,
        });
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::eval;
    use crate::engine::tensor::Tensor;

    /// Deterministic test input; the ORT literals below were generated from
    /// the same formula (float32 arithmetic) in Python.
    fn input(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
            .collect();
        Tensor::from_f32(shape.to_vec(), v)
    }

    fn attrs(kernel: &[usize]) -> PoolAttrs {
        PoolAttrs {
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
            count_include_pad: false,
            dilations: vec![],
            kernel_shape: kernel.to_vec(),
            pads: vec![],
            strides: vec![],
            storage_order: 0,
        }
    }

    fn run(op: &Op, x: &Tensor) -> OpResult<Tensor> {
        let mut out = eval(op, &[Some(x)])?;
        Ok(out.remove(0))
    }

    /// Runs the kernel on a 3-thread pool (eval uses one thread).
    fn run_threaded(op: &Op, x: &Tensor) -> Vec<f32> {
        let info = [Some(ValueInfo::of(x))];
        let outs = infer(op, &info).unwrap();
        let k = lower(op, &info, &outs).unwrap();
        let mut xin = x.as_f32().unwrap().to_vec();
        let mut y = vec![f32::NAN; outs[0].shape.iter().product()];
        let mut scratch = vec![0.0; k.scratch_len()];
        let ins = [Buf::from_slice(&mut xin)];
        let os = [Buf::from_slice(&mut y)];
        let pool = ThreadPool::new(3);
        // SAFETY: the buffers are distinct live Vecs of the declared lengths.
        let io = unsafe { StepIo::new(&ins, &os, false) };
        k.run(&io, &mut scratch, &pool);
        y
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let ok =
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-5 * (1.0 + w.abs());
            assert!(ok, "{what}: element {i}: got {g}, want {w}");
        }
    }

    /// The ONNX semantics written out naively: every tap of every window,
    /// padded positions tested one by one.
    fn naive(max: bool, a: &PoolAttrs, x: &Tensor) -> Option<(Vec<usize>, Vec<f32>)> {
        let shape = &x.shape;
        let xv = x.as_f32().unwrap();
        let r = shape.len() - 2;
        let or1 = |v: &Vec<usize>, n: usize| if v.is_empty() { vec![1; n] } else { v.clone() };
        let k: Vec<i64> = a.kernel_shape.iter().map(|&v| v as i64).collect();
        let s: Vec<i64> = or1(&a.strides, r).iter().map(|&v| v as i64).collect();
        let d: Vec<i64> = or1(&a.dilations, r).iter().map(|&v| v as i64).collect();
        let pads: Vec<i64> = if a.pads.is_empty() {
            vec![0; 2 * r]
        } else {
            a.pads.iter().map(|&v| v as i64).collect()
        };
        let (mut pb, mut pe, mut out) = (vec![0i64; r], vec![0i64; r], vec![0i64; r]);
        for i in 0..r {
            let n = shape[2 + i] as i64;
            let sw = (k[i] - 1) * d[i] + 1;
            match a.auto_pad {
                AutoPad::NotSet => {
                    pb[i] = pads[i];
                    pe[i] = pads[r + i];
                    let v = (n + pb[i] + pe[i] - sw) as f64 / s[i] as f64 + 1.0;
                    out[i] = if a.ceil_mode { v.ceil() } else { v.floor() } as i64;
                    if a.ceil_mode && (out[i] - 1) * s[i] >= n + pb[i] {
                        out[i] -= 1;
                    }
                }
                AutoPad::Valid => {
                    out[i] = ((n - sw) as f64 / s[i] as f64).floor() as i64 + 1;
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    out[i] = (n as f64 / s[i] as f64).ceil() as i64;
                    let total = ((out[i] - 1) * s[i] + sw - n).max(0);
                    let half = total / 2;
                    (pb[i], pe[i]) = if a.auto_pad == AutoPad::SameUpper {
                        (half, total - half)
                    } else {
                        (total - half, half)
                    };
                }
            }
            if out[i] <= 0 || n + pb[i] + pe[i] < sw {
                return None;
            }
        }
        let mut oshape = shape[..2].to_vec();
        oshape.extend(out.iter().map(|&o| o as usize));
        let planes = shape[0] * shape[1];
        let in_plane: usize = shape[2..].iter().product();
        let out_plane: usize = oshape[2..].iter().product();
        let ntaps: i64 = k.iter().product();
        let mut y = Vec::new();
        for p in 0..planes {
            for oi in 0..out_plane {
                let mut oc = vec![0i64; r];
                let mut rem = oi;
                for i in (0..r).rev() {
                    oc[i] = (rem % oshape[2 + i]) as i64;
                    rem /= oshape[2 + i];
                }
                let (mut acc, mut inside, mut padded) =
                    (if max { f32::NEG_INFINITY } else { 0.0 }, 0, 0);
                for t in 0..ntaps {
                    let mut rem = t;
                    let (mut off, mut is_in, mut is_pad) = (0usize, true, true);
                    for i in (0..r).rev() {
                        let j = rem % k[i];
                        rem /= k[i];
                        let n = shape[2 + i] as i64;
                        let pos = oc[i] * s[i] - pb[i] + j * d[i];
                        is_in &= pos >= 0 && pos < n;
                        is_pad &= pos >= -pb[i] && pos < n + pe[i];
                        if is_in {
                            let stride: usize = shape[3 + i..].iter().product();
                            off += pos as usize * stride;
                        }
                    }
                    padded += is_pad as usize;
                    if is_in {
                        inside += 1;
                        let v = xv[p * in_plane + off];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                y.push(if max {
                    acc
                } else {
                    let c = if a.count_include_pad { padded } else { inside };
                    acc / c as f32
                });
            }
        }
        Some((oshape, y))
    }

    type Case = (&'static str, Op, Vec<usize>, (Vec<usize>, Vec<f32>));

    fn ort_cases() -> Vec<Case> {
        let with = |k: &[usize], f: &dyn Fn(&mut PoolAttrs)| {
            let mut a = attrs(k);
            f(&mut a);
            a
        };
        vec![
            (
                "maxpool_2d_k3_s2_p1_ceil",
                Op::MaxPool(with(&[3, 3], &|a| {
                    a.strides = vec![2, 2];
                    a.pads = vec![1, 1, 1, 1];
                    a.ceil_mode = true;
                })),
                vec![1, 2, 5, 6],
                maxpool_2d_k3_s2_p1_ceil(),
            ),
            (
                "maxpool_2d_asym_pads_s1",
                Op::MaxPool(with(&[2, 3], &|a| a.pads = vec![1, 0, 0, 2])),
                vec![1, 1, 4, 5],
                maxpool_2d_asym_pads_s1(),
            ),
            (
                "avgpool_2d_ceil_cip",
                Op::AveragePool(with(&[3, 3], &|a| {
                    a.strides = vec![2, 2];
                    a.pads = vec![1, 0, 1, 2];
                    a.ceil_mode = true;
                    a.count_include_pad = true;
                })),
                vec![1, 2, 5, 6],
                avgpool_2d_ceil_cip(),
            ),
            (
                "avgpool_2d_ceil_nocip",
                Op::AveragePool(with(&[3, 3], &|a| {
                    a.strides = vec![2, 2];
                    a.pads = vec![1, 0, 1, 2];
                    a.ceil_mode = true;
                })),
                vec![1, 2, 5, 6],
                avgpool_2d_ceil_nocip(),
            ),
            (
                "avgpool_1d_ceil_window_past_padding",
                Op::AveragePool(with(&[3], &|a| {
                    a.strides = vec![3];
                    a.ceil_mode = true;
                    a.count_include_pad = true;
                })),
                vec![1, 1, 4],
                avgpool_1d_ceil_window_past_padding(),
            ),
            (
                "avgpool_1d_ceil_pads_cip",
                Op::AveragePool(with(&[3], &|a| {
                    a.strides = vec![2];
                    a.pads = vec![1, 1];
                    a.ceil_mode = true;
                    a.count_include_pad = true;
                })),
                vec![1, 2, 7],
                avgpool_1d_ceil_pads_cip(),
            ),
            (
                "maxpool_3d_dilated",
                Op::MaxPool(with(&[2, 2, 2], &|a| {
                    a.strides = vec![1, 2, 2];
                    a.dilations = vec![1, 2, 1];
                    a.pads = vec![1, 0, 1, 0, 1, 1];
                })),
                vec![1, 1, 4, 5, 6],
                maxpool_3d_dilated(),
            ),
            (
                "avgpool_3d_ceil_cip",
                Op::AveragePool(with(&[2, 2, 3], &|a| {
                    a.strides = vec![2, 2, 2];
                    a.pads = vec![0, 1, 1, 1, 0, 1];
                    a.ceil_mode = true;
                    a.count_include_pad = true;
                })),
                vec![1, 1, 3, 4, 5],
                avgpool_3d_ceil_cip(),
            ),
            (
                "avgpool_same_lower_cip",
                Op::AveragePool(with(&[3, 2], &|a| {
                    a.strides = vec![2, 2];
                    a.auto_pad = AutoPad::SameLower;
                    a.count_include_pad = true;
                })),
                vec![1, 1, 5, 6],
                avgpool_same_lower_cip(),
            ),
            (
                "avgpool_same_upper_nocip",
                Op::AveragePool(with(&[3, 2], &|a| {
                    a.strides = vec![2, 2];
                    a.auto_pad = AutoPad::SameUpper;
                })),
                vec![1, 1, 5, 6],
                avgpool_same_upper_nocip(),
            ),
            (
                "maxpool_same_lower",
                Op::MaxPool(with(&[2, 4], &|a| {
                    a.strides = vec![1, 3];
                    a.auto_pad = AutoPad::SameLower;
                })),
                vec![1, 1, 5, 7],
                maxpool_same_lower(),
            ),
            (
                "maxpool_valid",
                Op::MaxPool(with(&[2, 3], &|a| {
                    a.strides = vec![2, 2];
                    a.auto_pad = AutoPad::Valid;
                })),
                vec![1, 2, 5, 7],
                maxpool_valid(),
            ),
            (
                "avgpool_dilated_cip",
                Op::AveragePool(with(&[2, 3], &|a| {
                    a.strides = vec![1, 2];
                    a.dilations = vec![2, 2];
                    a.pads = vec![1, 1, 1, 1];
                    a.count_include_pad = true;
                })),
                vec![1, 1, 6, 7],
                avgpool_dilated_cip(),
            ),
            (
                "maxpool_dilated_ceil",
                Op::MaxPool(with(&[2, 2], &|a| {
                    a.strides = vec![2, 2];
                    a.dilations = vec![2, 3];
                    a.pads = vec![1, 0, 0, 1];
                    a.ceil_mode = true;
                })),
                vec![1, 1, 6, 7],
                maxpool_dilated_ceil(),
            ),
            (
                "global_avg",
                Op::GlobalAveragePool,
                vec![2, 3, 4, 5],
                global_avg(),
            ),
            (
                "global_max",
                Op::GlobalMaxPool,
                vec![2, 3, 4, 5],
                global_max(),
            ),
            (
                "global_max_1d",
                Op::GlobalMaxPool,
                vec![1, 2, 13],
                global_max_1d(),
            ),
        ]
    }

    #[test]
    fn matches_onnxruntime_outputs() {
        for (name, op, shape, (want_shape, want)) in ort_cases() {
            let x = input(&shape);
            let y = run(&op, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(y.shape, want_shape, "{name}: shape");
            assert_close(y.as_f32().unwrap(), &want, name);
            assert_close(&run_threaded(&op, &x), &want, name);
            if let Op::MaxPool(a) | Op::AveragePool(a) = &op {
                let (ns, nv) = naive(matches!(op, Op::MaxPool(_)), a, &x).unwrap();
                assert_eq!(ns, want_shape, "{name}: naive shape");
                assert_close(&nv, &want, &format!("{name} (naive)"));
            }
        }
    }

    /// The spec's SAME formulas with dilation (onnxruntime deviates here;
    /// values worked out by hand): input 1..5, kernel 2, stride 2,
    /// dilation 2 gives output 3 and pads 1+1.
    #[test]
    fn same_padding_uses_the_dilated_window() {
        let x = Tensor::from_f32(vec![1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        let mut a = attrs(&[2]);
        a.strides = vec![2];
        a.dilations = vec![2];
        a.auto_pad = AutoPad::SameUpper;
        let y = run(&Op::MaxPool(a.clone()), &x).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[2.0, 4.0, 4.0]);
        a.count_include_pad = true;
        let y = run(&Op::AveragePool(a.clone()), &x).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1.0, 3.0, 2.0]);
        a.count_include_pad = false;
        let y = run(&Op::AveragePool(a), &x).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[2.0, 3.0, 4.0]);
    }

    /// Stride larger than the kernel: SAME's pad would be negative and is
    /// clamped to zero (windows at 0 and 3).
    #[test]
    fn same_padding_never_goes_negative() {
        let x = Tensor::from_f32(vec![1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        let mut a = attrs(&[1]);
        a.strides = vec![3];
        a.auto_pad = AutoPad::SameUpper;
        let y = run(&Op::MaxPool(a), &x).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1.0, 4.0]);
    }

    #[test]
    fn ceil_mode_does_not_change_auto_pad_shapes() {
        for auto_pad in [AutoPad::Valid, AutoPad::SameUpper, AutoPad::SameLower] {
            let mut a = attrs(&[2]);
            a.strides = vec![2];
            a.auto_pad = auto_pad;
            let x = input(&[1, 1, 5]);
            let floor = run(&Op::MaxPool(a.clone()), &x).unwrap();
            a.ceil_mode = true;
            let ceil = run(&Op::MaxPool(a), &x).unwrap();
            assert_eq!(floor, ceil, "{auto_pad:?}");
        }
    }

    /// Tiny deterministic generator for the attribute sweep.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn matches_naive_reference_over_attribute_grid() {
        let mut rng = Lcg(7);
        let shapes: [&[usize]; 5] = [
            &[1, 2, 9],
            &[2, 3, 7, 8],
            &[1, 2, 5, 11],
            &[1, 2, 4, 5, 6],
            &[1, 1, 3, 4, 3, 5],
        ];
        let auto = [
            AutoPad::NotSet,
            AutoPad::NotSet,
            AutoPad::NotSet,
            AutoPad::Valid,
            AutoPad::SameUpper,
            AutoPad::SameLower,
        ];
        let (mut checked, mut rejected) = (0, 0);
        for case in 0..600 {
            let shape = shapes[rng.next(shapes.len())];
            let r = shape.len() - 2;
            let mut a = attrs(&(0..r).map(|_| 1 + rng.next(4)).collect::<Vec<_>>());
            a.strides = (0..r).map(|_| 1 + rng.next(3)).collect();
            if rng.next(2) == 0 {
                a.dilations = (0..r).map(|_| 1 + rng.next(2)).collect();
            }
            a.auto_pad = auto[rng.next(auto.len())];
            if a.auto_pad == AutoPad::NotSet && rng.next(3) != 0 {
                a.pads = (0..2 * r).map(|_| rng.next(3)).collect();
            }
            a.ceil_mode = rng.next(2) == 0;
            a.count_include_pad = rng.next(2) == 0;
            let max = rng.next(2) == 0;
            let op = if max {
                Op::MaxPool(a.clone())
            } else {
                Op::AveragePool(a.clone())
            };
            let x = input(shape);
            let what = format!("case {case}: {op:?} on {shape:?}");
            match (naive(max, &a, &x), run(&op, &x)) {
                (Some((ws, wv)), Ok(y)) => {
                    assert_eq!(y.shape, ws, "{what}");
                    assert_close(y.as_f32().unwrap(), &wv, &what);
                    checked += 1;
                }
                (None, Err(_)) => rejected += 1,
                (Some(_), Err(e)) => panic!("{what}: rejected: {e}"),
                (None, Ok(y)) => panic!("{what}: accepted with shape {:?}", y.shape),
            }
        }
        assert!(
            checked > 400 && rejected > 0,
            "{checked} checked, {rejected} rejected"
        );
    }

    /// yolov8 SPPF: MaxPool k=5 s=1 p=2 keeps the shape (the vectorised
    /// interior path), also on several threads.
    #[test]
    fn sppf_maxpool_matches_naive() {
        let mut a = attrs(&[5, 5]);
        a.pads = vec![2, 2, 2, 2];
        let op = Op::MaxPool(a.clone());
        let x = input(&[1, 8, 20, 20]);
        let y = run(&op, &x).unwrap();
        let (ws, wv) = naive(true, &a, &x).unwrap();
        assert_eq!(y.shape, ws);
        assert_eq!(ws, vec![1, 8, 20, 20]);
        assert_close(y.as_f32().unwrap(), &wv, "sppf");
        assert_close(&run_threaded(&op, &x), &wv, "sppf threaded");
    }

    #[test]
    fn windows_entirely_in_padding() {
        // Pads larger than the kernel (ONNX allows it): max of nothing is
        // -inf, the average of nothing counted is NaN, and with
        // count_include_pad the padding counts as zeros.
        let x = Tensor::from_f32(vec![1, 1, 2], vec![1.0, 3.0]);
        let mut a = attrs(&[2]);
        a.pads = vec![2, 2];
        let y = run(&Op::MaxPool(a.clone()), &x).unwrap();
        assert_eq!(
            y.as_f32().unwrap(),
            &[f32::NEG_INFINITY, 1.0, 3.0, 3.0, f32::NEG_INFINITY]
        );
        let y = run(&Op::AveragePool(a.clone()), &x).unwrap();
        let v = y.as_f32().unwrap();
        assert!(v[0].is_nan() && v[4].is_nan());
        assert_eq!(&v[1..4], &[1.0, 2.0, 3.0]);
        a.count_include_pad = true;
        let y = run(&Op::AveragePool(a), &x).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[0.0, 0.5, 2.0, 1.5, 0.0]);
    }

    #[test]
    fn bad_attributes_are_named() {
        let err = |op: Op, shape: &[usize]| {
            let x = input(shape);
            infer(&op, &[Some(ValueInfo::of(&x))])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(Op::MaxPool(attrs(&[3, 3, 3])), &[1, 8, 32, 32]),
            "kernel_shape [3,3,3] does not match 2 spatial dims of input 1x8x32x32"
        );
        let mut a = attrs(&[3, 3]);
        a.strides = vec![2];
        assert!(err(Op::MaxPool(a), &[1, 8, 32, 32]).contains("strides [2] has 1 values"));
        let mut a = attrs(&[3, 3]);
        a.pads = vec![1, 1, 1, 1];
        a.auto_pad = AutoPad::SameUpper;
        assert!(err(Op::AveragePool(a), &[1, 8, 32, 32]).contains("cannot be combined"));
        let mut a = attrs(&[5, 2]);
        a.dilations = vec![2, 1];
        assert_eq!(
            err(Op::MaxPool(a), &[1, 1, 6, 6]),
            "window 9 (kernel 5, dilation 2) is larger than the padded input 6 (input 6 + pads 0+0) on spatial dim 0 of 1x1x6x6"
        );
        assert!(err(Op::MaxPool(attrs(&[2])), &[1, 4]).contains("rank >= 3"));
        assert!(err(Op::GlobalMaxPool, &[4]).contains("rank >= 2"));
        let mut a = attrs(&[0, 2]);
        a.strides = vec![1, 1];
        assert!(err(Op::MaxPool(a), &[1, 1, 4, 4]).contains("kernel_shape [0,2] must be positive"));
    }

    #[test]
    fn global_pool_keeps_rank() {
        let x = input(&[1, 2, 3, 4, 5]);
        let y = run(&Op::GlobalAveragePool, &x).unwrap();
        assert_eq!(y.shape, vec![1, 2, 1, 1, 1]);
        let v = x.as_f32().unwrap();
        for c in 0..2 {
            let want = v[c * 60..(c + 1) * 60].iter().sum::<f32>() / 60.0;
            assert!((y.as_f32().unwrap()[c] - want).abs() < 1e-5);
        }
    }
    // maxpool_2d_k3_s2_p1_ceil: ort, reference agrees: True
    #[rustfmt::skip]
    fn maxpool_2d_k3_s2_p1_ceil() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 4], vec![4.4700003, 4.4700003, 1.4099998, -1.6500001, 4.4700003, 4.76, 3.2299995, 0.17000008, -1.3599999, 4.76, 4.1400003, 1.0799999, 0.46000004, 5.05, 5.05, 2.9, 2.2800002, 0.75, 4.7200003, 4.7200003, 3.1899996, 1.6599998, 4.7200003, 4.7200003]) }
    // maxpool_2d_asym_pads_s1: ort, reference agrees: True
    #[rustfmt::skip]
    fn maxpool_2d_asym_pads_s1() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 4, 5], vec![3.5600004, 3.5600004, 2.0300002, 0.5, -1.03, 4.4700003, 4.4700003, 4.4700003, 2.94, 1.4099998, 4.4700003, 4.4700003, 4.4700003, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 3.8500004, 3.8500004, 3.8500004]) }
    // avgpool_2d_ceil_cip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_2d_ceil_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 3], vec![0.43444455, 0.6366667, -0.59555554, -0.22555542, 2.3200002, 0.016666677, -1.1088889, 1.3355556, 0.61777776, -1.0166667, 0.30666673, 1.4266667, -0.15999998, -2.0988889, 0.8077779, 0.8033333, -1.2366668, -0.72333336]) }
    // avgpool_2d_ceil_nocip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_2d_ceil_nocip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 3], vec![0.6516668, 0.9550001, -1.3399999, -0.22555542, 2.3200002, 0.025000015, -1.6633333, 2.0033333, 1.39, -1.525, 0.46000013, 3.21, -0.15999998, -2.0988889, 1.2116668, 1.2049999, -1.8550001, -1.6275]) }
    // avgpool_1d_ceil_window_past_padding: ort, reference agrees: False
    #[rustfmt::skip]
    fn avgpool_1d_ceil_window_past_padding() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 2], vec![0.19666688, 0.5]) }
    // avgpool_1d_ceil_pads_cip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_1d_ceil_pads_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 4], vec![-0.47999987, 2.0300002, -1.03, -2.2166667, 2.47, 1.41, -1.65, -2.6299999]) }
    // maxpool_3d_dilated: ort, reference agrees: True
    #[rustfmt::skip]
    fn maxpool_3d_dilated() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 4, 2, 4], vec![-3.1799998, 3.8500004, 2.3200002, -0.7399998, -1.3599999, 3.8500004, 4.1400003, 1.0799999, 1.3699999, 3.8500004, 5.05, 3.8100004, 3.1899996, 3.8500004, 4.1400003, 3.8100004, 4.1000004, 4.3900003, 5.05, 3.8100004, 3.1899996, 4.6800003, 3.1499996, 3.8100004, 4.1000004, 4.3900003, 4.3500004, 2.8200002, 2.1999998, 4.6800003, 4.3500004, 4.6400003]) }
    // avgpool_3d_ceil_cip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_3d_ceil_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 2, 3, 3], vec![0.54583335, 0.93249995, -0.14333332, -1.5133333, -0.36083326, 1.3125001, 0.9266667, -0.9049999, -2.1333334, 0.61083335, 0.3425, -0.15416665, -0.9216666, -0.0074999332, 0.9116667, 0.29833332, -0.7, -1.2316667]) }
    // avgpool_same_lower_cip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_same_lower_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![-0.17666657, 1.1466666, -0.89333326, -2.2633333, 3.085, 0.025000015, -1.7199999, 1.285, 0.9266667]) }
    // avgpool_same_upper_nocip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_same_upper_nocip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![-0.26499987, 1.72, -1.3399999, -2.2633333, 3.085, 0.025000015, -2.58, 1.9275, 1.39]) }
    // maxpool_same_lower: ort, reference agrees: False
    #[rustfmt::skip]
    fn maxpool_same_lower() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 5, 3], vec![3.5600004, 3.5600004, -1.03, 4.4700003, 3.5600004, -1.03, 4.4700003, 2.94, 4.76, 3.8500004, 2.3200002, 4.76, 3.2299995, 1.6999998, 5.05]) }
    // maxpool_valid: ort, reference agrees: True
    #[rustfmt::skip]
    fn maxpool_valid() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 2, 3], vec![4.4700003, 2.0300002, -1.03, 3.8500004, 0.78999996, 4.76, 1.9899998, -1.0699999, 4.4300003, 0.75, 4.7200003, 4.7200003]) }
    // avgpool_dilated_cip: ort, reference agrees: True
    #[rustfmt::skip]
    fn avgpool_dilated_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 6, 3], vec![0.47000003, -0.059999943, -0.54999995, 0.9400001, -0.11999985, -1.0999999, 0.5266667, -0.73999995, -1.5133333, 0.11333338, 0.32166675, -0.24499996, -0.29999998, -0.29833326, -0.6583331, -0.15000002, 0.69166666, 0.5116667]) }
    // maxpool_dilated_ceil: ort, reference agrees: True
    #[rustfmt::skip]
    fn maxpool_dilated_ceil() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![4.4700003, 1.4099998, -1.6500001, 4.4700003, 1.4099998, -1.6500001, 3.2299995, 4.4300003, -2.89]) }
    // global_avg: ort, reference agrees: True
    #[rustfmt::skip]
    fn global_avg() -> (Vec<usize>, Vec<f32>) { (vec![2, 3, 1, 1], vec![-0.3639999, 0.315, -0.014999974, 0.15950008, 0.33400005, 0.0039999844]) }
    // global_max: ort, reference agrees: True
    #[rustfmt::skip]
    fn global_max() -> (Vec<usize>, Vec<f32>) { (vec![2, 3, 1, 1], vec![4.4700003, 5.05, 4.7200003, 5.01, 4.9700003, 4.6400003]) }
    // global_max_1d: ort, reference agrees: False
    #[rustfmt::skip]
    fn global_max_1d() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 1], vec![4.4700003, 4.76]) }
}
