#!/usr/bin/env python3
"""Images (e.g. from `perceptd synth-dataset`) to a Y4M 4:4:4 file for
`perceptd replay`. Needs numpy and Pillow.

    python3 scripts/frames_to_y4m.py OUT.y4m IMG...
"""
import sys

import numpy as np
from PIL import Image


def main():
    out, imgs = sys.argv[1], sorted(sys.argv[2:])
    first = Image.open(imgs[0])
    w, h = first.size
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C444\n".encode())
        for p in imgs:
            rgb = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            # BT.601 limited range, as cameras deliver.
            y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
            u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
            v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
            f.write(b"FRAME\n")
            for plane in (y, u, v):
                f.write(np.clip(plane + 0.5, 0, 255).astype(np.uint8).tobytes())
    print(f"wrote {len(imgs)} frames {w}x{h} to {out}")


if __name__ == "__main__":
    main()
