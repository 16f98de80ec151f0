//! Conv (2-D and N-D, grouped, fused activation epilogue): shape
//! inference, the CPU kernel (`cpu::conv`: direct, im2col+GEMM, Winograd)
//! and the GPU lowering (im2col or direct grouped kernel, cuBLAS GEMM,
//! FP16 on tensor cores when asked).
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
use crate::engine::cpu::conv::{Conv2d, ConvShape};
use crate::engine::cpu::gemm::{default_threads, Gemm};
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::half::f32_to_f16;
use crate::engine::ir::{AutoPad, ConvAttrs, Op};
use crate::engine::tensor::shape_string;
use crate::engine::tensor::Tensor;
use crate::op_bail;

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
        let geo = conv2d_geometry(a, cx.shape(x), cx.shape(w)).map_err(op_err)?;
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
            v.push(Launch::Gemm(lower::Gemm {
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

// ---------------------------------------------------------------- Conv ---

/// A Conv's geometry with defaults and `auto_pad` resolved (N-D).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ConvGeom {
    pub(super) batch: usize,
    pub(super) c_in: usize,
    pub(super) c_out: usize,
    pub(super) group: usize,
    pub(super) input: Vec<usize>,
    pub(super) kernel: Vec<usize>,
    pub(super) strides: Vec<usize>,
    pub(super) dilations: Vec<usize>,
    pub(super) pads_begin: Vec<usize>,
    pub(super) out: Vec<usize>,
}

impl ConvGeom {
    pub(super) fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch, self.c_out];
        s.extend(&self.out);
        s
    }
}

pub(super) fn resolve_conv(a: &ConvAttrs, x: &[usize], w: &[usize]) -> OpResult<ConvGeom> {
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

pub(super) fn check_conv_bias(b: &[usize], c_out: usize) -> OpResult<()> {
    let n: usize = b.iter().product();
    if b.len() != 1 || (n != c_out && n != 1) {
        op_bail!(
            "Conv bias is {} but there are {c_out} output channels (expected [{c_out}])",
            shape_string(b)
        );
    }
    Ok(())
}

pub(super) fn lower_conv(a: &ConvAttrs, ins: &[Option<ValueInfo>]) -> OpResult<Box<dyn CpuKernel>> {
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

pub(super) struct ConvKernel {
    pub(super) conv: Conv2d,
}

impl CpuKernel for ConvKernel {
    fn scratch_len(&self) -> usize {
        self.conv.scratch_len()
    }

    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool) {
        self.conv.run(io.input(0), io.output(0), scratch, pool);
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
