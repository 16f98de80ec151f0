//! Camera calibration: loads and checks a ROS `camera_info` YAML file plus
//! the camera's pose in the vehicle frame, and does the geometry the
//! pipeline needs: projecting vehicle-frame points to distorted pixels,
//! undistorting pixels, and intersecting pixel rays with the ground.
//!
//! Frames:
//! * vehicle (ISO 8855): x forward, y left, z up, origin on the ground;
//! * camera body: x forward (optical axis), y left, z up; its orientation in
//!   the vehicle frame is `R = Rz(yaw) * Ry(pitch) * Rx(roll)` from
//!   `extrinsics.rotation_rpy_deg`, so a positive pitch looks down;
//! * camera optical: z forward, x right, y down (OpenCV); pixel (0, 0) is
//!   the centre of the top-left pixel.
//!
//! The extrinsics describe the raw (unrectified) camera whose intrinsics are
//! `camera_matrix`/`distortion_coefficients`; all geometry here uses those.
//! `rectification_matrix` and `projection_matrix` are checked and kept for
//! an undistortion remap but not used for rays.
//!
//! Loading is boot (allocates, returns [`CalibrationError`]); the geometry
//! methods are plain math that never allocate and may be called from any
//! thread, including the frame path.

mod lens;

pub use lens::DistortionModel;
use lens::Lens;

use nalgebra::{Matrix3, Matrix3x4, Vector3};
use serde::Deserialize;
use std::path::Path;
use thiserror::Error;

/// Everything that can be wrong with a calibration file. Every message
/// names the file, the field and the offending value.
#[derive(Debug, Error)]
pub enum CalibrationError {
    #[error("{path}: cannot read: {msg}")]
    Io { path: String, msg: String },
    /// YAML syntax errors, missing fields, wrong types.
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error(
        "{path}: {field}.data has {len} values, expected {expected} (rows {rows} x cols {cols})"
    )]
    DataLength {
        path: String,
        field: &'static str,
        len: usize,
        expected: usize,
        rows: usize,
        cols: usize,
    },
    #[error("{path}: {field} is {rows}x{cols}, expected {expected_rows}x{expected_cols}")]
    Shape {
        path: String,
        field: &'static str,
        rows: usize,
        cols: usize,
        expected_rows: usize,
        expected_cols: usize,
    },
    #[error("{path}: {field}[{index}] is {value}, expected a finite number")]
    NotFinite {
        path: String,
        field: &'static str,
        index: usize,
        value: f64,
    },
    #[error("{path}: {field} is {value}, must be > 0")]
    NotPositive {
        path: String,
        field: &'static str,
        value: f64,
    },
    #[error("{path}: distortion_model '{model}' is not supported (plumb_bob, rational_polynomial, equidistant)")]
    UnknownModel { path: String, model: String },
    #[error("{path}: distortion_coefficients has {count} values, but {model} takes {expected}")]
    CoefficientCount {
        path: String,
        model: &'static str,
        count: usize,
        expected: usize,
    },
    /// Any other inconsistency, described in `msg`.
    #[error("{path}: {field}: {msg}")]
    Invalid {
        path: String,
        field: &'static str,
        msg: String,
    },
}

#[derive(Debug, Deserialize)]
struct RawMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct RawExtrinsics {
    translation: Vec<f64>,
    rotation_rpy_deg: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct RawCalibration {
    image_width: i64,
    image_height: i64,
    #[serde(default)]
    camera_name: String,
    camera_matrix: RawMatrix,
    distortion_model: String,
    distortion_coefficients: RawMatrix,
    rectification_matrix: RawMatrix,
    projection_matrix: RawMatrix,
    extrinsics: RawExtrinsics,
}

/// A checked camera calibration with its pose on the vehicle.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    source: String,
    camera_name: String,
    width: u32,
    height: u32,
    k: Matrix3<f64>,
    lens: Lens,
    coeff_count: usize,
    rectification: Matrix3<f64>,
    projection: Matrix3x4<f64>,
    translation: Vector3<f64>,
    rpy_deg: [f64; 3],
    /// Optical frame -> vehicle frame rotation.
    r_vo: Matrix3<f64>,
}

/// The default front camera shipped in `calibration/front_camera.yaml`.
const FRONT_CAMERA_YAML: &str = include_str!("../../calibration/front_camera.yaml");

impl Calibration {
    /// Read and check a calibration file. Boot only.
    pub fn load(path: &Path) -> Result<Calibration, CalibrationError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CalibrationError::Io {
            path: name.clone(),
            msg: e.to_string(),
        })?;
        Calibration::from_yaml_str(&text, &name)
    }

    /// Parse and check calibration YAML; `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Calibration, CalibrationError> {
        let raw: RawCalibration =
            serde_norway::from_str(text).map_err(|e| CalibrationError::Parse {
                path: origin.to_string(),
                msg: e.to_string(),
            })?;
        Calibration::from_raw(raw, origin)
    }

    /// The default front camera (`calibration/front_camera.yaml`, built in).
    pub fn front_camera() -> Calibration {
        match Calibration::from_yaml_str(FRONT_CAMERA_YAML, "calibration/front_camera.yaml") {
            Ok(c) => c,
            // The shipped file is checked by a unit test; this cannot be
            // reached by any input at run time.
            Err(e) => unreachable!("built-in calibration is invalid: {e}"),
        }
    }

    fn from_raw(raw: RawCalibration, origin: &str) -> Result<Calibration, CalibrationError> {
        let path = || origin.to_string();
        for (field, value) in [
            ("image_width", raw.image_width),
            ("image_height", raw.image_height),
        ] {
            if value <= 0 || value > i64::from(u32::MAX) {
                return Err(CalibrationError::NotPositive {
                    path: path(),
                    field,
                    value: value as f64,
                });
            }
        }
        let k = check_matrix(&raw.camera_matrix, "camera_matrix", 3, 3, origin)?;
        let rect = check_matrix(
            &raw.rectification_matrix,
            "rectification_matrix",
            3,
            3,
            origin,
        )?;
        let proj = check_matrix(&raw.projection_matrix, "projection_matrix", 3, 4, origin)?;

        let dist = &raw.distortion_coefficients;
        check_data(dist, "distortion_coefficients", origin)?;
        let model = DistortionModel::from_ros(&raw.distortion_model).ok_or_else(|| {
            CalibrationError::UnknownModel {
                path: path(),
                model: raw.distortion_model.clone(),
            }
        })?;
        if dist.data.len() != model.coefficient_count() {
            return Err(CalibrationError::CoefficientCount {
                path: path(),
                model: model.ros_name(),
                count: dist.data.len(),
                expected: model.coefficient_count(),
            });
        }

        for (field, value) in [
            ("camera_matrix fx (data[0])", k[0]),
            ("camera_matrix fy (data[4])", k[4]),
            ("projection_matrix fx (data[0])", proj[0]),
            ("projection_matrix fy (data[5])", proj[5]),
        ] {
            if value <= 0.0 {
                return Err(CalibrationError::NotPositive {
                    path: path(),
                    field,
                    value,
                });
            }
        }
        if k[3] != 0.0 || k[6] != 0.0 || k[7] != 0.0 || k[8] != 1.0 {
            return Err(CalibrationError::Invalid {
                path: path(),
                field: "camera_matrix",
                msg: format!(
                    "must be [fx s cx; 0 fy cy; 0 0 1], got rows 2-3 [{} {} {}; {} {} {}]",
                    k[3], k[4], k[5], k[6], k[7], k[8]
                ),
            });
        }
        let rect_m = Matrix3::from_row_slice(&rect);
        let ortho_err = (rect_m * rect_m.transpose() - Matrix3::identity())
            .abs()
            .max();
        if ortho_err > 1e-3 || rect_m.determinant() <= 0.0 {
            return Err(CalibrationError::Invalid {
                path: path(),
                field: "rectification_matrix",
                msg: format!(
                    "is not a rotation (|R R^T - I| = {ortho_err:.3e}, det = {:.4})",
                    rect_m.determinant()
                ),
            });
        }

        let ext = &raw.extrinsics;
        for (field, v) in [
            ("extrinsics.translation", &ext.translation),
            ("extrinsics.rotation_rpy_deg", &ext.rotation_rpy_deg),
        ] {
            if v.len() != 3 {
                return Err(CalibrationError::Invalid {
                    path: path(),
                    field,
                    msg: format!("has {} values, expected 3", v.len()),
                });
            }
            check_finite(v, field, origin)?;
        }
        let translation = Vector3::new(ext.translation[0], ext.translation[1], ext.translation[2]);
        let rpy_deg = [
            ext.rotation_rpy_deg[0],
            ext.rotation_rpy_deg[1],
            ext.rotation_rpy_deg[2],
        ];

        let lens = Lens::new(model, &dist.data);
        Ok(Calibration {
            source: origin.to_string(),
            camera_name: raw.camera_name,
            width: raw.image_width as u32,
            height: raw.image_height as u32,
            k: Matrix3::from_row_slice(&k),
            lens,
            coeff_count: model.coefficient_count(),
            rectification: rect_m,
            projection: Matrix3x4::from_row_slice(&proj),
            translation,
            rpy_deg,
            r_vo: optical_to_vehicle(rpy_deg),
        })
    }

    /// The same camera at another image size (intrinsics and projection
    /// scaled by the size ratios), e.g. a camera mode that bins or crops to
    /// a smaller output; the pose and distortion are unchanged.
    pub fn with_image_size(&self, width: u32, height: u32) -> Calibration {
        let sx = f64::from(width.max(1)) / f64::from(self.width);
        let sy = f64::from(height.max(1)) / f64::from(self.height);
        let mut c = self.clone();
        c.width = width.max(1);
        c.height = height.max(1);
        for col in 0..3 {
            c.k[(0, col)] *= sx;
            c.k[(1, col)] *= sy;
        }
        for col in 0..4 {
            c.projection[(0, col)] *= sx;
            c.projection[(1, col)] *= sy;
        }
        c
    }

    /// The file (or label) this calibration came from.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn camera_name(&self) -> &str {
        &self.camera_name
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// K = [fx s cx; 0 fy cy; 0 0 1].
    pub fn camera_matrix(&self) -> &Matrix3<f64> {
        &self.k
    }
    pub fn distortion_model(&self) -> DistortionModel {
        self.lens.model
    }
    /// The coefficients in ROS order (5, 8 or 4 of them).
    pub fn distortion_coefficients(&self) -> &[f64] {
        &self.lens.k[..self.coeff_count]
    }
    pub fn rectification_matrix(&self) -> &Matrix3<f64> {
        &self.rectification
    }
    pub fn projection_matrix(&self) -> &Matrix3x4<f64> {
        &self.projection
    }
    /// Camera optical centre in the vehicle frame (metres).
    pub fn translation(&self) -> Vector3<f64> {
        self.translation
    }
    /// Roll, pitch, yaw of the camera body frame (degrees).
    pub fn rotation_rpy_deg(&self) -> [f64; 3] {
        self.rpy_deg
    }
    /// Rotation taking optical-frame directions to vehicle-frame directions.
    pub fn optical_to_vehicle(&self) -> Matrix3<f64> {
        self.r_vo
    }

    /// Project a vehicle-frame point to a distorted pixel (OpenCV pixel
    /// coordinates; may lie outside the image). None when the point is
    /// behind the camera (or on its plane), or so far off axis that the
    /// lens model folds back (only possible with strong distortion).
    /// Never allocates.
    pub fn project(&self, p_vehicle: Vector3<f64>) -> Option<[f64; 2]> {
        let p = self.r_vo.tr_mul(&(p_vehicle - self.translation));
        if p.z <= 0.0 || !p.z.is_finite() {
            return None;
        }
        let ([xd, yd], _) = self.lens.distort(p.x / p.z, p.y / p.z)?;
        Some(self.to_pixel(xd, yd))
    }

    fn to_pixel(&self, xd: f64, yd: f64) -> [f64; 2] {
        let k = &self.k;
        [
            k[(0, 0)] * xd + k[(0, 1)] * yd + k[(0, 2)],
            k[(1, 1)] * yd + k[(1, 2)],
        ]
    }

    /// Distorted normalised coordinates of a pixel: K^-1 (u, v, 1).
    fn to_normalised(&self, u: f64, v: f64) -> [f64; 2] {
        let k = &self.k;
        let yd = (v - k[(1, 2)]) / k[(1, 1)];
        let xd = (u - k[(0, 2)] - k[(0, 1)] * yd) / k[(0, 0)];
        [xd, yd]
    }

    /// Normalised undistorted image point (X/Z, Y/Z in the optical frame)
    /// of pixel (u, v): the inverse of the distortion solved by Newton's
    /// method to a residual below 1e-12. For a pixel outside the lens
    /// model's one-to-one region (strong distortion only) this is the best
    /// iterate; [`Calibration::try_undistort`] reports that case.
    /// Never allocates.
    pub fn undistort(&self, u: f64, v: f64) -> [f64; 2] {
        let [xd, yd] = self.to_normalised(u, v);
        self.lens.undistort(xd, yd).0
    }

    /// Like [`Calibration::undistort`], but None when the inverse does not
    /// exist or did not converge. Never allocates.
    pub fn try_undistort(&self, u: f64, v: f64) -> Option<[f64; 2]> {
        let [xd, yd] = self.to_normalised(u, v);
        let (p, ok) = self.lens.undistort(xd, yd);
        ok.then_some(p)
    }

    /// Unit direction, in the vehicle frame, of the ray through pixel
    /// (u, v) from the camera centre ([`Calibration::translation`]). None
    /// where the pixel has no valid inverse. Never allocates.
    pub fn pixel_ray(&self, u: f64, v: f64) -> Option<Vector3<f64>> {
        let [xd, yd] = self.to_normalised(u, v);
        let d_opt = if self.lens.model == DistortionModel::Equidistant {
            // Build the direction from theta directly so rays near 90 deg
            // keep full precision.
            let rd = (xd * xd + yd * yd).sqrt();
            if rd < 1e-15 {
                Vector3::new(0.0, 0.0, 1.0)
            } else {
                let (theta, ok) = self.lens.solve_theta(rd);
                if !ok {
                    return None;
                }
                let s = theta.sin() / rd;
                Vector3::new(xd * s, yd * s, theta.cos())
            }
        } else {
            let (p, ok) = self.lens.undistort(xd, yd);
            if !ok {
                return None;
            }
            Vector3::new(p[0], p[1], 1.0).normalize()
        };
        Some(self.r_vo * d_opt)
    }

    /// Where the ray through pixel (u, v) meets the ground plane z = 0, as
    /// vehicle-frame [x, y] metres. None when the ray does not hit the
    /// ground in front of the camera (points at or above the horizon, or
    /// the camera is not above the ground). Never allocates.
    pub fn pixel_ray_ground(&self, u: f64, v: f64) -> Option<[f64; 2]> {
        let d = self.pixel_ray(u, v)?;
        ray_ground(self.translation, d)
    }
}

/// Intersection of the ray `origin + t * dir` (t > 0) with z = 0.
pub(crate) fn ray_ground(origin: Vector3<f64>, dir: Vector3<f64>) -> Option<[f64; 2]> {
    let downwards_from_above = dir.z < 0.0 && origin.z > 0.0;
    if !downwards_from_above {
        return None;
    }
    let t = -origin.z / dir.z;
    let hit = [origin.x + t * dir.x, origin.y + t * dir.y];
    (t > 0.0 && hit[0].is_finite() && hit[1].is_finite()).then_some(hit)
}

/// Horizontal distance (metres) of a vehicle-frame ground point from the
/// vehicle origin. Never allocates.
pub fn range(ground: [f64; 2]) -> f64 {
    ground[0].hypot(ground[1])
}

/// Bearing (radians) of a vehicle-frame ground point seen from the vehicle
/// origin: 0 straight ahead, positive to the left (ISO 8855 yaw sense).
/// Never allocates.
pub fn bearing(ground: [f64; 2]) -> f64 {
    ground[1].atan2(ground[0])
}

/// R_vehicle<-optical = Rz(yaw) Ry(pitch) Rx(roll) * R_body<-optical.
fn optical_to_vehicle(rpy_deg: [f64; 3]) -> Matrix3<f64> {
    let [r, p, y] = rpy_deg.map(f64::to_radians);
    let rx = Matrix3::new(1.0, 0.0, 0.0, 0.0, r.cos(), -r.sin(), 0.0, r.sin(), r.cos());
    let ry = Matrix3::new(p.cos(), 0.0, p.sin(), 0.0, 1.0, 0.0, -p.sin(), 0.0, p.cos());
    let rz = Matrix3::new(y.cos(), -y.sin(), 0.0, y.sin(), y.cos(), 0.0, 0.0, 0.0, 1.0);
    // Columns: optical x (right) = body -y, optical y (down) = body -z,
    // optical z (forward) = body x.
    let r_bo = Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0);
    rz * ry * rx * r_bo
}

fn check_data(m: &RawMatrix, field: &'static str, origin: &str) -> Result<(), CalibrationError> {
    let expected = m.rows.saturating_mul(m.cols);
    if m.data.len() != expected {
        return Err(CalibrationError::DataLength {
            path: origin.to_string(),
            field,
            len: m.data.len(),
            expected,
            rows: m.rows,
            cols: m.cols,
        });
    }
    check_finite(&m.data, field, origin)
}

fn check_finite(v: &[f64], field: &'static str, origin: &str) -> Result<(), CalibrationError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(CalibrationError::NotFinite {
            path: origin.to_string(),
            field,
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

fn check_matrix(
    m: &RawMatrix,
    field: &'static str,
    rows: usize,
    cols: usize,
    origin: &str,
) -> Result<Vec<f64>, CalibrationError> {
    check_data(m, field, origin)?;
    if m.rows != rows || m.cols != cols {
        return Err(CalibrationError::Shape {
            path: origin.to_string(),
            field,
            rows: m.rows,
            cols: m.cols,
            expected_rows: rows,
            expected_cols: cols,
        });
    }
    Ok(m.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(model: &str, coeffs: &str, rpy: &str) -> String {
        FRONT_CAMERA_YAML
            .replace(
                "distortion_model: plumb_bob",
                &format!("distortion_model: {model}"),
            )
            .replace(
                "  cols: 5\n  data: [-0.05, 0.01, 0.0, 0.0, 0.0]",
                &format!("  cols: {}\n  data: [{coeffs}]", coeffs.split(',').count()),
            )
            .replace(
                "rotation_rpy_deg: [0.0, 5.0, 0.0]",
                &format!("rotation_rpy_deg: [{rpy}]"),
            )
    }

    fn cal(model: &str, coeffs: &str, rpy: &str) -> Calibration {
        match Calibration::from_yaml_str(&yaml(model, coeffs, rpy), "test.yaml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn models() -> Vec<Calibration> {
        vec![
            Calibration::front_camera(),
            cal(
                "plumb_bob",
                "-0.3, 0.12, 0.001, -0.0015, -0.02",
                "1.0, 8.0, -3.0",
            ),
            cal(
                "rational_polynomial",
                "0.8, -0.2, 0.0008, 0.0005, 0.01, 1.1, -0.1, 0.02",
                "-0.5, 4.0, 2.0",
            ),
            cal(
                "equidistant",
                "0.05, -0.01, 0.003, -0.0005",
                "0.0, 12.0, 0.0",
            ),
        ]
    }

    #[test]
    fn shipped_front_camera_loads() {
        let c = Calibration::load(Path::new("calibration/front_camera.yaml")).unwrap();
        assert_eq!((c.width(), c.height()), (640, 480));
        assert_eq!(c.camera_name(), "front_camera");
        assert_eq!(c.distortion_model(), DistortionModel::PlumbBob);
        assert_eq!(c.distortion_coefficients(), &[-0.05, 0.01, 0.0, 0.0, 0.0]);
        assert_eq!(c.translation(), Vector3::new(1.5, 0.0, 1.3));
        assert_eq!(c, Calibration::front_camera().with_image_size(640, 480));
    }

    #[test]
    fn rotation_conventions() {
        // Level camera: the principal point looks along vehicle +x and the
        // image right (optical +x) is vehicle -y.
        let c = cal("plumb_bob", "0, 0, 0, 0, 0", "0, 0, 0");
        let r = c.optical_to_vehicle();
        assert!((r * Vector3::z() - Vector3::x()).norm() < 1e-12);
        assert!((r * Vector3::x() + Vector3::y()).norm() < 1e-12);
        assert!((r * Vector3::y() + Vector3::z()).norm() < 1e-12);
        // Positive pitch looks down; positive yaw looks left.
        let down =
            cal("plumb_bob", "0, 0, 0, 0, 0", "0, 10, 0").optical_to_vehicle() * Vector3::z();
        assert!(down.z < -0.17 && down.x > 0.98);
        let left =
            cal("plumb_bob", "0, 0, 0, 0, 0", "0, 0, 10").optical_to_vehicle() * Vector3::z();
        assert!(left.y > 0.17);
        // A point straight ahead at camera height lands on the principal point.
        let p = c.project(Vector3::new(20.0, 0.0, 1.3)).unwrap();
        assert!(
            (p[0] - 319.5).abs() < 1e-9 && (p[1] - 239.5).abs() < 1e-9,
            "{p:?}"
        );
        // A point to the left lands left of centre, a higher point higher.
        let l = c.project(Vector3::new(20.0, 1.0, 1.3)).unwrap();
        assert!(l[0] < 319.5);
        let h = c.project(Vector3::new(20.0, 0.0, 2.3)).unwrap();
        assert!(h[1] < 239.5);
    }

    #[test]
    fn project_undistort_round_trip() {
        for c in models() {
            for &(x, y, z) in &[
                (10.0, 0.0, 0.0),
                (5.0, 3.0, 0.5),
                (30.0, -8.0, 2.0),
                (4.0, -2.5, 0.0),
                (12.0, 4.0, 3.0),
                (6.0, 0.0, 1.3),
            ] {
                let pv = Vector3::new(x, y, z);
                let Some([u, v]) = c.project(pv) else {
                    continue;
                };
                if !(0.0..640.0).contains(&u) || !(0.0..480.0).contains(&v) {
                    continue;
                }
                let [xn, yn] = c.try_undistort(u, v).unwrap();
                let po = c.optical_to_vehicle().tr_mul(&(pv - c.translation()));
                let err = (xn - po.x / po.z).abs().max((yn - po.y / po.z).abs());
                assert!(err < 1e-10, "{:?} {pv:?}: err {err}", c.distortion_model());
                // And back to the same pixel.
                let ray = c.pixel_ray(u, v).unwrap();
                let back = c.project(c.translation() + ray * 7.0).unwrap();
                assert!((back[0] - u).abs() < 1e-7 && (back[1] - v).abs() < 1e-7);
            }
            // Every pixel of the image inverts.
            for v in (0..480).step_by(7) {
                for u in (0..640).step_by(7) {
                    let (u, v) = (u as f64, v as f64);
                    let n = c.try_undistort(u, v).unwrap();
                    let p = c.project(
                        c.translation() + c.optical_to_vehicle() * Vector3::new(n[0], n[1], 1.0),
                    );
                    let p = p.unwrap();
                    assert!(
                        (p[0] - u).abs() < 1e-7 && (p[1] - v).abs() < 1e-7,
                        "{u},{v} -> {p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ground_intersection_returns_projected_point() {
        for c in models() {
            for &(x, y) in &[
                (4.0, 0.0),
                (10.0, 2.0),
                (25.0, -6.0),
                (40.0, 0.5),
                (7.0, -3.0),
            ] {
                let Some([u, v]) = c.project(Vector3::new(x, y, 0.0)) else {
                    continue;
                };
                let g = c.pixel_ray_ground(u, v).unwrap();
                assert!(
                    (g[0] - x).abs() < 1e-6 && (g[1] - y).abs() < 1e-6,
                    "{g:?} vs {x},{y}"
                );
            }
        }
        // Straight ahead from the front camera.
        let c = Calibration::front_camera();
        let [u, v] = c.project(Vector3::new(11.5, 0.0, 0.0)).unwrap();
        let g = c.pixel_ray_ground(u, v).unwrap();
        assert!((range(g) - 11.5).abs() < 1e-9 && bearing(g).abs() < 1e-9);
        assert!((bearing([1.0, 1.0]) - std::f64::consts::FRAC_PI_4).abs() < 1e-12);
    }

    #[test]
    fn rays_above_horizon_or_camera_looking_up_miss_the_ground() {
        let c = Calibration::front_camera();
        // Top rows look above the horizon (pitch 5 deg, vfov ~51 deg).
        assert!(c.pixel_ray_ground(320.0, 0.0).is_none());
        assert!(c.pixel_ray_ground(320.0, 479.0).is_some());
        let up = cal("plumb_bob", "-0.05, 0.01, 0, 0, 0", "0, -40, 0");
        for v in (0..480).step_by(10) {
            for u in (0..640).step_by(10) {
                assert!(up.pixel_ray_ground(u as f64, v as f64).is_none());
            }
        }
        // Behind the camera: no projection.
        assert!(c.project(Vector3::new(0.0, 0.0, 0.0)).is_none());
        assert!(c.project(Vector3::new(1.5, 0.0, 1.3)).is_none());
    }

    #[test]
    fn undistort_converges_tightly_on_strong_distortion() {
        let c = cal("plumb_bob", "-0.3, 0.12, 0.001, -0.0015, -0.02", "0, 0, 0");
        let [xn, yn] = c.undistort(5.0, 7.0);
        let p = c
            .project(c.translation() + c.optical_to_vehicle() * Vector3::new(xn, yn, 1.0))
            .unwrap();
        assert!((p[0] - 5.0).abs() < 1e-8 && (p[1] - 7.0).abs() < 1e-8);
    }

    #[test]
    fn fold_back_region_is_rejected() {
        // Strong barrel distortion folds back at r = 1/sqrt(3 * 0.4) ~ 0.91.
        let c = cal("plumb_bob", "-0.4, 0, 0, 0, 0", "0, 0, 0");
        assert!(c.project(Vector3::new(10.0, 0.0, 1.3)).is_some());
        assert!(c.project(Vector3::new(10.0, -10.0, 1.3)).is_none());
        // A pixel beyond the fold radius has no inverse.
        assert!(c.try_undistort(319.5 + 500.0 * 0.7, 239.5).is_none());
        assert!(c.pixel_ray(319.5 + 500.0 * 0.7, 239.5).is_none());
        assert!(c
            .undistort(319.5 + 500.0 * 0.7, 239.5)
            .iter()
            .all(|x| x.is_finite()));
    }

    fn err_of(text: &str) -> String {
        match Calibration::from_yaml_str(text, "calibration/front.yaml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validation_errors_name_file_field_and_value() {
        let good = FRONT_CAMERA_YAML;
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]", "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0]"),
                "calibration/front.yaml: camera_matrix.data has 8 values, expected 9 (rows 3 x cols 3)",
            ),
            (
                good.replace("data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]", "data: [-500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]"),
                "calibration/front.yaml: camera_matrix fx (data[0]) is -500, must be > 0",
            ),
            (
                good.replace("data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]", "data: [500.0, 0.0, 319.5, 0.0, 0.0, 239.5, 0.0, 0.0, 1.0]"),
                "calibration/front.yaml: camera_matrix fy (data[4]) is 0, must be > 0",
            ),
            (
                good.replace("data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]", "data: [500.0, 0.0, .nan, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]"),
                "calibration/front.yaml: camera_matrix[2] is NaN, expected a finite number",
            ),
            (
                good.replace("data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]", "data: [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 2.0]"),
                "calibration/front.yaml: camera_matrix: must be [fx s cx; 0 fy cy; 0 0 1], got rows 2-3 [0 500 239.5; 0 0 2]",
            ),
            (
                good.replacen("  rows: 3\n  cols: 3\n  data: [500.0", "  rows: 1\n  cols: 9\n  data: [500.0", 1),
                "calibration/front.yaml: camera_matrix is 1x9, expected 3x3",
            ),
            (
                good.replace("  rows: 3\n  cols: 4\n", "  rows: 4\n  cols: 3\n"),
                "calibration/front.yaml: projection_matrix is 4x3, expected 3x4",
            ),
            (
                good.replace(
                    "data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]",
                    "data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]",
                ),
                "calibration/front.yaml: rectification_matrix.data has 10 values, expected 9 (rows 3 x cols 3)",
            ),
            (
                good.replace(
                    "data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]",
                    "data: [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]",
                ),
                "calibration/front.yaml: rectification_matrix: is not a rotation (|R R^T - I| = 3.000e0, det = 2.0000)",
            ),
            (
                good.replace("distortion_model: plumb_bob", "distortion_model: fisheye"),
                "calibration/front.yaml: distortion_model 'fisheye' is not supported (plumb_bob, rational_polynomial, equidistant)",
            ),
            (
                good.replace("distortion_model: plumb_bob", "distortion_model: equidistant"),
                "calibration/front.yaml: distortion_coefficients has 5 values, but equidistant takes 4",
            ),
            (
                good.replace("  cols: 5\n  data: [-0.05, 0.01, 0.0, 0.0, 0.0]", "  cols: 5\n  data: [-0.05, 0.01, 0.0, 0.0]"),
                "calibration/front.yaml: distortion_coefficients.data has 4 values, expected 5 (rows 1 x cols 5)",
            ),
            (
                good.replace("  cols: 5\n  data: [-0.05, 0.01, 0.0, 0.0, 0.0]", "  cols: 5\n  data: [-0.05, .inf, 0.0, 0.0, 0.0]"),
                "calibration/front.yaml: distortion_coefficients[1] is inf, expected a finite number",
            ),
            (
                good.replace("image_width: 640", "image_width: 0"),
                "calibration/front.yaml: image_width is 0, must be > 0",
            ),
            (
                good.replace("image_height: 480", "image_height: -480"),
                "calibration/front.yaml: image_height is -480, must be > 0",
            ),
            (
                good.replace("translation: [1.5, 0.0, 1.3]", "translation: [1.5, 0.0]"),
                "calibration/front.yaml: extrinsics.translation: has 2 values, expected 3",
            ),
            (
                good.replace("rotation_rpy_deg: [0.0, 5.0, 0.0]", "rotation_rpy_deg: [0.0, .nan, 0.0]"),
                "calibration/front.yaml: extrinsics.rotation_rpy_deg[1] is NaN, expected a finite number",
            ),
        ];
        for (text, want) in cases {
            assert_ne!(text, good, "test edit did not apply for: {want}");
            assert_eq!(err_of(&text), want);
        }
        // Missing field / YAML errors come from serde with the field name.
        let e = err_of(&good.replace("distortion_model: plumb_bob\n", ""));
        assert!(
            e.starts_with("calibration/front.yaml: ") && e.contains("distortion_model"),
            "{e}"
        );
        let e = err_of("image_width: [");
        assert!(e.starts_with("calibration/front.yaml: "), "{e}");
        let e = Calibration::load(Path::new("/nonexistent/cam.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/cam.yaml: cannot read: "), "{e}");
    }

    #[test]
    fn scaled_calibration_keeps_geometry() {
        let c = Calibration::front_camera();
        let s = c.with_image_size(320, 240);
        let p = Vector3::new(12.0, 1.0, 0.0);
        let a = c.project(p).unwrap();
        let b = s.project(p).unwrap();
        assert!((a[0] * 0.5 - b[0]).abs() < 1e-9 && (a[1] * 0.5 - b[1]).abs() < 1e-9);
    }
}
