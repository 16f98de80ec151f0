//! The tracking stage in the real pipeline: a lockstep (fast) run gives the
//! same track ids every time; `[tracking] enabled = false` gives the lines
//! without track keys and the same detections. (Allocation: tests/tracking_alloc.rs
//! and tests/pipeline_alloc.rs.)

mod common;

use common::*;

const BASE: &str = "[source]\nkind = \"synthetic\"\nseed = 1000\npace = \"fast\"\n\
    [model]\npath = \"models/perceptd-synth.onnx\"\nconf_threshold = 0.1\n\
    [calibration]\npath = \"calibration/front_camera.yaml\"\n\
    [metrics]\ninterval_s = 0\n";

/// One line's sequence number and its detections' track ids and boxes.
type Tracked = (u64, Vec<(Option<u64>, [f32; 4])>);

/// (seq, [(track id, box)]) of every line.
fn tracks(lines: &[Line]) -> Vec<Tracked> {
    lines
        .iter()
        .map(|l| (l.seq, l.dets.iter().map(|d| (d.track_id, d.bbox)).collect()))
        .collect()
}

#[test]
fn fast_replay_gives_the_same_track_ids_every_run_and_off_means_off() {
    let dir = temp_dir("tracking-replay");
    let cfg = config(BASE);
    let mut runs = Vec::new();
    for k in 0..2 {
        let out = dir.join(format!("run{k}.jsonl"));
        run(&cfg, 90, &out);
        runs.push(read_lines(&out));
    }
    let (a, b) = (tracks(&runs[0]), tracks(&runs[1]));
    assert_eq!(a.len(), 90);
    assert_eq!(a, b, "two lockstep runs gave different track ids");
    let ids: std::collections::BTreeSet<u64> = runs[0]
        .iter()
        .flat_map(|l| l.dets.iter().filter_map(|d| d.track_id))
        .collect();
    assert!(ids.len() >= 3, "track ids {ids:?}");
    assert!(runs[0]
        .iter()
        .flat_map(|l| &l.dets)
        .all(|d| d.has_track_keys));
    // Identities hold: most tracked detections keep the id of the
    // detection they overlap most in the previous frame.
    let mut kept = 0;
    let mut pairs = 0;
    for w in runs[0].windows(2) {
        for d in w[1].dets.iter().filter(|d| d.track_id.is_some()) {
            let best = w[0]
                .dets
                .iter()
                .filter(|p| p.track_id.is_some())
                .max_by(|p, q| iou(p.bbox, d.bbox).total_cmp(&iou(q.bbox, d.bbox)));
            if let Some(p) = best.filter(|p| iou(p.bbox, d.bbox) > 0.5) {
                pairs += 1;
                kept += usize::from(p.track_id == d.track_id);
            }
        }
    }
    assert!(pairs > 100 && kept * 100 >= pairs * 98, "{kept} of {pairs}");

    // Off: no track keys, the same boxes and scores.
    let off = config(&format!("{BASE}[tracking]\nenabled = false\n"));
    let out = dir.join("off.jsonl");
    run(&off, 90, &out);
    let lines = read_lines(&out);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("track_id") && !text.contains("ttc_s"));
    let boxes = |ls: &[Line]| -> Vec<Vec<([f32; 4], f32)>> {
        ls.iter()
            .map(|l| l.dets.iter().map(|d| (d.bbox, d.score)).collect())
            .collect()
    };
    assert_eq!(boxes(&lines), boxes(&runs[0]));
}
