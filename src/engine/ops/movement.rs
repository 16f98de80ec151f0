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

use super::elementwise::{check_runtime_float, row_segments, wrap_int};
use super::{required, OutInfo, ValueInfo};
use crate::cuda::lower::{copy, op_err, refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::{Op, PadMode};
use crate::engine::tensor::{
    broadcast_shapes, broadcast_strides, checked_numel, normalize_axis, numel, shape_string,
    strides, DType, Storage, Tensor, TensorData,
};
use crate::op_bail;

/// Largest tensor constant folding may create (elements): a model cannot
/// make boot allocate without bound through Range/Expand/ConstantOfShape.
const MAX_FOLD_ELEMS: usize = 1 << 28;

/// Most outputs a Split may have (a bound for `num_outputs`).
const MAX_SPLIT_OUTPUTS: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------

/// A scalar given in every storage (pad values).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scalar {
    f: f32,
    i: i64,
    b: bool,
}

impl Scalar {
    fn of(t: &Tensor) -> Option<Scalar> {
        let f = *t.to_f32_vec().first()?;
        let i = *t.to_i64_vec().first()?;
        Some(Scalar {
            f,
            i,
            b: i != 0 || f != 0.0,
        })
    }

    fn from_f32(f: f32) -> Scalar {
        Scalar {
            f,
            i: f as i64,
            b: f != 0.0,
        }
    }
}

/// The element types tensors are stored in.
trait Elem: Copy + Default + 'static {
    fn slice(d: &TensorData) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> TensorData;
    fn scalar(s: Scalar) -> Self;
}

impl Elem for f32 {
    fn slice(d: &TensorData) -> Option<&[f32]> {
        match d {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> TensorData {
        TensorData::F32(v)
    }
    fn scalar(s: Scalar) -> f32 {
        s.f
    }
}

impl Elem for i64 {
    fn slice(d: &TensorData) -> Option<&[i64]> {
        match d {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<i64>) -> TensorData {
        TensorData::I64(v)
    }
    fn scalar(s: Scalar) -> i64 {
        s.i
    }
}

impl Elem for bool {
    fn slice(d: &TensorData) -> Option<&[bool]> {
        match d {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<bool>) -> TensorData {
        TensorData::Bool(v)
    }
    fn scalar(s: Scalar) -> bool {
        s.b
    }
}

// ---------------------------------------------------------------------------
// Data-movement cores, generic over the element type
// ---------------------------------------------------------------------------

/// A gather through strides: output element at multi-index `i` is
/// `src[base + sum(i[d] * strides[d])]`. Covers Transpose, Slice (negative
/// steps too), Expand (zero strides) and each output of Split. Dims are
/// collapsed so that contiguous runs become single rows.
#[derive(Debug, Clone)]
struct Strided {
    dims: Vec<usize>,
    strides: Vec<isize>,
    base: isize,
    inner: usize,
    inner_stride: isize,
    len: usize,
}

impl Strided {
    fn new(out_dims: &[usize], src_strides: &[isize], base: usize) -> Strided {
        // An overflowing output is rejected by `plan` right after.
        let len = checked_numel(out_dims).unwrap_or(usize::MAX);
        let mut dims: Vec<usize> = Vec::new();
        let mut st: Vec<isize> = Vec::new();
        for (&n, &s) in out_dims.iter().zip(src_strides) {
            if n == 1 {
                continue;
            }
            match (dims.last_mut(), st.last_mut()) {
                (Some(ld), Some(ls))
                    if s.checked_mul(n as isize) == Some(*ls) && ld.checked_mul(n).is_some() =>
                {
                    *ld *= n;
                    *ls = s;
                }
                _ => {
                    dims.push(n);
                    st.push(s);
                }
            }
        }
        Strided {
            inner: dims.last().copied().unwrap_or(1),
            inner_stride: st.last().copied().unwrap_or(0),
            dims,
            strides: st,
            base: base as isize,
            len,
        }
    }

    #[inline]
    fn row_start(&self, row: usize) -> isize {
        let r = self.dims.len();
        let mut off = self.base;
        if r < 2 {
            return off;
        }
        let mut rem = row;
        for d in (0..r - 1).rev() {
            let n = self.dims[d];
            off += (rem % n) as isize * self.strides[d];
            rem /= n;
        }
        off
    }

    /// The last two collapsed dims swap layouts (the source is contiguous
    /// down the rows and strided along them): a 2-D transpose, copied in
    /// tiles so that both sides stay in cache.
    fn is_transpose(&self) -> bool {
        let r = self.dims.len();
        r >= 2 && self.strides[r - 2] == 1 && self.inner_stride > 1
    }

    /// Fill `dst`, the output elements `[s, s + dst.len())`.
    fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
        let e = s + dst.len();
        let b = self.inner;
        if dst.is_empty() || b == 0 {
            return;
        }
        if self.is_transpose() {
            // Whole rows go through tiles; partial rows at either end of
            // the range row by row.
            let (r0, r1) = (s.div_ceil(b), e / b);
            if r1 > r0 {
                let (head, rest) = dst.split_at_mut(r0 * b - s);
                let (mid, tail) = rest.split_at_mut((r1 - r0) * b);
                self.copy_rows(src, head, s);
                self.copy_tiles(src, mid, r0, r1);
                self.copy_rows(src, tail, r1 * b);
                return;
            }
        }
        self.copy_rows(src, dst, s);
    }

    fn copy_rows<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
        let st = self.inner_stride;
        row_segments(s, s + dst.len(), self.inner, |row, col, n| {
            let off = self.row_start(row) + col as isize * st;
            let at = row * self.inner + col - s;
            let d = &mut dst[at..at + n];
            match st {
                1 => d.copy_from_slice(&src[off as usize..off as usize + n]),
                0 => d.fill(src[off as usize]),
                _ => {
                    for (j, v) in d.iter_mut().enumerate() {
                        *v = src[(off + j as isize * st) as usize];
                    }
                }
            }
        });
    }

    /// Whole output rows `[r0, r1)` (in `dst`) of a 2-D transpose, tile by
    /// tile.
    fn copy_tiles<T: Copy>(&self, src: &[T], dst: &mut [T], r0: usize, r1: usize) {
        let b = self.inner;
        let a_dim = self.dims[self.dims.len() - 2];
        let sb = self.inner_stride;
        let mut r = r0;
        while r < r1 {
            // Up to TILE_ROWS rows that share every outer index: in the source
            // they are consecutive elements.
            let rt = (r + TILE_ROWS).min(r1).min(r - r % a_dim + a_dim);
            let off0 = self.row_start(r);
            for c0 in (0..b).step_by(TILE_COLS) {
                for c in c0..(c0 + TILE_COLS).min(b) {
                    let sp = (off0 + c as isize * sb) as usize;
                    let col = &src[sp..sp + (rt - r)];
                    for (k, &v) in col.iter().enumerate() {
                        dst[(r + k - r0) * b + c] = v;
                    }
                }
            }
            r = rt;
        }
    }
}

/// Tiles a transposing copy moves at a time: TILE_ROWS consecutive source
/// elements (1 KiB) from each of TILE_COLS strided columns, so that few
/// pages are live at once (a quick benchmark on the dev machine preferred
/// this to square 16..64 tiles).
const TILE_ROWS: usize = 256;
const TILE_COLS: usize = 8;

/// Concatenation: output rows of `row` elements, each made of one chunk
/// per input (`chunks[k]` elements, starting at `starts[k]` in the row).
#[derive(Debug, Clone)]
struct ConcatPlan {
    chunks: Vec<usize>,
    starts: Vec<usize>,
    row: usize,
    len: usize,
}

impl ConcatPlan {
    /// Fill `dst`, the output elements `[s, s + dst.len())`; `src(k)` is
    /// input k's data.
    fn copy_range<'a, T: Copy + 'a>(
        &self,
        src: &dyn Fn(usize) -> &'a [T],
        dst: &mut [T],
        s: usize,
    ) {
        let e = s + dst.len();
        let mut pos = s;
        while pos < e {
            let (o, q) = (pos / self.row, pos % self.row);
            // The input whose chunk holds column q (zero-sized ones never do).
            let mut k = 0;
            while k + 1 < self.chunks.len() && q >= self.starts[k] + self.chunks[k] {
                k += 1;
            }
            let w = q - self.starts[k];
            let n = (self.chunks[k] - w).min(e - pos);
            let from = o * self.chunks[k] + w;
            dst[pos - s..pos - s + n].copy_from_slice(&src(k)[from..from + n]);
            pos += n;
        }
    }
}

/// Gather along an axis: output `[outer, K, inner]` from data
/// `[outer, n, inner]` through the (normalised) index table.
#[derive(Debug, Clone)]
struct GatherPlan {
    n: usize,
    inner: usize,
    idx: Vec<usize>,
    len: usize,
}

impl GatherPlan {
    fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
        let k = self.idx.len();
        row_segments(s, s + dst.len(), self.inner, |row, col, len| {
            let (o, j) = (row / k, row % k);
            let from = (o * self.n + self.idx[j]) * self.inner + col;
            let at = row * self.inner + col - s;
            dst[at..at + len].copy_from_slice(&src[from..from + len]);
        });
    }
}

/// Pad: per output axis, the input index each output index reads (-1: the
/// constant value), so all four modes share one walk. The last axis keeps
/// its contiguous interior for plain copies.
#[derive(Debug, Clone)]
struct PadPlan {
    out_dims: Vec<usize>,
    in_strides: Vec<usize>,
    maps: Vec<Vec<i64>>,
    /// Output columns `[lo, hi)` of the last axis read input columns
    /// `lo - shift ..`.
    lo: usize,
    hi: usize,
    shift: isize,
    inner: usize,
    len: usize,
}

impl PadPlan {
    fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize, value: T) {
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

// ---------------------------------------------------------------------------
// Plans: every shape rule of this family, in one place
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Plan {
    /// Same elements, new shape (Reshape, Flatten, Squeeze, Unsqueeze,
    /// Identity, Dropout); `mask`: Dropout also yields its all-true mask.
    Copy {
        shape: Vec<usize>,
        mask: bool,
    },
    Strided {
        shape: Vec<usize>,
        p: Strided,
    },
    Split {
        shapes: Vec<Vec<usize>>,
        ps: Vec<Strided>,
    },
    Concat {
        shape: Vec<usize>,
        p: ConcatPlan,
    },
    Gather {
        shape: Vec<usize>,
        p: GatherPlan,
    },
    Pad {
        shape: Vec<usize>,
        p: PadPlan,
        value: Scalar,
    },
    /// Outputs fully known at boot (Constant, Shape, Size, Range,
    /// ConstantOfShape).
    Value(Vec<Tensor>),
}

fn axis_err(op: &Op, what: &str, axis: i64, shape: &[usize]) -> OpError {
    OpError::new(format!(
        "{} {what} {axis} is out of range for a rank-{} input ({})",
        op.name(),
        shape.len(),
        shape_string(shape)
    ))
}

fn norm_axis(op: &Op, what: &str, axis: i64, shape: &[usize]) -> OpResult<usize> {
    normalize_axis(axis, shape.len()).ok_or_else(|| axis_err(op, what, axis, shape))
}

/// Values of constant input `i` as i64, or `None` when the input is absent.
fn const_ints(ins: &[Option<ValueInfo>], i: usize, what: &str) -> OpResult<Option<Vec<i64>>> {
    match ins.get(i).copied().flatten() {
        None => Ok(None),
        Some(v) => match v.value {
            Some(t) => {
                if t.dtype.is_float() {
                    op_bail!("input {i} ({what}) must hold integers, got {}", t.dtype);
                }
                Ok(Some(t.to_i64_vec()))
            }
            None => op_bail!("input {i} ({what}) must be a constant computable at boot"),
        },
    }
}

fn isize_strides(shape: &[usize]) -> Vec<isize> {
    strides(shape).into_iter().map(|s| s as isize).collect()
}

fn check_len(op: &Op, shape: &[usize]) -> OpResult<()> {
    if checked_numel(shape).is_none() {
        op_bail!(
            "{} output shape {} overflows",
            op.name(),
            shape_string(shape)
        );
    }
    Ok(())
}

fn plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let p = plan_inner(op, ins)?;
    let shapes: Vec<&[usize]> = match &p {
        Plan::Copy { shape, .. }
        | Plan::Strided { shape, .. }
        | Plan::Concat { shape, .. }
        | Plan::Gather { shape, .. }
        | Plan::Pad { shape, .. } => vec![shape],
        Plan::Split { shapes, .. } => shapes.iter().map(|s| s.as_slice()).collect(),
        Plan::Value(_) => Vec::new(),
    };
    for s in shapes {
        check_len(op, s)?;
    }
    Ok(p)
}

fn plan_inner(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let name = op.name();
    match op {
        Op::Constant(t) => Ok(Plan::Value(vec![(**t).clone()])),
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
        Op::Transpose { perm } => {
            let x = required(ins, 0, "data")?;
            let r = x.shape.len();
            let perm: Vec<usize> = perm.clone().unwrap_or_else(|| (0..r).rev().collect());
            let mut seen = vec![false; r];
            if perm.len() != r {
                op_bail!(
                    "Transpose perm {perm:?} has {} values but the input is rank {r}",
                    perm.len()
                );
            }
            for &p in &perm {
                if p >= r || seen[p] {
                    op_bail!("Transpose perm {perm:?} is not a permutation of 0..{r}");
                }
                seen[p] = true;
            }
            let st = isize_strides(x.shape);
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let ps: Vec<isize> = perm.iter().map(|&p| st[p]).collect();
            Ok(Plan::Strided {
                p: Strided::new(&shape, &ps, 0),
                shape,
            })
        }
        Op::Slice { starts, ends, axes } => plan_slice(op, ins, starts, ends, axes),
        Op::Split {
            axis,
            split,
            num_outputs,
        } => {
            let x = required(ins, 0, "input")?;
            let a = norm_axis(op, "axis", *axis, x.shape)?;
            let dim = x.shape[a];
            let sizes: Vec<i64> = match (split, const_ints(ins, 1, "split")?) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(s)) if !s.is_empty() => s,
                _ => match num_outputs {
                    Some(0) => op_bail!("Split num_outputs must be at least 1"),
                    Some(n) if *n > MAX_SPLIT_OUTPUTS => {
                        op_bail!("Split num_outputs {n} is more than {MAX_SPLIT_OUTPUTS}")
                    }
                    Some(n) => {
                        let n = *n;
                        // Opset 18: ceil-sized chunks, the last one smaller.
                        let c = dim.div_ceil(n);
                        let last = dim as i64 - (c * (n - 1)) as i64;
                        if last < 0 {
                            op_bail!("Split of a dim of {dim} into {n} outputs leaves the last one {last} long");
                        }
                        let mut v = vec![c as i64; n - 1];
                        v.push(last);
                        v
                    }
                    None => op_bail!(
                        "Split has neither `split` nor `num_outputs` (the importer sets num_outputs to the node's output count)"
                    ),
                },
            };
            if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != dim as i64 {
                op_bail!(
                    "Split sizes {sizes:?} do not sum to {dim}, the size of axis {axis} of {}",
                    shape_string(x.shape)
                );
            }
            let st = isize_strides(x.shape);
            let mut shapes = Vec::with_capacity(sizes.len());
            let mut ps = Vec::with_capacity(sizes.len());
            let mut start = 0usize;
            for &s in &sizes {
                let mut shape = x.shape.to_vec();
                shape[a] = s as usize;
                ps.push(Strided::new(&shape, &st, start * st[a] as usize));
                shapes.push(shape);
                start += s as usize;
            }
            Ok(Plan::Split { shapes, ps })
        }
        Op::Concat { axis } => {
            let xs: Vec<ValueInfo> = ins
                .iter()
                .enumerate()
                .map(|(i, v)| v.ok_or_else(|| OpError::new(format!("Concat input {i} is missing"))))
                .collect::<OpResult<_>>()?;
            let Some(first) = xs.first() else {
                op_bail!("Concat needs at least one input");
            };
            let r = first.shape.len();
            let a = norm_axis(op, "axis", *axis, first.shape)?;
            let mut shape = first.shape.to_vec();
            shape[a] = 0;
            for (i, x) in xs.iter().enumerate() {
                let same_rest =
                    x.shape.len() == r && (0..r).all(|d| d == a || x.shape[d] == first.shape[d]);
                if !same_rest {
                    op_bail!(
                        "Concat input {i} has shape {} but input 0 has {} (only axis {axis} may differ)",
                        shape_string(x.shape),
                        shape_string(first.shape)
                    );
                }
                if x.dtype.storage() != first.dtype.storage() {
                    op_bail!(
                        "Concat input {i} is {} but input 0 is {}",
                        x.dtype,
                        first.dtype
                    );
                }
                shape[a] += x.shape[a];
            }
            let inner = numel(&shape[a + 1..]);
            let chunks: Vec<usize> = xs.iter().map(|x| x.shape[a] * inner).collect();
            let mut starts = Vec::with_capacity(chunks.len());
            let mut acc = 0;
            for &c in &chunks {
                starts.push(acc);
                acc += c;
            }
            let len = numel(&shape);
            Ok(Plan::Concat {
                p: ConcatPlan {
                    chunks,
                    starts,
                    row: acc,
                    len,
                },
                shape,
            })
        }
        Op::Gather { axis } => {
            let x = required(ins, 0, "data")?;
            let a = norm_axis(op, "axis", *axis, x.shape)?;
            let iv = required(ins, 1, "indices")?;
            let it = iv.value.ok_or_else(|| {
                OpError::new("Gather indices (input 1) must be a constant computable at boot")
            })?;
            if it.dtype.is_float() {
                op_bail!("Gather indices must be integers, got {}", it.dtype);
            }
            let n = x.shape[a];
            let idx = it
                .to_i64_vec()
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + n as i64 } else { i };
                    if j < 0 || j >= n as i64 {
                        op_bail!(
                            "Gather index {i} is out of range for axis {axis} of size {n} ({})",
                            shape_string(x.shape)
                        );
                    }
                    Ok(j as usize)
                })
                .collect::<OpResult<Vec<usize>>>()?;
            let mut shape = x.shape[..a].to_vec();
            shape.extend_from_slice(&it.shape);
            shape.extend_from_slice(&x.shape[a + 1..]);
            Ok(Plan::Gather {
                p: GatherPlan {
                    n,
                    inner: numel(&x.shape[a + 1..]),
                    idx,
                    len: checked_numel(&shape).unwrap_or(usize::MAX),
                },
                shape,
            })
        }
        Op::Expand => {
            let x = required(ins, 0, "input")?;
            let want = const_ints(ins, 1, "shape")?
                .ok_or_else(|| OpError::new("Expand needs input 1 (shape)"))?;
            if let Some(&d) = want.iter().find(|&&d| d < 0) {
                op_bail!("Expand shape {want:?} has a negative dim {d}");
            }
            let want: Vec<usize> = want.iter().map(|&d| d as usize).collect();
            let shape = broadcast_shapes(x.shape, &want).ok_or_else(|| {
                OpError::new(format!(
                    "Expand: input shape {} does not broadcast to {}",
                    shape_string(x.shape),
                    shape_string(&want)
                ))
            })?;
            let st: Vec<isize> = broadcast_strides(x.shape, &shape)
                .into_iter()
                .map(|s| s as isize)
                .collect();
            Ok(Plan::Strided {
                p: Strided::new(&shape, &st, 0),
                shape,
            })
        }
        Op::Pad { mode, pads, value } => plan_pad(op, ins, *mode, pads, *value),
        Op::Shape { start, end } => {
            let x = required(ins, 0, "data")?;
            let r = x.shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let s = clamp(*start);
            let e = clamp(end.unwrap_or(r));
            let dims: Vec<i64> = if s < e {
                x.shape[s..e].iter().map(|&d| d as i64).collect()
            } else {
                Vec::new()
            };
            Ok(Plan::Value(vec![Tensor::from_i64(vec![dims.len()], dims)]))
        }
        Op::Size => {
            let x = required(ins, 0, "data")?;
            Ok(Plan::Value(vec![Tensor::from_i64(
                vec![],
                vec![numel(x.shape) as i64],
            )]))
        }
        Op::Range => plan_range(ins),
        Op::ConstantOfShape(v) => {
            let dims = const_ints(ins, 0, "shape")?
                .ok_or_else(|| OpError::new("ConstantOfShape needs input 0 (shape)"))?;
            if let Some(&d) = dims.iter().find(|&&d| d < 0) {
                op_bail!("ConstantOfShape shape {dims:?} has a negative dim {d}");
            }
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            let n = checked_numel(&shape)
                .filter(|&n| n <= MAX_FOLD_ELEMS)
                .ok_or_else(|| {
                    OpError::new(format!(
                        "ConstantOfShape shape {dims:?} is larger than {MAX_FOLD_ELEMS} elements"
                    ))
                })?;
            if v.numel() != 1 {
                op_bail!(
                    "ConstantOfShape value must have one element, got {}",
                    v.numel()
                );
            }
            let data = match &v.data {
                TensorData::F32(d) => TensorData::F32(vec![d[0]; n]),
                TensorData::I64(d) => TensorData::I64(vec![d[0]; n]),
                TensorData::Bool(d) => TensorData::Bool(vec![d[0]; n]),
            };
            Ok(Plan::Value(vec![Tensor {
                dtype: v.dtype,
                shape,
                data,
            }]))
        }
        _ => op_bail!("{name} is not a data-movement op"),
    }
}

fn reshape_shape(input: &[usize], want: &[i64], allowzero: bool) -> OpResult<Vec<usize>> {
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

fn plan_slice(
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

fn plan_pad(
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

fn plan_range(ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
    let mut v = Vec::with_capacity(3);
    for (i, what) in [(0, "start"), (1, "limit"), (2, "delta")] {
        let t = super::constant(ins, i, what)?;
        if t.numel() != 1 {
            op_bail!(
                "Range {what} (input {i}) must be a scalar, got shape {}",
                shape_string(&t.shape)
            );
        }
        v.push(t);
    }
    let dtype = v[0].dtype;
    let too_big = |n: i128| {
        OpError::new(format!(
            "Range would produce {n} elements (limit {MAX_FOLD_ELEMS})"
        ))
    };
    let t = match dtype.storage() {
        Storage::I64 => {
            let [s, l, d] = [0, 1, 2].map(|i| v[i].to_i64_vec()[0] as i128);
            if d == 0 {
                op_bail!("Range delta is 0");
            }
            let n = ((l - s + d - d.signum()) / d).max(0);
            if n > MAX_FOLD_ELEMS as i128 {
                return Err(too_big(n));
            }
            let data = (0..n)
                .map(|i| wrap_int(dtype, (s + i * d) as i64))
                .collect();
            Tensor {
                dtype,
                shape: vec![n as usize],
                data: TensorData::I64(data),
            }
        }
        Storage::F32 => {
            let [s, l, d] = [0, 1, 2].map(|i| v[i].to_f32_vec()[0] as f64);
            if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
                op_bail!("Range start {s}, limit {l}, delta {d} do not give a finite range");
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if n > MAX_FOLD_ELEMS as f64 {
                return Err(too_big(n as i128));
            }
            let n = n as usize;
            let data = (0..n).map(|i| (s + i as f64 * d) as f32).collect();
            Tensor {
                dtype,
                shape: vec![n],
                data: TensorData::F32(data),
            }
        }
        Storage::Bool => op_bail!("Range does not take bool inputs"),
    };
    Ok(Plan::Value(vec![t]))
}

// ---------------------------------------------------------------------------
// infer / lower / eval
// ---------------------------------------------------------------------------

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let dtype = || {
        ins.first()
            .copied()
            .flatten()
            .map(|v| v.dtype)
            .unwrap_or(DType::F32)
    };
    Ok(match plan(op, ins)? {
        Plan::Copy { shape, mask } => {
            let mut v = vec![OutInfo {
                dtype: dtype(),
                shape: shape.clone(),
            }];
            if mask {
                v.push(OutInfo {
                    dtype: DType::Bool,
                    shape,
                });
            }
            v
        }
        Plan::Strided { shape, .. }
        | Plan::Concat { shape, .. }
        | Plan::Gather { shape, .. }
        | Plan::Pad { shape, .. } => vec![OutInfo {
            dtype: dtype(),
            shape,
        }],
        Plan::Split { shapes, .. } => shapes
            .into_iter()
            .map(|shape| OutInfo {
                dtype: dtype(),
                shape,
            })
            .collect(),
        Plan::Value(ts) => ts
            .into_iter()
            .map(|t| OutInfo {
                dtype: t.dtype,
                shape: t.shape,
            })
            .collect(),
    })
}

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    check_runtime_float(op, ins, outs)?;
    let p = plan(op, ins)?;
    // Data inputs the kernel reads from the arena must be float.
    let data_inputs = match &p {
        Plan::Concat { .. } => ins.len(),
        Plan::Value(_) => 0,
        _ => 1,
    };
    for (i, v) in ins.iter().take(data_inputs).enumerate() {
        if let Some(v) = v {
            if !v.dtype.is_float() {
                op_bail!(
                    "{}: input {i} is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
                    op.name(),
                    v.dtype
                );
            }
        }
    }
    Ok(match p {
        Plan::Copy { shape, mask } => {
            if mask && outs.len() > 1 {
                op_bail!("Dropout's mask output is bool and cannot be computed at run time");
            }
            Box::new(CopyKernel { len: numel(&shape) })
        }
        Plan::Strided { p, .. } => Box::new(StridedKernel { p }),
        Plan::Split { mut ps, .. } => {
            if outs.len() > ps.len() {
                op_bail!("Split has {} outputs but {} sizes", outs.len(), ps.len());
            }
            // Only the outputs the node declares get buffers.
            ps.truncate(outs.len());
            Box::new(SplitKernel { ps })
        }
        Plan::Concat { p, .. } => Box::new(ConcatKernel { p }),
        Plan::Gather { p, .. } => Box::new(GatherKernel { p }),
        Plan::Pad { p, value, .. } => Box::new(PadKernel { p, value: value.f }),
        Plan::Value(ts) => {
            let vals = ts.first().map(|t| t.to_f32_vec()).unwrap_or_default();
            Box::new(ValueKernel { vals })
        }
    })
}

/// Run `f(dst_part, start)` over the pool on disjoint ranges of `out`.
fn par_fill(pool: &ThreadPool, out: &mut [f32], f: &(dyn Fn(&mut [f32], usize) + Sync)) {
    let ob = Buf::from_slice(out);
    par_chunks(pool, ob.len, GRAIN, &|s, e| {
        // SAFETY: par_chunks hands out disjoint ranges within `out`.
        let d = unsafe { buf_range(ob, s, e) };
        f(d, s);
    });
}

/// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: the planner
/// may alias them away; otherwise a copy (nothing to do in place).
struct CopyKernel {
    len: usize,
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

struct StridedKernel {
    p: Strided,
}

impl CpuKernel for StridedKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(x, d, s));
    }
}

struct SplitKernel {
    ps: Vec<Strided>,
}

impl CpuKernel for SplitKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        for (k, p) in self.ps.iter().enumerate() {
            let out = io.output(k);
            let n = p.len.min(out.len());
            par_fill(pool, &mut out[..n], &|d, s| p.copy_range(x, d, s));
        }
    }
}

struct ConcatKernel {
    p: ConcatPlan,
}

impl CpuKernel for ConcatKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        let src = |k: usize| io.input(k);
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(&src, d, s));
    }
}

struct GatherKernel {
    p: GatherPlan,
}

impl CpuKernel for GatherKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(x, d, s));
    }
}

struct PadKernel {
    p: PadPlan,
    value: f32,
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

/// An output known at boot, written each run.
struct ValueKernel {
    vals: Vec<f32>,
}

impl CpuKernel for ValueKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], _pool: &ThreadPool) {
        let out = io.output(0);
        let n = self.vals.len().min(out.len());
        out[..n].copy_from_slice(&self.vals[..n]);
    }
}

/// Run a single-source plan on a tensor of any element type.
fn map_one<T: Elem>(x: &Tensor, len: usize, f: impl Fn(&[T], &mut [T])) -> OpResult<TensorData> {
    let src = T::slice(&x.data).ok_or_else(|| data_mismatch(x))?;
    let mut out = vec![T::default(); len];
    f(src, &mut out);
    Ok(T::wrap(out))
}

fn data_mismatch(x: &Tensor) -> OpError {
    OpError::new(format!(
        "a {} tensor of shape {} holds data of another type",
        x.dtype,
        shape_string(&x.shape)
    ))
}

/// Dispatch a generic body on the storage of `x`.
macro_rules! by_storage {
    ($x:expr, $T:ident => $body:expr) => {
        match $x.data {
            TensorData::F32(_) => {
                type $T = f32;
                $body
            }
            TensorData::I64(_) => {
                type $T = i64;
                $body
            }
            TensorData::Bool(_) => {
                type $T = bool;
                $body
            }
        }
    };
}

/// Evaluation on owned tensors for constant folding (any element type).
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let p = plan(op, &infos)?;
    let x = ins.first().copied().flatten();
    let x_or_err = || x.ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())));
    let fold_limit = |n: usize| -> OpResult<()> {
        if n > MAX_FOLD_ELEMS {
            op_bail!(
                "{} would fold a constant of {n} elements (limit {MAX_FOLD_ELEMS})",
                op.name()
            );
        }
        Ok(())
    };
    let out = |x: &Tensor, shape: Vec<usize>, data: TensorData| Tensor {
        dtype: x.dtype,
        shape,
        data,
    };
    Ok(Some(match p {
        Plan::Value(ts) => ts,
        Plan::Copy { shape, mask } => {
            let x = x_or_err()?;
            let n = numel(&shape);
            let mut v = vec![out(x, shape.clone(), x.data.clone())];
            if mask {
                v.push(Tensor::from_bool(shape, vec![true; n]));
            }
            v
        }
        Plan::Strided { shape, p } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
            vec![out(x, shape, data)]
        }
        Plan::Split { shapes, ps } => {
            let x = x_or_err()?;
            let mut v = Vec::with_capacity(ps.len());
            for (shape, p) in shapes.into_iter().zip(&ps) {
                let data =
                    by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
                v.push(out(x, shape, data));
            }
            v
        }
        Plan::Gather { shape, p } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0))?);
            vec![out(x, shape, data)]
        }
        Plan::Pad { shape, p, value } => {
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => map_one::<T>(x, p.len, |s, d| p.copy_range(s, d, 0, T::scalar(value)))?);
            vec![out(x, shape, data)]
        }
        Plan::Concat { shape, p } => {
            let xs: Vec<&Tensor> = ins.iter().flatten().copied().collect();
            let x = x_or_err()?;
            fold_limit(p.len)?;
            let data = by_storage!(x, T => {
                let srcs: Vec<&[T]> = xs
                    .iter()
                    .map(|t| T::slice(&t.data).ok_or_else(|| data_mismatch(t)))
                    .collect::<OpResult<_>>()?;
                let mut o = vec![T::default(); p.len];
                p.copy_range(&|k| srcs[k], &mut o, 0);
                T::wrap(o)
            });
            vec![out(x, shape, data)]
        }
    }))
}

/// One strided copy, for backends that move data with a single generic
/// kernel (the CUDA backend): over the multi-index `i` of `dims`,
/// `out[output][dst_base + sum(i * dst_strides)] =
/// in[input][src_base + sum(i * src_strides)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyDesc {
    pub input: usize,
    pub output: usize,
    pub dims: Vec<usize>,
    pub src_strides: Vec<isize>,
    pub src_base: isize,
    pub dst_strides: Vec<isize>,
    pub dst_base: isize,
}

fn contiguous(dims: &[usize]) -> Vec<isize> {
    isize_strides(dims)
}

/// A data-movement op as strided copies; `None` for ops that are not plain
/// copies (Gather, Pad, boot-time values). Boot only; allocates.
pub fn copy_plan(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Option<Vec<CopyDesc>>> {
    let one = |input: usize, output: usize, dims: Vec<usize>, src: Vec<isize>, base: isize| {
        let dst = contiguous(&dims);
        CopyDesc {
            input,
            output,
            src_strides: src,
            src_base: base,
            dst_strides: dst,
            dst_base: 0,
            dims,
        }
    };
    Ok(Some(match plan(op, ins)? {
        Plan::Copy { shape, .. } => {
            let n = numel(&shape);
            vec![one(0, 0, vec![n], vec![1], 0)]
        }
        Plan::Strided { p, .. } => vec![one(0, 0, p.dims.clone(), p.strides.clone(), p.base)],
        Plan::Split { ps, .. } => ps
            .iter()
            .enumerate()
            .map(|(k, p)| one(0, k, p.dims.clone(), p.strides.clone(), p.base))
            .collect(),
        Plan::Concat { p, .. } => {
            let outer = p.len.checked_div(p.row).unwrap_or(0);
            p.chunks
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(k, &c)| CopyDesc {
                    input: k,
                    output: 0,
                    dims: vec![outer, c],
                    src_strides: vec![c as isize, 1],
                    src_base: 0,
                    dst_strides: vec![p.row as isize, 1],
                    dst_base: p.starts[k] as isize,
                })
                .collect()
        }
        Plan::Gather { .. } | Plan::Pad { .. } | Plan::Value(_) => return Ok(None),
    }))
}

/// The GPU lowering every plain-copy movement op shares: its
/// [`copy_plan`] as `copy_nd` launches; ops that are not plain copies are
/// refused.
pub(super) fn lower_cuda_copies(n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
    let op = n.op();
    let plan = copy_plan(op, &n.infos)
        .map_err(op_err)?
        .ok_or_else(|| refuse(op, "not supported by the CUDA backend yet"))?;
    let mut v = Vec::new();
    for c in plan {
        let src = n
            .input(c.input)
            .ok_or_else(|| refuse(op, "missing input"))?;
        let sp = cx.ptr(src)?;
        let dp = cx.ptr(n.node.outputs[c.output])?;
        v.push(copy(
            dp,
            sp,
            &c.dims,
            &c.src_strides,
            c.src_base,
            &c.dst_strides,
            c.dst_base,
        )?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops;

    fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), v.to_vec())
    }

    fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64(shape.to_vec(), v.to_vec())
    }

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    fn iota_t(shape: &[usize]) -> Tensor {
        f32t(shape, &iota(numel(shape)))
    }

    fn ev(op: &Op, ins: &[Option<&Tensor>]) -> Vec<Tensor> {
        ops::eval(op, ins).unwrap()
    }

    fn ev_err(op: &Op, ins: &[Option<&Tensor>]) -> String {
        ops::eval(op, ins).unwrap_err().0
    }

    /// Lowered kernel with input 0 (and for Concat every input) at run
    /// time, the rest constant; on `threads` threads.
    fn run_kernel(op: &Op, ins: &[Option<&Tensor>], runtime: usize, threads: usize) -> Vec<Tensor> {
        let infos: Vec<Option<ValueInfo>> = ins
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.map(|t| ValueInfo {
                    dtype: t.dtype,
                    shape: &t.shape,
                    value: if i < runtime { None } else { Some(t) },
                })
            })
            .collect();
        let outs = infer(op, &infos).unwrap();
        let outs: Vec<OutInfo> = outs.into_iter().filter(|o| o.dtype.is_float()).collect();
        let k = lower(op, &infos, &outs).unwrap();
        let mut in_bufs: Vec<Vec<f32>> = ins
            .iter()
            .map(|t| match t {
                Some(t) if t.dtype.is_float() => t.to_f32_vec(),
                _ => Vec::new(),
            })
            .collect();
        let mut out_bufs: Vec<Vec<f32>> = outs
            .iter()
            .map(|o| vec![f32::NAN; numel(&o.shape)])
            .collect();
        let in_raw: Vec<Buf> = in_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
        let out_raw: Vec<Buf> = out_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
        // SAFETY: distinct live buffers of the declared lengths.
        let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
        k.run(&io, &mut [], &ThreadPool::new(threads));
        outs.into_iter()
            .zip(out_bufs)
            .map(|(o, v)| Tensor::from_f32(o.shape, v))
            .collect()
    }

    /// Eval on f32 and i64 copies of the inputs, and the f32 kernel on 1 and
    /// 3 threads, all agree; returns the f32 result.
    fn check_all_paths(op: &Op, ins: &[Option<&Tensor>], runtime: usize) -> Vec<Tensor> {
        let want = ev(op, ins);
        for threads in [1, 3] {
            let got = run_kernel(op, ins, runtime, threads);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.shape, w.shape);
                assert_eq!(g.as_f32(), w.as_f32(), "{op:?} kernel on {threads} threads");
            }
        }
        // Same op on integer data: same values.
        let ints: Vec<Option<Tensor>> = ins
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.map(|t| {
                    if i < runtime.max(1) && t.dtype == DType::F32 {
                        Tensor::from_i64(t.shape.clone(), t.to_i64_vec())
                    } else {
                        t.clone()
                    }
                })
            })
            .collect();
        let iref: Vec<Option<&Tensor>> = ints.iter().map(|t| t.as_ref()).collect();
        let got = ev(op, &iref);
        for (g, w) in got.iter().zip(&want) {
            if w.dtype == DType::Bool {
                continue;
            }
            assert_eq!(g.dtype, DType::I64);
            assert_eq!(g.shape, w.shape);
            assert_eq!(g.to_f32_vec(), w.to_f32_vec(), "{op:?} on int64");
        }
        want
    }

    fn slice_op() -> Op {
        Op::Slice {
            starts: None,
            ends: None,
            axes: None,
        }
    }

    fn slice(x: &Tensor, s: &[i64], e: &[i64], a: Option<&[i64]>, st: Option<&[i64]>) -> Tensor {
        let (s, e) = (i64t(&[s.len()], s), i64t(&[e.len()], e));
        let a = a.map(|a| i64t(&[a.len()], a));
        let st = st.map(|v| i64t(&[v.len()], v));
        let ins = [Some(x), Some(&s), Some(&e), a.as_ref(), st.as_ref()];
        check_all_paths(&slice_op(), &ins, 1).remove(0)
    }

    #[test]
    fn slice_edge_cases_match_numpy() {
        let x = iota_t(&[4, 5]);
        // x[1:3, ::2]
        let t = slice(&x, &[1, 0], &[3, i64::MAX], None, Some(&[1, 2]));
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.to_f32_vec(), vec![5., 7., 9., 10., 12., 14.]);
        // x[:, -1:-6:-2] (negative step, negative start/end)
        let t = slice(&x, &[-1], &[-6], Some(&[1]), Some(&[-2]));
        assert_eq!(
            t.to_f32_vec(),
            vec![4., 2., 0., 9., 7., 5., 14., 12., 10., 19., 17., 15.]
        );
        // x[::-1] with INT_MAX start and INT_MIN end
        let t = slice(&x, &[i64::MAX], &[i64::MIN], Some(&[0]), Some(&[-1]));
        assert_eq!(t.shape, vec![4, 5]);
        assert_eq!(&t.to_f32_vec()[..5], &[15., 16., 17., 18., 19.]);
        // Out-of-range start/end clamp: x[10:20] is empty, x[-100:2] is x[0:2]
        let t = slice(&x, &[10], &[20], None, None);
        assert_eq!(t.shape, vec![0, 5]);
        let t = slice(&x, &[-100], &[2], Some(&[0]), None);
        assert_eq!(t.shape, vec![2, 5]);
        // start > end with positive step: empty; negative axis.
        let t = slice(&x, &[3], &[1], Some(&[-1]), None);
        assert_eq!(t.shape, vec![4, 0]);
        // x[2:0:-1, 4:1:-2]
        let t = slice(&x, &[2, 4], &[0, 1], Some(&[0, 1]), Some(&[-1, -2]));
        assert_eq!(t.to_f32_vec(), vec![14., 12., 9., 7.]);
        // Negative step with end past the start: x[0:-10:-1] -> x[0:None:-1] = row 0
        let t = slice(&x, &[0], &[-10], None, Some(&[-1]));
        assert_eq!(t.to_f32_vec(), vec![0., 1., 2., 3., 4.]);
        // Start below -len with a negative step clamps to 0 (spec text and
        // ONNX Runtime; numpy would give an empty slice).
        let t = slice(&x, &[i64::MIN], &[-9], None, Some(&[-2]));
        assert_eq!(t.to_f32_vec(), vec![0., 1., 2., 3., 4.]);
        // Opset < 10 attributes.
        let op = Op::Slice {
            starts: Some(vec![1]),
            ends: Some(vec![-1]),
            axes: Some(vec![1]),
        };
        let t = ev(&op, &[Some(&x)]).remove(0);
        assert_eq!(t.shape, vec![4, 3]);
        assert_eq!(&t.to_f32_vec()[..3], &[1., 2., 3.]);
    }

    #[test]
    fn slice_errors() {
        let x = iota_t(&[4, 5]);
        let s = i64t(&[1], &[0]);
        let z = i64t(&[1], &[0]);
        let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&s), None, Some(&z)]);
        assert!(e.contains("step"), "{e}");
        let a = i64t(&[1], &[2]);
        let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&s), Some(&a)]);
        assert!(e.contains("axis 2") && e.contains("rank-2"), "{e}");
        let two = i64t(&[2], &[0, 0]);
        let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&two)]);
        assert!(e.contains("differ in length"), "{e}");
        let rt = ValueInfo {
            dtype: DType::I64,
            shape: &[1],
            value: None,
        };
        let e = infer(&slice_op(), &[Some(ValueInfo::of(&x)), Some(rt), Some(rt)]).unwrap_err();
        assert!(
            e.0.contains("input 1 (starts) must be a constant"),
            "{}",
            e.0
        );
    }

    #[test]
    fn concat_any_inputs_negative_axis_and_empty() {
        let a = iota_t(&[2, 1, 3]);
        let b = f32t(
            &[2, 2, 3],
            &iota(12).iter().map(|v| v + 100.0).collect::<Vec<_>>(),
        );
        let e = f32t(&[2, 0, 3], &[]);
        let op = Op::Concat { axis: -2 };
        let t = check_all_paths(&op, &[Some(&a), Some(&e), Some(&b)], 3).remove(0);
        assert_eq!(t.shape, vec![2, 3, 3]);
        assert_eq!(
            t.to_f32_vec(),
            vec![
                0., 1., 2., 100., 101., 102., 103., 104., 105., 3., 4., 5., 106., 107., 108., 109.,
                110., 111.
            ]
        );
        // Large enough to be split over threads mid-chunk.
        let big_a = iota_t(&[1, 3, 5000]);
        let big_b = iota_t(&[1, 4, 5000]);
        let t =
            check_all_paths(&Op::Concat { axis: 1 }, &[Some(&big_a), Some(&big_b)], 2).remove(0);
        assert_eq!(t.shape, vec![1, 7, 5000]);
        assert_eq!(t.to_f32_vec()[15000], 0.0);
        let bad = iota_t(&[2, 1, 4]);
        let err = ev_err(&op, &[Some(&a), Some(&bad)]);
        assert!(err.contains("2x1x4") && err.contains("2x1x3"), "{err}");
        let err = ev_err(&Op::Concat { axis: 3 }, &[Some(&a)]);
        assert!(err.contains("axis 3") && err.contains("rank-3"), "{err}");
        // Shape tensors (int64) concatenate too.
        let t = ev(
            &Op::Concat { axis: 0 },
            &[
                Some(&i64t(&[2], &[1, 2])),
                Some(&i64t(&[0], &[])),
                Some(&i64t(&[1], &[-1])),
            ],
        );
        assert_eq!(t[0].to_i64_vec(), vec![1, 2, -1]);
    }

    fn split(axis: i64, split: Option<Vec<i64>>, num_outputs: Option<usize>) -> Op {
        Op::Split {
            axis,
            split,
            num_outputs,
        }
    }

    #[test]
    fn split_variants() {
        let x = iota_t(&[2, 5]);
        let shapes = |ts: &[Tensor]| ts.iter().map(|t| t.shape.clone()).collect::<Vec<_>>();
        // Attribute sizes.
        let t = check_all_paths(&split(1, Some(vec![2, 3]), None), &[Some(&x)], 1);
        assert_eq!(shapes(&t), vec![vec![2, 2], vec![2, 3]]);
        assert_eq!(t[1].to_f32_vec(), vec![2., 3., 4., 7., 8., 9.]);
        // Constant input 1, negative axis, a zero-sized piece.
        let s = i64t(&[3], &[1, 0, 4]);
        let t = check_all_paths(&split(-1, None, None), &[Some(&x), Some(&s)], 1);
        assert_eq!(shapes(&t), vec![vec![2, 1], vec![2, 0], vec![2, 4]]);
        assert_eq!(t[0].to_f32_vec(), vec![0., 5.]);
        // num_outputs, uneven (opset 18): 5 -> 2, 2, 1.
        let t = check_all_paths(&split(1, None, Some(3)), &[Some(&x)], 1);
        assert_eq!(shapes(&t), vec![vec![2, 2], vec![2, 2], vec![2, 1]]);
        assert_eq!(t[2].to_f32_vec(), vec![4., 9.]);
        // Equal split along axis 0.
        let t = check_all_paths(&split(0, None, Some(2)), &[Some(&x)], 1);
        assert_eq!(t[1].to_f32_vec(), vec![5., 6., 7., 8., 9.]);
        // Errors.
        let e = ev_err(&split(1, Some(vec![2, 2]), None), &[Some(&x)]);
        assert!(e.contains("do not sum to 5"), "{e}");
        let e = ev_err(&split(1, None, None), &[Some(&x)]);
        assert!(e.contains("num_outputs"), "{e}");
        let e = ev_err(&split(1, None, Some(4)), &[Some(&x)]);
        assert!(e.contains("last one"), "{e}");
    }

    #[test]
    fn reshape_rules() {
        let x = iota_t(&[2, 3, 4]);
        let r = |s: &[i64], allowzero: bool| {
            let st = i64t(&[s.len()], s);
            ops::eval(&Op::Reshape { allowzero }, &[Some(&x), Some(&st)])
                .map(|mut v| v.remove(0).shape)
        };
        assert_eq!(r(&[0, -1], false).unwrap(), vec![2, 12]);
        assert_eq!(r(&[-1], false).unwrap(), vec![24]);
        assert_eq!(r(&[4, 0, 2], false).unwrap(), vec![4, 3, 2]);
        assert!(r(&[0, 12], true).unwrap_err().0.contains("element count"));
        let e = r(&[5, -1], false).unwrap_err().0;
        assert!(e.contains("-1") && e.contains("2x3x4"), "{e}");
        let e = r(&[7, 2], false).unwrap_err().0;
        assert!(e.contains("2x3x4") && e.contains("[7, 2]"), "{e}");
        assert!(r(&[-1, -1], false).unwrap_err().0.contains("more than one"));
        assert!(r(&[0, 0, 0, 0], false).unwrap_err().0.contains("rank"));
        // allowzero: an empty tensor may take a 0 dim.
        let e0 = f32t(&[0, 3], &[]);
        let st = i64t(&[2], &[3, 0]);
        let t = ev(&Op::Reshape { allowzero: true }, &[Some(&e0), Some(&st)]);
        assert_eq!(t[0].shape, vec![3, 0]);
        // Data kept; runtime kernel copies and offers in-place.
        let st = i64t(&[2], &[4, 6]);
        let t = check_all_paths(&Op::Reshape { allowzero: false }, &[Some(&x), Some(&st)], 1);
        assert_eq!(t[0].to_f32_vec(), iota(24));
    }

    #[test]
    fn transpose_default_and_perm() {
        let x = iota_t(&[2, 3, 4]);
        let t = check_all_paths(&Op::Transpose { perm: None }, &[Some(&x)], 1).remove(0);
        assert_eq!(t.shape, vec![4, 3, 2]);
        // np.arange(24).reshape(2,3,4).T.ravel()[:8]
        assert_eq!(&t.to_f32_vec()[..8], &[0., 12., 4., 16., 8., 20., 1., 13.]);
        let t = check_all_paths(
            &Op::Transpose {
                perm: Some(vec![0, 2, 1]),
            },
            &[Some(&x)],
            1,
        )
        .remove(0);
        assert_eq!(t.shape, vec![2, 4, 3]);
        assert_eq!(&t.to_f32_vec()[..6], &[0., 4., 8., 1., 5., 9.]);
        // Tiled 2-D transposes (with and without an outer dim), split over
        // threads at arbitrary points, against the naive gather.
        for (shape, perm) in [
            ([3, 70, 90], [2, 0, 1]),
            ([2, 50, 40], [0, 2, 1]),
            ([5, 33, 65], [1, 2, 0]),
        ] {
            let big = iota_t(&shape);
            let op = Op::Transpose {
                perm: Some(perm.to_vec()),
            };
            let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let want = naive(
                big.as_f32().unwrap(),
                &shape,
                &out,
                |o| {
                    let mut src = vec![0; 3];
                    for (k, &p) in perm.iter().enumerate() {
                        src[p] = o[k];
                    }
                    Some(src)
                },
                0.0,
            );
            for threads in [1, 3] {
                let t = run_kernel(&op, &[Some(&big)], 1, threads).remove(0);
                assert_eq!(t.to_f32_vec(), want, "{shape:?} {perm:?}");
            }
        }
        let e = ev_err(
            &Op::Transpose {
                perm: Some(vec![0, 0, 1]),
            },
            &[Some(&x)],
        );
        assert!(e.contains("not a permutation"), "{e}");
        let e = ev_err(
            &Op::Transpose {
                perm: Some(vec![0, 1]),
            },
            &[Some(&x)],
        );
        assert!(e.contains("rank 3"), "{e}");
    }

    #[test]
    fn flatten_squeeze_unsqueeze_shapes() {
        let x = iota_t(&[2, 1, 3, 1]);
        let sh = |op: Op, extra: Option<&Tensor>| ev(&op, &[Some(&x), extra])[0].shape.clone();
        assert_eq!(sh(Op::Flatten { axis: 0 }, None), vec![1, 6]);
        assert_eq!(sh(Op::Flatten { axis: -1 }, None), vec![6, 1]);
        assert_eq!(sh(Op::Flatten { axis: 4 }, None), vec![6, 1]);
        assert!(ev_err(&Op::Flatten { axis: 5 }, &[Some(&x)]).contains("axis 5"));
        assert_eq!(sh(Op::Squeeze { axes: None }, None), vec![2, 3]);
        assert_eq!(
            sh(
                Op::Squeeze {
                    axes: Some(vec![-1])
                },
                None
            ),
            vec![2, 1, 3]
        );
        let a = i64t(&[1], &[1]);
        assert_eq!(sh(Op::Squeeze { axes: None }, Some(&a)), vec![2, 3, 1]);
        let e = ev_err(
            &Op::Squeeze {
                axes: Some(vec![0]),
            },
            &[Some(&x)],
        );
        assert!(e.contains("axis 0 has size 2"), "{e}");
        assert_eq!(
            sh(
                Op::Unsqueeze {
                    axes: Some(vec![0, -1])
                },
                None
            ),
            vec![1, 2, 1, 3, 1, 1]
        );
        let a = i64t(&[2], &[1, 3]);
        assert_eq!(
            sh(Op::Unsqueeze { axes: None }, Some(&a)),
            vec![2, 1, 1, 1, 3, 1]
        );
        let e = ev_err(
            &Op::Unsqueeze {
                axes: Some(vec![1, 1]),
            },
            &[Some(&x)],
        );
        assert!(e.contains("repeat"), "{e}");
        let e = ev_err(
            &Op::Unsqueeze {
                axes: Some(vec![7]),
            },
            &[Some(&x)],
        );
        assert!(e.contains("axis 7"), "{e}");
        // Scalar unsqueeze, as shape arithmetic does.
        let s = i64t(&[], &[5]);
        let t = ev(
            &Op::Unsqueeze {
                axes: Some(vec![0]),
            },
            &[Some(&s)],
        );
        assert_eq!((t[0].shape.clone(), t[0].to_i64_vec()), (vec![1], vec![5]));
    }

    #[test]
    fn copy_kernels_run_in_place() {
        let x = iota_t(&[2, 3]);
        let xi = ValueInfo {
            dtype: DType::F32,
            shape: &x.shape,
            value: None,
        };
        for op in [
            Op::Identity,
            Op::Dropout,
            Op::Flatten { axis: 1 },
            Op::Squeeze { axes: None },
        ] {
            let outs: Vec<OutInfo> = infer(&op, &[Some(xi)])
                .unwrap()
                .into_iter()
                .take(1)
                .collect();
            let k = lower(&op, &[Some(xi)], &outs).unwrap();
            assert_eq!(k.inplace_input(), Some(0));
            let mut v = iota(6);
            let b = Buf::from_slice(&mut v);
            // SAFETY: output 0 is the in-place input's buffer.
            let bs = [b];
            let io = unsafe { StepIo::new(&bs, &bs, true) };
            k.run(&io, &mut [], &ThreadPool::new(1));
            assert_eq!(v, iota(6));
        }
    }

    #[test]
    fn dropout_mask_and_training_mode() {
        let x = i64t(&[3], &[1, 2, 3]);
        let t = ev(&Op::Dropout, &[Some(&x)]);
        assert_eq!(t[0], x);
        assert_eq!(t[1].as_bool().unwrap(), &[true, true, true]);
        let on = Tensor::from_bool(vec![], vec![true]);
        let e = ev_err(&Op::Dropout, &[Some(&x), None, Some(&on)]);
        assert!(e.contains("training mode"), "{e}");
        let xi = ValueInfo {
            dtype: DType::F32,
            shape: &[3],
            value: None,
        };
        let outs = infer(&Op::Dropout, &[Some(xi)]).unwrap();
        assert!(lower(&Op::Dropout, &[Some(xi)], &outs).is_err());
    }

    #[test]
    fn shape_size_constant_range_constant_of_shape() {
        // Placeholder with no data, as the boot folding passes for Shape.
        let p = Tensor {
            dtype: DType::F32,
            shape: vec![2, 3, 4, 5],
            data: TensorData::F32(Vec::new()),
        };
        let sh = |start, end| ev(&Op::Shape { start, end }, &[Some(&p)])[0].to_i64_vec();
        assert_eq!(sh(0, None), vec![2, 3, 4, 5]);
        assert_eq!(sh(1, Some(-1)), vec![3, 4]);
        assert_eq!(sh(-10, Some(10)), vec![2, 3, 4, 5]);
        assert_eq!(sh(3, Some(1)), Vec::<i64>::new());
        assert_eq!(sh(-1, None), vec![5]);
        let s = ev(&Op::Size, &[Some(&p)]).remove(0);
        assert_eq!((s.shape.clone(), s.to_i64_vec()), (vec![], vec![120]));
        let c = Tensor::from_i64(vec![2], vec![7, 8]);
        assert_eq!(
            ev(&Op::Constant(std::sync::Arc::new(c.clone())), &[]).remove(0),
            c
        );
        // Range: np.arange(1, 10, 3), np.arange(5, 1, -2), floats, empty.
        let r = |a: Tensor, b: Tensor, c: Tensor| {
            ev(&Op::Range, &[Some(&a), Some(&b), Some(&c)]).remove(0)
        };
        let s = |v: i64| i64t(&[], &[v]);
        assert_eq!(r(s(1), s(10), s(3)).to_i64_vec(), vec![1, 4, 7]);
        assert_eq!(r(s(5), s(1), s(-2)).to_i64_vec(), vec![5, 3]);
        assert_eq!(r(s(5), s(1), s(2)).shape, vec![0]);
        let f = |v: f32| f32t(&[], &[v]);
        let t = r(f(0.0), f(1.0), f(0.25));
        assert_eq!(
            (t.dtype, t.to_f32_vec()),
            (DType::F32, vec![0.0, 0.25, 0.5, 0.75])
        );
        assert_eq!(r(f(0.0), f(1.0), f(0.3)).to_f32_vec().len(), 4);
        assert!(ev_err(&Op::Range, &[Some(&s(0)), Some(&s(5)), Some(&s(0))]).contains("delta is 0"));
        assert!(
            ev_err(&Op::Range, &[Some(&s(0)), Some(&s(i64::MAX)), Some(&s(1))])
                .contains("elements")
        );
        // ConstantOfShape.
        let v = std::sync::Arc::new(i64t(&[1], &[3]));
        let t = ev(&Op::ConstantOfShape(v), &[Some(&i64t(&[2], &[2, 2]))]).remove(0);
        assert_eq!(
            (t.shape.clone(), t.to_i64_vec()),
            (vec![2, 2], vec![3, 3, 3, 3])
        );
        let v = std::sync::Arc::new(f32t(&[1], &[0.5]));
        let t = ev(&Op::ConstantOfShape(v), &[Some(&i64t(&[0], &[]))]).remove(0);
        assert_eq!((t.shape.clone(), t.to_f32_vec()), (vec![], vec![0.5]));
    }

    #[test]
    fn gather_negative_indices_and_runtime_data() {
        let x = iota_t(&[3, 4]);
        let idx = i64t(&[2], &[-1, 0]);
        let t = check_all_paths(&Op::Gather { axis: 0 }, &[Some(&x), Some(&idx)], 1).remove(0);
        assert_eq!(t.to_f32_vec(), vec![8., 9., 10., 11., 0., 1., 2., 3.]);
        let idx = i64t(&[2, 2], &[3, 1, -4, 2]);
        let t = check_all_paths(&Op::Gather { axis: -1 }, &[Some(&x), Some(&idx)], 1).remove(0);
        assert_eq!(t.shape, vec![3, 2, 2]);
        assert_eq!(&t.to_f32_vec()[..8], &[3., 1., 0., 2., 7., 5., 4., 6.]);
        // Scalar index drops the axis (shape arithmetic: Shape -> Gather).
        let s = i64t(&[4], &[1, 3, 640, 640]);
        let t = ev(&Op::Gather { axis: 0 }, &[Some(&s), Some(&i64t(&[], &[2]))]).remove(0);
        assert_eq!((t.shape.clone(), t.to_i64_vec()), (vec![], vec![640]));
        let e = ev_err(
            &Op::Gather { axis: 0 },
            &[Some(&x), Some(&i64t(&[1], &[3]))],
        );
        assert!(e.contains("index 3") && e.contains("size 3"), "{e}");
        let rt = ValueInfo {
            dtype: DType::I64,
            shape: &[1],
            value: None,
        };
        let e = infer(
            &Op::Gather { axis: 0 },
            &[Some(ValueInfo::of(&x)), Some(rt)],
        )
        .unwrap_err();
        assert!(
            e.0.contains("indices (input 1) must be a constant"),
            "{}",
            e.0
        );
    }

    #[test]
    fn expand_is_bidirectional() {
        let x = f32t(&[3, 1], &[1., 2., 3.]);
        let t =
            check_all_paths(&Op::Expand, &[Some(&x), Some(&i64t(&[3], &[2, 1, 2]))], 1).remove(0);
        assert_eq!(t.shape, vec![2, 3, 2]);
        assert_eq!(
            t.to_f32_vec(),
            vec![1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
        );
        // A shape smaller than the input keeps the input's dims.
        let t = ev(&Op::Expand, &[Some(&x), Some(&i64t(&[1], &[1]))]).remove(0);
        assert_eq!(t.shape, vec![3, 1]);
        let e = ev_err(&Op::Expand, &[Some(&x), Some(&i64t(&[2], &[4, 1]))]);
        assert!(e.contains("3x1") && e.contains("4x1"), "{e}");
        // An overflowing target is an error, not a panic or an allocation.
        let huge = i64t(&[4], &[1 << 40, 1 << 40, 3, 1]);
        let e = ev_err(&Op::Expand, &[Some(&x), Some(&huge)]);
        assert!(e.contains("overflows"), "{e}");
        let big = i64t(&[3], &[1 << 20, 3, 1 << 10]);
        let e = ev_err(&Op::Expand, &[Some(&x), Some(&big)]);
        assert!(e.contains("limit"), "{e}");
        let b = Tensor::from_bool(vec![1], vec![true]);
        let t = ev(&Op::Expand, &[Some(&b), Some(&i64t(&[1], &[3]))]).remove(0);
        assert_eq!(t.as_bool().unwrap(), &[true, true, true]);
    }

    fn pad(mode: PadMode) -> Op {
        Op::Pad {
            mode,
            pads: None,
            value: 0.0,
        }
    }

    #[test]
    fn pad_modes_match_numpy() {
        // np.pad(np.arange(6).reshape(2,3), ((1,0),(2,1)), mode)
        let x = iota_t(&[2, 3]);
        let pads = i64t(&[4], &[1, 2, 0, 1]);
        let run = |m, v: Option<&Tensor>| {
            check_all_paths(&pad(m), &[Some(&x), Some(&pads), v], 1)
                .remove(0)
                .to_f32_vec()
        };
        let v = f32t(&[], &[9.0]);
        assert_eq!(
            run(PadMode::Constant, Some(&v)),
            vec![9., 9., 9., 9., 9., 9., 9., 9., 0., 1., 2., 9., 9., 9., 3., 4., 5., 9.]
        );
        assert_eq!(
            run(PadMode::Reflect, None),
            vec![5., 4., 3., 4., 5., 4., 2., 1., 0., 1., 2., 1., 5., 4., 3., 4., 5., 4.]
        );
        assert_eq!(
            run(PadMode::Edge, None),
            vec![0., 0., 0., 1., 2., 2., 0., 0., 0., 1., 2., 2., 3., 3., 3., 4., 5., 5.]
        );
        assert_eq!(
            run(PadMode::Wrap, None),
            vec![4., 5., 3., 4., 5., 3., 1., 2., 0., 1., 2., 0., 4., 5., 3., 4., 5., 3.]
        );
        // Pads wider than the axis: np.pad([1,2,3], (7,8), mode)
        let a = f32t(&[3], &[1., 2., 3.]);
        let wide = i64t(&[2], &[7, 8]);
        let r = |m| {
            check_all_paths(&pad(m), &[Some(&a), Some(&wide)], 1)
                .remove(0)
                .to_f32_vec()
        };
        let v = |s: &[i32]| s.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_eq!(
            r(PadMode::Reflect),
            v(&[2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3])
        );
        assert_eq!(
            r(PadMode::Wrap),
            v(&[3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2])
        );
        // Opset-18 axes input and a negative (cropping) pad.
        let x3 = iota_t(&[2, 2, 3]);
        let p = i64t(&[2], &[1, -1]);
        let ax = i64t(&[1], &[-1]);
        let t = check_all_paths(
            &pad(PadMode::Constant),
            &[Some(&x3), Some(&p), None, Some(&ax)],
            1,
        )
        .remove(0);
        assert_eq!(t.shape, vec![2, 2, 3]);
        assert_eq!(&t.to_f32_vec()[..6], &[0., 0., 1., 0., 3., 4.]);
        // Negative pads crop before padding (ONNX Runtime's results).
        let a4 = f32t(&[4], &[1., 2., 3., 4.]);
        for (m, p, want) in [
            (PadMode::Reflect, [2, -1], [3., 2., 1., 2., 3.]),
            (PadMode::Reflect, [-1, 2], [2., 3., 4., 3., 2.]),
            (PadMode::Edge, [2, -1], [1., 1., 1., 2., 3.]),
            (PadMode::Wrap, [2, -1], [2., 3., 1., 2., 3.]),
            (PadMode::Wrap, [-1, 2], [2., 3., 4., 2., 3.]),
            (PadMode::Constant, [-1, 2], [2., 3., 4., 0., 0.]),
        ] {
            let pt = i64t(&[2], &p);
            let t = check_all_paths(&pad(m), &[Some(&a4), Some(&pt)], 1).remove(0);
            assert_eq!(t.to_f32_vec(), want, "{m:?} {p:?}");
        }
        // Attribute pads and value (opset < 11).
        let op = Op::Pad {
            mode: PadMode::Constant,
            pads: Some(vec![0, 1, 0, 0]),
            value: -1.0,
        };
        let t = ev(&op, &[Some(&x)]).remove(0);
        assert_eq!(t.to_f32_vec(), vec![-1., 0., 1., 2., -1., 3., 4., 5.]);
        // Bool data pads with false.
        let b = Tensor::from_bool(vec![2], vec![true, true]);
        let t = ev(
            &pad(PadMode::Constant),
            &[Some(&b), Some(&i64t(&[2], &[1, 0]))],
        )
        .remove(0);
        assert_eq!(t.as_bool().unwrap(), &[false, true, true]);
        // Errors.
        let e = ev_err(
            &pad(PadMode::Constant),
            &[Some(&x), Some(&i64t(&[2], &[1, 1]))],
        );
        assert!(e.contains("2 values") && e.contains("need 4"), "{e}");
        let e = ev_err(
            &pad(PadMode::Constant),
            &[Some(&x), Some(&i64t(&[4], &[0, -4, 0, 0]))],
        );
        assert!(e.contains("negative"), "{e}");
        let z = f32t(&[0], &[]);
        let e = ev_err(
            &pad(PadMode::Reflect),
            &[Some(&z), Some(&i64t(&[2], &[1, 1]))],
        );
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn large_pad_and_slice_split_over_threads() {
        let x = iota_t(&[3, 64, 100]);
        let pads = i64t(&[6], &[0, 1, 2, 0, 3, 4]);
        check_all_paths(&pad(PadMode::Reflect), &[Some(&x), Some(&pads)], 1);
        check_all_paths(&pad(PadMode::Constant), &[Some(&x), Some(&pads)], 1);
        let s = i64t(&[2], &[1, 99]);
        let e = i64t(&[2], &[64, 0]);
        let a = i64t(&[2], &[1, 2]);
        let st = i64t(&[2], &[2, -3]);
        check_all_paths(
            &slice_op(),
            &[Some(&x), Some(&s), Some(&e), Some(&a), Some(&st)],
            1,
        );
    }

    #[test]
    fn runtime_non_float_data_is_rejected() {
        let xi = ValueInfo {
            dtype: DType::I64,
            shape: &[3],
            value: None,
        };
        let e = lower(
            &Op::Identity,
            &[Some(xi)],
            &[OutInfo {
                dtype: DType::I64,
                shape: vec![3],
            }],
        )
        .err()
        .unwrap();
        assert!(e.0.contains("runtime tensors must be float32"), "{}", e.0);
        let p = ValueInfo {
            dtype: DType::F32,
            shape: &[3],
            value: None,
        };
        let e = lower(
            &Op::Shape {
                start: 0,
                end: None,
            },
            &[Some(p)],
            &[OutInfo {
                dtype: DType::I64,
                shape: vec![1],
            }],
        )
        .err()
        .unwrap();
        assert!(e.0.contains("runtime tensors must be float32"), "{}", e.0);
    }

    /// Deterministic generator for the randomized cross-checks.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }

        fn shape(&mut self, max_rank: i64, max_dim: i64) -> Vec<usize> {
            let r = self.range(1, max_rank);
            (0..r).map(|_| self.range(0, max_dim) as usize).collect()
        }
    }

    /// Reference gather: output multi-index -> input multi-index (or None
    /// for a padded element), walked one element at a time.
    fn naive(
        x: &[f32],
        in_shape: &[usize],
        out_shape: &[usize],
        f: impl Fn(&[usize]) -> Option<Vec<usize>>,
        fill: f32,
    ) -> Vec<f32> {
        let ist = strides(in_shape);
        let n = numel(out_shape);
        let mut out = Vec::with_capacity(n);
        let mut idx = vec![0usize; out_shape.len()];
        for flat in 0..n {
            let mut rem = flat;
            for d in (0..out_shape.len()).rev() {
                idx[d] = rem % out_shape[d];
                rem /= out_shape[d];
            }
            out.push(match f(&idx) {
                Some(src) => x[src.iter().zip(&ist).map(|(i, s)| i * s).sum::<usize>()],
                None => fill,
            });
        }
        out
    }

    /// The index list of x[start:end:step] by Python's slice.indices(),
    /// except that, as the ONNX spec says (and ONNX Runtime does), a start
    /// still negative after adding the length clamps to 0 for negative
    /// steps too, where Python clamps it to -1 (an empty slice).
    fn onnx_slice(start: i64, end: i64, step: i64, len: usize) -> Vec<usize> {
        let len = len as i128;
        let (lower, upper) = if step > 0 { (0, len) } else { (-1, len - 1) };
        let adj = |v: i64, lower: i128| {
            let mut v = v as i128;
            if v < 0 {
                v += len;
                if v < lower {
                    v = lower;
                }
            } else if v > upper {
                v = upper;
            }
            v
        };
        let i = adj(start, lower.max(0)).min(upper);
        let (mut i, e, st) = (i, adj(end, lower), step as i128);
        let mut out = Vec::new();
        while (st > 0 && i < e) || (st < 0 && i > e) {
            out.push(i as usize);
            i += st;
        }
        out
    }

    #[test]
    fn random_slices_match_reference_slicing() {
        let mut g = Lcg(7);
        let picks = [i64::MIN, i64::MAX, -9, -5, -3, -2, -1, 0, 1, 2, 3, 4, 6, 9];
        for _ in 0..400 {
            let shape = g.shape(4, 5);
            let x = iota_t(&shape);
            let r = shape.len();
            let k = g.range(1, r as i64) as usize;
            let mut axes: Vec<usize> = (0..r).collect();
            for i in (1..r).rev() {
                axes.swap(i, g.range(0, i as i64) as usize);
            }
            axes.truncate(k);
            let pick = |g: &mut Lcg| picks[g.range(0, picks.len() as i64 - 1) as usize];
            let starts: Vec<i64> = (0..k).map(|_| pick(&mut g)).collect();
            let ends: Vec<i64> = (0..k).map(|_| pick(&mut g)).collect();
            let steps: Vec<i64> = (0..k)
                .map(|_| [-3, -2, -1, 1, 2, 3][g.range(0, 5) as usize])
                .collect();
            let neg_axes: Vec<i64> = axes
                .iter()
                .map(|&a| {
                    if g.range(0, 1) == 0 {
                        a as i64
                    } else {
                        a as i64 - r as i64
                    }
                })
                .collect();
            let mut lists: Vec<Vec<usize>> = shape.iter().map(|&n| (0..n).collect()).collect();
            for i in 0..k {
                lists[axes[i]] = onnx_slice(starts[i], ends[i], steps[i], shape[axes[i]]);
            }
            let out_shape: Vec<usize> = lists.iter().map(|l| l.len()).collect();
            let want = naive(
                x.as_f32().unwrap(),
                &shape,
                &out_shape,
                |o| Some(o.iter().enumerate().map(|(d, &i)| lists[d][i]).collect()),
                0.0,
            );
            let t = slice(&x, &starts, &ends, Some(&neg_axes), Some(&steps));
            assert_eq!(
                t.shape, out_shape,
                "{shape:?} {starts:?} {ends:?} {axes:?} {steps:?}"
            );
            assert_eq!(
                t.to_f32_vec(),
                want,
                "{shape:?} {starts:?} {ends:?} {axes:?} {steps:?}"
            );
        }
    }

    #[test]
    fn random_transposes_expands_and_concats_match_naive() {
        let mut g = Lcg(11);
        for _ in 0..200 {
            let shape = g.shape(5, 4);
            let r = shape.len();
            let x = iota_t(&shape);
            let mut perm: Vec<usize> = (0..r).collect();
            for i in (1..r).rev() {
                perm.swap(i, g.range(0, i as i64) as usize);
            }
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let want = naive(
                x.as_f32().unwrap(),
                &shape,
                &out_shape,
                |o| {
                    let mut src = vec![0; r];
                    for (k, &p) in perm.iter().enumerate() {
                        src[p] = o[k];
                    }
                    Some(src)
                },
                0.0,
            );
            let t = check_all_paths(
                &Op::Transpose {
                    perm: Some(perm.clone()),
                },
                &[Some(&x)],
                1,
            )
            .remove(0);
            assert_eq!(t.to_f32_vec(), want, "{shape:?} {perm:?}");

            // Expand: some dims of 1 in the input, a longer target.
            let small: Vec<usize> = shape
                .iter()
                .map(|&d| if g.range(0, 1) == 0 { 1 } else { d })
                .collect();
            let xs = iota_t(&small);
            let extra = g.range(0, 2) as usize;
            let mut target: Vec<i64> = (0..extra).map(|_| g.range(1, 3)).collect();
            target.extend(shape.iter().zip(&small).map(|(&d, &s)| {
                if s == 1 && g.range(0, 1) == 0 {
                    1
                } else {
                    d as i64
                }
            }));
            let tt = i64t(&[target.len()], &target);
            let t = check_all_paths(&Op::Expand, &[Some(&xs), Some(&tt)], 1).remove(0);
            let oshape = t.shape.clone();
            let want = naive(
                xs.as_f32().unwrap(),
                &small,
                &oshape,
                |o| {
                    Some(
                        small
                            .iter()
                            .enumerate()
                            .map(|(d, &n)| if n == 1 { 0 } else { o[o.len() - r + d] })
                            .collect(),
                    )
                },
                0.0,
            );
            assert_eq!(t.to_f32_vec(), want, "{small:?} -> {target:?}");

            // Concat along a random axis of 1 to 3 inputs.
            let axis = g.range(0, r as i64 - 1) as usize;
            let n_in = g.range(1, 3) as usize;
            let parts: Vec<Tensor> = (0..n_in)
                .map(|k| {
                    let mut s = shape.clone();
                    s[axis] = g.range(0, 3) as usize;
                    f32t(
                        &s,
                        &iota(numel(&s))
                            .iter()
                            .map(|v| v + 1000.0 * k as f32)
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            let refs: Vec<Option<&Tensor>> = parts.iter().map(Some).collect();
            let t = check_all_paths(
                &Op::Concat {
                    axis: axis as i64 - r as i64,
                },
                &refs,
                n_in,
            )
            .remove(0);
            let mut want = Vec::new();
            let outer = numel(&shape[..axis]);
            for o in 0..outer {
                for p in &parts {
                    let chunk = numel(&p.shape[axis..]);
                    want.extend_from_slice(&p.as_f32().unwrap()[o * chunk..(o + 1) * chunk]);
                }
            }
            assert_eq!(t.to_f32_vec(), want, "concat {shape:?} axis {axis}");
        }
    }

    #[test]
    fn random_pads_match_naive_for_every_mode() {
        let mut g = Lcg(3);
        for _ in 0..200 {
            let shape = g.shape(3, 4);
            let r = shape.len();
            let x = iota_t(&shape);
            let mode = [
                PadMode::Constant,
                PadMode::Edge,
                PadMode::Reflect,
                PadMode::Wrap,
            ][g.range(0, 3) as usize];
            let mut pads: Vec<i64> = (0..2 * r).map(|_| g.range(0, 5)).collect();
            if mode == PadMode::Constant {
                for p in pads.iter_mut() {
                    if g.range(0, 3) == 0 {
                        *p = -g.range(0, 1);
                    }
                }
            }
            let empty_axis = shape
                .iter()
                .enumerate()
                .any(|(d, &n)| n == 0 && (pads[d] != 0 || pads[r + d] != 0));
            let out_shape: Vec<usize> = (0..r)
                .map(|d| (shape[d] as i64 + pads[d] + pads[r + d]).max(0) as usize)
                .collect();
            let pt = i64t(&[2 * r], &pads);
            let v = f32t(&[], &[-7.0]);
            let ins = [Some(&x), Some(&pt), Some(&v)];
            if mode != PadMode::Constant && empty_axis {
                assert!(ops::eval(&pad(mode), &ins).is_err());
                continue;
            }
            if (0..r).any(|d| shape[d] as i64 + pads[d] + pads[r + d] < 0) {
                continue;
            }
            let want = naive(
                x.as_f32().unwrap(),
                &shape,
                &out_shape,
                |o| {
                    let mut src = Vec::with_capacity(r);
                    for d in 0..r {
                        let n = shape[d] as i64;
                        let mut i = o[d] as i64 - pads[d];
                        if !(0..n).contains(&i) {
                            match mode {
                                PadMode::Constant => return None,
                                PadMode::Edge => i = i.clamp(0, n - 1),
                                PadMode::Wrap => i = ((i % n) + n) % n,
                                PadMode::Reflect => {
                                    // numpy: reflect repeatedly about the edges.
                                    while n > 1 && !(0..n).contains(&i) {
                                        i = if i < 0 { -i } else { 2 * (n - 1) - i };
                                    }
                                    if n == 1 {
                                        i = 0;
                                    }
                                }
                            }
                        }
                        src.push(i as usize);
                    }
                    Some(src)
                },
                -7.0,
            );
            let t = check_all_paths(&pad(mode), &ins, 1).remove(0);
            assert_eq!(t.shape, out_shape);
            assert_eq!(t.to_f32_vec(), want, "{mode:?} {shape:?} {pads:?}");
        }
    }
}
