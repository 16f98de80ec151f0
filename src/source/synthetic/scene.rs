//! The synthetic world as a pure function of (seed, frame index): the road
//! layout and ego speed (per seed), lighting (per 10 s segment), and the
//! objects (each of a fixed number of slots lives through a sequence of
//! "lives" whose parameters are hashed from (seed, slot, life)). Nothing
//! here depends on which frames were built before.
//!
//! Building a scene fills a caller-owned [`Scene`] in place: no allocation.
//! Called on the capture thread (frame path) and by ground truth.

use std::f64::consts::{FRAC_PI_2, PI};

/// Most objects (slots) a scene holds.
pub(crate) const MAX_OBJECTS: usize = 32;
/// Most primitives one object is built from.
pub(crate) const MAX_PRIMS: usize = 16;
/// Lighting changes every this many seconds of scene time.
const ENV_SEGMENT_S: f64 = 10.0;

pub(crate) const CLASS_VEHICLE: u8 = 0;
pub(crate) const CLASS_PEDESTRIAN: u8 = 1;
pub(crate) const CLASS_CYCLIST: u8 = 2;

/// splitmix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator seeded from a tuple of keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, a: u64, b: u64, c: u64) -> Rng {
        Rng(mix(mix(
            mix(seed ^ 0x5EED) ^ a.wrapping_mul(0xA24B_AED4_963E_E407)
        ) ^ b.rotate_left(17)
            ^ c.rotate_left(41)))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn pick(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn sign(&mut self) -> f64 {
        if self.chance(0.5) {
            1.0
        } else {
            -1.0
        }
    }
}

/// What lies beside the road on one side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verge {
    Grass,
    /// Concrete sidewalk of this width (m) after a kerb, then grass.
    Sidewalk(f64),
}

/// Road layout and ground look, fixed per seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Road {
    pub lane_w: f64,
    /// Lanes in the ego direction (right of the centre line) and against it.
    pub n_same: usize,
    pub n_opp: usize,
    /// Ego lane among the same-direction lanes, 0 = rightmost.
    pub ego_lane: usize,
    /// y of the road's right and left edges (ego lane centre is y = 0).
    pub right: f64,
    pub left: f64,
    pub verge_right: Verge,
    pub verge_left: Verge,
    pub asphalt: [f32; 3],
    pub grass: [f32; 3],
    pub concrete: [f32; 3],
    /// Centre line colour (white or yellow).
    pub centre_line: [f32; 3],
}

impl Road {
    /// y of lane `k` counted from the rightmost same-direction lane.
    pub fn lane_centre(&self, k: usize) -> f64 {
        (k as f64 - self.ego_lane as f64) * self.lane_w
    }
    /// Lateral position of the sidewalk (or verge) centre on a side.
    pub fn walk_y(&self, left: bool, rng: &mut Rng) -> f64 {
        let (edge, verge, s) = if left {
            (self.left, self.verge_left, 1.0)
        } else {
            (self.right, self.verge_right, -1.0)
        };
        let off = match verge {
            Verge::Sidewalk(w) => 0.3 + rng.range(0.25, (w - 0.25).max(0.3)),
            Verge::Grass => rng.range(0.8, 2.5),
        };
        edge + s * off
    }
}

/// What stands far beside the road on one side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BackdropKind {
    Open,
    Trees,
    Buildings,
}

/// A row of trees or buildings along one side, as a vertical surface at
/// lateral position `y` (beyond every object).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backdrop {
    pub kind: BackdropKind,
    pub y: f64,
}

/// Everything fixed per seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct World {
    pub seed: u64,
    pub road: Road,
    /// Ego speed along +x (m/s).
    pub ego_speed: f64,
    /// Right (y < 0) and left (y > 0) backdrops.
    pub backdrop: [Backdrop; 2],
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut r = Rng::new(seed, 1, 0, 0);
        let lane_w = r.range(3.0, 3.75);
        let n_same = if r.chance(0.45) { 2 } else { 1 };
        let ego_lane = if n_same == 2 { r.pick(2) } else { 0 };
        let mut n_opp = if r.chance(0.3) { 2 } else { 1 };
        let right = -(ego_lane as f64) * lane_w - lane_w * 0.5;
        let mut left = right + (n_same + n_opp) as f64 * lane_w;
        if left > 9.0 {
            n_opp = 1;
            left = right + (n_same + n_opp) as f64 * lane_w;
        }
        let verge = |r: &mut Rng| {
            if r.chance(0.6) {
                Verge::Sidewalk(r.range(1.8, 3.0))
            } else {
                Verge::Grass
            }
        };
        let verge_right = verge(&mut r);
        let verge_left = verge(&mut r);
        let g = r.range(62.0, 105.0) as f32;
        let tint = r.range(-4.0, 4.0) as f32;
        let asphalt = [g + tint, g + tint * 0.5, g];
        let grass = [
            r.range(60.0, 95.0) as f32,
            r.range(95.0, 130.0) as f32,
            r.range(35.0, 60.0) as f32,
        ];
        let c = r.range(150.0, 190.0) as f32;
        let concrete = [c, c * 0.98, c * 0.95];
        let centre_line = if r.chance(0.3) {
            [225.0, 185.0, 40.0]
        } else {
            [225.0, 225.0, 220.0]
        };
        let ego_speed = if r.chance(0.2) {
            0.0
        } else {
            r.range(3.0, 14.0)
        };
        let mut b = Rng::new(seed, 5, 0, 0);
        let backdrop = [false, true].map(|is_left| {
            let u = b.unit();
            let kind = if u < 0.5 {
                BackdropKind::Trees
            } else if u < 0.9 {
                BackdropKind::Buildings
            } else {
                BackdropKind::Open
            };
            let gap = b.range(6.0, 16.0);
            let y = if is_left {
                (left + gap).max(12.5)
            } else {
                (right - gap).min(-12.5)
            };
            Backdrop { kind, y }
        });
        World {
            seed,
            backdrop,
            road: Road {
                lane_w,
                n_same,
                n_opp,
                ego_lane,
                right,
                left,
                verge_right,
                verge_left,
                asphalt,
                grass,
                concrete,
                centre_line,
            },
            ego_speed,
        }
    }
}

/// Lighting and atmosphere of one 10 s segment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Env {
    /// Unit vector towards the sun, vehicle frame.
    pub sun_dir: [f32; 3],
    pub sun: f32,
    pub ambient: f32,
    pub sky_horizon: [f32; 3],
    pub sky_zenith: [f32; 3],
    /// Per-channel gain applied to the ground texture.
    pub ground_gain: [f32; 3],
    /// Distance (m) at which haze reaches 1 - 1/e.
    pub fog_dist: f32,
}

impl Env {
    fn new(seed: u64, segment: u64) -> Env {
        let mut r = Rng::new(seed, 2, segment, 0);
        let overcast = r.chance(0.25);
        let elev = r.range(0.35, 1.2);
        let azim = r.range(-PI, PI);
        let sun_dir = [
            (elev.cos() * azim.cos()) as f32,
            (elev.cos() * azim.sin()) as f32,
            elev.sin() as f32,
        ];
        let (sun, ambient) = if overcast {
            (r.range(0.1, 0.25) as f32, r.range(0.75, 0.9) as f32)
        } else {
            (r.range(0.55, 0.8) as f32, r.range(0.4, 0.55) as f32)
        };
        let sky_zenith = if overcast {
            let g = r.range(140.0, 185.0) as f32;
            [g, g + 3.0, g + 8.0]
        } else {
            [
                r.range(40.0, 90.0) as f32,
                r.range(95.0, 140.0) as f32,
                r.range(185.0, 235.0) as f32,
            ]
        };
        let h = r.range(190.0, 225.0) as f32;
        let sky_horizon = [h, h + 5.0, h + 12.0];
        let gain = r.range(0.85, 1.15) as f32;
        let ground_gain = [
            gain * r.range(0.96, 1.04) as f32,
            gain * r.range(0.96, 1.04) as f32,
            gain * r.range(0.96, 1.04) as f32,
        ];
        Env {
            sun_dir,
            sun,
            ambient,
            sky_horizon,
            sky_zenith,
            ground_gain,
            fog_dist: r.range(180.0, 500.0) as f32,
        }
    }
}

/// One solid primitive in an object's local frame (x forward, y left,
/// z up, origin on the ground at the footprint centre).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Shape {
    /// Axis-aligned box.
    Box {
        min: [f32; 3],
        max: [f32; 3],
    },
    /// Cylinder along local y (wheels), optionally an annulus (r_in > 0).
    CylY {
        cx: f32,
        cz: f32,
        r: f32,
        r_in: f32,
        y0: f32,
        y1: f32,
    },
    Sphere {
        c: [f32; 3],
        r: f32,
    },
}

impl Shape {
    /// Local axis-aligned bounds.
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        match *self {
            Shape::Box { min, max } => (min, max),
            Shape::CylY {
                cx, cz, r, y0, y1, ..
            } => ([cx - r, y0, cz - r], [cx + r, y1, cz + r]),
            Shape::Sphere { c, r } => (
                [c[0] - r, c[1] - r, c[2] - r],
                [c[0] + r, c[1] + r, c[2] + r],
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prim {
    pub shape: Shape,
    pub rgb: [f32; 3],
    /// Surface noise amplitude (fraction of the colour).
    pub tex: f32,
}

const EMPTY_PRIM: Prim = Prim {
    shape: Shape::Sphere {
        c: [0.0; 3],
        r: 0.0,
    },
    rgb: [0.0; 3],
    tex: 0.0,
};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Object {
    pub class: u8,
    /// Unique per (slot, life).
    pub track_id: u64,
    /// Footprint centre, vehicle frame.
    pub pos: [f64; 2],
    /// Velocity relative to the ego vehicle (m/s), vehicle frame; constant
    /// over a life.
    pub vel: [f64; 2],
    /// Heading (rad) of local +x, counter-clockwise from vehicle +x.
    pub yaw: f64,
    pub prims: [Prim; MAX_PRIMS],
    pub n_prims: usize,
    /// Ground-contact footprint in the local frame, [xmin, ymin, xmax, ymax].
    pub contact: [f64; 4],
    /// Soft contact shadow ellipse half axes (local x, y).
    pub shadow: [f32; 2],
    /// Seed for surface noise.
    pub noise_key: u32,
}

impl Object {
    fn empty() -> Object {
        Object {
            class: 0,
            track_id: 0,
            pos: [0.0; 2],
            vel: [0.0; 2],
            yaw: 0.0,
            prims: [EMPTY_PRIM; MAX_PRIMS],
            n_prims: 0,
            contact: [0.0; 4],
            shadow: [0.0; 2],
            noise_key: 0,
        }
    }

    fn push(&mut self, shape: Shape, rgb: [f32; 3], tex: f32) {
        if self.n_prims < MAX_PRIMS {
            self.prims[self.n_prims] = Prim { shape, rgb, tex };
            self.n_prims += 1;
        }
    }

    pub fn prims(&self) -> &[Prim] {
        &self.prims[..self.n_prims]
    }

    /// Local bounds of all primitives.
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in self.prims() {
            let (a, b) = p.shape.bounds();
            for i in 0..3 {
                lo[i] = lo[i].min(a[i]);
                hi[i] = hi[i].max(b[i]);
            }
        }
        (lo, hi)
    }

    /// Local -> vehicle frame for a ground-plane point.
    pub fn local_to_vehicle(&self, lx: f64, ly: f64) -> [f64; 2] {
        let (s, c) = self.yaw.sin_cos();
        [self.pos[0] + c * lx - s * ly, self.pos[1] + s * lx + c * ly]
    }

    /// The ground position reported as ground truth: the bottom-centre of
    /// the object's face nearest the camera. Precisely: of the four edges
    /// of the ground-contact footprint, the one whose outward normal points
    /// most towards `eye` (the point below the camera, vehicle frame); the
    /// result is that edge's midpoint. A car ahead gives the centre of its
    /// rear face at ground level, a crossing car the centre of its side.
    pub fn ground_point(&self, eye: [f64; 2]) -> [f64; 2] {
        let (s, c) = self.yaw.sin_cos();
        let (dx, dy) = (eye[0] - self.pos[0], eye[1] - self.pos[1]);
        let [x0, y0, x1, y1] = self.contact;
        let (mx, my) = ((x0 + x1) * 0.5, (y0 + y1) * 0.5);
        // Direction to the eye in the local frame, from the footprint centre.
        let v = [c * dx + s * dy - mx, -s * dx + c * dy - my];
        let (lx, ly) = if v[0].abs() >= v[1].abs() {
            (if v[0] > 0.0 { x1 } else { x0 }, my)
        } else {
            (mx, if v[1] > 0.0 { y1 } else { y0 })
        };
        self.local_to_vehicle(lx, ly)
    }

    /// Corners of the footprint (expanded by `margin`) in the vehicle frame.
    fn footprint_corners(&self, margin: f64) -> [[f64; 2]; 4] {
        let [x0, y0, x1, y1] = self.contact;
        // Use the full body extents, not just the contact patch.
        let (lo, hi) = self.bounds();
        let (x0, y0) = (
            x0.min(f64::from(lo[0])) - margin,
            y0.min(f64::from(lo[1])) - margin,
        );
        let (x1, y1) = (
            x1.max(f64::from(hi[0])) + margin,
            y1.max(f64::from(hi[1])) + margin,
        );
        [
            self.local_to_vehicle(x0, y0),
            self.local_to_vehicle(x1, y0),
            self.local_to_vehicle(x1, y1),
            self.local_to_vehicle(x0, y1),
        ]
    }
}

/// Separating-axis test for two convex quads.
fn quads_overlap(a: &[[f64; 2]; 4], b: &[[f64; 2]; 4]) -> bool {
    for quad in [a, b] {
        for i in 0..4 {
            let p = quad[i];
            let q = quad[(i + 1) % 4];
            let n = [q[1] - p[1], p[0] - q[0]];
            let proj = |pts: &[[f64; 2]; 4]| {
                let mut lo = f64::INFINITY;
                let mut hi = f64::NEG_INFINITY;
                for v in pts {
                    let d = v[0] * n[0] + v[1] * n[1];
                    lo = lo.min(d);
                    hi = hi.max(d);
                }
                (lo, hi)
            };
            let (alo, ahi) = proj(a);
            let (blo, bhi) = proj(b);
            if ahi < blo || bhi < alo {
                return false;
            }
        }
    }
    true
}

/// The state of the world at one frame.
pub(crate) struct Scene {
    pub objects: [Object; MAX_OBJECTS],
    pub n_objects: usize,
    pub env: Env,
    /// Distance the ego has travelled (m): scrolls the ground texture.
    pub ego_s: f64,
}

impl Scene {
    pub fn new() -> Scene {
        Scene {
            objects: [Object::empty(); MAX_OBJECTS],
            n_objects: 0,
            env: Env::default(),
            ego_s: 0.0,
        }
    }

    pub fn objects(&self) -> &[Object] {
        &self.objects[..self.n_objects]
    }
}

/// Where a life puts its object and how it moves (relative to the ego).
struct Motion {
    x_mid: f64,
    y_mid: f64,
    vx: f64,
    vy: f64,
    yaw: f64,
    /// Own speed over the ground (drives walking/pedalling animation).
    speed: f64,
}

const PALETTE_CAR: [[f32; 3]; 12] = [
    [232.0, 232.0, 235.0],
    [205.0, 207.0, 212.0],
    [150.0, 153.0, 160.0],
    [34.0, 34.0, 38.0],
    [70.0, 72.0, 78.0],
    [175.0, 28.0, 30.0],
    [30.0, 58.0, 150.0],
    [25.0, 95.0, 60.0],
    [225.0, 180.0, 35.0],
    [200.0, 185.0, 150.0],
    [110.0, 30.0, 45.0],
    [60.0, 130.0, 190.0],
];
const PALETTE_CLOTH: [[f32; 3]; 14] = [
    [200.0, 40.0, 40.0],
    [40.0, 70.0, 160.0],
    [30.0, 30.0, 35.0],
    [235.0, 235.0, 230.0],
    [230.0, 200.0, 40.0],
    [40.0, 130.0, 70.0],
    [120.0, 70.0, 150.0],
    [240.0, 120.0, 30.0],
    [90.0, 90.0, 95.0],
    [150.0, 110.0, 70.0],
    [60.0, 160.0, 200.0],
    [220.0, 90.0, 140.0],
    [20.0, 40.0, 80.0],
    [170.0, 170.0, 170.0],
];
const PALETTE_PANTS: [[f32; 3]; 6] = [
    [35.0, 45.0, 80.0],
    [25.0, 25.0, 28.0],
    [80.0, 80.0, 85.0],
    [120.0, 100.0, 70.0],
    [60.0, 75.0, 120.0],
    [150.0, 140.0, 120.0],
];
const PALETTE_SKIN: [[f32; 3]; 5] = [
    [235.0, 195.0, 165.0],
    [205.0, 160.0, 120.0],
    [165.0, 115.0, 80.0],
    [120.0, 80.0, 55.0],
    [85.0, 55.0, 40.0],
];
const PALETTE_HAIR: [[f32; 3]; 5] = [
    [25.0, 20.0, 18.0],
    [70.0, 45.0, 25.0],
    [150.0, 115.0, 65.0],
    [160.0, 160.0, 160.0],
    [105.0, 40.0, 20.0],
];

fn pick3(r: &mut Rng, pal: &[[f32; 3]]) -> [f32; 3] {
    let c = pal[r.pick(pal.len())];
    let j = r.range(0.9, 1.1) as f32;
    [c[0] * j, c[1] * j, c[2] * j]
}

/// Fill `scene` with the state of frame `frame` (scene time frame / fps).
/// Never allocates.
pub(crate) fn build_scene(
    world: &World,
    max_objects: usize,
    fps: f64,
    frame: u64,
    eye: [f64; 2],
    scene: &mut Scene,
) {
    let t = frame as f64 / fps;
    let segment = (t / ENV_SEGMENT_S).floor().max(0.0) as u64;
    scene.env = Env::new(world.seed, segment);
    scene.ego_s = world.ego_speed * t;
    scene.n_objects = 0;
    let mut kept_fp = [[[0.0f64; 2]; 4]; MAX_OBJECTS];
    // The ego vehicle itself (camera near its front).
    let ego_fp = [
        [-3.5, -1.1],
        [eye[0] + 1.0, -1.1],
        [eye[0] + 1.0, 1.1],
        [-3.5, 1.1],
    ];
    for slot in 0..max_objects.min(MAX_OBJECTS) {
        let mut sr = Rng::new(world.seed, 3, slot as u64, 0);
        let period = sr.range(5.0, 12.0);
        let u = t + sr.unit() * period;
        let life = (u / period).floor().max(0.0) as u64;
        let tau = u - life as f64 * period;
        let mut r = Rng::new(world.seed, 4, slot as u64, life);
        let active = period * r.range(0.55, 1.0);
        if tau > active {
            continue;
        }
        let dt = tau - active * 0.5;
        let class = {
            let c = r.unit();
            if c < 0.45 {
                CLASS_VEHICLE
            } else if c < 0.75 {
                CLASS_PEDESTRIAN
            } else {
                CLASS_CYCLIST
            }
        };
        let m = motion(world, class, &mut r);
        let x = m.x_mid + m.vx * dt;
        let y = m.y_mid + m.vy * dt;
        if !(-3.0..=55.0).contains(&x) || y.abs() > 11.0 {
            continue;
        }
        let obj = &mut scene.objects[scene.n_objects];
        *obj = Object::empty();
        obj.class = class;
        obj.track_id = ((slot as u64) << 40) | (life & 0xFF_FFFF_FFFF);
        obj.pos = [x, y];
        obj.vel = [m.vx, m.vy];
        obj.yaw = m.yaw;
        obj.noise_key = (r.next_u64() >> 32) as u32;
        // Animation phase from the distance walked/ridden in this life.
        let phase = (m.speed * tau / 1.4 + r.unit()) * 2.0 * PI;
        match class {
            CLASS_VEHICLE => build_vehicle(obj, &mut r),
            CLASS_PEDESTRIAN => build_pedestrian(obj, &mut r, phase, m.speed > 0.1),
            _ => build_cyclist(obj, &mut r, phase),
        }
        let fp = obj.footprint_corners(0.3);
        let clash = quads_overlap(&fp, &ego_fp)
            || kept_fp[..scene.n_objects]
                .iter()
                .any(|k| quads_overlap(&fp, k));
        if clash {
            continue;
        }
        kept_fp[scene.n_objects] = fp;
        scene.n_objects += 1;
    }
}

fn motion(world: &World, class: u8, r: &mut Rng) -> Motion {
    let road = &world.road;
    let ego = world.ego_speed;
    let jitter = r.range(-0.04, 0.04);
    let choice = r.unit();
    match class {
        CLASS_VEHICLE => {
            if choice < 0.55 {
                let lane = r.pick(road.n_same);
                let x_lo = if lane == road.ego_lane { 8.0 } else { 4.0 };
                let v = r.range(-3.0, 3.0);
                Motion {
                    x_mid: r.range(x_lo, 38.0),
                    y_mid: road.lane_centre(lane) + r.range(-0.3, 0.3),
                    vx: v,
                    vy: 0.0,
                    yaw: jitter,
                    speed: (ego + v).max(0.0),
                }
            } else if choice < 0.8 {
                let lane = road.n_same + r.pick(road.n_opp);
                let own = if r.chance(0.15) {
                    0.0
                } else {
                    r.range(4.0, 14.0)
                };
                Motion {
                    x_mid: r.range(8.0, 38.0),
                    y_mid: road.lane_centre(lane) + r.range(-0.3, 0.3),
                    vx: -(ego + own),
                    vy: 0.0,
                    yaw: PI + jitter,
                    speed: own,
                }
            } else if choice < 0.9 {
                // Parked just off the road.
                let left = r.chance(0.5);
                let y = if left {
                    road.left + 1.2
                } else {
                    road.right - 1.2
                };
                Motion {
                    x_mid: r.range(5.0, 38.0),
                    y_mid: y,
                    vx: -ego,
                    vy: 0.0,
                    yaw: if r.chance(0.7) { 0.0 } else { PI } + jitter,
                    speed: 0.0,
                }
            } else {
                let s = r.sign();
                let v = r.range(2.0, 7.0);
                Motion {
                    x_mid: r.range(12.0, 35.0),
                    y_mid: r.range(-6.0, 6.0),
                    vx: -ego,
                    vy: s * v,
                    yaw: s * FRAC_PI_2 + jitter,
                    speed: v,
                }
            }
        }
        CLASS_PEDESTRIAN => {
            if choice < 0.5 {
                let left = r.chance(0.5);
                let y = road.walk_y(left, r);
                let standing = r.chance(0.2);
                let v = if standing {
                    0.0
                } else {
                    r.sign() * r.range(0.8, 1.7)
                };
                let yaw = if standing {
                    r.pick(4) as f64 * FRAC_PI_2 + r.range(-0.3, 0.3)
                } else if v > 0.0 {
                    jitter * 3.0
                } else {
                    PI + jitter * 3.0
                };
                Motion {
                    x_mid: r.range(4.0, 30.0),
                    y_mid: y,
                    vx: v - ego,
                    vy: 0.0,
                    yaw,
                    speed: v.abs(),
                }
            } else if choice < 0.85 {
                let s = r.sign();
                let v = r.range(0.8, 1.6);
                Motion {
                    x_mid: r.range(5.0, 30.0),
                    y_mid: r.range(-6.0, 6.0),
                    vx: -ego,
                    vy: s * v,
                    yaw: s * FRAC_PI_2 + jitter * 3.0,
                    speed: v,
                }
            } else {
                // Waiting at the kerb, facing the road.
                let left = r.chance(0.5);
                let (y, yaw) = if left {
                    (road.left + r.range(0.4, 1.0), -FRAC_PI_2)
                } else {
                    (road.right - r.range(0.4, 1.0), FRAC_PI_2)
                };
                Motion {
                    x_mid: r.range(5.0, 30.0),
                    y_mid: y,
                    vx: -ego,
                    vy: 0.0,
                    yaw: yaw + jitter * 4.0,
                    speed: 0.0,
                }
            }
        }
        _ => {
            if choice < 0.6 {
                let v = r.range(3.0, 7.0);
                Motion {
                    x_mid: r.range(5.0, 35.0),
                    y_mid: road.right + r.range(0.6, 1.2),
                    vx: v - ego,
                    vy: 0.0,
                    yaw: jitter,
                    speed: v,
                }
            } else if choice < 0.75 {
                let v = r.range(3.0, 6.0);
                Motion {
                    x_mid: r.range(8.0, 35.0),
                    y_mid: road.left - r.range(0.6, 1.2),
                    vx: -v - ego,
                    vy: 0.0,
                    yaw: PI + jitter,
                    speed: v,
                }
            } else {
                let s = r.sign();
                let v = r.range(2.5, 5.0);
                Motion {
                    x_mid: r.range(8.0, 30.0),
                    y_mid: r.range(-6.0, 6.0),
                    vx: -ego,
                    vy: s * v,
                    yaw: s * FRAC_PI_2 + jitter,
                    speed: v,
                }
            }
        }
    }
}

fn bx(x0: f64, y0: f64, z0: f64, x1: f64, y1: f64, z1: f64) -> Shape {
    Shape::Box {
        min: [x0 as f32, y0 as f32, z0 as f32],
        max: [x1 as f32, y1 as f32, z1 as f32],
    }
}

fn build_vehicle(o: &mut Object, r: &mut Rng) {
    let van = r.chance(0.3);
    let (l, w, h) = if van {
        (r.range(4.8, 5.6), r.range(1.9, 2.1), r.range(1.9, 2.5))
    } else {
        (r.range(3.9, 4.9), r.range(1.7, 1.9), r.range(1.38, 1.62))
    };
    let paint = pick3(r, &PALETTE_CAR);
    let glass = [38.0, 46.0, 58.0];
    let dark = [48.0, 48.0, 50.0];
    let tyre = [22.0, 22.0, 24.0];
    let (hl, hw) = (l * 0.5, w * 0.5);
    // The body stands on the ground, so that the ground truth (the bottom of
    // the face nearest the camera) is where the object meets the road. Real
    // bodies clear the road by 0.1-0.3 m; README ("Calibration") says
    // what that does to ground positions from the box's bottom edge.
    let clear = 0.0;
    let belt = if van { 1.05 } else { h * r.range(0.5, 0.58) };
    if van {
        // Box body behind a short bonnet; windscreen and side windows as
        // thin glass plates proud of the body.
        let nose = 0.9;
        o.push(bx(-hl, -hw, clear, hl - nose, hw, h), paint, 0.04);
        o.push(bx(hl - nose, -hw, clear, hl, hw, belt), paint, 0.04);
        o.push(
            bx(
                hl - nose - 0.02,
                -hw + 0.1,
                belt + 0.05,
                hl - nose + 0.05,
                hw - 0.1,
                h - 0.12,
            ),
            glass,
            0.02,
        );
        o.push(
            bx(
                hl - nose - 0.9,
                -hw - 0.01,
                belt + 0.05,
                hl - nose - 0.05,
                hw + 0.01,
                h - 0.2,
            ),
            glass,
            0.02,
        );
        o.push(
            bx(
                -hl - 0.02,
                -hw + 0.15,
                h - 0.75,
                -hl + 0.05,
                hw - 0.15,
                h - 0.2,
            ),
            glass,
            0.02,
        );
    } else {
        let rear = r.range(0.15, 0.28) * l;
        let front = r.range(0.28, 0.36) * l;
        o.push(bx(-hl, -hw, clear, hl, hw, belt), paint, 0.04);
        o.push(
            bx(-hl + rear, -hw + 0.1, belt, hl - front, hw - 0.1, h - 0.05),
            glass,
            0.02,
        );
        o.push(
            bx(
                -hl + rear + 0.1,
                -hw + 0.12,
                h - 0.06,
                hl - front - 0.1,
                hw - 0.12,
                h,
            ),
            paint,
            0.03,
        );
    }
    // Bumpers.
    o.push(
        bx(-hl - 0.04, -hw + 0.02, 0.12, hl + 0.04, hw - 0.02, 0.32),
        dark,
        0.05,
    );
    // Wheels, slightly proud of the body sides.
    let wr = if van {
        r.range(0.33, 0.38)
    } else {
        r.range(0.3, 0.34)
    };
    let axle = hl - if van { 0.8 } else { 0.75 };
    for x in [-axle, axle] {
        for side in [-1.0, 1.0] {
            let (y0, y1) = if side > 0.0 {
                (hw - 0.24, hw + 0.03)
            } else {
                (-hw - 0.03, -hw + 0.24)
            };
            o.push(
                Shape::CylY {
                    cx: x as f32,
                    cz: wr as f32,
                    r: wr as f32,
                    r_in: 0.0,
                    y0: y0 as f32,
                    y1: y1 as f32,
                },
                tyre,
                0.03,
            );
        }
    }
    // Lights and plates.
    let lz0 = belt - 0.22;
    let red = [190.0, 25.0, 25.0];
    let lamp = [235.0, 230.0, 200.0];
    for side in [-1.0, 1.0] {
        let (y0, y1) = if side > 0.0 {
            (hw - 0.32, hw - 0.04)
        } else {
            (-hw + 0.04, -hw + 0.32)
        };
        o.push(
            bx(-hl - 0.02, y0, lz0, -hl + 0.02, y1, belt - 0.06),
            red,
            0.02,
        );
        o.push(
            bx(hl - 0.02, y0, lz0, hl + 0.02, y1, belt - 0.08),
            lamp,
            0.02,
        );
    }
    let plate = [225.0, 225.0, 215.0];
    o.push(
        bx(-hl - 0.05, -0.26, 0.34, -hl + 0.02, 0.26, 0.46),
        plate,
        0.02,
    );
    o.push(
        bx(hl - 0.02, -0.26, 0.34, hl + 0.05, 0.26, 0.46),
        plate,
        0.02,
    );
    o.contact = [-hl, -hw, hl, hw];
    o.shadow = [(hl + 0.35) as f32, (hw + 0.3) as f32];
}

fn build_pedestrian(o: &mut Object, r: &mut Rng, phase: f64, walking: bool) {
    let hgt = r.range(1.5, 1.95);
    let sw = r.range(0.19, 0.24) * hgt / 1.75;
    let shirt = pick3(r, &PALETTE_CLOTH);
    let pants = pick3(r, &PALETTE_PANTS);
    let skin = pick3(r, &PALETTE_SKIN);
    let hair = pick3(r, &PALETTE_HAIR);
    let swing = if walking { 0.2 * phase.sin() } else { 0.0 };
    let hip = 0.48 * hgt;
    let shoulder = 0.81 * hgt;
    for (side, s) in [(1.0, swing), (-1.0, -swing)] {
        let y = side * 0.085;
        o.push(
            bx(s - 0.075, y - 0.065, 0.0, s + 0.075, y + 0.065, hip + 0.02),
            pants,
            0.06,
        );
        // Shoes.
        o.push(
            bx(s - 0.09, y - 0.06, 0.0, s + 0.13, y + 0.06, 0.07),
            [30.0, 28.0, 26.0],
            0.05,
        );
    }
    o.push(bx(-0.12, -sw, hip, 0.12, sw, shoulder), shirt, 0.06);
    for (side, s) in [(1.0, -swing), (-1.0, swing)] {
        let y = side * (sw + 0.05);
        o.push(
            bx(
                s * 0.8 - 0.05,
                y - 0.045,
                hip + 0.03,
                s * 0.8 + 0.05,
                y + 0.045,
                shoulder - 0.02,
            ),
            shirt,
            0.06,
        );
    }
    let hr = 0.105 * hgt / 1.75;
    let hz = hgt - hr;
    o.push(
        Shape::Sphere {
            c: [0.0, 0.0, hz as f32],
            r: hr as f32,
        },
        skin,
        0.03,
    );
    o.push(
        Shape::Sphere {
            c: [-0.025, 0.0, (hz + 0.02) as f32],
            r: (hr * 1.03) as f32,
        },
        hair,
        0.05,
    );
    if r.chance(0.3) {
        let bag = pick3(r, &PALETTE_CLOTH);
        o.push(
            bx(
                -0.26,
                -sw * 0.8,
                hip + 0.12,
                -0.12,
                sw * 0.8,
                shoulder - 0.05,
            ),
            bag,
            0.05,
        );
    }
    let reach = swing.abs() + 0.13;
    o.contact = [-reach, -0.15, reach, 0.15];
    o.shadow = [0.45, 0.38];
}

fn build_cyclist(o: &mut Object, r: &mut Rng, phase: f64) {
    let frame = pick3(r, &PALETTE_CLOTH);
    let shirt = pick3(r, &PALETTE_CLOTH);
    let pants = pick3(r, &PALETTE_PANTS);
    let skin = pick3(r, &PALETTE_SKIN);
    let helmet = pick3(r, &PALETTE_CLOTH);
    let tyre = [25.0, 25.0, 27.0];
    let wr = r.range(0.32, 0.36);
    let hb = 0.52;
    let s = (r.range(1.6, 1.9) / 1.75) as f32 as f64;
    for x in [-hb, hb] {
        o.push(
            Shape::CylY {
                cx: x as f32,
                cz: wr as f32,
                r: wr as f32,
                r_in: (wr - 0.06) as f32,
                y0: -0.025,
                y1: 0.025,
            },
            tyre,
            0.02,
        );
    }
    let t = 0.022;
    o.push(bx(-0.28, -t, 0.74, 0.36, t, 0.79), frame, 0.02); // top tube
    o.push(bx(-0.24, -t, wr - 0.02, -0.19, t, 0.86), frame, 0.02); // seat tube
    o.push(bx(-0.22, -t, wr - 0.02, 0.42, t, wr + 0.03), frame, 0.02); // down tube
    o.push(bx(-hb, -t, wr - 0.02, -0.2, t, wr + 0.02), frame, 0.02); // chain stay
    o.push(bx(0.44, -t, wr - 0.02, 0.49, t, 0.98), frame, 0.02); // fork
    o.push(
        bx(0.40, -0.26, 0.96, 0.47, 0.26, 1.0),
        [30.0, 30.0, 30.0],
        0.02,
    ); // bars
       // Rider: pedalling legs, leaning torso, arms to the bars.
    let seat = 0.9;
    for (side, ph) in [(1.0, phase), (-1.0, phase + PI)] {
        let y = side * 0.11;
        let foot = wr - 0.02 + 0.16 * (1.0 + ph.sin()) * 0.5;
        o.push(
            bx(-0.2, y - 0.06, foot, 0.02, y + 0.06, seat + 0.05),
            pants,
            0.05,
        );
    }
    let top = seat + 0.55 * s;
    o.push(bx(-0.22, -0.19 * s, seat, 0.14, 0.19 * s, top), shirt, 0.06);
    for side in [-1.0, 1.0] {
        let y = side * 0.22 * s;
        o.push(
            bx(0.05, y - 0.045, 0.98, 0.44, y + 0.045, top - 0.08),
            shirt,
            0.06,
        );
    }
    let hr = 0.105 * s;
    let hz = top + hr + 0.03;
    o.push(
        Shape::Sphere {
            c: [0.1, 0.0, hz as f32],
            r: hr as f32,
        },
        skin,
        0.03,
    );
    o.push(
        Shape::Sphere {
            c: [0.08, 0.0, (hz + 0.03) as f32],
            r: (hr * 1.12) as f32,
        },
        helmet,
        0.04,
    );
    o.contact = [-hb, -0.05, hb, 0.05];
    o.shadow = [1.0, 0.4];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_a_function_of_seed_and_frame() {
        let world = World::new(9);
        let (mut a, mut b) = (Scene::new(), Scene::new());
        build_scene(&world, 16, 30.0, 500, [1.5, 0.0], &mut a);
        build_scene(&world, 16, 30.0, 3, [1.5, 0.0], &mut b);
        build_scene(&world, 16, 30.0, 500, [1.5, 0.0], &mut b);
        assert_eq!(a.n_objects, b.n_objects);
        for (x, y) in a.objects().iter().zip(b.objects()) {
            assert_eq!(
                (x.pos, x.yaw, x.track_id, x.prims()),
                (y.pos, y.yaw, y.track_id, y.prims())
            );
        }
    }

    #[test]
    fn objects_do_not_overlap_and_stay_in_range() {
        let mut counts = [0usize; 3];
        for seed in 0..5 {
            let world = World::new(seed);
            let mut s = Scene::new();
            for k in (0..9000).step_by(17) {
                build_scene(&world, MAX_OBJECTS, 30.0, k, [1.5, 0.0], &mut s);
                let objs = s.objects();
                for (i, a) in objs.iter().enumerate() {
                    counts[a.class as usize] += 1;
                    assert!((-3.0..=55.0).contains(&a.pos[0]) && a.pos[1].abs() <= 11.0);
                    assert!(a.n_prims > 0 && a.n_prims <= MAX_PRIMS);
                    for b in &objs[..i] {
                        assert!(!quads_overlap(
                            &a.footprint_corners(0.3),
                            &b.footprint_corners(0.3)
                        ));
                    }
                }
            }
        }
        let total: usize = counts.iter().sum();
        for c in counts {
            assert!(c * 6 > total, "class mix {counts:?}");
        }
    }

    #[test]
    fn ground_point_is_the_centre_of_the_face_towards_the_camera() {
        let mut o = Object::empty();
        o.contact = [-2.0, -0.9, 2.0, 0.9];
        o.pos = [12.0, 0.0];
        // Straight ahead: the rear face centre.
        let g = o.ground_point([1.5, 0.0]);
        assert!((g[0] - 10.0).abs() < 1e-12 && g[1].abs() < 1e-12);
        // Heading the other way: still the face towards the camera.
        o.yaw = PI;
        let g = o.ground_point([1.5, 0.0]);
        assert!((g[0] - 10.0).abs() < 1e-9 && g[1].abs() < 1e-9, "{g:?}");
        // Crossing to the left, close and to the left: its rear (it
        // heads away from the camera's side) faces the camera most.
        o.yaw = FRAC_PI_2;
        o.pos = [5.0, 4.0];
        let g = o.ground_point([1.5, 0.0]);
        assert!(
            (g[0] - 5.0).abs() < 1e-9 && (g[1] - 2.0).abs() < 1e-9,
            "{g:?}"
        );
        // Further ahead: its right side (towards the camera).
        o.pos = [12.0, 4.0];
        let g = o.ground_point([1.5, 0.0]);
        assert!(
            (g[0] - 11.1).abs() < 1e-9 && (g[1] - 4.0).abs() < 1e-9,
            "{g:?}"
        );
    }

    #[test]
    fn separating_axis_overlap() {
        let sq = |x: f64, y: f64| [[x, y], [x + 1.0, y], [x + 1.0, y + 1.0], [x, y + 1.0]];
        assert!(quads_overlap(&sq(0.0, 0.0), &sq(0.5, 0.5)));
        assert!(!quads_overlap(&sq(0.0, 0.0), &sq(1.5, 0.0)));
        let diamond = [[2.0, 0.5], [2.6, 1.1], [2.0, 1.7], [1.4, 1.1]];
        assert!(!quads_overlap(&sq(0.0, 0.0), &diamond));
        assert!(quads_overlap(&sq(0.5, 0.5), &diamond));
    }
}
