//! Pipeline metrics: per-stage latency histograms and frame counters, and
//! the one-line summaries printed periodically and at shutdown.
//!
//! Histograms have fixed log-spaced buckets (16 per decade from 10 µs to
//! 10 s, plus an underflow and an overflow bucket), so a percentile read
//! back as the bucket's geometric midpoint is within 7.5 % of the true
//! value; count, sum, exact min and exact max are kept alongside.
//!
//! Threads: [`Metrics`] (histograms, summaries) is owned and updated by the
//! postprocess thread. [`Counters`] are atomics shared through an `Arc`, so
//! the capture and inference threads bump drops directly (Relaxed: they are
//! statistics, not synchronisation).
//!
//! Allocation: [`Metrics::new`] allocates the shared counters once; every
//! other method never allocates (histograms are fixed arrays, summaries are
//! written into a caller's byte buffer).

use crate::text::SliceWriter;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Buckets per decade; bucket ratio 10^(1/16) = 1.155.
const PER_DECADE: usize = 16;
const DECADES: usize = 6;
/// Lower edge of the first regular bucket: 10 µs.
const MIN_NS: f64 = 10_000.0;
/// Edges of the regular buckets: `EDGES + 1` values from 10 µs to 10 s.
const EDGES: usize = PER_DECADE * DECADES;
/// Underflow (< 10 µs), the regular buckets, overflow (>= 10 s).
const BUCKETS: usize = EDGES + 2;

/// Pipeline stages with a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting in the ready queue for the inference thread.
    Queue,
    Preprocess,
    Inference,
    Postprocess,
    /// Capture to sink.
    EndToEnd,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Queue,
        Stage::Preprocess,
        Stage::Inference,
        Stage::Postprocess,
        Stage::EndToEnd,
    ];

    /// Short name used in summary lines.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Preprocess => "pre",
            Stage::Inference => "infer",
            Stage::Postprocess => "post",
            Stage::EndToEnd => "e2e",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Frame counters other threads bump (`fetch_add(1, Relaxed)`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames taken from the source (including ones then dropped).
    pub frames_in: AtomicU64,
    /// Frames that reached the end of postprocess.
    pub processed: AtomicU64,
    /// Capture had no free slot (live pacing).
    pub dropped_no_slot: AtomicU64,
    /// A newer frame replaced this one in the ready queue (latest wins).
    pub dropped_superseded: AtomicU64,
    /// The source flagged or mis-sized the frame.
    pub dropped_bad_frame: AtomicU64,
    /// Frames held by one stage (inference, postprocess) longer than
    /// `pipeline.stage_deadline_ms` (one per frame at most).
    pub deadline_misses: AtomicU64,
    /// Lines the sink could not write.
    pub sink_errors: AtomicU64,
    /// The camera went away (ENODEV, POLLERR, a failed ioctl).
    pub camera_lost: AtomicU64,
    /// The camera stopped delivering frames for a whole poll timeout.
    pub camera_stalls: AtomicU64,
    /// Successful re-opens after a loss or a stall.
    pub camera_reconnects: AtomicU64,
    /// Re-open attempts that failed (each is retried with backoff).
    pub camera_reconnect_failures: AtomicU64,
    /// EINTR / EAGAIN answers while waiting for a frame (retried).
    pub camera_retries: AtomicU64,
    /// Gauge, not a counter: end-to-end latency of the last processed
    /// frame in ns (read by the service supervisor for `STATUS=`).
    pub last_e2e_ns: AtomicU64,
}

/// When each watched stage took its current frame (CLOCK_MONOTONIC ns, 0 =
/// idle), so a supervisor on another thread sees a frame held too long
/// even while the stage is stuck. Written by the stage's own thread,
/// never allocates.
#[derive(Debug, Default)]
pub struct StageClock {
    pub inference_since_ns: AtomicU64,
    pub postprocess_since_ns: AtomicU64,
}

impl StageClock {
    /// The stage took a frame at `now_ns`.
    pub fn enter(slot: &AtomicU64, now_ns: u64) {
        slot.store(now_ns.max(1), Ordering::Release);
    }

    /// The stage let its frame go.
    pub fn leave(slot: &AtomicU64) {
        slot.store(0, Ordering::Release);
    }

    /// The longest-held frame right now: `(stage name, held ns)`, or None
    /// when both stages are idle.
    pub fn longest_held(&self, now_ns: u64) -> Option<(&'static str, u64)> {
        [
            ("inference", &self.inference_since_ns),
            ("postprocess", &self.postprocess_since_ns),
        ]
        .into_iter()
        .filter_map(|(name, s)| {
            let since = s.load(Ordering::Acquire);
            (since != 0).then(|| (name, now_ns.saturating_sub(since)))
        })
        .max_by_key(|&(_, held)| held)
    }
}

impl Counters {
    /// Adds one. Never allocates, any thread.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy of every counter.
    pub fn values(&self) -> CounterValues {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            frames_in: g(&self.frames_in),
            processed: g(&self.processed),
            dropped_no_slot: g(&self.dropped_no_slot),
            dropped_superseded: g(&self.dropped_superseded),
            dropped_bad_frame: g(&self.dropped_bad_frame),
            deadline_misses: g(&self.deadline_misses),
            sink_errors: g(&self.sink_errors),
            camera_lost: g(&self.camera_lost),
            camera_stalls: g(&self.camera_stalls),
            camera_reconnects: g(&self.camera_reconnects),
            camera_reconnect_failures: g(&self.camera_reconnect_failures),
            camera_retries: g(&self.camera_retries),
        }
    }
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterValues {
    pub frames_in: u64,
    pub processed: u64,
    pub dropped_no_slot: u64,
    pub dropped_superseded: u64,
    pub dropped_bad_frame: u64,
    pub deadline_misses: u64,
    pub sink_errors: u64,
    pub camera_lost: u64,
    pub camera_stalls: u64,
    pub camera_reconnects: u64,
    pub camera_reconnect_failures: u64,
    pub camera_retries: u64,
}

impl CounterValues {
    pub fn dropped(&self) -> u64 {
        self.dropped_no_slot + self.dropped_superseded + self.dropped_bad_frame
    }

    fn since(&self, earlier: &CounterValues) -> CounterValues {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        CounterValues {
            frames_in: d(self.frames_in, earlier.frames_in),
            processed: d(self.processed, earlier.processed),
            dropped_no_slot: d(self.dropped_no_slot, earlier.dropped_no_slot),
            dropped_superseded: d(self.dropped_superseded, earlier.dropped_superseded),
            dropped_bad_frame: d(self.dropped_bad_frame, earlier.dropped_bad_frame),
            deadline_misses: d(self.deadline_misses, earlier.deadline_misses),
            sink_errors: d(self.sink_errors, earlier.sink_errors),
            camera_lost: d(self.camera_lost, earlier.camera_lost),
            camera_stalls: d(self.camera_stalls, earlier.camera_stalls),
            camera_reconnects: d(self.camera_reconnects, earlier.camera_reconnects),
            camera_reconnect_failures: d(
                self.camera_reconnect_failures,
                earlier.camera_reconnect_failures,
            ),
            camera_retries: d(self.camera_retries, earlier.camera_retries),
        }
    }
}

/// A fixed-bucket latency histogram in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

impl Histogram {
    fn record(&mut self, edges: &[u64; EDGES + 1], ns: u64) {
        // Number of edges <= ns: 0 is the underflow bucket, EDGES + 1 the
        // overflow bucket.
        let b = edges.partition_point(|&e| e <= ns);
        self.counts[b] += 1;
        self.count += 1;
        self.sum_ns += ns as u128;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    pub fn min_ns(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min_ns)
    }

    pub fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64
        }
    }

    /// The `q` quantile (0..=1) in ns: the geometric midpoint of the bucket
    /// holding the sample of rank ceil(q * count), clamped to the exact
    /// min and max (the first and last rank are exact). 0 when empty.
    /// Below 10 µs and above 10 s the bucket is open-ended, so there the
    /// estimate is only bounded by min and max.
    fn quantile(&self, edges: &[u64; EDGES + 1], q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == 1 {
            return self.min_ns as f64;
        }
        if rank == self.count {
            return self.max_ns as f64;
        }
        let mut seen = 0;
        let mut bucket = BUCKETS - 1;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                bucket = b;
                break;
            }
        }
        let (min, max) = (self.min_ns as f64, self.max_ns as f64);
        let (lo, hi) = match bucket {
            0 => (min, edges[0] as f64),
            b if b == BUCKETS - 1 => (edges[EDGES] as f64, max),
            b => (edges[b - 1] as f64, edges[b] as f64),
        };
        let mid = if lo > 0.0 { (lo * hi).sqrt() } else { hi / 2.0 };
        mid.clamp(min, max)
    }
}

/// Latency histograms for every stage (total and since the last interval
/// summary) plus the shared counters.
#[derive(Debug)]
pub struct Metrics {
    edges: [u64; EDGES + 1],
    total: [Histogram; 5],
    interval: [Histogram; 5],
    counters: Arc<Counters>,
    /// Counters at the last interval summary.
    counters_mark: CounterValues,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Boot: allocates the shared counters.
    pub fn new() -> Metrics {
        let mut edges = [0u64; EDGES + 1];
        for (k, e) in edges.iter_mut().enumerate() {
            *e = (MIN_NS * 10f64.powf(k as f64 / PER_DECADE as f64)).round() as u64;
        }
        Metrics {
            edges,
            total: [Histogram::default(); 5],
            interval: [Histogram::default(); 5],
            counters: Arc::new(Counters::default()),
            counters_mark: CounterValues::default(),
        }
    }

    /// The counters, to hand to other threads at boot.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Records one latency. Frame path: never allocates.
    pub fn record_stage(&mut self, stage: Stage, ns: u64) {
        let i = stage.index();
        self.total[i].record(&self.edges, ns);
        self.interval[i].record(&self.edges, ns);
    }

    /// The whole-run histogram of `stage`.
    pub fn histogram(&self, stage: Stage) -> &Histogram {
        &self.total[stage.index()]
    }

    /// The `q` quantile (0..=1) of `stage` over the whole run, in
    /// nanoseconds (within 7.5 % of the exact value; 0 with no samples).
    pub fn percentile(&self, stage: Stage, q: f64) -> f64 {
        self.total[stage.index()].quantile(&self.edges, q)
    }

    /// The whole-run summary line (see [`Metrics::write_interval_summary`]
    /// for the format) into `buf`; truncated if `buf` is too small.
    /// Never allocates.
    pub fn write_summary<'a>(&self, buf: &'a mut [u8], elapsed_s: f64) -> &'a str {
        let mut w = SliceWriter::new(buf);
        let _ = self.write_line(&mut w, &self.total, &self.counters.values(), elapsed_s);
        w.into_str()
    }

    /// The summary since the previous interval summary (or boot), then
    /// starts a new interval. `elapsed_s` is the interval's length. Line:
    ///
    /// `frames 300 (10.0 fps), dropped 2 (no slot 0, superseded 2, bad 0),
    /// deadline misses 0, sink errors 0, camera lost 0 stalls 0 reconnects 0
    /// (failed 0) retries 0; e2e p50 12.1 ms p99 15.3 ms
    /// p99.9 16.0 ms max 16.2 ms; infer ...; pre ...; post ...; queue ...`
    ///
    /// (`frames` = processed; a stage without samples reads `infer -`).
    /// Never allocates.
    pub fn write_interval_summary<'a>(&mut self, buf: &'a mut [u8], elapsed_s: f64) -> &'a str {
        let now = self.counters.values();
        let delta = now.since(&self.counters_mark);
        let mut w = SliceWriter::new(buf);
        let _ = self.write_line(&mut w, &self.interval, &delta, elapsed_s);
        self.counters_mark = now;
        self.interval = [Histogram::default(); 5];
        w.into_str()
    }

    fn write_line(
        &self,
        w: &mut SliceWriter<'_>,
        hist: &[Histogram; 5],
        c: &CounterValues,
        elapsed_s: f64,
    ) -> fmt::Result {
        let fps = if elapsed_s > 0.0 {
            c.processed as f64 / elapsed_s
        } else {
            0.0
        };
        write!(
            w,
            "frames {} ({fps:.1} fps), dropped {} (no slot {}, superseded {}, bad {}), \
             deadline misses {}, sink errors {}, camera lost {} stalls {} reconnects {} \
             (failed {}) retries {}",
            c.processed,
            c.dropped(),
            c.dropped_no_slot,
            c.dropped_superseded,
            c.dropped_bad_frame,
            c.deadline_misses,
            c.sink_errors,
            c.camera_lost,
            c.camera_stalls,
            c.camera_reconnects,
            c.camera_reconnect_failures,
            c.camera_retries
        )?;
        for stage in [
            Stage::EndToEnd,
            Stage::Inference,
            Stage::Preprocess,
            Stage::Postprocess,
            Stage::Queue,
        ] {
            let h = &hist[stage.index()];
            write!(w, "; {}", stage.name())?;
            if h.count == 0 {
                w.write_str(" -")?;
                continue;
            }
            for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
                write!(w, " {label} ")?;
                ms(w, h.quantile(&self.edges, q))?;
            }
            w.write_str(" max ")?;
            ms(w, h.max_ns as f64)?;
        }
        Ok(())
    }
}

/// Nanoseconds as milliseconds with about three significant digits.
fn ms(w: &mut SliceWriter<'_>, ns: f64) -> fmt::Result {
    let v = ns / 1e6;
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else if v >= 1.0 {
        2
    } else {
        3
    };
    write!(w, "{v:.decimals$} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_quantile(sorted: &[u64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64
    }

    fn check_distribution(samples: &mut [u64]) {
        let mut m = Metrics::new();
        for &s in samples.iter() {
            m.record_stage(Stage::Inference, s);
        }
        samples.sort_unstable();
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let want = exact_quantile(samples, q);
            let got = m.percentile(Stage::Inference, q);
            let err = (got - want).abs() / want;
            assert!(err <= 0.076, "q {q}: got {got} want {want} (err {err:.3})");
        }
        let h = m.histogram(Stage::Inference);
        assert_eq!(h.count(), samples.len() as u64);
        assert_eq!(h.max_ns(), *samples.last().unwrap());
        assert_eq!(h.min_ns(), Some(samples[0]));
    }

    /// Deterministic uniform [0, 1) from a 64-bit LCG.
    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn uniform_latencies_within_bucket_error() {
        let mut s = 1;
        let mut v: Vec<u64> = (0..10_000)
            .map(|_| (5e6 + 10e6 * lcg(&mut s)) as u64)
            .collect();
        check_distribution(&mut v);
    }

    #[test]
    fn log_normal_latencies_within_bucket_error() {
        // Heavy tail spanning several decades, including < 10 µs and > 10 s.
        let mut s = 7;
        let mut v: Vec<u64> = (0..20_000)
            .map(|_| {
                let (u1, u2) = (lcg(&mut s).max(1e-12), lcg(&mut s));
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (1e7 * (1.5 * z).exp()) as u64 + 1
            })
            .collect();
        check_distribution(&mut v);
    }

    #[test]
    fn constant_latency_is_exact() {
        let mut m = Metrics::new();
        for _ in 0..100 {
            m.record_stage(Stage::EndToEnd, 12_345_678);
        }
        assert_eq!(m.percentile(Stage::EndToEnd, 0.5), 12_345_678.0);
        assert_eq!(m.percentile(Stage::Queue, 0.5), 0.0);
    }

    #[test]
    fn bucket_edges_are_log_spaced() {
        let m = Metrics::new();
        assert_eq!(m.edges[0], 10_000);
        assert_eq!(m.edges[PER_DECADE], 100_000);
        assert_eq!(m.edges[EDGES], 10_000_000_000);
        for w in m.edges.windows(2) {
            let r = w[1] as f64 / w[0] as f64;
            assert!((r - 10f64.powf(1.0 / 16.0)).abs() < 1e-3, "{w:?}");
        }
    }

    #[test]
    fn summary_line_content() {
        let mut m = Metrics::new();
        let c = m.counters().clone();
        for i in 0..300u64 {
            Counters::bump(&c.frames_in);
            Counters::bump(&c.processed);
            m.record_stage(Stage::EndToEnd, 12_000_000 + i * 10_000);
            m.record_stage(Stage::Inference, 8_000_000);
            m.record_stage(Stage::Preprocess, 1_500_000);
            m.record_stage(Stage::Postprocess, 200_000);
        }
        Counters::bump(&c.dropped_superseded);
        Counters::bump(&c.dropped_superseded);
        Counters::bump(&c.sink_errors);
        let mut buf = [0u8; 512];
        let line = m.write_summary(&mut buf, 30.0);
        assert!(
            line.starts_with(
                "frames 300 (10.0 fps), dropped 2 (no slot 0, superseded 2, bad 0), \
                 deadline misses 0, sink errors 1, camera lost 0 stalls 0 reconnects 0 \
                 (failed 0) retries 0; e2e p50 "
            ),
            "{line}"
        );
        assert!(line.contains(" max 15.0 ms; infer p50 8.00 ms p99 8.00 ms p99.9 8.00 ms max 8.00 ms; pre p50 1.50 ms"), "{line}");
        assert!(line.contains("; post p50 0.200 ms"), "{line}");
        assert!(line.ends_with("; queue -"), "{line}");

        // Truncated into a small buffer, never past it.
        let full = line.to_string();
        let mut small = [0u8; 20];
        let cut = m.write_summary(&mut small, 30.0);
        assert!(
            !cut.is_empty() && cut.len() <= 20 && full.starts_with(cut),
            "{cut}"
        );
    }

    #[test]
    fn interval_summary_covers_only_the_interval() {
        let mut m = Metrics::new();
        let c = m.counters().clone();
        for _ in 0..10 {
            Counters::bump(&c.processed);
            m.record_stage(Stage::EndToEnd, 50_000_000);
        }
        let mut buf = [0u8; 512];
        let first = m.write_interval_summary(&mut buf, 1.0).to_string();
        assert!(first.starts_with("frames 10 (10.0 fps)"), "{first}");
        assert!(first.contains("max 50.0 ms"), "{first}");

        for _ in 0..5 {
            Counters::bump(&c.processed);
            m.record_stage(Stage::EndToEnd, 20_000_000);
        }
        Counters::bump(&c.dropped_no_slot);
        let second = m.write_interval_summary(&mut buf, 1.0).to_string();
        assert!(
            second.starts_with("frames 5 (5.0 fps), dropped 1 (no slot 1"),
            "{second}"
        );
        assert!(
            second.contains("e2e p50 20.0 ms p99 20.0 ms p99.9 20.0 ms max 20.0 ms"),
            "{second}"
        );

        let total = m.write_summary(&mut buf, 2.0).to_string();
        assert!(
            total.starts_with("frames 15 (7.5 fps), dropped 1"),
            "{total}"
        );
        assert!(total.contains("max 50.0 ms"), "{total}");
        let empty = m.write_interval_summary(&mut buf, 1.0).to_string();
        assert!(
            empty.starts_with("frames 0 (0.0 fps)") && empty.contains("e2e -"),
            "{empty}"
        );
    }
}
