//! Raw MJPEG stream replay: concatenated JPEGs (what `ffmpeg -f mjpeg`
//! writes, what an MJPEG camera sends), found by content (`FF D8`), not
//! by extension.
//!
//! [`jpeg_extent`] finds where one JPEG ends by walking its marker
//! segments and its entropy-coded data (so an `FF D9` inside an EXIF
//! thumbnail does not end it); [`MjpegSource`] reads the stream into one
//! buffer sized at boot (4 bytes a pixel of the first frame's size, plus
//! slack, checked against `pipeline.max_memory_mb` before it is allocated)
//! and decodes each JPEG into the slot with one kept
//! [`JpegDecoder`]. A corrupt JPEG, or one cut short by the next `FF D8`,
//! is a bad frame (counted and dropped, the replay goes on); a stream
//! that ends inside a JPEG is [`SourceError::Truncated`] after every
//! complete frame was delivered.
//!
//! Timestamps: raw MJPEG has none; `source_ns` is `None` and realtime
//! pacing runs at [`MJPEG_FPS`].
//!
//! Allocation: `from_reader` allocates the buffer and the decoder;
//! `next_frame` and `skip_frame` never allocate on success (a bad frame's
//! error carries the path, as the camera's does; fatal errors a formatted
//! message). Capture thread.

use crate::budget::BudgetError;
use crate::clock::monotonic_ns;
use crate::frame::FrameDesc;
use crate::fsio::StreamReader;
use crate::source::jpeg::{probe, JpegDecoder, JpegError, JpegInfo};
use crate::source::y4m::{FrameRate, Pace};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use std::io::{BufRead, BufReader, Read};

/// Frame rate of a realtime MJPEG replay (the stream has no timestamps).
pub const MJPEG_FPS: u32 = 30;

/// Stream buffer bytes per pixel: a baseline JPEG past this is not a
/// camera frame (4:4:4 noise at quality 100 stays under 3).
const BYTES_PER_PIXEL: usize = 4;
/// Room for headers and tables of a tiny frame.
const SLACK: usize = 64 * 1024;
/// Where the first frame's SOF must be found (EXIF and other APP segments
/// are at most 64 KiB each).
const MAX_HEAD: usize = 256 * 1024;

/// Where the JPEG at the start of `data` (which begins `FF D8`) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// The JPEG is `data[..n]` (through its EOI).
    Complete(usize),
    /// The data ends inside the JPEG.
    NeedMore,
    /// The JPEG is broken at `n` (a new SOI, or bytes that cannot be
    /// there): drop `data[..n]` as a bad frame and look for the next SOI.
    Broken(usize),
}

/// Walk the JPEG at the start of `data`. Never allocates, never panics.
pub fn jpeg_extent(data: &[u8]) -> Extent {
    if data.len() < 2 {
        return Extent::NeedMore;
    }
    if data[..2] != [0xFF, 0xD8] {
        return Extent::Broken(0);
    }
    let mut pos = 2;
    loop {
        // At a marker.
        let Some(&b) = data.get(pos) else {
            return Extent::NeedMore;
        };
        if b != 0xFF {
            return Extent::Broken(pos.max(2));
        }
        let Some(&m) = data.get(pos + 1) else {
            return Extent::NeedMore;
        };
        match m {
            0xFF => pos += 1,
            0xD9 => return Extent::Complete(pos + 2),
            0xD8 => return Extent::Broken(pos),
            0xD0..=0xD7 | 0x01 => pos += 2,
            0x00 => return Extent::Broken(pos),
            _ => {
                let (Some(&hi), Some(&lo)) = (data.get(pos + 2), data.get(pos + 3)) else {
                    return Extent::NeedMore;
                };
                let len = ((hi as usize) << 8) | lo as usize;
                if len < 2 {
                    return Extent::Broken(pos);
                }
                pos += 2 + len;
                if m == 0xDA {
                    // Entropy-coded data: up to the first real marker.
                    loop {
                        let Some(off) = data
                            .get(pos..)
                            .and_then(|d| d.iter().position(|&b| b == 0xFF))
                        else {
                            return Extent::NeedMore;
                        };
                        pos += off;
                        match data.get(pos + 1) {
                            None => return Extent::NeedMore,
                            Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
                            Some(0xFF) => pos += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

/// Replays a raw MJPEG stream. See the module doc.
pub struct MjpegSource {
    path: String,
    reader: BufReader<StreamReader>,
    buf: Vec<u8>,
    /// The unread JPEG data is `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    decoder: Box<JpegDecoder>,
    info: JpegInfo,
    pace: Pace,
    start_ns: Option<u64>,
    frames: u64,
    bad: u64,
    /// Stream offset of `buf[0]`.
    offset: u64,
}

/// What the reader is about to deliver.
enum Next {
    Frame(usize),
    Bad(&'static str),
}

impl MjpegSource {
    /// Boot: read the first JPEG's header from `reader` (nothing consumed
    /// yet), check the stream buffer against `max_memory_mb`, allocate it
    /// and the decoder.
    pub fn from_reader(
        path: String,
        mut reader: BufReader<StreamReader>,
        pace: Pace,
        max_memory_mb: u64,
    ) -> Result<Self, SourceError> {
        // The first frame's header, read until it parses: a pipe may hand
        // it over a few bytes at a time.
        let mut head = Vec::with_capacity(4096);
        let info = loop {
            let e = match probe(&head) {
                Ok(info) => break info,
                Err(e) => e,
            };
            let more = e == JpegError::Truncated || head.len() < 2;
            let got = if more && head.len() < MAX_HEAD {
                let buf = reader.fill_buf().map_err(|e| SourceError::Io {
                    path: path.clone(),
                    msg: e.to_string(),
                })?;
                let k = buf.len().min(MAX_HEAD - head.len());
                head.extend_from_slice(&buf[..k]);
                reader.consume(k);
                k
            } else {
                0
            };
            if got == 0 {
                let why = match e {
                    JpegError::Truncated => format!(
                        "no JPEG frame header (SOF) in the first {} bytes",
                        head.len()
                    ),
                    e => e.to_string(),
                };
                return Err(SourceError::Config(format!(
                    "{path}: MJPEG stream, first frame: {why}"
                )));
            }
        };
        let cap = (info.width * info.height)
            .saturating_mul(BYTES_PER_PIXEL)
            .saturating_add(SLACK)
            .max(head.len());
        let needed = cap as u64 + std::mem::size_of::<JpegDecoder>() as u64;
        if needed > max_memory_mb.saturating_mul(1 << 20) {
            return Err(SourceError::Config(
                BudgetError::Exceeded {
                    origin: path,
                    limit_mb: max_memory_mb,
                    needed_mb: needed.div_ceil(1 << 20),
                    what: "the MJPEG stream buffer".into(),
                    detail: format!(
                        "{}x{}, {BYTES_PER_PIXEL} bytes a pixel",
                        info.width, info.height
                    ),
                }
                .to_string(),
            ));
        }
        let mut buf = vec![0; cap];
        buf[..head.len()].copy_from_slice(&head);
        Ok(MjpegSource {
            path,
            reader,
            buf,
            start: 0,
            end: head.len(),
            eof: false,
            decoder: JpegDecoder::new(info),
            info,
            pace,
            start_ns: None,
            frames: 0,
            bad: 0,
            offset: 0,
        })
    }

    /// Complete frames delivered or skipped, and bad frames dropped.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.bad)
    }

    fn io(&self, e: std::io::Error) -> SourceError {
        SourceError::Io {
            path: self.path.clone(),
            msg: format!(
                "frame {} at byte offset {}: {e}",
                self.frames,
                self.offset + self.start as u64
            ),
        }
    }

    /// Read more of the stream after `buf[..end]`, first moving the unread
    /// part to the front. `false` at the end of the stream.
    fn read_more(&mut self) -> Result<bool, SourceError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.offset += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(SourceError::Io {
                path: self.path.clone(),
                msg: format!(
                    "frame {} at byte offset {}: a JPEG longer than {} bytes ({BYTES_PER_PIXEL} bytes a pixel of {}x{})",
                    self.frames,
                    self.offset,
                    self.buf.len(),
                    self.info.width,
                    self.info.height
                ),
            });
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(k) => {
                    self.end += k;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    /// Find the next whole JPEG (or a broken one to drop) at `start`.
    fn next_jpeg(&mut self) -> Result<Next, SourceError> {
        loop {
            let data = &self.buf[self.start..self.end];
            // Bytes between JPEGs (padding, garbage): skip to the next SOI.
            if data.first().is_some_and(|&b| b != 0xFF) || data.get(1).is_some_and(|&b| b != 0xD8) {
                match data.windows(2).position(|w| w == [0xFF, 0xD8]) {
                    Some(p) => {
                        self.start += p;
                        return Ok(Next::Bad("bytes between JPEGs"));
                    }
                    None if !self.eof => {
                        // Keep a last FF: it may start the next SOI.
                        let keep = usize::from(data.last() == Some(&0xFF));
                        self.start = self.end - keep;
                        self.read_more()?;
                        continue;
                    }
                    None => {
                        let stray = data.len() as u64;
                        self.start = self.end;
                        return Err(SourceError::Truncated {
                            path: self.path.clone(),
                            frames: self.frames,
                            bytes: stray,
                        });
                    }
                }
            }
            match jpeg_extent(data) {
                Extent::Complete(n) => return Ok(Next::Frame(n)),
                Extent::Broken(n) => {
                    // At least past this SOI, so the search moves on.
                    self.start += n.max(1);
                    return Ok(Next::Bad("JPEG cut short or corrupt"));
                }
                Extent::NeedMore if self.eof => {
                    if data.is_empty() {
                        return Err(SourceError::End);
                    }
                    let stray = data.len() as u64;
                    self.start = self.end;
                    return Err(SourceError::Truncated {
                        path: self.path.clone(),
                        frames: self.frames,
                        bytes: stray,
                    });
                }
                Extent::NeedMore => {
                    self.read_more()?;
                }
            }
        }
    }

    fn bad(&mut self, reason: &'static str) -> SourceError {
        self.bad += 1;
        SourceError::BadFrame {
            device: self.path.clone(),
            reason,
        }
    }

    fn deliver(&mut self) -> FrameStamp {
        if self.pace == Pace::Realtime {
            match self.start_ns {
                None => self.start_ns = Some(monotonic_ns()),
                Some(start) => {
                    // Wakes early on a stop request.
                    crate::stop::sleep_until(
                        start.saturating_add(
                            FrameRate::per_second(MJPEG_FPS).offset_ns(self.frames),
                        ),
                    );
                }
            }
        }
        self.frames += 1;
        FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: None,
        }
    }
}

impl Source for MjpegSource {
    fn desc(&self) -> FrameDesc {
        self.info.desc()
    }

    fn pacing(&self) -> Pacing {
        match self.pace {
            Pace::Realtime => Pacing::Live,
            Pace::Fast => Pacing::Lockstep,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (MJPEG {} {}x{}, {})",
            self.path,
            self.info.format.name(),
            self.info.width,
            self.info.height,
            match self.pace {
                Pace::Realtime => "realtime at 30 fps",
                Pace::Fast => "fast",
            }
        )
    }

    /// Frame path: never allocates on success.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        match self.next_jpeg()? {
            Next::Bad(reason) => Err(self.bad(reason)),
            Next::Frame(n) => {
                let jpeg = &self.buf[self.start..self.start + n];
                let res = self.decoder.decode(jpeg, dst);
                self.start += n;
                match res {
                    Ok(()) => Ok(self.deliver()),
                    Err(e) => Err(self.bad(e.reason())),
                }
            }
        }
    }

    /// Frame path: never allocates.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        match self.next_jpeg()? {
            Next::Bad(reason) => Err(self.bad(reason)),
            Next::Frame(n) => {
                self.start += n;
                Ok(self.deliver())
            }
        }
    }

    fn buffer_bytes(&self) -> Option<u64> {
        Some((self.buf.len() + self.reader.capacity() + std::mem::size_of::<JpegDecoder>()) as u64)
    }
}

#[cfg(test)]
mod tests;
