//! Every CUDA kernel source compiles with NVRTC, to PTX for the GPUs
//! perceptd targets (sm_72 Jetson Xavier, sm_87 Jetson Orin, sm_90 H100),
//! so a syntax or type error in a `.cu` file fails CI although no GPU is
//! there. NVRTC is a plain library (pip's `nvidia-cuda-nvrtc-cu12`, which
//! `.ci/run` installs and points `PERCEPTD_NVRTC_PATH` at); without it the
//! test says it was skipped and why, unless `PERCEPTD_REQUIRE_NVRTC=1`
//! (CI), where a missing NVRTC is a failure.

use perceptd::cuda::nvrtc::{self, Target, KERNELS, SOURCES};

#[test]
fn every_kernel_compiles_to_ptx_for_jetson_and_h100() {
    let required = std::env::var("PERCEPTD_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    let version = match nvrtc::version() {
        Ok(v) => v,
        Err(e) if !required => {
            eprintln!("skipped: NVRTC is not loadable here ({e})");
            return;
        }
        Err(e) => panic!("PERCEPTD_REQUIRE_NVRTC=1 but {e}"),
    };
    eprintln!("NVRTC {}.{}", version / 1000, (version % 1000) / 10);
    let mut failures = Vec::new();
    for arch in [72, 87, 90] {
        for (name, src) in SOURCES {
            match nvrtc::compile(name, src, Target::Ptx(arch)) {
                Ok(ptx) => {
                    let text = String::from_utf8_lossy(&ptx);
                    assert!(
                        text.contains(".entry"),
                        "{name} for compute_{arch}: no kernels in the PTX"
                    );
                    eprintln!("{name}.cu -> compute_{arch}: {} bytes of PTX", ptx.len());
                }
                Err(e) => failures.push(format!("{name}.cu for compute_{arch}: {e}")),
            }
        }
    }
    // The boot path compiles to a cubin for the real GPU: check one.
    for (name, src) in SOURCES {
        if let Err(e) = nvrtc::compile(name, src, Target::Cubin(87)) {
            failures.push(format!("{name}.cu for sm_87 (cubin): {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_kernel_the_backend_launches_is_in_the_sources() {
    for (module, kernels) in KERNELS {
        let src = SOURCES
            .iter()
            .find(|(n, _)| n == module)
            .map(|(_, s)| *s)
            .unwrap_or("");
        for k in *kernels {
            assert!(
                src.contains(&format!("extern \"C\" __global__ void {k}(")),
                "kernel {k} missing from {module}.cu"
            );
        }
    }
}

/// The `#[repr(C)]` parameter structs the backend passes by value have the
/// size NVRTC gives the kernels' structs: the sources are compiled with a
/// `static_assert` on every size Rust computed (NVRTC has no `offsetof`;
/// the field order was checked by reading, and a missing or mistyped field
/// changes the size).
#[test]
fn param_struct_layouts_match_the_cuda_compiler() {
    use perceptd::cuda::backend::{PreParams, Tap};
    use perceptd::cuda::lower::*;
    use std::mem::{offset_of, size_of};
    macro_rules! layout {
        ($out:ident, $t:ty, $cname:literal, [$($f:ident),*]) => {
            $out.push_str(&format!(
                "static_assert(sizeof({}) == {}, \"sizeof {}\");\n",
                $cname, size_of::<$t>(), $cname
            ));
            // Every field named, so a renamed or removed one fails here.
            $(
                let _ = (stringify!($f), offset_of!($t, $f));
            )*
        };
    }
    let mut ops = String::new();
    layout!(
        ops,
        CopyParams,
        "CopyParams",
        [dst, src, n, src_base, dst_base, dims, src_st, dst_st, ndim]
    );
    layout!(ops, FillParams, "FillParams", [dst, n, value]);
    layout!(
        ops,
        BinaryParams,
        "BinaryParams",
        [out, a, b, n, dims, a_st, b_st, ndim, op]
    );
    layout!(
        ops,
        UnaryParams,
        "UnaryParams",
        [out, x, n, op, alpha, beta]
    );
    layout!(
        ops,
        ChannelParams,
        "ChannelParams",
        [y, x, scale, shift, n, inner, channels, act, alpha, beta]
    );
    layout!(ops, HalfParams, "HalfParams", [dst, src, n]);
    layout!(
        ops,
        Im2colParams,
        "Im2colParams",
        [x, col, n, cin, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, half]
    );
    layout!(
        ops,
        DirectConvParams,
        "DirectConvParams",
        [
            x, w, bias, y, n, c, h, wd, cout, group, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, act,
            alpha, beta
        ]
    );
    layout!(
        ops,
        PoolParams,
        "PoolParams",
        [
            x,
            y,
            n,
            h,
            w,
            oh,
            ow,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            pad_end_h,
            pad_end_w,
            dh,
            dw,
            is_max,
            count_include_pad
        ]
    );
    layout!(
        ops,
        GlobalPoolParams,
        "GlobalPoolParams",
        [x, y, rows, len, is_max]
    );
    layout!(
        ops,
        ResizeParams,
        "ResizeParams",
        [x, y, yidx, yw, xidx, xw, n, h, w, oh, ow, ytaps, xtaps]
    );
    layout!(
        ops,
        SoftmaxParams,
        "SoftmaxParams",
        [x, y, rows, len, inner, log]
    );
    let mut pre = String::new();
    layout!(
        pre,
        PreParams,
        "PreParams",
        [
            src, dst, remap, xs, ys, format, src_w, src_h, dst_w, dst_h, new_w, new_h, top, left,
            pad, div, bgr
        ]
    );
    layout!(pre, Tap, "Tap", [i0, i1, w]);

    let required = std::env::var("PERCEPTD_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    if let Err(e) = nvrtc::version() {
        assert!(!required, "PERCEPTD_REQUIRE_NVRTC=1 but {e}");
        eprintln!("skipped: NVRTC is not loadable here ({e})");
        return;
    }
    // The check itself can fail: a wrong size is a compile error.
    let (_, ops_src) = SOURCES[1];
    let wrong = format!("{ops_src}\nstatic_assert(sizeof(FillParams) == 23, \"wrong\");\n");
    assert!(nvrtc::compile("ops", &wrong, Target::Ptx(87)).is_err());
    for (name, src) in SOURCES {
        let asserts = if *name == "ops" { &ops } else { &pre };
        let full = format!("{src}\n{asserts}");
        if let Err(e) = nvrtc::compile(name, &full, Target::Ptx(87)) {
            panic!("{name}.cu: parameter layouts differ from Rust's:\n{e}");
        }
    }
}
