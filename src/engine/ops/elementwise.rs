//! Element-wise ops with numpy (multidirectional) broadcasting: arithmetic,
//! comparisons and logic (`Binary`), `Unary`, activations (`Act`), `Clip`,
//! `Cast`, `Where` and inference-mode `BatchNormalization`.
//!
//! Also owns the helpers the other op families share for their kernels:
//! the broadcast plan ([`Bcast`]), splitting a flat range over the thread
//! pool ([`par_chunks`]) and the "runtime tensors are f32" check.
//!
//! `infer`, `lower` and `eval` run at boot on the engine's boot thread and
//! may allocate. Each kernel's `run` is on the frame path (inference thread,
//! work split over the kernel pool) and never allocates: broadcast strides,
//! per-channel BatchNorm coefficients and captured constants are all
//! computed in `lower`.
//!
//! Integer and bool tensors only exist as boot-time constants, so their
//! arithmetic lives in `eval`; f32 data goes through the kernels (`eval`
//! returns `Ok(None)`), so there is one f32 implementation of each op.

use super::{required, OutInfo, ValueInfo};

use crate::engine::cpu::CpuKernel;

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::{Activation, BinaryOp, Op, UnaryOp};

use crate::engine::tensor::{
    broadcast_shapes, broadcast_strides, checked_numel, numel, shape_string, DType, Storage,
    Tensor, TensorData,
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

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    let name = op.name();
    match op {
        Op::Binary(b) => {
            if ins.len() != 2 {
                op_bail!("{name} takes 2 inputs, got {}", ins.len());
            }
            let a = required(ins, 0, "A")?;
            let bb = required(ins, 1, "B")?;
            let shape = broadcast2(a.shape, bb.shape, &name)?;
            let (sa, sb) = (a.dtype.storage(), bb.dtype.storage());
            let dtype = if is_logic(*b) {
                if sa != Storage::Bool || sb != Storage::Bool {
                    op_bail!("{name} needs bool inputs, got {} and {}", a.dtype, bb.dtype);
                }
                DType::Bool
            } else if is_compare(*b) {
                if sa != sb {
                    op_bail!("{name} inputs differ in type: {} and {}", a.dtype, bb.dtype);
                }
                if sa == Storage::Bool && *b != BinaryOp::Equal {
                    op_bail!("{name} does not take bool inputs");
                }
                DType::Bool
            } else {
                if sa == Storage::Bool || sb == Storage::Bool {
                    op_bail!(
                        "{name} does not take bool inputs ({} and {})",
                        a.dtype,
                        bb.dtype
                    );
                }
                if sa != sb && *b != BinaryOp::Pow {
                    op_bail!("{name} inputs differ in type: {} and {}", a.dtype, bb.dtype);
                }
                a.dtype
            };
            Ok(vec![OutInfo { dtype, shape }])
        }
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
        Op::Cast { to } => {
            let x = required(ins, 0, "input")?;
            Ok(vec![OutInfo {
                dtype: *to,
                shape: x.shape.to_vec(),
            }])
        }
        Op::Where => {
            let c = required(ins, 0, "condition")?;
            let x = required(ins, 1, "X")?;
            let y = required(ins, 2, "Y")?;
            if c.dtype.is_float() {
                op_bail!(
                    "Where's condition must be bool (or integer), got {}",
                    c.dtype
                );
            }
            if x.dtype.storage() != y.dtype.storage() {
                op_bail!(
                    "Where's X and Y differ in type: {} and {}",
                    x.dtype,
                    y.dtype
                );
            }
            let xy = broadcast2(x.shape, y.shape, "Where (X, Y)")?;
            let shape = broadcast2(c.shape, &xy, "Where (condition, X/Y)")?;
            Ok(vec![OutInfo {
                dtype: x.dtype,
                shape,
            }])
        }
        Op::BatchNormalization { .. } => {
            let x = required(ins, 0, "X")?;
            if !x.dtype.is_float() {
                op_bail!("BatchNormalization needs a float input, got {}", x.dtype);
            }
            let c = bn_channels(x.shape)?;
            for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                let v = required(ins, i, what)?;
                if numel(v.shape) != c || v.shape.len() > 1 {
                    op_bail!(
                        "BatchNormalization {what} (input {i}) has shape {} but X ({}) has {c} channels",
                        shape_string(v.shape),
                        shape_string(x.shape)
                    );
                }
            }
            Ok(vec![OutInfo {
                dtype: x.dtype,
                shape: x.shape.to_vec(),
            }])
        }
        _ => op_bail!("{name} is not an element-wise op"),
    }
}

// ---------------------------------------------------------------------------
// lower and kernels
// ---------------------------------------------------------------------------

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    check_runtime_float(op, ins, outs)?;
    let out = outs
        .first()
        .ok_or_else(|| OpError::new(format!("{} has no output", op.name())))?;
    match op {
        Op::Binary(b) => lower_binary(*b, ins, out),
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
        Op::Cast { to } => {
            let x = required(ins, 0, "input")?;
            check_float_data(op, 0, &x)?;
            let f = if *to == DType::F16 {
                MapFn::ToF16
            } else {
                MapFn::Copy
            };
            Ok(Box::new(MapKernel {
                f,
                len: numel(&out.shape),
            }))
        }
        Op::Where => {
            let c = required(ins, 0, "condition")?;
            let Some(ct) = c.value else {
                op_bail!("Where condition (input 0) must be a constant computable at boot");
            };
            let cond = cond_bools(ct)?;
            let x = required(ins, 1, "X")?;
            let y = required(ins, 2, "Y")?;
            check_float_data(op, 1, &x)?;
            check_float_data(op, 2, &y)?;
            Ok(Box::new(WhereKernel {
                cond,
                bc: Bcast::new(&[c.shape, x.shape, y.shape], &out.shape),
            }))
        }
        Op::BatchNormalization { epsilon } => {
            let x = required(ins, 0, "X")?;
            check_float_data(op, 0, &x)?;
            let c = bn_channels(x.shape)?;
            let mut p: Vec<Vec<f32>> = Vec::with_capacity(4);
            for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                let v = required(ins, i, what)?;
                let Some(t) = v.value else {
                    op_bail!(
                        "BatchNormalization {what} (input {i}) must be a constant computable at boot"
                    );
                };
                let vals = t.to_f32_vec();
                if vals.len() != c {
                    op_bail!(
                        "BatchNormalization {what} (input {i}) has {} values, expected {c}",
                        vals.len()
                    );
                }
                p.push(vals);
            }
            let eps = *epsilon as f64;
            let mut a = Vec::with_capacity(c);
            let mut b = Vec::with_capacity(c);
            let (scale, bias, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
            for (((&sc, &bi), &m), &v) in scale.iter().zip(bias).zip(mean).zip(var) {
                let s = sc as f64 / (v as f64 + eps).sqrt();
                a.push(s as f32);
                b.push((bi as f64 - m as f64 * s) as f32);
            }
            let inner = x.shape.iter().skip(2).product::<usize>();
            Ok(Box::new(ChannelAffineKernel {
                a,
                b,
                inner,
                len: numel(x.shape),
            }))
        }
        _ => op_bail!("{} is not an element-wise op", op.name()),
    }
}

/// The kernel reads input `i` from the arena as f32.
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

/// Evaluation on owned tensors for constant folding; `Ok(None)` sends f32
/// data through the CPU kernel instead.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let outs = infer(op, &infos)?;
    let out = &outs[0];
    let x = ins
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| OpError::new(format!("{}: missing input 0", op.name())))?;
    let all_f32 = ins
        .iter()
        .flatten()
        .all(|t| matches!(t.data, TensorData::F32(_)));
    match op {
        Op::Binary(b) => {
            let y = ins[1].ok_or_else(|| OpError::new("missing input 1"))?;
            if all_f32 && out.dtype.is_float() {
                return Ok(None);
            }
            let bc = Bcast::new(&[&x.shape, &y.shape], &out.shape);
            let data = eval_binary(*b, x, y, out.dtype, &bc)?;
            Ok(Some(vec![tensor(out.dtype, out.shape.clone(), data)]))
        }
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
        Op::Cast { to } => {
            if matches!(x.data, TensorData::F32(_)) && to.is_float() {
                return Ok(None);
            }
            Ok(Some(vec![tensor(
                *to,
                x.shape.clone(),
                cast_data(&x.data, *to),
            )]))
        }
        Op::Where => {
            let c = &cond_bools(x)?;
            let (Some(xt), Some(yt)) = (ins[1], ins[2]) else {
                op_bail!("Where needs inputs X and Y");
            };
            let bc = Bcast::new(&[&x.shape, &xt.shape, &yt.shape], &out.shape);
            let data = match (&xt.data, &yt.data) {
                (TensorData::F32(a), TensorData::F32(b)) => {
                    TensorData::F32(eval_where(&bc, c, a, b))
                }
                (TensorData::I64(a), TensorData::I64(b)) => {
                    TensorData::I64(eval_where(&bc, c, a, b))
                }
                (TensorData::Bool(a), TensorData::Bool(b)) => {
                    TensorData::Bool(eval_where(&bc, c, a, b))
                }
                _ => op_bail!(
                    "Where's X and Y differ in type: {} and {}",
                    xt.dtype,
                    yt.dtype
                ),
            };
            Ok(Some(vec![tensor(out.dtype, out.shape.clone(), data)]))
        }
        _ => op_bail!("{} is not an element-wise op", op.name()),
    }
}

#[cfg(test)]
mod tests;
