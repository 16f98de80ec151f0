#!/usr/bin/env python3
"""Side-by-side benchmark: perceptd's CPU engine vs onnxruntime and
OpenVINO (CPU plugin) on the same model, same input, same machine, same run,
1 and 2 threads each. Prints median / p99 latency per engine, the ratios
ours / onnxruntime, ours / OpenVINO and ours / the faster peer (lower is
better; the goal is <= 0.8 in every cell), and each engine's 2-thread
speed-up (1-thread median / 2-thread median; the goal for ours on
yolov8n-320 is >= 1.5).

    cargo build --release
    python3 benches/engine_vs_ort.py MODEL.onnx [MODEL2.onnx ...] [--iters 50] [--rounds 2]

Needs `pip install onnxruntime openvino numpy` (without openvino, its
columns are left out and a line says so). Peers get the same thread
budget: onnxruntime intra_op_num_threads=n, inter_op 1, sequential;
OpenVINO INFERENCE_NUM_THREADS=n, PERFORMANCE_HINT=LATENCY, NUM_STREAMS=1,
INFERENCE_PRECISION_HINT=f32 (no bf16 shortcut: we compute in f32). Runs
alternate (ours, ort, ov, ours, ort, ov, ... for `--rounds` rounds) per
thread count so that drift on a shared machine hits all alike; each figure
(median, p99) is the best round's. On a VM with noisy neighbours, more
rounds of fewer runs (`--rounds 5 --iters 30`) make the ratios steadier.
Quote the load (`uptime`) with the numbers: on a busy machine the 2-thread
figures mean little.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

try:
    import openvino as ov
except ImportError:  # reported in the header line
    ov = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")


def ours(model, threads, iters, shape):
    cmd = [BIN, "bench-model", model, "--threads", str(threads), "--iters", str(iters), "--json"]
    if shape:
        cmd += ["--input-shape", "x".join(map(str, shape))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(run, iters):
    """Median and p99 (ms) of `iters` calls of `run` after 5 warm-up calls."""
    for _ in range(5):
        run()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return {"median_ms": float(np.median(ts)), "p99_ms": ts[min(len(ts) - 1, int(round(0.99 * (len(ts) - 1))))]}


def peer_input(shape, dims):
    """The one input every peer gets: uniform 0..1, seed 0."""
    if shape is None:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in dims]
    return np.random.default_rng(0).random(shape, dtype=np.float32)


def onnxruntime(model, threads, iters, shape):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    x = peer_input(shape, inp.shape)
    return timed(lambda: s.run(None, {inp.name: x}), iters)


def openvino(model, threads, iters, shape):
    core = ov.Core()
    m = core.read_model(model)
    if shape:
        m.reshape(shape)
    cfg = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32",
    }
    c = core.compile_model(m, "CPU", cfg)
    req = c.create_infer_request()
    dims = [d.get_length() if d.is_static else 1 for d in c.inputs[0].get_partial_shape()]
    x = peer_input(shape, dims)
    return timed(lambda: req.infer({0: x}), iters)


def best(rounds):
    return {k: min(r[k] for r in rounds) for k in ("median_ms", "p99_ms")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating rounds per thread count; each figure is the best round's")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--input-shape", default=None, help="e.g. 1x3x640x640 for models with symbolic dims")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    shape = [int(d) for d in a.input_shape.split("x")] if a.input_shape else None
    ovv = ov.get_version() if ov else "not installed (pip install openvino): its columns are left out"
    print(f"onnxruntime {ort.__version__}, OpenVINO {ovv}, {os.cpu_count()} CPUs, "
          f"{a.rounds} rounds of {a.iters} timed runs each")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    hdr = f"{'model':<20} {'thr':>3} {'ours med':>8} {'p99':>7} {'ort med':>8} {'p99':>7}"
    if ov:
        hdr += f" {'ov med':>8} {'p99':>7}"
    hdr += f" {'/ort':>5}"
    if ov:
        hdr += f" {'/ov':>5} {'/peer':>5}"
    hdr += f" {'x2 ours':>7} {'x2 ort':>6}"
    if ov:
        hdr += f" {'x2 ov':>6}"
    print(hdr)
    for model in a.models:
        first = {}
        for th in [int(t) for t in a.threads.split(",")]:
            runs = {"ours": [], "ort": [], "ov": []}
            for _ in range(max(1, a.rounds)):
                runs["ours"].append(ours(model, th, a.iters, shape))
                runs["ort"].append(onnxruntime(model, th, a.iters, shape))
                if ov:
                    runs["ov"].append(openvino(model, th, a.iters, shape))
            r = {k: best(v) for k, v in runs.items() if v}
            if th == 1:
                first = {k: v["median_ms"] for k, v in r.items()}
            o = r["ours"]["median_ms"]
            line = f"{os.path.basename(model):<20} {th:>3} {o:>8.2f} {r['ours']['p99_ms']:>7.2f}"
            line += f" {r['ort']['median_ms']:>8.2f} {r['ort']['p99_ms']:>7.2f}"
            if ov:
                line += f" {r['ov']['median_ms']:>8.2f} {r['ov']['p99_ms']:>7.2f}"
            line += f" {o / r['ort']['median_ms']:>5.2f}"
            if ov:
                peer = min(r["ort"]["median_ms"], r["ov"]["median_ms"])
                line += f" {o / r['ov']['median_ms']:>5.2f} {o / peer:>5.2f}"
            for k, w in (("ours", 7), ("ort", 6), ("ov", 6)):
                if k in r:
                    sp = first[k] / r[k]["median_ms"] if th != 1 and k in first else None
                    line += f" {sp:>{w}.2f}" if sp else f" {'-':>{w}}"
            print(line)
            sys.stdout.flush()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
