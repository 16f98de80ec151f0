//! Unit tests of `ops::elementwise`.

use super::*;
use crate::engine::cpu::pool::GRAIN;
use crate::engine::cpu::{Buf, StepIo, ThreadPool};
use crate::engine::ir::{Activation, BinaryOp, UnaryOp};
use crate::engine::ops;
use crate::engine::ops::{infer, lower};
use crate::engine::tensor::DType;

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
    // Run-time integers (f32-held) are taken by integer Add/Sub/Mul/Div/Mod
    // only (`ops::runs_on_integers`); Pow on them is refused.
    let i = ValueInfo {
        dtype: DType::I64,
        shape: &[2],
        value: None,
    };
    let e = lower(
        &Op::Binary(BinaryOp::Pow),
        &[Some(i), Some(i)],
        &[OutInfo {
            dtype: DType::I64,
            shape: vec![2],
        }],
    )
    .err()
    .unwrap();
    assert!(e.0.contains("runtime tensors must be float32"), "{}", e.0);
    // A non-float constant on the left of a run-time comparison is refused.
    let c = Tensor::from_i64(vec![2], vec![1, 2]);
    let e = lower(
        &Op::Binary(BinaryOp::Less),
        &[Some(ValueInfo::of(&c)), Some(i)],
        &[OutInfo {
            dtype: DType::Bool,
            shape: vec![2],
        }],
    )
    .err()
    .unwrap();
    assert!(e.0.contains("constant combined with a run-time"), "{}", e.0);
}

/// Run-time bools are held as 1.0 / 0.0: the kernels RT-DETR's floor
/// division runs (Less, Equal, Xor, And, Not, Where, integer Sub).
#[test]
fn runtime_bools_and_integers_run_as_f32() {
    let rt = |shape: &'static [usize], dtype| ValueInfo {
        dtype,
        shape,
        value: None,
    };
    let out = |dtype| {
        vec![OutInfo {
            dtype,
            shape: vec![4],
        }]
    };
    let run = |op: Op, ins: &[Option<ValueInfo>], dtype, data: &[&[f32]]| -> Vec<f32> {
        let k = lower(&op, ins, &out(dtype)).unwrap();
        let mut bufs: Vec<Vec<f32>> = data.iter().map(|d| d.to_vec()).collect();
        let mut o = vec![f32::NAN; 4];
        let in_raw: Vec<Buf> = bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
        let out_raw = vec![Buf::from_slice(&mut o)];
        let pool = ThreadPool::new(1);
        // SAFETY: distinct live buffers of the declared lengths.
        let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
        k.run(&io, &mut [], &pool);
        o
    };
    let ix = rt(&[4], DType::I64);
    let c3 = Tensor::from_i64(vec![], vec![3]);
    let idx: &[f32] = &[0.0, 4.0, 5.0, 7.0];
    let less = run(
        Op::Binary(BinaryOp::Less),
        &[Some(ix), Some(ValueInfo::of(&c3))],
        DType::Bool,
        &[idx],
    );
    assert_eq!(less, vec![1.0, 0.0, 0.0, 0.0]);
    let b = rt(&[4], DType::Bool);
    let p: &[f32] = &[1.0, 1.0, 0.0, 0.0];
    let q: &[f32] = &[1.0, 0.0, 1.0, 0.0];
    let l = |op| run(Op::Binary(op), &[Some(b), Some(b)], DType::Bool, &[p, q]);
    assert_eq!(l(BinaryOp::And), vec![1.0, 0.0, 0.0, 0.0]);
    assert_eq!(l(BinaryOp::Xor), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(l(BinaryOp::Equal), vec![1.0, 0.0, 0.0, 1.0]);
    let not = run(Op::Unary(UnaryOp::Not), &[Some(b)], DType::Bool, &[p]);
    assert_eq!(not, vec![0.0, 0.0, 1.0, 1.0]);
    let one = Tensor::from_i64(vec![], vec![1]);
    let sub = run(
        Op::Binary(BinaryOp::Sub),
        &[Some(ix), Some(ValueInfo::of(&one))],
        DType::I64,
        &[idx],
    );
    assert_eq!(sub, vec![-1.0, 3.0, 4.0, 6.0]);
    let w = run(
        Op::Where,
        &[Some(b), Some(ix), Some(ix)],
        DType::I64,
        &[p, idx, &[9.0, 9.0, 9.0, 9.0]],
    );
    assert_eq!(w, vec![0.0, 4.0, 9.0, 9.0]);
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
