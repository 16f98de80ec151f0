//! The pipeline end to end on the CPU: real threads, ring, engine, decoder
//! and sink. Sources are the synthetic camera and Y4M replay; the only test
//! double is `SlowBackend`, a delay at the backend (hardware) boundary.

mod common;

use common::*;
use perceptd::backend::{Backend, InferTiming};
use perceptd::boot::{boot, Overrides};
use perceptd::frame::PixelFormat;
use perceptd::metrics::Stage;
use perceptd::preprocess::LetterboxInfo;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use perceptd::source::y4m::{FrameRate, Y4mWriter};
use perceptd::source::Source;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const FIXTURE_MODEL: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

fn synthetic_config(model: &str, seed: u64, pace: &str) -> String {
    format!(
        "[source]\nkind = \"synthetic\"\nseed = {seed}\npace = \"{pace}\"\n\
         [model]\npath = \"{model}\"\nthreads = 1\n\
         [metrics]\ninterval_s = 0\n"
    )
}

/// Replaying the same Y4M file twice with `--pace fast` gives identical
/// detections (timings aside).
#[test]
fn fast_replay_is_deterministic() {
    let dir = temp_dir("replay-determinism");
    let clip = dir.join("clip.y4m");
    let mut src = SyntheticSource::new(SyntheticConfig {
        format: PixelFormat::I420,
        ..SyntheticConfig::front_camera(7)
    })
    .unwrap();
    let desc = src.desc();
    let mut w = Y4mWriter::create(&clip, desc, FrameRate { num: 30, den: 1 }).unwrap();
    let mut buf = vec![0u8; desc.bytes()];
    for _ in 0..40 {
        let s = src.next_frame(&mut buf).unwrap();
        w.write_frame(&buf, s).unwrap();
    }
    w.finish().unwrap();
    let cfg = config(&format!(
        "[source]\nkind = \"y4m\"\npath = \"{}\"\npace = \"fast\"\n[model]\npath = \"{FIXTURE_MODEL}\"\nconf_threshold = 0.05\n[metrics]\ninterval_s = 0\n",
        clip.display()
    ));
    let key = |l: &Line| {
        l.dets
            .iter()
            .map(|d| (d.class_id, d.score.to_bits(), d.bbox.map(f32::to_bits)))
            .collect::<Vec<_>>()
    };
    let a_path = dir.join("a.jsonl");
    let b_path = dir.join("b.jsonl");
    run(&cfg, 1000, &a_path);
    run(&cfg, 1000, &b_path);
    let (a, b) = (read_lines(&a_path), read_lines(&b_path));
    assert_eq!(a.len(), 40, "every frame of the clip is processed");
    assert_eq!(
        a.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    assert!(
        a.iter().map(|l| l.dets.len()).sum::<usize>() > 0,
        "the test needs some detections to compare"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(key(x), key(y), "frame {} differs between runs", x.seq);
    }
}

/// Test double at the backend boundary: the real CPU backend plus a fixed
/// delay, standing in for a slow accelerator.
struct SlowBackend {
    inner: Box<dyn Backend>,
    delay: std::time::Duration,
}

impl Backend for SlowBackend {
    fn describe(&self) -> String {
        format!("{} + {:?} test delay", self.inner.describe(), self.delay)
    }
    fn input_size(&self) -> [usize; 2] {
        self.inner.input_size()
    }
    fn letterbox(&self) -> LetterboxInfo {
        self.inner.letterbox()
    }
    fn output_shape(&self) -> &[usize] {
        self.inner.output_shape()
    }
    fn infer(&mut self, slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming {
        std::thread::sleep(self.delay);
        self.inner.infer(slot, frame, out)
    }
}

/// A live (paced) source faster than inference: frames are dropped and
/// counted, and latency stays bounded: p99 end-to-end under two inference
/// periods plus one frame period.
#[test]
fn slow_inference_drops_frames_and_latency_stays_bounded() {
    let dir = temp_dir("bounded-latency");
    let cfg = config(&synthetic_config(FIXTURE_MODEL, 3, "realtime"));
    let ov = Overrides {
        frames: Some(80),
        output: Some(dir.join("out.jsonl").display().to_string()),
        ..Default::default()
    };
    let mut p = boot(&cfg, &ov).unwrap();
    let slots = p.ring_slots as u64;
    let delay = std::time::Duration::from_millis(60);
    p.backend = Box::new(SlowBackend {
        inner: p.backend,
        delay,
    });
    let report = p.run(Arc::new(AtomicBool::new(false)));
    let c = report.metrics.counters().values();
    let frame_ms = 1000.0 / 30.0;
    let infer_p99_ms = report.metrics.percentile(Stage::Inference, 0.99) * 1e-6
        + report.metrics.percentile(Stage::Preprocess, 0.99) * 1e-6;
    let e2e_p99_ms = report.metrics.percentile(Stage::EndToEnd, 0.99) * 1e-6;
    let bound = 2.0 * infer_p99_ms + frame_ms;
    println!(
        "frames in {}, processed {}, dropped {} (no slot {}, superseded {}); inference p99 {infer_p99_ms:.1} ms; e2e p99 {e2e_p99_ms:.1} ms; bound {bound:.1} ms",
        c.frames_in,
        c.processed,
        c.dropped(),
        c.dropped_no_slot,
        c.dropped_superseded
    );
    assert!(
        c.dropped() > 0,
        "a source faster than inference must drop frames"
    );
    // --frames counts processed frames, drops aside.
    assert_eq!(c.processed, 80);
    // Every frame is processed or counted as dropped, but those still in
    // flight when the 80th was published (at most one per ring slot).
    assert!(
        c.processed + c.dropped() <= c.frames_in
            && c.frames_in <= c.processed + c.dropped() + slots,
        "every frame is processed or counted as dropped"
    );
    assert!(
        e2e_p99_ms < bound,
        "e2e p99 {e2e_p99_ms:.1} ms exceeds {bound:.1} ms"
    );
    let lines = read_lines(&dir.join("out.jsonl"));
    assert_eq!(lines.len() as u64, c.processed);
}

/// Lockstep: nothing is dropped, every frame comes out in order.
#[test]
fn lockstep_synthetic_run_drops_nothing() {
    let dir = temp_dir("lockstep");
    let cfg = config(&synthetic_config(FIXTURE_MODEL, 5, "fast"));
    let report = run(&cfg, 60, &dir.join("out.jsonl"));
    let c = report.metrics.counters().values();
    assert_eq!((c.frames_in, c.processed, c.dropped()), (60, 60, 0));
    let lines = read_lines(&dir.join("out.jsonl"));
    assert_eq!(
        lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>()
    );
}
