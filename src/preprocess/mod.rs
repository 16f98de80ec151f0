//! CPU preprocessing: one raw frame in any [`PixelFormat`] -> the detector's
//! input tensor, letterboxed exactly like Ultralytics' `LetterBox(auto=False,
//! center=True, scaleup=True)` followed by `/255`, RGB, NCHW float32.
//!
//! Geometry (Ultralytics): `r = min(dst_h / h, dst_w / w)`, the image is
//! resized to `(round(w r), round(h r))` (Python rounding, half to even) with
//! `cv2.INTER_LINEAR` (half-pixel centres, edge pixels clamped; skipped when
//! the size is unchanged), then padded with grey 114 on all channels:
//! `top = round(dh - 0.1)`, `left = round(dw - 0.1)` with `dh, dw` half the
//! leftover rows and columns.
//!
//! Colour: YUV formats are converted to RGB with BT.601 limited range
//! (Y 16..235, Cb/Cr 16..240; the V4L2 default for these formats), using
//! OpenCV's fixed-point formula of `cv2.COLOR_YUV2RGB_YUYV` / `_UYVY` /
//! `_NV12` / `_I420` bit for bit (chroma shared by each 2x1 or 2x2 block, no
//! chroma interpolation). I422 and I444 (Y4M replays) use the same formula
//! so a YUYV camera and its I422 recording give identical tensors. GREY is
//! copied to all three channels as full-range grey (`cv2.COLOR_GRAY2RGB`).
//! Converted pixels are rounded to 8 bits (like `cvtColor`) before the
//! resize; the resize itself is computed in float (OpenCV's 8-bit resize
//! rounds again, so the two agree within 1/255).
//!
//! Boot: [`Letterbox::new`] computes the geometry and the per-column and
//! per-row source indexes and weights, and allocates a small row cache.
//! Frame path: [`Letterbox::run`] never allocates. It works row by row:
//! each needed source row is converted to RGB once and resized horizontally
//! into one of two cached rows, and each output row blends two cached rows.
//! Called by whichever thread preprocesses (the inference thread); the row
//! cache sits behind a mutex, so concurrent calls on one `Letterbox`
//! serialise.
//!
//! Undistortion (`remap`): with a [`RemapTable`] installed at boot
//! ([`Letterbox::set_remap`]), `run` samples the undistorted (rectified)
//! image into the same letterbox geometry instead.
//!
//! Other families ([`InputStyle`], `model.preprocess`): Ultralytics'
//! RT-DETR stretches the frame over the whole input (`LetterBox(scale_fill=
//! True)`: no padding, one ratio per axis); YOLOX and Autoware's
//! `tensorrt_yolox` letterbox into the top-left corner with truncated sizes
//! (`int(w r)`), keep OpenCV's BGR order and feed 0..255 unscaled. The
//! resize, colour conversion and padding grey are the same in every style.

use crate::frame::{FrameDesc, PixelFormat};
use std::sync::Mutex;
use thiserror::Error;

mod remap;
pub use remap::{RemapTable, REMAP_BYTES_PER_PIXEL};

/// The border value, as Ultralytics and YOLOX pad (before `/255`).
pub const PAD_VALUE: u8 = 114;

/// How a detector family wants its input tensor (`model.preprocess`;
/// by default from the decoder, [`InputStyle::for_decoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputStyle {
    /// Ultralytics YOLO: centred letterbox, sizes rounded, RGB, `/255`.
    Letterbox,
    /// Ultralytics RT-DETR: stretched over the whole input, RGB, `/255`.
    Stretch,
    /// YOLOX / Autoware `tensorrt_yolox`: top-left letterbox, sizes
    /// truncated, BGR, 0..255.
    YoloX,
}

impl InputStyle {
    /// What the family's own predictor does.
    pub fn for_decoder(kind: crate::postprocess::DecoderKind) -> InputStyle {
        use crate::postprocess::DecoderKind as K;
        match kind {
            K::YoloV8 | K::YoloV5 | K::End2End => InputStyle::Letterbox,
            K::YoloX | K::YoloXDecoded => InputStyle::YoloX,
            K::RtDetr => InputStyle::Stretch,
        }
    }

    /// What a pixel value is divided by.
    fn divisor(self) -> f32 {
        match self {
            InputStyle::Letterbox | InputStyle::Stretch => 255.0,
            InputStyle::YoloX => 1.0,
        }
    }

    /// One line for logs and `perceptd check`.
    pub fn describe(self) -> &'static str {
        match self {
            InputStyle::Letterbox => "letterbox (centred, grey 114), RGB, /255",
            InputStyle::Stretch => "stretched to the input (no padding), RGB, /255",
            InputStyle::YoloX => "letterbox (top-left, grey 114), BGR, 0..255",
        }
    }
}

/// The pixel normalisation of one [`InputStyle`], applied where the
/// planes are written. Never allocates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pixels {
    /// Divisor: 255 or 1 (a division, so that `/255` is bit for bit what
    /// Ultralytics computes).
    pub(crate) div: f32,
    /// Planes in B, G, R order.
    pub(crate) bgr: bool,
}

impl Pixels {
    fn of(style: InputStyle) -> Pixels {
        Pixels {
            div: style.divisor(),
            bgr: style == InputStyle::YoloX,
        }
    }

    /// The padding grey, normalised.
    pub(crate) fn pad(self) -> f32 {
        PAD_VALUE as f32 / self.div
    }

    /// `dst`'s three planes in R, G, B order (whatever order they have in
    /// the tensor).
    pub(crate) fn planes(self, dst: &mut [f32]) -> [&mut [f32]; 3] {
        let plane = dst.len() / 3;
        let (first, rest) = dst.split_at_mut(plane);
        let (g, last) = rest.split_at_mut(plane);
        if self.bgr {
            [last, g, first]
        } else {
            [first, g, last]
        }
    }
}

/// Largest source or destination side accepted.
pub const MAX_DIM: usize = 16384;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PreprocessError {
    /// Boot: impossible geometry, one line naming the values.
    #[error("{0}")]
    Config(String),
    #[error("source buffer is {got} bytes but a {format} {width}x{height} frame is {want}")]
    SourceLen {
        got: usize,
        want: usize,
        format: &'static str,
        width: usize,
        height: usize,
    },
    #[error("destination holds {got} floats but 3x{height}x{width} needs {want}")]
    DestLen {
        got: usize,
        want: usize,
        width: usize,
        height: usize,
    },
}

/// How letterboxed coordinates relate to source pixels:
/// `source = (letterboxed - pad) / scale`, clipped to the source image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxInfo {
    /// The resize ratio per axis (Ultralytics' `gain`; the two differ only
    /// for [`InputStyle::Stretch`]).
    pub scale_x: f32,
    pub scale_y: f32,
    /// Columns of padding left of the image.
    pub pad_x: f32,
    /// Rows of padding above the image.
    pub pad_y: f32,
    /// Source image size in pixels.
    pub src_w: f32,
    pub src_h: f32,
}

impl LetterboxInfo {
    /// The model input is the source image itself.
    pub fn identity(src_w: usize, src_h: usize) -> LetterboxInfo {
        LetterboxInfo {
            scale_x: 1.0,
            scale_y: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
            src_w: src_w as f32,
            src_h: src_h as f32,
        }
    }

    /// Model-input point to source pixels, clipped to the image
    /// (Ultralytics `scale_boxes`). Frame path: never allocates.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        // max/min rather than clamp: clamp panics on a NaN bound.
        let sx = ((x - self.pad_x) / self.scale_x).max(0.0).min(self.src_w);
        let sy = ((y - self.pad_y) / self.scale_y).max(0.0).min(self.src_h);
        (sx, sy)
    }
}

/// One output column's (or row's) two source taps: `s0 + w (s1 - s0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tap {
    pub(crate) i0: u32,
    pub(crate) i1: u32,
    pub(crate) w: f32,
}

/// cv2.INTER_LINEAR's source positions for resizing `src` to `dst` samples:
/// `f = (d + 0.5) * src/dst - 0.5` in float, clamped at both edges. The
/// CUDA preprocessing kernel uses the same taps. Boot only (allocates).
pub(crate) fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut w = f - s as f32;
            if s < 0 {
                s = 0;
                w = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                w = 0.0;
            }
            let i1 = (s + 1).min(src as i64 - 1);
            Tap {
                i0: s as u32,
                i1: i1 as u32,
                w,
            }
        })
        .collect()
}

/// Python 3 `round()` on a float: half to even.
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

struct Scratch {
    /// One source row as packed RGB (unused for RGB24 input).
    rgb: Vec<u8>,
    /// Two horizontally resized rows, each planar R, G, B of `new_w`.
    rows: Vec<f32>,
    /// Source row held by each cached row (`usize::MAX`: none).
    tags: [usize; 2],
}

/// Letterbox + colour conversion + normalisation for one source geometry,
/// one network input size and one [`InputStyle`]. See the module doc.
pub struct Letterbox {
    src: FrameDesc,
    style: InputStyle,
    pixels: Pixels,
    /// `v / div` for every byte, exactly as a float division gives it.
    unit: [f32; 256],
    dst_w: usize,
    dst_h: usize,
    new_w: usize,
    new_h: usize,
    top: usize,
    left: usize,
    info: LetterboxInfo,
    /// Per output column: byte offsets of the two RGB source pixels.
    xs: Vec<Tap>,
    /// Per output row: the two source rows.
    ys: Vec<Tap>,
    /// Neither axis is resized: rows go straight from RGB to the output.
    identity: bool,
    scratch: Mutex<Scratch>,
    /// Undistortion (see `remap`): when set, `run` samples through it.
    remap: Option<remap::Remap>,
}

impl Letterbox {
    /// Geometry and tables for letterboxing `src` frames into a
    /// `dst_w` x `dst_h` network input, Ultralytics' way. Boot: allocates.
    pub fn new(src: FrameDesc, dst_w: usize, dst_h: usize) -> Result<Self, PreprocessError> {
        Self::with_style(src, dst_w, dst_h, InputStyle::Letterbox)
    }

    /// [`new`](Self::new) in `style`. Boot: allocates.
    pub fn with_style(
        src: FrameDesc,
        dst_w: usize,
        dst_h: usize,
        style: InputStyle,
    ) -> Result<Self, PreprocessError> {
        let (w, h) = (src.width, src.height);
        for (what, v) in [
            ("source width", w),
            ("source height", h),
            ("input width", dst_w),
            ("input height", dst_h),
        ] {
            if v == 0 || v > MAX_DIM {
                return Err(PreprocessError::Config(format!(
                    "letterbox: {what} is {v}, expected 1..={MAX_DIM}"
                )));
            }
        }
        let r = (dst_h as f64 / h as f64).min(dst_w as f64 / w as f64);
        let (new_w, new_h) = match style {
            InputStyle::Letterbox => (py_round(w as f64 * r), py_round(h as f64 * r)),
            // YOLOX `preproc`: `int(img.shape[1] * r)`.
            InputStyle::YoloX => ((w as f64 * r) as i64, (h as f64 * r) as i64),
            InputStyle::Stretch => (dst_w as i64, dst_h as i64),
        };
        let new_w = new_w.clamp(0, dst_w as i64) as usize;
        let new_h = new_h.clamp(0, dst_h as i64) as usize;
        if new_w == 0 || new_h == 0 {
            return Err(PreprocessError::Config(format!(
                "letterbox: a {w}x{h} frame scaled into {dst_w}x{dst_h} would be {new_w}x{new_h} pixels"
            )));
        }
        let dw = (dst_w - new_w) as f64 / 2.0;
        let dh = (dst_h - new_h) as f64 / 2.0;
        let (top, left) = match style {
            InputStyle::Letterbox => (
                py_round(dh - 0.1).max(0) as usize,
                py_round(dw - 0.1).max(0) as usize,
            ),
            InputStyle::Stretch | InputStyle::YoloX => (0, 0),
        };
        // The ratio that maps source to input pixels: the letterbox's `r`,
        // or per axis for a stretch.
        let (scale_x, scale_y) = match style {
            InputStyle::Stretch => (new_w as f64 / w as f64, new_h as f64 / h as f64),
            InputStyle::Letterbox | InputStyle::YoloX => (r, r),
        };
        let pixels = Pixels::of(style);
        let mut unit = [0.0f32; 256];
        for (i, u) in unit.iter_mut().enumerate() {
            *u = i as f32 / pixels.div;
        }
        let xs = taps(w, new_w)
            .into_iter()
            .map(|t| Tap {
                i0: t.i0 * 3,
                i1: t.i1 * 3,
                w: t.w,
            })
            .collect();
        let ys = taps(h, new_h);
        let identity = new_w == w && new_h == h;
        Ok(Letterbox {
            src,
            style,
            pixels,
            unit,
            dst_w,
            dst_h,
            new_w,
            new_h,
            top,
            left,
            info: LetterboxInfo {
                scale_x: scale_x as f32,
                scale_y: scale_y as f32,
                pad_x: left as f32,
                pad_y: top as f32,
                src_w: src.width as f32,
                src_h: src.height as f32,
            },
            xs,
            ys,
            identity,
            scratch: Mutex::new(Scratch {
                rgb: vec![0; w * 3],
                rows: vec![0.0; 2 * 3 * new_w],
                tags: [usize::MAX; 2],
            }),
            remap: None,
        })
    }

    pub fn info(&self) -> LetterboxInfo {
        self.info
    }

    pub fn style(&self) -> InputStyle {
        self.style
    }

    /// The style's normalisation (the CUDA kernel's parameters).
    pub(crate) fn pixels(&self) -> Pixels {
        self.pixels
    }

    /// Undistort from now on: `run` samples the source through `table`
    /// (built for this letterbox by [`RemapTable::build`]) instead of the
    /// plain resize. Boot: allocates one RGB frame of scratch.
    pub fn set_remap(&mut self, table: RemapTable) -> Result<(), PreprocessError> {
        if (table.dst_w, table.dst_h) != (self.dst_w, self.dst_h)
            || table.map.len() != self.dst_w * self.dst_h
        {
            return Err(PreprocessError::Config(format!(
                "remap table is {}x{} ({} entries) but the model input is {}x{}",
                table.dst_w,
                table.dst_h,
                table.map.len(),
                self.dst_w,
                self.dst_h
            )));
        }
        self.remap = Some(remap::Remap::new(self.src, table));
        Ok(())
    }

    /// The installed undistortion table, if any (the CUDA backend uploads
    /// the same table).
    pub fn remap(&self) -> Option<&RemapTable> {
        self.remap.as_ref().map(|r| &r.table)
    }

    /// The source frame this letterbox expects.
    pub fn src(&self) -> FrameDesc {
        self.src
    }

    /// The resized image's size inside the input, `(new_w, new_h)`.
    /// The model input's `(width, height)`.
    pub fn dst_size(&self) -> (usize, usize) {
        (self.dst_w, self.dst_h)
    }

    pub fn resized(&self) -> (usize, usize) {
        (self.new_w, self.new_h)
    }

    /// Floats `run` writes: 3 x dst_h x dst_w.
    pub fn dst_len(&self) -> usize {
        3 * self.dst_w * self.dst_h
    }

    /// Map a point in network-input pixels back to source pixels
    /// (Ultralytics `scale_boxes` without the clipping). Never allocates.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let i = self.info;
        ((x - i.pad_x) / i.scale_x, (y - i.pad_y) / i.scale_y)
    }

    /// Convert, letterbox and normalise one frame into `dst` (NCHW, in the
    /// style's channel order and scale). `src` must hold at least one frame; `dst` exactly
    /// [`Self::dst_len`] floats. Frame path: never allocates.
    pub fn run(&self, src: &[u8], dst: &mut [f32]) -> Result<(), PreprocessError> {
        let want = self.src.bytes();
        if src.len() < want {
            return Err(PreprocessError::SourceLen {
                got: src.len(),
                want,
                format: self.src.format.name(),
                width: self.src.width,
                height: self.src.height,
            });
        }
        if dst.len() != self.dst_len() {
            return Err(PreprocessError::DestLen {
                got: dst.len(),
                want: self.dst_len(),
                width: self.dst_w,
                height: self.dst_h,
            });
        }
        if let Some(r) = &self.remap {
            r.run(self.src, self.pixels, src, dst);
            return Ok(());
        }
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        s.tags = [usize::MAX; 2];
        self.fill_padding(dst);

        let [r_plane, g_plane, b_plane] = self.pixels.planes(dst);
        let div = self.pixels.div;
        let nw = self.new_w;
        for (oy, ty) in self.ys.iter().enumerate() {
            let at = (self.top + oy) * self.dst_w + self.left;
            let out = [
                &mut r_plane[at..at + nw],
                &mut g_plane[at..at + nw],
                &mut b_plane[at..at + nw],
            ];
            if self.identity {
                let rgb = rgb_row(self.src, src, ty.i0 as usize, &mut s.rgb);
                let [r, g, b] = out;
                for (((px, r), g), b) in rgb
                    .chunks_exact(3)
                    .zip(r.iter_mut())
                    .zip(g.iter_mut())
                    .zip(b.iter_mut())
                {
                    *r = self.unit[px[0] as usize];
                    *g = self.unit[px[1] as usize];
                    *b = self.unit[px[2] as usize];
                }
                continue;
            }
            let (y0, y1) = (ty.i0 as usize, ty.i1 as usize);
            let blend = ty.w != 0.0 && y0 != y1;
            let i0 = self.cached_row(s, src, y0, if blend { y1 } else { usize::MAX });
            let i1 = if blend {
                self.cached_row(s, src, y1, y0)
            } else {
                i0
            };
            let (first, second) = s.rows.split_at(3 * nw);
            let row = |i: usize| if i == 0 { first } else { second };
            let (a, b) = (row(i0), row(i1));
            for (c, out) in out.into_iter().enumerate() {
                let a = &a[c * nw..(c + 1) * nw];
                if blend {
                    let b = &b[c * nw..(c + 1) * nw];
                    let wy = ty.w;
                    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                        *o = (a + wy * (b - a)) / div;
                    }
                } else {
                    for (o, &a) in out.iter_mut().zip(a) {
                        *o = a / div;
                    }
                }
            }
        }
        Ok(())
    }

    /// Index of the cached row holding source row `sy`, horizontally
    /// resized; converts it into the slot not holding `keep` if needed.
    fn cached_row(&self, s: &mut Scratch, src: &[u8], sy: usize, keep: usize) -> usize {
        if let Some(i) = s.tags.iter().position(|&t| t == sy) {
            return i;
        }
        let slot = if s.tags[0] == keep { 1 } else { 0 };
        let nw = self.new_w;
        let rgb = rgb_row(self.src, src, sy, &mut s.rgb);
        let out = &mut s.rows[slot * 3 * nw..(slot + 1) * 3 * nw];
        let (r, rest) = out.split_at_mut(nw);
        let (g, b) = rest.split_at_mut(nw);
        for (((t, r), g), b) in self.xs.iter().zip(r).zip(g).zip(b) {
            let (p, q) = (t.i0 as usize, t.i1 as usize);
            let (p0, p1, p2) = (rgb[p] as f32, rgb[p + 1] as f32, rgb[p + 2] as f32);
            let (q0, q1, q2) = (rgb[q] as f32, rgb[q + 1] as f32, rgb[q + 2] as f32);
            *r = p0 + t.w * (q0 - p0);
            *g = p1 + t.w * (q1 - p1);
            *b = p2 + t.w * (q2 - p2);
        }
        s.tags[slot] = sy;
        slot
    }

    fn fill_padding(&self, dst: &mut [f32]) {
        let plane = self.dst_w * self.dst_h;
        let bottom = self.top + self.new_h;
        let right = self.left + self.new_w;
        let pad = self.pixels.pad();
        for p in dst.chunks_exact_mut(plane) {
            p[..self.top * self.dst_w].fill(pad);
            p[bottom * self.dst_w..].fill(pad);
            if self.left > 0 || right < self.dst_w {
                for row in
                    p[self.top * self.dst_w..bottom * self.dst_w].chunks_exact_mut(self.dst_w)
                {
                    row[..self.left].fill(pad);
                    row[right..].fill(pad);
                }
            }
        }
    }
}

// OpenCV's BT.601 limited-range YUV -> RGB constants (color_yuv.simd.hpp):
// round(coefficient * 2^20).
const CY: i32 = 1_220_542; // 1.164
const CUB: i32 = 2_116_026; // 2.018
const CUG: i32 = -409_993; // -0.391
const CVG: i32 = -852_492; // -0.813
const CVR: i32 = 1_673_527; // 1.596
const SHIFT: u32 = 20;

/// `clamp(i - 1024, 0, 255)`: a branch-free clamp of the converted
/// values, whose range (-260..=540 after the shift) lies well inside.
static CLAMP: [u8; 2048] = {
    let mut t = [0u8; 2048];
    let mut i = 0;
    while i < 2048 {
        t[i] = if i < 1024 {
            0
        } else if i > 1024 + 255 {
            255
        } else {
            (i - 1024) as u8
        };
        i += 1;
    }
    t
};

/// `max(y - 16, 0) * CY` for every luma value.
static LUMA: [i32; 256] = {
    let mut t = [0i32; 256];
    let mut i = 16;
    while i < 256 {
        t[i] = (i as i32 - 16) * CY;
        i += 1;
    }
    t
};

#[inline(always)]
fn clamp_u8(v: i32) -> u8 {
    CLAMP[((v >> SHIFT) + 1024) as usize & 2047]
}

/// Chroma terms of one (U, V) sample, rounding offset included.
#[inline(always)]
fn chroma(u: u8, v: u8) -> (i32, i32, i32) {
    let (u, v) = (u as i32 - 128, v as i32 - 128);
    let half = 1 << (SHIFT - 1);
    (half + CVR * v, half + CVG * v + CUG * u, half + CUB * u)
}

#[inline(always)]
fn yuv_px(y: u8, (ruv, guv, buv): (i32, i32, i32)) -> [u8; 3] {
    let y = LUMA[y as usize];
    [clamp_u8(y + ruv), clamp_u8(y + guv), clamp_u8(y + buv)]
}

/// Convert a row of `w` pixels given as 2-pixel groups sharing one chroma
/// sample: `group(p)` is `(y0, y1, u, v)` of pixels 2p and 2p+1 (`y1` is
/// ignored for the last pixel of an odd row). Never allocates.
#[inline(always)]
fn convert_groups(buf: &mut [u8], w: usize, group: impl Fn(usize) -> (u8, u8, u8, u8)) {
    let full = w / 2;
    let (pairs, tail) = buf[..w * 3].split_at_mut(full * 6);
    for (p, o) in pairs.chunks_exact_mut(6).enumerate() {
        let (y0, y1, u, v) = group(p);
        let c = chroma(u, v);
        let ([r0, g0, b0], [r1, g1, b1]) = (yuv_px(y0, c), yuv_px(y1, c));
        if let [o0, o1, o2, o3, o4, o5] = o {
            (*o0, *o1, *o2, *o3, *o4, *o5) = (r0, g0, b0, r1, g1, b1);
        }
    }
    if let [o0, o1, o2] = tail {
        let (y0, _, u, v) = group(full);
        [*o0, *o1, *o2] = yuv_px(y0, chroma(u, v));
    }
}

/// Source row `sy` of `frame` as packed RGB: a slice of the frame itself
/// for RGB24, else converted into `buf` (3 x width bytes).
/// Never allocates.
pub(crate) fn rgb_row<'a>(
    desc: FrameDesc,
    frame: &'a [u8],
    sy: usize,
    buf: &'a mut [u8],
) -> &'a [u8] {
    let (w, h) = (desc.width, desc.height);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match desc.format {
        PixelFormat::Rgb24 => return &frame[sy * w * 3..(sy + 1) * w * 3],
        PixelFormat::Grey => {
            for (o, &g) in buf.chunks_exact_mut(3).zip(&frame[sy * w..(sy + 1) * w]) {
                o.fill(g);
            }
        }
        PixelFormat::Yuyv => {
            let row = &frame[sy * cw * 4..(sy + 1) * cw * 4];
            convert_groups(buf, w, |p| {
                (row[4 * p], row[4 * p + 2], row[4 * p + 1], row[4 * p + 3])
            });
        }
        PixelFormat::Uyvy => {
            let row = &frame[sy * cw * 4..(sy + 1) * cw * 4];
            convert_groups(buf, w, |p| {
                (row[4 * p + 1], row[4 * p + 3], row[4 * p], row[4 * p + 2])
            });
        }
        PixelFormat::Nv12 => {
            // Pad the luma slice to an even length so `y[2p + 1]` exists;
            // the extra byte (start of the next row or of the chroma
            // plane) is ignored by `convert_groups`.
            let y = &frame[sy * w..sy * w + cw * 2];
            let uv_at = w * h + (sy / 2) * cw * 2;
            let uv = &frame[uv_at..uv_at + cw * 2];
            convert_groups(buf, w, |p| {
                (y[2 * p], y[2 * p + 1], uv[2 * p], uv[2 * p + 1])
            });
        }
        PixelFormat::I420 | PixelFormat::I422 => {
            let crow = if desc.format == PixelFormat::I420 {
                sy / 2
            } else {
                sy
            };
            let crows = if desc.format == PixelFormat::I420 {
                ch
            } else {
                h
            };
            let y = &frame[sy * w..sy * w + cw * 2];
            let u_at = w * h + crow * cw;
            let v_at = w * h + crows * cw + crow * cw;
            let (u, v) = (&frame[u_at..u_at + cw], &frame[v_at..v_at + cw]);
            convert_groups(buf, w, |p| (y[2 * p], y[2 * p + 1], u[p], v[p]));
        }
        PixelFormat::I444 => {
            let y = &frame[sy * w..(sy + 1) * w];
            let u = &frame[w * h + sy * w..w * h + (sy + 1) * w];
            let v = &frame[2 * w * h + sy * w..2 * w * h + (sy + 1) * w];
            for (((&y, &u), &v), o) in y.iter().zip(u).zip(v).zip(buf.chunks_exact_mut(3)) {
                if let [r, g, b] = o {
                    [*r, *g, *b] = yuv_px(y, chroma(u, v));
                }
            }
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn letterbox(format: PixelFormat, w: usize, h: usize, dw: usize, dh: usize) -> Letterbox {
        Letterbox::new(
            FrameDesc {
                format,
                width: w,
                height: h,
            },
            dw,
            dh,
        )
        .unwrap()
    }

    fn parse_format(name: &str) -> PixelFormat {
        [
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::Nv12,
            PixelFormat::Grey,
            PixelFormat::Rgb24,
            PixelFormat::I420,
            PixelFormat::I422,
            PixelFormat::I444,
        ]
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("unknown format {name}"))
    }

    /// Against OpenCV + Ultralytics' LetterBox, Ultralytics' RT-DETR
    /// stretch and YOLOX's `preproc` (scripts/make_preprocess_fixtures.py).
    #[test]
    fn matches_each_familys_preprocessing_from_opencv() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
        let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
        let mut n = 0;
        for line in cases
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f[i].parse::<usize>().unwrap();
            let (name, format, w, h, dw, dh) =
                (f[0], parse_format(f[1]), num(2), num(3), num(4), num(5));
            let style = match f[6] {
                "letterbox" => InputStyle::Letterbox,
                "stretch" => InputStyle::Stretch,
                "yolox" => InputStyle::YoloX,
                s => panic!("{name}: style {s}"),
            };
            let input = std::fs::read(dir.join(format!("{name}.in"))).unwrap();
            let want = std::fs::read(dir.join(format!("{name}.out"))).unwrap();
            assert_eq!(want.len(), dh * dw * 3, "{name}");
            let desc = FrameDesc {
                format,
                width: w,
                height: h,
            };
            let lb = Letterbox::with_style(desc, dw, dh, style).unwrap();
            let mut out = vec![f32::NAN; lb.dst_len()];
            lb.run(&input, &mut out).unwrap();
            let plane = dw * dh;
            let mut worst = 0.0f32;
            for (i, &e) in want.iter().enumerate() {
                // `.out` is HWC in the network's channel order.
                let (px, c) = (i / 3, i % 3);
                let got = out[c * plane + px] * lb.pixels().div;
                worst = worst.max((got - e as f32).abs());
            }
            // No resize: OpenCV's 8-bit conversion is reproduced exactly.
            let limit = if lb.resized() == (w, h) { 0.0 } else { 1.0 };
            assert!(worst <= limit + 1e-3, "{name}: max error {worst}/255");
            n += 1;
        }
        assert!(n >= 20, "only {n} fixture cases");
    }

    /// A frame of one colour given as (Y, U, V), or (R, G, B) for RGB24 and
    /// (grey, -, -) for GREY.
    fn flat_frame(format: PixelFormat, w: usize, h: usize, (a, b, c): (u8, u8, u8)) -> Vec<u8> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut v = Vec::new();
        match format {
            PixelFormat::Rgb24 => (0..w * h).for_each(|_| v.extend([a, b, c])),
            PixelFormat::Grey => v.resize(w * h, a),
            PixelFormat::Yuyv => (0..cw * h).for_each(|_| v.extend([a, b, a, c])),
            PixelFormat::Uyvy => (0..cw * h).for_each(|_| v.extend([b, a, c, a])),
            PixelFormat::Nv12 => {
                v.resize(w * h, a);
                (0..cw * ch).for_each(|_| v.extend([b, c]));
            }
            PixelFormat::I420 | PixelFormat::I422 | PixelFormat::I444 => {
                let n = match format {
                    PixelFormat::I420 => cw * ch,
                    PixelFormat::I422 => cw * h,
                    _ => w * h,
                };
                v.resize(w * h, a);
                v.resize(w * h + n, b);
                v.resize(w * h + 2 * n, c);
            }
        }
        assert_eq!(v.len(), format.frame_bytes(w, h));
        v
    }

    /// BT.601 limited range in floating point (the textbook formula, not
    /// OpenCV's fixed point).
    fn bt601(y: u8, u: u8, v: u8) -> [f32; 3] {
        let (y, u, v) = (
            1.164 * (y.max(16) as f32 - 16.0),
            u as f32 - 128.0,
            v as f32 - 128.0,
        );
        [y + 1.596 * v, y - 0.813 * v - 0.391 * u, y + 2.018 * u].map(|x| x.clamp(0.0, 255.0))
    }

    fn check_flat(lb: &Letterbox, out: &[f32], rgb: [f32; 3], tol: f32, what: &str) {
        let (dw, dh) = (lb.dst_w, lb.dst_h);
        let (nw, nh) = lb.resized();
        let (left, top) = (lb.info().pad_x as usize, lb.info().pad_y as usize);
        for c in 0..3 {
            for y in 0..dh {
                for x in 0..dw {
                    let got = out[c * dw * dh + y * dw + x];
                    let inside = (left..left + nw).contains(&x) && (top..top + nh).contains(&y);
                    if inside {
                        assert!(
                            (got * 255.0 - rgb[c]).abs() <= tol,
                            "{what}: ({x},{y}) c{c}: {} vs {}",
                            got * 255.0,
                            rgb[c]
                        );
                    } else {
                        assert_eq!(got, 114.0 / 255.0, "{what}: padding ({x},{y}) c{c}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_format_converts_a_flat_colour_at_odd_sizes() {
        let yuv_colours = [
            (81, 90, 240),
            (16, 128, 128),
            (235, 128, 128),
            (145, 54, 34),
            (41, 240, 110),
            (0, 0, 255),
            (255, 255, 0),
        ];
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::Nv12,
            PixelFormat::I420,
            PixelFormat::I422,
            PixelFormat::I444,
        ] {
            for (w, h, dw, dh) in [
                (7, 5, 16, 16),
                (33, 17, 20, 12),
                (1, 1, 4, 4),
                (5, 9, 5, 9),
                (3, 2, 31, 17),
            ] {
                let lb = letterbox(format, w, h, dw, dh);
                for &(y, u, v) in &yuv_colours {
                    let frame = flat_frame(format, w, h, (y, u, v));
                    let mut out = vec![f32::NAN; lb.dst_len()];
                    lb.run(&frame, &mut out).unwrap();
                    let what = format!("{format:?} {w}x{h}->{dw}x{dh} yuv {y},{u},{v}");
                    check_flat(&lb, &out, bt601(y, u, v), 1.0, &what);
                }
            }
        }
        for (w, h, dw, dh) in [(7, 5, 16, 16), (33, 17, 20, 12), (1, 1, 4, 4)] {
            let lb = letterbox(PixelFormat::Rgb24, w, h, dw, dh);
            let mut out = vec![f32::NAN; lb.dst_len()];
            lb.run(
                &flat_frame(PixelFormat::Rgb24, w, h, (200, 7, 99)),
                &mut out,
            )
            .unwrap();
            check_flat(&lb, &out, [200.0, 7.0, 99.0], 0.0, "RGB24");
            let lb = letterbox(PixelFormat::Grey, w, h, dw, dh);
            lb.run(&flat_frame(PixelFormat::Grey, w, h, (77, 0, 0)), &mut out)
                .unwrap();
            check_flat(&lb, &out, [77.0; 3], 0.0, "GREY");
        }
    }

    #[test]
    fn geometry_matches_ultralytics() {
        // (src w, h, dst w, h) -> (new w, h, left, top)
        for ((w, h, dw, dh), want) in [
            ((640, 480, 640, 640), (640, 480, 0, 80)),
            ((1280, 720, 640, 640), (640, 360, 0, 140)),
            ((1920, 1080, 640, 384), (640, 360, 0, 12)),
            ((37, 23, 64, 64), (64, 40, 0, 12)),
            ((50, 30, 32, 48), (32, 19, 0, 14)),
            ((21, 33, 40, 40), (25, 40, 7, 0)),
            ((31, 7, 33, 35), (33, 7, 0, 14)),
        ] {
            let lb = letterbox(PixelFormat::Yuyv, w, h, dw, dh);
            let (nw, nh) = lb.resized();
            let i = lb.info();
            assert_eq!(
                (nw, nh, i.pad_x as usize, i.pad_y as usize),
                want,
                "{w}x{h}->{dw}x{dh}"
            );
            let r = (dh as f64 / h as f64).min(dw as f64 / w as f64) as f32;
            assert_eq!((i.scale_x, i.scale_y), (r, r));
        }
        let lb = letterbox(PixelFormat::Yuyv, 1280, 720, 640, 640);
        assert_eq!(lb.to_source(0.0, 140.0), (0.0, 0.0));
        assert_eq!(lb.to_source(640.0, 500.0), (1280.0, 720.0));
        assert_eq!(lb.to_source(320.0, 320.0), (640.0, 360.0));
    }

    /// RT-DETR's stretch and YOLOX's top-left letterbox: sizes, padding,
    /// ratios and the way back to source pixels (what the decoders use).
    #[test]
    fn other_styles_geometry_and_way_back() {
        let d = FrameDesc {
            format: PixelFormat::Yuyv,
            width: 1280,
            height: 720,
        };
        let st = Letterbox::with_style(d, 640, 640, InputStyle::Stretch).unwrap();
        let i = st.info();
        assert_eq!(st.resized(), (640, 640));
        assert_eq!((i.pad_x, i.pad_y, i.scale_x), (0.0, 0.0, 0.5));
        assert_eq!(i.scale_y, 640.0 / 720.0);
        assert_eq!(st.to_source(640.0, 640.0), (1280.0, 720.0));
        assert_eq!(i.to_source(320.0, 320.0), (640.0, 360.0));
        let yx = Letterbox::with_style(d, 640, 640, InputStyle::YoloX).unwrap();
        let i = yx.info();
        assert_eq!(yx.resized(), (640, 360));
        assert_eq!(
            (i.pad_x, i.pad_y, i.scale_x, i.scale_y),
            (0.0, 0.0, 0.5, 0.5)
        );
        assert_eq!(yx.to_source(640.0, 360.0), (1280.0, 720.0));
        // int() where Ultralytics rounds: 30 * 0.66 = 19.8 -> 19 rows.
        let odd = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 50,
            height: 30,
        };
        let yx = Letterbox::with_style(odd, 33, 35, InputStyle::YoloX).unwrap();
        assert_eq!(yx.resized(), (33, 19));
        assert_eq!(Letterbox::new(odd, 33, 35).unwrap().resized(), (33, 20));
        // Padding: grey 114 unscaled, in every plane, below the image.
        let mut out = vec![f32::NAN; yx.dst_len()];
        yx.run(&vec![0; odd.bytes()], &mut out).unwrap();
        let plane = 33 * 35;
        for c in 0..3 {
            assert_eq!(out[c * plane + 19 * 33], 114.0);
            assert_eq!(out[c * plane + 18 * 33], 0.0);
        }
    }

    /// YOLOX's planes are B, G, R: a pure red frame lands in the last one.
    #[test]
    fn yolox_planes_are_bgr_unscaled() {
        let d = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 4,
            height: 4,
        };
        let red: Vec<u8> = (0..16).flat_map(|_| [200u8, 0, 0]).collect();
        let lb = Letterbox::with_style(d, 4, 4, InputStyle::YoloX).unwrap();
        let mut out = vec![f32::NAN; lb.dst_len()];
        lb.run(&red, &mut out).unwrap();
        assert!(out[..16].iter().all(|&v| v == 0.0), "B plane");
        assert!(out[16..32].iter().all(|&v| v == 0.0), "G plane");
        assert!(out[32..].iter().all(|&v| v == 200.0), "R plane");
        let lb = Letterbox::new(d, 4, 4).unwrap();
        lb.run(&red, &mut out).unwrap();
        assert!(
            out[..16].iter().all(|&v| v == 200.0 / 255.0),
            "R plane first"
        );
    }

    #[test]
    fn linear_taps_follow_opencv() {
        // Upscale 2 -> 4: half-pixel centres, clamped edges.
        let t = taps(2, 4);
        let w: Vec<f32> = t.iter().map(|t| t.w).collect();
        let i: Vec<(u32, u32)> = t.iter().map(|t| (t.i0, t.i1)).collect();
        assert_eq!(w, [0.0, 0.25, 0.75, 0.0]);
        assert_eq!(i, [(0, 1), (0, 1), (0, 1), (1, 1)]);
        // Identity.
        assert!(taps(5, 5)
            .iter()
            .enumerate()
            .all(|(d, t)| t.i0 as usize == d && t.w == 0.0));
        // Downscale 4 -> 2: averages pairs.
        let t = taps(4, 2);
        assert_eq!((t[0].i0, t[0].w, t[1].i0, t[1].w), (0, 0.5, 2, 0.5));
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        let d = |w, h| FrameDesc {
            format: PixelFormat::Yuyv,
            width: w,
            height: h,
        };
        for (src, dw, dh) in [
            (d(0, 10), 64, 64),
            (d(10, 0), 64, 64),
            (d(10, 10), 0, 64),
            (d(10, 10), 64, 20000),
        ] {
            let e = Letterbox::new(src, dw, dh).err().unwrap().to_string();
            assert!(e.contains("expected 1..="), "{e}");
        }
        let e = Letterbox::new(d(1, 16384), 1, 1).err().unwrap().to_string();
        assert!(e.contains("would be 0x1"), "{e}");

        let lb = letterbox(PixelFormat::Yuyv, 8, 4, 8, 8);
        let mut out = vec![0.0; lb.dst_len()];
        let e = lb.run(&[0; 63], &mut out).unwrap_err();
        assert_eq!(
            e,
            PreprocessError::SourceLen {
                got: 63,
                want: 64,
                format: "YUYV",
                width: 8,
                height: 4
            }
        );
        assert!(e.to_string().contains("63 bytes"), "{e}");
        let e = lb.run(&[0; 64], &mut out[1..]).unwrap_err();
        assert!(
            matches!(
                e,
                PreprocessError::DestLen {
                    got: 191,
                    want: 192,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn repeated_runs_do_not_reuse_stale_rows() {
        let lb = letterbox(PixelFormat::Grey, 9, 7, 20, 20);
        let mut a = vec![0.0; lb.dst_len()];
        let mut b = vec![0.0; lb.dst_len()];
        lb.run(&flat_frame(PixelFormat::Grey, 9, 7, (10, 0, 0)), &mut a)
            .unwrap();
        lb.run(&flat_frame(PixelFormat::Grey, 9, 7, (250, 0, 0)), &mut b)
            .unwrap();
        check_flat(&lb, &b, [250.0; 3], 0.0, "second frame");
    }
}
