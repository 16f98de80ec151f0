//! Zero allocations after warm-up with the outputs that show pixels on:
//! annotated Y4M (written natively, ground grid and horizon drawn),
//! annotated MP4 (an ffmpeg child fed through a pipe) and the live view
//! (http, with an MJPEG reader connected), the MCAP recorder and the
//! Foxglove WebSocket server (with a Python client subscribed to every
//! channel, `scripts/foxglove_client.py`, in its own process), beside
//! JSON lines.
//! The counting global allocator sees every thread of this process: the
//! frame path (capture, inference, postprocess with its frame copies and,
//! in lockstep, its waits for a free copy) and the annotate viewer threads
//! (conversion to RGB, drawing, RGB -> YUV, pipe and file writes) must all
//! allocate nothing. The threads of the live view, the MCAP recorder and
//! the Foxglove server are side threads that state what they allocate
//! (the JPEG encoder's buffers, the MCAP writer's chunks, per-client
//! copies and WebSocket messages): counted apart, reported per frame and
//! bounded here. First in lockstep
//! (every annotated frame written), then live (latest wins: frames the
//! viewers cannot take are skipped and counted).
//!
//! One test in this binary, so nothing else allocates concurrently. Needs
//! `ffmpeg` and the Python `websockets` package in target/pydeps
//! (scripts/setup.sh --tests).

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use perceptd::count_alloc::{allocations, side_allocations, Counting};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM: u64 = 40;
const WINDOW: u64 = 200;

fn window(pace: &str, dir: &std::path::Path) {
    let cfg = config(&format!(
        "[source]\nkind = \"synthetic\"\nseed = 5\npace = \"{pace}\"\nfps = 200\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 2\nconf_threshold = 0.05\n\
         [calibration]\npath = \"builtin:front_camera\"\n\
         [metrics]\ninterval_s = 0.05\n\
         [[output]]\nkind = \"json\"\ntarget = \"{}\"\n\
         [[output]]\nkind = \"annotate\"\npath = \"{}\"\ngrid = true\n\
         [[output]]\nkind = \"annotate\"\npath = \"{}\"\n\
         [[output]]\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\n\
         [[output]]\nkind = \"mcap\"\npath = \"{}\"\n\
         [[output]]\nkind = \"foxglove\"\nlisten = \"127.0.0.1:0\"\n",
        dir.join(format!("{pace}.jsonl")).display(),
        dir.join(format!("{pace}.y4m")).display(),
        dir.join(format!("{pace}.mp4")).display(),
        dir.join(format!("{pace}.mcap")).display(),
    ));
    let ov = Overrides {
        frames: Some(WARM + WINDOW + 100),
        ..Default::default()
    };
    let p = boot(&cfg, &ov).unwrap_or_else(|e| panic!("boot: {e}"));
    // The port the live view got: its output's name is http:127.0.0.1:PORT.
    let port: u16 = p
        .chain
        .outputs
        .names()
        .find_map(|n| n.strip_prefix("http:127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .expect("an http output");
    let fox_port: u16 = p
        .chain
        .outputs
        .names()
        .find_map(|n| n.strip_prefix("foxglove:127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .expect("a foxglove output");
    let counters = Arc::clone(p.metrics.counters());
    let handle = std::thread::spawn(move || p.run(Arc::new(AtomicBool::new(false))));
    // A viewer reading the stream through the whole run (connected before
    // the window: its thread is spawned then).
    let reader = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /stream.mjpg HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    // A Foxglove client subscribed to every channel through the whole run
    // (a separate process: its allocations are not this process's).
    let fox_client = std::process::Command::new("python3")
        .arg(root().join("scripts/foxglove_client.py"))
        .args([&format!("ws://127.0.0.1:{fox_port}"), "120", "0"])
        .env("PYTHONPATH", root().join("target/pydeps"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let processed = || counters.processed.load(Ordering::SeqCst);
    while processed() < WARM {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (a, sa, fa) = (allocations(), side_allocations(), processed());
    // The window starts where `fa` was read (the warm-up loop may have
    // overshot WARM on a loaded machine), and the run has 100 frames of
    // slack after WARM + WINDOW; stop waiting if it ended anyway.
    while processed() < fa + WINDOW && !handle.is_finished() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (b, sb, fb) = (allocations(), side_allocations(), processed());
    let report = handle.join().unwrap();
    let streamed = reader.join().unwrap();
    let fox = fox_client.wait_with_output().unwrap();
    assert!(fox.status.success(), "the Foxglove client failed");
    let fox: serde_json::Value = serde_json::from_slice(&fox.stdout).unwrap();
    let images = fox["counts"]["/camera/image"].as_u64().unwrap_or(0);
    assert!(
        images > 10,
        "the Foxglove client got {images} images: {fox}"
    );
    assert!(streamed > 10_000, "the MJPEG reader got {streamed} bytes");
    let http = report
        .outputs
        .iter()
        .find(|o| o.name.starts_with("http:"))
        .unwrap();
    eprintln!(
        "{pace}: frame path and annotate threads {} allocations in {} frames; side threads \
         (http, mcap, foxglove) {} allocations ({:.1} per frame; http shown {} skipped {}; \
         foxglove client got {images} images)",
        b - a,
        fb - fa,
        sb - sa,
        (sb - sa) as f64 / (fb - fa) as f64,
        http.stats.published,
        http.stats.dropped
    );
    assert!(
        sb - sa <= 64 * (fb - fa),
        "side threads: {} allocations in {} frames",
        sb - sa,
        fb - fa
    );
    assert!(fb - fa >= WINDOW, "window covered {} frames", fb - fa);
    assert_eq!(
        b - a,
        0,
        "{pace}: {} allocations in {} frames with annotate outputs on",
        b - a,
        fb - fa
    );
    let frames = report.metrics.counters().values().processed;
    for o in &report.outputs[1..] {
        assert_eq!(o.stats.published + o.stats.dropped, frames, "{}", o.name);
        if pace == "fast" && (o.name.starts_with("annotate:") || o.name.starts_with("mcap:")) {
            assert_eq!(
                o.stats.dropped, 0,
                "lockstep writes every frame: {}",
                o.name
            );
        }
    }
}

#[test]
fn annotate_http_mcap_and_foxglove_outputs_make_no_allocation_on_the_frame_path() {
    let dir = temp_dir("viewer-alloc");
    window("fast", &dir);
    window("realtime", &dir);
}
