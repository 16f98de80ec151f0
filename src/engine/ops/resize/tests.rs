//! Unit tests of `ops::resize`.

use super::*;
use crate::engine::ops::eval;

/// Deterministic test input; the expected outputs below were generated
/// from the same formula (float32 arithmetic) in Python.
fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
        .collect();
    Tensor::from_f32(shape.to_vec(), v)
}

struct Case {
    name: &'static str,
    attrs: ResizeAttrs,
    shape: Vec<usize>,
    roi: Option<Vec<f32>>,
    scales: Option<Vec<f32>>,
    sizes: Option<Vec<i64>>,
    want_shape: Vec<usize>,
    want: Vec<f32>,
}

impl Case {
    /// The node's inputs: X, roi, scales, sizes (or X, scales at opset 10).
    fn inputs(&self) -> Vec<Option<Tensor>> {
        let f = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| Tensor::from_f32(vec![v.len()], v.clone()))
        };
        let x = Some(input(&self.shape));
        if self.attrs.scales_at_input1 {
            return vec![x, f(&self.scales)];
        }
        let sizes = self
            .sizes
            .as_ref()
            .map(|v| Tensor::from_i64(vec![v.len()], v.clone()));
        vec![x, f(&self.roi), f(&self.scales), sizes]
    }
}

fn run(op: &Op, ins: &[Option<Tensor>]) -> OpResult<Tensor> {
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
    Ok(eval(op, &refs)?.remove(0))
}

/// Runs the kernel on a 3-thread pool (eval uses one thread); only X
/// travels at run time.
fn run_threaded(op: &Op, ins: &[Option<Tensor>]) -> Vec<f32> {
    let info: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.as_ref().map(ValueInfo::of)).collect();
    let outs = infer(op, &info).unwrap();
    let k = lower(op, &info, &outs).unwrap();
    let mut x = ins[0].as_ref().unwrap().as_f32().unwrap().to_vec();
    let mut y = vec![f32::NAN; outs[0].shape.iter().product()];
    let mut scratch = vec![f32::NAN; k.scratch_len()];
    let mut bufs = vec![Buf::from_slice(&mut x)];
    bufs.extend((1..ins.len()).map(|_| Buf::empty()));
    let os = [Buf::from_slice(&mut y)];
    let pool = ThreadPool::new(3);
    // SAFETY: the buffers are distinct live Vecs of the declared lengths.
    let io = unsafe { StepIo::new(&bufs, &os, false) };
    k.run(&io, &mut scratch, &pool);
    y
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn matches_onnx_reference_outputs() {
    for c in cases() {
        let op = Op::Resize(c.attrs.clone());
        let ins = c.inputs();
        let y = run(&op, &ins).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(y.shape, c.want_shape, "{}: shape", c.name);
        assert_close(y.as_f32().unwrap(), &c.want, c.name);
        assert_close(
            &run_threaded(&op, &ins),
            &c.want,
            &format!("{} (threaded)", c.name),
        );
    }
}

fn nearest() -> ResizeAttrs {
    ResizeAttrs {
        mode: ResizeMode::Nearest,
        coord: CoordTransform::HalfPixel,
        nearest: NearestMode::RoundPreferFloor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: None,
        keep_aspect: KeepAspect::Stretch,
        scales_at_input1: false,
    }
}

fn scales(v: &[f32]) -> Option<Tensor> {
    Some(Tensor::from_f32(vec![v.len()], v.to_vec()))
}

/// yolov8's upsample: the integer fast path (no scratch) against the
/// general gather on a shape big enough to split across threads.
#[test]
fn yolov8_2x_upsample_fast_path() {
    for (coord, mode) in [
        (CoordTransform::Asymmetric, NearestMode::Floor),
        (CoordTransform::HalfPixel, NearestMode::RoundPreferFloor),
    ] {
        let mut a = nearest();
        a.coord = coord;
        a.nearest = mode;
        let x = input(&[1, 16, 20, 20]);
        let ins = [Some(x.clone()), None, scales(&[1.0, 1.0, 2.0, 2.0])];
        let info: Vec<Option<ValueInfo>> =
            ins.iter().map(|t| t.as_ref().map(ValueInfo::of)).collect();
        let outs = infer(&Op::Resize(a.clone()), &info).unwrap();
        assert_eq!(outs[0].shape, vec![1, 16, 40, 40]);
        let k = lower(&Op::Resize(a.clone()), &info, &outs).unwrap();
        assert_eq!(k.scratch_len(), 0);
        let y = run_threaded(&Op::Resize(a), &ins);
        let xv = x.as_f32().unwrap();
        for c in 0..16 {
            for oy in 0..40 {
                for ox in 0..40 {
                    let want = xv[c * 400 + (oy / 2) * 20 + ox / 2];
                    assert_eq!(
                        y[c * 1600 + oy * 40 + ox],
                        want,
                        "{coord:?} c{c} y{oy} x{ox}"
                    );
                }
            }
        }
    }
}

#[test]
fn unit_scales_are_an_in_place_copy() {
    let mut a = nearest();
    a.mode = ResizeMode::Cubic;
    let x = input(&[1, 2, 3, 4]);
    let ins = [Some(x.clone()), None, scales(&[1.0, 1.0, 1.0, 1.0])];
    let info: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.as_ref().map(ValueInfo::of)).collect();
    let outs = infer(&Op::Resize(a.clone()), &info).unwrap();
    let k = lower(&Op::Resize(a.clone()), &info, &outs).unwrap();
    assert_eq!(k.inplace_input(), Some(0));
    assert_eq!(run(&Op::Resize(a), &ins).unwrap(), x);
}

/// Opset 11-12 models pass an empty `scales` next to `sizes`, and an
/// empty roi.
#[test]
fn empty_optional_inputs_count_as_absent() {
    let x = input(&[1, 1, 4, 6]);
    let empty = Some(Tensor::from_f32(vec![0], vec![]));
    let sizes = Some(Tensor::from_i64(vec![4], vec![1, 1, 8, 3]));
    let y = run(
        &Op::Resize(nearest()),
        &[Some(x), empty.clone(), empty, sizes],
    )
    .unwrap();
    assert_eq!(y.shape, vec![1, 1, 8, 3]);
}

#[test]
fn bad_inputs_are_named() {
    let err = |a: ResizeAttrs, ins: &[Option<Tensor>]| {
        let info: Vec<Option<ValueInfo>> =
            ins.iter().map(|t| t.as_ref().map(ValueInfo::of)).collect();
        infer(&Op::Resize(a), &info).unwrap_err().to_string()
    };
    let x = || Some(input(&[1, 2, 4, 4]));
    let sizes = |v: &[i64]| Some(Tensor::from_i64(vec![v.len()], v.to_vec()));
    assert_eq!(
        err(
            nearest(),
            &[
                x(),
                None,
                scales(&[1.0, 1.0, 2.0, 2.0]),
                sizes(&[1, 2, 8, 8])
            ]
        ),
        "Resize: scales and sizes are both given"
    );
    assert_eq!(
        err(nearest(), &[x(), None, None, None]),
        "Resize: neither scales nor sizes is given"
    );
    assert_eq!(
        err(nearest(), &[x(), None, scales(&[2.0, 2.0])]),
        "Resize: scales [2,2] has 2 values, expected 4 (rank of input 1x2x4x4)"
    );
    assert_eq!(
        err(nearest(), &[x(), None, scales(&[1.0, 1.0, 0.0, 2.0])]),
        "Resize: scales [1,1,0,2] must be positive and finite"
    );
    assert_eq!(
        err(nearest(), &[x(), None, scales(&[1.0, 1.0, 0.2, 2.0])]),
        "Resize: output dim 2 would be empty (input 4 * scale 0.2)"
    );
    let mut a = nearest();
    a.axes = Some(vec![2, -2]);
    assert_eq!(
        err(a.clone(), &[x(), None, None, sizes(&[3, 3])]),
        "Resize: axes [2,-2] repeats axis -2"
    );
    a.axes = Some(vec![4]);
    assert_eq!(
        err(a, &[x(), None, None, sizes(&[3])]),
        "Resize: axes [4] has 4, out of range for input 1x2x4x4"
    );
    let mut a = nearest();
    a.coord = CoordTransform::TfCropAndResize;
    assert!(err(a, &[x(), None, scales(&[1.0, 1.0, 2.0, 2.0])]).contains("needs the roi input"));
    let x4 = input(&[1, 2, 4, 4]);
    let info = [
        Some(ValueInfo::of(&x4)),
        None,
        Some(ValueInfo {
            dtype: crate::engine::tensor::DType::F32,
            shape: &[4],
            value: None,
        }),
    ];
    assert!(infer(&Op::Resize(nearest()), &info)
        .unwrap_err()
        .to_string()
        .contains("input 2 (scales) must be a constant"));
}
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
    // nearest_2x_default: oracle ref, ort agrees: True
    Case { name: "nearest_2x_default", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 2.0]), sizes: None, want_shape: vec![1, 2, 6, 8], want: vec![-5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 0.5, 0.5, -5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 0.5, 0.5, -1.03, -1.03, -2.56, -2.56, -4.09, -4.09, 4.4700003, 4.4700003, -1.03, -1.03, -2.56, -2.56, -4.09, -4.09, 4.4700003, 4.4700003, 2.94, 2.94, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, 2.94, 2.94, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -3.1799998, -4.71, -4.71, 3.8500004, 3.8500004, 2.3200002, 2.3200002, -3.1799998, -3.1799998, -4.71, -4.71, 3.8500004, 3.8500004, 2.3200002, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -2.27, -3.8, -3.8, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -2.27, -3.8, -3.8, 4.76, 4.76, 3.2299995, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, 4.76, 4.76, 3.2299995, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008] },
    // nearest_2x_asymmetric_floor: oracle ref, ort agrees: True
    Case { name: "nearest_2x_asymmetric_floor", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 2.0]), sizes: None, want_shape: vec![1, 2, 6, 8], want: vec![-5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 0.5, 0.5, -5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 0.5, 0.5, -1.03, -1.03, -2.56, -2.56, -4.09, -4.09, 4.4700003, 4.4700003, -1.03, -1.03, -2.56, -2.56, -4.09, -4.09, 4.4700003, 4.4700003, 2.94, 2.94, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, 2.94, 2.94, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -3.1799998, -4.71, -4.71, 3.8500004, 3.8500004, 2.3200002, 2.3200002, -3.1799998, -3.1799998, -4.71, -4.71, 3.8500004, 3.8500004, 2.3200002, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -2.27, -3.8, -3.8, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -2.27, -3.8, -3.8, 4.76, 4.76, 3.2299995, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, 4.76, 4.76, 3.2299995, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008] },
    // nearest_3x2_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_3x2_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 2, 3], roi: None, scales: Some(vec![1.0, 1.0, 3.0, 2.0]), sizes: None, want_shape: vec![1, 1, 6, 6], want: vec![-5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, -5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, -5.0, -5.0, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 0.5, 0.5, -1.03, -1.03, -2.56, -2.56, 0.5, 0.5, -1.03, -1.03, -2.56, -2.56, 0.5, 0.5, -1.03, -1.03, -2.56, -2.56] },
    // nearest_round_prefer_floor_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_floor_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 3.5600004, 2.0300002, 0.5, -1.03, -2.56, -2.56, -4.09, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -4.71, -4.71, 3.8500004, 2.3200002, -1.3599999, -2.89, -2.89, -4.42, 4.1400003, 2.6100001, 1.0799999, 1.0799999, -0.4499998, -1.98] },
    // nearest_round_prefer_floor_align_corners: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_floor_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -2.56, -4.09, 4.4700003, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -3.1799998, -4.71, -4.71, 3.8500004, 2.3200002, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, 1.0799999, -0.4499998, -1.98] },
    // nearest_round_prefer_floor_asymmetric: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_floor_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -4.09, -4.09, 4.4700003, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, -0.4499998, -0.4499998, -1.98] },
    // nearest_round_prefer_floor_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_floor_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 3.5600004, 2.0300002, 0.5, -1.03, -2.56, -2.56, -4.09, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -4.71, -4.71, 3.8500004, 2.3200002, -1.3599999, -2.89, -2.89, -4.42, 4.1400003, 2.6100001, 1.0799999, 1.0799999, -0.4499998, -1.98] },
    // nearest_round_prefer_floor_half_pixel_symmetric: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_floor_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 8], want: vec![4.4700003, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -3.1799998, -4.71, 3.8500004, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -2.27, -3.8, 4.76, 3.2299995, 1.6999998, 0.17000008, -1.3599999, -1.3599999, -2.89, -4.42, 4.1400003] },
    // nearest_round_prefer_floor_tf_half_pixel_for_nn: oracle ort, reference agrees: False
    Case { name: "nearest_round_prefer_floor_tf_half_pixel_for_nn", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfHalfPixelForNn, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 9], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -1.03, -2.56, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008] },
    // nearest_round_prefer_ceil_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_ceil_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -4.09, -4.09, 4.4700003, 0.78999996, -0.7399998, -2.27, -2.27, -3.8, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, -0.4499998, -0.4499998, -1.98] },
    // nearest_round_prefer_ceil_align_corners: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_ceil_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -2.56, -4.09, 4.4700003, 0.78999996, -0.7399998, -2.27, -2.27, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, 1.0799999, -0.4499998, -1.98] },
    // nearest_round_prefer_ceil_asymmetric: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_ceil_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -4.09, -4.09, 4.4700003, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, -0.4499998, -0.4499998, -1.98] },
    // nearest_round_prefer_ceil_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_ceil_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -2.56, -4.09, -4.09, 4.4700003, 0.78999996, -0.7399998, -2.27, -2.27, -3.8, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, -1.3599999, -2.89, -4.42, -4.42, 4.1400003, 2.6100001, 1.0799999, -0.4499998, -0.4499998, -1.98] },
    // nearest_round_prefer_ceil_half_pixel_symmetric: oracle ref, ort agrees: True
    Case { name: "nearest_round_prefer_ceil_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 8], want: vec![4.4700003, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -3.1799998, -4.71, 3.8500004, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -2.27, -3.8, 4.76, 3.2299995, 1.6999998, 0.17000008, -1.3599999, -1.3599999, -2.89, -4.42, 4.1400003] },
    // nearest_round_prefer_ceil_tf_half_pixel_for_nn: oracle ort, reference agrees: False
    Case { name: "nearest_round_prefer_ceil_tf_half_pixel_for_nn", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfHalfPixelForNn, nearest: NearestMode::RoundPreferCeil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 9], want: vec![-5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -1.03, -2.56, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -3.1799998, -4.71, 3.8500004, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 1.6999998, 0.17000008, 0.17000008] },
    // nearest_floor_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_floor_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, -5.0, 3.5600004, 2.0300002, 0.5, 0.5, -1.03, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -2.27, -3.8, -3.8, 4.76, 3.2299995, 1.6999998, 0.17000008] },
    // nearest_floor_align_corners: oracle ref, ort agrees: True
    Case { name: "nearest_floor_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::AlignCorners, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, -5.0, 3.5600004, 2.0300002, 0.5, 0.5, -1.03, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, 3.8500004, 2.3200002, -1.3599999, -1.3599999, -2.89, -4.42, 4.1400003, 4.1400003, 2.6100001, 1.0799999, -0.4499998, -1.98] },
    // nearest_floor_asymmetric: oracle ref, ort agrees: True
    Case { name: "nearest_floor_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, -5.0, 3.5600004, 2.0300002, 0.5, -1.03, -1.03, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -3.1799998, -4.71, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 0.17000008] },
    // nearest_floor_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_floor_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, -5.0, 3.5600004, 2.0300002, 0.5, 0.5, -1.03, -2.56, -4.09, 4.4700003, 2.94, 2.94, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, 3.8500004, 2.3200002, 0.78999996, 0.78999996, -0.7399998, -2.27, -3.8, -3.8, 4.76, 3.2299995, 1.6999998, 0.17000008] },
    // nearest_floor_half_pixel_symmetric: oracle ref, ort agrees: True
    Case { name: "nearest_floor_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 8], want: vec![-5.0, 3.5600004, 3.5600004, 2.0300002, 0.5, -1.03, -2.56, -2.56, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -2.27, -3.8, -3.8, 3.2299995, 1.6999998, 1.6999998, 0.17000008, -1.3599999, -2.89, -4.42, -4.42] },
    // nearest_floor_tf_half_pixel_for_nn: oracle ort, reference agrees: False
    Case { name: "nearest_floor_tf_half_pixel_for_nn", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfHalfPixelForNn, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 9], want: vec![-5.0, 3.5600004, 3.5600004, 2.0300002, 0.5, 0.5, -1.03, -2.56, -2.56, -5.0, 3.5600004, 3.5600004, 2.0300002, 0.5, 0.5, -1.03, -2.56, -2.56, -4.09, 4.4700003, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -4.09, 4.4700003, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -3.1799998, -4.71, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -3.1799998, -4.71, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -2.27, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008, -2.27, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008] },
    // nearest_ceil_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_ceil_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![2.94, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -3.1799998, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 0.17000008, 0.17000008, -1.3599999, -2.89, -4.42, 4.1400003, 2.6100001, 2.6100001, 1.0799999, -0.4499998, -1.98, -1.98] },
    // nearest_ceil_align_corners: oracle ref, ort agrees: True
    Case { name: "nearest_ceil_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::AlignCorners, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 0.5, -1.03, -1.03, -2.56, -4.09, 4.4700003, 4.4700003, 0.78999996, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 0.17000008, 0.17000008, -1.3599999, -2.89, -4.42, 4.1400003, 2.6100001, 2.6100001, 1.0799999, -0.4499998, -1.98, -1.98] },
    // nearest_ceil_asymmetric: oracle ref, ort agrees: True
    Case { name: "nearest_ceil_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![-5.0, 3.5600004, 2.0300002, 0.5, -1.03, -1.03, -2.56, -4.09, 4.4700003, 4.4700003, 0.78999996, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 0.17000008, 0.17000008, -1.3599999, -2.89, -4.42, 4.1400003, 2.6100001, 2.6100001, 1.0799999, -0.4499998, -1.98, -1.98] },
    // nearest_ceil_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "nearest_ceil_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 8], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 10], want: vec![2.94, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -3.1799998, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -2.27, -3.8, 4.76, 4.76, 3.2299995, 1.6999998, 0.17000008, 0.17000008, -1.3599999, -2.89, -4.42, 4.1400003, 2.6100001, 2.6100001, 1.0799999, -0.4499998, -1.98, -1.98] },
    // nearest_ceil_half_pixel_symmetric: oracle ref, ort agrees: True
    Case { name: "nearest_ceil_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.75, 1.25]), sizes: None, want_shape: vec![1, 1, 3, 8], want: vec![2.94, 2.94, 1.4099998, -0.119999886, -1.6500001, -3.1799998, -3.1799998, -4.71, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -2.27, -3.8, -3.8, 4.76, 1.0799999, 1.0799999, -0.4499998, -1.98, -3.51, 5.05, 5.05, 3.5200005] },
    // nearest_ceil_tf_half_pixel_for_nn: oracle ort, reference agrees: False
    Case { name: "nearest_ceil_tf_half_pixel_for_nn", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfHalfPixelForNn, nearest: NearestMode::Ceil, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 9], want: vec![4.4700003, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -1.6500001, 4.4700003, 4.4700003, 2.94, 1.4099998, 1.4099998, -0.119999886, -1.6500001, -1.6500001, -1.6500001, -4.71, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -0.7399998, -4.71, -4.71, 3.8500004, 2.3200002, 2.3200002, 0.78999996, -0.7399998, -0.7399998, -0.7399998, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008, 0.17000008, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008, 0.17000008, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008, 0.17000008, -3.8, -3.8, 4.76, 3.2299995, 3.2299995, 1.6999998, 0.17000008, 0.17000008, 0.17000008] },
    // nearest_channel_axis: oracle ref, ort agrees: True
    Case { name: "nearest_channel_axis", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 2, 3], roi: None, scales: Some(vec![1.0, 2.0, 1.0, 1.0]), sizes: None, want_shape: vec![1, 4, 2, 3], want: vec![-5.0, 3.5600004, 2.0300002, 0.5, -1.03, -2.56, -5.0, 3.5600004, 2.0300002, 0.5, -1.03, -2.56, -4.09, 4.4700003, 2.94, 1.4099998, -0.119999886, -1.6500001, -4.09, 4.4700003, 2.94, 1.4099998, -0.119999886, -1.6500001] },
    // nearest_downscale_sizes: oracle ref, ort agrees: True
    Case { name: "nearest_downscale_sizes", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 7, 9], roi: None, scales: None, sizes: Some(vec![1, 1, 3, 4]), want_shape: vec![1, 1, 3, 4], want: vec![-0.119999886, -3.1799998, 3.8500004, 0.78999996, 2.6100001, -0.4499998, -3.51, 3.5200005, -4.75, 2.2800002, -0.7800002, -3.8400002] },
    // nearest_tf_crop_extrapolate: oracle ref, ort agrees: True
    Case { name: "nearest_tf_crop_extrapolate", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfCropAndResize, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 10.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 6], roi: Some(vec![0.0, 0.0, 0.2, -0.3, 1.0, 1.0, 1.3, 0.95]), scales: None, sizes: Some(vec![1, 1, 4, 5]), want_shape: vec![1, 1, 4, 5], want: vec![10.0, -4.09, 2.94, 1.4099998, -1.6500001, 10.0, -3.1799998, 3.8500004, 2.3200002, -0.7399998, 10.0, -1.3599999, -4.42, 4.1400003, 1.0799999, 10.0, 10.0, 10.0, 10.0, 10.0] },
    // nearest_tf_crop_axes: oracle ref, ort agrees: True
    Case { name: "nearest_tf_crop_axes", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::TfCropAndResize, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: -7.5, antialias: false, axes: Some(vec![2, 3]), keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 6], roi: Some(vec![0.1, -0.35, 0.8, 1.2]), scales: None, sizes: Some(vec![4, 7]), want_shape: vec![1, 1, 4, 7], want: vec![-7.5, -7.5, 3.5600004, 2.0300002, 0.5, -2.56, -7.5, -7.5, -7.5, 4.4700003, 2.94, 1.4099998, -1.6500001, -7.5, -7.5, -7.5, -4.71, 3.8500004, 2.3200002, -0.7399998, -7.5, -7.5, -7.5, -3.8, 4.76, 3.2299995, 0.17000008, -7.5] },
    // nearest_1d: oracle ref, ort agrees: True
    Case { name: "nearest_1d", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![7], roi: None, scales: Some(vec![1.5]), sizes: None, want_shape: vec![10], want: vec![-5.0, -5.0, 3.5600004, 2.0300002, 2.0300002, 0.5, -1.03, -1.03, -2.56, -4.09] },
    // linear_up_half_pixel: oracle ref, ort agrees: True
    Case { name: "linear_up_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 2, 6, 6], want: vec![-5.0, -0.7199998, 3.3050003, 2.2850003, 1.2650001, 0.5, -4.0075, -0.98874986, 1.7750003, 0.7550002, 0.9962501, 1.4925001, -2.0225, -1.5262499, -1.2849998, -2.305, 0.45875007, 3.4775002, -0.037499964, -0.8025, -1.8225, -2.8425, -0.078749955, 2.94, 1.9475, 1.1825, 0.16249992, -0.85749996, -0.61625, -0.120000005, 2.94, 2.175, 1.1549999, 0.13500006, -0.885, -1.6500001, -3.1799998, -3.945, -3.2833333, 2.4233336, 3.0850003, 2.3200002, -2.1875, -2.9524999, -2.7112498, 1.3137503, 1.5550002, 0.79000014, -0.20249999, -0.9674999, -1.5670831, -0.90541655, -1.5049999, -2.27, 1.7825, 1.0175, -0.0024999578, -1.0225, -2.0425, -2.8075, 3.7675002, 3.0025, 1.9824997, 0.96249986, -0.057500035, -0.82249993, 4.76, 3.995, 2.9749997, 1.9549998, 0.93499994, 0.17000008] },
    // linear_down_half_pixel: oracle ref, ort agrees: True
    Case { name: "linear_down_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![0.32083347, 2.4850001, 0.44500005, -1.595, -3.635, 3.2849998, 1.245, -0.79499984, -2.835, 0.17000014, 2.045, 0.005000055, -2.0349998, -2.3933334, 3.9750004, 0.80499995, -1.235, -3.275, 0.57083344, 2.7350001] },
    // linear_up_align_corners: oracle ref, ort agrees: True
    Case { name: "linear_up_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 2, 6, 6], want: vec![-5.0, 0.13600025, 3.2540004, 2.3360002, 1.4180001, 0.5, -3.412, -0.6975998, 0.80600023, -0.11199989, 0.58440006, 2.088, -1.824, -1.5311999, -1.642, -2.56, -0.24919996, 3.676, -0.23599997, -1.1539999, -2.072, -2.99, -0.6792, 3.2460003, 1.352, 0.434, -0.48400006, -1.402, -0.70559996, 0.79800004, 2.94, 2.0219998, 1.1039999, 0.18600006, -0.732, -1.6500001, -3.1799998, -4.098, -2.998, 2.1380002, 3.2380004, 2.3200002, -1.5919999, -2.51, -2.2171998, 0.4972002, 0.7900002, -0.12799987, -0.003999996, -0.9219999, -1.4363998, -1.1435999, -1.6579999, -2.576, 1.584, 0.66600007, -0.25199994, -1.17, -2.088, -3.006, 3.1720002, 2.254, 1.3359998, 0.41799986, -0.50000006, -1.418, 4.76, 3.8419998, 2.9239995, 2.0059998, 1.0879999, 0.17000008] },
    // linear_down_align_corners: oracle ort, reference agrees: False
    Case { name: "linear_down_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![-5.0, 2.7950003, 0.5, -1.795, -4.09, 3.6433334, 1.3483335, -0.9466665, -3.2416666, 4.5533338, 2.1966667, -0.09833318, -2.3933332, 0.3566668, 3.1066668, 0.75, -1.5450001, -3.8400002, 3.955, 1.6599998] },
    // linear_up_asymmetric: oracle ref, ort agrees: True
    Case { name: "linear_up_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::Asymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 2, 6, 6], want: vec![-5.0, 0.70666695, 3.0500004, 2.0300002, 1.0100001, 0.5, -3.0149999, -0.6716665, -0.009999831, -1.03, 1.3133334, 2.4850001, -1.03, -2.05, -3.07, -4.09, 1.6166668, 4.4700003, 0.95500004, -0.06500002, -1.085, -2.105, 0.23833339, 1.4100001, 2.94, 1.92, 0.8999999, -0.119999886, -1.14, -1.6500001, 2.94, 1.92, 0.8999999, -0.119999886, -1.14, -1.6500001, -3.1799998, -4.2, -1.8566666, 3.8500004, 2.8300002, 2.3200002, -1.1949999, -2.215, -1.5533332, 0.7900002, -0.22999986, -0.7399999, 0.78999996, -0.22999986, -1.2499999, -2.27, -3.29, -3.8, 2.775, 1.755, 0.7349999, -0.2850001, -1.305, -1.8149999, 4.76, 3.7399998, 2.7199996, 1.6999998, 0.68, 0.17000008, 4.76, 3.7399998, 2.7199996, 1.6999998, 0.68, 0.17000008] },
    // linear_down_asymmetric: oracle ref, ort agrees: True
    Case { name: "linear_down_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::Asymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![-5.0, 3.0500004, 1.0100001, -1.03, -3.07, 3.8500004, 1.8100001, -0.22999986, -2.27, -0.94666654, 2.6100001, 0.57, -1.4699999, -3.51, 4.5400004, 1.3699999, -0.6699999, -2.71, -4.75, 3.3000004] },
    // linear_up_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "linear_up_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 2, 6, 6], want: vec![-5.0, -0.7199998, 3.3050003, 2.2850003, 1.2650001, 0.5, -4.0075, -0.98874986, 1.7750003, 0.7550002, 0.9962501, 1.4925001, -2.0225, -1.5262499, -1.2849998, -2.305, 0.45875007, 3.4775002, -0.037499964, -0.8025, -1.8225, -2.8425, -0.078749955, 2.94, 1.9475, 1.1825, 0.16249992, -0.85749996, -0.61625, -0.120000005, 2.94, 2.175, 1.1549999, 0.13500006, -0.885, -1.6500001, -3.1799998, -3.945, -3.2833333, 2.4233336, 3.0850003, 2.3200002, -2.1875, -2.9524999, -2.7112498, 1.3137503, 1.5550002, 0.79000014, -0.20249999, -0.9674999, -1.5670831, -0.90541655, -1.5049999, -2.27, 1.7825, 1.0175, -0.0024999578, -1.0225, -2.0425, -2.8075, 3.7675002, 3.0025, 1.9824997, 0.96249986, -0.057500035, -0.82249993, 4.76, 3.995, 2.9749997, 1.9549998, 0.93499994, 0.17000008] },
    // linear_down_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "linear_down_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![0.32083347, 2.4850001, 0.44500005, -1.595, -3.635, 3.2849998, 1.245, -0.79499984, -2.835, 0.17000014, 2.045, 0.005000055, -2.0349998, -2.3933334, 3.9750004, 0.80499995, -1.235, -3.275, 0.57083344, 2.7350001] },
    // linear_up_half_pixel_symmetric: oracle ref, ort agrees: True
    Case { name: "linear_up_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 2, 6, 6], want: vec![-5.0, -0.7199998, 3.3050003, 2.2850003, 1.2650001, 0.5, -4.0075, -0.98874986, 1.7750003, 0.7550002, 0.9962501, 1.4925001, -2.0225, -1.5262499, -1.2849998, -2.305, 0.45875007, 3.4775002, -0.037499964, -0.8025, -1.8225, -2.8425, -0.078749955, 2.94, 1.9475, 1.1825, 0.16249992, -0.85749996, -0.61625, -0.120000005, 2.94, 2.175, 1.1549999, 0.13500006, -0.885, -1.6500001, -3.1799998, -3.945, -3.2833333, 2.4233336, 3.0850003, 2.3200002, -2.1875, -2.9524999, -2.7112498, 1.3137503, 1.5550002, 0.79000014, -0.20249999, -0.9674999, -1.5670831, -0.90541655, -1.5049999, -2.27, 1.7825, 1.0175, -0.0024999578, -1.0225, -2.0425, -2.8075, 3.7675002, 3.0025, 1.9824997, 0.96249986, -0.057500035, -0.82249993, 4.76, 3.995, 2.9749997, 1.9549998, 0.93499994, 0.17000008] },
    // linear_down_half_pixel_symmetric: oracle ort, reference agrees: False
    Case { name: "linear_down_half_pixel_symmetric", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixelSymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![0.90666676, 2.23, 0.19000006, -1.8500001, -3.8899999, 3.0300002, 0.99000007, -1.0499998, -3.0900002, 1.5966654, 1.7900001, -0.24999987, -2.29, -0.9666652, 3.7200005, 0.54999995, -1.49, -3.5300002, 1.1566672, 2.4800003] },
    // linear_tf_crop_extrapolate: oracle ref, ort agrees: True
    Case { name: "linear_tf_crop_extrapolate", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::TfCropAndResize, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 10.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 6], roi: Some(vec![0.0, 0.0, 0.2, -0.3, 1.0, 1.0, 1.3, 0.95]), scales: None, sizes: Some(vec![1, 1, 4, 5]), want_shape: vec![1, 1, 4, 5], want: vec![10.0, -3.737, 3.3317502, 0.9411249, -1.4495, 10.0, -3.0329583, 0.88266677, 2.2757916, -0.11483332, 10.0, -1.6982918, -2.4072487, 3.6104581, 1.2198331, 10.0, 10.0, 10.0, 10.0, 10.0] },
    // linear_tf_crop_one_output: oracle ref, ort agrees: True
    Case { name: "linear_tf_crop_one_output", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::TfCropAndResize, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 6], roi: Some(vec![0.0, 0.0, 0.2, 0.1, 1.0, 1.0, 0.6, 0.9]), scales: None, sizes: Some(vec![1, 1, 1, 3]), want_shape: vec![1, 1, 1, 3], want: vec![-2.2910004, 2.7210004, -0.3389995] },
    // linear_3d_trilinear: oracle ref, ort agrees: True
    Case { name: "linear_3d_trilinear", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 3, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 1.5, 0.5, 2.0]), sizes: None, want_shape: vec![1, 1, 4, 2, 10], want: vec![-3.78, -2.90125, -1.14375, 0.61375016, 2.3712502, 2.8675003, 2.1025, 1.3375, 0.5725, 0.18999994, 1.1000001, 0.7175001, -0.047500014, -0.8125, -1.5774999, -2.3424997, -3.1075, -2.61125, -0.8537499, 0.025000215, -1.4224999, -1.1743749, -0.678125, 0.44875, 2.2062502, 2.7025, 1.9375001, 1.1725, 0.4075, 0.024999976, 0.93500006, 0.5525, -0.2125, -0.97749996, -1.7425, -1.8768749, -1.3806249, -0.8843749, -0.38812482, -0.1399998, 0.88000005, 0.4975, -0.26750013, 0.22874986, 1.98625, 2.4825, 1.7175001, 0.9525001, 0.18750003, -0.195, 0.715, 0.33249998, -0.4325, -1.1975, -1.9625, -1.46625, 0.2912501, 0.78750014, 0.022500113, -0.3599999, 0.66000015, 0.2775001, -0.48749998, 0.008750032, 1.7662501, 2.2625, 1.4975002, 0.73250014, -0.032499973, -0.41500002, 0.49499986, 0.1124999, -0.6525, -1.4175, -2.1825001, -1.6862501, 0.07125006, 0.56750005, -0.1975001, -0.58000016] },
    // linear_1d: oracle ref, ort agrees: False
    Case { name: "linear_1d", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![5], roi: None, scales: Some(vec![1.6]), sizes: None, want_shape: vec![8], want: vec![-5.0, -1.255, 3.4643755, 2.5081253, 1.5518752, 0.5956251, -0.36062488, -1.03] },
    // linear_batch_and_channel: oracle ref, ort agrees: True
    Case { name: "linear_batch_and_channel", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![2, 3, 2, 2], roi: None, scales: Some(vec![1.0, 1.0, 1.5, 2.5]), sizes: None, want_shape: vec![2, 3, 3, 5], want: vec![-5.0, -4.144, -0.7199998, 2.7040005, 3.5600004, -1.4849999, -1.1334999, 0.27250016, 1.6785002, 2.0300002, 2.0300002, 1.8770002, 1.2650001, 0.653, 0.5, -1.03, -1.183, -1.795, -2.407, -2.56, -2.56, -2.2085001, -0.80249995, 0.6035001, 0.95500016, -4.09, -3.2340002, 0.19000006, 3.6140003, 4.4700003, 2.94, 2.787, 2.175, 1.5629998, 1.4099998, 1.4100001, 1.2570001, 0.645, 0.032999896, -0.120000124, -0.119999886, -0.2729999, -0.885, -1.4970001, -1.6500001, -3.1799998, -3.333, -3.945, -4.557, -4.71, 0.33500028, 0.18200025, -0.42999983, -1.0419999, -1.1949999, 3.8500004, 3.6970003, 3.0850003, 2.4730003, 2.3200002, 0.78999996, 0.63699996, 0.025000095, -0.5869998, -0.7399998, -0.74, -0.893, -1.5049999, -2.1169999, -2.27, -2.27, -2.4229999, -3.0349998, -3.6469998, -3.8, 4.76, 4.6070004, 3.995, 3.3829997, 3.2299995, 3.23, 3.077, 2.465, 1.8529998, 1.6999998, 1.6999998, 1.5469998, 0.93499994, 0.32300004, 0.17000008] },
    // cubic_up_half_pixel: oracle ref, ort agrees: True
    Case { name: "cubic_up_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 7], want: vec![-6.0927787, -0.2020493, 4.8565187, 2.4448662, 0.9078895, -0.10974025, -1.0943221, -5.0775876, -1.5001085, 2.471608, 2.93408, 2.367583, 0.9184518, -0.3190368, -3.435784, -3.6801014, -1.4687877, 3.8167973, 4.890181, 2.688898, 0.94559604, -1.6104364, -3.8206677, -3.5752683, 1.9429708, 2.7271805, 1.40496, 2.3031282, -0.68077046, -1.8908705, -2.7067332, -1.6776801, -2.96718, -2.2280073, 3.110079, 0.82296926, 0.1683606, -1.3184088, -2.95546, -5.130181, -4.043672, 1.2944142, 1.9857823, 1.2646619, -0.053775873, -1.1850135, -2.6075828, -3.065159, -2.1669908, 2.7101576, 1.9557813, 0.72150946, -0.1568215, -1.1478893, -2.5177836, -4.2610855] },
    // cubic_up_align_corners: oracle ort, reference agrees: False
    Case { name: "cubic_up_align_corners", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 7], want: vec![-5.0, 1.0351832, 4.1144447, 2.0300002, 1.0666683, -0.15166713, -1.03, -4.167697, -1.5939034, 1.8236527, 3.6565604, 3.0609384, 1.2248493, -0.19769704, -3.047289, -4.162865, -0.74530935, 4.7769694, 4.4387436, 2.3452585, 0.92271006, -1.7561488, -4.338215, -2.3928685, 2.6116173, 1.7773887, 1.4069736, 2.6551003, -0.9238517, -2.449354, -2.5337708, -1.3216165, -3.0604148, -0.8176279, 4.1492863, 0.3672895, -0.42279246, -1.9794204, -3.4869692, -5.568146, -2.6264358, 3.1164868, 1.4876972, 0.69761527, -0.85901284, -2.36656, -3.9329405, -2.964617, -0.39626828, 2.3200002, 1.4416678, 0.22333372, -0.7399998, -1.7033329, -2.9216683, -3.8] },
    // cubic_up_asymmetric: oracle ref, ort agrees: True
    Case { name: "cubic_up_asymmetric", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::Asymmetric, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 7], want: vec![-5.0, 1.0351866, 4.114445, 2.0300002, 1.0666659, -0.15166654, -1.03, -4.00875, -2.095983, 1.3861746, 3.9671876, 3.4417884, 1.4877255, -0.038750112, -2.56, -4.5594444, -1.4801857, 4.4700003, 4.0672235, 2.2883327, 1.4099998, -1.3399999, -3.5321352, -2.6016722, 0.6450002, -0.65116227, 0.3493683, 3.5759377, -0.119999886, -0.9983332, -2.2166655, -3.1799998, -5.2644444, -2.185186, 3.8500004, 1.3287501, 0.5555206, -1.0657108, -2.6771872, -4.3587327, -2.9728181, 0.25375026, 2.3200002, 1.4416661, 0.22333384, -0.7399998, -1.7033333, -2.9216657, -3.8, 2.5487502, 1.6704161, 0.45208377, -0.5112498, -1.3694791, -2.9907107, -4.5171876] },
    // cubic_up_pytorch_half_pixel: oracle ref, ort agrees: True
    Case { name: "cubic_up_pytorch_half_pixel", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 7], want: vec![-6.0927787, -0.2020493, 4.8565187, 2.4448662, 0.9078895, -0.10974025, -1.0943221, -5.0775876, -1.5001085, 2.471608, 2.93408, 2.367583, 0.9184518, -0.3190368, -3.435784, -3.6801014, -1.4687877, 3.8167973, 4.890181, 2.688898, 0.94559604, -1.6104364, -3.8206677, -3.5752683, 1.9429708, 2.7271805, 1.40496, 2.3031282, -0.68077046, -1.8908705, -2.7067332, -1.6776801, -2.96718, -2.2280073, 3.110079, 0.82296926, 0.1683606, -1.3184088, -2.95546, -5.130181, -4.043672, 1.2944142, 1.9857823, 1.2646619, -0.053775873, -1.1850135, -2.6075828, -3.065159, -2.1669908, 2.7101576, 1.9557813, 0.72150946, -0.1568215, -1.1478893, -2.5177836, -4.2610855] },
    // cubic_down: oracle ref, ort agrees: True
    Case { name: "cubic_down", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![0.32415614, 3.016094, 0.5739599, -1.5912882, -4.193281, 3.3469791, 1.245, -0.7241655, -3.2496095, -0.06211902, 2.1069787, 0.0050000753, -1.9641662, -2.5455477, 5.339151, 0.8088532, -1.293125, -3.700226, 0.76302785, 3.0064063] },
    // cubic_a05_exclude_outside: oracle ref, ort agrees: True
    Case { name: "cubic_a05_exclude_outside", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.5, exclude_outside: true, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 5], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 8, 7], want: vec![-5.8370214, -0.6257264, 4.508268, 2.303959, 0.9940626, -0.002387594, -1.0879422, -5.0275416, -1.4988921, 2.529932, 2.7531128, 2.0428834, 0.81467104, -0.4378724, -3.3140798, -3.3495646, -1.6607487, 3.7071621, 4.2680917, 2.5479083, 0.9384422, -1.8026681, -3.4285617, -3.4322786, 2.2240267, 2.6694632, 1.5115513, 2.1537209, -0.61378425, -1.6057583, -2.4900007, -1.7633748, -2.9094627, -2.416268, 3.1111915, 0.6884439, -0.0014368935, -1.2806543, -2.8269792, -4.5080914, -3.8673556, 1.508661, 2.0110226, 1.293362, 0.09877017, -1.088989, -2.2828832, -2.9090896, -2.38042, 2.6359518, 1.9052942, 0.750295, -0.26970658, -1.2340623, -2.4579246, -4.216346] },
    // cubic_exclude_outside_down: oracle ref, ort agrees: True
    Case { name: "cubic_exclude_outside_down", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: true, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![-0.07199322, 3.0782235, 0.5955489, -1.5711058, -4.2214937, 3.3623948, 1.245, -0.7241652, -3.249608, 0.40571442, 2.122395, 0.0050000753, -1.9641653, -2.5455465, 5.156652, 0.8026807, -1.3147143, -3.759351, 1.1493423, 2.8539348] },
    // cubic_tf_crop_extrapolate: oracle ref, ort agrees: True
    Case { name: "cubic_tf_crop_extrapolate", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::TfCropAndResize, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 10.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 6], roi: Some(vec![0.0, 0.0, 0.2, -0.3, 1.0, 1.0, 1.3, 0.95]), scales: None, sizes: Some(vec![1, 1, 4, 5]), want_shape: vec![1, 1, 4, 5], want: vec![10.0, -3.8572512, 4.3890696, 0.80276567, -1.6046692, 10.0, -3.0533168, 0.9499988, 2.2078364, -0.16296004, 10.0, -1.6248839, -3.2521098, 4.3022537, 1.1865369, 10.0, 10.0, 10.0, 10.0, 10.0] },
    // linear_antialias_half: oracle ref, ort agrees: True
    Case { name: "linear_antialias_half", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: true, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 8, 10], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.5]), sizes: None, want_shape: vec![1, 1, 4, 5], want: vec![-0.3837499, -0.25703117, -0.47921866, 0.08687508, 0.37125003, 1.19875, 0.37953126, 0.15734382, -0.22249992, -0.56874996, 0.8687501, 0.52250004, 0.1426562, -0.0795312, -0.89875, -0.07124992, 0.21312508, 0.7792188, 0.5570312, -1.83875] },
    // linear_antialias_odd: oracle ref, ort agrees: True
    Case { name: "linear_antialias_odd", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: true, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 9, 10], roi: None, scales: Some(vec![1.0, 1.0, 0.375, 0.6]), sizes: None, want_shape: vec![1, 1, 3, 6], want: vec![-0.10328484, -0.08658901, -0.016715083, -0.99180204, 0.89335895, -0.2892727, 1.4162501, -0.0022752099, 1.2074109, -0.9074105, 0.30227503, -1.1162494, 1.1567153, -0.28664085, 0.6859886, 0.15087186, 0.95403117, -1.3757843] },
    // linear_antialias_up_and_down: oracle ref, ort agrees: True
    Case { name: "linear_antialias_up_and_down", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: true, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 10], roi: None, scales: Some(vec![1.0, 1.0, 1.5, 0.25]), sizes: None, want_shape: vec![1, 1, 6, 2], want: vec![-0.28187487, -0.48718747, -0.83734363, -0.09671867, -0.78968745, 0.108593866, 1.6228125, -0.6320312, 1.0398438, 0.046250053, -0.14624989, 0.9096876] },
    // cubic_antialias: oracle ref, ort agrees: True
    Case { name: "cubic_antialias", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: true, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 9, 10], roi: None, scales: Some(vec![1.0, 1.0, 0.375, 0.6]), sizes: None, want_shape: vec![1, 1, 3, 6], want: vec![0.11440518, -0.06892463, -0.054716196, -1.1164243, 1.0402342, -0.06856695, 1.5870229, -0.17885518, 1.6332196, -1.1899247, 0.27560335, -1.1075802, 0.71975875, -0.5528058, 1.0000821, 0.27075848, 1.0074136, -1.7845715] },
    // cubic_antialias_exclude_outside: oracle ref, ort agrees: True
    Case { name: "cubic_antialias_exclude_outside", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.5, exclude_outside: true, extrapolation_value: 0.0, antialias: true, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 9, 10], roi: None, scales: Some(vec![1.0, 1.0, 0.5, 0.75]), sizes: None, want_shape: vec![1, 1, 4, 7], want: vec![-0.97145736, 0.7289571, -1.5897484, 0.57829714, -1.4728938, 1.1251876, 0.45614463, 2.1058424, -0.3219797, 0.8856317, 0.9370787, -1.4391866, 0.56626165, -0.27988967, 1.5344051, -0.6588367, 1.440048, 0.5916364, -1.1965946, 0.58004165, -0.62135243, 1.1276141, -1.0660113, 1.0334011, 0.059107784, 0.8103747, 1.4468346, -1.1649348] },
    // sizes_stretch: oracle ref, ort agrees: True
    Case { name: "sizes_stretch", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: None, sizes: Some(vec![1, 1, 7, 3]), want_shape: vec![1, 1, 7, 3], want: vec![-0.7199998, 1.2650001, -1.795, -0.39499983, 1.59, -1.47, 0.12500007, 2.11, -0.95, -1.8774999, 2.63, -0.42999995, -3.8799999, 3.1500003, 0.090000086, -3.36, 3.67, 0.61, -3.0349998, 3.995, 0.93499994] },
    // sizes_not_larger: oracle ref, ort agrees: True
    Case { name: "sizes_not_larger", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: Some(vec![2, 3]), keep_aspect: KeepAspect::NotLarger, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: None, sizes: Some(vec![7, 7]), want_shape: vec![1, 1, 5, 7], want: vec![-5.0, 1.7257146, 2.576429, 1.2650001, -0.04642856, -1.3578571, -2.56, -4.2850003, 2.4407146, 3.2914288, 1.98, 0.6685714, -0.6428571, -1.845, -3.5049999, -1.8757652, 1.7548472, 2.7600002, 1.4485714, 0.1371429, -1.0649999, -2.725, -3.9271429, 1.2478573, 3.54, 2.2285714, 0.9171428, -0.28499985, -2.27, -3.4721427, 1.7028573, 3.995, 2.683571, 1.3721427, 0.17000008] },
    // sizes_not_smaller: oracle ref, ort agrees: True
    Case { name: "sizes_not_smaller", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: Some(vec![2, 3]), keep_aspect: KeepAspect::NotSmaller, scales_at_input1: false }, shape: vec![1, 1, 4, 6], roi: None, scales: None, sizes: Some(vec![7, 7]), want_shape: vec![1, 1, 7, 11], want: vec![-5.0, -1.942857, 2.948572, 2.7950003, 1.9207145, 1.0464287, 0.17214286, -0.70214283, -1.5764285, -2.4507143, -2.56, -4.675, -1.6178571, 3.2735717, 3.1200004, 2.2457144, 1.3714286, 0.49714282, -0.37714282, -1.2514285, -2.1257143, -2.235, -4.155, -1.0978571, 3.7935717, 3.64, 2.7657144, 1.8914285, 1.0171428, 0.1428572, -0.7314285, -1.6057143, -1.715, -3.635, -2.3796427, -0.3710713, 1.6375002, 3.2857144, 2.4114287, 1.5371429, 0.6628572, -0.21142852, -1.0857142, -1.1949999, -3.1149998, -3.6614285, -4.535714, -0.36499983, 3.8057146, 2.9314287, 2.057143, 1.1828572, 0.3085715, -0.56571406, -0.6749998, -2.595, -3.1414285, -4.015714, 0.15500015, 4.3257146, 3.4514284, 2.5771427, 1.702857, 0.8285714, -0.045714173, -0.15499987, -2.27, -2.8164287, -3.6907144, 0.48000014, 4.6507144, 3.7764285, 2.9021425, 2.0278568, 1.1535714, 0.27928576, 0.17000008] },
    // sizes_not_smaller_nearest: oracle ref, ort agrees: True
    Case { name: "sizes_not_smaller_nearest", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: Some(vec![-2, -1]), keep_aspect: KeepAspect::NotSmaller, scales_at_input1: false }, shape: vec![1, 1, 5, 3], roi: None, scales: None, sizes: Some(vec![2, 2]), want_shape: vec![1, 1, 3, 2], want: vec![-5.0, 2.0300002, -4.09, 2.94, 1.4099998, -1.6500001] },
    // scales_axes: oracle ref, ort agrees: True
    Case { name: "scales_axes", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: Some(vec![2, 3]), keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 4, 6], roi: None, scales: Some(vec![2.0, 0.5]), sizes: None, want_shape: vec![1, 2, 8, 3], want: vec![-0.7199998, 1.2650001, -1.795, -0.49249983, 1.4925001, -1.5675, -0.037499905, 1.9475, -1.1125, -0.84374994, 2.4025002, -0.65749997, -2.9112499, 2.8575, -0.20249993, -3.7175, 3.3125002, 0.25250006, -3.2625, 3.7675, 0.7075, -3.0349998, 3.995, 0.93499994, -2.125, -0.13999987, 1.845, -1.8975, 0.087500125, 2.0725, -1.4424999, 0.54250014, 2.5275002, -0.98749995, -0.26374993, 2.9825, -0.5324999, -2.33125, 3.4375002, -0.077499956, -3.1375, 2.6312501, 0.37750003, -2.6825001, 0.5637502, 0.605, -2.455, -0.4699998] },
    // scales_negative_axis: oracle ref, ort agrees: True
    Case { name: "scales_negative_axis", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::HalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: Some(vec![-1]), keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 2, 4, 6], roi: None, scales: Some(vec![1.5]), sizes: None, want_shape: vec![1, 2, 4, 9], want: vec![-5.7430577, -0.5765623, 4.1100354, 2.5310051, 1.2650001, 0.17416546, -0.7041657, -1.9384375, -2.6928136, -4.833058, 0.33343756, 5.0200357, 3.4410055, 2.175, 1.0841657, 0.20583478, -1.0284375, -1.7828133, -3.0471885, -4.7475, -3.5877302, 2.72773, 4.0309377, 1.9941664, 1.1158351, -0.118437424, -0.87281257, -2.1371884, -3.8375, -2.6777296, 3.6377304, 4.9409375, 2.9041662, 2.0258353, 0.79156244, 0.03718763, -1.2271879, -1.9815625, -3.3910055, -4.9700356, -0.13999984, 4.690036, 3.1110053, 1.7015625, 0.94718784, -0.31718743, -1.0715624, -2.481005, -4.060035, 0.7700001, 5.600036, 4.021006, 2.6115627, 1.857188, 0.5928128, -0.16156244, -1.3958352, -2.2741663, -4.3109374, -3.00773, 3.3077302, 4.4675, 2.7671888, 1.502813, 0.7484375, -0.48583466, -1.364166, -2.4550002, -3.7210054, -5.3000355, -0.6134373, 4.5530577] },
    // opset10_nearest: oracle ort, reference agrees: False
    Case { name: "opset10_nearest", attrs: ResizeAttrs { mode: ResizeMode::Nearest, coord: CoordTransform::Asymmetric, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: true }, shape: vec![1, 1, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 3.0]), sizes: None, want_shape: vec![1, 1, 6, 12], want: vec![-5.0, -5.0, -5.0, 3.5600004, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 2.0300002, 0.5, 0.5, 0.5, -5.0, -5.0, -5.0, 3.5600004, 3.5600004, 3.5600004, 2.0300002, 2.0300002, 2.0300002, 0.5, 0.5, 0.5, -1.03, -1.03, -1.03, -2.56, -2.56, -2.56, -4.09, -4.09, -4.09, 4.4700003, 4.4700003, 4.4700003, -1.03, -1.03, -1.03, -2.56, -2.56, -2.56, -4.09, -4.09, -4.09, 4.4700003, 4.4700003, 4.4700003, 2.94, 2.94, 2.94, 1.4099998, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -1.6500001, 2.94, 2.94, 2.94, 1.4099998, 1.4099998, 1.4099998, -0.119999886, -0.119999886, -0.119999886, -1.6500001, -1.6500001, -1.6500001] },
    // opset10_linear: oracle ort, reference agrees: False
    Case { name: "opset10_linear", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::Asymmetric, nearest: NearestMode::Floor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: true }, shape: vec![1, 1, 3, 4], roi: None, scales: Some(vec![1.0, 1.0, 2.0, 1.5]), sizes: None, want_shape: vec![1, 1, 6, 6], want: vec![-5.0, 0.7066672, 3.0500002, 2.0300002, 1.01, 0.5, -3.0149999, -0.6716664, -0.009999931, -1.03, 1.3133337, 2.4850001, -1.03, -2.05, -3.0700002, -4.09, 1.6166674, 4.4700003, 0.95500004, -0.065, -1.0850002, -2.105, 0.23833364, 1.4100001, 2.94, 1.9199998, 0.89999986, -0.119999886, -1.1400001, -1.6500001, 2.94, 1.9199998, 0.89999986, -0.119999886, -1.1400001, -1.6500001] },
    // align_corners_fractional_scale: oracle ort, reference agrees: False
    Case { name: "align_corners_fractional_scale", attrs: ResizeAttrs { mode: ResizeMode::Linear, coord: CoordTransform::AlignCorners, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 7], roi: None, scales: Some(vec![1.0, 1.0, 0.7, 1.3]), sizes: None, want_shape: vec![1, 1, 3, 9], want: vec![-5.0, 1.4200003, 2.7950003, 1.6475002, 0.5, -0.6475, -1.795, -2.9425, -4.09, 3.8500004, 2.7025003, 1.5550001, 0.40750003, -0.7399998, -1.8874999, -3.0349998, -1.6599998, 4.76, 2.6100001, 1.4625, 0.31500006, -0.83249986, -1.98, -3.1275, 0.7700001, 4.6675005, 3.5200005] },
    // pytorch_half_pixel_single_output: oracle ort, reference agrees: False
    Case { name: "pytorch_half_pixel_single_output", attrs: ResizeAttrs { mode: ResizeMode::Cubic, coord: CoordTransform::PytorchHalfPixel, nearest: NearestMode::RoundPreferFloor, cubic_coeff_a: -0.75, exclude_outside: false, extrapolation_value: 0.0, antialias: false, axes: None, keep_aspect: KeepAspect::Stretch, scales_at_input1: false }, shape: vec![1, 1, 5, 4], roi: None, scales: None, sizes: Some(vec![1, 1, 1, 3]), want_shape: vec![1, 1, 1, 3], want: vec![-3.7449198, 3.7409377, 0.6930207] },
    ]
}
