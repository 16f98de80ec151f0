//! The movement family's shared kernel: a strided copy ([`Strided`]) over
//! any element type ([`Elem`]: f32 at run time, i64/bool when folding),
//! tiled for transposes, and the kernel that runs it over the pool.
//! Frame path (`StridedKernel::run`, `Strided::copy_range`): never
//! allocates.

#[allow(unused_imports)]
use super::super::concat::*;
use super::super::elementwise::row_segments;
#[allow(unused_imports)]
use super::super::gather::*;
#[allow(unused_imports)]
use super::super::pad::*;
#[allow(unused_imports)]
use super::super::shape_values::*;
#[allow(unused_imports)]
use super::super::slice::*;
#[allow(unused_imports)]
use super::super::split::*;
#[allow(unused_imports)]
use super::super::views::*;
#[allow(unused_imports)]
use super::*;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::tensor::{checked_numel, Tensor, TensorData};

// ---------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------

/// A scalar given in every storage (pad values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scalar {
    pub(crate) f: f32,
    pub(crate) i: i64,
    pub(crate) b: bool,
}

impl Scalar {
    pub(crate) fn of(t: &Tensor) -> Option<Scalar> {
        let f = *t.to_f32_vec().first()?;
        let i = *t.to_i64_vec().first()?;
        Some(Scalar {
            f,
            i,
            b: i != 0 || f != 0.0,
        })
    }

    pub(crate) fn from_f32(f: f32) -> Scalar {
        Scalar {
            f,
            i: f as i64,
            b: f != 0.0,
        }
    }
}

/// The element types tensors are stored in.
pub(crate) trait Elem: Copy + Default + 'static {
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
pub(crate) struct Strided {
    pub(crate) dims: Vec<usize>,
    pub(crate) strides: Vec<isize>,
    pub(crate) base: isize,
    pub(crate) inner: usize,
    pub(crate) inner_stride: isize,
    pub(crate) len: usize,
}

impl Strided {
    pub(crate) fn new(out_dims: &[usize], src_strides: &[isize], base: usize) -> Strided {
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
    pub(crate) fn row_start(&self, row: usize) -> isize {
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
    pub(crate) fn is_transpose(&self) -> bool {
        let r = self.dims.len();
        r >= 2 && self.strides[r - 2] == 1 && self.inner_stride > 1
    }

    /// Fill `dst`, the output elements `[s, s + dst.len())`.
    pub(crate) fn copy_range<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
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

    pub(crate) fn copy_rows<T: Copy>(&self, src: &[T], dst: &mut [T], s: usize) {
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
    pub(crate) fn copy_tiles<T: Copy>(&self, src: &[T], dst: &mut [T], r0: usize, r1: usize) {
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
pub(crate) const TILE_ROWS: usize = 256;

pub(crate) const TILE_COLS: usize = 8;

/// Run `f(dst_part, start)` over the pool on disjoint ranges of `out`.
pub(crate) fn par_fill(pool: &ThreadPool, out: &mut [f32], f: &(dyn Fn(&mut [f32], usize) + Sync)) {
    let ob = Buf::from_slice(out);
    par_chunks(pool, ob.len, GRAIN, &|s, e| {
        // SAFETY: par_chunks hands out disjoint ranges within `out`.
        let d = unsafe { buf_range(ob, s, e) };
        f(d, s);
    });
}

pub(crate) struct StridedKernel {
    pub(crate) p: Strided,
}

impl CpuKernel for StridedKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = io.input(0);
        let out = io.output(0);
        let n = self.p.len.min(out.len());
        par_fill(pool, &mut out[..n], &|d, s| self.p.copy_range(x, d, s));
    }
}
