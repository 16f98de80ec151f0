//! Conv (2-D and N-D, grouped, fused activation epilogue): shape
//! inference, the CPU kernel (`cpu::conv`: direct, im2col+GEMM, Winograd)
//! and the GPU lowering (im2col or direct grouped kernel, cuBLAS GEMM,
//! FP16 on tensor cores when asked).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path and never allocates.

use super::{linear, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::*;
use crate::cuda::CudaError;
use crate::engine::cpu::CpuKernel;
use crate::engine::error::OpResult;
use crate::engine::half::f32_to_f16;
use crate::engine::ir::*;
use crate::engine::tensor::*;

pub struct Conv;

impl OpDef for Conv {
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
        let out_len = n.out_len;
        let inp = |i: usize| n.input(i);
        let mut v = Vec::new();
        let Op::Conv(a) = op else {
            return Err(refuse(op, "is not a Conv"));
        };
        let (Some(x), Some(w)) = (inp(0), inp(1)) else {
            return Err(refuse(op, "needs X and W"));
        };
        if !cx.is_rt(x) || cx.is_rt(w) {
            return Err(refuse(op, "needs a run-time X and constant W"));
        }
        let geo = linear::conv2d_geometry(a, cx.shape(x), cx.shape(w)).map_err(op_err)?;
        let Some((batch, c_in, c_out, group, gm)) = geo else {
            return Err(refuse(op, "only 2-D convolutions run on the GPU"));
        };
        let [h, wd, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow] = gm;
        let (act, alpha, beta) = act_code(a.activation);
        let xp = cx.ptr(x)?;
        let yp = cx.ptr(out0)?;
        let bias = match inp(2) {
            Some(b) => cx.ptr(b)?,
            None => 0,
        };
        let wv = g.tensors[w].value.clone();
        let wdata = wv.as_ref().and_then(|t| t.as_f32()).unwrap_or(&[]);
        if group != 1 {
            let wp = cx.ptr(w)?;
            v.push(kernel(
                Params::DirectConv(DirectConvParams {
                    x: xp,
                    w: wp,
                    bias,
                    y: yp,
                    n: out_len as i64,
                    c: c_in as i32,
                    h: h as i32,
                    wd: wd as i32,
                    cout: c_out as i32,
                    group: group as i32,
                    kh: kh as i32,
                    kw: kw as i32,
                    oh: oh as i32,
                    ow: ow as i32,
                    sh: sh as i32,
                    sw: sw as i32,
                    ph: ph as i32,
                    pw: pw as i32,
                    dh: dh as i32,
                    dw: dw as i32,
                    act,
                    alpha,
                    beta,
                }),
                out_len,
            ));
            return Ok(v);
        }
        let k = c_in * kh * kw;
        let cols = oh * ow;
        let half = cx.precision() == Precision::Fp16;
        let wp = if half {
            let bits: Vec<u16> = wdata.iter().map(|&x| f32_to_f16(x)).collect();
            cx.upload_any(&bits, "FP16 conv weights")?
        } else {
            cx.ptr(w)?
        };
        let pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
        let direct_b = pointwise && !half;
        for b in 0..batch {
            let xb = xp + (b * c_in * h * wd * 4) as u64;
            let yb = yp + (b * c_out * cols * 4) as u64;
            let mut bptr = xb;
            if !direct_b {
                let idx = v.len();
                if pointwise {
                    v.push(kernel(
                        Params::Half(HalfParams {
                            dst: 0,
                            src: xb,
                            n: (k * cols) as i64,
                        }),
                        k * cols,
                    ));
                } else {
                    v.push(kernel(
                        Params::Im2col(Im2colParams {
                            x: xb,
                            col: 0,
                            n: (k * cols) as i64,
                            cin: c_in as i32,
                            h: h as i32,
                            w: wd as i32,
                            kh: kh as i32,
                            kw: kw as i32,
                            oh: oh as i32,
                            ow: ow as i32,
                            sh: sh as i32,
                            sw: sw as i32,
                            ph: ph as i32,
                            pw: pw as i32,
                            dh: dh as i32,
                            dw: dw as i32,
                            half: half as i32,
                        }),
                        k * cols,
                    ));
                }
                cx.use_scratch(idx, k * cols);
                bptr = 0;
            }
            let gi = v.len();
            v.push(Launch::Gemm(Gemm {
                m: c_out as i32,
                n: cols as i32,
                k: k as i32,
                a: wp,
                lda: k as i32,
                trans_a: false,
                b: bptr,
                ldb: cols as i32,
                trans_b: false,
                c: yb,
                ldc: cols as i32,
                alpha: 1.0,
                beta: 0.0,
                batch: 1,
                stride_a: 0,
                stride_b: 0,
                stride_c: 0,
                half,
            }));
            if bptr == 0 {
                cx.use_scratch(gi, 0);
            }
        }
        if bias != 0 || act != 0 {
            v.push(kernel(
                Params::Channel(ChannelParams {
                    y: yp,
                    x: yp,
                    scale: 0,
                    shift: bias,
                    n: out_len as i64,
                    inner: cols as i64,
                    channels: c_out as i32,
                    act,
                    alpha,
                    beta,
                }),
                out_len,
            ));
        }
        Ok(v)
    }
}
