#!/usr/bin/env bash
# The demo: installs build prerequisites, builds perceptd, and runs the main
# job on the synthetic front camera with the shipped model and the default
# calibration for 300 frames: detections as JSON lines on stdout (the first
# few are shown), a summary line on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
out=$(mktemp)
trap 'rm -f "$out"' EXIT
./target/release/perceptd run --frames 300 >"$out"
echo "--- first 3 of $(wc -l <"$out") JSON lines (one per frame) ---"
head -n 3 "$out"
