//! Test double at the GPU boundary: a CPU interpreter of the lowered GPU
//! plan. Every kernel of `kernels/*.cu` is transcribed here line for line
//! and cuBLAS's column-major GEMM is computed literally from its
//! arguments, so the tests check on a machine without a GPU everything
//! the Rust side decides (arena offsets, strides, GEMM transposition and
//! leading dimensions, im2col indexing, scratch patching, resize and
//! letterbox tables, FP16 conversion) against the CPU backend. What it
//! cannot check is the `.cu` text itself: NVRTC compiles it in
//! tests/nvrtc_kernels.rs, and `perceptd gpu-check` runs it on a GPU.

use super::backend::{PreParams, Tap};
use super::lower::{Gemm, GpuPlan, Launch, Params, MAX_DIMS};
use crate::engine::half::{f16_to_f32, f32_to_f16};

// SAFETY (whole module): the addresses are host addresses of buffers the
// emulated GPU allocated (`emu_gpu`), valid for every index the lowering
// computed; a wrong index is exactly the bug these tests look for, and
// is caught by the comparison or, out of bounds, by a crash of the test.
unsafe fn ld(p: u64, i: i64) -> f32 {
    *(p as *const f32).offset(i as isize)
}
unsafe fn st(p: u64, i: i64, v: f32) {
    *(p as *mut f32).offset(i as isize) = v;
}
unsafe fn ld16(p: u64, i: i64) -> f32 {
    f16_to_f32(*(p as *const u16).offset(i as isize))
}
unsafe fn st16(p: u64, i: i64, v: f32) {
    *(p as *mut u16).offset(i as isize) = f32_to_f16(v);
}

/// The CPU backend's Erf on one value (through its op evaluator: slow,
/// allocates, fine for a test double).
fn erf_cpu(x: f32) -> f32 {
    use crate::engine::ir::{Op, UnaryOp};
    use crate::engine::tensor::Tensor;
    let t = Tensor::from_f32(vec![1], vec![x]);
    crate::engine::ops::eval(&Op::Unary(UnaryOp::Erf), &[Some(&t)])
        .ok()
        .and_then(|v| v.first().and_then(|t| t.as_f32().map(|s| s[0])))
        .unwrap_or(f32::NAN)
}

fn sigmoidf(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn apply_act(act: i32, x: f32, a: f32, b: f32) -> f32 {
    match act {
        1 => x.max(0.0),
        2 => x * sigmoidf(x),
        3 => sigmoidf(x),
        4 => {
            if x >= 0.0 {
                x
            } else {
                a * x
            }
        }
        5 => (a * x + b).clamp(0.0, 1.0),
        6 => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        7 => x.tanh(),
        8 => x.max(a).min(b),
        9 => {
            if x >= 0.0 {
                x
            } else {
                a * (x.exp() - 1.0)
            }
        }
        20 => x.sqrt(),
        21 => -x,
        22 => x.abs(),
        23 => x.exp(),
        24 => x.ln(),
        25 => x.floor(),
        26 => x.ceil(),
        27 => x.round_ties_even(),
        28 => 1.0 / x,
        // erff: the CPU backend's own erf (the kernel's erff is within
        // 2 ulp of it).
        29 => erf_cpu(x),
        30 => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        31 => x.sin(),
        32 => x.cos(),
        _ => x,
    }
}

fn decompose(i: i64, ndim: i32, dims: &[i64; MAX_DIMS], sts: &[&[i64; MAX_DIMS]], out: &mut [i64]) {
    let mut rem = i;
    for k in (0..ndim as usize).rev() {
        let idx = rem % dims[k];
        rem /= dims[k];
        for (o, s) in out.iter_mut().zip(sts) {
            *o += idx * s[k];
        }
    }
}

/// Run one launch on the CPU.
pub fn run_launch(l: &Launch) {
    match l {
        // SAFETY: see the note above `ld`: the plan's own host buffers.
        Launch::Kernel { params, .. } => unsafe { run_kernel(params) },
        // SAFETY: as above.
        Launch::Gemm(g) => unsafe { gemm(g) },
    }
}

/// Run every node of `plan`.
pub fn run_plan(plan: &GpuPlan) {
    for n in &plan.nodes {
        for l in &n.launches {
            run_launch(l);
        }
    }
}

unsafe fn run_kernel(p: &Params) {
    match *p {
        Params::Copy(p) => {
            for i in 0..p.n {
                let mut o = [p.src_base, p.dst_base];
                decompose(i, p.ndim, &p.dims, &[&p.src_st, &p.dst_st], &mut o);
                st(p.dst, o[1], ld(p.src, o[0]));
            }
        }
        Params::Fill(p) => {
            for i in 0..p.n {
                st(p.dst, i, p.value);
            }
        }
        Params::Binary(p) => {
            for i in 0..p.n {
                let mut o = [0, 0];
                decompose(i, p.ndim, &p.dims, &[&p.a_st, &p.b_st], &mut o);
                let (x, y) = (ld(p.a, o[0]), ld(p.b, o[1]));
                let r = match p.op {
                    0 => x + y,
                    1 => x - y,
                    2 => x * y,
                    3 => x / y,
                    4 => x.powf(y),
                    5 if x.is_nan() || y.is_nan() => f32::NAN,
                    5 => x.max(y),
                    6 if x.is_nan() || y.is_nan() => f32::NAN,
                    6 => x.min(y),
                    _ => 0.0,
                };
                st(p.out, i, r);
            }
        }
        Params::Unary(p) => {
            for i in 0..p.n {
                st(p.out, i, apply_act(p.op, ld(p.x, i), p.alpha, p.beta));
            }
        }
        Params::Channel(p) => {
            for i in 0..p.n {
                let c = (i / p.inner) % p.channels as i64;
                let mut v = ld(p.x, i);
                if p.scale != 0 {
                    v *= ld(p.scale, c);
                }
                if p.shift != 0 {
                    v += ld(p.shift, c);
                }
                st(p.y, i, apply_act(p.act, v, p.alpha, p.beta));
            }
        }
        Params::Half(p) => {
            for i in 0..p.n {
                st16(p.dst, i, ld(p.src, i));
            }
        }
        Params::Im2col(p) => {
            let cols = (p.oh * p.ow) as i64;
            for i in 0..p.n {
                let (r, q) = (i / cols, i % cols);
                let kx = (r % p.kw as i64) as i32;
                let ky = ((r / p.kw as i64) % p.kh as i64) as i32;
                let c = r / (p.kw as i64 * p.kh as i64);
                let (ox, oy) = ((q % p.ow as i64) as i32, (q / p.ow as i64) as i32);
                let iy = oy * p.sh - p.ph + ky * p.dh;
                let ix = ox * p.sw - p.pw + kx * p.dw;
                let mut v = 0.0;
                if iy >= 0 && iy < p.h && ix >= 0 && ix < p.w {
                    v = ld(p.x, (c * p.h as i64 + iy as i64) * p.w as i64 + ix as i64);
                }
                if p.half != 0 {
                    st16(p.col, i, v);
                } else {
                    st(p.col, i, v);
                }
            }
        }
        Params::DirectConv(p) => {
            let (cin_g, cout_g) = (p.c / p.group, p.cout / p.group);
            let (ow, oh) = (p.ow as i64, p.oh as i64);
            for i in 0..p.n {
                let ox = (i % ow) as i32;
                let oy = ((i / ow) % oh) as i32;
                let co = ((i / (ow * oh)) % p.cout as i64) as i32;
                let b = i / (ow * oh * p.cout as i64);
                let g = co / cout_g;
                let mut acc = if p.bias != 0 {
                    ld(p.bias, co as i64)
                } else {
                    0.0
                };
                for ci in 0..cin_g {
                    let xo = ((b * p.c as i64) + g as i64 * cin_g as i64 + ci as i64)
                        * p.h as i64
                        * p.wd as i64;
                    let wo = ((co as i64 * cin_g as i64 + ci as i64) * p.kh as i64) * p.kw as i64;
                    for ky in 0..p.kh {
                        let iy = oy * p.sh - p.ph + ky * p.dh;
                        if iy < 0 || iy >= p.h {
                            continue;
                        }
                        for kx in 0..p.kw {
                            let ix = ox * p.sw - p.pw + kx * p.dw;
                            if ix < 0 || ix >= p.wd {
                                continue;
                            }
                            acc += ld(p.x, xo + iy as i64 * p.wd as i64 + ix as i64)
                                * ld(p.w, wo + (ky * p.kw + kx) as i64);
                        }
                    }
                }
                st(p.y, i, apply_act(p.act, acc, p.alpha, p.beta));
            }
        }
        Params::Pool(p) => {
            let (ow, oh) = (p.ow as i64, p.oh as i64);
            for i in 0..p.n {
                let ox = (i % ow) as i32;
                let oy = ((i / ow) % oh) as i32;
                let nc = i / (ow * oh);
                let xo = nc * p.h as i64 * p.w as i64;
                let mut acc = if p.is_max != 0 {
                    f32::NEG_INFINITY
                } else {
                    0.0
                };
                let (mut count, mut nan) = (0, false);
                for ky in 0..p.kh {
                    let iy = oy * p.sh - p.ph + ky * p.dh;
                    for kx in 0..p.kw {
                        let ix = ox * p.sw - p.pw + kx * p.dw;
                        if !(iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
                            if iy < p.h + p.pad_end_h && ix < p.w + p.pad_end_w {
                                count += p.count_include_pad;
                            }
                            continue;
                        }
                        let v = ld(p.x, xo + iy as i64 * p.w as i64 + ix as i64);
                        if p.is_max != 0 {
                            nan |= v.is_nan();
                            acc = acc.max(v);
                        } else {
                            acc += v;
                        }
                        count += 1;
                    }
                }
                let r = if p.is_max != 0 {
                    if nan {
                        f32::NAN
                    } else {
                        acc
                    }
                } else if count > 0 {
                    acc / count as f32
                } else {
                    0.0
                };
                st(p.y, i, r);
            }
        }
        Params::GlobalPool(p) => {
            for r in 0..p.rows {
                let mut acc = if p.is_max != 0 {
                    f32::NEG_INFINITY
                } else {
                    0.0
                };
                for j in 0..p.len {
                    let v = ld(p.x, r * p.len + j);
                    acc = if p.is_max == 0 {
                        acc + v
                    } else if v.is_nan() || acc.is_nan() {
                        // As the kernel: NaN propagates (fmaxf would drop it).
                        f32::NAN
                    } else {
                        acc.max(v)
                    };
                }
                st(
                    p.y,
                    r,
                    if p.is_max != 0 {
                        acc
                    } else {
                        acc / p.len as f32
                    },
                );
            }
        }
        Params::Resize(p) => {
            let (ow, oh) = (p.ow as i64, p.oh as i64);
            let (yidx, xidx) = (p.yidx as *const i32, p.xidx as *const i32);
            for i in 0..p.n {
                let ox = (i % ow) as i32;
                let oy = ((i / ow) % oh) as i32;
                let plane = i / (ow * oh);
                let xo = plane * p.h as i64 * p.w as i64;
                let mut acc = 0.0;
                for ty in 0..p.ytaps {
                    let k = (oy * p.ytaps + ty) as isize;
                    let (iy, wy) = (*yidx.offset(k), ld(p.yw, k as i64));
                    let mut row = 0.0;
                    for tx in 0..p.xtaps {
                        let k = (ox * p.xtaps + tx) as isize;
                        row += ld(p.xw, k as i64)
                            * ld(p.x, xo + iy as i64 * p.w as i64 + *xidx.offset(k) as i64);
                    }
                    acc += wy * row;
                }
                st(p.y, i, acc);
            }
        }
        Params::Softmax(p) => {
            for r in 0..p.rows {
                let (o, inn) = (r / p.inner, r % p.inner);
                let base = o * p.len * p.inner + inn;
                let at = |j: i64| base + j * p.inner;
                let mut m = f32::NEG_INFINITY;
                for j in 0..p.len {
                    m = m.max(ld(p.x, at(j)));
                }
                let mut s = 0.0;
                for j in 0..p.len {
                    s += (ld(p.x, at(j)) - m).exp();
                }
                for j in 0..p.len {
                    let v = ld(p.x, at(j)) - m;
                    st(
                        p.y,
                        at(j),
                        if p.log != 0 { v - s.ln() } else { v.exp() / s },
                    );
                }
            }
        }
    }
}

/// What `cublasSgemmStridedBatched` / `cublasGemmStridedBatchedEx` compute
/// for the arguments `lower::gemm` passes: column-major, first operand B.
unsafe fn gemm(g: &Gemm) {
    // cuBLAS's view: m' = n, n' = m, A' = B (ld ldb, op trans_b),
    // B' = A (ld lda, op trans_a), C' = C (ld ldc).
    let (mm, nn, k) = (g.n as i64, g.m as i64, g.k as i64);
    let load = |p: u64, i: i64| if g.half { ld16(p, i) } else { ld(p, i) };
    for b in 0..g.batch as i64 {
        let (a1, b1, c1) = (g.b, g.a, g.c);
        let (oa, ob, oc) = (b * g.stride_b, b * g.stride_a, b * g.stride_c);
        for j in 0..nn {
            for i in 0..mm {
                let mut acc = 0f32;
                for l in 0..k {
                    // op(A')(i, l), column-major with leading dim ldb.
                    let av = if g.trans_b {
                        load(a1, oa + l + i * g.ldb as i64)
                    } else {
                        load(a1, oa + i + l * g.ldb as i64)
                    };
                    let bv = if g.trans_a {
                        load(b1, ob + j + l * g.lda as i64)
                    } else {
                        load(b1, ob + l + j * g.lda as i64)
                    };
                    acc += av * bv;
                }
                let ci = oc + i + j * g.ldc as i64;
                let old = if g.beta != 0.0 { ld(c1, ci) } else { 0.0 };
                st(c1, ci, g.alpha * acc + g.beta * old);
            }
        }
    }
}

/// preprocess.cu's `src_rgb`, transcribed.
unsafe fn src_rgb(p: &PreParams, x: i32, y: i32) -> [i32; 3] {
    let f = p.src as *const u8;
    let at = |i: i64| *f.offset(i as isize) as i32;
    let (w, h) = (p.src_w as i64, p.src_h as i64);
    let (cw, ch) = ((w + 1) / 2, (h + 1) / 2);
    let (x, y) = (x as i64, y as i64);
    let clamp = |v: i32| (v >> 20).clamp(0, 255);
    let yuv = |yy: i32, u: i32, v: i32| {
        let luma = if yy < 16 { 0 } else { (yy - 16) * 1220542 };
        let (u, v) = (u - 128, v - 128);
        let half = 1 << 19;
        [
            clamp(luma + half + 1673527 * v),
            clamp(luma + half - 852492 * v - 409993 * u),
            clamp(luma + half + 2116026 * u),
        ]
    };
    match p.format {
        4 => {
            let q = (y * w + x) * 3;
            [at(q), at(q + 1), at(q + 2)]
        }
        3 => {
            let g = at(y * w + x);
            [g, g, g]
        }
        0 => {
            let r = y * cw * 4 + (x / 2) * 4;
            yuv(at(r + (x & 1) * 2), at(r + 1), at(r + 3))
        }
        1 => {
            let r = y * cw * 4 + (x / 2) * 4;
            yuv(at(r + 1 + (x & 1) * 2), at(r), at(r + 2))
        }
        2 => {
            let uv = w * h + (y / 2) * cw * 2 + (x / 2) * 2;
            yuv(at(y * w + x), at(uv), at(uv + 1))
        }
        5 | 6 => {
            let crow = if p.format == 5 { y / 2 } else { y };
            let crows = if p.format == 5 { ch } else { h };
            let base = w * h;
            let u = at(base + crow * cw + x / 2);
            let v = at(base + crows * cw + crow * cw + x / 2);
            yuv(at(y * w + x), u, v)
        }
        7 => {
            let (i, plane) = (y * w + x, w * h);
            yuv(at(i), at(plane + i), at(2 * plane + i))
        }
        _ => [0, 0, 0],
    }
}

/// preprocess.cu's `preprocess` kernel, transcribed.
///
/// # Safety
/// Every address in `p` is a live host buffer of the size the kernel
/// reads or writes (the emulated GPU's memory).
pub unsafe fn preprocess(p: &PreParams) {
    let plane = (p.dst_w * p.dst_h) as i64;
    for i in 0..plane {
        let (ox, oy) = ((i % p.dst_w as i64) as i32, (i / p.dst_w as i64) as i32);
        let mut out = [p.pad; 3];
        let (mut x0, mut x1, mut y0, mut y1, mut wx, mut wy) = (0, 0, 0, 0, 0.0f32, 0.0f32);
        let inside;
        if p.remap != 0 {
            let m = p.remap as *const [f32; 2];
            let [mx, my] = *m.offset(i as isize);
            inside =
                mx >= 0.0 && mx <= (p.src_w - 1) as f32 && my >= 0.0 && my <= (p.src_h - 1) as f32;
            if inside {
                let (fx, fy) = (mx.floor(), my.floor());
                x0 = fx as i32;
                y0 = fy as i32;
                wx = mx - fx;
                wy = my - fy;
                x1 = (x0 + 1).min(p.src_w - 1);
                y1 = (y0 + 1).min(p.src_h - 1);
            }
        } else {
            let (cx, cy) = (ox - p.left, oy - p.top);
            inside = cx >= 0 && cx < p.new_w && cy >= 0 && cy < p.new_h;
            if inside {
                let tx = *(p.xs as *const Tap).offset(cx as isize);
                let ty = *(p.ys as *const Tap).offset(cy as isize);
                (x0, x1, wx, y0, y1, wy) = (tx.i0, tx.i1, tx.w, ty.i0, ty.i1, ty.w);
            }
        }
        if inside {
            let (a, b, c, d) = (
                src_rgb(p, x0, y0),
                src_rgb(p, x1, y0),
                src_rgb(p, x0, y1),
                src_rgb(p, x1, y1),
            );
            for k in 0..3 {
                let h0 = a[k] as f32 + wx * (b[k] as f32 - a[k] as f32);
                let h1 = c[k] as f32 + wx * (d[k] as f32 - c[k] as f32);
                out[k] = (h0 + wy * (h1 - h0)) / p.div;
            }
        }
        for (k, v) in out.iter().enumerate() {
            let c = if p.bgr != 0 { 2 - k as i64 } else { k as i64 };
            st(p.dst, c * plane + i, *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::{format_code, linear_taps};
    use super::super::driver::Device;
    use super::super::emu_gpu::EmuGpu;
    use super::super::lower::{build, Precision};
    use super::super::mem::DeviceBuf;
    use super::*;
    use crate::cuda::check::noise;
    use crate::engine::{build_cpu_model, load_optimized, Bindings, Limits};
    use crate::frame::{FrameDesc, PixelFormat};
    use crate::preprocess::{InputStyle, Letterbox, PAD_VALUE};
    use std::path::Path;

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().map(|x| x.abs()).fold(0.0f32, f32::max).max(1e-6);
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    /// `model` lowered for the GPU and run by the emulator vs the CPU
    /// model: the max relative error for FP32 and FP16.
    fn emulated_vs_cpu(path: &Path) -> [f32; 2] {
        let mut cpu = build_cpu_model(path, &Bindings::new(), 2, &Limits::default()).unwrap();
        // A synthetic road scene, letterboxed: noise would saturate a real
        // detector's outputs and hide errors.
        let (desc, frame) = super::super::check::scene_frame().unwrap();
        let shape = cpu.inputs()[0].shape.clone();
        let lb = Letterbox::new(desc, shape[3], shape[2]).unwrap();
        let mut input = vec![0f32; lb.dst_len()];
        lb.run(&frame, &mut input).unwrap();
        cpu.input_mut(0).copy_from_slice(&input);
        cpu.run();
        let want = cpu.output(0).to_vec();
        let g = load_optimized(path, &Bindings::new(), &Limits::default()).unwrap();
        [Precision::Fp32, Precision::Fp16].map(|precision| {
            let dev = Device::open(EmuGpu::new(false), 0).unwrap();
            let plan = build(&g, precision, &dev).unwrap();
            let half = plan
                .nodes
                .iter()
                .flat_map(|n| &n.launches)
                .filter(|l| matches!(l, Launch::Gemm(g) if g.half))
                .count();
            assert_eq!(half > 0, precision == Precision::Fp16, "{half} FP16 GEMMs");
            assert_eq!(plan.inputs[0].len, input.len());
            // SAFETY: the emulated arena holds the input's floats.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    input.as_ptr(),
                    plan.inputs[0].ptr as *mut f32,
                    input.len(),
                )
            };
            run_plan(&plan);
            let o = &plan.outputs[0];
            assert_eq!(o.len, want.len());
            // SAFETY: as above, for the output.
            let got = unsafe { std::slice::from_raw_parts(o.ptr as *const f32, o.len) };
            let worst = got
                .iter()
                .zip(&want)
                .enumerate()
                .max_by(|a, b| (a.1 .0 - a.1 .1).abs().total_cmp(&(b.1 .0 - b.1 .1).abs()));
            let n = o.shape.last().copied().unwrap_or(1);
            let scores = got[4 * n..]
                .iter()
                .zip(&want[4 * n..])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!(
                "{precision:?}: {half} FP16 GEMMs, worst element {worst:?}, max abs error of rows 4.. (scores) {scores:.2e}"
            );
            max_rel(got, &want)
        })
    }

    /// The shipped detector lowered for the GPU and run by the emulator
    /// matches the CPU backend: FP32 closely, FP16 (f16 GEMM inputs,
    /// f32 accumulate) within the tolerance gpu-check uses.
    #[test]
    fn shipped_model_on_the_emulated_gpu_matches_the_cpu_backend() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/perceptd-synth.onnx");
        let [fp32, fp16] = emulated_vs_cpu(&path);
        eprintln!("emulated GPU vs CPU, max rel error: FP32 {fp32:.2e}, FP16 {fp16:.2e}");
        assert!(fp32 < 1e-4, "FP32: {fp32:e}");
        assert!(fp16 < 2e-2, "FP16: {fp16:e}");
        assert!(
            fp16 > 0.0,
            "FP16 gave bit-identical results: was FP16 used?"
        );
    }

    /// The preprocessing kernel's logic (taps, colour conversion, blend
    /// order, channel order and scale) matches the CPU letterbox within
    /// 1/255 for every format and input style, odd sizes, up- and
    /// downscaling, and identity.
    #[test]
    fn preprocess_kernel_logic_matches_the_cpu_letterbox() {
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
            for (k, (w, h, dw, dh)) in [
                (67, 41, 64, 64),
                (64, 48, 64, 48),
                (30, 17, 96, 64),
                (33, 33, 32, 48),
                (41, 29, 40, 40),
                (50, 31, 64, 48),
            ]
            .into_iter()
            .enumerate()
            {
                let d = FrameDesc {
                    format: f,
                    width: w,
                    height: h,
                };
                let style = [
                    InputStyle::Letterbox,
                    InputStyle::YoloX,
                    InputStyle::Stretch,
                ][k % 3];
                let lb = Letterbox::with_style(d, dw, dh, style).unwrap();
                let src = noise(d.bytes(), (w * 7 + h) as u64);
                let mut want = vec![0f32; lb.dst_len()];
                lb.run(&src, &mut want).unwrap();
                let (nw, nh) = lb.resized();
                let dev = Device::open(EmuGpu::new(false), 0).unwrap();
                let xs = DeviceBuf::from_slice(&dev, &linear_taps(w, nw), "xs").unwrap();
                let ys = DeviceBuf::from_slice(&dev, &linear_taps(h, nh), "ys").unwrap();
                let sb = DeviceBuf::from_slice(&dev, &src, "src").unwrap();
                let db = DeviceBuf::zeroed(&dev, want.len() * 4, "dst").unwrap();
                let p = PreParams::letterbox(&lb, sb.ptr, db.ptr, xs.ptr, ys.ptr);
                // SAFETY: every pointer is a live host buffer of the size
                // the kernel reads or writes.
                unsafe { preprocess(&p) };
                let mut got = vec![0f32; want.len()];
                db.read(&mut got).unwrap();
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                // One 8-bit step, in the style's scale.
                let step = 1.0 / p.div;
                assert!(
                    err <= step,
                    "{} {w}x{h} -> {dw}x{dh} {style:?}: max error {err}",
                    f.name()
                );
            }
        }
    }

    /// A remap that reproduces the letterbox gives the same tensor, and
    /// NaN or outside coordinates give the padding.
    #[test]
    fn remap_of_the_letterbox_geometry_matches_and_nan_pads() {
        let d = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 40,
            height: 40,
        };
        let (dw, dh) = (40, 40);
        let lb = Letterbox::new(d, dw, dh).unwrap();
        let src = noise(d.bytes(), 5);
        let mut want = vec![0f32; lb.dst_len()];
        lb.run(&src, &mut want).unwrap();
        let mut map: Vec<[f32; 2]> = (0..dw * dh)
            .map(|i| [(i % dw) as f32, (i / dw) as f32])
            .collect();
        map[0] = [f32::NAN, 3.0];
        map[1] = [-1.0, 3.0];
        let dev = Device::open(EmuGpu::new(false), 0).unwrap();
        let mb = DeviceBuf::from_slice(&dev, &map, "map").unwrap();
        let sb = DeviceBuf::from_slice(&dev, &src, "src").unwrap();
        let db = DeviceBuf::zeroed(&dev, want.len() * 4, "dst").unwrap();
        let p = PreParams {
            src: sb.ptr,
            dst: db.ptr,
            remap: mb.ptr,
            xs: 0,
            ys: 0,
            format: format_code(d.format),
            src_w: 40,
            src_h: 40,
            dst_w: dw as i32,
            dst_h: dh as i32,
            new_w: 40,
            new_h: 40,
            top: 0,
            left: 0,
            pad: PAD_VALUE as f32 / 255.0,
            div: 255.0,
            bgr: 0,
        };
        // SAFETY: live host buffers of the sizes the kernel uses.
        unsafe { preprocess(&p) };
        let mut got = vec![0f32; want.len()];
        db.read(&mut got).unwrap();
        let plane = dw * dh;
        for c in 0..3 {
            assert_eq!(got[c * plane], PAD_VALUE as f32 / 255.0);
            assert_eq!(got[c * plane + 1], PAD_VALUE as f32 / 255.0);
        }
        for i in 2..plane {
            assert!((got[i] - want[i]).abs() < 1e-6, "pixel {i}");
        }
    }

    /// Unary 29 is Erf (the kernel's `erff`), not the identity.
    #[test]
    fn erf_is_emulated() {
        let v = apply_act(29, 0.5, 0.0, 0.0);
        assert!((v - 0.520_499_9).abs() < 1e-6, "{v}");
        assert_eq!(apply_act(29, 0.0, 0.0, 0.0), 0.0);
    }

    /// Global max-pool propagates NaN as the kernel does.
    #[test]
    fn global_max_pool_propagates_nan() {
        use super::super::lower::GlobalPoolParams;
        let dev = Device::open(EmuGpu::new(false), 0).unwrap();
        let x = DeviceBuf::from_slice(&dev, &[1.0f32, f32::NAN, 3.0, 2.0, 5.0, 4.0], "x").unwrap();
        let y = DeviceBuf::zeroed(&dev, 8, "y").unwrap();
        let p = GlobalPoolParams {
            x: x.ptr,
            y: y.ptr,
            rows: 2,
            len: 3,
            is_max: 1,
        };
        // SAFETY: x holds 6 floats, y 2.
        unsafe { run_kernel(&Params::GlobalPool(p)) };
        let mut got = [0f32; 2];
        y.read(&mut got).unwrap();
        assert!(got[0].is_nan(), "{got:?}");
        assert_eq!(got[1], 5.0);
    }
}
