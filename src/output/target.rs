//! Where an output's bytes go: [`OutputTarget`] (`stdout` / `-`, a file
//! path or `file://PATH`, `udp://HOST:PORT`) and [`Stream`], which opens a
//! target at boot and writes one message (a JSON line, later a video or
//! MCAP chunk) per call without ever blocking: stdout pipes, terminals and
//! sockets are written non-blocking, a regular file directly; UDP sends one
//! datagram per message. A short write keeps the rest of the message and
//! sends it before the next one, so a stream never carries a torn message.
//! Faults are counted by kind in [`OutputStats`] and returned as an
//! [`OutputError`] value, never a panic.
//!
//! A file target may rotate by size ([`Rotate`]: `max_bytes`, `keep`):
//! before a message that would take the file past `max_bytes`, `PATH.N-1`
//! becomes `PATH.N`, ..., `PATH` becomes `PATH.1` and a new `PATH` is
//! opened (non-blocking, like the first open); at most `keep` old files
//! exist, the oldest is overwritten. Rotation happens between messages,
//! never inside one. Every path it renames or opens is formatted once at
//! boot, so rotating allocates nothing either. A rename or reopen that
//! fails is counted as an `other` fault (with its errno); the stream keeps
//! writing to the file it has and tries again after another `max_bytes`.
//!
//! Boot: [`OutputTarget`] parsing and [`Stream::open`] allocate. Frame
//! path (postprocess thread): [`Stream::send`], rotation included, never
//! allocates.

use super::{OutputError, OutputStats};
use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65507;

/// Where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    Stdout,
    File(PathBuf),
    Udp(SocketAddr),
}

impl FromStr for OutputTarget {
    type Err = OutputError;

    /// `stdout` or `-`; `udp://HOST:PORT`; `file://PATH` or any other
    /// string as a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |msg: &str| OutputError::BadTarget {
            target: s.to_string(),
            msg: msg.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(bad("empty (use stdout, -, a file path or udp://HOST:PORT)"));
        }
        if t == "stdout" || t == "-" {
            return Ok(OutputTarget::Stdout);
        }
        if let Some(addr) = t.strip_prefix("udp://") {
            let mut addrs = addr
                .to_socket_addrs()
                .map_err(|e| bad(&format!("expected udp://HOST:PORT ({e})")))?;
            let addr = addrs
                .next()
                .ok_or_else(|| bad("host resolves to no address"))?;
            if addr.port() == 0 {
                return Err(bad(
                    "port 0 is not a destination (use udp://HOST:PORT with PORT 1..=65535)",
                ));
            }
            return Ok(OutputTarget::Udp(addr));
        }
        if let Some(path) = t.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("file:// needs a path"));
            }
            return Ok(OutputTarget::File(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme '{scheme}' (use stdout, -, a file path or udp://HOST:PORT)"
            )));
        }
        Ok(OutputTarget::File(PathBuf::from(t)))
    }
}

impl fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputTarget::Stdout => f.write_str("stdout"),
            OutputTarget::File(p) => write!(f, "{}", p.display()),
            OutputTarget::Udp(a) => write!(f, "udp://{a}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for OutputTarget {
    /// From the config: `target = "x": why` on a bad target.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e| match e {
            OutputError::BadTarget { target, msg } => {
                serde::de::Error::custom(format!("target = \"{target}\": {msg}"))
            }
            other => serde::de::Error::custom(other),
        })
    }
}

/// How bytes reach the target.
#[derive(Debug)]
enum Transport {
    /// `write(2)` on a descriptor we own (file, reopened stdout).
    Owned(File),
    /// `write(2)` on fd 1 itself (stdout we could not make private).
    StdoutFd,
    /// `send(2)` on fd 1 with MSG_DONTWAIT (stdout is a socket: journald).
    StdoutSocket,
    /// One datagram per message on a connected non-blocking socket.
    Udp(UdpSocket),
}

/// Size rotation of a file target (config `max_bytes`, `keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotate {
    /// A message that would take the file past this size goes to a new file.
    pub max_bytes: u64,
    /// Old files kept (`PATH.1` newest .. `PATH.keep` oldest), 1..=[`MAX_KEEP`].
    pub keep: u32,
}

/// Most old files a rotating target keeps.
pub const MAX_KEEP: u32 = 100;

/// A rotating file's state; every path formatted at open.
#[derive(Debug)]
struct Rotation {
    max_bytes: u64,
    /// Bytes in the current file (its size at open, then what we wrote).
    size: u64,
    /// `paths[0]` is the target path, `paths[i]` is `PATH.i` (1..=keep).
    paths: Box<[CString]>,
}

impl Rotation {
    fn new(path: &Path, rotate: Rotate, size: u64) -> Result<Rotation, String> {
        if rotate.keep == 0 || rotate.keep > MAX_KEEP {
            return Err(format!("keep = {} (expected 1..={MAX_KEEP})", rotate.keep));
        }
        let base = path.as_os_str().as_bytes();
        let mut paths = Vec::with_capacity(rotate.keep as usize + 1);
        for i in 0..=rotate.keep {
            let mut p = base.to_vec();
            if i > 0 {
                p.extend_from_slice(format!(".{i}").as_bytes());
            }
            paths.push(CString::new(p).map_err(|_| "path contains a NUL byte".to_string())?);
        }
        Ok(Rotation {
            max_bytes: rotate.max_bytes,
            size,
            paths: paths.into_boxed_slice(),
        })
    }

    /// Shifts the old files up by one and renames the current one to
    /// `PATH.1`; then opens a new `PATH`. Err(errno) of the first step that
    /// failed (the caller keeps its descriptor, now `PATH.1` or still
    /// `PATH`). Never allocates.
    fn rotate(&mut self) -> Result<File, i32> {
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        for i in (1..self.paths.len() - 1).rev() {
            // SAFETY: both are valid NUL-terminated paths owned by self.
            if unsafe { libc::rename(self.paths[i].as_ptr(), self.paths[i + 1].as_ptr()) } != 0 {
                let e = errno();
                // A gap (fewer old files than `keep` so far) is normal.
                if e != libc::ENOENT {
                    return Err(e);
                }
            }
        }
        // SAFETY: as above.
        if unsafe { libc::rename(self.paths[0].as_ptr(), self.paths[1].as_ptr()) } != 0 {
            let e = errno();
            // No PATH: an earlier rotation renamed it but could not open a
            // new one (we still write to PATH.1); go on to the open.
            if e != libc::ENOENT {
                return Err(e);
            }
        }
        // SAFETY: a valid NUL-terminated path; the flags and mode are
        // plain integers. Non-blocking, as the first open.
        let fd = unsafe {
            libc::open(
                self.paths[0].as_ptr(),
                libc::O_WRONLY
                    | libc::O_APPEND
                    | libc::O_CREAT
                    | libc::O_NONBLOCK
                    | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        self.size = 0;
        // SAFETY: `fd` was just opened by us and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// An open target with the buffer for a short write's rest, allocated at
/// open, and the fault counts.
#[derive(Debug)]
pub struct Stream {
    target: OutputTarget,
    out: Transport,
    /// File targets with `max_bytes` only.
    rotation: Option<Rotation>,
    /// Unsent tail of a message after a short write on a stream target.
    pending: Box<[u8]>,
    pending_start: usize,
    pending_end: usize,
    stats: OutputStats,
}

impl Stream {
    /// Boot: opens `target` for messages of at most `capacity_bytes`.
    pub fn open(target: OutputTarget, capacity_bytes: usize) -> Result<Stream, OutputError> {
        Stream::open_with(target, capacity_bytes, None)
    }

    /// Boot: like [`Stream::open`]; with `rotate`, the target must be a
    /// regular file (or a path where one can be created), rotated by size.
    pub fn open_with(
        target: OutputTarget,
        capacity_bytes: usize,
        rotate: Option<Rotate>,
    ) -> Result<Stream, OutputError> {
        let open_err = |msg: String| OutputError::Open {
            target: target.to_string(),
            msg,
        };
        if capacity_bytes < 64 {
            return Err(open_err(format!(
                "line buffer of {capacity_bytes} bytes is too small (at least 64)"
            )));
        }
        if rotate.is_some() && !matches!(target, OutputTarget::File(_)) {
            return Err(open_err(
                "rotation (max_bytes) needs a file target, not stdout or UDP".into(),
            ));
        }
        let mut rotation = None;
        let out = match &target {
            OutputTarget::Stdout => open_stdout(),
            OutputTarget::File(path) => {
                if path.is_dir() {
                    return Err(open_err("is a directory".into()));
                }
                // O_NONBLOCK: a no-op for a regular file; for a FIFO the
                // open does not wait for a reader (ENXIO instead), and a
                // slow reader makes writes fail with EAGAIN (counted as
                // would-block) instead of stalling the postprocess thread,
                // as on a piped stdout.
                use std::os::unix::fs::OpenOptionsExt;
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::ENXIO) => {
                            open_err("is a FIFO with no reader; start the reader first".into())
                        }
                        _ => open_err(e.to_string()),
                    })?;
                if let Some(r) = rotate {
                    let meta = f.metadata().map_err(|e| open_err(e.to_string()))?;
                    if !meta.is_file() {
                        return Err(open_err(
                            "is not a regular file; rotation (max_bytes) needs one".into(),
                        ));
                    }
                    rotation = Some(Rotation::new(path, r, meta.len()).map_err(open_err)?);
                }
                Transport::Owned(f)
            }
            OutputTarget::Udp(addr) => {
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
                Transport::Udp(sock)
            }
        };
        Ok(Stream {
            target,
            out,
            rotation,
            pending: vec![0; capacity_bytes].into_boxed_slice(),
            pending_start: 0,
            pending_end: 0,
            stats: OutputStats::default(),
        })
    }

    /// Test double at the OS boundary: a stream over an already open file
    /// (one end of a pipe), as a reopened stdout would be.
    #[cfg(test)]
    pub(crate) fn over_file(file: File, capacity_bytes: usize) -> Stream {
        Stream {
            target: OutputTarget::Stdout,
            out: Transport::Owned(file),
            rotation: None,
            pending: vec![0; capacity_bytes].into_boxed_slice(),
            pending_start: 0,
            pending_end: 0,
            stats: OutputStats::default(),
        }
    }

    pub fn target(&self) -> &OutputTarget {
        &self.target
    }

    pub fn stats(&self) -> &OutputStats {
        &self.stats
    }

    /// For the caller's own faults (a message that did not fit its buffer).
    pub fn stats_mut(&mut self) -> &mut OutputStats {
        &mut self.stats
    }

    /// Sends what is left of an earlier short write, first. Err: it is
    /// still pending, and the caller's new message is dropped (counted).
    /// Frame path: never allocates.
    pub fn ready(&mut self) -> Result<(), OutputError> {
        if self.pending_start < self.pending_end {
            if let Err(e) = self.flush_pending() {
                self.stats.dropped += 1;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes one message (after [`Stream::ready`]). On error it was not
    /// written (or, after a short write, its rest is sent before the next
    /// message) and the fault is counted. Frame path: never allocates,
    /// never blocks on a slow reader.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), OutputError> {
        let len = msg.len();
        let res = match &self.out {
            Transport::Udp(sock) => {
                if len > MAX_DATAGRAM {
                    self.stats.oversize += 1;
                    Err(OutputError::Oversize { len })
                } else {
                    match sock.send(msg) {
                        Ok(_) => Ok(()),
                        Err(e) => Err(self.count_errno(e.raw_os_error().unwrap_or(0))),
                    }
                }
            }
            _ => {
                self.rotate_before(len);
                match self.write_stream(msg, 0, len, false) {
                    Ok(written) if written == len => Ok(()),
                    // Short write: keep the rest so the stream never gets
                    // half a message followed by another one.
                    Ok(written) => {
                        self.keep_rest(msg, written);
                        return Ok(());
                    }
                    // The fault is counted, but the message is not lost yet:
                    // its rest goes out first on the next call.
                    Err((written, _)) if written > 0 => {
                        self.keep_rest(msg, written);
                        return Ok(());
                    }
                    Err((_, e)) => Err(e),
                }
            }
        };
        match res {
            Ok(()) => {
                self.stats.published += 1;
                self.stats.bytes += len as u64;
                Ok(())
            }
            Err(e) => {
                self.stats.dropped += 1;
                Err(e)
            }
        }
    }

    /// A rotating file: starts a new file if a message of `len` bytes
    /// would take this one past `max_bytes` (not when a message's rest is
    /// still pending: a message never spans two files). Never allocates.
    fn rotate_before(&mut self, len: usize) {
        let Some(rot) = &mut self.rotation else {
            return;
        };
        if self.pending_end > 0 || rot.size == 0 || rot.size + len as u64 <= rot.max_bytes {
            return;
        }
        match rot.rotate() {
            Ok(f) => {
                self.out = Transport::Owned(f);
                self.stats.rotations += 1;
            }
            Err(e) => {
                // Keep writing where we are; try again after another
                // max_bytes instead of on every message.
                rot.size = 0;
                self.stats.other += 1;
                self.stats.last_errno = e;
            }
        }
    }

    /// Keeps `msg[written..]` to send before the next message.
    fn keep_rest(&mut self, msg: &[u8], written: usize) {
        let rest = &msg[written..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_start = 0;
        self.pending_end = rest.len();
        self.stats.deferred += 1;
        self.stats.bytes += written as u64;
    }

    /// Sends the rest of a short-written message. Err: it is still pending.
    fn flush_pending(&mut self) -> Result<(), OutputError> {
        let (start, end) = (self.pending_start, self.pending_end);
        let res = self.write_stream(&[], start, end, true);
        let written = match res {
            Ok(w) => w,
            Err((w, _)) => w,
        };
        self.pending_start += written;
        self.stats.bytes += written as u64;
        if self.pending_start == self.pending_end {
            self.pending_start = 0;
            self.pending_end = 0;
            self.stats.published += 1;
        }
        match res {
            Ok(_) if self.pending_end == 0 => Ok(()),
            Ok(_) => {
                self.stats.would_block += 1;
                Err(OutputError::WouldBlock)
            }
            Err((_, e)) => Err(e),
        }
    }

    /// Writes `msg[start..end]` (or `pending[start..end]`) to a stream
    /// target until done or the target refuses. Ok(n): n bytes written,
    /// n < len means the target would block. Err((n, e)): n bytes written
    /// before fault e (already counted).
    fn write_stream(
        &mut self,
        msg: &[u8],
        start: usize,
        end: usize,
        from_pending: bool,
    ) -> Result<usize, (usize, OutputError)> {
        let res = self.write_stream_raw(msg, start, end, from_pending);
        if let Some(rot) = &mut self.rotation {
            rot.size += match &res {
                Ok(n) | Err((n, _)) => *n as u64,
            };
        }
        res
    }

    fn write_stream_raw(
        &mut self,
        msg: &[u8],
        start: usize,
        end: usize,
        from_pending: bool,
    ) -> Result<usize, (usize, OutputError)> {
        let fd: RawFd = match &self.out {
            Transport::Owned(f) => f.as_raw_fd(),
            Transport::StdoutFd | Transport::StdoutSocket => libc::STDOUT_FILENO,
            Transport::Udp(_) => return Ok(0),
        };
        let socket = matches!(self.out, Transport::StdoutSocket);
        let mut off = start;
        let mut interrupted = 0;
        while off < end {
            let chunk = if from_pending {
                &self.pending[off..end]
            } else {
                &msg[off..end]
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
    fn count_errno(&mut self, errno: i32) -> OutputError {
        let s = &mut self.stats;
        match errno {
            libc::EPIPE => {
                s.broken_pipe += 1;
                OutputError::BrokenPipe
            }
            libc::ECONNREFUSED => {
                s.conn_refused += 1;
                OutputError::ConnRefused
            }
            libc::ENOSPC | libc::EDQUOT => {
                s.no_space += 1;
                OutputError::NoSpace
            }
            e if e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::ENOBUFS => {
                s.would_block += 1;
                OutputError::WouldBlock
            }
            e => {
                s.other += 1;
                s.last_errno = e;
                OutputError::Io(e)
            }
        }
    }
}

/// Boot: picks how to write stdout without ever blocking on its reader and
/// without changing flags on a file description other processes share.
fn open_stdout() -> Transport {
    // SAFETY: fstat writes into the zeroed stat we pass; fd 1 may be closed,
    // which fstat reports as an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(libc::STDOUT_FILENO, &mut st) } != 0 {
        return Transport::StdoutFd;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Transport::StdoutSocket,
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
                Ok(f) => Transport::Owned(f),
                Err(_) => Transport::StdoutFd,
            }
        }
        _ => Transport::StdoutFd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parsing() {
        assert_eq!(
            "stdout".parse::<OutputTarget>().unwrap(),
            OutputTarget::Stdout
        );
        assert_eq!("-".parse::<OutputTarget>().unwrap(), OutputTarget::Stdout);
        assert_eq!(
            "udp://127.0.0.1:5600".parse::<OutputTarget>().unwrap(),
            OutputTarget::Udp("127.0.0.1:5600".parse().unwrap())
        );
        assert_eq!(
            "/tmp/x.jsonl".parse::<OutputTarget>().unwrap(),
            OutputTarget::File("/tmp/x.jsonl".into())
        );
        assert_eq!(
            "file://out.jsonl".parse::<OutputTarget>().unwrap(),
            OutputTarget::File("out.jsonl".into())
        );
        for bad in [
            "",
            "udp://127.0.0.1",
            "udp://:x",
            "tcp://1.2.3.4:5",
            "udp://127.0.0.1:0",
        ] {
            let e = bad.parse::<OutputTarget>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("output target \"{bad}\": ")), "{e}");
        }
        assert!("tcp://h:1"
            .parse::<OutputTarget>()
            .unwrap_err()
            .to_string()
            .contains("unsupported scheme 'tcp'"));
    }

    #[test]
    fn udp_port_zero_is_refused_in_one_line() {
        let e = "udp://127.0.0.1:0"
            .parse::<OutputTarget>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "output target \"udp://127.0.0.1:0\": port 0 is not a destination \
             (use udp://HOST:PORT with PORT 1..=65535)"
        );
    }

    #[test]
    fn a_fifo_without_a_reader_is_refused_at_once_and_with_one_never_blocks() {
        let dir = std::env::temp_dir().join(format!("perceptd-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("out");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let target = OutputTarget::File(fifo.clone());
        let Err(e) = Stream::open(target.clone(), 4096) else {
            panic!("a FIFO without a reader was opened");
        };
        assert!(e.to_string().contains("FIFO with no reader"), "{e}");
        // With a reader that never reads: the pipe fills, then writes fail
        // with would-block instead of waiting.
        use std::os::unix::fs::OpenOptionsExt;
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut s = Stream::open(target, 4096).unwrap();
        let line = [b'x'; 4095];
        let mut blocked = false;
        for _ in 0..1000 {
            let r = s.ready().and_then(|()| s.send(&line));
            if matches!(r, Err(OutputError::WouldBlock)) {
                blocked = true;
                break;
            }
        }
        assert!(blocked, "a full FIFO reports would-block");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn opening_a_directory_or_a_missing_folder_is_named() {
        let e = Stream::open(OutputTarget::File(std::env::temp_dir()), 4096).unwrap_err();
        assert!(e.to_string().ends_with("is a directory"), "{e}");
        let e =
            Stream::open(OutputTarget::File("/nonexistent/dir/x.jsonl".into()), 4096).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("output /nonexistent/dir/x.jsonl: "),
            "{e}"
        );
    }

    #[test]
    fn a_rotating_file_keeps_whole_lines_in_at_most_keep_old_files() {
        let dir = std::env::temp_dir().join(format!("perceptd-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        // A file from an earlier run counts towards the first rotation.
        std::fs::write(&path, "old line\n").unwrap();
        let rotate = Rotate {
            max_bytes: 1000,
            keep: 2,
        };
        let mut s =
            Stream::open_with(OutputTarget::File(path.clone()), 4096, Some(rotate)).unwrap();
        for i in 0..100 {
            let line = format!("{i:099}\n");
            s.ready().unwrap();
            s.send(line.as_bytes()).unwrap();
        }
        assert!(s.stats().rotations >= 9, "{:?}", s.stats());
        assert_eq!(s.stats().errors(), 0);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]);
        // Newest last: .2, .1, current hold consecutive whole lines ending
        // with the last one written.
        let mut seen = Vec::new();
        for name in ["out.jsonl.2", "out.jsonl.1", "out.jsonl"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.len() <= 1000, "{name}: {} bytes", text.len());
            for l in text.lines() {
                assert_eq!(l.len(), 99, "{name}: torn line {l:?}");
                seen.push(l.parse::<u32>().unwrap());
            }
        }
        assert_eq!(seen.last(), Some(&99));
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_needs_a_regular_file() {
        let e = Stream::open_with(
            OutputTarget::Stdout,
            4096,
            Some(Rotate {
                max_bytes: 1 << 20,
                keep: 3,
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs a file target"), "{e}");
        let e = Stream::open_with(
            OutputTarget::File("/dev/null".into()),
            4096,
            Some(Rotate {
                max_bytes: 1 << 20,
                keep: 3,
            }),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "output /dev/null: is not a regular file; rotation (max_bytes) needs one"
        );
    }
}
