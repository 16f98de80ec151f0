//! `perceptd gpu-check`: the CUDA backend against the CPU backend on a real
//! GPU, printed to stdout: device info; the preprocessing kernel for every
//! pixel format; every GPU node of the model vs the CPU implementation of
//! the same op on the same inputs; the model end to end (FP32, FP16), boxes
//! and scores compared separately; per-phase latency from CUDA events over
//! N frames; heap allocations during the timed frames (counted when the
//! binary installs [`crate::count_alloc::Counting`], as `perceptd` does).
//!
//! Runs once, on the main thread, through [`Gpu`] (the driver; the tests
//! run it on the emulator); allocates freely outside the timed loop.

use super::backend::{linear_taps, CudaBackend, CudaOptions, PreParams};
use super::driver::Gpu;
use super::lower::Precision;
use super::mem::{read_at, write_at, DeviceBuf};
use super::CudaError;
use crate::backend::{Backend, CpuBackend};
use crate::count_alloc;
use crate::engine::tensor::Tensor;
use crate::frame::{FrameDesc, PixelFormat};
use crate::preprocess::Letterbox;
use std::io::Write;
use std::path::Path;

/// xorshift bytes, deterministic (also the GPU emulator tests' inputs).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_nan() != y.is_nan() {
                f32::INFINITY
            } else if x.is_nan() {
                0.0
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// Max |a - b| relative to max |b| (the reference's scale).
fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0f32, f32::max).max(1e-6);
    max_abs(a, b) / scale
}

/// End-to-end limits for a detection head: boxes in pixels, scores
/// absolute (a tolerance relative to the largest output would let the
/// box coordinates, ~640, set the scale for scores in [0, 1]).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub box_px: f32,
    pub score: f32,
}

/// FP32: the GPU and CPU differ by summation order and FMA contraction only.
pub const FP32_LIMITS: HeadLimits = HeadLimits {
    box_px: 0.05,
    score: 1e-3,
};
/// FP16: f16 GEMM inputs with f32 accumulation. The emulator (which
/// rounds GEMM inputs to f16 as the GPU does) gives, for the shipped model
/// on the synthetic scene, 1.5 px on the worst box value (a DFL box side:
/// an expectation over 16 bins scaled by the stride, up to 32 px) and
/// 1.8e-3 on scores; the limits leave 2x and 5x room.
pub const FP16_LIMITS: HeadLimits = HeadLimits {
    box_px: 3.0,
    score: 1e-2,
};

/// Worst errors of a detection head output vs the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadError {
    /// Max absolute error of the 4 box values, in pixels.
    pub box_px: f32,
    /// Max absolute error of every other value (objectness, class scores).
    pub score: f32,
}

impl HeadError {
    pub fn within(&self, l: HeadLimits) -> bool {
        self.box_px <= l.box_px && self.score <= l.score
    }
}

/// Compare a detection head `[1, 4 + C, N]` (YOLOv8: channel-major) or
/// `[1, N, 4 + C]` / `[1, N, 5 + C]` (anchor-major) per channel: the first
/// 4 values of each anchor are a box in pixels, the rest scores. Any
/// other shape counts every value as a score. NaN on one side only is an
/// infinite error.
pub fn head_error(got: &[f32], want: &[f32], shape: &[usize]) -> HeadError {
    let dims: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
    // (values per anchor, whether the anchor axis is the last one)
    let layout = match dims.as_slice() {
        [a, n] if a < n && *a > 4 => Some((*a, true)),
        [n, a] if a < n && *a > 4 => Some((*a, false)),
        _ => None,
    };
    let n = got.len().min(want.len());
    let mut e = HeadError {
        box_px: 0.0,
        score: 0.0,
    };
    for i in 0..n {
        let err = max_abs(&got[i..i + 1], &want[i..i + 1]);
        let is_box = match layout {
            Some((a, true)) => i / (n / a) < 4,
            Some((a, false)) => i % a < 4,
            None => false,
        };
        if is_box {
            e.box_px = e.box_px.max(err);
        } else {
            e.score = e.score.max(err);
        }
    }
    e
}

fn pct(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The whole check on the real driver. Ok(true) when every comparison is
/// within tolerance.
pub fn run(
    model: &Path,
    ordinal: usize,
    frames: usize,
    out: &mut dyn Write,
) -> Result<bool, String> {
    run_on(&super::driver::CUDA, model, ordinal, frames, out)
}

/// [`run`] through `gpu`.
pub fn run_on(
    gpu_api: &'static dyn Gpu,
    model: &Path,
    ordinal: usize,
    frames: usize,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let info = gpu_api.probe(ordinal).map_err(|x| e(&x))?;
    let _ = writeln!(out, "== device\n{}", info.describe());
    let _ = writeln!(
        out,
        "NVRTC {}",
        super::nvrtc::version()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10))
            .unwrap_or_else(|x| x.to_string())
    );
    let mut ok = true;
    // A synthetic road scene (noise would saturate a detector's outputs).
    let (desc, frame) = scene_frame()?;
    let opts = |p| CudaOptions {
        ordinal,
        precision: p,
        cache_dir: None,
        style: crate::preprocess::InputStyle::Letterbox,
    };
    let t0 = std::time::Instant::now();
    let mut gpu = CudaBackend::new_on(gpu_api, model, desc, None, &opts(Precision::Fp32))
        .map_err(|x| e(&x))?;
    let _ = writeln!(
        out,
        "boot (FP32): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let t0 = std::time::Instant::now();
    let warm = CudaBackend::new_on(gpu_api, model, desc, None, &opts(Precision::Fp32))
        .map_err(|x| e(&x))?;
    let _ = writeln!(
        out,
        "boot again (warm kernel cache): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    drop(warm);

    // 1. Preprocessing, every format, odd sizes, vs the CPU letterbox.
    let _ = writeln!(
        out,
        "\n== preprocessing kernel vs CPU (max abs error, limit 1/255 = 0.00392)"
    );
    let [iw, ih] = gpu.input_size();
    for f in [
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Nv12,
        PixelFormat::Grey,
        PixelFormat::Rgb24,
        PixelFormat::I420,
        PixelFormat::I422,
        PixelFormat::I444,
    ] {
        for (w, h) in [(641usize, 479usize), (iw, ih), (320, 240)] {
            let d = FrameDesc {
                format: f,
                width: w,
                height: h,
            };
            let err = preprocess_vs_cpu(&gpu, d, iw, ih).map_err(|x| e(&x))?;
            let pass = err <= 1.0 / 255.0 + 1e-6;
            ok &= pass;
            let _ = writeln!(
                out,
                "{:<6} {w}x{h} -> {iw}x{ih}: {err:.2e} {}",
                f.name(),
                if pass { "ok" } else { "FAIL" }
            );
        }
    }

    // 2. Every node vs the CPU op on the GPU's own inputs.
    let _ = writeln!(
        out,
        "\n== every GPU node vs the CPU op on the same inputs (max rel error)"
    );
    let mut o = vec![0f32; gpu.out_len];
    gpu.infer(usize::MAX, &frame, &mut o);
    let mut worst: std::collections::BTreeMap<String, f32> = Default::default();
    node_checks(&gpu, &mut worst).map_err(|x| e(&x))?;
    for (op, err) in &worst {
        let pass = *err < 1e-3;
        ok &= pass;
        let _ = writeln!(
            out,
            "{op:<20} {err:.2e} {}",
            if pass { "ok" } else { "FAIL" }
        );
    }

    // 3. End to end vs the CPU backend, boxes (px) and scores apart.
    let _ = writeln!(
        out,
        "\n== end to end vs the CPU backend (max abs error: boxes in px, scores)"
    );
    let mut cpu = CpuBackend::new(model, desc, None, 4).map_err(|x| e(&x))?;
    let mut want = vec![0f32; o.len()];
    cpu.infer(0, &frame, &mut want);
    let mut half = CudaBackend::new_on(gpu_api, model, desc, None, &opts(Precision::Fp16))
        .map_err(|x| e(&x))?;
    let mut oh = vec![0f32; o.len()];
    half.infer(usize::MAX, &frame, &mut oh);
    let shape = gpu.output_shape().to_vec();
    for (name, got, lim) in [("FP32", &o, FP32_LIMITS), ("FP16", &oh, FP16_LIMITS)] {
        let (line, pass) = end_to_end_line(name, got, &want, &shape, lim);
        ok &= pass;
        let _ = writeln!(out, "{line}");
    }

    // 4. Latency and allocations through the Backend trait on ring slots.
    for (name, be) in [("FP32", &mut gpu), ("FP16", &mut half)] {
        let _ = writeln!(
            out,
            "\n== latency {name}, {frames} frames (ms, CUDA events; whole = host wall time)"
        );
        let s = be.new_slot(true).map_err(|x| e(&x))?;
        // Writes only: the slot's frame memory is write-combined.
        // SAFETY: pinned buffers of the slot, sized at allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                s.frame.ptr,
                frame.len().min(s.frame.bytes),
            );
        }
        let mut ph: [Vec<f32>; 5] = Default::default();
        for v in ph.iter_mut() {
            v.reserve(frames);
        }
        be.launch_checked(&s).map_err(|x| e(&x))?;
        let d = be.dev().clone();
        // The first call of each driver function resolves its symbol (which
        // allocates once): make those calls before counting. Elapsed-time
        // errors are reported, never read as 0 ms.
        let mut timing_error = None;
        if let Some(m) = &s.marks {
            // SAFETY: both events were recorded by the finished graph.
            if let Err(r) = unsafe { d.gpu.event_elapsed_ms(m[0], m[1]) } {
                timing_error = Some(super::driver_error(r, "cuEventElapsedTime"));
            }
        }
        let a0 = count_alloc::allocations();
        for _ in 0..frames {
            let t = std::time::Instant::now();
            be.launch_and_wait(&s);
            let wall = t.elapsed().as_secs_f32() * 1e3;
            if let (Some(m), None) = (&s.marks, &timing_error) {
                for (k, v) in ph.iter_mut().take(4).enumerate() {
                    // SAFETY: both events recorded by the finished graph.
                    match unsafe { d.gpu.event_elapsed_ms(m[k], m[k + 1]) } {
                        Ok(ms) => v.push(ms),
                        Err(r) => {
                            timing_error = Some(super::driver_error(r, "cuEventElapsedTime"));
                            break;
                        }
                    }
                }
            }
            ph[4].push(wall);
        }
        let allocs = count_alloc::allocations() - a0;
        for (k, label) in ["copy in", "preprocess", "network", "copy out", "whole"]
            .iter()
            .enumerate()
        {
            if k < 4 {
                if let Some(t) = &timing_error {
                    ok = false;
                    let _ = writeln!(out, "{label:<11} FAIL (no GPU timing: {t})");
                    continue;
                }
            }
            let (p50, p99) = (pct(&mut ph[k], 0.5), pct(&mut ph[k], 0.99));
            let _ = writeln!(out, "{label:<11} p50 {p50:8.3}  p99 {p99:8.3}");
        }
        be.destroy_slot(s);
        if count_alloc::installed() {
            ok &= allocs == 0;
            let _ = writeln!(out, "heap allocations during the {frames} frames: {allocs}");
        } else {
            let _ = writeln!(
                out,
                "heap allocations during the {frames} frames: not counted (this binary does not install perceptd::count_alloc::Counting)"
            );
        }
    }
    Ok(ok)
}

/// One line of the end-to-end comparison, and whether it passed.
pub fn end_to_end_line(
    name: &str,
    got: &[f32],
    want: &[f32],
    shape: &[usize],
    lim: HeadLimits,
) -> (String, bool) {
    let h = head_error(got, want, shape);
    let pass = h.within(lim);
    (
        format!(
            "{name}: boxes {:.2e} px (limit {}), scores {:.2e} (limit {}) {}",
            h.box_px,
            lim.box_px,
            h.score,
            lim.score,
            if pass { "ok" } else { "FAIL" }
        ),
        pass,
    )
}

/// One RGB24 frame of the synthetic front camera.
pub fn scene_frame() -> Result<(FrameDesc, Vec<u8>), String> {
    use crate::source::synthetic::{SyntheticConfig, SyntheticSource};
    use crate::source::Source;
    let mut s =
        SyntheticSource::new(SyntheticConfig::front_camera(1)).map_err(|e| e.to_string())?;
    let desc = s.desc();
    let mut frame = vec![0u8; desc.bytes()];
    s.next_frame(&mut frame).map_err(|e| e.to_string())?;
    Ok((desc, frame))
}

/// The preprocess kernel on a random `d` frame vs `Letterbox::run`.
fn preprocess_vs_cpu(
    gpu: &CudaBackend,
    d: FrameDesc,
    w: usize,
    h: usize,
) -> Result<f32, CudaError> {
    let lb = Letterbox::new(d, w, h).map_err(|x| CudaError::Model(x.to_string()))?;
    let src = noise(
        d.bytes(),
        d.width as u64 * 31 + d.format.name().len() as u64,
    );
    let mut want = vec![0f32; lb.dst_len()];
    lb.run(&src, &mut want)
        .map_err(|x| CudaError::Model(x.to_string()))?;
    let dev = gpu.dev();
    let (nw, nh) = lb.resized();
    let xs = DeviceBuf::from_slice(dev, &linear_taps(d.width, nw), "taps")?;
    let ys = DeviceBuf::from_slice(dev, &linear_taps(d.height, nh), "taps")?;
    let sb = DeviceBuf::from_slice(dev, &src, "frame")?;
    let db = DeviceBuf::zeroed(dev, want.len() * 4, "tensor")?;
    let p = PreParams::letterbox(&lb, sb.ptr, db.ptr, xs.ptr, ys.ptr);
    let grid = (w * h).div_ceil(256).clamp(1, 65_535) as u32;
    // SAFETY: context current (from_slice); every pointer is a live
    // device buffer of the size the kernel uses.
    unsafe {
        dev.gpu
            .launch_preprocess(&gpu.core.kernels, &p, grid, dev.stream)?
    };
    let mut got = vec![0f32; want.len()];
    db.read(&mut got)?;
    Ok(max_abs(&got, &want))
}

/// For each GPU node k: run nodes 0..=k, read node k's inputs and outputs,
/// evaluate the op on the CPU (`ops::eval`, the CPU kernels) and keep the
/// worst relative error per op name.
fn node_checks(
    gpu: &CudaBackend,
    worst: &mut std::collections::BTreeMap<String, f32>,
) -> Result<(), CudaError> {
    let g = crate::engine::load_optimized(
        &gpu.model_path,
        &crate::engine::Bindings::new(),
        &crate::engine::Limits::default(),
    )
    .map_err(|x| CudaError::Model(x.to_string()))?;
    let dev = gpu.dev();
    let plan = super::lower::build(&g, Precision::Fp32, dev)?;
    // The plan above has its own arena: fill its input like the frame's.
    let mut input = vec![0f32; plan.inputs[0].len];
    read_at(dev, gpu.plan.inputs[0].ptr, input.len(), &mut input)?;
    write_at(dev, plan.inputs[0].ptr, &input)?;
    let read = |ptr: u64, len: usize| -> Result<Vec<f32>, CudaError> {
        let mut v = vec![0f32; len];
        read_at(dev, ptr, len, &mut v)?;
        Ok(v)
    };
    let arena_plan = crate::engine::plan_arena(
        &g,
        &g.nodes
            .iter()
            .map(|n| {
                crate::engine::is_view(&n.op)
                    && n.outputs.len() == 1
                    && n.inputs
                        .first()
                        .copied()
                        .flatten()
                        .is_some_and(|t| g.tensors[t].value.is_none())
            })
            .collect::<Vec<_>>(),
        &vec![None; g.nodes.len()],
    );
    for k in 0..plan.nodes.len() {
        // SAFETY: context current; the check plan's pointers are live.
        unsafe {
            for n in &plan.nodes[..=k] {
                for l in &n.launches {
                    gpu.enqueue(l)?;
                }
            }
        }
        dev.sync("running nodes")?;
        let node = &g.nodes[plan.nodes[k].node];
        let mut ins: Vec<Option<Tensor>> = Vec::new();
        for i in &node.inputs {
            ins.push(match i {
                None => None,
                Some(t) => match &g.tensors[*t].value {
                    Some(v) => Some((**v).clone()),
                    None => {
                        let shape = g.tensors[*t].shape.clone().unwrap_or_default();
                        let len = shape.iter().product();
                        let p = plan.arena.ptr + 4 * arena_plan.offset(*t) as u64;
                        Some(Tensor::from_f32(shape, read(p, len)?))
                    }
                },
            });
        }
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        let Ok(want) = crate::engine::ops::eval(&node.op, &refs) else {
            continue;
        };
        for (o, w) in node.outputs.iter().zip(&want) {
            let len = w.numel();
            let p = plan.arena.ptr + 4 * arena_plan.offset(*o) as u64;
            let got = read(p, len)?;
            let err = max_rel(&got, w.as_f32().unwrap_or(&[]));
            let e = worst.entry(plan.nodes[k].op.clone()).or_insert(0.0);
            *e = e.max(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::emu_gpu::EmuGpu;

    /// gpu-check's end-to-end comparison on the emulated GPU's real output:
    /// it passes as computed, and fails on a score off by 0.02 (which the
    /// old tolerance, relative to the ~64 px boxes, let through) and on a
    /// box off by 5 px (also under FP16's limits).
    #[test]
    fn end_to_end_comparison_catches_a_small_score_error_and_a_box_error() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx");
        let desc = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 64,
            height: 64,
        };
        let frame = noise(desc.bytes(), 3);
        let opts = CudaOptions {
            ordinal: 0,
            precision: Precision::Fp32,
            cache_dir: None,
            style: crate::preprocess::InputStyle::Letterbox,
        };
        let mut gpu =
            CudaBackend::new_on(EmuGpu::new(false), &p, desc, Some([64, 64]), &opts).unwrap();
        let mut cpu = CpuBackend::new(&p, desc, Some([64, 64]), 1).unwrap();
        let shape = gpu.output_shape().to_vec();
        let n = shape[2];
        let mut got = vec![0f32; shape.iter().product()];
        let mut want = got.clone();
        gpu.infer(usize::MAX, &frame, &mut got);
        cpu.infer(0, &frame, &mut want);
        let (line, pass) = end_to_end_line("FP32", &got, &want, &shape, FP32_LIMITS);
        assert!(pass, "{line}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 20.0, "boxes set the scale: {scale}");

        let mut score = got.clone();
        score[5 * n + 7] += 0.02; // a class score
        assert!(max_rel(&score, &want) < 1e-3, "the old check passed this");
        let (line, pass) = end_to_end_line("FP32", &score, &want, &shape, FP32_LIMITS);
        assert!(!pass && line.contains("FAIL"), "{line}");

        let mut boxed = got.clone();
        boxed[n + 3] += 5.0; // cy of anchor 3
        let h = head_error(&boxed, &want, &shape);
        assert!(h.box_px >= 4.9 && h.score < FP32_LIMITS.score, "{h:?}");
        assert!(!end_to_end_line("FP32", &boxed, &want, &shape, FP32_LIMITS).1);
        assert!(!end_to_end_line("FP16", &boxed, &want, &shape, FP16_LIMITS).1);
    }

    /// Anchor-major heads (`[1, N, 5 + C]`) split the same way.
    #[test]
    fn head_error_reads_anchor_major_layouts() {
        let want = vec![0f32; 10 * 7];
        let mut got = want.clone();
        got[7 * 3 + 2] = 1.5; // anchor 3, box w
        got[7 * 4 + 6] = 0.5; // anchor 4, a score
        let h = head_error(&got, &want, &[1, 10, 7]);
        assert_eq!(
            h,
            HeadError {
                box_px: 1.5,
                score: 0.5
            }
        );
    }
}
