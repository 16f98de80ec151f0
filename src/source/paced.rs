//! Real-time pacing for on-demand sources: [`Paced`] delivers the wrapped
//! source's frames at a fixed rate on CLOCK_MONOTONIC and reports
//! [`Pacing::Live`], so the synthetic scene behaves like a camera
//! (latest frame wins, drops counted).
//!
//! Frame path: never allocates.

use super::{FrameStamp, Pacing, Source, SourceError};
use crate::clock::monotonic_ns;
use crate::frame::FrameDesc;

pub struct Paced<S: Source> {
    inner: S,
    period_ns: u64,
    next_due_ns: Option<u64>,
}

impl<S: Source> Paced<S> {
    /// `fps` must be positive (validated by the config).
    pub fn new(inner: S, fps: f64) -> Paced<S> {
        Paced {
            inner,
            period_ns: (1e9 / fps.max(1e-3)) as u64,
            next_due_ns: None,
        }
    }

    fn wait_due(&mut self) -> u64 {
        let now = monotonic_ns();
        let due = *self.next_due_ns.get_or_insert(now);
        if due > now {
            // Wakes early on a stop request (fps = 0.05 is a 20 s wait).
            crate::stop::sleep_until(due);
        }
        // A late consumer does not get a burst of catch-up frames: the
        // next frame is due one period after this one was delivered.
        let delivered = monotonic_ns().max(due);
        self.next_due_ns = Some((due + self.period_ns).max(delivered));
        delivered
    }
}

impl<S: Source> Source for Paced<S> {
    fn desc(&self) -> FrameDesc {
        self.inner.desc()
    }

    fn pacing(&self) -> Pacing {
        Pacing::Live
    }

    fn describe(&self) -> String {
        format!(
            "{} paced at {:.1} fps",
            self.inner.describe(),
            1e9 / self.period_ns as f64
        )
    }

    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        let t = self.wait_due();
        let mut s = self.inner.next_frame(dst)?;
        s.capture_ns = t;
        Ok(s)
    }

    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        let t = self.wait_due();
        let mut s = self.inner.skip_frame()?;
        s.capture_ns = t;
        Ok(s)
    }
}
