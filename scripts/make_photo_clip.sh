#!/usr/bin/env bash
# Make the real-photo clip of issue 14's evidence (a): an H.264 MP4 panning
# over Ultralytics' two sample photos (bus.jpg, zidane.jpg), and the Y4M
# ffmpeg decodes from that MP4 (the reference it is compared with).
#
#   scripts/make_photo_clip.sh OUT_DIR
#
# The photos come from the `ultralytics` wheel on PyPI (pinned version,
# downloaded with pip, no install; its assets/ folder holds them), so the
# clip is reproducible. Needs python3 -m pip, unzip (python's zipfile is
# used) and ffmpeg. Writes OUT_DIR/{bus,zidane}.jpg, photos.mp4,
# photos.y4m. Deterministic for one ffmpeg build (libx264, -threads 1).
set -euo pipefail
out=${1:?usage: scripts/make_photo_clip.sh OUT_DIR}
ver=8.4.19
mkdir -p "$out"
if [ ! -f "$out/bus.jpg" ] || [ ! -f "$out/zidane.jpg" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "ultralytics==$ver"
    python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
whl = glob.glob(f"{tmp}/ultralytics-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for name in ("bus.jpg", "zidane.jpg"):
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(f"ultralytics/assets/{name}"))
PY
fi
# 2 s per photo at 24 fps, 640x480: a diagonal pan over the bus (scaled
# to 720x960), a horizontal pan over the football players (960x540).
ffmpeg -v error -y -threads 1 \
    -loop 1 -framerate 24 -t 2 -i "$out/bus.jpg" \
    -loop 1 -framerate 24 -t 2 -i "$out/zidane.jpg" \
    -filter_complex "[0:v]scale=720:960,crop=640:480:x='(iw-640)*t/2':y='(ih-480)*t/2',setsar=1[a];\
[1:v]scale=960:540,crop=640:480:x='(iw-640)*t/2':y='(ih-480)/2',setsar=1[b];\
[a][b]concat=n=2:v=1[v]" \
    -map "[v]" -c:v libx264 -crf 23 -pix_fmt yuv420p "$out/photos.mp4"
ffmpeg -v error -y -i "$out/photos.mp4" -f yuv4mpegpipe "$out/photos.y4m"
echo "wrote $out/photos.mp4 ($(stat -c %s "$out/photos.mp4") bytes) and $out/photos.y4m"
