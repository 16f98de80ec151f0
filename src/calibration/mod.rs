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
    #[error("{path}: {msg}")]
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
    /// A finite value without physical meaning (a focal length of 1e-9
    /// pixels, a roll of 1e308 degrees).
    #[error("{path}: {field} = {value}: expected {expected}")]
    OutOfRange {
        path: String,
        field: String,
        /// As [`crate::input::num`] writes it.
        value: String,
        expected: String,
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
    /// Its inverse (the file's R is orthonormal only to 1e-3).
    rectification_inv: Matrix3<f64>,
    projection: Matrix3x4<f64>,
    translation: Vector3<f64>,
    rpy_deg: [f64; 3],
    /// Optical frame -> vehicle frame rotation.
    r_vo: Matrix3<f64>,
}

/// The synthetic front camera (`calibration/front_camera.yaml`, built in).
const FRONT_CAMERA_YAML: &str = crate::builtin::CALIBRATION;

impl Calibration {
    /// Read and check a calibration file, or `builtin:front_camera` (the
    /// one in the binary). Boot only.
    pub fn load(path: &Path) -> Result<Calibration, CalibrationError> {
        let name = path.display().to_string();
        if crate::builtin::is_builtin(path) {
            if crate::builtin::is_calibration(path) {
                return Ok(Calibration::front_camera());
            }
            return Err(CalibrationError::Io {
                path: name,
                msg: format!(
                    "no such built-in calibration (the built-in one is {})",
                    crate::builtin::CALIBRATION_PATH
                ),
            });
        }
        let text = crate::input::read_text(path).map_err(|e| CalibrationError::Io {
            path: name.clone(),
            msg: e.to_string(),
        })?;
        Calibration::from_yaml_str(&text, &name)
    }

    /// Parse and check calibration YAML; `origin` names it in errors.
    /// Text over [`crate::input::MAX_TEXT_BYTES`] or nested deeper than
    /// [`crate::input::MAX_NESTING`] is refused before the YAML parser
    /// sees it.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Calibration, CalibrationError> {
        let io = |msg: String| CalibrationError::Io {
            path: origin.to_string(),
            msg,
        };
        crate::input::check_text(text).map_err(|e| io(e.to_string()))?;
        let raw: RawCalibration =
            serde_norway::from_str(text).map_err(|e| CalibrationError::Parse {
                path: origin.to_string(),
                msg: crate::input::clip(&e.to_string()),
            })?;
        Calibration::from_raw(raw, origin)
    }

    /// The default front camera (`calibration/front_camera.yaml`, built in).
    pub fn front_camera() -> Calibration {
        match Calibration::from_yaml_str(FRONT_CAMERA_YAML, crate::builtin::CALIBRATION_PATH) {
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
            if value <= 0 {
                return Err(CalibrationError::NotPositive {
                    path: path(),
                    field,
                    value: value as f64,
                });
            }
            if value > MAX_IMAGE_DIM as i64 {
                return Err(CalibrationError::OutOfRange {
                    path: path(),
                    field: field.to_string(),
                    value: value.to_string(),
                    expected: format!("1..={MAX_IMAGE_DIM} (the largest frame a source delivers)"),
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

        check_physical(
            &PhysicalCheck {
                width: raw.image_width as f64,
                height: raw.image_height as f64,
                k: &k,
                proj: &proj,
                dist: &dist.data,
                translation: &ext.translation,
                rpy_deg: &ext.rotation_rpy_deg,
            },
            origin,
        )?;

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
            // det > 0 was checked above.
            rectification_inv: rect_m.try_inverse().unwrap_or_else(Matrix3::identity),
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

    /// The calibration must describe frames of the size the source
    /// delivers: one error naming the file, the fields and both sizes.
    pub fn check_image_size(&self, width: usize, height: usize) -> Result<(), CalibrationError> {
        if (self.width as usize, self.height as usize) == (width, height) {
            return Ok(());
        }
        Err(CalibrationError::Invalid {
            path: self.source.clone(),
            field: "image_width x image_height",
            msg: format!(
                "{}x{} does not match the source's {width}x{height}",
                self.width, self.height
            ),
        })
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

    /// Undistorted point and ground position of raw pixel (u, v), for
    /// `perceptd geometry`. Never allocates.
    pub fn pixel_geometry(&self, u: f64, v: f64) -> PixelGeometry {
        PixelGeometry {
            pixel: [u, v],
            undistorted: self.try_undistort(u, v),
            ground: self.pixel_ray_ground(u, v),
        }
    }

    /// True when the rectified image is the raw image: no distortion
    /// coefficient is set, the rectification is the identity and the
    /// projection matrix is `[K | 0]`. Then undistortion is a no-op and no
    /// remap table is built.
    pub fn is_distortion_free(&self) -> bool {
        let p = &self.projection;
        self.lens.k.iter().all(|&c| c == 0.0)
            && self.rectification == Matrix3::identity()
            && p.fixed_view::<3, 3>(0, 0) == self.k
            && p.column(3).iter().all(|&c| c == 0.0)
    }

    /// Raw-camera optical direction (not normalised) seen at pixel (u, v)
    /// of the rectified image: `R^-1 P'^-1 (u, v, 1)` with P' the left 3x3
    /// of the projection matrix (its translation column only matters for
    /// stereo and is ignored); R^-1 rather than R^T, as OpenCV inverts
    /// `P' R`.
    fn rectified_direction(&self, u: f64, v: f64) -> Vector3<f64> {
        let p = &self.projection;
        // P' = [fx' s' cx'; 0 fy' cy'; 0 0 1] (checked at load: fx', fy' > 0).
        let y = (v - p[(1, 2)]) / p[(1, 1)];
        let x = (u - p[(0, 2)] - p[(0, 1)] * y) / p[(0, 0)];
        self.rectification_inv * Vector3::new(x, y, 1.0)
    }

    /// The raw (distorted) pixel seen at pixel (u, v) of the rectified
    /// image, whose camera matrix is the projection matrix: what OpenCV's
    /// `initUndistortRectifyMap` (`fisheye::` for equidistant) computes.
    /// None when that direction is behind the raw camera or outside the lens
    /// model's valid region. Never allocates.
    pub fn rectified_to_source(&self, u: f64, v: f64) -> Option<[f64; 2]> {
        let d = self.rectified_direction(u, v);
        if d.z <= 0.0 || !d.z.is_finite() {
            return None;
        }
        let ([xd, yd], _) = self.lens.distort(d.x / d.z, d.y / d.z)?;
        Some(self.to_pixel(xd, yd))
    }

    /// The rectified-image pixel of raw pixel (u, v): undistort, rotate by
    /// R, project with the projection matrix. None where the pixel has no
    /// valid inverse or lands behind the rectified camera. Never allocates.
    pub fn source_to_rectified(&self, u: f64, v: f64) -> Option<[f64; 2]> {
        let [x, y] = self.try_undistort(u, v)?;
        let d = self.rectification * Vector3::new(x, y, 1.0);
        if d.z <= 0.0 {
            return None;
        }
        let p = &self.projection;
        let (x, y) = (d.x / d.z, d.y / d.z);
        Some([
            p[(0, 0)] * x + p[(0, 1)] * y + p[(0, 2)],
            p[(1, 1)] * y + p[(1, 2)],
        ])
    }

    /// A box `[x1, y1, x2, y2]` found in the rectified image mapped back to
    /// raw (distorted) pixels. Each side moves with its midpoint: the left
    /// edge to the raw x of the left edge's midpoint, the bottom to the raw
    /// y of the bottom edge's midpoint, and so on. (The object touches each
    /// side of its box somewhere, most often near the middle; the bounding
    /// rectangle of the whole mapped outline would also cover the box's
    /// empty corners and grows by ~10 px near the image corners under
    /// strong distortion.) Clipped to the image; a side whose midpoint does
    /// not map stays where it is. Boxes use the detector convention (the
    /// image spans `[0, width] x [0, height]`, pixel centres at +0.5).
    /// Never allocates.
    pub fn rectified_box_to_source(&self, b: [f32; 4]) -> [f32; 4] {
        let [x1, y1, x2, y2] = b.map(f64::from);
        let (cx, cy) = (0.5 * (x1 + x2), 0.5 * (y1 + y2));
        let map = |u: f64, v: f64, axis: usize, keep: f64| {
            self.rectified_to_source(u - 0.5, v - 0.5)
                .map_or(keep, |p| p[axis] + 0.5)
        };
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let clip = |x: f64, hi: f64| x.max(0.0).min(hi) as f32;
        let l = map(x1, cy, 0, x1);
        let r = map(x2, cy, 0, x2);
        let t = map(cx, y1, 1, y1);
        let bt = map(cx, y2, 1, y2);
        [
            clip(l.min(r), w),
            clip(t.min(bt), h),
            clip(l.max(r), w),
            clip(t.max(bt), h),
        ]
    }

    /// Where the ray through pixel (u, v) of the rectified image meets the
    /// ground plane z = 0 (vehicle-frame [x, y] metres); None as for
    /// [`Calibration::pixel_ray_ground`]. Never allocates.
    pub fn rectified_pixel_ray_ground(&self, u: f64, v: f64) -> Option<[f64; 2]> {
        let d = self.rectified_direction(u, v);
        if !(d.x.is_finite() && d.y.is_finite() && d.z.is_finite()) {
            return None;
        }
        ray_ground(self.translation, self.r_vo * d.normalize())
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

/// What `perceptd geometry` reports for one raw pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelGeometry {
    /// The pixel as given (OpenCV convention: integers are pixel centres).
    pub pixel: [f64; 2],
    /// Undistorted normalised image point (X/Z, Y/Z in the raw optical
    /// frame); None where the lens model has no inverse.
    pub undistorted: Option<[f64; 2]>,
    /// Ground position (vehicle frame, metres); None when the ray misses
    /// the ground ahead.
    pub ground: Option<[f64; 2]>,
}

impl PixelGeometry {
    /// Range (m) of the ground position from the vehicle origin.
    pub fn range_m(&self) -> Option<f64> {
        self.ground.map(range)
    }

    /// Bearing (degrees, positive to the left) of the ground position.
    pub fn bearing_deg(&self) -> Option<f64> {
        self.ground.map(|g| bearing(g).to_degrees())
    }

    /// One JSON object (no newline): `pixel`, `undistorted`, `ground`,
    /// `range_m`, `bearing_deg`, absent values as `null`. Full f64
    /// precision (shortest round-trip form), so the numbers can be checked
    /// against other tools. Allocates (command line only).
    pub fn to_json(&self) -> String {
        fn pair(p: Option<[f64; 2]>) -> String {
            p.map_or("null".into(), |[a, b]| format!("[{a:?},{b:?}]"))
        }
        fn num(x: Option<f64>) -> String {
            x.map_or("null".into(), |x| format!("{x:?}"))
        }
        format!(
            "{{\"pixel\":{},\"undistorted\":{},\"ground\":{},\"range_m\":{},\"bearing_deg\":{}}}",
            pair(Some(self.pixel)),
            pair(self.undistorted),
            pair(self.ground),
            num(self.range_m()),
            num(self.bearing_deg())
        )
    }

    /// One human-readable line. Allocates (command line only).
    pub fn to_text(&self) -> String {
        let [u, v] = self.pixel;
        let und = self
            .undistorted
            .map_or("none (outside the lens model)".into(), |[x, y]| {
                format!("({x:.6}, {y:.6})")
            });
        let ground = match (self.ground, self.range_m(), self.bearing_deg()) {
            (Some([x, y]), Some(r), Some(b)) => {
                format!("x {x:.3} m, y {y:.3} m (range {r:.3} m, bearing {b:.2} deg)")
            }
            _ => "none (the ray does not hit the ground ahead)".into(),
        };
        format!("pixel ({u}, {v}): undistorted {und}; ground {ground}")
    }
}

/// Parse a `U,V` pixel argument (two finite numbers). The error is one
/// line naming the value.
pub fn parse_pixel(s: &str) -> Result<[f64; 2], String> {
    let bad = || format!("--pixel '{s}': expected U,V (two finite numbers, e.g. 320,400)");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let a: f64 = a.trim().parse().map_err(|_| bad())?;
    let b: f64 = b.trim().parse().map_err(|_| bad())?;
    if !(a.is_finite() && b.is_finite()) {
        return Err(bad());
    }
    Ok([a, b])
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

/// Largest image side a calibration may describe: the sources' limit.
const MAX_IMAGE_DIM: usize = crate::source::y4m::MAX_DIM;

/// Physical limits of the values a camera_info file holds (see README,
/// "Calibration"): a focal length from 1/100 to 100 times the image's
/// larger side (fields of view from about 179 degrees to 0.6 degree), the
/// principal point no further outside the image than the image's size,
/// skew at most the focal length, distortion coefficients of magnitude at
/// most 1000 (real lenses: below 100), the camera within 1 km of the
/// vehicle origin, angles within one turn.
pub const MAX_FOCAL_RATIO: f64 = 100.0;
pub const MAX_DISTORTION: f64 = 1000.0;
pub const MAX_TRANSLATION_M: f64 = 1000.0;
pub const MAX_ANGLE_DEG: f64 = 360.0;

struct PhysicalCheck<'a> {
    width: f64,
    height: f64,
    k: &'a [f64],
    proj: &'a [f64],
    dist: &'a [f64],
    translation: &'a [f64],
    rpy_deg: &'a [f64],
}

fn check_physical(c: &PhysicalCheck, origin: &str) -> Result<(), CalibrationError> {
    let out = |field: String, value: f64, expected: String| {
        Err(CalibrationError::OutOfRange {
            path: origin.to_string(),
            field,
            value: crate::input::num(value),
            expected,
        })
    };
    let side = c.width.max(c.height);
    let (f_lo, f_hi) = (side / MAX_FOCAL_RATIO, side * MAX_FOCAL_RATIO);
    for (m, name, fx, fy, cx, cy, s) in [
        (c.k, "camera_matrix", 0, 4, 2, 5, 1),
        (c.proj, "projection_matrix", 0, 5, 2, 6, 1),
    ] {
        for (i, what) in [(fx, "fx"), (fy, "fy")] {
            if !(f_lo..=f_hi).contains(&m[i]) {
                return out(
                    format!("{name}.data[{i}] ({what})"),
                    m[i],
                    format!(
                        "a focal length of {f_lo}..={f_hi} pixels (1/{MAX_FOCAL_RATIO} to {MAX_FOCAL_RATIO} times the image's {side}-pixel side)"
                    ),
                );
            }
        }
        for (i, what, size) in [(cx, "cx", c.width), (cy, "cy", c.height)] {
            if !(-size..=2.0 * size).contains(&m[i]) {
                return out(
                    format!("{name}.data[{i}] ({what})"),
                    m[i],
                    format!(
                        "-{size}..={} (the principal point at most the image's size outside it)",
                        2.0 * size
                    ),
                );
            }
        }
        if m[s].abs() > m[fx] {
            return out(
                format!("{name}.data[{s}] (skew)"),
                m[s],
                format!("at most fx = {} in magnitude", m[fx]),
            );
        }
    }
    for (i, tx) in [(3, c.proj[3]), (7, c.proj[7]), (11, c.proj[11])] {
        let lim = MAX_TRANSLATION_M * c.proj[0];
        if tx.abs() > lim {
            return out(
                format!("projection_matrix.data[{i}]"),
                tx,
                format!("at most fx' x {MAX_TRANSLATION_M} m = {lim} in magnitude"),
            );
        }
    }
    for (i, &d) in c.dist.iter().enumerate() {
        if d.abs() > MAX_DISTORTION {
            return out(
                format!("distortion_coefficients.data[{i}]"),
                d,
                format!("-{MAX_DISTORTION}..={MAX_DISTORTION}"),
            );
        }
    }
    for (i, &t) in c.translation.iter().enumerate() {
        if t.abs() > MAX_TRANSLATION_M {
            return out(
                format!("extrinsics.translation[{i}]"),
                t,
                format!("-{MAX_TRANSLATION_M}..={MAX_TRANSLATION_M} metres"),
            );
        }
    }
    for (i, &a) in c.rpy_deg.iter().enumerate() {
        if a.abs() > MAX_ANGLE_DEG {
            return out(
                format!(
                    "extrinsics.rotation_rpy_deg[{i}] ({})",
                    ["roll", "pitch", "yaw"][i]
                ),
                a,
                format!("-{MAX_ANGLE_DEG}..={MAX_ANGLE_DEG} degrees"),
            );
        }
    }
    Ok(())
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
mod tests;
