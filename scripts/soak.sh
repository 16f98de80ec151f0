#!/usr/bin/env bash
# Soak (not in CI): FRAMES synthetic frames (default 10^6) lockstep through
# the real pipeline with a counting allocator; prints RSS over time and the
# allocation count after warm-up, and fails if either grows.
#   scripts/soak.sh            # 10^6 frames (hours on a small machine)
#   scripts/soak.sh 100000     # a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-1000000}
cargo run --release --locked --example soak -- "$FRAMES"
