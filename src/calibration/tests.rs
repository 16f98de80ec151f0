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
    // The built-in one is that file, under its own name.
    let builtin = Calibration::load(Path::new(crate::builtin::CALIBRATION_PATH)).unwrap();
    assert_eq!(builtin.source(), crate::builtin::CALIBRATION_PATH);
    assert_eq!(
        c,
        Calibration::from_yaml_str(FRONT_CAMERA_YAML, "calibration/front_camera.yaml").unwrap()
    );
    let e = Calibration::load(Path::new("builtin:rear"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("builtin:rear") && e.contains("builtin:front_camera"),
        "{e}"
    );
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
    let down = cal("plumb_bob", "0, 0, 0, 0, 0", "0, 10, 0").optical_to_vehicle() * Vector3::z();
    assert!(down.z < -0.17 && down.x > 0.98);
    let left = cal("plumb_bob", "0, 0, 0, 0, 0", "0, 0, 10").optical_to_vehicle() * Vector3::z();
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
    assert!(e.starts_with("/nonexistent/cam.yaml: cannot open: "), "{e}");
}

/// A calibration with a rectification rotation and P != K.
fn rectifying(model: &str, coeffs: &str) -> Calibration {
    let text = yaml(model, coeffs, "0.5, 6.0, -1.0")
        .replace(
            "data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]",
            "data: [0.9998, -0.0050, 0.0200, 0.0051, 0.99995, -0.0050, -0.0200, 0.0051, 0.9998]",
        )
        .replace(
            "data: [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]",
            "data: [420.0, 0.0, 325.0, 0.0, 0.0, 410.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]",
        );
    Calibration::from_yaml_str(&text, "rect.yaml").unwrap()
}

#[test]
fn rectified_and_raw_pixels_agree() {
    for c in [
        rectifying("plumb_bob", "-0.3, 0.12, 0.001, -0.0015, -0.02"),
        rectifying("equidistant", "0.05, -0.01, 0.003, -0.0005"),
        models()[2].clone(),
    ] {
        assert!(!c.is_distortion_free());
        for v in (0..480).step_by(23) {
            for u in (0..640).step_by(29) {
                let (u, v) = (u as f64, v as f64);
                let Some([ur, vr]) = c.source_to_rectified(u, v) else {
                    panic!("{u},{v}")
                };
                let [ub, vb] = c.rectified_to_source(ur, vr).unwrap();
                assert!((ub - u).abs() < 1e-7 && (vb - v).abs() < 1e-7);
                // Same ray, same ground point.
                let a = c.pixel_ray_ground(u, v);
                let b = c.rectified_pixel_ray_ground(ur, vr);
                match (a, b) {
                    (Some(a), Some(b)) => {
                        assert!((a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6)
                    }
                    (None, None) => {}
                    other => panic!("{u},{v}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn distortion_free_means_rectified_is_raw() {
    let flat = cal("plumb_bob", "0, 0, 0, 0, 0", "0, 5, 0");
    assert!(flat.is_distortion_free());
    assert!(!Calibration::front_camera().is_distortion_free());
    let moved = Calibration::from_yaml_str(
        &FRONT_CAMERA_YAML
            .replace("[-0.05, 0.01, 0.0, 0.0, 0.0]", "[0.0, 0.0, 0.0, 0.0, 0.0]")
            .replace(
                "500.0, 0.0, 319.5, 0.0, 0.0, 500.0",
                "480.0, 0.0, 319.5, 0.0, 0.0, 500.0",
            ),
        "p.yaml",
    )
    .unwrap();
    assert!(!moved.is_distortion_free());
    let b = [100.0, 200.0, 180.5, 330.0];
    let back = flat.rectified_box_to_source(b);
    assert!(
        b.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-3),
        "{back:?}"
    );
    assert_eq!(
        flat.rectified_pixel_ray_ground(320.0, 400.0),
        flat.pixel_ray_ground(320.0, 400.0)
    );
}

#[test]
fn rectified_box_maps_to_the_raw_box_around_the_object() {
    let c = rectifying("plumb_bob", "-0.3, 0.12, 0.001, -0.0015, -0.02");
    // A raw-image rectangle near the corner, seen in the rectified
    // image (where it curves, so its bounding box has empty corners),
    // and back: the sides land within a few pixels of the original.
    let raw = [40.0f64, 30.0, 200.0, 150.0];
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for i in 0..=64 {
        let t = i as f64 / 64.0;
        let (x, y) = (
            raw[0] + t * (raw[2] - raw[0]),
            raw[1] + t * (raw[3] - raw[1]),
        );
        for (u, v) in [(x, raw[1]), (x, raw[3]), (raw[0], y), (raw[2], y)] {
            let [r0, r1] = c.source_to_rectified(u - 0.5, v - 0.5).unwrap();
            lo = [lo[0].min(r0 + 0.5), lo[1].min(r1 + 0.5)];
            hi = [hi[0].max(r0 + 0.5), hi[1].max(r1 + 0.5)];
        }
    }
    let rect = [lo[0] as f32, lo[1] as f32, hi[0] as f32, hi[1] as f32];
    let back = c.rectified_box_to_source(rect);
    for (got, want) in back.iter().zip(raw) {
        assert!((f64::from(*got) - want).abs() < 12.0, "{back:?}");
    }
    // Clipped to the image.
    let whole = c.rectified_box_to_source([-50.0, -50.0, 700.0, 600.0]);
    assert!(
        whole.iter().all(|&x| (0.0..=640.0).contains(&x)),
        "{whole:?}"
    );
}

#[test]
fn pixel_arguments_and_report_lines() {
    assert_eq!(parse_pixel("320,400"), Ok([320.0, 400.0]));
    assert_eq!(parse_pixel(" -3.5 , 1e2 "), Ok([-3.5, 100.0]));
    for bad in ["", "320", "320,", ",4", "a,b", "1,2,3", "inf,2", "NaN,1"] {
        let e = parse_pixel(bad).unwrap_err();
        assert_eq!(
            e,
            format!("--pixel '{bad}': expected U,V (two finite numbers, e.g. 320,400)")
        );
    }
    let c = Calibration::front_camera();
    let g = c.pixel_geometry(320.0, 400.0);
    let j: serde_json::Value = serde_json::from_str(&g.to_json()).unwrap();
    assert_eq!(j["pixel"], serde_json::json!([320.0, 400.0]));
    assert!(j["ground"][0].as_f64().unwrap() > 4.0);
    let sky = c.pixel_geometry(320.0, 0.0);
    let j: serde_json::Value = serde_json::from_str(&sky.to_json()).unwrap();
    assert!(j["ground"].is_null() && j["range_m"].is_null() && j["bearing_deg"].is_null());
    assert!(j["undistorted"][1].as_f64().unwrap() < 0.0);
    assert!(sky.to_text().contains("ground none"), "{}", sky.to_text());
}

#[test]
fn image_size_check_names_both_sizes() {
    let c = Calibration::front_camera();
    assert!(c.check_image_size(640, 480).is_ok());
    assert_eq!(
            c.check_image_size(1280, 720).unwrap_err().to_string(),
            "builtin:front_camera: image_width x image_height: 640x480 does not match the source's 1280x720"
        );
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
