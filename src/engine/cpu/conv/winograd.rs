//! Winograd F(4x4, 3x3) for stride-1 3x3 convolutions: weights transformed
//! and packed at boot, input and output transforms (AVX-512F, AVX2 or
//! portable) around per-tile GEMMs. Frame path: never allocates.

use super::*;

/// Winograd F(4x4, 3x3): input tile side, output tile side, transform points.
pub(crate) const WG_IN: usize = 6;

pub(crate) const WG_OUT: usize = 4;

pub(crate) const WG_XI: usize = WG_IN * WG_IN;

/// Tiles transformed together (the transforms' SIMD width).
pub(crate) const WG_LANES: usize = 16;

/// Output channels per block of the per-point GEMMs (bounds their output).
pub(crate) const WG_COB: usize = 64;

pub(crate) type Lanes = [f32; WG_LANES];

/// `G g G^T` for every (co, ci), arranged as one `c_out x c_in` matrix per
/// transform point and packed as GEMM A operands. Boot only.
pub(crate) fn winograd_weights(
    s: &ConvShape,
    w: &[f32],
    gemm: &Gemm,
) -> Result<Vec<PackedA>, String> {
    const G: [[f64; 3]; 6] = [
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    let (co_n, ci_n) = (s.c_out, s.c_in);
    let mut mats = vec![vec![0.0f32; co_n * ci_n]; WG_XI];
    for co in 0..co_n {
        for ci in 0..ci_n {
            let g = &w[(co * ci_n + ci) * 9..][..9];
            // t = G g (6x3), u = t G^T (6x6), in f64.
            let mut t = [[0.0f64; 3]; 6];
            for (i, row) in t.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|k| G[i][k] * g[k * 3 + j] as f64).sum();
                }
            }
            for i in 0..6 {
                for j in 0..6 {
                    let u: f64 = (0..3).map(|k| t[i][k] * G[j][k]).sum();
                    mats[i * 6 + j][co * ci_n + ci] = u as f32;
                }
            }
        }
    }
    mats.iter()
        .map(|m| {
            MatRef::row_major(m, co_n, ci_n)
                .map(|a| gemm.pack_a(a))
                .ok_or_else(|| format!("winograd weights do not fit {co_n}x{ci_n}"))
        })
        .collect()
}

/// `B^T d` along one axis for 6 lane vectors.
#[inline(always)]
pub(crate) fn bt6(d: [&Lanes; 6]) -> [Lanes; 6] {
    let mut o = [[0.0f32; WG_LANES]; 6];
    for l in 0..WG_LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        o[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        o[1][l] = (d3 + d4) - 4.0 * (d1 + d2);
        o[2][l] = (d4 - d3) + 4.0 * (d1 - d2);
        o[3][l] = (d4 - d2) + 2.0 * (d3 - d1);
        o[4][l] = (d4 - d2) - 2.0 * (d3 - d1);
        o[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    o
}

/// `A^T m` along one axis for 6 lane vectors.
#[inline(always)]
pub(crate) fn at6(m: [&Lanes; 6]) -> [Lanes; 4] {
    let mut o = [[0.0f32; WG_LANES]; 4];
    for l in 0..WG_LANES {
        let (m0, m1, m2, m3, m4, m5) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]);
        let (p12, d12, p34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        o[0][l] = m0 + p12 + p34;
        o[1][l] = d12 + 2.0 * d34;
        o[2][l] = p12 + 4.0 * p34;
        o[3][l] = d12 + 8.0 * d34 + m5;
    }
    o
}

/// Where one chunk's transformed input `v[xi][ci][j]` lives: tasks that
/// transform disjoint input-channel ranges of one chunk share it.
#[derive(Clone, Copy)]
pub(crate) struct VBuf {
    pub(crate) ptr: SyncPtr,
    pub(crate) len: usize,
}

/// Where a chunk of tiles lies: tiles `t0..t0+nt` of a `tiles_x`-wide grid.
#[derive(Clone, Copy)]
pub(crate) struct TileChunk {
    pub(crate) t0: usize,
    pub(crate) nt: usize,
    pub(crate) tiles_x: usize,
}

impl Conv2d {
    /// f32 scratch of one Winograd task: the transformed input of one chunk
    /// of tiles (all points and channels) and one output-channel block of
    /// the per-point products.
    pub(crate) fn winograd_region(&self) -> usize {
        let nr = self.gemm.nr();
        let cob = self.winograd_cob();
        WG_XI * self.shape.c_in * nr + WG_XI * cob * nr + 2 * 16
    }

    pub(crate) fn winograd_cob(&self) -> usize {
        let mr = self.gemm.mr();
        let cob = (WG_COB / mr).max(1) * mr;
        cob.min(self.shape.c_out.div_ceil(mr) * mr)
    }

    pub(crate) fn run_winograd(
        &self,
        u: &[PackedA],
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        let s = &self.shape;
        let (nr, mr) = (self.gemm.nr(), self.gemm.mr());
        let region = self.winograd_region();
        let regions = (scratch.len() / region.max(1)).min(MAX_THREADS);
        let pool_threads = pool.threads().min(MAX_THREADS);
        let threads = pool_threads.min(regions);
        if threads == 0 || nr % WG_LANES != 0 || u.len() != WG_XI {
            debug_assert!(false, "winograd scratch {} < {region}", scratch.len());
            return;
        }
        let tiles_x = s.ow.div_ceil(WG_OUT);
        let tiles = tiles_x * s.oh.div_ceil(WG_OUT);
        let chunks = tiles.div_ceil(nr);
        // Split chunks of tiles, a few tasks per thread (a late worker
        // then takes fewer); with too few chunks, split the output
        // channels across threads instead (each task transforms the input).
        let split = if pool_threads <= regions {
            OVERSPLIT
        } else {
            1
        };
        let co_panels = s.c_out.div_ceil(mr);
        let (tc, tco) = if threads == 1 {
            (1, 1)
        } else if chunks >= threads || co_panels < 2 {
            ((threads * split).min(chunks), 1)
        } else {
            (1, threads.min(co_panels))
        };
        let slots = Regions::new(regions);
        let (hw, plane) = (s.h * s.w, s.oh * s.ow);
        let sp = SyncPtr(scratch.as_mut_ptr());
        for b in 0..s.batch {
            let xb = &x[b * s.c_in * hw..(b + 1) * s.c_in * hw];
            let yp = SyncPtr(y[b * s.c_out * plane..].as_mut_ptr());
            if tco > 1 {
                // One chunk of tiles, output channels split: transform the
                // input once, split by input channel, into region 0's `v`
                // (each task would otherwise transform all of it), then
                // the products and output transform by output channel,
                // each task in its own region's `m`.
                let yb = OutImage {
                    ptr: yp,
                    len: s.c_out * plane,
                };
                self.winograd_split_co(u, xb, yb, (tiles_x, tiles), tco, (sp, region), pool);
                continue;
            }
            let body = |t: usize| {
                let (ti, tj) = (t / tco, t % tco);
                let (c_lo, c_hi) = (ti * chunks / tc, (ti + 1) * chunks / tc);
                let co_lo = (tj * co_panels / tco) * mr;
                let co_hi = ((tj + 1) * co_panels / tco * mr).min(s.c_out);
                // At most min(pool threads, tasks) tasks run at once, never
                // more than `regions`, so a region is always free.
                let r = slots.claim();
                // SAFETY: r < regions <= scratch.len() / region: region r is
                // inside `scratch` and used by this task only until released.
                let buf =
                    unsafe { std::slice::from_raw_parts_mut(sp.get().add(r * region), region) };
                let (v, m) = buf.split_at_mut(WG_XI * s.c_in * nr + 16);
                let (v, m) = (aligned_f32(v), aligned_f32(m));
                for chunk in c_lo..c_hi {
                    let tc = TileChunk {
                        t0: chunk * nr,
                        nt: nr.min(tiles - chunk * nr),
                        tiles_x,
                    };
                    let vb = VBuf {
                        ptr: SyncPtr(v.as_mut_ptr()),
                        len: v.len(),
                    };
                    // SAFETY: `v` is this task's own region.
                    unsafe { self.winograd_input(xb, tc, vb, (0, s.c_in)) };
                    let mut co0 = co_lo;
                    while co0 < co_hi {
                        let co1 = (co0 + self.winograd_cob()).min(co_hi);
                        let yb = OutImage {
                            ptr: yp,
                            len: s.c_out * plane,
                        };
                        self.winograd_chunk(u, v, m, (co0, co1), tc, yb);
                        co0 = co1;
                    }
                }
                slots.release(r);
            };
            pool.parallel_for(tc * tco, &body);
        }
    }

    /// [`run_winograd`](Self::run_winograd) for one image with fewer chunks
    /// of tiles than threads, its output channels split over `tco` tasks:
    /// per chunk two jobs on the pool, the input transform split by input
    /// channel into region 0's `v`, then the products and output transform
    /// by output channel. Same arithmetic as one task doing it all.
    #[allow(clippy::too_many_arguments)]
    fn winograd_split_co(
        &self,
        u: &[PackedA],
        xb: &[f32],
        yb: OutImage,
        (tiles_x, tiles): (usize, usize),
        tco: usize,
        (sp, region): (SyncPtr, usize),
        pool: &ThreadPool,
    ) {
        let nr = self.gemm.nr();
        for chunk in 0..tiles.div_ceil(nr) {
            let tc = TileChunk {
                t0: chunk * nr,
                nt: nr.min(tiles - chunk * nr),
                tiles_x,
            };
            self.winograd_split_chunk(u, xb, yb, tc, tco, (sp, region), pool);
        }
    }

    /// One chunk of [`winograd_split_co`](Self::winograd_split_co).
    #[allow(clippy::too_many_arguments)]
    fn winograd_split_chunk(
        &self,
        u: &[PackedA],
        xb: &[f32],
        yb: OutImage,
        tc: TileChunk,
        tco: usize,
        (sp, region): (SyncPtr, usize),
        pool: &ThreadPool,
    ) {
        let s = &self.shape;
        let (nr, mr) = (self.gemm.nr(), self.gemm.mr());
        let v_len = WG_XI * s.c_in * nr + 16;
        // SAFETY: region 0 lies inside the scratch (threads >= 1 regions).
        let v0 = unsafe { std::slice::from_raw_parts_mut(sp.get(), v_len) };
        let v0 = aligned_f32(v0);
        let vb = VBuf {
            ptr: SyncPtr(v0.as_mut_ptr()),
            len: v0.len(),
        };
        let tci = tco.min(s.c_in);
        pool.parallel_for(tci, &|t| {
            let cis = (t * s.c_in / tci, (t + 1) * s.c_in / tci);
            // SAFETY: tasks write disjoint input-channel ranges of `v`.
            unsafe { self.winograd_input(xb, tc, vb, cis) };
        });
        let co_panels = s.c_out.div_ceil(mr);
        // SAFETY: the first job has finished: `v` is only read from here.
        let v = unsafe { std::slice::from_raw_parts(vb.ptr.get(), vb.len) };
        pool.parallel_for(tco, &|t| {
            let co_lo = (t * co_panels / tco) * mr;
            let co_hi = ((t + 1) * co_panels / tco * mr).min(s.c_out);
            // SAFETY: region t (t < tco <= regions) is inside the scratch;
            // its `m` part (after its `v` part, which for region 0 is the
            // shared `v` above) belongs to task t alone.
            let m = unsafe {
                std::slice::from_raw_parts_mut(sp.get().add(t * region + v_len), region - v_len)
            };
            let m = aligned_f32(m);
            let mut co0 = co_lo;
            while co0 < co_hi {
                let co1 = (co0 + self.winograd_cob()).min(co_hi);
                self.winograd_chunk(u, v, m, (co0, co1), tc, yb);
                co0 = co1;
            }
        });
    }

    /// The per-point products and the output transform for output channels
    /// `cos` of one chunk of tiles.
    pub(crate) fn winograd_chunk(
        &self,
        u: &[PackedA],
        v: &[f32],
        m: &mut [f32],
        cos: (usize, usize),
        tc: TileChunk,
        y: OutImage,
    ) {
        let s = &self.shape;
        let nr = self.gemm.nr();
        let rows = cos.1 - cos.0;
        let cob = self.winograd_cob();
        for (xi, a) in u.iter().enumerate() {
            let vb = &v[xi * s.c_in * nr..(xi + 1) * s.c_in * nr];
            let Some(bm) = PackedBRef::new(&self.gemm, vb, s.c_in, nr) else {
                return;
            };
            let mo = &mut m[xi * cob * nr..][..rows * nr];
            self.gemm.run_rows(
                cos,
                s.c_out,
                nr,
                s.c_in,
                a,
                &bm,
                mo,
                nr,
                &Epilogue::default(),
                &mut [],
            );
        }
        self.winograd_output(m, cos, tc, y);
    }

    /// Input transform of one chunk of tiles: `v[xi][ci][j] = (B^T d B)[xi]`
    /// of tile `t0 + j`'s 6x6 input patch in channel `ci`, for the input
    /// channels `cis`. A `v` shorter than `36 * c_in * nr` gets nothing.
    ///
    /// # Safety
    /// `v` is valid for `v.len` f32 and no one else touches its entries of
    /// channels `cis` meanwhile.
    pub(crate) unsafe fn winograd_input(
        &self,
        x: &[f32],
        tc: TileChunk,
        v: VBuf,
        cis: (usize, usize),
    ) {
        if v.len < WG_XI * self.shape.c_in * self.gemm.nr() {
            debug_assert!(false, "winograd v too small");
            return;
        }
        let cis = (cis.0, cis.1.min(self.shape.c_in));
        match self.gemm.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if wino_avx512::fits(&self.shape, self.gemm.nr()) => {
                // SAFETY: a plan's ISA is supported by this CPU; `fits`
                // checked the index range and lane groups.
                unsafe { wino_avx512::input(&self.shape, self.gemm.nr(), x, tc, v, cis) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_input_avx512(&self.shape, self.gemm.nr(), x, tc, v, cis) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_input_avx2(&self.shape, self.gemm.nr(), x, tc, v, cis) }
            }
            // SAFETY: forwarded from this fn's contract.
            _ => unsafe { winograd_input_impl(&self.shape, self.gemm.nr(), x, tc, v, cis) },
        }
    }

    /// Output transform, bias and activation for output channels `cos`.
    pub(crate) fn winograd_output(
        &self,
        m: &[f32],
        cos: (usize, usize),
        tc: TileChunk,
        y: OutImage,
    ) {
        let isa = self.gemm.isa();
        let args = WgOut {
            s: &self.shape,
            nr: self.gemm.nr(),
            cob: self.winograd_cob(),
            bias: &self.bias,
            act: self.act,
            isa,
        };
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if wino_avx512::fits(&self.shape, self.gemm.nr()) => {
                // SAFETY: as in `winograd_input`.
                unsafe { wino_avx512::output(&args, m, cos, tc, y) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_output_avx512(&args, m, cos, tc, y) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_output_avx2(&args, m, cos, tc, y) }
            }
            _ => winograd_output_impl(&args, m, cos, tc, y),
        }
    }
}

/// `buf` from its first 64-byte boundary on.
pub(crate) fn aligned_f32(buf: &mut [f32]) -> &mut [f32] {
    let mis = (buf.as_ptr() as usize / 4) % 16;
    let off = ((16 - mis) % 16).min(buf.len());
    &mut buf[off..]
}

/// # Safety
/// The CPU supports AVX-512F; `v` as in [`Conv2d::winograd_input`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn winograd_input_avx512(
    s: &ConvShape,
    nr: usize,
    x: &[f32],
    tc: TileChunk,
    v: VBuf,
    cis: (usize, usize),
) {
    winograd_input_impl(s, nr, x, tc, v, cis)
}

/// # Safety
/// The CPU supports AVX2 and FMA; `v` as in [`Conv2d::winograd_input`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn winograd_input_avx2(
    s: &ConvShape,
    nr: usize,
    x: &[f32],
    tc: TileChunk,
    v: VBuf,
    cis: (usize, usize),
) {
    winograd_input_impl(s, nr, x, tc, v, cis)
}

/// # Safety
/// `v` as in [`Conv2d::winograd_input`], at least `36 * c_in * nr` long.
#[inline(always)]
pub(crate) unsafe fn winograd_input_impl(
    s: &ConvShape,
    nr: usize,
    x: &[f32],
    tc: TileChunk,
    v: VBuf,
    cis: (usize, usize),
) {
    let hw = s.h * s.w;
    let tiles = tc.t0 + tc.nt;
    let mut d = [[0.0f32; WG_LANES]; WG_XI];
    for ci in cis.0..cis.1 {
        let plane = &x[ci * hw..(ci + 1) * hw];
        for g in 0..nr / WG_LANES {
            for (l, lane_tile) in (tc.t0 + g * WG_LANES..).take(WG_LANES).enumerate() {
                if lane_tile >= tiles {
                    for e in d.iter_mut() {
                        e[l] = 0.0;
                    }
                    continue;
                }
                let (ty, tx) = (lane_tile / tc.tiles_x, lane_tile % tc.tiles_x);
                let y0 = (ty * WG_OUT) as isize - s.pad_top as isize;
                let x0 = (tx * WG_OUT) as isize - s.pad_left as isize;
                let inside =
                    y0 >= 0 && x0 >= 0 && y0 as usize + WG_IN <= s.h && x0 as usize + WG_IN <= s.w;
                if inside {
                    let base = y0 as usize * s.w + x0 as usize;
                    for r in 0..WG_IN {
                        let row = &plane[base + r * s.w..][..WG_IN];
                        for c in 0..WG_IN {
                            d[r * WG_IN + c][l] = row[c];
                        }
                    }
                } else {
                    for r in 0..WG_IN {
                        let iy = y0 + r as isize;
                        for c in 0..WG_IN {
                            let ix = x0 + c as isize;
                            let ok =
                                iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w;
                            d[r * WG_IN + c][l] = if ok {
                                plane[iy as usize * s.w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            // Columns (B^T along rows of the patch), then rows.
            let mut t = [[0.0f32; WG_LANES]; WG_XI];
            for c in 0..WG_IN {
                let o = bt6([
                    &d[c],
                    &d[6 + c],
                    &d[12 + c],
                    &d[18 + c],
                    &d[24 + c],
                    &d[30 + c],
                ]);
                for (r, row) in o.iter().enumerate() {
                    t[r * WG_IN + c] = *row;
                }
            }
            for r in 0..WG_IN {
                let b = r * WG_IN;
                let o = bt6([&t[b], &t[b + 1], &t[b + 2], &t[b + 3], &t[b + 4], &t[b + 5]]);
                for (c, vals) in o.iter().enumerate() {
                    let at = ((b + c) * s.c_in + ci) * nr + g * WG_LANES;
                    // SAFETY: at + 16 <= 36 * c_in * nr <= v.len, in
                    // channel ci, ours per the contract.
                    unsafe {
                        std::ptr::copy_nonoverlapping(vals.as_ptr(), v.ptr.get().add(at), WG_LANES)
                    };
                }
            }
        }
    }
}

/// AVX-512 Winograd transforms: patches gathered and outputs scattered
/// with masked gather/scatter (the masks do the zero padding and the
/// clipping at the borders), transforms in registers.
#[cfg(target_arch = "x86_64")]
pub(crate) mod wino_avx512 {
    use super::{ConvShape, OutImage, TileChunk, VBuf, WgOut, WG_IN, WG_LANES, WG_OUT, WG_XI};
    use crate::engine::cpu::activation::x86::apply_rows_avx512;
    use std::arch::x86_64::*;

    /// Most 16-tile lane groups per chunk.
    const MAX_GROUPS: usize = 4;

    /// Whether plane indices fit the 32-bit gather offsets and a chunk has
    /// at most `MAX_GROUPS` lane groups.
    pub(super) fn fits(s: &ConvShape, nr: usize) -> bool {
        let lim = (i32::MAX / 2) as usize;
        nr.is_multiple_of(WG_LANES)
            && nr / WG_LANES <= MAX_GROUPS
            && (s.h + 8).saturating_mul(s.w + 8) < lim
            && (s.oh + 8).saturating_mul(s.ow + 8) < lim
    }

    /// Per lane group of a chunk: the offset of each tile's window origin
    /// (may be negative: padding) and, per window element, which lanes
    /// read inside the image (`WG_XI` masks for input, 16 for output).
    struct Lanes<const E: usize> {
        idx: [[i32; WG_LANES]; MAX_GROUPS],
        mask: [[u16; E]; MAX_GROUPS],
    }

    /// Window of side `side` at `(ty*4 - pad_y, tx*4 - pad_x)` of an
    /// `h x w` plane, for each tile of the chunk.
    fn lanes<const E: usize>(
        tc: TileChunk,
        groups: usize,
        (h, w): (usize, usize),
        (pad_y, pad_x): (usize, usize),
        side: usize,
    ) -> Lanes<E> {
        let mut ln = Lanes {
            idx: [[0; WG_LANES]; MAX_GROUPS],
            mask: [[0; E]; MAX_GROUPS],
        };
        let tiles = tc.t0 + tc.nt;
        for g in 0..groups.min(MAX_GROUPS) {
            for l in 0..WG_LANES {
                let t = tc.t0 + g * WG_LANES + l;
                if t >= tiles {
                    continue;
                }
                let (ty, tx) = (t / tc.tiles_x, t % tc.tiles_x);
                let y0 = (ty * WG_OUT) as isize - pad_y as isize;
                let x0 = (tx * WG_OUT) as isize - pad_x as isize;
                ln.idx[g][l] = (y0 * w as isize + x0) as i32;
                for r in 0..side {
                    let iy = y0 + r as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for c in 0..side {
                        let ix = x0 + c as isize;
                        if ix >= 0 && ix < w as isize {
                            ln.mask[g][r * side + c] |= 1 << l;
                        }
                    }
                }
            }
        }
        ln
    }

    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn bt6(d: [__m512; 6]) -> [__m512; 6] {
        let [d0, d1, d2, d3, d4, d5] = d;
        let (c4, c5, c2) = (
            _mm512_set1_ps(4.0),
            _mm512_set1_ps(5.0),
            _mm512_set1_ps(2.0),
        );
        [
            _mm512_fmadd_ps(c4, d0, _mm512_fnmadd_ps(c5, d2, d4)),
            _mm512_fnmadd_ps(c4, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4)),
            _mm512_fmadd_ps(c4, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3)),
            _mm512_fmadd_ps(c2, _mm512_sub_ps(d3, d1), _mm512_sub_ps(d4, d2)),
            _mm512_fnmadd_ps(c2, _mm512_sub_ps(d3, d1), _mm512_sub_ps(d4, d2)),
            _mm512_fmadd_ps(c4, d1, _mm512_fnmadd_ps(c5, d3, d5)),
        ]
    }

    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn at6(m: [__m512; 6]) -> [__m512; 4] {
        let [m0, m1, m2, m3, m4, m5] = m;
        let (p12, d12) = (_mm512_add_ps(m1, m2), _mm512_sub_ps(m1, m2));
        let (p34, d34) = (_mm512_add_ps(m3, m4), _mm512_sub_ps(m3, m4));
        [
            _mm512_add_ps(_mm512_add_ps(m0, p12), p34),
            _mm512_fmadd_ps(_mm512_set1_ps(2.0), d34, d12),
            _mm512_fmadd_ps(_mm512_set1_ps(4.0), p34, p12),
            _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d34, d12), m5),
        ]
    }

    /// See `winograd_input_impl`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F and [`fits`] holds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input(
        s: &ConvShape,
        nr: usize,
        x: &[f32],
        tc: TileChunk,
        v: VBuf,
        cis: (usize, usize),
    ) {
        let hw = s.h * s.w;
        let groups = nr / WG_LANES;
        let ln: Lanes<WG_XI> = lanes(tc, groups, (s.h, s.w), (s.pad_top, s.pad_left), WG_IN);
        if x.len() < s.c_in * hw || v.len < WG_XI * s.c_in * nr {
            return;
        }
        for ci in cis.0..cis.1.min(s.c_in) {
            let plane = x[ci * hw..].as_ptr();
            for g in 0..groups {
                let base = _mm512_loadu_si512(ln.idx[g].as_ptr().cast());
                let mut t = [_mm512_setzero_ps(); WG_XI];
                for c in 0..WG_IN {
                    let mut col = [_mm512_setzero_ps(); WG_IN];
                    for (r, e) in col.iter_mut().enumerate() {
                        let off = _mm512_add_epi32(base, _mm512_set1_epi32((r * s.w + c) as i32));
                        // SAFETY: lanes in the mask address
                        // plane[(y0 + r) * w + x0 + c] with that position
                        // inside the image (built by `lanes`); masked-off
                        // lanes are not read.
                        *e = _mm512_mask_i32gather_ps(
                            _mm512_setzero_ps(),
                            ln.mask[g][r * WG_IN + c],
                            off,
                            plane,
                            4,
                        );
                    }
                    for (r, o) in bt6(col).into_iter().enumerate() {
                        t[r * WG_IN + c] = o;
                    }
                }
                for r in 0..WG_IN {
                    let b = r * WG_IN;
                    let o = bt6([t[b], t[b + 1], t[b + 2], t[b + 3], t[b + 4], t[b + 5]]);
                    for (c, val) in o.into_iter().enumerate() {
                        let at = ((b + c) * s.c_in + ci) * nr + g * WG_LANES;
                        // SAFETY: at + 16 <= 36 * c_in * nr <= v.len, in
                        // channel ci, ours per the caller's contract.
                        _mm512_storeu_ps(v.ptr.get().add(at), val);
                    }
                }
            }
        }
    }

    /// See `winograd_output_impl`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F and [`fits`] holds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output(
        a: &WgOut,
        m: &[f32],
        cos: (usize, usize),
        tc: TileChunk,
        y: OutImage,
    ) {
        let s = a.s;
        let plane = s.oh * s.ow;
        let groups = a.nr / WG_LANES;
        let ln: Lanes<{ WG_OUT * WG_OUT }> = lanes(tc, groups, (s.oh, s.ow), (0, 0), WG_OUT);
        let rows = cos.1 - cos.0;
        if m.len() < (WG_XI - 1) * a.cob * a.nr + rows * a.nr || y.len < s.c_out * plane {
            return;
        }
        let mut out = [_mm512_setzero_ps(); WG_OUT * WG_OUT];
        for co in cos.0..cos.1 {
            let bias = _mm512_set1_ps(a.bias.get(co).copied().unwrap_or(0.0));
            // SAFETY: co < c_out, so the plane is inside y (checked above).
            let yp = unsafe { y.ptr.get().add(co * plane) };
            for g in 0..groups {
                // SAFETY: within m: checked above (xi < 36, co - cos.0 < rows).
                let lane = |xi: usize| {
                    _mm512_loadu_ps(
                        m.as_ptr()
                            .add((xi * a.cob + co - cos.0) * a.nr + g * WG_LANES),
                    )
                };
                let mut sc = [[_mm512_setzero_ps(); WG_IN]; WG_OUT];
                #[allow(clippy::needless_range_loop)]
                for c in 0..WG_IN {
                    let o = at6([
                        lane(c),
                        lane(6 + c),
                        lane(12 + c),
                        lane(18 + c),
                        lane(24 + c),
                        lane(30 + c),
                    ]);
                    for (r, val) in o.into_iter().enumerate() {
                        sc[r][c] = val;
                    }
                }
                for (r, srow) in sc.iter().enumerate() {
                    for (c, val) in at6(*srow).into_iter().enumerate() {
                        out[r * WG_OUT + c] = _mm512_add_ps(val, bias);
                    }
                }
                apply_rows_avx512(
                    a.act,
                    out.as_mut_ptr().cast(),
                    0,
                    1,
                    WG_OUT * WG_OUT * WG_LANES,
                );
                let base = _mm512_loadu_si512(ln.idx[g].as_ptr().cast());
                for r in 0..WG_OUT {
                    for c in 0..WG_OUT {
                        let off = _mm512_add_epi32(base, _mm512_set1_epi32((r * s.ow + c) as i32));
                        // SAFETY: lanes in the mask address an output
                        // position inside this channel's plane (built by
                        // `lanes`), which only this task writes (see
                        // `OutImage`); masked-off lanes are not written.
                        _mm512_mask_i32scatter_ps(
                            yp,
                            ln.mask[g][r * WG_OUT + c],
                            off,
                            out[r * WG_OUT + c],
                            4,
                        );
                    }
                }
            }
        }
    }
}

/// The output of one image as the Winograd tasks see it: each task writes
/// a disjoint set of elements (its tiles of its channels) that are
/// interleaved with other tasks' in memory, so no task may hold a `&mut`
/// slice of it.
#[derive(Clone, Copy)]
pub(crate) struct OutImage {
    pub(crate) ptr: SyncPtr,
    pub(crate) len: usize,
}

impl OutImage {
    /// `y[i] = v`; out-of-range `i` is ignored.
    #[inline(always)]
    pub(crate) fn write(self, i: usize, v: f32) {
        if i < self.len {
            // SAFETY: i < len, the image's length; no other task writes
            // element i (see the type's doc).
            unsafe { *self.ptr.get().add(i) = v };
        }
    }
}

/// What the output transform needs besides the products.
pub(crate) struct WgOut<'a> {
    pub(crate) s: &'a ConvShape,
    pub(crate) nr: usize,
    pub(crate) cob: usize,
    pub(crate) bias: &'a [f32],
    pub(crate) act: Activation,
    pub(crate) isa: Isa,
}

/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn winograd_output_avx512(
    a: &WgOut,
    m: &[f32],
    cos: (usize, usize),
    tc: TileChunk,
    y: OutImage,
) {
    winograd_output_impl(a, m, cos, tc, y)
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn winograd_output_avx2(
    a: &WgOut,
    m: &[f32],
    cos: (usize, usize),
    tc: TileChunk,
    y: OutImage,
) {
    winograd_output_impl(a, m, cos, tc, y)
}

#[inline(always)]
pub(crate) fn winograd_output_impl(
    a: &WgOut,
    m: &[f32],
    cos: (usize, usize),
    tc: TileChunk,
    y: OutImage,
) {
    let s = a.s;
    let plane = s.oh * s.ow;
    let tiles = tc.t0 + tc.nt;
    for co in cos.0..cos.1 {
        let bias = a.bias.get(co).copied().unwrap_or(0.0);
        for g in 0..a.nr / WG_LANES {
            let lane = |xi: usize| -> &Lanes {
                let at = (xi * a.cob + co - cos.0) * a.nr + g * WG_LANES;
                <&Lanes>::try_from(&m[at..at + WG_LANES]).unwrap_or(&[0.0; WG_LANES])
            };
            // Columns, then rows.
            let mut sc = [[[0.0f32; WG_LANES]; WG_IN]; WG_OUT];
            #[allow(clippy::needless_range_loop)]
            for c in 0..WG_IN {
                let o = at6([
                    lane(c),
                    lane(6 + c),
                    lane(12 + c),
                    lane(18 + c),
                    lane(24 + c),
                    lane(30 + c),
                ]);
                for (r, row) in o.iter().enumerate() {
                    sc[r][c] = *row;
                }
            }
            let mut out = [[0.0f32; WG_LANES]; WG_OUT * WG_OUT];
            for (r, srow) in sc.iter().enumerate() {
                let o = at6([&srow[0], &srow[1], &srow[2], &srow[3], &srow[4], &srow[5]]);
                for (c, vals) in o.iter().enumerate() {
                    for (dst, v) in out[r * WG_OUT + c].iter_mut().zip(vals) {
                        *dst = v + bias;
                    }
                }
            }
            activation::apply_slice(a.act, out.as_flattened_mut(), a.isa);
            for (l, lane_tile) in
                (tc.t0 + g * WG_LANES..tiles.min(tc.t0 + (g + 1) * WG_LANES)).enumerate()
            {
                let (ty, tx) = (lane_tile / tc.tiles_x, lane_tile % tc.tiles_x);
                for r in 0..WG_OUT {
                    let oy = ty * WG_OUT + r;
                    if oy >= s.oh {
                        break;
                    }
                    for c in 0..WG_OUT {
                        let ox = tx * WG_OUT + c;
                        if ox < s.ow {
                            y.write(co * plane + oy * s.ow + ox, out[r * WG_OUT + c][l]);
                        }
                    }
                }
            }
        }
    }
}
