//! Annotation drawing for the outputs that show pixels (annotated video,
//! the live page): a frame copy converted to packed RGB ([`Canvas`]), and
//! boxes, labels (class, score, range and bearing when the detection has a
//! ground position, track id when it has a track), and optionally the
//! ground grid and horizon from the calibration ([`Overlay`]) drawn into it.
//!
//! Runs on a viewer thread, on a copy of the slot's frame, never on the
//! slot. Allocation: [`Canvas::new`] and [`Overlay::new`] allocate (boot);
//! [`Canvas::load`] and [`annotate`] never allocate.
//!
//! Text uses the public-domain 8x8 bitmap font of the `font8x8` crate
//! (ASCII, and Latin-1 for the degree sign).

use super::Image;
use crate::calibration::Calibration;
use crate::frame::{Detection, FrameDesc, PixelFormat};
use crate::postprocess::Labels;
use crate::text::SliceWriter;
use nalgebra::Vector3;
use std::fmt::Write as _;

/// Box colours, by class id (repeating).
pub(crate) const PALETTE: [[u8; 3]; 6] = [
    [255, 56, 56],
    [56, 255, 56],
    [255, 200, 0],
    [0, 200, 255],
    [255, 0, 255],
    [255, 128, 0],
];
/// Ground grid and horizon.
const GRID: [u8; 3] = [0, 255, 255];
const HORIZON: [u8; 3] = [255, 255, 0];
/// Label text on its background.
const TEXT: [u8; 3] = [0, 0, 0];
/// Box edge thickness in pixels (inside the box).
pub const BOX_THICKNESS: usize = 2;
/// Glyph cell of the 8x8 font.
const GLYPH: usize = 8;

/// One frame as packed RGB24, `width * height * 3` bytes, allocated once.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Box<[u8]>,
}

impl Canvas {
    /// Boot (viewer set-up): allocates the pixels.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![0; width * height * 3].into_boxed_slice(),
        }
    }

    /// Converts `image` (same size as the canvas) to RGB, with the
    /// preprocessing's conversion (BT.601 limited range for YUV formats).
    /// Never allocates.
    pub fn load(&mut self, image: Image<'_>) {
        let FrameDesc { width, height, .. } = image.desc;
        debug_assert_eq!((width, height), (self.width, self.height));
        let row_bytes = width * 3;
        for (y, dst) in self.rgb.chunks_exact_mut(row_bytes).enumerate() {
            if image.desc.format == PixelFormat::Rgb24 {
                dst.copy_from_slice(&image.bytes[y * row_bytes..(y + 1) * row_bytes]);
            } else {
                crate::preprocess::rgb_row(image.desc, image.bytes, y, dst);
            }
        }
    }

    #[inline]
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills `[x0, x1) x [y0, y1)`, clipped to the canvas.
    pub fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (x0, x1) = (x0.max(0), x1.min(self.width as i64));
        let (y0, y1) = (y0.max(0), y1.min(self.height as i64));
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }

    /// The outline of box `[x1, y1, x2, y2]` (pixels), `thickness` wide,
    /// drawn inside the box's pixel rectangle.
    pub fn rect(&mut self, b: [f32; 4], thickness: usize, c: [u8; 3]) {
        if !b.iter().all(|v| v.is_finite()) {
            return;
        }
        let (x0, y0) = (b[0].round() as i64, b[1].round() as i64);
        let (x1, y1) = (b[2].round() as i64, b[3].round() as i64);
        let t = thickness as i64;
        self.fill(x0, y0, x1 + 1, y0 + t, c);
        self.fill(x0, y1 + 1 - t, x1 + 1, y1 + 1, c);
        self.fill(x0, y0, x0 + t, y1 + 1, c);
        self.fill(x1 + 1 - t, y0, x1 + 1, y1 + 1, c);
    }

    /// A one-pixel line from `a` to `b` (Bresenham), clipped per pixel.
    pub fn line(&mut self, a: [f64; 2], b: [f64; 2], c: [u8; 3]) {
        let lim = 4.0 * (self.width + self.height) as f64;
        if !a.iter().chain(&b).all(|v| v.is_finite() && v.abs() < lim) {
            return;
        }
        let (mut x, mut y) = (a[0].round() as i64, a[1].round() as i64);
        let (x1, y1) = (b[0].round() as i64, b[1].round() as i64);
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.put(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// `s` in the 8x8 font with its top-left at (x, y) on a `bg` band;
    /// characters the font lacks are drawn as '?'. Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, s: &str, fg: [u8; 3], bg: [u8; 3]) -> usize {
        let n = s.chars().count();
        self.fill(x, y, x + (n * GLYPH) as i64 + 2, y + GLYPH as i64 + 2, bg);
        for (i, ch) in s.chars().enumerate() {
            let glyph = glyph(ch);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH {
                    if bits & (1 << col) != 0 {
                        self.put(x + 1 + (i * GLYPH + col) as i64, y + 1 + row as i64, fg);
                    }
                }
            }
        }
        n * GLYPH + 2
    }
}

fn glyph(ch: char) -> [u8; 8] {
    let c = ch as usize;
    if c < 128 {
        font8x8::legacy::BASIC_LEGACY[c]
    } else if (0xA0..0x100).contains(&c) {
        font8x8::legacy::LATIN_LEGACY[c - 0xA0]
    } else {
        font8x8::legacy::BASIC_LEGACY[b'?' as usize]
    }
}

/// Ground grid and horizon of a calibrated camera, projected once at boot
/// into image line segments.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    segments: Vec<([f64; 2], [f64; 2], [u8; 3])>,
}

/// Grid lines: every 5 m ahead from 5 to 50 m, every 2 m sideways to 10 m.
const GRID_AHEAD_M: [f64; 2] = [5.0, 50.0];
const GRID_SIDE_M: f64 = 10.0;
/// Samples per grid line (lines bend with lens distortion).
const GRID_SAMPLES: usize = 24;

impl Overlay {
    /// Nothing to draw (no calibration, or the grid is off).
    pub fn none() -> Overlay {
        Overlay::default()
    }

    /// Boot: projects the grid on the ground (z = 0 in the vehicle frame)
    /// and the horizon (the ground's vanishing line) through `cal`.
    pub fn new(cal: &Calibration) -> Overlay {
        let mut segments = Vec::new();
        let mut polyline = |pts: &mut dyn Iterator<Item = [f64; 2]>, c: [u8; 3]| {
            let mut last: Option<[f64; 2]> = None;
            for p in pts {
                let px = cal.project(Vector3::new(p[0], p[1], 0.0));
                if let (Some(a), Some(b)) = (last, px) {
                    segments.push((a, b, c));
                }
                last = px;
            }
        };
        let lerp = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / GRID_SAMPLES as f64;
        let [near, far] = GRID_AHEAD_M;
        let mut x = near;
        while x <= far {
            polyline(
                &mut (0..=GRID_SAMPLES).map(|i| [x, lerp(-GRID_SIDE_M, GRID_SIDE_M, i)]),
                GRID,
            );
            x += 5.0;
        }
        let mut y = -GRID_SIDE_M;
        while y <= GRID_SIDE_M {
            polyline(
                &mut (0..=GRID_SAMPLES).map(|i| [lerp(near, far, i), y]),
                GRID,
            );
            y += 2.0;
        }
        // The horizon: ground points very far ahead, across a wide field.
        polyline(
            &mut (0..=GRID_SAMPLES).map(|i| [1e6, lerp(-1e6, 1e6, i)]),
            HORIZON,
        );
        Overlay { segments }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Bytes for one detection's label.
const LABEL_BYTES: usize = 96;

/// Draws the overlay, then every detection's box and label:
/// `car 0.91 12.3m -5.2° #7` (range/bearing with a ground position, `#id`
/// with a confirmed track). Never allocates.
pub fn annotate(canvas: &mut Canvas, dets: &[Detection], labels: &Labels, overlay: &Overlay) {
    for &(a, b, c) in &overlay.segments {
        canvas.line(a, b, c);
    }
    for d in dets {
        let colour = PALETTE[d.class_id as usize % PALETTE.len()];
        canvas.rect(d.bbox, BOX_THICKNESS, colour);
        let mut buf = [0u8; LABEL_BYTES];
        let mut w = SliceWriter::new(&mut buf);
        let _ = match labels.name(d.class_id) {
            Some(n) => write!(w, "{n} {:.2}", d.score),
            None => write!(w, "class{} {:.2}", d.class_id, d.score),
        };
        if let Some([gx, gy]) = d.ground {
            let g = [gx as f64, gy as f64];
            let _ = write!(
                w,
                " {:.1}m {:.1}\u{b0}",
                crate::calibration::range(g),
                // + 0.0: no "-0.0".
                crate::calibration::bearing(g).to_degrees() + 0.0
            );
        }
        if let Some(t) = d.track {
            let _ = write!(w, " #{}", t.id);
        }
        let text = w.into_str();
        // Above the box when there is room, else inside its top edge.
        let h = (GLYPH + 2) as i64;
        let (x, y) = (d.bbox[0].round() as i64, d.bbox[1].round() as i64);
        let y = if y >= h { y - h } else { y.max(0) };
        canvas.text(x, y, text, TEXT, colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: usize, h: usize, v: u8) -> (FrameDesc, Vec<u8>) {
        let desc = FrameDesc {
            format: PixelFormat::Grey,
            width: w,
            height: h,
        };
        (desc, vec![v; w * h])
    }

    #[test]
    fn a_box_changes_its_edge_and_nothing_far_from_it() {
        let (desc, bytes) = grey(64, 48, 100);
        let mut c = Canvas::new(64, 48);
        c.load(Image {
            desc,
            bytes: &bytes,
        });
        assert!(c.rgb.iter().all(|&v| v == 100));
        let det = Detection {
            class_id: 0,
            score: 0.9,
            bbox: [20.0, 20.0, 40.0, 40.0],
            ground: Some([10.0, 1.0]),
            ..Detection::default()
        };
        annotate(&mut c, &[det], &Labels::fallback(1), &Overlay::none());
        let px = |x: usize, y: usize| &c.rgb[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
        assert_eq!(px(20, 30), &PALETTE[0]);
        assert_eq!(px(40, 30), &PALETTE[0]);
        assert_eq!(px(30, 40), &PALETTE[0]);
        // Inside the box and far away: untouched.
        assert_eq!(px(30, 30), &[100, 100, 100]);
        assert_eq!(px(2, 46), &[100, 100, 100]);
        assert_eq!(px(60, 2), &[100, 100, 100]);
        // The label band sits above the box.
        assert_eq!(px(20, 10), &PALETTE[0]);
    }

    #[test]
    fn the_grid_and_horizon_of_the_front_camera_land_in_the_image() {
        let cal = Calibration::front_camera();
        let o = Overlay::new(&cal);
        assert!(!o.is_empty());
        let (w, h) = (cal.width() as usize, cal.height() as usize);
        let (desc, bytes) = grey(w, h, 0);
        let mut c = Canvas::new(w, h);
        c.load(Image {
            desc,
            bytes: &bytes,
        });
        annotate(&mut c, &[], &Labels::fallback(1), &o);
        let count = |col: [u8; 3]| c.rgb.chunks_exact(3).filter(|p| *p == col).count();
        assert!(count(GRID) > w, "grid pixels: {}", count(GRID));
        assert!(count(HORIZON) > w / 2, "horizon pixels: {}", count(HORIZON));
        // The horizon is above the grid's far edge.
        let rows = |col: [u8; 3]| {
            c.rgb
                .chunks_exact(w * 3)
                .enumerate()
                .filter(|(_, r)| r.chunks_exact(3).any(|p| p == col))
                .map(|(y, _)| y)
                .collect::<Vec<_>>()
        };
        assert!(rows(HORIZON).iter().max() < rows(GRID).iter().min());
    }

    #[test]
    fn text_draws_inside_its_band_and_unknown_characters_as_question_marks() {
        let mut c = Canvas::new(40, 12);
        let w = c.text(0, 0, "a\u{b0}\u{4e00}", [255, 255, 255], [0, 0, 0]);
        assert_eq!(w, 26);
        let lit = c.rgb.chunks_exact(3).filter(|p| p[0] == 255).count();
        assert!(lit > 10);
        // Nothing right of the band.
        for y in 0..12 {
            for x in 27..40 {
                assert_eq!(c.rgb[(y * 40 + x) * 3], 0);
            }
        }
    }
}
