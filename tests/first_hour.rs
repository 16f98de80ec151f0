//! Issue 16, "the first hour with your own camera, model and calibration",
//! through the real binary: it runs from any folder (the model, labels and
//! calibration are built in), config paths are relative to the config,
//! a dynamic-axes model takes `--input-size`, Ultralytics metadata names
//! the classes, `replay --config` takes a config without `[source]`,
//! `check --model` says what it inferred, and a V4L2 camera refuses the
//! synthetic model and calibration unless the config insists.
//!
//! Models with other metadata are made here from the committed exports
//! (decode, edit `metadata_props`, encode): no extra fixture files.

mod common;

use common::*;
use perceptd::engine::onnx::proto::{ModelProto, StringStringEntryProto};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Output;

const DYNAMIC: &str = "tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx";
const STATIC: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

fn perceptd_in(cwd: &Path, args: &[&str]) -> Output {
    common::perceptd()
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .output()
        .expect("running perceptd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// One `error:` line containing every needle, a non-zero exit, no panic.
fn assert_error_line(out: &Output, needles: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "lacks '{n}': {}", errors[0]);
    }
    errors[0].to_string()
}

/// A committed export with its metadata replaced by `meta`.
fn with_metadata(src: &str, meta: &[(&str, &str)], dest: &Path) -> String {
    let bytes = std::fs::read(root().join(src)).unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    m.metadata_props = meta
        .iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(k.to_string()),
            value: Some(v.to_string()),
        })
        .collect();
    std::fs::write(dest, m.encode_to_vec()).unwrap();
    dest.display().to_string()
}

/// A small Y4M (4:4:4) of moving gradients and boxes.
fn y4m(path: &Path, w: usize, h: usize, frames: usize) -> String {
    let mut b = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C444\n").into_bytes();
    for f in 0..frames {
        b.extend_from_slice(b"FRAME\n");
        for plane in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let inside = (x + f * 2) % w > w / 4 && (x + f * 2) % w < w / 2 && y > h / 3;
                    let v = match (plane, inside) {
                        (0, true) => 200,
                        (0, false) => 40 + (x + y) % 64,
                        (_, true) => 90,
                        _ => 128,
                    };
                    b.push(v as u8);
                }
            }
        }
    }
    std::fs::write(path, b).unwrap();
    path.display().to_string()
}

fn json_classes(stdout: &str) -> Vec<String> {
    let mut names = Vec::new();
    for l in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        for d in v["detections"].as_array().unwrap() {
            names.push(d["class"].as_str().unwrap().to_string());
        }
    }
    names
}

#[test]
fn run_and_check_work_from_another_folder_with_the_built_in_model() {
    let d = temp_dir("first-hour-cwd");
    let out = perceptd_in(&d, &["run", "--frames", "3"]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    for want in [
        "model builtin:synthetic (embedded in the binary)",
        "calibration: builtin:front_camera (embedded in the binary)",
        "labels: 3 classes from builtin:synthetic",
    ] {
        assert!(stderr.contains(want), "lacks '{want}': {stderr}");
    }
    let classes = json_classes(&text(&out.stdout));
    assert!(classes.iter().any(|c| c == "vehicle"), "{classes:?}");
    let out = perceptd_in(&d, &["check", "--model", "builtin:synthetic"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("classes     3 from metadata names: 0: vehicle, 1: pedestrian, 2: cyclist"),
        "{stdout}"
    );
    // gpu-check's default model is the built-in one, not a relative path.
    let out = perceptd_in(&d, &["gpu-check", "--help"]);
    assert!(text(&out.stdout).contains("builtin:synthetic"));
}

#[test]
fn config_paths_are_relative_to_the_config_file_not_the_cwd() {
    let d = temp_dir("first-hour-relative");
    let conf = d.join("conf");
    std::fs::create_dir_all(conf.join("models")).unwrap();
    std::fs::copy(root().join(STATIC), conf.join("models/det.onnx")).unwrap();
    std::fs::write(conf.join("models/det.labels"), "car\nbike\nwalker\n").unwrap();
    let cfg = conf.join("c.toml");
    std::fs::write(
        &cfg,
        "[source]\nkind = \"synthetic\"\n[model]\npath = \"models/det.onnx\"\nconf_threshold = 0.01\n\
         [[output]]\ntarget = \"out/det.jsonl\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(conf.join("out")).unwrap();
    let elsewhere = temp_dir("first-hour-relative-cwd");
    let out = perceptd_in(
        &elsewhere,
        &["run", "--frames", "2", "--config", cfg.to_str().unwrap()],
    );
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "labels: 3 classes from {}",
            conf.join("models/det.labels").display()
        )),
        "{stderr}"
    );
    let lines = std::fs::read_to_string(conf.join("out/det.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // The labels file beside the model wins over the model's metadata.
    let classes = json_classes(&lines);
    assert!(
        !classes.is_empty()
            && classes
                .iter()
                .all(|c| ["car", "bike", "walker"].contains(&c.as_str())),
        "{classes:?}"
    );
}

#[test]
fn input_size_binds_a_dynamic_model_without_metadata() {
    let d = temp_dir("first-hour-input-size");
    let model = with_metadata(DYNAMIC, &[], &d.join("bare.onnx"));
    let clip = y4m(&d.join("clip.y4m"), 96, 64, 3);
    let out = perceptd_in(&d, &["replay", &clip, "--model", &model]);
    assert_error_line(&out, &["symbolic", "--input-size"]);
    let out = perceptd_in(
        &d,
        &["replay", &clip, "--model", &model, "--input-size", "96x64"],
    );
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("model input size 96x64 from --input-size"),
        "{stderr}"
    );
    assert!(stderr.contains("(96x64 input, 3 classes)"), "{stderr}");
    assert!(stderr.contains("naming classes class0"), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count(), 3);
    let out = perceptd_in(
        &d,
        &["replay", &clip, "--model", &model, "--input-size", "96"],
    );
    assert_error_line(&out, &["--input-size", "'96'", "WIDTHxHEIGHT"]);
}

#[test]
fn metadata_names_reach_the_json_and_replay_takes_a_config_without_source() {
    let d = temp_dir("first-hour-metadata");
    let model = with_metadata(
        DYNAMIC,
        &[
            ("names", "{0: 'alpha', 1: 'beta', 2: 'gamma'}"),
            ("imgsz", "[64, 96]"),
            ("task", "detect"),
            ("end2end", "False"),
        ],
        &d.join("named.onnx"),
    );
    let clip = y4m(&d.join("clip.y4m"), 96, 64, 4);
    let cfg = d.join("nosource.toml");
    std::fs::write(
        &cfg,
        format!("[model]\npath = \"{model}\"\nconf_threshold = 0.01\n"),
    )
    .unwrap();
    let out = perceptd_in(&d, &["replay", &clip, "--config", cfg.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("metadata 'imgsz'") && stderr.contains("(96x64 input"),
        "{stderr}"
    );
    assert!(stderr.contains("metadata 'names'"), "{stderr}");
    let classes = json_classes(&text(&out.stdout));
    assert!(!classes.is_empty(), "no detections");
    assert!(
        classes
            .iter()
            .all(|c| ["alpha", "beta", "gamma"].contains(&c.as_str())),
        "{classes:?}"
    );
    // An explicit labels file wins over the metadata.
    std::fs::write(d.join("mine.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(
        &cfg,
        format!("[model]\npath = \"{model}\"\nlabels = \"mine.txt\"\nconf_threshold = 0.01\n"),
    )
    .unwrap();
    let out = perceptd_in(&d, &["replay", &clip, "--config", cfg.to_str().unwrap()]);
    assert_ok(&out);
    let classes = json_classes(&text(&out.stdout));
    assert!(
        !classes.is_empty()
            && classes
                .iter()
                .all(|c| ["one", "two", "three"].contains(&c.as_str())),
        "{classes:?}"
    );
    // `run` needs a source.
    let out = perceptd_in(&d, &["run", "--config", cfg.to_str().unwrap()]);
    assert_error_line(&out, &["nosource.toml", "no [source] table"]);
    // Metadata perceptd cannot use is one clear line.
    let bad = with_metadata(DYNAMIC, &[("imgsz", "[sixty-four]")], &d.join("bad.onnx"));
    let out = perceptd_in(&d, &["replay", &clip, "--model", &bad]);
    assert_error_line(&out, &["bad.onnx", "imgsz = \"[sixty-four]\""]);
    let seg = with_metadata(DYNAMIC, &[("task", "segment")], &d.join("seg.onnx"));
    let out = perceptd_in(
        &d,
        &["replay", &clip, "--model", &seg, "--input-size", "96x64"],
    );
    assert_error_line(&out, &["seg.onnx", "task = \"segment\""]);
}

#[test]
fn check_model_prints_what_it_inferred() {
    let out = perceptd_in(&root(), &["check", "--model", DYNAMIC]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for want in [
        "input size  64x64 (from metadata imgsz)",
        "decoder     yolov8 (also yolo11, yolov5u): [1, 4+C, N] (output 1x7x84, 3 classes; task detect, end2end false)",
        "classes     3 from metadata names: 0: vehicle, 1: pedestrian, 2: cyclist",
    ] {
        assert!(stdout.contains(want), "lacks '{want}': {stdout}");
    }
}

#[test]
fn a_v4l2_camera_refuses_the_synthetic_model_and_calibration_unless_insisted() {
    let d = temp_dir("first-hour-v4l2");
    let share = d.join("share");
    std::fs::create_dir_all(&share).unwrap();
    let copy = share.join("perceptd-synth.onnx");
    std::fs::copy(root().join("models/perceptd-synth.onnx"), &copy).unwrap();
    let cal = share.join("front_camera.yaml");
    std::fs::copy(root().join("calibration/front_camera.yaml"), &cal).unwrap();
    let cam = "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video97\"\n";
    let case = |name: &str, body: String| -> (PathBuf, Output) {
        let p = d.join(name);
        std::fs::write(&p, format!("{cam}{body}")).unwrap();
        let out = perceptd_in(
            &d,
            &["run", "--frames", "1", "--config", p.to_str().unwrap()],
        );
        (p, out)
    };
    let (p, out) = case("absent.toml", String::new());
    let line = assert_error_line(
        &out,
        &[
            "model.path",
            "builtin:synthetic",
            "cannot detect real objects",
        ],
    );
    assert!(
        line.starts_with(&format!("error: {}: model.path: ", p.display())),
        "{line}"
    );
    let (p, out) = case(
        "copy.toml",
        "[model]\npath = \"share/perceptd-synth.onnx\"\n".into(),
    );
    assert_error_line(
        &out,
        &[
            &p.display().to_string(),
            "model.path",
            &copy.display().to_string(),
        ],
    );
    let own = share.join("own.onnx");
    std::fs::copy(root().join(STATIC), &own).unwrap();
    let (p, out) = case(
        "cal.toml",
        "[model]\npath = \"share/own.onnx\"\n[calibration]\npath = \"share/front_camera.yaml\"\n"
            .into(),
    );
    assert_error_line(
        &out,
        &[
            &p.display().to_string(),
            "calibration.path",
            "builtin:front_camera",
        ],
    );
    // --model with a copy is refused too.
    let (_, _) = case("own.toml", "[model]\npath = \"share/own.onnx\"\n".into());
    let out = perceptd_in(
        &d,
        &[
            "run",
            "--config",
            d.join("own.toml").to_str().unwrap(),
            "--model",
            copy.to_str().unwrap(),
        ],
    );
    assert_error_line(&out, &["--model", "builtin:synthetic"]);
    // Insisting gets past the check to the (absent) camera.
    let (_, out) = case(
        "insist.toml",
        "[model]\npath = \"builtin:synthetic\"\n[calibration]\npath = \"builtin:front_camera\"\n"
            .into(),
    );
    assert_error_line(&out, &["/dev/video97"]);
    // A synthetic source with the same files is fine: it is their camera.
    let p = d.join("synth.toml");
    std::fs::write(
        &p,
        "[source]\nkind = \"synthetic\"\n[model]\npath = \"share/perceptd-synth.onnx\"\n[calibration]\npath = \"share/front_camera.yaml\"\n",
    )
    .unwrap();
    assert_ok(&perceptd_in(
        &root(),
        &["run", "--frames", "1", "--config", p.to_str().unwrap()],
    ));
}
