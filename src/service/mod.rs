//! Running under a service manager: the sd_notify protocol ([`notify`]) and
//! the supervisor thread ([`supervisor`]) that turns pipeline progress into
//! `READY=1`, frame-driven `WATCHDOG=1` pings, `STATUS=` lines and the hard
//! stage deadline. [`ServiceSetup`] is what boot hands the pipeline.
//!
//! Boot builds a [`ServiceSetup`] (allocates: reads the environment, opens
//! the socket); the supervisor thread never allocates.

pub mod notify;
pub mod supervisor;

pub use notify::Notifier;

/// Exit code when a stage held one frame longer than
/// `pipeline.hard_deadline_ms` (README, exit codes).
pub const EXIT_HARD_DEADLINE: i32 = 5;

/// Everything the pipeline needs to talk to systemd and to enforce stage
/// deadlines. Built at boot.
#[derive(Debug, Default)]
pub struct ServiceSetup {
    /// The `NOTIFY_SOCKET` connection (disabled when not run by systemd).
    pub notifier: Notifier,
    /// A frame held longer than this by one stage is a deadline miss (ns;
    /// 0 = off).
    pub stage_deadline_ns: u64,
    /// A frame held longer than this by one stage ends the process with
    /// [`EXIT_HARD_DEADLINE`] (ns; 0 = off).
    pub hard_deadline_ns: u64,
    /// Real-time memory set-up (`[rt]`).
    pub rt: crate::rt::RtConfig,
}
