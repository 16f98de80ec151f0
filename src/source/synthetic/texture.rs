//! The synthetic scene's textures: the ground (a ripmap of road, lane
//! lines and verge) and the backdrop walls, built once per seed at boot
//! (they allocate), read by [`super::render::View`] per pixel.

use super::scene::{mix, BackdropKind, Rng, World};

/// Ground texture: base texel size (m) and size; x wraps (period 25.6 m),
/// y spans [-12.8, 12.8) m and folds back beyond.
pub(super) const TEXEL: f64 = 0.025;
pub(super) const TEX_W: usize = 1024;
pub(super) const TEX_H: usize = 1024;
pub(super) const TEX_Y0: f64 = -12.8;
/// Mip levels along x (forward) and y (lateral): a ripmap, because far
/// ground pixels are much longer than wide.
pub(super) const NLX: usize = 8;
pub(super) const NLY: usize = 6;
/// Period of dashed lane lines (m), must divide the texture period.
pub(super) const DASH_PERIOD: f64 = 12.8;
pub(super) const DASH_LEN: f64 = 3.2;

/// Backdrop texture: 0.1 m texels, x wraps every 102.4 m, up to 25.6 m
/// high; levels filtered by 4 along x for distant, grazing views.
pub(super) const WALL_RES: f64 = 0.1;
pub(super) const WALL_W: usize = 1024;
pub(super) const WALL_H: usize = 256;
pub(super) const WALL_LEVELS: usize = 4;

/// The ground texture with all ripmap levels, built once per seed. Each
/// level is stored column-major (lateral index fastest) because an image
/// row runs across the road: consecutive pixels then read neighbouring
/// texels.
pub(crate) struct GroundTexture {
    pub(super) data: Vec<[u8; 3]>,
}

/// 2-D value noise on a lattice of `cell` texels, periodic in x with the
/// texture, smoothly interpolated; in [-1, 1].
fn value_noise(key: u64, x: f64, y: f64, cell: f64) -> f64 {
    let period = (TEX_W as f64 / cell).round() as i64;
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fx.floor() as i64, fy.floor() as i64);
    let (tx, ty) = (fx - ix as f64, fy - iy as f64);
    let lat = |i: i64, j: i64| {
        let h =
            mix(key ^ (i.rem_euclid(period) as u64).wrapping_mul(0x9E37_79B9) ^ ((j as u64) << 32));
        (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let s = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(tx), s(ty));
    let a = lat(ix, iy) + (lat(ix + 1, iy) - lat(ix, iy)) * sx;
    let b = lat(ix, iy + 1) + (lat(ix + 1, iy + 1) - lat(ix, iy + 1)) * sx;
    a + (b - a) * sy
}

fn hash_unit(key: u64, x: u64, y: u64) -> f64 {
    let h =
        mix(key ^ x.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ y.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Coverage (0..1) of a stripe of half width `hw` centred on `c` at `y`.
fn stripe(y: f64, c: f64, hw: f64) -> f64 {
    if (y - c).abs() <= hw {
        1.0
    } else {
        0.0
    }
}

impl GroundTexture {
    /// Generate the base level from the world's road layout and filter
    /// the ripmap. Boot only.
    pub fn new(world: &World) -> GroundTexture {
        let offset = |lx: usize, ly: usize| world_tex_offset(lx, ly);
        let total = world_tex_offset(NLX, 0);
        let mut data = vec![[0u8; 3]; total];
        let key = mix(world.seed ^ 0x7E87);
        for yi in 0..TEX_H {
            let y = TEX_Y0 + (yi as f64 + 0.5) * TEXEL;
            for xi in 0..TEX_W {
                let x = (xi as f64 + 0.5) * TEXEL;
                let c = base_texel(world, key, xi, yi, x, y);
                data[xi * TEX_H + yi] = c.map(|v| v.round().clamp(0.0, 255.0) as u8);
            }
        }
        // Levels along y from the level above, then along x.
        for ly in 1..NLY {
            let (src, dst) = (offset(0, ly - 1), offset(0, ly));
            let (w, h) = (TEX_W, TEX_H >> ly);
            for yi in 0..h {
                for xi in 0..w {
                    let a = data[src + xi * 2 * h + 2 * yi];
                    let b = data[src + xi * 2 * h + 2 * yi + 1];
                    data[dst + xi * h + yi] = avg(a, b);
                }
            }
        }
        for ly in 0..NLY {
            for lx in 1..NLX {
                let (src, dst) = (offset(lx - 1, ly), offset(lx, ly));
                let (w, h) = (TEX_W >> lx, TEX_H >> ly);
                for yi in 0..h {
                    for xi in 0..w {
                        let a = data[src + 2 * xi * h + yi];
                        let b = data[src + (2 * xi + 1) * h + yi];
                        data[dst + xi * h + yi] = avg(a, b);
                    }
                }
            }
        }
        GroundTexture { data }
    }
}

fn avg(a: [u8; 3], b: [u8; 3]) -> [u8; 3] {
    [0, 1, 2].map(|i| (u16::from(a[i]) + u16::from(b[i])).div_ceil(2) as u8)
}

/// Colour of one base-level texel at (x, y) metres.
fn base_texel(world: &World, key: u64, xi: usize, yi: usize, x: f64, y: f64) -> [f64; 3] {
    let road = &world.road;
    let fine = hash_unit(key, xi as u64, yi as u64);
    let (xt, yt) = (xi as f64, yi as f64);
    let low = value_noise(key ^ 1, xt, yt, 32.0);
    let patch = value_noise(key ^ 2, xt, yt, 128.0);
    let scale = |c: [f32; 3], k: f64| {
        [
            f64::from(c[0]) * k,
            f64::from(c[1]) * k,
            f64::from(c[2]) * k,
        ]
    };
    if y >= road.right && y <= road.left {
        // Asphalt: grain, blotches, darker wheel tracks.
        let mut k = 1.0 + 0.09 * fine + 0.06 * low + 0.07 * patch;
        let lanes = road.n_same + road.n_opp;
        for lane in 0..lanes {
            let c = road.lane_centre(lane);
            if (y - c).abs() > 0.55 && (y - c).abs() < 1.05 {
                k *= 0.93;
            }
        }
        let mut col = scale(road.asphalt, k);
        // Markings: edge lines, centre line, dashed lane dividers.
        let xm = x.rem_euclid(DASH_PERIOD);
        let worn = value_noise(key ^ 3, xt, yt, 6.0) > 0.8;
        let mut paint: Option<[f64; 3]> = None;
        let white = [225.0, 225.0, 220.0];
        if stripe(y, road.right + 0.3, 0.075) > 0.0 || stripe(y, road.left - 0.3, 0.075) > 0.0 {
            paint = Some(white);
        }
        let centre = road.right + road.n_same as f64 * road.lane_w;
        if stripe(y, centre, 0.075) > 0.0 {
            paint = Some(road.centre_line.map(f64::from));
        }
        for k in 1..lanes {
            if k == road.n_same {
                continue;
            }
            let c = road.right + k as f64 * road.lane_w;
            if stripe(y, c, 0.07) > 0.0 && xm < DASH_LEN {
                paint = Some(white);
            }
        }
        if let Some(p) = paint {
            if !worn {
                let k = 1.0 + 0.05 * fine;
                col = [p[0] * k, p[1] * k, p[2] * k];
            }
        }
        return col;
    }
    let (edge_dist, verge) = if y > road.left {
        (y - road.left, road.verge_left)
    } else {
        (road.right - y, road.verge_right)
    };
    if let super::scene::Verge::Sidewalk(w) = verge {
        if edge_dist < 0.15 {
            // Kerb.
            return scale(road.concrete, 1.12 + 0.05 * fine);
        }
        if edge_dist < 0.15 + w {
            // Slabs with joints every 1.5 m.
            let joint =
                (x.rem_euclid(1.6) < 0.03) || ((edge_dist - 0.15).rem_euclid(w * 0.5) < 0.03);
            let k = if joint {
                0.7
            } else {
                1.0 + 0.06 * fine + 0.05 * low + 0.04 * patch
            };
            return scale(road.concrete, k);
        }
    }
    // Grass.
    let g = road.grass;
    let k = 1.0 + 0.16 * fine + 0.12 * low;
    let dry = (0.5 + 0.5 * patch).clamp(0.0, 1.0);
    [
        (f64::from(g[0]) * (1.0 + 0.35 * dry)) * k,
        f64::from(g[1]) * k,
        (f64::from(g[2]) * (1.0 + 0.2 * dry)) * k,
    ]
}

/// The roadside backdrops (both sides): silhouette heights and texels,
/// built once per seed. Texels are column-major (height fastest).
pub(crate) struct WallTexture {
    /// Height (0.1 m units) per side and level-0 column.
    pub(super) height: Vec<u8>,
    pub(super) data: Vec<[u8; 3]>,
}

/// Offset of (side, level) in the backdrop texel store.
pub(super) fn wall_offset(side: usize, level: usize) -> usize {
    let per_side: usize = (0..WALL_LEVELS).map(|l| (WALL_W >> (2 * l)) * WALL_H).sum();
    side * per_side
        + (0..level)
            .map(|l| (WALL_W >> (2 * l)) * WALL_H)
            .sum::<usize>()
}

impl WallTexture {
    /// Generate both backdrops from the world. Boot only.
    pub fn new(world: &World) -> WallTexture {
        let mut height = vec![0u8; 2 * WALL_W];
        let mut data = vec![[0u8; 3]; wall_offset(2, 0)];
        let period = WALL_W as f64 * WALL_RES;
        for (side, bd) in world.backdrop.iter().enumerate() {
            let mut r = Rng::new(world.seed, 6, side as u64, 0);
            let key = r.next_u64();
            let base = wall_offset(side, 0);
            let mut put = |xi: usize, zi: usize, c: [f64; 3]| {
                data[base + xi * WALL_H + zi] = c.map(|v| v.round().clamp(0.0, 255.0) as u8);
            };
            match bd.kind {
                BackdropKind::Open => {}
                BackdropKind::Trees => {
                    // Crowns along the row: (x, radius, centre height, colour).
                    let mut trees = [(0.0f64, 0.0f64, 0.0f64, [0.0f64; 3]); 96];
                    let mut n = 0;
                    let mut x = 0.0;
                    while x < period && n < trees.len() {
                        let rad = r.range(1.5, 3.5);
                        let hc = r.range(1.2, 3.0) + rad;
                        let col = [
                            r.range(25.0, 65.0),
                            r.range(55.0, 100.0),
                            r.range(25.0, 50.0),
                        ];
                        trees[n] = (x, rad, hc, col);
                        n += 1;
                        x += rad * r.range(0.8, 1.6);
                    }
                    for xi in 0..WALL_W {
                        let xm = xi as f64 * WALL_RES;
                        for zi in 0..WALL_H {
                            let z = zi as f64 * WALL_RES;
                            let mut best: Option<(f64, usize)> = None;
                            for (k, &(tx, rad, hc, _)) in trees[..n].iter().enumerate() {
                                let dx = (xm - tx + period * 0.5).rem_euclid(period) - period * 0.5;
                                let q = (dx * dx + (z - hc) * (z - hc)) / (rad * rad);
                                let better = match best {
                                    Some((b, _)) => q < b,
                                    None => true,
                                };
                                if q < 1.0 && better {
                                    best = Some((q, k));
                                }
                            }
                            let noise = hash_unit(key, xi as u64, zi as u64);
                            match best {
                                Some((q, k)) => {
                                    let (_, _, hc, col) = trees[k];
                                    let lit =
                                        0.8 + 0.35 * ((z - hc) / 3.0).clamp(-1.0, 1.0) - 0.15 * q;
                                    let k = lit * (1.0 + 0.18 * noise);
                                    put(xi, zi, col.map(|c| c * k));
                                    height[side * WALL_W + xi] =
                                        height[side * WALL_W + xi].max(zi as u8 + 1);
                                }
                                None if z < 2.0 => {
                                    // Undergrowth below the crowns.
                                    put(
                                        xi,
                                        zi,
                                        [28.0, 42.0, 24.0].map(|c| c * (1.0 + 0.2 * noise)),
                                    );
                                    height[side * WALL_W + xi] =
                                        height[side * WALL_W + xi].max(zi as u8 + 1);
                                }
                                None => {}
                            }
                        }
                    }
                }
                BackdropKind::Buildings => {
                    const FACADES: [[f64; 3]; 7] = [
                        [200.0, 185.0, 160.0],
                        [170.0, 170.0, 172.0],
                        [150.0, 80.0, 60.0],
                        [225.0, 222.0, 215.0],
                        [120.0, 125.0, 135.0],
                        [190.0, 160.0, 110.0],
                        [95.0, 90.0, 85.0],
                    ];
                    let mut x = r.range(0.0, 4.0);
                    while x < period - 4.0 {
                        let w = r.range(8.0, 25.0).min(period - x - 1.0);
                        let h = r.range(4.0, 16.0);
                        let col = FACADES[r.pick(FACADES.len())];
                        let (wx, wz) = (r.range(2.4, 3.6), r.range(2.8, 3.4));
                        let glass = [
                            r.range(40.0, 70.0),
                            r.range(50.0, 80.0),
                            r.range(65.0, 95.0),
                        ];
                        let x0 = (x / WALL_RES) as usize;
                        let x1 = (((x + w) / WALL_RES) as usize).min(WALL_W);
                        let z1 = ((h / WALL_RES) as usize).min(WALL_H);
                        for xi in x0..x1 {
                            let xl = (xi - x0) as f64 * WALL_RES;
                            for zi in 0..z1 {
                                let z = zi as f64 * WALL_RES;
                                let noise = hash_unit(key, xi as u64, zi as u64);
                                let window = (xl % wx) > 0.8
                                    && (xl % wx) < wx - 0.6
                                    && (z % wz) > 0.9
                                    && (z % wz) < wz - 0.5
                                    && z > 1.0
                                    && h - z > 0.8;
                                let c = if h - z < 0.35 {
                                    col.map(|c| c * 0.7)
                                } else if window {
                                    glass
                                } else {
                                    col.map(|c| c * (1.0 + 0.06 * noise))
                                };
                                put(xi, zi, c);
                            }
                            height[side * WALL_W + xi] = z1 as u8;
                        }
                        x += w + r.range(0.0, 6.0);
                    }
                }
            }
            // Levels: average 4 columns of the level below.
            for l in 1..WALL_LEVELS {
                let (src, dst) = (wall_offset(side, l - 1), wall_offset(side, l));
                for xi in 0..(WALL_W >> (2 * l)) {
                    for zi in 0..WALL_H {
                        let mut acc = [0u32; 3];
                        for k in 0..4 {
                            let t = data[src + (4 * xi + k) * WALL_H + zi];
                            for c in 0..3 {
                                acc[c] += u32::from(t[c]);
                            }
                        }
                        data[dst + xi * WALL_H + zi] = acc.map(|a| ((a + 2) / 4) as u8);
                    }
                }
            }
        }
        WallTexture { height, data }
    }
}

/// Base-level texture row for ground y (m): inside the texture directly,
/// outside folded back into the outermost 2 m band.
pub(super) fn texture_row(y: f64) -> usize {
    let y_hi = TEX_Y0 + TEX_H as f64 * TEXEL;
    let band = 2.0;
    let fold = |over: f64| {
        let m = over.rem_euclid(2.0 * band);
        if m < band {
            m
        } else {
            2.0 * band - m
        }
    };
    let y = if y >= y_hi {
        y_hi - fold(y - y_hi)
    } else if y < TEX_Y0 {
        TEX_Y0 + fold(TEX_Y0 - y)
    } else {
        y
    };
    (((y - TEX_Y0) / TEXEL) as usize).min(TEX_H - 1)
}

/// Offset of ripmap level (lx, ly) in the texture store; (NLX, 0) gives
/// the total size.
pub(super) fn world_tex_offset(lx: usize, ly: usize) -> usize {
    let mut total = 0;
    for l in 0..NLX {
        for m in 0..NLY {
            if (l, m) == (lx, ly) {
                return total;
            }
            total += (TEX_W >> l) * (TEX_H >> m);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texture_rows_fold_back_beyond_the_texture() {
        assert_eq!(texture_row(0.0), 512);
        assert_eq!(texture_row(TEX_Y0), 0);
        assert_eq!(texture_row(-TEX_Y0 - 1e-9), TEX_H - 1);
        // Mirrored into the outer 2 m band on both sides.
        assert_eq!(texture_row(-TEX_Y0 + 0.5), texture_row(-TEX_Y0 - 0.5));
        assert_eq!(texture_row(TEX_Y0 - 0.5), texture_row(TEX_Y0 + 0.5));
        assert!(texture_row(1e6) < TEX_H && texture_row(-1e6) < TEX_H);
    }
}
