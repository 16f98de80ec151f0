#!/usr/bin/env python3
"""A full `perceptd replay` of an NMS-free end-to-end export (YOLO26 by
default) against onnxruntime + Ultralytics' own post-processing on the same
frames.

    .venv/bin/python scripts/end2end_replay_check.py [--model M] [--frames 24]
        [--perceptd target/release/perceptd] [--work target/end2end-check]

1. Writes `--frames` synthetic grey frames (smooth pattern + soft rectangles
   + noise, fixed seed: `gen_exports.synthetic_images`) as wide as the
   model's (static, square) input and 3/4 as high, e.g. 160x120, as a Y4M
   (`Cmono`) file.
2. Runs `perceptd replay FILE --model M --pace fast --output OUT.jsonl` with
   a config that sets `conf_threshold`, `max_detections` and no tracking
   (the decoder is chosen by perceptd from the model's metadata: end2end).
3. Reference, per frame: the letterboxed tensor exactly as perceptd and
   Ultralytics' LetterBox build it (grey copied to R, G and B; 160x120 into
   a 160x160 input needs no resize, only 20 rows of grey 114 above and
   below; /255), onnxruntime (CPU), then Ultralytics'
   `utils.nms.non_max_suppression(..., end2end=True)` (score > conf, first
   max_det rows) and `utils.ops.scale_boxes` (pad removed, clipped).
4. Compares frame by frame: the same number of detections; each of
   perceptd's detections matched to an unused reference detection of the
   same class with score within --score and every box coordinate within
   --box-px, the one at the same position when it qualifies (perceptd's JSON holds boxes to 0.1 px and scores to 1e-3, so
   the defaults are 0.1 px and 1e-3); detections at different positions are allowed only between
   rows whose reference scores are within --score of each other (TopK
   near-ties that float rounding of two engines may order either way).

Prints one summary line and exits 1 on any mismatch. Needs numpy,
onnxruntime and ultralytics (+ torch): the fixture venv,
`python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt`.
Build perceptd first (`cargo build --release`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

SEED = 20261203


def frames(n: int, W: int, H: int):
    import numpy as np
    from gen_exports import synthetic_images

    x = synthetic_images((n, 1, H, W), SEED)[:, 0]
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_y4m(path: str, grey) -> None:
    H, W = grey.shape[1:]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F30:1 Ip A1:1 Cmono\n".encode())
        for g in grey:
            f.write(b"FRAME\n")
            f.write(g.tobytes())


def reference(model: str, grey, conf: float, max_det: int):
    """Per frame: list of (class_id, score, [x1, y1, x2, y2]) in source pixels."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from ultralytics.utils import nms, ops

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    SIDE = sess.get_inputs()[0].shape[2]
    H, W = grey.shape[1:]
    top = round((SIDE - H) / 2 - 0.1)  # Ultralytics LetterBox, center=True
    out = []
    for g in grey:
        img = np.full((SIDE, SIDE, 3), 114, dtype=np.uint8)
        img[top : top + H, :W, :] = g[:, :, None]
        x = img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        y = sess.run(None, {name: x})[0]
        pred = nms.non_max_suppression(torch.from_numpy(y), conf, 0.7, max_det=max_det, end2end=True)[0]
        boxes = ops.scale_boxes((SIDE, SIDE), pred[:, :4].clone(), (H, W))
        out.append(
            [(int(c), float(s), [float(v) for v in b]) for b, s, c in zip(boxes, pred[:, 4], pred[:, 5])]
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(REPO, "tests/fixtures/exports/yolo26-w0125-static/model.onnx"))
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--perceptd", default=os.path.join(REPO, "target/release/perceptd"))
    ap.add_argument("--work", default=os.path.join(REPO, "target/end2end-check"))
    ap.add_argument("--conf", type=float, default=0.6)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--box-px", type=float, default=0.1)
    ap.add_argument("--score", type=float, default=1e-3)
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    y4m = os.path.join(a.work, "frames.y4m")
    cfg = os.path.join(a.work, "end2end.toml")
    jsonl = os.path.join(a.work, "perceptd.jsonl")
    import onnxruntime as ort

    # frames as wide as the model's square input and 3/4 as high: no
    # resize, a letterbox of grey rows above and below
    side = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"]).get_inputs()[0].shape[2]
    grey = frames(a.frames, side, side * 3 // 4)
    write_y4m(y4m, grey)
    with open(cfg, "w") as f:
        f.write(
            f"[model]\nconf_threshold = {a.conf}\nmax_detections = {a.max_det}\n"
            "threads = 1\n\n[tracking]\nenabled = false\n"
        )
    if os.path.exists(jsonl):
        os.remove(jsonl)
    cmd = [a.perceptd, "replay", y4m, "--model", a.model, "--config", cfg, "--pace", "fast", "--output", jsonl]
    print("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "decoder" in line or "error" in line or "frames" in line:
            print("  " + line)
    if r.returncode != 0:
        print(r.stderr)
        return 1
    ours = {}
    with open(jsonl) as f:
        for line in f:
            v = json.loads(line)
            ours[v["seq"]] = [(d["class_id"], d["score"], d["box"]) for d in v["detections"]]
    ref = reference(a.model, grey, a.conf, a.max_det)

    problems = []
    if sorted(ours) != list(range(len(ref))):
        problems.append(f"perceptd wrote frames {sorted(ours)[:5]}..., expected seq 0..{len(ref) - 1}")
    n_dets = moved = 0
    max_box = max_score = 0.0
    for seq, want in enumerate(ref):
        got = ours.get(seq, [])
        if len(got) != len(want):
            problems.append(f"seq {seq}: {len(got)} detections, reference {len(want)}")
            continue
        used = [False] * len(want)
        for i, (c, s, b) in enumerate(got):
            n_dets += 1

            def dist(j):
                return max(abs(u - v) for u, v in zip(b, want[j][2]))

            cands = [
                j
                for j in range(len(want))
                if not used[j] and want[j][0] == c and abs(want[j][1] - s) <= a.score and dist(j) <= a.box_px
            ]
            if not cands:
                problems.append(f"seq {seq} det {i}: class {c} score {s} box {b} matches no reference detection")
                continue
            # the same position when it matches, else the closest box
            j = i if i in cands else min(cands, key=dist)
            used[j] = True
            if j != i:
                moved += 1
                if abs(want[i][1] - want[j][1]) > a.score:
                    problems.append(f"seq {seq} det {i}: is the reference's det {j} (scores {want[i][1]} vs {want[j][1]})")
            max_box, max_score = max(max_box, dist(j)), max(max_score, abs(want[j][1] - s))
            if dist(j) > a.box_px:
                problems.append(f"seq {seq} det {i}: box {b} vs reference {want[j][2]}")
    print(
        f"{len(ref)} frames, {n_dets} detections (conf > {a.conf}, max {a.max_det} per frame) compared with "
        f"onnxruntime + ultralytics non_max_suppression(end2end=True) + scale_boxes; max |box diff| {max_box:.4f} px, "
        f"max |score diff| {max_score:.2e}, {moved} swapped with a near-tie: {'SAME' if not problems else 'DIFFERENT'}"
    )
    for p in problems[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
