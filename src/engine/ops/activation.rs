//! Element-wise activations over f32 slices, shared by the standalone
//! activation ops and the fused epilogues of Conv/Gemm.
//!
//! Frame path: never allocates.

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

/// Apply `act` to every element of `x` in place.
pub fn apply_inplace(act: Activation, x: &mut [f32]) {
    if act == Activation::None {
        return;
    }
    for v in x.iter_mut() {
        *v = act.apply(*v);
    }
}
