//! Zero allocations after warm-up with the outputs that show pixels on:
//! annotated Y4M (written natively, ground grid and horizon drawn) and
//! annotated MP4 (an ffmpeg child fed through a pipe), beside JSON lines.
//! The counting global allocator sees every thread of this process: the
//! frame path (capture, inference, postprocess with its frame copies and,
//! in lockstep, its waits for a free copy) and the viewer threads
//! (conversion to RGB, drawing, RGB -> YUV, pipe and file writes) must all
//! allocate nothing. First in lockstep (every frame written), then live
//! (latest wins: frames the viewers cannot take are skipped and counted).
//!
//! One test in this binary, so nothing else allocates concurrently. Needs
//! `ffmpeg` (scripts/setup.sh --tests).

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use perceptd::count_alloc::{allocations, Counting};
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
         [[output]]\nkind = \"annotate\"\npath = \"{}\"\n",
        dir.join(format!("{pace}.jsonl")).display(),
        dir.join(format!("{pace}.y4m")).display(),
        dir.join(format!("{pace}.mp4")).display(),
    ));
    let ov = Overrides {
        frames: Some(WARM + WINDOW + 20),
        ..Default::default()
    };
    let p = boot(&cfg, &ov).unwrap_or_else(|e| panic!("boot: {e}"));
    let counters = Arc::clone(p.metrics.counters());
    let handle = std::thread::spawn(move || p.run(Arc::new(AtomicBool::new(false))));
    let processed = || counters.processed.load(Ordering::SeqCst);
    while processed() < WARM {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (a, fa) = (allocations(), processed());
    while processed() < WARM + WINDOW {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (b, fb) = (allocations(), processed());
    let report = handle.join().unwrap();
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
        if pace == "fast" {
            assert_eq!(o.stats.dropped, 0, "lockstep writes every frame: {}", o.name);
        }
    }
}

#[test]
fn annotate_outputs_make_no_allocation_after_warm_up() {
    let dir = temp_dir("viewer-alloc");
    window("fast", &dir);
    window("realtime", &dir);
}
