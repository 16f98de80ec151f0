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
use crate::frame::FrameDesc;
use crate::metrics::{Counters, Metrics, Stage, StageClock};
use crate::output::{Image, OutputReport};
use crate::postprocess::Chain;
use crate::ring::{Ring, SlotMeta, SlotToken};
use crate::service::supervisor::{supervise, Watched};
use crate::service::ServiceSetup;
use crate::source::{monotonic_ns, Pacing, Source, SourceError};
use crate::text::SliceWriter;
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
    /// Decode -> ground -> ... -> outputs, run on the postprocess thread.
    pub chain: Chain,
    /// The calibration the chain and the backend were built with.
    pub calibration: Option<Calibration>,
    pub ring_slots: usize,
    /// Stop after this many frames have been processed (published);
    /// frames dropped on the way do not count.
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
    /// Frames not published, summed over the outputs.
    pub sink_errors: u64,
    /// Each output's counts, faults by kind (broken pipe, refused, disk
    /// full, ...), in config order.
    pub outputs: Vec<OutputReport>,
    /// Ring slots back in the free queue after the threads ended (all of
    /// them, unless a thread died holding one).
    pub slots_free_at_end: usize,
    /// What the postprocess stages had to say at the end (the tracker's
    /// full track table, ...), one line each.
    pub stage_warnings: Vec<String>,
}

impl Pipeline {
    /// Run until the source ends, `frames` have been processed, or `stop` is
    /// set; then drain what is in flight and return the metrics.
    pub fn run(self, stop: Arc<AtomicBool>) -> RunReport {
        let Pipeline {
            mut source,
            mut backend,
            mut chain,
            calibration: _,
            ring_slots,
            frames,
            metrics_interval_s,
            policies,
            mut metrics,
            service,
        } = self;
        let desc = source.desc();
        let frame_bytes = desc.bytes();
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
        let t0 = monotonic_ns();

        // Each thread blocks once on its (still empty) input channel before
        // any token exists: crossbeam allocates a thread's wait context and
        // a channel's waiter list on first use, and that belongs to boot.
        let warm = std::sync::Barrier::new(4);
        let warm = &warm;
        let free_fill = free_tx.clone();
        let free_rx_end = free_rx.clone();
        let (source_end, metrics, outputs, stage_warnings) = std::thread::scope(|s| {
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
                        chain: &mut chain,
                        desc,
                        counters: Arc::clone(metrics.counters()),
                        metrics: &mut metrics,
                        summary: vec![0u8; SUMMARY_BYTES],
                        interval_ns: (metrics_interval_s * 1e9) as u64,
                        last_summary_ns: t0,
                        watch: StageWatch {
                            clock,
                            deadline_ns: stage_deadline_ns,
                        },
                    };
                    postprocess_loop(&mut pp, ring, done_rx, free_tx, frames);
                    // The run is over: the outputs may flush and allocate.
                    let outputs = chain.outputs.finish();
                    (metrics, outputs, chain.end_warnings())
                })
                .expect("spawning the postprocess thread");
            warm.wait();
            for t in tokens {
                // Cannot fail: the channel holds exactly ring_slots tokens.
                let _ = free_fill.send(t);
            }
            drop(free_fill);
            let source_end = capture.join().unwrap_or(None);
            let (metrics, outputs, warnings) = post
                .join()
                .unwrap_or_else(|_| (Metrics::new(), Vec::new(), Vec::new()));
            finished.store(true, Ordering::Release);
            (source_end, metrics, outputs, warnings)
        });
        RunReport {
            metrics,
            elapsed_s: (monotonic_ns() - t0) as f64 * 1e-9,
            source_end,
            sink_errors: outputs.iter().map(|o| o.stats.dropped).sum(),
            outputs,
            slots_free_at_end: free_rx_end.len(),
            stage_warnings,
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
        // Lockstep: every frame entering the ring is processed, so `seq`
        // counts; live: drops are not frames the user asked for.
        let enough = |n| {
            if live {
                c.processed.load(Ordering::Relaxed) >= n
            } else {
                seq >= n
            }
        };
        if stopping(stop) || frames.is_some_and(enough) {
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
                // A read or wait given up for a stop request: a clean end.
                Err(_) if stopping(stop) => return None,
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
                if stopping(stop) {
                    return None;
                }
                if let Some(end) = source_fault(e, c, &mut timed_out) {
                    return end;
                }
            }
        }
    }
}

/// Counts a per-frame source fault; `Some(end)` when the run must end
/// (`Some(None)` for a clean end of stream).
/// The pipeline's stop flag or a process-wide stop request (a signal: the
/// sources' waits look at the latter). Never allocates.
fn stopping(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || crate::stop::requested()
}

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
        if crate::stop::requested() {
            // A signal: the process has a second to end, and a queue of
            // frames each one inference long would take longer. The ones
            // still queued are counted as superseded (by the stop), and so
            // is the frame being inferred when the CPU engine gives up
            // between two steps (below); a GPU inference is finished and
            // published.
            let _ = free_tx.send(token);
            Counters::bump(&c.dropped_superseded);
            continue;
        }
        let complete = {
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
            timing.complete
        };
        if !complete {
            let _ = free_tx.send(token);
            Counters::bump(&c.dropped_superseded);
            continue;
        }
        if done_tx.send(token).is_err() {
            return;
        }
    }
}

/// Bytes of the periodic summary line (metrics, then one part per output).
const SUMMARY_BYTES: usize = 4096;

struct Post<'a> {
    chain: &'a mut Chain,
    /// The slot frames' format and size (what the outputs see).
    desc: FrameDesc,
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
    frames: Option<u64>,
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
        // Frames still in flight once `frames` were published are not.
        if frames.is_some_and(|n| pp.counters.processed.load(Ordering::Relaxed) >= n) {
            let _ = free_tx.send(token);
            continue;
        }
        {
            let mut slot = ring.slot(&mut token);
            let start = monotonic_ns();
            slot.meta.t_post_start_ns = start;
            StageClock::enter(&pp.watch.clock.postprocess_since_ns, start);
            let slot = &*slot;
            pp.frame(&slot.output, &slot.frame, &slot.meta);
            StageClock::leave(&pp.watch.clock.postprocess_since_ns);
        }
        let _ = free_tx.send(token);
        pp.maybe_summary();
    }
}

impl Post<'_> {
    /// Runs the postprocess chain (decode, ground, ..., outputs) and
    /// measures. Frame path: never allocates.
    fn frame(&mut self, output: &[f32], frame: &[u8], m: &SlotMeta) {
        let counters = &*self.counters;
        let image = Image {
            desc: self.desc,
            bytes: frame,
        };
        self.chain
            .run(output, m, image, m.t_post_start_ns, counters);
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
        let n = self
            .metrics
            .write_interval_summary(&mut self.summary, since as f64 * 1e-9)
            .len();
        let mut w = SliceWriter::new(&mut self.summary[n..]);
        let _ = self.chain.outputs.write_summary(&mut w, true);
        let n = n + w.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"[perceptd] ");
        let _ = err.write_all(&self.summary[..n]);
        let _ = err.write_all(b"\n");
    }
}
