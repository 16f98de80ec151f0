//! Unit tests of `ops::pool`.

use super::*;
use crate::engine::ops::eval;
use crate::engine::tensor::Tensor;

/// Deterministic test input; the ORT literals below were generated from
/// the same formula (float32 arithmetic) in Python.
fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
        .collect();
    Tensor::from_f32(shape.to_vec(), v)
}

fn attrs(kernel: &[usize]) -> PoolAttrs {
    PoolAttrs {
        auto_pad: AutoPad::NotSet,
        ceil_mode: false,
        count_include_pad: false,
        dilations: vec![],
        kernel_shape: kernel.to_vec(),
        pads: vec![],
        strides: vec![],
        storage_order: 0,
    }
}

fn run(op: &Op, x: &Tensor) -> OpResult<Tensor> {
    let mut out = eval(op, &[Some(x)])?;
    Ok(out.remove(0))
}

/// Runs the kernel on a 3-thread pool (eval uses one thread).
fn run_threaded(op: &Op, x: &Tensor) -> Vec<f32> {
    let info = [Some(ValueInfo::of(x))];
    let outs = infer(op, &info).unwrap();
    let k = lower(op, &info, &outs).unwrap();
    let mut xin = x.as_f32().unwrap().to_vec();
    let mut y = vec![f32::NAN; outs[0].shape.iter().product()];
    let mut scratch = vec![0.0; k.scratch_len()];
    let ins = [Buf::from_slice(&mut xin)];
    let os = [Buf::from_slice(&mut y)];
    let pool = ThreadPool::new(3);
    // SAFETY: the buffers are distinct live Vecs of the declared lengths.
    let io = unsafe { StepIo::new(&ins, &os, false) };
    k.run(&io, &mut scratch, &pool);
    y
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-5 * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// The ONNX semantics written out naively: every tap of every window,
/// padded positions tested one by one.
fn naive(max: bool, a: &PoolAttrs, x: &Tensor) -> Option<(Vec<usize>, Vec<f32>)> {
    let shape = &x.shape;
    let xv = x.as_f32().unwrap();
    let r = shape.len() - 2;
    let or1 = |v: &Vec<usize>, n: usize| if v.is_empty() { vec![1; n] } else { v.clone() };
    let k: Vec<i64> = a.kernel_shape.iter().map(|&v| v as i64).collect();
    let s: Vec<i64> = or1(&a.strides, r).iter().map(|&v| v as i64).collect();
    let d: Vec<i64> = or1(&a.dilations, r).iter().map(|&v| v as i64).collect();
    let pads: Vec<i64> = if a.pads.is_empty() {
        vec![0; 2 * r]
    } else {
        a.pads.iter().map(|&v| v as i64).collect()
    };
    let (mut pb, mut pe, mut out) = (vec![0i64; r], vec![0i64; r], vec![0i64; r]);
    for i in 0..r {
        let n = shape[2 + i] as i64;
        let sw = (k[i] - 1) * d[i] + 1;
        match a.auto_pad {
            AutoPad::NotSet => {
                pb[i] = pads[i];
                pe[i] = pads[r + i];
                let v = (n + pb[i] + pe[i] - sw) as f64 / s[i] as f64 + 1.0;
                out[i] = if a.ceil_mode { v.ceil() } else { v.floor() } as i64;
                if a.ceil_mode && (out[i] - 1) * s[i] >= n + pb[i] {
                    out[i] -= 1;
                }
            }
            AutoPad::Valid => {
                out[i] = ((n - sw) as f64 / s[i] as f64).floor() as i64 + 1;
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                out[i] = (n as f64 / s[i] as f64).ceil() as i64;
                let total = ((out[i] - 1) * s[i] + sw - n).max(0);
                let half = total / 2;
                (pb[i], pe[i]) = if a.auto_pad == AutoPad::SameUpper {
                    (half, total - half)
                } else {
                    (total - half, half)
                };
            }
        }
        if out[i] <= 0 || n + pb[i] + pe[i] < sw {
            return None;
        }
    }
    let mut oshape = shape[..2].to_vec();
    oshape.extend(out.iter().map(|&o| o as usize));
    let planes = shape[0] * shape[1];
    let in_plane: usize = shape[2..].iter().product();
    let out_plane: usize = oshape[2..].iter().product();
    let ntaps: i64 = k.iter().product();
    let mut y = Vec::new();
    for p in 0..planes {
        for oi in 0..out_plane {
            let mut oc = vec![0i64; r];
            let mut rem = oi;
            for i in (0..r).rev() {
                oc[i] = (rem % oshape[2 + i]) as i64;
                rem /= oshape[2 + i];
            }
            let (mut acc, mut inside, mut padded) =
                (if max { f32::NEG_INFINITY } else { 0.0 }, 0, 0);
            for t in 0..ntaps {
                let mut rem = t;
                let (mut off, mut is_in, mut is_pad) = (0usize, true, true);
                for i in (0..r).rev() {
                    let j = rem % k[i];
                    rem /= k[i];
                    let n = shape[2 + i] as i64;
                    let pos = oc[i] * s[i] - pb[i] + j * d[i];
                    is_in &= pos >= 0 && pos < n;
                    is_pad &= pos >= -pb[i] && pos < n + pe[i];
                    if is_in {
                        let stride: usize = shape[3 + i..].iter().product();
                        off += pos as usize * stride;
                    }
                }
                padded += is_pad as usize;
                if is_in {
                    inside += 1;
                    let v = xv[p * in_plane + off];
                    acc = if max { acc.max(v) } else { acc + v };
                }
            }
            y.push(if max {
                acc
            } else {
                let c = if a.count_include_pad { padded } else { inside };
                acc / c as f32
            });
        }
    }
    Some((oshape, y))
}

type Case = (&'static str, Op, Vec<usize>, (Vec<usize>, Vec<f32>));

fn ort_cases() -> Vec<Case> {
    let with = |k: &[usize], f: &dyn Fn(&mut PoolAttrs)| {
        let mut a = attrs(k);
        f(&mut a);
        a
    };
    vec![
        (
            "maxpool_2d_k3_s2_p1_ceil",
            Op::MaxPool(with(&[3, 3], &|a| {
                a.strides = vec![2, 2];
                a.pads = vec![1, 1, 1, 1];
                a.ceil_mode = true;
            })),
            vec![1, 2, 5, 6],
            maxpool_2d_k3_s2_p1_ceil(),
        ),
        (
            "maxpool_2d_asym_pads_s1",
            Op::MaxPool(with(&[2, 3], &|a| a.pads = vec![1, 0, 0, 2])),
            vec![1, 1, 4, 5],
            maxpool_2d_asym_pads_s1(),
        ),
        (
            "avgpool_2d_ceil_cip",
            Op::AveragePool(with(&[3, 3], &|a| {
                a.strides = vec![2, 2];
                a.pads = vec![1, 0, 1, 2];
                a.ceil_mode = true;
                a.count_include_pad = true;
            })),
            vec![1, 2, 5, 6],
            avgpool_2d_ceil_cip(),
        ),
        (
            "avgpool_2d_ceil_nocip",
            Op::AveragePool(with(&[3, 3], &|a| {
                a.strides = vec![2, 2];
                a.pads = vec![1, 0, 1, 2];
                a.ceil_mode = true;
            })),
            vec![1, 2, 5, 6],
            avgpool_2d_ceil_nocip(),
        ),
        (
            "avgpool_1d_ceil_window_past_padding",
            Op::AveragePool(with(&[3], &|a| {
                a.strides = vec![3];
                a.ceil_mode = true;
                a.count_include_pad = true;
            })),
            vec![1, 1, 4],
            avgpool_1d_ceil_window_past_padding(),
        ),
        (
            "avgpool_1d_ceil_pads_cip",
            Op::AveragePool(with(&[3], &|a| {
                a.strides = vec![2];
                a.pads = vec![1, 1];
                a.ceil_mode = true;
                a.count_include_pad = true;
            })),
            vec![1, 2, 7],
            avgpool_1d_ceil_pads_cip(),
        ),
        (
            "maxpool_3d_dilated",
            Op::MaxPool(with(&[2, 2, 2], &|a| {
                a.strides = vec![1, 2, 2];
                a.dilations = vec![1, 2, 1];
                a.pads = vec![1, 0, 1, 0, 1, 1];
            })),
            vec![1, 1, 4, 5, 6],
            maxpool_3d_dilated(),
        ),
        (
            "avgpool_3d_ceil_cip",
            Op::AveragePool(with(&[2, 2, 3], &|a| {
                a.strides = vec![2, 2, 2];
                a.pads = vec![0, 1, 1, 1, 0, 1];
                a.ceil_mode = true;
                a.count_include_pad = true;
            })),
            vec![1, 1, 3, 4, 5],
            avgpool_3d_ceil_cip(),
        ),
        (
            "avgpool_same_lower_cip",
            Op::AveragePool(with(&[3, 2], &|a| {
                a.strides = vec![2, 2];
                a.auto_pad = AutoPad::SameLower;
                a.count_include_pad = true;
            })),
            vec![1, 1, 5, 6],
            avgpool_same_lower_cip(),
        ),
        (
            "avgpool_same_upper_nocip",
            Op::AveragePool(with(&[3, 2], &|a| {
                a.strides = vec![2, 2];
                a.auto_pad = AutoPad::SameUpper;
            })),
            vec![1, 1, 5, 6],
            avgpool_same_upper_nocip(),
        ),
        (
            "maxpool_same_lower",
            Op::MaxPool(with(&[2, 4], &|a| {
                a.strides = vec![1, 3];
                a.auto_pad = AutoPad::SameLower;
            })),
            vec![1, 1, 5, 7],
            maxpool_same_lower(),
        ),
        (
            "maxpool_valid",
            Op::MaxPool(with(&[2, 3], &|a| {
                a.strides = vec![2, 2];
                a.auto_pad = AutoPad::Valid;
            })),
            vec![1, 2, 5, 7],
            maxpool_valid(),
        ),
        (
            "avgpool_dilated_cip",
            Op::AveragePool(with(&[2, 3], &|a| {
                a.strides = vec![1, 2];
                a.dilations = vec![2, 2];
                a.pads = vec![1, 1, 1, 1];
                a.count_include_pad = true;
            })),
            vec![1, 1, 6, 7],
            avgpool_dilated_cip(),
        ),
        (
            "maxpool_dilated_ceil",
            Op::MaxPool(with(&[2, 2], &|a| {
                a.strides = vec![2, 2];
                a.dilations = vec![2, 3];
                a.pads = vec![1, 0, 0, 1];
                a.ceil_mode = true;
            })),
            vec![1, 1, 6, 7],
            maxpool_dilated_ceil(),
        ),
        (
            "global_avg",
            Op::GlobalAveragePool,
            vec![2, 3, 4, 5],
            global_avg(),
        ),
        (
            "global_max",
            Op::GlobalMaxPool,
            vec![2, 3, 4, 5],
            global_max(),
        ),
        (
            "global_max_1d",
            Op::GlobalMaxPool,
            vec![1, 2, 13],
            global_max_1d(),
        ),
    ]
}

#[test]
fn matches_onnxruntime_outputs() {
    for (name, op, shape, (want_shape, want)) in ort_cases() {
        let x = input(&shape);
        let y = run(&op, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(y.shape, want_shape, "{name}: shape");
        assert_close(y.as_f32().unwrap(), &want, name);
        assert_close(&run_threaded(&op, &x), &want, name);
        if let Op::MaxPool(a) | Op::AveragePool(a) = &op {
            let (ns, nv) = naive(matches!(op, Op::MaxPool(_)), a, &x).unwrap();
            assert_eq!(ns, want_shape, "{name}: naive shape");
            assert_close(&nv, &want, &format!("{name} (naive)"));
        }
    }
}

/// The spec's SAME formulas with dilation (onnxruntime deviates here;
/// values worked out by hand): input 1..5, kernel 2, stride 2,
/// dilation 2 gives output 3 and pads 1+1.
#[test]
fn same_padding_uses_the_dilated_window() {
    let x = Tensor::from_f32(vec![1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let mut a = attrs(&[2]);
    a.strides = vec![2];
    a.dilations = vec![2];
    a.auto_pad = AutoPad::SameUpper;
    let y = run(&Op::MaxPool(a.clone()), &x).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[2.0, 4.0, 4.0]);
    a.count_include_pad = true;
    let y = run(&Op::AveragePool(a.clone()), &x).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[1.0, 3.0, 2.0]);
    a.count_include_pad = false;
    let y = run(&Op::AveragePool(a), &x).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[2.0, 3.0, 4.0]);
}

/// Stride larger than the kernel: SAME's pad would be negative and is
/// clamped to zero (windows at 0 and 3).
#[test]
fn same_padding_never_goes_negative() {
    let x = Tensor::from_f32(vec![1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let mut a = attrs(&[1]);
    a.strides = vec![3];
    a.auto_pad = AutoPad::SameUpper;
    let y = run(&Op::MaxPool(a), &x).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[1.0, 4.0]);
}

#[test]
fn ceil_mode_does_not_change_auto_pad_shapes() {
    for auto_pad in [AutoPad::Valid, AutoPad::SameUpper, AutoPad::SameLower] {
        let mut a = attrs(&[2]);
        a.strides = vec![2];
        a.auto_pad = auto_pad;
        let x = input(&[1, 1, 5]);
        let floor = run(&Op::MaxPool(a.clone()), &x).unwrap();
        a.ceil_mode = true;
        let ceil = run(&Op::MaxPool(a), &x).unwrap();
        assert_eq!(floor, ceil, "{auto_pad:?}");
    }
}

/// Tiny deterministic generator for the attribute sweep.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn matches_naive_reference_over_attribute_grid() {
    let mut rng = Lcg(7);
    let shapes: [&[usize]; 5] = [
        &[1, 2, 9],
        &[2, 3, 7, 8],
        &[1, 2, 5, 11],
        &[1, 2, 4, 5, 6],
        &[1, 1, 3, 4, 3, 5],
    ];
    let auto = [
        AutoPad::NotSet,
        AutoPad::NotSet,
        AutoPad::NotSet,
        AutoPad::Valid,
        AutoPad::SameUpper,
        AutoPad::SameLower,
    ];
    let (mut checked, mut rejected) = (0, 0);
    for case in 0..600 {
        let shape = shapes[rng.next(shapes.len())];
        let r = shape.len() - 2;
        let mut a = attrs(&(0..r).map(|_| 1 + rng.next(4)).collect::<Vec<_>>());
        a.strides = (0..r).map(|_| 1 + rng.next(3)).collect();
        if rng.next(2) == 0 {
            a.dilations = (0..r).map(|_| 1 + rng.next(2)).collect();
        }
        a.auto_pad = auto[rng.next(auto.len())];
        if a.auto_pad == AutoPad::NotSet && rng.next(3) != 0 {
            a.pads = (0..2 * r).map(|_| rng.next(3)).collect();
        }
        a.ceil_mode = rng.next(2) == 0;
        a.count_include_pad = rng.next(2) == 0;
        let max = rng.next(2) == 0;
        let op = if max {
            Op::MaxPool(a.clone())
        } else {
            Op::AveragePool(a.clone())
        };
        let x = input(shape);
        let what = format!("case {case}: {op:?} on {shape:?}");
        match (naive(max, &a, &x), run(&op, &x)) {
            (Some((ws, wv)), Ok(y)) => {
                assert_eq!(y.shape, ws, "{what}");
                assert_close(y.as_f32().unwrap(), &wv, &what);
                checked += 1;
            }
            (None, Err(_)) => rejected += 1,
            (Some(_), Err(e)) => panic!("{what}: rejected: {e}"),
            (None, Ok(y)) => panic!("{what}: accepted with shape {:?}", y.shape),
        }
    }
    assert!(
        checked > 400 && rejected > 0,
        "{checked} checked, {rejected} rejected"
    );
}

/// yolov8 SPPF: MaxPool k=5 s=1 p=2 keeps the shape (the vectorised
/// interior path), also on several threads.
#[test]
fn sppf_maxpool_matches_naive() {
    let mut a = attrs(&[5, 5]);
    a.pads = vec![2, 2, 2, 2];
    let op = Op::MaxPool(a.clone());
    let x = input(&[1, 8, 20, 20]);
    let y = run(&op, &x).unwrap();
    let (ws, wv) = naive(true, &a, &x).unwrap();
    assert_eq!(y.shape, ws);
    assert_eq!(ws, vec![1, 8, 20, 20]);
    assert_close(y.as_f32().unwrap(), &wv, "sppf");
    assert_close(&run_threaded(&op, &x), &wv, "sppf threaded");
}

#[test]
fn windows_entirely_in_padding() {
    // Pads larger than the kernel (ONNX allows it): max of nothing is
    // -inf, the average of nothing counted is NaN, and with
    // count_include_pad the padding counts as zeros.
    let x = Tensor::from_f32(vec![1, 1, 2], vec![1.0, 3.0]);
    let mut a = attrs(&[2]);
    a.pads = vec![2, 2];
    let y = run(&Op::MaxPool(a.clone()), &x).unwrap();
    assert_eq!(
        y.as_f32().unwrap(),
        &[f32::NEG_INFINITY, 1.0, 3.0, 3.0, f32::NEG_INFINITY]
    );
    let y = run(&Op::AveragePool(a.clone()), &x).unwrap();
    let v = y.as_f32().unwrap();
    assert!(v[0].is_nan() && v[4].is_nan());
    assert_eq!(&v[1..4], &[1.0, 2.0, 3.0]);
    a.count_include_pad = true;
    let y = run(&Op::AveragePool(a), &x).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[0.0, 0.5, 2.0, 1.5, 0.0]);
}

#[test]
fn bad_attributes_are_named() {
    let err = |op: Op, shape: &[usize]| {
        let x = input(shape);
        infer(&op, &[Some(ValueInfo::of(&x))])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(Op::MaxPool(attrs(&[3, 3, 3])), &[1, 8, 32, 32]),
        "kernel_shape [3,3,3] does not match 2 spatial dims of input 1x8x32x32"
    );
    let mut a = attrs(&[3, 3]);
    a.strides = vec![2];
    assert!(err(Op::MaxPool(a), &[1, 8, 32, 32]).contains("strides [2] has 1 values"));
    let mut a = attrs(&[3, 3]);
    a.pads = vec![1, 1, 1, 1];
    a.auto_pad = AutoPad::SameUpper;
    assert!(err(Op::AveragePool(a), &[1, 8, 32, 32]).contains("cannot be combined"));
    let mut a = attrs(&[5, 2]);
    a.dilations = vec![2, 1];
    assert_eq!(
        err(Op::MaxPool(a), &[1, 1, 6, 6]),
        "window 9 (kernel 5, dilation 2) is larger than the padded input 6 (input 6 + pads 0+0) on spatial dim 0 of 1x1x6x6"
    );
    assert!(err(Op::MaxPool(attrs(&[2])), &[1, 4]).contains("rank >= 3"));
    assert!(err(Op::GlobalMaxPool, &[4]).contains("rank >= 2"));
    let mut a = attrs(&[0, 2]);
    a.strides = vec![1, 1];
    assert!(err(Op::MaxPool(a), &[1, 1, 4, 4]).contains("kernel_shape [0,2] must be positive"));
}

#[test]
fn global_pool_keeps_rank() {
    let x = input(&[1, 2, 3, 4, 5]);
    let y = run(&Op::GlobalAveragePool, &x).unwrap();
    assert_eq!(y.shape, vec![1, 2, 1, 1, 1]);
    let v = x.as_f32().unwrap();
    for c in 0..2 {
        let want = v[c * 60..(c + 1) * 60].iter().sum::<f32>() / 60.0;
        assert!((y.as_f32().unwrap()[c] - want).abs() < 1e-5);
    }
}
// maxpool_2d_k3_s2_p1_ceil: ort, reference agrees: True
#[rustfmt::skip]
fn maxpool_2d_k3_s2_p1_ceil() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 4], vec![4.4700003, 4.4700003, 1.4099998, -1.6500001, 4.4700003, 4.76, 3.2299995, 0.17000008, -1.3599999, 4.76, 4.1400003, 1.0799999, 0.46000004, 5.05, 5.05, 2.9, 2.2800002, 0.75, 4.7200003, 4.7200003, 3.1899996, 1.6599998, 4.7200003, 4.7200003]) }
// maxpool_2d_asym_pads_s1: ort, reference agrees: True
#[rustfmt::skip]
fn maxpool_2d_asym_pads_s1() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 4, 5], vec![3.5600004, 3.5600004, 2.0300002, 0.5, -1.03, 4.4700003, 4.4700003, 4.4700003, 2.94, 1.4099998, 4.4700003, 4.4700003, 4.4700003, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 3.8500004, 3.8500004, 3.8500004]) }
// avgpool_2d_ceil_cip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_2d_ceil_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 3], vec![0.43444455, 0.6366667, -0.59555554, -0.22555542, 2.3200002, 0.016666677, -1.1088889, 1.3355556, 0.61777776, -1.0166667, 0.30666673, 1.4266667, -0.15999998, -2.0988889, 0.8077779, 0.8033333, -1.2366668, -0.72333336]) }
// avgpool_2d_ceil_nocip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_2d_ceil_nocip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 3, 3], vec![0.6516668, 0.9550001, -1.3399999, -0.22555542, 2.3200002, 0.025000015, -1.6633333, 2.0033333, 1.39, -1.525, 0.46000013, 3.21, -0.15999998, -2.0988889, 1.2116668, 1.2049999, -1.8550001, -1.6275]) }
// avgpool_1d_ceil_window_past_padding: ort, reference agrees: False
#[rustfmt::skip]
fn avgpool_1d_ceil_window_past_padding() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 2], vec![0.19666688, 0.5]) }
// avgpool_1d_ceil_pads_cip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_1d_ceil_pads_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 4], vec![-0.47999987, 2.0300002, -1.03, -2.2166667, 2.47, 1.41, -1.65, -2.6299999]) }
// maxpool_3d_dilated: ort, reference agrees: True
#[rustfmt::skip]
fn maxpool_3d_dilated() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 4, 2, 4], vec![-3.1799998, 3.8500004, 2.3200002, -0.7399998, -1.3599999, 3.8500004, 4.1400003, 1.0799999, 1.3699999, 3.8500004, 5.05, 3.8100004, 3.1899996, 3.8500004, 4.1400003, 3.8100004, 4.1000004, 4.3900003, 5.05, 3.8100004, 3.1899996, 4.6800003, 3.1499996, 3.8100004, 4.1000004, 4.3900003, 4.3500004, 2.8200002, 2.1999998, 4.6800003, 4.3500004, 4.6400003]) }
// avgpool_3d_ceil_cip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_3d_ceil_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 2, 3, 3], vec![0.54583335, 0.93249995, -0.14333332, -1.5133333, -0.36083326, 1.3125001, 0.9266667, -0.9049999, -2.1333334, 0.61083335, 0.3425, -0.15416665, -0.9216666, -0.0074999332, 0.9116667, 0.29833332, -0.7, -1.2316667]) }
// avgpool_same_lower_cip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_same_lower_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![-0.17666657, 1.1466666, -0.89333326, -2.2633333, 3.085, 0.025000015, -1.7199999, 1.285, 0.9266667]) }
// avgpool_same_upper_nocip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_same_upper_nocip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![-0.26499987, 1.72, -1.3399999, -2.2633333, 3.085, 0.025000015, -2.58, 1.9275, 1.39]) }
// maxpool_same_lower: ort, reference agrees: False
#[rustfmt::skip]
fn maxpool_same_lower() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 5, 3], vec![3.5600004, 3.5600004, -1.03, 4.4700003, 3.5600004, -1.03, 4.4700003, 2.94, 4.76, 3.8500004, 2.3200002, 4.76, 3.2299995, 1.6999998, 5.05]) }
// maxpool_valid: ort, reference agrees: True
#[rustfmt::skip]
fn maxpool_valid() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 2, 3], vec![4.4700003, 2.0300002, -1.03, 3.8500004, 0.78999996, 4.76, 1.9899998, -1.0699999, 4.4300003, 0.75, 4.7200003, 4.7200003]) }
// avgpool_dilated_cip: ort, reference agrees: True
#[rustfmt::skip]
fn avgpool_dilated_cip() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 6, 3], vec![0.47000003, -0.059999943, -0.54999995, 0.9400001, -0.11999985, -1.0999999, 0.5266667, -0.73999995, -1.5133333, 0.11333338, 0.32166675, -0.24499996, -0.29999998, -0.29833326, -0.6583331, -0.15000002, 0.69166666, 0.5116667]) }
// maxpool_dilated_ceil: ort, reference agrees: True
#[rustfmt::skip]
fn maxpool_dilated_ceil() -> (Vec<usize>, Vec<f32>) { (vec![1, 1, 3, 3], vec![4.4700003, 1.4099998, -1.6500001, 4.4700003, 1.4099998, -1.6500001, 3.2299995, 4.4300003, -2.89]) }
// global_avg: ort, reference agrees: True
#[rustfmt::skip]
fn global_avg() -> (Vec<usize>, Vec<f32>) { (vec![2, 3, 1, 1], vec![-0.3639999, 0.315, -0.014999974, 0.15950008, 0.33400005, 0.0039999844]) }
// global_max: ort, reference agrees: True
#[rustfmt::skip]
fn global_max() -> (Vec<usize>, Vec<f32>) { (vec![2, 3, 1, 1], vec![4.4700003, 5.05, 4.7200003, 5.01, 4.9700003, 4.6400003]) }
// global_max_1d: ort, reference agrees: False
#[rustfmt::skip]
fn global_max_1d() -> (Vec<usize>, Vec<f32>) { (vec![1, 2, 1], vec![4.4700003, 4.76]) }
