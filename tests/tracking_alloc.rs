//! The tracker alone makes no allocation per frame: 1000 frames of a
//! generated scene of 100 moving objects (tracks start, are lost, found
//! again and removed as objects wrap around), after 100 warm-up frames.
//! (tests/pipeline_alloc.rs covers it inside the running pipeline.)
//!
//! One test in this binary, so nothing else allocates concurrently.

use perceptd::count_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn tracker_makes_no_allocation_over_1000_frames() {
    use perceptd::postprocess::track::{bench, Geometry, Tracker, TrackingConfig};
    let scene = bench::scene(100, 1100);
    let cfg = TrackingConfig {
        max_tracks: 200,
        ..TrackingConfig::default()
    };
    let geo = Geometry {
        focal_px: 500.0,
        camera_height_m: 1.3,
    };
    let mut tracker = Tracker::new(&cfg, 100, 3, Some(geo), 640).unwrap();
    let mut frame = Vec::with_capacity(100);
    let mut tracked = 0;
    let mut before = 0;
    for (k, dets) in scene.iter().enumerate() {
        if k == 100 {
            before = allocations();
        }
        frame.clear();
        frame.extend_from_slice(dets);
        tracker.run(k as u64 * 33_333_333, &mut frame);
        tracked += frame.iter().filter(|d| d.track.is_some()).count();
    }
    let after = allocations();
    assert_eq!(after - before, 0, "allocations over 1000 frames");
    assert!(tracked > 50_000, "{tracked} tracked detections");
}
