#!/usr/bin/env python3
"""The peer for the CUDA backend on the same card: the same ONNX model in
PyTorch (converted by onnx2torch, real weights), timed as `perceptd
gpu-check` times ours, so the two can be quoted as ratios from one run.

    python3 benches/cuda_vs_torch.py MODEL.onnx [--frames 1000] [--wheels DIR]

Rows, each p50 / p99 in ms over --frames runs after 50 warm-up runs:
  network      device-resident input, forward only, CUDA events around it
               (ours: gpu-check's "network" line, also CUDA events);
  whole        pinned host input -> device, forward, output -> pinned host,
               host wall time (ours: gpu-check's "whole" line, which also
               preprocesses a raw camera frame on the GPU);
for FP32 (TF32 off, as ours: cuBLAS SGEMM, strict FP32), FP16 (model and
input in half; ours keeps FP32 activations and accumulates in FP32) and
each of those captured in one CUDA graph (as ours runs), eager otherwise.
Before timing, the FP32 output is compared with onnxruntime (CPU) on the
same input, so a wrong conversion is seen, not timed.

Needs torch with CUDA, numpy, onnx and onnx2torch (+ torchvision, which
onnx2torch imports). A GPU machine without internet gets them from wheels
downloaded here (`pip download onnx onnx2torch protobuf ml_dtypes
--no-deps --python-version 3.12
--only-binary=:all: --platform manylinux_2_28_x86_64 -d DIR`): --wheels DIR
installs those the machine lacks into DIR/site and puts it on the path
(torchvision, 15 MB with pillow, is optional: without it onnx2torch cannot
convert NMS or RoIAlign, which YOLO exports do not have).
"""
import argparse
import glob
import importlib
import os
import subprocess
import sys
import time


def setup_wheels(d):
    site = os.path.join(d, "site")
    need = []
    for mod, pat in [("onnx", "onnx-[0-9]*"), ("onnx2torch", "onnx2torch-*"),
                     ("google.protobuf", "protobuf-*"), ("ml_dtypes", "ml_dtypes-*"),
                     ("torchvision", "torchvision-*")]:
        try:
            importlib.import_module(mod)
        except Exception:
            need += glob.glob(os.path.join(d, pat + ".whl"))
    if need:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                            "--target", site] + need, capture_output=True, text=True)
        names = " ".join(os.path.basename(w).split("-")[0] for w in need)
        if r.returncode == 0:
            print("installed from wheels:", names)
        else:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            print(f"could not install {names} from {d} (pip exit {r.returncode}: {last}); "
                  f"this is Python {sys.version_info.major}.{sys.version_info.minor}, "
                  "are the wheels for it?")
    sys.path.insert(0, site)
    importlib.invalidate_caches()
    try:
        importlib.import_module("torchvision")
    except Exception as e:
        # onnx2torch imports torchvision for its NMS and RoIAlign converters
        # only; a model without those ops converts without it. Say so, and
        # make any use of it fail loudly.
        import types
        print(f"torchvision not importable ({e}): onnx2torch's NMS / RoIAlign "
              "converters are unavailable (a model with those ops fails to convert)")
        tv = types.ModuleType("torchvision")
        tv.ops = types.ModuleType("torchvision.ops")

        def absent(*_a, **_k):
            raise RuntimeError("torchvision is not installed")
        tv.ops.roi_align = tv.ops.nms = tv.ops.box_convert = absent
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv.ops


def pct(v, p):
    v = sorted(v)
    return v[int(round((len(v) - 1) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--wheels")
    a = ap.parse_args()
    if not os.path.isfile(a.model) or not 0 < os.path.getsize(a.model) < 2 << 30:
        print(f"error: {a.model}: not a regular file of 1 byte to 2 GiB (an ONNX model)")
        return 1
    if a.frames < 1 or a.frames > 1_000_000:
        print(f"error: --frames {a.frames}: expected 1..1000000")
        return 1
    if a.wheels:
        setup_wheels(a.wheels)
    try:
        import numpy as np
        import onnx
        import torch
        from onnx2torch import convert
    except ImportError as e:
        print(f"PyTorch comparison skipped: {e} (needs numpy, onnx, onnx2torch, torch; "
              "--wheels DIR installs the first three from wheels)")
        return 2

    if not torch.cuda.is_available():
        print("no CUDA device for PyTorch: nothing to compare")
        return 2
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name(0)}; onnx2torch conversion of {a.model}")

    proto = onnx.load(a.model)
    inp = proto.graph.input[0]
    shape = [d.dim_value if d.dim_value > 0 else 640 for d in inp.type.tensor_type.shape.dim]
    model = convert(proto).to(dev).eval()
    rng = np.random.default_rng(1)
    x_host = rng.random(shape, dtype=np.float32)

    try:
        import onnxruntime as ort
        s = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
        ref = s.run(None, {s.get_inputs()[0].name: x_host})[0]
        with torch.no_grad():
            got = model(torch.from_numpy(x_host).to(dev))
        got = (got[0] if isinstance(got, (list, tuple)) else got).float().cpu().numpy()
        err = float(np.abs(got - ref).max())
        print(f"PyTorch FP32 vs onnxruntime CPU, same input: max abs error {err:.2e} "
              f"(output {list(ref.shape)}, values up to {float(np.abs(ref).max()):.1f})")
    except ImportError:
        print("onnxruntime not installed: conversion not cross-checked")

    def run_mode(half, graph):
        m = model.half() if half else model.float()
        dt = torch.float16 if half else torch.float32
        x_dev = torch.from_numpy(x_host).to(dev, dt)
        x_pin = torch.from_numpy(x_host).to(dt).pin_memory()
        with torch.no_grad():
            out = m(x_dev)
            out = out[0] if isinstance(out, (list, tuple)) else out
            y_pin = torch.empty(out.shape, dtype=out.dtype).pin_memory()
            if graph:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        m(x_dev)
                torch.cuda.current_stream().wait_stream(side)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    o = m(x_dev)
                    y_dev = o[0] if isinstance(o, (list, tuple)) else o
                fwd = g.replay
            else:
                def fwd():
                    o = m(x_dev)
                    return o
                y_dev = None
            for _ in range(50):
                fwd()
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            net = []
            for _ in range(a.frames):
                e0.record()
                fwd()
                e1.record()
                e1.synchronize()
                net.append(e0.elapsed_time(e1))
            whole = []
            for _ in range(a.frames):
                t = time.perf_counter()
                x_dev.copy_(x_pin, non_blocking=True)
                r = fwd()
                yd = y_dev if graph else (r[0] if isinstance(r, (list, tuple)) else r)
                y_pin.copy_(yd, non_blocking=True)
                torch.cuda.synchronize()
                whole.append((time.perf_counter() - t) * 1e3)
        name = ("FP16" if half else "FP32") + (" CUDA graph" if graph else " eager")
        print(f"{name:<16} network p50 {pct(net, .5):7.3f} p99 {pct(net, .99):7.3f}   "
              f"whole p50 {pct(whole, .5):7.3f} p99 {pct(whole, .99):7.3f}")

    print(f"PyTorch, {a.frames} frames each (ms):")
    for half in (False, True):
        for graph in (False, True):
            try:
                run_mode(half, graph)
            except Exception as e:  # one mode failing must not hide the others
                print(f"{'FP16' if half else 'FP32'} {'graph' if graph else 'eager'}: failed: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
