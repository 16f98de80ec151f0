#!/usr/bin/env python3
"""Side-by-side benchmark of perceptd's tracker against ByteTrack on the same
detections, in the same run, scored against the synthetic scene's ground truth.

    cargo build --release
    python3 -m venv .venv
    .venv/bin/pip install "setuptools<70" numpy scipy lap==0.5.13 motmetrics==1.4.0
    .venv/bin/pip install --no-deps bytetracker==0.3.2
    .venv/bin/python benches/tracking_vs_bytetrack.py [--seeds 1000 1001 1002 1003] [--frames 600]

For each seed:
1. `perceptd synth-dataset --mot` writes the ground truth (gt/gt.txt,
   MOTChallenge; gt/ground.csv, ground position and velocity) of the frames
   `perceptd run` renders with `source.seed = S`.
2. `perceptd run` (the embedded default config with that seed and
   `--conf` as `model.conf_threshold`, tracking on) writes JSON lines: every
   detection, and for those on a confirmed track its `track_id` and
   `velocity`.
3. Ours: the detections that carry a `track_id`. Peer: ByteTrack (pip
   `bytetracker` 0.3.2, the ByteTrack authors' algorithm packaged) fed
   every detection of every frame (box, score, class) from the same lines,
   with the ByteTrack paper's settings (track_thresh 0.5, track_buffer 30,
   match_thresh 0.8, 30 fps); its output boxes and ids.
4. Both scored with `motmetrics` (IoU >= 0.5): IDF1, MOTA, ID switches.
5. Velocity (ours; ByteTrack gives none in metres): each tracked detection
   matched to a ground-truth box (IoU >= 0.5, optimal per frame) with
   ground-truth range <= 30 m; speed error = | |v| - |v_gt| |, vector
   error = |v - v_gt|, median and p90 by range bucket; coverage = share of
   those matches that have a velocity.

Then the tracker's own cost per frame: `perceptd bench-tracking` times
perceptd's tracker on a generated scene of N moving objects (10 and 100) and
dumps its detections; ByteTrack's `update` is timed on the same detections
here. Ratios are ours / ByteTrack (lower is faster).

About the peer package: bytetracker 0.3.2 imports torch only to accept torch
tensors, so a stand-in `torch` module (a `Tensor` class for its isinstance
checks) is installed and numpy arrays with a `.numpy()` method are passed.
Its `update` converts the input boxes with `xyxy2xywh` (centre x, y) but
builds tracks from them as top-left x, y (and converts its output back the
same wrong way); the two module-level converters are replaced by correct
ones (`xyxy -> tlwh` and `tlwh -> xyxy`) so the algorithm runs as published.
Nothing else of ByteTrack is changed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")


def load_bytetrack():
    torch = types.ModuleType("torch")
    torch.Tensor = type("Tensor", (), {})
    sys.modules.setdefault("torch", torch)
    from bytetracker import byte_tracker

    def xyxy_to_tlwh(x):
        y = np.copy(x)
        y[:, 2] = x[:, 2] - x[:, 0]
        y[:, 3] = x[:, 3] - x[:, 1]
        return y

    def tlwh_to_xyxy(x):
        y = np.copy(x)
        y[:, 2] = x[:, 0] + x[:, 2]
        y[:, 3] = x[:, 1] + x[:, 3]
        return y

    byte_tracker.xyxy2xywh = xyxy_to_tlwh
    byte_tracker.xywh2xyxy = tlwh_to_xyxy
    return byte_tracker.BYTETracker


class Arr(np.ndarray):
    """A numpy array that answers `.numpy()` like a torch tensor."""

    def numpy(self):
        return np.asarray(self)


def run_bytetrack(BYTETracker, frames):
    """frames: list of (N, 6) arrays [x1, y1, x2, y2, score, class]. Returns
    a list of per-frame lists of (id, [x1, y1, x2, y2]) and the update time
    per frame in seconds."""
    from bytetracker.basetrack import BaseTrack

    BaseTrack._count = 0
    tr = BYTETracker(track_thresh=0.5, track_buffer=30, match_thresh=0.8, frame_rate=30)
    out, times = [], []
    for dets in frames:
        arr = np.asarray(dets, dtype=np.float64).reshape(-1, 6).view(Arr)
        t0 = time.perf_counter()
        res = tr.update(arr, None)
        times.append(time.perf_counter() - t0)
        rows = []
        for r in res:
            rows.append((int(r[4]), [float(r[0]), float(r[1]), float(r[2]), float(r[3])]))
        out.append(rows)
    return out, times


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def read_lines(path):
    frames = []
    with open(path) as f:
        for line in f:
            frames.append(json.loads(line))
    return frames


def iou_matrix(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def score(mm, gt_frames, hyp_frames, name):
    """gt_frames / hyp_frames: dict frame -> list of (id, [x1, y1, x2, y2])."""
    acc = mm.MOTAccumulator(auto_id=False)
    frames = sorted(set(gt_frames) | set(hyp_frames))
    for f in frames:
        g = gt_frames.get(f, [])
        h = hyp_frames.get(f, [])
        if g and h:
            d = 1.0 - iou_matrix([b for _, b in g], [b for _, b in h])
            d[d > 0.5] = np.nan
        else:
            d = np.empty((len(g), len(h)))
        acc.update([i for i, _ in g], [i for i, _ in h], d, frameid=f)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["idf1", "mota", "num_switches", "num_false_positives", "num_misses"], name=name)
    return {k: float(s[k].iloc[0]) for k in s.columns}


def velocity_errors(lines, gt_frames, ground):
    """Per range bucket: lists of (speed error, vector error), and counts of
    matches with / without a velocity."""
    from scipy.optimize import linear_sum_assignment

    buckets = {(0, 10): [], (10, 20): [], (20, 30): []}
    with_v = without_v = 0
    for line in lines:
        f = line["seq"] + 1
        tracked = [d for d in line["detections"] if d.get("track_id") is not None]
        g = gt_frames.get(f, [])
        if not tracked or not g:
            continue
        iou = iou_matrix([d["box"] for d in tracked], [b for _, b in g])
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            if iou[r, c] < 0.5:
                continue
            gid = g[c][0]
            x, y, vx, vy = ground[(f, gid)]
            rng = float(np.hypot(x, y))
            if rng > 30.0:
                continue
            v = tracked[r]["velocity"]
            if v is None:
                without_v += 1
                continue
            with_v += 1
            speed_err = abs(float(np.hypot(*v)) - float(np.hypot(vx, vy)))
            vec_err = float(np.hypot(v[0] - vx, v[1] - vy))
            for (lo, hi), lst in buckets.items():
                if lo <= rng < hi or (hi == 30 and rng == 30.0):
                    lst.append((speed_err, vec_err))
    return buckets, with_v, without_v


def prepare_seed(seed, frames, conf, work, tracking):
    """Writes the seed's ground truth and perceptd's JSON lines under
    `work`; returns the seed's folder."""
    d = os.path.join(work, f"seed{seed}")
    sh([BIN, "synth-dataset", "--out", d, "--seed", str(seed), "--frames", str(frames), "--mot", "--every", str(frames)])
    cfg = open(os.path.join(ROOT, "perceptd.default.toml")).read()
    cfg = cfg.replace("seed = 1\n", f"seed = {seed}\n")
    cfg = cfg.replace("conf_threshold = 0.25", f"conf_threshold = {conf}")
    # A copy of the embedded default has no calibration: name the built-in
    # one (the camera the synthetic scene renders through).
    cfg = cfg.replace("[calibration]\n", '[calibration]\npath = "builtin:front_camera"\n')
    if tracking:
        cfg += "\n[tracking]\n" + "\n".join(tracking) + "\n"
    cfg_path = os.path.join(d, "perceptd.toml")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    out = os.path.join(d, "perceptd.jsonl")
    sh([BIN, "run", "--config", cfg_path, "--frames", str(frames), "--output", out])
    return d


def load_seed(d):
    """perceptd's lines, the ground-truth boxes (frame -> [(id, box)]) and
    ground positions ((frame, id) -> (x, y, vx, vy)) of a prepared seed."""
    lines = read_lines(os.path.join(d, "perceptd.jsonl"))
    gt_frames, ground = {}, {}
    for row in open(os.path.join(d, "gt", "gt.txt")):
        p = row.strip().split(",")
        f, i = int(p[0]), int(p[1])
        l, t, w, h = map(float, p[2:6])
        gt_frames.setdefault(f, []).append((i, [l, t, l + w, t + h]))
    for row in list(open(os.path.join(d, "gt", "ground.csv")))[1:]:
        p = row.strip().split(",")
        ground[(int(p[0]), int(p[1]))] = tuple(map(float, p[2:6]))
    return lines, gt_frames, ground


def one_seed(mm, BYTETracker, seed, frames, conf, work, tracking):
    d = prepare_seed(seed, frames, conf, work, tracking)
    lines, gt_frames, ground = load_seed(d)
    ours = {}
    dets = []
    for line in lines:
        f = line["seq"] + 1
        ours[f] = [(d["track_id"], d["box"]) for d in line["detections"] if d.get("track_id") is not None]
        dets.append([d["box"] + [d["score"], d["class_id"]] for d in line["detections"]])
    bt_out, _ = run_bytetrack(BYTETracker, dets)
    theirs = {i + 1: rows for i, rows in enumerate(bt_out)}
    a = score(mm, gt_frames, ours, "perceptd")
    b = score(mm, gt_frames, theirs, "bytetrack")
    vel = velocity_errors(lines, gt_frames, ground)
    n_gt = sum(len(v) for v in gt_frames.values())
    n_det = sum(len(x) for x in dets)
    return a, b, vel, n_gt, n_det


def q(xs, p):
    return float(np.percentile(xs, p)) if xs else float("nan")


def bench_cost(BYTETracker, objects, frames, work):
    dump = os.path.join(work, f"scene{objects}.jsonl")
    res = sh([BIN, "bench-tracking", "--objects", str(objects), "--frames", str(frames), "--dump", dump, "--json"])
    ours = json.loads(res.stdout.strip().splitlines()[-1])
    dets = []
    for line in open(dump):
        dets.append(json.loads(line))
    _, times = run_bytetrack(BYTETracker, dets)
    times = np.asarray(times[10:]) * 1e6
    return ours, float(np.median(times)), float(np.percentile(times, 99))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--conf", type=float, default=0.1, help="model.conf_threshold for both (ByteTrack uses detections down to 0.1)")
    ap.add_argument("--cost-frames", type=int, default=2000)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--tracking", nargs="*", default=[], metavar="KEY=VALUE", help="extra [tracking] settings for perceptd (default: none)")
    args = ap.parse_args()
    import motmetrics as mm

    BYTETracker = load_bytetrack()
    all_speed = {}
    with tempfile.TemporaryDirectory(prefix="perceptd-track-") as work:
        print(f"{'seed':>5} {'GT boxes':>8} {'dets':>6} | {'IDF1 ours':>9} {'IDF1 BT':>8} | {'MOTA ours':>9} {'MOTA BT':>8} | {'IDsw ours':>9} {'IDsw BT':>8} | {'FP ours':>7} {'FP BT':>6} | {'FN ours':>7} {'FN BT':>6}")
        cover = [0, 0]
        for seed in args.seeds:
            a, b, (buckets, wv, wov), n_gt, n_det = one_seed(mm, BYTETracker, seed, args.frames, args.conf, work, args.tracking)
            print(
                f"{seed:>5} {n_gt:>8} {n_det:>6} | {a['idf1']:>9.3f} {b['idf1']:>8.3f} | {a['mota']:>9.3f} {b['mota']:>8.3f} | "
                f"{int(a['num_switches']):>9} {int(b['num_switches']):>8} | "
                f"{int(a['num_false_positives']):>7} {int(b['num_false_positives']):>6} | {int(a['num_misses']):>7} {int(b['num_misses']):>6}"
            )
            for k, v in buckets.items():
                all_speed.setdefault(k, []).extend(v)
            cover[0] += wv
            cover[1] += wov
            sys.stdout.flush()
        print()
        print(f"velocity (ours) vs ground.csv, tracked detections matched to GT (IoU>=0.5), range <= 30 m; "
              f"velocity given for {cover[0]} of {cover[0] + cover[1]} matches ({100.0 * cover[0] / max(1, sum(cover)):.1f} %)")
        print(f"{'range m':>8} {'n':>6} | {'speed err median':>16} {'p90':>6} | {'vector err median':>17} {'p90':>6}")
        every = []
        for (lo, hi), v in sorted(all_speed.items()):
            s = [x[0] for x in v]
            e = [x[1] for x in v]
            every.extend(v)
            print(f"{lo:>3}-{hi:<4} {len(v):>6} | {q(s, 50):>16.2f} {q(s, 90):>6.2f} | {q(e, 50):>17.2f} {q(e, 90):>6.2f}")
        s = [x[0] for x in every]
        e = [x[1] for x in every]
        print(f"{'0-30':>8} {len(every):>6} | {q(s, 50):>16.2f} {q(s, 90):>6.2f} | {q(e, 50):>17.2f} {q(e, 90):>6.2f}")
        if not args.skip_cost:
            print()
            print("tracker cost per frame (same generated detections; ours in Rust, ByteTrack in Python/numpy)")
            print(f"{'objects':>7} | {'ours median us':>14} {'p99':>7} | {'BT median us':>12} {'p99':>7} | {'ratio (median)':>14}")
            for n in (10, 100):
                ours, bt_med, bt_p99 = bench_cost(BYTETracker, n, args.cost_frames, work)
                print(f"{n:>7} | {ours['median_us']:>14.1f} {ours['p99_us']:>7.1f} | {bt_med:>12.1f} {bt_p99:>7.1f} | {ours['median_us'] / bt_med:>14.4f}")


if __name__ == "__main__":
    main()
