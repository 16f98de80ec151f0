//! Lens distortion models (OpenCV conventions) on normalised image
//! coordinates: the forward map (undistorted -> distorted) and its inverse
//! solved by damped Newton iteration to ~1e-12.
//!
//! Plain math on the stack: nothing here allocates, any thread may call it.

/// Which distortion model a calibration uses (ROS `distortion_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistortionModel {
    /// Brown-Conrady: k1, k2, p1, p2, k3.
    PlumbBob,
    /// OpenCV rational: k1, k2, p1, p2, k3, k4, k5, k6.
    RationalPolynomial,
    /// OpenCV fisheye (equidistant): k1, k2, k3, k4 on the ray angle theta.
    Equidistant,
}

impl DistortionModel {
    /// The ROS name (`plumb_bob`, ...), or None for an unknown name.
    pub fn from_ros(name: &str) -> Option<DistortionModel> {
        match name {
            "plumb_bob" => Some(DistortionModel::PlumbBob),
            "rational_polynomial" => Some(DistortionModel::RationalPolynomial),
            "equidistant" => Some(DistortionModel::Equidistant),
            _ => None,
        }
    }

    pub fn ros_name(self) -> &'static str {
        match self {
            DistortionModel::PlumbBob => "plumb_bob",
            DistortionModel::RationalPolynomial => "rational_polynomial",
            DistortionModel::Equidistant => "equidistant",
        }
    }

    /// Number of coefficients the model takes.
    pub fn coefficient_count(self) -> usize {
        match self {
            DistortionModel::PlumbBob => 5,
            DistortionModel::RationalPolynomial => 8,
            DistortionModel::Equidistant => 4,
        }
    }
}

/// Residual (normalised units) at which the inverse counts as converged.
const INVERSE_TOL: f64 = 1e-12;
const INVERSE_MAX_ITER: usize = 100;

/// A distortion model with its coefficients and the radius up to which the
/// forward map is one-to-one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lens {
    pub model: DistortionModel,
    /// Coefficients in ROS order, zero-padded to 8.
    pub k: [f64; 8],
    /// Pinhole models: largest undistorted radius r = |(x, y)| where the
    /// radial map r -> r * radial(r) is still increasing (beyond it points
    /// fold back into the image and no inverse exists). Equidistant: the
    /// largest ray angle theta (< pi/2) with theta_d still increasing.
    pub valid_limit: f64,
}

/// Upper end of the search for the fold-back radius (pinhole models): a
/// normalised radius of 20 is 87 degrees off axis.
const PINHOLE_SEARCH_MAX: f64 = 20.0;

impl Lens {
    pub fn new(model: DistortionModel, coeffs: &[f64]) -> Lens {
        let mut k = [0.0; 8];
        for (dst, src) in k.iter_mut().zip(coeffs) {
            *dst = *src;
        }
        let mut lens = Lens {
            model,
            k,
            valid_limit: f64::INFINITY,
        };
        lens.valid_limit = lens.find_valid_limit();
        lens
    }

    /// Scan the radial map for the first point where it stops increasing
    /// (or a rational denominator reaches zero).
    fn find_valid_limit(&self) -> f64 {
        let (max, steps) = match self.model {
            DistortionModel::Equidistant => (std::f64::consts::FRAC_PI_2 - 1e-6, 20_000),
            _ => {
                if self.k.iter().all(|&c| c == 0.0) {
                    return f64::INFINITY;
                }
                (PINHOLE_SEARCH_MAX, 40_000)
            }
        };
        let h = max / steps as f64;
        let mut prev = 0.0;
        for i in 1..=steps {
            let r = h * i as f64;
            let Some(g) = self.radial_map(r) else {
                return h * (i - 1) as f64;
            };
            if g <= prev {
                return h * (i - 1) as f64;
            }
            prev = g;
        }
        max
    }

    /// Pinhole models: r * radial(r^2); equidistant: theta_d(theta).
    /// None where a rational denominator is not positive.
    fn radial_map(&self, r: f64) -> Option<f64> {
        let k = &self.k;
        match self.model {
            DistortionModel::Equidistant => {
                let t2 = r * r;
                Some(r * (1.0 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))))
            }
            _ => {
                let r2 = r * r;
                let num = 1.0 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]));
                let den = 1.0 + r2 * (k[5] + r2 * (k[6] + r2 * k[7]));
                (den > 0.0).then(|| r * num / den)
            }
        }
    }

    /// Undistorted normalised point (x, y) = (X/Z, Y/Z) to distorted
    /// normalised point, with the 2x2 Jacobian d(xd, yd)/d(x, y) as
    /// [dxd/dx, dxd/dy, dyd/dx, dyd/dy]. None outside the valid region.
    pub fn distort(&self, x: f64, y: f64) -> Option<([f64; 2], [f64; 4])> {
        let k = &self.k;
        let r2 = x * x + y * y;
        match self.model {
            DistortionModel::Equidistant => {
                let r = r2.sqrt();
                let theta = r.atan();
                if theta > self.valid_limit {
                    return None;
                }
                let t2 = theta * theta;
                let poly = 1.0 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])));
                let theta_d = theta * poly;
                if r < 1e-12 {
                    // theta_d / r -> 1 at the centre.
                    return Some(([x, y], [1.0, 0.0, 0.0, 1.0]));
                }
                let s = theta_d / r;
                // d theta_d / d theta, d theta / d r.
                let dpoly = 1.0
                    + t2 * (3.0 * k[0] + t2 * (5.0 * k[1] + t2 * (7.0 * k[2] + t2 * 9.0 * k[3])));
                let dtheta_dr = 1.0 / (1.0 + r2);
                let ds_dr = (dpoly * dtheta_dr * r - theta_d) / r2;
                // d(s*x)/dx = s + x * ds/dr * x/r.
                let (ux, uy) = (x / r, y / r);
                let j = [
                    s + x * ds_dr * ux,
                    x * ds_dr * uy,
                    y * ds_dr * ux,
                    s + y * ds_dr * uy,
                ];
                Some(([s * x, s * y], j))
            }
            _ => {
                if r2.sqrt() > self.valid_limit {
                    return None;
                }
                let (k1, k2, p1, p2, k3, k4, k5, k6) =
                    (k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]);
                let a = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
                let b = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6));
                if b <= 0.0 {
                    return None;
                }
                let radial = a / b;
                let da = k1 + r2 * (2.0 * k2 + r2 * 3.0 * k3);
                let db = k4 + r2 * (2.0 * k5 + r2 * 3.0 * k6);
                // d radial / d r2
                let dr = (da * b - a * db) / (b * b);
                let xy = x * y;
                let xd = x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * x * x);
                let yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * xy;
                let j = [
                    radial + 2.0 * x * x * dr + 2.0 * p1 * y + 6.0 * p2 * x,
                    2.0 * xy * dr + 2.0 * p1 * x + 2.0 * p2 * y,
                    2.0 * xy * dr + 2.0 * p1 * x + 2.0 * p2 * y,
                    radial + 2.0 * y * y * dr + 6.0 * p1 * y + 2.0 * p2 * x,
                ];
                Some(([xd, yd], j))
            }
        }
    }

    /// Invert [`Lens::distort`]: the undistorted normalised point whose
    /// distortion is (xd, yd), by Newton's method with step halving, until
    /// the residual is below 1e-12. Returns the point and whether it
    /// converged inside the valid region; when it did not, the point is the
    /// best iterate found (finite).
    pub fn undistort(&self, xd: f64, yd: f64) -> ([f64; 2], bool) {
        if !(xd.is_finite() && yd.is_finite()) {
            return ([0.0, 0.0], false);
        }
        if self.model == DistortionModel::Equidistant {
            return self.undistort_equidistant(xd, yd);
        }
        let start = if self.distort(xd, yd).is_some() {
            [xd, yd]
        } else {
            // The distorted point lies beyond the valid radius: start on
            // the limit along the same direction instead.
            let rd = (xd * xd + yd * yd).sqrt();
            let lim = self.valid_limit * 0.999;
            [xd / rd * lim, yd / rd * lim]
        };
        self.newton_from(start, xd, yd)
    }

    fn newton_from(&self, start: [f64; 2], xd: f64, yd: f64) -> ([f64; 2], bool) {
        let mut p = start;
        let Some((f, mut j)) = self.distort(p[0], p[1]) else {
            return (p, false);
        };
        let mut res = [f[0] - xd, f[1] - yd];
        let mut err = res[0].abs().max(res[1].abs());
        for _ in 0..INVERSE_MAX_ITER {
            if err < INVERSE_TOL {
                return (p, true);
            }
            let det = j[0] * j[3] - j[1] * j[2];
            if det.abs() < 1e-300 || !det.is_finite() {
                return (p, false);
            }
            let dx = (j[3] * res[0] - j[1] * res[1]) / det;
            let dy = (j[0] * res[1] - j[2] * res[0]) / det;
            let mut step = 1.0;
            let mut improved = false;
            for _ in 0..40 {
                let q = [p[0] - step * dx, p[1] - step * dy];
                if let Some((fq, jq)) = self.distort(q[0], q[1]) {
                    let rq = [fq[0] - xd, fq[1] - yd];
                    let eq = rq[0].abs().max(rq[1].abs());
                    if eq < err {
                        p = q;
                        j = jq;
                        res = rq;
                        err = eq;
                        improved = true;
                        break;
                    }
                }
                step *= 0.5;
            }
            if !improved {
                break;
            }
        }
        (p, err < INVERSE_TOL)
    }

    /// Equidistant is radial only: solve theta_d(theta) = |(xd, yd)| in 1-D,
    /// then x = tan(theta) * (xd, yd) / |(xd, yd)|.
    fn undistort_equidistant(&self, xd: f64, yd: f64) -> ([f64; 2], bool) {
        let rd = (xd * xd + yd * yd).sqrt();
        if rd < 1e-15 {
            return ([xd, yd], true);
        }
        let (theta, ok) = self.solve_theta(rd);
        let r = theta.tan();
        ([xd / rd * r, yd / rd * r], ok)
    }

    /// The ray angle theta with theta_d(theta) = rd (equidistant), by Newton
    /// with bisection fallback on [0, valid_limit].
    pub fn solve_theta(&self, rd: f64) -> (f64, bool) {
        let k = &self.k;
        let g = |t: f64| {
            let t2 = t * t;
            t * (1.0 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
        };
        let dg = |t: f64| {
            let t2 = t * t;
            1.0 + t2 * (3.0 * k[0] + t2 * (5.0 * k[1] + t2 * (7.0 * k[2] + t2 * 9.0 * k[3])))
        };
        let hi_lim = self.valid_limit;
        if rd >= g(hi_lim) {
            return (hi_lim, false);
        }
        // g is increasing on [0, hi_lim]: keep a bracket for safety.
        let (mut lo, mut hi) = (0.0, hi_lim);
        let mut t = rd.min(hi_lim * 0.5);
        for _ in 0..INVERSE_MAX_ITER {
            let f = g(t) - rd;
            if f.abs() < INVERSE_TOL {
                return (t, true);
            }
            if f > 0.0 {
                hi = t;
            } else {
                lo = t;
            }
            let d = dg(t);
            let mut next = if d > 0.0 { t - f / d } else { f64::NAN };
            if !(next > lo && next < hi) {
                next = 0.5 * (lo + hi);
            }
            t = next;
        }
        let f = g(t) - rd;
        (t, f.abs() < INVERSE_TOL)
    }
}
