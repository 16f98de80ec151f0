//! `perceptd record`: a V4L2 camera to Y4M, each frame's capture
//! timestamp (CLOCK_MONOTONIC ns) stored as the frame parameter XTS=<ns>.
//! Part of the binary (moved out of main.rs, which was over 1200 lines).

use anyhow::Result;
use perceptd::frame::PixelFormat;
use perceptd::source::{Source, SourceError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[allow(clippy::too_many_arguments)] // the command's flags, one for one
pub(crate) fn record(
    stop: &AtomicBool,
    device: PathBuf,
    out: &Path,
    frames: Option<u64>,
    format: PixelFormat,
    width: usize,
    height: usize,
    fps: u32,
) -> Result<i32> {
    use perceptd::source::v4l2::{OnAdjust, V4l2Config, V4l2Source};
    use perceptd::source::y4m::{FrameRate, Y4mWriter};
    let cfg = V4l2Config {
        device,
        format,
        width,
        height,
        fps,
        buffers: 4,
        timeout_ms: 2000,
        on_adjust: OnAdjust::Adapt,
        absent: perceptd::source::v4l2::Absent::Fail,
        reconnect_max_ms: 2000,
    };
    let mut cam = V4l2Source::open(&cfg)?;
    let desc = cam.desc();
    let (num, den) = cam.frame_rate().unwrap_or((fps, 1));
    let mut w = Y4mWriter::create(out, desc, FrameRate { num, den })?;
    // The handler (installed in `main`) now sets STOP; the Y4M is finished.
    perceptd::stop::set_phase(perceptd::stop::Phase::Running);
    let mut buf = vec![0u8; desc.bytes()];
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) && frames.is_none_or(|f| n < f) {
        match cam.next_frame(&mut buf) {
            Ok(stamp) => {
                w.write_frame(&buf, stamp)?;
                n += 1;
            }
            Err(SourceError::BadFrame { .. })
            | Err(SourceError::Timeout { .. })
            | Err(SourceError::Reconnecting { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let written = w.finish()?;
    errln!(
        "recorded {written} frames from {} to {}",
        cam.describe(),
        out.display()
    );
    Ok(0)
}
