//! Several outputs at once (`[[output]]`): two JSON outputs, a file and a
//! UDP receiver on 127.0.0.1, get the same lines; an output that fails
//! (its reader gone: EPIPE; a full disk: `/dev/full`) is counted per output
//! in the final summary while the other output still receives every line,
//! and the run finishes every frame and exits 0.

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

const MODEL: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

/// A synthetic run with `outputs` (TOML) as its outputs.
fn config_text(outputs: &str) -> String {
    format!(
        "[source]\nkind = \"synthetic\"\nseed = 5\n\
         [model]\npath = \"{}\"\nthreads = 1\nconf_threshold = 0.05\n\
         [metrics]\ninterval_s = 0\n{outputs}",
        root().join(MODEL).display()
    )
}

fn json_output(target: &str) -> String {
    format!("[[output]]\nkind = \"json\"\ntarget = \"{target}\"\n")
}

/// The file's lines, each with its `\n`.
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .map(str::to_string)
        .collect()
}

#[test]
fn file_and_udp_outputs_get_the_same_lines() {
    const FRAMES: usize = 150;
    let dir = temp_dir("outputs-file-udp");
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let file = dir.join("a.jsonl");
    let cfg = config(&config_text(&format!(
        "{}{}",
        json_output(&file.display().to_string()),
        json_output(&format!("udp://127.0.0.1:{port}"))
    )));
    assert_eq!(cfg.output.len(), 2);
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < FRAMES {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(_) => break,
            }
        }
        got
    });
    let ov = Overrides {
        frames: Some(FRAMES as u64),
        ..Default::default()
    };
    let report = boot(&cfg, &ov)
        .unwrap()
        .run(Arc::new(AtomicBool::new(false)));
    let udp = receiver.join().unwrap();
    let file_lines = lines_of(&file);
    assert_eq!(file_lines.len(), FRAMES);
    assert!(
        file_lines.iter().any(|l| l.contains("\"class_id\"")),
        "no detections at all"
    );
    assert_eq!(udp.len(), FRAMES, "UDP receiver got {} lines", udp.len());
    assert!(udp == file_lines, "the UDP lines differ from the file's");
    assert_eq!(report.outputs.len(), 2);
    for o in &report.outputs {
        assert_eq!(
            (o.stats.published, o.stats.dropped),
            (FRAMES as u64, 0),
            "{o:?}"
        );
    }
    assert_eq!(
        report.outputs[1].name,
        format!("json:udp://127.0.0.1:{port}")
    );
}

/// Runs the binary on `cfg` for `frames` frames with stdout as given
/// (closed right after the start with `close_stdout`); returns the exit
/// code and stderr. Fails if it runs over 2 minutes.
fn run_binary(cfg: &Path, frames: u32, stdout: Stdio, close_stdout: bool) -> (i32, String) {
    let mut child = common::perceptd()
        .args(["run", "--frames", &frames.to_string(), "--config"])
        .arg(cfg)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if close_stdout {
        drop(child.stdout.take());
    }
    wait_bounded(child, Duration::from_secs(120))
}

/// A config in a fresh folder `name` with two JSON outputs, `first` and a
/// file; returns the config's path and the file's.
fn failing_and_file(name: &str, first: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let file = dir.join("ok.jsonl");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        config_text(&format!(
            "{}{}",
            json_output(first),
            json_output(&file.display().to_string())
        )),
    )
    .unwrap();
    (cfg, file)
}

fn final_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("[perceptd] final: "))
        .unwrap_or_else(|| panic!("no final summary: {stderr}"))
}

/// Every line of the healthy output is there, seq 0..frames in order.
fn assert_every_line(path: &Path, frames: usize) {
    let lines = read_lines(path);
    assert_eq!(lines.len(), frames);
    assert!(lines.iter().enumerate().all(|(i, l)| l.seq == i as u64));
}

#[test]
fn closed_stdout_output_is_counted_and_the_file_output_gets_every_line() {
    let (cfg, file) = failing_and_file("outputs-epipe", "stdout");
    let (code, err) = run_binary(&cfg, 60, Stdio::piped(), true);
    assert_eq!(code, 0, "{err}");
    let line = final_line(&err);
    assert!(line.starts_with("[perceptd] final: frames 60 "), "{err}");
    assert!(line.contains("sink errors 60,"), "{err}");
    assert!(
        line.contains("; output json:stdout published 0 dropped 60 (broken pipe 60,"),
        "{err}"
    );
    assert!(
        line.contains(&format!(
            "; output json:{} published 60 dropped 0 (",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("output json:stdout: 60 frames could not be published (broken pipe 60,"),
        "{err}"
    );
    assert_every_line(&file, 60);
}

#[test]
fn full_disk_output_is_counted_and_the_file_output_gets_every_line() {
    let (cfg, file) = failing_and_file("outputs-enospc", "/dev/full");
    let (code, err) = run_binary(&cfg, 40, Stdio::null(), false);
    assert_eq!(code, 0, "{err}");
    let line = final_line(&err);
    assert!(line.contains("sink errors 40,"), "{err}");
    assert!(
        line.contains("; output json:/dev/full published 0 dropped 40 (broken pipe 0, connection refused 0, no space 40,"),
        "{err}"
    );
    assert_every_line(&file, 40);
}

#[test]
fn udp_port_zero_is_one_error_line() {
    let dir = temp_dir("outputs-port0");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config_text(&json_output("udp://127.0.0.1:0"))).unwrap();
    let (code, err) = run_binary(&cfg, 1, Stdio::null(), false);
    assert_eq!(code, 1, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: {}: output[0].target = \"udp://127.0.0.1:0\": port 0 is not a destination \
             (use udp://HOST:PORT with PORT 1..=65535)",
            cfg.display()
        )
        .as_str()]
    );
    // The same target on the command line.
    let out = common::perceptd()
        .args(["run", "--frames", "1", "--model", MODEL])
        .args(["--output", "udp://127.0.0.1:0"])
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [
            "error: output target \"udp://127.0.0.1:0\": port 0 is not a destination \
          (use udp://HOST:PORT with PORT 1..=65535)"
        ]
    );
}
