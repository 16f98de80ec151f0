//! YUV4MPEG2 (`.y4m`) replay and recording.
//!
//! [`Y4mSource`] replays a file through the same [`Source`] interface as the
//! camera, either paced to the file's frame rate ([`Pace::Realtime`], pacing
//! [`Pacing::Live`]) or as fast as the pipeline takes frames ([`Pace::Fast`],
//! [`Pacing::Lockstep`]). [`Y4mWriter`] records frames (`perceptd record`),
//! turning packed camera formats into the planar layouts Y4M can hold.
//!
//! Format accepted: the stream header `YUV4MPEG2` with tags `W`, `H`, `F`
//! (rate `num:den`), `I` (interlacing, recorded but not used), `A` (pixel
//! aspect), `C` (colour space: `420jpeg`, `420paldv`, `420mpeg2`, `420` ->
//! I420; `422` -> I422; `444` -> I444; `mono`, `mono8`, `gray`, `grey` ->
//! Grey; default `420jpeg`) and `X` comments; then frames, each
//! `FRAME[ params]\n` followed by the planes. Any width and height up to
//! [`MAX_DIM`] are accepted, odd ones included (chroma is ceil(w/2) wide).
//!
//! Timestamps: the writer stores each frame's capture timestamp
//! (`FrameStamp::capture_ns`, CLOCK_MONOTONIC nanoseconds at capture) as the
//! FRAME parameter `XTS=<ns>` (decimal). The reader returns it as
//! `FrameStamp::source_ns`; frames without it have `source_ns: None`.
//! Other FRAME parameters are ignored.
//!
//! Allocation: `open`/`create` allocate the buffered reader/writer (and the
//! writer's conversion buffer); `next_frame`, `skip_frame` and
//! `write_frame` never allocate on success (errors carry a formatted
//! message). The reader is called by the capture thread; the writer by
//! whoever records.

use crate::clock::monotonic_ns;
use crate::frame::{FrameDesc, PixelFormat};
use crate::fsio::{open_stream, StreamReader};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Largest width or height accepted in a header.
pub const MAX_DIM: usize = 16384;

/// Longest stream header accepted (bytes, including the newline).
const MAX_HEADER: usize = 4096;

/// Longest FRAME line accepted (bytes, including the newline).
const MAX_FRAME_LINE: usize = 256;

/// Buffered reader/writer capacity, allocated at open.
pub(crate) const IO_BUFFER: usize = 256 * 1024;

const MAGIC: &[u8] = b"YUV4MPEG2";

/// How a replay is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Deliver frame k at first-frame time + k / F (CLOCK_MONOTONIC):
    /// behaves like a camera, so the pipeline may drop frames.
    Realtime,
    /// Deliver each frame as soon as it is asked for; nothing is dropped.
    Fast,
}

/// A frame rate as the rational `num / den` frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// `fps` frames per second.
    pub const fn per_second(fps: u32) -> Self {
        FrameRate { num: fps, den: 1 }
    }

    pub fn fps(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Nanoseconds from frame 0 to frame `k`, exact to the nanosecond (no
    /// drift over long replays). `num` must be non-zero.
    pub(crate) fn offset_ns(self, k: u64) -> u64 {
        let ns = k as u128 * self.den as u128 * 1_000_000_000 / self.num.max(1) as u128;
        ns.min(u64::MAX as u128) as u64
    }
}

/// What a Y4M stream header declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: usize,
    pub height: usize,
    pub rate: FrameRate,
    pub format: PixelFormat,
    /// The `C` tag as written (`420jpeg` when absent).
    pub colour: String,
    /// The `I` tag (`p`, `t`, `b`, `m` or `?`; `?` when absent).
    pub interlace: char,
    /// The `A` tag (`0:0` when absent or unknown).
    pub aspect: (u32, u32),
}

impl Y4mHeader {
    pub fn desc(&self) -> FrameDesc {
        FrameDesc {
            format: self.format,
            width: self.width,
            height: self.height,
        }
    }
}

/// Parse a stream header line (without or with its trailing newline).
/// `path` names the file in error messages.
pub fn parse_header(line: &[u8], path: &str) -> Result<Y4mHeader, SourceError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    if tokens.next() != Some(MAGIC) {
        return Err(SourceError::Io {
            path: path.to_string(),
            msg: format!(
                "not a YUV4MPEG2 file (starts with '{}')",
                show(&line[..line.len().min(16)])
            ),
        });
    }
    let bad = |field: &str, value: &[u8], why: &str| {
        SourceError::Config(format!(
            "{path}: Y4M header: {field} is '{}': {why}",
            show(value)
        ))
    };
    let (mut width, mut height) = (None, None);
    let mut rate = None;
    let mut colour: &[u8] = b"420jpeg";
    let mut interlace = '?';
    let mut aspect = (0, 0);
    for tok in tokens {
        let (tag, value) = (tok[0], &tok[1..]);
        match tag {
            b'W' | b'H' => {
                let n = parse_u64(value)
                    .filter(|&n| n >= 1 && n <= MAX_DIM as u64)
                    .ok_or_else(|| {
                        bad(
                            if tag == b'W' {
                                "W (width)"
                            } else {
                                "H (height)"
                            },
                            value,
                            "expected 1..=16384",
                        )
                    })? as usize;
                if tag == b'W' {
                    width = Some(n);
                } else {
                    height = Some(n);
                }
            }
            b'F' => {
                rate = Some(
                    parse_ratio(value)
                        .filter(|&(n, d)| n > 0 && d > 0)
                        .map(|(num, den)| FrameRate { num, den })
                        .ok_or_else(|| {
                            bad("F (frame rate)", value, "expected num:den with both > 0")
                        })?,
                );
            }
            b'I' => {
                interlace = match value {
                    b"p" | b"t" | b"b" | b"m" | b"?" => value[0] as char,
                    _ => return Err(bad("I (interlacing)", value, "expected p, t, b, m or ?")),
                };
            }
            b'A' => {
                aspect = parse_ratio(value)
                    .ok_or_else(|| bad("A (pixel aspect)", value, "expected num:den"))?;
            }
            b'C' => colour = value,
            b'X' => {}
            _ => log::warn!("{path}: Y4M header: ignoring unknown tag '{}'", show(tok)),
        }
    }
    let width = width
        .ok_or_else(|| SourceError::Config(format!("{path}: Y4M header has no W (width) tag")))?;
    let height = height
        .ok_or_else(|| SourceError::Config(format!("{path}: Y4M header has no H (height) tag")))?;
    let rate = rate.ok_or_else(|| {
        SourceError::Config(format!("{path}: Y4M header has no F (frame rate) tag"))
    })?;
    let format = match colour {
        b"420jpeg" | b"420paldv" | b"420mpeg2" | b"420" => PixelFormat::I420,
        b"422" => PixelFormat::I422,
        b"444" => PixelFormat::I444,
        b"mono" | b"mono8" | b"gray" | b"grey" => PixelFormat::Grey,
        _ => {
            return Err(bad(
                "C (colour space)",
                colour,
                "supported: 420jpeg, 420paldv, 420mpeg2, 420, 422, 444, mono (8-bit only)",
            ))
        }
    };
    Ok(Y4mHeader {
        width,
        height,
        rate,
        format,
        colour: show(colour),
        interlace,
        aspect,
    })
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + (d - b'0') as u64))
}

fn parse_ratio(s: &[u8]) -> Option<(u32, u32)> {
    let colon = s.iter().position(|&b| b == b':')?;
    let n = u32::try_from(parse_u64(&s[..colon])?).ok()?;
    let d = u32::try_from(parse_u64(&s[colon + 1..])?).ok()?;
    Some((n, d))
}

/// Replays a Y4M file. See the module doc for the format and pacing.
pub struct Y4mSource {
    path: String,
    reader: BufReader<StreamReader>,
    header: Y4mHeader,
    frame_bytes: usize,
    pace: Pace,
    /// CLOCK_MONOTONIC time frame 0 was delivered (realtime pacing).
    start_ns: Option<u64>,
    /// Complete frames delivered or skipped so far.
    frames: u64,
    /// Byte offset of the next FRAME marker.
    offset: u64,
    line: [u8; MAX_FRAME_LINE],
}

impl Y4mSource {
    /// Open and check the header. Boot: allocates the read buffer.
    pub fn open(path: impl AsRef<Path>, pace: Pace) -> Result<Self, SourceError> {
        let path_s = path.as_ref().display().to_string();
        let io_err = |e: std::io::Error| SourceError::Io {
            path: path_s.clone(),
            msg: e.to_string(),
        };
        // `-` is stdin; a FIFO opens without waiting for its writer, and
        // every read on a pipe gives up on a stop request.
        let file = open_stream(path.as_ref()).map_err(io_err)?;
        Self::from_reader(path_s, BufReader::with_capacity(IO_BUFFER, file), pace)
    }

    /// [`Y4mSource::open`] on a stream already opened (and perhaps peeked
    /// at: nothing consumed) by [`crate::source::replay::open`]. Boot.
    pub fn from_reader(
        path_s: String,
        mut reader: BufReader<StreamReader>,
        pace: Pace,
    ) -> Result<Self, SourceError> {
        let io_err = |e: std::io::Error| SourceError::Io {
            path: path_s.clone(),
            msg: e.to_string(),
        };
        let mut line = Vec::with_capacity(256);
        (&mut reader)
            .take(MAX_HEADER as u64)
            .read_until(b'\n', &mut line)
            .map_err(io_err)?;
        if line.last() != Some(&b'\n') {
            let head = line.starts_with(MAGIC);
            let msg = if line.is_empty() {
                "empty file, not a YUV4MPEG2 stream".to_string()
            } else if head && line.len() < MAX_HEADER {
                "stream header ends without a newline".to_string()
            } else if head {
                format!("stream header longer than {MAX_HEADER} bytes")
            } else {
                format!(
                    "not a YUV4MPEG2 file (starts with '{}')",
                    show(&line[..line.len().min(16)])
                )
            };
            return Err(SourceError::Io { path: path_s, msg });
        }
        let header = parse_header(&line, &path_s)?;
        let frame_bytes = header.desc().bytes();
        Ok(Y4mSource {
            path: path_s,
            reader,
            frame_bytes,
            pace,
            start_ns: None,
            frames: 0,
            offset: line.len() as u64,
            header,
            line: [0; MAX_FRAME_LINE],
        })
    }

    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// Complete frames delivered or skipped so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn io(&self, e: std::io::Error) -> SourceError {
        SourceError::Io {
            path: self.path.clone(),
            msg: format!("frame {} at byte offset {}: {e}", self.frames, self.offset),
        }
    }

    fn truncated(&self, stray: u64) -> SourceError {
        SourceError::Truncated {
            path: self.path.clone(),
            frames: self.frames,
            bytes: stray,
        }
    }

    /// Read one `FRAME[ params]\n` line into `self.line`; returns its length
    /// (with the newline), or `None` at a clean end of file.
    fn read_frame_line(&mut self) -> Result<Option<usize>, SourceError> {
        let mut n = 0;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                if n == 0 {
                    return Ok(None);
                }
                if !is_frame_prefix(&self.line[..n]) {
                    return Err(self.garbage(n));
                }
                return Err(self.truncated(n as u64));
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let take = newline.map_or(buf.len(), |p| p + 1);
            let room = MAX_FRAME_LINE - n;
            let copy = take.min(room);
            self.line[n..n + copy].copy_from_slice(&buf[..copy]);
            self.reader.consume(copy);
            n += copy;
            if !is_frame_prefix(&self.line[..n]) {
                return Err(self.garbage(n));
            }
            if newline.is_some() && copy == take {
                return Ok(Some(n));
            }
            if n == MAX_FRAME_LINE {
                return Err(SourceError::Io {
                    path: self.path.clone(),
                    msg: format!(
                        "frame {} at byte offset {}: FRAME line longer than {MAX_FRAME_LINE} bytes",
                        self.frames, self.offset
                    ),
                });
            }
        }
    }

    fn garbage(&self, n: usize) -> SourceError {
        let seen = &self.line[..n.min(16)];
        SourceError::Io {
            path: self.path.clone(),
            msg: format!(
                "frame {} at byte offset {}: expected 'FRAME', found '{}'",
                self.frames,
                self.offset,
                show(seen)
            ),
        }
    }

    /// The `XTS=` value of the FRAME line in `self.line[..n]`.
    fn frame_timestamp(&self, n: usize) -> Result<Option<u64>, SourceError> {
        let line = &self.line[b"FRAME".len()..n - 1];
        for param in line.split(|&b| b == b' ') {
            if let Some(v) = param.strip_prefix(b"XTS=") {
                return match parse_u64(v) {
                    Some(ns) => Ok(Some(ns)),
                    None => Err(SourceError::Io {
                        path: self.path.clone(),
                        msg: format!(
                            "frame {} at byte offset {}: XTS is '{}', expected nanoseconds",
                            self.frames,
                            self.offset,
                            show(v)
                        ),
                    }),
                };
            }
        }
        Ok(None)
    }

    /// Read the next frame's planes into `dst`, or discard them when `dst`
    /// is `None`. Returns the recorded timestamp.
    fn read_frame(&mut self, dst: Option<&mut [u8]>) -> Result<Option<u64>, SourceError> {
        let Some(line_len) = self.read_frame_line()? else {
            return Err(SourceError::End);
        };
        let xts = self.frame_timestamp(line_len)?;
        let mut got = 0;
        match dst {
            Some(dst) => {
                let dst = &mut dst[..self.frame_bytes];
                while got < dst.len() {
                    match self.reader.read(&mut dst[got..]) {
                        Ok(0) => return Err(self.truncated((line_len + got) as u64)),
                        Ok(k) => got += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(self.io(e)),
                    }
                }
            }
            None => {
                while got < self.frame_bytes {
                    let k = match self.reader.fill_buf() {
                        Ok(buf) => buf.len().min(self.frame_bytes - got),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.io(e)),
                    };
                    if k == 0 {
                        return Err(self.truncated((line_len + got) as u64));
                    }
                    self.reader.consume(k);
                    got += k;
                }
            }
        }
        self.offset += (line_len + self.frame_bytes) as u64;
        Ok(xts)
    }

    /// Wait until the frame just read is due (realtime) and stamp it.
    fn deliver(&mut self, xts: Option<u64>) -> FrameStamp {
        if self.pace == Pace::Realtime {
            match self.start_ns {
                None => self.start_ns = Some(monotonic_ns()),
                Some(start) => {
                    {
                        // Wakes early on a stop request: the capture loop then
                        // sees the flag (F1:3600 would otherwise wait an hour).
                        crate::stop::sleep_until(
                            start.saturating_add(self.header.rate.offset_ns(self.frames)),
                        );
                    }
                }
            }
        }
        self.frames += 1;
        FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: xts,
        }
    }
}

fn is_frame_prefix(line: &[u8]) -> bool {
    const FRAME: &[u8] = b"FRAME";
    if line.len() <= FRAME.len() {
        return FRAME.starts_with(line);
    }
    line.starts_with(FRAME) && matches!(line[FRAME.len()], b' ' | b'\n')
}

impl Source for Y4mSource {
    fn desc(&self) -> FrameDesc {
        self.header.desc()
    }

    fn pacing(&self) -> Pacing {
        match self.pace {
            Pace::Realtime => Pacing::Live,
            Pace::Fast => Pacing::Lockstep,
        }
    }

    fn describe(&self) -> String {
        let h = &self.header;
        format!(
            "{} (Y4M {} {}x{}@{:.3}, {})",
            self.path,
            h.format.name(),
            h.width,
            h.height,
            h.rate.fps(),
            match self.pace {
                Pace::Realtime => "realtime",
                Pace::Fast => "fast",
            }
        )
    }

    /// Frame path: never allocates (errors carry a formatted message).
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        if dst.len() < self.frame_bytes {
            return Err(SourceError::Io {
                path: self.path.clone(),
                msg: format!(
                    "destination holds {} bytes but a frame is {}",
                    dst.len(),
                    self.frame_bytes
                ),
            });
        }
        let xts = self.read_frame(Some(dst))?;
        Ok(self.deliver(xts))
    }

    /// Frame path: never allocates (errors carry a formatted message).
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        let xts = self.read_frame(None)?;
        Ok(self.deliver(xts))
    }
}

/// Records frames to a Y4M file. Planar input (I420, I422, I444, Grey) is
/// written as is; packed camera formats are converted losslessly: YUYV and
/// UYVY to I422 (`C422`), NV12 to I420 (`C420jpeg`). RGB24 has no Y4M
/// layout and is refused at `create`.
pub struct Y4mWriter {
    path: String,
    out: BufWriter<File>,
    input: FrameDesc,
    /// Planar conversion of packed input; empty for planar input.
    conv: Vec<u8>,
    frames: u64,
}

impl Y4mWriter {
    /// Create (truncate) `path` and write the stream header. Boot: allocates
    /// the write buffer and, for packed input, one planar frame.
    pub fn create(
        path: impl AsRef<Path>,
        desc: FrameDesc,
        rate: FrameRate,
    ) -> Result<Self, SourceError> {
        let path_s = path.as_ref().display().to_string();
        let (out_format, colour) = match desc.format {
            PixelFormat::I420 => (PixelFormat::I420, "420jpeg"),
            PixelFormat::I422 => (PixelFormat::I422, "422"),
            PixelFormat::I444 => (PixelFormat::I444, "444"),
            PixelFormat::Grey => (PixelFormat::Grey, "mono"),
            PixelFormat::Yuyv | PixelFormat::Uyvy => (PixelFormat::I422, "422"),
            PixelFormat::Nv12 => (PixelFormat::I420, "420jpeg"),
            PixelFormat::Rgb24 => {
                return Err(SourceError::Config(format!(
                    "{path_s}: Y4M cannot hold RGB24 frames; record YUYV, UYVY, NV12 or GREY"
                )))
            }
        };
        for (name, v) in [("width", desc.width), ("height", desc.height)] {
            if v == 0 || v > MAX_DIM {
                return Err(SourceError::Config(format!(
                    "{path_s}: Y4M {name} is {v}, expected 1..=16384"
                )));
            }
        }
        if rate.num == 0 || rate.den == 0 {
            return Err(SourceError::Config(format!(
                "{path_s}: Y4M frame rate is {}:{}, both must be > 0",
                rate.num, rate.den
            )));
        }
        let io_err = |e: std::io::Error| SourceError::Io {
            path: path_s.clone(),
            msg: e.to_string(),
        };
        let file = File::create(path.as_ref()).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(IO_BUFFER, file);
        writeln!(
            out,
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C{colour} XPERCEPTD",
            desc.width, desc.height, rate.num, rate.den
        )
        .map_err(io_err)?;
        let conv = if out_format == desc.format {
            Vec::new()
        } else {
            vec![0; out_format.frame_bytes(desc.width, desc.height)]
        };
        Ok(Y4mWriter {
            path: path_s,
            out,
            input: desc,
            conv,
            frames: 0,
        })
    }

    /// Append one frame (`desc.bytes()` long, in the format given to
    /// `create`), stamped with `stamp.capture_ns` as `XTS`.
    /// Never allocates on success.
    pub fn write_frame(&mut self, data: &[u8], stamp: FrameStamp) -> Result<(), SourceError> {
        let want = self.input.bytes();
        if data.len() != want {
            return Err(SourceError::Io {
                path: self.path.clone(),
                msg: format!(
                    "frame {} is {} bytes but {} {}x{} is {want}",
                    self.frames,
                    data.len(),
                    self.input.format.name(),
                    self.input.width,
                    self.input.height
                ),
            });
        }
        let (w, h) = (self.input.width, self.input.height);
        let planes: &[u8] = match self.input.format {
            PixelFormat::Yuyv => {
                packed422_to_i422(data, w, h, 0, &mut self.conv);
                &self.conv
            }
            PixelFormat::Uyvy => {
                packed422_to_i422(data, w, h, 1, &mut self.conv);
                &self.conv
            }
            PixelFormat::Nv12 => {
                nv12_to_i420(data, w, h, &mut self.conv);
                &self.conv
            }
            _ => data,
        };
        let res = writeln!(self.out, "FRAME XTS={}", stamp.capture_ns)
            .and_then(|_| self.out.write_all(planes));
        if let Err(e) = res {
            return Err(SourceError::Io {
                path: self.path.clone(),
                msg: format!("frame {}: {e}", self.frames),
            });
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flush and sync the file; returns the number of frames written.
    /// Dropping the writer also flushes, but cannot report errors.
    pub fn finish(mut self) -> Result<u64, SourceError> {
        let res = self.out.flush().and_then(|_| self.out.get_ref().sync_all());
        res.map_err(|e| SourceError::Io {
            path: self.path.clone(),
            msg: e.to_string(),
        })?;
        Ok(self.frames)
    }
}

/// YUYV (`y_first` offset 0) or UYVY (offset 1) to planar I422. Rows of
/// packed input are ceil(w/2) pairs; the padding luma of an odd width is
/// dropped.
fn packed422_to_i422(src: &[u8], w: usize, h: usize, y_offset: usize, dst: &mut [u8]) {
    let cw = w.div_ceil(2);
    let (y_plane, chroma) = dst.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * h);
    let (u_off, v_off) = if y_offset == 0 { (1, 3) } else { (0, 2) };
    for row in 0..h {
        let s = &src[row * cw * 4..(row + 1) * cw * 4];
        let yr = &mut y_plane[row * w..(row + 1) * w];
        for (x, y) in yr.iter_mut().enumerate() {
            *y = s[(x / 2) * 4 + y_offset + (x % 2) * 2];
        }
        let ur = &mut u_plane[row * cw..(row + 1) * cw];
        let vr = &mut v_plane[row * cw..(row + 1) * cw];
        for ((pair, u), v) in s.chunks_exact(4).zip(ur.iter_mut()).zip(vr.iter_mut()) {
            *u = pair[u_off];
            *v = pair[v_off];
        }
    }
}

/// NV12 to planar I420: the luma plane is copied, interleaved UV split.
fn nv12_to_i420(src: &[u8], w: usize, h: usize, dst: &mut [u8]) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (y_plane, chroma) = dst.split_at_mut(w * h);
    y_plane.copy_from_slice(&src[..w * h]);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let uv = &src[w * h..w * h + cw * ch * 2];
    for ((pair, u), v) in uv
        .chunks_exact(2)
        .zip(u_plane.iter_mut())
        .zip(v_plane.iter_mut())
    {
        *u = pair[0];
        *v = pair[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file under the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            TempFile(
                std::env::temp_dir()
                    .join(format!("perceptd-y4m-{}-{n}-{tag}.y4m", std::process::id())),
            )
        }
        fn with(tag: &str, bytes: &[u8]) -> Self {
            let f = TempFile::new(tag);
            std::fs::write(&f.0, bytes).unwrap();
            f
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect()
    }

    fn open_err(bytes: &[u8]) -> String {
        let f = TempFile::with("bad", bytes);
        match Y4mSource::open(&f.0, Pace::Fast) {
            Ok(_) => panic!("opened {:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_every_planar_format_with_odd_sizes() {
        for fmt in [
            PixelFormat::I420,
            PixelFormat::I422,
            PixelFormat::I444,
            PixelFormat::Grey,
        ] {
            for (w, h) in [(1, 1), (7, 5), (33, 17), (64, 48)] {
                let desc = FrameDesc {
                    format: fmt,
                    width: w,
                    height: h,
                };
                let f = TempFile::new("rt");
                let mut wr = Y4mWriter::create(
                    &f.0,
                    desc,
                    FrameRate {
                        num: 30000,
                        den: 1001,
                    },
                )
                .unwrap();
                let frames: Vec<Vec<u8>> = (0..3).map(|i| pattern(desc.bytes(), i)).collect();
                for (i, fr) in frames.iter().enumerate() {
                    wr.write_frame(
                        fr,
                        FrameStamp {
                            capture_ns: 1000 + i as u64,
                            source_ns: None,
                        },
                    )
                    .unwrap();
                }
                assert_eq!(wr.finish().unwrap(), 3);

                let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
                assert_eq!(src.desc(), desc);
                assert_eq!(
                    src.header().rate,
                    FrameRate {
                        num: 30000,
                        den: 1001
                    }
                );
                let mut buf = vec![0u8; desc.bytes()];
                for (i, fr) in frames.iter().enumerate() {
                    let st = src.next_frame(&mut buf).unwrap();
                    assert_eq!(&buf, fr, "{fmt:?} {w}x{h} frame {i}");
                    assert_eq!(st.source_ns, Some(1000 + i as u64));
                }
                assert!(matches!(src.next_frame(&mut buf), Err(SourceError::End)));
            }
        }
    }

    #[test]
    fn packed_input_is_recorded_planar() {
        // 3x2 YUYV: rows of 2 pairs (the 4th luma is padding).
        let yuyv: Vec<u8> = (0..16).collect();
        let desc = FrameDesc {
            format: PixelFormat::Yuyv,
            width: 3,
            height: 2,
        };
        let f = TempFile::new("yuyv");
        let mut wr = Y4mWriter::create(&f.0, desc, FrameRate::per_second(30)).unwrap();
        wr.write_frame(&yuyv, FrameStamp::default()).unwrap();
        wr.finish().unwrap();
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        assert_eq!(src.desc().format, PixelFormat::I422);
        let mut buf = vec![0; src.desc().bytes()];
        src.next_frame(&mut buf).unwrap();
        #[rustfmt::skip]
        assert_eq!(buf, [0, 2, 4, 8, 10, 12, /* U */ 1, 5, 9, 13, /* V */ 3, 7, 11, 15]);

        let uyvy: Vec<u8> = (0..16).collect();
        let desc = FrameDesc {
            format: PixelFormat::Uyvy,
            width: 3,
            height: 2,
        };
        let mut conv = vec![0; PixelFormat::I422.frame_bytes(3, 2)];
        packed422_to_i422(&uyvy, desc.width, desc.height, 1, &mut conv);
        #[rustfmt::skip]
        assert_eq!(conv, [1, 3, 5, 9, 11, 13, /* U */ 0, 4, 8, 12, /* V */ 2, 6, 10, 14]);

        // 3x3 NV12: 9 luma, then 2x2 interleaved UV pairs.
        let nv12: Vec<u8> = (0..17).collect();
        let desc = FrameDesc {
            format: PixelFormat::Nv12,
            width: 3,
            height: 3,
        };
        let f = TempFile::new("nv12");
        let mut wr = Y4mWriter::create(&f.0, desc, FrameRate::per_second(30)).unwrap();
        wr.write_frame(&nv12, FrameStamp::default()).unwrap();
        wr.finish().unwrap();
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        assert_eq!(src.desc().format, PixelFormat::I420);
        let mut buf = vec![0; src.desc().bytes()];
        src.next_frame(&mut buf).unwrap();
        assert_eq!(
            buf,
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 10, 12, 14, 16]
        );
    }

    #[test]
    fn writer_refuses_rgb_and_wrong_sizes() {
        let f = TempFile::new("rgb");
        let rgb = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 4,
            height: 4,
        };
        let e = Y4mWriter::create(&f.0, rgb, FrameRate::per_second(30))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("RGB24"), "{e}");
        let desc = FrameDesc {
            format: PixelFormat::Grey,
            width: 4,
            height: 4,
        };
        let mut wr = Y4mWriter::create(&f.0, desc, FrameRate::per_second(30)).unwrap();
        let e = wr
            .write_frame(&[0; 15], FrameStamp::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("15 bytes") && e.contains("16"), "{e}");
    }

    fn file_with_frames(n: usize) -> (Vec<u8>, usize) {
        let mut bytes = b"YUV4MPEG2 W5 H3 F25:1 Ip A1:1 C420jpeg XCOMMENT=hi\n".to_vec();
        let fb = PixelFormat::I420.frame_bytes(5, 3);
        for i in 0..n {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend(pattern(fb, i as u32));
        }
        (bytes, fb)
    }

    #[test]
    fn truncated_file_delivers_every_complete_frame() {
        let (bytes, fb) = file_with_frames(3);
        let frame_len = 6 + fb;
        let header_len = bytes.len() - 3 * frame_len;
        for cut in [1, 3, 6, 7, fb / 2 + 6, frame_len - 1, frame_len + 2] {
            let keep = bytes.len() - cut;
            let f = TempFile::with("trunc", &bytes[..keep]);
            for skip in [false, true] {
                let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
                let mut buf = vec![0; fb];
                let complete = (keep - header_len) / frame_len;
                for i in 0..complete {
                    if skip {
                        src.skip_frame().unwrap();
                    } else {
                        src.next_frame(&mut buf).unwrap();
                        assert_eq!(buf, pattern(fb, i as u32));
                    }
                }
                let res = if skip {
                    src.skip_frame()
                } else {
                    src.next_frame(&mut buf)
                };
                match res {
                    Err(SourceError::Truncated {
                        path,
                        frames,
                        bytes,
                    }) => {
                        assert!(path.contains("trunc"), "{path}");
                        assert_eq!(frames, complete as u64, "cut {cut}");
                        assert_eq!(
                            bytes as usize,
                            keep - header_len - complete * frame_len,
                            "cut {cut}"
                        );
                    }
                    other => panic!("cut {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn clean_end_after_last_frame() {
        let (bytes, fb) = file_with_frames(2);
        let f = TempFile::with("end", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let mut buf = vec![0; fb];
        src.next_frame(&mut buf).unwrap();
        src.skip_frame().unwrap();
        assert!(matches!(src.skip_frame(), Err(SourceError::End)));
        assert_eq!(src.frames(), 2);
    }

    #[test]
    fn bad_headers_name_file_field_and_value() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"", &["empty"]),
            (b"RIFF....", &["not a YUV4MPEG2", "RIFF"]),
            (b"YUV4MPEG W4 H4 F25:1\n", &["not a YUV4MPEG2"]),
            (b"YUV4MPEG2 H4 F25:1\n", &["no W"]),
            (b"YUV4MPEG2 W4 F25:1\n", &["no H"]),
            (b"YUV4MPEG2 W4 H4\n", &["no F"]),
            (b"YUV4MPEG2 W0 H4 F25:1\n", &["W (width)", "'0'"]),
            (b"YUV4MPEG2 W4 H16385 F25:1\n", &["H (height)", "'16385'"]),
            (
                b"YUV4MPEG2 W4 H99999999999999999999999 F25:1\n",
                &["H (height)"],
            ),
            (b"YUV4MPEG2 W-4 H4 F25:1\n", &["W (width)", "'-4'"]),
            (b"YUV4MPEG2 W4 H4 F25:0\n", &["F (frame rate)", "'25:0'"]),
            (b"YUV4MPEG2 W4 H4 F25\n", &["F (frame rate)", "'25'"]),
            (
                b"YUV4MPEG2 W4 H4 F25:1 C411\n",
                &["C (colour space)", "'411'"],
            ),
            (
                b"YUV4MPEG2 W4 H4 F25:1 C420p10\n",
                &["C (colour space)", "'420p10'"],
            ),
            (b"YUV4MPEG2 W4 H4 F25:1 Ix\n", &["I (interlacing)", "'x'"]),
            (b"YUV4MPEG2 W4 H4 F25:1", &["without a newline"]),
        ];
        for (bytes, needles) in cases {
            let e = open_err(bytes);
            assert!(e.contains("perceptd-y4m-"), "{e}");
            for n in *needles {
                assert!(
                    e.contains(n),
                    "{:?}: '{e}' lacks '{n}'",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        let long = [b"YUV4MPEG2 ".as_slice(), &[b'X'; 5000]].concat();
        assert!(open_err(&long).contains("longer than"));
    }

    #[test]
    fn header_tags_and_defaults() {
        let h = parse_header(
            b"YUV4MPEG2 W7 H5 F30000:1001 It A10:11 Cmono XYSCSS=FOO\n",
            "x",
        )
        .unwrap();
        assert_eq!((h.width, h.height, h.format), (7, 5, PixelFormat::Grey));
        assert_eq!((h.interlace, h.aspect), ('t', (10, 11)));
        let h = parse_header(b"YUV4MPEG2 W2 H2 F1:1", "x").unwrap();
        assert_eq!(
            (h.format, h.colour.as_str(), h.interlace),
            (PixelFormat::I420, "420jpeg", '?')
        );
        for (c, f) in [
            ("420paldv", PixelFormat::I420),
            ("420mpeg2", PixelFormat::I420),
            ("420", PixelFormat::I420),
            ("422", PixelFormat::I422),
            ("444", PixelFormat::I444),
            ("gray", PixelFormat::Grey),
            ("mono8", PixelFormat::Grey),
        ] {
            let line = format!("YUV4MPEG2 W2 H2 F1:1 C{c}");
            assert_eq!(parse_header(line.as_bytes(), "x").unwrap().format, f, "{c}");
        }
    }

    #[test]
    fn garbage_frame_marker_names_index_and_offset() {
        let (mut bytes, fb) = file_with_frames(3);
        let header_len = bytes.len() - 3 * (6 + fb);
        let second = header_len + 6 + fb;
        bytes[second..second + 5].copy_from_slice(b"FRAMX");
        let f = TempFile::with("garbage", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let mut buf = vec![0; fb];
        src.next_frame(&mut buf).unwrap();
        let e = src.next_frame(&mut buf).unwrap_err().to_string();
        assert!(
            e.contains("frame 1") && e.contains(&format!("byte offset {second}")),
            "{e}"
        );
        assert!(e.contains("FRAMX"), "{e}");

        // "FRAMES" is not "FRAME" plus parameters.
        let (mut bytes, _) = file_with_frames(1);
        bytes[header_len..header_len + 6].copy_from_slice(b"FRAMES");
        let f = TempFile::with("garbage2", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let e = src.skip_frame().unwrap_err().to_string();
        assert!(
            e.contains("frame 0") && e.contains(&format!("byte offset {header_len}")),
            "{e}"
        );

        // A FRAME line that never ends.
        let mut bytes = b"YUV4MPEG2 W2 H2 F1:1\nFRAME ".to_vec();
        bytes.extend([b'Z'; 300]);
        let f = TempFile::with("garbage3", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let e = src.skip_frame().unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");

        // A bad XTS value.
        let mut bytes = b"YUV4MPEG2 W2 H2 F1:1 Cmono\nFRAME XTS=12a\n".to_vec();
        bytes.extend([0; 4]);
        let f = TempFile::with("garbage4", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let e = src.skip_frame().unwrap_err().to_string();
        assert!(e.contains("XTS is '12a'"), "{e}");
    }

    #[test]
    fn frame_parameters_and_timestamps() {
        let mut bytes = b"YUV4MPEG2 W2 H1 F1:1 Cmono\n".to_vec();
        bytes.extend(b"FRAME Ixyz XTS=42 Q\n\x01\x02");
        bytes.extend(b"FRAME\n\x03\x04");
        let f = TempFile::with("params", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let mut buf = [0u8; 2];
        assert_eq!(src.next_frame(&mut buf).unwrap().source_ns, Some(42));
        assert_eq!(buf, [1, 2]);
        assert_eq!(src.next_frame(&mut buf).unwrap().source_ns, None);
        assert_eq!(buf, [3, 4]);
    }

    #[test]
    fn pacing_realtime_is_live_and_fast_is_lockstep() {
        let (bytes, fb) = {
            let mut b = b"YUV4MPEG2 W4 H2 F500:1 Cmono\n".to_vec();
            for i in 0..4u8 {
                b.extend(b"FRAME\n");
                b.extend([i; 8]);
            }
            (b, 8)
        };
        let f = TempFile::with("pace", &bytes);
        let fast = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        assert_eq!(fast.pacing(), Pacing::Lockstep);
        let mut rt = Y4mSource::open(&f.0, Pace::Realtime).unwrap();
        assert_eq!(rt.pacing(), Pacing::Live);
        assert!(rt.describe().contains("realtime"), "{}", rt.describe());
        // Frame k is never handed over before k / F after frame 0 (sleeps
        // do not return early), skipped frames included.
        let mut buf = vec![0; fb];
        let t0 = rt.next_frame(&mut buf).unwrap().capture_ns;
        let t1 = rt.skip_frame().unwrap().capture_ns;
        let t2 = rt.next_frame(&mut buf).unwrap().capture_ns;
        assert_eq!(buf, [2; 8]);
        assert!(t1 - t0 >= 2_000_000, "{}", t1 - t0);
        assert!(t2 - t0 >= 4_000_000, "{}", t2 - t0);
    }

    #[test]
    fn frame_rate_offsets_do_not_drift() {
        let r = FrameRate {
            num: 30000,
            den: 1001,
        };
        assert_eq!(r.offset_ns(30000), 1001 * 1_000_000_000);
        assert_eq!(r.offset_ns(1), 33_366_666);
    }

    #[test]
    fn short_destination_is_an_error() {
        let (bytes, fb) = file_with_frames(1);
        let f = TempFile::with("short", &bytes);
        let mut src = Y4mSource::open(&f.0, Pace::Fast).unwrap();
        let mut buf = vec![0; fb - 1];
        let e = src.next_frame(&mut buf).unwrap_err().to_string();
        assert!(e.contains(&format!("{}", fb - 1)), "{e}");
    }
}
