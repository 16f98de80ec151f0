//! Helpers shared by the pipeline integration tests: configs, running the
//! real pipeline into a file, and reading its JSON lines back.
#![allow(dead_code)]

use perceptd::boot::{boot, Overrides};
use perceptd::config::Config;
use perceptd::pipeline::RunReport;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty folder under the system temp dir for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perceptd-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Parse a config written for the test; paths relative to the repo root.
pub fn config(text: &str) -> Config {
    Config::parse(text, "<test config>", &root()).unwrap_or_else(|e| panic!("{e}"))
}

/// Boot and run the real pipeline, writing JSON lines to `out`.
pub fn run(cfg: &Config, frames: u64, out: &Path) -> RunReport {
    let ov = Overrides {
        frames: Some(frames),
        output: Some(out.display().to_string()),
        ..Default::default()
    };
    let p = boot(cfg, &ov).unwrap_or_else(|e| panic!("boot: {e}"));
    p.run(Arc::new(AtomicBool::new(false)))
}

#[derive(Debug, Clone)]
pub struct Det {
    pub class_id: u32,
    pub score: f32,
    pub bbox: [f32; 4],
    pub ground: Option<[f32; 2]>,
    /// `None` when the key is absent (tracking off) or null.
    pub track_id: Option<u64>,
    /// Whether the line has the track keys at all.
    pub has_track_keys: bool,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub seq: u64,
    pub dets: Vec<Det>,
    pub e2e_ms: f64,
}

pub fn read_lines(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"));
            let dets = v["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let b: Vec<f32> = d["box"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect();
                    let ground = d["ground"]
                        .as_array()
                        .map(|g| [g[0].as_f64().unwrap() as f32, g[1].as_f64().unwrap() as f32]);
                    Det {
                        class_id: d["class_id"].as_u64().unwrap() as u32,
                        score: d["score"].as_f64().unwrap() as f32,
                        bbox: [b[0], b[1], b[2], b[3]],
                        ground,
                        track_id: d["track_id"].as_u64(),
                        has_track_keys: d.get("track_id").is_some(),
                    }
                })
                .collect();
            Line {
                seq: v["seq"].as_u64().unwrap(),
                dets,
                e2e_ms: v["latency_ms"]["e2e"].as_f64().unwrap(),
            }
        })
        .collect()
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter).max(1e-9)
}

/// Scores one frame's detections against the generator's ground truth the
/// way the quality tests count: detections by descending score, each takes
/// the not yet matched object of its class with the highest IoU, if that is
/// at least 0.5. Returns each detection (in that order) with its match:
/// `Some((index into gt, IoU))` is a true positive, `None` a false positive.
pub fn match_to_truth(
    dets: &[Det],
    gt: &[perceptd::source::synthetic::GtObject],
) -> Vec<(Det, Option<(usize, f32)>)> {
    let mut used = vec![false; gt.len()];
    let mut dets = dets.to_vec();
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets.into_iter()
        .map(|d| {
            let best = gt
                .iter()
                .enumerate()
                .filter(|(i, g)| !used[*i] && g.class_id == d.class_id)
                .map(|(i, g)| (i, iou(d.bbox, g.bbox)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|&(_, v)| v >= 0.5);
            if let Some((i, _)) = best {
                used[i] = true;
            }
            (d, best)
        })
        .collect()
}

/// Waits for `child` at most `limit`; kills it and fails past that.
pub fn wait_bounded(mut child: std::process::Child, limit: std::time::Duration) -> (i32, String) {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            assert!(!err.contains("panicked"), "{err}");
            let code = status
                .code()
                .unwrap_or_else(|| panic!("killed by a signal: {status:?}; {err}"));
            return (code, err);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("perceptd still running after {limit:?}: an output fault blocked it");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
