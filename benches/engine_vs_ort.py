#!/usr/bin/env python3
"""Side-by-side benchmark: perceptd's CPU engine vs onnxruntime on the same
model, same machine, same run, 1 and 2 threads each. Prints median / p99
latency and the ratio ours / onnxruntime (lower is better; the bar for
yolov8n-640 single-threaded is <= 1.5).

    cargo build --release
    python3 benches/engine_vs_ort.py MODEL.onnx [MODEL2.onnx ...] [--iters 30]

Needs `pip install onnxruntime numpy`. Runs alternate (ours, ort, ours, ort)
per thread count so that drift on a shared machine hits both alike.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")


def ours(model, threads, iters, shape):
    cmd = [BIN, "bench-model", model, "--threads", str(threads), "--iters", str(iters), "--json"]
    if shape:
        cmd += ["--input-shape", "x".join(map(str, shape))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def onnxruntime(model, threads, iters, shape):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t0 = time.perf_counter()
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    boot = (time.perf_counter() - t0) * 1e3
    inp = s.get_inputs()[0]
    if shape is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(5):
        s.run(None, {inp.name: x})
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        s.run(None, {inp.name: x})
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return {"boot_ms": boot, "median_ms": float(np.median(ts)), "p99_ms": ts[min(len(ts) - 1, int(round(0.99 * (len(ts) - 1))))]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--input-shape", default=None, help="e.g. 1x3x640x640 for models with symbolic dims")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    shape = [int(d) for d in a.input_shape.split("x")] if a.input_shape else None
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, {a.iters} timed runs each")
    print(f"{'model':<28} {'thr':>3} {'ours med':>9} {'ours p99':>9} {'ort med':>9} {'ort p99':>9} {'ratio':>6}")
    for model in a.models:
        for th in [int(t) for t in a.threads.split(",")]:
            o1 = ours(model, th, a.iters, shape)
            r1 = onnxruntime(model, th, a.iters, shape)
            o2 = ours(model, th, a.iters, shape)
            r2 = onnxruntime(model, th, a.iters, shape)
            om = min(o1["median_ms"], o2["median_ms"])
            rm = min(r1["median_ms"], r2["median_ms"])
            op = min(o1["p99_ms"], o2["p99_ms"])
            rp = min(r1["p99_ms"], r2["p99_ms"])
            print(f"{os.path.basename(model):<28} {th:>3} {om:>9.2f} {op:>9.2f} {rm:>9.2f} {rp:>9.2f} {om / rm:>6.2f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
