#!/usr/bin/env python3
"""Side-by-side benchmark: perceptd's JPEG decoder vs OpenCV's
`cv2.imdecode` (libjpeg-turbo) on the same 1280x720 MJPEG frames, same
machine, same run. Prints per-frame decode time of each and the ratio
ours / OpenCV (lower is better).

    python3 benches/mjpeg_vs_opencv.py [--frames 300] [--rounds 2]

Makes everything it needs: the frames are the synthetic scene
(`perceptd synth-dataset`, 640x480) scaled to 1280x720 and encoded by
ffmpeg as 4:2:2 MJPEG (what USB cameras send) at quality 3; OpenCV comes
from pip (opencv-python-headless, numpy) into the venv target/bench-venv.
Runs alternate (ours, OpenCV, ours, OpenCV) so drift on a shared machine
hits both alike. Note what each does: ours writes the planar Y/Cb/Cr the
pipeline takes (no colour conversion); imdecode also upsamples chroma and
converts to BGR, as an OpenCV user gets it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "bench-venv")


def in_venv():
    py = os.path.join(VENV, "bin", "python3")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "opencv-python-headless", "numpy"], check=True)
    os.execv(py, [py] + sys.argv)


def make_stream(tmp):
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    ds = os.path.join(tmp, "ds")
    subprocess.run([os.path.join(ROOT, "target", "release", "perceptd"), "synth-dataset",
                    "--out", ds, "--frames", "30", "--seed", "3"], check=True, capture_output=True)
    images = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(ds) for f in fs if f.endswith(".bmp"))
    if not images:
        sys.exit(f"no BMP frames under {ds}")
    listing = os.path.join(tmp, "frames.txt")
    with open(listing, "w") as f:
        for p in images:
            f.write(f"file '{p}'\n")
    out = os.path.join(tmp, "scene720.mjpeg")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing,
                    "-vf", "scale=1280:720", "-pix_fmt", "yuvj422p", "-q:v", "3", "-f", "mjpeg", out],
                   check=True)
    return out


def split(data):
    """JPEGs of the stream (SOI after EOI: enough for ffmpeg's output)."""
    starts = [0] + [i for i in range(2, len(data) - 1) if data[i - 2:i + 2] == b"\xff\xd9\xff\xd8"]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def ours(stream, frames):
    env = dict(os.environ, FRAMES=str(frames))
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "--bench", "hotpaths", "--", "mjpeg", stream],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["wall_ms"]


def opencv(jpegs, frames):
    import cv2
    import numpy as np
    cv2.setNumThreads(1)
    bufs = [np.frombuffer(j, dtype=np.uint8) for j in jpegs]
    assert cv2.imdecode(bufs[0], cv2.IMREAD_COLOR).shape == (720, 1280, 3)
    t0 = time.perf_counter()
    for k in range(frames):
        cv2.imdecode(bufs[k % len(bufs)], cv2.IMREAD_COLOR)
    return (time.perf_counter() - t0) * 1e3 / frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    in_venv()
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream(tmp)
        jpegs = split(open(stream, "rb").read())
        size_kib = sum(map(len, jpegs)) / len(jpegs) / 1024
        o, c = [], []
        for _ in range(a.rounds):
            o.append(ours(stream, a.frames))
            c.append(opencv(jpegs, a.frames))
        mo, mc = min(o), min(c)
        print(f"1280x720 4:2:2 MJPEG, {len(jpegs)} distinct JPEGs of {size_kib:.0f} KiB, {a.frames} decodes x {a.rounds} rounds")
        print(f"  perceptd jpeg decoder: {mo:.3f} ms/frame (runs: {', '.join(f'{x:.3f}' for x in o)})")
        print(f"  OpenCV cv2.imdecode:   {mc:.3f} ms/frame (runs: {', '.join(f'{x:.3f}' for x in c)})")
        print(f"  ratio ours/OpenCV: {mo / mc:.2f}")


if __name__ == "__main__":
    main()
