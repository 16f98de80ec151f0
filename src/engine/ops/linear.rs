//! Conv, MatMul and Gemm: shape inference and the CPU-lowering dispatch of
//! the GEMM-backed ops, whose lowering and kernels live in `conv.rs` and
//! `matmul.rs` (arithmetic in `cpu::gemm` and `cpu::conv`).
//!
//! infer/lower run at boot and may allocate (weights and constant operands
//! are packed in `lower`); kernels' `run` is on the frame path (inference
//! thread, fanning out to the kernel pool) and never allocates.

use super::{required, OutInfo, ValueInfo};

use crate::engine::cpu::CpuKernel;

use crate::engine::error::{OpError, OpResult};

use crate::engine::ir::Op;

#[allow(unused_imports)]
use super::conv::*;
#[allow(unused_imports)]
use super::matmul::*;
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

pub(super) fn float_input(v: &ValueInfo, what: &str) -> OpResult<()> {
    if !v.dtype.is_float() {
        op_bail!(
            "input {what} is {} but only float tensors are supported",
            v.dtype
        );
    }
    Ok(())
}

/// The f32 data of a constant input, or an error naming it.
pub(super) fn const_f32<'a>(v: &ValueInfo<'a>, what: &str) -> OpResult<&'a [f32]> {
    let Some(t) = v.value else {
        op_bail!("{what} must be a constant initializer");
    };
    t.as_f32()
        .ok_or_else(|| OpError::new(format!("{what} is {} but must be float", t.dtype)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::conv::tests::{naive_conv, rand_vec};
    use crate::engine::cpu::conv::ConvShape;
    use crate::engine::cpu::{Buf, StepIo, ThreadPool};
    use crate::engine::ir::Activation;
    use crate::engine::ir::{AutoPad, ConvAttrs};
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
