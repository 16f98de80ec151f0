#!/usr/bin/env python3
"""Reference for the decoder tests in src/postprocess/mod.rs.

Builds the same synthetic detector outputs as `synth_scene()` in the Rust
tests (integer PRNG, dyadic values, so both sides build bit-identical f32
tensors) and runs a numpy transcription of Ultralytics'
`non_max_suppression` (agnostic=False, multi_label=False, max_wh=7680,
class-offset boxes + torchvision-style greedy NMS with a stable score sort,
IoU in f32 compared against the threshold as a double) followed by
`scale_boxes` (subtract pad, divide by gain, clip to the source image).
Classic YOLOv5 follows yolov5's utils/general.py: objectness prefilter,
score = obj * cls.

Run: python3 src/postprocess/testdata/ref_nms.py  and paste the printed
arrays into the tests.
"""
import numpy as np

N, C = 400, 4
MODEL = 320
SRC_W, SRC_H = 640, 480


class XorShift32:
    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFF

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x


def synth_scene():
    """Returns (boxes [N,4] cx,cy,w,h; cls [N,C]; obj [N]) as float32."""
    r = XorShift32(0x9E3779B9)
    objs = []
    for _ in range(10):
        cls = r.next() % C
        cx = 20 + r.next() % 280
        cy = 50 + r.next() % 220
        w = 10 + r.next() % 80
        h = 10 + r.next() % 80
        objs.append((cls, cx, cy, w, h))
    boxes = np.zeros((N, 4), np.float64)
    cls = np.zeros((N, C), np.float64)
    obj = np.zeros(N, np.float64)
    for i in range(N):
        kind = r.next() % 4
        if i > 0 and r.next() % 50 == 0:
            boxes[i] = boxes[i - 1]
            cls[i] = cls[i - 1]
            obj[i] = obj[i - 1]
            continue
        if kind == 0:
            boxes[i] = [r.next() % 320, r.next() % 320, 4 + r.next() % 60, 4 + r.next() % 60]
            for k in range(C):
                cls[i, k] = (r.next() % 300) / 1024
        else:
            c, cx, cy, w, h = objs[r.next() % 10]
            jx = (r.next() % 17 - 8) / 4
            jy = (r.next() % 17 - 8) / 4
            jw = (r.next() % 17 - 8) / 2
            jh = (r.next() % 17 - 8) / 2
            boxes[i] = [cx + jx, cy + jy, w + jw, h + jh]
            for k in range(C):
                cls[i, k] = (r.next() % 200) / 1024
            cls[i, c] = 0.3 + (r.next() % 640) / 1024
            if r.next() % 8 == 0:
                other = (c + 1 + r.next() % (C - 1)) % C
                cls[i, other] = 0.3 + (r.next() % 640) / 1024
        obj[i] = 0.5 + (r.next() % 512) / 1024
    return boxes.astype(np.float32), cls.astype(np.float32), obj.astype(np.float32)


def xywh2xyxy(b):
    y = np.empty_like(b)
    dw = b[:, 2] / np.float32(2)
    dh = b[:, 3] / np.float32(2)
    y[:, 0] = b[:, 0] - dw
    y[:, 1] = b[:, 1] - dh
    y[:, 2] = b[:, 0] + dw
    y[:, 3] = b[:, 1] + dh
    return y


def torchvision_nms(boxes, scores, iou_thres):
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for _i in range(len(order)):
        i = order[_i]
        if suppressed[i]:
            continue
        keep.append(i)
        for _j in range(_i + 1, len(order)):
            j = order[_j]
            if suppressed[j]:
                continue
            xx1 = max(x1[i], x1[j])
            yy1 = max(y1[i], y1[j])
            xx2 = min(x2[i], x2[j])
            yy2 = min(y2[i], y2[j])
            w = max(np.float32(0), np.float32(xx2 - xx1))
            h = max(np.float32(0), np.float32(yy2 - yy1))
            inter = np.float32(w * h)
            ovr = np.float32(inter / np.float32(areas[i] + areas[j] - inter))
            if float(ovr) > iou_thres:
                suppressed[j] = True
    return np.array(keep, dtype=np.int64)


def nms(box_xyxy, conf, j, conf_thres, iou_thres, max_det, max_nms):
    keep = conf > np.float32(conf_thres)
    box_xyxy, conf, j = box_xyxy[keep], conf[keep], j[keep]
    if len(conf) > max_nms:
        o = np.argsort(-conf, kind="stable")[:max_nms]
        box_xyxy, conf, j = box_xyxy[o], conf[o], j[o]
    c = j.astype(np.float32) * np.float32(7680)
    i = torchvision_nms(box_xyxy + c[:, None], conf, iou_thres)[:max_det]
    return box_xyxy[i], conf[i], j[i]


def scale_boxes(b):
    gain = min(MODEL / SRC_H, MODEL / SRC_W)
    pad_x = round((MODEL - SRC_W * gain) / 2 - 0.1)
    pad_y = round((MODEL - SRC_H * gain) / 2 - 0.1)
    b = b.copy()
    b[:, [0, 2]] -= np.float32(pad_x)
    b[:, [1, 3]] -= np.float32(pad_y)
    b /= np.float32(gain)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, SRC_W)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, SRC_H)
    return b


def yolov8(boxes, cls, conf_thres, iou_thres, max_det, max_nms):
    conf = cls.max(1)
    j = cls.argmax(1)
    return nms(xywh2xyxy(boxes), conf, j, conf_thres, iou_thres, max_det, max_nms)


def yolov5(boxes, cls, obj, conf_thres, iou_thres, max_det, max_nms):
    xc = obj > np.float32(conf_thres)
    boxes, cls, obj = boxes[xc], cls[xc], obj[xc]
    scores = cls * obj[:, None]
    conf = scores.max(1)
    j = scores.argmax(1)
    return nms(xywh2xyxy(boxes), conf, j, conf_thres, iou_thres, max_det, max_nms)


def f32(v):
    """Shortest literal that reads back as the same f32."""
    return np.format_float_positional(np.float32(v), unique=True, trim="0")


def dump(name, res):
    b, s, j = res
    b = scale_boxes(b)
    print(f"// {name}: {len(s)} detections")
    print(f"const {name}: &[(u32, f32, [f32; 4])] = &[")
    for k in range(len(s)):
        bx = ", ".join(f32(v) for v in b[k])
        print(f"    ({int(j[k])}, {f32(s[k])}, [{bx}]),")
    print("];")


if __name__ == "__main__":
    boxes, cls, obj = synth_scene()
    dump("REF_V8", yolov8(boxes, cls, 0.25, 0.45, 300, 30000))
    dump("REF_V8_MAXDET5", yolov8(boxes, cls, 0.25, 0.45, 5, 30000))
    dump("REF_V8_MAXNMS20", yolov8(boxes, cls, 0.25, 0.45, 300, 20))
    dump("REF_V5", yolov5(boxes, cls, obj, 0.25, 0.45, 300, 30000))
    # Sanity: how much the scene exercises NMS.
    conf = cls.max(1)
    print(f"// candidates above 0.25: {(conf > 0.25).sum()} of {N}")
