//! A constant-velocity Kalman filter over `M` independent position axes
//! (state: `M` positions then their `M` rates, `N = 2 M`), with fixed-size
//! `nalgebra` matrices: the tracker's image-plane filter (box centre and
//! size, `M = 4`) and ground-plane filter (`x`, `y` in the vehicle frame,
//! `M = 2`) are the same code.
//!
//! Process noise is white acceleration per axis (the discrete model with
//! `dt⁴/4, dt³/2, dt²` blocks); the measurement is the positions, with a
//! full `M x M` covariance (the ground position's error is long along the
//! viewing ray and short across it, so it is not diagonal).
//!
//! Everything lives on the stack or in the owning track: no method
//! allocates. Called on the postprocess thread.

use nalgebra::{SMatrix, SVector};

/// One filter's state and covariance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kalman<const M: usize, const N: usize> {
    pub x: SVector<f64, N>,
    pub p: SMatrix<f64, N, N>,
}

impl<const M: usize, const N: usize> Kalman<M, N> {
    /// Starts at `z` with measurement covariance `r` and zero rates with
    /// standard deviation `rate_sigma[i]` per axis. Never allocates.
    pub fn new(z: &SVector<f64, M>, r: &SMatrix<f64, M, M>, rate_sigma: &[f64; M]) -> Self {
        debug_assert_eq!(N, 2 * M);
        let mut x = SVector::<f64, N>::zeros();
        let mut p = SMatrix::<f64, N, N>::zeros();
        for i in 0..M {
            x[i] = z[i];
            p[(M + i, M + i)] = rate_sigma[i] * rate_sigma[i];
            for j in 0..M {
                p[(i, j)] = r[(i, j)];
            }
        }
        Kalman { x, p }
    }

    /// Advances the state by `dt` seconds with white acceleration of
    /// standard deviation `accel_sigma[i]` (units/s²) on axis `i`.
    /// Never allocates.
    pub fn predict(&mut self, dt: f64, accel_sigma: &[f64; M]) {
        let mut f = SMatrix::<f64, N, N>::identity();
        let mut q = SMatrix::<f64, N, N>::zeros();
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt, dt * dt * dt * dt);
        for (i, &a) in accel_sigma.iter().enumerate() {
            f[(i, M + i)] = dt;
            let a2 = a * a;
            q[(i, i)] = a2 * dt4 * 0.25;
            q[(i, M + i)] = a2 * dt3 * 0.5;
            q[(M + i, i)] = a2 * dt3 * 0.5;
            q[(M + i, M + i)] = a2 * dt2;
        }
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + q;
    }

    /// The innovation `z - H x` and its covariance `H P Hᵀ + r`.
    fn innovation(
        &self,
        z: &SVector<f64, M>,
        r: &SMatrix<f64, M, M>,
    ) -> (SVector<f64, M>, SMatrix<f64, M, M>) {
        let y = z - self.x.fixed_rows::<M>(0);
        let s = self.p.fixed_view::<M, M>(0, 0) + r;
        (y, s)
    }

    /// Squared Mahalanobis distance of measurement `z` (covariance `r`)
    /// from the predicted position; infinite when the covariance is
    /// singular. Never allocates.
    pub fn mahalanobis2(&self, z: &SVector<f64, M>, r: &SMatrix<f64, M, M>) -> f64 {
        let (y, s) = self.innovation(z, r);
        match s.try_inverse() {
            Some(si) => (y.transpose() * si * y)[(0, 0)],
            None => f64::INFINITY,
        }
    }

    /// Folds in measurement `z` with covariance `r` (Joseph form, so `p`
    /// stays symmetric positive semi-definite). A singular innovation
    /// covariance leaves the filter unchanged. Never allocates.
    pub fn update(&mut self, z: &SVector<f64, M>, r: &SMatrix<f64, M, M>) {
        let (y, s) = self.innovation(z, r);
        let Some(si) = s.try_inverse() else {
            return;
        };
        // K = P Hᵀ S⁻¹; H selects the first M rows.
        let k: SMatrix<f64, N, M> = self.p.fixed_view::<N, M>(0, 0) * si;
        self.x += k * y;
        let mut i_kh = SMatrix::<f64, N, N>::identity();
        for row in 0..N {
            for col in 0..M {
                i_kh[(row, col)] -= k[(row, col)];
            }
        }
        self.p = i_kh * self.p * i_kh.transpose() + k * r * k.transpose();
    }

    /// Position on axis `i`.
    pub fn pos(&self, i: usize) -> f64 {
        self.x[i]
    }

    /// Rate on axis `i` (units/s).
    pub fn rate(&self, i: usize) -> f64 {
        self.x[M + i]
    }

    /// Sets the rate on axis `i` (the image filter stops a lost track's
    /// box from growing or shrinking without bound).
    pub fn set_rate(&mut self, i: usize, v: f64) {
        self.x[M + i] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Matrix2, Vector2};

    #[test]
    fn converges_on_a_constant_velocity_track() {
        // Noisy positions of an object moving at (-4, 1) m/s, 30 Hz: the
        // rate converges to the true velocity well within the noise.
        let r = Matrix2::new(0.09, 0.0, 0.0, 0.01);
        let mut state = 12345u64;
        let mut noise = |sigma: f64| {
            // Deterministic uniform noise with the given standard deviation.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * sigma * 12f64.sqrt()
        };
        let dt = 1.0 / 30.0;
        let truth = |k: usize| Vector2::new(20.0 - 4.0 * k as f64 * dt, -1.0 + k as f64 * dt);
        let mut kf = Kalman::<2, 4>::new(&truth(0), &r, &[10.0, 10.0]);
        for k in 1..90 {
            kf.predict(dt, &[0.5, 0.5]);
            let t = truth(k);
            let z = Vector2::new(t[0] + noise(0.3), t[1] + noise(0.1));
            assert!(kf.mahalanobis2(&z, &r) < 25.0, "frame {k}");
            kf.update(&z, &r);
        }
        assert!((kf.rate(0) + 4.0).abs() < 0.3, "vx {}", kf.rate(0));
        assert!((kf.rate(1) - 1.0).abs() < 0.1, "vy {}", kf.rate(1));
        // Symmetric and positive on the diagonal.
        assert!((kf.p - kf.p.transpose()).abs().max() < 1e-9);
        assert!((0..4).all(|i| kf.p[(i, i)] > 0.0));
    }

    #[test]
    fn gate_rejects_a_far_measurement() {
        let r = Matrix2::identity() * 0.04;
        let mut kf = Kalman::<2, 4>::new(&Vector2::new(10.0, 0.0), &r, &[1.0, 1.0]);
        kf.predict(0.033, &[1.0, 1.0]);
        assert!(kf.mahalanobis2(&Vector2::new(10.05, 0.0), &r) < 1.0);
        assert!(kf.mahalanobis2(&Vector2::new(13.0, 0.0), &r) > 50.0);
    }

    #[test]
    fn singular_innovation_leaves_the_state_alone() {
        let z = Vector2::new(1.0, 2.0);
        let zero = Matrix2::zeros();
        let mut kf = Kalman::<2, 4>::new(&z, &zero, &[0.0, 0.0]);
        let before = kf;
        kf.update(&Vector2::new(5.0, 5.0), &zero);
        assert_eq!(kf, before);
        assert!(kf.mahalanobis2(&z, &zero).is_infinite());
    }
}
