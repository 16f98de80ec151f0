#!/usr/bin/env bash
# Issue 21's one GPU run: everything the first run on a GPU machine needs,
# in one call, so that it needs no edits there. Run from the repository
# root on the GPU machine, with the release binary built here and carried:
#
#   mkdir -p target/gpu-model && cp yolov8n-640.onnx target/gpu-model/
#   objcopy --strip-debug target/release/perceptd target/gpu-model/perceptd
#   pip download onnx onnx2torch protobuf ml_dtypes --no-deps \
#       --python-version 3.12 --only-binary=:all: \
#       --platform manylinux_2_28_x86_64 -d target/pywheels   # phase 1's PyTorch peer
#   device run, carry ["target/gpu-model", "target/pywheels"]:
#     BIN=target/gpu-model/perceptd bash scripts/gpu-run.sh \
#         target/gpu-model/yolov8n-640.onnx > $OUT/gpu-run.log 2>&1
#
# The carry limit is 64 MiB with the tracked tree (27 MB): the release
# binary with its debug info (63 MB) does not fit, stripped (11 MB) it does.
# First run (H200, 2026-12-04, before the PyTorch peer): 20 s wall.
#
# MODEL defaults to models/perceptd-synth.onnx (then phase 2 uses the
# shipped model too). Phases, each under its own timeout:
#
#   == 0 environment   nvidia-smi line, driver, where cuBLAS and NVRTC
#                      were found. The device image is CUDA 13 (driver
#                      580, pip's nvidia-cublas / nvidia-cuda-nvrtc for
#                      cu13): perceptd's cuBLAS loader uses cudarc's names
#                      (libcublas.so, .so.12, ...), which miss
#                      libcublas.so.13, so this script links
#                      libcublas.so -> libcublas.so.13 in a private folder
#                      on LD_LIBRARY_PATH; NVRTC is found through
#                      PERCEPTD_NVRTC_PATH (libnvrtc.so.13 is a candidate).
#                      Expect: "cublas: <path>/libcublas.so.13",
#                      "nvrtc: <dir>".
#   == 1 gpu-check     scripts/gpu-check.sh MODEL (FRAMES=1000). Prints:
#                      "== device" cuda:0 (NVIDIA H200, sm_90, 132 SMs,
#                      ~140 GiB, driver 13.0) and "NVRTC 13.0"; boot times
#                      (cold, then warm kernel cache); "== preprocessing
#                      kernel vs CPU" 24 lines "<fmt> WxH -> 640x640: e ok"
#                      (limit 1/255); "== every GPU node vs the CPU op" one
#                      line per op type "Conv 1.2e-06 ok" (limit 1e-3
#                      relative); "== end to end": "FP32: boxes ... px
#                      (limit 0.05), scores ... (limit 0.001) ok" and the
#                      same for FP16 (limits 3 px, 0.01); then per
#                      precision "== latency FP32, 1000 frames": lines
#                      "copy in / preprocess / network / copy out / whole
#                      p50 x p99 y" in ms (from CUDA events recorded inside
#                      the graph; a timing failure prints "FAIL (no GPU
#                      timing: ...)" instead of zeros) and "heap
#                      allocations during the 1000 frames: 0"; the final
#                      line "gpu-check: all checks passed" (exit 0) or
#                      "gpu-check: FAILED (see above)" (exit 3); then the
#                      onnxruntime-gpu line, and the same ONNX in PyTorch
#                      (benches/cuda_vs_torch.py, not yet run on a GPU:
#                      checked against onnxruntime, then network and whole
#                      p50 / p99 for FP32 / FP16, eager and CUDA graph;
#                      informative, not in the exit code).
#   == 2 run           perceptd run --device cuda --frames 300 on the
#                      synthetic camera: the boot line "... on cuda:0
#                      (NVIDIA H200 ...) ready in N ms", the "[perceptd]
#                      final:" summary (fps, drops 0, e2e/infer p50/p99),
#                      "json lines: 300".
#   == 3 replay        with the shipped model, whatever MODEL is:
#                      a 30-frame 640x480 Y4M clip of the synthetic scene
#                      (made here from `perceptd synth-dataset`, numpy),
#                      replayed with --device cuda and --device cpu:
#                      "frames 30 cuda / 30 cpu; detections N / N; same
#                      count on 30/30 frames; max box error x px, max score
#                      error y; track ids differ on 0 of K tracked
#                      detections" and "replay comparison: ok" (boxes
#                      within 0.5 px, scores within 2e-3: the JSON rounds
#                      to 0.1 px and 0.001; same track ids; at least one
#                      detection, so the comparison cannot pass on
#                      nothing) or "replay comparison: FAIL".
#   == 4 memcheck      compute-sanitizer --tool memcheck on a 10-frame
#                      run: "ERROR SUMMARY: 0 errors", or, on a gVisor
#                      machine, "Device not supported" (then: skipped).
#   == summary         one line per phase with its exit code; exit 0
#                      only when phases 1-3 passed.
#
# Anything that fails prints its own line and the script goes on to the
# next phase, so one call gives the whole picture.
set -uo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/perceptd-synth.onnx}"
bin="${BIN:-target/release/perceptd}"
work="$(mktemp -d /tmp/perceptd-gpu-run.XXXXXX)"
declare -A rc

echo "== 0 environment"
uname -m
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -3
py=python3
search=$($py - <<'PY' 2>/dev/null
import site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()]
print(" ".join(dirs))
PY
)
libdirs=""
for d in $search; do
    for sub in nvidia/cublas/lib nvidia/cuda_nvrtc/lib nvidia/cu13/lib nvidia/cuda_runtime/lib; do
        [ -d "$d/$sub" ] && libdirs="$libdirs $d/$sub"
    done
done
libdirs="$libdirs /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib"
cublas=""
nvrtc_dir="${PERCEPTD_NVRTC_PATH:-}"
for d in $libdirs; do
    if [ -z "$cublas" ]; then
        cublas=$(ls "$d"/libcublas.so.1[0-9]* 2>/dev/null | sort -V | tail -1)
    fi
    if [ -z "$nvrtc_dir" ] && ls "$d"/libnvrtc.so.1[0-9]* >/dev/null 2>&1; then
        nvrtc_dir="$d"
    fi
done
mkdir -p "$work/lib"
if [ -n "$cublas" ]; then
    ln -sf "$cublas" "$work/lib/libcublas.so"
    export LD_LIBRARY_PATH="$work/lib:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ -n "$nvrtc_dir" ]; then
    export PERCEPTD_NVRTC_PATH="$nvrtc_dir"
    export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "cublas: ${cublas:-not found}"
echo "nvrtc: ${nvrtc_dir:-not found}"
echo "model: $model ($(stat -c %s "$model" 2>/dev/null || echo missing) bytes); binary: $bin"
export RUST_LOG="${RUST_LOG:-info}"

echo
echo "== 1 gpu-check"
FRAMES="${FRAMES:-1000}" timeout 420 bash scripts/gpu-check.sh "$model" "$bin"
rc[1]=$?

echo
echo "== 2 run --device cuda --frames 300"
timeout 90 "$bin" run --device cuda --frames 300 --model "$model" --output "$work/run.jsonl" 2>"$work/run.err"
rc[2]=$?
grep -E "ready in|final:|error" "$work/run.err" | cut -c1-400
echo "json lines: $(wc -l <"$work/run.jsonl" 2>/dev/null || echo 0)"
if [ "${rc[2]}" = 0 ] && [ "$(wc -l <"$work/run.jsonl" 2>/dev/null)" != 300 ]; then
    rc[2]="0 but not 300 lines"
fi

echo
# The clip is the synthetic scene, which a COCO model does not see (the
# first GPU run compared 0 detections with 0): phase 3 uses the shipped
# model whatever MODEL is.
replay_model=models/perceptd-synth.onnx
echo "== 3 replay, cuda vs cpu ($replay_model)"
timeout 150 bash -c '
set -e
"$1" synth-dataset --out "$2/clip" --seed 7 --frames 90 --every 3 >/dev/null
python3 - "$2/clip/images" "$2/clip.y4m" <<'"'"'PY'"'"'
import sys, os, numpy as np
src, dst = sys.argv[1], sys.argv[2]
files = sorted(f for f in os.listdir(src) if f.endswith(".bmp"))
with open(dst, "wb") as o:
    o.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C444\n")
    for f in files:
        b = open(os.path.join(src, f), "rb").read()
        w, h = int.from_bytes(b[18:22], "little"), int.from_bytes(b[22:26], "little")
        a = np.frombuffer(b[54:54 + w * h * 3], np.uint8).reshape(h, w, 3)[::-1, :, ::-1].astype(np.float64)
        r, g, bl = a[..., 0], a[..., 1], a[..., 2]
        y = 16 + (65.481 * r + 128.553 * g + 24.966 * bl) / 255
        u = 128 + (-37.797 * r - 74.203 * g + 112.0 * bl) / 255
        v = 128 + (112.0 * r - 93.786 * g - 18.214 * bl) / 255
        o.write(b"FRAME\n")
        for p in (y, u, v):
            o.write(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes())
print(f"clip: {len(files)} frames 640x480 I444")
PY
' _ "$bin" "$work"
clip_rc=$?
if [ "$clip_rc" = 0 ]; then
    timeout 60 "$bin" replay "$work/clip.y4m" --device cuda --model "$replay_model" --output "$work/cuda.jsonl" 2>"$work/cuda.err"
    a=$?
    timeout 120 "$bin" replay "$work/clip.y4m" --device cpu --model "$replay_model" --output "$work/cpu.jsonl" 2>"$work/cpu.err"
    b=$?
    grep -hE "ready in|error" "$work/cuda.err" "$work/cpu.err" | cut -c1-300
    python3 - "$work/cuda.jsonl" "$work/cpu.jsonl" <<'PY'
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
c = [json.loads(l) for l in open(sys.argv[2])]
boxes = scores = 0.0
same = 0
nd = [0, 0]
tracked = ids_differ = 0
for fg, fc in zip(g, c):
    dg, dc = fg["detections"], fc["detections"]
    nd[0] += len(dg); nd[1] += len(dc)
    if len(dg) == len(dc):
        same += 1
    for d in dg:
        # nearest CPU detection of the same class
        cand = [e for e in dc if e["class_id"] == d["class_id"]]
        if not cand:
            boxes = float("inf"); continue
        e = min(cand, key=lambda e: sum(abs(a - b) for a, b in zip(d["box"], e["box"])))
        boxes = max(boxes, max(abs(a - b) for a, b in zip(d["box"], e["box"])))
        scores = max(scores, abs(d["score"] - e["score"]))
        # tracking is on by default: the same detections must get the same ids
        if d.get("track_id") is not None or e.get("track_id") is not None:
            tracked += 1
            ids_differ += d.get("track_id") != e.get("track_id")
print(f"frames {len(g)} cuda / {len(c)} cpu; detections {nd[0]} / {nd[1]}; same count on {same}/{len(c)} frames; max box error {boxes:.2f} px, max score error {scores:.4f}; track ids differ on {ids_differ} of {tracked} tracked detections")
if nd[1] == 0:
    print("no detections on the CPU: the comparison proves nothing")
ok = len(g) == len(c) > 0 and nd[1] > 0 and same == len(c) and boxes <= 0.5 and scores <= 2e-3 and ids_differ == 0
print("replay comparison:", "ok" if ok else "FAIL")
sys.exit(0 if ok else 3)
PY
    rc[3]=$?
    [ "$a" = 0 ] && [ "$b" = 0 ] || rc[3]="replay exit cuda $a cpu $b"
else
    echo "could not make the clip (exit $clip_rc)"
    rc[3]=$clip_rc
fi

echo
echo "== 4 compute-sanitizer memcheck, 10 frames"
if command -v compute-sanitizer >/dev/null; then
    timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$bin" run --device cuda --frames 10 --model "$model" --output /dev/null 2>&1 \
        | grep -vE "^\[|^\{" | tail -15
    rc[4]=${PIPESTATUS[0]}
else
    echo "compute-sanitizer not installed: skipped"
    rc[4]=skipped
fi

echo
echo "== summary"
echo "1 gpu-check: exit ${rc[1]}"
echo "2 run --device cuda: exit ${rc[2]}"
echo "3 replay cuda vs cpu: exit ${rc[3]}"
echo "4 memcheck: ${rc[4]}"
rm -rf "$work"
[ "${rc[1]}" = 0 ] && [ "${rc[2]}" = 0 ] && [ "${rc[3]}" = 0 ]
