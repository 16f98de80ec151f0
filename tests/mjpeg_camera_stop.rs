//! SIGTERM while an MJPEG camera waits for a frame: the wait ends within a
//! second and the source says the stream ended (the pipeline then drains
//! and prints its summary). The camera is `JpegCam`, the hardware-boundary
//! test double (tests/common/jpeg_cam.rs), stalled after its first frame;
//! its stall waits as the real device's poll does, in slices that look at
//! the stop flag. The stop request is what perceptd's SIGTERM handler
//! sets (`stop::request`; the handler itself, which also exits the
//! process after a grace period, is tested with real signals on the
//! binary in tests/hardening_signals.rs). Its own binary: a stop request
//! is process-wide.

mod common;

use common::jpeg_cam::{JpegCam, Shot};
use perceptd::source::v4l2::{Absent, CameraFormat, OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::{Source, SourceError};
use std::time::{Duration, Instant};

#[test]
fn sigterm_while_waiting_for_a_frame_ends_the_wait_within_a_second() {
    let jpeg = std::fs::read(common::root().join("tests/fixtures/jpeg/i422.jpg")).unwrap();
    let cam = JpegCam::new(vec![jpeg], vec![Shot::Jpeg(0), Shot::Jpeg(0)]);
    let cfg = V4l2Config {
        device: "/dev/video-mjpeg".into(),
        format: CameraFormat::Mjpeg,
        width: 64,
        height: 32,
        fps: 30,
        buffers: 4,
        // A stall would only be declared after 20 s.
        timeout_ms: 20_000,
        on_adjust: OnAdjust::Adapt,
        absent: Absent::Fail,
        reconnect_max_ms: 100,
        max_memory_mb: 256,
    };
    let mut src = V4l2Source::with_device(&cfg, cam).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    src.next_frame(&mut buf).unwrap();

    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        perceptd::stop::request();
    });
    let t0 = Instant::now();
    let r = src.next_frame(&mut buf);
    let waited = t0.elapsed();
    assert!(matches!(r, Err(SourceError::End)), "{r:?}");
    assert!(
        waited < Duration::from_millis(1300),
        "stopped after {waited:?} (signal at 300 ms)"
    );
    assert_eq!(src.faults().stalls, 0, "a stop is not a stall");
}
