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

    /// 3x3, stride 1, no dilation, one group: Winograd F(4x4, 3x3) can
    /// compute it.
    fn winograd_fits(&self) -> bool {
        self.group == 1
            && (self.kh, self.kw) == (3, 3)
            && (self.stride_h, self.stride_w) == (1, 1)
            && (self.dil_h, self.dil_w) == (1, 1)
            && self.oh >= WG_OUT
            && self.ow >= WG_OUT
    }

    /// [`winograd_fits`](Self::winograd_fits) with enough channels for the
    /// transforms to pay off, and enough 4x4 output tiles per image to fill
    /// at least half of a GEMM panel `nr` columns wide: the transform-point
    /// GEMMs have one column per tile, so a 10x10 output (9 tiles) in
    /// 32-wide AVX-512 panels wastes 72 % of every multiply, and 12x12
    /// outputs are computed for 10x10. yolov8n-320's 10x10 3x3 convs took
    /// 0.58 ms that way against 0.33 ms through im2col (1 thread, AVX-512);
    /// its 20x20 ones (25 tiles) stay faster with Winograd.
    fn winograd_pays(&self, nr: usize) -> bool {
        let tiles = self.oh.div_ceil(WG_OUT) * self.ow.div_ceil(WG_OUT);
        self.winograd_fits() && self.c_in >= 8 && self.c_out >= 8 && 2 * tiles >= nr
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
    /// GEMM with weights packed per group; a pointwise conv skips im2col.
    /// `taps` (empty unless [`tap_table`] chose it): for each kernel tap
    /// `r * kw + c`, the input-plane offset each output position reads, or
    /// -1 for padding; im2col then packs by gathering.
    Gemm {
        weights: Vec<PackedA>,
        taps: Vec<i32>,
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
    /// and output tiles (about 2.5x fewer multiplies; error ~1e-6 relative
    /// to the output scale), the direct kernel for depthwise, GEMM
    /// otherwise.
    Auto,
    /// Never Winograd: results closest to a direct convolution.
    NoWinograd,
    /// Winograd wherever the kernel allows it (3x3, stride 1, one group),
    /// however few the channels or tiles: for tests of its edge cases.
    Winograd,
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
        } else if match algo {
            ConvAlgo::Auto => shape.winograd_pays(gemm.nr()),
            ConvAlgo::NoWinograd => false,
            ConvAlgo::Winograd => shape.winograd_fits(),
        } {
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
                taps: if shape.is_pointwise() {
                    Vec::new()
                } else {
                    tap_table(&shape)
                },
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
            Kind::Gemm { weights, taps } => self.run_gemm(weights, taps, x, y, scratch, pool),
            Kind::Direct { weights } => self.run_direct(weights, x, y, pool),
            Kind::Winograd { u } => self.run_winograd(u, x, y, scratch, pool),
        }
    }

    fn run_gemm(
        &self,
        weights: &[PackedA],
        taps: &[i32],
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        let s = &self.shape;
        let pointwise = s.is_pointwise();
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
                    let bm = Im2col {
                        x: xg,
                        s,
                        taps,
                        isa: self.gemm.isa(),
                    };
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

/// Bytes a conv's tap table may take (see [`tap_table`]).
const TAP_TABLE_MAX_BYTES: usize = 1 << 20;

/// The tap table of a conv whose im2col rows are short runs (outputs under
/// 32 wide) or strided: for each kernel tap `t = r * kw + c` and output
/// position `j = oy * ow + ox`, `table[t * oh * ow + j]` is the offset in an
/// input plane that im2col row `(channel, t)` reads at column `j`, or -1
/// where the window lies in the padding. Packing then gathers 16 columns at
/// a time instead of walking runs of 10 or 20 values with a zero run on
/// either side: yolov8n-320's 10x10 3x3 convs and its stride-2 convs packed
/// at about 0.8 ns per value that way. Empty when the runs are long enough
/// to copy, or the table would pass [`TAP_TABLE_MAX_BYTES`]. Boot only.
fn tap_table(s: &ConvShape) -> Vec<i32> {
    let (khw, n) = (s.kh * s.kw, s.oh * s.ow);
    let short = s.ow < 32 || s.stride_w > 1;
    let fits = khw
        .checked_mul(n)
        .and_then(|e| e.checked_mul(4))
        .is_some_and(|b| b <= TAP_TABLE_MAX_BYTES)
        && s.h
            .checked_mul(s.w)
            .is_some_and(|hw| hw <= i32::MAX as usize);
    if !short || !fits {
        return Vec::new();
    }
    let mut table = Vec::with_capacity(khw * n);
    for r in 0..s.kh {
        for c in 0..s.kw {
            for oy in 0..s.oh {
                let iy = (oy * s.stride_h + r * s.dil_h) as isize - s.pad_top as isize;
                for ox in 0..s.ow {
                    let ix = (ox * s.stride_w + c * s.dil_w) as isize - s.pad_left as isize;
                    let inside = (0..s.h as isize).contains(&iy) && (0..s.w as isize).contains(&ix);
                    table.push(if inside {
                        (iy as usize * s.w + ix as usize) as i32
                    } else {
                        -1
                    });
                }
            }
        }
    }
    table
}

/// The im2col matrix of one image's group, `[cin_g*kh*kw, oh*ow]`, never
/// materialised: the GEMM packs blocks of it straight from the image.
struct Im2col<'a> {
    /// The group's `cin_g` input planes.
    x: &'a [f32],
    s: &'a ConvShape,
    /// The conv's tap table, or empty (see [`tap_table`]).
    taps: &'a [i32],
    /// The plan's instruction set (the gather's code path).
    isa: Isa,
}

impl BOperand for Im2col<'_> {
    const PACKS: bool = true;

    fn fits(&self, k: usize, n: usize, _nr: usize, _kc: usize) -> bool {
        let s = self.s;
        k == s.cin_g() * s.kh * s.kw
            && n == s.oh * s.ow
            && self.x.len() >= s.cin_g() * s.h * s.w
            && (self.taps.is_empty() || self.taps.len() == s.kh * s.kw * n)
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
        if self.taps.is_empty() {
            self.pack(k0, kc, n0, nc, nr, dst);
        } else {
            self.pack_taps(k0, kc, n0, nc, nr, dst);
        }
        dst
    }
}

impl Im2col<'_> {
    /// [`pack`](Self::pack) through the tap table: each panel row is one
    /// gather from one input plane.
    fn pack_taps(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let s = self.s;
        let (khw, hw, n) = (s.kh * s.kw, s.h * s.w, s.oh * s.ow);
        for kk in 0..kc {
            let kidx = k0 + kk;
            let (ci, t) = (kidx / khw, kidx % khw);
            let plane = &self.x[ci * hw..(ci + 1) * hw];
            let idx = &self.taps[t * n + n0..t * n + n0 + nc];
            for (p, cols) in idx.chunks(nr).enumerate() {
                let d = &mut dst[p * kc * nr + kk * nr..][..nr];
                let (vals, pad) = d.split_at_mut(cols.len());
                gather_taps(self.isa, plane, cols, vals);
                zero_run(pad);
            }
        }
    }

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

/// `d[j] = plane[idx[j]]`, or 0 where `idx[j]` is -1. Every other index
/// must lie inside `plane` (a [`tap_table`] for this plane's size) and `d`
/// be at least as long as `idx`. Frame path: never allocates.
#[inline]
fn gather_taps(isa: Isa, plane: &[f32], idx: &[i32], d: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && d.len() >= idx.len() {
        // SAFETY: AVX-512F is present (`isa`); every non-negative index is
        // inside `plane` (the caller's contract, from the table's
        // construction), and `d` holds `idx.len()` values (checked).
        unsafe { gather_taps_avx512(plane, idx, d) };
        return;
    }
    let _ = isa;
    for (o, &i) in d.iter_mut().zip(idx) {
        *o = if i >= 0 {
            plane.get(i as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
    }
}

/// # Safety
/// AVX-512F; every non-negative `idx[j]` < `plane.len()`; `d.len() >=
/// idx.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_taps_avx512(plane: &[f32], idx: &[i32], d: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = idx.len();
    let mut j = 0;
    while j < n {
        let left = n - j;
        let lanes: __mmask16 = if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as u16
        };
        // SAFETY: lanes past `n` are masked off (neither read nor written);
        // gathered lanes are inside `plane` (contract).
        unsafe {
            let iv = _mm512_maskz_loadu_epi32(lanes, idx.as_ptr().add(j));
            let inside = _mm512_mask_cmpge_epi32_mask(lanes, iv, _mm512_setzero_si512());
            let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), inside, iv, plane.as_ptr());
            _mm512_mask_storeu_ps(d.as_mut_ptr().add(j), lanes, v);
        }
        j += 16;
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
            &[ConvAlgo::Auto, ConvAlgo::NoWinograd, ConvAlgo::Winograd]
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
        // Auto: Winograd once there are tiles for half a panel (20x20: 25
        // tiles), im2col for yolov8n-320's 10x10 (9 tiles).
        for isa in Isa::available() {
            let gemm = Gemm::with_isa(isa);
            for (hw, want) in [((20, 20), true), ((10, 10), gemm.nr() <= 18)] {
                let s = s3(1, 64, hw, 64, (1, 1, 1, 1));
                let w = vec![0.5; s.w_len()];
                let conv = Conv2d::new(s, &w, None, silu, gemm, 1).unwrap();
                let wino = matches!(conv.kind, Kind::Winograd { .. });
                assert_eq!(wino, want, "{isa:?} {hw:?}");
            }
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
    fn tap_table_packs_what_the_runs_pack() {
        // Stride 2 (yolo's downsampling), 10x10 3x3, dilation with
        // asymmetric pads, windows wholly in the padding, a block that
        // starts mid-image and ends mid-panel.
        let shapes = [
            shape(1, 3, (33, 30), 4, 1, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
            shape(1, 5, (10, 10), 4, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
            shape(1, 5, (17, 19), 7, 1, (3, 2), (1, 2), (2, 3), (2, 0, 1, 3)),
            shape(1, 2, (4, 5), 3, 1, (2, 2), (1, 1), (1, 1), (3, 4, 3, 4)),
        ];
        for s in shapes {
            let taps = tap_table(&s);
            assert_eq!(taps.len(), s.kh * s.kw * s.oh * s.ow, "{s:?}");
            let x = rand_vec(s.x_len(), 7);
            let (k, n) = (s.cin_g() * s.kh * s.kw, s.oh * s.ow);
            for (isa, nr) in Isa::available()
                .into_iter()
                .flat_map(|i| [(i, 16), (i, 32)])
            {
                for (k0, kc, n0) in [(0, k, 0), (1, k - 1, nr), (0, k.min(5), 0)] {
                    if n0 >= n {
                        continue;
                    }
                    let nc = (n - n0).min(3 * nr - 5);
                    let len = nc.div_ceil(nr) * nr * kc;
                    let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                    let runs = Im2col {
                        x: &x,
                        s: &s,
                        taps: &[],
                        isa,
                    };
                    let table = Im2col {
                        x: &x,
                        s: &s,
                        taps: &taps,
                        isa,
                    };
                    runs.block(k0, kc, n0, nc, nr, &mut a);
                    table.block(k0, kc, n0, nc, nr, &mut b);
                    let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same, "{s:?} {isa:?} nr {nr} block {k0}+{kc} x {n0}+{nc}");
                }
            }
        }
        // Wide stride-1 rows are copied as runs; no table past its budget.
        let wide = shape(1, 8, (40, 40), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1));
        assert!(tap_table(&wide).is_empty());
        let huge = shape(
            1,
            1,
            (1000, 1000),
            1,
            1,
            (3, 3),
            (2, 2),
            (1, 1),
            (1, 1, 1, 1),
        );
        assert!(tap_table(&huge).is_empty());
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

mod winograd;

use winograd::*;
