//! Replay of any video ffmpeg reads (MP4, MKV, MOV, AVI; H.264, H.265,
//! VP9, AV1, MJPEG, ...): an [`FfmpegChild`] decodes the file's first
//! video stream (`-map 0:V:0`: cover art is not video) into Y4M on its
//! stdout, converted by ffmpeg to the nearest of 4:2:0, 4:2:2, 4:4:4 or
//! grey (8-bit, limited range: what the preprocessing reads), and a
//! [`Y4mSource`] reads that pipe. No libav in this process.
//!
//! Timestamps: each frame's presentation timestamp (from the `showinfo`
//! filter's log, see [`crate::ffmpeg`]) is its `source_ns` (ns from the
//! stream's zero); `--pace realtime` delivers frame k at the first
//! frame's time plus (pts_k - pts_0), so variable frame rates play as
//! recorded (a frame without a timestamp falls back to the Y4M header's
//! rate).
//!
//! Ends: ffmpeg done with exit 0 is the end of the replay; if it logged
//! errors on the way (a file cut mid-stream: `partial file`), one warning
//! names the file, ffmpeg's message and the frames processed, and the
//! replay ends as a truncated Y4M does (exit 0). ffmpeg failing or killed
//! is one error line (file, how it ended, ffmpeg's message, frames
//! processed): the source is lost (exit 4). Before the first frame, the
//! same is a boot error (exit 1). The child is killed and reaped on drop.
//!
//! Allocation: `open` (boot) starts the child and allocates the read
//! buffer ([`crate::source::y4m::IO_BUFFER`]) and the timestamp ring;
//! `next_frame`/`skip_frame` never allocate on success (the end and the
//! errors format a message). Capture thread.

use crate::clock::monotonic_ns;
use crate::ffmpeg::FfmpegChild;
use crate::frame::FrameDesc;
use crate::fsio::StreamReader;
use crate::source::y4m::{Pace, Y4mSource, IO_BUFFER};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

/// How long an ending replay waits for ffmpeg to exit (it has closed its
/// output, or failed) before killing it.
const EXIT_WAIT: Duration = Duration::from_millis(500);

/// How long boot waits for a failed ffmpeg's last words.
const BOOT_EXIT_WAIT: Duration = Duration::from_secs(2);

/// The command line: `path` as a local file (`file:`, so a name with a
/// colon is never a protocol), first video stream only, frames as they
/// leave the decoder (no duplicates or drops for a constant rate).
pub fn ffmpeg_args(path: &Path) -> Vec<std::ffi::OsString> {
    let mut input = std::ffi::OsString::from("file:");
    input.push(path.as_os_str());
    let mut a: Vec<std::ffi::OsString> = [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "repeat+level+info",
        "-i",
    ]
    .iter()
    .map(Into::into)
    .collect();
    a.push(input);
    a.extend(
        [
            "-map",
            "0:V:0",
            "-an",
            "-sn",
            "-dn",
            "-vsync",
            "passthrough",
            "-vf",
            "format=pix_fmts=yuv420p|yuv422p|yuv444p|gray,showinfo",
            "-f",
            "yuv4mpegpipe",
            "pipe:1",
        ]
        .iter()
        .map(Into::into),
    );
    a
}

/// A video file decoded by an ffmpeg child.
pub struct VideoSource {
    path: String,
    inner: Y4mSource,
    child: FfmpegChild,
    pace: Pace,
    /// CLOCK_MONOTONIC time and timestamp of frame 0 (realtime pacing).
    start: Option<(u64, Option<u64>)>,
    frames: u64,
}

impl VideoSource {
    /// Boot: start ffmpeg on `path` and read the Y4M header it writes.
    /// Every failure is one line naming the file (ffmpeg missing, ffmpeg's
    /// own message, a frame size Y4M or perceptd refuses); the child is
    /// killed and reaped on each.
    pub fn open(path: &Path, pace: Pace) -> Result<VideoSource, SourceError> {
        let path_s = path.display().to_string();
        let fail = |msg: String| SourceError::Io {
            path: path_s.clone(),
            msg,
        };
        let (mut child, pipes) = FfmpegChild::spawn(&ffmpeg_args(path), false, true, true)
            .map_err(|e| fail(e.to_string()))?;
        let stdout = pipes
            .stdout
            .ok_or_else(|| fail("ffmpeg's stdout pipe is missing".into()))?;
        let reader = StreamReader::from_file(OwnedFd::from(stdout).into())
            .map_err(|e| fail(format!("ffmpeg's pipe: {e}")))?;
        let y4m_name = format!("{path_s} (decoded by ffmpeg)");
        let inner = match Y4mSource::from_reader(
            y4m_name,
            BufReader::with_capacity(IO_BUFFER, reader),
            Pace::Fast,
        ) {
            Ok(s) => s,
            // ffmpeg wrote a header perceptd refuses (a size past
            // `y4m::MAX_DIM`): that is the reason, not ffmpeg's broken pipe.
            Err(e @ SourceError::Config(_)) => return Err(e),
            Err(e) => {
                if crate::stop::requested() {
                    return Err(e);
                }
                // Nothing (or no Y4M) came out: ffmpeg says why.
                let st = child.wait_exit(BOOT_EXIT_WAIT);
                return Err(match (st, child.message()) {
                    (Some(_), Some(m)) => fail(format!("ffmpeg: {}", hint(&m))),
                    (Some(st), None) if !st.success() => fail(format!(
                        "ffmpeg failed ({}) without a message",
                        child.describe_status()
                    )),
                    _ => e,
                });
            }
        };
        Ok(VideoSource {
            path: path_s,
            inner,
            child,
            pace,
            start: None,
            frames: 0,
        })
    }

    /// The ffmpeg child's process id.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// Stamp the frame just read and wait until it is due (realtime).
    /// Never allocates.
    fn deliver(&mut self) -> FrameStamp {
        let pts = self.child.next_pts(self.frames);
        if self.pace == Pace::Realtime {
            let now = monotonic_ns();
            match self.start {
                None => self.start = Some((now, pts)),
                Some((t0, pts0)) => {
                    let offset = match (pts, pts0) {
                        (Some(p), Some(p0)) => p.saturating_sub(p0),
                        _ => self.inner.header().rate.offset_ns(self.frames),
                    };
                    // Wakes early on a stop request.
                    crate::stop::sleep_until(t0.saturating_add(offset));
                }
            }
        }
        self.frames += 1;
        FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: pts,
        }
    }

    /// The Y4M stream ended or failed: what ffmpeg says decides how.
    fn ended(&mut self, e: SourceError) -> SourceError {
        if crate::stop::requested() {
            return e;
        }
        let status = self.child.wait_exit(EXIT_WAIT);
        if status.is_none() {
            self.child.kill();
        }
        let n = self.frames;
        let msg = self.child.message();
        match (status, e) {
            (Some(st), SourceError::End) if st.success() => {
                if let Some(m) = msg {
                    log::warn!(
                        "{}: ffmpeg: {}: the file is damaged; the {n} frames it decoded were processed",
                        self.path,
                        hint(&m)
                    );
                }
                SourceError::End
            }
            (Some(_), _) => SourceError::Io {
                path: self.path.clone(),
                msg: format!(
                    "ffmpeg ended ({}) after {n} frames{}",
                    self.child.describe_status(),
                    msg.map(|m| format!(": {}", hint(&m))).unwrap_or_default()
                ),
            },
            // ffmpeg still ran (the pipe failed under it): killed now.
            (None, e) => SourceError::Io {
                path: self.path.clone(),
                msg: format!("after {n} frames: {e} (ffmpeg killed)"),
            },
        }
    }
}

/// ffmpeg's message, with what it means for perceptd where that is known.
fn hint(msg: &str) -> String {
    if msg.contains("matches no streams") {
        format!("{msg} (the file has no video stream)")
    } else {
        msg.to_string()
    }
}

impl Source for VideoSource {
    fn desc(&self) -> FrameDesc {
        self.inner.desc()
    }

    fn pacing(&self) -> Pacing {
        match self.pace {
            Pace::Realtime => Pacing::Live,
            Pace::Fast => Pacing::Lockstep,
        }
    }

    fn describe(&self) -> String {
        let h = self.inner.header();
        format!(
            "{} (video through ffmpeg, {} {}x{}@{:.3}, {})",
            self.path,
            h.format.name(),
            h.width,
            h.height,
            h.rate.fps(),
            match self.pace {
                Pace::Realtime => "realtime",
                Pace::Fast => "fast",
            }
        )
    }

    /// Frame path: never allocates on success.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        match self.inner.next_frame(dst) {
            Ok(_) => Ok(self.deliver()),
            Err(e) => Err(self.ended(e)),
        }
    }

    /// Frame path: never allocates on success.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        match self.inner.skip_frame() {
            Ok(_) => Ok(self.deliver()),
            Err(e) => Err(self.ended(e)),
        }
    }
}
