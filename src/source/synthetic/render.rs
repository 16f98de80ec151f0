//! Rendering the synthetic scene through a calibration by inverse mapping:
//! every output pixel has a precomputed ray (undistorted through the lens
//! model) and precomputed ground-texture coordinates, so the per-frame work
//! is a texture fetch for the background plus ray casts against the objects
//! inside their projected rectangles.
//!
//! [`View::new`] and [`GroundTexture::new`] are boot (they allocate);
//! [`View::render`] and [`View::raster`] write into caller-owned buffers and
//! never allocate. Called on the capture thread and by ground truth.

use super::scene::{mix, BackdropKind, Object, Prim, Scene, Shape, World, MAX_OBJECTS, MAX_PRIMS};
use super::texture::{
    texture_row, wall_offset, world_tex_offset, GroundTexture, WallTexture, NLX, NLY, TEXEL, TEX_H,
    TEX_W, WALL_H, WALL_LEVELS, WALL_RES, WALL_W,
};
use crate::calibration::Calibration;
use nalgebra::Vector3;

/// Pixel kinds of the static background.
const KIND_SKY: u8 = 0;
const KIND_GROUND: u8 = 1;
const KIND_VOID: u8 = 2;

/// Distance quantisation for fog: index = DQ_SCALE * ln(1 + d / DQ_D0).
const DQ_D0: f64 = 5.0;
const DQ_SCALE: f64 = 36.0;

/// Optical depth (m) below which object geometry is clipped when finding
/// its screen rectangle.
const NEAR_CLIP: f64 = 0.05;

/// A pixel rectangle, [x0, x1) x [y0, y1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Rect {
    fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }
    fn union(self, o: Rect) -> Rect {
        if self.is_empty() {
            return o;
        }
        if o.is_empty() {
            return self;
        }
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
    fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1
    }
}

/// Per-pixel background description.
#[derive(Debug, Clone, Copy, Default)]
struct BgPixel {
    /// Ground: index in the texture store of the texel at x = 0 of this
    /// pixel's level and lateral row.
    row: u32,
    /// Ground: log2 of the level's column height (texels per x step).
    hshift: u8,
    /// Ground: x in texels of its level, 16.16 fixed point, in [0, width).
    x: u32,
    kind: u8,
    /// Ground: x mip level.
    lx: u8,
    /// Ground: quantised distance (fog). Sky: quantised elevation.
    q: u8,
    /// Backdrop in front of the ground/sky here: 0 none, 1 + side.
    wall: u8,
    /// Backdrop: level, height index (0.1 m) and quantised distance.
    wall_level: u8,
    wall_z: u8,
    wall_q: u8,
    /// Backdrop: x in texels of its level, 16.16 fixed point.
    wall_x: u32,
    /// Backdrop: index of the texel at x = 0 of this pixel's side, level
    /// and height.
    wall_base: u32,
}

/// Static per-pixel geometry and the per-frame scratch the renderer needs.
pub(crate) struct View {
    pub w: usize,
    pub h: usize,
    pub cam: [f32; 3],
    pub calib: Calibration,
    /// Unit ray per pixel, vehicle frame; zero where the lens has no ray.
    pub ray: Vec<[f32; 3]>,
    bg: Vec<BgPixel>,
    tex: GroundTexture,
    wall: WallTexture,
}

/// Per-frame lookups derived from the scene's lighting.
struct FrameLut {
    sky: [[u8; 3]; 256],
    /// Ground colour by fog index: (texel * mul + add) >> 16, gain and
    /// haze folded together.
    mul: [[u32; 3]; 256],
    add: [[u32; 3]; 256],
    /// Texture scroll per x level, 16.16 fixed point texels.
    shift: [u32; NLX],
    /// Backdrop scroll per level, 16.16 fixed point texels.
    wall_shift: [u32; WALL_LEVELS],
}

/// Per-pixel object buffers: nearest object (index + 1, 0 = none), its
/// primitive, and the hit distance.
pub(crate) struct ObjBuffers {
    pub ids: Vec<u8>,
    pub prim: Vec<u8>,
    pub depth: Vec<f32>,
    /// Screen rectangle each object was rasterised in (frame-local).
    pub rects: [Rect; MAX_OBJECTS],
}

impl ObjBuffers {
    pub fn new(n: usize) -> ObjBuffers {
        ObjBuffers {
            ids: vec![0; n],
            prim: vec![0; n],
            depth: vec![0.0; n],
            rects: [Rect::default(); MAX_OBJECTS],
        }
    }
}

/// An object's pose for ray casting: local origin of the camera and the
/// rotation into the local frame.
#[derive(Clone, Copy)]
struct Pose {
    o: [f32; 3],
    c: f32,
    s: f32,
}

impl Pose {
    fn new(cam: [f32; 3], obj: &Object) -> Pose {
        let (s, c) = obj.yaw.sin_cos();
        let dx = f64::from(cam[0]) - obj.pos[0];
        let dy = f64::from(cam[1]) - obj.pos[1];
        Pose {
            o: [(c * dx + s * dy) as f32, (-s * dx + c * dy) as f32, cam[2]],
            c: c as f32,
            s: s as f32,
        }
    }
    #[inline(always)]
    fn dir(&self, d: [f32; 3]) -> [f32; 3] {
        [
            self.c * d[0] + self.s * d[1],
            -self.s * d[0] + self.c * d[1],
            d[2],
        ]
    }
    fn vec_to_local(&self, v: [f32; 3]) -> [f32; 3] {
        self.dir(v)
    }
}

/// Nearest positive hit of a ray (unit `d`, `inv` = 1 / d per component)
/// with a shape: (t, face code).
#[inline(always)]
fn intersect(shape: &Shape, o: [f32; 3], d: [f32; 3], inv: [f32; 3]) -> Option<(f32, u8)> {
    match *shape {
        Shape::Box { min, max } => {
            let mut tn = f32::NEG_INFINITY;
            let mut tf = f32::INFINITY;
            let mut axis = 0u8;
            for i in 0..3 {
                if d[i].abs() < 1e-9 {
                    if o[i] < min[i] || o[i] > max[i] {
                        return None;
                    }
                    continue;
                }
                let t0 = (min[i] - o[i]) * inv[i];
                let t1 = (max[i] - o[i]) * inv[i];
                let (a, b) = if t0 < t1 { (t0, t1) } else { (t1, t0) };
                if a > tn {
                    tn = a;
                    axis = i as u8;
                }
                tf = tf.min(b);
            }
            (tn <= tf && tn > 0.0).then_some((tn, axis))
        }
        Shape::Sphere { c, r } => {
            let oc = [o[0] - c[0], o[1] - c[1], o[2] - c[2]];
            let b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2];
            // Closest approach computed directly: no cancellation at range.
            let p = [oc[0] - b * d[0], oc[1] - b * d[1], oc[2] - b * d[2]];
            let h2 = r * r - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
            if h2 < 0.0 {
                return None;
            }
            let t = -b - h2.sqrt();
            (t > 0.0).then_some((t, 0))
        }
        Shape::CylY {
            cx,
            cz,
            r,
            r_in,
            y0,
            y1,
        } => {
            let (ox, oz) = (o[0] - cx, o[2] - cz);
            let mut best = f32::INFINITY;
            let mut code = 0u8;
            let a = d[0] * d[0] + d[2] * d[2];
            if a > 1e-12 {
                let b = (ox * d[0] + oz * d[2]) / a;
                let (px, pz) = (ox - b * d[0], oz - b * d[2]);
                let h2 = r * r - (px * px + pz * pz);
                if h2 >= 0.0 {
                    let t = -b - (h2 / a).sqrt();
                    let y = o[1] + t * d[1];
                    if t > 0.0 && y >= y0 && y <= y1 {
                        best = t;
                    }
                }
            }
            if d[1].abs() > 1e-9 {
                for yc in [y0, y1] {
                    let t = (yc - o[1]) / d[1];
                    if t > 0.0 && t < best {
                        let (hx, hz) = (ox + t * d[0], oz + t * d[2]);
                        let q = hx * hx + hz * hz;
                        if q <= r * r && q >= r_in * r_in {
                            best = t;
                            code = 1;
                        }
                    }
                }
            }
            best.is_finite().then_some((best, code))
        }
    }
}

/// Outward unit normal at hit point `p` (local frame).
fn normal(shape: &Shape, p: [f32; 3], code: u8, d: [f32; 3]) -> [f32; 3] {
    match *shape {
        Shape::Box { .. } => {
            let mut n = [0.0; 3];
            let a = code as usize;
            n[a] = if d[a] > 0.0 { -1.0 } else { 1.0 };
            n
        }
        Shape::Sphere { c, r } => {
            let inv = 1.0 / r.max(1e-6);
            [
                (p[0] - c[0]) * inv,
                (p[1] - c[1]) * inv,
                (p[2] - c[2]) * inv,
            ]
        }
        Shape::CylY { cx, cz, r, .. } => {
            if code == 1 {
                [0.0, if d[1] > 0.0 { -1.0 } else { 1.0 }, 0.0]
            } else {
                let inv = 1.0 / r.max(1e-6);
                [(p[0] - cx) * inv, 0.0, (p[2] - cz) * inv]
            }
        }
    }
}

impl View {
    /// Precompute rays and background lookups for every pixel. Boot only.
    pub fn new(calib: &Calibration, world: &World) -> View {
        let (w, h) = (calib.width() as usize, calib.height() as usize);
        let t = calib.translation();
        let cam = [t.x as f32, t.y as f32, t.z as f32];
        let n = w * h;
        let mut ray = vec![[0.0f32; 3]; n];
        let mut ground = vec![[f64::NAN; 2]; n];
        let mut dist = vec![f64::INFINITY; n];
        let mut bg = vec![BgPixel::default(); n];
        // Backdrop hit per pixel: x along the wall, or NaN.
        let mut wall_x = vec![f64::NAN; n];
        let wall_top = WALL_H as f64 * WALL_RES;
        for v in 0..h {
            for u in 0..w {
                let i = v * w + u;
                let Some(d) = calib.pixel_ray(u as f64, v as f64) else {
                    bg[i].kind = KIND_VOID;
                    continue;
                };
                ray[i] = [d.x as f32, d.y as f32, d.z as f32];
                let ground_t = if d.z < 0.0 && t.z > 0.0 {
                    -t.z / d.z
                } else {
                    f64::INFINITY
                };
                for (side, bd) in world.backdrop.iter().enumerate() {
                    if bd.kind == BackdropKind::Open || d.y == 0.0 {
                        continue;
                    }
                    let tw = (bd.y - t.y) / d.y;
                    let z = t.z + tw * d.z;
                    // The wall counts only where it stands in front of the ground.
                    if tw > 0.0 && tw < ground_t && (0.0..wall_top).contains(&z) {
                        wall_x[i] = t.x + tw * d.x;
                        bg[i].wall = side as u8 + 1;
                        bg[i].wall_z = (z / WALL_RES) as u8;
                        let dw = tw * d.x.hypot(d.y);
                        bg[i].wall_q = (DQ_SCALE * (1.0 + dw / DQ_D0).ln()).min(255.0) as u8;
                    }
                }
                if d.z < 0.0 && t.z > 0.0 {
                    let s = -t.z / d.z;
                    ground[i] = [t.x + s * d.x, t.y + s * d.y];
                    dist[i] = s * (d.x * d.x + d.y * d.y).sqrt();
                    bg[i].kind = KIND_GROUND;
                } else {
                    bg[i].kind = KIND_SKY;
                    let e = d.z.clamp(0.0, 1.0).asin() / std::f64::consts::FRAC_PI_2;
                    bg[i].q = (e * 255.0).round() as u8;
                }
            }
        }
        // Texture level from the ground footprint of each pixel.
        let g_at = |u: usize, v: usize| ground[v * w + u];
        for v in 0..h {
            for u in 0..w {
                let i = v * w + u;
                if bg[i].kind != KIND_GROUND {
                    continue;
                }
                let g = ground[i];
                let mut fx: f64 = 0.0;
                let mut fy: f64 = 0.0;
                let neighbours = [
                    (u + 1 < w).then(|| g_at(u + 1, v)),
                    (u > 0).then(|| g_at(u - 1, v)),
                    (v + 1 < h).then(|| g_at(u, v + 1)),
                    (v > 0).then(|| g_at(u, v - 1)),
                ];
                let mut any = false;
                for q in neighbours.into_iter().flatten() {
                    if q[0].is_finite() {
                        fx = fx.max((q[0] - g[0]).abs());
                        fy = fy.max((q[1] - g[1]).abs());
                        any = true;
                    }
                }
                if !any {
                    fx = 1e3;
                    fy = 1e3;
                }
                let level = |f: f64, max: usize| {
                    ((f / TEXEL).max(1.0).log2().round() as usize).min(max - 1)
                };
                let (lx, ly) = (level(fx, NLX), level(fy, NLY));
                let row0 = texture_row(g[1]);
                bg[i].row = (world_tex_offset(lx, ly) + (row0 >> ly)) as u32;
                bg[i].hshift = (TEX_H >> ly).trailing_zeros() as u8;
                // Keep x positive for the integer wrap: add a multiple of
                // every level's width.
                let x = (g[0] / TEXEL / f64::from(1u32 << lx)).rem_euclid((TEX_W >> lx) as f64);
                bg[i].x = (x * 65536.0) as u32;
                bg[i].lx = lx as u8;
                bg[i].q = (DQ_SCALE * (1.0 + dist[i] / DQ_D0).ln()).min(255.0) as u8;
            }
        }
        // Backdrop level from the footprint along the wall.
        for v in 0..h {
            for u in 0..w {
                let i = v * w + u;
                if bg[i].wall == 0 {
                    continue;
                }
                let x = wall_x[i];
                let mut f: f64 = 0.0;
                for (du, dv) in [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)] {
                    let (uu, vv) = (u as i64 + du, v as i64 + dv);
                    if uu < 0 || vv < 0 || uu >= w as i64 || vv >= h as i64 {
                        continue;
                    }
                    let j = vv as usize * w + uu as usize;
                    if bg[j].wall == bg[i].wall {
                        f = f.max((wall_x[j] - x).abs());
                    }
                }
                let level =
                    (((f / WALL_RES).max(1.0).log2() * 0.5).round() as usize).min(WALL_LEVELS - 1);
                let side = usize::from(bg[i].wall - 1);
                let cols = (WALL_W >> (2 * level)) as f64;
                let xl = (x / WALL_RES / f64::from(1u32 << (2 * level))).rem_euclid(cols);
                bg[i].wall_x = (xl * 65536.0) as u32;
                bg[i].wall_level = level as u8;
                bg[i].wall_base = (wall_offset(side, level) + usize::from(bg[i].wall_z)) as u32;
            }
        }
        View {
            w,
            h,
            cam,
            calib: calib.clone(),
            ray,
            bg,
            tex: GroundTexture::new(world),
            wall: WallTexture::new(world),
        }
    }

    fn frame_lut(&self, scene: &Scene) -> FrameLut {
        let env = &scene.env;
        let mut sky = [[0u8; 3]; 256];
        for (i, s) in sky.iter_mut().enumerate() {
            let e = (i as f32 / 255.0).powf(0.6);
            for ((out, h), z) in s.iter_mut().zip(env.sky_horizon).zip(env.sky_zenith) {
                *out = (h + (z - h) * e).clamp(0.0, 255.0) as u8;
            }
        }
        let mut mul = [[0u32; 3]; 256];
        let mut add = [[0u32; 3]; 256];
        for i in 0..256 {
            let d = DQ_D0 * ((i as f64 / DQ_SCALE).exp() - 1.0);
            let k = if i == 255 {
                1.0
            } else {
                1.0 - (-d / f64::from(env.fog_dist)).exp()
            };
            let f = (k * 256.0).round() as u32;
            for c in 0..3 {
                mul[i][c] = (env.ground_gain[c] * 256.0) as u32 * (256 - f);
                add[i][c] = (env.sky_horizon[c].clamp(0.0, 255.0) as u32) * f * 256 + 32768;
            }
        }
        let mut shift = [0u32; NLX];
        let s0 = scene.ego_s.rem_euclid(TEX_W as f64 * TEXEL) / TEXEL;
        for (l, sh) in shift.iter_mut().enumerate() {
            *sh = (s0 / f64::from(1u32 << l) * 65536.0) as u32;
        }
        let mut wall_shift = [0u32; WALL_LEVELS];
        let w0 = scene.ego_s.rem_euclid(WALL_W as f64 * WALL_RES) / WALL_RES;
        for (l, sh) in wall_shift.iter_mut().enumerate() {
            *sh = (w0 / f64::from(1u32 << (2 * l)) * 65536.0) as u32;
        }
        FrameLut {
            sky,
            mul,
            add,
            shift,
            wall_shift,
        }
    }

    /// Render `scene` into `rgb` (w*h*3), using `buf` as scratch.
    /// Frame path: never allocates.
    pub fn render(&self, scene: &Scene, buf: &mut ObjBuffers, rgb: &mut [u8]) {
        let lut = self.frame_lut(scene);
        self.background(&lut, rgb);
        for obj in scene.objects() {
            self.shadow(obj, rgb);
        }
        self.raster(scene, buf);
        for (i, obj) in scene.objects().iter().enumerate() {
            self.shade(i, obj, scene, buf, rgb);
        }
    }

    fn background(&self, lut: &FrameLut, rgb: &mut [u8]) {
        let tex = &self.tex.data;
        for (px, out) in self.bg.iter().zip(rgb.chunks_exact_mut(3)) {
            if px.wall != 0 {
                let l = usize::from(px.wall_level) & (WALL_LEVELS - 1);
                let xi = ((px.wall_x.wrapping_add(lut.wall_shift[l]) >> 16) as usize)
                    & ((WALL_W >> (2 * l)) - 1);
                let side = usize::from(px.wall - 1) & 1;
                let top = self
                    .wall
                    .height
                    .get(side * WALL_W + (xi << (2 * l)))
                    .copied()
                    .unwrap_or(0);
                if px.wall_z < top {
                    let t = self
                        .wall
                        .data
                        .get(px.wall_base as usize + xi * WALL_H)
                        .copied()
                        .unwrap_or([0; 3]);
                    let (m, a) = (&lut.mul[px.wall_q as usize], &lut.add[px.wall_q as usize]);
                    for c in 0..3 {
                        out[c] = ((u32::from(t[c]) * m[c] + a[c]) >> 16).min(255) as u8;
                    }
                    continue;
                }
            }
            match px.kind {
                KIND_GROUND => {
                    let l = (px.lx as usize) & (NLX - 1);
                    let mask = (TEX_W >> l) - 1;
                    let xi = ((px.x.wrapping_add(lut.shift[l]) >> 16) as usize) & mask;
                    let t = tex
                        .get(px.row as usize + (xi << px.hshift))
                        .copied()
                        .unwrap_or([0; 3]);
                    let (m, a) = (&lut.mul[px.q as usize], &lut.add[px.q as usize]);
                    for c in 0..3 {
                        out[c] = ((u32::from(t[c]) * m[c] + a[c]) >> 16).min(255) as u8;
                    }
                }
                KIND_SKY => out.copy_from_slice(&lut.sky[px.q as usize]),
                _ => out.copy_from_slice(&[0, 0, 0]),
            }
        }
    }

    /// Screen rectangle covering the box given by local bounds of `obj`
    /// (grid points projected, clipped at the camera's near plane, padded).
    /// None when it is entirely behind the camera; the full image when
    /// part of it has no projection (lens fold-back region).
    fn project_rect(&self, obj: &Object, lo: [f32; 3], hi: [f32; 3]) -> Option<Rect> {
        let full = Rect {
            x0: 0,
            y0: 0,
            x1: self.w,
            y1: self.h,
        };
        let (s, c) = obj.yaw.sin_cos();
        let t = self.calib.translation();
        let axis = self.calib.optical_to_vehicle().column(2).into_owned();
        // A 3x3x3 grid: corners, edge midpoints, face centres.
        let mut pts = [Vector3::zeros(); 27];
        let mut depth = [0.0f64; 27];
        for (k, (p, z)) in pts.iter_mut().zip(depth.iter_mut()).enumerate() {
            let f = [k % 3, (k / 3) % 3, k / 9].map(|i| i as f32 * 0.5);
            let l = [0, 1, 2].map(|a| f64::from(lo[a] + (hi[a] - lo[a]) * f[a]));
            *p = Vector3::new(
                obj.pos[0] + c * l[0] - s * l[1],
                obj.pos[1] + s * l[0] + c * l[1],
                l[2],
            );
            *z = axis.dot(&(*p - t));
        }
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        let mut add = |p: Vector3<f64>| match self.calib.project(p) {
            Some(q) => {
                min = [min[0].min(q[0]), min[1].min(q[1])];
                max = [max[0].max(q[0]), max[1].max(q[1])];
                true
            }
            None => false,
        };
        let mut any = false;
        for k in 0..27 {
            if depth[k] > NEAR_CLIP {
                any = true;
                if !add(pts[k]) {
                    return Some(full);
                }
            }
            // Grid edges crossing the near plane: add the crossing point,
            // so an object beside the camera gets a rectangle reaching to
            // the image border rather than the whole image.
            for step in [1, 3, 9] {
                let j = k + step;
                let same_line = match step {
                    1 => k % 3 != 2,
                    3 => (k / 3) % 3 != 2,
                    _ => k / 9 != 2,
                };
                if !same_line || (depth[k] > NEAR_CLIP) == (depth[j] > NEAR_CLIP) {
                    continue;
                }
                let f = (NEAR_CLIP * 1.01 - depth[k]) / (depth[j] - depth[k]);
                if !add(pts[k] + (pts[j] - pts[k]) * f) {
                    return Some(full);
                }
            }
        }
        if !any {
            return None;
        }
        let pad = 2.0 + 0.02 * (max[0] - min[0]).max(max[1] - min[1]);
        let clampx = |v: f64| v.clamp(0.0, self.w as f64) as usize;
        let clampy = |v: f64| v.clamp(0.0, self.h as f64) as usize;
        let r = Rect {
            x0: clampx((min[0] - pad).floor()),
            y0: clampy((min[1] - pad).floor()),
            x1: clampx((max[0] + pad).ceil() + 1.0),
            y1: clampy((max[1] + pad).ceil() + 1.0),
        };
        Some(r)
    }

    /// Soft contact shadow under an object, darkening the ground.
    fn shadow(&self, obj: &Object, rgb: &mut [u8]) {
        let [a, b] = obj.shadow;
        let Some(rect) = self.project_rect(obj, [-a, -b, 0.0], [a, b, 0.0]) else {
            return;
        };
        let (s, c) = obj.yaw.sin_cos();
        let (s, c) = (s as f32, c as f32);
        let (px, py) = (obj.pos[0] as f32, obj.pos[1] as f32);
        let (ia, ib) = (1.0 / a, 1.0 / b);
        for v in rect.y0..rect.y1 {
            for u in rect.x0..rect.x1 {
                let i = v * self.w + u;
                if self.bg[i].kind != KIND_GROUND {
                    continue;
                }
                let d = self.ray[i];
                let t = -self.cam[2] / d[2];
                let gx = self.cam[0] + t * d[0] - px;
                let gy = self.cam[1] + t * d[1] - py;
                let lx = (c * gx + s * gy) * ia;
                let ly = (-s * gx + c * gy) * ib;
                let q = lx * lx + ly * ly;
                if q >= 1.0 {
                    continue;
                }
                let k = 1.0 - 0.6 * (1.0 - q) * (1.0 - q).min(0.6) / 0.6;
                let kk = (k * 256.0) as u32;
                for ch in &mut rgb[i * 3..i * 3 + 3] {
                    *ch = ((u32::from(*ch) * kk) >> 8) as u8;
                }
            }
        }
    }

    /// Ray-cast every object inside its projected rectangle, keeping the
    /// nearest hit per pixel in `buf`. Frame path: never allocates.
    pub fn raster(&self, scene: &Scene, buf: &mut ObjBuffers) {
        buf.ids.fill(0);
        for (oi, obj) in scene.objects().iter().enumerate() {
            self.raster_object(oi, obj, buf);
        }
    }

    /// The object's primitives with parts thinner than about one pixel at
    /// the object's distance thickened to that, so that tyres and frames
    /// seen edge-on do not fall between pixel centres.
    fn thickened(&self, obj: &Object) -> [Prim; MAX_PRIMS] {
        let dx = obj.pos[0] - f64::from(self.cam[0]);
        let dy = obj.pos[1] - f64::from(self.cam[1]);
        let k = self.calib.camera_matrix();
        let m = (dx.hypot(dy) / k[(0, 0)].min(k[(1, 1)])) as f32;
        let mut out = obj.prims;
        for p in out.iter_mut().take(obj.n_prims) {
            p.shape = match p.shape {
                Shape::Box { mut min, mut max } => {
                    for a in 0..3 {
                        let grow = (m - (max[a] - min[a])).max(0.0) * 0.5;
                        min[a] -= grow;
                        max[a] += grow;
                    }
                    Shape::Box { min, max }
                }
                Shape::CylY {
                    cx,
                    cz,
                    r,
                    r_in,
                    y0,
                    y1,
                } => {
                    let grow = (m - (y1 - y0)).max(0.0) * 0.5;
                    let r = r.max(m * 0.5);
                    let r_in = if r_in > 0.0 {
                        r_in.min(r - m).max(0.0)
                    } else {
                        0.0
                    };
                    Shape::CylY {
                        cx,
                        cz,
                        r,
                        r_in,
                        y0: y0 - grow,
                        y1: y1 + grow,
                    }
                }
                Shape::Sphere { c, r } => Shape::Sphere {
                    c,
                    r: r.max(m * 0.5),
                },
            };
        }
        out
    }

    /// Ray-cast one object into `buf` (depth-tested against what is there).
    pub fn raster_object(&self, oi: usize, obj: &Object, buf: &mut ObjBuffers) {
        self.raster_object_in(oi, obj, buf, false);
    }

    /// `whole_image`: test every pixel instead of the projected rectangles
    /// (the reference the rectangles are tested against).
    fn raster_object_in(&self, oi: usize, obj: &Object, buf: &mut ObjBuffers, whole_image: bool) {
        let id = (oi + 1) as u8;
        let pose = Pose::new(self.cam, obj);
        let thick = self.thickened(obj);
        let prims = &thick[..obj.n_prims];
        let mut rect = Rect::default();
        let mut prect = [Rect::default(); MAX_PRIMS];
        for (pi, p) in prims.iter().enumerate() {
            let (lo, hi) = p.shape.bounds();
            let r = if whole_image {
                Some(Rect {
                    x0: 0,
                    y0: 0,
                    x1: self.w,
                    y1: self.h,
                })
            } else {
                self.project_rect(obj, lo, hi)
            };
            if let Some(r) = r {
                prect[pi] = r;
                rect = rect.union(r);
            }
        }
        buf.rects[oi] = rect;
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in prims {
            let (a, b) = p.shape.bounds();
            for k in 0..3 {
                lo[k] = lo[k].min(a[k]);
                hi[k] = hi[k].max(b[k]);
            }
        }
        let bounds = Shape::Box { min: lo, max: hi };
        for v in rect.y0..rect.y1 {
            for u in rect.x0..rect.x1 {
                let i = v * self.w + u;
                let d = self.ray[i];
                if d == [0.0; 3] {
                    continue;
                }
                let dl = pose.dir(d);
                let inv = dl.map(|c| 1.0 / c);
                if intersect(&bounds, pose.o, dl, inv).is_none() {
                    continue;
                }
                let mut best = if buf.ids[i] != 0 {
                    buf.depth[i]
                } else {
                    f32::INFINITY
                };
                let mut hit = None;
                for (pi, p) in prims.iter().enumerate() {
                    if !prect[pi].contains(u, v) {
                        continue;
                    }
                    if let Some((t, _)) = intersect(&p.shape, pose.o, dl, inv) {
                        if t < best {
                            best = t;
                            hit = Some(pi);
                        }
                    }
                }
                if let Some(pi) = hit {
                    buf.ids[i] = id;
                    buf.prim[i] = pi as u8;
                    buf.depth[i] = best;
                }
            }
        }
    }

    /// Shade the visible pixels of object `oi`.
    fn shade(&self, oi: usize, obj: &Object, scene: &Scene, buf: &ObjBuffers, rgb: &mut [u8]) {
        let env = &scene.env;
        let id = (oi + 1) as u8;
        let pose = Pose::new(self.cam, obj);
        let sun = pose.vec_to_local(env.sun_dir);
        let range =
            (obj.pos[0] - f64::from(self.cam[0])).hypot(obj.pos[1] - f64::from(self.cam[1]));
        let fog = (1.0 - (-range / f64::from(env.fog_dist)).exp()) as f32;
        let rect = buf.rects[oi];
        let key = obj.noise_key;
        let thick = self.thickened(obj);
        let prims = &thick[..obj.n_prims];
        for v in rect.y0..rect.y1 {
            for u in rect.x0..rect.x1 {
                let i = v * self.w + u;
                if buf.ids[i] != id {
                    continue;
                }
                let Some(p) = prims.get(buf.prim[i] as usize) else {
                    continue;
                };
                let dl = pose.dir(self.ray[i]);
                let Some((t, code)) = intersect(&p.shape, pose.o, dl, dl.map(|c| 1.0 / c)) else {
                    continue;
                };
                let h = [
                    pose.o[0] + t * dl[0],
                    pose.o[1] + t * dl[1],
                    pose.o[2] + t * dl[2],
                ];
                let n = normal(&p.shape, h, code, dl);
                let lambert = (n[0] * sun[0] + n[1] * sun[1] + n[2] * sun[2]).max(0.0);
                let facing = -(n[0] * dl[0] + n[1] * dl[1] + n[2] * dl[2]);
                let light =
                    env.ambient * (0.72 + 0.28 * n[2]) + env.sun * lambert + 0.12 * facing.max(0.0);
                let q = |x: f32| (x * 25.0).floor() as i32 as u32 as u64;
                let hn = mix(u64::from(key) ^ q(h[0]) ^ (q(h[1]) << 21) ^ (q(h[2]) << 42));
                let noise = ((hn >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                let k = light * (1.0 + p.tex * noise);
                for c in 0..3 {
                    let col = p.rgb[c] * k;
                    let col = col + (env.sky_horizon[c] - col) * fog;
                    rgb[i * 3 + c] = col.clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scene::build_scene;
    use super::*;

    fn check_rects_cover_every_hit(calib: &Calibration, seeds: std::ops::Range<u64>) {
        let (w, h) = (calib.width() as usize, calib.height() as usize);
        let mut scene = Scene::new();
        let mut fast = ObjBuffers::new(w * h);
        let mut slow = ObjBuffers::new(w * h);
        let t = calib.translation();
        let mut objects = 0;
        for seed in seeds {
            let world = World::new(seed);
            let view = View::new(calib, &world);
            for k in (0..3000).step_by(211) {
                build_scene(&world, 32, 30.0, k, [t.x, t.y], &mut scene);
                view.raster(&scene, &mut fast);
                slow.ids.fill(0);
                for (oi, obj) in scene.objects().iter().enumerate() {
                    view.raster_object_in(oi, obj, &mut slow, true);
                }
                objects += scene.objects().len();
                assert!(
                    fast.ids == slow.ids,
                    "seed {seed} frame {k}: rectangles miss object pixels"
                );
            }
        }
        assert!(objects > 50);
    }

    #[test]
    fn projected_rectangles_cover_every_object_pixel() {
        check_rects_cover_every_hit(&Calibration::front_camera(), 0..3);
    }

    #[test]
    fn projected_rectangles_cover_every_object_pixel_through_a_fisheye() {
        let yaml = include_str!("../../../calibration/front_camera.yaml")
            .replace(
                "distortion_model: plumb_bob",
                "distortion_model: equidistant",
            )
            .replace(
                "  cols: 5\n  data: [-0.05, 0.01, 0.0, 0.0, 0.0]",
                "  cols: 4\n  data: [0.1, -0.05, 0.01, 0.0]",
            )
            .replace(
                "[500.0, 0.0, 319.5, 0.0, 500.0, 239.5",
                "[200.0, 0.0, 319.5, 0.0, 200.0, 239.5",
            )
            .replace("image_width: 640", "image_width: 320")
            .replace("image_height: 480", "image_height: 240")
            .replace(
                "rotation_rpy_deg: [0.0, 5.0, 0.0]",
                "rotation_rpy_deg: [0.0, 5.0, 40.0]",
            );
        let calib = Calibration::from_yaml_str(&yaml, "fisheye").unwrap();
        check_rects_cover_every_hit(&calib, 3..5);
    }
}
