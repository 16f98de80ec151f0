//! The frame loop: three named threads (capture, inference, postprocess)
//! pass ring slot tokens through bounded channels (free → ready → done →
//! free). Everything is wired here, in one place.
//!
//! * Live sources (camera, realtime replay): latest frame wins. Capture
//!   never waits: with no free slot it consumes the frame and counts a drop;
//!   inference drains `ready` and keeps only the newest frame, returning
//!   older ones to `free` as superseded. A frame waits at most one inference
//!   period.
//! * Lockstep sources (fast replay, synthetic, tests): capture waits for a
//!   free slot, nothing is dropped, results are deterministic.
//!
//! [`Pipeline::run`] spawns the threads (boot is over by then: every buffer
//! exists) and the loop never allocates until the threads are joined. A
//! fourth thread, `supervisor` ([`crate::service::supervisor`]), watches
//! progress for systemd and enforces the hard stage deadline.

use crate::backend::Backend;
use crate::calibration::Calibration;
use crate::frame::Detection;
use crate::metrics::{Counters, Metrics, Stage, StageClock};
use crate::postprocess::track::{Tracker, TrackerStats};
use crate::postprocess::{Decoder, DetectionList, Labels, LetterboxInfo};
use crate::ring::{Ring, SlotMeta, SlotToken};
use crate::service::supervisor::{supervise, Watched};
use crate::service::ServiceSetup;
use crate::sink::{FrameRecord, JsonSink, SinkStats};
use crate::source::{monotonic_ns, Pacing, Source, SourceError};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Per-thread scheduling wishes (config `[threads]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadPolicy {
    pub cpu: Option<usize>,
    pub fifo_priority: Option<i32>,
}

/// Everything the loop needs, built at boot.
pub struct Pipeline {
    pub source: Box<dyn Source>,
    pub backend: Box<dyn Backend>,
    pub decoder: Decoder,
    pub labels: Labels,
    pub sink: JsonSink,
    pub calibration: Option<Calibration>,
    /// The tracking stage (`[tracking] enabled`).
    pub tracker: Option<Tracker>,
    pub letterbox: LetterboxInfo,
    pub ring_slots: usize,
    /// Stop after this many frames have entered the ring.
    pub frames: Option<u64>,
    /// Seconds between periodic summary lines on stderr (0 = none).
    pub metrics_interval_s: f64,
    pub policies: [ThreadPolicy; 3],
    /// Histograms and counters, allocated at boot; the counters can be
    /// watched from other threads while the pipeline runs.
    pub metrics: Metrics,
    /// sd_notify, stage deadlines, real-time memory set-up.
    pub service: ServiceSetup,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    pub metrics: Metrics,
    pub elapsed_s: f64,
    /// The source's last error if it ended the run abnormally (truncated
    /// replay, unplugged camera); `None` for a clean end or a stop request.
    pub source_end: Option<SourceError>,
    pub sink_errors: u64,
    /// The sink's faults by kind (broken pipe, refused, disk full, ...).
    pub sink_stats: SinkStats,
    /// Ring slots back in the free queue after the threads ended (all of
    /// them, unless a thread died holding one).
    pub slots_free_at_end: usize,
    /// The tracker's counters, when tracking ran.
    pub tracker: Option<TrackerStats>,
}

impl Pipeline {
    /// Run until the source ends, `frames` have been captured, or `stop` is
    /// set; then drain what is in flight and return the metrics.
    pub fn run(self, stop: Arc<AtomicBool>) -> RunReport {
        let Pipeline {
            mut source,
            mut backend,
            mut decoder,
            labels,
            mut sink,
            calibration,
            mut tracker,
            letterbox,
            ring_slots,
            frames,
            metrics_interval_s,
            policies,
            mut metrics,
            service,
        } = self;
        let frame_bytes = source.desc().bytes();
        let out_len: usize = backend.output_shape().iter().product();
        let slot_bufs = backend.take_slot_buffers();
        let (mut ring, tokens) = Ring::with_buffers(ring_slots, frame_bytes, out_len, slot_bufs);
        ring.prefault();
        crate::rt::lock_memory(&service.rt);
        let stack_kib = service.rt.prefault_stack_kib;
        let stage_deadline_ns = service.stage_deadline_ns;
        let clock = StageClock::default();
        let clock = &clock;
        let finished = AtomicBool::new(false);
        let finished = &finished;
        let service = &service;
        let ring = &ring;
        let (free_tx, free_rx) = bounded::<SlotToken>(ring_slots);
        let (ready_tx, ready_rx) = bounded::<SlotToken>(ring_slots);
        let (done_tx, done_rx) = bounded::<SlotToken>(ring_slots);
        let counters = Arc::clone(metrics.counters());
        source.attach_counters(&counters);
        let live = source.pacing() == Pacing::Live;
        let rectified = backend.rectified_input();
        let mut dets = decoder.new_list();
        let t0 = monotonic_ns();

        // Each thread blocks once on its (still empty) input channel before
        // any token exists: crossbeam allocates a thread's wait context and
        // a channel's waiter list on first use, and that belongs to boot.
        let warm = std::sync::Barrier::new(4);
        let warm = &warm;
        let free_fill = free_tx.clone();
        let free_rx_end = free_rx.clone();
        let tracker_ref = &mut tracker;
        let (source_end, metrics, sink_stats) = std::thread::scope(|s| {
            let c = Arc::clone(&counters);
            let stop_s = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("supervisor".into())
                .spawn_scoped(s, move || {
                    supervise(
                        service,
                        Watched {
                            counters: &c,
                            clock,
                            stop: &stop_s,
                            finished,
                        },
                    )
                })
                .expect("spawning the supervisor thread");
            let c = Arc::clone(&counters);
            let stop_c = Arc::clone(&stop);
            let free_tx_c = free_tx.clone();
            let capture = std::thread::Builder::new()
                .name("capture".into())
                .spawn_scoped(s, move || {
                    crate::rt::apply_thread_policy("capture", policies[0], stack_kib);
                    warm_up(&free_rx, warm);
                    capture_loop(
                        &mut *source,
                        ring,
                        &free_rx,
                        &free_tx_c,
                        ready_tx,
                        &c,
                        &stop_c,
                        frames,
                        live,
                    )
                })
                .expect("spawning the capture thread");
            let c = Arc::clone(&counters);
            let free_tx_i = free_tx.clone();
            std::thread::Builder::new()
                .name("inference".into())
                .spawn_scoped(s, move || {
                    crate::rt::apply_thread_policy("inference", policies[1], stack_kib);
                    warm_up(&ready_rx, warm);
                    let watch = StageWatch {
                        clock,
                        deadline_ns: stage_deadline_ns,
                    };
                    inference_loop(
                        &mut *backend,
                        ring,
                        ready_rx,
                        &free_tx_i,
                        done_tx,
                        &c,
                        live,
                        watch,
                    )
                })
                .expect("spawning the inference thread");
            let post = std::thread::Builder::new()
                .name("postprocess".into())
                .spawn_scoped(s, move || {
                    crate::rt::apply_thread_policy("postprocess", policies[2], stack_kib);
                    warm_up(&done_rx, warm);
                    let mut pp = Post {
                        decoder: &mut decoder,
                        labels: &labels,
                        sink: &mut sink,
                        calibration: calibration.as_ref(),
                        tracker: tracker_ref.as_mut(),
                        letterbox,
                        rectified,
                        dets: &mut dets,
                        counters: Arc::clone(metrics.counters()),
                        metrics: &mut metrics,
                        summary: vec![0u8; 1024],
                        interval_ns: (metrics_interval_s * 1e9) as u64,
                        last_summary_ns: t0,
                        watch: StageWatch {
                            clock,
                            deadline_ns: stage_deadline_ns,
                        },
                    };
                    postprocess_loop(&mut pp, ring, done_rx, free_tx);
                    let sink_stats = *pp.sink.stats();
                    (metrics, sink_stats)
                })
                .expect("spawning the postprocess thread");
            warm.wait();
            for t in tokens {
                // Cannot fail: the channel holds exactly ring_slots tokens.
                let _ = free_fill.send(t);
            }
            drop(free_fill);
            let source_end = capture.join().unwrap_or(None);
            let (metrics, sink_stats) = post
                .join()
                .unwrap_or_else(|_| (Metrics::new(), SinkStats::default()));
            finished.store(true, Ordering::Release);
            (source_end, metrics, sink_stats)
        });
        RunReport {
            metrics,
            elapsed_s: (monotonic_ns() - t0) as f64 * 1e-9,
            source_end,
            sink_errors: sink_stats.errors(),
            sink_stats,
            slots_free_at_end: free_rx_end.len(),
            tracker: tracker.as_ref().map(Tracker::stats),
        }
    }
}

/// Boot, on the stage's own thread: block briefly on `rx` while it is
/// empty, so the first real wait allocates nothing; then wait for the others.
fn warm_up(rx: &Receiver<SlotToken>, warm: &std::sync::Barrier) {
    debug_assert!(rx.is_empty());
    // crossbeam spins and yields before it blocks, and gives up without
    // blocking if the deadline passed meanwhile (a loaded machine), so the
    // wait is long and repeated: boot may take 0.1 s, the loop may not
    // allocate.
    for _ in 0..2 {
        let _ = rx.recv_timeout(Duration::from_millis(50));
    }
    warm.wait();
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    source: &mut dyn Source,
    ring: &Ring,
    free_rx: &Receiver<SlotToken>,
    free_tx: &Sender<SlotToken>,
    ready_tx: Sender<SlotToken>,
    c: &Counters,
    stop: &AtomicBool,
    frames: Option<u64>,
    live: bool,
) -> Option<SourceError> {
    let mut seq = 0u64;
    let mut timed_out = false;
    loop {
        if stop.load(Ordering::Relaxed) || frames.is_some_and(|n| seq >= n) {
            return None;
        }
        let token = if live {
            free_rx.try_recv().ok()
        } else {
            match free_rx.recv_timeout(POLL) {
                Ok(t) => Some(t),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        };
        let Some(mut token) = token else {
            // Live source, no free slot: keep the camera's queue moving.
            match source.skip_frame() {
                Ok(_) => {
                    Counters::bump(&c.frames_in);
                    Counters::bump(&c.dropped_no_slot);
                    seq += 1;
                }
                Err(e) => match source_fault(e, c, &mut timed_out) {
                    Some(end) => return end,
                    None => continue,
                },
            }
            continue;
        };
        let result = {
            let mut slot = ring.slot(&mut token);
            match source.next_frame(&mut slot.frame) {
                Ok(stamp) => {
                    slot.meta = SlotMeta {
                        seq,
                        stamp,
                        t_ready_ns: monotonic_ns(),
                        ..SlotMeta::default()
                    };
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {
                timed_out = false;
                seq += 1;
                Counters::bump(&c.frames_in);
                if ready_tx.send(token).is_err() {
                    return None;
                }
            }
            Err(e) => {
                let _ = free_tx.send(token);
                if let Some(end) = source_fault(e, c, &mut timed_out) {
                    return end;
                }
            }
        }
    }
}

/// Counts a per-frame source fault; `Some(end)` when the run must end
/// (`Some(None)` for a clean end of stream).
fn source_fault(e: SourceError, c: &Counters, timed_out: &mut bool) -> Option<Option<SourceError>> {
    match e {
        SourceError::End => Some(None),
        SourceError::BadFrame { .. } => {
            Counters::bump(&c.dropped_bad_frame);
            None
        }
        // The source logged the loss and counts its reconnection attempts.
        SourceError::Reconnecting { .. } => {
            *timed_out = false;
            None
        }
        SourceError::Timeout { .. } => {
            if !*timed_out {
                log::warn!("{e}");
                *timed_out = true;
            }
            None
        }
        other => Some(Some(other)),
    }
}

/// A stage's view of the deadline bookkeeping: it stamps when it takes
/// and releases a frame, and counts a miss when it held one too long.
#[derive(Clone, Copy)]
struct StageWatch<'a> {
    clock: &'a StageClock,
    /// 0 = no deadline.
    deadline_ns: u64,
}

impl StageWatch<'_> {
    /// Frame path: never allocates.
    fn held(&self, c: &Counters, start_ns: u64, end_ns: u64) {
        if self.deadline_ns > 0 && end_ns.saturating_sub(start_ns) > self.deadline_ns {
            Counters::bump(&c.deadline_misses);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn inference_loop(
    backend: &mut dyn Backend,
    ring: &Ring,
    ready_rx: Receiver<SlotToken>,
    free_tx: &Sender<SlotToken>,
    done_tx: Sender<SlotToken>,
    c: &Counters,
    live: bool,
    watch: StageWatch<'_>,
) {
    loop {
        let mut token = match ready_rx.recv_timeout(POLL) {
            Ok(t) => t,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if live {
            // Latest frame wins: anything newer supersedes what we hold.
            while let Ok(newer) = ready_rx.try_recv() {
                let _ = free_tx.send(token);
                Counters::bump(&c.dropped_superseded);
                token = newer;
            }
        }
        {
            let index = token.index();
            let mut slot = ring.slot(&mut token);
            let start = monotonic_ns();
            slot.meta.t_infer_start_ns = start;
            StageClock::enter(&watch.clock.inference_since_ns, start);
            let slot = &mut *slot;
            let timing = backend.infer(index, &slot.frame, &mut slot.output);
            slot.meta.t_pre_done_ns = timing.pre_done_ns;
            let end = monotonic_ns();
            slot.meta.t_infer_done_ns = end;
            StageClock::leave(&watch.clock.inference_since_ns);
            watch.held(c, start, end);
        }
        if done_tx.send(token).is_err() {
            return;
        }
    }
}

struct Post<'a> {
    decoder: &'a mut Decoder,
    labels: &'a Labels,
    sink: &'a mut JsonSink,
    calibration: Option<&'a Calibration>,
    tracker: Option<&'a mut Tracker>,
    letterbox: LetterboxInfo,
    /// The model saw the undistorted image: boxes come out rectified.
    rectified: bool,
    dets: &'a mut DetectionList,
    metrics: &'a mut Metrics,
    /// The metrics' shared counters (also bumped by the other threads).
    counters: Arc<Counters>,
    summary: Vec<u8>,
    interval_ns: u64,
    last_summary_ns: u64,
    watch: StageWatch<'a>,
}

fn postprocess_loop(
    pp: &mut Post<'_>,
    ring: &Ring,
    done_rx: Receiver<SlotToken>,
    free_tx: Sender<SlotToken>,
) {
    loop {
        let mut token = match done_rx.recv_timeout(POLL) {
            Ok(t) => t,
            Err(RecvTimeoutError::Timeout) => {
                pp.maybe_summary();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        {
            let mut slot = ring.slot(&mut token);
            let start = monotonic_ns();
            slot.meta.t_post_start_ns = start;
            StageClock::enter(&pp.watch.clock.postprocess_since_ns, start);
            pp.frame(&slot.output, &slot.meta);
            StageClock::leave(&pp.watch.clock.postprocess_since_ns);
        }
        let _ = free_tx.send(token);
        pp.maybe_summary();
    }
}

impl Post<'_> {
    /// Decode, place on the ground, publish, measure. Frame path: never
    /// allocates.
    fn frame(&mut self, output: &[f32], m: &SlotMeta) {
        let counters = &*self.counters;
        if self
            .decoder
            .decode(output, &self.letterbox, self.dets)
            .is_err()
        {
            self.dets.clear();
        }
        if let Some(cal) = self.calibration {
            for d in self.dets.as_mut_slice() {
                d.ground = ground_of(cal, d, self.rectified);
                if self.rectified {
                    d.bbox = cal.rectified_box_to_source(d.bbox);
                }
            }
        }
        if let Some(t) = self.tracker.as_deref_mut() {
            t.run(
                m.stamp.source_ns.unwrap_or(m.stamp.capture_ns),
                self.dets.as_mut_slice(),
            );
        }
        let now = monotonic_ns();
        let ms = |a: u64, b: u64| b.saturating_sub(a) as f32 * 1e-6;
        let values = counters.values();
        let rec = FrameRecord {
            seq: m.seq,
            capture_ns: m.stamp.capture_ns,
            source_ns: m.stamp.source_ns,
            queue_ms: ms(m.t_ready_ns, m.t_infer_start_ns),
            preprocess_ms: ms(m.t_infer_start_ns, m.t_pre_done_ns),
            inference_ms: ms(m.t_pre_done_ns, m.t_infer_done_ns),
            postprocess_ms: ms(m.t_post_start_ns, now),
            e2e_ms: ms(m.stamp.capture_ns, now),
            dropped_total: values.dropped(),
            tracked: self.tracker.is_some(),
        };
        if self
            .sink
            .write_frame(&rec, self.dets.as_slice(), self.labels)
            .is_err()
        {
            Counters::bump(&counters.sink_errors);
        }
        let end = monotonic_ns();
        let ns = |a: u64, b: u64| b.saturating_sub(a);
        self.metrics
            .record_stage(Stage::Queue, ns(m.t_ready_ns, m.t_infer_start_ns));
        self.metrics
            .record_stage(Stage::Preprocess, ns(m.t_infer_start_ns, m.t_pre_done_ns));
        self.metrics
            .record_stage(Stage::Inference, ns(m.t_pre_done_ns, m.t_infer_done_ns));
        self.metrics
            .record_stage(Stage::Postprocess, ns(m.t_post_start_ns, end));
        self.metrics
            .record_stage(Stage::EndToEnd, ns(m.stamp.capture_ns, end));
        self.watch.held(counters, m.t_post_start_ns, end);
        counters
            .last_e2e_ns
            .store(ns(m.stamp.capture_ns, end), Ordering::Relaxed);
        Counters::bump(&counters.processed);
    }

    /// The periodic summary line on stderr, written from a boot-time
    /// buffer. Frame path: never allocates.
    fn maybe_summary(&mut self) {
        if self.interval_ns == 0 {
            return;
        }
        let now = monotonic_ns();
        let since = now.saturating_sub(self.last_summary_ns);
        if since < self.interval_ns {
            return;
        }
        self.last_summary_ns = now;
        let line = self
            .metrics
            .write_interval_summary(&mut self.summary, since as f64 * 1e-9);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"[perceptd] ");
        let _ = err.write_all(line.as_bytes());
        let _ = err.write_all(b"\n");
    }
}

/// Ground position of a detection: the ray through the undistorted bottom
/// centre of its box, intersected with the ground plane. A box from the
/// rectified image is already undistorted; a raw one is undistorted here.
/// Boxes span `[0, width]` (pixel centres at +0.5), calibration pixels are
/// OpenCV's (centres at integers), hence the half pixel.
fn ground_of(cal: &Calibration, d: &Detection, rectified: bool) -> Option<[f32; 2]> {
    let u = 0.5 * f64::from(d.bbox[0] + d.bbox[2]) - 0.5;
    let v = f64::from(d.bbox[3]) - 0.5;
    let g = if rectified {
        cal.rectified_pixel_ray_ground(u, v)
    } else {
        cal.pixel_ray_ground(u, v)
    };
    g.map(|[x, y]| [x as f32, y as f32])
}
