//! The viewer thread behind every output that shows pixels (annotated
//! video, the live page): the frame path copies the slot's frame, its
//! record and its detections into a boot-allocated [`Shot`] and hands it
//! over a bounded channel; the viewer thread converts it to RGB, draws the
//! annotations ([`super::draw`]) and gives the canvas to its [`View`]
//! (a video writer, the HTTP server's frame store), then returns the shot.
//!
//! * [`SHOTS`] shots exist, allocated at boot; they cycle free → full →
//!   viewer → free. Every queue is bounded by that count.
//! * Live sources: latest frame wins. With no free shot the frame path
//!   takes back the oldest shot still waiting for the viewer and reuses it
//!   for the newer frame; either way one frame is skipped and counted
//!   (`would block` in the output's summary). The frame path never waits.
//! * Lockstep (fast replay, synthetic, tests): every frame is shown. The
//!   frame path waits for a free shot (the only place an output waits, and
//!   only in lockstep, where the pipeline waits for its slowest stage by
//!   design), in 50 ms steps that give up on a stop request or a viewer
//!   that has ended.
//!
//! Allocation: [`Viewer::spawn`] allocates the shots, the canvas and the
//! thread (boot). [`Viewer::offer`] (frame path) never allocates. The
//! viewer thread allocates nothing per frame itself; what its [`View`]
//! allocates is stated by that view (a view that allocates says so with
//! [`View::allocates`], and its thread is counted as a side thread). A view error ends the viewer thread
//! (logged once); later frames are dropped and counted.

use super::draw::{annotate, Canvas, Overlay};
use super::{FrameView, Image, OutputError, OutputStats};
use crate::frame::{Detection, FrameDesc, FrameRecord};
use crate::postprocess::Labels;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Frame copies per viewer: one being drawn, one waiting, one being filled.
pub const SHOTS: usize = 3;

/// How often a lockstep wait looks at the stop request.
const POLL: Duration = Duration::from_millis(50);

/// One frame handed to the viewer thread: copies, allocated at boot.
pub struct Shot {
    pub record: FrameRecord,
    pub desc: FrameDesc,
    pub frame: Box<[u8]>,
    /// Capacity fixed at boot (the decoder's `max_detections`).
    pub dets: Vec<Detection>,
}

/// What a viewer does with each annotated frame, on the viewer thread.
pub trait View: Send + 'static {
    /// One annotated frame. An error ends the viewer.
    fn show(&mut self, canvas: &Canvas, shot: &Shot) -> Result<(), String>;
    /// After the last frame: flush, close, wait for children.
    fn end(&mut self) -> Result<(), String>;
    /// The view allocates per frame (bounded, stated in its docs): the
    /// viewer thread's allocations are then counted as a side thread's
    /// (`count_alloc::mark_side_thread`).
    fn allocates(&self) -> bool {
        false
    }
}

/// Everything the viewer thread needs to draw, fixed at boot.
pub struct Drawing {
    pub labels: Labels,
    pub overlay: Overlay,
    /// Draw the boxes and the overlay; false gives the view the camera
    /// frame as is (outputs that send the annotations apart: Foxglove).
    pub draw: bool,
}

/// The frame-path end of a viewer and its thread.
pub struct Viewer {
    free_rx: Receiver<Box<Shot>>,
    full_tx: Option<Sender<Box<Shot>>>,
    /// Live sources take back a waiting shot through this (latest wins).
    full_steal: Receiver<Box<Shot>>,
    lockstep: bool,
    /// A shot taken but not filled (a frame of the wrong size), used next.
    spare: Option<Box<Shot>>,
    /// Cleared by the viewer thread when it ends (view error or panic).
    alive: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    name: String,
}

impl Viewer {
    /// Boot: allocates [`SHOTS`] frame copies of `desc` with room for
    /// `max_dets` detections, and starts the thread `name`.
    pub fn spawn(
        name: &str,
        desc: FrameDesc,
        max_dets: usize,
        lockstep: bool,
        drawing: Drawing,
        view: Box<dyn View>,
    ) -> std::io::Result<Viewer> {
        let (free_tx, free_rx) = bounded::<Box<Shot>>(SHOTS);
        let (full_tx, full_rx) = bounded::<Box<Shot>>(SHOTS);
        // Register this channel's waiter list now: the first blocking wait
        // on a channel allocates it (crossbeam), and lockstep waits on it
        // from the frame path. crossbeam spins and yields before it
        // registers a waiter, and gives up without registering once the
        // deadline has passed: hence a deadline (POLL) far longer than the
        // spinning. The waiting thread's own context is warmed by the
        // pipeline before the first frame.
        let _ = free_rx.recv_timeout(POLL);
        for _ in 0..SHOTS {
            let shot = Box::new(Shot {
                record: FrameRecord::default(),
                desc,
                frame: vec![0; desc.bytes()].into_boxed_slice(),
                dets: Vec::with_capacity(max_dets),
            });
            let _ = free_tx.send(shot);
        }
        let alive = Arc::new(AtomicBool::new(true));
        let thread = {
            let alive = Arc::clone(&alive);
            let full_rx = full_rx.clone();
            let label = name.to_string();
            std::thread::Builder::new()
                .name("viewer".into())
                .spawn(move || {
                    let r = viewer_loop(&label, desc, &full_rx, &free_tx, &drawing, view);
                    alive.store(false, Ordering::Release);
                    r
                })?
        };
        Ok(Viewer {
            free_rx,
            full_tx: Some(full_tx),
            full_steal: full_rx,
            lockstep,
            spare: None,
            alive,
            thread: Some(thread),
            name: name.to_string(),
        })
    }

    /// Copies the frame for the viewer thread, or skips it and counts why.
    /// Frame path: never allocates; waits only in lockstep.
    pub fn offer(&mut self, f: &FrameView<'_>, stats: &mut OutputStats) -> Result<(), OutputError> {
        let Some(full_tx) = &self.full_tx else {
            return Err(skip(stats, OutputError::BrokenPipe));
        };
        if !self.alive.load(Ordering::Acquire) {
            stats.broken_pipe += 1;
            stats.dropped += 1;
            return Err(OutputError::BrokenPipe);
        }
        let shot = if let Some(s) = self.spare.take() {
            Some(s)
        } else if self.lockstep {
            loop {
                match self.free_rx.recv_timeout(POLL) {
                    Ok(s) => break Some(s),
                    Err(RecvTimeoutError::Timeout) => {
                        if crate::stop::requested() || !self.alive.load(Ordering::Acquire) {
                            break None;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            }
        } else {
            match self.free_rx.try_recv() {
                Ok(s) => Some(s),
                // Latest wins: the oldest frame still waiting is skipped.
                Err(TryRecvError::Empty) => match self.full_steal.try_recv() {
                    Ok(s) => {
                        stats.would_block += 1;
                        stats.dropped += 1;
                        stats.published = stats.published.saturating_sub(1);
                        Some(s)
                    }
                    Err(_) => None,
                },
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let Some(mut shot) = shot else {
            return Err(skip(stats, OutputError::WouldBlock));
        };
        if f.image.desc != shot.desc || f.image.bytes.len() != shot.frame.len() {
            stats.overflow += 1;
            stats.dropped += 1;
            let capacity = shot.frame.len();
            self.spare = Some(shot);
            return Err(OutputError::Overflow { capacity });
        }
        shot.record = *f.record;
        shot.frame.copy_from_slice(f.image.bytes);
        shot.dets.clear();
        let n = f.detections.len().min(shot.dets.capacity());
        shot.dets.extend_from_slice(&f.detections[..n]);
        match full_tx.try_send(shot) {
            Ok(()) => {
                stats.published += 1;
                Ok(())
            }
            // Cannot happen (SHOTS shots, SHOTS places); counted if it does.
            Err(_) => Err(skip(stats, OutputError::WouldBlock)),
        }
    }

    /// After the run: lets the viewer finish the frames it has, ends its
    /// view and joins it. Not on the frame path.
    pub fn finish(&mut self) -> Result<(), String> {
        self.full_tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(format!("{}: viewer thread panicked", self.name)),
            None => Ok(()),
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::error!("{e}");
        }
    }
}

fn skip(stats: &mut OutputStats, e: OutputError) -> OutputError {
    match e {
        OutputError::BrokenPipe => stats.broken_pipe += 1,
        _ => stats.would_block += 1,
    }
    stats.dropped += 1;
    e
}

/// The viewer thread: draw each shot, show it, return it. Ends when the
/// frame path closes the channel (then ends the view) or the view fails.
fn viewer_loop(
    name: &str,
    desc: FrameDesc,
    full_rx: &Receiver<Box<Shot>>,
    free_tx: &Sender<Box<Shot>>,
    drawing: &Drawing,
    mut view: Box<dyn View>,
) -> Result<(), String> {
    if view.allocates() {
        crate::count_alloc::mark_side_thread();
    }
    let mut canvas = Canvas::new(desc.width, desc.height);
    while let Ok(shot) = full_rx.recv() {
        canvas.load(Image {
            desc: shot.desc,
            bytes: &shot.frame,
        });
        if drawing.draw {
            annotate(&mut canvas, &shot.dets, &drawing.labels, &drawing.overlay);
        }
        let shown = view.show(&canvas, &shot);
        let _ = free_tx.send(shot);
        if let Err(e) = shown {
            let e = format!("{name}: {e}; no more frames are written");
            log::error!("{e}");
            let _ = view.end();
            return Err(e);
        }
    }
    view.end().map_err(|e| format!("{name}: {e}"))
}
