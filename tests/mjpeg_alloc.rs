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

use common::jpeg_cam::{split_jpegs, JpegCam, Shot};
use perceptd::count_alloc::{allocations, Counting};
use perceptd::source::replay;
use perceptd::source::v4l2::{Absent, CameraFormat, OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::y4m::Pace;
use perceptd::source::Source;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

#[global_allocator]
static GLOBAL: Counting = Counting;

static MALLOCS: AtomicU64 = AtomicU64::new(0);

extern "C" {
    fn __libc_malloc(n: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, n: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
}

// The malloc-level counter: glibc lets a program replace malloc by
// defining these; every call counts, then glibc's allocator does the work.

/// # Safety
/// The C contract of `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_malloc(n) }
}

/// # Safety
/// The C contract of `calloc`.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_calloc(n, size) }
}

/// # Safety
/// The C contract of `realloc`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_realloc(p, n) }
}

/// # Safety
/// The C contract of `memalign`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_memalign(align, n) }
}

/// # Safety
/// The C contract of `aligned_alloc`.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { memalign(align, n) }
}

/// # Safety
/// The C contract of `posix_memalign`.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> i32 {
    // SAFETY: forwarded; `out` is the caller's valid pointer.
    unsafe {
        let p = memalign(align, n);
        if p.is_null() {
            return libc::ENOMEM;
        }
        *out = p;
    }
    0
}

/// # Safety
/// The C contract of `free`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded unchanged.
    unsafe { __libc_free(p) }
}

#[test]
fn a_thousand_mjpeg_frames_allocate_nothing_replayed_or_from_a_camera() {
    // The counter sees C code's allocations: glibc's strdup calls malloc.
    let before = MALLOCS.load(Ordering::Relaxed);
    // SAFETY: a NUL-terminated literal; the copy is freed right away.
    unsafe { libc::free(libc::strdup(c"counted".as_ptr()).cast()) };
    assert!(
        MALLOCS.load(Ordering::Relaxed) > before,
        "malloc counter not installed"
    );

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
    let (rust0, malloc0) = (allocations(), MALLOCS.load(Ordering::Relaxed));
    let mut sum = 0u64;
    for _ in 0..1000 {
        src.next_frame(&mut buf).unwrap();
        sum += buf[buf.len() / 2] as u64;
    }
    let rust = allocations() - rust0;
    let mallocs = MALLOCS.load(Ordering::Relaxed) - malloc0;
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
    let (rust0, malloc0) = (allocations(), MALLOCS.load(Ordering::Relaxed));
    let mut sum = 0u64;
    for _ in 0..1000 {
        cam.next_frame(&mut buf).unwrap();
        sum += buf[buf.len() / 2] as u64;
    }
    let rust = allocations() - rust0;
    let mallocs = MALLOCS.load(Ordering::Relaxed) - malloc0;
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
