//! Bad input through the real binary: one clear `error:` line on stderr
//! naming the file/field/value, a non-zero exit, never a panic. A truncated
//! replay is the exception: its complete frames are processed, a message
//! names the file, and it exits 0.

mod common;

use common::*;
use std::path::Path;
use std::process::Output;

const FIXTURE_MODEL: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

fn perceptd(args: &[&str]) -> Output {
    common::perceptd()
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running perceptd")
}

/// Exits non-zero with exactly one `error:` line containing every `needle`.
fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one error line, got: {stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "error line lacks '{n}': {}",
            errors[0]
        );
    }
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn missing_model_is_named() {
    let out = perceptd(&["run", "--frames", "1", "--model", "no/such/model.onnx"]);
    assert_clean_failure(&out, &["no/such/model.onnx"]);
}

#[test]
fn garbage_model_is_named() {
    let d = temp_dir("cli-garbage-model");
    let m = write(
        &d.join("garbage.onnx"),
        &[0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x00, 0xff, 0x42],
    );
    let out = perceptd(&["run", "--frames", "1", "--model", &m]);
    assert_clean_failure(&out, &["garbage.onnx"]);
}

#[test]
fn model_that_is_not_a_detector_is_refused() {
    // Two inputs, not 1x3xHxW.
    let out = perceptd(&[
        "run",
        "--frames",
        "1",
        "--model",
        "tests/fixtures/onnx-node/test_add/model.onnx",
    ]);
    assert_clean_failure(&out, &["test_add/model.onnx", "one input"]);
}

#[test]
fn decoder_that_does_not_fit_the_model_is_refused() {
    let d = temp_dir("cli-decoder");
    let cfg = write(
        &d.join("c.toml"),
        format!("[source]\nkind = \"synthetic\"\n[model]\npath = \"{}/{FIXTURE_MODEL}\"\ndecoder = \"yolov5\"\n", root().display())
            .as_bytes(),
    );
    let out = perceptd(&["run", "--frames", "1", "--config", &cfg]);
    assert_clean_failure(&out, &["yolov5"]);
}

#[test]
fn unknown_config_key_is_named() {
    let d = temp_dir("cli-config");
    let cfg = write(
        &d.join("c.toml"),
        b"[source]\nkind = \"synthetic\"\nsede = 3\n[model]\npath = \"m.onnx\"\n",
    );
    let out = perceptd(&["run", "--config", &cfg]);
    assert_clean_failure(&out, &["c.toml", "sede"]);
}

#[test]
fn bad_config_value_is_named() {
    let d = temp_dir("cli-config-value");
    let cfg = write(
        &d.join("c.toml"),
        b"[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\nconf_threshold = 7\n",
    );
    let out = perceptd(&["run", "--config", &cfg]);
    assert_clean_failure(&out, &["c.toml", "model.conf_threshold", "7"]);
}

#[test]
fn bad_tracking_config_is_named() {
    let d = temp_dir("cli-tracking");
    for (i, (extra, needles)) in [
        ("max_tracks = 0", ["tracking.max_tracks", "0"]),
        ("high_score = -0.2", ["tracking.high_score", "-0.2"]),
        ("max_misses = -3", ["max_misses", "-3"]),
        (
            "corridor_width_m = -1.5",
            ["tracking.corridor_width_m", "-1.5"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = write(
            &d.join(format!("t{i}.toml")),
            format!(
                "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\n[tracking]\n{extra}\n"
            )
            .as_bytes(),
        );
        let out = perceptd(&["run", "--config", &cfg]);
        let mut want = vec![format!("t{i}.toml")];
        want.extend(needles.iter().map(|s| s.to_string()));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_clean_failure(&out, &want);
    }
}

#[test]
fn missing_camera_is_named() {
    let d = temp_dir("cli-camera");
    let cfg = write(
        &d.join("c.toml"),
        format!("[source]\nkind = \"v4l2\"\ndevice = \"/dev/video97\"\n[model]\npath = \"{}/{FIXTURE_MODEL}\"\n", root().display())
            .as_bytes(),
    );
    let out = perceptd(&["run", "--frames", "1", "--config", &cfg]);
    assert_clean_failure(&out, &["/dev/video97"]);
}

#[test]
fn y4m_with_a_bad_header_is_named() {
    let d = temp_dir("cli-y4m-header");
    let f = write(&d.join("bad.y4m"), b"YUV4MPEG2 W640 Hx C420jpeg\nFRAME\n");
    let out = perceptd(&["replay", &f, "--model", FIXTURE_MODEL]);
    assert_clean_failure(&out, &["bad.y4m"]);
}

#[test]
fn garbage_y4m_is_named() {
    let d = temp_dir("cli-y4m-garbage");
    let f = write(
        &d.join("noise.y4m"),
        &(0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let out = perceptd(&["replay", &f, "--model", FIXTURE_MODEL]);
    assert_clean_failure(&out, &["noise.y4m"]);
}

#[test]
fn truncated_y4m_emits_its_complete_frames_and_says_so() {
    let d = temp_dir("cli-y4m-truncated");
    // 3 complete 4x2 mono frames (8 bytes each) and half of a fourth.
    let mut bytes = b"YUV4MPEG2 W4 H2 F30:1 Cmono\n".to_vec();
    for k in 0..3u8 {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(std::iter::repeat_n(40 * k, 8));
    }
    bytes.extend_from_slice(b"FRAME\n\x01\x02\x03\x04");
    let f = write(&d.join("cut.y4m"), &bytes);
    let out = perceptd(&["replay", &f, "--model", FIXTURE_MODEL]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(
        stderr.contains("cut.y4m") && stderr.contains("truncated"),
        "stderr: {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "one JSON line per complete frame"
    );
}

#[test]
fn cuda_without_cuda_is_one_clear_line() {
    let out = perceptd(&[
        "run",
        "--frames",
        "1",
        "--device",
        "cuda",
        "--model",
        FIXTURE_MODEL,
    ]);
    assert_clean_failure(&out, &["CUDA is unavailable"]);
}

#[test]
fn infer_with_a_garbage_input_tensor_is_named() {
    let d = temp_dir("cli-infer");
    let f = write(
        &d.join("input_0.pb"),
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01garbage",
    );
    let out = perceptd(&["infer", FIXTURE_MODEL, "--input", &f]);
    assert_clean_failure(&out, &["input_0.pb"]);
}

#[test]
fn check_config_binds_symbolic_dims_from_model_input_size() {
    let d = temp_dir("cli-check-input-size");
    let model = root().join("tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx");
    let body = format!(
        "[source]\nkind = \"synthetic\"\n\n[model]\npath = \"{}\"\ninput_size = [160, 128]\n",
        model.display()
    );
    let cfg = write(&d.join("dynamic.toml"), body.as_bytes());
    let out = perceptd(&["check", "--config", &cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1x3x128x160"), "{stdout}");
    // Without input_size the model's metadata imgsz binds them.
    let cfg = write(
        &d.join("no-size.toml"),
        body.replace("input_size = [160, 128]\n", "").as_bytes(),
    );
    let out = perceptd(&["check", "--config", &cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1x3x64x64"),
        "{stdout}"
    );
}
