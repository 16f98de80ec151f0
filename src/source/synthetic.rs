//! The synthetic road scene: a deterministic, seeded source of camera
//! frames with per-frame ground truth. A camera described by a
//! [`Calibration`] (lens distortion included) looks at a straight road with
//! lane markings, kerbs, sidewalks, grass verges, tree lines or buildings
//! and sky, and at vehicles, pedestrians and cyclists built from simple
//! shaded 3-D shapes that stand and move on the ground. Per seed: road
//! layout, colours, backdrops and ego speed; per 10 s of scene time:
//! lighting and haze. It is a test source, the pipeline benchmark's input
//! and the training data for the shipped detector.
//!
//! Rendering is by inverse mapping: at boot every pixel gets its ray
//! (undistorted through the lens model) and its ground/backdrop texture
//! coordinates; per frame the background is a texture fetch per pixel and
//! objects are ray-cast inside their projected rectangles.
//!
//! Frame `k` of seed `s` is a pure function of `(s, k)` and the config: the
//! scene state is derived analytically from the frame time, so frames can be
//! rendered in any order and always give identical bytes.
//!
//! [`SyntheticSource::new`] is boot: it allocates every buffer (per-pixel
//! ray table, ground texture, object buffers). [`SyntheticSource::render`],
//! `next_frame` and `skip_frame` run on the capture thread and never
//! allocate. [`SyntheticSource::ground_truth`] and [`write_dataset`]
//! allocate and are for tests, tools and training.

mod render;
mod scene;
mod texture;

use crate::calibration::{self, Calibration};
use crate::clock::monotonic_ns;
use crate::frame::{FrameDesc, PixelFormat};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use render::{ObjBuffers, View};
use scene::{build_scene, Scene, World, MAX_OBJECTS};
use std::path::Path;

/// Class names by class id (ground truth, dataset labels).
pub const CLASSES: [&str; 3] = ["vehicle", "pedestrian", "cyclist"];

/// Objects less visible than this (visible pixels over the pixels the
/// object would cover alone, times the fraction of its projection inside
/// the image) are left out of the ground truth.
pub const MIN_VISIBILITY: f32 = 0.3;
/// Objects whose visible box is less tall than this (pixels) are left out
/// of the ground truth: about a pedestrian at 40 m with the default front
/// camera (KITTI's "moderate" difficulty uses 25 px for the same reason:
/// smaller objects are not reliably detectable at the model's input size).
pub const MIN_BOX_HEIGHT: f32 = 20.0;

/// Configuration of the synthetic source.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub seed: u64,
    /// Must equal the calibration's image size.
    pub width: usize,
    pub height: usize,
    /// Output format; all [`PixelFormat`]s are supported.
    pub format: PixelFormat,
    /// Frames per second of scene time (frame k is at k / fps seconds).
    pub fps: f64,
    /// Object slots (at most 32). Each slot holds at most one object at a
    /// time; with 12 slots a frame has about 5 labelled objects on average.
    pub max_objects: usize,
    pub calibration: Calibration,
}

impl SyntheticConfig {
    /// The default front camera, 640x480 RGB at 30 fps, 12 object slots.
    pub fn front_camera(seed: u64) -> SyntheticConfig {
        let calibration = Calibration::front_camera();
        SyntheticConfig {
            seed,
            width: calibration.width() as usize,
            height: calibration.height() as usize,
            format: PixelFormat::Rgb24,
            fps: 30.0,
            max_objects: 12,
            calibration,
        }
    }
}

/// Ground truth of one visible object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtObject {
    /// Index into [`CLASSES`].
    pub class_id: u32,
    /// Tight box of the object's visible pixels, `[x1, y1, x2, y2]` in
    /// pixel-edge coordinates: pixel column `u` spans `[u, u + 1)`, so the
    /// box lies within `[0, width] x [0, height]`. (Calibration pixel
    /// coordinates put the centre of pixel `u` at `u`: subtract 0.5.)
    pub bbox: [f32; 4],
    /// Ground position in the vehicle frame (m): the bottom-centre of the
    /// object's face nearest the camera. Precisely: of the four edges of
    /// the object's ground-contact footprint (a rectangle in the object's
    /// frame), take the one whose outward normal points most towards the
    /// point on the ground below the camera; `ground` is that edge's
    /// midpoint. The footprint is the body outline for vehicles (their
    /// body, a simple box, stands on the ground: no overhang above the
    /// road), the feet for pedestrians,
    /// and the line between the two tyre contact points (10 cm wide) for
    /// cyclists. So a car straight ahead gives the centre of its rear face
    /// at ground level, a crossing car the centre of its near side.
    pub ground: [f32; 2],
    /// Distance of `ground` from the vehicle origin (m),
    /// [`calibration::range`].
    pub range: f32,
    /// Fraction of the object visible (see [`MIN_VISIBILITY`]), 0..1.
    pub visibility: f32,
    /// Stable id of the object while it stays in the scene.
    pub track_id: u64,
    /// Velocity of the object (and of `ground`) relative to the vehicle,
    /// m/s in the vehicle frame.
    pub velocity: [f32; 2],
}

/// The synthetic scene as a frame source.
pub struct SyntheticSource {
    config: SyntheticConfig,
    desc: FrameDesc,
    world: World,
    view: View,
    scene: Box<Scene>,
    obj: ObjBuffers,
    rgb: Vec<u8>,
    next: u64,
}

impl SyntheticSource {
    /// Check the config and build all tables and buffers. Boot only.
    pub fn new(config: SyntheticConfig) -> Result<SyntheticSource, SourceError> {
        let cal = &config.calibration;
        if config.width == 0 || config.height == 0 {
            return Err(SourceError::Config(format!(
                "synthetic: image size {}x{} must be at least 1x1",
                config.width, config.height
            )));
        }
        if config.width != cal.width() as usize || config.height != cal.height() as usize {
            return Err(SourceError::Config(format!(
                "synthetic: image size {}x{} does not match calibration {} ({}x{}); scale it with Calibration::with_image_size",
                config.width,
                config.height,
                cal.source(),
                cal.width(),
                cal.height()
            )));
        }
        if !(config.fps.is_finite() && config.fps > 0.0) {
            return Err(SourceError::Config(format!(
                "synthetic: fps {} must be a positive number",
                config.fps
            )));
        }
        if config.max_objects > MAX_OBJECTS {
            return Err(SourceError::Config(format!(
                "synthetic: max_objects {} exceeds the limit of {MAX_OBJECTS}",
                config.max_objects
            )));
        }
        let world = World::new(config.seed);
        let view = View::new(cal, &world);
        let n = config.width * config.height;
        let desc = FrameDesc {
            format: config.format,
            width: config.width,
            height: config.height,
        };
        Ok(SyntheticSource {
            desc,
            world,
            view,
            scene: Box::new(Scene::new()),
            obj: ObjBuffers::new(n),
            rgb: vec![0; n * 3],
            next: 0,
            config,
        })
    }

    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// Index of the frame the next `next_frame` delivers.
    pub fn frame_index(&self) -> u64 {
        self.next
    }

    /// Make `next_frame` continue at frame `index`.
    pub fn seek(&mut self, index: u64) {
        self.next = index;
    }

    /// Scene time of frame `index` in nanoseconds.
    pub fn frame_time_ns(&self, index: u64) -> u64 {
        (index as f64 * 1e9 / self.config.fps) as u64
    }

    fn eye(&self) -> [f64; 2] {
        let t = self.config.calibration.translation();
        [t.x, t.y]
    }

    /// Render frame `index` into `dst` (`desc().bytes()` long) in the
    /// configured format. `dst` is only written, never read (it may be
    /// write-combined memory). Frame path: never allocates (except for the
    /// error message when `dst` has the wrong size).
    pub fn render(&mut self, index: u64, dst: &mut [u8]) -> Result<(), SourceError> {
        if dst.len() != self.desc.bytes() {
            return Err(SourceError::BadFrame {
                device: "synthetic".to_string(),
                reason: "destination buffer size does not match the frame size",
            });
        }
        let eye = self.eye();
        build_scene(
            &self.world,
            self.config.max_objects,
            self.config.fps,
            index,
            eye,
            &mut self.scene,
        );
        // Always into our own (cached) buffer, then written to `dst` once:
        // the render reads back what it drew (shadows darken the ground),
        // and `dst` may be a CUDA slot in write-combined memory, where CPU
        // reads are uncached (~100 ns each).
        self.view.render(&self.scene, &mut self.obj, &mut self.rgb);
        convert_rgb(&self.rgb, self.desc, dst);
        Ok(())
    }

    /// Ground truth of frame `index`: every object at least
    /// [`MIN_VISIBILITY`] visible and [`MIN_BOX_HEIGHT`] pixels tall.
    /// Independent of what was rendered before. Allocates: not for the
    /// frame path.
    pub fn ground_truth(&self, index: u64) -> Vec<GtObject> {
        let (w, h) = (self.config.width, self.config.height);
        let mut scene = Box::new(Scene::new());
        let eye = self.eye();
        build_scene(
            &self.world,
            self.config.max_objects,
            self.config.fps,
            index,
            eye,
            &mut scene,
        );
        let mut all = ObjBuffers::new(w * h);
        self.view.raster(&scene, &mut all);
        let mut alone = ObjBuffers::new(w * h);
        let mut out = Vec::new();
        for (oi, obj) in scene.objects().iter().enumerate() {
            let id = (oi + 1) as u8;
            let rect = all.rects[oi];
            let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
            let mut visible = 0usize;
            for v in rect.y0..rect.y1 {
                for u in rect.x0..rect.x1 {
                    if all.ids[v * w + u] == id {
                        visible += 1;
                        x0 = x0.min(u);
                        y0 = y0.min(v);
                        x1 = x1.max(u + 1);
                        y1 = y1.max(v + 1);
                    }
                }
            }
            if visible == 0 || ((y1 - y0) as f32) < MIN_BOX_HEIGHT {
                continue;
            }
            self.view.raster_object(oi, obj, &mut alone);
            let r = alone.rects[oi];
            let mut alone_px = 0;
            for v in r.y0..r.y1 {
                for px in &mut alone.ids[v * w + r.x0..v * w + r.x1] {
                    alone_px += usize::from(*px == id);
                    *px = 0;
                }
            }
            let in_image = self.in_image_fraction(obj);
            let visibility = (visible as f32 / alone_px.max(1) as f32) * in_image;
            if visibility < MIN_VISIBILITY {
                continue;
            }
            let g = obj.ground_point(eye);
            out.push(GtObject {
                class_id: u32::from(obj.class),
                bbox: [x0 as f32, y0 as f32, x1 as f32, y1 as f32],
                ground: [g[0] as f32, g[1] as f32],
                range: calibration::range(g) as f32,
                visibility: visibility.min(1.0),
                track_id: obj.track_id,
                velocity: [obj.vel[0] as f32, obj.vel[1] as f32],
            });
        }
        out
    }

    /// Fraction of the object's projected bounding rectangle that lies in
    /// the image (0 when part of it is behind the camera).
    fn in_image_fraction(&self, obj: &scene::Object) -> f32 {
        let (lo, hi) = obj.bounds();
        let (s, c) = obj.yaw.sin_cos();
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for k in 0..27 {
            let f = [k % 3, (k / 3) % 3, k / 9].map(|i| i as f32 * 0.5);
            let l = [0, 1, 2].map(|a| f64::from(lo[a] + (hi[a] - lo[a]) * f[a]));
            let p = nalgebra::Vector3::new(
                obj.pos[0] + c * l[0] - s * l[1],
                obj.pos[1] + s * l[0] + c * l[1],
                l[2],
            );
            match self.config.calibration.project(p) {
                Some(q) => {
                    min = [min[0].min(q[0]), min[1].min(q[1])];
                    max = [max[0].max(q[0]), max[1].max(q[1])];
                }
                None => return 0.0,
            }
        }
        let area = (max[0] - min[0]) * (max[1] - min[1]);
        if area <= 0.0 {
            return 0.0;
        }
        let (w, h) = (self.config.width as f64, self.config.height as f64);
        let cw = (max[0].min(w) - min[0].max(0.0)).max(0.0);
        let ch = (max[1].min(h) - min[1].max(0.0)).max(0.0);
        (cw * ch / area) as f32
    }
}

impl Source for SyntheticSource {
    fn desc(&self) -> FrameDesc {
        self.desc
    }

    fn pacing(&self) -> Pacing {
        Pacing::Lockstep
    }

    fn describe(&self) -> String {
        format!(
            "synthetic seed {} {} {}x{}@{}",
            self.config.seed,
            self.desc.format.name(),
            self.desc.width,
            self.desc.height,
            self.config.fps
        )
    }

    /// Frame path: never allocates.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        let index = self.next;
        self.render(index, dst)?;
        self.next += 1;
        Ok(FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: Some(self.frame_time_ns(index)),
        })
    }

    /// Frame path: never allocates.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        let index = self.next;
        self.next += 1;
        Ok(FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: Some(self.frame_time_ns(index)),
        })
    }
}

/// BT.601 limited-range luma of an RGB pixel.
#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// BT.601 limited-range chroma of an (averaged) RGB colour.
#[inline(always)]
fn chroma(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// Average RGB over the pixels [x0, x0+sx) x [y0, y0+sy) clipped to the image.
fn block_rgb(
    rgb: &[u8],
    w: usize,
    h: usize,
    x0: usize,
    y0: usize,
    sx: usize,
    sy: usize,
) -> (i32, i32, i32) {
    let (mut r, mut g, mut b, mut n) = (0i32, 0i32, 0i32, 0i32);
    for y in y0..(y0 + sy).min(h) {
        for x in x0..(x0 + sx).min(w) {
            let i = (y * w + x) * 3;
            r += i32::from(rgb[i]);
            g += i32::from(rgb[i + 1]);
            b += i32::from(rgb[i + 2]);
            n += 1;
        }
    }
    let n = n.max(1);
    ((r + n / 2) / n, (g + n / 2) / n, (b + n / 2) / n)
}

fn luma_plane(rgb: &[u8], out: &mut [u8]) {
    for (p, y) in rgb.chunks_exact(3).zip(out.iter_mut()) {
        *y = luma(i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
    }
}

/// Convert a packed RGB frame to `desc.format` (BT.601 limited range for
/// the YUV formats; chroma is the average over its block; an odd last
/// column/row is its own block). `dst` is `desc.bytes()` long.
/// Frame path: never allocates.
fn convert_rgb(rgb: &[u8], desc: FrameDesc, dst: &mut [u8]) {
    let (w, h) = (desc.width, desc.height);
    let cw = w.div_ceil(2);
    match desc.format {
        PixelFormat::Rgb24 => dst.copy_from_slice(&rgb[..w * h * 3]),
        PixelFormat::Grey => luma_plane(rgb, dst),
        PixelFormat::Yuyv | PixelFormat::Uyvy => {
            let yuyv = desc.format == PixelFormat::Yuyv;
            for (src, out) in rgb.chunks_exact(w * 3).zip(dst.chunks_exact_mut(cw * 4)) {
                let pairs = src.chunks_exact(6);
                let tail = pairs.remainder();
                let mut quads = out.chunks_exact_mut(4);
                for (p, q) in pairs.zip(&mut quads) {
                    let [r0, g0, b0, r1, g1, b1] =
                        [p[0], p[1], p[2], p[3], p[4], p[5]].map(i32::from);
                    let (u, v) = chroma((r0 + r1 + 1) >> 1, (g0 + g1 + 1) >> 1, (b0 + b1 + 1) >> 1);
                    let (y0, y1) = (luma(r0, g0, b0), luma(r1, g1, b1));
                    q.copy_from_slice(&if yuyv { [y0, u, y1, v] } else { [u, y0, v, y1] });
                }
                // An odd last column pairs with itself.
                if let (&[r, g, b], Some(q)) = (tail, quads.next()) {
                    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
                    let (u, v) = chroma(r, g, b);
                    let y = luma(r, g, b);
                    q.copy_from_slice(&if yuyv { [y, u, y, v] } else { [u, y, v, y] });
                }
            }
        }
        PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::I422 | PixelFormat::I444 => {
            let (sx, sy) = match desc.format {
                PixelFormat::I444 => (1, 1),
                PixelFormat::I422 => (2, 1),
                _ => (2, 2),
            };
            let (plane_w, plane_h) = (w.div_ceil(sx), h.div_ceil(sy));
            let (luma_out, chroma_planes) = dst.split_at_mut(w * h);
            luma_plane(rgb, luma_out);
            let n = plane_w * plane_h;
            for cy in 0..plane_h {
                for cx in 0..plane_w {
                    let (r, g, b) = block_rgb(rgb, w, h, cx * sx, cy * sy, sx, sy);
                    let (u, v) = chroma(r, g, b);
                    let j = cy * plane_w + cx;
                    if desc.format == PixelFormat::Nv12 {
                        chroma_planes[2 * j] = u;
                        chroma_planes[2 * j + 1] = v;
                    } else {
                        chroma_planes[j] = u;
                        chroma_planes[n + j] = v;
                    }
                }
            }
        }
    }
}

/// Encode packed RGB as a 24-bit uncompressed BMP (bottom-up BGR rows,
/// padded to 4 bytes). Allocates.
pub fn encode_bmp(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let size = 54 + row * height;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(width as i32).to_le_bytes());
    out.extend_from_slice(&(height as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // BI_RGB
    out.extend_from_slice(&((row * height) as u32).to_le_bytes());
    out.extend_from_slice(&2835i32.to_le_bytes()); // 72 dpi
    out.extend_from_slice(&2835i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for y in (0..height).rev() {
        let start = out.len();
        for x in 0..width {
            let i = (y * width + x) * 3;
            out.extend_from_slice(&[rgb[i + 2], rgb[i + 1], rgb[i]]);
        }
        out.resize(start + row, 0);
    }
    out
}

/// Write a YOLO-format training set from the default front camera (640x480,
/// 30 fps, 12 object slots): frames 0, every, 2*every, ... below `frames`
/// of `seed` as `dir/images/NNNNNN.bmp` (24-bit BMP) and
/// `dir/labels/NNNNNN.txt` (`class cx cy w h`, normalised to the image),
/// where NNNNNN is the frame index; plus `dir/classes.txt`. Allocates.
pub fn write_dataset(dir: &Path, seed: u64, frames: u64, every: u64) -> Result<(), SourceError> {
    if every == 0 {
        return Err(SourceError::Config(
            "write_dataset: every must be at least 1".to_string(),
        ));
    }
    let io = |path: &Path, e: std::io::Error| SourceError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let images = dir.join("images");
    let labels = dir.join("labels");
    std::fs::create_dir_all(&images).map_err(|e| io(&images, e))?;
    std::fs::create_dir_all(&labels).map_err(|e| io(&labels, e))?;
    let classes = dir.join("classes.txt");
    std::fs::write(&classes, CLASSES.join("\n") + "\n").map_err(|e| io(&classes, e))?;
    let mut src = SyntheticSource::new(SyntheticConfig::front_camera(seed))?;
    let (w, h) = (src.config.width, src.config.height);
    let mut rgb = vec![0u8; w * h * 3];
    let mut k = 0;
    while k < frames {
        src.render(k, &mut rgb)?;
        let img = images.join(format!("{k:06}.bmp"));
        std::fs::write(&img, encode_bmp(&rgb, w, h)).map_err(|e| io(&img, e))?;
        let mut text = String::new();
        for g in src.ground_truth(k) {
            let [x0, y0, x1, y1] = g.bbox;
            text.push_str(&format!(
                "{} {:.6} {:.6} {:.6} {:.6}\n",
                g.class_id,
                (x0 + x1) as f64 * 0.5 / w as f64,
                (y0 + y1) as f64 * 0.5 / h as f64,
                (x1 - x0) as f64 / w as f64,
                (y1 - y0) as f64 / h as f64
            ));
        }
        let lbl = labels.join(format!("{k:06}.txt"));
        std::fs::write(&lbl, text).map_err(|e| io(&lbl, e))?;
        k = k.saturating_add(every);
    }
    Ok(())
}

/// Write multi-object tracking ground truth for frames `0..frames` of
/// `seed` from the default front camera (the frames `perceptd run` renders
/// with the embedded default config and `source.seed = seed`):
/// * `dir/gt/gt.txt`, MOTChallenge format: `frame, id, left, top, width,
///   height, 1, class, visibility` with `frame` = frame index + 1, `id`
///   numbered 1, 2, ... in order of first appearance, the box in perceptd's
///   output coordinates (pixel edges, `[0, width] x [0, height]`, as the
///   JSON lines' `box`), `class` = class id + 1 (1 vehicle, 2 pedestrian,
///   3 cyclist) and `visibility` 0..1;
/// * `dir/gt/ground.csv`, with a header: `frame, id, x, y, vx, vy`, the
///   ground position (m) and velocity relative to the vehicle (m/s) in the
///   vehicle frame, same `frame` and `id`.
///
/// Objects as in [`SyntheticSource::ground_truth`]. Allocates.
pub fn write_mot(dir: &Path, seed: u64, frames: u64) -> Result<(), SourceError> {
    use std::fmt::Write as _;
    let gt = dir.join("gt");
    let io = |path: &Path, e: std::io::Error| SourceError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    std::fs::create_dir_all(&gt).map_err(|e| io(&gt, e))?;
    let src = SyntheticSource::new(SyntheticConfig::front_camera(seed))?;
    let mut ids = std::collections::HashMap::new();
    let mut mot = String::new();
    let mut ground = String::from("frame,id,x,y,vx,vy\n");
    for k in 0..frames {
        for g in src.ground_truth(k) {
            let next = ids.len() + 1;
            let id = *ids.entry(g.track_id).or_insert(next);
            let [x0, y0, x1, y1] = g.bbox;
            let _ = writeln!(
                mot,
                "{},{id},{x0},{y0},{},{},1,{},{:.3}",
                k + 1,
                x1 - x0,
                y1 - y0,
                g.class_id + 1,
                g.visibility
            );
            let _ = writeln!(
                ground,
                "{},{id},{:.3},{:.3},{:.3},{:.3}",
                k + 1,
                g.ground[0],
                g.ground[1],
                g.velocity[0],
                g.velocity[1]
            );
        }
    }
    let (p, q) = (gt.join("gt.txt"), gt.join("ground.csv"));
    std::fs::write(&p, mot).map_err(|e| io(&p, e))?;
    std::fs::write(&q, ground).map_err(|e| io(&q, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    fn source(seed: u64, format: PixelFormat) -> SyntheticSource {
        let mut c = SyntheticConfig::front_camera(seed);
        c.format = format;
        SyntheticSource::new(c).unwrap()
    }

    fn frame(src: &mut SyntheticSource, k: u64) -> Vec<u8> {
        let mut buf = vec![0u8; src.desc().bytes()];
        src.render(k, &mut buf).unwrap();
        buf
    }

    #[test]
    fn frames_are_deterministic_and_independent_of_history() {
        let mut a = source(7, PixelFormat::Rgb24);
        let mut b = source(7, PixelFormat::Rgb24);
        // a renders in order, b jumps straight to the frame.
        let mut fa = Vec::new();
        for k in 0..5 {
            fa = frame(&mut a, k * 37);
        }
        let fb = frame(&mut b, 4 * 37);
        assert!(fa == fb, "frame 148 differs with render history");
        assert_eq!(a.ground_truth(148), b.ground_truth(148));
        // Through the Source trait too.
        let mut c = source(7, PixelFormat::Rgb24);
        c.seek(148);
        let mut fc = vec![0u8; c.desc().bytes()];
        let stamp = c.next_frame(&mut fc).unwrap();
        assert!(fc == fb);
        assert_eq!(stamp.source_ns, Some(4_933_333_333));
        assert_eq!(c.frame_index(), 149);
        // Consecutive frames differ (objects move), other seeds differ.
        assert!(frame(&mut b, 149) != fb);
        let mut d = source(8, PixelFormat::Rgb24);
        assert!(frame(&mut d, 148) != fb);
    }

    #[test]
    fn ground_truth_boxes_are_inside_the_image_and_on_the_objects() {
        let mut seen = [0usize; 3];
        for seed in [1u64, 2, 3] {
            let mut src = source(seed, PixelFormat::Rgb24);
            let mut cfg = SyntheticConfig::front_camera(seed);
            cfg.max_objects = 0;
            let mut empty = SyntheticSource::new(cfg).unwrap();
            for k in (0..900).step_by(97) {
                let img = frame(&mut src, k);
                let bg = frame(&mut empty, k);
                let changed = |u: usize, v: usize| {
                    let i = (v * 640 + u) * 3;
                    img[i..i + 3] != bg[i..i + 3]
                };
                for g in src.ground_truth(k) {
                    seen[g.class_id as usize] += 1;
                    let [x0, y0, x1, y1] = g.bbox;
                    assert!(
                        x0 >= 0.0 && y0 >= 0.0 && x1 <= 640.0 && y1 <= 480.0,
                        "{g:?}"
                    );
                    assert!(x1 - x0 >= 1.0 && y1 - y0 >= MIN_BOX_HEIGHT, "{g:?}");
                    assert!(g.visibility >= MIN_VISIBILITY && g.visibility <= 1.0);
                    assert!((g.range - g.ground[0].hypot(g.ground[1])).abs() < 1e-3);
                    let (x0, y0, x1, y1) =
                        (x0 as usize, y0 as usize, x1 as usize - 1, y1 as usize - 1);
                    // Tight: every edge row/column touches the object.
                    assert!((x0..=x1).any(|u| changed(u, y0)), "top edge of {g:?}");
                    assert!((x0..=x1).any(|u| changed(u, y1)), "bottom edge of {g:?}");
                    assert!((y0..=y1).any(|v| changed(x0, v)), "left edge of {g:?}");
                    assert!((y0..=y1).any(|v| changed(x1, v)), "right edge of {g:?}");
                    let inside = (y0..=y1)
                        .flat_map(|v| (x0..=x1).map(move |u| (u, v)))
                        .filter(|&(u, v)| changed(u, v))
                        .count();
                    let area = (x1 - x0 + 1) * (y1 - y0 + 1);
                    assert!(
                        inside * 4 >= area,
                        "{g:?}: only {inside} of {area} pixels show the object"
                    );
                }
            }
        }
        assert!(seen.iter().all(|&n| n >= 3), "class counts {seen:?}");
    }

    #[test]
    fn box_bottom_maps_back_to_the_ground_position() {
        let cal = Calibration::front_camera();
        let mut checked = 0;
        let mut worst = [0.0f64; 3];
        for seed in 0..6u64 {
            let src = source(seed, PixelFormat::Rgb24);
            for k in (0..1800).step_by(13) {
                for g in src.ground_truth(k) {
                    let [x0, _, x1, y1] = g.bbox;
                    let cx = (x0 + x1) * 0.5;
                    // Unoccluded, fully in view, near the image centre.
                    if g.visibility < 0.99
                        || !(200.0..440.0).contains(&cx)
                        || y1 >= 479.0
                        || g.range > 40.0
                    {
                        continue;
                    }
                    let Some(p) = cal.pixel_ray_ground(f64::from(cx) - 0.5, f64::from(y1) - 0.5)
                    else {
                        panic!("{g:?}: box bottom above the horizon");
                    };
                    let err = (p[0] - f64::from(g.ground[0])).hypot(p[1] - f64::from(g.ground[1]));
                    let tol = 0.06 * f64::from(g.range) + 0.1;
                    assert!(
                        err < tol,
                        "seed {seed} frame {k}: {g:?} maps to {p:?}, error {err:.2} m"
                    );
                    checked += 1;
                    let c = g.class_id as usize;
                    worst[c] = worst[c].max(err / f64::from(g.range));
                }
            }
        }
        assert!(checked > 30, "only {checked} objects checked");
        eprintln!("{checked} objects, worst relative error per class {worst:.3?}");
    }

    /// BT.601 limited range back to RGB.
    fn to_rgb(y: u8, u: u8, v: u8) -> [f64; 3] {
        let (y, u, v) = (
            f64::from(y) - 16.0,
            f64::from(u) - 128.0,
            f64::from(v) - 128.0,
        );
        [
            1.164 * y + 1.596 * v,
            1.164 * y - 0.392 * u - 0.813 * v,
            1.164 * y + 2.017 * u,
        ]
        .map(|c| c.clamp(0.0, 255.0))
    }

    fn check_formats(w: usize, h: usize) {
        let cal = Calibration::front_camera().with_image_size(w as u32, h as u32);
        let make = |format| {
            let mut c = SyntheticConfig::front_camera(3);
            c.width = w;
            c.height = h;
            c.calibration = cal.clone();
            c.format = format;
            SyntheticSource::new(c).unwrap()
        };
        let rgb = frame(&mut make(PixelFormat::Rgb24), 40);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::Nv12,
            PixelFormat::Grey,
            PixelFormat::I420,
            PixelFormat::I422,
            PixelFormat::I444,
        ] {
            let out = frame(&mut make(format), 40);
            assert_eq!(out.len(), format.frame_bytes(w, h));
            let mut err = 0.0;
            for y in 0..h {
                for x in 0..w {
                    let (luma, u, v) = match format {
                        PixelFormat::Yuyv => {
                            let o = (y * cw + x / 2) * 4;
                            (out[o + (x % 2) * 2], out[o + 1], out[o + 3])
                        }
                        PixelFormat::Uyvy => {
                            let o = (y * cw + x / 2) * 4;
                            (out[o + 1 + (x % 2) * 2], out[o], out[o + 2])
                        }
                        PixelFormat::Nv12 => {
                            let j = w * h + ((y / 2) * cw + x / 2) * 2;
                            (out[y * w + x], out[j], out[j + 1])
                        }
                        PixelFormat::I420 => {
                            let j = (y / 2) * cw + x / 2;
                            (out[y * w + x], out[w * h + j], out[w * h + cw * ch + j])
                        }
                        PixelFormat::I422 => {
                            let j = y * cw + x / 2;
                            (out[y * w + x], out[w * h + j], out[w * h + cw * h + j])
                        }
                        PixelFormat::I444 => (
                            out[y * w + x],
                            out[w * h + y * w + x],
                            out[2 * w * h + y * w + x],
                        ),
                        _ => (out[y * w + x], 128, 128),
                    };
                    let i = (y * w + x) * 3;
                    let want = [rgb[i], rgb[i + 1], rgb[i + 2]].map(f64::from);
                    if format == PixelFormat::Grey {
                        let expect = 16.0
                            + (65.738 * want[0] + 129.057 * want[1] + 25.064 * want[2]) / 256.0;
                        assert!((f64::from(luma) - expect).abs() <= 1.0);
                        continue;
                    }
                    let got = to_rgb(luma, u, v);
                    err += (0..3).map(|c| (got[c] - want[c]).abs()).sum::<f64>() / 3.0;
                }
            }
            let mean = err / (w * h) as f64;
            // Tiny frames are all chroma edges: only check they convert.
            assert!(
                mean < 4.0 || w * h < 1000,
                "{}: mean abs error {mean:.2} at {w}x{h}",
                format.name()
            );
        }
    }

    #[test]
    fn every_format_converts_back_to_the_rgb_frame() {
        check_formats(640, 480);
    }

    #[test]
    fn odd_sizes_render_without_panic() {
        check_formats(63, 47);
        for (w, h) in [(1, 1), (2, 3), (17, 5)] {
            check_formats(w, h);
        }
        let src = {
            let mut c = SyntheticConfig::front_camera(5);
            c.width = 63;
            c.height = 47;
            c.calibration = c.calibration.with_image_size(63, 47);
            SyntheticSource::new(c).unwrap()
        };
        for k in 0..40 {
            for g in src.ground_truth(k * 11) {
                assert!(g.bbox[2] <= 63.0 && g.bbox[3] <= 47.0);
            }
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_value() {
        let err = |c: SyntheticConfig| match SyntheticSource::new(c) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let mut c = SyntheticConfig::front_camera(0);
        c.width = 320;
        assert!(
            err(c).contains("320x480 does not match calibration builtin:front_camera (640x480)")
        );
        let mut c = SyntheticConfig::front_camera(0);
        c.fps = 0.0;
        assert_eq!(err(c), "synthetic: fps 0 must be a positive number");
        let mut c = SyntheticConfig::front_camera(0);
        c.max_objects = 33;
        assert_eq!(err(c), "synthetic: max_objects 33 exceeds the limit of 32");
        let mut src = source(0, PixelFormat::Yuyv);
        let mut small = vec![0u8; 10];
        assert!(src.next_frame(&mut small).is_err());
        assert_eq!(src.frame_index(), 0);
        assert!(src.skip_frame().is_ok());
        assert_eq!(src.frame_index(), 1);
        assert_eq!(src.pacing(), Pacing::Lockstep);
        assert_eq!(src.describe(), "synthetic seed 0 YUYV 640x480@30");
    }

    #[test]
    fn mot_ground_truth_has_stable_ids_and_true_velocities() {
        let dir = std::env::temp_dir().join(format!("perceptd-mot-{}", std::process::id()));
        write_mot(&dir, 3, 60).unwrap();
        let gt = std::fs::read_to_string(dir.join("gt/gt.txt")).unwrap();
        let ground = std::fs::read_to_string(dir.join("gt/ground.csv")).unwrap();
        let src = SyntheticSource::new(SyntheticConfig::front_camera(3)).unwrap();
        let rows: Vec<Vec<f64>> = gt
            .lines()
            .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
            .collect();
        let g: Vec<Vec<f64>> = ground
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
            .collect();
        assert_eq!(ground.lines().next(), Some("frame,id,x,y,vx,vy"));
        assert_eq!(rows.len(), g.len());
        assert!(rows.len() > 60, "{} boxes in 60 frames", rows.len());
        // The same object keeps its id; ids map one to one to track ids.
        let mut by_id = std::collections::HashMap::new();
        let mut k = 0;
        for frame in 0..60u64 {
            for obj in src.ground_truth(frame) {
                let r = &rows[k];
                assert_eq!(r.len(), 9);
                assert_eq!(r[0], (frame + 1) as f64);
                assert_eq!(
                    *by_id.entry(r[1] as u64).or_insert(obj.track_id),
                    obj.track_id
                );
                assert_eq!([r[2], r[3]], [obj.bbox[0] as f64, obj.bbox[1] as f64]);
                assert_eq!(r[7], f64::from(obj.class_id + 1));
                assert_eq!((g[k][0], g[k][1]), (r[0], r[1]));
                k += 1;
            }
        }
        assert_eq!(k, rows.len());
        // A vehicle's velocity = displacement of its ground point per
        // second, except where the face nearest the camera changes. (The
        // feet of walking pedestrians and cyclists move the ground point
        // back and forth about the body, whose velocity this is.)
        let mut agree = 0;
        let mut pairs = 0;
        for (a, r) in g.iter().zip(&rows) {
            if r[7] != 1.0 {
                continue;
            }
            if let Some(b) = g.iter().find(|b| b[0] == a[0] + 1.0 && b[1] == a[1]) {
                pairs += 1;
                let v = [(b[2] - a[2]) * 30.0, (b[3] - a[3]) * 30.0];
                if (v[0] - a[4]).abs() < 0.2 && (v[1] - a[5]).abs() < 0.2 {
                    agree += 1;
                }
            }
        }
        assert!(pairs > 20 && agree * 10 >= pairs * 9, "{agree} of {pairs}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dataset_is_written_in_yolo_format() {
        let dir = std::env::temp_dir().join(format!("perceptd-synth-{}", std::process::id()));
        write_dataset(&dir, 4, 7, 3).unwrap();
        for k in [0, 3, 6] {
            let bmp = std::fs::read(dir.join(format!("images/{k:06}.bmp"))).unwrap();
            assert_eq!(&bmp[..2], b"BM");
            assert_eq!(bmp.len(), 54 + 640 * 3 * 480);
            let labels = std::fs::read_to_string(dir.join(format!("labels/{k:06}.txt"))).unwrap();
            for line in labels.lines() {
                let f: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
                assert_eq!(f.len(), 5);
                assert!(f[0] == 0.0 || f[0] == 1.0 || f[0] == 2.0);
                assert!(f[1..].iter().all(|&x| (0.0..=1.0).contains(&x)), "{line}");
            }
        }
        assert!(!dir.join("images/000001.bmp").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("classes.txt")).unwrap(),
            "vehicle\npedestrian\ncyclist\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(write_dataset(&dir, 4, 7, 0).is_err());
    }

    #[test]
    fn bmp_layout() {
        // 2x2: rows bottom-up, BGR, each row padded to 8 bytes.
        let rgb = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let b = encode_bmp(&rgb, 2, 2);
        assert_eq!(b.len(), 54 + 16);
        assert_eq!(&b[54..62], &[9, 8, 7, 12, 11, 10, 0, 0]);
        assert_eq!(&b[62..70], &[3, 2, 1, 6, 5, 4, 0, 0]);
        assert_eq!(u32::from_le_bytes([b[2], b[3], b[4], b[5]]), 70);
    }

    #[test]
    fn objects_stand_on_the_ground_in_the_image() {
        // A ground-truth box's bottom edge is where the object's ground
        // point projects (within a few pixels) for unoccluded objects.
        let cal = Calibration::front_camera();
        let src = source(11, PixelFormat::Rgb24);
        let mut n = 0;
        for k in (0..600).step_by(29) {
            for g in src.ground_truth(k) {
                if g.visibility < 0.99 || g.bbox[3] >= 479.0 {
                    continue;
                }
                let p = cal
                    .project(Vector3::new(
                        f64::from(g.ground[0]),
                        f64::from(g.ground[1]),
                        0.0,
                    ))
                    .unwrap();
                assert!(
                    p[0] >= f64::from(g.bbox[0]) - 3.0 && p[0] <= f64::from(g.bbox[2]) + 3.0,
                    "{g:?} {p:?}"
                );
                assert!(
                    (p[1] + 0.5 - f64::from(g.bbox[3])).abs()
                        < 0.1 * f64::from(g.bbox[3] - g.bbox[1]) + 3.0,
                    "{g:?} {p:?}"
                );
                n += 1;
            }
        }
        assert!(n > 10);
    }
}
