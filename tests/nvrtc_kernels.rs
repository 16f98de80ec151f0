//! Every CUDA kernel source compiles with NVRTC, to PTX for the GPUs
//! perceptd targets (sm_72 Jetson Xavier, sm_87 Jetson Orin, sm_90 H100),
//! so a syntax or type error in a `.cu` file fails CI although no GPU is
//! there. NVRTC is a plain library (pip's `nvidia-cuda-nvrtc-cu12`, which
//! `.ci/run` installs and points `PERCEPTD_NVRTC_PATH` at); without it the
//! test says it was skipped and why, unless `PERCEPTD_REQUIRE_NVRTC=1`
//! (CI), where a missing NVRTC is a failure.

use perceptd::cuda::nvrtc::{self, Target, SOURCES};

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
    let ops = SOURCES
        .iter()
        .find(|(n, _)| *n == "ops")
        .map(|(_, s)| *s)
        .unwrap_or("");
    for k in [
        "copy_nd",
        "fill",
        "binary_nd",
        "unary",
        "channel_affine",
        "to_half",
        "im2col",
        "conv_direct",
        "pool2d",
        "global_pool",
        "resize2d",
        "softmax",
    ] {
        assert!(
            ops.contains(&format!("extern \"C\" __global__ void {k}(")),
            "kernel {k} missing from ops.cu"
        );
    }
}
