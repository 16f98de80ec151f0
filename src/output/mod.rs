//! Outputs: where each frame's detections go. A run has a list of them
//! (config `[[output]]`), all built at boot ([`Outputs::build`]) and called
//! in order from the postprocess thread, last stage of the postprocess
//! chain ([`Outputs::publish`]).
//!
//! Contract of an [`Output`] (what a new one must honour):
//! * `publish` runs on the frame path: it never allocates, never blocks
//!   (no waiting on a reader, a socket, a lock or its own thread) and never
//!   panics. A frame it cannot take now is dropped for that output only,
//!   counted in its [`OutputStats`] and returned as an [`OutputError`];
//!   the other outputs and the frame are not held up.
//! * It gets the frame's [`FrameRecord`], its detections, the class names
//!   and read access to the slot's raw frame ([`Image`]: format, size,
//!   bytes). The image is valid only during the call: an output that needs
//!   pixels (annotated video, a live view) copies them into a buffer it
//!   allocated at boot and hands that to its own thread through a bounded
//!   queue, dropping (and counting) the frame when its thread is busy.
//! * Buffers, sockets, files and threads are created at boot, in its
//!   constructor; [`Output::finish`] runs once after the last frame.
//!
//! Adding an output: one file here (its config struct, its type
//! implementing [`Output`], or for an output that shows pixels a
//! [`viewer::View`], its tests), one variant in
//! `config::OutputConfig` and one arm in [`Outputs::build`].
//!
//! Files: [`target`] (where bytes go: stdout, file, UDP; non-blocking
//! writes and fault counting shared by byte-stream outputs), [`json`]
//! (JSON lines), [`viewer`] (the frame copies and the viewer threads of
//! outputs that show pixels: one for each annotated video, one shared by
//! the live view, MCAP and Foxglove, which then share each frame's copy,
//! RGB conversion and JPEG), [`server`] (the TCP accept loop of the live
//! view and the Foxglove server), [`draw`] (boxes, labels, grid), [`annotate`]
//! (annotated video file), [`http`] (live view in a browser), [`fox_msg`]
//! (Foxglove channels, schemas and messages), [`mcap_file`] (MCAP
//! recording), [`foxglove`] (live Foxglove WebSocket server).

pub mod annotate;
pub mod draw;
pub mod fox_msg;
pub mod foxglove;
pub mod http;
pub mod json;
pub mod mcap_file;
pub mod server;
pub mod target;
pub mod viewer;

pub use target::{OutputTarget, Rotate, Stream, MAX_DATAGRAM};

use crate::calibration::Calibration;
use crate::config::OutputConfig;
use crate::frame::{Detection, FrameDesc, FrameRecord};
use crate::metrics::Counters;
use crate::postprocess::Labels;
use crate::text::SliceWriter;
use std::fmt::{self, Write as _};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    /// Boot: a target string does not parse.
    #[error("output target \"{target}\": {msg}")]
    BadTarget { target: String, msg: String },
    /// Boot: a target cannot be opened.
    #[error("output {target}: {msg}")]
    Open { target: String, msg: String },

    // Frame path (no allocation): one frame was not published.
    #[error("output buffer of {capacity} bytes is too small for this frame")]
    Overflow { capacity: usize },
    #[error("line of {len} bytes exceeds the UDP datagram limit of {MAX_DATAGRAM} bytes")]
    Oversize { len: usize },
    #[error("output reader has gone (broken pipe)")]
    BrokenPipe,
    #[error("output receiver refused the datagram (connection refused)")]
    ConnRefused,
    #[error("no space left on the output's device")]
    NoSpace,
    #[error("output is not ready (would block); frame dropped")]
    WouldBlock,
    #[error("output write failed: {}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

/// Read-only view of the slot's raw frame, as the source delivered it.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub desc: FrameDesc,
    /// `desc.bytes()` bytes in `desc.format`.
    pub bytes: &'a [u8],
}

/// One frame as every output sees it.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub record: &'a FrameRecord,
    pub detections: &'a [Detection],
    pub labels: &'a Labels,
    pub image: Image<'a>,
}

/// One output. See the module doc for the contract.
pub trait Output: Send {
    /// For summaries and logs: `json:stdout`, `json:udp://127.0.0.1:5600`.
    fn name(&self) -> &str;

    /// Publishes one frame, or drops it for this output and counts why.
    /// Frame path: never allocates, never blocks.
    fn publish(&mut self, frame: &FrameView<'_>) -> Result<(), OutputError>;

    /// Counts since boot.
    fn stats(&self) -> &OutputStats;

    /// After the last frame (not on the frame path): flush, join threads.
    fn finish(&mut self) {}
}

/// What an output did since boot: frames published, frames dropped and
/// every fault by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputStats {
    /// Frames handed to the target in full (for a stream, possibly
    /// finished by a later call after a short write).
    pub published: u64,
    pub bytes: u64,
    /// Frames not published, for any of the reasons below.
    pub dropped: u64,
    /// Short writes whose rest was kept and sent before the next frame.
    pub deferred: u64,
    pub overflow: u64,
    pub oversize: u64,
    pub broken_pipe: u64,
    pub conn_refused: u64,
    pub no_space: u64,
    pub would_block: u64,
    pub other: u64,
    /// errno of the last `other` fault.
    pub last_errno: i32,
    /// Size rotations of a file target (not a fault).
    pub rotations: u64,
}

impl OutputStats {
    /// Every fault counted (a dropped frame counts once per fault that hit it).
    pub fn errors(&self) -> u64 {
        self.overflow
            + self.oversize
            + self.broken_pipe
            + self.conn_refused
            + self.no_space
            + self.would_block
            + self.other
    }

    /// `published 300 dropped 2 (broken pipe 0, connection refused 2, no
    /// space 0, would block 0, too long 0, other 0)` since `earlier`.
    /// Never allocates.
    pub fn write(&self, w: &mut SliceWriter<'_>, earlier: &OutputStats) -> fmt::Result {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        write!(
            w,
            "published {} dropped {} (broken pipe {}, connection refused {}, no space {}, \
             would block {}, too long {}, other {})",
            d(self.published, earlier.published),
            d(self.dropped, earlier.dropped),
            d(self.broken_pipe, earlier.broken_pipe),
            d(self.conn_refused, earlier.conn_refused),
            d(self.no_space, earlier.no_space),
            d(self.would_block, earlier.would_block),
            d(
                self.overflow + self.oversize,
                earlier.overflow + earlier.oversize
            ),
            d(self.other, earlier.other),
        )
    }
}

/// An output's name and counts at the end of a run.
#[derive(Debug, Clone)]
pub struct OutputReport {
    pub name: String,
    pub stats: OutputStats,
}

/// What outputs that show pixels need to know at boot.
#[derive(Debug, Clone)]
pub struct OutputContext {
    /// The slot frames' format and size.
    pub desc: FrameDesc,
    /// Lockstep source: every frame must reach every output (viewers wait
    /// for a free frame copy instead of skipping).
    pub lockstep: bool,
    pub labels: Labels,
    /// The calibration the ground stage uses (grid and horizon).
    pub calibration: Option<Calibration>,
    /// Most detections in one frame (the decoder's `max_detections`).
    pub max_detections: usize,
}

/// The calibration's ground grid and horizon, for views that ask for it.
fn overlay(ctx: &OutputContext) -> draw::Overlay {
    ctx.calibration
        .as_ref()
        .map(draw::Overlay::new)
        .unwrap_or_else(draw::Overlay::none)
}

/// Boot: one viewer thread for `views`; their outputs, in order.
fn spawn_viewer(
    ctx: &OutputContext,
    lockstep: bool,
    grid: draw::Overlay,
    views: Vec<viewer::Viewed>,
) -> Result<Vec<Box<dyn Output>>, OutputError> {
    let names = views.first().map(|v| v.name.clone()).unwrap_or_default();
    let seats = viewer::spawn(
        ctx.desc,
        ctx.max_detections,
        lockstep,
        ctx.labels.clone(),
        grid,
        views,
    )
    .map_err(|e| OutputError::Open {
        target: names,
        msg: format!("cannot start the viewer thread: {e}"),
    })?;
    Ok(seats
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn Output>)
        .collect())
}

/// The run's outputs, in config order, with the counts of the last
/// interval summary. The postprocess chain's last stage.
pub struct Outputs {
    list: Vec<Box<dyn Output>>,
    marks: Vec<OutputStats>,
}

impl Outputs {
    /// Boot: opens every configured output (`--output T` has already been
    /// applied to `cfgs`, see `boot::Overrides`).
    pub fn build(cfgs: &[OutputConfig], ctx: &OutputContext) -> Result<Outputs, OutputError> {
        let mut list: Vec<Option<Box<dyn Output>>> = Vec::with_capacity(cfgs.len());
        // The outputs that send JPEGs share one viewer thread (one frame
        // copy, one RGB conversion, one JPEG per look and quality): their
        // places in `list` and their views.
        let mut shared: Vec<(usize, viewer::Viewed)> = Vec::new();
        let mut lockstep = false;
        for c in cfgs {
            let i = list.len();
            let out: Box<dyn Output> = match c {
                OutputConfig::Json(j) => Box::new(json::JsonOutput::open(j)?),
                OutputConfig::Annotate(a) => {
                    let v = annotate::open(a, ctx)?;
                    spawn_viewer(ctx, ctx.lockstep, overlay(ctx), vec![v])?.remove(0)
                }
                OutputConfig::Http(h) => {
                    shared.push((i, http::open(h, ctx)?));
                    list.push(None);
                    continue;
                }
                OutputConfig::Mcap(m) => {
                    // A recording gets every frame of a lockstep replay.
                    lockstep |= ctx.lockstep;
                    shared.push((i, mcap_file::open(m, ctx)?));
                    list.push(None);
                    continue;
                }
                OutputConfig::Foxglove(f) => {
                    shared.push((i, foxglove::open(f, ctx)?));
                    list.push(None);
                    continue;
                }
            };
            list.push(Some(out));
        }
        if !shared.is_empty() {
            let (places, views): (Vec<usize>, Vec<viewer::Viewed>) = shared.into_iter().unzip();
            let seats = spawn_viewer(ctx, lockstep, overlay(ctx), views)?;
            for (i, seat) in places.into_iter().zip(seats) {
                list[i] = Some(seat);
            }
        }
        Ok(Outputs::new(list.into_iter().flatten().collect()))
    }

    /// Boot: a set from outputs built elsewhere (tests, benchmarks).
    pub fn new(list: Vec<Box<dyn Output>>) -> Outputs {
        let marks = vec![OutputStats::default(); list.len()];
        Outputs { list, marks }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The outputs' names, in order (`http:127.0.0.1:PORT` shows the bound
    /// port).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|o| o.name())
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Hands the frame to every output in turn; each failure is counted by
    /// that output and once in `counters.sink_errors`, and the next output
    /// still gets the frame. Frame path: never allocates.
    pub fn publish(&mut self, frame: &FrameView<'_>, counters: &Counters) {
        for o in &mut self.list {
            if o.publish(frame).is_err() {
                Counters::bump(&counters.sink_errors);
            }
        }
    }

    /// `; output NAME published N dropped M (...)` per output, since the
    /// previous call (`interval`) or since boot; an interval call starts a
    /// new interval. Never allocates.
    pub fn write_summary(&mut self, w: &mut SliceWriter<'_>, interval: bool) -> fmt::Result {
        let zero = OutputStats::default();
        for (o, mark) in self.list.iter().zip(self.marks.iter_mut()) {
            write!(w, "; output {} ", o.name())?;
            let now = *o.stats();
            now.write(w, if interval { mark } else { &zero })?;
            if interval {
                *mark = now;
            }
        }
        Ok(())
    }

    /// After the run: flushes every output and returns their counts.
    pub fn finish(&mut self) -> Vec<OutputReport> {
        self.list
            .iter_mut()
            .map(|o| {
                o.finish();
                OutputReport {
                    name: o.name().to_string(),
                    stats: *o.stats(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test double: an output that fails every other frame.
    struct Flaky {
        stats: OutputStats,
        n: u64,
    }

    impl Output for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn publish(&mut self, _: &FrameView<'_>) -> Result<(), OutputError> {
            self.n += 1;
            if self.n.is_multiple_of(2) {
                self.stats.would_block += 1;
                self.stats.dropped += 1;
                return Err(OutputError::WouldBlock);
            }
            self.stats.published += 1;
            Ok(())
        }
        fn stats(&self) -> &OutputStats {
            &self.stats
        }
    }

    #[test]
    fn a_failing_output_is_counted_and_the_next_still_publishes() {
        let flaky = || -> Box<dyn Output> {
            Box::new(Flaky {
                stats: OutputStats::default(),
                n: 0,
            })
        };
        let mut outs = Outputs::new(vec![flaky(), flaky()]);
        let labels = Labels::fallback(2);
        let rec = FrameRecord::default();
        let desc = FrameDesc {
            format: crate::frame::PixelFormat::Grey,
            width: 2,
            height: 1,
        };
        let frame = FrameView {
            record: &rec,
            detections: &[],
            labels: &labels,
            image: Image {
                desc,
                bytes: &[0, 0],
            },
        };
        let counters = Counters::default();
        for _ in 0..4 {
            outs.publish(&frame, &counters);
        }
        assert_eq!(counters.values().sink_errors, 4);
        let mut buf = [0u8; 1024];
        let mut w = SliceWriter::new(&mut buf);
        outs.write_summary(&mut w, true).unwrap();
        let line = w.into_str();
        assert_eq!(
            line.matches("; output flaky published 2 dropped 2 (")
                .count(),
            2,
            "{line}"
        );
        assert!(line.contains("would block 2,"), "{line}");
        let mut buf = [0u8; 1024];
        let mut w = SliceWriter::new(&mut buf);
        outs.write_summary(&mut w, true).unwrap();
        assert!(w.into_str().contains("published 0 dropped 0"));
        let r = outs.finish();
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].stats.published, r[1].stats.dropped), (2, 2));
    }
}
