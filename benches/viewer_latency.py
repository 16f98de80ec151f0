#!/usr/bin/env python3
"""What watching costs the frame path: end-to-end latency p50/p99 of the
same live run with no viewers vs with viewers, side by side in one script,
plus the viewer threads' CPU per frame.

    cargo build --release
    python3 benches/viewer_latency.py [--frames 450] [--rounds 2] [--fps 30]

Python standard library only (and ffmpeg on PATH for the MP4).

Both runs: `perceptd run` on the synthetic camera at --fps in realtime
(live: latest frame wins, so latency is meaningful), the built-in model and
calibration, JSON lines to /dev/null, the same number of frames. The
viewers run add an annotated MP4 (`kind = "annotate"`, ffmpeg child) and
the live view (`kind = "http"`) with two MJPEG readers connected for the
whole run (standing in for two browsers; each reads as fast as it can); a
third run has the live view and readers without the MP4 (ffmpeg's encoder
is a process of its own competing for the same cores). Runs alternate
(none, http, all, none, ...) so drift on a shared machine hits all alike. e2e p50/p99 come from each run's final summary
line; the viewer threads' CPU (the `viewer` threads and the http threads,
from /proc/PID/task/*/stat, sampled until just before the run ends) is
divided by the frames they showed. ffmpeg's own CPU (a separate process,
the encoder) is reported apart.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "perceptd")
TICK = os.sysconf("SC_CLK_TCK")
UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}


def config(fps, viewers, tmp):
    text = (
        '[source]\nkind = "synthetic"\npace = "realtime"\n'
        f"fps = {fps}\n"
        '[calibration]\npath = "builtin:front_camera"\n'
        '[metrics]\ninterval_s = 0\n'
        '[[output]]\nkind = "json"\ntarget = "/dev/null"\n'
    )
    if viewers == "all":
        text += (
            f'[[output]]\nkind = "annotate"\npath = "{tmp}/run.mp4"\nfps = {max(1, round(fps))}\n'
        )
    if viewers in ("http", "all"):
        text += '[[output]]\nkind = "http"\nlisten = "127.0.0.1:0"\n'
    path = os.path.join(tmp, f"viewers-{viewers}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def reader(port, stop, got):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
    s.settimeout(1.0)
    n = 0
    while not stop.is_set():
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not b:
            break
        n += b.count(b"--frame\r\n")
    got.append(n)
    s.close()


def thread_cpu(pid):
    """CPU seconds per thread name class: viewer threads, http threads."""
    out = {"viewer": 0.0, "http": 0.0}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        if name == "viewer":
            out["viewer"] += cpu
        elif name.startswith("http-"):
            out["http"] += cpu
    return out


def child_cpu(pid):
    """CPU seconds of pid's children (ffmpeg), summed."""
    total = 0.0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def run(frames, fps, viewers, tmp):
    cfg = config(fps, viewers, tmp)
    p = subprocess.Popen(
        [BIN, "run", "--config", cfg, "--frames", str(frames)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    stop = threading.Event()
    got = []
    readers = []
    cpu = {"viewer": 0.0, "http": 0.0}
    ffmpeg = 0.0
    for line in p.stderr:
        lines.append(line)
        m = re.search(r"live view on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            for _ in range(2):
                t = threading.Thread(target=reader, args=(port, stop, got))
                t.start()
                readers.append(t)
        if "running (" in line:
            break

    def sample():
        nonlocal cpu, ffmpeg
        while p.poll() is None:
            c = thread_cpu(p.pid)
            if c:
                # Threads end before the process: keep the highest seen.
                cpu = {k: max(cpu[k], c[k]) for k in cpu}
            f = child_cpu(p.pid)
            if f:
                ffmpeg = max(ffmpeg, f)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rest = p.stderr.read()
    p.wait()
    sampler.join()
    stop.set()
    for t in readers:
        t.join()
    lines.append(rest)
    text = "".join(lines)
    final = [l for l in text.splitlines() if "final:" in l]
    if p.returncode != 0 or not final:
        sys.exit(f"perceptd failed ({p.returncode}):\n{text[-3000:]}")
    final = final[-1]
    m = re.search(r"e2e p50 ([\d.]+) (\S+) p99 ([\d.]+) (\S+)", final)
    p50 = float(m.group(1)) * UNITS[m.group(2)]
    p99 = float(m.group(3)) * UNITS[m.group(4)]
    dropped = int(re.search(r"dropped (\d+)", final).group(1))
    shown = [int(x) for x in re.findall(r"output (?:annotate|http):\S+ published (\d+)", final)]
    return {
        "p50": p50,
        "p99": p99,
        "dropped": dropped,
        "shown": shown,
        "cpu": cpu,
        "ffmpeg": ffmpeg,
        "mjpeg_frames": got,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fps", type=float, default=30.0)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    modes = ("none", "http", "all")
    res = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for viewers in modes:
                x = run(a.frames, a.fps, viewers, tmp)
                res[viewers].append(x)
                print(
                    f"round {r + 1} {viewers:4}: e2e p50 {x['p50']:.1f} ms "
                    f"p99 {x['p99']:.1f} ms, pipeline drops {x['dropped']}"
                    + (
                        f", frames shown per viewer output {x['shown']}, MJPEG frames read "
                        f"{x['mjpeg_frames']}"
                        if viewers != "none"
                        else ""
                    ),
                    flush=True,
                )

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    p = {m: (med([x["p50"] for x in res[m]]), med([x["p99"] for x in res[m]])) for m in modes}
    (n50, n99), (h50, h99), (v50, v99) = p["none"], p["http"], p["all"]
    print(f"\n{a.frames} frames at {a.fps} fps, {a.rounds} rounds, median of rounds")
    print("| e2e | no viewers | live view + 2 MJPEG readers | ratio | + annotated MP4 | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| p50 | {n50:.1f} ms | {h50:.1f} ms | {h50 / n50:.2f} | {v50:.1f} ms | {v50 / n50:.2f} |")
    print(f"| p99 | {n99:.1f} ms | {h99:.1f} ms | {h99 / n99:.2f} | {v99:.1f} ms | {v99 / n99:.2f} |")
    shown = sum(sum(x["shown"]) for x in res["all"])
    viewer = sum(x["cpu"]["viewer"] for x in res["all"])
    http = sum(x["cpu"]["http"] for x in res["all"])
    ffm = sum(x["ffmpeg"] for x in res["all"])
    ann = sum(x["shown"][0] for x in res["all"] if x["shown"])
    if shown:
        print(
            f"viewer threads: {viewer * 1e3 / shown:.2f} ms CPU per frame shown "
            f"(draw + Y4M/pipe write or JPEG encode); http threads "
            f"{http * 1e3 / shown:.2f} ms; ffmpeg (separate process) "
            f"{ffm * 1e3 / max(ann, 1):.2f} ms per frame encoded"
        )


if __name__ == "__main__":
    main()
