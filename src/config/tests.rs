use super::*;

#[test]
fn embedded_default_parses() {
    let c = Config::default_embedded().unwrap();
    assert!(matches!(c.source, SourceConfig::Synthetic { .. }));
    assert_eq!(c.pipeline.ring_slots, 6);
}

#[test]
fn unknown_keys_name_the_field() {
    let text = "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\nthreshold = 3\n";
    let e = Config::parse(text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml") && e.contains("threshold"), "{e}");
}

#[test]
fn bad_values_name_field_and_value() {
    let text =
        "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\n[pipeline]\nring_slots = 1\n";
    let e = Config::parse(text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pipeline.ring_slots = 1"), "{e}");
    let text = "[source]\nkind = \"webcam\"\n[model]\npath = \"m.onnx\"\n";
    let e = Config::parse(text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("webcam"), "{e}");
}

#[test]
fn service_fields_are_validated() {
    let base = "[source]\nkind = \"v4l2\"\n[model]\npath = \"m.onnx\"\n";
    let c = Config::parse(base, "x.toml", Path::new(".")).unwrap();
    assert!(matches!(
        &c.source,
        SourceConfig::V4l2 {
            absent: Absent::Fail,
            reconnect_max_ms: 5000,
            ..
        }
    ));
    assert_eq!(
        (c.pipeline.stage_deadline_ms, c.pipeline.hard_deadline_ms),
        (0, 0)
    );
    assert!(!c.rt.mlockall);
    for (extra, want) in [
        ("absent = \"later\"\n", "source.absent = \"later\""),
        ("reconnect_max_ms = 1\n", "source.reconnect_max_ms = 1"),
    ] {
        let text = base.replace("[model]", &format!("{extra}[model]"));
        let e = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    let text = format!("{base}[pipeline]\nstage_deadline_ms = 100\nhard_deadline_ms = 50\n");
    let e = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pipeline.hard_deadline_ms = 50"), "{e}");
    let text = format!("{base}[rt]\nmlockall = true\nprefault_stack_kib = 4096\n");
    let e = Config::parse(&text, "x.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rt.prefault_stack_kib = 4096"), "{e}");
    let text = format!("{base}[rt]\nmlockall = true\n[pipeline]\nstage_deadline_ms = 100\nhard_deadline_ms = 2000\n");
    let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
    assert!(c.rt.mlockall);
    assert_eq!(c.pipeline.hard_deadline_ms, 2000);
}

#[test]
fn relative_paths_follow_the_config_file() {
    let text = "[source]\nkind = \"y4m\"\npath = \"clip.y4m\"\n[model]\npath = \"m.onnx\"\n";
    let c = Config::parse(text, "/etc/perceptd/a.toml", Path::new("/etc/perceptd")).unwrap();
    assert_eq!(c.model.path, PathBuf::from("/etc/perceptd/m.onnx"));
    match c.source {
        SourceConfig::Y4m { path, .. } => {
            assert_eq!(path, PathBuf::from("/etc/perceptd/clip.y4m"))
        }
        _ => panic!(),
    }
}

fn parse_err(text: &str) -> String {
    Config::parse(text, "x.toml", Path::new("/etc/p"))
        .unwrap_err()
        .to_string()
}

const MIN: &str = "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\n";

#[test]
fn outputs_are_a_list_and_one_table_still_works() {
    let c = Config::parse(MIN, "x.toml", Path::new("/etc/p")).unwrap();
    assert!(matches!(&c.output[..], [OutputConfig::Json(j)] if j.target == OutputTarget::Stdout));
    let one = format!("{MIN}[output]\ntarget = \"out.jsonl\"\nmax_line_bytes = 2048\n");
    let c = Config::parse(&one, "x.toml", Path::new("/etc/p")).unwrap();
    match &c.output[..] {
        [OutputConfig::Json(j)] => {
            assert_eq!(j.target, OutputTarget::File("/etc/p/out.jsonl".into()));
            assert_eq!(j.max_line_bytes, 2048);
        }
        o => panic!("{o:?}"),
    }
    let two = format!(
        "{MIN}[[output]]\nkind = \"json\"\ntarget = \"a.jsonl\"\n\
             [[output]]\nkind = \"json\"\ntarget = \"udp://127.0.0.1:5600\"\n"
    );
    let c = Config::parse(&two, "x.toml", Path::new("/etc/p")).unwrap();
    match &c.output[..] {
        [OutputConfig::Json(a), OutputConfig::Json(b)] => {
            assert_eq!(a.target, OutputTarget::File("/etc/p/a.jsonl".into()));
            assert_eq!(
                b.target,
                OutputTarget::Udp("127.0.0.1:5600".parse().unwrap())
            );
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn rotation_fields_are_checked_with_table_field_and_value() {
    let text = format!("{MIN}[[output]]\ntarget = \"a.jsonl\"\nmax_bytes = 1048576\nkeep = 3\n");
    let c = Config::parse(&text, "x.toml", Path::new("/etc/p")).unwrap();
    match &c.output[..] {
        [OutputConfig::Json(j)] => assert_eq!(
            j.rotate(),
            Some(crate::output::Rotate {
                max_bytes: 1 << 20,
                keep: 3
            })
        ),
        o => panic!("{o:?}"),
    }
    for (table, want) in [
            (
                "max_bytes = 1048576\n",
                "x.toml: output.max_bytes = 1048576: rotation needs a file target, but target is \"stdout\"",
            ),
            (
                "target = \"a.jsonl\"\nkeep = 3\n",
                "x.toml: output.keep = 3: needs max_bytes (rotation by size) in the same table",
            ),
            (
                "target = \"a.jsonl\"\nmax_bytes = 1048576\nkeep = 0\n",
                "x.toml: output.keep = 0: expected 1..=100",
            ),
            (
                "target = \"a.jsonl\"\nmax_bytes = 100\n",
                "x.toml: output.max_bytes = 100: expected at least max_line_bytes (65536): one line must fit a file",
            ),
        ] {
            let e = parse_err(&format!("{MIN}[[output]]\n{table}"));
            assert!(e.starts_with(want), "{e}");
        }
}

#[test]
fn output_errors_name_the_table_field_and_value() {
    let e = parse_err(&format!(
        "{MIN}[[output]]\ntarget = \"a\"\n[[output]]\ntarget = \"udp://127.0.0.1:0\"\n"
    ));
    assert_eq!(
        e,
        "x.toml: output[1].target = \"udp://127.0.0.1:0\": port 0 is not a destination \
             (use udp://HOST:PORT with PORT 1..=65535)"
    );
    let e = parse_err(&format!("{MIN}[[output]]\nkind = \"rerun\"\n"));
    assert!(
        e.starts_with("x.toml: output[0]: unknown variant `rerun`"),
        "{e}"
    );
    let e = parse_err(&format!("{MIN}[output]\ntagret = \"a\"\n"));
    assert!(
        e.starts_with("x.toml: output.tagret = \"a\": unknown field `tagret`"),
        "{e}"
    );
    let e = parse_err(&format!("{MIN}[output]\nmax_line_bytes = 10\n"));
    assert_eq!(
        e,
        "x.toml: output.max_line_bytes = 10: expected at least 1024"
    );
    let e = parse_err(&format!("output = []\n{MIN}"));
    assert!(
        e.contains("output = []: expected at least one output table"),
        "{e}"
    );
}

#[test]
fn enumerated_values_are_one_line_with_every_accepted_spelling() {
    for (section, line, want) in [
            (
                "source",
                "pace = \"fst\"",
                "x.toml: source.pace = \"fst\": expected one of fast, realtime",
            ),
            (
                "source",
                "format = \"bgr\"",
                "x.toml: source.format = \"bgr\": expected one of yuyv, uyvy, nv12, grey, rgb24, i420, i422, i444",
            ),
            (
                "model",
                "decoder = \"ssd\"",
                "x.toml: model.decoder = \"ssd\": expected one of yolov8, yolo11, yolov5u, yolov5, end2end, yolox, yolox-decoded, rtdetr",
            ),
            (
                "model",
                "preprocess = \"bgr\"",
                "x.toml: model.preprocess = \"bgr\": expected one of letterbox, stretch, yolox",
            ),
            (
                "pipeline",
                "device = \"gpu\"",
                "x.toml: pipeline.device = \"gpu\": expected one of auto, cpu, cuda",
            ),
            (
                "pipeline",
                "precision = \"int8\"",
                "x.toml: pipeline.precision = \"int8\": expected one of fp32, fp16",
            ),
        ] {
            let text = if section == "pipeline" {
                format!("{MIN}[pipeline]\n{line}\n")
            } else {
                MIN.replace(&format!("[{section}]\n"), &format!("[{section}]\n{line}\n"))
            };
            assert_eq!(parse_err(&text), want);
        }
    let v4l2 = "[source]\nkind = \"v4l2\"\n[model]\npath = \"m.onnx\"\n";
    for (line, want) in [
            (
                "on_adjust = \"maybe\"",
                "x.toml: source.on_adjust = \"maybe\": expected one of adapt, refuse",
            ),
            (
                "format = \"i420\"",
                "x.toml: source.format = \"i420\": expected one of yuyv, uyvy, nv12, grey, rgb24, mjpeg",
            ),
        ] {
            let text = v4l2.replace("[model]", &format!("{line}\n[model]"));
            assert_eq!(parse_err(&text), want);
        }
    // Every format the synthetic camera renders is accepted for it.
    for (name, f) in PixelFormat::VALUES {
        let text = MIN.replace("[model]", &format!("format = \"{name}\"\n[model]"));
        let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
        assert!(matches!(c.source, SourceConfig::Synthetic { format, .. } if format == *f));
    }
}
