//! Soak (not in CI; `scripts/soak.sh` runs it): N synthetic frames
//! (default 10^6, first argument) lockstep through the real pipeline, with
//! a counting global allocator. Prints RSS (from /proc/self/statm, read
//! without allocating) every `N / 20` frames; fails (exit 1) on any
//! allocation after the first 200 frames or an RSS that grows after them
//! (1 MiB of slack for the kernel's own bookkeeping).
//!
//! An example rather than an ignored test: the test harness allocates in
//! the same process (its "running for over 60 seconds" notice), which a
//! process-wide allocation count cannot tell from the pipeline's.

use perceptd::boot::{boot, Overrides};
use perceptd::config::Config;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perceptd::count_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Resident set size in KiB, read into a stack buffer (no allocation).
fn rss_kib() -> u64 {
    let mut buf = [0u8; 128];
    let n = std::fs::File::open("/proc/self/statm")
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    let pages = buf[..n]
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf takes a constant and returns a number.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page / 1024
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let frames: u64 = match std::env::args().nth(1) {
        None => 1_000_000,
        Some(a) => match a.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: soak [FRAMES]");
                std::process::exit(2)
            }
        },
    };
    // The first print allocates stdout's buffer: do it during boot.
    println!("soak: {frames} frames, booting");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::parse(
        "[source]\nkind = \"synthetic\"\nseed = 3\nwidth = 320\nheight = 240\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 1\nconf_threshold = 0.05\n\
         [pipeline]\nstage_deadline_ms = 250\n[metrics]\ninterval_s = 0\n",
        "<soak config>",
        root,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ov = Overrides {
        frames: Some(frames),
        output: Some("/dev/null".into()),
        ..Default::default()
    };
    let p = boot(&cfg, &ov).unwrap_or_else(|e| panic!("{e}"));
    let counters = Arc::clone(p.metrics.counters());
    let t0 = Instant::now();
    let handle = std::thread::spawn(move || p.run(Arc::new(AtomicBool::new(false))));
    let processed = || counters.processed.load(Ordering::SeqCst);
    let warm = 200.min(frames);
    while processed() < warm {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (a0, rss0) = (allocations(), rss_kib());
    let step = (frames / 20).max(1);
    let mut next = warm + step;
    let mut rss_max = rss0;
    println!("soak: after {warm} frames: rss {rss0} KiB");
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        let done = processed();
        if done >= next {
            let rss = rss_kib();
            rss_max = rss_max.max(rss);
            println!(
                "soak: {done:>8} frames {:>7.1} s  rss {rss} KiB  allocations since warm-up {}",
                t0.elapsed().as_secs_f64(),
                allocations() - a0
            );
            next += step;
        }
    }
    let after = allocations() - a0;
    let rss_end = rss_kib();
    let report = handle.join().unwrap();
    let c = report.metrics.counters().values();
    println!(
        "soak: done {} frames in {:.1} s ({:.1} fps); rss {rss0} -> {rss_end} KiB (max {rss_max}); allocations after warm-up: {after}; deadline misses {}",
        c.processed,
        report.elapsed_s,
        c.processed as f64 / report.elapsed_s,
        c.deadline_misses
    );
    let ok = c.processed == frames && after == 0 && rss_max <= rss0 + 1024;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
