//! Element-wise activations over f32 slices, shared by the standalone
//! activation ops and the fused epilogues of Conv/Gemm.
//!
//! [`Activation::apply`] is the scalar reference (std `exp`/`tanh`). The
//! slice functions ([`apply_inplace`], [`apply_slice`]) and the row
//! functions in `x86` (which the GEMM epilogue applies to each C tile while
//! it is in L1) use SIMD (AVX-512F or AVX2+FMA, chosen from [`Isa`]) and a
//! polynomial `exp` (degree-5 near-minimax on the reduced range, relative
//! error 2e-7) whose input is clamped to [-87, 88], so no input produces an
//! overflow, an infinity or a NaN that the exact function would not.
//! NaN inputs propagate as NaN.
//!
//! Frame path: never allocates. Called from whichever thread runs the kernel
//! (the inference thread or a kernel pool worker).

use super::simd::Isa;
use crate::engine::ir::Activation;

impl Activation {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Activation::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Tanh => x.tanh(),
            // NaN stays NaN, as in ONNX (f32::max would pick the bound).
            Activation::Clip(_, _) if x.is_nan() => x,
            Activation::Clip(lo, hi) => x.max(lo).min(hi),
            Activation::Elu(a) => {
                if x < 0.0 {
                    a * (x.exp() - 1.0)
                } else {
                    x
                }
            }
        }
    }
}

/// Apply `act` to every element of `x` in place, with the best SIMD the CPU
/// has (detected once per process).
/// Frame path: never allocates.
pub fn apply_inplace(act: Activation, x: &mut [f32]) {
    apply_slice(act, x, Isa::cached());
}

/// Apply `act` to every element of `x` in place using `isa`'s code path.
/// `isa` must be supported by this CPU ([`Isa::detect`] or a plan's ISA);
/// an unsupported one falls back to the portable path.
/// Frame path: never allocates.
pub fn apply_slice(act: Activation, x: &mut [f32], isa: Isa) {
    if act == Activation::None || x.is_empty() {
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if Isa::cached() == Isa::Avx512 => {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { x86::apply_slice_avx512(act, x) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::cached() != Isa::Portable => {
            // SAFETY: the CPU supports at least AVX2+FMA (checked just above).
            unsafe { x86::apply_slice_avx2(act, x) }
        }
        _ => portable::apply_slice(act, x),
    }
}

/// Portable (auto-vectorised) implementations; the same polynomial as the
/// SIMD paths so that all paths agree to a few ulp.
pub(crate) mod portable {
    use crate::engine::ir::Activation;

    const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer.
    const ROUND_MAGIC: f32 = 12_582_912.0;
    pub(crate) const EXP_LO: f32 = -87.0;
    pub(crate) const EXP_HI: f32 = 88.0;
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    /// exp(r) = 1 + r + r^2 (Q0 + Q1 r + Q2 r^2 + Q3 r^3) on |r| <= ln2/2:
    /// a near-minimax fit for relative error, 2e-7 evaluated in f32.
    pub(crate) const Q0: f32 = 0.499_992_34;
    pub(crate) const Q1: f32 = 0.166_671_13;
    pub(crate) const Q2: f32 = 0.041_889_817;
    pub(crate) const Q3: f32 = 0.008_312_66;
    /// Cephes `tanhf` odd polynomial for |x| < 0.625.
    pub(crate) const T0: f32 = -5.704_988_7e-3;
    pub(crate) const T1: f32 = 2.063_909e-2;
    pub(crate) const T2: f32 = -5.373_971_6e-2;
    pub(crate) const T3: f32 = 1.333_144_2e-1;
    pub(crate) const T4: f32 = -3.333_328e-1;
    pub(crate) const TANH_SMALL: f32 = 0.625;

    /// Fast `exp`, input clamped to [-87, 88]; NaN stays NaN.
    #[inline(always)]
    pub(crate) fn exp(x: f32) -> f32 {
        // `clamp` keeps NaN (`max`/`min` would turn it into a bound).
        let x = x.clamp(EXP_LO, EXP_HI);
        let t = x * LOG2E + ROUND_MAGIC;
        let n = t - ROUND_MAGIC;
        let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
        let r = x - n * LN2_HI - n * LN2_LO;
        let mut p = Q3;
        p = p * r + Q2;
        p = p * r + Q1;
        p = p * r + Q0;
        let y = p * r * r + r + 1.0;
        let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
        y * scale
    }

    /// Below -88 the clamped `exp` would leave sigmoid at ~6e-39 instead of
    /// ~0, which x * sigmoid(x) blows up for huge |x|: flush to 0 there.
    pub(crate) const SIGMOID_ZERO: f32 = -EXP_HI;

    #[inline(always)]
    pub(crate) fn sigmoid(x: f32) -> f32 {
        if x < SIGMOID_ZERO {
            0.0
        } else {
            1.0 / (1.0 + exp(-x))
        }
    }

    #[inline(always)]
    pub(crate) fn tanh(x: f32) -> f32 {
        let a = x.abs();
        if a < TANH_SMALL {
            let z = x * x;
            let p = ((((T0 * z + T1) * z + T2) * z + T3) * z + T4) * z;
            p * x + x
        } else {
            let e = exp(2.0 * a);
            let t = 1.0 - 2.0 / (e + 1.0);
            t.copysign(x)
        }
    }

    #[inline(always)]
    pub(crate) fn one(act: Activation, x: f32) -> f32 {
        match act {
            Activation::Silu => x * sigmoid(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Elu(a) => {
                if x < 0.0 {
                    a * (exp(x) - 1.0)
                } else {
                    x
                }
            }
            other => other.apply(x),
        }
    }

    pub(crate) fn apply_slice(act: Activation, x: &mut [f32]) {
        // One loop per activation so each body is branch-free and vectorises.
        match act {
            Activation::None => {}
            Activation::Silu => x.iter_mut().for_each(|v| *v *= sigmoid(*v)),
            Activation::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Activation::Tanh => x.iter_mut().for_each(|v| *v = tanh(*v)),
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            other => x.iter_mut().for_each(|v| *v = one(other, *v)),
        }
    }
}

/// AVX-512F and AVX2+FMA implementations, per register and per slice.
// AVX-512 intrinsics are stable since Rust 1.89; Cargo.toml's
// rust-version (1.80) predates them (the toolchain in use is newer).
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::portable::*;
    use crate::engine::ir::Activation;
    use std::arch::x86_64::*;

    const LOG2E: f32 = std::f32::consts::LOG2_E;

    /// `exp(sign * x)`; `sign` is +1 or -1 (folding a negation in).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp_signed_zmm<const NEG: bool>(x: __m512) -> __m512 {
        // Clamp (max/min return their second operand when either is NaN:
        // keeping `x` second lets NaN through) so that r stays small and
        // 2^n is finite.
        let (lo, hi) = if NEG {
            (-EXP_HI, -EXP_LO)
        } else {
            (EXP_LO, EXP_HI)
        };
        let x = _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), x));
        let l2e = if NEG { -LOG2E } else { LOG2E };
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(l2e)),
        );
        // r = sign*x - n*ln2, in two steps for accuracy.
        let r = if NEG {
            _mm512_fnmsub_ps(n, _mm512_set1_ps(LN2_HI), x)
        } else {
            _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x)
        };
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(Q3);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(Q2));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(Q1));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(Q0));
        let r2 = _mm512_mul_ps(r, r);
        let y = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
        // y * 2^n (n is integral and within the normal range).
        _mm512_scalef_ps(y, n)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn exp_zmm(x: __m512) -> __m512 {
        exp_signed_zmm::<false>(x)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn sigmoid_zmm(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let d = _mm512_add_ps(one, exp_signed_zmm::<true>(x));
        // 1/d: 14-bit estimate and one Newton step (~1 ulp), cheaper than a
        // division.
        let r0 = _mm512_rcp14_ps(d);
        let r1 = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.0)));
        // Below -88 sigmoid is ~0 (see SIGMOID_ZERO); "not less than" is
        // true for NaN, so NaN still goes through.
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(SIGMOID_ZERO));
        _mm512_maskz_mov_ps(keep, r1)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tanh_zmm(x: __m512) -> __m512 {
        let sign = _mm512_set1_epi32(i32::MIN);
        let xi = _mm512_castps_si512(x);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
        // Large |x|: 1 - 2 / (exp(2|x|) + 1), sign restored.
        let e = exp_zmm(_mm512_add_ps(a, a));
        let big = _mm512_sub_ps(
            _mm512_set1_ps(1.0),
            _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, _mm512_set1_ps(1.0))),
        );
        let big = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(big),
            _mm512_and_si512(sign, xi),
        ));
        // Small |x|: odd polynomial.
        let z = _mm512_mul_ps(x, x);
        let mut p = _mm512_set1_ps(T0);
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(T1));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(T2));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(T3));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(T4));
        p = _mm512_mul_ps(p, z);
        let small = _mm512_fmadd_ps(p, x, x);
        let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(TANH_SMALL));
        _mm512_mask_blend_ps(is_small, big, small)
    }

    /// `act` on one register. Matches [`Activation::apply`] up to the
    /// polynomial `exp`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn act_zmm(act: Activation, x: __m512) -> __m512 {
        match act {
            Activation::None => x,
            Activation::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
            Activation::Silu => _mm512_mul_ps(x, sigmoid_zmm(x)),
            Activation::Sigmoid => sigmoid_zmm(x),
            Activation::LeakyRelu(a) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
                _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(a))
            }
            Activation::HardSigmoid(a, b) => {
                let y = _mm512_fmadd_ps(x, _mm512_set1_ps(a), _mm512_set1_ps(b));
                _mm512_min_ps(_mm512_max_ps(y, _mm512_setzero_ps()), _mm512_set1_ps(1.0))
            }
            Activation::HardSwish => {
                let y = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5));
                let y = _mm512_min_ps(_mm512_max_ps(y, _mm512_setzero_ps()), _mm512_set1_ps(1.0));
                _mm512_mul_ps(x, y)
            }
            Activation::Tanh => tanh_zmm(x),
            Activation::Clip(lo, hi) => {
                // max/min return their second operand when either is NaN:
                // x goes second so NaN propagates.
                _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), x))
            }
            Activation::Elu(a) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
                let e = _mm512_sub_ps(exp_zmm(x), _mm512_set1_ps(1.0));
                _mm512_mask_mul_ps(x, neg, e, _mm512_set1_ps(a))
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn apply_slice_avx512(act: Activation, x: &mut [f32]) {
        apply_rows_avx512(act, x.as_mut_ptr(), 0, 1, x.len());
    }

    /// `act` on `rows` rows of `cols` values at `p`, row stride `ld`: one
    /// dispatch, then a loop per activation with its code inlined.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; the rows are valid for reads and
    /// writes.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn apply_rows_avx512(
        act: Activation,
        p: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
    ) {
        match act {
            Activation::None => {}
            Activation::Silu => rows_zmm(p, ld, rows, cols, |v| {
                // SAFETY: runs inside this AVX-512F function.
                unsafe { _mm512_mul_ps(v, sigmoid_zmm(v)) }
            }),
            Activation::Sigmoid => rows_zmm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { sigmoid_zmm(v) }
            }),
            Activation::Relu => rows_zmm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { act_zmm(Activation::Relu, v) }
            }),
            Activation::Tanh => rows_zmm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { tanh_zmm(v) }
            }),
            other => rows_zmm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { act_zmm(other, v) }
            }),
        }
    }

    /// # Safety
    /// As [`apply_rows_avx512`]; `f` needs only AVX-512F.
    #[inline(always)]
    unsafe fn rows_zmm(
        p: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        f: impl Fn(__m512) -> __m512,
    ) {
        for r in 0..rows {
            // SAFETY (whole fn): every access is within row r's `cols`
            // values, valid per the contract.
            let row = p.add(r * ld);
            let mut i = 0;
            while i + 16 <= cols {
                _mm512_storeu_ps(row.add(i), f(_mm512_loadu_ps(row.add(i))));
                i += 16;
            }
            if i < cols {
                let mask: __mmask16 = ((1u32 << (cols - i)) - 1) as __mmask16;
                // Masked-off lanes are neither read nor written.
                let v = _mm512_maskz_loadu_ps(mask, row.add(i));
                _mm512_mask_storeu_ps(row.add(i), mask, f(v));
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp_ymm(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_set1_ps(EXP_HI),
            _mm256_max_ps(_mm256_set1_ps(EXP_LO), x),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(Q3);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(Q2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(Q1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(Q0));
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let ni = _mm256_cvtps_epi32(n);
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            ni,
            _mm256_set1_epi32(127),
        )));
        _mm256_mul_ps(y, scale)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sigmoid_ymm(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp_ymm(_mm256_sub_ps(_mm256_setzero_ps(), x));
        // False for NaN, so NaN still goes through.
        let zero = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(SIGMOID_ZERO));
        _mm256_andnot_ps(zero, _mm256_div_ps(one, _mm256_add_ps(one, e)))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tanh_ymm(x: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let a = _mm256_andnot_ps(sign, x);
        let e = exp_ymm(_mm256_add_ps(a, a));
        let big = _mm256_sub_ps(
            _mm256_set1_ps(1.0),
            _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, _mm256_set1_ps(1.0))),
        );
        let big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
        let z = _mm256_mul_ps(x, x);
        let mut p = _mm256_set1_ps(T0);
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T1));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T2));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T3));
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(T4));
        p = _mm256_mul_ps(p, z);
        let small = _mm256_fmadd_ps(p, x, x);
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(TANH_SMALL));
        _mm256_blendv_ps(big, small, is_small)
    }

    /// `act` on one register (see [`act_zmm`]).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn act_ymm(act: Activation, x: __m256) -> __m256 {
        match act {
            Activation::None => x,
            Activation::Relu => _mm256_max_ps(x, _mm256_setzero_ps()),
            Activation::Silu => _mm256_mul_ps(x, sigmoid_ymm(x)),
            Activation::Sigmoid => sigmoid_ymm(x),
            Activation::LeakyRelu(a) => {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
                _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(a)), neg)
            }
            Activation::HardSigmoid(a, b) => {
                let y = _mm256_fmadd_ps(x, _mm256_set1_ps(a), _mm256_set1_ps(b));
                _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1.0))
            }
            Activation::HardSwish => {
                let y = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0 / 6.0), _mm256_set1_ps(0.5));
                let y = _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1.0));
                _mm256_mul_ps(x, y)
            }
            Activation::Tanh => tanh_ymm(x),
            Activation::Clip(lo, hi) => {
                _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x))
            }
            Activation::Elu(a) => {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
                let e = _mm256_sub_ps(exp_ymm(x), _mm256_set1_ps(1.0));
                _mm256_blendv_ps(x, _mm256_mul_ps(e, _mm256_set1_ps(a)), neg)
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn apply_slice_avx2(act: Activation, x: &mut [f32]) {
        apply_rows_avx2(act, x.as_mut_ptr(), 0, 1, x.len());
    }

    /// `act` on `rows` rows of `cols` values at `p`, row stride `ld` (see
    /// [`apply_rows_avx512`]).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; the rows are valid for reads and
    /// writes.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn apply_rows_avx2(
        act: Activation,
        p: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
    ) {
        match act {
            Activation::None => {}
            Activation::Silu => rows_ymm(p, ld, rows, cols, |v| {
                // SAFETY: runs inside this AVX2+FMA function.
                unsafe { _mm256_mul_ps(v, sigmoid_ymm(v)) }
            }),
            Activation::Sigmoid => rows_ymm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { sigmoid_ymm(v) }
            }),
            Activation::Relu => rows_ymm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { act_ymm(Activation::Relu, v) }
            }),
            Activation::Tanh => rows_ymm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { tanh_ymm(v) }
            }),
            other => rows_ymm(p, ld, rows, cols, |v| {
                // SAFETY: as above.
                unsafe { act_ymm(other, v) }
            }),
        }
    }

    /// # Safety
    /// As [`apply_rows_avx2`]; `f` needs only AVX2 and FMA.
    #[inline(always)]
    unsafe fn rows_ymm(
        p: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        f: impl Fn(__m256) -> __m256,
    ) {
        for r in 0..rows {
            // SAFETY (whole fn): every access is within row r's `cols`
            // values, valid per the contract.
            let row = p.add(r * ld);
            let mut i = 0;
            while i + 8 <= cols {
                _mm256_storeu_ps(row.add(i), f(_mm256_loadu_ps(row.add(i))));
                i += 8;
            }
            if i < cols {
                let n = cols - i;
                let mut tail = [0.0f32; 8];
                std::ptr::copy_nonoverlapping(row.add(i), tail.as_mut_ptr(), n);
                let v = f(_mm256_loadu_ps(tail.as_ptr()));
                _mm256_storeu_ps(tail.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(tail.as_ptr(), row.add(i), n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: Clip turned NaN into its lower bound (x86 max/min and
    /// f32::max pick the non-NaN operand); ONNX keeps NaN.
    #[test]
    fn clip_keeps_nan_on_every_isa() {
        let act = Activation::Clip(-1.0, 1.0);
        assert!(act.apply(f32::NAN).is_nan());
        for isa in [Isa::cached(), Isa::Portable] {
            let mut x = vec![f32::NAN; 37];
            x[3] = 5.0;
            apply_slice(act, &mut x, isa);
            assert_eq!(x[3], 1.0);
            assert!(
                x.iter().enumerate().all(|(i, v)| i == 3 || v.is_nan()),
                "{isa:?}: {x:?}"
            );
        }
    }

    fn all_acts() -> Vec<Activation> {
        vec![
            Activation::None,
            Activation::Relu,
            Activation::Silu,
            Activation::Sigmoid,
            Activation::LeakyRelu(0.1),
            Activation::HardSigmoid(0.2, 0.5),
            Activation::HardSwish,
            Activation::Tanh,
            Activation::Clip(-1.5, 2.5),
            Activation::Elu(0.7),
        ]
    }

    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.01).collect();
        v.extend([
            0.0,
            -0.0,
            1e-8,
            -1e-8,
            1e-4,
            -1e-4,
            0.6249,
            0.6251,
            -0.6251,
            80.0,
            -80.0,
            87.5,
            -87.5,
            88.5,
            -88.5,
            100.0,
            -100.0,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
        ]);
        v
    }

    fn close(act: Activation, x: f32, got: f32, want: f32) {
        let tol = 2e-6 * want.abs().max(1.0);
        // Elu's exp(x) - 1 cancels near 0 in both implementations alike.
        let tol = if matches!(act, Activation::Elu(_)) {
            tol.max(2e-7)
        } else {
            tol
        };
        assert!(
            (got - want).abs() <= tol,
            "{act:?}({x}) = {got}, want {want}"
        );
        assert!(got.is_finite(), "{act:?}({x}) = {got}");
    }

    #[test]
    fn every_isa_matches_scalar_reference() {
        for isa in Isa::available() {
            for act in all_acts() {
                let xs = inputs();
                // Odd lengths exercise the masked / copied tails.
                for len in [xs.len(), 1, 7, 15, 17, 33] {
                    let mut v = xs[..len].to_vec();
                    apply_slice(act, &mut v, isa);
                    for (x, got) in xs.iter().zip(&v) {
                        close(act, *x, *got, act.apply(*x));
                    }
                }
            }
        }
    }

    #[test]
    fn nan_propagates_through_sigmoid_family() {
        for isa in Isa::available() {
            for act in [Activation::Silu, Activation::Sigmoid, Activation::Tanh] {
                let mut v = vec![f32::NAN; 19];
                apply_slice(act, &mut v, isa);
                assert!(v.iter().all(|x| x.is_nan()), "{isa:?} {act:?}");
            }
        }
    }

    #[test]
    fn extreme_inputs_saturate() {
        for isa in Isa::available() {
            let mut v = vec![1e30f32, -1e30, f32::INFINITY, f32::NEG_INFINITY];
            apply_slice(Activation::Sigmoid, &mut v, isa);
            assert_eq!(v[0], 1.0);
            assert!(v[1] >= 0.0 && v[1] < 1e-37);
            assert_eq!(v[2], 1.0);
            assert!(v[3] >= 0.0 && v[3] < 1e-37);
            let mut v = vec![-1e30f32, 1e30, f32::MIN, f32::MAX];
            apply_slice(Activation::Silu, &mut v, isa);
            assert!(v[0].abs() < 1e-30, "{:?}", v[0]);
            assert_eq!(v[1], 1e30);
            assert!(v[2].abs() < 1e-30, "{:?}", v[2]);
            assert_eq!(v[3], f32::MAX);
        }
    }
}
