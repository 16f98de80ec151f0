//! Zero allocations after boot, across every thread of the pipeline: a
//! counting global allocator sees all of them. After 100 warm-up frames,
//! 1000 frames through capture, inference, postprocess, the JSON sink and
//! the periodic metrics line (every 50 ms here) must allocate nothing.
//!
//! One test in this binary, so nothing else allocates concurrently.

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn pipeline_makes_no_allocation_after_warm_up() {
    let dir = temp_dir("pipeline-alloc");
    let cfg = config(
        "[source]\nkind = \"synthetic\"\nseed = 11\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 2\nconf_threshold = 0.05\n\
         [metrics]\ninterval_s = 0.05\n",
    );
    let ov = Overrides {
        frames: Some(1300),
        output: Some(dir.join("out.jsonl").display().to_string()),
        ..Default::default()
    };
    let p = boot(&cfg, &ov).unwrap();
    let counters = Arc::clone(p.metrics.counters());
    let handle = std::thread::spawn(move || p.run(Arc::new(AtomicBool::new(false))));
    let processed = || counters.processed.load(Ordering::SeqCst);
    while processed() < 100 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (a, fa) = (ALLOCS.load(Ordering::SeqCst), processed());
    while processed() < 1100 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (b, fb) = (ALLOCS.load(Ordering::SeqCst), processed());
    let report = handle.join().unwrap();
    assert!(fb - fa >= 1000, "window covered {} frames", fb - fa);
    assert_eq!(
        b - a,
        0,
        "{} allocations during {} frames after warm-up",
        b - a,
        fb - fa
    );
    let lines = read_lines(&dir.join("out.jsonl"));
    assert_eq!(lines.len(), 1300);
    assert!(
        lines.iter().map(|l| l.dets.len()).sum::<usize>() > 0,
        "the sink wrote detections"
    );
    assert_eq!(report.metrics.counters().values().processed, 1300);
}
