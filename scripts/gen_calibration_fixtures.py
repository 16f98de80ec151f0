#!/usr/bin/env python3
"""OpenCV as the oracle for perceptd's lens models (tests/calibration.rs).

Default mode writes tests/fixtures/calibration/:
  * <model>.yaml for plumb_bob, rational_polynomial and equidistant (a wide
    fisheye): ROS camera_info YAML plus extrinsics, strong distortion;
  * opencv_reference.json: per model, a grid of raw pixels (corners
    included), the undistorted normalised point of each (solved here to
    1e-12 px by Newton on OpenCV's own forward model, *not* by
    cv2.undistortPoints, which stops after 5 iterations and is not
    converged at the corners), and OpenCV's projectPoints /
    fisheye.projectPoints of those normalised points; and, with a
    rectification rotation R and a projection matrix P != K, OpenCV's
    initUndistortRectifyMap at a grid of rectified pixels. The Rust test
    pins our forward model and our undistortion remap to these values and
    checks our inverse against them, without Python at test time.

Check mode reads our undistorted points and re-projects them with OpenCV:
  perceptd geometry --calibration F --pixel U,V ... --json > ours.jsonl
  python3 scripts/gen_calibration_fixtures.py --check F ours.jsonl
prints the largest distance (px) between each given pixel and OpenCV's
projection of our undistorted point.

Needs: pip install -r scripts/requirements-fixtures.txt (numpy,
opencv-python-headless).
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "calibration"
W, H = 640, 480

MODELS = {
    # Strong barrel distortion with tangential terms.
    "plumb_bob": dict(
        f=500.0, cx=319.5, cy=239.5, d=[-0.3, 0.12, 0.001, -0.0015, -0.02]
    ),
    # OpenCV's rational model (k1 k2 p1 p2 k3 k4 k5 k6).
    "rational_polynomial": dict(
        f=500.0,
        cx=321.0,
        cy=238.0,
        d=[0.8, -0.2, 0.0008, 0.0005, 0.01, 1.1, -0.1, 0.02],
    ),
    # A wide fisheye: the corners are ~72 degrees off axis.
    "equidistant": dict(
        f=300.0, cx=319.5, cy=239.5, d=[0.05, -0.01, 0.003, -0.0005]
    ),
}


def yaml_text(name, m):
    f, cx, cy, d = m["f"], m["cx"], m["cy"], m["d"]
    fl = lambda v: ", ".join(repr(float(x)) for x in v)
    return f"""# Test calibration written by scripts/gen_calibration_fixtures.py
# (OpenCV oracle fixture): {name} with strong distortion.
image_width: {W}
image_height: {H}
camera_name: {name}
camera_matrix:
  rows: 3
  cols: 3
  data: [{fl([f, 0, cx, 0, f, cy, 0, 0, 1])}]
distortion_model: {name}
distortion_coefficients:
  rows: 1
  cols: {len(d)}
  data: [{fl(d)}]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [{fl([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0])}]
extrinsics:
  translation: [1.5, 0.0, 1.3]
  rotation_rpy_deg: [0.5, 6.0, -1.0]
"""


def load_yaml_camera(path):
    """K, D and the model name from a calibration file (the few fields we
    need; a full YAML parser is not required)."""
    text = Path(path).read_text()
    vals = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.split("#")[0].rstrip()
        if s.startswith("distortion_model:"):
            vals["model"] = s.split(":", 1)[1].strip()
        for key in ("camera_matrix", "distortion_coefficients"):
            if s.startswith(key + ":"):
                for j in range(i + 1, i + 5):
                    t = lines[j].strip()
                    if t.startswith("data:"):
                        vals[key] = [float(x) for x in t.split("[", 1)[1].split("]")[0].split(",")]
                        break
    K = np.array(vals["camera_matrix"], dtype=np.float64).reshape(3, 3)
    D = np.array(vals["distortion_coefficients"], dtype=np.float64)
    return vals["model"], K, D


def project(model, K, D, pts):
    """OpenCV's projection of normalised points (x, y) -> pixels."""
    obj = np.concatenate([pts, np.ones((len(pts), 1))], axis=1).reshape(-1, 1, 3)
    rvec = np.zeros((3, 1))
    tvec = np.zeros((3, 1))
    if model == "equidistant":
        img, _ = cv2.fisheye.projectPoints(obj, rvec, tvec, K, D.reshape(4, 1))
    else:
        img, _ = cv2.projectPoints(obj, rvec, tvec, K, D)
    return img.reshape(-1, 2)


def solve_inverse(model, K, D, pix):
    """Normalised points whose OpenCV projection is `pix`: start from
    cv2.undistortPoints with 200 iterations and finish with Newton on projectPoints
    (numerical Jacobian), so the result is OpenCV's own inverse."""
    src = pix.reshape(-1, 1, 2).astype(np.float64)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    if model == "equidistant":
        x = cv2.fisheye.undistortPoints(src, K, D.reshape(4, 1), criteria=crit).reshape(-1, 2)
    else:
        x = cv2.undistortPoints(src, K, D, None, None, None, crit).reshape(-1, 2)
    for _ in range(50):
        f = project(model, K, D, x) - pix
        if np.abs(f).max() < 1e-10:
            break
        h = 1e-7
        fx = (project(model, K, D, x + [h, 0]) - project(model, K, D, x - [h, 0])) / (2 * h)
        fy = (project(model, K, D, x + [0, h]) - project(model, K, D, x - [0, h])) / (2 * h)
        for i in range(len(x)):
            J = np.stack([fx[i], fy[i]], axis=1)
            x[i] -= np.linalg.solve(J, f[i])
    res = np.abs(project(model, K, D, x) - pix).max()
    return x, res


def rectify_reference(model, K, D, m):
    """OpenCV's initUndistortRectifyMap (fisheye:: for equidistant) with a
    rectification rotation and a projection matrix P != K, sampled on a
    grid of rectified pixels: the raw pixel each one reads."""
    R, _ = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))
    f, cx, cy = m["f"] * 0.8, m["cx"] + 5.0, m["cy"] - 3.0
    P = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]], dtype=np.float64)
    if model == "equidistant":
        mx, my = cv2.fisheye.initUndistortRectifyMap(K, D.reshape(4, 1), R, P[:, :3], (W, H), cv2.CV_32FC1)
    else:
        mx, my = cv2.initUndistortRectifyMap(K, D, R, P[:, :3], (W, H), cv2.CV_32FC1)
    us = np.linspace(0, W - 1, 17).round().astype(int)
    vs = np.linspace(0, H - 1, 13).round().astype(int)
    pix = [[int(u), int(v)] for v in vs for u in us]
    return {
        "rectification_matrix": R.reshape(-1).tolist(),
        "projection_matrix": P.reshape(-1).tolist(),
        "pixels": pix,
        "map": [[float(mx[v, u]), float(my[v, u])] for u, v in pix],
    }


def generate():
    OUT.mkdir(parents=True, exist_ok=True)
    us = np.linspace(0, W - 1, 17)
    vs = np.linspace(0, H - 1, 13)
    pix = np.array([[u, v] for v in vs for u in us], dtype=np.float64)
    ref = {"opencv_version": cv2.__version__, "image": [W, H], "models": []}
    for name, m in MODELS.items():
        path = OUT / f"{name}.yaml"
        path.write_text(yaml_text(name, m))
        model, K, D = load_yaml_camera(path)
        norm, res = solve_inverse(model, K, D, pix)
        if res > 1e-8:
            sys.exit(f"{name}: reference inverse did not converge ({res} px)")
        proj = project(model, K, D, norm)
        # How far cv2.undistortPoints with its default 5 iterations is off.
        src = pix.reshape(-1, 1, 2)
        if model == "equidistant":
            naive = cv2.fisheye.undistortPoints(src, K, D.reshape(4, 1)).reshape(-1, 2)
        else:
            naive = cv2.undistortPoints(src, K, D).reshape(-1, 2)
        naive_err = np.abs(project(model, K, D, naive) - pix).max()
        rect = rectify_reference(model, K, D, m)
        ref["models"].append(
            {
                "rectify": rect,
                "name": name,
                "calibration": f"{name}.yaml",
                "pixels": pix.tolist(),
                "normalised": norm.tolist(),
                "opencv_projected": proj.tolist(),
                "reference_residual_px": float(res),
                "undistortPoints_default_error_px": float(naive_err),
            }
        )
        print(f"{name}: reference residual {res:.2e} px; cv2 default undistortPoints off by {naive_err:.3f} px")
    (OUT / "opencv_reference.json").write_text(json.dumps(ref) + "\n")
    print(f"wrote {OUT}")


def check(calibration, ours):
    model, K, D = load_yaml_camera(calibration)
    pix, und = [], []
    for line in Path(ours).read_text().splitlines():
        if not line.strip():
            continue
        o = json.loads(line)
        if o["undistorted"] is None:
            continue
        pix.append(o["pixel"])
        und.append(o["undistorted"])
    pix = np.array(pix, dtype=np.float64)
    und = np.array(und, dtype=np.float64)
    err = np.hypot(*(project(model, K, D, und) - pix).T)
    print(f"{calibration} ({model}): {len(pix)} pixels, max re-projection error of our undistorted points by OpenCV {err.max():.3e} px")
    return 0 if err.max() <= 0.01 else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", nargs=2, metavar=("CALIBRATION", "OURS_JSONL"))
    a = ap.parse_args()
    sys.exit(check(*a.check) if a.check else generate())
