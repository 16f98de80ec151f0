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
use crate::engine::cpu::activation::apply_inplace;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::half::round_to_f16;
use crate::engine::ir::{Activation, BinaryOp, Op, UnaryOp};
use crate::engine::tensor::{
    broadcast_shapes, broadcast_strides, checked_numel, numel, shape_string, DType, Storage,
    Tensor, TensorData,
};
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
    dims: Vec<usize>,
    /// Per operand, its stride (elements) along each collapsed dim.
    strides: Vec<Vec<usize>>,
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

/// `Where` over one row piece: the single implementation for every dtype.
#[inline]
fn where_piece<T: Copy>(
    cond: &[bool],
    x: &[T],
    y: &[T],
    offs: [usize; 3],
    st: [usize; 3],
    out: &mut [T],
) {
    let [oc, ox, oy] = offs;
    let [sc, sx, sy] = st;
    for (i, o) in out.iter_mut().enumerate() {
        *o = if cond[oc + i * sc] {
            x[ox + i * sx]
        } else {
            y[oy + i * sy]
        };
    }
}

// ---------------------------------------------------------------------------
// infer
// ---------------------------------------------------------------------------

fn is_compare(b: BinaryOp) -> bool {
    matches!(
        b,
        BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessOrEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual
    )
}

fn is_logic(b: BinaryOp) -> bool {
    matches!(b, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
}

fn broadcast2(a: &[usize], b: &[usize], what: &str) -> OpResult<Vec<usize>> {
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

/// Channels of a BatchNormalization input: dim 1, or 1 for a 1-D input.
fn bn_channels(shape: &[usize]) -> OpResult<usize> {
    match shape.len() {
        0 => op_bail!("BatchNormalization needs an input of rank >= 1, got a scalar"),
        1 => Ok(1),
        _ => Ok(shape[1]),
    }
}

/// Clip's optional bound from the attribute or constant input `i`.
fn clip_bound(
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

fn clip_attrs(op: &Op) -> (Option<f32>, Option<f32>) {
    match op {
        Op::Clip { min, max } => (*min, *max),
        _ => (None, None),
    }
}

fn clip_bounds_f32(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(f32, f32)> {
    let (min, max) = clip_attrs(op);
    let lo = clip_bound(min, ins, 1, "min")?;
    let hi = clip_bound(max, ins, 2, "max")?;
    let f =
        |t: Option<Tensor>, d: f32| t.and_then(|t| t.to_f32_vec().first().copied()).unwrap_or(d);
    Ok((f(lo, f32::NEG_INFINITY), f(hi, f32::INFINITY)))
}

fn clip_bounds_i64(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(i64, i64)> {
    let (min, max) = clip_attrs(op);
    let lo = clip_bound(min, ins, 1, "min")?;
    let hi = clip_bound(max, ins, 2, "max")?;
    let f =
        |t: Option<Tensor>, d: i64| t.and_then(|t| t.to_i64_vec().first().copied()).unwrap_or(d);
    Ok((f(lo, i64::MIN), f(hi, i64::MAX)))
}

// ---------------------------------------------------------------------------
// f32 element functions: the one definition each kernel and fold uses
// ---------------------------------------------------------------------------

trait BinF {
    fn f(a: f32, b: f32) -> f32;
}

macro_rules! binf {
    ($name:ident, |$a:ident, $b:ident| $e:expr) => {
        struct $name;
        impl BinF for $name {
            #[inline(always)]
            fn f($a: f32, $b: f32) -> f32 {
                $e
            }
        }
    };
}

binf!(AddF, |a, b| a + b);
binf!(SubF, |a, b| a - b);
binf!(MulF, |a, b| a * b);
binf!(DivF, |a, b| a / b);
binf!(PowF, |a, b| a.powf(b));
binf!(SquareF, |a, _b| a * a);
binf!(SqrtPowF, |a, _b| a.sqrt());
binf!(MaxF, |a, b| if a.is_nan() || b.is_nan() {
    f32::NAN
} else {
    a.max(b)
});
binf!(MinF, |a, b| if a.is_nan() || b.is_nan() {
    f32::NAN
} else {
    a.min(b)
});
binf!(FmodF, |a, b| a % b);
binf!(PyModF, |a, b| py_mod_f32(a, b));

/// numpy `mod` for floats: the result takes the divisor's sign.
#[inline(always)]
fn py_mod_f32(a: f32, b: f32) -> f32 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

/// The f32 binary ops the kernel runs (specialised exponents included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatBin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `Pow` with a constant scalar exponent 2.
    Square,
    /// `Pow` with a constant scalar exponent 0.5.
    SqrtPow,
    Max,
    Min,
    Fmod,
    PyMod,
}

fn unary_f32(u: UnaryOp, x: f32) -> f32 {
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
        // Rejected by infer (bool only); identity keeps this total.
        UnaryOp::Not => x,
    }
}

/// The error function in f64 (accurate to ~1e-15): its Taylor series for
/// |x| < 2.5, the continued fraction of erfc beyond.
fn erf(x: f64) -> f64 {
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
fn erfc_large(x: f64) -> f64 {
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
fn check_float_data(op: &Op, i: usize, v: &ValueInfo) -> OpResult<()> {
    if !v.dtype.is_float() {
        op_bail!(
            "{}: input {i} is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
            op.name(),
            v.dtype
        );
    }
    Ok(())
}

fn lower_binary(
    b: BinaryOp,
    ins: &[Option<ValueInfo>],
    out: &OutInfo,
) -> OpResult<Box<dyn CpuKernel>> {
    let name = Op::Binary(b).name();
    let a = required(ins, 0, "A")?;
    let bb = required(ins, 1, "B")?;
    let mut fb = match b {
        BinaryOp::Add => FloatBin::Add,
        BinaryOp::Sub => FloatBin::Sub,
        BinaryOp::Mul => FloatBin::Mul,
        BinaryOp::Div => FloatBin::Div,
        BinaryOp::Pow => FloatBin::Pow,
        BinaryOp::Max => FloatBin::Max,
        BinaryOp::Min => FloatBin::Min,
        BinaryOp::Mod { fmod: true } => FloatBin::Fmod,
        BinaryOp::Mod { fmod: false } => FloatBin::PyMod,
        _ => op_bail!(
            "{name} produces bool; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants"
        ),
    };
    if !a.dtype.is_float() {
        op_bail!(
            "{name}: input 0 is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
            a.dtype
        );
    }
    // Pow's exponent may be a constant of another type: captured as f32.
    let mut const_b = None;
    if !bb.dtype.is_float() {
        match (b, bb.value) {
            (BinaryOp::Pow, Some(t)) => const_b = Some(t.to_f32_vec()),
            _ => op_bail!(
                "{name}: input 1 is {}; runtime tensors must be float32; int64 tensor inputs are only supported as boot-time constants",
                bb.dtype
            ),
        }
    }
    if fb == FloatBin::Pow {
        if let Some(t) = bb.value.filter(|t| t.numel() == 1) {
            match t.to_f32_vec().first().copied() {
                Some(2.0) => fb = FloatBin::Square,
                Some(0.5) => fb = FloatBin::SqrtPow,
                _ => {}
            }
        }
    }
    let inplace = if out.shape.as_slice() == a.shape {
        Some(0)
    } else if out.shape.as_slice() == bb.shape && const_b.is_none() {
        Some(1)
    } else {
        None
    };
    Ok(Box::new(BinaryKernel {
        op: fb,
        bc: Bcast::new(&[a.shape, bb.shape], &out.shape),
        inplace,
        const_b,
    }))
}

/// Where an operand of a binary kernel is read from during one run.
#[derive(Clone, Copy)]
enum Src<'a> {
    In(&'a [f32]),
    /// The output buffer itself (in-place): same layout as the output.
    Out,
}

struct BinaryKernel {
    op: FloatBin,
    bc: Bcast,
    inplace: Option<usize>,
    /// Pow exponent given as a non-float constant, converted at boot.
    const_b: Option<Vec<f32>>,
}

impl CpuKernel for BinaryKernel {
    fn inplace_input(&self) -> Option<usize> {
        self.inplace
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        match self.op {
            FloatBin::Add => self.exec::<AddF>(io, pool),
            FloatBin::Sub => self.exec::<SubF>(io, pool),
            FloatBin::Mul => self.exec::<MulF>(io, pool),
            FloatBin::Div => self.exec::<DivF>(io, pool),
            FloatBin::Pow => self.exec::<PowF>(io, pool),
            FloatBin::Square => self.exec::<SquareF>(io, pool),
            FloatBin::SqrtPow => self.exec::<SqrtPowF>(io, pool),
            FloatBin::Max => self.exec::<MaxF>(io, pool),
            FloatBin::Min => self.exec::<MinF>(io, pool),
            FloatBin::Fmod => self.exec::<FmodF>(io, pool),
            FloatBin::PyMod => self.exec::<PyModF>(io, pool),
        }
    }
}

impl BinaryKernel {
    fn exec<F: BinF>(&self, io: &StepIo<'_>, pool: &ThreadPool) {
        let ip = if io.is_inplace() { self.inplace } else { None };
        // Pointers of the operands not in place, taken before the output
        // view exists; an operand that is the very same tensor as the
        // in-place one (x op x) aliases the output too.
        let pa = (ip != Some(0)).then(|| io.input(0).as_ptr());
        let pb = match (&self.const_b, ip) {
            (Some(_), _) => None,
            (None, Some(1)) => None,
            (None, _) => Some(io.input(1).as_ptr()),
        };
        let out = io.output(0);
        let optr = out.as_ptr();
        let src = |k: usize, p: Option<*const f32>| -> Src<'_> {
            match p {
                None if ip == Some(k) => Src::Out,
                Some(p) if ip.is_some() && p == optr => Src::Out,
                _ => Src::In(io.input(k)),
            }
        };
        let sa = src(0, pa);
        let sb = match &self.const_b {
            Some(c) => Src::In(c),
            None => src(1, pb),
        };
        let ob = Buf::from_slice(out);
        let bc = &self.bc;
        let (ia, ib) = (bc.inner_stride(0), bc.inner_stride(1));
        par_chunks(pool, bc.len, GRAIN, &|s, e| {
            // SAFETY: par_chunks hands each task a disjoint [s, e) within
            // the output, which is valid for this run.
            let o = unsafe { buf_range(ob, s, e) };
            bc.segments::<2>(s, e, |start, n, [oa, obb]| {
                let row = &mut o[start - s..start - s + n];
                binary_piece::<F>(sa, oa, ia, sb, obb, ib, row);
            });
        });
    }
}

/// One row piece of a binary op; `sa`/`sb` are 0 (broadcast) or 1.
#[inline(always)]
fn binary_piece<F: BinF>(
    a: Src,
    oa: usize,
    sa: usize,
    b: Src,
    ob: usize,
    sb: usize,
    o: &mut [f32],
) {
    let n = o.len();
    match (a, b) {
        (Src::In(a), Src::In(b)) => match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                    *o = F::f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in o.iter_mut().zip(&b[ob..ob + n]) {
                    *o = F::f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in o.iter_mut().zip(&a[oa..oa + n]) {
                    *o = F::f(x, y);
                }
            }
            _ => {
                let v = F::f(a[oa], b[ob]);
                o.fill(v);
            }
        },
        (Src::Out, Src::In(b)) => {
            if sb == 1 {
                for (o, &y) in o.iter_mut().zip(&b[ob..ob + n]) {
                    *o = F::f(*o, y);
                }
            } else {
                let y = b[ob];
                for o in o.iter_mut() {
                    *o = F::f(*o, y);
                }
            }
        }
        (Src::In(a), Src::Out) => {
            if sa == 1 {
                for (o, &x) in o.iter_mut().zip(&a[oa..oa + n]) {
                    *o = F::f(x, *o);
                }
            } else {
                let x = a[oa];
                for o in o.iter_mut() {
                    *o = F::f(x, *o);
                }
            }
        }
        (Src::Out, Src::Out) => {
            for o in o.iter_mut() {
                *o = F::f(*o, *o);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum MapFn {
    Unary(UnaryOp),
    Act(Activation),
    ToF16,
    Copy,
}

/// Same-shape one-input ops (Unary, activations, Clip, float Cast).
struct MapKernel {
    f: MapFn,
    len: usize,
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

/// `y = a[c] * x + b[c]` per channel: inference-mode BatchNormalization.
struct ChannelAffineKernel {
    a: Vec<f32>,
    b: Vec<f32>,
    /// Elements per (n, c) plane.
    inner: usize,
    len: usize,
}

impl CpuKernel for ChannelAffineKernel {
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let x = (!io.is_inplace()).then(|| io.input(0));
        let ob = Buf::from_slice(io.output(0));
        let c = self.a.len();
        if c == 0 || self.inner == 0 {
            return;
        }
        par_chunks(pool, self.len.min(ob.len), GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            row_segments(s, e, self.inner, |row, col, n| {
                let ch = row % c;
                let (a, b) = (self.a[ch], self.b[ch]);
                let start = row * self.inner + col;
                let dst = &mut o[start - s..start - s + n];
                match x {
                    Some(x) => {
                        for (d, &v) in dst.iter_mut().zip(&x[start..start + n]) {
                            *d = a * v + b;
                        }
                    }
                    None => {
                        for d in dst.iter_mut() {
                            *d = a * *d + b;
                        }
                    }
                }
            });
        });
    }
}

/// `Where` with a boot-time condition and runtime X/Y.
struct WhereKernel {
    cond: Vec<bool>,
    bc: Bcast,
}

impl CpuKernel for WhereKernel {
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let (x, y) = (io.input(1), io.input(2));
        let ob = Buf::from_slice(io.output(0));
        let bc = &self.bc;
        let st = [bc.inner_stride(0), bc.inner_stride(1), bc.inner_stride(2)];
        par_chunks(pool, bc.len, GRAIN, &|s, e| {
            // SAFETY: disjoint [s, e) per task within the output buffer.
            let o = unsafe { buf_range(ob, s, e) };
            bc.segments::<3>(s, e, |start, n, offs| {
                where_piece(&self.cond, x, y, offs, st, &mut o[start - s..start - s + n]);
            });
        });
    }
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

fn tensor(dtype: DType, shape: Vec<usize>, data: TensorData) -> Tensor {
    Tensor { dtype, shape, data }
}

fn data_mismatch(what: &str, t: &Tensor) -> OpError {
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

/// Where's condition as bools (integer conditions: nonzero is true).
fn cond_bools(t: &Tensor) -> OpResult<Vec<bool>> {
    match &t.data {
        TensorData::Bool(v) => Ok(v.clone()),
        TensorData::I64(v) => Ok(v.iter().map(|&c| c != 0).collect()),
        TensorData::F32(_) => Err(data_mismatch("Where condition (input 0)", t)),
    }
}

fn eval_where<T: Copy + Default>(bc: &Bcast, c: &[bool], x: &[T], y: &[T]) -> Vec<T> {
    let mut out = vec![T::default(); bc.len];
    let st = [bc.inner_stride(0), bc.inner_stride(1), bc.inner_stride(2)];
    bc.segments::<3>(0, bc.len, |start, n, offs| {
        where_piece(c, x, y, offs, st, &mut out[start..start + n]);
    });
    out
}

fn cast_data(d: &TensorData, to: DType) -> TensorData {
    match (d, to.storage()) {
        (TensorData::F32(v), Storage::F32) => TensorData::F32(if to == DType::F16 {
            v.iter().map(|&x| round_to_f16(x)).collect()
        } else {
            v.clone()
        }),
        (TensorData::F32(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| wrap_int(to, x as i64)).collect())
        }
        (TensorData::F32(v), Storage::Bool) => {
            TensorData::Bool(v.iter().map(|&x| x != 0.0).collect())
        }
        (TensorData::I64(v), Storage::F32) => TensorData::F32(
            v.iter()
                .map(|&x| {
                    let f = x as f32;
                    if to == DType::F16 {
                        round_to_f16(f)
                    } else {
                        f
                    }
                })
                .collect(),
        ),
        (TensorData::I64(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| wrap_int(to, x)).collect())
        }
        (TensorData::I64(v), Storage::Bool) => {
            TensorData::Bool(v.iter().map(|&x| x != 0).collect())
        }
        (TensorData::Bool(v), Storage::F32) => {
            TensorData::F32(v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect())
        }
        (TensorData::Bool(v), Storage::I64) => {
            TensorData::I64(v.iter().map(|&x| x as i64).collect())
        }
        (TensorData::Bool(v), Storage::Bool) => TensorData::Bool(v.clone()),
    }
}

/// Integer power with wrapping, C++-style for negative exponents (the f64
/// result truncated, as ONNX Runtime does).
fn int_pow(base: i64, exp: i64) -> i64 {
    if exp < 0 {
        return (base as f64).powf(exp as f64) as i64;
    }
    let (mut b, mut e, mut r) = (base, exp as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

fn int_arith(b: BinaryOp, x: i64, y: i64) -> OpResult<i64> {
    Ok(match b {
        BinaryOp::Add => x.wrapping_add(y),
        BinaryOp::Sub => x.wrapping_sub(y),
        BinaryOp::Mul => x.wrapping_mul(y),
        BinaryOp::Div => {
            if y == 0 {
                op_bail!("integer division by zero ({x} / 0)");
            }
            x.wrapping_div(y)
        }
        BinaryOp::Mod { fmod } => {
            if y == 0 {
                op_bail!("integer modulo by zero ({x} mod 0)");
            }
            let r = x.wrapping_rem(y);
            if !fmod && r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }
        }
        BinaryOp::Pow => int_pow(x, y),
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
        _ => op_bail!("{:?} is not an arithmetic op", b),
    })
}

fn compare<T: PartialOrd>(b: BinaryOp, x: T, y: T) -> bool {
    match b {
        BinaryOp::Equal => x == y,
        BinaryOp::Less => x < y,
        BinaryOp::LessOrEqual => x <= y,
        BinaryOp::Greater => x > y,
        BinaryOp::GreaterOrEqual => x >= y,
        _ => false,
    }
}

fn eval_binary(
    b: BinaryOp,
    x: &Tensor,
    y: &Tensor,
    out: DType,
    bc: &Bcast,
) -> OpResult<TensorData> {
    use TensorData as D;
    Ok(match (&x.data, &y.data) {
        (D::Bool(p), D::Bool(q)) => D::Bool(bc.map2(p, q, |a, c| {
            Ok(match b {
                BinaryOp::And => a && c,
                BinaryOp::Or => a || c,
                BinaryOp::Xor => a != c,
                _ => a == c,
            })
        })?),
        (D::I64(p), D::I64(q)) if is_compare(b) => {
            D::Bool(bc.map2(p, q, |a, c| Ok(compare(b, a, c)))?)
        }
        (D::F32(p), D::F32(q)) if is_compare(b) => {
            D::Bool(bc.map2(p, q, |a, c| Ok(compare(b, a, c)))?)
        }
        (D::I64(p), D::I64(q)) => {
            D::I64(bc.map2(p, q, |a, c| Ok(wrap_int(out, int_arith(b, a, c)?)))?)
        }
        // Pow with mixed types: the result keeps the base's type.
        (D::I64(p), D::F32(q)) if b == BinaryOp::Pow => D::I64(bc.map2(p, q, |a, c| {
            Ok(wrap_int(out, (a as f64).powf(c as f64) as i64))
        })?),
        (D::F32(p), D::I64(q)) if b == BinaryOp::Pow => {
            D::F32(bc.map2(p, q, |a, c| Ok(a.powf(c as f32)))?)
        }
        _ => op_bail!(
            "{} cannot combine {} and {} inputs",
            Op::Binary(b).name(),
            x.dtype,
            y.dtype
        ),
    })
}

/// Clip's float bounds (attributes or constant inputs), for another backend.
pub(crate) fn clip_bounds(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(f32, f32)> {
    clip_bounds_f32(op, ins)
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

    fn run_eval(op: &Op, ins: &[&Tensor]) -> Tensor {
        let ins: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        ops::eval(op, &ins).unwrap().remove(0)
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + w.abs()) || g == w;
            assert!(ok, "element {i}: got {g}, want {w} ({got:?} vs {want:?})");
        }
    }

    /// Runs the lowered kernel with runtime (non-constant) inputs, on a
    /// pool of `threads`, optionally in place.
    fn run_kernel(op: &Op, ins: &[Tensor], threads: usize, inplace: bool) -> Vec<f32> {
        let infos: Vec<Option<ValueInfo>> = ins
            .iter()
            .map(|t| {
                Some(ValueInfo {
                    dtype: t.dtype,
                    shape: &t.shape,
                    value: if t.dtype.is_float() { None } else { Some(t) },
                })
            })
            .collect();
        let outs = infer(op, &infos).unwrap();
        let k = lower(op, &infos, &outs).unwrap();
        let mut bufs: Vec<Vec<f32>> = ins.iter().map(|t| t.to_f32_vec()).collect();
        let olen = numel(&outs[0].shape);
        let mut out = vec![f32::NAN; olen];
        let pool = ThreadPool::new(threads);
        let mut scratch = vec![0.0; k.scratch_len()];
        if inplace {
            let i = k.inplace_input().expect("kernel offers no in-place input");
            assert_eq!(bufs[i].len(), olen);
            let in_raw: Vec<Buf> = bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
            let out_raw = [in_raw[i]];
            // SAFETY: output 0 is exactly the in-place input's buffer.
            let io = unsafe { StepIo::new(&in_raw, &out_raw, true) };
            k.run(&io, &mut scratch, &pool);
            return bufs[i].clone();
        }
        let in_raw: Vec<Buf> = bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
        let out_raw = [Buf::from_slice(&mut out)];
        // SAFETY: distinct live buffers.
        let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
        k.run(&io, &mut scratch, &pool);
        out
    }

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    /// Naive broadcast reference over explicit indices.
    fn naive_bcast(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
        let out = broadcast_shapes(&a.shape, &b.shape).unwrap();
        let (av, bv) = (a.to_f32_vec(), b.to_f32_vec());
        let (sa, sb) = (
            broadcast_strides(&a.shape, &out),
            broadcast_strides(&b.shape, &out),
        );
        let n = numel(&out);
        let mut r = Vec::with_capacity(n);
        for flat in 0..n {
            let (mut rem, mut ia, mut ib) = (flat, 0, 0);
            for d in (0..out.len()).rev() {
                let i = rem % out[d];
                rem /= out[d];
                ia += i * sa[d];
                ib += i * sb[d];
            }
            r.push(f(av[ia], bv[ib]));
        }
        r
    }

    #[test]
    fn binary_kernel_matches_naive_broadcast_for_every_pattern() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[2, 3, 4]),       // same shape
            (&[2, 3, 4], &[]),              // scalar
            (&[1], &[5, 7]),                // scalar first
            (&[2, 3, 4, 5], &[3, 1, 1]),    // per channel
            (&[2, 3, 4, 5], &[1, 3, 1, 1]), // per channel, 4-D
            (&[4, 5], &[5]),                // row vector
            (&[3, 1], &[1, 4]),             // outer product
            (&[2, 1, 4, 1], &[3, 1, 6]),    // general
            (&[1, 3, 1, 5], &[2, 1, 4, 1]), // general both ways
            (&[2, 0, 3], &[3]),             // empty
        ];
        for &(sa, sb) in cases {
            let a = f32t(
                sa,
                &iota(numel(sa))
                    .iter()
                    .map(|x| x * 0.5 - 3.0)
                    .collect::<Vec<_>>(),
            );
            let b = f32t(
                sb,
                &iota(numel(sb)).iter().map(|x| x + 1.0).collect::<Vec<_>>(),
            );
            for threads in [1, 3] {
                let got = run_kernel(
                    &Op::Binary(BinaryOp::Sub),
                    &[a.clone(), b.clone()],
                    threads,
                    false,
                );
                assert_eq!(got, naive_bcast(&a, &b, |x, y| x - y), "{sa:?} - {sb:?}");
                let got = run_kernel(
                    &Op::Binary(BinaryOp::Div),
                    &[b.clone(), a.clone()],
                    threads,
                    false,
                );
                assert_close(&got, &naive_bcast(&b, &a, |x, y| x / y), 1e-6);
            }
        }
    }

    #[test]
    fn large_binary_splits_over_threads() {
        let n = 3 * GRAIN + 17;
        let a = f32t(&[n], &iota(n));
        let b = f32t(&[1, n], &iota(n));
        let got = run_kernel(
            &Op::Binary(BinaryOp::Add),
            &[a.clone(), b.clone()],
            4,
            false,
        );
        assert_eq!(got, naive_bcast(&a, &b, |x, y| x + y));
        let got = run_kernel(&Op::Act(Activation::Relu), &[f32t(&[n], &iota(n))], 4, true);
        assert_eq!(got, iota(n));
    }

    #[test]
    fn binary_in_place_on_either_input() {
        let a = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let c = f32t(&[3], &[10., 20., 30.]);
        // Output equals input 0's shape: in place on input 0.
        let got = run_kernel(&Op::Binary(BinaryOp::Sub), &[a.clone(), c.clone()], 1, true);
        assert_eq!(got, vec![-9., -18., -27., -6., -15., -24.]);
        // Output equals input 1's shape only: in place on input 1.
        let got = run_kernel(&Op::Binary(BinaryOp::Sub), &[c.clone(), a.clone()], 2, true);
        assert_eq!(got, vec![9., 18., 27., 6., 15., 24.]);
    }

    #[test]
    fn in_place_with_the_same_tensor_on_both_inputs() {
        // x * x where the planner put the output on x's buffer.
        let k = lower(
            &Op::Binary(BinaryOp::Mul),
            &[
                Some(ValueInfo {
                    dtype: DType::F32,
                    shape: &[4],
                    value: None,
                }),
                Some(ValueInfo {
                    dtype: DType::F32,
                    shape: &[4],
                    value: None,
                }),
            ],
            &[OutInfo {
                dtype: DType::F32,
                shape: vec![4],
            }],
        )
        .unwrap();
        let mut x = vec![1.0f32, -2.0, 3.0, 0.5];
        let b = Buf::from_slice(&mut x);
        let ins = [b, b];
        let outs = [b];
        // SAFETY: output 0 is the in-place input's buffer (input 0 == input 1).
        let io = unsafe { StepIo::new(&ins, &outs, true) };
        k.run(&io, &mut [], &ThreadPool::new(1));
        assert_eq!(x, vec![1.0, 4.0, 9.0, 0.25]);
    }

    #[test]
    fn float_pow_mod_max_min_follow_numpy() {
        let a = f32t(&[6], &[-7.5, -3.0, 0.0, 2.0, 5.5, f32::NAN]);
        let b = f32t(&[6], &[2.0, -2.0, 3.0, 0.5, -4.0, 1.0]);
        let r = |op| run_eval(&Op::Binary(op), &[&a, &b]).to_f32_vec();
        // numpy: np.mod, np.fmod, np.maximum, np.minimum, np.power
        assert_close(
            &r(BinaryOp::Mod { fmod: false }),
            &[0.5, -1.0, 0.0, 0.0, -2.5, f32::NAN],
            1e-6,
        );
        assert_close(
            &r(BinaryOp::Mod { fmod: true }),
            &[-1.5, -1.0, 0.0, 0.0, 1.5, f32::NAN],
            1e-6,
        );
        assert_close(
            &r(BinaryOp::Max),
            &[2.0, -2.0, 3.0, 2.0, 5.5, f32::NAN],
            0.0,
        );
        assert_close(
            &r(BinaryOp::Min),
            &[-7.5, -3.0, 0.0, 0.5, -4.0, f32::NAN],
            0.0,
        );
        assert_close(
            &r(BinaryOp::Pow),
            &[
                56.25,
                0.111_111_11,
                0.0,
                std::f32::consts::SQRT_2,
                0.001_092_821_6,
                f32::NAN,
            ],
            1e-5,
        );
        // Constant scalar exponents take the specialised paths.
        for (e, want) in [
            (2.0f32, [4.0f32, 0.25, 9.0]),
            (0.5, [2.0, 0.707_106_77, 3.0]),
        ] {
            let x = f32t(
                &[3],
                &[
                    if e == 2.0 { -2.0 } else { 4.0 },
                    0.5,
                    if e == 2.0 { 3.0 } else { 9.0 },
                ],
            );
            let got = run_eval(&Op::Binary(BinaryOp::Pow), &[&x, &f32t(&[], &[e])]);
            assert_close(got.as_f32().unwrap(), &want, 1e-6);
        }
        // Integer exponent on a float base.
        let got = run_eval(
            &Op::Binary(BinaryOp::Pow),
            &[&f32t(&[2], &[1.5, -2.0]), &i64t(&[], &[3])],
        );
        assert_eq!(got.as_f32().unwrap(), &[3.375, -8.0]);
    }

    #[test]
    fn integer_arithmetic_follows_onnx() {
        let a = i64t(&[6], &[7, -7, 7, -7, 0, 9]);
        let b = i64t(&[6], &[2, 2, -2, -2, 3, 3]);
        let r = |op| run_eval(&Op::Binary(op), &[&a, &b]).to_i64_vec();
        assert_eq!(r(BinaryOp::Div), vec![3, -3, -3, 3, 0, 3]);
        assert_eq!(r(BinaryOp::Mod { fmod: false }), vec![1, 1, -1, -1, 0, 0]);
        assert_eq!(r(BinaryOp::Mod { fmod: true }), vec![1, -1, 1, -1, 0, 0]);
        assert_eq!(r(BinaryOp::Pow), vec![49, 49, 0, 0, 0, 729]);
        assert_eq!(r(BinaryOp::Add), vec![9, -5, 5, -9, 3, 12]);
        assert_eq!(r(BinaryOp::Max), vec![7, 2, 7, -2, 3, 9]);
        // Broadcasting on ints: [2,1] * [3].
        let got = run_eval(
            &Op::Binary(BinaryOp::Mul),
            &[&i64t(&[2, 1], &[2, 3]), &i64t(&[3], &[1, 2, 3])],
        );
        assert_eq!(got.shape, vec![2, 3]);
        assert_eq!(got.to_i64_vec(), vec![2, 4, 6, 3, 6, 9]);
        // int32 wraps like numpy.
        let x = i64t(&[1], &[i32::MAX as i64]).with_dtype(DType::I32);
        let got = run_eval(&Op::Binary(BinaryOp::Add), &[&x, &x.clone()]);
        assert_eq!(got.dtype, DType::I32);
        assert_eq!(got.to_i64_vec(), vec![-2]);
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        for op in [
            BinaryOp::Div,
            BinaryOp::Mod { fmod: false },
            BinaryOp::Mod { fmod: true },
        ] {
            let e = ops::eval(
                &Op::Binary(op),
                &[Some(&i64t(&[2], &[1, 2])), Some(&i64t(&[2], &[1, 0]))],
            );
            assert!(e.unwrap_err().0.contains("by zero"));
        }
    }

    #[test]
    fn comparisons_and_logic_produce_bool() {
        let a = i64t(&[2, 2], &[1, 2, 3, 4]);
        let b = i64t(&[2], &[2, 2]);
        let r = |op| run_eval(&Op::Binary(op), &[&a, &b]);
        assert_eq!(
            r(BinaryOp::Equal).as_bool().unwrap(),
            &[false, true, false, false]
        );
        assert_eq!(
            r(BinaryOp::Less).as_bool().unwrap(),
            &[true, false, false, false]
        );
        assert_eq!(
            r(BinaryOp::LessOrEqual).as_bool().unwrap(),
            &[true, true, false, false]
        );
        assert_eq!(
            r(BinaryOp::Greater).as_bool().unwrap(),
            &[false, false, true, true]
        );
        assert_eq!(
            r(BinaryOp::GreaterOrEqual).as_bool().unwrap(),
            &[false, true, true, true]
        );
        let f = run_eval(
            &Op::Binary(BinaryOp::Less),
            &[&f32t(&[2], &[0.5, f32::NAN]), &f32t(&[], &[1.0])],
        );
        assert_eq!(f.dtype, DType::Bool);
        assert_eq!(f.as_bool().unwrap(), &[true, false]);
        let p = Tensor::from_bool(vec![4], vec![true, true, false, false]);
        let q = Tensor::from_bool(vec![4], vec![true, false, true, false]);
        let l = |op| {
            run_eval(&Op::Binary(op), &[&p, &q])
                .as_bool()
                .unwrap()
                .to_vec()
        };
        assert_eq!(l(BinaryOp::And), vec![true, false, false, false]);
        assert_eq!(l(BinaryOp::Or), vec![true, true, true, false]);
        assert_eq!(l(BinaryOp::Xor), vec![false, true, true, false]);
        assert_eq!(l(BinaryOp::Equal), vec![true, false, false, true]);
        let n = run_eval(&Op::Unary(UnaryOp::Not), &[&p]);
        assert_eq!(n.as_bool().unwrap(), &[false, false, true, true]);
    }

    #[test]
    fn runtime_non_float_is_rejected() {
        let i = ValueInfo {
            dtype: DType::I64,
            shape: &[2],
            value: None,
        };
        let e = lower(
            &Op::Binary(BinaryOp::Add),
            &[Some(i), Some(i)],
            &[OutInfo {
                dtype: DType::I64,
                shape: vec![2],
            }],
        )
        .err()
        .unwrap();
        assert!(e.0.contains("runtime tensors must be float32"), "{}", e.0);
        let f = ValueInfo {
            dtype: DType::F32,
            shape: &[2],
            value: None,
        };
        let e = lower(
            &Op::Binary(BinaryOp::Less),
            &[Some(f), Some(f)],
            &[OutInfo {
                dtype: DType::Bool,
                shape: vec![2],
            }],
        )
        .err()
        .unwrap();
        assert!(e.0.contains("runtime tensors must be float32"), "{}", e.0);
    }

    #[test]
    fn broadcast_mismatch_names_both_shapes() {
        let a = ValueInfo {
            dtype: DType::F32,
            shape: &[2, 3],
            value: None,
        };
        let b = ValueInfo {
            dtype: DType::F32,
            shape: &[4],
            value: None,
        };
        let e = infer(&Op::Binary(BinaryOp::Add), &[Some(a), Some(b)]).unwrap_err();
        assert!(e.0.contains("2x3") && e.0.contains('4'), "{}", e.0);
        let a = ValueInfo {
            dtype: DType::F32,
            shape: &[1 << 40, 1],
            value: None,
        };
        let b = ValueInfo {
            dtype: DType::F32,
            shape: &[1 << 40],
            value: None,
        };
        let e = infer(&Op::Binary(BinaryOp::Add), &[Some(a), Some(b)]).unwrap_err();
        assert!(e.0.contains("overflows"), "{}", e.0);
    }

    #[test]
    fn unary_ops_match_numpy() {
        let x = f32t(&[6], &[-2.5, -0.5, 0.0, 0.5, 1.5, 2.5]);
        let r = |u| run_eval(&Op::Unary(u), &[&x]).to_f32_vec();
        assert_eq!(r(UnaryOp::Round), vec![-2.0, -0.0, 0.0, 0.0, 2.0, 2.0]);
        assert_eq!(r(UnaryOp::Floor), vec![-3.0, -1.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(r(UnaryOp::Ceil), vec![-2.0, -0.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(r(UnaryOp::Sign), vec![-1.0, -1.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(r(UnaryOp::Abs), vec![2.5, 0.5, 0.0, 0.5, 1.5, 2.5]);
        assert_eq!(r(UnaryOp::Neg), vec![2.5, 0.5, -0.0, -0.5, -1.5, -2.5]);
        // scipy.special.erf / np.exp / np.sin
        assert_close(
            &r(UnaryOp::Erf),
            &[
                -0.999_593,
                -0.520_499_9,
                0.0,
                0.520_499_9,
                0.966_105_16,
                0.999_593,
            ],
            1e-7,
        );
        assert_close(
            &r(UnaryOp::Exp),
            &[
                0.082_085,
                0.606_530_66,
                1.0,
                1.648_721_3,
                4.481_689,
                12.182_494,
            ],
            1e-6,
        );
        assert_close(
            &r(UnaryOp::Sin),
            &[
                -0.598_472_1,
                -0.479_425_55,
                0.0,
                0.479_425_55,
                0.997_495,
                0.598_472_1,
            ],
            1e-6,
        );
        assert_close(
            &r(UnaryOp::Cos),
            &[
                -0.801_143_6,
                0.877_582_6,
                1.0,
                0.877_582_6,
                0.070_737_2,
                -0.801_143_6,
            ],
            1e-6,
        );
        assert_close(
            &r(UnaryOp::Reciprocal),
            &[-0.4, -2.0, f32::INFINITY, 2.0, 0.666_666_7, 0.4],
            1e-6,
        );
        let p = f32t(&[3], &[4.0, 1.0, -1.0]);
        assert_close(
            &run_eval(&Op::Unary(UnaryOp::Sqrt), &[&p]).to_f32_vec(),
            &[2.0, 1.0, f32::NAN],
            0.0,
        );
        assert_close(
            &run_eval(&Op::Unary(UnaryOp::Log), &[&p]).to_f32_vec(),
            &[1.386_294_4, 0.0, f32::NAN],
            1e-6,
        );
        // erf tail and tiny arguments
        assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-14);
        assert!((erf(1e-4) - 1.128_379_163_334_248_9e-4).abs() < 1e-18);
        assert!((erf(0.7) - 0.677_801_193_837_418_5).abs() < 1e-14);
        assert!((erf(2.4) - 0.999_311_486_103_355).abs() < 1e-14);
        assert!((erf(2.5) - 0.999_593_047_982_555).abs() < 1e-14);
        assert!((erf(-5.9) + 0.999_999_999_999_999_9).abs() < 1e-15);
        let i = run_eval(&Op::Unary(UnaryOp::Neg), &[&i64t(&[2], &[3, -4])]);
        assert_eq!(i.to_i64_vec(), vec![-3, 4]);
        let i = run_eval(&Op::Unary(UnaryOp::Abs), &[&i64t(&[2], &[3, -4])]);
        assert_eq!(i.to_i64_vec(), vec![3, 4]);
    }

    #[test]
    fn activations_and_clip() {
        let x = f32t(&[5], &[-2.0, -0.5, 0.0, 0.5, 3.0]);
        let got = run_eval(&Op::Act(Activation::LeakyRelu(0.1)), &[&x]);
        assert_close(got.as_f32().unwrap(), &[-0.2, -0.05, 0.0, 0.5, 3.0], 1e-7);
        let got = run_kernel(
            &Op::Act(Activation::Sigmoid),
            std::slice::from_ref(&x),
            1,
            true,
        );
        assert_close(
            &got,
            &[0.119_202_92, 0.377_540_67, 0.5, 0.622_459_3, 0.952_574_13],
            1e-6,
        );
        // Clip from attributes, from constant inputs, and with one bound absent.
        let got = run_eval(
            &Op::Clip {
                min: Some(-1.0),
                max: Some(1.0),
            },
            &[&x],
        );
        assert_eq!(got.as_f32().unwrap(), &[-1.0, -0.5, 0.0, 0.5, 1.0]);
        let ins = [Some(&x), None, Some(&f32t(&[], &[0.25]))];
        let got = ops::eval(
            &Op::Clip {
                min: None,
                max: None,
            },
            &ins,
        )
        .unwrap()
        .remove(0);
        assert_eq!(got.as_f32().unwrap(), &[-2.0, -0.5, 0.0, 0.25, 0.25]);
        let xi = i64t(&[4], &[-5, 0, 5, 10]);
        let ins = [Some(&xi), Some(&i64t(&[], &[0])), Some(&i64t(&[], &[6]))];
        let got = ops::eval(
            &Op::Clip {
                min: None,
                max: None,
            },
            &ins,
        )
        .unwrap()
        .remove(0);
        assert_eq!(got.to_i64_vec(), vec![0, 0, 5, 6]);
        // A runtime bound is an error naming the input.
        let v = ValueInfo {
            dtype: DType::F32,
            shape: &[],
            value: None,
        };
        let e = infer(
            &Op::Clip {
                min: None,
                max: None,
            },
            &[Some(v), Some(v)],
        )
        .unwrap_err();
        assert!(e.0.contains("min (input 1)"), "{}", e.0);
    }

    #[test]
    fn cast_between_all_storages() {
        let f = f32t(&[5], &[-2.7, -0.0, 0.5, 3.9, f32::NAN]);
        let to = |t: &Tensor, d| run_eval(&Op::Cast { to: d }, &[t]);
        assert_eq!(to(&f, DType::I64).to_i64_vec(), vec![-2, 0, 0, 3, 0]);
        assert_eq!(
            to(&f, DType::Bool).as_bool().unwrap(),
            &[true, false, true, true, true]
        );
        let big = f32t(&[3], &[300.0, -1.0, 70000.0]);
        assert_eq!(to(&big, DType::U8).to_i64_vec(), vec![44, 255, 112]);
        let b = Tensor::from_bool(vec![2], vec![true, false]);
        assert_eq!(to(&b, DType::F32).as_f32().unwrap(), &[1.0, 0.0]);
        assert_eq!(to(&b, DType::I32).to_i64_vec(), vec![1, 0]);
        let i = i64t(&[3], &[1 << 40, -1, 0]);
        assert_eq!(to(&i, DType::I32).to_i64_vec(), vec![0, -1, 0]);
        assert_eq!(to(&i, DType::Bool).as_bool().unwrap(), &[true, true, false]);
        let h = to(
            &f32t(&[5], &[0.1, 65519.0, 65520.0, 1e-7, 3.0e-8]),
            DType::F16,
        );
        assert_eq!(h.dtype, DType::F16);
        // np.float32(np.float16(x))
        assert_eq!(
            h.as_f32().unwrap(),
            &[
                0.099_975_586,
                65504.0,
                f32::INFINITY,
                1.192_092_9e-7,
                5.960_464_5e-8
            ]
        );
        let d = to(&i64t(&[1], &[2049]), DType::F16);
        assert_eq!(d.as_f32().unwrap(), &[2048.0]);
        let d = to(&f, DType::F64);
        assert_eq!(d.dtype, DType::F64);
        assert_eq!(d.as_f32().unwrap()[0], -2.7);
    }

    #[test]
    fn where_broadcasts_three_inputs() {
        let c = Tensor::from_bool(vec![2, 1], vec![true, false]);
        let x = f32t(&[3], &[1.0, 2.0, 3.0]);
        let y = f32t(&[2, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
        let got = run_eval(&Op::Where, &[&c, &x, &y]);
        assert_eq!(got.shape, vec![2, 3]);
        assert_eq!(got.as_f32().unwrap(), &[1.0, 2.0, 3.0, -4.0, -5.0, -6.0]);
        let got = run_kernel(&Op::Where, &[c.clone(), x.clone(), y.clone()], 2, false);
        assert_eq!(got, vec![1.0, 2.0, 3.0, -4.0, -5.0, -6.0]);
        let xi = i64t(&[], &[7]);
        let yi = i64t(&[2], &[0, 1]);
        let got = run_eval(&Op::Where, &[&c, &xi, &yi]);
        assert_eq!(got.shape, vec![2, 2]);
        assert_eq!(got.to_i64_vec(), vec![7, 7, 0, 1]);
        // Integer condition: nonzero is true.
        let ci = i64t(&[2], &[0, 3]);
        let got = run_eval(&Op::Where, &[&ci, &xi, &yi]);
        assert_eq!(got.to_i64_vec(), vec![0, 7]);
    }

    #[test]
    fn batchnorm_folds_to_per_channel_affine() {
        let x = f32t(&[2, 2, 3], &iota(12));
        let scale = f32t(&[2], &[1.0, 2.0]);
        let bias = f32t(&[2], &[0.5, -1.0]);
        let mean = f32t(&[2], &[1.0, 3.0]);
        let var = f32t(&[2], &[4.0, 0.25]);
        let op = Op::BatchNormalization { epsilon: 1e-5 };
        let got = run_eval(&op, &[&x, &scale, &bias, &mean, &var]);
        let mut want = Vec::new();
        let xv = iota(12);
        for n in 0..2 {
            for c in 0..2 {
                let (s, b, m, v) = (
                    [1.0f32, 2.0][c],
                    [0.5f32, -1.0][c],
                    [1.0f32, 3.0][c],
                    [4.0f32, 0.25][c],
                );
                for i in 0..3 {
                    want.push(s * (xv[n * 6 + c * 3 + i] - m) / (v + 1e-5).sqrt() + b);
                }
            }
        }
        assert_close(got.as_f32().unwrap(), &want, 1e-6);
        // Runtime X in place; non-constant statistics are rejected.
        let xi = ValueInfo {
            dtype: DType::F32,
            shape: &x.shape,
            value: None,
        };
        let cs: Vec<Option<ValueInfo>> = [&scale, &bias, &mean, &var]
            .iter()
            .map(|t| Some(ValueInfo::of(t)))
            .collect();
        let mut ins = vec![Some(xi)];
        ins.extend(cs);
        let outs = infer(&op, &ins).unwrap();
        assert_eq!(lower(&op, &ins, &outs).unwrap().inplace_input(), Some(0));
        ins[4] = Some(ValueInfo {
            dtype: DType::F32,
            shape: &[2],
            value: None,
        });
        let e = lower(&op, &ins, &outs).err().unwrap();
        assert!(e.0.contains("input_var (input 4)"), "{}", e.0);
    }
}
