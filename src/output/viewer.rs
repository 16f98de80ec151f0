//! The viewer thread behind the outputs that show pixels (annotated
//! video, the live page, the MCAP recorder, the Foxglove server): the
//! frame path copies the slot's frame, its record and its detections into
//! a boot-allocated [`Shot`] ONCE for all the outputs sharing the thread
//! and hands it over a bounded channel; the viewer thread converts it to
//! RGB once and gives it to each output's [`View`] through [`Pictures`],
//! which draws the annotations and encodes a JPEG only when a view asks,
//! and at most once per frame for each (look, quality): the live page,
//! the MCAP file and the Foxglove server share one thread, one RGB
//! conversion and, for the same quality, one JPEG of the camera frame
//! (MCAP and Foxglove) and one of the annotated frame (the live page).
//!
//! * [`SHOTS`] shots exist per viewer thread, allocated at boot; they
//!   cycle free → full → viewer → free. Every queue is bounded by that
//!   count.
//! * Each output holds a [`Seat`] (its [`super::Output`]): the first seat
//!   of a thread offers the frame, the others count the same outcome.
//! * Live sources: latest frame wins. With no free shot the frame path
//!   takes back the oldest shot still waiting for the viewer and reuses it
//!   for the newer frame; either way one frame is skipped and counted
//!   (`would block` in the outputs' summary). The frame path never waits.
//!   The viewer thread then runs at nice 19 ([`crate::rt::background`]),
//!   so it only gets the CPU the pipeline threads leave.
//! * Lockstep (fast replay, synthetic, tests): every frame is shown. The
//!   frame path waits for a free shot (the only place an output waits, and
//!   only in lockstep, where the pipeline waits for its slowest stage by
//!   design), in 50 ms steps that give up on a stop request or a viewer
//!   that has ended. The thread keeps normal priority (the pipeline waits
//!   for it anyway).
//!
//! Allocation: [`spawn`] allocates the shots, the canvases, the JPEG
//! buffers and the thread (boot). [`Seat::publish`] (frame path) never
//! allocates (one uncontended lock: only the postprocess thread takes it).
//! The viewer thread allocates nothing per frame itself; what a [`View`]
//! or the JPEG encoder allocates is stated by that view (a view that
//! allocates says so with [`View::allocates`], and the thread is then
//! counted as a side thread). A view error ends that view (logged once);
//! its later frames are dropped and counted, the other views go on.

use super::draw::{annotate, Canvas, Overlay};
use super::{FrameView, Image, Output, OutputError, OutputStats};
use crate::frame::{Detection, FrameDesc, FrameRecord};
use crate::postprocess::Labels;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frame copies per viewer thread: one being drawn, one waiting, one
/// being filled.
pub const SHOTS: usize = 3;

/// How often a lockstep wait looks at the stop request.
const POLL: Duration = Duration::from_millis(50);

/// JPEGs kept per frame (distinct look and quality pairs); a view asking
/// for more than this re-encodes into the last one.
const JPEGS: usize = 4;

/// One frame handed to the viewer thread: copies, allocated at boot.
pub struct Shot {
    pub record: FrameRecord,
    pub desc: FrameDesc,
    pub frame: Box<[u8]>,
    /// Capacity fixed at boot (the decoder's `max_detections`).
    pub dets: Vec<Detection>,
}

/// How a view wants the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The camera frame as is (Foxglove and MCAP draw the annotations
    /// themselves from their own messages).
    Camera,
    /// Boxes and labels drawn, and the ground grid and horizon with
    /// `grid` (when a calibration is loaded).
    Annotated { grid: bool },
}

/// One JPEG of the current frame.
struct Jpeg {
    look: Look,
    quality: u8,
    bytes: Vec<u8>,
    fresh: bool,
}

/// The current frame as the views ask for it: RGB, annotated, JPEG. Each
/// is made on first request and kept for the frame's other views.
pub struct Pictures {
    camera: Canvas,
    drawn: Canvas,
    /// The look `drawn` holds for this frame.
    drawn_look: Option<Look>,
    labels: Labels,
    /// The calibration's grid and horizon (empty without one).
    grid: Overlay,
    none: Overlay,
    jpegs: Vec<Jpeg>,
}

impl Pictures {
    /// Boot: allocates two canvases and the JPEG buffers.
    pub fn new(desc: FrameDesc, labels: Labels, grid: Overlay) -> Pictures {
        let guess = desc.width * desc.height;
        Pictures {
            camera: Canvas::new(desc.width, desc.height),
            drawn: Canvas::new(desc.width, desc.height),
            drawn_look: None,
            labels,
            grid,
            none: Overlay::none(),
            jpegs: (0..JPEGS)
                .map(|_| Jpeg {
                    look: Look::Camera,
                    quality: 0,
                    bytes: Vec::with_capacity(guess),
                    fresh: false,
                })
                .collect(),
        }
    }

    /// A new frame: converts it to RGB; forgets the last frame's drawing
    /// and JPEGs. Never allocates.
    fn next(&mut self, shot: &Shot) {
        self.camera.load(Image {
            desc: shot.desc,
            bytes: &shot.frame,
        });
        self.drawn_look = None;
        for j in &mut self.jpegs {
            j.fresh = false;
        }
    }

    /// The frame in `look` (drawn on first request). Never allocates.
    pub fn canvas(&mut self, look: Look, shot: &Shot) -> &Canvas {
        self.draw(look, shot);
        match look {
            Look::Camera => &self.camera,
            Look::Annotated { .. } => &self.drawn,
        }
    }

    fn draw(&mut self, look: Look, shot: &Shot) {
        let Look::Annotated { grid } = look else {
            return;
        };
        if self.drawn_look == Some(look) {
            return;
        }
        self.drawn.rgb.copy_from_slice(&self.camera.rgb);
        let overlay = if grid { &self.grid } else { &self.none };
        annotate(&mut self.drawn, &shot.dets, &self.labels, overlay);
        self.drawn_look = Some(look);
    }

    /// The frame in `look` as a JPEG of `quality` (1..=100), encoded on
    /// first request. The JPEG encoder allocates its working buffers (see
    /// [`super::http::encode_jpeg`]): views that call this allocate.
    pub fn jpeg(&mut self, look: Look, quality: u8, shot: &Shot) -> Result<&[u8], String> {
        let hit = self
            .jpegs
            .iter()
            .position(|j| j.fresh && j.look == look && j.quality == quality);
        if let Some(i) = hit {
            return Ok(&self.jpegs[i].bytes);
        }
        self.draw(look, shot);
        let i = self
            .jpegs
            .iter()
            .position(|j| !j.fresh)
            .unwrap_or(JPEGS - 1);
        let canvas = match look {
            Look::Camera => &self.camera,
            Look::Annotated { .. } => &self.drawn,
        };
        let j = &mut self.jpegs[i];
        j.fresh = false;
        super::http::encode_jpeg(canvas, quality, &mut j.bytes)?;
        (j.look, j.quality, j.fresh) = (look, quality, true);
        Ok(&j.bytes)
    }
}

/// What a viewer does with each frame, on the viewer thread.
pub trait View: Send + 'static {
    /// One frame (ask `pics` for it in the look you show). An error ends
    /// this view.
    fn show(&mut self, pics: &mut Pictures, shot: &Shot) -> Result<(), String>;
    /// After the last frame: flush, close, wait for children.
    fn end(&mut self) -> Result<(), String>;
    /// The view allocates per frame (bounded, stated in its docs): the
    /// viewer thread's allocations are then counted as a side thread's
    /// (`count_alloc::mark_side_thread`).
    fn allocates(&self) -> bool {
        false
    }
}

/// One output on a viewer thread: its name and its view.
pub struct Viewed {
    pub name: String,
    pub view: Box<dyn View>,
    /// Kept up to date with the output's skipped frames (frame path), for
    /// views that show it (the live view's `/stats`).
    pub skipped: Option<Arc<AtomicU64>>,
}

/// Boot: allocates [`SHOTS`] frame copies of `desc` with room for
/// `max_dets` detections and the [`Pictures`], and starts one viewer
/// thread for all of `views`; returns one seat (an [`Output`]) per view,
/// in order. `grid` is the calibration's overlay for views that ask for
/// it ([`Overlay::none`] without a calibration).
pub fn spawn(
    desc: FrameDesc,
    max_dets: usize,
    lockstep: bool,
    labels: Labels,
    grid: Overlay,
    views: Vec<Viewed>,
) -> std::io::Result<Vec<Seat>> {
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
    let names: Vec<(String, Option<Arc<AtomicU64>>)> = views
        .iter()
        .map(|v| (v.name.clone(), v.skipped.clone()))
        .collect();
    let placed: Vec<Placed> = views
        .into_iter()
        .map(|v| Placed {
            name: v.name,
            view: v.view,
            alive: Arc::new(AtomicBool::new(true)),
        })
        .collect();
    let flags: Vec<Arc<AtomicBool>> = placed.iter().map(|p| Arc::clone(&p.alive)).collect();
    let alive = Arc::new(AtomicBool::new(true));
    let pics = Pictures::new(desc, labels, grid);
    let thread = {
        let alive = Arc::clone(&alive);
        let full_rx = full_rx.clone();
        std::thread::Builder::new()
            .name("viewer".into())
            .spawn(move || {
                let r = viewer_loop(lockstep, &full_rx, &free_tx, pics, placed);
                alive.store(false, Ordering::Release);
                r
            })?
    };
    let front = Arc::new(Mutex::new(Front {
        viewer: Viewer {
            free_rx,
            full_tx: Some(full_tx),
            full_steal: full_rx,
            lockstep,
            spare: None,
            alive,
            thread: Some(thread),
        },
        last: Offer::default(),
    }));
    Ok(names
        .into_iter()
        .zip(flags)
        .enumerate()
        .map(|(index, ((name, skipped), alive))| Seat {
            name,
            skipped,
            front: Arc::clone(&front),
            index,
            alive,
            stats: OutputStats::default(),
        })
        .collect())
}

/// A view on the viewer thread, and whether it still runs.
struct Placed {
    name: String,
    view: Box<dyn View>,
    alive: Arc<AtomicBool>,
}

/// The frame-path end of a viewer thread, shared by its seats.
struct Front {
    viewer: Viewer,
    /// What the first seat's offer of the current frame did.
    last: Offer,
}

/// One output's place on a viewer thread: the [`Output`] of every output
/// that shows pixels.
pub struct Seat {
    name: String,
    front: Arc<Mutex<Front>>,
    /// 0: this seat offers each frame (outputs are published in order, so
    /// it comes first); the others count the same outcome.
    index: usize,
    /// Cleared when this seat's view failed.
    alive: Arc<AtomicBool>,
    stats: OutputStats,
    skipped: Option<Arc<AtomicU64>>,
}

impl Output for Seat {
    fn name(&self) -> &str {
        &self.name
    }

    /// Frame path: never allocates; waits for the viewer only in lockstep.
    fn publish(&mut self, frame: &FrameView<'_>) -> Result<(), OutputError> {
        let r = self.offer(frame);
        if let Some(k) = &self.skipped {
            k.store(self.stats.dropped, Ordering::Relaxed);
        }
        r
    }

    fn stats(&self) -> &OutputStats {
        &self.stats
    }

    /// Lets the viewer finish the frames it has, ends its views and joins
    /// it (the first seat to finish does it for all).
    fn finish(&mut self) {
        let r = super::http::lock(&self.front).viewer.finish();
        if let Err(e) = r {
            log::error!("{e}");
        }
    }
}

impl Seat {
    /// Frame path: never allocates; waits for the viewer only in lockstep.
    fn offer(&mut self, frame: &FrameView<'_>) -> Result<(), OutputError> {
        let mut front = super::http::lock(&self.front);
        if self.index == 0 {
            front.last = front.viewer.offer(frame);
        }
        if !self.alive.load(Ordering::Acquire) {
            self.stats.broken_pipe += 1;
            self.stats.dropped += 1;
            return Err(OutputError::BrokenPipe);
        }
        let s = &mut self.stats;
        if front.last.stole {
            // Latest wins: the frame counted last time was skipped.
            s.would_block += 1;
            s.dropped += 1;
            s.published = s.published.saturating_sub(1);
        }
        match front.last.result {
            None => {
                s.published += 1;
                Ok(())
            }
            Some(e) => {
                match e {
                    Refusal::BrokenPipe => s.broken_pipe += 1,
                    Refusal::Overflow(_) => s.overflow += 1,
                    Refusal::WouldBlock => s.would_block += 1,
                }
                s.dropped += 1;
                Err(e.into())
            }
        }
    }
}

/// Why a frame did not reach the viewer thread.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    BrokenPipe,
    WouldBlock,
    Overflow(usize),
}

impl From<Refusal> for OutputError {
    fn from(r: Refusal) -> OutputError {
        match r {
            Refusal::BrokenPipe => OutputError::BrokenPipe,
            Refusal::WouldBlock => OutputError::WouldBlock,
            Refusal::Overflow(capacity) => OutputError::Overflow { capacity },
        }
    }
}

/// What one offer did.
#[derive(Debug, Clone, Copy, Default)]
struct Offer {
    /// The previous frame's shot was taken back (latest wins).
    stole: bool,
    /// None: handed over.
    result: Option<Refusal>,
}

/// The channels' frame-path ends and the thread.
struct Viewer {
    free_rx: Receiver<Box<Shot>>,
    full_tx: Option<Sender<Box<Shot>>>,
    /// Live sources take back a waiting shot through this (latest wins).
    full_steal: Receiver<Box<Shot>>,
    lockstep: bool,
    /// A shot taken but not filled (a frame of the wrong size), used next.
    spare: Option<Box<Shot>>,
    /// Cleared by the viewer thread when it ends (every view failed, or
    /// a panic).
    alive: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Viewer {
    /// Copies the frame for the viewer thread, or says why not.
    /// Frame path: never allocates; waits only in lockstep.
    fn offer(&mut self, f: &FrameView<'_>) -> Offer {
        let mut o = Offer::default();
        let Some(full_tx) = &self.full_tx else {
            o.result = Some(Refusal::BrokenPipe);
            return o;
        };
        if !self.alive.load(Ordering::Acquire) {
            o.result = Some(Refusal::BrokenPipe);
            return o;
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
                        o.stole = true;
                        Some(s)
                    }
                    Err(_) => None,
                },
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let Some(mut shot) = shot else {
            o.result = Some(Refusal::WouldBlock);
            return o;
        };
        if f.image.desc != shot.desc || f.image.bytes.len() != shot.frame.len() {
            o.result = Some(Refusal::Overflow(shot.frame.len()));
            self.spare = Some(shot);
            return o;
        }
        shot.record = *f.record;
        shot.frame.copy_from_slice(f.image.bytes);
        shot.dets.clear();
        let n = f.detections.len().min(shot.dets.capacity());
        shot.dets.extend_from_slice(&f.detections[..n]);
        if full_tx.try_send(shot).is_err() {
            // Cannot happen (SHOTS shots, SHOTS places); counted if it does.
            o.result = Some(Refusal::WouldBlock);
        }
        o
    }

    /// After the run: lets the viewer finish the frames it has, ends its
    /// views and joins it. Not on the frame path. Idempotent.
    fn finish(&mut self) -> Result<(), String> {
        self.full_tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("viewer thread panicked".into()),
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

/// The viewer thread: each shot to every view still running, then back.
/// Ends when the frame path closes the channel (then ends the views) or
/// every view has failed. Returns the views' end errors (errors while
/// showing are logged when they happen).
fn viewer_loop(
    lockstep: bool,
    full_rx: &Receiver<Box<Shot>>,
    free_tx: &Sender<Box<Shot>>,
    mut pics: Pictures,
    mut views: Vec<Placed>,
) -> Result<(), String> {
    if views.iter().any(|p| p.view.allocates()) {
        crate::count_alloc::mark_side_thread();
    }
    if !lockstep {
        crate::rt::background("viewer");
    }
    while let Ok(shot) = full_rx.recv() {
        pics.next(&shot);
        for p in views.iter_mut() {
            if !p.alive.load(Ordering::Acquire) {
                continue;
            }
            if let Err(e) = p.view.show(&mut pics, &shot) {
                log::error!("{}: {e}; no more frames are written", p.name);
                p.alive.store(false, Ordering::Release);
                if let Err(e) = p.view.end() {
                    log::error!("{}: {e}", p.name);
                }
            }
        }
        let _ = free_tx.send(shot);
        if !views.iter().any(|p| p.alive.load(Ordering::Acquire)) {
            return Ok(());
        }
    }
    let mut errs = views
        .iter_mut()
        .filter(|p| p.alive.load(Ordering::Acquire))
        .filter_map(|p| p.view.end().err().map(|e| format!("{}: {e}", p.name)));
    match errs.next() {
        None => Ok(()),
        Some(first) => Err(errs.fold(first, |a, e| a + "; " + &e)),
    }
}
