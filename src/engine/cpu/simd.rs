//! The CPU backend's instruction-set detection ([`Isa`]) and the small
//! vector helpers every kernel shares. The SIMD kernels themselves live with
//! their op: the GEMM micro-kernels in `gemm.rs`, Winograd transforms in
//! `conv/`, activations in `activation.rs`. All choose their code path from
//! the one [`Isa`] detected here.
//!
//! Frame path: never allocates; any thread.

use std::sync::atomic::{AtomicU8, Ordering};

/// The SIMD instruction set a plan's kernels use. Detected once at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 with AVX-512F.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// Anything else (aarch64 included): auto-vectorised Rust.
    Portable,
}

static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    /// The best instruction set this CPU supports (runs feature detection).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// [`Isa::detect`], computed once per process.
    pub fn cached() -> Isa {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Isa::Avx512,
            2 => Isa::Avx2,
            3 => Isa::Portable,
            _ => {
                let isa = Isa::detect();
                let code = match isa {
                    Isa::Avx512 => 1,
                    Isa::Avx2 => 2,
                    Isa::Portable => 3,
                };
                DETECTED.store(code, Ordering::Relaxed);
                isa
            }
        }
    }

    /// Whether this CPU can run `self`'s code.
    pub fn is_supported(self) -> bool {
        match (self, Isa::cached()) {
            (Isa::Portable, _) => true,
            (Isa::Avx2, best) => best != Isa::Portable,
            (Isa::Avx512, best) => best == Isa::Avx512,
        }
    }

    /// Every instruction set this CPU supports, best first (tests, benches).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.is_supported())
            .collect()
    }
}

/// `d = s` for short runs: fixed-size chunks compile to vector moves
/// instead of a libc call per run.
#[inline(always)]
pub(crate) fn copy_run(d: &mut [f32], s: &[f32]) {
    let mut dc = d.chunks_exact_mut(8);
    let mut sc = s.chunks_exact(8);
    for (a, b) in (&mut dc).zip(&mut sc) {
        // Always Ok (chunks of 8); the array types fix the copy's size.
        if let (Ok(a), Ok(b)) = (<&mut [f32; 8]>::try_from(a), <&[f32; 8]>::try_from(b)) {
            *a = *b;
        }
    }
    for (a, b) in dc.into_remainder().iter_mut().zip(sc.remainder()) {
        *a = *b;
    }
}

/// `d = 0` for short runs (see [`copy_run`]).
#[inline(always)]
pub(crate) fn zero_run(d: &mut [f32]) {
    let mut dc = d.chunks_exact_mut(8);
    for a in &mut dc {
        if let Ok(a) = <&mut [f32; 8]>::try_from(a) {
            *a = [0.0; 8];
        }
    }
    for a in dc.into_remainder() {
        *a = 0.0;
    }
}
