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
use crate::engine::cpu::pool::{par_chunks, GRAIN};
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
        // Planes in pieces of at least GRAIN elements: one task per 10x10
        // plane cost more in claiming than the plane's work (yolov8n-320's
        // SPPF pools took 0.12 ms each on 2 threads, 0.07 ms on 1).
        let grain = (GRAIN / self.in_plane.max(self.out_plane).max(1)).max(1);
        par_chunks(pool, self.planes, grain, &|p0, p1| {
            for p in p0..p1 {
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
        let grain = (GRAIN / self.plane.max(1)).max(1);
        par_chunks(pool, self.planes, grain, &|p0, p1| {
            for p in p0..p1 {
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
                // SAFETY: plane p's task writes only element p of the output,
                // which is in bounds (checked above) and written by no other.
                unsafe { sub_mut(&y, p, 1)[0] = v };
            }
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
mod tests;
