//! `perceptd record`: a V4L2 camera to a file, until `--frames` or a stop
//! request (SIGTERM / SIGINT: the file is finished, exit 0).
//!
//! * A raw format (`--format yuyv`, ...) is written as Y4M, each frame's
//!   capture time (CLOCK_MONOTONIC ns) as the frame parameter `XTS=<ns>`.
//! * `--format mjpeg` keeps the camera's JPEGs as they came — not decoded,
//!   not re-encoded — one after another: a raw MJPEG stream, which
//!   `perceptd replay` reads back (by its content, `FF D8`). Each JPEG is
//!   written through its EOI (the padding some cameras put after it is
//!   left out); an empty or cut JPEG is dropped and counted, as in a run.
//!   A camera that offers no MJPEG is refused at open with one line
//!   listing what it offers; raw MJPEG has no timestamps, so none are
//!   kept.
//!
//! Bad frames, stalls and reconnections are skipped (the camera logs and
//! counts them); anything else ends the recording with its error.
//! Boot allocates the camera and one frame buffer; the loop does not
//! allocate. Main thread.

use crate::source::v4l2::dev::CaptureDevice;
use crate::source::v4l2::{Absent, CameraFormat, OnAdjust, V4l2Config, V4l2Source};
use crate::source::y4m::{FrameRate, Y4mWriter};
use crate::source::{Source, SourceError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The camera settings `record` opens a device with.
pub fn camera_config(
    device: PathBuf,
    format: CameraFormat,
    width: usize,
    height: usize,
    fps: u32,
) -> V4l2Config {
    V4l2Config {
        device,
        format,
        width,
        height,
        fps,
        buffers: 4,
        timeout_ms: 2000,
        on_adjust: OnAdjust::Adapt,
        absent: Absent::Fail,
        reconnect_max_ms: 2000,
        max_memory_mb: crate::budget::DEFAULT_MAX_MEMORY_MB,
    }
}

/// `perceptd record`: open the camera at `device`, record it into `out`
/// and say what was written (one line).
pub fn from_device(
    device: PathBuf,
    out: &Path,
    frames: Option<u64>,
    format: CameraFormat,
    [width, height]: [usize; 2],
    fps: u32,
) -> Result<String, SourceError> {
    let cfg = camera_config(device, format, width, height, fps);
    let mut cam = V4l2Source::open(&cfg)?;
    let r = record(&mut cam, out, frames, fps, format == CameraFormat::Mjpeg)?;
    let bad = match r.bad {
        0 => String::new(),
        n => format!(", {n} bad frames dropped"),
    };
    Ok(format!(
        "recorded {} frames ({} bytes{bad}) from {} to {}",
        r.frames,
        r.bytes,
        cam.describe(),
        out.display()
    ))
}

/// What a recording wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    pub frames: u64,
    /// Bytes written (MJPEG: the JPEGs; Y4M: header and frames).
    pub bytes: u64,
    /// Frames dropped as bad (flagged, short, empty or cut JPEGs).
    pub bad: u64,
}

/// Record `cam` into `out` as its format says (see the module doc) until
/// `frames` are written or a stop is requested.
pub fn record<D: CaptureDevice>(
    cam: &mut V4l2Source<D>,
    out: &Path,
    frames: Option<u64>,
    fps: u32,
    mjpeg: bool,
) -> Result<Recorded, SourceError> {
    if mjpeg {
        record_mjpeg(cam, out, frames)
    } else {
        record_y4m(cam, out, frames, fps)
    }
}

/// Whether the recording goes on after `e` (skipped) or ends with it.
fn skippable(e: &SourceError, bad: &mut u64) -> bool {
    match e {
        SourceError::BadFrame { .. } => {
            *bad += 1;
            true
        }
        SourceError::Timeout { .. } | SourceError::Reconnecting { .. } => true,
        _ => false,
    }
}

fn record_y4m<D: CaptureDevice>(
    cam: &mut V4l2Source<D>,
    out: &Path,
    frames: Option<u64>,
    fps: u32,
) -> Result<Recorded, SourceError> {
    let desc = cam.desc();
    let (num, den) = cam.frame_rate().unwrap_or((fps, 1));
    let mut w = Y4mWriter::create(out, desc, FrameRate { num, den })?;
    crate::stop::set_phase(crate::stop::Phase::Running);
    let mut buf = vec![0u8; desc.bytes()];
    let mut r = Recorded::default();
    while !crate::stop::requested() && frames.is_none_or(|f| r.frames < f) {
        match cam.next_frame(&mut buf) {
            Ok(stamp) => {
                w.write_frame(&buf, stamp)?;
                r.frames += 1;
            }
            Err(SourceError::End) => break,
            Err(e) if skippable(&e, &mut r.bad) => {}
            Err(e) => return Err(e),
        }
    }
    let written = w.finish()?;
    r.frames = written;
    r.bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    Ok(r)
}

fn record_mjpeg<D: CaptureDevice>(
    cam: &mut V4l2Source<D>,
    out: &Path,
    frames: Option<u64>,
) -> Result<Recorded, SourceError> {
    let path = out.display().to_string();
    let io = |e: std::io::Error| SourceError::Io {
        path: path.clone(),
        msg: e.to_string(),
    };
    let Some(cap) = cam.jpeg_capacity() else {
        return Err(SourceError::Config(format!(
            "{}: --format mjpeg keeps the camera's JPEGs, but it delivers {}; record it with --format {} (Y4M)",
            cam.describe(),
            cam.desc().format.name(),
            crate::config::Choice::name(cam.desc().format)
        )));
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    crate::stop::set_phase(crate::stop::Phase::Running);
    let mut buf = vec![0u8; cap];
    let mut r = Recorded::default();
    while !crate::stop::requested() && frames.is_none_or(|f| r.frames < f) {
        match cam.next_jpeg(&mut buf) {
            Ok((n, _stamp)) => {
                w.write_all(&buf[..n]).map_err(io)?;
                r.frames += 1;
                r.bytes += n as u64;
            }
            Err(SourceError::End) => break,
            Err(e) if skippable(&e, &mut r.bad) => {}
            Err(e) => return Err(e),
        }
    }
    w.flush().map_err(io)?;
    w.get_ref().sync_all().map_err(io)?;
    Ok(r)
}
