#!/usr/bin/env python3
"""Where perceptd's tracker and ByteTrack differ, frame by frame: the
diagnosis behind the README's "What the per-frame motmetrics events show".

    .venv/bin/python benches/tracking_events.py --seed 2000 [--frames 600] [--tracking k=v ...]

Runs one seed exactly as benches/tracking_vs_bytetrack.py does (same
detections for both, same scoring), takes motmetrics' per-frame events
(`mot_events`) of both trackers and prints:
* ground-truth boxes matched by one tracker and missed by the other, by the
  best detection under the box (IoU >= 0.5 or not, its score, whether ours
  put it on a track), with the first few (frame, ground-truth id);
* false positives of each, by whether the box overlaps a ground-truth box
  by 0.3 or more (badly fitted) or lies off every object, and for ours
  whether the detection's score was below 0.5.
Use the tuning seeds (2000-2003), not the held-out ones.
"""
import argparse
import collections
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tracking_vs_bytetrack as B  # noqa: E402

MATCHED = ("MATCH", "SWITCH", "TRANSFER", "ASCEND", "MIGRATE")


def events(mm, gt, hyp):
    acc = mm.MOTAccumulator(auto_id=False)
    for f in sorted(set(gt) | set(hyp)):
        g, h = gt.get(f, []), hyp.get(f, [])
        if g and h:
            d = 1.0 - B.iou_matrix([b for _, b in g], [b for _, b in h])
            d[d > 0.5] = np.nan
        else:
            d = np.empty((len(g), len(h)))
        acc.update([i for i, _ in g], [i for i, _ in h], d, frameid=f)
    return acc.mot_events


def states(ev):
    s = {}
    for (f, _), r in ev.iterrows():
        if r.Type in MATCHED:
            s[(f, r.OId)] = True
        elif r.Type == "MISS":
            s[(f, r.OId)] = False
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--conf", type=float, default=0.1)
    ap.add_argument("--tracking", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    import motmetrics as mm

    BT = B.load_bytetrack()
    with tempfile.TemporaryDirectory(prefix="perceptd-events-") as work:
        d = B.prepare_seed(args.seed, args.frames, args.conf, work, args.tracking)
        lines, gt, _ = B.load_seed(d)
    raw = {line["seq"] + 1: line["detections"] for line in lines}
    ours = {f: [(x["track_id"], x["box"]) for x in ds if x.get("track_id") is not None] for f, ds in raw.items()}
    dets = [[x["box"] + [x["score"], x["class_id"]] for x in line["detections"]] for line in lines]
    bt, _ = B.run_bytetrack(BT, dets)
    theirs = {i + 1: rows for i, rows in enumerate(bt)}
    ea, eb = events(mm, gt, ours), events(mm, gt, theirs)
    sa, sb = states(ea), states(eb)
    cat, ex = collections.Counter(), collections.defaultdict(list)
    for k, a in sa.items():
        if a == sb[k]:
            continue
        f, oid = k
        gbox = [b for i, b in gt[f] if i == oid][0]
        ds = raw.get(f, [])
        iou = B.iou_matrix([gbox], [x["box"] for x in ds])[0] if ds else np.zeros(0)
        j = int(np.argmax(iou)) if len(iou) else -1
        if j < 0 or iou[j] < 0.5:
            c = "no detection with IoU >= 0.5 under it"
        else:
            x = ds[j]
            c = f"detection score {'>= 0.5' if x['score'] >= 0.5 else '< 0.5'}, on a track of ours: {x.get('track_id') is not None}"
        c = ("ByteTrack matched, ours missed: " if sb[k] else "ours matched, ByteTrack missed: ") + c
        cat[c] += 1
        ex[c].append((f, int(oid)))
    for c, n in sorted(cat.items()):
        print(f"{n:>5} {c}  e.g. {ex[c][:6]}")
    for name, ev, hyp in (("ours", ea, ours), ("ByteTrack", eb, theirs)):
        fp = collections.Counter()
        for (f, _), r in ev.iterrows():
            if r.Type != "FP":
                continue
            box = [b for i, b in hyp[f] if i == r.HId][0]
            g = [b for _, b in gt.get(f, [])]
            near = g and B.iou_matrix([box], g)[0].max() >= 0.3
            key = "overlaps a GT box by 0.3-0.5" if near else "off every GT box"
            if name == "ours":
                sc = next((x["score"] for x in raw[f] if np.allclose(x["box"], box, atol=1e-3)), None)
                key += ", score < 0.5" if sc is not None and sc < 0.5 else ", score >= 0.5"
            fp[key] += 1
        print(f"false positives, {name}: {dict(sorted(fp.items()))}")


if __name__ == "__main__":
    main()
