//! Helpers the element-wise ops (`binary`, `unary`, `cast`, `where_op`,
//! `batchnorm`) and other op families share: the numpy broadcast plan
//! ([`Bcast`]), row walks, integer wrapping, and the "runtime tensors are
//! f32" check. Each op's own semantics live in its file.
//!
//! Boot-time helpers allocate; the row walks and [`Bcast`] lookups used by
//! kernels' `run` (frame path) never allocate.

use super::{OutInfo, ValueInfo};

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::Op;

use crate::engine::tensor::{
    broadcast_shapes, broadcast_strides, checked_numel, numel, shape_string, DType, Tensor,
    TensorData,
};

#[allow(unused_imports)]
use super::batchnorm::*;
#[allow(unused_imports)]
use super::binary::*;
#[allow(unused_imports)]
use super::cast::*;
#[allow(unused_imports)]
use super::unary::*;
#[allow(unused_imports)]
use super::where_op::*;
use crate::op_bail;

// ---------------------------------------------------------------------------
// Shared kernel helpers (used by reduce.rs and movement.rs too)
// ---------------------------------------------------------------------------

/// Error for a node whose runtime tensors are not all float: every input
/// without a boot-time value and every output must be float (f32 storage).
pub(crate) fn check_runtime_float(
    op: &Op,
    ins: &[Option<ValueInfo>],
    outs: &[OutInfo],
) -> OpResult<()> {
    for (i, v) in ins.iter().enumerate() {
        if let Some(v) = v {
            if v.value.is_none() && !v.dtype.is_float() {
                op_bail!(
                    "{}: input {i} is a {} tensor computed at run time; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
                    op.name(),
                    v.dtype
                );
            }
        }
    }
    for (k, o) in outs.iter().enumerate() {
        if !o.dtype.is_float() {
            op_bail!(
                "{}: output {k} would be a {} tensor computed at run time; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
                op.name(),
                o.dtype
            );
        }
    }
    Ok(())
}

/// Call `f(row, col, len)` for each piece of the flat range `[s, e)` of a
/// row-major array of rows `inner` long.
#[inline]
pub(crate) fn row_segments(
    s: usize,
    e: usize,
    inner: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    if inner == 0 {
        return;
    }
    let mut pos = s;
    while pos < e {
        let row = pos / inner;
        let col = pos % inner;
        let n = (inner - col).min(e - pos);
        f(row, col, n);
        pos += n;
    }
}

/// Offset, under `strides`, of the first element of row `row` of an array
/// with `dims` walked as rows of its last dim.
#[inline]
pub(crate) fn row_offset(dims: &[usize], strides: &[usize], row: usize) -> usize {
    let r = dims.len();
    if r < 2 {
        return 0;
    }
    let mut rem = row;
    let mut off = 0;
    for d in (0..r - 1).rev() {
        let n = dims[d];
        off += (rem % n) * strides[d];
        rem /= n;
    }
    off
}

/// A broadcast of `N` operands to one output shape, with the dims collapsed
/// (size-1 dims dropped, adjacent dims merged where every operand stays
/// contiguous across them). The output is walked as rows of `inner`
/// elements; within a row each operand moves by 0 or 1 element, so
/// same-shape, scalar, per-channel (`[N,C,H,W]` with `[C,1,1]`) and
/// row-vector broadcasts all reduce to tight inner loops.
#[derive(Debug, Clone)]
pub(crate) struct Bcast {
    /// Collapsed output dims.
    pub(super) dims: Vec<usize>,
    /// Per operand, its stride (elements) along each collapsed dim.
    pub(super) strides: Vec<Vec<usize>>,
    /// Length of the last collapsed dim (1 for a scalar output).
    pub inner: usize,
    /// Output elements.
    pub len: usize,
}

impl Bcast {
    /// `shapes` must broadcast to `out` (checked by the caller's infer).
    pub(crate) fn new(shapes: &[&[usize]], out: &[usize]) -> Bcast {
        let len = numel(out);
        let full: Vec<Vec<usize>> = shapes.iter().map(|s| broadcast_strides(s, out)).collect();
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<usize>> = vec![Vec::new(); shapes.len()];
        for (d, &n) in out.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let mergeable = !dims.is_empty()
                && full.iter().zip(&strides).all(|(f, s)| {
                    // The previous (outer) dim continues this one's layout.
                    s[s.len() - 1] == f[d] * n
                });
            if mergeable {
                let last = dims.len() - 1;
                dims[last] *= n;
                for (f, s) in full.iter().zip(strides.iter_mut()) {
                    s[last] = f[d];
                }
            } else {
                dims.push(n);
                for (f, s) in full.iter().zip(strides.iter_mut()) {
                    s.push(f[d]);
                }
            }
        }
        let inner = dims.last().copied().unwrap_or(1);
        Bcast {
            dims,
            strides,
            inner,
            len,
        }
    }

    /// Operand `k`'s step within a row: 0 (broadcast) or 1.
    #[inline]
    pub(crate) fn inner_stride(&self, k: usize) -> usize {
        self.strides[k].last().copied().unwrap_or(0)
    }

    /// Operand `k`'s offset at the start of output row `row`.
    #[inline]
    pub(crate) fn row_offset(&self, k: usize, row: usize) -> usize {
        row_offset(&self.dims, &self.strides[k], row)
    }

    /// For each row piece of the output range `[s, e)`: `f(out_start, len,
    /// offsets)` with every operand's offset at `out_start`.
    #[inline]
    pub(crate) fn segments<const N: usize>(
        &self,
        s: usize,
        e: usize,
        mut f: impl FnMut(usize, usize, [usize; N]),
    ) {
        debug_assert_eq!(N, self.strides.len());
        row_segments(s, e, self.inner, |row, col, n| {
            let mut offs = [0usize; N];
            for (k, o) in offs.iter_mut().enumerate() {
                *o = self.row_offset(k, row) + col * self.inner_stride(k);
            }
            f(row * self.inner + col, n, offs);
        });
    }

    /// Evaluate `f` over two broadcast operands into a new vector.
    pub(crate) fn map2<A: Copy, B: Copy, O>(
        &self,
        a: &[A],
        b: &[B],
        mut f: impl FnMut(A, B) -> OpResult<O>,
    ) -> OpResult<Vec<O>> {
        let (sa, sb) = (self.inner_stride(0), self.inner_stride(1));
        let mut out = Vec::with_capacity(self.len);
        let mut err = None;
        self.segments::<2>(0, self.len, |_, n, [oa, ob]| {
            if err.is_some() {
                return;
            }
            for i in 0..n {
                match f(a[oa + i * sa], b[ob + i * sb]) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

pub(super) fn broadcast2(a: &[usize], b: &[usize], what: &str) -> OpResult<Vec<usize>> {
    let out = broadcast_shapes(a, b).ok_or_else(|| {
        OpError::new(format!(
            "{what}: shapes {} and {} do not broadcast",
            shape_string(a),
            shape_string(b)
        ))
    })?;
    if checked_numel(&out).is_none() {
        op_bail!("{what}: broadcast shape {} overflows", shape_string(&out));
    }
    Ok(out)
}

/// The kernel reads input `i` from the arena as f32.
/// Like [`check_runtime_float`] for ops that also carry run-time integer
/// tensors (held as exact f32 values, see `ops::runs_on_integers`): only
/// bool tensors are refused at run time.
pub(crate) fn check_runtime_numeric(
    op: &Op,
    ins: &[Option<ValueInfo>],
    outs: &[OutInfo],
) -> OpResult<()> {
    let is_bool = |d: DType| d.storage() == crate::engine::tensor::Storage::Bool;
    for (i, v) in ins.iter().enumerate() {
        if let Some(v) = v {
            if v.value.is_none() && is_bool(v.dtype) {
                op_bail!(
                    "{}: input {i} is a bool tensor computed at run time; bool tensors are only supported as boot-time constants",
                    op.name()
                );
            }
        }
    }
    for (k, o) in outs.iter().enumerate() {
        if is_bool(o.dtype) {
            op_bail!(
                "{}: output {k} would be a bool tensor computed at run time; bool tensors are only supported as boot-time constants",
                op.name()
            );
        }
    }
    Ok(())
}

pub(super) fn check_float_data(op: &Op, i: usize, v: &ValueInfo) -> OpResult<()> {
    if !v.dtype.is_float() {
        op_bail!(
            "{}: input {i} is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
            op.name(),
            v.dtype
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// eval: integer and bool data (f32 goes through the kernels)
// ---------------------------------------------------------------------------

/// Wrap an i64 result to the range of the integer `dtype` it is stored for,
/// as numpy's fixed-width arithmetic and `astype` do.
pub(crate) fn wrap_int(dtype: DType, v: i64) -> i64 {
    match dtype {
        DType::I32 => v as i32 as i64,
        DType::I16 => v as i16 as i64,
        DType::I8 => v as i8 as i64,
        DType::U8 => v as u8 as i64,
        DType::U16 => v as u16 as i64,
        DType::U32 => v as u32 as i64,
        _ => v,
    }
}

pub(super) fn tensor(dtype: DType, shape: Vec<usize>, data: TensorData) -> Tensor {
    Tensor { dtype, shape, data }
}

pub(super) fn data_mismatch(what: &str, t: &Tensor) -> OpError {
    OpError::new(format!(
        "{what} is declared {} but holds {} data",
        t.dtype,
        match t.data {
            TensorData::F32(_) => "float",
            TensorData::I64(_) => "integer",
            TensorData::Bool(_) => "bool",
        }
    ))
}

#[cfg(test)]
mod tests;
