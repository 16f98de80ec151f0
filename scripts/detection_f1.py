#!/usr/bin/env python3
"""Agreement of two perceptd JSON-lines runs over the same clip (standard library only).

    scripts/detection_f1.py A.jsonl B.jsonl [--iou 0.7]

Per frame (by `seq`), each detection of A by descending score takes the not
yet matched detection of B of its class with the highest IoU, if at least
--iou (greedy same-class matching, as tests/common/mod.rs `agreement`).
Prints one line: F1, matched, detections in A and B, frames; F1 is 1 when
neither run detected anything. Exits 1 when the runs have different frames.
"""
import argparse
import json
import sys


def load(path):
    with open(path) as f:
        return {v["seq"]: v["detections"] for v in map(json.loads, f)}


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / max(area(a) + area(b) - inter, 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--iou", type=float, default=0.7)
    x = ap.parse_args()
    a, b = load(x.a), load(x.b)
    if sorted(a) != sorted(b):
        sys.exit(f"different frames: {len(a)} vs {len(b)}")
    matched = na = nb = 0
    for seq, da in a.items():
        db = b[seq]
        na += len(da)
        nb += len(db)
        used = [False] * len(db)
        for d in sorted(da, key=lambda d: -d["score"]):
            best = None
            for i, e in enumerate(db):
                if used[i] or e["class_id"] != d["class_id"]:
                    continue
                v = iou(d["box"], e["box"])
                if v >= x.iou and (best is None or v > best[1]):
                    best = (i, v)
            if best:
                used[best[0]] = True
                matched += 1
    f1 = 1.0 if na + nb == 0 else 2 * matched / (na + nb)
    print(f"F1 {f1:.4f} at IoU >= {x.iou} ({matched} matched of {na} / {nb} detections, {len(a)} frames)")


if __name__ == "__main__":
    main()
