#!/usr/bin/env bash
# The test command: installs build prerequisites, then builds and runs every
# test (unit, conformance, exports, allocation, pipeline) on the CPU, then
# the calibration tool's self-test. NVRTC
# (installed by `setup.sh --tests`) lets tests/nvrtc_kernels.rs compile the CUDA
# kernels without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
if [ -z "${PERCEPTD_NVRTC_PATH:-}" ] && [ -f target/nvrtc/path ]; then
    PERCEPTD_NVRTC_PATH="$(cat target/nvrtc/path)"
    export PERCEPTD_NVRTC_PATH
fi
cargo test --release --locked "$@"
# The calibration tool on checkerboards rendered through known lenses, its
# YAML loaded by the binary just built (scripts/calibrate.py selftest; the
# script puts OpenCV from pip into target/calib-venv on first use). Skipped
# when arguments select some cargo tests only.
if [ "$#" -eq 0 ]; then
    python3 scripts/calibrate.py selftest --perceptd target/release/perceptd
fi
