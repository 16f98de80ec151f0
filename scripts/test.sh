#!/usr/bin/env bash
# The test command: installs build prerequisites, then builds and runs every
# test (unit, conformance, exports, allocation, pipeline) on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --release --locked "$@"
