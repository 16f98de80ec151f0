//! MJPEG replay, and an MJPEG camera, each decode 1000 frames with zero
//! heap allocations, counted
//! twice: by Rust's global allocator (the crate's counting allocator) and
//! at the malloc level, by this binary's own `malloc`/`calloc`/`realloc`/
//! `posix_memalign`/... that count and forward to glibc's `__libc_*`
//! entry points, so an allocation by any C code in the process (none is on
//! this path: the decoder is ours, see src/source/jpeg.rs) counts too.
//! The stream is made by ffmpeg from frames the synthetic source renders.
//!
//! One test per binary, so nothing else allocates concurrently.

mod common;
mod malloc_count;

use common::jpeg_cam::{split_jpegs, JpegCam, Shot};
use perceptd::count_alloc::{allocations, Counting};
use perceptd::source::replay;
use perceptd::source::v4l2::{Absent, CameraFormat, OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::y4m::Pace;
use perceptd::source::Source;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_thousand_mjpeg_frames_allocate_nothing_replayed_or_from_a_camera() {
    // The counter sees C code's allocations: glibc's strdup calls malloc.
    malloc_count::assert_installed();

    // 11 distinct 320x240 frames, 4:2:2 as USB cameras send, repeated to
    // 1001 JPEGs in one stream.
    let dir = common::temp_dir("mjpeg-alloc");
    let y4m = dir.join("scene.y4m");
    common::synthetic_y4m(&y4m, 7, 11, 320, 240);
    let one = dir.join("scene.mjpeg");
    common::ffmpeg(&[
        "-i",
        y4m.to_str().unwrap(),
        "-pix_fmt",
        "yuvj422p",
        "-q:v",
        "3",
        "-f",
        "mjpeg",
        one.to_str().unwrap(),
    ]);
    let clip = std::fs::read(&one).unwrap();
    let stream = dir.join("stream.mjpeg");
    std::fs::write(&stream, clip.repeat(91)).unwrap();

    let mut src = replay::open(&stream, Pace::Fast, 256).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    src.next_frame(&mut buf).unwrap();
    let (rust0, malloc0) = (allocations(), malloc_count::mallocs());
    let mut sum = 0u64;
    for _ in 0..1000 {
        src.next_frame(&mut buf).unwrap();
        sum += buf[buf.len() / 2] as u64;
    }
    let rust = allocations() - rust0;
    let mallocs = malloc_count::mallocs() - malloc0;
    assert!(matches!(
        src.next_frame(&mut buf),
        Err(perceptd::source::SourceError::End)
    ));
    assert!(sum > 0);
    assert_eq!(
        (rust, mallocs),
        (0, 0),
        "1000 MJPEG frames: {rust} Rust allocations, {mallocs} mallocs"
    );
    eprintln!("1000 MJPEG frames (320x240 4:2:2): {rust} Rust allocations, {mallocs} mallocs");

    // The same JPEGs from an MJPEG camera (`JpegCam`, the hardware-
    // boundary double: its dequeue copies into buffers mapped at boot),
    // decoded into the slot by `V4l2Source`.
    let mut cam = JpegCam::new(split_jpegs(&clip), vec![Shot::Jpeg(0)]);
    cam.endless = true;
    cam.pad = 5;
    let cfg = V4l2Config {
        device: "/dev/video-mjpeg".into(),
        format: CameraFormat::Mjpeg,
        width: 320,
        height: 240,
        fps: 30,
        buffers: 4,
        timeout_ms: 1000,
        on_adjust: OnAdjust::Refuse,
        absent: Absent::Fail,
        reconnect_max_ms: 100,
        max_memory_mb: 256,
    };
    let mut cam = V4l2Source::with_device(&cfg, cam).unwrap();
    let mut buf = vec![0u8; cam.desc().bytes()];
    cam.next_frame(&mut buf).unwrap();
    let (rust0, malloc0) = (allocations(), malloc_count::mallocs());
    let mut sum = 0u64;
    for _ in 0..1000 {
        cam.next_frame(&mut buf).unwrap();
        sum += buf[buf.len() / 2] as u64;
    }
    let rust = allocations() - rust0;
    let mallocs = malloc_count::mallocs() - malloc0;
    assert!(sum > 0);
    assert_eq!(cam.faults().bad_frames, 0);
    assert_eq!(
        (rust, mallocs),
        (0, 0),
        "1000 MJPEG camera frames: {rust} Rust allocations, {mallocs} mallocs"
    );
    eprintln!(
        "1000 MJPEG camera frames (320x240 4:2:2): {rust} Rust allocations, {mallocs} mallocs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
