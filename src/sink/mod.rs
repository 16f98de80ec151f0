//! Detection output: one JSON line per frame to stdout, a file or a UDP
//! peer. The target is opened and the line buffers are allocated at boot
//! ([`JsonSink::open`]); [`JsonSink::write_frame`] runs on the postprocess
//! thread and never allocates, never blocks on a slow reader (stdout pipes,
//! terminals and sockets are written non-blocking; a regular file is written
//! directly) and never panics: write faults are counted per kind in
//! [`SinkStats`] and returned as a [`SinkError`] value.
//!
//! # Line format
//!
//! One line per frame, keys always present and in this order:
//!
//! ```text
//! {"seq":12,"t_capture_ns":1234,"t_source_ns":1200,
//!  "latency_ms":{"queue":0.100,"preprocess":1.000,"inference":8.000,"postprocess":0.200,"e2e":9.300},
//!  "dropped_total":0,
//!  "detections":[{"class":"pedestrian","class_id":1,"score":0.913,"box":[10.0,20.0,30.0,40.0],
//!                 "ground":[12.50,-1.20],"range_m":12.56,"bearing_deg":-5.5}]}
//! ```
//!
//! (shown wrapped; the real line has no whitespace and ends with `\n`).
//! * `seq`: frame sequence number; `t_capture_ns`: CLOCK_MONOTONIC capture
//!   time; `t_source_ns`: the source's own timestamp or `null`.
//! * `latency_ms`: per-stage latencies of this frame, 3 decimals.
//! * `dropped_total`: frames dropped by the pipeline so far.
//! * `class`: the label (`classN` for an id without a label), `score` with 3
//!   decimals, `box` `[x1, y1, x2, y2]` in source pixels with 1 decimal.
//! * `ground`: `[x, y]` metres in the vehicle frame (x forward, y left), 2
//!   decimals, or `null`; `range_m` = |ground| (2 decimals) and
//!   `bearing_deg` = atan2(y, x) in degrees, positive to the left (1
//!   decimal), both `null` when `ground` is.
//! * With tracking on (`[tracking] enabled`, the default) each detection
//!   also has `track_id` (stable per object), `age_frames` (frames since
//!   the track started), `velocity` `[vx, vy]` m/s in the vehicle frame
//!   relative to the vehicle (2 decimals), `speed_mps` = |velocity|, and
//!   `ttc_s` (time to collision, s, 2 decimals; only for objects closing in
//!   within the ego corridor); all `null` for a detection without a
//!   confirmed track, `velocity`/`speed_mps` `null` without a ground
//!   position or while the estimate is too uncertain. With tracking off the
//!   keys are absent.
//! * Any non-finite number is written as `null`.
//!
//! A UDP target gets one datagram per line (with its `\n`); lines longer
//! than 65507 bytes are not sent (counted as oversize, never truncated into
//! invalid JSON).

use crate::frame::Detection;
use crate::postprocess::Labels;
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::str::FromStr;
use thiserror::Error;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65507;

#[derive(Debug, Error)]
pub enum SinkError {
    /// Boot: the target string does not parse.
    #[error("bad sink '{target}': {msg}")]
    BadTarget { target: String, msg: String },
    /// Boot: the target cannot be opened.
    #[error("sink {target}: {msg}")]
    Open { target: String, msg: String },

    // Frame path (no allocation): one line was not written.
    #[error("sink line buffer of {capacity} bytes is too small for this frame")]
    LineOverflow { capacity: usize },
    #[error("line of {len} bytes exceeds the UDP datagram limit of {MAX_DATAGRAM} bytes")]
    Oversize { len: usize },
    #[error("sink reader has gone (broken pipe)")]
    BrokenPipe,
    #[error("sink receiver refused the datagram (connection refused)")]
    ConnRefused,
    #[error("no space left on the sink's device")]
    NoSpace,
    #[error("sink is not ready (would block); line dropped")]
    WouldBlock,
    #[error("sink write failed: {}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    Stdout,
    File(PathBuf),
    Udp(SocketAddr),
}

impl FromStr for SinkTarget {
    type Err = SinkError;

    /// `stdout` or `-`; `udp://HOST:PORT`; `file://PATH` or any other
    /// string as a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |msg: &str| SinkError::BadTarget {
            target: s.to_string(),
            msg: msg.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(bad("empty (use stdout, -, a file path or udp://HOST:PORT)"));
        }
        if t == "stdout" || t == "-" {
            return Ok(SinkTarget::Stdout);
        }
        if let Some(addr) = t.strip_prefix("udp://") {
            let mut addrs = addr
                .to_socket_addrs()
                .map_err(|e| bad(&format!("expected udp://HOST:PORT ({e})")))?;
            return addrs
                .next()
                .map(SinkTarget::Udp)
                .ok_or_else(|| bad("host resolves to no address"));
        }
        if let Some(path) = t.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("file:// needs a path"));
            }
            return Ok(SinkTarget::File(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme '{scheme}' (use stdout, -, a file path or udp://HOST:PORT)"
            )));
        }
        Ok(SinkTarget::File(PathBuf::from(t)))
    }
}

impl fmt::Display for SinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkTarget::Stdout => f.write_str("stdout"),
            SinkTarget::File(p) => write!(f, "{}", p.display()),
            SinkTarget::Udp(a) => write!(f, "udp://{a}"),
        }
    }
}

/// One frame's metadata for its output line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FrameRecord {
    pub seq: u64,
    /// CLOCK_MONOTONIC nanoseconds at capture (`FrameStamp::capture_ns`).
    pub capture_ns: u64,
    /// The source's own timestamp (`FrameStamp::source_ns`).
    pub source_ns: Option<u64>,
    pub queue_ms: f32,
    pub preprocess_ms: f32,
    pub inference_ms: f32,
    pub postprocess_ms: f32,
    pub e2e_ms: f32,
    /// Frames dropped by the pipeline so far.
    pub dropped_total: u64,
    /// The tracking stage ran: every detection gets the track keys.
    pub tracked: bool,
}

/// Per-kind fault counts and totals since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkStats {
    /// Lines handed to the target in full (possibly finished by a later
    /// call after a short write).
    pub lines: u64,
    pub bytes: u64,
    /// Lines that were not written, for any of the reasons below.
    pub dropped: u64,
    /// Short writes whose rest was kept and sent before the next line.
    pub deferred: u64,
    pub overflow: u64,
    pub oversize: u64,
    pub broken_pipe: u64,
    pub conn_refused: u64,
    pub no_space: u64,
    pub would_block: u64,
    pub other: u64,
    /// errno of the last `other` fault.
    pub last_errno: i32,
}

impl SinkStats {
    /// Every fault counted (a dropped line counts once per fault that hit it).
    pub fn errors(&self) -> u64 {
        self.overflow
            + self.oversize
            + self.broken_pipe
            + self.conn_refused
            + self.no_space
            + self.would_block
            + self.other
    }
}

/// How bytes reach the target.
#[derive(Debug)]
enum Output {
    /// `write(2)` on a descriptor we own (file, reopened stdout).
    Owned(File),
    /// `write(2)` on fd 1 itself (stdout we could not make private).
    StdoutFd,
    /// `send(2)` on fd 1 with MSG_DONTWAIT (stdout is a socket: journald).
    StdoutSocket,
    /// One datagram per line on a connected non-blocking socket.
    Udp(UdpSocket),
}

/// A JSON-lines writer with all buffers allocated at open.
#[derive(Debug)]
pub struct JsonSink {
    target: SinkTarget,
    out: Output,
    line: Box<[u8]>,
    /// Unsent tail of a line after a short write on a stream target.
    pending: Box<[u8]>,
    pending_start: usize,
    pending_end: usize,
    stats: SinkStats,
}

impl JsonSink {
    /// Boot: opens `target` and allocates a line buffer of `capacity_bytes`
    /// (a frame whose line does not fit is dropped and counted).
    pub fn open(target: SinkTarget, capacity_bytes: usize) -> Result<JsonSink, SinkError> {
        let open_err = |msg: String| SinkError::Open {
            target: target.to_string(),
            msg,
        };
        if capacity_bytes < 64 {
            return Err(open_err(format!(
                "line buffer of {capacity_bytes} bytes is too small (at least 64)"
            )));
        }
        let out = match &target {
            SinkTarget::Stdout => open_stdout(),
            SinkTarget::File(path) => {
                if path.is_dir() {
                    return Err(open_err("is a directory".into()));
                }
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .map_err(|e| open_err(e.to_string()))?;
                Output::Owned(f)
            }
            SinkTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = UdpSocket::bind(local).map_err(|e| open_err(format!("bind: {e}")))?;
                sock.connect(addr)
                    .map_err(|e| open_err(format!("connect: {e}")))?;
                sock.set_nonblocking(true)
                    .map_err(|e| open_err(format!("set non-blocking: {e}")))?;
                Output::Udp(sock)
            }
        };
        Ok(JsonSink {
            target,
            out,
            line: vec![0; capacity_bytes].into_boxed_slice(),
            pending: vec![0; capacity_bytes].into_boxed_slice(),
            pending_start: 0,
            pending_end: 0,
            stats: SinkStats::default(),
        })
    }

    pub fn target(&self) -> &SinkTarget {
        &self.target
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Serialises one frame and writes it as one line. On error the line
    /// was not written (or, after a short write, its rest is sent before
    /// the next line) and the fault is counted in `stats()`.
    /// Frame path: never allocates, never blocks on a slow reader.
    pub fn write_frame(
        &mut self,
        rec: &FrameRecord,
        dets: &[Detection],
        labels: &Labels,
    ) -> Result<(), SinkError> {
        if self.pending_start < self.pending_end {
            if let Err(e) = self.flush_pending() {
                self.stats.dropped += 1;
                return Err(e);
            }
        }
        let len = match format_line(&mut self.line, rec, dets, labels) {
            Some(len) => len,
            None => {
                self.stats.overflow += 1;
                self.stats.dropped += 1;
                return Err(SinkError::LineOverflow {
                    capacity: self.line.len(),
                });
            }
        };
        let res = match &self.out {
            Output::Udp(sock) => {
                if len > MAX_DATAGRAM {
                    self.stats.oversize += 1;
                    Err(SinkError::Oversize { len })
                } else {
                    match sock.send(&self.line[..len]) {
                        Ok(_) => Ok(()),
                        Err(e) => Err(self.count_errno(e.raw_os_error().unwrap_or(0))),
                    }
                }
            }
            _ => match self.write_stream(0, len, false) {
                Ok(written) if written == len => Ok(()),
                Ok(written) => {
                    // Short write: keep the rest so the stream never gets
                    // half a line followed by another line.
                    self.pending[..len - written].copy_from_slice(&self.line[written..len]);
                    self.pending_start = 0;
                    self.pending_end = len - written;
                    self.stats.deferred += 1;
                    self.stats.bytes += written as u64;
                    return Ok(());
                }
                Err((written, _)) if written > 0 => {
                    // The fault is counted, but the line is not lost yet:
                    // its rest goes out first on the next call.
                    self.pending[..len - written].copy_from_slice(&self.line[written..len]);
                    self.pending_start = 0;
                    self.pending_end = len - written;
                    self.stats.deferred += 1;
                    self.stats.bytes += written as u64;
                    return Ok(());
                }
                Err((_, e)) => Err(e),
            },
        };
        match res {
            Ok(()) => {
                self.stats.lines += 1;
                self.stats.bytes += len as u64;
                Ok(())
            }
            Err(e) => {
                self.stats.dropped += 1;
                Err(e)
            }
        }
    }

    /// Sends the rest of a short-written line. Err: it is still pending.
    fn flush_pending(&mut self) -> Result<(), SinkError> {
        let (start, end) = (self.pending_start, self.pending_end);
        let res = self.write_stream(start, end, true);
        let written = match res {
            Ok(w) => w,
            Err((w, _)) => w,
        };
        self.pending_start += written;
        self.stats.bytes += written as u64;
        if self.pending_start == self.pending_end {
            self.pending_start = 0;
            self.pending_end = 0;
            self.stats.lines += 1;
        }
        match res {
            Ok(_) if self.pending_end == 0 => Ok(()),
            Ok(_) => {
                self.stats.would_block += 1;
                Err(SinkError::WouldBlock)
            }
            Err((_, e)) => Err(e),
        }
    }

    /// Writes `buf[start..end]` of the line (or of `pending`) to a stream
    /// target until done or the target refuses. Ok(n): n bytes written,
    /// n < len means the target would block. Err((n, e)): n bytes written
    /// before fault e (already counted).
    fn write_stream(
        &mut self,
        start: usize,
        end: usize,
        from_pending: bool,
    ) -> Result<usize, (usize, SinkError)> {
        let fd: RawFd = match &self.out {
            Output::Owned(f) => f.as_raw_fd(),
            Output::StdoutFd | Output::StdoutSocket => libc::STDOUT_FILENO,
            Output::Udp(_) => return Ok(0),
        };
        let socket = matches!(self.out, Output::StdoutSocket);
        let mut off = start;
        let mut interrupted = 0;
        while off < end {
            let chunk = if from_pending {
                &self.pending[off..end]
            } else {
                &self.line[off..end]
            };
            let n = if socket {
                // SAFETY: fd 1 stays open for the process lifetime; `chunk`
                // is a valid initialised buffer of `chunk.len()` bytes.
                unsafe {
                    libc::send(
                        fd,
                        chunk.as_ptr().cast(),
                        chunk.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                }
            } else {
                // SAFETY: `fd` is open (owned by `self.out` or fd 1);
                // `chunk` is a valid buffer of `chunk.len()` bytes.
                unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) }
            };
            if n > 0 {
                off += n as usize;
                continue;
            }
            let errno = if n == 0 {
                libc::EAGAIN
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            };
            if errno == libc::EINTR && interrupted < 8 {
                interrupted += 1;
                continue;
            }
            if (errno == libc::EAGAIN || errno == libc::EWOULDBLOCK) && off > start {
                return Ok(off - start);
            }
            return Err((off - start, self.count_errno(errno)));
        }
        Ok(off - start)
    }

    /// Counts a write fault by kind and returns its error value.
    fn count_errno(&mut self, errno: i32) -> SinkError {
        let s = &mut self.stats;
        match errno {
            libc::EPIPE => {
                s.broken_pipe += 1;
                SinkError::BrokenPipe
            }
            libc::ECONNREFUSED => {
                s.conn_refused += 1;
                SinkError::ConnRefused
            }
            libc::ENOSPC | libc::EDQUOT => {
                s.no_space += 1;
                SinkError::NoSpace
            }
            e if e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::ENOBUFS => {
                s.would_block += 1;
                SinkError::WouldBlock
            }
            e => {
                s.other += 1;
                s.last_errno = e;
                SinkError::Io(e)
            }
        }
    }
}

/// Boot: picks how to write stdout without ever blocking on its reader and
/// without changing flags on a file description other processes share.
fn open_stdout() -> Output {
    // SAFETY: fstat writes into the zeroed stat we pass; fd 1 may be closed,
    // which fstat reports as an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(libc::STDOUT_FILENO, &mut st) } != 0 {
        return Output::StdoutFd;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Output::StdoutSocket,
        // A pipe or terminal: O_NONBLOCK on fd 1 would also hit the shell or
        // the other end's siblings; reopening through /proc gives us our own
        // file description to make non-blocking.
        // (A FIFO without a reader refuses the reopen: fall back to fd 1,
        // whose writes then fail with EPIPE and are counted.)
        libc::S_IFIFO | libc::S_IFCHR => {
            use std::os::unix::fs::OpenOptionsExt;
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("/proc/self/fd/1")
            {
                Ok(f) => Output::Owned(f),
                Err(_) => Output::StdoutFd,
            }
        }
        _ => Output::StdoutFd,
    }
}

/// Boot: `s` escaped for a JSON string (without the quotes).
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A `fmt::Write` over a fixed byte slice: writes that do not fit fail and
/// set `overflowed`, never grow anything. Only whole `&str`s are written,
/// so the contents are always valid UTF-8.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> SliceWriter<'a> {
        SliceWriter {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// What was written (everything before the first write that did not fit).
    pub fn into_str(self) -> &'a str {
        let SliceWriter { buf, len, .. } = self;
        std::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.overflowed || s.len() > self.buf.len() - self.len {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// `v` with `decimals` decimals, or `null` if not finite.
fn num(w: &mut SliceWriter<'_>, v: f32, decimals: usize) -> fmt::Result {
    if v.is_finite() {
        write!(w, "{v:.decimals$}")
    } else {
        w.write_str("null")
    }
}

/// Serialises one line (with its `\n`) into `buf`; None if it does not fit.
/// Frame path: never allocates.
fn format_line(
    buf: &mut [u8],
    rec: &FrameRecord,
    dets: &[Detection],
    labels: &Labels,
) -> Option<usize> {
    let mut w = SliceWriter::new(buf);
    write_line(&mut w, rec, dets, labels).ok()?;
    Some(w.len())
}

fn write_line(
    w: &mut SliceWriter<'_>,
    rec: &FrameRecord,
    dets: &[Detection],
    labels: &Labels,
) -> fmt::Result {
    write!(
        w,
        "{{\"seq\":{},\"t_capture_ns\":{},\"t_source_ns\":",
        rec.seq, rec.capture_ns
    )?;
    match rec.source_ns {
        Some(t) => write!(w, "{t}")?,
        None => w.write_str("null")?,
    }
    w.write_str(",\"latency_ms\":{\"queue\":")?;
    num(w, rec.queue_ms, 3)?;
    w.write_str(",\"preprocess\":")?;
    num(w, rec.preprocess_ms, 3)?;
    w.write_str(",\"inference\":")?;
    num(w, rec.inference_ms, 3)?;
    w.write_str(",\"postprocess\":")?;
    num(w, rec.postprocess_ms, 3)?;
    w.write_str(",\"e2e\":")?;
    num(w, rec.e2e_ms, 3)?;
    write!(
        w,
        "}},\"dropped_total\":{},\"detections\":[",
        rec.dropped_total
    )?;
    for (i, d) in dets.iter().enumerate() {
        if i > 0 {
            w.write_str(",")?;
        }
        w.write_str("{\"class\":\"")?;
        match labels.json_name(d.class_id) {
            Some(name) => w.write_str(name)?,
            None => write!(w, "class{}", d.class_id)?,
        }
        write!(w, "\",\"class_id\":{},\"score\":", d.class_id)?;
        num(w, d.score, 3)?;
        w.write_str(",\"box\":[")?;
        for (k, &v) in d.bbox.iter().enumerate() {
            if k > 0 {
                w.write_str(",")?;
            }
            num(w, v, 1)?;
        }
        w.write_str("],\"ground\":")?;
        match d.ground {
            Some([x, y]) => {
                w.write_str("[")?;
                num(w, x, 2)?;
                w.write_str(",")?;
                num(w, y, 2)?;
                w.write_str("],\"range_m\":")?;
                num(w, x.hypot(y), 2)?;
                w.write_str(",\"bearing_deg\":")?;
                num(w, y.atan2(x).to_degrees(), 1)?;
            }
            None => w.write_str("null,\"range_m\":null,\"bearing_deg\":null")?,
        }
        if rec.tracked {
            write_track(w, d)?;
        }
        w.write_str("}")?;
    }
    w.write_str("]}\n")
}

/// The track keys of one detection (all `null` without a confirmed track).
fn write_track(w: &mut SliceWriter<'_>, d: &Detection) -> fmt::Result {
    let Some(t) = d.track else {
        return w.write_str(
            ",\"track_id\":null,\"age_frames\":null,\"velocity\":null,\"speed_mps\":null,\"ttc_s\":null",
        );
    };
    write!(
        w,
        ",\"track_id\":{},\"age_frames\":{},\"velocity\":",
        t.id, t.age_frames
    )?;
    match t.velocity {
        Some([vx, vy]) => {
            w.write_str("[")?;
            num(w, vx, 2)?;
            w.write_str(",")?;
            num(w, vy, 2)?;
            w.write_str("],\"speed_mps\":")?;
            num(w, vx.hypot(vy), 2)?;
        }
        None => w.write_str("null,\"speed_mps\":null")?,
    }
    w.write_str(",\"ttc_s\":")?;
    match t.ttc_s {
        Some(s) => num(w, s, 2),
        None => w.write_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn labels() -> Labels {
        Labels::from_names(vec!["vehicle".into(), "pedestrian".into()]).unwrap()
    }

    fn record() -> FrameRecord {
        FrameRecord {
            seq: 12,
            capture_ns: 1_000_000_123,
            source_ns: Some(999_000_000),
            queue_ms: 0.1,
            preprocess_ms: 1.25,
            inference_ms: 8.0,
            postprocess_ms: 0.2,
            e2e_ms: 9.55,
            dropped_total: 3,
            tracked: false,
        }
    }

    fn two_dets() -> [Detection; 2] {
        [
            Detection {
                class_id: 1,
                score: 0.9134,
                bbox: [10.0, 20.25, 30.5, 40.0],
                ground: Some([12.5, -1.2]),
                track: None,
            },
            Detection {
                class_id: 0,
                score: 0.5,
                bbox: [0.0, 0.0, 640.0, 480.0],
                ground: None,
                track: None,
            },
        ]
    }

    fn line(rec: &FrameRecord, dets: &[Detection], labels: &Labels) -> String {
        let mut buf = vec![0u8; 65536];
        let n = format_line(&mut buf, rec, dets, labels).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    const GOLDEN: &str = concat!(
        r#"{"seq":12,"t_capture_ns":1000000123,"t_source_ns":999000000,"#,
        r#""latency_ms":{"queue":0.100,"preprocess":1.250,"inference":8.000,"postprocess":0.200,"e2e":9.550},"#,
        r#""dropped_total":3,"detections":["#,
        r#"{"class":"pedestrian","class_id":1,"score":0.913,"box":[10.0,20.2,30.5,40.0],"#,
        r#""ground":[12.50,-1.20],"range_m":12.56,"bearing_deg":-5.5},"#,
        r#"{"class":"vehicle","class_id":0,"score":0.500,"box":[0.0,0.0,640.0,480.0],"#,
        r#""ground":null,"range_m":null,"bearing_deg":null}]}"#,
        "\n"
    );

    #[test]
    fn golden_line_two_detections() {
        assert_eq!(line(&record(), &two_dets(), &labels()), GOLDEN);
    }

    #[test]
    fn tracked_lines_carry_the_track_keys() {
        let mut rec = record();
        rec.tracked = true;
        let mut dets = two_dets();
        dets[0].track = Some(crate::frame::TrackInfo {
            id: 7,
            age_frames: 31,
            velocity: Some([-3.0, 4.0]),
            ttc_s: Some(4.166),
        });
        let want = GOLDEN
            .replace(
                r#""bearing_deg":-5.5}"#,
                r#""bearing_deg":-5.5,"track_id":7,"age_frames":31,"velocity":[-3.00,4.00],"speed_mps":5.00,"ttc_s":4.17}"#,
            )
            .replace(
                r#""bearing_deg":null}"#,
                r#""bearing_deg":null,"track_id":null,"age_frames":null,"velocity":null,"speed_mps":null,"ttc_s":null}"#,
            );
        assert_eq!(line(&rec, &dets, &labels()), want);
        // Without the stage the same detections give today's line.
        assert_eq!(line(&record(), &dets, &labels()), GOLDEN);
    }

    #[test]
    fn empty_frame_null_source_and_non_finite() {
        let mut rec = record();
        rec.source_ns = None;
        rec.e2e_ms = f32::NAN;
        rec.queue_ms = f32::INFINITY;
        let l = line(&rec, &[], &labels());
        assert!(l.contains(r#""t_source_ns":null,"#), "{l}");
        assert!(
            l.contains(r#""queue":null,"#) && l.contains(r#""e2e":null}"#),
            "{l}"
        );
        assert!(l.ends_with("\"detections\":[]}\n"), "{l}");
        let d = Detection {
            class_id: 7,
            score: f32::NAN,
            bbox: [f32::NEG_INFINITY, 0.0, 1.0, 2.0],
            ground: Some([f32::NAN, 1.0]),
            track: None,
        };
        let l = line(&rec, &[d], &labels());
        assert!(
            l.contains(r#"{"class":"class7","class_id":7,"score":null,"box":[null,0.0,1.0,2.0],"ground":[null,1.00],"range_m":null,"bearing_deg":null}"#),
            "{l}"
        );
    }

    #[test]
    fn class_names_are_escaped() {
        assert_eq!(json_escape("a\"b\\c\nd\u{1}é"), "a\\\"b\\\\c\\nd\\u0001é");
        let l = Labels::from_names(vec!["say \"hi\"\t".into()]).unwrap();
        let d = Detection {
            class_id: 0,
            ..Detection::default()
        };
        assert!(line(&record(), &[d], &l).contains(r#""class":"say \"hi\"\t""#));
    }

    #[test]
    fn target_parsing() {
        assert_eq!("stdout".parse::<SinkTarget>().unwrap(), SinkTarget::Stdout);
        assert_eq!("-".parse::<SinkTarget>().unwrap(), SinkTarget::Stdout);
        assert_eq!(
            "udp://127.0.0.1:5600".parse::<SinkTarget>().unwrap(),
            SinkTarget::Udp("127.0.0.1:5600".parse().unwrap())
        );
        assert_eq!(
            "/tmp/x.jsonl".parse::<SinkTarget>().unwrap(),
            SinkTarget::File("/tmp/x.jsonl".into())
        );
        assert_eq!(
            "file://out.jsonl".parse::<SinkTarget>().unwrap(),
            SinkTarget::File("out.jsonl".into())
        );
        for bad in ["", "udp://127.0.0.1", "udp://:x", "tcp://1.2.3.4:5"] {
            let e = bad.parse::<SinkTarget>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("bad sink '{bad}'")), "{e}");
        }
        assert!("tcp://h:1"
            .parse::<SinkTarget>()
            .unwrap_err()
            .to_string()
            .contains("unsupported scheme 'tcp'"));
    }

    #[test]
    fn udp_datagram_reaches_a_bound_socket() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let addr = rx.local_addr().unwrap();
        let mut sink = JsonSink::open(SinkTarget::Udp(addr), 4096).unwrap();
        sink.write_frame(&record(), &two_dets(), &labels()).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), GOLDEN);
        assert_eq!(sink.stats().lines, 1);
    }

    #[test]
    fn udp_receiver_gone_is_counted() {
        // Bind then drop to get a port nobody listens on.
        let addr = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut sink = JsonSink::open(SinkTarget::Udp(addr), 4096).unwrap();
        let mut refused = 0;
        for _ in 0..20 {
            if let Err(e) = sink.write_frame(&record(), &[], &labels()) {
                assert!(matches!(e, SinkError::ConnRefused), "{e}");
                refused += 1;
            }
        }
        // The ICMP error arrives asynchronously; at least one later send
        // reports it.
        assert!(refused > 0);
        assert_eq!(sink.stats().conn_refused, refused);
        assert_eq!(sink.stats().dropped, refused);
    }

    #[test]
    fn udp_oversize_is_counted_not_sent() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sink = JsonSink::open(SinkTarget::Udp(rx.local_addr().unwrap()), 1 << 20).unwrap();
        let dets = vec![two_dets()[0]; 1000];
        let e = sink.write_frame(&record(), &dets, &labels()).unwrap_err();
        assert!(matches!(e, SinkError::Oversize { len } if len > MAX_DATAGRAM));
        assert_eq!(sink.stats().oversize, 1);
    }

    #[test]
    fn file_sink_appends_lines() {
        let path = std::env::temp_dir().join(format!("perceptd-sink-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "earlier\n").unwrap();
        let target: SinkTarget = path.to_str().unwrap().parse().unwrap();
        let mut sink = JsonSink::open(target, 4096).unwrap();
        sink.write_frame(&record(), &two_dets(), &labels()).unwrap();
        sink.write_frame(&record(), &[], &labels()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "earlier");
        assert_eq!(format!("{}\n", lines[1]), GOLDEN);
        assert_eq!(sink.stats().lines, 2);
        std::fs::remove_file(&path).unwrap();

        let e = JsonSink::open(SinkTarget::File(std::env::temp_dir()), 4096).unwrap_err();
        assert!(e.to_string().ends_with("is a directory"), "{e}");
        let e =
            JsonSink::open(SinkTarget::File("/nonexistent/dir/x.jsonl".into()), 4096).unwrap_err();
        assert!(
            e.to_string().starts_with("sink /nonexistent/dir/x.jsonl: "),
            "{e}"
        );
    }

    /// A stream sink writing to one end of a pipe (what stdout usually is).
    fn pipe_sink(nonblocking: bool, capacity: usize) -> (JsonSink, File) {
        let mut fds = [0; 2];
        let flags = libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
        // SAFETY: pipe2 writes two fds into the array we pass.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) }, 0);
        // SAFETY: both fds were just created and are owned by nobody else.
        let (rd, wr) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        let sink = JsonSink {
            target: SinkTarget::Stdout,
            out: Output::Owned(wr),
            line: vec![0; capacity].into_boxed_slice(),
            pending: vec![0; capacity].into_boxed_slice(),
            pending_start: 0,
            pending_end: 0,
            stats: SinkStats::default(),
        };
        (sink, rd)
    }

    /// Reads everything buffered in a non-blocking pipe.
    fn drain(rd: &mut File, into: &mut Vec<u8>) {
        let mut buf = [0u8; 65536];
        while let Ok(n) = rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn closed_pipe_is_counted_not_fatal() {
        // Rust's runtime ignores SIGPIPE, so write(2) returns EPIPE.
        let (mut sink, rd) = pipe_sink(false, 4096);
        drop(rd);
        for _ in 0..3 {
            let e = sink
                .write_frame(&record(), &two_dets(), &labels())
                .unwrap_err();
            assert!(matches!(e, SinkError::BrokenPipe));
        }
        assert_eq!(sink.stats().broken_pipe, 3);
        assert_eq!(sink.stats().dropped, 3);
        assert_eq!(sink.stats().errors(), 3);
    }

    #[test]
    fn full_pipe_never_blocks_and_never_tears_a_line() {
        let (mut sink, mut rd) = pipe_sink(true, 16384);
        // Lines over PIPE_BUF (4096) so that a nearly full pipe takes part
        // of a line: the rest must go out before the next line.
        let dets = [two_dets()[0]; 40];
        let expect = line(&record(), &dets, &labels());
        assert!(expect.len() > 4096);
        let (mut ok, mut blocked) = (0, 0);
        for _ in 0..100 {
            match sink.write_frame(&record(), &dets, &labels()) {
                Ok(()) => ok += 1,
                Err(SinkError::WouldBlock) => blocked += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(blocked > 0, "pipe never filled");
        assert!(sink.stats().deferred > 0, "no short write happened");
        assert_eq!(sink.stats().would_block, blocked);
        let mut got = Vec::new();
        drain(&mut rd, &mut got);
        sink.write_frame(&record(), &dets, &labels()).unwrap();
        drain(&mut rd, &mut got);
        let text = String::from_utf8(got).unwrap();
        assert!(
            text.lines().all(|l| format!("{l}\n") == expect),
            "torn line"
        );
        assert_eq!(text.lines().count() as u64, sink.stats().lines);
        assert_eq!(sink.stats().lines, ok + 1);
        assert_eq!(sink.stats().bytes, sink.stats().lines * expect.len() as u64);
    }

    #[test]
    fn line_buffer_overflow_is_counted() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sink = JsonSink::open(SinkTarget::Udp(rx.local_addr().unwrap()), 256).unwrap();
        let e = sink
            .write_frame(&record(), &two_dets(), &labels())
            .unwrap_err();
        assert!(matches!(e, SinkError::LineOverflow { capacity: 256 }));
        assert_eq!((sink.stats().overflow, sink.stats().dropped), (1, 1));
        // A frame that fits still goes out afterwards.
        sink.write_frame(&record(), &[], &labels()).unwrap();
        assert_eq!(sink.stats().lines, 1);
    }

    #[test]
    fn slice_writer_stops_at_capacity() {
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        assert!(write!(w, "abc").is_ok());
        assert!(write!(w, "defghi").is_err());
        assert!(w.overflowed());
        assert_eq!(w.into_str(), "abc");
    }
}
