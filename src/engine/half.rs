//! IEEE half precision: the engine's one conversion between f16 bits and
//! f32 (model import of FLOAT16 tensors, Cast to FLOAT16, FP16 GEMM
//! weights for the GPU and the GPU emulator). Pure functions; never
//! allocate; any thread.

/// IEEE half-precision bits to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x03ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: value = man * 2^-24; normalise it for f32.
            let shift = man.leading_zeros() - 21; // bring the top set bit to bit 10
            let man = (man << shift) & 0x03ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (man << 13)
        }
        0x1f => sign | 0x7f80_0000 | (man << 13) | if man != 0 { 0x0040_0000 } else { 0 },
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 to IEEE half-precision bits, rounding to nearest even (as numpy's
/// `astype(np.float16)`); overflow gives ±inf, NaN stays NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x0200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the full mantissa (with its
        // implicit bit) right, rounding to nearest even.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32; // 13 + (1 - e)
        let half = m >> shift;
        let rem = m & ((1u32 << shift) - 1);
        let halfway = 1u32 << (shift - 1);
        let round = rem > halfway || (rem == halfway && (half & 1) == 1);
        return sign | (half + round as u32) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let round = rem > 0x1000 || (rem == 0x1000 && (half & 1) == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to inf).
    sign | (half + round as u32) as u16
}

/// Round an f32 to the nearest float16 value (ties to even), as f32.
pub fn round_to_f16(x: f32) -> f32 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let abs = bits & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        return x; // inf, NaN
    }
    let a = f32::from_bits(abs);
    if a >= 65520.0 {
        return f32::from_bits(sign | 0x7f80_0000);
    }
    if a < 6.103_515_6e-5 {
        // Subnormal half: multiples of 2^-24 (scaling by 2^24 is exact).
        let q = (a * 16_777_216.0).round_ties_even() / 16_777_216.0;
        return f32::from_bits(sign | q.to_bits());
    }
    // Keep 10 of 23 mantissa bits, ties to even.
    let r = (abs + 0x0fff + ((abs >> 13) & 1)) & !0x1fff;
    f32::from_bits(sign | r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            let back = f32_to_f16(f);
            if f.is_nan() {
                assert!(f16_to_f32(back).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(back, h, "{h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn f16_matches_numpy_on_known_values() {
        // numpy: np.array([...], np.float16).view(np.uint16)
        let cases: [(f32, u16); 10] = [
            (1.0, 0x3c00),
            (-2.5, 0xc100),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00), // rounds up to inf
            (6.1035156e-05, 0x0400),
            (5.9604645e-08, 0x0001),
            (2.9802322e-08, 0x0000), // exactly half the smallest subnormal: ties to even
            (4.4703484e-08, 0x0001),
            (0.1, 0x2e66),
            (1.0009766, 0x3c01),
        ];
        for (x, h) in cases {
            assert_eq!(f32_to_f16(x), h, "{x}");
        }
        assert_eq!(f16_to_f32(0x0001), 5.9604645e-08);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    }

    #[test]
    fn round_to_f16_matches_ties_to_even() {
        // Exhaustive against a reference built from the half value grid.
        for h in 0u32..0x7c00 {
            let v = f16_to_f32(h as u16);
            assert_eq!(round_to_f16(v), v, "{h:#x}");
            if h + 1 < 0x7c00 {
                let next = f16_to_f32(h as u16 + 1);
                let mid = (v + next) / 2.0;
                let want = if h % 2 == 0 { v } else { next };
                assert_eq!(round_to_f16(mid), want, "mid of {h:#x}");
                assert_eq!(round_to_f16(-mid), -want);
            }
        }
    }

    #[test]
    fn half_bits_round_like_ieee() {
        assert_eq!(f32_to_f16(0.0), 0);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7c00, 0x7c00);
        // Smallest subnormal half, 2^-24.
        assert_eq!(f32_to_f16(5.960_464_5e-8), 1);
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even wins.
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16(0.1), 0x2e66);
    }
}
