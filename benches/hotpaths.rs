//! `cargo bench --bench hotpaths [-- synthetic|preprocess]`: per-frame cost
//! of two CPU hot paths, wall and thread CPU time (the latter robust on a
//! shared machine). Replaces the timed `#[ignore]` tests that used to live
//! in `source/synthetic.rs` and `preprocess/mod.rs`.
//!
//! - `synthetic`: the capture thread's cost of the synthetic source
//!   (`next_frame` into a ring slot's frame buffer), 640x480, per pixel
//!   format. A slot of the CUDA backend is pinned write-combined memory,
//!   which the CPU must only write: the source renders into its own cached
//!   buffer and copies (or converts) into the slot, which is only ever a
//!   destination (no read back).
//! - `preprocess`: the CPU letterbox (and undistortion) of YUYV frames into
//!   the 640x640 model input.
//! - `mjpeg FILE`: the JPEG decoder (src/source/jpeg.rs) on every frame of a
//!   raw MJPEG stream in turn, into one frame buffer; prints one line of
//!   JSON last (`benches/mjpeg_vs_opencv.py` runs it beside OpenCV).
//!
//! Numbers are per frame, means over the run; compare runs made side by
//! side (same machine, same load), as ratios.

use perceptd::calibration::Calibration;
use perceptd::frame::{FrameDesc, PixelFormat};
use perceptd::preprocess::{Letterbox, RemapTable};
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use perceptd::source::Source;
use std::time::Instant;

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Mean (wall ms, thread CPU ms) per call of `f` over `n` calls.
fn time(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (t0, c0) = (Instant::now(), thread_cpu_s());
    for _ in 0..n {
        f();
    }
    (
        t0.elapsed().as_secs_f64() * 1e3 / n as f64,
        (thread_cpu_s() - c0) * 1e3 / n as f64,
    )
}

fn synthetic(frames: usize) {
    println!("synthetic source, capture thread, 640x480, {frames} frames each");
    for format in [PixelFormat::Rgb24, PixelFormat::Yuyv, PixelFormat::Nv12] {
        let mut c = SyntheticConfig::front_camera(1);
        c.format = format;
        let mut src = SyntheticSource::new(c).expect("front camera config");
        let mut slot = vec![0u8; src.desc().bytes()];
        let (wall, cpu) = time(frames, || {
            src.next_frame(&mut slot).expect("frame");
        });
        println!(
            "  {:<6} {wall:7.3} ms wall {cpu:7.3} ms CPU per frame",
            format.name()
        );
    }
}

fn preprocess(frames: usize) {
    println!("CPU letterbox of YUYV into 640x640, {frames} frames each");
    let strong = include_str!("../calibration/front_camera.yaml").replace(
        "[-0.05, 0.01, 0.0, 0.0, 0.0]",
        "[-0.3, 0.08, 0.001, -0.002, 0.0]",
    );
    let cal = Calibration::from_yaml_str(&strong, "strong").expect("calibration");
    for (w, h, undistort) in [
        (640, 480, false),
        (640, 480, true),
        (1280, 720, false),
        (1280, 720, true),
    ] {
        let desc = FrameDesc {
            format: PixelFormat::Yuyv,
            width: w,
            height: h,
        };
        let mut lb = Letterbox::new(desc, 640, 640).expect("letterbox");
        if undistort {
            let cal = cal.with_image_size(w as u32, h as u32);
            if let Some(t) = RemapTable::build(&cal, &lb).expect("remap") {
                lb.set_remap(t).expect("remap fits");
            }
        }
        let frame: Vec<u8> = (0..desc.bytes()).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![0.0; lb.dst_len()];
        let (wall, cpu) = time(frames, || lb.run(&frame, &mut out).expect("run"));
        let what = if undistort {
            "undistort+letterbox"
        } else {
            "letterbox"
        };
        println!("  {what:<20} {w}x{h}: {wall:7.3} ms wall {cpu:7.3} ms CPU per frame");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names what to run.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = args.is_empty();
    let frames = std::env::var("FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    if all || args.iter().any(|a| a == "synthetic") {
        synthetic(frames);
    }
    if all || args.iter().any(|a| a == "preprocess") {
        preprocess(frames / 2);
    }
    if let Some(i) = args.iter().position(|a| a == "mjpeg") {
        match args.get(i + 1) {
            Some(path) => mjpeg(path, frames),
            None => eprintln!("mjpeg: give the stream: cargo bench --bench hotpaths -- mjpeg FILE"),
        }
    }
}

fn mjpeg(path: &str, frames: usize) {
    use perceptd::source::jpeg::{probe, JpegDecoder};
    use perceptd::source::mjpeg::{jpeg_extent, Extent};
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut jpegs = Vec::new();
    let mut rest = &data[..];
    while let Extent::Complete(n) = jpeg_extent(rest) {
        jpegs.push(&rest[..n]);
        rest = &rest[n..];
    }
    let info = probe(jpegs.first().expect("no JPEG in the stream")).expect("probe");
    let mut dec = JpegDecoder::new(info);
    let mut out = vec![0u8; info.desc().bytes()];
    let mut k = 0;
    let (wall, cpu) = time(frames, || {
        dec.decode(jpegs[k % jpegs.len()], &mut out)
            .expect("decode");
        k += 1;
    });
    let bytes: usize = jpegs.iter().map(|j| j.len()).sum();
    println!(
        "MJPEG decode {}x{} {} ({} JPEGs, {:.0} KiB each), {frames} frames: {wall:7.3} ms wall {cpu:7.3} ms CPU per frame",
        info.width,
        info.height,
        info.format.name(),
        jpegs.len(),
        bytes as f64 / jpegs.len() as f64 / 1024.0
    );
    println!("{{\"wall_ms\": {wall:.4}, \"cpu_ms\": {cpu:.4}, \"frames\": {frames}}}");
}
