//! Sink faults through the real binary: the reader of stdout gone (EPIPE;
//! SIGPIPE must not kill the process), a disk full (`/dev/full`), a UDP
//! receiver gone (ECONNREFUSED), and a stdout pipe nobody reads (the frame
//! path must not block). Each run finishes every frame, exits 0, and
//! counts the lost lines by kind in its final summary.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const MODEL: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

fn perceptd(frames: u32, output: &str) -> Command {
    let mut c = common::perceptd();
    c.args(["run", "--model", MODEL, "--frames", &frames.to_string()])
        .args(["--output", output])
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn final_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("[perceptd] final: "))
        .unwrap_or_else(|| panic!("no final summary: {stderr}"))
}

#[test]
fn closed_stdout_is_counted_not_fatal() {
    let mut child = perceptd(60, "stdout")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let (code, err) = wait_bounded(child, Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert!(
        final_line(&err).starts_with("[perceptd] final: frames 60 "),
        "{err}"
    );
    assert!(final_line(&err).contains("sink errors 60"), "{err}");
    assert!(err.contains("broken pipe 60"), "{err}");
}

#[test]
fn disk_full_is_counted_not_fatal() {
    let (code, err) = wait_bounded(
        perceptd(40, "/dev/full")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{err}");
    assert!(final_line(&err).contains("sink errors 40"), "{err}");
    assert!(err.contains("no space 40"), "{err}");
}

#[test]
fn udp_receiver_gone_is_counted_not_fatal() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("udp://127.0.0.1:{port}");
    let (code, err) = wait_bounded(
        perceptd(40, &target)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{err}");
    let line = final_line(&err);
    assert!(line.starts_with("[perceptd] final: frames 40 "), "{err}");
    // The ICMP answer arrives after a send, so every other send or so
    // reports it; at least one does.
    assert!(!line.contains("sink errors 0,"), "{err}");
    assert!(err.contains("connection refused "), "{err}");
}

#[test]
fn unread_stdout_pipe_never_blocks_the_frames() {
    // ~400 bytes a line: 600 lines overflow a 64 KiB pipe nobody reads.
    let child = perceptd(600, "stdout")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = wait_bounded(child, Duration::from_secs(300));
    assert_eq!(code, 0, "{err}");
    let line = final_line(&err);
    assert!(line.starts_with("[perceptd] final: frames 600 "), "{err}");
    assert!(!line.contains("sink errors 0,"), "{err}");
    assert!(err.contains("would block "), "{err}");
}
