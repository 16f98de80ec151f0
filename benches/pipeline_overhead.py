#!/usr/bin/env python3
"""Side-by-side benchmark of the pipeline's cost per frame apart from the
network: perceptd's pipeline vs the loop people write by hand with OpenCV
and numpy, on the same frames and the same network outputs, same run.

    cargo build --release
    python3 benches/pipeline_overhead.py [--format yuyv] [--frames 3000] [--model M]

Needs `pip install opencv-python-headless numpy`.

perceptd side: `perceptd bench-pipeline` boots the real pipeline (ring,
capture / inference / postprocess threads, decoder, NMS, ground positions,
JSON sink to /dev/null) on 32 synthetic 640x480 frames held in memory, with
the network replaced by the outputs the real network gave for those frames
at boot, and dumps the frames and outputs for the peer.

Peer: one thread per frame doing what a hand-rolled OpenCV loop does:
cv2.cvtColor to RGB, cv2.remap through maps from cv2.initUndistortRectifyMap built once
(undistortion, as perceptd does with the default calibration), cv2.resize +
copyMakeBorder (grey 114 letterbox),
HWC->CHW float /255, numpy decode of the YOLOv8 head, cv2.dnn.NMSBoxesBatched,
cv2.undistortPoints + ray/ground intersection for each detection, json.dumps,
write to /dev/null.

Reports ours vs the peer as ratios (lower is better): the pipelined wall time
per frame (throughput cost) and the sum of the per-frame work (latency cost).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")

TO_RGB = {
    "YUYV": cv2.COLOR_YUV2RGB_YUYV,
    "UYVY": cv2.COLOR_YUV2RGB_UYVY,
    "NV12": cv2.COLOR_YUV2RGB_NV12,
    "I420": cv2.COLOR_YUV2RGB_I420,
    "GREY": cv2.COLOR_GRAY2RGB,
}

# The default front camera (calibration/front_camera.yaml).
K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
DIST = np.array([-0.05, 0.01, 0.0, 0.0, 0.0])
CAM_T = np.array([1.5, 0.0, 1.3])
PITCH = math.radians(5.0)


def frame_shape(fmt, w, h):
    if fmt in ("YUYV", "UYVY"):
        return (h, w, 2)
    if fmt in ("NV12", "I420"):
        return (h * 3 // 2, w)
    if fmt == "GREY":
        return (h, w)
    return (h, w, 3)


def optical_to_vehicle():
    # optical (x right, y down, z forward) -> body (x forward, y left, z up)
    o2b = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)
    c, s = math.cos(PITCH), math.sin(PITCH)
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return ry @ o2b


def naive_frame(raw, out, meta, r_ov, maps, sink):
    w, h, fmt = meta["width"], meta["height"], meta["format"]
    iw, ih = meta["input"]
    img = raw.reshape(frame_shape(fmt, w, h))
    rgb = img if fmt == "RGB24" else cv2.cvtColor(img, TO_RGB[fmt])
    rgb = cv2.remap(rgb, maps[0], maps[1], cv2.INTER_LINEAR, borderValue=(114, 114, 114))
    r = min(ih / h, iw / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (iw - nw) / 2, (ih - nh) / 2
    if (nw, nh) != (w, h):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    lb = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    blob = np.ascontiguousarray(lb.transpose(2, 0, 1))[None].astype(np.float32) / 255.0
    assert blob.shape == (1, 3, ih, iw)
    # -- network excluded: `out` is what it produced for this frame --
    c = meta["output_shape"][1] - 4
    p = out.reshape(4 + c, -1).T
    scores = p[:, 4:]
    cls = scores.argmax(1)
    conf = scores[np.arange(len(cls)), cls]
    keep = conf > meta["conf"]
    p, cls, conf = p[keep], cls[keep], conf[keep]
    xywh = p[:, :4].copy()
    xywh[:, 0] = (xywh[:, 0] - xywh[:, 2] / 2 - left) / r
    xywh[:, 1] = (xywh[:, 1] - xywh[:, 3] / 2 - top) / r
    xywh[:, 2:] /= r
    idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), conf.tolist(), cls.tolist(), meta["conf"], meta["iou"])
    idx = np.array(idx).reshape(-1)[: meta["max_det"]]
    dets = []
    for i in idx:
        x, y, bw, bh = xywh[i]
        bc = np.array([[[x + bw / 2, y + bh]]], dtype=np.float64)
        un = cv2.undistortPoints(bc, K, DIST).reshape(2)
        ray = r_ov @ np.array([un[0], un[1], 1.0])
        ground = None
        if ray[2] < -1e-9:
            t = -CAM_T[2] / ray[2]
            g = CAM_T + t * ray
            ground = [round(float(g[0]), 2), round(float(g[1]), 2)]
        dets.append({
            "class_id": int(cls[i]),
            "score": round(float(conf[i]), 3),
            "box": [round(float(v), 1) for v in (x, y, x + bw, y + bh)],
            "ground": ground,
        })
    sink.write(json.dumps({"detections": dets}) + "\n")
    return len(dets)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", default="yuyv")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--model", help="default: the shipped model")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as d:
        cmd = [BIN, "bench-pipeline", "--format", a.format, "--frames", str(a.frames), "--dump", d, "--json"]
        if a.model:
            cmd += ["--model", a.model]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        print(res.stdout.rstrip())
        ours = json.loads(res.stdout.strip().splitlines()[-1])
        meta = json.load(open(os.path.join(d, "meta.json")))
        raw = np.fromfile(os.path.join(d, "frames.raw"), dtype=np.uint8).reshape(meta["frames"], -1)
        outs = np.fromfile(os.path.join(d, "outputs.f32"), dtype="<f4").reshape(meta["frames"], -1)
    r_ov = optical_to_vehicle()
    maps = cv2.initUndistortRectifyMap(K, DIST, None, K, (meta["width"], meta["height"]), cv2.CV_32FC1)
    times, ndet = [], 0
    with open(os.devnull, "w") as sink:
        t_all = time.perf_counter()
        for i in range(a.frames):
            k = i % meta["frames"]
            t = time.perf_counter()
            ndet += naive_frame(raw[k], outs[k], meta, r_ov, maps, sink)
            times.append((time.perf_counter() - t) * 1e3)
        wall = (time.perf_counter() - t_all) * 1e3 / a.frames
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    work = ours["pre_p50_ms"] + ours["post_p50_ms"]
    print()
    print(f"peer (OpenCV {cv2.__version__} + numpy, 1 thread): {a.frames} frames, {ndet / a.frames:.1f} detections/frame")
    print(f"  per frame p50 {p50:.3f} ms  p99 {p99:.3f} ms  wall {wall:.3f} ms")
    print()
    print(f"{'':28}{'perceptd':>12}{'peer':>12}{'ratio':>8}")
    print(f"{'wall per frame (ms)':28}{ours['wall_ms_per_frame']:>12.3f}{wall:>12.3f}{ours['wall_ms_per_frame'] / wall:>8.2f}")
    print(f"{'work per frame p50 (ms)':28}{work:>12.3f}{p50:>12.3f}{work / p50:>8.2f}")
    print("(ratio = perceptd / peer, lower is better; perceptd's work = preprocess p50 + postprocess p50)")


if __name__ == "__main__":
    main()
