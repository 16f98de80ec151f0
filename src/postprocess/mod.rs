//! Postprocess: a fixed chain of stages built at boot and run on the
//! postprocess thread for every frame, each stage a type with one job:
//!
//! ```text
//! decode + NMS (decode.rs) -> ground positions (ground.rs) -> [tracking]
//!     -> outputs (crate::output, every configured output in turn)
//! ```
//!
//! Decode is always first (it turns the model's tensor into the frame's
//! [`DetectionList`]) and the outputs always last (they publish what the
//! stages made); between them, [`refine_stages`] lists the stages that
//! fill in or filter detections. They are [`Stage`] trait objects rather
//! than an enum: a new stage (the tracker) is its own file implementing
//! `Stage` plus one line in `refine_stages`, and no `match` elsewhere has to
//! learn about it; the price is one indirect call per stage and frame.
//!
//! Allocation: everything ([`Chain::build`], the decoder's scratch, the
//! detection list, labels, stages, outputs) is allocated at boot;
//! [`Chain::run`] and every `Stage::run` never allocate.

mod decode;
mod ground;
mod labels;
mod rtdetr;
pub mod track;
mod yolox;

pub use decode::{DecodeStage, DecodeStats, Decoder, DecoderKind};
pub use ground::GroundStage;
pub use labels::Labels;
pub use track::Tracker;

use crate::calibration::Calibration;
use crate::frame::{Detection, FrameRecord};
use crate::metrics::Counters;
use crate::output::{FrameView, Image, Outputs};
pub use crate::preprocess::LetterboxInfo;
use crate::ring::SlotMeta;
use crate::source::monotonic_ns;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PostprocessError {
    /// Boot-time configuration problems: one line naming the field/value.
    #[error("{0}")]
    Config(String),

    /// The model's output tensor does not fit the configured head.
    #[error("model output is {shape} but decoder {kind} expects {layout}{detail}")]
    Shape {
        shape: String,
        kind: &'static str,
        layout: &'static str,
        detail: String,
    },

    #[error("{path}: {msg}")]
    Labels { path: String, msg: String },

    /// Frame path: the output slice handed to `decode` has the wrong length.
    #[error("model output has {got} values but the decoder was built for {expected}")]
    OutputLen { expected: usize, got: usize },

    /// Frame path: a `yolox` decoder built without the model input size.
    #[error("decoder yolox needs the model input size for its grid (Decoder::with_input_size)")]
    NoGrid,
}

/// A fixed-capacity list of detections allocated at boot. Pushing past the
/// capacity never reallocates: the detection is dropped and counted.
#[derive(Debug, Clone)]
pub struct DetectionList {
    items: Vec<Detection>,
    overflow_total: u64,
}

impl DetectionList {
    /// Boot: allocates room for `capacity` detections.
    pub fn with_capacity(capacity: usize) -> DetectionList {
        DetectionList {
            items: Vec::with_capacity(capacity),
            overflow_total: 0,
        }
    }

    /// Frame path: never allocates.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Appends `det`, or hands it back (and counts it) when full.
    /// Frame path: never allocates.
    pub fn push(&mut self, det: Detection) -> Result<(), Detection> {
        if self.items.len() < self.items.capacity() {
            self.items.push(det);
            Ok(())
        } else {
            self.overflow_total += 1;
            Err(det)
        }
    }

    pub fn as_slice(&self) -> &[Detection] {
        &self.items
    }

    /// For later stages that fill in fields (ground position).
    pub fn as_mut_slice(&mut self) -> &mut [Detection] {
        &mut self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Detections dropped because the list was full, since construction.
    pub fn overflow_total(&self) -> u64 {
        self.overflow_total
    }
}

/// One frame on its way down the chain.
pub struct FrameCtx<'a> {
    /// The model's output tensor for this frame.
    pub output: &'a [f32],
    /// Sequence number and stage timestamps (capture time for trackers).
    pub meta: &'a SlotMeta,
    /// The frame's detections: decode fills the list, later stages fill
    /// in fields (ground, track id, velocity) or drop entries.
    pub dets: &'a mut DetectionList,
    /// Pipeline counters, for stages that count what they drop.
    pub counters: &'a Counters,
}

/// One step of the chain. Built at boot; `run` is called once per frame on
/// the postprocess thread.
pub trait Stage: Send {
    /// For logs (`ground`, `track`).
    fn name(&self) -> &'static str;

    /// Frame path: never allocates, never blocks.
    fn run(&mut self, frame: &mut FrameCtx<'_>);

    /// The stage fills in [`Detection::track`]: the outputs then write the
    /// track keys of every detection.
    fn tracks(&self) -> bool {
        false
    }

    /// A line for the end of the run, if something needs saying (called
    /// after the run; may allocate).
    fn end_warning(&self) -> Option<String> {
        None
    }
}

/// The stages between decode and the outputs, in order. Registration
/// point: a new stage is one line here.
/// The tracker runs after ground positions, which it uses for velocity.
pub fn refine_stages(
    calibration: Option<&Calibration>,
    rectified: bool,
    tracker: Option<Tracker>,
) -> Vec<Box<dyn Stage>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if let Some(cal) = calibration {
        stages.push(Box::new(GroundStage::new(cal.clone(), rectified)));
    }
    if let Some(t) = tracker {
        stages.push(Box::new(t));
    }
    stages
}

/// The postprocess chain of one run.
pub struct Chain {
    /// First stage: model output -> detections (public for benchmarks,
    /// which decode recorded outputs through it).
    pub decode: DecodeStage,
    stages: Vec<Box<dyn Stage>>,
    /// Last stage: every configured output.
    pub outputs: Outputs,
    labels: Labels,
    dets: DetectionList,
    /// A stage fills in tracks.
    tracked: bool,
}

impl Chain {
    /// Boot: decode first, `stages` in order, `outputs` last.
    pub fn build(
        decode: DecodeStage,
        stages: Vec<Box<dyn Stage>>,
        labels: Labels,
        outputs: Outputs,
    ) -> Chain {
        let dets = decode.decoder().new_list();
        let tracked = stages.iter().any(|s| s.tracks());
        Chain {
            decode,
            stages,
            outputs,
            labels,
            dets,
            tracked,
        }
    }

    /// What the stages have to say at the end of a run (after it: may
    /// allocate).
    pub fn end_warnings(&self) -> Vec<String> {
        self.stages.iter().filter_map(|s| s.end_warning()).collect()
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Names of the stages in order, for the boot log.
    pub fn describe(&self) -> String {
        let mut s = String::from("decode");
        for st in &self.stages {
            s.push_str(" -> ");
            s.push_str(st.name());
        }
        s.push_str(&format!(" -> {} output(s)", self.outputs.len()));
        s
    }

    /// Runs every stage on one frame and publishes it. `output` is the
    /// model's tensor, `image` the slot's raw frame, `post_start_ns` when
    /// postprocess took the frame. Frame path: never allocates.
    pub fn run(
        &mut self,
        output: &[f32],
        meta: &SlotMeta,
        image: Image<'_>,
        post_start_ns: u64,
        counters: &Counters,
    ) {
        let mut ctx = FrameCtx {
            output,
            meta,
            dets: &mut self.dets,
            counters,
        };
        self.decode.run(&mut ctx);
        for s in &mut self.stages {
            s.run(&mut ctx);
        }
        let now = monotonic_ns();
        let ms = |a: u64, b: u64| b.saturating_sub(a) as f32 * 1e-6;
        let m = meta;
        let record = FrameRecord {
            seq: m.seq,
            capture_ns: m.stamp.capture_ns,
            source_ns: m.stamp.source_ns,
            queue_ms: ms(m.t_ready_ns, m.t_infer_start_ns),
            preprocess_ms: ms(m.t_infer_start_ns, m.t_pre_done_ns),
            inference_ms: ms(m.t_pre_done_ns, m.t_infer_done_ns),
            postprocess_ms: ms(post_start_ns, now),
            e2e_ms: ms(m.stamp.capture_ns, now),
            dropped_total: counters.values().dropped(),
            tracked: self.tracked,
        };
        let frame = FrameView {
            record: &record,
            detections: self.dets.as_slice(),
            labels: &self.labels,
            image,
        };
        self.outputs.publish(&frame, counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameDesc, PixelFormat, TrackInfo};
    use crate::output::{Output, OutputError, OutputStats};
    use std::sync::{Arc, Mutex};

    /// A refine stage shaped like the tracker: fills in identity and
    /// velocity.
    struct Tag;

    impl Stage for Tag {
        fn name(&self) -> &'static str {
            "tag"
        }
        fn run(&mut self, f: &mut FrameCtx<'_>) {
            for (i, d) in f.dets.as_mut_slice().iter_mut().enumerate() {
                d.track = Some(TrackInfo {
                    id: f.meta.seq * 10 + i as u64,
                    velocity: Some([1.0, 0.0]),
                    ..TrackInfo::default()
                });
            }
        }
    }

    /// Per frame: seq, detections, bytes of the image.
    type Seen = Arc<Mutex<Vec<(u64, Vec<Detection>, usize)>>>;

    /// Test double for an output: keeps what it was handed.
    struct Capture(Seen, OutputStats);

    impl Output for Capture {
        fn name(&self) -> &str {
            "capture"
        }
        fn publish(&mut self, f: &crate::output::FrameView<'_>) -> Result<(), OutputError> {
            let mut got = self.0.lock().unwrap();
            got.push((f.record.seq, f.detections.to_vec(), f.image.bytes.len()));
            self.1.published += 1;
            Ok(())
        }
        fn stats(&self) -> &OutputStats {
            &self.1
        }
    }

    #[test]
    fn chain_runs_decode_then_stages_then_every_output() {
        // YOLOv8 head, 1 class, 2 anchors (class-major rows cx, cy, w, h, score).
        let tensor = [50.0, 200.0, 50.0, 200.0, 20.0, 10.0, 20.0, 10.0, 0.8, 0.9];
        let dec = Decoder::new(
            DecoderKind::YoloV8,
            &[1, 5, 2],
            Some(1),
            0.25,
            0.45,
            10,
            100,
        )
        .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let outputs = Outputs::new(vec![
            Box::new(Capture(Arc::clone(&got), OutputStats::default())),
            Box::new(Capture(Arc::clone(&got), OutputStats::default())),
        ]);
        let mut chain = Chain::build(
            DecodeStage::new(dec, LetterboxInfo::identity(1000, 1000)),
            vec![Box::new(Tag)],
            Labels::fallback(1),
            outputs,
        );
        assert_eq!(chain.describe(), "decode -> tag -> 2 output(s)");
        let meta = SlotMeta {
            seq: 7,
            ..SlotMeta::default()
        };
        let pixels = [0u8; 6];
        let image = Image {
            desc: FrameDesc {
                format: PixelFormat::Grey,
                width: 3,
                height: 2,
            },
            bytes: &pixels,
        };
        chain.run(&tensor, &meta, image, 0, &Counters::default());
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "both outputs got the frame");
        assert_eq!(got[0], got[1]);
        let (seq, dets, image_bytes) = &got[0];
        assert_eq!((*seq, *image_bytes), (7, 6));
        assert_eq!(dets.len(), 2);
        // Decoded (by descending score), then tagged by the stage.
        assert_eq!(dets[0].score, 0.9);
        assert_eq!(dets[0].bbox, [195.0, 195.0, 205.0, 205.0]);
        let track = |i: usize| dets[i].track.unwrap();
        assert_eq!(track(0).id, 70);
        assert_eq!(track(1).id, 71);
        assert_eq!(track(1).velocity, Some([1.0, 0.0]));
    }
}
