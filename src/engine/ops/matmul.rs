//! MatMul and Gemm: the GEMM-backed ops (numpy-broadcast batches, optional
//! transposes, Gemm's alpha/beta/C) on the CPU GEMM and cuBLAS.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::{linear, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::CpuKernel;
use crate::engine::error::OpResult;
use crate::engine::ir::*;
use crate::engine::tensor::*;

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
        let gm = |batch: usize, m: usize, sa_: i64, sb_: i64| Gemm {
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
