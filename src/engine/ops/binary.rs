//! Binary element-wise ops with numpy broadcasting: arithmetic,
//! comparisons and logic. Comparisons and logic produce bool tensors and run
//! at boot only; arithmetic runs on the CPU and GPU.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::elementwise::*;
use super::OpDef;
// The family's shared helpers and the engine's types, as globs: each op
// file uses a different handful of them.
#[allow(unused_imports)]
use super::*;
use super::{required, OutInfo, ValueInfo};
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::CudaError;
#[allow(unused_imports)]
use crate::engine::cpu::pool::*;
use crate::engine::cpu::pool::{buf_range, par_chunks, GRAIN};
#[allow(unused_imports)]
use crate::engine::cpu::*;
use crate::engine::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
#[allow(unused_imports)]
use crate::engine::error::*;
#[allow(unused_imports)]
use crate::engine::ir::*;
use crate::engine::ir::{BinaryOp, Op};
#[allow(unused_imports)]
use crate::engine::tensor::*;
use crate::engine::tensor::{DType, Storage, Tensor, TensorData};
use crate::op_bail;

pub struct Binary;

impl OpDef for Binary {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
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
            _ => op_bail!("{} is not a binary op", op.name()),
        }
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
        let outs = self.infer(op, &infos)?;
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
            _ => op_bail!("{} is not a binary op", op.name()),
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
        if let Op::Binary(b @ (BinaryOp::Div | BinaryOp::Mod { .. })) = op {
            if out.dtype.storage() == Storage::I64 {
                return lower_int_div_mod(*b, ins, out);
            }
        }
        if let Op::Binary(b) = op {
            let exact = out.dtype.storage() == Storage::Bool
                || (out.dtype.storage() == Storage::I64
                    && matches!(b, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul));
            if exact {
                return lower_exact(*b, ins, out);
            }
        }
        check_runtime_float(op, ins, outs)?;
        match op {
            Op::Binary(b) => lower_binary(*b, ins, out),
            _ => op_bail!("{} is not a binary op", op.name()),
        }
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let out0 = n.out0();
        let out_shape = n.out_shape.clone();
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let Op::Binary(b) = op else {
            return Err(refuse(op, "is not a binary op"));
        };
        let code = binary_code(*b).ok_or_else(|| refuse(op, "only arithmetic runs on the GPU"))?;
        if !cx.graph().tensors[out0].dtype.is_float() {
            return Err(refuse(
                op,
                "integer arithmetic at run time runs on the CPU only",
            ));
        }
        let (Some(a), Some(bb)) = (inp(0), inp(1)) else {
            return Err(refuse(op, "needs two inputs"));
        };
        let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(bb).to_vec());
        let (ap, bp, op_) = (cx.ptr(a)?, cx.ptr(bb)?, cx.ptr(out0)?);
        v.push(binary(op_, ap, bp, &out_shape, &sa, &sb, code)?);
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// infer
// ---------------------------------------------------------------------------

pub(super) fn is_compare(b: BinaryOp) -> bool {
    matches!(
        b,
        BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessOrEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual
    )
}

pub(super) fn is_logic(b: BinaryOp) -> bool {
    matches!(b, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
}

// ---------------------------------------------------------------------------
// f32 element functions: the one definition each kernel and fold uses
// ---------------------------------------------------------------------------

pub(super) trait BinF {
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

// Integers held as f32 (exact below 2^24): truncating division, in f64 so
// that the quotient is never rounded up to the next integer.
binf!(IntDivF, |a, b| ((a as f64) / (b as f64)).trunc() as f32);

binf!(PyModF, |a, b| py_mod_f32(a, b));

// Comparisons and logic on run-time values: bools are held as 1.0 / 0.0.
binf!(EqF, |a, b| (a == b) as u8 as f32);

binf!(LtF, |a, b| (a < b) as u8 as f32);

binf!(LeF, |a, b| (a <= b) as u8 as f32);

binf!(GtF, |a, b| (a > b) as u8 as f32);

binf!(GeF, |a, b| (a >= b) as u8 as f32);

binf!(AndF, |a, b| (a != 0.0 && b != 0.0) as u8 as f32);

binf!(OrF, |a, b| (a != 0.0 || b != 0.0) as u8 as f32);

binf!(XorF, |a, b| ((a != 0.0) != (b != 0.0)) as u8 as f32);

/// numpy `mod` for floats: the result takes the divisor's sign.
#[inline(always)]
pub(super) fn py_mod_f32(a: f32, b: f32) -> f32 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

/// The f32 binary ops the kernel runs (specialised exponents included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FloatBin {
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
    /// Integer `Div` on run-time integers held as f32.
    IntDiv,
    /// Comparisons and logic giving run-time bools held as 1.0 / 0.0.
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

/// `Div` and `Mod` on run-time integers (held as exact f32 values, see
/// `ops::runs_on_integers`): NMS-free heads split a flat TopK index into
/// anchor and class with them. The dividend must be a run-time tensor; the
/// divisor a run-time tensor or a non-zero constant. On exact integers the
/// f32 remainders equal the integer ones.
fn lower_int_div_mod(
    b: BinaryOp,
    ins: &[Option<ValueInfo>],
    out: &OutInfo,
) -> OpResult<Box<dyn CpuKernel>> {
    let name = Op::Binary(b).name();
    let a = required(ins, 0, "A")?;
    let bb = required(ins, 1, "B")?;
    if a.value.is_some() {
        op_bail!(
            "{name}: a {} constant divided by a run-time tensor is not supported",
            a.dtype
        );
    }
    let const_b = match bb.value {
        Some(t) => {
            let v = t.to_i64_vec();
            if let Some(bad) = v.iter().find(|&&x| x == 0 || x.unsigned_abs() > 1 << 24) {
                op_bail!("{name}: integer divisor {bad} (input 1) is zero or above 2^24");
            }
            Some(v.into_iter().map(|x| x as f32).collect())
        }
        None => None,
    };
    let op = match b {
        BinaryOp::Div => FloatBin::IntDiv,
        BinaryOp::Mod { fmod: true } => FloatBin::Fmod,
        _ => FloatBin::PyMod,
    };
    Ok(Box::new(BinaryKernel {
        op,
        bc: Bcast::new(&[a.shape, bb.shape], &out.shape),
        inplace: (out.shape.as_slice() == a.shape).then_some(0),
        const_b,
    }))
}

/// Comparisons and logic at run time (bool outputs held as 1.0 / 0.0),
/// and `Add`/`Sub`/`Mul` on run-time integers held as exact f32 values:
/// RT-DETR's export floors a TopK index divided by the class count with
/// `Div`, `Mod`, `Less`, `Xor`, `Equal`, `Not`, `And`, `Sub` and `Where`.
/// Input 0 must be computed at run time or a float constant; a non-float
/// constant input 1 is converted at boot.
fn lower_exact(
    b: BinaryOp,
    ins: &[Option<ValueInfo>],
    out: &OutInfo,
) -> OpResult<Box<dyn CpuKernel>> {
    let name = Op::Binary(b).name();
    let a = required(ins, 0, "A")?;
    let bb = required(ins, 1, "B")?;
    if a.value.is_some() && !a.dtype.is_float() {
        op_bail!(
            "{name}: a {} constant combined with a run-time tensor is not supported",
            a.dtype
        );
    }
    let op = match b {
        BinaryOp::Add => FloatBin::Add,
        BinaryOp::Sub => FloatBin::Sub,
        BinaryOp::Mul => FloatBin::Mul,
        BinaryOp::Equal => FloatBin::Eq,
        BinaryOp::Less => FloatBin::Lt,
        BinaryOp::LessOrEqual => FloatBin::Le,
        BinaryOp::Greater => FloatBin::Gt,
        BinaryOp::GreaterOrEqual => FloatBin::Ge,
        BinaryOp::And => FloatBin::And,
        BinaryOp::Or => FloatBin::Or,
        BinaryOp::Xor => FloatBin::Xor,
        _ => op_bail!("{name} has no run-time {} kernel", out.dtype),
    };
    let const_b = bb
        .value
        .filter(|t| !t.dtype.is_float())
        .map(|t| t.to_f32_vec());
    Ok(Box::new(BinaryKernel {
        op,
        bc: Bcast::new(&[a.shape, bb.shape], &out.shape),
        inplace: (out.shape.as_slice() == a.shape).then_some(0),
        const_b,
    }))
}

pub(super) fn lower_binary(
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
pub(super) enum Src<'a> {
    In(&'a [f32]),
    /// The output buffer itself (in-place): same layout as the output.
    Out,
}

pub(super) struct BinaryKernel {
    pub(super) op: FloatBin,
    pub(super) bc: Bcast,
    pub(super) inplace: Option<usize>,
    /// Pow exponent given as a non-float constant, converted at boot.
    pub(super) const_b: Option<Vec<f32>>,
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
            FloatBin::IntDiv => self.exec::<IntDivF>(io, pool),
            FloatBin::Eq => self.exec::<EqF>(io, pool),
            FloatBin::Lt => self.exec::<LtF>(io, pool),
            FloatBin::Le => self.exec::<LeF>(io, pool),
            FloatBin::Gt => self.exec::<GtF>(io, pool),
            FloatBin::Ge => self.exec::<GeF>(io, pool),
            FloatBin::And => self.exec::<AndF>(io, pool),
            FloatBin::Or => self.exec::<OrF>(io, pool),
            FloatBin::Xor => self.exec::<XorF>(io, pool),
        }
    }
}

impl BinaryKernel {
    pub(super) fn exec<F: BinF>(&self, io: &StepIo<'_>, pool: &ThreadPool) {
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
pub(super) fn binary_piece<F: BinF>(
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

/// Integer power with wrapping, C++-style for negative exponents (the f64
/// result truncated, as ONNX Runtime does).
pub(super) fn int_pow(base: i64, exp: i64) -> i64 {
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

pub(super) fn int_arith(b: BinaryOp, x: i64, y: i64) -> OpResult<i64> {
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

pub(super) fn compare<T: PartialOrd>(b: BinaryOp, x: T, y: T) -> bool {
    match b {
        BinaryOp::Equal => x == y,
        BinaryOp::Less => x < y,
        BinaryOp::LessOrEqual => x <= y,
        BinaryOp::Greater => x > y,
        BinaryOp::GreaterOrEqual => x >= y,
        _ => false,
    }
}

pub(super) fn eval_binary(
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
