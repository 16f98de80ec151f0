//! `perceptd bench-tracking`: the tracker's own cost per frame on a
//! generated scene of N objects moving on the ground in front of the
//! default camera (boxes from a pinhole projection with pixel noise,
//! scores spread over 0.3..0.95, 5 % of detections missed), so the cost
//! can be set against a peer fed the same detections (`--dump`).
//!
//! A tool, not the frame path: generating the scene allocates; the timed
//! loop calls only [`Tracker::run`].

use super::{Geometry, Tracker, TrackingConfig};
use crate::frame::Detection;
use std::fmt::Write as _;
use std::time::Instant;

/// The default front camera's geometry (fx, height), as the tracker gets
/// it from the calibration.
const GEO: Geometry = Geometry {
    focal_px: 500.0,
    camera_height_m: 1.3,
};

/// Timing of one run.
#[derive(Debug, Clone, Copy)]
pub struct BenchReport {
    pub objects: usize,
    pub frames: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    /// Confirmed tracks reported on the last frame.
    pub tracked_last: usize,
}

impl BenchReport {
    pub fn json(&self) -> String {
        format!(
            "{{\"objects\":{},\"frames\":{},\"median_us\":{:.3},\"p99_us\":{:.3},\"mean_us\":{:.3},\"tracked_last\":{}}}",
            self.objects, self.frames, self.median_us, self.p99_us, self.mean_us, self.tracked_last
        )
    }
}

/// The generated detections of `frames` frames with `objects` objects at
/// 30 fps (deterministic).
pub fn scene(objects: usize, frames: usize) -> Vec<Vec<Detection>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // Objects on a grid of lanes and ranges, each with its own velocity.
    let lanes = objects.div_ceil(10).max(1);
    let objs: Vec<[f64; 4]> = (0..objects)
        .map(|i| {
            let lane = i % lanes;
            let row = i / lanes;
            let y = (lane as f64 - (lanes as f64 - 1.0) * 0.5) * 3.0;
            let x = 6.0 + row as f64 * 5.0 + rnd() * 2.0;
            [x, y, rnd() * 4.0 - 2.0, rnd() * 0.6 - 0.3]
        })
        .collect();
    (0..frames)
        .map(|k| {
            let t = k as f64 / 30.0;
            let mut dets = Vec::with_capacity(objects);
            for (i, o) in objs.iter().enumerate() {
                if rnd() < 0.05 {
                    continue;
                }
                // Wrap along x so the scene stays in front of the camera.
                let x = 5.0 + (o[0] + o[2] * t - 5.0).rem_euclid(55.0);
                let y = o[1] + o[3] * t;
                let u = 320.0 - GEO.focal_px * y / x + (rnd() - 0.5) * 2.0;
                let v = 240.0 + GEO.focal_px * GEO.camera_height_m / x + (rnd() - 0.5) * 2.0;
                let (w, h) = (GEO.focal_px * 1.8 / x, GEO.focal_px * 1.5 / x);
                let xg = GEO.focal_px * GEO.camera_height_m / (v - 240.0);
                let yg = (320.0 - u) * xg / GEO.focal_px;
                dets.push(Detection {
                    class_id: (i % 3) as u32,
                    score: (0.3 + 0.65 * rnd()) as f32,
                    bbox: [
                        (u - w / 2.0) as f32,
                        (v - h) as f32,
                        (u + w / 2.0) as f32,
                        v as f32,
                    ],
                    ground: Some([xg as f32, yg as f32]),
                    track: None,
                });
            }
            dets
        })
        .collect()
}

/// The scene as JSON lines, one array of `[x1, y1, x2, y2, score, class]`
/// per frame.
pub fn dump(scene: &[Vec<Detection>]) -> String {
    let mut s = String::new();
    for dets in scene {
        s.push('[');
        for (i, d) in dets.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let [a, b, c, e] = d.bbox;
            let _ = write!(s, "[{a},{b},{c},{e},{},{}]", d.score, d.class_id);
        }
        s.push_str("]\n");
    }
    s
}

/// Runs the tracker (default config, calibrated) over `scene` and times
/// each frame; the first 10 frames are warm-up and not counted.
pub fn run(scene: &[Vec<Detection>], objects: usize) -> BenchReport {
    let cfg = TrackingConfig {
        max_tracks: (objects * 2).clamp(16, 1024),
        ..TrackingConfig::default()
    };
    let max_dets = scene.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut tracker = match Tracker::new(&cfg, max_dets, 3, Some(GEO), 640) {
        Ok(t) => t,
        Err(e) => unreachable!("bench tracker config is valid: {e}"),
    };
    let mut frame = Vec::with_capacity(max_dets);
    let mut times = Vec::with_capacity(scene.len());
    let mut tracked_last = 0;
    for (k, dets) in scene.iter().enumerate() {
        frame.clear();
        frame.extend_from_slice(dets);
        let t0 = Instant::now();
        tracker.run(k as u64 * 33_333_333, &mut frame);
        let dt = t0.elapsed().as_secs_f64() * 1e6;
        if k >= 10 {
            times.push(dt);
        }
        tracked_last = frame.iter().filter(|d| d.track.is_some()).count();
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    BenchReport {
        objects,
        frames: times.len(),
        median_us: pick(0.5),
        p99_us: pick(0.99),
        mean_us: times.iter().sum::<f64>() / times.len().max(1) as f64,
        tracked_last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_scene_is_tracked() {
        let s = scene(10, 60);
        assert_eq!(s.len(), 60);
        let r = run(&s, 10);
        assert_eq!(r.frames, 50);
        // Most of the ~9.5 detections per frame are on confirmed tracks.
        assert!(r.tracked_last >= 7, "{r:?}");
        assert!(dump(&s[..2]).lines().count() == 2);
    }
}
