#!/usr/bin/env bash
# Makes tests/fixtures/jpeg/: small JPEGs of ffmpeg's deterministic
# testsrc2 pattern in every subsampling the decoder takes (odd sizes, low
# and high quality, one without DHT as many USB cameras send), and, for
# each, ffmpeg's own decode as raw planes (NAME.yuv): the reference the
# decoder in src/source/jpeg.rs is tested against (src/source/jpeg/tests.rs).
# Needs ffmpeg and python3. Run from the repository root.
set -euo pipefail
out=tests/fixtures/jpeg
mkdir -p "$out"
gen() {
    local name=$1 size=$2 pix=$3
    shift 3
    # testsrc2 rounds its size to even; the scale makes odd sizes exact.
    ffmpeg -v error -f lavfi -i "testsrc2=size=96x64:rate=1" -frames:v 1 \
        -vf "scale=${size/x/:}" -pix_fmt "$pix" "$@" -y "$out/$name.jpg"
    ffmpeg -v error -i "$out/$name.jpg" -f rawvideo -pix_fmt "$pix" -y "$out/$name.yuv"
}
gen i420 64x48 yuvj420p -q:v 2
gen i420_odd 37x23 yuvj420p -q:v 12
gen i422 64x32 yuvj422p -q:v 3
gen i422_odd 41x19 yuvj422p -q:v 30
gen i444 40x24 yuvj444p -q:v 2
# The standard tables, then the DHT segments cut out: the decoder must
# fall back to T.81 Annex K.3's tables (the "AVI1" MJPEG of USB cameras).
gen i422_nodht 48x32 yuvj422p -q:v 5 -huffman default
python3 - "$out/i422_nodht.jpg" <<'PY'
import sys
p = sys.argv[1]
d = open(p, 'rb').read()
o, i = bytearray(d[:2]), 2
while True:
    m, n = d[i + 1], (d[i + 2] << 8) | d[i + 3]
    if m != 0xC4:
        o += d[i:i + 2 + n]
    i += 2 + n
    if m == 0xDA:
        break
o += d[i:]
open(p, 'wb').write(bytes(o))
PY
