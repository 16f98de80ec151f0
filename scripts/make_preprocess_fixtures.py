#!/usr/bin/env python3
"""Make the fixtures for src/preprocess tests: small deterministic frames in
each pixel format and the image each detector family's own preprocessing
would feed the network (before any /255), computed with OpenCV:
Ultralytics' YOLO letterbox, Ultralytics' RT-DETR stretch, and YOLOX's
`preproc` (top-left, BGR).

Writes tests/fixtures/preprocess/<name>.in (raw frame, perceptd layout),
<name>.out (the network's image, HWC uint8 in the network's channel order)
and cases.txt ("name format width height dst_w dst_h style" per line).

    pip install numpy opencv-python-headless
    python3 scripts/make_preprocess_fixtures.py
"""
import os

import cv2
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "preprocess")


def letterbox(img, new_shape):
    """ultralytics.data.augment.LetterBox(auto=False, scaleFill=False,
    scaleup=True, center=True) on one image, as in Ultralytics 8.x."""
    shape = img.shape[:2]  # h, w
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


def stretch(img, new_shape):
    """ultralytics.data.augment.LetterBox(auto=False, scale_fill=True), as
    Ultralytics' RTDETRPredictor.pre_transform uses it: both axes resized to
    the input, no border."""
    if img.shape[:2] != tuple(new_shape):
        img = cv2.resize(img, (new_shape[1], new_shape[0]), interpolation=cv2.INTER_LINEAR)
    return img


def yolox(rgb, new_shape):
    """yolox.data.data_augment.preproc (YOLOX 0.3, legacy=False) on the BGR
    image OpenCV would have decoded: top-left, int() sizes, grey 114, BGR
    kept (the network's planes are B, G, R)."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    padded = np.ones((new_shape[0], new_shape[1], 3), dtype=np.uint8) * 114
    r = min(new_shape[0] / img.shape[0], new_shape[1] / img.shape[1])
    resized = cv2.resize(
        img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR
    ).astype(np.uint8)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return padded


STYLES = {"letterbox": letterbox, "stretch": stretch, "yolox": yolox}


def frame(fmt, w, h, rng):
    """(raw bytes in perceptd's layout, the RGB image OpenCV converts it to)."""
    if fmt == "RGB24":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        return rgb.tobytes(), rgb
    if fmt == "GREY":
        g = rng.integers(0, 256, (h, w), dtype=np.uint8)
        return g.tobytes(), cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
    if fmt in ("YUYV", "UYVY"):
        packed = rng.integers(0, 256, (h, w, 2), dtype=np.uint8)
        code = cv2.COLOR_YUV2RGB_YUYV if fmt == "YUYV" else cv2.COLOR_YUV2RGB_UYVY
        return packed.tobytes(), cv2.cvtColor(packed, code)
    if fmt in ("NV12", "I420"):
        planes = rng.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)
        code = cv2.COLOR_YUV2RGB_NV12 if fmt == "NV12" else cv2.COLOR_YUV2RGB_I420
        return planes.tobytes(), cv2.cvtColor(planes, code)
    raise ValueError(fmt)


CASES = [
    # name, format, w, h, dst_w, dst_h
    ("rgb_up", "RGB24", 37, 23, 64, 64),
    ("rgb_down", "RGB24", 50, 30, 32, 48),
    ("rgb_same", "RGB24", 64, 48, 64, 64),
    ("rgb_tall", "RGB24", 21, 33, 40, 40),
    ("rgb_down2", "RGB24", 100, 61, 48, 32),
    ("rgb_half", "RGB24", 64, 32, 32, 32),
    ("rgb_wide", "RGB24", 31, 7, 33, 35),
    ("grey_up", "GREY", 33, 17, 40, 40),
    ("yuyv_up", "YUYV", 40, 30, 64, 64),
    ("yuyv_same", "YUYV", 64, 48, 64, 64),
    ("uyvy_up", "UYVY", 40, 30, 48, 48),
    ("nv12", "NV12", 40, 30, 64, 48),
    ("i420_down", "I420", 40, 30, 32, 32),
    # Other families' preprocessing (appended: the cases above keep their
    # random frames).
    ("stretch_up", "RGB24", 37, 23, 64, 64, "stretch"),
    ("stretch_down", "YUYV", 100, 60, 48, 40, "stretch"),
    ("stretch_same", "RGB24", 64, 48, 64, 48, "stretch"),
    ("yolox_up", "RGB24", 37, 23, 64, 64, "yolox"),
    ("yolox_down", "NV12", 100, 62, 48, 48, "yolox"),
    ("yolox_tall", "YUYV", 22, 33, 40, 40, "yolox"),
    ("yolox_trunc", "RGB24", 50, 30, 33, 35, "yolox"),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    lines = []
    for name, fmt, w, h, dst_w, dst_h, *style in CASES:
        style = style[0] if style else "letterbox"
        raw, rgb = frame(fmt, w, h, rng)
        boxed = STYLES[style](rgb, (dst_h, dst_w))
        assert boxed.shape == (dst_h, dst_w, 3), (name, boxed.shape)
        with open(os.path.join(OUT, name + ".in"), "wb") as f:
            f.write(raw)
        with open(os.path.join(OUT, name + ".out"), "wb") as f:
            f.write(np.ascontiguousarray(boxed).tobytes())
        lines.append(f"{name} {fmt} {w} {h} {dst_w} {dst_h} {style}")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write(f"# made by scripts/make_preprocess_fixtures.py with OpenCV {cv2.__version__}\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
