#!/usr/bin/env bash
# The CUDA backend on a machine with an NVIDIA GPU, from a release binary
# built elsewhere (no Rust needed here). Prints everything to stdout:
#   device info; the preprocessing kernel for every pixel format and every
#   GPU op vs the CPU; the model end to end (FP32, FP16) vs the CPU backend;
#   p50/p99 of copy in, preprocess, network, copy out and the whole graph
#   over 1000 frames, FP32 and FP16; heap allocations during those frames;
#   and, where onnxruntime-gpu is installed, the same model there; then the
#   same ONNX in PyTorch (benches/cuda_vs_torch.py: onnx2torch, FP32/FP16,
#   eager and CUDA graph; wheels from target/pywheels when that folder is
#   there, see the script's header).
#
# usage: scripts/gpu-check.sh [MODEL.onnx] [PERCEPTD_BINARY]
#   MODEL defaults to models/perceptd-synth.onnx; BINARY to
#   target/release/perceptd. NVRTC must be loadable: the CUDA toolkit's, or
#   pip's nvidia-cuda-nvrtc-cu12 with PERCEPTD_NVRTC_PATH set to its lib
#   folder (this script looks for one under target/nvrtc and in pip's
#   site-packages). Exit: the binary's (0 pass, 3 a check failed, 1 error).
set -uo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/perceptd-synth.onnx}"
bin="${2:-target/release/perceptd}"
frames="${FRAMES:-1000}"

if [ -z "${PERCEPTD_NVRTC_PATH:-}" ]; then
    for d in target/nvrtc/nvidia/cuda_nvrtc/lib \
        $(python3 -c 'import site,sys; print(" ".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null | tr ' ' '\n' | sed 's|$|/nvidia/cuda_nvrtc/lib|'); do
        if ls "$d"/libnvrtc.so.* >/dev/null 2>&1; then
            export PERCEPTD_NVRTC_PATH="$d"
            break
        fi
    done
fi
echo "== gpu-check: $bin, model $model, $frames frames, NVRTC ${PERCEPTD_NVRTC_PATH:-(system)}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
start=$(date +%s)
timeout 280 "$bin" gpu-check --model "$model" --frames "$frames"
rc=$?
echo "perceptd gpu-check exit $rc after $(( $(date +%s) - start )) s"

echo
echo "== the same model outside perceptd (for comparison)"
timeout 120 python3 - "$model" "$frames" <<'PY' || echo "comparison skipped (python failed)"
import sys, time
model, frames = sys.argv[1], int(sys.argv[2])
def pct(v, p):
    v = sorted(v); return v[int(round((len(v) - 1) * p))]
try:
    import numpy as np
except ImportError:
    print("numpy not installed: comparison skipped"); sys.exit(0)
try:
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        s = ort.InferenceSession(model, providers=["CUDAExecutionProvider"])
        i = s.get_inputs()[0]
        shape = [d if isinstance(d, int) else 640 for d in i.shape]
        x = np.random.rand(*shape).astype(np.float32)
        for _ in range(20): s.run(None, {i.name: x})
        t = []
        for _ in range(frames):
            a = time.perf_counter(); s.run(None, {i.name: x}); t.append((time.perf_counter() - a) * 1e3)
        print(f"onnxruntime-gpu {ort.__version__} CUDA EP (host input, includes copies): p50 {pct(t,.5):.3f} ms p99 {pct(t,.99):.3f} ms")
    else:
        print("onnxruntime has no CUDA execution provider")
except ImportError:
    print("onnxruntime not installed")
PY
if [ -f benches/cuda_vs_torch.py ]; then
    wheels=""
    [ -d target/pywheels ] && wheels="--wheels target/pywheels"
    # informative only: not part of the exit code
    timeout 200 python3 benches/cuda_vs_torch.py "$model" --frames "$frames" $wheels 2>&1 \
        | grep -v -i warning | tail -20
else
    echo "benches/cuda_vs_torch.py not here: PyTorch comparison skipped"
fi
exit $rc
