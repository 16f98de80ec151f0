//! Conv, MatMul and Gemm: the GEMM-backed ops. Shape inference and the
//! ONNX attribute semantics live here; the arithmetic lives in
//! `cpu::gemm` (packed SIMD GEMM, fused bias + activation epilogue) and
//! `cpu::conv` (implicit-GEMM and direct depthwise convolution).
//!
//! infer/lower run at boot and may allocate (weights and constant operands
//! are packed in `lower`); kernels' `run` is on the frame path (inference
//! thread, fanning out to the kernel pool) and never allocates.

use super::{required, OutInfo, ValueInfo};

use crate::engine::cpu::conv::{Conv2d, ConvShape};

use crate::engine::cpu::gemm::{
    default_threads, AOperand, BOperand, Bias, Epilogue, Gemm, MatRef, PackedA, PackedB,
};

use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::{AutoPad, ConvAttrs, Op};

use crate::engine::tensor::{broadcast_shapes, shape_string};

use crate::op_bail;

pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    match op {
        Op::Conv(a) => {
            let x = required(ins, 0, "X")?;
            let w = required(ins, 1, "W")?;
            float_input(&x, "X")?;
            let g = resolve_conv(a, x.shape, w.shape)?;
            if let Some(b) = ins.get(2).copied().flatten() {
                check_conv_bias(b.shape, g.c_out)?;
            }
            Ok(vec![OutInfo {
                dtype: x.dtype,
                shape: g.out_shape(),
            }])
        }
        Op::MatMul => {
            let a = required(ins, 0, "A")?;
            let b = required(ins, 1, "B")?;
            float_input(&a, "A")?;
            let mm = resolve_matmul(a.shape, b.shape)?;
            Ok(vec![OutInfo {
                dtype: a.dtype,
                shape: mm.out,
            }])
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            let a = required(ins, 0, "A")?;
            let b = required(ins, 1, "B")?;
            float_input(&a, "A")?;
            let c = ins.get(2).copied().flatten();
            let (m, _, n) = resolve_gemm(a.shape, b.shape, *trans_a, *trans_b)?;
            if let Some(c) = c {
                gemm_c_strides(c.shape, m, n)?;
            }
            Ok(vec![OutInfo {
                dtype: a.dtype,
                shape: vec![m, n],
            }])
        }
        other => op_bail!("{} is not a linear op", other.name()),
    }
}

pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    let _ = outs;
    match op {
        Op::Conv(a) => lower_conv(a, ins),
        Op::MatMul => lower_matmul(ins),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => lower_gemm(ins, *alpha, *beta, *trans_a, *trans_b),
        other => op_bail!("{} is not a linear op", other.name()),
    }
}

fn float_input(v: &ValueInfo, what: &str) -> OpResult<()> {
    if !v.dtype.is_float() {
        op_bail!(
            "input {what} is {} but only float tensors are supported",
            v.dtype
        );
    }
    Ok(())
}

/// The f32 data of a constant input, or an error naming it.
fn const_f32<'a>(v: &ValueInfo<'a>, what: &str) -> OpResult<&'a [f32]> {
    let Some(t) = v.value else {
        op_bail!("{what} must be a constant initializer");
    };
    t.as_f32()
        .ok_or_else(|| OpError::new(format!("{what} is {} but must be float", t.dtype)))
}

// ---------------------------------------------------------------- Conv ---

/// A Conv's geometry with defaults and `auto_pad` resolved (N-D).
#[derive(Debug, Clone, PartialEq)]
struct ConvGeom {
    batch: usize,
    c_in: usize,
    c_out: usize,
    group: usize,
    input: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads_begin: Vec<usize>,
    out: Vec<usize>,
}

impl ConvGeom {
    fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch, self.c_out];
        s.extend(&self.out);
        s
    }
}

fn resolve_conv(a: &ConvAttrs, x: &[usize], w: &[usize]) -> OpResult<ConvGeom> {
    if x.len() < 3 {
        op_bail!(
            "Conv input must be N x C x spatial..., got shape {} ({} dims)",
            shape_string(x),
            x.len()
        );
    }
    if w.len() != x.len() {
        op_bail!(
            "Conv weights are {} ({} dims) but the input is {} ({} dims)",
            shape_string(w),
            w.len(),
            shape_string(x),
            x.len()
        );
    }
    let nd = x.len() - 2;
    let group = a.group;
    if group == 0 {
        op_bail!("Conv group must be at least 1, got 0");
    }
    let (c_in, c_out) = (x[1], w[0]);
    if w[1].checked_mul(group) != Some(c_in) {
        op_bail!(
            "Conv input has {c_in} channels but weights {} expect {} per group x group {group}",
            shape_string(w),
            w[1]
        );
    }
    if c_out % group != 0 {
        op_bail!("Conv has {c_out} output channels, not divisible by group {group}");
    }
    let kernel = w[2..].to_vec();
    if !a.kernel_shape.is_empty() && a.kernel_shape != kernel {
        op_bail!(
            "kernel_shape {:?} does not match the weights' spatial dims {:?} (weights {})",
            a.kernel_shape,
            kernel,
            shape_string(w)
        );
    }
    let per_axis = |v: &[usize], what: &str| -> OpResult<Vec<usize>> {
        if v.is_empty() {
            return Ok(vec![1; nd]);
        }
        if v.len() != nd {
            op_bail!(
                "{what} has {} values but the input is {nd}-D ({} dims)",
                v.len(),
                x.len()
            );
        }
        if let Some(i) = v.iter().position(|&s| s == 0) {
            op_bail!("{what}[{i}] is 0; it must be at least 1");
        }
        Ok(v.to_vec())
    };
    let strides = per_axis(&a.strides, "strides")?;
    let dilations = per_axis(&a.dilations, "dilations")?;
    let pads = if a.pads.is_empty() {
        vec![0; 2 * nd]
    } else if a.pads.len() == 2 * nd {
        a.pads.clone()
    } else {
        op_bail!(
            "pads has {} values but a {nd}-D conv needs {}",
            a.pads.len(),
            2 * nd
        );
    };
    let mut pads_begin = vec![0; nd];
    let mut out = vec![0; nd];
    for i in 0..nd {
        let input = x[2 + i];
        if kernel[i] == 0 {
            op_bail!("Conv kernel dim {i} is 0 (weights {})", shape_string(w));
        }
        let dk = (kernel[i] - 1)
            .checked_mul(dilations[i])
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| OpError::new("Conv dilated kernel size overflows"))?;
        let s = strides[i];
        let (begin, o) = match a.auto_pad {
            AutoPad::NotSet => {
                let padded = input + pads[i] + pads[i + nd];
                if padded < dk {
                    op_bail!(
                        "Conv window {dk} (kernel {} dilation {}) is larger than the padded input {padded} on spatial axis {i}",
                        kernel[i],
                        dilations[i]
                    );
                }
                (pads[i], (padded - dk) / s + 1)
            }
            AutoPad::Valid => {
                if input < dk {
                    op_bail!(
                        "Conv window {dk} is larger than the input {input} on spatial axis {i} (auto_pad VALID)"
                    );
                }
                (0, (input - dk) / s + 1)
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = input.div_ceil(s);
                let total = (o.saturating_sub(1) * s + dk).saturating_sub(input);
                let begin = if a.auto_pad == AutoPad::SameUpper {
                    total / 2
                } else {
                    total - total / 2
                };
                (begin, o)
            }
        };
        pads_begin[i] = begin;
        out[i] = o;
    }
    Ok(ConvGeom {
        batch: x[0],
        c_in,
        c_out,
        group,
        input: x[2..].to_vec(),
        kernel,
        strides,
        dilations,
        pads_begin,
        out,
    })
}

fn check_conv_bias(b: &[usize], c_out: usize) -> OpResult<()> {
    let n: usize = b.iter().product();
    if b.len() != 1 || (n != c_out && n != 1) {
        op_bail!(
            "Conv bias is {} but there are {c_out} output channels (expected [{c_out}])",
            shape_string(b)
        );
    }
    Ok(())
}

fn lower_conv(a: &ConvAttrs, ins: &[Option<ValueInfo>]) -> OpResult<Box<dyn CpuKernel>> {
    let x = required(ins, 0, "X")?;
    let w = required(ins, 1, "W")?;
    let g = resolve_conv(a, x.shape, w.shape)?;
    let weights = const_f32(&w, "Conv weights")?;
    let bias = match ins.get(2).copied().flatten() {
        Some(b) => {
            check_conv_bias(b.shape, g.c_out)?;
            Some(const_f32(&b, "Conv bias")?)
        }
        None => None,
    };
    let nd = g.input.len();
    if nd > 2 {
        op_bail!(
            "{nd}-D Conv is not supported (input {}); only 1-D and 2-D",
            shape_string(x.shape)
        );
    }
    // 1-D runs as 2-D with a height of 1.
    let at = |v: &[usize], i: usize, one: usize| {
        if nd == 2 {
            v[i]
        } else if i == 0 {
            one
        } else {
            v[0]
        }
    };
    let shape = ConvShape {
        batch: g.batch,
        c_in: g.c_in,
        h: at(&g.input, 0, 1),
        w: at(&g.input, 1, 1),
        c_out: g.c_out,
        group: g.group,
        kh: at(&g.kernel, 0, 1),
        kw: at(&g.kernel, 1, 1),
        stride_h: at(&g.strides, 0, 1),
        stride_w: at(&g.strides, 1, 1),
        dil_h: at(&g.dilations, 0, 1),
        dil_w: at(&g.dilations, 1, 1),
        pad_top: at(&g.pads_begin, 0, 0),
        pad_left: at(&g.pads_begin, 1, 0),
        oh: at(&g.out, 0, 1),
        ow: at(&g.out, 1, 1),
    };
    let conv = Conv2d::new(
        shape,
        weights,
        bias,
        a.activation,
        Gemm::new(),
        default_threads(),
    )
    .map_err(OpError::new)?;
    Ok(Box::new(ConvKernel { conv }))
}

struct ConvKernel {
    conv: Conv2d,
}

impl CpuKernel for ConvKernel {
    fn scratch_len(&self) -> usize {
        self.conv.scratch_len()
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        self.conv.run(io.input(0), io.output(0), scratch, pool);
    }
}

// -------------------------------------------------------------- MatMul ---

/// MatMul's operands as batches of matrices.
#[derive(Debug, Clone, PartialEq)]
struct MatMulGeom {
    m: usize,
    k: usize,
    n: usize,
    /// Per output matrix: (A matrix index, B matrix index).
    pairs: Vec<(usize, usize)>,
    a_mats: usize,
    b_mats: usize,
    out: Vec<usize>,
}

/// numpy matmul: 1-D operands are promoted (and the added dim removed from
/// the output); leading dims broadcast.
fn resolve_matmul(a: &[usize], b: &[usize]) -> OpResult<MatMulGeom> {
    if a.is_empty() || b.is_empty() {
        op_bail!(
            "MatMul operands must have at least 1 dim, got A {} and B {}",
            shape_string(a),
            shape_string(b)
        );
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        op_bail!(
            "MatMul inner dims differ: A is {} (K = {k}) and B is {} (K = {kb})",
            shape_string(a),
            shape_string(b)
        );
    }
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast_shapes(ab, bb).ok_or_else(|| {
        OpError::new(format!(
            "MatMul batch dims of A {} and B {} do not broadcast",
            shape_string(a),
            shape_string(b)
        ))
    })?;
    let idx = |dims: &[usize]| -> Vec<usize> {
        // Matrix index of each output batch entry (0-stride on broadcast dims).
        let off = batch.len() - dims.len();
        let total: usize = batch.iter().product();
        let mut res = Vec::with_capacity(total);
        for flat in 0..total {
            let (mut rem, mut id, mut stride) = (flat, 0, 1);
            for d in (0..batch.len()).rev() {
                let coord = rem % batch[d];
                rem /= batch[d];
                if d >= off {
                    let dim = dims[d - off];
                    if dim != 1 {
                        id += coord * stride;
                    }
                    stride *= dim;
                }
            }
            res.push(id);
        }
        res
    };
    let pairs = idx(ab).into_iter().zip(idx(bb)).collect();
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatMulGeom {
        m,
        k,
        n,
        pairs,
        a_mats: ab.iter().product(),
        b_mats: bb.iter().product(),
        out,
    })
}

/// A GEMM operand: the runtime input, or constant matrices packed at boot.
enum Side<P> {
    Runtime,
    Packed(Vec<P>),
}

struct MatMulKernel {
    gemm: Gemm,
    g: MatMulGeom,
    a: Side<PackedA>,
    b: Side<PackedB>,
    scratch: usize,
}

fn lower_matmul(ins: &[Option<ValueInfo>]) -> OpResult<Box<dyn CpuKernel>> {
    let a = required(ins, 0, "A")?;
    let b = required(ins, 1, "B")?;
    let g = resolve_matmul(a.shape, b.shape)?;
    let gemm = Gemm::new();
    let (m, k, n) = (g.m, g.k, g.n);
    let bside = match b.value {
        Some(_) => {
            let data = const_f32(&b, "MatMul B")?;
            let mats = (0..g.b_mats)
                .map(|i| {
                    let mat = MatRef::row_major(&data[i * k * n..(i + 1) * k * n], k, n)
                        .ok_or_else(|| OpError::new("MatMul B does not match its shape"))?;
                    Ok(gemm.pack_b(mat))
                })
                .collect::<OpResult<Vec<_>>>()?;
            Side::Packed(mats)
        }
        None => Side::Runtime,
    };
    // A is packed only when B is not (both constant happens only when
    // folding, where packing one is plenty).
    let aside = match (a.value, &bside) {
        (Some(_), Side::Runtime) => {
            let data = const_f32(&a, "MatMul A")?;
            let mats = (0..g.a_mats)
                .map(|i| {
                    let mat = MatRef::row_major(&data[i * m * k..(i + 1) * m * k], m, k)
                        .ok_or_else(|| OpError::new("MatMul A does not match its shape"))?;
                    Ok(gemm.pack_a(mat))
                })
                .collect::<OpResult<Vec<_>>>()?;
            Side::Packed(mats)
        }
        _ => Side::Runtime,
    };
    let scratch = gemm.scratch_len(
        m,
        n,
        k,
        default_threads(),
        matches!(aside, Side::Runtime),
        matches!(bside, Side::Runtime),
    );
    Ok(Box::new(MatMulKernel {
        gemm,
        g,
        a: aside,
        b: bside,
        scratch,
    }))
}

impl MatMulKernel {
    fn one<A: AOperand, B: BOperand>(
        &self,
        a: &A,
        b: &B,
        c: &mut [f32],
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        let (m, k, n) = (self.g.m, self.g.k, self.g.n);
        self.gemm
            .run(m, n, k, a, b, c, n, &Epilogue::default(), scratch, pool);
    }
}

impl CpuKernel for MatMulKernel {
    fn scratch_len(&self) -> usize {
        self.scratch
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        let (m, k, n) = (self.g.m, self.g.k, self.g.n);
        let y = io.output(0);
        let a_in = if matches!(self.a, Side::Runtime) {
            io.input(0)
        } else {
            &[]
        };
        let b_in = if matches!(self.b, Side::Runtime) {
            io.input(1)
        } else {
            &[]
        };
        for (i, &(ai, bi)) in self.g.pairs.iter().enumerate() {
            let Some(c) = y.get_mut(i * m * n..(i + 1) * m * n) else {
                return;
            };
            let a_rt = a_in
                .get(ai * m * k..(ai + 1) * m * k)
                .and_then(|d| MatRef::row_major(d, m, k));
            let b_rt = b_in
                .get(bi * k * n..(bi + 1) * k * n)
                .and_then(|d| MatRef::row_major(d, k, n));
            match (&self.a, &self.b) {
                (Side::Runtime, Side::Runtime) => {
                    if let (Some(a), Some(b)) = (a_rt, b_rt) {
                        self.one(&a, &b, c, scratch, pool);
                    }
                }
                (Side::Packed(pa), Side::Runtime) => {
                    if let (Some(a), Some(b)) = (pa.get(ai), b_rt) {
                        self.one(a, &b, c, scratch, pool);
                    }
                }
                (Side::Runtime, Side::Packed(pb)) => {
                    if let (Some(a), Some(b)) = (a_rt, pb.get(bi)) {
                        self.one(&a, b, c, scratch, pool);
                    }
                }
                (Side::Packed(pa), Side::Packed(pb)) => {
                    if let (Some(a), Some(b)) = (pa.get(ai), pb.get(bi)) {
                        self.one(a, b, c, scratch, pool);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Gemm ---

/// (M, K, N) of `op(A) * op(B)`.
fn resolve_gemm(
    a: &[usize],
    b: &[usize],
    trans_a: bool,
    trans_b: bool,
) -> OpResult<(usize, usize, usize)> {
    if a.len() != 2 || b.len() != 2 {
        op_bail!(
            "Gemm needs 2-D A and B, got A {} and B {}",
            shape_string(a),
            shape_string(b)
        );
    }
    let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != kb {
        op_bail!(
            "Gemm inner dims differ: A {} (transA={trans_a}) gives K = {k}, B {} (transB={trans_b}) gives K = {kb}",
            shape_string(a),
            shape_string(b)
        );
    }
    Ok((m, k, n))
}

/// Strides (row, col) of C read as broadcast to [M, N] (unidirectional).
fn gemm_c_strides(c: &[usize], m: usize, n: usize) -> OpResult<(usize, usize)> {
    let bad = || {
        OpError::new(format!(
            "Gemm C is {} which does not broadcast to [{m}, {n}]",
            shape_string(c)
        ))
    };
    let (cm, cn) = match c.len() {
        0 => (1, 1),
        1 => (1, c[0]),
        2 => (c[0], c[1]),
        _ => return Err(bad()),
    };
    if (cm != m && cm != 1) || (cn != n && cn != 1) {
        return Err(bad());
    }
    let cs = usize::from(cn != 1);
    let rs = if cm != 1 { cn } else { 0 };
    Ok((rs, cs))
}

/// How Gemm's C reaches the output.
enum GemmC {
    None,
    /// Constant row or column vector (or scalar), pre-scaled by beta.
    Bias {
        vals: Vec<f32>,
        per_row: bool,
    },
    /// Constant full [M, N], pre-scaled by beta: copied into Y first.
    Full(Vec<f32>),
    /// Runtime C with its broadcast strides: `beta * C` copied into Y first.
    Runtime {
        rs: usize,
        cs: usize,
    },
}

struct GemmKernel {
    gemm: Gemm,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    a: Option<PackedA>,
    b: Option<PackedB>,
    c: GemmC,
    scratch: usize,
}

fn lower_gemm(
    ins: &[Option<ValueInfo>],
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> OpResult<Box<dyn CpuKernel>> {
    let a = required(ins, 0, "A")?;
    let b = required(ins, 1, "B")?;
    let (m, k, n) = resolve_gemm(a.shape, b.shape, trans_a, trans_b)?;
    let gemm = Gemm::new();
    fn view(d: &[f32], rows: usize, cols: usize, t: bool) -> OpResult<MatRef<'_>> {
        // `t`: the stored matrix is the transpose (cols x rows).
        let v = if t {
            MatRef::row_major(d, cols, rows).map(MatRef::t)
        } else {
            MatRef::row_major(d, rows, cols)
        };
        v.ok_or_else(|| OpError::new("Gemm operand does not match its shape"))
    }
    let pb = match b.value {
        Some(_) => Some(gemm.pack_b(view(const_f32(&b, "Gemm B")?, k, n, trans_b)?)),
        None => None,
    };
    let pa = match (a.value, &pb) {
        (Some(_), None) => Some(gemm.pack_a(view(const_f32(&a, "Gemm A")?, m, k, trans_a)?)),
        _ => None,
    };
    let c = match ins.get(2).copied().flatten() {
        None => GemmC::None,
        Some(cv) => {
            let (rs, cs) = gemm_c_strides(cv.shape, m, n)?;
            match cv.value {
                None => GemmC::Runtime { rs, cs },
                Some(t) => {
                    let d = t.as_f32().ok_or_else(|| {
                        OpError::new(format!("Gemm C is {} but must be float", t.dtype))
                    })?;
                    let at =
                        |i: usize, j: usize| beta * d.get(i * rs + j * cs).copied().unwrap_or(0.0);
                    if rs == 0 {
                        GemmC::Bias {
                            vals: (0..n).map(|j| at(0, j)).collect(),
                            per_row: false,
                        }
                    } else if cs == 0 {
                        GemmC::Bias {
                            vals: (0..m).map(|i| at(i, 0)).collect(),
                            per_row: true,
                        }
                    } else {
                        GemmC::Full((0..m * n).map(|x| at(x / n, x % n)).collect())
                    }
                }
            }
        }
    };
    let scratch = gemm.scratch_len(m, n, k, default_threads(), pa.is_none(), pb.is_none());
    Ok(Box::new(GemmKernel {
        gemm,
        m,
        k,
        n,
        alpha,
        beta,
        trans_a,
        trans_b,
        a: pa,
        b: pb,
        c,
        scratch,
    }))
}

impl GemmKernel {
    fn rt_view<'a>(&self, d: &'a [f32], rows: usize, cols: usize, t: bool) -> Option<MatRef<'a>> {
        if t {
            MatRef::row_major(d, cols, rows).map(MatRef::t)
        } else {
            MatRef::row_major(d, rows, cols)
        }
    }
}

impl CpuKernel for GemmKernel {
    fn scratch_len(&self) -> usize {
        self.scratch
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        let (m, k, n) = (self.m, self.k, self.n);
        let y = io.output(0);
        if y.len() < m * n {
            return;
        }
        let mut epi = Epilogue {
            alpha: self.alpha,
            ..Epilogue::default()
        };
        match &self.c {
            GemmC::None => {}
            GemmC::Bias { vals, per_row } => {
                epi.bias = if *per_row {
                    Bias::Row(vals)
                } else {
                    Bias::Col(vals)
                };
            }
            GemmC::Full(vals) => {
                y[..m * n].copy_from_slice(vals);
                epi.beta = 1.0;
            }
            GemmC::Runtime { rs, cs } => {
                let c = io.input(2);
                for i in 0..m {
                    for (j, v) in y[i * n..(i + 1) * n].iter_mut().enumerate() {
                        *v = self.beta * c.get(i * rs + j * cs).copied().unwrap_or(0.0);
                    }
                }
                epi.beta = 1.0;
            }
        }
        let a_rt = if self.a.is_none() {
            self.rt_view(io.input(0), m, k, self.trans_a)
        } else {
            None
        };
        let b_rt = if self.b.is_none() {
            self.rt_view(io.input(1), k, n, self.trans_b)
        } else {
            None
        };
        let g = &self.gemm;
        match (&self.a, &self.b, a_rt, b_rt) {
            (Some(a), Some(b), _, _) => g.run(m, n, k, a, b, y, n, &epi, scratch, pool),
            (Some(a), None, _, Some(b)) => g.run(m, n, k, a, &b, y, n, &epi, scratch, pool),
            (None, Some(b), Some(a), _) => g.run(m, n, k, &a, b, y, n, &epi, scratch, pool),
            (None, None, Some(a), Some(b)) => g.run(m, n, k, &a, &b, y, n, &epi, scratch, pool),
            _ => debug_assert!(false, "Gemm operands do not match their boot shapes"),
        }
    }
}

/// A 2-D Conv's geometry for another backend: `(batch, c_in, c_out, group,
/// [h, w], [kh, kw], [sh, sw], [dh, dw], [ph, pw], [oh, ow])`; `None` for
/// other ranks. Boot only.
#[allow(clippy::type_complexity)]
pub(crate) fn conv2d_geometry(
    a: &ConvAttrs,
    x: &[usize],
    w: &[usize],
) -> OpResult<Option<(usize, usize, usize, usize, [usize; 12])>> {
    let g = resolve_conv(a, x, w)?;
    if g.input.len() != 2 {
        return Ok(None);
    }
    Ok(Some((
        g.batch,
        g.c_in,
        g.c_out,
        g.group,
        [
            g.input[0],
            g.input[1],
            g.kernel[0],
            g.kernel[1],
            g.strides[0],
            g.strides[1],
            g.dilations[0],
            g.dilations[1],
            g.pads_begin[0],
            g.pads_begin[1],
            g.out[0],
            g.out[1],
        ],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::conv::tests::{naive_conv, rand_vec};
    use crate::engine::cpu::Buf;
    use crate::engine::ir::Activation;
    use crate::engine::tensor::Tensor;

    /// Infer, lower and run `op`; inputs marked `true` are boot constants.
    fn run_op(op: &Op, ins: &[Option<(&Tensor, bool)>], threads: usize) -> OpResult<Tensor> {
        let infos: Vec<Option<ValueInfo>> = ins
            .iter()
            .map(|i| {
                i.map(|(t, is_const)| ValueInfo {
                    dtype: t.dtype,
                    shape: &t.shape,
                    value: is_const.then_some(t),
                })
            })
            .collect();
        let outs = infer(op, &infos)?;
        let kernel = lower(op, &infos, &outs)?;
        let mut in_bufs: Vec<Vec<f32>> = ins
            .iter()
            .map(|i| i.map_or(Vec::new(), |(t, _)| t.as_f32().unwrap_or(&[]).to_vec()))
            .collect();
        let in_raw: Vec<Buf> = in_bufs
            .iter_mut()
            .zip(ins)
            .map(|(b, i)| {
                if i.is_some() {
                    Buf::from_slice(b)
                } else {
                    Buf::empty()
                }
            })
            .collect();
        let mut out = vec![f32::NAN; outs[0].shape.iter().product()];
        let out_raw = [Buf::from_slice(&mut out)];
        let mut scratch = vec![f32::NAN; kernel.scratch_len()];
        let pool = ThreadPool::new(threads);
        // SAFETY: every Buf points into a distinct live Vec of its length.
        let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
        kernel.run(&io, &mut scratch, &pool);
        Ok(Tensor::from_f32(outs[0].shape.clone(), out))
    }

    fn t(shape: &[usize], seed: u64) -> Tensor {
        Tensor::from_f32(shape.to_vec(), rand_vec(shape.iter().product(), seed))
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}: [{i}] got {g}, want {w}"
            );
        }
    }

    fn conv_attrs(
        auto_pad: AutoPad,
        group: usize,
        strides: &[usize],
        dilations: &[usize],
        pads: &[usize],
        activation: Activation,
    ) -> ConvAttrs {
        ConvAttrs {
            auto_pad,
            dilations: dilations.to_vec(),
            group,
            kernel_shape: Vec::new(),
            pads: pads.to_vec(),
            strides: strides.to_vec(),
            activation,
        }
    }

    #[test]
    fn conv_output_shapes_follow_the_spec() {
        let x = [1, 3, 10, 7];
        let w = [4, 3, 3, 2];
        let shape = |ap, s: &[usize], d: &[usize], p: &[usize]| {
            let g = resolve_conv(&conv_attrs(ap, 1, s, d, p, Activation::None), &x, &w).unwrap();
            (g.out, g.pads_begin)
        };
        assert_eq!(
            shape(AutoPad::NotSet, &[], &[], &[]),
            (vec![8, 6], vec![0, 0])
        );
        assert_eq!(
            shape(AutoPad::NotSet, &[2, 2], &[], &[1, 1, 1, 1]),
            (vec![5, 4], vec![1, 1])
        );
        assert_eq!(
            shape(AutoPad::Valid, &[3, 2], &[], &[5, 5, 5, 5]),
            (vec![3, 3], vec![0, 0])
        );
        // SAME: out = ceil(in / stride); total pad 2 on H (k3), 1 on W (k2).
        assert_eq!(
            shape(AutoPad::SameUpper, &[], &[], &[]),
            (vec![10, 7], vec![1, 0])
        );
        assert_eq!(
            shape(AutoPad::SameLower, &[], &[], &[]),
            (vec![10, 7], vec![1, 1])
        );
        // Stride 3, dilation 2: dilated k = 5 / 3; H total = (4-1)*3+5-10 = 4.
        assert_eq!(
            shape(AutoPad::SameUpper, &[3, 3], &[2, 2], &[]),
            (vec![4, 3], vec![2, 1])
        );
        assert_eq!(
            shape(AutoPad::SameLower, &[3, 3], &[2, 2], &[]),
            (vec![4, 3], vec![2, 1])
        );
    }

    #[test]
    fn conv_errors_name_the_values() {
        let attrs = conv_attrs(AutoPad::NotSet, 1, &[], &[], &[], Activation::None);
        let err = |x: &[usize], w: &[usize], a: &ConvAttrs| resolve_conv(a, x, w).unwrap_err().0;
        assert!(err(&[1, 3, 8, 8], &[4, 2, 3, 3], &attrs).contains("3 channels"));
        assert!(err(&[1, 3, 8], &[4, 3, 3, 3], &attrs).contains("dims"));
        let g2 = conv_attrs(AutoPad::NotSet, 2, &[], &[], &[], Activation::None);
        assert!(err(&[1, 4, 8, 8], &[3, 2, 3, 3], &g2).contains("divisible by group 2"));
        let mut ks = attrs.clone();
        ks.kernel_shape = vec![5, 5];
        assert!(err(&[1, 3, 8, 8], &[4, 3, 3, 3], &ks).contains("kernel_shape"));
        let p = conv_attrs(AutoPad::NotSet, 1, &[], &[], &[1, 1], Activation::None);
        assert!(err(&[1, 3, 8, 8], &[4, 3, 3, 3], &p).contains("pads has 2 values"));
        assert!(
            err(&[1, 3, 2, 8], &[4, 3, 3, 3], &attrs).contains("larger than the padded input 2")
        );
        let s0 = conv_attrs(AutoPad::NotSet, 1, &[0, 1], &[], &[], Activation::None);
        assert!(err(&[1, 3, 8, 8], &[4, 3, 3, 3], &s0).contains("strides[0] is 0"));

        // Runtime weights and 3-D convs fail at lower.
        let x = t(&[1, 3, 8, 8], 1);
        let w = t(&[4, 3, 3, 3], 2);
        let op = Op::Conv(attrs.clone());
        let e = run_op(&op, &[Some((&x, false)), Some((&w, false))], 1).unwrap_err();
        assert!(
            e.0.contains("Conv weights must be a constant initializer"),
            "{e}"
        );
        let x3 = t(&[1, 2, 4, 4, 4], 1);
        let w3 = t(&[2, 2, 1, 1, 1], 2);
        let e = run_op(&op, &[Some((&x3, false)), Some((&w3, true))], 1).unwrap_err();
        assert!(e.0.contains("3-D Conv is not supported"), "{e}");
        let b = t(&[5], 3);
        let e = run_op(
            &op,
            &[Some((&x, false)), Some((&w, true)), Some((&b, true))],
            1,
        )
        .unwrap_err();
        assert!(e.0.contains("bias"), "{e}");
    }

    #[test]
    fn auto_pad_matches_onnx_reference() {
        // Expected values from onnx.reference (ReferenceEvaluator, opset 17).
        let x = Tensor::from_f32(
            vec![1, 2, 6, 5],
            (1..=60).map(|v| v as f32 / 10.0).collect(),
        );
        let w = Tensor::from_f32(
            vec![1, 2, 3, 2],
            (1..=12).map(|v| v as f32 / 10.0 - 0.6).collect(),
        );
        type Case<'a> = (AutoPad, [usize; 2], [usize; 2], &'a [usize], &'a [f32]);
        let cases: [Case; 4] = [
            (
                AutoPad::SameLower,
                [2, 2],
                [1, 1],
                &[1, 1, 3, 3],
                &[3.38, 6.22, 6.46, 4.66, 7.88, 8.0, 5.26, 8.48, 8.6],
            ),
            (
                AutoPad::SameUpper,
                [2, 2],
                [1, 1],
                &[1, 1, 3, 3],
                &[7.52, 7.64, 3.1, 8.12, 8.24, 3.1, 2.26, 2.18, 0.2],
            ),
            (
                AutoPad::SameLower,
                [3, 2],
                [2, 2],
                &[1, 1, 2, 3],
                &[4.16, 7.4, 3.16, 2.0, 2.72, 0.64],
            ),
            (
                AutoPad::SameUpper,
                [1, 3],
                [2, 1],
                &[1, 1, 6, 2],
                &[
                    6.6, 6.96, 7.2, 7.56, 8.62, 8.8, 8.92, 9.1, 2.76, 2.64, 2.56, 2.44,
                ],
            ),
        ];
        for (ap, st, dl, shape, want) in cases {
            let op = Op::Conv(conv_attrs(ap, 1, &st, &dl, &[], Activation::None));
            let y = run_op(&op, &[Some((&x, false)), Some((&w, true))], 1).unwrap();
            assert_eq!(y.shape, shape, "{ap:?} {st:?} {dl:?}");
            assert_close(y.as_f32().unwrap(), want, &format!("{ap:?} {st:?} {dl:?}"));
        }
    }

    /// Run a Conv through the op and compare with the naive reference.
    fn check_conv(x_shape: &[usize], w_shape: &[usize], attrs: ConvAttrs, bias: bool) {
        let x = t(x_shape, 11);
        let w = t(w_shape, 12);
        let b = t(&[w_shape[0]], 13);
        let g = resolve_conv(&attrs, x_shape, w_shape).unwrap();
        let two_d = x_shape.len() == 4;
        let pick = |v: &[usize], i: usize, d: usize| {
            if two_d {
                v[i]
            } else if i == 0 {
                d
            } else {
                v[0]
            }
        };
        let s = ConvShape {
            batch: g.batch,
            c_in: g.c_in,
            h: pick(&g.input, 0, 1),
            w: pick(&g.input, 1, 1),
            c_out: g.c_out,
            group: g.group,
            kh: pick(&g.kernel, 0, 1),
            kw: pick(&g.kernel, 1, 1),
            stride_h: pick(&g.strides, 0, 1),
            stride_w: pick(&g.strides, 1, 1),
            dil_h: pick(&g.dilations, 0, 1),
            dil_w: pick(&g.dilations, 1, 1),
            pad_top: pick(&g.pads_begin, 0, 0),
            pad_left: pick(&g.pads_begin, 1, 0),
            oh: pick(&g.out, 0, 1),
            ow: pick(&g.out, 1, 1),
        };
        let want = naive_conv(
            &s,
            x.as_f32().unwrap(),
            w.as_f32().unwrap(),
            bias.then(|| b.as_f32().unwrap()),
            attrs.activation,
        );
        let op = Op::Conv(attrs);
        let mut ins = vec![Some((&x, false)), Some((&w, true))];
        if bias {
            ins.push(Some((&b, true)));
        }
        for threads in [1, 2] {
            let y = run_op(&op, &ins, threads).unwrap();
            assert_eq!(y.shape, g.out_shape());
            assert_close(y.as_f32().unwrap(), &want, &format!("{op:?} x={x_shape:?}"));
        }
    }

    #[test]
    fn conv_variants_match_naive() {
        let silu = Activation::Silu;
        let none = Activation::None;
        let ca = conv_attrs;
        check_conv(
            &[1, 3, 12, 11],
            &[8, 3, 3, 3],
            ca(AutoPad::NotSet, 1, &[], &[], &[1, 1, 1, 1], silu),
            true,
        );
        check_conv(
            &[2, 4, 9, 10],
            &[6, 4, 3, 3],
            ca(AutoPad::SameUpper, 1, &[2, 2], &[], &[], silu),
            true,
        );
        check_conv(
            &[1, 4, 9, 10],
            &[6, 4, 2, 2],
            ca(AutoPad::SameUpper, 1, &[], &[], &[], none),
            false,
        );
        check_conv(
            &[1, 4, 9, 10],
            &[6, 4, 2, 2],
            ca(AutoPad::SameLower, 1, &[], &[], &[], none),
            true,
        );
        check_conv(
            &[1, 4, 13, 10],
            &[5, 4, 3, 3],
            ca(AutoPad::SameLower, 1, &[3, 2], &[2, 1], &[], silu),
            true,
        );
        check_conv(
            &[1, 4, 9, 10],
            &[6, 4, 3, 2],
            ca(AutoPad::Valid, 1, &[1, 2], &[2, 1], &[], none),
            true,
        );
        // Grouped, depthwise, depthwise with multiplier.
        check_conv(
            &[1, 6, 8, 8],
            &[4, 3, 3, 3],
            ca(AutoPad::NotSet, 2, &[], &[], &[1, 1, 1, 1], silu),
            true,
        );
        check_conv(
            &[2, 5, 8, 9],
            &[5, 1, 3, 3],
            ca(AutoPad::NotSet, 5, &[2, 1], &[], &[1, 1, 1, 1], silu),
            true,
        );
        check_conv(
            &[1, 3, 7, 7],
            &[6, 1, 3, 3],
            ca(AutoPad::SameUpper, 3, &[], &[2, 2], &[], none),
            false,
        );
        // 1-D, with every padding flavour.
        check_conv(
            &[2, 3, 17],
            &[4, 3, 3],
            ca(AutoPad::NotSet, 1, &[2], &[2], &[2, 1], silu),
            true,
        );
        check_conv(
            &[1, 3, 17],
            &[4, 3, 4],
            ca(AutoPad::SameLower, 1, &[3], &[], &[], none),
            true,
        );
        check_conv(
            &[1, 4, 17],
            &[4, 1, 3],
            ca(AutoPad::Valid, 4, &[], &[], &[], silu),
            true,
        );
        // Pointwise (the direct-GEMM path), big enough to thread.
        check_conv(
            &[1, 24, 20, 20],
            &[40, 24, 1, 1],
            ca(AutoPad::NotSet, 1, &[], &[], &[], silu),
            true,
        );
    }

    /// numpy matmul on the dense operands.
    fn naive_matmul(a: &Tensor, b: &Tensor, out: &[usize]) -> Vec<f32> {
        let g = resolve_matmul(&a.shape, &b.shape).unwrap();
        assert_eq!(g.out, out);
        let (m, k, n) = (g.m, g.k, g.n);
        let (ad, bd) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let mut y = vec![0.0; g.pairs.len() * m * n];
        for (bi, &(ia, ib)) in g.pairs.iter().enumerate() {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0f64;
                    for p in 0..k {
                        s += ad[ia * m * k + i * k + p] as f64 * bd[ib * k * n + p * n + j] as f64;
                    }
                    y[bi * m * n + i * n + j] = s as f32;
                }
            }
        }
        y
    }

    #[test]
    fn matmul_broadcasts_like_numpy() {
        let cases: [(&[usize], &[usize], &[usize]); 9] = [
            (&[7], &[7], &[]),
            (&[7], &[7, 5], &[5]),
            (&[4, 7], &[7], &[4]),
            (&[3, 4, 7], &[7], &[3, 4]),
            (&[7], &[2, 7, 5], &[2, 5]),
            (&[2, 1, 3, 4], &[5, 4, 6], &[2, 5, 3, 6]),
            (&[1, 9, 33], &[33, 40], &[1, 9, 40]),
            (&[65, 300], &[300, 70], &[65, 70]),
            (&[2, 3, 0], &[0, 4], &[2, 3, 4]),
        ];
        for (i, (ash, bsh, out)) in cases.into_iter().enumerate() {
            let a = t(ash, 20 + i as u64);
            let b = t(bsh, 40 + i as u64);
            let want = naive_matmul(&a, &b, out);
            for (ca, cb) in [(false, false), (false, true), (true, false), (true, true)] {
                for threads in [1, 3] {
                    let y =
                        run_op(&Op::MatMul, &[Some((&a, ca)), Some((&b, cb))], threads).unwrap();
                    assert_eq!(y.shape, out);
                    assert_close(
                        y.as_f32().unwrap(),
                        &want,
                        &format!("{ash:?} x {bsh:?} const=({ca},{cb})"),
                    );
                }
            }
        }
        let e = resolve_matmul(&[2, 3], &[4, 5]).unwrap_err();
        assert!(e.0.contains("K = 3") && e.0.contains("K = 4"), "{e}");
        let e = resolve_matmul(&[2, 3, 4], &[3, 4, 5]).unwrap_err();
        assert!(e.0.contains("broadcast"), "{e}");
    }

    #[test]
    fn gemm_attribute_combinations() {
        let (m, k, n) = (13, 37, 21);
        let c_shapes: [Option<&[usize]>; 7] = [
            None,
            Some(&[]),
            Some(&[1]),
            Some(&[n]),
            Some(&[1, n]),
            Some(&[m, 1]),
            Some(&[m, n]),
        ];
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                for (ci, cs) in c_shapes.iter().enumerate() {
                    for (alpha, beta) in [(1.0, 1.0), (0.5, -2.0), (1.0, 0.0)] {
                        for (a_const, b_const, c_const) in [
                            (false, true, true),
                            (false, false, false),
                            (true, false, false),
                        ] {
                            let a = t(&if trans_a { [k, m] } else { [m, k] }, 1);
                            let b = t(&if trans_b { [n, k] } else { [k, n] }, 2);
                            let c = cs.map(|s| t(s, 3 + ci as u64));
                            let (ad, bd) = (a.as_f32().unwrap(), b.as_f32().unwrap());
                            let mut want = vec![0.0f32; m * n];
                            for i in 0..m {
                                for j in 0..n {
                                    let mut s = 0.0f64;
                                    for p in 0..k {
                                        let av = if trans_a {
                                            ad[p * m + i]
                                        } else {
                                            ad[i * k + p]
                                        };
                                        let bv = if trans_b {
                                            bd[j * k + p]
                                        } else {
                                            bd[p * n + j]
                                        };
                                        s += av as f64 * bv as f64;
                                    }
                                    let mut y = alpha * s as f32;
                                    if let Some(c) = &c {
                                        let (rs, cs) = gemm_c_strides(&c.shape, m, n).unwrap();
                                        y += beta * c.as_f32().unwrap()[i * rs + j * cs];
                                    }
                                    want[i * n + j] = y;
                                }
                            }
                            let op = Op::Gemm {
                                alpha,
                                beta,
                                trans_a,
                                trans_b,
                            };
                            let ins = [
                                Some((&a, a_const)),
                                Some((&b, b_const)),
                                c.as_ref().map(|c| (c, c_const)),
                            ];
                            let y = run_op(&op, &ins, 2).unwrap();
                            assert_eq!(y.shape, vec![m, n]);
                            assert_close(
                                y.as_f32().unwrap(),
                                &want,
                                &format!(
                                    "Gemm tA={trans_a} tB={trans_b} C={cs:?} a={alpha} b={beta} const=({a_const},{b_const},{c_const})"
                                ),
                            );
                        }
                    }
                }
            }
        }
        let e = resolve_gemm(&[2, 3], &[4, 5], false, false).unwrap_err();
        assert!(e.0.contains("K = 3"), "{e}");
        let e = gemm_c_strides(&[3, 5], 4, 5).unwrap_err();
        assert!(e.0.contains("3x5"), "{e}");
    }
}
