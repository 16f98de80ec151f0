//! 2-D convolution (1-D runs as 2-D with H = 1) on NCHW f32 tensors, with
//! bias and a fused activation.
//!
//! * Pointwise (1x1, stride 1, no padding): a GEMM straight on the input,
//!   `Y[Cout, H*W] = W[Cout, Cin] * X[Cin, H*W]`.
//! * Every other conv with more than one input channel per group: implicit
//!   GEMM. `B = im2col(X)` is never materialised: the GEMM asks this module
//!   to pack each `kc x nc` block of it straight from the image
//!   ([`BOperand`] for [`Im2col`]).
//! * One input channel per group (depthwise, also with a channel
//!   multiplier): a direct kernel, one output plane per task.
//!
//! Weights are packed into the GEMM's A layout (one [`PackedA`] per group)
//! in [`Conv2d::new`], at boot, which allocates. [`Conv2d::run`] is on the
//! frame path (inference thread, fanning out to the kernel pool) and never
//! allocates.

use super::gemm::{
    copy_run, zero_run, BOperand, Bias, Epilogue, Gemm, MatRef, PackedA, SyncPtr, MAX_THREADS,
};
use super::pool::ThreadPool;
use crate::engine::ir::Activation;
use crate::engine::ops::activation;

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
        if self.c_in % self.group != 0 || self.c_out % self.group != 0 {
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
        let tasks = pool.threads().min(MAX_THREADS).min(planes).max(1);
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
    use crate::engine::cpu::gemm::Isa;

    pub(crate) fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

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
        for isa in Isa::available() {
            for threads in [1, 3] {
                let pool = ThreadPool::new(threads);
                let conv = Conv2d::new(s, &w, bias, act, Gemm::with_isa(isa), threads).unwrap();
                let mut scratch = vec![f32::NAN; conv.scratch_len()];
                let mut y = vec![f32::NAN; s.y_len()];
                conv.run(&x, &mut y, &mut scratch, &pool);
                let k = s.cin_g() * s.kh * s.kw;
                let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                for (i, (g, e)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= tol * e.abs().max(1.0),
                        "{isa:?} threads={threads} {s:?}: y[{i}] = {g}, want {e}"
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
    use crate::engine::cpu::gemm::Isa;
    use std::time::Instant;

    /// (c_in, h, w, c_out, k, stride, pad, silu)
    type ConvCase = (usize, usize, usize, usize, usize, usize, usize, bool);

    /// yolov8n-640's convs.
    pub(crate) const YOLOV8N: [ConvCase; 64] = [
        (3, 640, 640, 16, 3, 2, 1, true),
        (16, 320, 320, 32, 3, 2, 1, true),
        (32, 160, 160, 32, 1, 1, 0, true),
        (16, 160, 160, 16, 3, 1, 1, true),
        (16, 160, 160, 16, 3, 1, 1, true),
        (48, 160, 160, 32, 1, 1, 0, true),
        (32, 160, 160, 64, 3, 2, 1, true),
        (64, 80, 80, 64, 1, 1, 0, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (128, 80, 80, 64, 1, 1, 0, true),
        (64, 80, 80, 128, 3, 2, 1, true),
        (128, 40, 40, 128, 1, 1, 0, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (256, 40, 40, 128, 1, 1, 0, true),
        (128, 40, 40, 256, 3, 2, 1, true),
        (256, 20, 20, 256, 1, 1, 0, true),
        (128, 20, 20, 128, 3, 1, 1, true),
        (128, 20, 20, 128, 3, 1, 1, true),
        (384, 20, 20, 256, 1, 1, 0, true),
        (256, 20, 20, 128, 1, 1, 0, true),
        (512, 20, 20, 256, 1, 1, 0, true),
        (384, 40, 40, 128, 1, 1, 0, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (192, 40, 40, 128, 1, 1, 0, true),
        (192, 80, 80, 64, 1, 1, 0, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (32, 80, 80, 32, 3, 1, 1, true),
        (96, 80, 80, 64, 1, 1, 0, true),
        (64, 80, 80, 64, 3, 2, 1, true),
        (64, 80, 80, 64, 3, 1, 1, true),
        (64, 80, 80, 80, 3, 1, 1, true),
        (64, 80, 80, 64, 3, 1, 1, true),
        (80, 80, 80, 80, 3, 1, 1, true),
        (192, 40, 40, 128, 1, 1, 0, true),
        (64, 80, 80, 64, 1, 1, 0, false),
        (80, 80, 80, 80, 1, 1, 0, false),
        (64, 40, 40, 64, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (192, 40, 40, 128, 1, 1, 0, true),
        (128, 40, 40, 128, 3, 2, 1, true),
        (128, 40, 40, 64, 3, 1, 1, true),
        (128, 40, 40, 80, 3, 1, 1, true),
        (64, 40, 40, 64, 3, 1, 1, true),
        (80, 40, 40, 80, 3, 1, 1, true),
        (384, 20, 20, 256, 1, 1, 0, true),
        (64, 40, 40, 64, 1, 1, 0, false),
        (80, 40, 40, 80, 1, 1, 0, false),
        (128, 20, 20, 128, 3, 1, 1, true),
        (128, 20, 20, 128, 3, 1, 1, true),
        (384, 20, 20, 256, 1, 1, 0, true),
        (256, 20, 20, 64, 3, 1, 1, true),
        (256, 20, 20, 80, 3, 1, 1, true),
        (64, 20, 20, 64, 3, 1, 1, true),
        (80, 20, 20, 80, 3, 1, 1, true),
        (64, 20, 20, 64, 1, 1, 0, false),
        (80, 20, 20, 80, 1, 1, 0, false),
        (16, 4, 8400, 1, 1, 1, 0, false),
    ];

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
            let kc: usize = std::env::var("KC")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            let (nc, nr) = (1024, g.nr());
            let mut buf = vec![0.0; kc * nc + 64];
            {
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
                    "im2col {ci}x{h}x{w} k{k} s{st} : {:.3} ms, {:.3} ns/element",
                    best * 1e3,
                    best * 1e9 / (kk * n) as f64
                );
            }
        }
    }

    /// Times every yolov8n-640 conv (best of a few runs each) per ISA and
    /// thread count. `cargo test --release --lib bench_conv -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_conv_shapes() {
        let verbose = std::env::var("BENCH_VERBOSE").is_ok();
        let reps: usize = std::env::var("BENCH_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        for isa in Isa::available() {
            if isa == Isa::Portable && std::env::var("BENCH_PORTABLE").is_err() {
                continue;
            }
            if std::env::var("BENCH_ISA").is_ok_and(|v| v != format!("{isa:?}")) {
                continue;
            }
            let max_threads: usize = std::env::var("BENCH_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2);
            for threads in 1..=max_threads {
                let pool = ThreadPool::new(threads);
                let mut total = 0.0f64;
                let mut flops = 0.0f64;
                for (i, &(ci, h, w, co, k, st, p, silu)) in YOLOV8N.iter().enumerate() {
                    let s = shape(1, ci, (h, w), co, 1, (k, k), (st, st), (1, 1), (p, p, p, p));
                    let x = rand_vec(s.x_len(), i as u64);
                    let wt = rand_vec(s.w_len(), i as u64 + 7);
                    let b = rand_vec(co, 3);
                    let act = if silu {
                        Activation::Silu
                    } else {
                        Activation::None
                    };
                    let conv =
                        Conv2d::new(s, &wt, Some(&b), act, Gemm::with_isa(isa), threads).unwrap();
                    let mut scratch = vec![0.0; conv.scratch_len()];
                    let mut y = vec![0.0; s.y_len()];
                    conv.run(&x, &mut y, &mut scratch, &pool);
                    // One thread: CPU time (robust on a shared machine);
                    // more: wall time.
                    let mut best = f64::MAX;
                    for _ in 0..reps {
                        let (t0, c0) = (Instant::now(), thread_cpu_time());
                        conv.run(&x, &mut y, &mut scratch, &pool);
                        let t = if threads == 1 {
                            thread_cpu_time() - c0
                        } else {
                            t0.elapsed().as_secs_f64()
                        };
                        best = best.min(t);
                    }
                    let f = 2.0 * (co * s.oh * s.ow * ci * k * k) as f64;
                    if verbose {
                        println!(
                            "  {i:2} {ci:3}x{h}x{w} -> {co:3} k{k} s{st}: {:7.3} ms {:6.1} GFLOP/s",
                            best * 1e3,
                            f / best / 1e9
                        );
                    }
                    total += best;
                    flops += f;
                }
                println!(
                    "{isa:?} threads={threads}: 64 convs {:.2} ms, {:.1} GFLOP/s",
                    total * 1e3,
                    flops / total / 1e9
                );
            }
        }
    }
}
