//! 2-D convolution (1-D runs as 2-D with H = 1) on NCHW f32 tensors, with
//! bias and a fused activation.
//!
//! * Pointwise (1x1, stride 1, no padding): a GEMM straight on the input,
//!   `Y[Cout, H*W] = W[Cout, Cin] * X[Cin, H*W]` (X read in place).
//! * 3x3, stride 1, one group, >= 8 channels in and out: Winograd
//!   F(4x4, 3x3) ([`ConvAlgo::Auto`]): per chunk of 4x4 output tiles, an
//!   input transform, 36 small GEMMs against weights transformed at boot,
//!   and an output transform with the bias and activation fused. 4x fewer
//!   multiplies than direct; error ~1e-6 of the output's scale.
//! * Every other conv with more than one input channel per group: implicit
//!   GEMM. `B = im2col(X)` is never materialised: the GEMM asks this module
//!   to pack each `kc x nc` block of it straight from the image
//!   ([`BOperand`] for `Im2col`).
//! * One input channel per group (depthwise, also with a channel
//!   multiplier): a direct kernel, one output plane per task.
//!
//! Weights are packed into the GEMM's A layout (one [`PackedA`] per group)
//! in [`Conv2d::new`], at boot, which allocates. [`Conv2d::run`] is on the
//! frame path (inference thread, fanning out to the kernel pool) and never
//! allocates.

use super::activation;
use super::gemm::{
    BOperand, Bias, Epilogue, Gemm, MatRef, PackedA, PackedBRef, MAX_THREADS, OVERSPLIT,
};
use super::pool::{Regions, SyncPtr, ThreadPool};
use super::simd::{copy_run, zero_run, Isa};
use crate::engine::ir::Activation;

/// A conv's geometry after `auto_pad` and defaults are resolved. Only the
/// leading pads matter: the output size says where the window stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub group: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvShape {
    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.c_in / self.group
    }

    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.c_out / self.group
    }

    /// Elements of X.
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.h * self.w
    }

    /// Elements of Y.
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.oh * self.ow
    }

    /// Elements of W.
    pub fn w_len(&self) -> usize {
        self.c_out * self.cin_g() * self.kh * self.kw
    }

    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.oh == self.h
            && self.ow == self.w
    }

    /// 3x3, stride 1, no dilation, one group, enough channels and output
    /// for the transforms to pay off.
    fn winograd_fits(&self) -> bool {
        self.group == 1
            && (self.kh, self.kw) == (3, 3)
            && (self.stride_h, self.stride_w) == (1, 1)
            && (self.dil_h, self.dil_w) == (1, 1)
            && self.c_in >= 8
            && self.c_out >= 8
            && self.oh >= WG_OUT
            && self.ow >= WG_OUT
    }

    fn check(&self) -> Result<(), String> {
        let nonzero = [
            ("group", self.group),
            ("kernel height", self.kh),
            ("kernel width", self.kw),
            ("stride", self.stride_h),
            ("stride", self.stride_w),
            ("dilation", self.dil_h),
            ("dilation", self.dil_w),
        ];
        for (what, v) in nonzero {
            if v == 0 {
                return Err(format!("conv {what} must be at least 1, got 0"));
            }
        }
        if !self.c_in.is_multiple_of(self.group) || !self.c_out.is_multiple_of(self.group) {
            return Err(format!(
                "conv group {} must divide input channels {} and output channels {}",
                self.group, self.c_in, self.c_out
            ));
        }
        let sizes = [
            self.batch, self.c_in, self.h, self.w, self.c_out, self.oh, self.ow, self.kh, self.kw,
        ];
        if sizes
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
            .is_none()
        {
            return Err("conv tensor sizes overflow".into());
        }
        Ok(())
    }
}

/// How a conv is computed, chosen at boot.
#[derive(Debug)]
enum Kind {
    /// GEMM with weights packed per group; `pointwise` skips im2col.
    Gemm {
        weights: Vec<PackedA>,
        pointwise: bool,
    },
    /// One input channel per group: `weights` is `[c_out, kh*kw]`.
    Direct { weights: Vec<f32> },
    /// Winograd F(4x4, 3x3): `u[xi]` is the transformed weights'
    /// `c_out x c_in` matrix for transform point `xi`.
    Winograd { u: Vec<PackedA> },
}

/// Which algorithm a conv uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Winograd F(4x4, 3x3) for 3x3 stride-1 convs with enough channels
    /// (about 2.5x fewer multiplies; error ~1e-6 relative to the output
    /// scale), the direct kernel for depthwise, GEMM otherwise.
    Auto,
    /// Never Winograd: results closest to a direct convolution.
    NoWinograd,
}

/// A conv with its weights packed and every parameter resolved.
#[derive(Debug)]
pub struct Conv2d {
    shape: ConvShape,
    gemm: Gemm,
    kind: Kind,
    /// `c_out` values, or empty when there is no bias.
    bias: Vec<f32>,
    act: Activation,
    threads: usize,
}

impl Conv2d {
    /// Pack `weights` (`[c_out, c_in/group, kh, kw]`, row-major) and `bias`
    /// (`c_out` values, or one value for all channels). Boot only.
    /// Scratch is sized for up to `threads` threads.
    pub fn new(
        shape: ConvShape,
        weights: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
        gemm: Gemm,
        threads: usize,
    ) -> Result<Conv2d, String> {
        Conv2d::with_algo(shape, weights, bias, act, gemm, threads, ConvAlgo::Auto)
    }

    /// [`Conv2d::new`] with a choice of algorithm. Boot only.
    pub fn with_algo(
        shape: ConvShape,
        weights: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
        gemm: Gemm,
        threads: usize,
        algo: ConvAlgo,
    ) -> Result<Conv2d, String> {
        shape.check()?;
        if weights.len() != shape.w_len() {
            return Err(format!(
                "conv weights have {} values but {}x{}x{}x{} needs {}",
                weights.len(),
                shape.c_out,
                shape.cin_g(),
                shape.kh,
                shape.kw,
                shape.w_len()
            ));
        }
        let bias = match bias {
            None => Vec::new(),
            Some(b) if b.len() == shape.c_out => b.to_vec(),
            Some(b) if b.len() == 1 => vec![b[0]; shape.c_out],
            Some(b) => {
                return Err(format!(
                    "conv bias has {} values but there are {} output channels",
                    b.len(),
                    shape.c_out
                ))
            }
        };
        let kind = if shape.cin_g() == 1 && shape.group > 1 {
            Kind::Direct {
                weights: weights.to_vec(),
            }
        } else if algo == ConvAlgo::Auto && shape.winograd_fits() {
            Kind::Winograd {
                u: winograd_weights(&shape, weights, &gemm)?,
            }
        } else {
            let (cout_g, k) = (shape.cout_g(), shape.cin_g() * shape.kh * shape.kw);
            let mut packed = Vec::with_capacity(shape.group);
            for g in 0..shape.group {
                let wg = &weights[g * cout_g * k..(g + 1) * cout_g * k];
                let a = MatRef::row_major(wg, cout_g, k)
                    .ok_or_else(|| format!("conv group {g} weights do not fit {cout_g}x{k}"))?;
                packed.push(gemm.pack_a(a));
            }
            Kind::Gemm {
                weights: packed,
                pointwise: shape.is_pointwise(),
            }
        };
        Ok(Conv2d {
            shape,
            gemm,
            kind,
            bias,
            act,
            threads: threads.clamp(1, MAX_THREADS),
        })
    }

    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    /// f32 scratch [`Conv2d::run`] needs.
    pub fn scratch_len(&self) -> usize {
        let s = &self.shape;
        match &self.kind {
            // Both the image (pointwise) and im2col are packed at run time.
            Kind::Gemm { .. } => self.gemm.scratch_len(
                s.cout_g(),
                s.oh * s.ow,
                s.cin_g() * s.kh * s.kw,
                self.threads,
                false,
                true,
            ),
            Kind::Direct { .. } => 0,
            Kind::Winograd { .. } => self.winograd_region() * self.threads,
        }
    }

    /// `y = act(conv(x) + bias)`; `x` and `y` are NCHW of the boot shape.
    /// Wrong lengths compute nothing (debug builds assert).
    /// Frame path: never allocates.
    pub fn run(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32], pool: &ThreadPool) {
        let s = &self.shape;
        if x.len() < s.x_len() || y.len() < s.y_len() {
            debug_assert!(false, "conv buffers too small");
            return;
        }
        match &self.kind {
            Kind::Gemm { weights, pointwise } => {
                self.run_gemm(weights, *pointwise, x, y, scratch, pool)
            }
            Kind::Direct { weights } => self.run_direct(weights, x, y, pool),
            Kind::Winograd { u } => self.run_winograd(u, x, y, scratch, pool),
        }
    }

    fn run_gemm(
        &self,
        weights: &[PackedA],
        pointwise: bool,
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        let s = &self.shape;
        let (cin_g, cout_g) = (s.cin_g(), s.cout_g());
        let hw = s.h * s.w;
        let n = s.oh * s.ow;
        let k = cin_g * s.kh * s.kw;
        for b in 0..s.batch {
            for (g, wg) in weights.iter().enumerate() {
                let xo = (b * s.c_in + g * cin_g) * hw;
                let xg = &x[xo..xo + cin_g * hw];
                let yo = (b * s.c_out + g * cout_g) * n;
                let yg = &mut y[yo..yo + cout_g * n];
                let bias = if self.bias.is_empty() {
                    Bias::None
                } else {
                    Bias::Row(&self.bias[g * cout_g..(g + 1) * cout_g])
                };
                let epi = Epilogue {
                    bias,
                    act: self.act,
                    ..Epilogue::default()
                };
                if pointwise {
                    if let Some(bm) = MatRef::row_major(xg, cin_g, hw) {
                        self.gemm
                            .run(cout_g, n, k, wg, &bm, yg, n, &epi, scratch, pool);
                    }
                } else {
                    let bm = Im2col { x: xg, s };
                    self.gemm
                        .run(cout_g, n, k, wg, &bm, yg, n, &epi, scratch, pool);
                }
            }
        }
    }

    fn run_direct(&self, weights: &[f32], x: &[f32], y: &mut [f32], pool: &ThreadPool) {
        let s = &self.shape;
        let planes = s.batch * s.c_out;
        let plane = s.oh * s.ow;
        // A few planes per task, a few tasks per thread.
        let tasks = (pool.threads().min(MAX_THREADS) * OVERSPLIT)
            .min(planes)
            .max(1);
        let yp = SyncPtr(y.as_mut_ptr());
        let body = |t: usize| {
            let (lo, hi) = (t * planes / tasks, (t + 1) * planes / tasks);
            for p in lo..hi {
                // SAFETY: plane p of y (inside y, checked in `run`) belongs to
                // task t alone.
                let out = unsafe { std::slice::from_raw_parts_mut(yp.get().add(p * plane), plane) };
                self.direct_plane(p, weights, x, out);
            }
        };
        pool.parallel_for(tasks, &body);
    }

    /// Output plane `p` (= batch * c_out + channel) of a conv with one input
    /// channel per group.
    fn direct_plane(&self, p: usize, weights: &[f32], x: &[f32], out: &mut [f32]) {
        let s = &self.shape;
        let (b, oc) = (p / s.c_out, p % s.c_out);
        let ic = oc / s.cout_g();
        let hw = s.h * s.w;
        let xp = &x[(b * s.c_in + ic) * hw..][..hw];
        let wp = &weights[oc * s.kh * s.kw..][..s.kh * s.kw];
        let bias = self.bias.get(oc).copied().unwrap_or(0.0);
        for oy in 0..s.oh {
            let row = &mut out[oy * s.ow..(oy + 1) * s.ow];
            row.fill(bias);
            for r in 0..s.kh {
                let iy = (oy * s.stride_h + r * s.dil_h) as isize - s.pad_top as isize;
                if iy < 0 || iy >= s.h as isize {
                    continue;
                }
                let xrow = &xp[iy as usize * s.w..][..s.w];
                for c in 0..s.kw {
                    let wv = wp[r * s.kw + c];
                    let off = (c * s.dil_w) as isize - s.pad_left as isize;
                    let (lo, hi) = valid_range(off, s.stride_w, s.w, s.ow);
                    if lo >= hi {
                        continue;
                    }
                    let x0 = (lo * s.stride_w) as isize + off;
                    if s.stride_w == 1 {
                        let src = &xrow[x0 as usize..x0 as usize + (hi - lo)];
                        for (o, &v) in row[lo..hi].iter_mut().zip(src) {
                            *o += wv * v;
                        }
                    } else {
                        let src = xrow[x0 as usize..].iter().step_by(s.stride_w);
                        for (o, &v) in row[lo..hi].iter_mut().zip(src) {
                            *o += wv * v;
                        }
                    }
                }
            }
        }
        activation::apply_slice(self.act, out, self.gemm.isa());
    }
}

/// Winograd F(4x4, 3x3): input tile side, output tile side, transform points.
const WG_IN: usize = 6;
const WG_OUT: usize = 4;
const WG_XI: usize = WG_IN * WG_IN;
/// Tiles transformed together (the transforms' SIMD width).
const WG_LANES: usize = 16;
/// Output channels per block of the per-point GEMMs (bounds their output).
const WG_COB: usize = 64;

type Lanes = [f32; WG_LANES];

/// `G g G^T` for every (co, ci), arranged as one `c_out x c_in` matrix per
/// transform point and packed as GEMM A operands. Boot only.
fn winograd_weights(s: &ConvShape, w: &[f32], gemm: &Gemm) -> Result<Vec<PackedA>, String> {
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
fn bt6(d: [&Lanes; 6]) -> [Lanes; 6] {
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
fn at6(m: [&Lanes; 6]) -> [Lanes; 4] {
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

/// Where a chunk of tiles lies: tiles `t0..t0+nt` of a `tiles_x`-wide grid.
#[derive(Clone, Copy)]
struct TileChunk {
    t0: usize,
    nt: usize,
    tiles_x: usize,
}

impl Conv2d {
    /// f32 scratch of one Winograd task: the transformed input of one chunk
    /// of tiles (all points and channels) and one output-channel block of
    /// the per-point products.
    fn winograd_region(&self) -> usize {
        let nr = self.gemm.nr();
        let cob = self.winograd_cob();
        WG_XI * self.shape.c_in * nr + WG_XI * cob * nr + 2 * 16
    }

    fn winograd_cob(&self) -> usize {
        let mr = self.gemm.mr();
        let cob = (WG_COB / mr).max(1) * mr;
        cob.min(self.shape.c_out.div_ceil(mr) * mr)
    }

    fn run_winograd(
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
                    self.winograd_input(xb, tc, v);
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

    /// The per-point products and the output transform for output channels
    /// `cos` of one chunk of tiles.
    fn winograd_chunk(
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
    /// of tile `t0 + j`'s 6x6 input patch in channel `ci`.
    fn winograd_input(&self, x: &[f32], tc: TileChunk, v: &mut [f32]) {
        match self.gemm.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if wino_avx512::fits(&self.shape, self.gemm.nr()) => {
                // SAFETY: a plan's ISA is supported by this CPU; `fits`
                // checked the index range and lane groups.
                unsafe { wino_avx512::input(&self.shape, self.gemm.nr(), x, tc, v) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_input_avx512(&self.shape, self.gemm.nr(), x, tc, v) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: a plan's ISA is supported by this CPU.
                unsafe { winograd_input_avx2(&self.shape, self.gemm.nr(), x, tc, v) }
            }
            _ => winograd_input_impl(&self.shape, self.gemm.nr(), x, tc, v),
        }
    }

    /// Output transform, bias and activation for output channels `cos`.
    fn winograd_output(&self, m: &[f32], cos: (usize, usize), tc: TileChunk, y: OutImage) {
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
fn aligned_f32(buf: &mut [f32]) -> &mut [f32] {
    let mis = (buf.as_ptr() as usize / 4) % 16;
    let off = ((16 - mis) % 16).min(buf.len());
    &mut buf[off..]
}

/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn winograd_input_avx512(s: &ConvShape, nr: usize, x: &[f32], tc: TileChunk, v: &mut [f32]) {
    winograd_input_impl(s, nr, x, tc, v)
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn winograd_input_avx2(s: &ConvShape, nr: usize, x: &[f32], tc: TileChunk, v: &mut [f32]) {
    winograd_input_impl(s, nr, x, tc, v)
}

#[inline(always)]
fn winograd_input_impl(s: &ConvShape, nr: usize, x: &[f32], tc: TileChunk, v: &mut [f32]) {
    let hw = s.h * s.w;
    let tiles = tc.t0 + tc.nt;
    let mut d = [[0.0f32; WG_LANES]; WG_XI];
    for ci in 0..s.c_in {
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
                    v[at..at + WG_LANES].copy_from_slice(vals);
                }
            }
        }
    }
}

/// AVX-512 Winograd transforms: patches gathered and outputs scattered
/// with masked gather/scatter (the masks do the zero padding and the
/// clipping at the borders), transforms in registers.
#[cfg(target_arch = "x86_64")]
mod wino_avx512 {
    use super::{ConvShape, OutImage, TileChunk, WgOut, WG_IN, WG_LANES, WG_OUT, WG_XI};
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
    pub(super) unsafe fn input(s: &ConvShape, nr: usize, x: &[f32], tc: TileChunk, v: &mut [f32]) {
        let hw = s.h * s.w;
        let groups = nr / WG_LANES;
        let ln: Lanes<WG_XI> = lanes(tc, groups, (s.h, s.w), (s.pad_top, s.pad_left), WG_IN);
        if x.len() < s.c_in * hw || v.len() < WG_XI * s.c_in * nr {
            return;
        }
        for ci in 0..s.c_in {
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
                        // SAFETY: at + 16 <= 36 * c_in * nr <= v.len().
                        _mm512_storeu_ps(v.as_mut_ptr().add(at), val);
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
struct OutImage {
    ptr: SyncPtr,
    len: usize,
}

impl OutImage {
    /// `y[i] = v`; out-of-range `i` is ignored.
    #[inline(always)]
    fn write(self, i: usize, v: f32) {
        if i < self.len {
            // SAFETY: i < len, the image's length; no other task writes
            // element i (see the type's doc).
            unsafe { *self.ptr.get().add(i) = v };
        }
    }
}

/// What the output transform needs besides the products.
struct WgOut<'a> {
    s: &'a ConvShape,
    nr: usize,
    cob: usize,
    bias: &'a [f32],
    act: Activation,
    isa: Isa,
}

/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn winograd_output_avx512(
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
unsafe fn winograd_output_avx2(
    a: &WgOut,
    m: &[f32],
    cos: (usize, usize),
    tc: TileChunk,
    y: OutImage,
) {
    winograd_output_impl(a, m, cos, tc, y)
}

#[inline(always)]
fn winograd_output_impl(a: &WgOut, m: &[f32], cos: (usize, usize), tc: TileChunk, y: OutImage) {
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

/// Output positions `o` in `[lo, hi)` (clamped to `[0, n_out)`) whose input
/// index `o * stride + off` lies in `[0, len)`.
fn valid_range(off: isize, stride: usize, len: usize, n_out: usize) -> (usize, usize) {
    let st = stride as isize;
    // o * st + off >= 0  <=>  o >= ceil(-off / st)
    let lo = if off >= 0 { 0 } else { (-off + st - 1) / st };
    // o * st + off <= len - 1  <=>  o <= floor((len - 1 - off) / st)
    let last = len as isize - 1 - off;
    let hi = if last < 0 { 0 } else { last / st + 1 };
    let lo = (lo as usize).min(n_out);
    let hi = (hi as usize).min(n_out);
    (lo, hi.max(lo))
}

/// The im2col matrix of one image's group, `[cin_g*kh*kw, oh*ow]`, never
/// materialised: the GEMM packs blocks of it straight from the image.
struct Im2col<'a> {
    /// The group's `cin_g` input planes.
    x: &'a [f32],
    s: &'a ConvShape,
}

impl BOperand for Im2col<'_> {
    const PACKS: bool = true;

    fn fits(&self, k: usize, n: usize, _nr: usize, _kc: usize) -> bool {
        let s = self.s;
        k == s.cin_g() * s.kh * s.kw && n == s.oh * s.ow && self.x.len() >= s.cin_g() * s.h * s.w
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        let panels = nc.div_ceil(nr);
        let len = panels * nr * kc;
        let Some(dst) = buf.get_mut(..len) else {
            return &[];
        };
        self.pack(k0, kc, n0, nc, nr, dst);
        dst
    }
}

impl Im2col<'_> {
    /// Row by row of B: each row reads one image row (stride 1: a few
    /// contiguous runs) and writes one `nr`-run into each panel.
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let s = self.s;
        let panels = nc.div_ceil(nr);
        let khw = s.kh * s.kw;
        let hw = s.h * s.w;
        let mut out = PanelWriter::new(dst, kc, nr);
        for kk in 0..kc {
            out.kk = kk;
            let kidx = k0 + kk;
            let (ci, rem) = (kidx / khw, kidx % khw);
            let (r, c) = (rem / s.kw, rem % s.kw);
            let plane = &self.x[ci * hw..(ci + 1) * hw];
            let iy_off = (r * s.dil_h) as isize - s.pad_top as isize;
            let ix_off = (c * s.dil_w) as isize - s.pad_left as isize;
            let (vlo, vhi) = valid_range(ix_off, s.stride_w, s.w, s.ow);
            let (mut oy, mut ox) = (n0 / s.ow, n0 % s.ow);
            let mut j = 0;
            while j < nc {
                let seg = (s.ow - ox).min(nc - j);
                let iy = (oy * s.stride_h) as isize + iy_off;
                if iy < 0 || iy >= s.h as isize {
                    out.zeros(j, seg);
                } else {
                    let xrow = &plane[iy as usize * s.w..][..s.w];
                    let lo = vlo.clamp(ox, ox + seg);
                    let hi = vhi.clamp(lo, ox + seg);
                    out.zeros(j, lo - ox);
                    if hi > lo {
                        let x0 = ((lo * s.stride_w) as isize + ix_off) as usize;
                        if s.stride_w == 1 {
                            out.copy(j + lo - ox, &xrow[x0..x0 + (hi - lo)]);
                        } else {
                            out.gather(j + lo - ox, &xrow[x0..], s.stride_w, hi - lo);
                        }
                    }
                    out.zeros(j + hi - ox, ox + seg - hi);
                }
                j += seg;
                ox = 0;
                oy += 1;
            }
            out.zeros(nc, panels * nr - nc);
        }
    }
}

/// Writes runs of columns into row `kk` of `nr`-wide packed panels.
struct PanelWriter<'a> {
    dst: &'a mut [f32],
    kc: usize,
    nr: usize,
    /// log2(nr) when nr is a power of two (no division per run).
    shift: Option<u32>,
    kk: usize,
}

impl<'a> PanelWriter<'a> {
    fn new(dst: &'a mut [f32], kc: usize, nr: usize) -> Self {
        let shift = nr.is_power_of_two().then(|| nr.trailing_zeros());
        PanelWriter {
            dst,
            kc,
            nr,
            shift,
            kk: 0,
        }
    }

    /// Slice of row `kk` from column `j`, up to the end of its panel.
    #[inline]
    fn run_at(&mut self, j: usize, want: usize) -> &mut [f32] {
        let (p, o) = match self.shift {
            Some(sh) => (j >> sh, j & (self.nr - 1)),
            None => (j / self.nr, j % self.nr),
        };
        let len = want.min(self.nr - o);
        let d = p * self.kc * self.nr + self.kk * self.nr + o;
        &mut self.dst[d..d + len]
    }

    #[inline]
    fn zeros(&mut self, mut j: usize, mut len: usize) {
        while len > 0 {
            let d = self.run_at(j, len);
            let l = d.len();
            zero_run(d);
            j += l;
            len -= l;
        }
    }

    #[inline]
    fn copy(&mut self, mut j: usize, mut src: &[f32]) {
        while !src.is_empty() {
            let d = self.run_at(j, src.len());
            let l = d.len();
            copy_run(d, &src[..l]);
            src = &src[l..];
            j += l;
        }
    }

    /// `len` values `src[0], src[step], ...` from column `j` on.
    fn gather(&mut self, mut j: usize, mut src: &[f32], step: usize, mut len: usize) {
        while len > 0 {
            let d = self.run_at(j, len);
            let l = d.len();
            if step == 2 && src.len() >= 2 * l {
                // Even elements of a contiguous run: vectorises as a shuffle.
                for (o, pair) in d.iter_mut().zip(src.chunks_exact(2)) {
                    *o = pair[0];
                }
            } else {
                for (o, v) in d.iter_mut().zip(src.iter().step_by(step)) {
                    *o = *v;
                }
            }
            src = src.get(l * step..).unwrap_or(&[]);
            j += l;
            len -= l;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::cpu::simd::Isa;

    pub(crate) use crate::engine::cpu::gemm::tests::rand_vec;

    /// Direct convolution straight from the definition.
    pub(crate) fn naive_conv(
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
    ) -> Vec<f32> {
        let (cin_g, cout_g) = (s.cin_g(), s.cout_g());
        let mut y = vec![0.0f32; s.y_len()];
        for b in 0..s.batch {
            for oc in 0..s.c_out {
                let g = oc / cout_g;
                for oy in 0..s.oh {
                    for ox in 0..s.ow {
                        let mut acc = 0.0f64;
                        for ci in 0..cin_g {
                            let ic = g * cin_g + ci;
                            for r in 0..s.kh {
                                for c in 0..s.kw {
                                    let iy = (oy * s.stride_h + r * s.dil_h) as isize
                                        - s.pad_top as isize;
                                    let ix = (ox * s.stride_w + c * s.dil_w) as isize
                                        - s.pad_left as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * s.c_in + ic) * s.h + iy as usize) * s.w
                                        + ix as usize];
                                    let wv = w[((oc * cin_g + ci) * s.kh + r) * s.kw + c];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        let bv = bias.map_or(0.0, |bb| bb[oc]);
                        y[((b * s.c_out + oc) * s.oh + oy) * s.ow + ox] =
                            act.apply(acc as f32 + bv);
                    }
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn shape(
        batch: usize,
        c_in: usize,
        (h, w): (usize, usize),
        c_out: usize,
        group: usize,
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (dh, dw): (usize, usize),
        (pt, pl, pb, pr): (usize, usize, usize, usize),
    ) -> ConvShape {
        let oh = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
        let ow = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
        ConvShape {
            batch,
            c_in,
            h,
            w,
            c_out,
            group,
            kh,
            kw,
            stride_h: sh,
            stride_w: sw,
            dil_h: dh,
            dil_w: dw,
            pad_top: pt,
            pad_left: pl,
            oh,
            ow,
        }
    }

    fn check(s: ConvShape, act: Activation, with_bias: bool) {
        let seed = (s.c_in * 7 + s.c_out * 13 + s.h * 3 + s.kh) as u64;
        let x = rand_vec(s.x_len(), seed);
        let w = rand_vec(s.w_len(), seed + 1);
        let bias = rand_vec(s.c_out, seed + 2);
        let bias = with_bias.then_some(&bias[..]);
        let want = naive_conv(&s, &x, &w, bias, act);
        let algos: &[ConvAlgo] = if s.winograd_fits() {
            &[ConvAlgo::Auto, ConvAlgo::NoWinograd]
        } else {
            &[ConvAlgo::Auto]
        };
        for (isa, &algo) in Isa::available()
            .into_iter()
            .flat_map(|i| algos.iter().map(move |a| (i, a)))
        {
            for threads in [1, 3] {
                let pool = ThreadPool::new(threads);
                let gemm = Gemm::with_isa(isa);
                let conv = Conv2d::with_algo(s, &w, bias, act, gemm, threads, algo).unwrap();
                let mut scratch = vec![f32::NAN; conv.scratch_len()];
                let mut y = vec![f32::NAN; s.y_len()];
                conv.run(&x, &mut y, &mut scratch, &pool);
                let k = s.cin_g() * s.kh * s.kw;
                let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                for (i, (g, e)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= tol * e.abs().max(1.0),
                        "{isa:?} {algo:?} threads={threads} {s:?}: y[{i}] = {g}, want {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn gemm_paths_match_naive() {
        let silu = Activation::Silu;
        // 3x3 pad 1 (yolo's bread and butter), fused SiLU.
        check(
            shape(1, 16, (20, 20), 32, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
        // Stride 2.
        check(
            shape(1, 3, (33, 30), 16, 1, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
        // Pointwise, M not a multiple of any tile.
        check(
            shape(1, 40, (9, 11), 21, 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
            Activation::None,
            true,
        );
        // Pointwise with stride (not the direct-GEMM path).
        check(
            shape(1, 8, (9, 11), 5, 1, (1, 1), (2, 3), (1, 1), (0, 0, 0, 0)),
            Activation::Relu,
            false,
        );
        // Dilation and asymmetric pads.
        check(
            shape(1, 5, (17, 19), 7, 1, (3, 2), (1, 2), (2, 3), (2, 0, 1, 3)),
            silu,
            true,
        );
        // Grouped (not depthwise).
        check(
            shape(1, 12, (10, 10), 9, 3, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
        // Batch 2, big K (several k-blocks), no bias.
        check(
            shape(2, 64, (8, 9), 20, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            false,
        );
        // 1-D as H = 1.
        check(
            shape(2, 6, (1, 50), 4, 1, (1, 5), (1, 2), (1, 2), (0, 3, 0, 2)),
            silu,
            true,
        );
        // Padding larger than the kernel, and windows entirely in the padding.
        check(
            shape(1, 2, (4, 5), 3, 1, (2, 2), (1, 1), (1, 1), (3, 4, 3, 4)),
            Activation::None,
            true,
        );
        // Single input channel, group 1.
        check(
            shape(1, 1, (12, 13), 8, 1, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
            silu,
            true,
        );
        // Wide enough to split across threads with several panels.
        check(
            shape(1, 16, (40, 40), 16, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
    }

    #[test]
    fn winograd_matches_naive() {
        let silu = Activation::Silu;
        let s3 = |b, ci, hw, co, pads| shape(b, ci, hw, co, 1, (3, 3), (1, 1), (1, 1), pads);
        // Output sizes not multiples of 4.
        check(s3(1, 9, (13, 11), 10, (1, 1, 1, 1)), silu, true);
        // No padding, batch 2, two output-channel blocks.
        check(s3(2, 20, (7, 9), 70, (0, 0, 0, 0)), Activation::None, true);
        // More input channels than one k-block.
        check(s3(1, 300, (6, 6), 8, (1, 1, 1, 1)), silu, false);
        // Many chunks of tiles, asymmetric padding.
        check(s3(1, 8, (50, 60), 12, (2, 0, 1, 2)), silu, true);
        for s in [
            s3(1, 9, (13, 11), 10, (1, 1, 1, 1)),
            s3(1, 300, (6, 6), 8, (1, 1, 1, 1)),
        ] {
            let w = vec![0.5; s.w_len()];
            let conv = Conv2d::new(s, &w, None, silu, Gemm::new(), 1).unwrap();
            assert!(matches!(conv.kind, Kind::Winograd { .. }), "{s:?}");
        }
    }

    #[test]
    fn direct_paths_match_naive() {
        let silu = Activation::Silu;
        // Depthwise 3x3.
        check(
            shape(1, 8, (11, 12), 8, 8, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
        // Depthwise, stride 2, dilation 2, batch 2.
        check(
            shape(2, 6, (13, 9), 6, 6, (3, 3), (2, 2), (2, 2), (2, 1, 2, 1)),
            Activation::Relu,
            false,
        );
        // Channel multiplier 2.
        check(
            shape(1, 4, (7, 8), 8, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            silu,
            true,
        );
        // Depthwise 1-D with huge padding.
        check(
            shape(1, 3, (1, 6), 3, 3, (1, 3), (1, 3), (1, 1), (0, 5, 0, 4)),
            silu,
            true,
        );
    }

    #[test]
    fn bad_weights_are_an_error() {
        let s = shape(1, 4, (5, 5), 4, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1));
        let err = Conv2d::new(s, &[0.0; 10], None, Activation::None, Gemm::new(), 1).unwrap_err();
        assert!(err.contains("10"), "{err}");
        let err = Conv2d::new(
            s,
            &vec![0.0; s.w_len()],
            Some(&[1.0, 2.0]),
            Activation::None,
            Gemm::new(),
            1,
        )
        .unwrap_err();
        assert!(err.contains("bias"), "{err}");
    }
}

#[cfg(test)]
mod bench {
    use super::tests::{rand_vec, shape};
    use super::*;
    use crate::engine::cpu::gemm::bench::thread_cpu_time;

    /// Packing throughput of implicit im2col.
    /// `cargo test --release --lib bench_im2col -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_im2col() {
        let g = Gemm::new();
        for (ci, h, w, k, st) in [
            (16, 160, 160, 3, 1),
            (64, 80, 80, 3, 1),
            (128, 20, 20, 3, 1),
            (3, 640, 640, 3, 2),
            (16, 320, 320, 3, 2),
        ] {
            let s = shape(1, ci, (h, w), 16, 1, (k, k), (st, st), (1, 1), (1, 1, 1, 1));
            let x = rand_vec(s.x_len(), 1);
            let src = Im2col { x: &x, s: &s };
            let (kk, n) = (ci * k * k, s.oh * s.ow);
            let (kc, nc, nr) = (256, 1024, g.nr());
            let mut buf = vec![0.0; kc * nc + 64];
            let mut best = f64::MAX;
            for _ in 0..10 {
                let c0 = thread_cpu_time();
                let mut n0 = 0;
                while n0 < n {
                    let ncb = nc.min(n - n0);
                    let mut k0 = 0;
                    while k0 < kk {
                        let kcb = kc.min(kk - k0);
                        let _ = src.block(k0, kcb, n0, ncb, nr, &mut buf);
                        k0 += kcb;
                    }
                    n0 += ncb;
                }
                best = best.min(thread_cpu_time() - c0);
            }
            println!(
                "im2col {ci}x{h}x{w} k{k} s{st}: {:.3} ms, {:.3} ns/element",
                best * 1e3,
                best * 1e9 / (kk * n) as f64
            );
        }
    }
}
