#!/usr/bin/env python3
"""Compare two perceptd JSON-lines runs frame by frame (standard library only).

    scripts/compare_detections.py BEFORE.jsonl AFTER.jsonl [--box-px 0.5] [--score 1e-3] [--ground-m 0.02]

Lines are matched by `seq`. Each frame must have the same number of
detections; detections are compared in emitted order (the decoder emits them
by descending score) and must have the same class, every box coordinate
within --box-px pixels, the score within --score and, when present, the
ground position within --ground-m metres (both null or both set). Timing
fields are ignored. Prints one summary line (frames, detections, largest
differences) and exits 1 on any mismatch, listing the first few.
"""
import argparse
import json
import sys


def load(path):
    frames = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                v = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            frames[v["seq"]] = v["detections"]
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--box-px", type=float, default=0.5)
    ap.add_argument("--score", type=float, default=1e-3)
    ap.add_argument("--ground-m", type=float, default=0.02)
    a = ap.parse_args()
    b, c = load(a.before), load(a.after)
    problems = []
    if sorted(b) != sorted(c):
        problems.append(f"frames differ: {len(b)} before, {len(c)} after, "
                        f"{len(set(b) ^ set(c))} seq numbers in only one")
    dets = 0
    max_box = max_score = max_ground = 0.0
    for seq in sorted(set(b) & set(c)):
        x, y = b[seq], c[seq]
        if len(x) != len(y):
            problems.append(f"seq {seq}: {len(x)} detections before, {len(y)} after")
            continue
        for k, (p, q) in enumerate(zip(x, y)):
            dets += 1
            where = f"seq {seq} det {k}"
            if p["class_id"] != q["class_id"]:
                problems.append(f"{where}: class {p['class_id']} -> {q['class_id']}")
            db = max(abs(u - v) for u, v in zip(p["box"], q["box"]))
            ds = abs(p["score"] - q["score"])
            max_box, max_score = max(max_box, db), max(max_score, ds)
            if db > a.box_px:
                problems.append(f"{where}: box {p['box']} -> {q['box']}")
            if ds > a.score:
                problems.append(f"{where}: score {p['score']} -> {q['score']}")
            pg, qg = p.get("ground"), q.get("ground")
            if (pg is None) != (qg is None):
                problems.append(f"{where}: ground {pg} -> {qg}")
            elif pg is not None:
                dg = max(abs(u - v) for u, v in zip(pg, qg))
                max_ground = max(max_ground, dg)
                if dg > a.ground_m:
                    problems.append(f"{where}: ground {pg} -> {qg}")
    print(f"{a.after}: {len(c)} frames, {dets} detections compared; max |box diff| "
          f"{max_box:.3f} px, max |score diff| {max_score:.4f}, max |ground diff| "
          f"{max_ground:.3f} m: {'SAME' if not problems else 'DIFFERENT'}")
    for p in problems[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
