//! MatMul and Gemm: the GEMM-backed ops (numpy-broadcast batches, optional
//! transposes, Gemm's alpha/beta/C) on the CPU GEMM and cuBLAS.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::linear;
#[allow(unused_imports)]
use super::linear::*;
use super::OpDef;
use super::{required, OutInfo, ValueInfo};
use crate::cuda::lower;
#[allow(unused_imports)]
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::gemm::{
    default_threads, AOperand, BOperand, Bias, Epilogue, Gemm, MatRef, PackedA, PackedB,
};
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
use crate::engine::tensor::{broadcast_shapes, shape_string};
use crate::engine::tensor::{numel, Tensor};
use crate::op_bail;

pub struct MatMulGemm;

impl OpDef for MatMulGemm {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        linear::infer(op, ins)
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
        linear::lower(op, ins, outs)
    }

    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        let op = n.op();
        let g = cx.graph();
        let out0 = n.out0();
        let out_shape = n.out_shape.clone();
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let (Some(a), Some(b)) = (inp(0), inp(1)) else {
            return Err(refuse(op, "needs A and B"));
        };
        let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(b).to_vec());
        let (alpha, beta, ta, tb) = match op {
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => (*alpha, *beta, *trans_a, *trans_b),
            _ => (1.0, 0.0, false, false),
        };
        if sa.len() < 2 || sb.len() < 2 {
            return Err(refuse(op, "1-D operands do not run on the GPU yet"));
        }
        let (ra, rb) = (sa.len(), sb.len());
        let (m, ka) = if ta {
            (sa[ra - 1], sa[ra - 2])
        } else {
            (sa[ra - 2], sa[ra - 1])
        };
        let (kb, nn) = if tb {
            (sb[rb - 1], sb[rb - 2])
        } else {
            (sb[rb - 2], sb[rb - 1])
        };
        if ka != kb {
            return Err(refuse(op, "inner dimensions differ"));
        }
        let batch_a = numel(&sa[..ra - 2]);
        let batch_b = numel(&sb[..rb - 2]);
        // FP16 applies to the convolutions (the detector's GEMM time);
        // MatMul / Gemm stay FP32.
        let (ap, bp, cp) = (cx.ptr(a)?, cx.ptr(b)?, cx.ptr(out0)?);
        let gm = |batch: usize, m: usize, sa_: i64, sb_: i64| lower::Gemm {
            m: m as i32,
            n: nn as i32,
            k: ka as i32,
            a: ap,
            lda: sa[ra - 1] as i32,
            trans_a: ta,
            b: bp,
            ldb: sb[rb - 1] as i32,
            trans_b: tb,
            c: cp,
            ldc: nn as i32,
            alpha,
            beta: 0.0,
            batch: batch as i32,
            stride_a: sa_,
            stride_b: sb_,
            stride_c: (m * nn) as i64,
            half: false,
        };
        if batch_b == 1 && !ta {
            // B shared by every batch: fold the batch into M.
            v.push(Launch::Gemm(gm(1, batch_a * m, 0, 0)));
        } else if batch_a == batch_b && sa[..ra - 2] == sb[..rb - 2] {
            v.push(Launch::Gemm(gm(
                batch_a,
                m,
                (sa[ra - 2] * sa[ra - 1]) as i64,
                (sb[rb - 2] * sb[rb - 1]) as i64,
            )));
        } else {
            return Err(refuse(
                op,
                &format!(
                    "batch shapes {} x {} do not run on the GPU yet",
                    shape_string(&sa),
                    shape_string(&sb)
                ),
            ));
        }
        if let (Op::Gemm { .. }, Some(c)) = (op, inp(2)) {
            if beta != 0.0 {
                let sc = cx.shape(c).to_vec();
                let cptr = if cx.is_rt(c) {
                    if beta != 1.0 {
                        return Err(refuse(op, "a run-time C with beta != 1"));
                    }
                    cx.ptr(c)?
                } else {
                    let cv = g.tensors[c].value.clone();
                    let data: Vec<f32> = cv
                        .as_ref()
                        .and_then(|t| t.as_f32())
                        .unwrap_or(&[])
                        .iter()
                        .map(|x| x * beta)
                        .collect();
                    cx.upload(&data, "Gemm C")?
                };
                v.push(binary(cp, cp, cptr, &out_shape, &out_shape, &sc, 0)?);
            }
        }
        Ok(v)
    }
}

// -------------------------------------------------------------- MatMul ---

/// MatMul's operands as batches of matrices.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MatMulGeom {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    /// Per output matrix: (A matrix index, B matrix index).
    pub(super) pairs: Vec<(usize, usize)>,
    pub(super) a_mats: usize,
    pub(super) b_mats: usize,
    pub(super) out: Vec<usize>,
}

/// numpy matmul: 1-D operands are promoted (and the added dim removed from
/// the output); leading dims broadcast.
pub(super) fn resolve_matmul(a: &[usize], b: &[usize]) -> OpResult<MatMulGeom> {
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
pub(super) enum Side<P> {
    Runtime,
    Packed(Vec<P>),
}

pub(super) struct MatMulKernel {
    pub(super) gemm: Gemm,
    pub(super) g: MatMulGeom,
    pub(super) a: Side<PackedA>,
    pub(super) b: Side<PackedB>,
    pub(super) scratch: usize,
}

pub(super) fn lower_matmul(ins: &[Option<ValueInfo>]) -> OpResult<Box<dyn CpuKernel>> {
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
    pub(super) fn one<A: AOperand, B: BOperand>(
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
pub(super) fn resolve_gemm(
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
pub(super) fn gemm_c_strides(c: &[usize], m: usize, n: usize) -> OpResult<(usize, usize)> {
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
pub(super) enum GemmC {
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

pub(super) struct GemmKernel {
    pub(super) gemm: Gemm,
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) alpha: f32,
    pub(super) beta: f32,
    pub(super) trans_a: bool,
    pub(super) trans_b: bool,
    pub(super) a: Option<PackedA>,
    pub(super) b: Option<PackedB>,
    pub(super) c: GemmC,
    pub(super) scratch: usize,
}

pub(super) fn lower_gemm(
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
    pub(super) fn rt_view<'a>(
        &self,
        d: &'a [f32],
        rows: usize,
        cols: usize,
        t: bool,
    ) -> Option<MatRef<'a>> {
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
