#!/usr/bin/env python3
"""Where the time goes, node by node: perceptd's per-step profile
(`perceptd bench-model --profile`) joined with onnxruntime's profiler
(`enable_profiling`, the `*_kernel_time` events) and OpenVINO's per-layer
performance counters (`PERF_COUNT`), on the same model, input and thread
count, in the same run. This is the profile that says why a cell of
`benches/engine_vs_ort.py` misses: which layers are slower than the faster
peer, by how much, and what they have in common.

    cargo build --release
    python3 benches/profile_vs_peers.py MODEL.onnx [--threads 1] [--runs 50] [--all]

Each figure is the node's fastest of `--runs` runs (what a shared machine
disturbs least), in ms. Nodes are joined by their ONNX name: a perceptd step
is labelled with the node it came from (a fused Conv+Silu with the Conv's);
onnxruntime's NCHWc convs (`<conv>_output_0_nchwc`) and its fused SiLU
(`.../act/Mul/QuickGeluFusion/`) are folded into the Conv they belong to;
OpenVINO's `<conv>/WithoutBiases` is the Conv with its fused bias and
activation. Layout reorders the peers insert (onnxruntime ReorderInput /
ReorderOutput, OpenVINO Reorder) have no perceptd node; they are summed on
their own line. Prints every step with `--all`, else those where ours is
more than 1.3x the faster peer, then sums per op kind.

Needs `pip install onnxruntime openvino numpy`.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort
import openvino as ov

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")


def ours(model, threads, runs):
    out = subprocess.run(
        [BIN, "bench-model", model, "--threads", str(threads), "--iters", str(runs), "--profile"],
        check=True, capture_output=True, text=True,
    ).stdout
    steps = []
    for line in out.splitlines():
        m = re.match(r"step\s+(\d+)\s+([\d.]+)\s+(\S+)\s+(\S*)\s+(\S+)$", line)
        if m:
            steps.append((m.group(5), m.group(3), m.group(4), float(m.group(2))))
    if not steps:
        raise SystemExit(f"no named steps in `perceptd bench-model --profile` output:\n{out}")
    return steps


def ort_nodes(model, threads, runs, x, name):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_profiling = True
    tmp = tempfile.mkdtemp(prefix="perceptd-ortprof-")
    so.profile_file_prefix = os.path.join(tmp, "ort")
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        s.run(None, {name: x})
    path = s.end_profiling()
    with open(path) as f:
        events = json.load(f)
    best = collections.defaultdict(lambda: float("inf"))
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            n = e["name"][: -len("_kernel_time")]
            best[n] = min(best[n], e["dur"] / 1e3)
    joined = collections.Counter()
    for n, ms in best.items():
        n = n.replace("_output_0_nchwc", "").replace("/act/Mul/QuickGeluFusion/", "/conv/Conv")
        joined[n] += ms
    return joined


def ov_nodes(model, threads, runs, x):
    core = ov.Core()
    cm = core.compile_model(core.read_model(model), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True,
    })
    r = cm.create_infer_request()
    best = collections.defaultdict(lambda: float("inf"))
    for _ in range(runs):
        r.infer({0: x})
        for p in r.get_profiling_info():
            if p.status == p.Status.EXECUTED:
                best[p.node_name] = min(best[p.node_name], p.real_time.total_seconds() * 1e3)
    joined = collections.Counter()
    for n, ms in best.items():
        joined[n.replace("/WithoutBiases", "")] += ms
    return joined


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--all", action="store_true", help="print every step")
    a = ap.parse_args()
    model = os.path.abspath(a.model)
    probe = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in probe.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{os.path.basename(model)}, {a.threads} thread(s), each node's fastest of {a.runs} runs, "
          f"onnxruntime {ort.__version__}, OpenVINO {ov.get_version()}, load {load}")
    steps = ours(model, a.threads, a.runs)
    o = ort_nodes(model, a.threads, a.runs, x, probe.name)
    v = ov_nodes(model, a.threads, a.runs, x)
    print(f"{'step':>4} {'op':<10} {'shape':<16} {'ours':>7} {'ort':>7} {'ov':>7} {'/peer':>6}  node")
    kinds = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    names = set()
    for i, (name, op, shape, ms) in enumerate(steps):
        names.add(name)
        r, w = o.get(name, 0.0), v.get(name, 0.0)
        peers = [p for p in (r, w) if p > 0]
        ratio = ms / min(peers) if peers else float("nan")
        k = kinds[op]
        k[0] += ms
        k[1] += r
        k[2] += w
        k[3] += 1
        if a.all or ratio > 1.3:
            print(f"{i:>4} {op:<10} {shape:<16} {ms:>7.3f} {r:>7.3f} {w:>7.3f} {ratio:>6.2f}  {name}")
    ro = sum(ms for n, ms in o.items() if n not in names)
    rv = sum(ms for n, ms in v.items() if n not in names)
    print("per op kind (ms: ours, onnxruntime, OpenVINO; steps):")
    for op, (mo, r, w, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        print(f"  {op:<12} {mo:>7.3f} {r:>7.3f} {w:>7.3f}  {n}")
    print(f"  {'(no node)':<12} {0.0:>7.3f} {ro:>7.3f} {rv:>7.3f}  peers' layout reorders and the like")
    tot = [sum(s[3] for s in steps), sum(o.values()), sum(v.values())]
    print(f"  {'total':<12} {tot[0]:>7.3f} {tot[1]:>7.3f} {tot[2]:>7.3f}  "
          f"ours / faster peer {tot[0] / min(tot[1], tot[2]):.2f}")


if __name__ == "__main__":
    main()
