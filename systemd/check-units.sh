#!/usr/bin/env bash
# Checks both units the way the README promises: `systemd-analyze verify`
# (in a temporary root holding the installed binary path and the system's
# own units, so nothing on this machine changes) and the offline security
# exposure score (goal <= 2.0). Needs a built target/release/perceptd.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/perceptd
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D "$bin" "$root/usr/local/bin/perceptd"
mkdir -p "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
install -D -m644 systemd/perceptd.service "$root/etc/systemd/system/perceptd.service"
install -D -m644 systemd/perceptd@.service "$root/etc/systemd/system/perceptd@.service"
for unit in perceptd.service perceptd@front.service; do
    echo "== systemd-analyze verify $unit"
    systemd-analyze verify --root="$root" "$unit"
    echo "clean"
    echo "== systemd-analyze security --offline=yes $unit"
    systemd-analyze security --offline=yes --root="$root" "$unit" | grep -E '^(✗|→)'
done
