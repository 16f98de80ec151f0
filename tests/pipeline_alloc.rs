//! Zero allocations after boot, across every thread of the pipeline: a
//! counting global allocator sees all of them. After 100 warm-up frames,
//! 1000 frames through capture, inference, postprocess, three outputs (JSON
//! lines to a file, to a file rotated by size every 64 KiB, and to a UDP
//! receiver on 127.0.0.1) and the periodic
//! metrics line (every 50 ms here) must allocate nothing; nor
//! may the supervisor thread, here sending `WATCHDOG=1` every 50 ms and
//! `STATUS=` lines to a notify socket, nor the stage-deadline bookkeeping
//! (a 1 ns deadline makes every frame a miss), nor the tracking stage (on by
//! default: Kalman filters, assignment). The calibration distorts
//! strongly (undistortion remap in preprocessing, box mapping and ground
//! positions in postprocessing).
//!
//! One test in this binary, so nothing else allocates concurrently.

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use perceptd::count_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Receives datagrams into a fixed buffer (no allocation), calling `seen`
/// with each, until `idle_max` read timeouts in a row.
fn drain(
    mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    idle_max: u32,
    mut seen: impl FnMut(&[u8]),
) {
    let mut buf = [0u8; 65536];
    let mut idle = 0;
    while idle < idle_max {
        match recv(&mut buf) {
            Ok(n) => {
                seen(&buf[..n]);
                idle = 0;
            }
            Err(_) => idle += 1,
        }
    }
}

#[test]
fn pipeline_makes_no_allocation_after_warm_up() {
    let dir = temp_dir("pipeline-alloc");
    // A strongly distorting calibration: the synthetic camera renders
    // through it, preprocessing undistorts (remap table), postprocessing
    // maps boxes back and places them on the ground.
    let cal = dir.join("strong.yaml");
    std::fs::write(
        &cal,
        std::fs::read_to_string(root().join("calibration/front_camera.yaml"))
            .unwrap()
            .replace(
                "[-0.05, 0.01, 0.0, 0.0, 0.0]",
                "[-0.3, 0.08, 0.001, -0.002, 0.0]",
            ),
    )
    .unwrap();
    let udp_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_rx
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let udp_port = udp_rx.local_addr().unwrap().port();
    let udp_lines = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let udp_count = Arc::clone(&udp_lines);
    let udp_drain = std::thread::spawn(move || {
        drain(
            |b| udp_rx.recv(b),
            10,
            |_| {
                udp_count.fetch_add(1, Ordering::SeqCst);
            },
        )
    });
    let cfg = config(&format!(
        "[source]\nkind = \"synthetic\"\nseed = 11\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 2\nconf_threshold = 0.05\n\
         [calibration]\npath = \"{}\"\n\
         [metrics]\ninterval_s = 0.05\n\
         [[output]]\nkind = \"json\"\ntarget = \"{}\"\n\
         [[output]]\nkind = \"json\"\ntarget = \"{}\"\nmax_bytes = 65536\nkeep = 3\n\
         [[output]]\nkind = \"json\"\ntarget = \"udp://127.0.0.1:{udp_port}\"\n",
        cal.display(),
        dir.join("out.jsonl").display(),
        dir.join("rotated.jsonl").display()
    ));
    let ov = Overrides {
        frames: Some(1300),
        ..Default::default()
    };
    let mut p = boot(&cfg, &ov).unwrap();
    assert!(p.backend.rectified_input(), "the pipeline undistorts");
    let notify_path = dir.join("notify.sock");
    let notify_rx = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify_rx
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    p.service.notifier =
        perceptd::service::Notifier::connect(notify_path.to_str().unwrap(), Some(200_000)).unwrap();
    p.service.stage_deadline_ns = 1;
    p.service.hard_deadline_ns = 60_000_000_000;
    let pings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pings_rx = Arc::clone(&pings);
    let notify_drain = std::thread::spawn(move || {
        drain(
            |b| notify_rx.recv(b),
            20,
            |d| {
                if d == b"WATCHDOG=1" {
                    pings_rx.fetch_add(1, Ordering::SeqCst);
                }
            },
        )
    });
    let counters = Arc::clone(p.metrics.counters());
    let handle = std::thread::spawn(move || p.run(Arc::new(AtomicBool::new(false))));
    let processed = || counters.processed.load(Ordering::SeqCst);
    while processed() < 100 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (a, fa) = (allocations(), processed());
    while processed() < 1100 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (b, fb) = (allocations(), processed());
    let pings_in_window = pings.load(Ordering::SeqCst);
    let report = handle.join().unwrap();
    notify_drain.join().unwrap();
    udp_drain.join().unwrap();
    assert!(pings_in_window > 0, "the supervisor sent no WATCHDOG=1");
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
    assert!(
        lines
            .iter()
            .flat_map(|l| &l.dets)
            .any(|d| d.ground.is_some()),
        "detections have ground positions"
    );
    assert_eq!(report.outputs.len(), 3, "three outputs");
    for o in &report.outputs {
        assert_eq!(o.stats.published, 1300, "{o:?}");
    }
    // The rotating file rotated all along (so inside the measured window
    // too), kept 3 old files of at most 64 KiB, and its current file ends
    // with the same line as the plain file.
    let rotations = report.outputs[1].stats.rotations;
    let total = std::fs::metadata(dir.join("out.jsonl")).unwrap().len();
    assert!(
        rotations >= 10 && rotations >= total / 65536 - 1,
        "{rotations} rotations for {total} bytes"
    );
    let newest = read_lines(&dir.join("rotated.jsonl"));
    for k in 1..=3 {
        let f = dir.join(format!("rotated.jsonl.{k}"));
        assert!(
            std::fs::metadata(&f).unwrap().len() <= 65536,
            "{}",
            f.display()
        );
    }
    assert!(!dir.join("rotated.jsonl.4").exists(), "keep = 3");
    assert_eq!(
        newest.last().map(|l| l.seq),
        lines.last().map(|l| l.seq),
        "the current file ends with the last frame"
    );
    assert_eq!(udp_lines.load(Ordering::SeqCst), 1300, "UDP lines received");
    assert!(
        lines
            .iter()
            .flat_map(|l| &l.dets)
            .any(|d| d.track_id.is_some()),
        "tracking (on by default) ran: detections have track ids"
    );
    assert_eq!(report.metrics.counters().values().processed, 1300);
    assert!(report.metrics.counters().values().deadline_misses >= 1300);
}
