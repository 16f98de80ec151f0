#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with Rust lacks to build
# perceptd: libclang for the v4l crate's bindgen. Safe to run again.
#
#   scripts/setup.sh           build prerequisites only (what demo.sh runs)
#   scripts/setup.sh --tests   also what only the tests use (what test.sh
#                              runs): python3-venv for scripts/calibrate.py's
#                              selftest, ffmpeg for the video tests (MJPEG fixtures
#                              made at test time; tests/annotate.rs: MP4
#                              through the ffmpeg child, ffprobe frame
#                              counts), chromium for tests/http_view.rs (a
#                              headless browser screenshots the live page),
#                              the Python mcap reader and websockets
#                              for tests/foxglove_mcap.rs (target/pydeps),
#                              and NVRTC for tests/nvrtc_kernels.rs,
#                              a ~217 MB pip wheel the demo and the CPU
#                              backend never use
set -euo pipefail
with_tests=0
for a in "$@"; do
    case "$a" in
        --tests) with_tests=1 ;;
        *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
    esac
done
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
# libclang itself, not libclang-cpp (which some images ship without it).
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
    && ! ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so'; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing libclang-dev (needed by the v4l crate's bindgen)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev >/dev/null
fi

[ "$with_tests" -eq 1 ] || exit 0

# python3 with venv: scripts/calibrate.py (its selftest runs in
# scripts/test.sh) keeps OpenCV from pip in its own venv, target/calib-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing python3-venv (for scripts/calibrate.py)" >&2
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null || true
fi

# ffmpeg and ffprobe: the video tests (tests/mjpeg_alloc.rs,
# tests/mjpeg_replay.rs) make their MJPEG fixtures from synthetic frames
# with it at test time (scripts/make_jpeg_fixtures.sh made
# tests/fixtures/jpeg); tests/annotate.rs writes the annotated MP4 through
# an ffmpeg child (as `--annotate out.mp4` does) and counts its frames.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing ffmpeg (for the video tests)" >&2
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi

# chromium: tests/http_view.rs loads the live page in a real headless
# browser and checks its screenshot.
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing chromium (for tests/http_view.rs)" >&2
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

# Python test packages: the official MCAP reader (`mcap`) and a WebSocket
# client library (`websockets`), the independent implementations that
# tests/foxglove_mcap.rs checks the recorder and the Foxglove server
# against; pip --target into target/pydeps (no venv, nothing system-wide;
# the tests put it on PYTHONPATH). Pinned to major versions.
pydeps="$(pwd)/target/pydeps"
if ! PYTHONPATH="$pydeps" python3 -c 'import mcap, websockets.sync.client' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "installing python3-pip (for the MCAP and WebSocket test clients)" >&2
        $sudo apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
    fi
    echo "installing the Python mcap reader and websockets into target/pydeps" >&2
    mkdir -p "$pydeps"
    python3 -m pip install -q --disable-pip-version-check --target "$pydeps" \
        "mcap>=1.1,<2" "websockets>=13,<18" >&2
fi

# NVRTC (no GPU needed) so tests/nvrtc_kernels.rs really compiles every CUDA
# kernel: pip's nvidia-cuda-nvrtc-cu12 wheel, installed with --target into
# target/nvrtc (no venv, no system site-packages touched). The library's
# folder is printed in target/nvrtc/path for scripts/test.sh. Optional here:
# a failure only skips that test, except under PERCEPTD_REQUIRE_NVRTC=1 (CI).
nvrtc_dir="$(pwd)/target/nvrtc"
nvrtc_lib="$nvrtc_dir/nvidia/cuda_nvrtc/lib"
if ! ls "$nvrtc_lib"/libnvrtc.so.12 >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "installing python3-pip (for the NVRTC wheel)" >&2
        $sudo apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null || true
    fi
    echo "installing NVRTC (pip nvidia-cuda-nvrtc-cu12) into target/nvrtc" >&2
    mkdir -p "$nvrtc_dir"
    python3 -m pip install -q --disable-pip-version-check --target "$nvrtc_dir" \
        "nvidia-cuda-nvrtc-cu12>=12.4,<13" >&2 \
        || echo "warning: NVRTC not installed; tests/nvrtc_kernels.rs will be skipped" >&2
fi
if ls "$nvrtc_lib"/libnvrtc.so.12 >/dev/null 2>&1; then
    echo "$nvrtc_lib" > "$nvrtc_dir/path"
fi
