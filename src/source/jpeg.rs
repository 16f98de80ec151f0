//! Baseline JPEG decoding straight into planar YCbCr frames, with one
//! decoder kept for a whole run (MJPEG cameras and MJPEG replays).
//!
//! Why our own decoder: `zune-jpeg` 0.4 builds a new `JpegDecoder` per
//! image and allocates 17 times per decode (counted by a global allocator
//! over a 320x240 4:2:2 frame), and libjpeg-turbo allocates its per-image
//! pools with `malloc` in `jpeg_start_decompress` and frees them in
//! `jpeg_finish_decompress`; neither can run a frame without the heap.
//! A USB camera's MJPEG is baseline JPEG (Huffman, 8-bit, one scan), so a
//! decoder whose whole state is fixed-size arrays covers it: this one.
//! It writes the Y, Cb and Cr planes as they are coded — 4:2:0 as
//! [`PixelFormat::I420`], 4:2:2 as I422, 4:4:4 as I444, one component as
//! Grey — so no colour conversion happens here; preprocessing already
//! takes those formats (JFIF full-range YCbCr, as Y4M `C420jpeg`).
//!
//! Supported: SOF0/SOF1 8-bit, 1 or 3 components, interleaved and
//! single-component scans, restart intervals, and the standard Huffman
//! tables for images without DHT (the "AVI1" MJPEG many cameras send).
//! Refused by name: progressive, lossless, arithmetic, 12-bit, other
//! subsamplings. A frame whose size or subsampling differs from the one
//! the decoder was built for is refused, never written.
//!
//! Allocation: [`JpegDecoder::new`] (boot) boxes nothing but itself;
//! [`JpegDecoder::decode`] and [`probe`] never allocate, errors included
//! ([`JpegError`] is `Copy` with static reasons). Any thread; the capture
//! thread in the pipeline. Never panics on any input (fuzzed).

use crate::frame::{FrameDesc, PixelFormat};
use thiserror::Error;

/// Largest width or height accepted (as for Y4M).
pub const MAX_DIM: usize = 16384;

/// Why a JPEG was not decoded. Static reasons: building one never
/// allocates, so a bad frame costs nothing on the frame path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JpegError {
    #[error("not a JPEG (no SOI marker FF D8)")]
    NotJpeg,
    #[error("truncated JPEG (the data ends inside the image)")]
    Truncated,
    #[error("corrupt JPEG: {0}")]
    Corrupt(&'static str),
    #[error("unsupported JPEG: {0}")]
    Unsupported(&'static str),
    #[error("JPEG is {width}x{height} {format}, but the stream is {want_width}x{want_height} {want_format}")]
    Mismatch {
        width: usize,
        height: usize,
        format: PixelFormat,
        want_width: usize,
        want_height: usize,
        want_format: PixelFormat,
    },
}

impl JpegError {
    /// A short static reason (for [`crate::source::SourceError::BadFrame`]).
    pub fn reason(self) -> &'static str {
        match self {
            JpegError::NotJpeg => "not a JPEG (no SOI marker)",
            JpegError::Truncated => "truncated JPEG",
            JpegError::Corrupt(r) | JpegError::Unsupported(r) => r,
            JpegError::Mismatch { .. } => "JPEG size or subsampling differs from the stream's",
        }
    }
}

type Result<T> = std::result::Result<T, JpegError>;

/// Zigzag position -> natural (row-major) index.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

// The standard tables of ITU-T T.81 Annex K.3 (bits per code length,
// then the values), used when an image has no DHT segment.
const STD_DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const STD_DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const STD_DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const STD_AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125];
const STD_AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const STD_AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119];
const STD_AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// Codes up to this long are decoded by one table look-up.
const FAST_BITS: u32 = 9;

/// One canonical Huffman table (T.81 Annex C), fixed size.
#[derive(Clone)]
struct Huffman {
    /// Indexed by the next FAST_BITS bits: `(length << 8) | value`, 0 when
    /// the code is longer.
    fast: [u16; 1 << FAST_BITS],
    /// Largest code of each length (index 1..=16), -1 when none.
    maxcode: [i32; 17],
    mincode: [i32; 17],
    /// Index in `vals` of each length's first code.
    valptr: [i32; 17],
    vals: [u8; 256],
    count: usize,
    defined: bool,
}

impl Huffman {
    const EMPTY: Huffman = Huffman {
        fast: [0; 1 << FAST_BITS],
        maxcode: [-1; 17],
        mincode: [0; 17],
        valptr: [0; 17],
        vals: [0; 256],
        count: 0,
        defined: false,
    };

    /// Build from the 16 code-length counts and the values. Never
    /// allocates.
    fn build(&mut self, bits: &[u8; 16], vals: &[u8]) -> Result<()> {
        let count: usize = bits.iter().map(|&b| b as usize).sum();
        if count > 256 || count > vals.len() {
            return Err(JpegError::Corrupt("Huffman table has more than 256 codes"));
        }
        self.fast = [0; 1 << FAST_BITS];
        self.vals[..count].copy_from_slice(&vals[..count]);
        self.count = count;
        let (mut code, mut k) = (0i32, 0i32);
        for l in 1..=16usize {
            let n = bits[l - 1] as i32;
            self.valptr[l] = k;
            self.mincode[l] = code;
            code += n;
            k += n;
            if code > (1 << l) {
                return Err(JpegError::Corrupt("Huffman table is over-subscribed"));
            }
            self.maxcode[l] = if n > 0 { code - 1 } else { -1 };
            if l as u32 <= FAST_BITS {
                for c in self.mincode[l]..code {
                    let v = self.vals[(self.valptr[l] + c - self.mincode[l]) as usize];
                    let shift = FAST_BITS - l as u32;
                    let first = (c as usize) << shift;
                    for e in &mut self.fast[first..first + (1 << shift)] {
                        *e = ((l as u16) << 8) | v as u16;
                    }
                }
            }
            code <<= 1;
        }
        self.defined = true;
        Ok(())
    }
}

/// Entropy-coded data reader: bits MSB first, `FF 00` unstuffed, stops at
/// a marker. Past the end (or a marker) it feeds zero bits and counts
/// them, so a truncated image is detected when those are consumed.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
    /// Zero bits appended past the end of the data (the lowest of `n`).
    fake: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            buf: 0,
            n: 0,
            fake: 0,
            at_marker: false,
        }
    }

    fn fill(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            let mut real = false;
            if !self.at_marker && self.pos < self.data.len() {
                let b = self.data[self.pos];
                if b != 0xFF {
                    (byte, real) = (b, true);
                    self.pos += 1;
                } else if self.data.get(self.pos + 1) == Some(&0) {
                    (byte, real) = (0xFF, true);
                    self.pos += 2;
                } else {
                    self.at_marker = true;
                }
            }
            if !real {
                self.fake += 8;
            }
            self.buf |= (byte as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    /// Did decoding consume bits that were not in the data?
    fn overrun(&self) -> bool {
        self.fake > self.n
    }

    #[inline]
    fn consume(&mut self, k: u32) {
        self.buf <<= k;
        self.n -= k;
    }

    fn huff(&mut self, h: &Huffman) -> Result<u8> {
        if self.n < 16 {
            self.fill();
        }
        let f = h.fast[(self.buf >> (64 - FAST_BITS)) as usize];
        if f != 0 {
            self.consume((f >> 8) as u32);
            return Ok(f as u8);
        }
        let code16 = (self.buf >> 48) as i32;
        for l in FAST_BITS as usize + 1..=16 {
            let c = code16 >> (16 - l);
            if c <= h.maxcode[l] {
                self.consume(l as u32);
                let idx = h.valptr[l] + c - h.mincode[l];
                if idx < 0 || idx as usize >= h.count {
                    break;
                }
                return Ok(h.vals[idx as usize]);
            }
        }
        Err(JpegError::Corrupt("bad Huffman code"))
    }

    /// `s` (1..=15) bits as a signed coefficient (T.81 F.2.2.1 EXTEND).
    fn receive_extend(&mut self, s: u32) -> i32 {
        if self.n < s {
            self.fill();
        }
        let v = (self.buf >> (64 - s)) as i32;
        self.consume(s);
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }
}

/// One frame component as the SOF declared it.
#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    td: usize,
    ta: usize,
    pred: i32,
    /// This component's plane in the output: offset, width, height.
    offset: usize,
    width: usize,
    height: usize,
    decoded: bool,
}

/// What a JPEG's SOF says, enough to size a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: usize,
    pub height: usize,
    /// I420 (4:2:0), I422 (4:2:2), I444 or Grey.
    pub format: PixelFormat,
}

impl JpegInfo {
    pub fn desc(&self) -> FrameDesc {
        FrameDesc {
            format: self.format,
            width: self.width,
            height: self.height,
        }
    }
}

fn be16(d: &[u8], at: usize) -> Result<usize> {
    match d.get(at..at + 2) {
        Some(b) => Ok(((b[0] as usize) << 8) | b[1] as usize),
        None => Err(JpegError::Truncated),
    }
}

/// The segment body of the marker segment whose marker is at `pos`, and
/// the position after it.
fn segment(d: &[u8], pos: usize) -> Result<(&[u8], usize)> {
    let len = be16(d, pos + 2)?;
    if len < 2 {
        return Err(JpegError::Corrupt("marker segment length below 2"));
    }
    let end = pos + 2 + len;
    match d.get(pos + 4..end) {
        Some(body) => Ok((body, end)),
        None => Err(JpegError::Truncated),
    }
}

/// The marker at or after `pos` (fill bytes `FF` skipped): its code and
/// position. Anything but `FF` where a marker must be is corrupt.
fn marker_at(d: &[u8], mut pos: usize) -> Result<Option<(u8, usize)>> {
    if pos >= d.len() {
        return Ok(None);
    }
    if d[pos] != 0xFF {
        return Err(JpegError::Corrupt("expected a marker"));
    }
    while d.get(pos + 1) == Some(&0xFF) {
        pos += 1;
    }
    match d.get(pos + 1) {
        Some(&m) => Ok(Some((m, pos))),
        None => Err(JpegError::Truncated),
    }
}

/// Parse a SOF body into the component list and the frame's shape.
fn parse_sof(body: &[u8], comps: &mut [Component; 3]) -> Result<(JpegInfo, usize)> {
    if body.len() < 6 {
        return Err(JpegError::Corrupt("SOF segment too short"));
    }
    if body[0] != 8 {
        return Err(JpegError::Unsupported("only 8-bit samples"));
    }
    let height = ((body[1] as usize) << 8) | body[2] as usize;
    let width = ((body[3] as usize) << 8) | body[4] as usize;
    if width == 0 || height == 0 {
        return Err(JpegError::Unsupported("zero width or height (DNL)"));
    }
    if width > MAX_DIM || height > MAX_DIM {
        return Err(JpegError::Unsupported("width or height above 16384"));
    }
    let nf = body[5] as usize;
    if nf != 1 && nf != 3 {
        return Err(JpegError::Unsupported(
            "only 1 (grey) or 3 (YCbCr) components",
        ));
    }
    if body.len() < 6 + 3 * nf {
        return Err(JpegError::Corrupt("SOF segment too short"));
    }
    for (i, c) in comps.iter_mut().enumerate().take(nf) {
        let b = &body[6 + 3 * i..9 + 3 * i];
        let (h, v, tq) = ((b[1] >> 4) as usize, (b[1] & 15) as usize, b[2] as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err(JpegError::Corrupt("sampling factor outside 1..=4"));
        }
        if tq > 3 {
            return Err(JpegError::Corrupt("quantisation table index above 3"));
        }
        *c = Component {
            id: b[0],
            h,
            v,
            tq,
            ..Component::default()
        };
    }
    let format = if nf == 1 {
        // One component: its sampling factors mean nothing.
        comps[0].h = 1;
        comps[0].v = 1;
        PixelFormat::Grey
    } else {
        // By ratio: cameras write 4:2:2 as Y 2x1 / C 1x1, ffmpeg as Y 2x2 /
        // C 1x2.
        let (y, cb, cr) = (comps[0], comps[1], comps[2]);
        let ratio = if (cb.h, cb.v) != (cr.h, cr.v) || y.h % cb.h != 0 || y.v % cb.v != 0 {
            (0, 0)
        } else {
            (y.h / cb.h, y.v / cb.v)
        };
        match ratio {
            (1, 1) => PixelFormat::I444,
            (2, 1) => PixelFormat::I422,
            (2, 2) => PixelFormat::I420,
            _ => {
                return Err(JpegError::Unsupported(
                    "chroma subsampling other than 4:4:4, 4:2:2 or 4:2:0",
                ))
            }
        }
    };
    Ok((
        JpegInfo {
            width,
            height,
            format,
        },
        nf,
    ))
}

/// The size and subsampling of a JPEG, from its SOF. Never allocates.
pub fn probe(data: &[u8]) -> Result<JpegInfo> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(JpegError::NotJpeg);
    }
    let mut pos = 2;
    let mut comps = [Component::default(); 3];
    loop {
        let Some((m, at)) = marker_at(data, pos)? else {
            return Err(JpegError::Truncated);
        };
        match m {
            0xC0 | 0xC1 => {
                let (body, _) = segment(data, at)?;
                return Ok(parse_sof(body, &mut comps)?.0);
            }
            0xC2 | 0xC6 | 0xCA | 0xCE => return Err(JpegError::Unsupported("progressive JPEG")),
            0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xCF => {
                return Err(JpegError::Unsupported(
                    "lossless, hierarchical or arithmetic-coded JPEG",
                ))
            }
            0xD9 | 0xDA => return Err(JpegError::Corrupt("no SOF before the scan")),
            0xD0..=0xD8 | 0x01 => pos = at + 2,
            _ => pos = segment(data, at)?.1,
        }
    }
}

/// `T[x][u] = C(u)/2 * cos((2x+1) u pi / 16)`, the 1-D inverse DCT matrix.
fn idct_matrix() -> [[f32; 8]; 8] {
    let mut t = [[0f32; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, e) in row.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *e = (c / 2.0 * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
                as f32;
        }
    }
    t
}

/// A baseline JPEG decoder for frames of one size and subsampling, kept
/// for the run. See the module doc.
pub struct JpegDecoder {
    desc: FrameDesc,
    qt: [[u16; 64]; 4],
    qt_defined: [bool; 4],
    dc: [Huffman; 4],
    ac: [Huffman; 4],
    std_dc: [Huffman; 2],
    std_ac: [Huffman; 2],
    comps: [Component; 3],
    ncomp: usize,
    restart: usize,
    idct: [[f32; 8]; 8],
}

impl JpegDecoder {
    /// Boot: a decoder for frames `info` describes (from [`probe`] on the
    /// stream's first frame, or the camera's negotiated format).
    pub fn new(info: JpegInfo) -> Box<JpegDecoder> {
        let mut std_dc = [Huffman::EMPTY, Huffman::EMPTY];
        let mut std_ac = [Huffman::EMPTY, Huffman::EMPTY];
        // The standard tables are valid by construction.
        let built = std_dc[0]
            .build(&STD_DC_LUMA_BITS, &STD_DC_VALS)
            .and(std_dc[1].build(&STD_DC_CHROMA_BITS, &STD_DC_VALS))
            .and(std_ac[0].build(&STD_AC_LUMA_BITS, &STD_AC_LUMA_VALS))
            .and(std_ac[1].build(&STD_AC_CHROMA_BITS, &STD_AC_CHROMA_VALS));
        debug_assert!(built.is_ok());
        Box::new(JpegDecoder {
            desc: info.desc(),
            qt: [[0; 64]; 4],
            qt_defined: [false; 4],
            dc: [
                Huffman::EMPTY,
                Huffman::EMPTY,
                Huffman::EMPTY,
                Huffman::EMPTY,
            ],
            ac: [
                Huffman::EMPTY,
                Huffman::EMPTY,
                Huffman::EMPTY,
                Huffman::EMPTY,
            ],
            std_dc,
            std_ac,
            comps: [Component::default(); 3],
            ncomp: 0,
            restart: 0,
            idct: idct_matrix(),
        })
    }

    /// The frames this decoder writes.
    pub fn desc(&self) -> FrameDesc {
        self.desc
    }

    /// Decode one JPEG into `dst` (`desc().bytes()` long, planar as
    /// [`JpegDecoder::desc`]). On error `dst` may hold part of the image.
    /// Frame path: never allocates.
    pub fn decode(&mut self, data: &[u8], dst: &mut [u8]) -> Result<()> {
        if data.get(..2) != Some(&[0xFF, 0xD8]) {
            return Err(JpegError::NotJpeg);
        }
        let dst = match dst.get_mut(..self.desc.bytes()) {
            Some(d) => d,
            None => return Err(JpegError::Corrupt("destination smaller than a frame")),
        };
        // Per image: tables from this image only, the standard Huffman
        // tables where it defines none.
        self.qt_defined = [false; 4];
        self.dc[0] = self.std_dc[0].clone();
        self.dc[1] = self.std_dc[1].clone();
        self.ac[0] = self.std_ac[0].clone();
        self.ac[1] = self.std_ac[1].clone();
        self.dc[2].defined = false;
        self.dc[3].defined = false;
        self.ac[2].defined = false;
        self.ac[3].defined = false;
        self.restart = 0;
        self.ncomp = 0;
        let mut pos = 2;
        loop {
            let Some((m, at)) = marker_at(data, pos)? else {
                // Data ended without EOI: fine if every component was
                // decoded (some cameras drop the EOI).
                return self.finished();
            };
            match m {
                0xD9 => return self.finished(),
                0xC0 | 0xC1 => {
                    if self.ncomp != 0 {
                        return Err(JpegError::Corrupt("second SOF"));
                    }
                    let (body, end) = segment(data, at)?;
                    let (info, nf) = parse_sof(body, &mut self.comps)?;
                    if info.desc() != self.desc {
                        return Err(JpegError::Mismatch {
                            width: info.width,
                            height: info.height,
                            format: info.format,
                            want_width: self.desc.width,
                            want_height: self.desc.height,
                            want_format: self.desc.format,
                        });
                    }
                    self.ncomp = nf;
                    self.place_planes();
                    pos = end;
                }
                0xC2 | 0xC6 | 0xCA | 0xCE => {
                    return Err(JpegError::Unsupported("progressive JPEG"))
                }
                0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xCF | 0xCC => {
                    return Err(JpegError::Unsupported(
                        "lossless, hierarchical or arithmetic-coded JPEG",
                    ))
                }
                0xC4 => {
                    let (body, end) = segment(data, at)?;
                    self.parse_dht(body)?;
                    pos = end;
                }
                0xDB => {
                    let (body, end) = segment(data, at)?;
                    self.parse_dqt(body)?;
                    pos = end;
                }
                0xDD => {
                    let (body, end) = segment(data, at)?;
                    if body.len() != 2 {
                        return Err(JpegError::Corrupt("DRI segment is not 4 bytes"));
                    }
                    self.restart = be16(body, 0)?;
                    pos = end;
                }
                0xDA => {
                    let (body, end) = segment(data, at)?;
                    pos = self.scan(body, data, end, dst)?;
                }
                0xD8 => return Err(JpegError::Corrupt("SOI inside an image")),
                0xD0..=0xD7 | 0x01 => pos = at + 2,
                _ => pos = segment(data, at)?.1,
            }
        }
    }

    fn finished(&self) -> Result<()> {
        if self.ncomp == 0 {
            return Err(JpegError::Truncated);
        }
        if self.comps[..self.ncomp].iter().any(|c| !c.decoded) {
            return Err(JpegError::Truncated);
        }
        Ok(())
    }

    /// Where each component's plane lies in the output frame.
    fn place_planes(&mut self) {
        let (w, h) = (self.desc.width, self.desc.height);
        let hmax = self.comps[..self.ncomp]
            .iter()
            .map(|c| c.h)
            .max()
            .unwrap_or(1);
        let vmax = self.comps[..self.ncomp]
            .iter()
            .map(|c| c.v)
            .max()
            .unwrap_or(1);
        let mut offset = 0;
        for c in &mut self.comps[..self.ncomp] {
            c.width = (w * c.h).div_ceil(hmax);
            c.height = (h * c.v).div_ceil(vmax);
            c.offset = offset;
            c.decoded = false;
            offset += c.width * c.height;
        }
    }

    fn parse_dqt(&mut self, mut body: &[u8]) -> Result<()> {
        while let Some((&pt, rest)) = body.split_first() {
            let (pq, tq) = ((pt >> 4) as usize, (pt & 15) as usize);
            if tq > 3 || pq > 1 {
                return Err(JpegError::Corrupt("bad DQT table id or precision"));
            }
            let n = if pq == 0 { 64 } else { 128 };
            let Some(vals) = rest.get(..n) else {
                return Err(JpegError::Corrupt("DQT segment too short"));
            };
            for (k, q) in self.qt[tq].iter_mut().enumerate() {
                *q = if pq == 0 {
                    vals[k] as u16
                } else {
                    ((vals[2 * k] as u16) << 8) | vals[2 * k + 1] as u16
                };
            }
            self.qt_defined[tq] = true;
            body = &rest[n..];
        }
        Ok(())
    }

    fn parse_dht(&mut self, mut body: &[u8]) -> Result<()> {
        while let Some((&tcth, rest)) = body.split_first() {
            let (tc, th) = (tcth >> 4, (tcth & 15) as usize);
            if tc > 1 || th > 3 {
                return Err(JpegError::Corrupt("bad DHT table class or id"));
            }
            let Some(counts) = rest.get(..16) else {
                return Err(JpegError::Corrupt("DHT segment too short"));
            };
            let mut bits = [0u8; 16];
            bits.copy_from_slice(counts);
            let n: usize = bits.iter().map(|&b| b as usize).sum();
            let Some(vals) = rest.get(16..16 + n) else {
                return Err(JpegError::Corrupt("DHT segment too short"));
            };
            let table = if tc == 0 {
                &mut self.dc[th]
            } else {
                &mut self.ac[th]
            };
            table.build(&bits, vals)?;
            body = &rest[16 + n..];
        }
        Ok(())
    }

    /// Decode the scan whose SOS body is `sos` and whose entropy-coded data
    /// starts at `data[start..]`; returns the position of the marker after
    /// it.
    fn scan(&mut self, sos: &[u8], data: &[u8], start: usize, dst: &mut [u8]) -> Result<usize> {
        if self.ncomp == 0 {
            return Err(JpegError::Corrupt("no SOF before the scan"));
        }
        let ns = *sos
            .first()
            .ok_or(JpegError::Corrupt("SOS segment too short"))? as usize;
        if ns == 0 || ns > self.ncomp || sos.len() != 4 + 2 * ns {
            return Err(JpegError::Corrupt("bad SOS component count or length"));
        }
        let mut order = [0usize; 3];
        for i in 0..ns {
            let (id, t) = (sos[1 + 2 * i], sos[2 + 2 * i]);
            let Some(ci) = self.comps[..self.ncomp].iter().position(|c| c.id == id) else {
                return Err(JpegError::Corrupt("SOS names a component the SOF has not"));
            };
            let c = &mut self.comps[ci];
            c.td = (t >> 4) as usize;
            c.ta = (t & 15) as usize;
            if c.td > 3 || c.ta > 3 {
                return Err(JpegError::Corrupt("Huffman table index above 3"));
            }
            if !self.dc[c.td].defined || !self.ac[c.ta].defined {
                return Err(JpegError::Corrupt("scan uses an undefined Huffman table"));
            }
            if !self.qt_defined[c.tq] {
                return Err(JpegError::Corrupt(
                    "component uses an undefined quantisation table",
                ));
            }
            c.pred = 0;
            order[i] = ci;
        }
        let tail = &sos[1 + 2 * ns..];
        if tail != [0, 63, 0] {
            return Err(JpegError::Unsupported("progressive JPEG"));
        }
        let order = &order[..ns];
        let mut bits = Bits::new(data, start);
        let (mcus_x, mcus_y) = if ns == 1 {
            let c = &self.comps[order[0]];
            (c.width.div_ceil(8), c.height.div_ceil(8))
        } else {
            let hmax = self.comps[..self.ncomp]
                .iter()
                .map(|c| c.h)
                .max()
                .unwrap_or(1);
            let vmax = self.comps[..self.ncomp]
                .iter()
                .map(|c| c.v)
                .max()
                .unwrap_or(1);
            (
                self.desc.width.div_ceil(8 * hmax),
                self.desc.height.div_ceil(8 * vmax),
            )
        };
        let total = mcus_x * mcus_y;
        let mut todo = self.restart;
        for mcu in 0..total {
            let (mx, my) = (mcu % mcus_x, mcu / mcus_x);
            for &ci in order {
                let (bh, bv) = if ns == 1 {
                    (1, 1)
                } else {
                    (self.comps[ci].h, self.comps[ci].v)
                };
                for v in 0..bv {
                    for h in 0..bh {
                        let mut coef = [0i32; 64];
                        self.block(&mut bits, ci, &mut coef)?;
                        self.put_block(&coef, ci, (mx * bh + h) * 8, (my * bv + v) * 8, dst);
                    }
                }
            }
            if bits.overrun() {
                return Err(JpegError::Truncated);
            }
            if self.restart > 0 {
                todo -= 1;
                if todo == 0 && mcu + 1 < total {
                    bits = self.restart_marker(data, bits.pos)?;
                    for &ci in order {
                        self.comps[ci].pred = 0;
                    }
                    todo = self.restart;
                }
            }
        }
        for &ci in order {
            self.comps[ci].decoded = true;
        }
        next_marker(data, bits.pos)
    }

    /// Skip to the RSTn marker at or after `pos` and start a fresh reader
    /// after it.
    fn restart_marker<'a>(&self, data: &'a [u8], pos: usize) -> Result<Bits<'a>> {
        let at = next_marker(data, pos)?;
        match data.get(at + 1) {
            Some(0xD0..=0xD7) => Ok(Bits::new(data, at + 2)),
            Some(_) => Err(JpegError::Corrupt("missing restart marker")),
            None => Err(JpegError::Truncated),
        }
    }

    /// One 8x8 block's coefficients (dequantised, natural order).
    #[inline]
    fn block(&mut self, bits: &mut Bits, ci: usize, coef: &mut [i32; 64]) -> Result<()> {
        let c = self.comps[ci];
        let q = &self.qt[c.tq];
        let t = bits.huff(&self.dc[c.td])? as u32;
        if t > 11 {
            return Err(JpegError::Corrupt("DC difference longer than 11 bits"));
        }
        let diff = if t == 0 { 0 } else { bits.receive_extend(t) };
        let pred = c.pred.wrapping_add(diff);
        self.comps[ci].pred = pred;
        coef[0] = pred.wrapping_mul(q[0] as i32);
        let ac = &self.ac[c.ta];
        let mut k = 1;
        while k < 64 {
            let rs = bits.huff(ac)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r == 15 {
                    k += 16;
                    continue;
                }
                break;
            }
            k += r;
            if k > 63 {
                return Err(JpegError::Corrupt("AC coefficient index past 63"));
            }
            coef[ZIGZAG[k]] = bits.receive_extend(s).wrapping_mul(q[k] as i32);
            k += 1;
        }
        Ok(())
    }

    /// Inverse DCT of `coef` and store the pixels inside component `ci`'s
    /// plane at (`x0`, `y0`); pixels past the plane's edge are dropped.
    #[inline]
    fn put_block(&self, coef: &[i32; 64], ci: usize, x0: usize, y0: usize, dst: &mut [u8]) {
        let c = &self.comps[ci];
        if x0 >= c.width || y0 >= c.height {
            return;
        }
        let t = &self.idct;
        // Rows: tmp[v][x] = sum_u T[x][u] F[v][u]; all-zero rows skipped.
        let mut tmp = [[0f32; 8]; 8];
        let mut rows = 0;
        for v in 0..8 {
            let f = &coef[v * 8..v * 8 + 8];
            if f.iter().all(|&a| a == 0) {
                continue;
            }
            rows = v + 1;
            for (x, out) in tmp[v].iter_mut().enumerate() {
                let tx = &t[x];
                *out = (0..8).map(|u| tx[u] * f[u] as f32).sum();
            }
        }
        let (w, h) = ((c.width - x0).min(8), (c.height - y0).min(8));
        for (y, ty) in t.iter().enumerate().take(h) {
            let row_start = c.offset + (y0 + y) * c.width + x0;
            let Some(row) = dst.get_mut(row_start..row_start + w) else {
                return;
            };
            for (x, px) in row.iter_mut().enumerate() {
                let s: f32 = ty[..rows]
                    .iter()
                    .zip(&tmp[..rows])
                    .map(|(a, r)| a * r[x])
                    .sum();
                *px = (s + 128.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// The first marker (`FF` then neither `00` nor `FF`) at or after `pos`,
/// skipping entropy-coded bytes.
fn next_marker(data: &[u8], mut pos: usize) -> Result<usize> {
    while pos + 1 < data.len() {
        if data[pos] == 0xFF && data[pos + 1] != 0 && data[pos + 1] != 0xFF {
            return Ok(pos);
        }
        pos += 1;
    }
    // No marker before the end: the image ends here (EOI missing).
    Ok(data.len())
}

#[cfg(test)]
mod tests;
