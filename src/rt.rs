//! Real-time set-up: locking memory (`mlockall`), pre-faulting thread
//! stacks, and per-thread CPU affinity and SCHED_FIFO priority. Each step
//! that the system does not permit (EPERM, a too small RLIMIT_MEMLOCK or
//! RLIMIT_RTPRIO) degrades to one warning naming what to change, never
//! silently and never fatally.
//!
//! Boot only: called once before the pipeline threads start
//! ([`lock_memory`]) and once at the start of each thread
//! ([`apply_thread_policy`]). The ring is pre-faulted by
//! [`crate::ring::Ring::prefault`] and the model arena by the warm-up
//! frames at boot; `mlockall` then keeps all of it resident.

use crate::pipeline::ThreadPolicy;
use serde::Deserialize;

/// Config `[rt]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtConfig {
    /// Lock all current (and, when RLIMIT_MEMLOCK is unlimited, future)
    /// memory with `mlockall` before frames flow.
    #[serde(default)]
    pub mlockall: bool,
    /// KiB of each pipeline thread's stack to touch at thread start, so
    /// the frame path takes no stack page faults.
    #[serde(default = "d_stack_kib")]
    pub prefault_stack_kib: usize,
}

fn d_stack_kib() -> usize {
    256
}

impl Default for RtConfig {
    fn default() -> Self {
        RtConfig {
            mlockall: false,
            prefault_stack_kib: d_stack_kib(),
        }
    }
}

/// Largest stack pre-fault: pipeline threads get Rust's default 2 MiB stack.
pub const MAX_PREFAULT_STACK_KIB: usize = 1024;

/// What [`lock_memory`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Not asked for.
    Off,
    /// Current and future mappings are locked.
    All,
    /// Only the current mappings (RLIMIT_MEMLOCK is finite: locking future
    /// ones could make later thread stacks fail to map).
    Current,
    /// Not permitted; a warning was logged.
    Refused,
}

/// `mlockall` as configured. Boot.
pub fn lock_memory(cfg: &RtConfig) -> Locked {
    if !cfg.mlockall {
        return Locked::Off;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we pass.
    let have_lim = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    let unlimited = have_lim && lim.rlim_cur == libc::RLIM_INFINITY;
    let flags = if unlimited {
        libc::MCL_CURRENT | libc::MCL_FUTURE
    } else {
        libc::MCL_CURRENT
    };
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(flags) } == 0 {
        if unlimited {
            log::info!("memory locked (mlockall MCL_CURRENT | MCL_FUTURE)");
            Locked::All
        } else {
            log::warn!(
                "rt.mlockall: RLIMIT_MEMLOCK is {} bytes, so only current memory is locked (MCL_CURRENT); set LimitMEMLOCK=infinity (systemd) or `ulimit -l unlimited` to lock future mappings too",
                lim.rlim_cur
            );
            Locked::Current
        }
    } else {
        let e = std::io::Error::last_os_error();
        // A partial lock may remain after ENOMEM: undo it, so behaviour is
        // the same as with no locking at all.
        // SAFETY: munlockall takes no arguments.
        unsafe { libc::munlockall() };
        log::warn!(
            "rt.mlockall: cannot lock memory ({e}; RLIMIT_MEMLOCK {} bytes); running unlocked: page faults may add latency. Set LimitMEMLOCK=infinity (systemd) or `ulimit -l unlimited`, or give CAP_IPC_LOCK",
            if have_lim {
                lim.rlim_cur.to_string()
            } else {
                "unknown".into()
            }
        );
        Locked::Refused
    }
}

/// Touches `kib` KiB of the calling thread's stack (below this frame) so
/// those pages are resident before the frame loop runs. Boot (thread start).
pub fn prefault_stack(kib: usize) {
    const CHUNK: usize = 64 * 1024;
    #[inline(never)]
    fn touch(left: usize) {
        let mut page = [0u8; CHUNK];
        for i in (0..CHUNK).step_by(4096) {
            // SAFETY: writing inside our own local array; volatile so the
            // stores (and so the page faults) are not optimised away.
            unsafe { std::ptr::write_volatile(page.as_mut_ptr().add(i), 1) };
        }
        if left > CHUNK {
            touch(left - CHUNK);
        }
        // Used after the call, so the call is not a tail call that would
        // reuse this frame.
        std::hint::black_box(&page);
    }
    let bytes = kib.min(MAX_PREFAULT_STACK_KIB) * 1024;
    if bytes > 0 {
        touch(bytes);
    }
}

/// Pre-faults the stack, then sets CPU affinity and SCHED_FIFO for the
/// calling thread; each of the last two degrades to a warning when not
/// permitted. Boot (thread start).
pub fn apply_thread_policy(name: &str, p: ThreadPolicy, stack_kib: usize) {
    prefault_stack(stack_kib);
    // Config validation keeps the index below the CPUs present; this guard
    // keeps CPU_SET's bounds check (a panic) away from any other caller.
    if let Some(cpu) = p.cpu.filter(|&c| c >= libc::CPU_SETSIZE as usize) {
        log::warn!("{name} thread: cannot pin to CPU {cpu}: no such CPU");
    } else if let Some(cpu) = p.cpu {
        // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it;
        // cpu < CPU_SETSIZE was checked above.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            log::warn!(
                "{name} thread: cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    if let Some(prio) = p.fifo_priority {
        let param = libc::sched_param {
            sched_priority: prio,
        };
        // SAFETY: valid thread handle (ourselves) and param.
        let rc =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if rc != 0 {
            log::warn!(
                "{name} thread: SCHED_FIFO priority {prio} not permitted ({}); running with normal scheduling. Raise RLIMIT_RTPRIO (LimitRTPRIO= in systemd) to at least {prio} or give CAP_SYS_NICE",
                std::io::Error::from_raw_os_error(rc)
            );
        }
    }
}

/// Nice value of the threads that only serve viewers ([`background`]).
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread to nice [`BACKGROUND_NICE`]: threads that
/// serve viewers (the live viewer thread, the live view's and the Foxglove
/// server's client threads) then get only the CPU the pipeline threads
/// leave, instead of preempting capture, inference and postprocess on a
/// small machine. Raising niceness needs no privilege; a failure is one
/// warning. Boot (thread start).
pub fn background(name: &str) {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    // SAFETY: setpriority on our own thread id (Linux: PRIO_PROCESS with a
    // thread id sets that thread only).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) };
    if rc != 0 {
        log::warn!(
            "{name} thread: cannot lower its priority to nice {BACKGROUND_NICE}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_off_and_on_never_fails_hard() {
        assert_eq!(lock_memory(&RtConfig::default()), Locked::Off);
        let on = RtConfig {
            mlockall: true,
            ..RtConfig::default()
        };
        // Whatever the machine permits, the answer is a value, not a panic;
        // undo a successful lock so the other tests run as before.
        let got = lock_memory(&on);
        assert_ne!(got, Locked::Off);
        // SAFETY: munlockall takes no arguments.
        unsafe { libc::munlockall() };
    }

    #[test]
    fn stack_prefault_and_policy_run_on_a_thread() {
        std::thread::spawn(|| {
            apply_thread_policy(
                "test",
                ThreadPolicy {
                    cpu: Some(0),
                    fifo_priority: None,
                },
                512,
            );
            prefault_stack(usize::MAX);
        })
        .join()
        .unwrap();
    }
}
