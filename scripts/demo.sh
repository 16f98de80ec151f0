#!/usr/bin/env bash
# The demo: installs the build prerequisites (nothing else), builds perceptd,
# and runs the synthetic front camera with the built-in model and calibration
# twice:
#   1. live: the camera at its 30 fps, latest frame wins (frames that arrive
#      while inference is busy are superseded, counted as dropped). Its e2e
#      latency (capture -> detections published) is what a vehicle sees.
#   2. lockstep: frames as fast as the pipeline takes them, nothing dropped.
#      Its frame rate is the pipeline's throughput; its latency is mostly
#      waiting in a full ring, so it is not quoted as latency.
# Detections are JSON lines on stdout (the first few of the live run are
# shown); each run's summary line is on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
bin=./target/release/perceptd
frames=300
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One field of a `[perceptd] final: ...` line, e.g. `infer p50` -> "25.1 ms".
field() { echo "$1" | grep -o "$2 [0-9.]* ms" | head -n1 | sed "s/^$2 //"; }

echo "--- live: synthetic camera at 30 fps, latest frame wins ($frames frames, ~$((frames / 30)) s) ---"
"$bin" run --pace realtime --frames "$frames" >"$tmp/live.jsonl" 2>"$tmp/live.log"
live=$(grep '^\[perceptd\] final:' "$tmp/live.log")
dropped=$(echo "$live" | grep -o 'dropped [0-9]* ([^)]*)' | head -n1)
e2e=$(echo "$live" | grep -o "e2e p50 [0-9.]* ms p99 [0-9.]* ms" | sed "s/^e2e //")
echo "live e2e latency (capture -> detections out): $e2e"
echo "  inference p50 $(field "$live" 'infer p50'), waiting for inference p50 $(field "$live" 'queue p50'); $dropped (live: a frame that finds no free ring slot, or is superseded by a newer one, is dropped rather than queued)"

echo "--- lockstep: every frame, as fast as the pipeline goes ($frames frames) ---"
"$bin" run --pace fast --frames "$frames" >/dev/null 2>"$tmp/fast.log"
fps=$(grep '^\[perceptd\] final:' "$tmp/fast.log" | grep -o '([0-9.]* fps)' | head -n1 | tr -d '()')
echo "lockstep throughput: $fps, nothing dropped (the ring is kept full, so this run's latency is queueing, not what a camera sees)"

echo "--- first 3 of $(wc -l <"$tmp/live.jsonl") JSON lines of the live run (one per processed frame) ---"
head -n 3 "$tmp/live.jsonl"
echo "--- summary lines (stderr) ---"
grep '^\[perceptd\] final:' "$tmp/live.log" | sed 's/^/live:     /'
grep '^\[perceptd\] final:' "$tmp/fast.log" | sed 's/^/lockstep: /'
