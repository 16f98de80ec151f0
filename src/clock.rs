//! The process's one clock: CLOCK_MONOTONIC in nanoseconds, used for every
//! frame stamp, stage latency and deadline. Never allocates; any thread.

/// CLOCK_MONOTONIC in nanoseconds. Frame path: never allocates.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::monotonic_ns;

    #[test]
    fn monotonic_ns_never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a, "{b} < {a}");
        assert!(a > 0);
    }
}
