//! The supervisor thread: watches the pipeline's progress from outside the
//! frame path and tells systemd the truth about it.
//!
//! * `READY=1` once the first frame has passed the whole pipeline (capture,
//!   inference, postprocess, sink): boot alone is not readiness.
//! * `WATCHDOG=1` only when frames completed since the last ping, at least
//!   every quarter of `WATCHDOG_USEC` while they do. A hung stage or a dead
//!   camera stops the frames and so the pings; this thread being alive
//!   does not keep them going.
//! * `STATUS=` about once a second: fps, last end-to-end latency, totals.
//! * `STOPPING=1` when a stop is requested (or the pipeline ends).
//! * Hard stage deadline: a frame held by inference or postprocess longer
//!   than `pipeline.hard_deadline_ms` ends the process with exit code
//!   [`EXIT_HARD_DEADLINE`] (the stuck thread cannot be unwound; systemd
//!   restarts the service).
//!
//! Runs on its own thread (`supervisor`), spawned with the pipeline
//! threads; never allocates (messages are formatted into stack buffers).

use super::{ServiceSetup, EXIT_HARD_DEADLINE};
use crate::clock::monotonic_ns;
use crate::metrics::{Counters, StageClock};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the supervisor watches (all shared with the pipeline threads).
pub struct Watched<'a> {
    pub counters: &'a Counters,
    pub clock: &'a StageClock,
    /// Shutdown requested (Ctrl-C, SIGTERM).
    pub stop: &'a AtomicBool,
    /// The pipeline threads are done: the supervisor returns.
    pub finished: &'a AtomicBool,
}

const MS: u64 = 1_000_000;

/// The supervisor loop; returns once `finished` is set.
pub fn supervise(setup: &ServiceSetup, w: Watched<'_>) {
    let n = &setup.notifier;
    let watchdog_ns = n.watchdog_usec().map(|u| u.saturating_mul(1000));
    // Ping at a quarter of the period: a ping can be one tick late and a
    // frame may complete just after a tick, and still be within half.
    let ping_every_ns = watchdog_ns.map_or(u64::MAX, |w| w / 4);
    let tick_ns = watchdog_ns.map_or(50 * MS, |w| w / 8).clamp(MS, 50 * MS);
    let tick = Duration::from_nanos(tick_ns);
    let mut ready = false;
    let mut stopping = false;
    let mut last_ping_ns = monotonic_ns();
    let mut pinged_at = 0u64;
    let mut status_ns = last_ping_ns;
    let mut status_processed = 0u64;
    let mut last_frame_ns = last_ping_ns;
    let mut last_processed = 0u64;
    while !w.finished.load(Ordering::Acquire) {
        let now = monotonic_ns();
        let processed = w.counters.processed.load(Ordering::Relaxed);
        if processed != last_processed {
            last_processed = processed;
            last_frame_ns = now;
        }
        if w.stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            n.stopping();
        }
        if !stopping && processed > 0 {
            if !ready {
                ready = true;
                let mut buf = [0u8; 200];
                let len = status(&mut buf, w.counters, 0.0, now - last_frame_ns);
                n.ready(&buf[..len]);
                last_ping_ns = now;
                pinged_at = processed;
                status_ns = now;
                status_processed = processed;
            } else if processed > pinged_at && now - last_ping_ns >= ping_every_ns {
                n.watchdog();
                last_ping_ns = now;
                pinged_at = processed;
            }
            if ready && now - status_ns >= 1000 * MS {
                let fps = (processed - status_processed) as f64 * 1e9 / (now - status_ns) as f64;
                let mut buf = [0u8; 200];
                let len = status(&mut buf, w.counters, fps, now - last_frame_ns);
                n.send(&buf[..len]);
                status_ns = now;
                status_processed = processed;
            }
        }
        if setup.hard_deadline_ns > 0 {
            if let Some((stage, held)) = w.clock.longest_held(now) {
                if held > setup.hard_deadline_ns {
                    hard_deadline_exit(setup, stage, held);
                }
            }
        }
        std::thread::sleep(tick);
    }
    if !stopping {
        n.stopping();
    }
}

/// `STATUS=...` into `buf`; returns its length. Never allocates.
fn status(buf: &mut [u8], c: &Counters, fps: f64, idle_ns: u64) -> usize {
    let cap = buf.len();
    let v = c.values();
    let e2e_ms = c.last_e2e_ns.load(Ordering::Relaxed) as f64 * 1e-6;
    let mut w = &mut buf[..];
    let _ = if idle_ns > 2000 * MS {
        write!(
            w,
            "STATUS=no frame for {:.1} s; {} frames, {} dropped, camera lost {}, reconnects {}",
            idle_ns as f64 * 1e-9,
            v.processed,
            v.dropped(),
            v.camera_lost + v.camera_stalls,
            v.camera_reconnects
        )
    } else {
        write!(
            w,
            "STATUS={fps:.1} fps, e2e {e2e_ms:.1} ms; {} frames, {} dropped, {} deadline misses, camera lost {}",
            v.processed,
            v.dropped(),
            v.deadline_misses,
            v.camera_lost + v.camera_stalls
        )
    };
    cap - w.len()
}

fn hard_deadline_exit(setup: &ServiceSetup, stage: &str, held_ns: u64) -> ! {
    let mut buf = [0u8; 200];
    let len = {
        let mut w = &mut buf[..];
        let _ = write!(
            w,
            "STATUS=exiting: {stage} held a frame for {:.0} ms (hard deadline {} ms)",
            held_ns as f64 * 1e-6,
            setup.hard_deadline_ns / MS
        );
        200 - w.len()
    };
    setup.notifier.send(&buf[..len]);
    // Best effort: eprintln! panics on a closed or full stderr, and the
    // process must still exit with the documented code.
    let _ = writeln!(
        std::io::stderr(),
        "error: the {stage} stage held one frame for {:.0} ms, past pipeline.hard_deadline_ms = {}; exiting with code {EXIT_HARD_DEADLINE}",
        held_ns as f64 * 1e-6,
        setup.hard_deadline_ns / MS
    );
    std::process::exit(EXIT_HARD_DEADLINE)
}
