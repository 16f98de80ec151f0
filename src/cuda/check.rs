//! `perceptd gpu-check`: the CUDA backend against the CPU backend on a real
//! GPU, printed to stdout: device info; the preprocessing kernel for every
//! pixel format; every GPU node of the model vs the CPU implementation of
//! the same op on the same inputs; the model end to end (FP32, FP16);
//! per-phase latency from CUDA events over N frames; heap allocations
//! during the timed frames (the binary counts them with [`CountingAlloc`]).
//!
//! Runs once, on the main thread; allocates freely outside the timed loop.

use super::backend::{format_code, linear_taps, CudaBackend, CudaOptions, PreParams};
use super::lower::Precision;
use super::mem::DeviceBuf;
use super::{check, CudaError};
use crate::backend::{Backend, CpuBackend};
use crate::engine::tensor::Tensor;
use crate::frame::{FrameDesc, PixelFormat};
use crate::preprocess::{Letterbox, PAD_VALUE};
use cudarc::driver::sys;
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator plus one relaxed atomic increment per allocation:
/// cheap enough to stay in the release binary, so `gpu-check` can prove
/// the frame loop allocates nothing on the machine that runs it.
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// Allocations so far (with [`CountingAlloc`] as the global allocator).
pub fn alloc_count() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

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

fn pct(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The whole check. Ok(true) when every comparison is within tolerance.
pub fn run(
    model: &Path,
    ordinal: usize,
    frames: usize,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let info = super::probe(ordinal).map_err(|x| e(&x))?;
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
    };
    let t0 = std::time::Instant::now();
    let mut gpu = CudaBackend::new(model, desc, None, &opts(Precision::Fp32)).map_err(|x| e(&x))?;
    let _ = writeln!(
        out,
        "boot (FP32): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let t0 = std::time::Instant::now();
    let warm = CudaBackend::new(model, desc, None, &opts(Precision::Fp32)).map_err(|x| e(&x))?;
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

    // 3. End to end vs the CPU backend.
    let _ = writeln!(
        out,
        "\n== end to end vs the CPU backend (max error relative to max |output|)"
    );
    let mut cpu = CpuBackend::new(model, desc, None, 4).map_err(|x| e(&x))?;
    let mut want = vec![0f32; o.len()];
    cpu.infer(0, &frame, &mut want);
    let rel = max_rel(&o, &want);
    ok &= rel < 1e-3;
    let _ = writeln!(
        out,
        "FP32: {rel:.2e} {}",
        if rel < 1e-3 { "ok" } else { "FAIL" }
    );
    let mut half =
        CudaBackend::new(model, desc, None, &opts(Precision::Fp16)).map_err(|x| e(&x))?;
    let mut oh = vec![0f32; o.len()];
    half.infer(usize::MAX, &frame, &mut oh);
    let rel16 = max_rel(&oh, &want);
    ok &= rel16 < 2e-2;
    let _ = writeln!(
        out,
        "FP16: {rel16:.2e} {} (limit 2e-2)",
        if rel16 < 2e-2 { "ok" } else { "FAIL" }
    );

    // 4. Latency and allocations through the Backend trait on ring slots.
    for (name, be) in [("FP32", &mut gpu), ("FP16", &mut half)] {
        let _ = writeln!(
            out,
            "\n== latency {name}, {frames} frames (ms, CUDA events; whole = host wall time)"
        );
        let s = be.new_slot(true).map_err(|x| e(&x))?;
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
        be.launch_and_wait(&s);
        // The first call of each driver function resolves its symbol (which
        // allocates once): make those calls before counting.
        if let Some(m) = &s.marks {
            let mut ms = 0f32;
            // SAFETY: both events were recorded by the finished graph.
            unsafe {
                let _ = sys::cuEventElapsedTime(&mut ms, m[0], m[1]);
            }
        }
        let a0 = alloc_count();
        for _ in 0..frames {
            let t = std::time::Instant::now();
            be.launch_and_wait(&s);
            let wall = t.elapsed().as_secs_f32() * 1e3;
            if let Some(m) = &s.marks {
                for (k, v) in ph.iter_mut().take(4).enumerate() {
                    let mut ms = 0f32;
                    // SAFETY: both events recorded by the finished graph.
                    unsafe {
                        let _ = sys::cuEventElapsedTime(&mut ms, m[k], m[k + 1]);
                    }
                    v.push(ms);
                }
            }
            ph[4].push(wall);
        }
        let allocs = alloc_count() - a0;
        for (k, label) in ["copy in", "preprocess", "network", "copy out", "whole"]
            .iter()
            .enumerate()
        {
            let (p50, p99) = (pct(&mut ph[k], 0.5), pct(&mut ph[k], 0.99));
            let _ = writeln!(out, "{label:<11} p50 {p50:8.3}  p99 {p99:8.3}");
        }
        ok &= allocs == 0;
        let _ = writeln!(out, "heap allocations during the {frames} frames: {allocs}");
    }
    Ok(ok)
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
    gpu.make_current()?;
    let (nw, nh) = lb.resized();
    let xs = DeviceBuf::from_slice(&linear_taps(d.width, nw), "taps")?;
    let ys = DeviceBuf::from_slice(&linear_taps(d.height, nh), "taps")?;
    let sb = DeviceBuf::from_slice(&src, "frame")?;
    let db = DeviceBuf::zeroed(want.len() * 4, "tensor")?;
    let i = lb.info();
    let mut p = PreParams {
        src: sb.ptr,
        dst: db.ptr,
        remap: 0,
        xs: xs.ptr,
        ys: ys.ptr,
        format: format_code(d.format),
        src_w: d.width as i32,
        src_h: d.height as i32,
        dst_w: w as i32,
        dst_h: h as i32,
        new_w: nw as i32,
        new_h: nh as i32,
        top: i.pad_y as i32,
        left: i.pad_x as i32,
        pad: PAD_VALUE as f32 / 255.0,
    };
    let f = gpu.funcs["preprocess"];
    let mut args = [&mut p as *mut PreParams as *mut c_void];
    // SAFETY: context current; every pointer is a live device buffer.
    unsafe {
        check(
            sys::cuLaunchKernel(
                f,
                ((w * h).div_ceil(256)) as u32,
                1,
                1,
                256,
                1,
                1,
                0,
                gpu.stream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            ),
            "preprocess",
        )?;
        check(sys::cuStreamSynchronize(gpu.stream), "preprocess")?;
    }
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
    let plan = super::lower::build(&g, Precision::Fp32)?;
    // The plan above has its own arena: fill its input like the frame's.
    let mut input = vec![0f32; plan.inputs[0].len];
    // SAFETY: the backend's arena input holds `len` floats.
    unsafe {
        check(
            sys::cuMemcpyDtoH_v2(
                input.as_mut_ptr() as *mut c_void,
                gpu.plan.inputs[0].ptr,
                input.len() * 4,
            ),
            "reading the input",
        )?;
        check(
            sys::cuMemcpyHtoD_v2(
                plan.inputs[0].ptr,
                input.as_ptr() as *const c_void,
                input.len() * 4,
            ),
            "writing the input",
        )?;
    }
    let read = |ptr: u64, len: usize| -> Result<Vec<f32>, CudaError> {
        let mut v = vec![0f32; len];
        // SAFETY: ptr holds len floats (arena region or constant).
        unsafe {
            check(
                sys::cuMemcpyDtoH_v2(v.as_mut_ptr() as *mut c_void, ptr, len * 4),
                "reading a tensor",
            )?
        };
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
            check(sys::cuStreamSynchronize(gpu.stream), "running nodes")?;
        }
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
