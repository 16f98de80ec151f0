//! Unit tests of `ops::movement`.

use super::*;
use crate::engine::cpu::{Buf, StepIo, ThreadPool};
use crate::engine::ir::PadMode;
use crate::engine::ops;
use crate::engine::ops::{infer, lower};

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v.to_vec())
}

fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_i64(shape.to_vec(), v.to_vec())
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

fn iota_t(shape: &[usize]) -> Tensor {
    f32t(shape, &iota(numel(shape)))
}

fn ev(op: &Op, ins: &[Option<&Tensor>]) -> Vec<Tensor> {
    ops::eval(op, ins).unwrap()
}

fn ev_err(op: &Op, ins: &[Option<&Tensor>]) -> String {
    ops::eval(op, ins).unwrap_err().0
}

/// Lowered kernel with input 0 (and for Concat every input) at run
/// time, the rest constant; on `threads` threads.
fn run_kernel(op: &Op, ins: &[Option<&Tensor>], runtime: usize, threads: usize) -> Vec<Tensor> {
    let infos: Vec<Option<ValueInfo>> = ins
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| ValueInfo {
                dtype: t.dtype,
                shape: &t.shape,
                value: if i < runtime { None } else { Some(t) },
            })
        })
        .collect();
    let outs = infer(op, &infos).unwrap();
    let outs: Vec<OutInfo> = outs.into_iter().filter(|o| o.dtype.is_float()).collect();
    let k = lower(op, &infos, &outs).unwrap();
    let mut in_bufs: Vec<Vec<f32>> = ins
        .iter()
        .map(|t| match t {
            Some(t) if t.dtype.is_float() => t.to_f32_vec(),
            _ => Vec::new(),
        })
        .collect();
    let mut out_bufs: Vec<Vec<f32>> = outs
        .iter()
        .map(|o| vec![f32::NAN; numel(&o.shape)])
        .collect();
    let in_raw: Vec<Buf> = in_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
    let out_raw: Vec<Buf> = out_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
    // SAFETY: distinct live buffers of the declared lengths.
    let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
    k.run(&io, &mut [], &ThreadPool::new(threads));
    outs.into_iter()
        .zip(out_bufs)
        .map(|(o, v)| Tensor::from_f32(o.shape, v))
        .collect()
}

/// Eval on f32 and i64 copies of the inputs, and the f32 kernel on 1 and
/// 3 threads, all agree; returns the f32 result.
fn check_all_paths(op: &Op, ins: &[Option<&Tensor>], runtime: usize) -> Vec<Tensor> {
    let want = ev(op, ins);
    for threads in [1, 3] {
        let got = run_kernel(op, ins, runtime, threads);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape, w.shape);
            assert_eq!(g.as_f32(), w.as_f32(), "{op:?} kernel on {threads} threads");
        }
    }
    // Same op on integer data: same values.
    let ints: Vec<Option<Tensor>> = ins
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| {
                if i < runtime.max(1) && t.dtype == DType::F32 {
                    Tensor::from_i64(t.shape.clone(), t.to_i64_vec())
                } else {
                    t.clone()
                }
            })
        })
        .collect();
    let iref: Vec<Option<&Tensor>> = ints.iter().map(|t| t.as_ref()).collect();
    let got = ev(op, &iref);
    for (g, w) in got.iter().zip(&want) {
        if w.dtype == DType::Bool {
            continue;
        }
        assert_eq!(g.dtype, DType::I64);
        assert_eq!(g.shape, w.shape);
        assert_eq!(g.to_f32_vec(), w.to_f32_vec(), "{op:?} on int64");
    }
    want
}

fn slice_op() -> Op {
    Op::Slice {
        starts: None,
        ends: None,
        axes: None,
    }
}

fn slice(x: &Tensor, s: &[i64], e: &[i64], a: Option<&[i64]>, st: Option<&[i64]>) -> Tensor {
    let (s, e) = (i64t(&[s.len()], s), i64t(&[e.len()], e));
    let a = a.map(|a| i64t(&[a.len()], a));
    let st = st.map(|v| i64t(&[v.len()], v));
    let ins = [Some(x), Some(&s), Some(&e), a.as_ref(), st.as_ref()];
    check_all_paths(&slice_op(), &ins, 1).remove(0)
}

#[test]
fn slice_edge_cases_match_numpy() {
    let x = iota_t(&[4, 5]);
    // x[1:3, ::2]
    let t = slice(&x, &[1, 0], &[3, i64::MAX], None, Some(&[1, 2]));
    assert_eq!(t.shape, vec![2, 3]);
    assert_eq!(t.to_f32_vec(), vec![5., 7., 9., 10., 12., 14.]);
    // x[:, -1:-6:-2] (negative step, negative start/end)
    let t = slice(&x, &[-1], &[-6], Some(&[1]), Some(&[-2]));
    assert_eq!(
        t.to_f32_vec(),
        vec![4., 2., 0., 9., 7., 5., 14., 12., 10., 19., 17., 15.]
    );
    // x[::-1] with INT_MAX start and INT_MIN end
    let t = slice(&x, &[i64::MAX], &[i64::MIN], Some(&[0]), Some(&[-1]));
    assert_eq!(t.shape, vec![4, 5]);
    assert_eq!(&t.to_f32_vec()[..5], &[15., 16., 17., 18., 19.]);
    // Out-of-range start/end clamp: x[10:20] is empty, x[-100:2] is x[0:2]
    let t = slice(&x, &[10], &[20], None, None);
    assert_eq!(t.shape, vec![0, 5]);
    let t = slice(&x, &[-100], &[2], Some(&[0]), None);
    assert_eq!(t.shape, vec![2, 5]);
    // start > end with positive step: empty; negative axis.
    let t = slice(&x, &[3], &[1], Some(&[-1]), None);
    assert_eq!(t.shape, vec![4, 0]);
    // x[2:0:-1, 4:1:-2]
    let t = slice(&x, &[2, 4], &[0, 1], Some(&[0, 1]), Some(&[-1, -2]));
    assert_eq!(t.to_f32_vec(), vec![14., 12., 9., 7.]);
    // Negative step with end past the start: x[0:-10:-1] -> x[0:None:-1] = row 0
    let t = slice(&x, &[0], &[-10], None, Some(&[-1]));
    assert_eq!(t.to_f32_vec(), vec![0., 1., 2., 3., 4.]);
    // Start below -len with a negative step clamps to 0 (spec text and
    // ONNX Runtime; numpy would give an empty slice).
    let t = slice(&x, &[i64::MIN], &[-9], None, Some(&[-2]));
    assert_eq!(t.to_f32_vec(), vec![0., 1., 2., 3., 4.]);
    // Opset < 10 attributes.
    let op = Op::Slice {
        starts: Some(vec![1]),
        ends: Some(vec![-1]),
        axes: Some(vec![1]),
    };
    let t = ev(&op, &[Some(&x)]).remove(0);
    assert_eq!(t.shape, vec![4, 3]);
    assert_eq!(&t.to_f32_vec()[..3], &[1., 2., 3.]);
}

#[test]
fn slice_errors() {
    let x = iota_t(&[4, 5]);
    let s = i64t(&[1], &[0]);
    let z = i64t(&[1], &[0]);
    let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&s), None, Some(&z)]);
    assert!(e.contains("step"), "{e}");
    let a = i64t(&[1], &[2]);
    let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&s), Some(&a)]);
    assert!(e.contains("axis 2") && e.contains("rank-2"), "{e}");
    let two = i64t(&[2], &[0, 0]);
    let e = ev_err(&slice_op(), &[Some(&x), Some(&s), Some(&two)]);
    assert!(e.contains("differ in length"), "{e}");
    let rt = ValueInfo {
        dtype: DType::I64,
        shape: &[1],
        value: None,
    };
    let e = infer(&slice_op(), &[Some(ValueInfo::of(&x)), Some(rt), Some(rt)]).unwrap_err();
    assert!(
        e.0.contains("input 1 (starts) must be a constant"),
        "{}",
        e.0
    );
}

#[test]
fn concat_any_inputs_negative_axis_and_empty() {
    let a = iota_t(&[2, 1, 3]);
    let b = f32t(
        &[2, 2, 3],
        &iota(12).iter().map(|v| v + 100.0).collect::<Vec<_>>(),
    );
    let e = f32t(&[2, 0, 3], &[]);
    let op = Op::Concat { axis: -2 };
    let t = check_all_paths(&op, &[Some(&a), Some(&e), Some(&b)], 3).remove(0);
    assert_eq!(t.shape, vec![2, 3, 3]);
    assert_eq!(
        t.to_f32_vec(),
        vec![
            0., 1., 2., 100., 101., 102., 103., 104., 105., 3., 4., 5., 106., 107., 108., 109.,
            110., 111.
        ]
    );
    // Large enough to be split over threads mid-chunk.
    let big_a = iota_t(&[1, 3, 5000]);
    let big_b = iota_t(&[1, 4, 5000]);
    let t = check_all_paths(&Op::Concat { axis: 1 }, &[Some(&big_a), Some(&big_b)], 2).remove(0);
    assert_eq!(t.shape, vec![1, 7, 5000]);
    assert_eq!(t.to_f32_vec()[15000], 0.0);
    let bad = iota_t(&[2, 1, 4]);
    let err = ev_err(&op, &[Some(&a), Some(&bad)]);
    assert!(err.contains("2x1x4") && err.contains("2x1x3"), "{err}");
    let err = ev_err(&Op::Concat { axis: 3 }, &[Some(&a)]);
    assert!(err.contains("axis 3") && err.contains("rank-3"), "{err}");
    // Shape tensors (int64) concatenate too.
    let t = ev(
        &Op::Concat { axis: 0 },
        &[
            Some(&i64t(&[2], &[1, 2])),
            Some(&i64t(&[0], &[])),
            Some(&i64t(&[1], &[-1])),
        ],
    );
    assert_eq!(t[0].to_i64_vec(), vec![1, 2, -1]);
}

fn split(axis: i64, split: Option<Vec<i64>>, num_outputs: Option<usize>) -> Op {
    Op::Split {
        axis,
        split,
        num_outputs,
    }
}

#[test]
fn split_variants() {
    let x = iota_t(&[2, 5]);
    let shapes = |ts: &[Tensor]| ts.iter().map(|t| t.shape.clone()).collect::<Vec<_>>();
    // Attribute sizes.
    let t = check_all_paths(&split(1, Some(vec![2, 3]), None), &[Some(&x)], 1);
    assert_eq!(shapes(&t), vec![vec![2, 2], vec![2, 3]]);
    assert_eq!(t[1].to_f32_vec(), vec![2., 3., 4., 7., 8., 9.]);
    // Constant input 1, negative axis, a zero-sized piece.
    let s = i64t(&[3], &[1, 0, 4]);
    let t = check_all_paths(&split(-1, None, None), &[Some(&x), Some(&s)], 1);
    assert_eq!(shapes(&t), vec![vec![2, 1], vec![2, 0], vec![2, 4]]);
    assert_eq!(t[0].to_f32_vec(), vec![0., 5.]);
    // num_outputs, uneven (opset 18): 5 -> 2, 2, 1.
    let t = check_all_paths(&split(1, None, Some(3)), &[Some(&x)], 1);
    assert_eq!(shapes(&t), vec![vec![2, 2], vec![2, 2], vec![2, 1]]);
    assert_eq!(t[2].to_f32_vec(), vec![4., 9.]);
    // Equal split along axis 0.
    let t = check_all_paths(&split(0, None, Some(2)), &[Some(&x)], 1);
    assert_eq!(t[1].to_f32_vec(), vec![5., 6., 7., 8., 9.]);
    // Errors.
    let e = ev_err(&split(1, Some(vec![2, 2]), None), &[Some(&x)]);
    assert!(e.contains("do not sum to 5"), "{e}");
    let e = ev_err(&split(1, None, None), &[Some(&x)]);
    assert!(e.contains("num_outputs"), "{e}");
    let e = ev_err(&split(1, None, Some(4)), &[Some(&x)]);
    assert!(e.contains("last one"), "{e}");
}

#[test]
fn reshape_rules() {
    let x = iota_t(&[2, 3, 4]);
    let r = |s: &[i64], allowzero: bool| {
        let st = i64t(&[s.len()], s);
        ops::eval(&Op::Reshape { allowzero }, &[Some(&x), Some(&st)]).map(|mut v| v.remove(0).shape)
    };
    assert_eq!(r(&[0, -1], false).unwrap(), vec![2, 12]);
    assert_eq!(r(&[-1], false).unwrap(), vec![24]);
    assert_eq!(r(&[4, 0, 2], false).unwrap(), vec![4, 3, 2]);
    assert!(r(&[0, 12], true).unwrap_err().0.contains("element count"));
    let e = r(&[5, -1], false).unwrap_err().0;
    assert!(e.contains("-1") && e.contains("2x3x4"), "{e}");
    let e = r(&[7, 2], false).unwrap_err().0;
    assert!(e.contains("2x3x4") && e.contains("[7, 2]"), "{e}");
    assert!(r(&[-1, -1], false).unwrap_err().0.contains("more than one"));
    assert!(r(&[0, 0, 0, 0], false).unwrap_err().0.contains("rank"));
    // allowzero: an empty tensor may take a 0 dim.
    let e0 = f32t(&[0, 3], &[]);
    let st = i64t(&[2], &[3, 0]);
    let t = ev(&Op::Reshape { allowzero: true }, &[Some(&e0), Some(&st)]);
    assert_eq!(t[0].shape, vec![3, 0]);
    // Data kept; runtime kernel copies and offers in-place.
    let st = i64t(&[2], &[4, 6]);
    let t = check_all_paths(&Op::Reshape { allowzero: false }, &[Some(&x), Some(&st)], 1);
    assert_eq!(t[0].to_f32_vec(), iota(24));
}

#[test]
fn transpose_default_and_perm() {
    let x = iota_t(&[2, 3, 4]);
    let t = check_all_paths(&Op::Transpose { perm: None }, &[Some(&x)], 1).remove(0);
    assert_eq!(t.shape, vec![4, 3, 2]);
    // np.arange(24).reshape(2,3,4).T.ravel()[:8]
    assert_eq!(&t.to_f32_vec()[..8], &[0., 12., 4., 16., 8., 20., 1., 13.]);
    let t = check_all_paths(
        &Op::Transpose {
            perm: Some(vec![0, 2, 1]),
        },
        &[Some(&x)],
        1,
    )
    .remove(0);
    assert_eq!(t.shape, vec![2, 4, 3]);
    assert_eq!(&t.to_f32_vec()[..6], &[0., 4., 8., 1., 5., 9.]);
    // Tiled 2-D transposes (with and without an outer dim), split over
    // threads at arbitrary points, against the naive gather.
    for (shape, perm) in [
        ([3, 70, 90], [2, 0, 1]),
        ([2, 50, 40], [0, 2, 1]),
        ([5, 33, 65], [1, 2, 0]),
    ] {
        let big = iota_t(&shape);
        let op = Op::Transpose {
            perm: Some(perm.to_vec()),
        };
        let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let want = naive(
            big.as_f32().unwrap(),
            &shape,
            &out,
            |o| {
                let mut src = vec![0; 3];
                for (k, &p) in perm.iter().enumerate() {
                    src[p] = o[k];
                }
                Some(src)
            },
            0.0,
        );
        for threads in [1, 3] {
            let t = run_kernel(&op, &[Some(&big)], 1, threads).remove(0);
            assert_eq!(t.to_f32_vec(), want, "{shape:?} {perm:?}");
        }
    }
    let e = ev_err(
        &Op::Transpose {
            perm: Some(vec![0, 0, 1]),
        },
        &[Some(&x)],
    );
    assert!(e.contains("not a permutation"), "{e}");
    let e = ev_err(
        &Op::Transpose {
            perm: Some(vec![0, 1]),
        },
        &[Some(&x)],
    );
    assert!(e.contains("rank 3"), "{e}");
}

#[test]
fn flatten_squeeze_unsqueeze_shapes() {
    let x = iota_t(&[2, 1, 3, 1]);
    let sh = |op: Op, extra: Option<&Tensor>| ev(&op, &[Some(&x), extra])[0].shape.clone();
    assert_eq!(sh(Op::Flatten { axis: 0 }, None), vec![1, 6]);
    assert_eq!(sh(Op::Flatten { axis: -1 }, None), vec![6, 1]);
    assert_eq!(sh(Op::Flatten { axis: 4 }, None), vec![6, 1]);
    assert!(ev_err(&Op::Flatten { axis: 5 }, &[Some(&x)]).contains("axis 5"));
    assert_eq!(sh(Op::Squeeze { axes: None }, None), vec![2, 3]);
    assert_eq!(
        sh(
            Op::Squeeze {
                axes: Some(vec![-1])
            },
            None
        ),
        vec![2, 1, 3]
    );
    let a = i64t(&[1], &[1]);
    assert_eq!(sh(Op::Squeeze { axes: None }, Some(&a)), vec![2, 3, 1]);
    let e = ev_err(
        &Op::Squeeze {
            axes: Some(vec![0]),
        },
        &[Some(&x)],
    );
    assert!(e.contains("axis 0 has size 2"), "{e}");
    assert_eq!(
        sh(
            Op::Unsqueeze {
                axes: Some(vec![0, -1])
            },
            None
        ),
        vec![1, 2, 1, 3, 1, 1]
    );
    let a = i64t(&[2], &[1, 3]);
    assert_eq!(
        sh(Op::Unsqueeze { axes: None }, Some(&a)),
        vec![2, 1, 1, 1, 3, 1]
    );
    let e = ev_err(
        &Op::Unsqueeze {
            axes: Some(vec![1, 1]),
        },
        &[Some(&x)],
    );
    assert!(e.contains("repeat"), "{e}");
    let e = ev_err(
        &Op::Unsqueeze {
            axes: Some(vec![7]),
        },
        &[Some(&x)],
    );
    assert!(e.contains("axis 7"), "{e}");
    // Scalar unsqueeze, as shape arithmetic does.
    let s = i64t(&[], &[5]);
    let t = ev(
        &Op::Unsqueeze {
            axes: Some(vec![0]),
        },
        &[Some(&s)],
    );
    assert_eq!((t[0].shape.clone(), t[0].to_i64_vec()), (vec![1], vec![5]));
}

#[test]
fn copy_kernels_run_in_place() {
    let x = iota_t(&[2, 3]);
    let xi = ValueInfo {
        dtype: DType::F32,
        shape: &x.shape,
        value: None,
    };
    for op in [
        Op::Identity,
        Op::Dropout,
        Op::Flatten { axis: 1 },
        Op::Squeeze { axes: None },
    ] {
        let outs: Vec<OutInfo> = infer(&op, &[Some(xi)])
            .unwrap()
            .into_iter()
            .take(1)
            .collect();
        let k = lower(&op, &[Some(xi)], &outs).unwrap();
        assert_eq!(k.inplace_input(), Some(0));
        let mut v = iota(6);
        let b = Buf::from_slice(&mut v);
        // SAFETY: output 0 is the in-place input's buffer.
        let bs = [b];
        let io = unsafe { StepIo::new(&bs, &bs, true) };
        k.run(&io, &mut [], &ThreadPool::new(1));
        assert_eq!(v, iota(6));
    }
}

#[test]
fn dropout_mask_and_training_mode() {
    let x = i64t(&[3], &[1, 2, 3]);
    let t = ev(&Op::Dropout, &[Some(&x)]);
    assert_eq!(t[0], x);
    assert_eq!(t[1].as_bool().unwrap(), &[true, true, true]);
    let on = Tensor::from_bool(vec![], vec![true]);
    let e = ev_err(&Op::Dropout, &[Some(&x), None, Some(&on)]);
    assert!(e.contains("training mode"), "{e}");
    let xi = ValueInfo {
        dtype: DType::F32,
        shape: &[3],
        value: None,
    };
    let outs = infer(&Op::Dropout, &[Some(xi)]).unwrap();
    assert!(lower(&Op::Dropout, &[Some(xi)], &outs).is_err());
}

#[test]
fn shape_size_constant_range_constant_of_shape() {
    // Placeholder with no data, as the boot folding passes for Shape.
    let p = Tensor {
        dtype: DType::F32,
        shape: vec![2, 3, 4, 5],
        data: TensorData::F32(Vec::new()),
    };
    let sh = |start, end| ev(&Op::Shape { start, end }, &[Some(&p)])[0].to_i64_vec();
    assert_eq!(sh(0, None), vec![2, 3, 4, 5]);
    assert_eq!(sh(1, Some(-1)), vec![3, 4]);
    assert_eq!(sh(-10, Some(10)), vec![2, 3, 4, 5]);
    assert_eq!(sh(3, Some(1)), Vec::<i64>::new());
    assert_eq!(sh(-1, None), vec![5]);
    let s = ev(&Op::Size, &[Some(&p)]).remove(0);
    assert_eq!((s.shape.clone(), s.to_i64_vec()), (vec![], vec![120]));
    let c = Tensor::from_i64(vec![2], vec![7, 8]);
    assert_eq!(
        ev(&Op::Constant(std::sync::Arc::new(c.clone())), &[]).remove(0),
        c
    );
    // Range: np.arange(1, 10, 3), np.arange(5, 1, -2), floats, empty.
    let r =
        |a: Tensor, b: Tensor, c: Tensor| ev(&Op::Range, &[Some(&a), Some(&b), Some(&c)]).remove(0);
    let s = |v: i64| i64t(&[], &[v]);
    assert_eq!(r(s(1), s(10), s(3)).to_i64_vec(), vec![1, 4, 7]);
    assert_eq!(r(s(5), s(1), s(-2)).to_i64_vec(), vec![5, 3]);
    assert_eq!(r(s(5), s(1), s(2)).shape, vec![0]);
    let f = |v: f32| f32t(&[], &[v]);
    let t = r(f(0.0), f(1.0), f(0.25));
    assert_eq!(
        (t.dtype, t.to_f32_vec()),
        (DType::F32, vec![0.0, 0.25, 0.5, 0.75])
    );
    assert_eq!(r(f(0.0), f(1.0), f(0.3)).to_f32_vec().len(), 4);
    assert!(ev_err(&Op::Range, &[Some(&s(0)), Some(&s(5)), Some(&s(0))]).contains("delta is 0"));
    assert!(
        ev_err(&Op::Range, &[Some(&s(0)), Some(&s(i64::MAX)), Some(&s(1))]).contains("elements")
    );
    // ConstantOfShape.
    let v = std::sync::Arc::new(i64t(&[1], &[3]));
    let t = ev(&Op::ConstantOfShape(v), &[Some(&i64t(&[2], &[2, 2]))]).remove(0);
    assert_eq!(
        (t.shape.clone(), t.to_i64_vec()),
        (vec![2, 2], vec![3, 3, 3, 3])
    );
    let v = std::sync::Arc::new(f32t(&[1], &[0.5]));
    let t = ev(&Op::ConstantOfShape(v), &[Some(&i64t(&[0], &[]))]).remove(0);
    assert_eq!((t.shape.clone(), t.to_f32_vec()), (vec![], vec![0.5]));
}

#[test]
fn gather_negative_indices_and_runtime_data() {
    let x = iota_t(&[3, 4]);
    let idx = i64t(&[2], &[-1, 0]);
    let t = check_all_paths(&Op::Gather { axis: 0 }, &[Some(&x), Some(&idx)], 1).remove(0);
    assert_eq!(t.to_f32_vec(), vec![8., 9., 10., 11., 0., 1., 2., 3.]);
    let idx = i64t(&[2, 2], &[3, 1, -4, 2]);
    let t = check_all_paths(&Op::Gather { axis: -1 }, &[Some(&x), Some(&idx)], 1).remove(0);
    assert_eq!(t.shape, vec![3, 2, 2]);
    assert_eq!(&t.to_f32_vec()[..8], &[3., 1., 0., 2., 7., 5., 4., 6.]);
    // Scalar index drops the axis (shape arithmetic: Shape -> Gather).
    let s = i64t(&[4], &[1, 3, 640, 640]);
    let t = ev(&Op::Gather { axis: 0 }, &[Some(&s), Some(&i64t(&[], &[2]))]).remove(0);
    assert_eq!((t.shape.clone(), t.to_i64_vec()), (vec![], vec![640]));
    let e = ev_err(
        &Op::Gather { axis: 0 },
        &[Some(&x), Some(&i64t(&[1], &[3]))],
    );
    assert!(e.contains("index 3") && e.contains("size 3"), "{e}");
    let rt = ValueInfo {
        dtype: DType::I64,
        shape: &[1],
        value: None,
    };
    // Run-time indices (RT-DETR's TopK picks): the output shape is known
    // at boot; float indices are refused.
    let outs = infer(
        &Op::Gather { axis: 0 },
        &[Some(ValueInfo::of(&x)), Some(rt)],
    )
    .unwrap();
    assert_eq!(outs[0].shape[0], 1);
    let frt = ValueInfo {
        dtype: DType::F32,
        shape: &[1],
        value: None,
    };
    let e = infer(
        &Op::Gather { axis: 0 },
        &[Some(ValueInfo::of(&x)), Some(frt)],
    )
    .unwrap_err();
    assert!(e.0.contains("indices must be integers"), "{}", e.0);
}

#[test]
fn expand_is_bidirectional() {
    let x = f32t(&[3, 1], &[1., 2., 3.]);
    let t = check_all_paths(&Op::Expand, &[Some(&x), Some(&i64t(&[3], &[2, 1, 2]))], 1).remove(0);
    assert_eq!(t.shape, vec![2, 3, 2]);
    assert_eq!(
        t.to_f32_vec(),
        vec![1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
    );
    // A shape smaller than the input keeps the input's dims.
    let t = ev(&Op::Expand, &[Some(&x), Some(&i64t(&[1], &[1]))]).remove(0);
    assert_eq!(t.shape, vec![3, 1]);
    let e = ev_err(&Op::Expand, &[Some(&x), Some(&i64t(&[2], &[4, 1]))]);
    assert!(e.contains("3x1") && e.contains("4x1"), "{e}");
    // An overflowing target is an error, not a panic or an allocation.
    let huge = i64t(&[4], &[1 << 40, 1 << 40, 3, 1]);
    let e = ev_err(&Op::Expand, &[Some(&x), Some(&huge)]);
    assert!(e.contains("overflows"), "{e}");
    let big = i64t(&[3], &[1 << 20, 3, 1 << 10]);
    let e = ev_err(&Op::Expand, &[Some(&x), Some(&big)]);
    assert!(e.contains("limit"), "{e}");
    let b = Tensor::from_bool(vec![1], vec![true]);
    let t = ev(&Op::Expand, &[Some(&b), Some(&i64t(&[1], &[3]))]).remove(0);
    assert_eq!(t.as_bool().unwrap(), &[true, true, true]);
}

fn pad(mode: PadMode) -> Op {
    Op::Pad {
        mode,
        pads: None,
        value: 0.0,
    }
}

#[test]
fn pad_modes_match_numpy() {
    // np.pad(np.arange(6).reshape(2,3), ((1,0),(2,1)), mode)
    let x = iota_t(&[2, 3]);
    let pads = i64t(&[4], &[1, 2, 0, 1]);
    let run = |m, v: Option<&Tensor>| {
        check_all_paths(&pad(m), &[Some(&x), Some(&pads), v], 1)
            .remove(0)
            .to_f32_vec()
    };
    let v = f32t(&[], &[9.0]);
    assert_eq!(
        run(PadMode::Constant, Some(&v)),
        vec![9., 9., 9., 9., 9., 9., 9., 9., 0., 1., 2., 9., 9., 9., 3., 4., 5., 9.]
    );
    assert_eq!(
        run(PadMode::Reflect, None),
        vec![5., 4., 3., 4., 5., 4., 2., 1., 0., 1., 2., 1., 5., 4., 3., 4., 5., 4.]
    );
    assert_eq!(
        run(PadMode::Edge, None),
        vec![0., 0., 0., 1., 2., 2., 0., 0., 0., 1., 2., 2., 3., 3., 3., 4., 5., 5.]
    );
    assert_eq!(
        run(PadMode::Wrap, None),
        vec![4., 5., 3., 4., 5., 3., 1., 2., 0., 1., 2., 0., 4., 5., 3., 4., 5., 3.]
    );
    // Pads wider than the axis: np.pad([1,2,3], (7,8), mode)
    let a = f32t(&[3], &[1., 2., 3.]);
    let wide = i64t(&[2], &[7, 8]);
    let r = |m| {
        check_all_paths(&pad(m), &[Some(&a), Some(&wide)], 1)
            .remove(0)
            .to_f32_vec()
    };
    let v = |s: &[i32]| s.iter().map(|&x| x as f32).collect::<Vec<_>>();
    assert_eq!(
        r(PadMode::Reflect),
        v(&[2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3])
    );
    assert_eq!(
        r(PadMode::Wrap),
        v(&[3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2])
    );
    // Opset-18 axes input and a negative (cropping) pad.
    let x3 = iota_t(&[2, 2, 3]);
    let p = i64t(&[2], &[1, -1]);
    let ax = i64t(&[1], &[-1]);
    let t = check_all_paths(
        &pad(PadMode::Constant),
        &[Some(&x3), Some(&p), None, Some(&ax)],
        1,
    )
    .remove(0);
    assert_eq!(t.shape, vec![2, 2, 3]);
    assert_eq!(&t.to_f32_vec()[..6], &[0., 0., 1., 0., 3., 4.]);
    // Negative pads crop before padding (ONNX Runtime's results).
    let a4 = f32t(&[4], &[1., 2., 3., 4.]);
    for (m, p, want) in [
        (PadMode::Reflect, [2, -1], [3., 2., 1., 2., 3.]),
        (PadMode::Reflect, [-1, 2], [2., 3., 4., 3., 2.]),
        (PadMode::Edge, [2, -1], [1., 1., 1., 2., 3.]),
        (PadMode::Wrap, [2, -1], [2., 3., 1., 2., 3.]),
        (PadMode::Wrap, [-1, 2], [2., 3., 4., 2., 3.]),
        (PadMode::Constant, [-1, 2], [2., 3., 4., 0., 0.]),
    ] {
        let pt = i64t(&[2], &p);
        let t = check_all_paths(&pad(m), &[Some(&a4), Some(&pt)], 1).remove(0);
        assert_eq!(t.to_f32_vec(), want, "{m:?} {p:?}");
    }
    // Attribute pads and value (opset < 11).
    let op = Op::Pad {
        mode: PadMode::Constant,
        pads: Some(vec![0, 1, 0, 0]),
        value: -1.0,
    };
    let t = ev(&op, &[Some(&x)]).remove(0);
    assert_eq!(t.to_f32_vec(), vec![-1., 0., 1., 2., -1., 3., 4., 5.]);
    // Bool data pads with false.
    let b = Tensor::from_bool(vec![2], vec![true, true]);
    let t = ev(
        &pad(PadMode::Constant),
        &[Some(&b), Some(&i64t(&[2], &[1, 0]))],
    )
    .remove(0);
    assert_eq!(t.as_bool().unwrap(), &[false, true, true]);
    // Errors.
    let e = ev_err(
        &pad(PadMode::Constant),
        &[Some(&x), Some(&i64t(&[2], &[1, 1]))],
    );
    assert!(e.contains("2 values") && e.contains("need 4"), "{e}");
    let e = ev_err(
        &pad(PadMode::Constant),
        &[Some(&x), Some(&i64t(&[4], &[0, -4, 0, 0]))],
    );
    assert!(e.contains("negative"), "{e}");
    let z = f32t(&[0], &[]);
    let e = ev_err(
        &pad(PadMode::Reflect),
        &[Some(&z), Some(&i64t(&[2], &[1, 1]))],
    );
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn large_pad_and_slice_split_over_threads() {
    let x = iota_t(&[3, 64, 100]);
    let pads = i64t(&[6], &[0, 1, 2, 0, 3, 4]);
    check_all_paths(&pad(PadMode::Reflect), &[Some(&x), Some(&pads)], 1);
    check_all_paths(&pad(PadMode::Constant), &[Some(&x), Some(&pads)], 1);
    let s = i64t(&[2], &[1, 99]);
    let e = i64t(&[2], &[64, 0]);
    let a = i64t(&[2], &[1, 2]);
    let st = i64t(&[2], &[2, -3]);
    check_all_paths(
        &slice_op(),
        &[Some(&x), Some(&s), Some(&e), Some(&a), Some(&st)],
        1,
    );
}

/// Data movement carries run-time integers held as f32 (TopK's indices in
/// NMS-free heads; which ops may produce them is `ops::runs_on_integers`,
/// enforced when the model is planned) but never a run-time bool tensor.
#[test]
fn runtime_integers_move_and_runtime_bools_are_rejected() {
    let xi = ValueInfo {
        dtype: DType::I64,
        shape: &[3],
        value: None,
    };
    let ok = lower(
        &Op::Identity,
        &[Some(xi)],
        &[OutInfo {
            dtype: DType::I64,
            shape: vec![3],
        }],
    );
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.0));
    let xb = ValueInfo {
        dtype: DType::Bool,
        shape: &[3],
        value: None,
    };
    let e = lower(
        &Op::Identity,
        &[Some(xb)],
        &[OutInfo {
            dtype: DType::Bool,
            shape: vec![3],
        }],
    )
    .err()
    .unwrap();
    assert!(e.0.contains("bool tensor computed at run time"), "{}", e.0);
}

mod random;
use random::naive;
