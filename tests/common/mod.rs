//! Helpers shared by the pipeline integration tests: configs, running the
//! real pipeline into a file, and reading its JSON lines back.
#![allow(dead_code)]

pub mod jpeg_cam;

use perceptd::boot::{boot, Overrides};
use perceptd::config::Config;
use perceptd::pipeline::RunReport;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The perceptd binary as a `Command` whose process is killed (SIGKILL,
/// `PR_SET_PDEATHSIG`) when the test thread that started it ends: a test that
/// fails between spawning `perceptd run` and reaping it cannot leave the
/// pipeline running behind it (a leaked run once ate most of a core during
/// later benchmarks). A child a test means to outlive its thread must not use
/// this.
pub fn perceptd() -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_perceptd"));
    // SAFETY: runs in the forked child before exec; prctl(2) is
    // async-signal-safe and touches nothing of the parent's state.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
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

/// Write `frames` frames of the synthetic scene (seed `seed`, I420
/// `width`x`height`) as a Y4M: the pictures the video fixtures are made of.
pub fn synthetic_y4m(path: &Path, seed: u64, frames: u64, width: usize, height: usize) {
    use perceptd::calibration::Calibration;
    use perceptd::frame::PixelFormat;
    use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
    use perceptd::source::y4m::{FrameRate, Y4mWriter};
    use perceptd::source::Source;
    let cfg = SyntheticConfig {
        width,
        height,
        format: PixelFormat::I420,
        calibration: Calibration::front_camera().with_image_size(width as u32, height as u32),
        ..SyntheticConfig::front_camera(seed)
    };
    let mut src = SyntheticSource::new(cfg).unwrap();
    let mut w = Y4mWriter::create(path, src.desc(), FrameRate::per_second(30)).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    for _ in 0..frames {
        let stamp = src.next_frame(&mut buf).unwrap();
        w.write_frame(&buf, stamp).unwrap();
    }
    w.finish().unwrap();
}

/// Run ffmpeg (quiet, overwriting) with `args`; panics with its stderr on
/// failure. The video tests need it: `scripts/setup.sh --tests` installs it.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e} (apt install ffmpeg)"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Agreement of two runs over the same clip: per frame (by `seq`), each
/// detection of `a` by descending score takes the not yet matched
/// detection of `b` of its class with the highest IoU, if at least
/// `min_iou`. Returns (F1, matched, detections in a, detections in b);
/// F1 is 1 when neither run detected anything.
pub fn agreement(a: &[Line], b: &[Line], min_iou: f32) -> (f64, usize, usize, usize) {
    let by_seq: std::collections::HashMap<u64, &Line> = b.iter().map(|l| (l.seq, l)).collect();
    let (mut matched, mut na, mut nb) = (0, 0, 0);
    for l in b {
        nb += l.dets.len();
    }
    for la in a {
        na += la.dets.len();
        let Some(lb) = by_seq.get(&la.seq) else {
            continue;
        };
        let mut used = vec![false; lb.dets.len()];
        let mut dets = la.dets.clone();
        dets.sort_by(|x, y| y.score.total_cmp(&x.score));
        for d in &dets {
            let best = lb
                .dets
                .iter()
                .enumerate()
                .filter(|(i, e)| !used[*i] && e.class_id == d.class_id)
                .map(|(i, e)| (i, iou(d.bbox, e.bbox)))
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .filter(|&(_, v)| v >= min_iou);
            if let Some((i, _)) = best {
                used[i] = true;
                matched += 1;
            }
        }
    }
    let f1 = if na + nb == 0 {
        1.0
    } else {
        2.0 * matched as f64 / (na + nb) as f64
    };
    (f1, matched, na, nb)
}
