#!/usr/bin/env python3
"""What watching costs the frame path: end-to-end latency p50/p99 of the
same live run with no viewers vs with viewers, side by side in one script,
plus the viewer threads' CPU per frame.

    cargo build --release
    python3 benches/viewer_latency.py [--frames 450] [--rounds 2] [--fps 30]
        [--modes none,full]

Python standard library, plus for `full`: chromium on PATH and the
`websockets` package in target/pydeps (scripts/setup.sh --tests); ffmpeg on
PATH for `all`.

Modes (issue 17's evidence is `none` vs `full`, the default):
* none: JSON lines only;
* full: the live view with 2 headless Chromium browsers on its page
  (real browsers: the page's MJPEG stream and its /stats polling), the
  Foxglove WebSocket server with one client subscribed to every channel
  (scripts/foxglove_client.py, its own process) and an MCAP recording;
* http: the live view with two raw MJPEG readers;
* all: http plus an annotated MP4.

Both runs: `perceptd run` on the synthetic camera at --fps in realtime
(live: latest frame wins, so latency is meaningful), the built-in model and
calibration, JSON lines to a file, the same number of frames. Runs
alternate (none, full, none, ...) so drift on a shared machine hits all
alike. e2e p50/p99 are computed from every frame's `latency_ms.e2e` in
the JSON lines, twice: over the whole run, and "steady", leaving out the
first --warmup-s seconds of every run in every mode alike (the browsers
and the Foxglove client start when perceptd says where to connect, and on
the machine under test their start-up takes the CPUs for a second or two:
a cost of starting Chromium beside the pipeline, not of watching); the viewer
threads' CPU (the `viewer` threads, the `http-*` and `fox-*` threads, from
/proc/PID/task/*/stat, sampled until just before the run ends) is divided
by the frames they showed. ffmpeg's own CPU (a separate process, the
encoder of `all`) is reported apart.

The viewer processes (the two Chromium browsers and the Foxglove client;
the raw MJPEG readers of `http` and `all` are threads of this script and
are not niced) run at nice 19:
they stand in for viewers on another machine, and on the machine under
test they would otherwise compete with the pipeline for the same cores
(on a 2-core machine two browsers decoding MJPEG take most of one core).
perceptd itself is not niced; its viewer-side threads lower themselves
(see README, "Viewer latency"). The load average at the start and end of
the measurement is printed: compare only runs made under similar load.
"""
import argparse
import json
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


def pct(v, q):
    """The q-quantile of v, nearest rank."""
    v = sorted(v)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def config(fps, viewers, tmp):
    text = (
        '[source]\nkind = "synthetic"\npace = "realtime"\n'
        f"fps = {fps}\n"
        '[calibration]\npath = "builtin:front_camera"\n'
        '[metrics]\ninterval_s = 0\n'
        f'[[output]]\nkind = "json"\ntarget = "{tmp}/lines.jsonl"\n'
    )
    if viewers == "all":
        text += (
            f'[[output]]\nkind = "annotate"\npath = "{tmp}/run.mp4"\nfps = {max(1, round(fps))}\n'
        )
    if viewers in ("http", "all", "full"):
        text += '[[output]]\nkind = "http"\nlisten = "127.0.0.1:0"\n'
    if viewers == "full":
        text += (
            f'[[output]]\nkind = "mcap"\npath = "{tmp}/run.mcap"\n'
            '[[output]]\nkind = "foxglove"\nlisten = "127.0.0.1:0"\n'
        )
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
    """CPU seconds per thread name class: viewer threads, http threads,
    Foxglove server threads."""
    out = {"viewer": 0.0, "http": 0.0, "fox": 0.0}
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
        elif name.startswith("fox-"):
            out["fox"] += cpu
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


def browser(port, tmp, i):
    """A headless Chromium on the live page, in its own process group."""
    return subprocess.Popen(
        [
            "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
            "--window-size=1040,600", f"--user-data-dir={tmp}/chromium-{i}",
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: os.nice(19),
    )


def fox_client(port):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "target", "pydeps"))
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "foxglove_client.py"),
         f"ws://127.0.0.1:{port}", "3600", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=lambda: os.nice(19),
    )


def run(frames, fps, viewers, tmp):
    cfg = config(fps, viewers, tmp)
    # The JSON output appends: each run starts from an empty file.
    if os.path.exists(os.path.join(tmp, "lines.jsonl")):
        os.remove(os.path.join(tmp, "lines.jsonl"))
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
    cpu = {"viewer": 0.0, "http": 0.0, "fox": 0.0}
    ffmpeg = 0.0
    browsers = []
    fox = None
    for line in p.stderr:
        lines.append(line)
        m = re.search(r"live view on http://127\.0\.0\.1:(\d+)/", line)
        if m and viewers == "full":
            browsers = [browser(int(m.group(1)), tmp, i) for i in range(2)]
        elif m:
            port = int(m.group(1))
            for _ in range(2):
                t = threading.Thread(target=reader, args=(port, stop, got))
                t.start()
                readers.append(t)
        m = re.search(r"WebSocket server on ws://127\.0\.0\.1:(\d+)", line)
        if m:
            fox = fox_client(int(m.group(1)))
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
    for b in browsers:
        os.killpg(b.pid, 15)
        b.wait()
    fox_images = None
    if fox is not None:
        out, _ = fox.communicate(timeout=30)
        try:
            fox_images = json.loads(out)["counts"].get("/camera/image", 0)
        except (ValueError, KeyError):
            fox_images = f"client failed ({fox.returncode})"
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
    shown = [
        int(x)
        for x in re.findall(r"output (?:annotate|http|mcap|foxglove):\S+ published (\d+)", final)
    ]
    with open(os.path.join(tmp, "lines.jsonl")) as f:
        e2e = [(d["seq"], d["latency_ms"]["e2e"]) for d in map(json.loads, f)]
    return {
        "p50": p50,
        "p99": p99,
        "e2e": e2e,
        "dropped": dropped,
        "shown": shown,
        "cpu": cpu,
        "ffmpeg": ffmpeg,
        "mjpeg_frames": got,
        "fox_images": fox_images,
        "processed": int(re.search(r"final: frames (\d+)", final).group(1)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--modes", default="none,full", help="comma list of none, full, http, all")
    ap.add_argument(
        "--warmup-s",
        type=float,
        default=3.0,
        help="the steady-state figures leave out frames of the first this many seconds "
        "(the viewers starting up), in every mode alike",
    )
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    modes = tuple(a.modes.split(","))
    if modes[0] != "none" or any(m not in ("none", "full", "http", "all") for m in modes):
        sys.exit("--modes: none first, then any of full, http, all")
    res = {m: [] for m in modes}
    first = round(a.warmup_s * a.fps)

    def steady(x):
        return [e for seq, e in x["e2e"] if seq >= first]

    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for viewers in modes:
                x = run(a.frames, a.fps, viewers, tmp)
                res[viewers].append(x)
                print(
                    f"round {r + 1} {viewers:4}: e2e p50 {x['p50']:.1f} ms "
                    f"p99 {x['p99']:.1f} ms, frames {x['processed']}, pipeline drops {x['dropped']}"
                    + (
                        f", frames published per viewer output {x['shown']}"
                        + (f", MJPEG frames read {x['mjpeg_frames']}" if x["mjpeg_frames"] else "")
                        + (
                            f", Foxglove client images {x['fox_images']}"
                            if x["fox_images"] is not None
                            else ""
                        )
                        if viewers != "none"
                        else ""
                    ),
                    flush=True,
                )
                st = steady(x)
                print(f"        after {a.warmup_s:g} s: e2e p50 {pct(st, 0.5):.1f} ms "
                      f"p99 {pct(st, 0.99):.1f} ms max {max(st):.1f} ms ({len(st)} frames)",
                      flush=True)

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    def figures(frames_of):
        return {
            m: (
                med([pct(frames_of(x), 0.5) for x in res[m]]),
                med([pct(frames_of(x), 0.99) for x in res[m]]),
            )
            for m in modes
        }

    whole = figures(lambda x: [e for _, e in x["e2e"]])
    after = figures(steady)
    names = {
        "full": "2 Chromium + Foxglove client + MCAP",
        "http": "live view + 2 MJPEG readers",
        "all": "+ annotated MP4",
    }
    print(f"load average at end: {os.getloadavg()}")
    print(
        f"\n{a.frames} frames at {a.fps} fps, {a.rounds} rounds (interleaved), median of rounds; "
        f"e2e per frame from the JSON lines; 'steady' leaves out the first {a.warmup_s:g} s "
        f"({first} frames) of every run, while the viewers start"
    )
    print("| e2e | no viewers | " + " | ".join(f"{names[m]} | ratio" for m in modes[1:]) + " |")
    print("| --- | --- |" + " --- | --- |" * (len(modes) - 1))
    for label, p in (("whole run", whole), ("steady", after)):
        for q, k in (("p50", 0), ("p99", 1)):
            n = p["none"][k]
            print(
                f"| {q}, {label} | {n:.1f} ms | "
                + " | ".join(f"{p[m][k]:.1f} ms | {p[m][k] / n:.2f}" for m in modes[1:])
                + " |"
            )
    for m in modes[1:]:
        # The live view, MCAP and Foxglove share one viewer thread: the
        # frames it handled are the most any of them published.
        shown = sum(max(x["shown"]) for x in res[m] if x["shown"])
        if not shown:
            continue
        viewer = sum(x["cpu"]["viewer"] for x in res[m])
        http = sum(x["cpu"]["http"] for x in res[m])
        fox = sum(x["cpu"]["fox"] for x in res[m])
        frames = sum(x["processed"] for x in res[m])
        line = (
            f"{m}: viewer threads {viewer * 1e3 / shown:.2f} ms CPU per frame they handled "
            f"({viewer * 1e3 / frames:.2f} ms per pipeline frame, all viewer outputs together); "
            f"http threads {http * 1e3 / frames:.2f} ms, Foxglove server threads "
            f"{fox * 1e3 / frames:.2f} ms per pipeline frame"
        )
        if m == "all":
            ffm = sum(x["ffmpeg"] for x in res[m])
            ann = sum(x["shown"][0] for x in res[m] if x["shown"])
            line += f"; ffmpeg (separate process) {ffm * 1e3 / max(ann, 1):.2f} ms per frame encoded"
        print(line)


if __name__ == "__main__":
    main()
