//! Undistortion composed with the letterbox: a remap table that gives, for
//! every model-input pixel, the raw (distorted) source pixel to sample, and
//! the CPU loop that applies it.
//!
//! What the model sees: the rectified (undistorted) image whose camera
//! matrix is the calibration's `projection_matrix` (P) and whose size is
//! the source size, letterboxed exactly like [`Letterbox`] (same geometry,
//! same `cv2.INTER_LINEAR` sample positions). A model-input pixel maps to a
//! rectified pixel by the letterbox's inverse, and that to a raw pixel by
//! [`Calibration::rectified_to_source`] (OpenCV's `initUndistortRectifyMap`).
//! The CUDA preprocessing kernel reads the same [`RemapTable`].
//!
//! Table convention (shared with the CUDA backend): `map` is row-major,
//! `dst_h` x `dst_w`, each entry the source pixel `(x, y)` to sample
//! bilinearly, OpenCV convention (integer = pixel centre). A coordinate
//! outside `[0, w-1] x [0, h-1]` or NaN means padding (grey 114). Tables
//! built here store NaN for every padding pixel (letterbox borders and
//! rectified pixels that see no source pixel) and clamp every other entry
//! into `[0, w-1] x [0, h-1]`, so any reader's bounds test agrees.
//!
//! Boot: [`RemapTable::build`] and [`Letterbox::set_remap`] allocate (the
//! table, its samples resolved to byte offsets and weights, and one RGB
//! frame of scratch). Frame path: [`Remap::run`], called
//! from [`Letterbox::run`] on the preprocessing thread, never allocates:
//! the source is converted to RGB once (row by row, by the letterbox's own
//! converter) and each output pixel is one bilinear sample of it.

use super::{rgb_row, Letterbox, Pixels, PreprocessError};
use crate::calibration::Calibration;
use crate::frame::{FrameDesc, PixelFormat};
use std::sync::Mutex;

/// For each model-input pixel, the source pixel to sample. See the module
/// doc for the convention.
#[derive(Debug, Clone, PartialEq)]
pub struct RemapTable {
    pub dst_w: usize,
    pub dst_h: usize,
    /// `dst_h * dst_w` entries, row-major: source `(x, y)` or NaN.
    pub map: Box<[[f32; 2]]>,
}

impl RemapTable {
    /// The table undistorting through `cal` into `lb`'s model input, or
    /// None when the calibration has no distortion, no rectification and
    /// P = K (the plain letterbox is then exact and costs nothing extra).
    /// The calibration's image size must be the source size. Boot:
    /// allocates.
    pub fn build(cal: &Calibration, lb: &Letterbox) -> Result<Option<RemapTable>, PreprocessError> {
        let src = lb.src();
        cal.check_image_size(src.width, src.height)
            .map_err(|e| PreprocessError::Config(e.to_string()))?;
        if cal.is_distortion_free() {
            return Ok(None);
        }
        Ok(Some(RemapTable::from_fn(lb, |u, v| {
            cal.rectified_to_source(u, v)
        })))
    }

    /// The table for `lb`'s geometry with an arbitrary rectified -> source
    /// pixel mapping `f` (None: nothing to sample). With the identity it
    /// reproduces the plain letterbox. Boot: allocates.
    pub fn from_fn(lb: &Letterbox, f: impl Fn(f64, f64) -> Option<[f64; 2]>) -> RemapTable {
        let src = lb.src();
        let (w, h) = (src.width, src.height);
        let (new_w, new_h) = lb.resized();
        // Same sample positions as `taps` (cv2.INTER_LINEAR, half-pixel
        // centres), per axis.
        let sx = 1.0 / (new_w as f64 / w as f64);
        let sy = 1.0 / (new_h as f64 / h as f64);
        let (left, top) = (lb.left, lb.top);
        let mut map = vec![[f32::NAN; 2]; lb.dst_w * lb.dst_h].into_boxed_slice();
        for (dy, row) in map.chunks_exact_mut(lb.dst_w).enumerate() {
            if dy < top || dy >= top + new_h {
                continue;
            }
            let v = ((dy - top) as f64 + 0.5) * sy - 0.5;
            for (dx, m) in row.iter_mut().enumerate().skip(left).take(new_w) {
                let u = ((dx - left) as f64 + 0.5) * sx - 0.5;
                let Some([x, y]) = f(u, v) else { continue };
                let inside = x >= -0.5 && x <= w as f64 - 0.5 && y >= -0.5 && y <= h as f64 - 0.5;
                if inside {
                    *m = [
                        x.max(0.0).min((w - 1) as f64) as f32,
                        y.max(0.0).min((h - 1) as f64) as f32,
                    ];
                }
            }
        }
        RemapTable {
            dst_w: lb.dst_w,
            dst_h: lb.dst_h,
            map,
        }
    }

    /// Model-input pixels that are padding (NaN or outside the source).
    pub fn padding_count(&self, src_w: usize, src_h: usize) -> usize {
        self.map
            .iter()
            .filter(|p| sample_at(p, src_w, src_h).is_none())
            .count()
    }
}

/// The integer corner and weights of a bilinear sample at `p`, or None for
/// padding. Never allocates.
#[inline]
fn sample_at(p: &[f32; 2], w: usize, h: usize) -> Option<(usize, usize, f32, f32)> {
    let [x, y] = *p;
    // Written so NaN fails every test.
    let inside = x >= 0.0 && y >= 0.0 && x <= (w - 1) as f32 && y <= (h - 1) as f32;
    if !inside {
        return None;
    }
    let (x0, y0) = (x as usize, y as usize);
    Some((x0, y0, x - x0 as f32, y - y0 as f32))
}

/// One output pixel's bilinear sample, resolved at boot: byte offset of
/// the top-left RGB source pixel, the steps to its right and lower
/// neighbours (0 at the last column / row), and the weights. `at ==
/// u32::MAX`: padding.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: u32,
    right: u32,
    down: u32,
    wx: f32,
    wy: f32,
}

/// Bytes an installed remap holds per model-input pixel (the table's
/// source point and the resolved sample), for the memory budget; the
/// RGB scratch frame of non-RGB sources comes on top.
pub const REMAP_BYTES_PER_PIXEL: usize =
    std::mem::size_of::<[f32; 2]>() + std::mem::size_of::<Sample>();

/// A [`RemapTable`] installed in a [`Letterbox`], with its scratch frame.
pub(super) struct Remap {
    pub(super) table: RemapTable,
    /// The table resolved against the source's RGB layout.
    samples: Box<[Sample]>,
    /// The whole source frame as packed RGB (unused for RGB24 input).
    rgb: Mutex<Vec<u8>>,
}

impl Remap {
    pub(super) fn new(src: FrameDesc, table: RemapTable) -> Remap {
        let rgb = if src.format == PixelFormat::Rgb24 {
            Vec::new()
        } else {
            vec![0; src.width * src.height * 3]
        };
        let (w, h) = (src.width, src.height);
        let samples = table
            .map
            .iter()
            .map(|p| match sample_at(p, w, h) {
                Some((x0, y0, wx, wy)) => Sample {
                    at: ((y0 * w + x0) * 3) as u32,
                    right: if x0 + 1 < w { 3 } else { 0 },
                    down: if y0 + 1 < h { (w * 3) as u32 } else { 0 },
                    wx,
                    wy,
                },
                None => Sample {
                    at: u32::MAX,
                    right: 0,
                    down: 0,
                    wx: 0.0,
                    wy: 0.0,
                },
            })
            .collect();
        Remap {
            table,
            samples,
            rgb: Mutex::new(rgb),
        }
    }

    /// Convert `frame` to RGB, sample it through the table into `dst`
    /// (NCHW, normalised by `pixels`, padding grey 114). Sizes were checked
    /// by the caller. Frame path: never allocates.
    pub(super) fn run(&self, desc: FrameDesc, pixels: Pixels, frame: &[u8], dst: &mut [f32]) {
        let (w, h) = (desc.width, desc.height);
        let mut guard = self.rgb.lock().unwrap_or_else(|e| e.into_inner());
        let rgb: &[u8] = if desc.format == PixelFormat::Rgb24 {
            &frame[..w * h * 3]
        } else {
            let buf = &mut guard[..];
            for (sy, row) in buf.chunks_exact_mut(w * 3).enumerate() {
                // rgb_row writes into `row` for every format but RGB24.
                rgb_row(desc, frame, sy, row);
            }
            buf
        };
        let [r_plane, g_plane, b_plane] = pixels.planes(dst);
        let (pad, div) = (pixels.pad(), pixels.div);
        for (((s, r), g), b) in self
            .samples
            .iter()
            .zip(r_plane.iter_mut())
            .zip(g_plane.iter_mut())
            .zip(b_plane.iter_mut())
        {
            if s.at == u32::MAX {
                (*r, *g, *b) = (pad, pad, pad);
                continue;
            }
            let a = s.at as usize;
            let (c, right) = (a + s.down as usize, s.right as usize);
            // `samples` was built for this frame size: in bounds.
            let (top0, top1) = (&rgb[a..a + 3], &rgb[a + right..a + right + 3]);
            let (bot0, bot1) = (&rgb[c..c + 3], &rgb[c + right..c + right + 3]);
            let (wx, wy) = (s.wx, s.wy);
            // Horizontal then vertical, as the letterbox blends.
            let px = |ch: usize| {
                let (pa, pb) = (f32::from(top0[ch]), f32::from(top1[ch]));
                let (pc, pd) = (f32::from(bot0[ch]), f32::from(bot1[ch]));
                let top = pa + wx * (pb - pa);
                let bottom = pc + wx * (pd - pc);
                (top + wy * (bottom - top)) / div
            };
            (*r, *g, *b) = (px(0), px(1), px(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::InputStyle;
    use nalgebra::Vector3;

    fn desc(format: PixelFormat, w: usize, h: usize) -> FrameDesc {
        FrameDesc {
            format,
            width: w,
            height: h,
        }
    }

    fn frame(d: FrameDesc) -> Vec<u8> {
        (0..d.bytes())
            .map(|i| ((i * 37 + i / 7) % 251) as u8)
            .collect()
    }

    /// The identity mapping through the remap path gives the plain
    /// letterbox, for every pixel format and with up- and downscaling: the
    /// remap reuses the letterbox's geometry and sampling.
    #[test]
    fn identity_table_reproduces_the_letterbox() {
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::Nv12,
            PixelFormat::Grey,
            PixelFormat::Rgb24,
            PixelFormat::I420,
            PixelFormat::I422,
            PixelFormat::I444,
        ] {
            for (k, (w, h, dw, dh)) in [(64, 48, 64, 64), (33, 17, 20, 12), (7, 5, 31, 17)]
                .into_iter()
                .enumerate()
            {
                // Each geometry in each input style.
                let style = [
                    InputStyle::Letterbox,
                    InputStyle::YoloX,
                    InputStyle::Stretch,
                ][(k + format as usize) % 3];
                let d = desc(format, w, h);
                let input = frame(d);
                let plain = Letterbox::with_style(d, dw, dh, style).unwrap();
                let mut want = vec![f32::NAN; plain.dst_len()];
                plain.run(&input, &mut want).unwrap();
                let mut lb = Letterbox::with_style(d, dw, dh, style).unwrap();
                let table = RemapTable::from_fn(&lb, |u, v| Some([u, v]));
                lb.set_remap(table).unwrap();
                let mut got = vec![f32::NAN; lb.dst_len()];
                lb.run(&input, &mut got).unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                // 1e-5 of the value range.
                let tol = 1e-5 * 255.0 / plain.pixels().div;
                assert!(
                    worst < tol,
                    "{format:?} {w}x{h}->{dw}x{dh} {style:?}: {worst}"
                );
            }
        }
    }

    fn strong() -> Calibration {
        let yaml = include_str!("../../calibration/front_camera.yaml").replace(
            "[-0.05, 0.01, 0.0, 0.0, 0.0]",
            "[-0.3, 0.08, 0.001, -0.002, 0.0]",
        );
        Calibration::from_yaml_str(&yaml, "strong.yaml").unwrap()
    }

    #[test]
    fn distortion_free_calibration_builds_no_table() {
        let yaml = include_str!("../../calibration/front_camera.yaml")
            .replace("[-0.05, 0.01, 0.0, 0.0, 0.0]", "[0.0, 0.0, 0.0, 0.0, 0.0]");
        let cal = Calibration::from_yaml_str(&yaml, "flat.yaml").unwrap();
        let lb = Letterbox::new(desc(PixelFormat::Yuyv, 640, 480), 320, 320).unwrap();
        assert_eq!(RemapTable::build(&cal, &lb).unwrap(), None);
        assert!(RemapTable::build(&strong(), &lb).unwrap().is_some());
        let small = Letterbox::new(desc(PixelFormat::Yuyv, 320, 240), 320, 320).unwrap();
        let e = RemapTable::build(&strong(), &small)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "strong.yaml: image_width x image_height: 640x480 does not match the source's 320x240"
        );
    }

    /// A source pixel painted at a known 3-D point shows up, after the
    /// remap, where the rectified (pinhole, P) camera sees that point.
    #[test]
    fn table_undistorts_through_the_calibration() {
        let cal = strong();
        let d = desc(PixelFormat::Grey, 640, 480);
        let mut lb = Letterbox::new(d, 640, 640).unwrap();
        let table = RemapTable::build(&cal, &lb).unwrap().unwrap();
        // Letterbox borders (80 rows above and below) are NaN.
        assert!(table.map[..640 * 80].iter().all(|p| p[0].is_nan()));
        assert!(table.map[640 * 560..].iter().all(|p| p[0].is_nan()));
        // Everything else is inside the source and clamped.
        assert!(table.map.iter().all(
            |p| p[0].is_nan() || (0.0..=639.0).contains(&p[0]) && (0.0..=479.0).contains(&p[1])
        ));
        lb.set_remap(table).unwrap();
        let p = cal.projection_matrix();
        for &(x, y, z) in &[(10.0, 3.0, 0.0), (8.0, -2.0, 0.3), (12.0, 5.0, 2.0)] {
            let pv = Vector3::new(x, y, z);
            let [u, v] = cal.project(pv).unwrap();
            let mut img = vec![0u8; d.bytes()];
            let (iu, iv) = (u.round() as usize, v.round() as usize);
            for yy in iv - 1..=iv + 1 {
                for xx in iu - 1..=iu + 1 {
                    img[yy * 640 + xx] = 255;
                }
            }
            let mut out = vec![0.0; lb.dst_len()];
            lb.run(&img, &mut out).unwrap();
            // Where the pinhole camera P sees the point.
            let po = cal.optical_to_vehicle().tr_mul(&(pv - cal.translation()));
            let ur = p[(0, 0)] * po.x / po.z + p[(0, 2)];
            let vr = p[(1, 1)] * po.y / po.z + p[(1, 2)];
            // Brightest model-input pixel (640x480 -> 640x640: top pad 80).
            let (best, _) = out[..640 * 640]
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            let (bx, by) = ((best % 640) as f64, (best / 640) as f64 - 80.0);
            assert!(
                (bx - ur).abs() <= 1.5 && (by - vr).abs() <= 1.5,
                "{pv:?}: peak at {bx},{by}, expected {ur:.1},{vr:.1} (raw pixel {u:.1},{v:.1})"
            );
            // Without undistortion the peak would be at the raw pixel,
            // several pixels away for this lens.
            assert!((u - ur).abs().max((v - vr).abs()) > 3.0);
        }
    }
}
