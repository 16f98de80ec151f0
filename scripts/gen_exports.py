#!/usr/bin/env python3
"""Generate real Ultralytics-exported YOLO fixtures for the engine.

For each entry of EXPORTS this builds a reduced-width detection model from the
model YAML that ships inside the `ultralytics` package (no weights are
downloaded: the network is built from the YAML dict with random weights from a
fixed torch seed), exports it with Ultralytics' own exporter
(`YOLO.export(format="onnx", ...)`), and writes

    tests/fixtures/exports/<name>/model.onnx
    tests/fixtures/exports/<name>/test_data_set_0/input_0.pb   (NCHW float32)
    tests/fixtures/exports/<name>/test_data_set_0/output_0.pb  (onnxruntime CPU)

plus tests/fixtures/exports/README.md describing them.

Weights: torch-seeded default init; then every BatchNorm gets a random affine
(gamma, beta) and its running statistics are re-estimated on synthetic images,
and the class-logit biases are spread, so activations and scores look like a
real network's (not all-equal values a broken kernel could still match). The
exporter fuses BatchNorm into the convolutions.

Offline: YOLO_OFFLINE=1, YOLO_AUTOINSTALL=False and a private YOLO_CONFIG_DIR
(settings sync off) are set before ultralytics is imported. Tested under
`unshare -n` (no network at all).

Usage (from a fresh checkout):
    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/gen_exports.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "exports")

NAMES = {0: "vehicle", 1: "pedestrian", 2: "cyclist"}
SEED = 20240607

# name, model yaml shipped with ultralytics, depth/width multiples, max_channels,
# export image size, opset, simplify, dynamic, test input shape
EXPORTS = [
    dict(
        name="yolov8-w0125-static",
        yaml="yolov8n.yaml",
        depth=0.33,
        width=0.125,
        max_channels=256,
        imgsz=96,
        opset=17,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 96, 96),
        about="YOLOv8 detect (C2f, SPPF, DFL head), static shapes, onnxslim-simplified",
    ),
    dict(
        name="yolov8-w0125-dynamic",
        yaml="yolov8n.yaml",
        depth=0.33,
        width=0.125,
        max_channels=256,
        imgsz=64,
        opset=12,
        simplify=False,
        dynamic=True,
        test_shape=(1, 3, 96, 128),
        about=(
            "YOLOv8 detect, dynamic axes images[batch,3,height,width] -> output0[batch,7,anchors], "
            "not simplified, so it keeps the exporter's Shape/Gather/Concat/... shape subgraphs; "
            "exported at 64x64, test data at 96x128"
        ),
    ),
    dict(
        name="yolo11-w0125-static",
        yaml="yolo11n.yaml",
        depth=0.5,
        width=0.125,
        max_channels=256,
        imgsz=96,
        opset=19,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 96, 96),
        about="YOLO11 detect (C3k2, SPPF, C2PSA attention, DWConv class head), static, simplified",
    ),
    dict(
        name="yolov5u-w0125-static",
        yaml="yolov5nu.yaml",
        depth=0.33,
        width=0.125,
        max_channels=256,
        imgsz=96,
        opset=13,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 96, 96),
        about="YOLOv5u detect (C3 blocks, SPPF, anchor-free DFL head), static, simplified",
    ),
    dict(
        name="yolo26-w0125-static",
        yaml="yolo26n.yaml",
        depth=0.5,
        width=0.125,
        max_channels=256,
        imgsz=160,
        opset=17,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 160, 160),
        about=(
            "YOLO26 detect, NMS-free end-to-end head (metadata end2end True): output0 [1, 300, 6] "
            "x1, y1, x2, y2, score, class from TopK / GatherElements / ReduceMax / Mod / Div / Cast; "
            "525 anchors at 160x160, so TopK keeps 300 of 525"
        ),
    ),
    dict(
        name="yolov10-w0125-static",
        yaml="yolov10n.yaml",
        depth=0.33,
        width=0.125,
        max_channels=256,
        imgsz=96,
        opset=17,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 96, 96),
        about=(
            "YOLOv10 detect (SCDown, C2fCIB, PSA), NMS-free end-to-end head: output0 [1, 189, 6] "
            "(max_det is capped at the 189 anchors of a 96x96 input, so TopK keeps all of them)"
        ),
    ),
    dict(
        name="rtdetr-tiny-static",
        family="rtdetr",
        yaml="rtdetr-l.yaml",
        depth=0.33,
        width=1.0,
        max_channels=1024,
        imgsz=160,
        opset=17,
        simplify=True,
        dynamic=False,
        test_shape=(1, 3, 160, 160),
        about=(
            "RT-DETR (HGNet backbone, AIFI encoder, RTDETRDecoder with multi-scale deformable attention "
            "through GridSample bilinear/zeros/align_corners 0), metadata head RTDETRDecoder, end2end False: "
            "output0 [1, 300, 6] normalised cx, cy, w, h, score, class (TopK over 300 queries x 3 classes). "
            "Channels cut by hand (this ultralytics does not width-scale HGStem/HGBlock): backbone "
            "8..128, neck 32, AIFI ffn 64 / 4 heads, decoder hidden 32, 4 heads, 4 points, 2 layers, ffn 64; "
            "`ultralytics_detections.txt` is Ultralytics' RTDETRPredictor.postprocess on it (see "
            "RTDETR_REF_CONF)"
        ),
    ),
]

# RT-DETR channels, by hand: [from, repeats, module, args] of rtdetr-l.yaml's
# backbone with every width cut (HGStem/HGBlock are not width-scaled).
RTDETR_BACKBONE = [
    [-1, 1, "HGStem", [8, 16]],
    [-1, 6, "HGBlock", [16, 32, 3]],
    [-1, 1, "DWConv", [32, 3, 2, 1, False]],
    [-1, 6, "HGBlock", [24, 64, 3]],
    [-1, 1, "DWConv", [64, 3, 2, 1, False]],
    [-1, 6, "HGBlock", [32, 96, 5, True, False]],
    [-1, 6, "HGBlock", [32, 96, 5, True, True]],
    [-1, 6, "HGBlock", [32, 96, 5, True, True]],
    [-1, 1, "DWConv", [96, 3, 2, 1, False]],
    [-1, 6, "HGBlock", [48, 128, 5, True, False]],
]
# Confidence threshold and max_det of the reference post-processing written
# next to the RT-DETR fixture (tests/exports.rs uses the same values).
RTDETR_REF_CONF = 0.45
RTDETR_REF_MAX_DET = 100


def setup_offline(cfg_dir: str) -> None:
    os.environ["YOLO_OFFLINE"] = "1"  # ultralytics.utils.is_online() -> False
    os.environ["YOLO_AUTOINSTALL"] = "False"  # never pip-install missing requirements
    os.environ["YOLO_CONFIG_DIR"] = cfg_dir  # private settings.json, not ~/.config
    os.environ["YOLO_VERBOSE"] = "True"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU export, same on every machine


def synthetic_images(shape, seed: int):
    """Smooth pattern (gradients, sinusoids, box-like blobs) + noise, in [0, 1], NCHW float32."""
    import numpy as np

    rng = np.random.RandomState(seed)
    n, c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    out = np.empty(shape, dtype=np.float64)
    for b in range(n):
        base = np.zeros((h, w))
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            base += 0.15 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
        for ch in range(c):
            img = 0.45 + 0.1 * (ch - 1) * yy + base + rng.uniform(-0.05, 0.05)
            out[b, ch] = img
        # a few rectangles with soft edges ("objects")
        for _ in range(rng.randint(2, 5)):
            cx, cy = rng.uniform(0.1, 0.9, size=2)
            bw, bh = rng.uniform(0.08, 0.35, size=2)
            mask = 1.0 / (1.0 + np.exp(-40 * (bw / 2 - np.abs(xx - cx))))
            mask *= 1.0 / (1.0 + np.exp(-40 * (bh / 2 - np.abs(yy - cy))))
            color = rng.uniform(0.0, 1.0, size=c)
            for ch in range(c):
                out[b, ch] = out[b, ch] * (1 - mask) + color[ch] * mask
    out += rng.normal(0.0, 0.03, size=shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def build_model(spec, work: str):
    """YOLO object for a scaled-down YAML, with deterministic random weights."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load
    from ultralytics.utils import YAML

    cfg = yaml_model_load(spec["yaml"])  # the YAML packaged with ultralytics
    cfg = copy.deepcopy(cfg)
    cfg.pop("yaml_file", None)
    cfg.pop("scale", None)
    # one custom scale [depth_multiple, width_multiple, max_channels], used as "n"
    cfg["scales"] = {"n": [spec["depth"], spec["width"], spec["max_channels"]]}
    cfg["nc"] = len(NAMES)
    # the file name's scale letter ("yolov8n_...", "yolov5nu_...") selects that scale
    stem = os.path.splitext(spec["yaml"])[0]
    yaml_path = os.path.join(work, stem + "_" + spec["name"].split("-", 1)[1].replace("-", "_") + ".yaml")
    YAML.save(yaml_path, cfg)

    torch.manual_seed(SEED)
    model = YOLO(yaml_path, task="detect")
    net = model.model
    net.names = dict(NAMES)

    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
        # re-estimate BN statistics on synthetic images (train-mode forward)
        net.train()
        for i in range(4):
            x = torch.from_numpy(synthetic_images((4, 3, 96, 96), SEED + 100 + i))
            net(x)
        net.eval()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.03
        # spread the class logits so scores cover (0, 1), like a trained model
        head = net.model[-1]
        for seq in head.cv3:
            last = seq[-1]
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 1.0 - 1.0)
        # End-to-end heads (YOLOv10, YOLO26) export their one-to-one branch.
        # Its logits are also scaled down: saturated scores (many within an
        # ulp of 1.0) would make TopK's row order depend on the last bit of
        # each engine's sigmoid rather than on the values and the tie rule.
        for seq in getattr(head, "one2one_cv3", None) or []:
            last = seq[-1]
            last.weight.mul_(0.1)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 1.0 - 1.0)
    return model


def build_rtdetr(spec, work: str):
    """RTDETR object for a cut-down rtdetr-l.yaml, deterministic random weights."""
    import torch
    from ultralytics import RTDETR
    from ultralytics.nn.tasks import yaml_model_load
    from ultralytics.utils import YAML

    cfg = copy.deepcopy(yaml_model_load(spec["yaml"]))
    cfg.pop("yaml_file", None)
    cfg.pop("scale", None)
    cfg["scales"] = {"l": [spec["depth"], spec["width"], spec["max_channels"]]}
    cfg["nc"] = len(NAMES)
    cfg["backbone"] = copy.deepcopy(RTDETR_BACKBONE)
    for layer in cfg["head"]:
        module, args = layer[2], layer[3]
        if module in ("Conv", "RepC3") and args and args[0] == 256:
            args[0] = 32
        elif module == "AIFI":
            layer[3] = [64, 4]  # ffn width, heads
        elif module == "RTDETRDecoder":
            # nc, hidden dim, queries, points, heads, decoder layers, ffn
            layer[3] = [len(NAMES), 32, 300, 4, 4, 2, 64]
    yaml_path = os.path.join(work, "rtdetr-l_" + spec["name"].replace("-", "_") + ".yaml")
    YAML.save(yaml_path, cfg)

    torch.manual_seed(SEED)
    model = RTDETR(yaml_path)
    net = model.model
    net.names = dict(NAMES)
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=g))
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            m.reset_running_stats()
            m.momentum = None
        # BN statistics from synthetic images: only the BatchNorms train (the
        # decoder's training path wants ground truth).
        net.eval()
        for m in bns:
            m.train()
        for i in range(4):
            net(torch.from_numpy(synthetic_images((4, 3, 160, 160), SEED + 100 + i)))
        net.eval()
        for m in bns:
            m.momentum = 0.03
        # Spread the class logits (the head initialises them at p = 0.01) so
        # the scores cover (0, 1), with small weights so that scores do not
        # saturate (TopK order would then hang on the last bit).
        head = net.model[-1]
        for lin in list(head.dec_score_head) + [head.enc_score_head]:
            lin.weight.mul_(0.3)
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 1.0 - 0.5)
        # The box head's last layer starts at zero (boxes = the anchors):
        # give it weights so the boxes move off the anchor grid.
        for mlp in head.dec_bbox_head:
            last = mlp.layers[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.05)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g) * 0.3)
    return model


def rtdetr_reference(model, y, shape):
    """Ultralytics' RTDETRPredictor.postprocess on output0 `y` for an input of
    `shape` (no resize: orig image = model input), re-implemented in numpy
    and checked against the real method. Rows: class score x1 y1 x2 y2."""
    import numpy as np
    import torch
    from types import SimpleNamespace
    from ultralytics.models.rtdetr.predict import RTDETRPredictor

    conf, max_det = RTDETR_REF_CONF, RTDETR_REF_MAX_DET
    h, w = shape[2], shape[3]
    rows = y[0]
    cx, cy, bw, bh = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    keep = rows[:, 4] > np.float32(conf)
    pred = np.concatenate([xyxy, rows[:, 4:6]], axis=1)[keep][:max_det]
    pred[:, [0, 2]] *= np.float32(w)
    pred[:, [1, 3]] *= np.float32(h)

    pr = RTDETRPredictor.__new__(RTDETRPredictor)
    pr.args = SimpleNamespace(conf=conf, classes=None, max_det=max_det)
    pr.batch = [["fixture"]]
    pr.model = SimpleNamespace(names=dict(NAMES))
    res = pr.postprocess(torch.from_numpy(y.copy()), None, [np.zeros((h, w, 3), dtype=np.uint8)])
    real = res[0].boxes.data.numpy()
    assert real.shape == pred.shape and np.array_equal(real, pred), (real.shape, pred.shape)
    return [(int(r[5]), float(r[4]), *map(float, r[:4])) for r in pred]


def tensor_pb(array, name: str) -> bytes:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name).SerializeToString()


def export_one(spec, work: str) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    rtdetr = spec.get("family") == "rtdetr"
    model = build_rtdetr(spec, work) if rtdetr else build_model(spec, work)
    out = model.export(
        format="onnx",
        imgsz=spec["imgsz"],
        opset=spec["opset"],
        simplify=spec["simplify"],
        dynamic=spec["dynamic"],
        batch=1,
        nms=False,
        device="cpu",
    )
    proto = onnx.load(out)
    # The exporter stamps the export time into metadata_props["date"]; drop the
    # time of day so re-running gives identical files.
    for prop in proto.metadata_props:
        if prop.key == "date":
            prop.value = "(removed by gen_exports.py for reproducibility)"
    onnx.checker.check_model(proto)
    model_bytes = proto.SerializeToString()

    x = synthetic_images(spec["test_shape"], SEED)
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    ys = sess.run(out_names, {in_name: x})

    # sanity: onnxruntime vs the PyTorch model (eval, unfused)
    with torch.no_grad():
        ref = model.model.eval()(torch.from_numpy(x))
    ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    ref = ref.numpy()
    # (an end-to-end head's unexported model returns its one-to-many branch:
    # nothing to compare, reported as n/a)
    diff = float(np.max(np.abs(ref - ys[0]))) if ref.shape == ys[0].shape else float("nan")

    dst = os.path.join(OUT_DIR, spec["name"])
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.join(dst, "test_data_set_0"))
    with open(os.path.join(dst, "model.onnx"), "wb") as f:
        f.write(model_bytes)
    with open(os.path.join(dst, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(tensor_pb(x, in_name))
    for j, (name, y) in enumerate(zip(out_names, ys)):
        with open(os.path.join(dst, "test_data_set_0", f"output_{j}.pb"), "wb") as f:
            f.write(tensor_pb(y, name))
    if rtdetr:
        dets = rtdetr_reference(model, ys[0], spec["test_shape"])
        with open(os.path.join(dst, "test_data_set_0", "ultralytics_detections.txt"), "w", newline="\n") as f:
            f.write(
                f"# RTDETRPredictor.postprocess(conf={RTDETR_REF_CONF}, max_det={RTDETR_REF_MAX_DET}) on output_0.pb, "
                f"image = model input {spec['test_shape'][3]}x{spec['test_shape'][2]}: class score x1 y1 x2 y2\n"
            )
            for d in dets:
                f.write(f"{d[0]} {d[1]!r} {d[2]!r} {d[3]!r} {d[4]!r} {d[5]!r}\n")
        print(f"[{spec['name']}] reference post-processing: {len(dets)} detections")

    def dims(vi):
        return [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]

    ops = sorted({n.op_type for n in proto.graph.node})
    end2end = ys[0].shape[-1] == 6
    # [1, 4+C, N] class rows, or the score column of end-to-end [1, N, 6] rows
    scores = ys[0][..., 4] if end2end else ys[0][:, 4:, :]
    info = dict(
        spec=spec,
        opset=next(i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")),
        ir_version=proto.ir_version,
        model_bytes=len(model_bytes),
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        graph_in=f"{in_name} {dims(proto.graph.input[0])}",
        graph_out=", ".join(f"{o.name} {dims(o)}" for o in proto.graph.output),
        test_in=list(x.shape),
        test_out=[list(y.shape) for y in ys],
        n_nodes=len(proto.graph.node),
        ops=ops,
        params=sum(int(np.prod(t.dims)) for t in proto.graph.initializer),
        torch_vs_ort=diff,
        score_range=(float(scores.min()), float(scores.max())),
        score_mid=float(np.mean((scores > 0.01) & (scores < 0.99))),
    )
    boxes = ys[0][..., :4] if end2end else ys[0][:, :4]
    print(
        f"[{spec['name']}] opset {info['opset']}, {info['n_nodes']} nodes, {info['model_bytes']} bytes, "
        f"in {info['graph_in']} out {info['graph_out']}, test {info['test_in']} -> {info['test_out']}, "
        f"max|torch-ort| {diff:.3g}, scores {info['score_range'][0]:.3f}..{info['score_range'][1]:.3f} "
        f"({info['score_mid']:.0%} in 0.01..0.99), boxes {float(boxes.min()):.1f}..{float(boxes.max()):.1f}"
    )
    return info


def versions() -> dict:
    import importlib.metadata as md

    pkgs = ["ultralytics", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "numpy"]
    out = {}
    for p in pkgs:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "(not installed)"
    return out


README_HEAD = """# Exported YOLO fixtures

Real models exported by Ultralytics' own ONNX exporter, with random (seeded)
weights, small enough to commit. Generated by `scripts/gen_exports.py`; do not
edit by hand.

Each folder holds `model.onnx` and `test_data_set_0/input_0.pb` (NCHW float32 in
[0, 1]: smooth pattern + soft rectangles + noise, fixed seed) and
`output_N.pb` computed by onnxruntime (CPU execution provider, default session
options). All tensors are serialized TensorProto, named after the graph
input/output, as in the ONNX backend-test layout. `output0` is
`[batch, 4 + 3, anchors]`: box (cx, cy, w, h in input pixels, DFL-decoded)
then 3 class scores (sigmoid; classes 0 vehicle, 1 pedestrian, 2 cyclist,
also in the model's metadata_props `names`), except for the NMS-free
end-to-end heads (YOLO26, YOLOv10; metadata `end2end` True), whose `output0`
is `[batch, max_det, 6]`: x1, y1, x2, y2 (input pixels), score, class, in
descending score order (TopK; ties by lower index).

Models: the model YAML shipped inside the ultralytics package with `scales`
replaced by one custom scale `n: [depth_multiple, width_multiple, max_channels]`
(max_channels 256 keeps the deep layers at 32 channels; the DFL head, reg_max
16, is most of each file), `nc: 3`, built with
`torch.manual_seed({seed})`; BatchNorm affine randomised and its statistics
re-estimated on synthetic images, class-logit biases spread (so scores cover
(0, 1)); the exporter fuses BatchNorm into Conv. The only change made to the
exporter's file: metadata_props `date` is replaced by a fixed string.

Made with (`{python}`):

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/gen_exports.py

Offline: the script sets YOLO_OFFLINE=1, YOLO_AUTOINSTALL=False and a private
YOLO_CONFIG_DIR before importing ultralytics, and it has been run with no
network at all (`unshare -n`). Re-running on the same machine gives
bitwise-identical files (checked). On another CPU or with other library
versions the files may differ in the last bits (float rounding in the BN
re-estimation and in onnxruntime); not checked.

Versions: {versions}

| folder | model | opset | graph input | graph output | test input | test output | nodes | initializer elements | model.onnx | max abs torch-vs-ort (*) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
"""


def write_readme(infos: list[dict]) -> None:
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    py = f"python {sys.version.split()[0]}"
    text = README_HEAD.format(seed=SEED, versions=vers, python=py)
    for i in infos:
        s = i["spec"]
        model = (
            f"{s['yaml']} depth {s['depth']} width {s['width']} max_channels {s['max_channels']}, imgsz {s['imgsz']}, "
            f"simplify={s['simplify']}, dynamic={s['dynamic']}"
        )
        text += (
            f"| `{s['name']}` | {model} | {i['opset']} | `{i['graph_in']}` | `{i['graph_out']}` | "
            f"{i['test_in']} | {i['test_out'][0]} | {i['n_nodes']} | {i['params']} | "
            f"{i['model_bytes']} B | {'n/a' if i['torch_vs_ort'] != i['torch_vs_ort'] else format(i['torch_vs_ort'], '.2g')} |\n"
        )
    text += (
        "\n(*) the unfused PyTorch model vs onnxruntime on the test input; boxes are in pixels "
        "(up to several hundred), so this is ~1e-5 relative: a sanity check, not the reference.\n\n"
    )
    for i in infos:
        s = i["spec"]
        text += f"- `{s['name']}`: {s['about']}. Ops: {', '.join(i['ops'])}. sha256 {i['sha256']}\n"
    with open(os.path.join(OUT_DIR, "README.md"), "w", newline="\n") as f:
        f.write(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="export only these fixture names (README not rewritten)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="gen_exports-")
    try:
        setup_offline(os.path.join(work, "cfg"))
        import torch

        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        from ultralytics.utils import SETTINGS

        SETTINGS.update({"sync": False})

        os.makedirs(OUT_DIR, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(work)  # anything the exporter writes next to the model lands in the temp dir
        try:
            infos = [export_one(s, work) for s in EXPORTS if not args.only or s["name"] in args.only]
        finally:
            os.chdir(cwd)
        if not args.only:
            write_readme(infos)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
