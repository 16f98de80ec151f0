//! Stop requests: SIGINT/SIGTERM end the process within a second in every
//! state (boot, warm-up, waiting for a camera, a read blocked on a pipe,
//! a pacing sleep, a stuck sink).
//!
//! Owns the process-wide stop flag, the signal handler (installed by
//! `main` before boot) and the waits that honour the flag: [`sleep_until`]
//! sleeps in slices of at most [`SLICE`], [`wait_readable`] polls a pipe
//! with the same timeout. Sources call these instead of sleeping or reading
//! blindly, so a stop request is seen within one slice.
//!
//! What a signal does depends on the [`Phase`]:
//! * `Boot`: nothing has run yet, nothing to summarise: one line on stderr
//!   and exit 0 at once (boot may sit in a long model load or warm-up).
//! * `Running`: the flag is set; the pipeline drains and `main` prints the
//!   final summary and exits 0. Should it not have exited [`GRACE`] later
//!   (a thread stuck in a call nothing can interrupt), the handler exits 0
//!   itself with one line saying so.
//!
//! A second signal while stopping exits at once. The waits never allocate
//! and may be called from any thread; the handler runs on ctrlc's thread.

use crate::clock::monotonic_ns;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a wait goes without looking at the stop flag.
pub const SLICE: Duration = Duration::from_millis(50);

/// How long a running pipeline has, after a stop request, to drain and
/// print its summary before the handler exits for it.
pub const GRACE: Duration = Duration::from_millis(850);

static STOP: AtomicBool = AtomicBool::new(false);
static PHASE: AtomicU8 = AtomicU8::new(Phase::Boot as u8);

/// Where the process is, for the signal handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Before the pipeline runs: a signal exits at once.
    Boot = 0,
    /// The pipeline runs (or drains): a signal asks it to stop.
    Running = 1,
}

/// Has a stop been requested (a signal, or [`request`])? Never allocates.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Ask every wait in the process to give up.
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn set_phase(p: Phase) {
    PHASE.store(p as u8, Ordering::SeqCst);
}

/// Boot: install the SIGINT/SIGTERM handler (once per process). `also` is
/// set with the process-wide flag (the pipeline's own stop flag).
pub fn install(also: Arc<AtomicBool>) -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(move || {
        let again = STOP.swap(true, Ordering::SeqCst);
        also.store(true, Ordering::SeqCst);
        if again {
            quiet_exit(b"[perceptd] second stop signal: exiting now\n", 0);
        }
        if PHASE.load(Ordering::SeqCst) == Phase::Boot as u8 {
            quiet_exit(b"[perceptd] stopped during boot (signal)\n", 0);
        }
        // Running: main exits when the pipeline has drained. If it has not
        // within GRACE, something is stuck where no flag is looked at.
        std::thread::sleep(GRACE);
        quiet_exit(
            b"[perceptd] stop: the pipeline did not wind down in time; exiting without the final summary\n",
            0,
        );
    })
}

/// One line on stderr (best effort: stderr may be closed, full, or a pipe
/// nobody reads, so the line is written only if that cannot block) and
/// `_exit(code)`: other threads may be inside a blocking call or a driver,
/// so no destructors and no atexit handlers run.
/// ffmpeg children are killed and reaped first ([`crate::ffmpeg::reap_all`]).
pub fn quiet_exit(line: &[u8], code: i32) -> ! {
    crate::ffmpeg::reap_all();
    let mut p = libc::pollfd {
        fd: 2,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let writable = unsafe { libc::poll(&mut p, 1, 0) } == 1 && p.revents & libc::POLLOUT != 0;
    // SAFETY: writing a valid buffer (shorter than PIPE_BUF, so it fits the
    // room POLLOUT promises) to fd 2; the result is ignored on purpose.
    // `_exit` never returns.
    unsafe {
        if writable {
            let _ = libc::write(2, line.as_ptr().cast(), line.len());
        }
        libc::_exit(code)
    }
}

/// Sleep until CLOCK_MONOTONIC reaches `deadline_ns` or a stop is
/// requested, whichever is first; `false` if stopped early. Frame path:
/// never allocates.
pub fn sleep_until(deadline_ns: u64) -> bool {
    loop {
        if requested() {
            return false;
        }
        let now = monotonic_ns();
        if now >= deadline_ns {
            return true;
        }
        let until = deadline_ns.min(now + SLICE.as_nanos() as u64);
        let ts = libc::timespec {
            tv_sec: (until / 1_000_000_000) as libc::time_t,
            tv_nsec: (until % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec; the remainder pointer may be
        // null with TIMER_ABSTIME. EINTR just loops.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }
}

/// [`sleep_until`] `d` from now.
pub fn sleep(d: Duration) -> bool {
    sleep_until(monotonic_ns().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
}

/// Wait until `fd` has data (or EOF, or an error) to read; `Ok(false)` when
/// a stop was requested first. For pipes, FIFOs and terminals, whose read
/// would otherwise block with no end. Never allocates.
pub fn wait_readable(fd: RawFd) -> std::io::Result<bool> {
    loop {
        if requested() {
            return Ok(false);
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, SLICE.as_millis() as libc::c_int) };
        if rc > 0 {
            return Ok(true);
        }
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The error a read interrupted by a stop request returns.
pub fn stopped_error() -> std::io::Error {
    std::io::Error::other("stopped by a stop request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_until_the_deadline_without_a_stop() {
        let t0 = monotonic_ns();
        assert!(sleep(Duration::from_millis(120)));
        assert!(monotonic_ns() - t0 >= 120_000_000);
    }
}
