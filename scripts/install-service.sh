#!/usr/bin/env bash
# Installs perceptd as a systemd service (run as root, from the repository):
#   binary   -> /usr/local/bin/perceptd
#   model, labels, calibration -> /usr/local/share/perceptd/
#   units    -> /etc/systemd/system/perceptd.service, perceptd@.service
#   config   -> /etc/perceptd/default.toml (kept if it exists)
#   user     -> perceptd (system user, member of video)
# then `systemctl daemon-reload`. Start with `systemctl enable --now perceptd`
# (or perceptd@front with /etc/perceptd/front.toml). PREFIX and DESTDIR
# (a staging root; no user, no reload) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bin=target/release/perceptd
if [ ! -x "$bin" ]; then
    cargo build --release --locked
fi
share="$DESTDIR$PREFIX/share/perceptd"
install -D -m755 "$bin" "$DESTDIR$PREFIX/bin/perceptd"
install -D -m644 models/perceptd-synth.onnx "$share/models/perceptd-synth.onnx"
[ -f models/perceptd-synth.labels ] && install -D -m644 models/perceptd-synth.labels "$share/models/perceptd-synth.labels"
install -D -m644 calibration/front_camera.yaml "$share/calibration/front_camera.yaml"
install -D -m644 README.md "$DESTDIR$PREFIX/share/doc/perceptd/README.md"
install -d -m755 "$DESTDIR/etc/systemd/system"
for u in perceptd.service perceptd@.service; do
    sed "s|/usr/local/|$PREFIX/|g" "systemd/$u" > "$DESTDIR/etc/systemd/system/$u"
    chmod 644 "$DESTDIR/etc/systemd/system/$u"
done
cfg="$DESTDIR/etc/perceptd/default.toml"
if [ -e "$cfg" ]; then
    echo "keeping existing $cfg"
else
    install -d -m755 "$DESTDIR/etc/perceptd"
    sed -e "s|@SHARE@|$PREFIX/share/perceptd|g" systemd/default.toml > "$cfg"
    chmod 644 "$cfg"
fi
if [ -z "$DESTDIR" ]; then
    if ! id perceptd >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /var/lib/perceptd \
            --shell /usr/sbin/nologin --user-group --groups video perceptd
    fi
    systemctl daemon-reload
fi
echo "installed; start with: systemctl enable --now perceptd"
