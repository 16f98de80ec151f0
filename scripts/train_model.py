#!/usr/bin/env python3
"""Train the shipped detector (models/perceptd-synth.onnx) on perceptd's
synthetic road scenes, and export it with Ultralytics' own ONNX exporter.

    cargo build --release
    python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/train_model.py [--hours 0.8] [--hours2 1.5] [--hours3 1.75]
                                            [--hours4 1.85] [--stage1 best.pt]
                                            [--stage2 best.pt] [--stage3 best.pt]

Data: `perceptd synth-dataset` renders frames with YOLO labels (train seeds
1..8 for stages 1-3 and 1..16 for stage 4, validation seeds 101..102, all
disjoint from the held-out seeds the pipeline test evaluates on). Model:
yolov8n.yaml scaled to depth 0.33, width 0.125, max 256 channels, 3
classes; stage 1 trains from scratch at 320x320, stage 2 fine-tunes at
416x416, stage 3 at 640x640 (the camera's own resolution, so that small
objects keep every pixel), stage 4 fine-tunes at 640x640 on twice the
scenes (stage 3 had stopped improving on seeds 1..8); export at 480x640
(HxW). Trained from scratch on the CPU (no downloaded weights), exported at
opset 17 with simplification. Everything is seeded; each stage has a
wall-clock cap (0.8 h + 1.5 h + 1.75 h + 1.85 h by default, so about 6 h
on two cores; `--stage1 best.pt` skips stage 1, `--stage2 best.pt` stages 1
and 2, `--stage3 best.pt` stages 1 to 3).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), "perceptd-yolo-config"))

CLASSES = ["vehicle", "pedestrian", "cyclist"]
TRAIN_SEEDS = range(1, 9)
# Stage 4 adds these scenes to TRAIN_SEEDS.
MORE_SEEDS = range(9, 17)
VAL_SEEDS = range(101, 103)


def render(binary, out, seed, frames, every):
    subprocess.run([binary, "synth-dataset", "--out", out, "--seed", str(seed), "--frames", str(frames), "--every", str(every)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=36, help="stage 1 (from scratch) epochs")
    ap.add_argument("--hours", type=float, default=0.8, help="stage 1 wall-clock cap")
    ap.add_argument("--imgsz", type=int, default=320, help="stage 1 square training size")
    ap.add_argument("--stage1", help="skip stage 1 and fine-tune these weights (a stage 1 best.pt)")
    ap.add_argument("--epochs2", type=int, default=60, help="stage 2 (fine-tune) epochs")
    ap.add_argument("--hours2", type=float, default=1.5, help="stage 2 wall-clock cap")
    ap.add_argument("--imgsz2", type=int, default=416, help="stage 2 square training size")
    ap.add_argument("--stage2", help="skip stages 1 and 2 and fine-tune these weights (a stage 2 best.pt)")
    ap.add_argument("--epochs3", type=int, default=40, help="stage 3 (fine-tune at full size) epochs")
    ap.add_argument("--hours3", type=float, default=1.75, help="stage 3 wall-clock cap")
    ap.add_argument("--imgsz3", type=int, default=640, help="stage 3 square training size")
    ap.add_argument("--stage3", help="skip stages 1 to 3 and fine-tune these weights (a stage 3 best.pt)")
    ap.add_argument("--epochs4", type=int, default=12, help="stage 4 (full size, more scenes) epochs")
    ap.add_argument("--hours4", type=float, default=1.85, help="stage 4 wall-clock cap")
    ap.add_argument("--export", default="480,640", help="exported input height,width")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "perceptd-train"))
    ap.add_argument("--frames", type=int, default=600, help="frames rendered per training seed")
    ap.add_argument("--every", type=int, default=3)
    a = ap.parse_args()

    binary = os.path.join(ROOT, "target", "release", "perceptd")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: run `cargo build --release` first")
    data = os.path.join(a.work, "data")
    for split, seeds, frames, every in [("train", [*TRAIN_SEEDS, *MORE_SEEDS], a.frames, a.every), ("val", VAL_SEEDS, 300, 3)]:
        for s in seeds:
            out = os.path.join(data, split, f"seed{s}")
            done = os.path.join(out, "done")
            if not os.path.exists(done):
                shutil.rmtree(out, ignore_errors=True)
                render(binary, out, s, frames, every)
                open(done, "w").close()

    def data_yaml(name, train_seeds):
        path = os.path.join(a.work, name)
        with open(path, "w") as f:
            f.write(f"path: {data}\n")
            f.write("train:\n" + "".join(f"  - train/seed{s}/images\n" for s in train_seeds))
            f.write("val:\n" + "".join(f"  - val/seed{s}/images\n" for s in VAL_SEEDS))
            f.write("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASSES)))
        return path

    yaml_path = data_yaml("data.yaml", TRAIN_SEEDS)
    yaml_more = data_yaml("data-more.yaml", [*TRAIN_SEEDS, *MORE_SEEDS])

    import torch
    import yaml
    import ultralytics
    from ultralytics import YOLO

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg_path = os.path.join(os.path.dirname(ultralytics.__file__), "cfg", "models", "v8", "yolov8.yaml")
    with open(cfg_path) as f:
        cfg = yaml.safe_load(f)
    cfg["nc"] = len(CLASSES)
    cfg["scales"] = {"n": [0.33, 0.125, 256]}
    model_yaml = os.path.join(a.work, "perceptd-synth.yaml")
    with open(model_yaml, "w") as f:
        yaml.safe_dump(cfg, f)
    common = dict(
        data=yaml_path,
        batch=32,
        workers=2,
        device="cpu",
        seed=0,
        deterministic=True,
        amp=False,
        cache="ram",
        project=os.path.join(a.work, "runs"),
        exist_ok=True,
        plots=False,
        verbose=False,
        fliplr=0.5,
        mosaic=1.0,
        close_mosaic=5,
    )
    stage3 = a.stage3
    stage2 = a.stage2
    if stage3 is None and stage2 is None:
        stage1 = a.stage1
        if stage1 is None:
            # Stage 1: from scratch at a small size, where an epoch is cheap.
            model = YOLO(model_yaml, task="detect")
            model.train(epochs=a.epochs, time=a.hours, imgsz=a.imgsz, pretrained=False, name="train", **common)
            stage1 = os.path.join(a.work, "runs", "train", "weights", "best.pt")
        # Stage 2: fine-tune at a larger size, so that objects 20 px tall in
        # the 640x480 frame are 13 px at the model's input rather than 10.
        YOLO(stage1).train(epochs=a.epochs2, time=a.hours2, imgsz=a.imgsz2, name="stage2", **common)
        stage2 = os.path.join(a.work, "runs", "stage2", "weights", "best.pt")
    if stage3 is None:
        # Stage 3: fine-tune at the camera's resolution: no object loses
        # pixels to downscaling, and box edges (which place objects on the
        # ground) are regressed at full precision.
        YOLO(stage2).train(epochs=a.epochs3, time=a.hours3, imgsz=a.imgsz3, name="stage3", **common)
        stage3 = os.path.join(a.work, "runs", "stage3", "weights", "best.pt")
    # Stage 4: stage 3's validation mAP stopped improving on 1600 images;
    # twice the scenes, short warm-up (the weights are already trained),
    # mosaic off for the last 3 epochs.
    stage4 = dict(common, data=yaml_more, warmup_epochs=1, close_mosaic=3)
    YOLO(stage3).train(epochs=a.epochs4, time=a.hours4, imgsz=a.imgsz3, name="stage4", **stage4)
    best = os.path.join(a.work, "runs", "stage4", "weights", "best.pt")
    metrics = YOLO(best).val(data=yaml_path, imgsz=a.imgsz3, device="cpu", plots=False, verbose=False)
    export_hw = [int(v) for v in a.export.split(",")]
    onnx_path = YOLO(best).export(format="onnx", imgsz=export_hw, opset=17, simplify=True, dynamic=False)
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    dst = os.path.join(ROOT, "models", "perceptd-synth.onnx")
    shutil.copy(onnx_path, dst)
    with open(os.path.join(ROOT, "models", "perceptd-synth.labels"), "w") as f:
        f.write("".join(n + "\n" for n in CLASSES))
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes)")
    print(f"ultralytics val (seeds {list(VAL_SEEDS)}): precision {metrics.box.mp:.3f} recall {metrics.box.mr:.3f} mAP50 {metrics.box.map50:.3f} mAP50-95 {metrics.box.map:.3f}")
    print(f"versions: ultralytics {ultralytics.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
