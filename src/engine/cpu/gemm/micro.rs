//! GEMM micro-kernels: one `mr x nr` tile of C per call, AVX-512F, AVX2+FMA
//! or portable, with the bias/beta/activation epilogue applied as the tile
//! is stored. Frame path: never allocates.

use super::*;

/// The epilogue one micro-kernel call applies to its tile.
pub(crate) struct TileEp {
    pub(crate) alpha: f32,
    /// 0: C is not read.
    pub(crate) beta: f32,
    /// `mr` values or null.
    pub(crate) row_bias: *const f32,
    /// `nr` values or null.
    pub(crate) col_bias: *const f32,
    pub(crate) act: Activation,
}

impl TileEp {
    pub(crate) const PLAIN: TileEp = TileEp {
        alpha: 1.0,
        beta: 0.0,
        row_bias: std::ptr::null(),
        col_bias: std::ptr::null(),
        act: Activation::None,
    };
}

/// A register-blocked `MR x NR` micro-kernel.
pub(crate) trait MicroKernel {
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
pub(crate) mod x86 {
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
    pub(crate) struct Avx512<const MR: usize, const NV: usize>;

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
    pub(crate) struct Avx2<const MR: usize, const NV: usize>;

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
pub(crate) struct Portable<const MR: usize, const NR: usize>;

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
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "aarch64")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        a * b + c
    }
}
