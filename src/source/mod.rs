//! Frame sources: the V4L2 camera, file replay (Y4M, raw MJPEG, ROS 2 bags,
//! any video through an ffmpeg child; see
//! [`replay`]) and the synthetic road scene.
//! Each fills a ring slot's host buffer with one raw frame in its
//! [`FrameDesc`] format and stamps it.
//!
//! Opening a source is boot (may allocate, may fail with a clear error);
//! `next_frame`/`skip_frame` run on the capture thread and never allocate.

pub mod synthetic;

use crate::frame::FrameDesc;
use thiserror::Error;

/// How the pipeline treats a source when inference lags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Frames arrive on their own clock (camera, realtime replay): latest
    /// frame wins, older frames are dropped and counted.
    Live,
    /// Frames are produced on demand (fast replay, tests, benchmarks):
    /// capture waits for a free slot, nothing is dropped.
    Lockstep,
}

/// When a frame was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameStamp {
    /// CLOCK_MONOTONIC nanoseconds when the frame was captured (live) or
    /// handed to the pipeline (replay, synthetic).
    pub capture_ns: u64,
    /// The source's own timestamp, if it has one (V4L2 buffer timestamp,
    /// the recorded capture time in a Y4M file, the synthetic frame time).
    pub source_ns: Option<u64>,
}

#[derive(Debug, Error)]
pub enum SourceError {
    /// No more frames (end of a replay, `--frames` reached by the source).
    #[error("end of stream")]
    End,
    /// The file ended inside a frame; every complete frame was delivered.
    #[error("{path}: truncated after {frames} complete frames ({bytes} stray bytes at the end)")]
    Truncated {
        path: String,
        frames: u64,
        bytes: u64,
    },
    /// No frame within the poll timeout (a stalled camera).
    #[error("{device}: no frame within {timeout_ms} ms")]
    Timeout { device: String, timeout_ms: u64 },
    /// The device went away (ENODEV, POLLERR) and cannot be re-opened.
    #[error("{device}: disconnected: {reason}")]
    Disconnected { device: String, reason: String },
    /// The camera is lost or stalled and being re-opened; no frame this
    /// time. Counted and logged by the source, not fatal.
    #[error("{device}: camera lost, reconnecting")]
    Reconnecting { device: String },
    /// A frame was flagged bad by the driver or had the wrong size; it was
    /// not delivered. Counted, not fatal.
    #[error("{device}: bad frame: {reason}")]
    BadFrame {
        device: String,
        reason: &'static str,
    },
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    /// Boot-time configuration problems: one line naming the field/value.
    #[error("{0}")]
    Config(String),
}

/// A source of raw frames. Implementations own their device/file and any
/// buffers they need, all set up at open time.
pub trait Source: Send {
    /// Format and size of every frame this source delivers.
    fn desc(&self) -> FrameDesc;

    fn pacing(&self) -> Pacing;

    /// Short description for logs (`/dev/video0 YUYV 640x480@30`, ...).
    fn describe(&self) -> String;

    /// Copy the next frame into `dst` (`desc().bytes()` long) and stamp it.
    /// Blocks until the frame is due (paced replay) or available (camera,
    /// up to its poll timeout). Frame path: never allocates.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError>;

    /// Boot: the pipeline's shared counters, for sources that count their
    /// own faults (camera losses, stalls, reconnects). Default: ignored.
    fn attach_counters(&mut self, _counters: &std::sync::Arc<crate::metrics::Counters>) {}

    /// Consume the next frame without copying it (no free slot: the frame
    /// is dropped, but a live source must keep its queue moving).
    /// Frame path: never allocates.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError>;

    /// Bytes the source allocated at boot when they depend on what it
    /// read (a stream buffer sized from a file's first frame), for the
    /// memory budget; `None`: the config's estimate holds.
    fn buffer_bytes(&self) -> Option<u64> {
        None
    }
}

/// Re-exported for the sources and the stages that stamp frames; the
/// clock itself lives in [`crate::clock`].
pub use crate::clock::monotonic_ns;

pub mod bag;
pub mod jpeg;
pub mod mjpeg;
pub mod paced;
pub mod replay;
pub mod v4l2;
pub mod video;
pub mod y4m;
