#!/usr/bin/env python3
"""Generate the YOLOX fixtures: a small YOLOX, exported both ways.

YOLOX (Megvii-BaseDetection/YOLOX) is not pip-installable without building
its C++ extensions, so the network is re-implemented here, module for
module, after yolox/models/{network_blocks,darknet,yolo_pafpn,yolo_head}.py:
BaseConv (Conv + BN + SiLU), DWConv, Bottleneck, CSPLayer, SPPBottleneck,
Focus stem, CSPDarknet, YOLOPAFPN and the decoupled YOLOXHead with its
eval-mode forward (`cat([reg, obj.sigmoid(), cls.sigmoid()])`, flattened
and permuted to [1, N, 5 + C]) and `decode_outputs` (grid offset * stride,
exp * stride). Sizes are YOLOX-nano's (depthwise convs, depth 0.33) at a
reduced width (0.125 instead of 0.25), 3 classes.

It is exported the way YOLOX's tools/export_onnx.py does it: the module in
eval mode, nn.SiLU replaced by x * sigmoid(x), the TorchScript exporter
(`dynamo=False`), opset 11, input "images", output "output", static shape,
and `head.decode_in_inference` set per variant:

    yolox-w0125-raw      decode_in_inference=False (export_onnx.py's default,
                         what Autoware's tensorrt_yolox requires): per anchor
                         tx, ty, tw, th, obj, cls...
    yolox-w0125-decoded  decode_in_inference=True: cx, cy, w, h in input
                         pixels, obj, cls...

In both, obj and cls are already sigmoid probabilities (the head applies
the sigmoid in eval mode whatever decode_in_inference says).

Weights: torch-seeded default init; BN affine randomised and its running
statistics re-estimated on synthetic images (as scripts/gen_exports.py does),
YOLOX's `initialize_biases(1e-2)`, then the objectness and class biases
spread so that scores cover (0, 1) instead of all sitting near 0.01.

Each folder gets model.onnx, labels.txt, test_data_set_0/input_0.pb (NCHW
float32, 1x3x96x128: non-square, so rows and columns of the grid differ),
output_0.pb (onnxruntime, CPU) and detections.pb: the reference
post-processing, YOLOX's yolox/utils/boxes.py `postprocess` in numpy
(decode_outputs first for the raw variant; class = argmax of the class
probabilities, score = obj * that probability, `score >= conf`, class-aware
greedy NMS with IoU > threshold, descending score, ties by lower anchor
index), as [K, 6] rows x1, y1, x2, y2, score, class at CONF / IOU below.
The script checks that the two exports agree (numpy decode of the raw
output equals the decoded output) and that no candidate score lies within
MARGIN of the threshold (so `>=` here and perceptd's `>` keep the same boxes).

Usage (the venv of scripts/requirements-fixtures.txt):
    .venv/bin/python scripts/gen_yolox.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_exports import synthetic_images, tensor_pb  # noqa: E402  (one generator for all fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "exports")
SEED = 20240607
NAMES = ["vehicle", "pedestrian", "cyclist"]
DEPTH, WIDTH, DEPTHWISE = 0.33, 0.125, True
SHAPE = (1, 3, 96, 128)
STRIDES = (8, 16, 32)
OPSET = 11
CONF, IOU = 0.25, 0.45
MARGIN = 1e-4


# --- yolox/models/network_blocks.py ---------------------------------------


class SiLU(nn.Module):
    """export-friendly SiLU (YOLOX's network_blocks.SiLU)."""

    @staticmethod
    def forward(x):
        return x * torch.sigmoid(x)


class BaseConv(nn.Module):
    """Conv2d -> BatchNorm -> SiLU, 'same' padding."""

    def __init__(self, cin, cout, ksize, stride, groups=1, bias=False):
        super().__init__()
        pad = (ksize - 1) // 2
        self.conv = nn.Conv2d(cin, cout, ksize, stride, pad, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise conv + pointwise conv."""

    def __init__(self, cin, cout, ksize, stride=1):
        super().__init__()
        self.dconv = BaseConv(cin, cin, ksize, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1, 1)

    def forward(self, x):
        return self.pconv(self.dconv(x))


def Conv(depthwise):
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, shortcut=True, expansion=0.5, depthwise=False):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = Conv(depthwise)(hidden, cout, 3, 1)
        self.use_add = shortcut and cin == cout

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class SPPBottleneck(nn.Module):
    def __init__(self, cin, cout, kernel_sizes=(5, 9, 13)):
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes])
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), cout, 1, 1)

    def forward(self, x):
        x = self.conv1(x)
        x = torch.cat([x] + [m(x) for m in self.m], dim=1)
        return self.conv2(x)


class CSPLayer(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=True, expansion=0.5, depthwise=False):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(cin, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1)
        self.m = nn.Sequential(
            *[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)]
        )

    def forward(self, x):
        x1 = self.m(self.conv1(x))
        x2 = self.conv2(x)
        return self.conv3(torch.cat((x1, x2), dim=1))


class Focus(nn.Module):
    """Space-to-depth (strided slices), then a conv."""

    def __init__(self, cin, cout, ksize=1, stride=1):
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, ksize, stride)

    def forward(self, x):
        tl = x[..., ::2, ::2]
        tr = x[..., ::2, 1::2]
        bl = x[..., 1::2, ::2]
        br = x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), dim=1))


# --- yolox/models/darknet.py, yolo_pafpn.py --------------------------------


class CSPDarknet(nn.Module):
    def __init__(self, dep_mul, wid_mul, depthwise=False):
        super().__init__()
        C = Conv(depthwise)
        bc = int(wid_mul * 64)
        bd = max(round(dep_mul * 3), 1)
        self.stem = Focus(3, bc, ksize=3)
        self.dark2 = nn.Sequential(C(bc, bc * 2, 3, 2), CSPLayer(bc * 2, bc * 2, bd, depthwise=depthwise))
        self.dark3 = nn.Sequential(C(bc * 2, bc * 4, 3, 2), CSPLayer(bc * 4, bc * 4, bd * 3, depthwise=depthwise))
        self.dark4 = nn.Sequential(C(bc * 4, bc * 8, 3, 2), CSPLayer(bc * 8, bc * 8, bd * 3, depthwise=depthwise))
        self.dark5 = nn.Sequential(
            C(bc * 8, bc * 16, 3, 2),
            SPPBottleneck(bc * 16, bc * 16),
            CSPLayer(bc * 16, bc * 16, bd, shortcut=False, depthwise=depthwise),
        )

    def forward(self, x):
        x = self.dark2(self.stem(x))
        d3 = self.dark3(x)
        d4 = self.dark4(d3)
        d5 = self.dark5(d4)
        return d3, d4, d5


class YOLOPAFPN(nn.Module):
    def __init__(self, depth, width, in_channels=(256, 512, 1024), depthwise=False):
        super().__init__()
        C = Conv(depthwise)
        c0, c1, c2 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width, depthwise)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise=depthwise)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise=depthwise)
        self.bu_conv2 = C(c0, c0, 3, 2)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise=depthwise)
        self.bu_conv1 = C(c1, c1, 3, 2)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise=depthwise)

    def forward(self, x):
        x2, x1, x0 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


# --- yolox/models/yolo_head.py (inference path) ----------------------------


class YOLOXHead(nn.Module):
    def __init__(self, num_classes, width, strides=STRIDES, in_channels=(256, 512, 1024), depthwise=False):
        super().__init__()
        C = Conv(depthwise)
        hid = int(256 * width)
        self.num_classes = num_classes
        self.decode_in_inference = True
        self.strides = strides
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for c in in_channels:
            self.stems.append(BaseConv(int(c * width), hid, 1, 1))
            self.cls_convs.append(nn.Sequential(C(hid, hid, 3, 1), C(hid, hid, 3, 1)))
            self.reg_convs.append(nn.Sequential(C(hid, hid, 3, 1), C(hid, hid, 3, 1)))
            self.cls_preds.append(nn.Conv2d(hid, num_classes, 1, 1, 0))
            self.reg_preds.append(nn.Conv2d(hid, 4, 1, 1, 0))
            self.obj_preds.append(nn.Conv2d(hid, 1, 1, 1, 0))

    def initialize_biases(self, prior_prob):
        import math

        for conv in list(self.cls_preds) + list(self.obj_preds):
            conv.bias.data.fill_(-math.log((1 - prior_prob) / prior_prob))

    def forward(self, xin):
        outputs = []
        for k, x in enumerate(xin):
            x = self.stems[k](x)
            cls_output = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            reg_output = self.reg_preds[k](reg_feat)
            obj_output = self.obj_preds[k](reg_feat)
            outputs.append(torch.cat([reg_output, obj_output.sigmoid(), cls_output.sigmoid()], 1))
        self.hw = [x.shape[-2:] for x in outputs]
        outputs = torch.cat([x.flatten(start_dim=2) for x in outputs], dim=2).permute(0, 2, 1)
        if self.decode_in_inference:
            return self.decode_outputs(outputs, dtype=xin[0].type())
        return outputs

    def decode_outputs(self, outputs, dtype):
        grids, strides = [], []
        for (hsize, wsize), stride in zip(self.hw, self.strides):
            yv, xv = torch.meshgrid([torch.arange(hsize), torch.arange(wsize)], indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, -1, 2)
            grids.append(grid)
            strides.append(torch.full((*grid.shape[:2], 1), stride))
        grids = torch.cat(grids, dim=1).type(dtype)
        strides = torch.cat(strides, dim=1).type(dtype)
        return torch.cat(
            [
                (outputs[..., 0:2] + grids) * strides,
                torch.exp(outputs[..., 2:4]) * strides,
                outputs[..., 4:],
            ],
            dim=-1,
        )


class YOLOX(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.backbone = YOLOPAFPN(DEPTH, WIDTH, depthwise=DEPTHWISE)
        self.head = YOLOXHead(num_classes, WIDTH, depthwise=DEPTHWISE)

    def forward(self, x):
        return self.head(self.backbone(x))


def replace_silu(module):
    """tools/export_onnx.py: replace_module(model, nn.SiLU, SiLU)."""
    for name, child in module.named_children():
        if isinstance(child, nn.SiLU):
            setattr(module, name, SiLU())
        else:
            replace_silu(child)


def build() -> YOLOX:
    torch.manual_seed(SEED)
    model = YOLOX(len(NAMES))
    for m in model.modules():  # yolox/exp/yolox_base.py get_model: init_yolo
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    model.head.initialize_biases(1e-2)
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.reset_running_stats()
                m.momentum = None
        model.train()
        for i in range(4):
            model(torch.from_numpy(synthetic_images((4, 3, 96, 128), SEED + 100 + i)))
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.03
        # Spread objectness and class logits (a trained model's scores cover
        # (0, 1); the prior 0.01 everywhere would leave nothing to detect),
        # and keep box logits moderate (boxes of a few strides).
        for conv in model.head.obj_preds:
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 1.0 - 0.6)
        for conv in model.head.cls_preds:
            conv.weight.mul_(2.0)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1 - 0.5)
        for conv in model.head.reg_preds:
            conv.weight.mul_(0.5)
            conv.bias.copy_(torch.tensor([0.0, 0.0, 1.3, 1.3]) + torch.randn(4, generator=g) * 0.2)
    replace_silu(model)
    return model


# --- reference post-processing (numpy) -------------------------------------


def np_decode(raw: np.ndarray, h: int, w: int) -> np.ndarray:
    """YOLOXHead.decode_outputs on a [1, N, 5 + C] raw output, in float32."""
    grids, strides = [], []
    for s in STRIDES:
        yv, xv = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    grid = np.concatenate(grids).astype(np.float32)[None]
    stride = np.concatenate(strides).astype(np.float32)[None]
    out = raw.copy()
    out[..., 0:2] = (raw[..., 0:2] + grid) * stride
    out[..., 2:4] = np.exp(raw[..., 2:4]) * stride
    return out


def np_postprocess(pred: np.ndarray, conf: float, iou: float) -> tuple[np.ndarray, float]:
    """yolox/utils/boxes.py postprocess (class-aware) for one image; returns
    [K, 6] rows (x1, y1, x2, y2, score, class) and the smallest distance of a
    candidate score to the threshold."""
    p = pred[0]
    box = np.empty((p.shape[0], 4), np.float32)
    box[:, 0] = p[:, 0] - p[:, 2] / 2
    box[:, 1] = p[:, 1] - p[:, 3] / 2
    box[:, 2] = p[:, 0] + p[:, 2] / 2
    box[:, 3] = p[:, 1] + p[:, 3] / 2
    cls = p[:, 5:]
    class_pred = np.argmax(cls, axis=1)  # first of equal maxima, as torch.max
    class_conf = cls[np.arange(len(cls)), class_pred]
    score = (p[:, 4] * class_conf).astype(np.float32)
    margin = float(np.min(np.abs(score - np.float32(conf))))
    keep = np.nonzero(score >= np.float32(conf))[0]
    order = keep[np.argsort(-score[keep], kind="stable")]
    picked = []
    for i in order:
        ok = True
        for j in picked:
            if class_pred[j] != class_pred[i]:
                continue
            a, b = box[i], box[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > iou:
                ok = False
                break
        if ok:
            picked.append(i)
    rows = [[*box[i], score[i], float(class_pred[i])] for i in picked]
    return np.array(rows, np.float32).reshape(-1, 6), margin


def export(model: YOLOX, decoded: bool, path: str) -> bytes:
    model.head.decode_in_inference = decoded
    x = torch.zeros(SHAPE)
    torch.onnx.export(
        model,
        x,
        path,
        input_names=["images"],
        output_names=["output"],
        opset_version=OPSET,
        dynamo=False,
    )
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def main() -> int:
    import tempfile

    model = build()
    x = synthetic_images(SHAPE, SEED)
    with torch.no_grad():
        model.head.decode_in_inference = False
        torch_raw = model(torch.from_numpy(x)).numpy()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for name, decoded in [("yolox-w0125-raw", False), ("yolox-w0125-decoded", True)]:
            model_bytes = export(model, decoded, os.path.join(work, name + ".onnx"))
            sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
            (y,) = sess.run(["output"], {"images": x})
            results[name] = (model_bytes, y)

    raw = results["yolox-w0125-raw"][1]
    dec = results["yolox-w0125-decoded"][1]
    h, w = SHAPE[2], SHAPE[3]
    n = sum((h // s) * (w // s) for s in STRIDES)
    assert raw.shape == dec.shape == (1, n, 5 + len(NAMES)), (raw.shape, dec.shape)
    torch_err = float(np.max(np.abs(torch_raw - raw)))
    via_np = np_decode(raw, h, w)
    cross = float(np.max(np.abs(via_np - dec)) / np.max(np.abs(dec)))
    assert cross < 1e-5, f"numpy decode of the raw export vs the decoded export: {cross}"
    dets, margin = np_postprocess(via_np, CONF, IOU)
    dets_dec, _ = np_postprocess(dec, CONF, IOU)
    assert len(dets) == len(dets_dec) and np.allclose(dets, dets_dec, rtol=1e-5, atol=1e-3)
    assert margin > MARGIN, f"a score lies {margin} from the threshold {CONF}"
    probs = raw[0, :, 4:]
    print(
        f"{n} anchors; torch vs onnxruntime (raw) max abs {torch_err:.3g}; decoded-vs-numpy decode "
        f"{cross:.3g} rel; obj {probs[:, 0].min():.3f}..{probs[:, 0].max():.3f}, "
        f"cls {probs[:, 1:].min():.3f}..{probs[:, 1:].max():.3f}; {len(dets)} detections at "
        f"conf {CONF} iou {IOU} (closest score to the threshold: {margin:.2g} away)"
    )
    for name, (model_bytes, y) in results.items():
        dst = os.path.join(OUT_DIR, name)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        os.makedirs(os.path.join(dst, "test_data_set_0"))
        with open(os.path.join(dst, "model.onnx"), "wb") as f:
            f.write(model_bytes)
        with open(os.path.join(dst, "labels.txt"), "w") as f:
            f.write("\n".join(NAMES) + "\n")
        t = os.path.join(dst, "test_data_set_0")
        with open(os.path.join(t, "input_0.pb"), "wb") as f:
            f.write(tensor_pb(x, "images"))
        with open(os.path.join(t, "output_0.pb"), "wb") as f:
            f.write(tensor_pb(y, "output"))
        with open(os.path.join(t, "detections.pb"), "wb") as f:
            f.write(tensor_pb(dets, "detections"))
        ops = sorted({nd.op_type for nd in onnx.load_from_string(model_bytes).graph.node})
        print(
            f"[{name}] {len(model_bytes)} bytes, sha256 {hashlib.sha256(model_bytes).hexdigest()}, "
            f"output {list(y.shape)}, ops {', '.join(ops)}"
        )
    print(f"versions: torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
