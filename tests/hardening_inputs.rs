//! Adversarial inputs (issue 20, classes 3, 4 and 5): allocation bombs in
//! headers and configs, special files where a text file belongs, values
//! with no physical meaning, NaN arguments, and errors that must name the
//! file and the field. Each case runs the real binary and asserts the
//! README's promise: one `error:` line naming file, field and value, the
//! documented exit code, no panic, and an answer within seconds.
//!
//! Peak memory of the bomb cases is read from `getrusage(RUSAGE_CHILDREN)`,
//! which covers every child this test binary has waited for: the cases
//! here are all small, so one over the bound is a bomb that went off.

mod common;

use common::{root, temp_dir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

struct Outcome {
    code: i32,
    stderr: String,
    elapsed: Duration,
}

fn perceptd(args: &[&str]) -> Outcome {
    let t0 = Instant::now();
    let child = common::perceptd()
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = common::wait_bounded(child, LIMIT);
    Outcome {
        code,
        stderr,
        elapsed: t0.elapsed(),
    }
}

/// One error line, containing every needle, exit `code`, quickly.
fn assert_refused(o: &Outcome, code: i32, needles: &[&str]) {
    assert!(!o.stderr.contains("panicked"), "panic: {}", o.stderr);
    assert_eq!(o.code, code, "stderr: {}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(10), "took {:?}", o.elapsed);
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "want one error line, got: {}", o.stderr);
    for n in needles {
        assert!(
            errors[0].contains(n),
            "error line lacks '{n}': {}",
            errors[0]
        );
    }
    assert!(
        errors[0].len() < 1200,
        "error line of {} bytes",
        errors[0].len()
    );
}

fn model() -> String {
    root()
        .join("models/perceptd-synth.onnx")
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn config_text(body: &str) -> String {
    format!(
        "[source]\nkind = \"synthetic\"\n[model]\npath = \"{}\"\n{body}",
        model()
    )
}

fn config(dir: &Path, name: &str, body: &str) -> String {
    write(dir, name, &config_text(body))
}

fn calibration_text() -> String {
    std::fs::read_to_string(root().join("calibration/front_camera.yaml")).unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Peak RSS (KiB) of any child waited for so far.
fn children_peak_rss_kib() -> i64 {
    // SAFETY: rusage is plain data that getrusage fills.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

// ---- class 3: allocation bombs before validation --------------------

const BOMB_RSS_KIB: i64 = 512 * 1024;

#[test]
fn y4m_header_bombs_are_refused_by_the_memory_budget_without_allocating() {
    let dir = temp_dir("hard-y4m-bomb");
    for (name, header) in [
        // 1 KB: header padded with a comment-like parameter.
        (
            "c444.y4m",
            format!("YUV4MPEG2 W16384 H16384 F30:1 C444 X{}\n", "a".repeat(960)),
        ),
        // 39 bytes, no frames.
        (
            "c420.y4m",
            "YUV4MPEG2 W16384 H16384 F30:1 C420\n".to_string(),
        ),
    ] {
        let p = write(&dir, name, &header);
        let o = perceptd(&["replay", &p, "--device", "cpu"]);
        assert_refused(
            &o,
            1,
            &[&p, "pipeline.max_memory_mb = 2048", "MiB", "16384x16384"],
        );
    }
    let rss = children_peak_rss_kib();
    assert!(rss < BOMB_RSS_KIB, "a child reached {rss} KiB");
}

/// The largest `--input-size` accepted, on a dynamic-axes model, asks for
/// a model arena of gigabytes and (with the embedded calibration's
/// undistortion) a remap table of 1.8 GiB: the budget must refuse it once
/// the plan is known, before the arena or the table is allocated. Run
/// under an address-space limit below what either would take, so that an
/// allocation before the check aborts instead of passing unnoticed.
#[test]
fn the_largest_input_size_is_refused_by_the_budget_before_the_arena() {
    let dynamic = root()
        .join("tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx")
        .display()
        .to_string();
    let t0 = Instant::now();
    let child = Command::new("prlimit")
        .arg("--as=3000000000")
        .arg(env!("CARGO_BIN_EXE_perceptd"))
        .args([
            "run",
            "--model",
            &dynamic,
            "--input-size",
            "8192x8192",
            "--frames",
            "1",
            "--device",
            "cpu",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs perceptd");
    let (code, stderr) = common::wait_bounded(child, LIMIT);
    let o = Outcome {
        code,
        stderr,
        elapsed: t0.elapsed(),
    };
    assert_refused(
        &o,
        1,
        &[
            "pipeline.max_memory_mb = 2048",
            "the planned model needs",
            "arena",
            &dynamic,
        ],
    );
    // The same model at a size the budget holds still runs.
    let o = perceptd(&[
        "run",
        "--model",
        &dynamic,
        "--input-size",
        "320x320",
        "--frames",
        "1",
        "--device",
        "cpu",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn config_frame_sizes_over_the_budget_are_refused_by_check_and_run() {
    let dir = temp_dir("hard-cfg-bomb");
    let c = config_text("").replace(
        "kind = \"synthetic\"\n",
        "kind = \"synthetic\"\nwidth = 16384\nheight = 16384\n",
    );
    let p = write(&dir, "big.toml", &c);
    for args in [
        vec!["check", "--config", &p],
        vec!["run", "--config", &p, "--frames", "1"],
    ] {
        assert_refused(
            &perceptd(&args),
            1,
            &[&p, "pipeline.max_memory_mb = 2048", "16384x16384 rgb24"],
        );
    }
    // The same frames pass with a budget that fits them: the figure is
    // the pipeline's, not a fixed size limit.
    let sized = |mb: u32| {
        config_text(&format!("[pipeline]\nmax_memory_mb = {mb}\n")).replace(
            "kind = \"synthetic\"\n",
            "kind = \"synthetic\"\nwidth = 4096\nheight = 4096\n",
        )
    };
    let c = write(&dir, "4k100.toml", &sized(100));
    assert_refused(
        &perceptd(&["check", "--config", &c]),
        1,
        &[&c, "pipeline.max_memory_mb = 100", "4096x4096 rgb24"],
    );
    let c = write(&dir, "4k1024.toml", &sized(1024));
    let o = perceptd(&["check", "--config", &c]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let rss = children_peak_rss_kib();
    assert!(rss < BOMB_RSS_KIB, "a child reached {rss} KiB");
}

#[test]
fn numeric_fields_have_physical_upper_bounds() {
    let dir = temp_dir("hard-bounds");
    for (i, (body, field)) in [
        (
            "[output]\nmax_line_bytes = 1000000000000\n",
            "output.max_line_bytes = 1000000000000",
        ),
        (
            "[output]\nmax_line_bytes = 1e12\n",
            "output.max_line_bytes = 1000000000000.0",
        ),
        (
            "[threads]\ncapture_cpu = 1048576\n",
            "threads.capture_cpu = 1048576",
        ),
        (
            "[threads]\ninference_cpu = 100000\n",
            "threads.inference_cpu = 100000",
        ),
        (
            "[pipeline]\nwarmup_frames = 100000\n",
            "pipeline.warmup_frames = 100000",
        ),
        (
            "[pipeline]\nmax_memory_mb = 0\n",
            "pipeline.max_memory_mb = 0",
        ),
        (
            "[pipeline]\nmax_memory_mb = 18446744073709551615\n",
            "pipeline.max_memory_mb",
        ),
        (
            "[metrics]\ninterval_s = 1e300\n",
            "metrics.interval_s = 1e300",
        ),
        ("[metrics]\ninterval_s = nan\n", "metrics.interval_s = NaN"),
    ]
    .iter()
    .enumerate()
    {
        let p = config(&dir, &format!("b{i}.toml"), body);
        assert_refused(&perceptd(&["check", "--config", &p]), 1, &[&p, field]);
    }
    let p = config(&dir, "cpu.toml", "[threads]\ncapture_cpu = 1048576\n");
    assert_refused(
        &perceptd(&["run", "--config", &p, "--frames", "1"]),
        1,
        &[&p, "threads.capture_cpu = 1048576"],
    );
}

#[test]
fn synth_dataset_frames_are_bounded() {
    let dir = temp_dir("hard-dataset");
    let out = dir.join("d").display().to_string();
    for n in ["18446744073709551615", "0", "1000001"] {
        let o = perceptd(&["synth-dataset", "--out", &out, "--frames", n]);
        assert_refused(&o, 2, &["--frames", n]);
    }
}

/// Every place a text file is read: config, calibration (check and
/// geometry), labels (named by a config, read at boot).
fn special_file_cases(special: &str) {
    let dir = temp_dir(&format!("hard-special-{}", special.replace('/', "_")));
    let labels = write(
        &dir,
        "labels.toml",
        &config_text("").replace("[model]\n", &format!("[model]\nlabels = \"{special}\"\n")),
    );
    for args in [
        vec!["check", "--config", special],
        vec!["check", "--calibration", special],
        vec!["geometry", "--calibration", special, "--pixel", "1,1"],
        vec![
            "run", "--config", &labels, "--frames", "1", "--device", "cpu",
        ],
    ] {
        let o = perceptd(&args);
        assert_refused(&o, 1, &[special, "not a regular file"]);
    }
}

#[test]
fn dev_zero_as_any_text_input_is_refused_before_reading() {
    special_file_cases("/dev/zero");
    let rss = children_peak_rss_kib();
    assert!(rss < BOMB_RSS_KIB, "a child reached {rss} KiB");
}

#[test]
fn a_fifo_as_any_text_input_is_refused_without_blocking() {
    let dir = temp_dir("hard-fifo");
    let fifo = dir.join("in.fifo");
    mkfifo(&fifo);
    special_file_cases(&fifo.display().to_string());
}

#[test]
fn oversized_and_deeply_nested_text_is_refused_quickly() {
    let dir = temp_dir("hard-nesting");
    // 2 MiB config.
    let big = config(&dir, "big.toml", &format!("# {}\n", "x".repeat(2 << 20)));
    assert_refused(
        &perceptd(&["check", "--config", &big]),
        1,
        &[&big, "more than the limit of 1048576 bytes"],
    );
    // 200 KB of nested `[` in a calibration (28 s in the YAML parser).
    let cal = write(
        &dir,
        "nested.yaml",
        &format!("image_width: {}\n", "[".repeat(200_000)),
    );
    for cmd in [["check", "--calibration"], ["geometry", "--calibration"]] {
        let mut args = vec![cmd[0], cmd[1], &cal];
        if cmd[0] == "geometry" {
            args.extend(["--pixel", "1,1"]);
        }
        assert_refused(&perceptd(&args), 1, &[&cal, "nests 33 deep at line 1"]);
    }
    // Block nesting in YAML, brackets in TOML.
    let cal = write(
        &dir,
        "dashes.yaml",
        &format!("a:\n{}x\n", "- ".repeat(5000)),
    );
    assert_refused(
        &perceptd(&["check", "--calibration", &cal]),
        1,
        &[&cal, "nests", "line 2"],
    );
    let toml = config(
        &dir,
        "nested.toml",
        &format!("x = {}\n", "[".repeat(100_000)),
    );
    assert_refused(
        &perceptd(&["check", "--config", &toml]),
        1,
        &[&toml, "nests 33 deep"],
    );
}

// ---- class 4: values without meaning, NaN arguments ------------------

#[test]
fn nan_and_infinite_tolerances_are_usage_errors() {
    let m = model();
    for (flag, v) in [
        ("--rtol", "nan"),
        ("--atol", "nan"),
        ("--rtol", "inf"),
        ("--atol", "-inf"),
        ("--atol", "-1"),
    ] {
        let arg = format!("{flag}={v}");
        let o = perceptd(&[
            "infer",
            &m,
            "--input",
            "/nonexistent/input_0.pb",
            "--compare-dir",
            "/nonexistent",
            &arg,
        ]);
        assert_refused(&o, 2, &[flag, v]);
    }
}

#[test]
fn calibration_values_without_physical_meaning_are_refused_naming_the_field() {
    let dir = temp_dir("hard-calibration");
    let good = calibration_text();
    let cases: &[(&str, &str, &str)] = &[
        (
            "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "data: [1e-9, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "camera_matrix.data[0] (fx) = 1e-9",
        ),
        (
            "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "data: [500.0, 0.0, 319.5, 0.0, 1e300, 239.5, 0.0, 0.0, 1.0]",
            "camera_matrix.data[4] (fy) = 1e300",
        ),
        (
            "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "data: [500.0, 0.0, 1e300, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "camera_matrix.data[2] (cx) = 1e300",
        ),
        (
            "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]",
            "data: [500.0, 0.0, 319.5, 0.0, 500.0, 1500.0, 0.0, 0.0, 1.0]",
            "camera_matrix.data[5] (cy) = 1500",
        ),
        (
            "data: [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]",
            "data: [1e-9, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]",
            "projection_matrix.data[0] (fx) = 1e-9",
        ),
        (
            "data: [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]",
            "data: [1e300, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]",
            "projection_matrix.data[0] (fx) = 1e300",
        ),
        (
            "data: [-0.05, 0.01, 0.0, 0.0, 0.0]",
            "data: [1e300, 0.01, 0.0, 0.0, 0.0]",
            "distortion_coefficients.data[0] = 1e300",
        ),
        (
            "rotation_rpy_deg: [0.0, 5.0, 0.0]",
            "rotation_rpy_deg: [1e308, 5.0, 0.0]",
            "extrinsics.rotation_rpy_deg[0] (roll) = 1e308",
        ),
        (
            "translation: [1.5, 0.0, 1.3]",
            "translation: [1.5, 0.0, 1e9]",
            "extrinsics.translation[2] = 1e9",
        ),
        (
            "image_width: 640",
            "image_width: 100000",
            "image_width = 100000",
        ),
    ];
    for (i, (from, to, want)) in cases.iter().enumerate() {
        assert!(good.contains(from), "{from}");
        let p = write(&dir, &format!("c{i}.yaml"), &good.replacen(from, to, 1));
        assert_refused(&perceptd(&["check", "--calibration", &p]), 1, &[&p, want]);
        // Boot refuses it too, before anything runs.
        if i == 7 {
            let c = config(
                &dir,
                "cal.toml",
                &format!("[calibration]\npath = \"{p}\"\n"),
            );
            assert_refused(
                &perceptd(&["run", "--config", &c, "--frames", "1"]),
                1,
                &[&p, want],
            );
        }
    }
}

// ---- class 5: errors name the file and the field --------------------

#[test]
fn type_errors_name_the_field_even_in_tagged_tables() {
    let dir = temp_dir("hard-types");
    for (i, (from, to, want)) in [
        (
            "kind = \"synthetic\"\n",
            "kind = \"synthetic\"\nwidth = -1\n",
            "source.width = -1",
        ),
        (
            "kind = \"synthetic\"\n",
            "kind = \"synthetic\"\nfps = \"fast\"\n",
            "source.fps = \"fast\"",
        ),
        ("[model]\n", "[model]\nthreads = -1\n", "model.threads = -1"),
        (
            "[model]\n",
            "[model]\nconf_threshold = \"high\"\n",
            "model.conf_threshold = \"high\"",
        ),
    ]
    .iter()
    .enumerate()
    {
        let p = config(&dir, &format!("t{i}.toml"), "");
        let text = std::fs::read_to_string(&p).unwrap().replacen(from, to, 1);
        std::fs::write(&p, text).unwrap();
        assert_refused(&perceptd(&["check", "--config", &p]), 1, &[&p, want]);
    }
    let p = config(&dir, "t9.toml", "[threads]\ncapture_cpu = \"x\"\n");
    assert_refused(
        &perceptd(&["check", "--config", &p]),
        1,
        &[&p, "threads.capture_cpu = \"x\""],
    );
    let p = write(
        &dir,
        "c.yaml",
        &calibration_text().replacen("image_width: 640", "image_width: abc", 1),
    );
    assert_refused(
        &perceptd(&["check", "--calibration", &p]),
        1,
        &[&p, "image_width"],
    );
}

#[test]
fn empty_paths_name_the_field() {
    let dir = temp_dir("hard-empty");
    let p = write(
        &dir,
        "e.toml",
        "[source]\nkind = \"synthetic\"\n[model]\npath = \"\"\n",
    );
    assert_refused(
        &perceptd(&["check", "--config", &p]),
        1,
        &[&p, "model.path = \"\""],
    );
    let p = write(
        &dir,
        "y.toml",
        &format!(
            "[source]\nkind = \"y4m\"\npath = \"\"\n[model]\npath = \"{}\"\n",
            model()
        ),
    );
    assert_refused(
        &perceptd(&["check", "--config", &p]),
        1,
        &[&p, "source.path = \"\""],
    );
}

#[test]
fn a_frame_the_model_cannot_take_names_the_file() {
    let dir = temp_dir("hard-16384x1");
    let mut y4m = b"YUV4MPEG2 W16384 H1 F30:1 C420\nFRAME\n".to_vec();
    y4m.extend(vec![128u8; 16384 + 2 * 8192]);
    let p = dir.join("wide.y4m");
    std::fs::write(&p, y4m).unwrap();
    let p = p.display().to_string();
    assert_refused(
        &perceptd(&["replay", &p, "--device", "cpu", "--frames", "1"]),
        1,
        &[&p, "letterbox"],
    );
}

#[test]
fn a_long_bad_line_is_cut_in_the_message() {
    let dir = temp_dir("hard-long-line");
    let p = config(
        &dir,
        "long.toml",
        &format!("[pipeline]\nring_slots = {}\n", "9".repeat(900_000)),
    );
    let o = perceptd(&["check", "--config", &p]);
    assert_refused(&o, 1, &[&p, "pipeline.ring_slots", "…"]);
    let p = config(&dir, "junk.toml", &format!("{}\n", "%".repeat(900_000)));
    assert_refused(&perceptd(&["check", "--config", &p]), 1, &[&p, "…"]);
}

#[test]
fn tracker_config_errors_at_boot_name_the_config_file() {
    let dir = temp_dir("hard-tracker");
    let text = config_text("[tracking]\nenabled = true\nmax_tracks = 1024\n")
        .replace("[model]\n", "[model]\nmax_detections = 10000\n");
    let p = write(&dir, "track.toml", &text);
    assert_refused(
        &perceptd(&["run", "--config", &p, "--frames", "1", "--device", "cpu"]),
        1,
        &[&p, "tracking.max_tracks = 1024"],
    );
}
