//! Packed single-precision GEMM: `C[m,n] = act(alpha * A[m,k] * B[k,n] +
//! beta * C + bias)`, BLIS-style.
//!
//! The work is blocked over n (`nc`), k (`kc`) and m (`mc`); each k-block of
//! B is packed into `nr`-wide column panels and each of A into `mr`-high row
//! panels, and a register-blocked micro-kernel multiplies one A panel by one
//! B panel into an `mr x nr` tile of C. The bias, `beta` and activation are
//! applied by the micro-kernel as it stores the tile (bias and `beta` on the
//! first k-block, the activation on the last; SiLU and ReLU in registers,
//! rarer activations over the just-stored tile). A B whose rows are
//! contiguous in memory (a plain matrix, a 1x1 conv's input) is read in
//! place; only its last partial panel is packed.
//!
//! Operands are anything implementing [`AOperand`] / [`BOperand`]: strided
//! views ([`MatRef`], so transposed operands need no copy), operands packed
//! once at boot ([`PackedA`], [`PackedB`]: conv weights, constant MatMul/Gemm
//! matrices) or a caller's own packing routine (Conv packs B straight from
//! the image: implicit im2col).
//!
//! The micro-kernel is chosen at boot from the CPU's features ([`Isa`]):
//! AVX-512F (8x32), AVX2+FMA (6x16) or a portable auto-vectorised one (4x16,
//! the aarch64 path). Threads split C into disjoint rectangles, each with
//! its own region of the caller's scratch.
//!
//! Boot: [`Gemm`], packing, [`Gemm::scratch_len`] allocate. Frame path:
//! [`Gemm::run`] never allocates; it is called by a kernel's `run` on the
//! inference thread and fans out to the kernel [`ThreadPool`].

use super::activation;
use super::pool::{Regions, SyncPtr, ThreadPool};
use super::simd::{copy_run, zero_run, Isa};
use crate::engine::ir::Activation;

/// Most threads a GEMM splits over; scratch for `threads` is sized for at
/// most this many and a larger pool leaves the rest idle.
pub const MAX_THREADS: usize = 16;

/// Threads kernels size their scratch for at boot: the machine's
/// parallelism, capped at [`MAX_THREADS`]. A pool with more threads than
/// that leaves the extra ones idle in GEMMs (never wrong, only slower).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// f32 elements per 64-byte cache line: scratch buffers are aligned to it.
const ALIGN: usize = 16;

/// Largest `mr * nr` of any micro-kernel (edge-tile buffer size).
const MAX_TILE: usize = 512;

/// Column tasks per thread: with more tasks than threads, a worker that
/// wakes late takes a smaller share instead of holding up the rest.
pub(crate) const OVERSPLIT: usize = 4;

/// Below this many multiply-adds a GEMM runs on one thread: waking the pool
/// costs more than it saves.
const PAR_MIN_MACS: usize = 1 << 20;

/// A read-only strided matrix view: element (i, j) is `data[i*rs + j*cs]`.
/// Swapping the strides ([`MatRef::t`]) gives the transpose.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// `None` when some element would lie outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)?
                .checked_add((cols - 1).checked_mul(cs)?)?;
            if last >= data.len() {
                return None;
            }
        }
        Some(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Bias added in the epilogue.
#[derive(Debug, Clone, Copy, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// One value per row of C (length >= m): conv channels.
    Row(&'a [f32]),
    /// One value per column of C (length >= n): Gemm's `C` of shape `[N]`.
    Col(&'a [f32]),
}

/// What happens to each element of C: `act(alpha * AB + beta * C + bias)`.
/// With `beta == 0` C is write-only (it may hold garbage, even NaN).
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    pub alpha: f32,
    pub beta: f32,
    pub bias: Bias<'a>,
    pub act: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            beta: 0.0,
            bias: Bias::None,
            act: Activation::None,
        }
    }
}

/// The left operand, as the GEMM driver sees it.
pub trait AOperand: Sync {
    /// Whether [`AOperand::block`] packs into the caller's buffer (and so
    /// needs scratch).
    const PACKS: bool;

    /// Whether this operand can serve an `m x k` product packed with `mr`
    /// rows per panel and `kc`-deep k-blocks.
    fn fits(&self, m: usize, k: usize, mr: usize, kc: usize) -> bool;

    /// Rows `m0..m0+mc` (`m0` a multiple of `mr`), depth `k0..k0+kc`, as
    /// `ceil(mc/mr)` panels of `kc x mr` (element (i, k) of panel p at
    /// `p*kc*mr + k*mr + i`), rows past `mc` zero. Either a slice of
    /// pre-packed data or `buf` after packing into it.
    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];
}

/// The right operand, as the GEMM driver sees it.
pub trait BOperand: Sync {
    /// Whether [`BOperand::block`] packs into the caller's buffer.
    const PACKS: bool;

    /// Whether this operand can serve a `k x n` product packed with `nr`
    /// columns per panel and `kc`-deep k-blocks.
    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool;

    /// Depth `k0..k0+kc`, columns `n0..n0+nc` (`n0` a multiple of `nr`), as
    /// `ceil(nc/nr)` panels of `kc x nr` (element (k, j) of panel p at
    /// `p*kc*nr + k*nr + j`), columns past `nc` zero.
    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];

    /// B as it lies in memory when its rows are contiguous: `(data, row
    /// stride)` with element (k, j) at `data[k * stride + j]`. The GEMM then
    /// reads full `nr`-wide panels in place and packs only a partial last
    /// panel (through `block`).
    fn rows(&self) -> Option<(&[f32], usize)> {
        None
    }
}

impl AOperand for MatRef<'_> {
    const PACKS: bool = true;

    fn fits(&self, m: usize, k: usize, _mr: usize, _kc: usize) -> bool {
        self.rows >= m && self.cols >= k
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        let len = mc.div_ceil(mr) * mr * kc;
        let Some(dst) = buf.get_mut(..len) else {
            return &[];
        };
        for (p, panel) in dst.chunks_exact_mut(mr * kc).enumerate() {
            for i in 0..mr {
                let r = p * mr + i;
                if r < mc {
                    for kk in 0..kc {
                        panel[kk * mr + i] = self.at(m0 + r, k0 + kk);
                    }
                } else {
                    for kk in 0..kc {
                        panel[kk * mr + i] = 0.0;
                    }
                }
            }
        }
        dst
    }
}

impl BOperand for MatRef<'_> {
    const PACKS: bool = true;

    fn rows(&self) -> Option<(&[f32], usize)> {
        (self.cs == 1).then_some((self.data, self.rs))
    }

    fn fits(&self, k: usize, n: usize, _nr: usize, _kc: usize) -> bool {
        self.rows >= k && self.cols >= n
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
        for kk in 0..kc {
            let row = (k0 + kk) * self.rs;
            for p in 0..panels {
                let d = &mut dst[p * kc * nr + kk * nr..][..nr];
                let j0 = n0 + p * nr;
                let w = nr.min(nc - p * nr);
                if self.cs == 1 {
                    copy_run(&mut d[..w], &self.data[row + j0..row + j0 + w]);
                } else {
                    for (j, v) in d[..w].iter_mut().enumerate() {
                        *v = self.data[row + (j0 + j) * self.cs];
                    }
                }
                zero_run(&mut d[w..]);
            }
        }
        dst
    }
}

/// An A operand packed at boot for one [`Gemm`] plan.
#[derive(Debug, Clone)]
pub struct PackedA {
    data: Vec<f32>,
    off: usize,
    m: usize,
    k: usize,
    mr: usize,
    kc: usize,
}

impl PackedA {
    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn depth(&self) -> usize {
        self.k
    }
}

impl AOperand for PackedA {
    const PACKS: bool = false;

    fn fits(&self, m: usize, k: usize, mr: usize, kc: usize) -> bool {
        self.m == m && self.k == k && self.mr == mr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let mpad = self.m.div_ceil(mr) * mr;
        let start = self.off + k0 * mpad + (m0 / mr) * mr * kc;
        let len = mc.div_ceil(mr) * mr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// A B operand packed at boot for one [`Gemm`] plan.
#[derive(Debug, Clone)]
pub struct PackedB {
    data: Vec<f32>,
    off: usize,
    k: usize,
    n: usize,
    nr: usize,
    kc: usize,
}

impl PackedB {
    pub fn depth(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

impl BOperand for PackedB {
    const PACKS: bool = false;

    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool {
        self.k == k && self.n == n && self.nr == nr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let npad = self.n.div_ceil(nr) * nr;
        let start = self.off + k0 * npad + (n0 / nr) * nr * kc;
        let len = nc.div_ceil(nr) * nr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// A B operand a caller wrote straight into the packed layout of a plan
/// (Winograd's transformed input): for each `kc`-deep k-block starting at
/// `k0`, `ceil(n/nr)` panels of `kc x nr` from offset `k0 * ceil(n/nr) * nr`.
/// With `n <= nr` that is simply row-major `k x nr`.
#[derive(Debug, Clone, Copy)]
pub struct PackedBRef<'a> {
    data: &'a [f32],
    k: usize,
    n: usize,
    nr: usize,
    kc: usize,
}

impl<'a> PackedBRef<'a> {
    /// `None` when `data` is too short for `k x n` in `gemm`'s layout.
    pub fn new(gemm: &Gemm, data: &'a [f32], k: usize, n: usize) -> Option<Self> {
        let need = k.checked_mul(n.div_ceil(gemm.nr) * gemm.nr)?;
        (data.len() >= need).then_some(PackedBRef {
            data,
            k,
            n,
            nr: gemm.nr,
            kc: gemm.kc,
        })
    }
}

impl BOperand for PackedBRef<'_> {
    const PACKS: bool = false;

    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool {
        self.k == k && self.n == n && self.nr == nr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let npad = self.n.div_ceil(nr) * nr;
        let start = k0 * npad + (n0 / nr) * nr * kc;
        let len = nc.div_ceil(nr) * nr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// A zeroed Vec with room for `len` f32 starting on a cache line; returns
/// the Vec and the offset of that start.
fn aligned_vec(len: usize) -> (Vec<f32>, usize) {
    let v = vec![0.0f32; len + ALIGN];
    let off = align_offset(v.as_ptr());
    (v, off)
}

/// Elements to skip from `p` to reach a 64-byte boundary.
fn align_offset(p: *const f32) -> usize {
    let mis = (p as usize / std::mem::size_of::<f32>()) % ALIGN;
    (ALIGN - mis) % ALIGN
}

/// The epilogue one micro-kernel call applies to its tile.
struct TileEp {
    alpha: f32,
    /// 0: C is not read.
    beta: f32,
    /// `mr` values or null.
    row_bias: *const f32,
    /// `nr` values or null.
    col_bias: *const f32,
    act: Activation,
}

impl TileEp {
    const PLAIN: TileEp = TileEp {
        alpha: 1.0,
        beta: 0.0,
        row_bias: std::ptr::null(),
        col_bias: std::ptr::null(),
        act: Activation::None,
    };
}

/// A register-blocked `MR x NR` micro-kernel.
trait MicroKernel {
    const MR: usize;
    const NR: usize;
    /// `tile = A panel (kc x MR) * B panel (kc x NR, row stride `ldb`)`, then
    /// `C = act(alpha * tile + beta * C + row_bias[i] + col_bias[j])`.
    ///
    /// # Safety
    /// `a` holds `kc*MR` readable f32 and `b` `kc` rows of `NR` at stride
    /// `ldb`; `c` is an `MR x NR`
    /// tile with row stride `ldc`, readable and writable; non-null biases
    /// hold `MR` / `NR` values; the CPU supports the kernel's features.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        ep: &TileEp,
    );
}

// AVX-512 intrinsics are stable since Rust 1.89; Cargo.toml's
// rust-version (1.80) predates them (the toolchain in use is newer).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MicroKernel, TileEp};
    use crate::engine::cpu::activation::x86::{
        apply_rows_avx2, apply_rows_avx512, sigmoid_ymm, sigmoid_zmm,
    };
    use crate::engine::ir::Activation;

    /// Activations the micro-kernels apply in registers (others run over
    /// the stored tile).
    const ACT_NONE: u8 = 0;
    const ACT_SILU: u8 = 1;
    const ACT_RELU: u8 = 2;
    const ACT_OTHER: u8 = 3;

    fn act_kind(act: Activation) -> u8 {
        match act {
            Activation::None => ACT_NONE,
            Activation::Silu => ACT_SILU,
            Activation::Relu => ACT_RELU,
            _ => ACT_OTHER,
        }
    }
    use std::arch::x86_64::*;

    /// AVX-512F, `MR x 16*NV`.
    pub(super) struct Avx512<const MR: usize, const NV: usize>;

    impl<const MR: usize, const NV: usize> MicroKernel for Avx512<MR, NV> {
        const MR: usize = MR;
        const NR: usize = 16 * NV;

        #[inline]
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            b: *const f32,
            ldb: usize,
            c: *mut f32,
            ldc: usize,
            ep: &TileEp,
        ) {
            // SAFETY: forwarded contract; `Isa::Avx512` is only selected on
            // CPUs with AVX-512F.
            unsafe {
                match act_kind(ep.act) {
                    ACT_NONE => tile_avx512::<MR, NV, ACT_NONE>(kc, a, b, ldb, c, ldc, ep),
                    ACT_SILU => tile_avx512::<MR, NV, ACT_SILU>(kc, a, b, ldb, c, ldc, ep),
                    ACT_RELU => tile_avx512::<MR, NV, ACT_RELU>(kc, a, b, ldb, c, ldc, ep),
                    _ => tile_avx512::<MR, NV, ACT_OTHER>(kc, a, b, ldb, c, ldc, ep),
                }
            }
        }
    }

    /// # Safety
    /// See [`MicroKernel::tile`]; the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_avx512<const MR: usize, const NV: usize, const ACT: u8>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        ep: &TileEp,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut pa = a;
        let mut pb = b;
        for _ in 0..kc {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(pb.add(16 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*pa.add(i));
                for v in 0..NV {
                    row[v] = _mm512_fmadd_ps(ai, bv[v], row[v]);
                }
            }
            pa = pa.add(MR);
            pb = pb.add(ldb);
        }
        let alpha = _mm512_set1_ps(ep.alpha);
        let beta = _mm512_set1_ps(ep.beta);
        for (i, row) in acc.iter().enumerate() {
            let crow = c.add(i * ldc);
            for (v, &x) in row.iter().enumerate() {
                let mut x = x;
                if ep.alpha != 1.0 {
                    x = _mm512_mul_ps(x, alpha);
                }
                if ep.beta != 0.0 {
                    x = _mm512_fmadd_ps(_mm512_loadu_ps(crow.add(16 * v)), beta, x);
                }
                if !ep.row_bias.is_null() {
                    x = _mm512_add_ps(x, _mm512_set1_ps(*ep.row_bias.add(i)));
                }
                if !ep.col_bias.is_null() {
                    x = _mm512_add_ps(x, _mm512_loadu_ps(ep.col_bias.add(16 * v)));
                }
                if ACT == ACT_SILU {
                    x = _mm512_mul_ps(x, sigmoid_zmm(x));
                } else if ACT == ACT_RELU {
                    x = _mm512_max_ps(x, _mm512_setzero_ps());
                }
                _mm512_storeu_ps(crow.add(16 * v), x);
            }
        }
        if ACT == ACT_OTHER {
            // Rarer activations: one pass over the stored tile (in L1).
            apply_rows_avx512(ep.act, c, ldc, MR, 16 * NV);
        }
    }

    /// AVX2+FMA, `MR x 8*NV`.
    pub(super) struct Avx2<const MR: usize, const NV: usize>;

    impl<const MR: usize, const NV: usize> MicroKernel for Avx2<MR, NV> {
        const MR: usize = MR;
        const NR: usize = 8 * NV;

        #[inline]
        unsafe fn tile(
            kc: usize,
            a: *const f32,
            b: *const f32,
            ldb: usize,
            c: *mut f32,
            ldc: usize,
            ep: &TileEp,
        ) {
            // SAFETY: forwarded contract; `Isa::Avx2` is only selected on
            // CPUs with AVX2 and FMA.
            unsafe {
                match act_kind(ep.act) {
                    ACT_NONE => tile_avx2::<MR, NV, ACT_NONE>(kc, a, b, ldb, c, ldc, ep),
                    ACT_SILU => tile_avx2::<MR, NV, ACT_SILU>(kc, a, b, ldb, c, ldc, ep),
                    ACT_RELU => tile_avx2::<MR, NV, ACT_RELU>(kc, a, b, ldb, c, ldc, ep),
                    _ => tile_avx2::<MR, NV, ACT_OTHER>(kc, a, b, ldb, c, ldc, ep),
                }
            }
        }
    }

    /// # Safety
    /// See [`MicroKernel::tile`]; the CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2<const MR: usize, const NV: usize, const ACT: u8>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        ep: &TileEp,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        let mut pa = a;
        let mut pb = b;
        for _ in 0..kc {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(pb.add(8 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*pa.add(i));
                for v in 0..NV {
                    row[v] = _mm256_fmadd_ps(ai, bv[v], row[v]);
                }
            }
            pa = pa.add(MR);
            pb = pb.add(ldb);
        }
        let alpha = _mm256_set1_ps(ep.alpha);
        let beta = _mm256_set1_ps(ep.beta);
        for (i, row) in acc.iter().enumerate() {
            let crow = c.add(i * ldc);
            for (v, &x) in row.iter().enumerate() {
                let mut x = x;
                if ep.alpha != 1.0 {
                    x = _mm256_mul_ps(x, alpha);
                }
                if ep.beta != 0.0 {
                    x = _mm256_fmadd_ps(_mm256_loadu_ps(crow.add(8 * v)), beta, x);
                }
                if !ep.row_bias.is_null() {
                    x = _mm256_add_ps(x, _mm256_set1_ps(*ep.row_bias.add(i)));
                }
                if !ep.col_bias.is_null() {
                    x = _mm256_add_ps(x, _mm256_loadu_ps(ep.col_bias.add(8 * v)));
                }
                if ACT == ACT_SILU {
                    x = _mm256_mul_ps(x, sigmoid_ymm(x));
                } else if ACT == ACT_RELU {
                    x = _mm256_max_ps(x, _mm256_setzero_ps());
                }
                _mm256_storeu_ps(crow.add(8 * v), x);
            }
        }
        if ACT == ACT_OTHER {
            apply_rows_avx2(ep.act, c, ldc, MR, 8 * NV);
        }
    }
}

/// Portable `MR x NR` kernel written for the auto-vectoriser (NEON on
/// aarch64, SSE on old x86-64).
struct Portable<const MR: usize, const NR: usize>;

impl<const MR: usize, const NR: usize> MicroKernel for Portable<MR, NR> {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        ep: &TileEp,
    ) {
        // SAFETY: the caller guarantees `a` holds kc x MR values.
        let a = unsafe { std::slice::from_raw_parts(a, kc * MR) };
        let mut acc = [[0.0f32; NR]; MR];
        for (k, ak) in a.chunks_exact(MR).enumerate() {
            // SAFETY: the caller guarantees kc rows of NR at stride ldb.
            let bk = unsafe { std::slice::from_raw_parts(b.add(k * ldb), NR) };
            for i in 0..MR {
                let ai = ak[i];
                for j in 0..NR {
                    acc[i][j] = fma(ai, bk[j], acc[i][j]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees an MR x NR tile at `c`, stride
            // `ldc`, and MR / NR bias values when non-null.
            let (crow, rb, cb) = unsafe {
                (
                    std::slice::from_raw_parts_mut(c.add(i * ldc), NR),
                    if ep.row_bias.is_null() {
                        0.0
                    } else {
                        *ep.row_bias.add(i)
                    },
                    if ep.col_bias.is_null() {
                        None
                    } else {
                        Some(std::slice::from_raw_parts(ep.col_bias, NR))
                    },
                )
            };
            for j in 0..NR {
                let mut x = ep.alpha * row[j] + rb;
                if ep.beta != 0.0 {
                    x += ep.beta * crow[j];
                }
                if let Some(cb) = cb {
                    x += cb[j];
                }
                crow[j] = x;
            }
            activation::portable::apply_slice(ep.act, crow);
        }
    }
}

/// `a * b + c`, fused where the target has FMA in its baseline.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "aarch64")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        a * b + c
    }
}

/// A GEMM plan: the instruction set and blocking, fixed at boot. Operands
/// pre-packed by one plan only work with a plan of the same configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    isa: Isa,
    mr: usize,
    nr: usize,
    kc: usize,
    mc: usize,
    nc: usize,
}

impl Default for Gemm {
    fn default() -> Self {
        Gemm::new()
    }
}

impl Gemm {
    /// The plan for this CPU (feature detection runs once per process).
    pub fn new() -> Gemm {
        Gemm::with_isa(Isa::cached())
    }

    /// The plan for `isa`, or the portable one if this CPU lacks `isa`.
    pub fn with_isa(isa: Isa) -> Gemm {
        let isa = if isa.is_supported() {
            isa
        } else {
            Isa::Portable
        };
        let (mr, nr) = match isa {
            Isa::Avx512 => (8, 32),
            Isa::Avx2 => (6, 16),
            Isa::Portable => (4, 16),
        };
        Gemm {
            isa,
            mr,
            nr,
            kc: 256,
            mc: mr * (128 / mr),
            nc: 1024,
        }
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Rows per A panel.
    pub fn mr(&self) -> usize {
        self.mr
    }

    /// Columns per B panel.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Pack `a` (m x k) once, for use as a constant left operand. Boot only.
    pub fn pack_a(&self, a: MatRef) -> PackedA {
        let (m, k) = (a.rows, a.cols);
        let mpad = m.div_ceil(self.mr) * self.mr;
        let (mut data, off) = aligned_vec(mpad * k);
        let mut k0 = 0;
        while k0 < k {
            let kc = self.kc.min(k - k0);
            let dst = &mut data[off + k0 * mpad..off + (k0 + kc) * mpad];
            let _ = AOperand::block(&a, k0, kc, 0, m, self.mr, dst);
            k0 += kc;
        }
        PackedA {
            data,
            off,
            m,
            k,
            mr: self.mr,
            kc: self.kc,
        }
    }

    /// Pack `b` (k x n) once, for use as a constant right operand. Boot only.
    pub fn pack_b(&self, b: MatRef) -> PackedB {
        let (k, n) = (b.rows, b.cols);
        let npad = n.div_ceil(self.nr) * self.nr;
        let (mut data, off) = aligned_vec(npad * k);
        let mut k0 = 0;
        while k0 < k {
            let kc = self.kc.min(k - k0);
            let dst = &mut data[off + k0 * npad..off + (k0 + kc) * npad];
            let _ = BOperand::block(&b, k0, kc, 0, n, self.nr, dst);
            k0 += kc;
        }
        PackedB {
            data,
            off,
            k,
            n,
            nr: self.nr,
            kc: self.kc,
        }
    }

    /// Scratch one thread needs for an `m x n x k` product when A / B are
    /// packed at run time (`pack_a` / `pack_b`).
    fn region_len(&self, m: usize, n: usize, k: usize, pack_a: bool, pack_b: bool) -> usize {
        let kc = self.kc.min(k);
        let a = if pack_a {
            self.mc.min(m.div_ceil(self.mr) * self.mr) * kc + ALIGN
        } else {
            0
        };
        let b = if pack_b {
            self.nc.min(n.div_ceil(self.nr) * self.nr) * kc + ALIGN
        } else {
            0
        };
        a + b
    }

    /// f32 scratch [`Gemm::run`] needs to use up to `threads` threads
    /// (capped at [`MAX_THREADS`]) when A / B are packed at run time
    /// (false for [`PackedA`] / [`PackedB`] operands). With less scratch,
    /// `run` uses fewer threads.
    pub fn scratch_len(
        &self,
        m: usize,
        n: usize,
        k: usize,
        threads: usize,
        pack_a: bool,
        pack_b: bool,
    ) -> usize {
        self.region_len(m, n, k, pack_a, pack_b) * threads.clamp(1, MAX_THREADS)
    }

    /// `C = act(alpha * A * B + beta * C + bias)` for `A: m x k`, `B: k x n`
    /// and `C: m x n` row-major with row stride `ldc`.
    ///
    /// Shapes are the caller's contract, checked at boot: if an operand,
    /// `c`, a bias or `scratch` is too small, or a pre-packed operand came
    /// from another plan, nothing is computed (debug builds assert).
    /// Frame path: never allocates.
    #[allow(clippy::too_many_arguments)]
    pub fn run<A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        if !self.check(m, n, k, a, b, c, ldc, epi) {
            return;
        }
        if k == 0 {
            self.epilogue_only((0, m), n, c, ldc, epi);
            return;
        }
        match (self.isa, self.mr, self.nr) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 8, 32) => {
                self.run_with::<x86::Avx512<8, 2>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool)
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 6, 16) => {
                self.run_with::<x86::Avx2<6, 2>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool)
            }
            _ => self.run_with::<Portable<4, 16>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool),
        }
    }

    /// Rows `rows.0..rows.1` of `C = act(alpha * A * B + beta * C + bias)`
    /// on the calling thread only (for callers that already split work
    /// across the pool). `c` holds just those rows (row stride `ldc`);
    /// `rows.0` must be a multiple of [`Gemm::mr`]. Scratch: `scratch_len`
    /// with one thread. Frame path: never allocates.
    #[allow(clippy::too_many_arguments)]
    pub fn run_rows<A: AOperand, B: BOperand>(
        &self,
        rows: (usize, usize),
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
    ) {
        let (r0, r1) = rows;
        if r0 >= r1.min(m) || n == 0 {
            return;
        }
        let r1 = r1.min(m);
        let rows_ok = r0 % self.mr == 0;
        let region_ok = scratch.len() >= self.region_len(m, n, k, A::PACKS, B::PACKS);
        if !(rows_ok && region_ok) {
            debug_assert!(
                false,
                "gemm rows {r0}..{r1}: rows_ok={rows_ok} region_ok={region_ok}"
            );
            return;
        }
        // Validate as an (r1 - r0)-row product over `c`, and the operands
        // for the full one.
        let (a_ok, b_ok) = (
            a.fits(m, k, self.mr, self.kc),
            b.fits(k, n, self.nr, self.kc),
        );
        let bias_ok = match epi.bias {
            Bias::None => true,
            Bias::Row(r) => r.len() >= r1,
            Bias::Col(cb) => cb.len() >= n,
        };
        let c_ok = ldc >= n
            && (r1 - r0 - 1)
                .checked_mul(ldc)
                .and_then(|x| x.checked_add(n))
                .is_some_and(|need| need <= c.len());
        if !(a_ok && b_ok && bias_ok && c_ok) {
            debug_assert!(false, "gemm rows {r0}..{r1} of {m}x{n}x{k} do not fit");
            return;
        }
        if k == 0 {
            self.epilogue_only((r0, r1), n, c, ldc, epi);
            return;
        }
        let cp = c.as_mut_ptr();
        // SAFETY: `c` covers rows r0..r1 (checked above) and is exclusively
        // borrowed; the operands and bias fit (checked above).
        unsafe {
            match (self.isa, self.mr, self.nr) {
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx512, 8, 32) => self.task::<x86::Avx512<8, 2>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx2, 6, 16) => self.task::<x86::Avx2<6, 2>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
                _ => self.task::<Portable<4, 16>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
            }
        }
    }

    /// Whether the operands, `c` and the bias fit an `m x n x k` product
    /// (debug builds assert that they do).
    #[allow(clippy::too_many_arguments)]
    fn check<A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &[f32],
        ldc: usize,
        epi: &Epilogue,
    ) -> bool {
        if m == 0 || n == 0 {
            return false;
        }
        let c_ok = ldc >= n
            && (m - 1)
                .checked_mul(ldc)
                .and_then(|x| x.checked_add(n))
                .is_some_and(|need| need <= c.len());
        let bias_ok = match epi.bias {
            Bias::None => true,
            Bias::Row(r) => r.len() >= m,
            Bias::Col(cb) => cb.len() >= n,
        };
        let operands_ok = a.fits(m, k, self.mr, self.kc) && b.fits(k, n, self.nr, self.kc);
        debug_assert!(
            c_ok && bias_ok && operands_ok,
            "gemm {m}x{n}x{k}: c_ok={c_ok} bias_ok={bias_ok} operands_ok={operands_ok}"
        );
        c_ok && bias_ok && operands_ok
    }

    /// `k == 0`: the product is zero, only the epilogue remains. `c`
    /// holds rows `rows.0..rows.1`.
    fn epilogue_only(
        &self,
        rows: (usize, usize),
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
    ) {
        for i in rows.0..rows.1 {
            let off = (i - rows.0) * ldc;
            let row = &mut c[off..off + n];
            for (j, v) in row.iter_mut().enumerate() {
                let mut x = if epi.beta != 0.0 { epi.beta * *v } else { 0.0 };
                match epi.bias {
                    Bias::None => {}
                    Bias::Row(r) => x += r[i],
                    Bias::Col(cb) => x += cb[j],
                }
                *v = x;
            }
            activation::apply_slice(epi.act, row, self.isa);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with<K: MicroKernel, A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        const { assert!(K::MR * K::NR <= MAX_TILE) };
        debug_assert!(K::MR == self.mr && K::NR == self.nr);
        let region = self.region_len(m, n, k, A::PACKS, B::PACKS);
        let fit = scratch.len().checked_div(region).unwrap_or(MAX_THREADS);
        let regions = fit.min(MAX_THREADS);
        let pool_threads = pool.threads().min(MAX_THREADS);
        let mut threads = pool_threads.min(regions);
        if threads == 0 {
            debug_assert!(false, "gemm scratch {} < {region}", scratch.len());
            return;
        }
        if m.saturating_mul(n).saturating_mul(k) < PAR_MIN_MACS {
            threads = 1;
        }
        let mp = m.div_ceil(K::MR);
        let np = n.div_ceil(K::NR);
        // Split the longer side of C (in panels). Columns are split into a
        // few tasks per thread (each packs only its own B) so that a late
        // worker just takes fewer; rows only across threads (each task
        // packs the whole B block).
        let split = if pool_threads <= regions {
            OVERSPLIT
        } else {
            1
        };
        let (tm, tn) = if threads == 1 {
            (1, 1)
        } else if np >= 2 * threads || np >= mp {
            (1, (threads * split).min(np))
        } else {
            (threads.min(mp), 1)
        };
        let cp = SyncPtr(c.as_mut_ptr());
        let sp = SyncPtr(scratch.as_mut_ptr());
        let slots = Regions::new(regions);
        let body = |t: usize| {
            let (ti, tj) = (t / tn, t % tn);
            let m_lo = (ti * mp / tm) * K::MR;
            let m_hi = ((ti + 1) * mp / tm * K::MR).min(m);
            let n_lo = (tj * np / tn) * K::NR;
            let n_hi = ((tj + 1) * np / tn * K::NR).min(n);
            if m_lo >= m_hi || n_lo >= n_hi {
                return;
            }
            // At most min(pool threads, tasks) tasks run at once, never
            // more than `regions` (tasks > regions only when the pool has
            // no more threads than regions), so a region is always free.
            let r = slots.claim();
            // SAFETY: r < regions <= fit, so region r lies inside `scratch`,
            // and only this task uses it until it releases it.
            let buf = unsafe { std::slice::from_raw_parts_mut(sp.get().add(r * region), region) };
            // SAFETY: tasks own disjoint rectangles of C ([m_lo, m_hi) x
            // [n_lo, n_hi)), all inside `c` (checked in `run`).
            unsafe {
                self.task::<K, A, B>(
                    (m_lo, m_hi),
                    (n_lo, n_hi),
                    k,
                    a,
                    b,
                    cp.get(),
                    0,
                    ldc,
                    epi,
                    buf,
                )
            };
            slots.release(r);
        };
        pool.parallel_for(tm * tn, &body);
    }

    /// One thread's rectangle of C. `c` points at row `row_base` of C.
    ///
    /// # Safety
    /// `c` with row stride `ldc` covers rows `ms` (less `row_base`) x
    /// columns `ns`, and no other thread touches that rectangle meanwhile;
    /// A, B and the bias fit the product (checked in `run`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn task<K: MicroKernel, A: AOperand, B: BOperand>(
        &self,
        ms: (usize, usize),
        ns: (usize, usize),
        k: usize,
        a: &A,
        b: &B,
        c: *mut f32,
        row_base: usize,
        ldc: usize,
        epi: &Epilogue,
        buf: &mut [f32],
    ) {
        let (m_lo, m_hi) = ms;
        let (n_lo, n_hi) = ns;
        let a_len = if A::PACKS {
            self.region_len(m_hi - m_lo, 0, k, true, false)
        } else {
            0
        };
        let (abuf, bbuf) = buf.split_at_mut(a_len.min(buf.len()));
        let abuf = aligned(abuf);
        let bbuf = aligned(bbuf);
        let mut jc = n_lo;
        while jc < n_hi {
            let nc = self.nc.min(n_hi - jc);
            let mut pc = 0;
            while pc < k {
                let kc = self.kc.min(k - pc);
                let (bt, edge): (BPanels, &mut [f32]) = match b.rows() {
                    Some((data, ldb)) => (BPanels::Direct { data, ldb }, &mut *bbuf),
                    None => (
                        BPanels::Packed(b.block(pc, kc, jc, nc, K::NR, bbuf)),
                        &mut [],
                    ),
                };
                let first = pc == 0;
                let last = pc + kc == k;
                let mut ic = m_lo;
                while ic < m_hi {
                    let mc = self.mc.min(m_hi - ic);
                    let at = a.block(pc, kc, ic, mc, K::MR, abuf);
                    let blk = Block {
                        ic,
                        jc,
                        pc,
                        mc,
                        nc,
                        kc,
                        first,
                        last,
                    };
                    // SAFETY: forwarded from this fn's contract.
                    unsafe {
                        self.macro_kernel::<K, B>(&blk, at, b, bt, edge, c, row_base, ldc, epi)
                    };
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    }

    /// All tiles of one (mc x nc x kc) block.
    ///
    /// # Safety
    /// As [`Gemm::task`], for the block's rectangle.
    #[allow(clippy::too_many_arguments)]
    unsafe fn macro_kernel<K: MicroKernel, B: BOperand>(
        &self,
        blk: &Block,
        at: &[f32],
        b: &B,
        bt: BPanels,
        edge: &mut [f32],
        c: *mut f32,
        row_base: usize,
        ldc: usize,
        epi: &Epilogue,
    ) {
        let (mr, nr, kc) = (K::MR, K::NR, blk.kc);
        let b_ok = match bt {
            BPanels::Packed(p) => p.len() >= blk.nc.div_ceil(nr) * nr * kc,
            // The last element any full panel reads.
            BPanels::Direct { data, ldb } => {
                (blk.pc + kc - 1) * ldb + blk.jc + (blk.nc / nr) * nr <= data.len()
            }
        };
        if at.len() < blk.mc.div_ceil(mr) * mr * kc || !b_ok {
            debug_assert!(false, "gemm packing buffer too small");
            return;
        }
        let beta = if blk.first { epi.beta } else { 1.0 };
        let act = if blk.last { epi.act } else { Activation::None };
        let mut tmp = [0.0f32; MAX_TILE];
        let mut jr = 0;
        while jr < blk.nc {
            let nv = nr.min(blk.nc - jr);
            let col = blk.jc + jr;
            let (bp, ldb) = match bt {
                BPanels::Packed(p) => (p[(jr / nr) * nr * kc..].as_ptr(), nr),
                // SAFETY: rows pc..pc+kc, columns col..col+nr are inside
                // `data` (checked above).
                BPanels::Direct { data, ldb } if nv == nr => {
                    (unsafe { data.as_ptr().add(blk.pc * ldb + col) }, ldb)
                }
                BPanels::Direct { .. } => {
                    let p = b.block(blk.pc, kc, col, nv, nr, edge);
                    if p.len() < nr * kc {
                        debug_assert!(false, "gemm edge panel buffer too small");
                        return;
                    }
                    (p.as_ptr(), nr)
                }
            };
            let col_bias = match epi.bias {
                Bias::Col(cb) if blk.first => cb[col..].as_ptr(),
                _ => std::ptr::null(),
            };
            let mut ir = 0;
            while ir < blk.mc {
                let mv = mr.min(blk.mc - ir);
                let ap = at[(ir / mr) * mr * kc..].as_ptr();
                let row = blk.ic + ir;
                let row_bias = match epi.bias {
                    Bias::Row(r) if blk.first => r[row..].as_ptr(),
                    _ => std::ptr::null(),
                };
                // SAFETY: (row, col) is inside this thread's rectangle.
                let ct = unsafe { c.add((row - row_base) * ldc + col) };
                if mv == mr && nv == nr {
                    let ep = TileEp {
                        alpha: epi.alpha,
                        beta,
                        row_bias,
                        col_bias,
                        act,
                    };
                    // SAFETY: panels checked above; a full tile of C; the
                    // biases have mr / nr values from row / col on.
                    unsafe { K::tile(kc, ap, bp, ldb, ct, ldc, &ep) };
                } else {
                    // SAFETY: `tmp` is an mr x nr tile with stride nr.
                    unsafe { K::tile(kc, ap, bp, ldb, tmp.as_mut_ptr(), nr, &TileEp::PLAIN) };
                    for i in 0..mv {
                        // SAFETY: row i of the valid part of the tile.
                        let crow = unsafe { std::slice::from_raw_parts_mut(ct.add(i * ldc), nv) };
                        for (j, v) in crow.iter_mut().enumerate() {
                            let mut x = epi.alpha * tmp[i * nr + j];
                            if beta != 0.0 {
                                x += beta * *v;
                            }
                            if blk.first {
                                match epi.bias {
                                    Bias::None => {}
                                    Bias::Row(r) => x += r[row + i],
                                    Bias::Col(cb) => x += cb[col + j],
                                }
                            }
                            *v = x;
                        }
                        activation::apply_slice(act, crow, self.isa);
                    }
                }
                ir += mr;
            }
            jr += nr;
        }
    }
}

/// A block of B: packed panels, or rows read in place.
#[derive(Clone, Copy)]
enum BPanels<'a> {
    Packed(&'a [f32]),
    Direct { data: &'a [f32], ldb: usize },
}

/// Where one block sits in C and which k-block it is.
struct Block {
    ic: usize,
    jc: usize,
    pc: usize,
    mc: usize,
    nc: usize,
    kc: usize,
    first: bool,
    last: bool,
}

/// `buf` from its first 64-byte boundary on.
fn aligned(buf: &mut [f32]) -> &mut [f32] {
    let off = align_offset(buf.as_ptr()).min(buf.len());
    &mut buf[off..]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1).
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

    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        n: usize,
        k: usize,
        a: &MatRef,
        b: &MatRef,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.at(i, p) as f64 * b.at(p, j) as f64;
                }
                let mut x = epi.alpha * s as f32;
                if epi.beta != 0.0 {
                    x += epi.beta * c[i * ldc + j];
                }
                match epi.bias {
                    Bias::None => {}
                    Bias::Row(r) => x += r[i],
                    Bias::Col(cb) => x += cb[j],
                }
                c[i * ldc + j] = epi.act.apply(x);
            }
        }
    }

    fn check_close(got: &[f32], want: &[f32], k: usize, what: &str) {
        let tol = 1e-5 * (k as f32 + 1.0).sqrt() * 4.0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{what}: element {i}: got {g}, want {w}"
            );
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Operand {
        Runtime,
        Packed,
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        g: &Gemm,
        pool: &ThreadPool,
        (m, n, k): (usize, usize, usize),
        trans_a: bool,
        trans_b: bool,
        ops: (Operand, Operand),
        epi_kind: usize,
        act: Activation,
    ) {
        let seed = (m * 131 + n * 17 + k * 7 + epi_kind) as u64;
        let av = rand_vec(m * k + 3, seed);
        let bv = rand_vec(k * n + 5, seed + 1);
        let a = if trans_a {
            MatRef::new(&av, m, k, 1, m).unwrap()
        } else {
            MatRef::new(&av, m, k, k, 1).unwrap()
        };
        let b = if trans_b {
            MatRef::new(&bv, k, n, 1, k).unwrap()
        } else {
            MatRef::new(&bv, k, n, n, 1).unwrap()
        };
        let rb = rand_vec(m, seed + 2);
        let cb = rand_vec(n, seed + 3);
        let ldc = n + (epi_kind % 2) * 3;
        let c0 = rand_vec(m * ldc, seed + 4);
        let epi = match epi_kind {
            0 => Epilogue {
                act,
                ..Epilogue::default()
            },
            1 => Epilogue {
                bias: Bias::Row(&rb),
                act,
                ..Epilogue::default()
            },
            2 => Epilogue {
                alpha: 0.5,
                beta: 1.0,
                bias: Bias::Col(&cb),
                act,
            },
            _ => Epilogue {
                alpha: -1.5,
                beta: 0.25,
                bias: Bias::Row(&rb),
                act,
            },
        };
        let mut want = c0.clone();
        naive(m, n, k, &a, &b, &mut want, ldc, &epi);
        let mut got = c0.clone();
        let threads = pool.threads();
        let pa = g.pack_a(a);
        let pb = g.pack_b(b);
        let pack_a = matches!(ops.0, Operand::Runtime);
        let pack_b = matches!(ops.1, Operand::Runtime);
        let mut scratch = vec![f32::NAN; g.scratch_len(m, n, k, threads, pack_a, pack_b)];
        match ops {
            (Operand::Runtime, Operand::Runtime) => {
                g.run(m, n, k, &a, &b, &mut got, ldc, &epi, &mut scratch, pool)
            }
            (Operand::Packed, Operand::Runtime) => {
                g.run(m, n, k, &pa, &b, &mut got, ldc, &epi, &mut scratch, pool)
            }
            (Operand::Runtime, Operand::Packed) => {
                g.run(m, n, k, &a, &pb, &mut got, ldc, &epi, &mut scratch, pool)
            }
            (Operand::Packed, Operand::Packed) => {
                g.run(m, n, k, &pa, &pb, &mut got, ldc, &epi, &mut scratch, pool)
            }
        }
        let what = format!(
            "{:?} {m}x{n}x{k} ta={trans_a} tb={trans_b} {ops:?} epi={epi_kind} {act:?} threads={threads}",
            g.isa()
        );
        check_close(&got, &want, k, &what);
    }

    #[test]
    fn matches_naive_for_many_shapes() {
        let shapes = [
            (1, 1, 1),
            (1, 1, 7),
            (1, 37, 5),
            (29, 1, 13),
            (7, 13, 11),
            (8, 32, 16),
            (16, 64, 300),
            (17, 33, 257),
            (31, 97, 61),
            (64, 129, 40),
            (130, 45, 520),
            (3, 1100, 9),
            (5, 3, 0),
        ];
        let pools = [ThreadPool::new(1), ThreadPool::new(3)];
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa);
            for pool in &pools {
                for (si, &shape) in shapes.iter().enumerate() {
                    let ops = match si % 4 {
                        0 => (Operand::Runtime, Operand::Runtime),
                        1 => (Operand::Packed, Operand::Runtime),
                        2 => (Operand::Runtime, Operand::Packed),
                        _ => (Operand::Packed, Operand::Packed),
                    };
                    for epi_kind in 0..4 {
                        let ta = (si + epi_kind) % 2 == 1;
                        let tb = (si + epi_kind) % 3 == 1;
                        case(&g, pool, shape, ta, tb, ops, epi_kind, Activation::None);
                    }
                }
            }
        }
    }

    #[test]
    fn every_activation_in_the_epilogue() {
        let acts = [
            Activation::Relu,
            Activation::Silu,
            Activation::Sigmoid,
            Activation::LeakyRelu(0.2),
            Activation::HardSigmoid(0.2, 0.5),
            Activation::HardSwish,
            Activation::Tanh,
            Activation::Clip(-0.5, 0.5),
            Activation::Elu(1.1),
        ];
        let pool = ThreadPool::new(2);
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa);
            for act in acts {
                for (i, shape) in [(19, 70, 300), (8, 32, 5), (33, 17, 3)]
                    .into_iter()
                    .enumerate()
                {
                    let ops = if i == 0 {
                        (Operand::Packed, Operand::Runtime)
                    } else {
                        (Operand::Runtime, Operand::Runtime)
                    };
                    case(&g, &pool, shape, false, false, ops, i + 1, act);
                }
            }
        }
    }

    #[test]
    fn all_operand_combinations_with_threads() {
        let pool = ThreadPool::new(3);
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa);
            for ops in [
                (Operand::Runtime, Operand::Runtime),
                (Operand::Packed, Operand::Runtime),
                (Operand::Runtime, Operand::Packed),
                (Operand::Packed, Operand::Packed),
            ] {
                // Tall and wide, both above the threading threshold.
                case(
                    &g,
                    &pool,
                    (300, 40, 100),
                    true,
                    false,
                    ops,
                    3,
                    Activation::Silu,
                );
                case(
                    &g,
                    &pool,
                    (20, 2100, 30),
                    false,
                    true,
                    ops,
                    2,
                    Activation::None,
                );
            }
        }
    }

    #[test]
    fn too_little_scratch_uses_fewer_threads() {
        let g = Gemm::new();
        let pool = ThreadPool::new(4);
        let (m, n, k) = (40, 600, 50);
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let am = MatRef::row_major(&a, m, k).unwrap();
        let bm = MatRef::row_major(&b, k, n).unwrap();
        let mut want = vec![0.0; m * n];
        naive(m, n, k, &am, &bm, &mut want, n, &Epilogue::default());
        let mut got = vec![0.0; m * n];
        let mut scratch = vec![0.0; g.scratch_len(m, n, k, 1, true, true)];
        g.run(
            m,
            n,
            k,
            &am,
            &bm,
            &mut got,
            n,
            &Epilogue::default(),
            &mut scratch,
            &pool,
        );
        check_close(&got, &want, k, "one thread's scratch on a 4-thread pool");
    }

    #[test]
    fn run_rows_computes_a_row_range() {
        let (m, n, k) = (30, 29, 300);
        let pool = ThreadPool::new(1);
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa);
            let a = rand_vec(m * k, 5);
            let b = rand_vec(k * n, 6);
            let am = MatRef::row_major(&a, m, k).unwrap();
            let bm = MatRef::row_major(&b, k, n).unwrap();
            let rb = rand_vec(m, 7);
            let epi = Epilogue {
                bias: Bias::Row(&rb),
                act: Activation::Silu,
                ..Epilogue::default()
            };
            let mut want = vec![0.0; m * n];
            naive(m, n, k, &am, &bm, &mut want, n, &epi);
            // B pre-packed by the caller into the plan's layout.
            let pb = g.pack_b(bm);
            let packed = &pb.data[pb.off..];
            let bref = PackedBRef::new(&g, packed, k, n).unwrap();
            let pa = g.pack_a(am);
            let r0 = g.mr();
            let r1 = (3 * g.mr() + 1).min(m);
            let mut got = vec![f32::NAN; (r1 - r0) * n];
            g.run_rows((r0, r1), m, n, k, &pa, &bref, &mut got, n, &epi, &mut []);
            check_close(
                &got,
                &want[r0 * n..r1 * n],
                k,
                &format!("{isa:?} rows {r0}..{r1}"),
            );
            // The whole product through the pool agrees.
            let mut all = vec![0.0; m * n];
            g.run(m, n, k, &pa, &bref, &mut all, n, &epi, &mut [], &pool);
            check_close(&all, &want, k, &format!("{isa:?} PackedBRef"));
        }
    }

    #[test]
    fn beta_zero_never_reads_c() {
        let g = Gemm::new();
        let pool = ThreadPool::new(1);
        let (m, n, k) = (9, 40, 3);
        let a = rand_vec(m * k, 3);
        let b = rand_vec(k * n, 4);
        let am = MatRef::row_major(&a, m, k).unwrap();
        let bm = MatRef::row_major(&b, k, n).unwrap();
        let mut c = vec![f32::NAN; m * n];
        let mut scratch = vec![0.0; g.scratch_len(m, n, k, 1, true, true)];
        g.run(
            m,
            n,
            k,
            &am,
            &bm,
            &mut c,
            n,
            &Epilogue::default(),
            &mut scratch,
            &pool,
        );
        assert!(c.iter().all(|x| x.is_finite()));
    }
}

#[cfg(test)]
pub(crate) mod bench {
    use super::tests::rand_vec;
    use super::*;

    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }

    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }

    /// CPU time of the calling thread in seconds (Linux): unlike wall time
    /// it does not count time the thread spent descheduled, so it stays
    /// meaningful on a machine shared with other jobs.
    pub(crate) fn thread_cpu_time() -> f64 {
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        cpu_time(CLOCK_THREAD_CPUTIME_ID)
    }

    /// CPU time of the whole process (all threads) in seconds (Linux).
    pub(crate) fn process_cpu_time() -> f64 {
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        cpu_time(CLOCK_PROCESS_CPUTIME_ID)
    }

    fn cpu_time(clock: i32) -> f64 {
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: clock_gettime writes one timespec to a valid pointer.
        unsafe { clock_gettime(clock, &mut ts) };
        ts.sec as f64 + ts.nsec as f64 * 1e-9
    }

    /// Kernel throughput on pre-packed operands and with B packed at run
    /// time. `cargo test --release --lib bench_gemm -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_gemm() {
        let pool = ThreadPool::new(1);
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa);
            for (m, n, k) in [
                (64, 6400, 576),
                (128, 1600, 1152),
                (32, 25600, 288),
                (256, 400, 2304),
            ] {
                let a = rand_vec(m * k, 1);
                let b = rand_vec(k * n, 2);
                let am = MatRef::row_major(&a, m, k).unwrap();
                let bm = MatRef::row_major(&b, k, n).unwrap();
                let pa = g.pack_a(am);
                let pb = g.pack_b(bm);
                let mut c = vec![0.0; m * n];
                let mut scratch = vec![0.0; g.scratch_len(m, n, k, 1, true, true)];
                let epi = Epilogue::default();
                let flops = 2.0 * (m * n * k) as f64;
                let mut t_pp = f64::MAX;
                let mut t_pr = f64::MAX;
                for _ in 0..10 {
                    let t0 = thread_cpu_time();
                    g.run(m, n, k, &pa, &pb, &mut c, n, &epi, &mut scratch, &pool);
                    t_pp = t_pp.min(thread_cpu_time() - t0);
                    let t0 = thread_cpu_time();
                    g.run(m, n, k, &pa, &bm, &mut c, n, &epi, &mut scratch, &pool);
                    t_pr = t_pr.min(thread_cpu_time() - t0);
                }
                println!(
                    "{isa:?} {m}x{n}x{k}: packed {:.1} GFLOP/s, B at run time {:.1} GFLOP/s",
                    flops / t_pp / 1e9,
                    flops / t_pr / 1e9
                );
            }
        }
    }
}
