//! The one way perceptd runs `ffmpeg`: as a child process, never linked.
//! Used by the video replay source ([`crate::source::video`], ffmpeg
//! decodes into a pipe) and the annotated video output
//! ([`crate::output::annotate`], ffmpeg encodes from a pipe).
//!
//! [`FfmpegChild`] owns:
//! * the child, in its own process group (a Ctrl-C in the terminal reaches
//!   perceptd only, which then ends the child itself), with
//!   `PR_SET_PDEATHSIG = SIGKILL` (perceptd killed by anything: the child
//!   goes too; the kernel ties this to the thread that spawned it, so
//!   spawn from a thread that lives as long as the child, as boot does);
//! * its stderr, read by one side thread (`ffmpeg-log`) into a fixed line
//!   buffer: the first fatal (else first error) line is kept as ffmpeg's
//!   message, and, for the replay, each `showinfo` line's presentation
//!   timestamp is passed on through a bounded ring ([`PTS_RING`]); when
//!   the ring is full the side thread waits (ffmpeg then waits on its
//!   stderr), so nothing is lost and nothing grows;
//! * killing and reaping: on drop, on every error path of its users, and
//!   on a forced exit ([`reap_all`], called by [`crate::stop::quiet_exit`]
//!   before `_exit`), so no zombie and no orphan ffmpeg is left.
//!
//! Why `showinfo` on stderr for timestamps: Y4M, the raw format ffmpeg
//! writes into the pipe, has no per-frame timestamps, and ffmpeg writes
//! its log to stderr only. `-vsync passthrough` makes every frame that
//! leaves the filter graph (where `showinfo` is last) exactly one Y4M
//! frame, so the k-th `showinfo` line belongs to the k-th frame; its
//! integer `pts` and the link's `time_base` (from showinfo's `config in`
//! line) give the timestamp exactly (`pts_time` is printed with only six
//! significant digits).
//!
//! Allocation: `spawn` (boot) allocates the command, the thread and the
//! shared state; the side thread never allocates; [`FfmpegChild::next_pts`]
//! (frame path) never allocates; messages are formatted on error paths.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The one line said when ffmpeg is not installed.
pub const NOT_INSTALLED: &str =
    "ffmpeg is not in PATH: install it (Debian/Ubuntu: sudo apt install ffmpeg)";

/// Timestamps the side thread may hold ahead of the frame reader.
pub const PTS_RING: usize = 1024;

/// Longest stderr line looked at (longer lines are cut there).
pub const LINE_MAX: usize = 1024;

/// Longest message kept.
const MSG_MAX: usize = 400;

/// Children alive at once that a forced exit can reap.
const MAX_CHILDREN: usize = 8;

static PIDS: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];

/// Kill and reap every ffmpeg child still running. For the forced exit
/// ([`crate::stop::quiet_exit`]), where no destructor runs. Never
/// allocates; async-signal-safe calls only.
pub fn reap_all() {
    for p in &PIDS {
        let pid = p.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill/waitpid on a child of ours that no one else
            // reaps (the slot was claimed by the swap); no pointers but
            // the null status.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A stamp with no value (`NOPTS` in ffmpeg's log).
const NOPTS: i64 = i64::MIN;

/// What one stderr line says, as far as perceptd cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLine<'a> {
    /// `showinfo`: frame `n` has presentation timestamp `pts` (time base
    /// units; `None`: NOPTS).
    Frame { n: u64, pts: Option<i64> },
    /// `showinfo`'s `config in time_base: num/den`.
    TimeBase { num: i64, den: i64 },
    /// A `[fatal]`/`[panic]` or `[error]` line; `msg` without the prefixes.
    Error { fatal: bool, msg: &'a [u8] },
    /// Anything else (info, warnings, continuation lines).
    Other,
}

/// Split `[ctx @ 0x..] [level] rest` (with `-loglevel level+...`).
fn split_prefixes(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut rest = line;
    let mut ctx: &[u8] = b"";
    let bracket = |s: &[u8]| -> Option<usize> {
        if s.first() != Some(&b'[') {
            return None;
        }
        s.iter().position(|&b| b == b']')
    };
    let close = bracket(rest)?;
    let first = &rest[1..close];
    const LEVELS: [&[u8]; 9] = [
        b"quiet", b"panic", b"fatal", b"error", b"warning", b"info", b"verbose", b"debug", b"trace",
    ];
    let level = if LEVELS.contains(&first) {
        rest = &rest[close + 1..];
        first
    } else {
        ctx = first;
        rest = rest[close + 1..].strip_prefix(b" ")?;
        let close = bracket(rest)?;
        let level = &rest[1..close];
        if !LEVELS.contains(&level) {
            return None;
        }
        rest = &rest[close + 1..];
        level
    };
    Some((ctx, level, rest.strip_prefix(b" ").unwrap_or(rest)))
}

fn parse_int(s: &[u8]) -> Option<(i64, &[u8])> {
    let (neg, digits) = match s.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, s),
    };
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 18 {
        return None;
    }
    let v = digits[..n]
        .iter()
        .fold(0i64, |a, &d| a * 10 + (d - b'0') as i64);
    Some((if neg { -v } else { v }, &digits[n..]))
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Classify one stderr line. Never allocates, never panics.
pub fn parse_line(line: &[u8]) -> LogLine<'_> {
    let Some((ctx, level, rest)) = split_prefixes(line) else {
        return LogLine::Other;
    };
    match level {
        b"fatal" | b"panic" => {
            return LogLine::Error {
                fatal: true,
                msg: rest,
            }
        }
        b"error" => {
            return LogLine::Error {
                fatal: false,
                msg: rest,
            }
        }
        b"info" if find(ctx, b"showinfo").is_some() => {}
        _ => return LogLine::Other,
    }
    if let Some(tb) = rest.strip_prefix(b"config in time_base:") {
        if let Some((num, tail)) = parse_int(skip_spaces(tb)) {
            if let Some((den, _)) = tail.strip_prefix(b"/").and_then(parse_int) {
                if num > 0 && den > 0 {
                    return LogLine::TimeBase { num, den };
                }
            }
        }
        return LogLine::Other;
    }
    let Some(n) = rest.strip_prefix(b"n:") else {
        return LogLine::Other;
    };
    let Some((n, tail)) = parse_int(skip_spaces(n)).filter(|(n, _)| *n >= 0) else {
        return LogLine::Other;
    };
    let Some(p) = find(tail, b" pts:") else {
        return LogLine::Other;
    };
    let p = skip_spaces(&tail[p + 5..]);
    let pts = if p.starts_with(b"NOPTS") {
        None
    } else {
        match parse_int(p) {
            Some((v, _)) if v != NOPTS => Some(v),
            _ => return LogLine::Other,
        }
    };
    LogLine::Frame { n: n as u64, pts }
}

/// `pts` in `num/den` second units as nanoseconds (negative: 0; past
/// u64: saturated). Never allocates.
pub fn pts_ns(pts: i64, num: i64, den: i64) -> u64 {
    let ns = (pts as i128)
        .checked_mul(num as i128)
        .and_then(|v| v.checked_mul(1_000_000_000))
        .map(|v| v / den.max(1) as i128);
    match ns {
        Some(v) => v.clamp(0, u64::MAX as i128) as u64,
        // Past i128: the sign of the product decides.
        None if (pts < 0) != (num < 0) => 0,
        None => u64::MAX,
    }
}

/// Assembles lines from arbitrary chunks in a fixed buffer; a line longer
/// than [`LINE_MAX`] is cut there (the rest until its newline is dropped).
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    overflow: bool,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: false,
        }
    }
}

impl LineBuf {
    /// Feed a chunk; `on_line` gets each complete line (no `\n`, `\r`
    /// trimmed: ffmpeg's progress uses carriage returns). Never allocates.
    pub fn push(&mut self, mut data: &[u8], mut on_line: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n' || b == b'\r');
            let take = end.unwrap_or(data.len());
            let room = LINE_MAX - self.len;
            let copy = take.min(room);
            self.buf[self.len..self.len + copy].copy_from_slice(&data[..copy]);
            self.len += copy;
            self.overflow |= copy < take;
            match end {
                Some(e) => {
                    if self.len > 0 {
                        on_line(&self.buf[..self.len]);
                    }
                    self.len = 0;
                    self.overflow = false;
                    data = &data[e + 1..];
                }
                None => data = &[],
            }
        }
    }
}

/// What the side thread shares with the child's owner.
struct LogState {
    /// Time base of the timestamps (0: none seen yet).
    tb: (i64, i64),
    /// Timestamps (ns; `u64::MAX`: none) for frames `taken..pushed`.
    ring: [u64; PTS_RING],
    pushed: u64,
    taken: u64,
    /// stderr reached its end (the child exited or closed it).
    eof: bool,
    /// The owner is gone or has stopped reading timestamps.
    closed: bool,
    msg: [u8; MSG_MAX],
    msg_len: usize,
    msg_fatal: bool,
    errors: u32,
}

struct Log {
    state: Mutex<LogState>,
    cv: Condvar,
    track_pts: bool,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Side thread, per line. Never allocates.
    fn line(&self, line: &[u8]) {
        match parse_line(line) {
            LogLine::Error { fatal, msg } => {
                let mut s = self.lock();
                s.errors = s.errors.saturating_add(1);
                if s.msg_len == 0 || (fatal && !s.msg_fatal) {
                    let n = msg.len().min(MSG_MAX);
                    s.msg[..n].copy_from_slice(&msg[..n]);
                    s.msg_len = n;
                    s.msg_fatal = fatal;
                }
            }
            LogLine::TimeBase { num, den } if self.track_pts => {
                self.lock().tb = (num, den);
            }
            LogLine::Frame { pts, .. } if self.track_pts => {
                let mut s = self.lock();
                while s.pushed - s.taken == PTS_RING as u64 && !s.closed {
                    s = match self.cv.wait_timeout(s, crate::stop::SLICE) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
                if s.closed {
                    return;
                }
                let (num, den) = s.tb;
                let ns = match pts {
                    Some(p) if den > 0 => pts_ns(p, num, den),
                    _ => u64::MAX,
                };
                let i = (s.pushed % PTS_RING as u64) as usize;
                s.ring[i] = ns;
                s.pushed += 1;
                self.cv.notify_all();
            }
            _ => {}
        }
    }
}

/// A running `ffmpeg` child (see the module doc).
pub struct FfmpegChild {
    child: Option<Child>,
    status: Option<ExitStatus>,
    slot: Option<usize>,
    log: Arc<Log>,
    reader: Option<JoinHandle<()>>,
}

/// The pipes the caller asked for.
pub struct Pipes {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

impl FfmpegChild {
    /// Boot: start `ffmpeg ARGS` (`-nostdin` unless `stdin`; the caller
    /// puts `-loglevel repeat+level+LEVEL` in `args`, the side thread
    /// needs the level tags). `track_pts`: pass `showinfo` timestamps on.
    /// The error is one line ([`NOT_INSTALLED`] when ffmpeg is missing).
    pub fn spawn<S: AsRef<OsStr>>(
        args: &[S],
        stdin: bool,
        stdout: bool,
        track_pts: bool,
    ) -> Result<(FfmpegChild, Pipes), String> {
        // Reserve a slot (-1: spawning) so two spawns never share one.
        let slot = PIDS
            .iter()
            .position(|p| {
                p.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .ok_or_else(|| format!("more than {MAX_CHILDREN} ffmpeg children at once"))?;
        let mut cmd = Command::new("ffmpeg");
        cmd.args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours;
        // it runs in the forked child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            PIDS[slot].store(0, Ordering::SeqCst);
            if e.kind() == std::io::ErrorKind::NotFound {
                NOT_INSTALLED.to_string()
            } else {
                format!("cannot start ffmpeg: {e}")
            }
        })?;
        PIDS[slot].store(child.id() as i32, Ordering::SeqCst);
        let log = Arc::new(Log {
            state: Mutex::new(LogState {
                tb: (0, 0),
                ring: [u64::MAX; PTS_RING],
                pushed: 0,
                taken: 0,
                eof: false,
                closed: false,
                msg: [0; MSG_MAX],
                msg_len: 0,
                msg_fatal: false,
                errors: 0,
            }),
            cv: Condvar::new(),
            track_pts,
        });
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
        };
        let mut me = FfmpegChild {
            status: None,
            slot: Some(slot),
            log: Arc::clone(&log),
            reader: None,
            child: None,
        };
        let stderr = child.stderr.take();
        me.child = Some(child);
        let Some(mut stderr) = stderr else {
            return Err("ffmpeg's stderr pipe is missing".into());
        };
        let reader = std::thread::Builder::new()
            .name("ffmpeg-log".into())
            .spawn(move || {
                let mut lines = LineBuf::default();
                let mut chunk = [0u8; 4096];
                loop {
                    match stderr.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => lines.push(&chunk[..n], |l| log.line(l)),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                lines.push(b"\n", |l| log.line(l));
                log.lock().eof = true;
                log.cv.notify_all();
            })
            .map_err(|e| format!("cannot start the ffmpeg log thread: {e}"))?;
        me.reader = Some(reader);
        Ok((me, pipes))
    }

    /// The child's process id (tests look for it in /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Frame path: the timestamp (ns) of frame `k` (counted from 0 in
    /// the order frames leave ffmpeg). Waits, in stop-aware slices, until
    /// the side thread has it; `None` when ffmpeg's log ended without it,
    /// the frame had none, or a stop was requested. Never allocates.
    pub fn next_pts(&self, k: u64) -> Option<u64> {
        let mut s = self.log.lock();
        loop {
            if s.taken > k {
                return None;
            }
            if s.pushed > s.taken {
                // Frames are consumed in order: drop stamps of frames the
                // caller passed over (none in practice).
                while s.taken < k && s.pushed > s.taken {
                    s.taken += 1;
                }
                if s.taken == k && s.pushed > k {
                    let ns = s.ring[(k % PTS_RING as u64) as usize];
                    s.taken += 1;
                    self.log.cv.notify_all();
                    return (ns != u64::MAX).then_some(ns);
                }
            }
            if s.eof || crate::stop::requested() || !self.log.track_pts {
                return None;
            }
            s = match self.log.cv.wait_timeout(s, crate::stop::SLICE) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// ffmpeg's message: its first fatal line, else its first error line
    /// (with how many more error lines followed). `None`: it said nothing
    /// wrong.
    pub fn message(&self) -> Option<String> {
        let s = self.log.lock();
        if s.msg_len == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&s.msg[..s.msg_len]);
        let text = text.trim().trim_end_matches('.');
        let more = s.errors.saturating_sub(1);
        Some(if more > 0 && !s.msg_fatal {
            format!("{text} (and {more} more error lines)")
        } else {
            text.to_string()
        })
    }

    /// Wait up to `limit` for the child to exit; reaps it, then waits (as
    /// long again at most) for its log to end, so [`Self::message`] is
    /// complete. `None`: still running (nothing is killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        if self.status.is_none() {
            let child = self.child.as_mut()?;
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        self.reaped(st);
                        break;
                    }
                    Ok(None) if t0.elapsed() < limit => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(None) => return None,
                    Err(_) => return None,
                }
            }
        }
        self.join_log(t0 + limit + limit);
        self.status
    }

    fn reaped(&mut self, st: ExitStatus) {
        self.status = Some(st);
        self.child = None;
        if let Some(slot) = self.slot.take() {
            PIDS[slot].store(0, Ordering::SeqCst);
        }
    }

    /// Join the log thread once its stderr has ended (by `deadline`).
    fn join_log(&mut self, deadline: Instant) {
        {
            let mut s = self.log.lock();
            while !s.eof && Instant::now() < deadline {
                s = match self.log.cv.wait_timeout(s, Duration::from_millis(10)) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            if !s.eof {
                return;
            }
        }
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }

    /// Kill the child (if it still runs) and reap it; idempotent.
    pub fn kill(&mut self) {
        {
            let mut s = self.log.lock();
            s.closed = true;
            self.log.cv.notify_all();
        }
        if let Some(mut c) = self.child.take() {
            // Claim the slot first, so a forced exit does not reap (and
            // kill) this pid a second time.
            let mine = self.slot.take().is_some_and(|slot| {
                PIDS[slot]
                    .compare_exchange(c.id() as i32, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            });
            if mine {
                let _ = c.kill();
                if let Ok(st) = c.wait() {
                    self.status = Some(st);
                }
            }
        }
        self.join_log(Instant::now() + Duration::from_millis(500));
    }

    /// How the child ended, in words (`exit status: 1`, `killed by
    /// signal 9`), or `still running`.
    pub fn describe_status(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            None => "still running".into(),
            Some(st) => match (st.code(), st.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => st.to_string(),
            },
        }
    }
}

impl Drop for FfmpegChild {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showinfo_and_error_lines_are_recognised() {
        let l = b"[Parsed_showinfo_1 @ 0x55fc85109b80] [info] n:  12 pts:  61440 pts_time:0.48    pos: 48 fmt:yuv420p";
        assert_eq!(
            parse_line(l),
            LogLine::Frame {
                n: 12,
                pts: Some(61440)
            }
        );
        let l = b"[Parsed_showinfo_1 @ 0x1] [info] n:   3 pts:  NOPTS pts_time:NOPTS";
        assert_eq!(parse_line(l), LogLine::Frame { n: 3, pts: None });
        let l = b"[Parsed_showinfo_1 @ 0x1] [info] config in time_base: 1/12800, frame_rate: 25/1";
        assert_eq!(parse_line(l), LogLine::TimeBase { num: 1, den: 12800 });
        assert_eq!(
            parse_line(b"[fatal] Stream map '0:V:0' matches no streams."),
            LogLine::Error {
                fatal: true,
                msg: b"Stream map '0:V:0' matches no streams."
            }
        );
        assert_eq!(
            parse_line(b"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5572cda458c0] [error] moov atom not found"),
            LogLine::Error {
                fatal: false,
                msg: b"moov atom not found"
            }
        );
        // An info line of another filter, a continuation, a warning.
        for l in [
            &b"[Parsed_format_0 @ 0x1] [info] n: 1 pts: 2"[..],
            b"To ignore this, add a trailing '?' to the map.",
            b"[warning] -vsync is deprecated. Use -fps_mode",
            b"[",
            b"",
        ] {
            assert_eq!(parse_line(l), LogLine::Other);
        }
        assert_eq!(pts_ns(61440, 1, 12800), 4_800_000_000);
        assert_eq!(pts_ns(-5, 1, 25), 0);
        assert_eq!(pts_ns(i64::MAX, i64::MAX, 1), u64::MAX);
    }

    #[test]
    fn lines_are_assembled_across_chunks_and_cut_at_the_limit() {
        let mut lb = LineBuf::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        lb.push(b"ab", |l| got.push(l.to_vec()));
        lb.push(b"c\r\nde\n", |l| got.push(l.to_vec()));
        let long = vec![b'x'; LINE_MAX + 10];
        lb.push(&long, |l| got.push(l.to_vec()));
        lb.push(b"\nz\n", |l| got.push(l.to_vec()));
        assert_eq!(got.len(), 4);
        assert_eq!((&got[0][..], &got[1][..]), (&b"abc"[..], &b"de"[..]));
        assert_eq!(got[2].len(), LINE_MAX);
        assert_eq!(got[3], b"z");
    }
}
