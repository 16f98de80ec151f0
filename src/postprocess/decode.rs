//! The chain's first stage, detector output decoding: turns the raw
//! output tensor of a YOLO-style detector into [`Detection`]s in
//! source-image pixels (threshold, class-aware NMS, letterbox undone,
//! clipped).
//!
//! Semantics follow Ultralytics' `non_max_suppression` with `agnostic=False,
//! multi_label=False` (and yolov5's for the classic head) so that our
//! detections match the reference: one class per box (the first argmax),
//! `score > conf_threshold`, at most `max_candidates` top-scoring boxes enter
//! NMS, greedy NMS in descending score order (ties: lower anchor index first,
//! as torchvision's stable sort) suppressing boxes of the same class with
//! IoU `>` the threshold, then at most `max_detections` are kept. IoU is
//! computed like the reference does it, on boxes shifted by `class * 7680`.
//! NMS runs in model-input coordinates; boxes are mapped to the source image
//! afterwards, again as the reference does.
//!
//! Allocation: [`Decoder::new`] and [`DetectionList::with_capacity`]
//! allocate at boot; [`Decoder::decode`], [`DecodeStage`] and the list's
//! methods never allocate. Called from the postprocess thread.

use super::rtdetr::{self, Layout as RtLayout, RtDetr};
use super::yolox::{self, Grid};
use super::{DetectionList, FrameCtx, PostprocessError, Stage};
use crate::config::Choice;
use crate::frame::Detection;
use crate::preprocess::LetterboxInfo;

/// Class offset the reference adds to boxes so that one NMS pass never
/// suppresses across classes (Ultralytics `max_wh`).
const CLASS_OFFSET: f32 = 7680.0;

/// The decode stage: the decoder and the letterbox that maps model-input
/// boxes back to the source image.
#[derive(Debug)]
pub struct DecodeStage {
    decoder: Decoder,
    letterbox: LetterboxInfo,
}

impl DecodeStage {
    pub fn new(decoder: Decoder, letterbox: LetterboxInfo) -> DecodeStage {
        DecodeStage { decoder, letterbox }
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn letterbox(&self) -> &LetterboxInfo {
        &self.letterbox
    }

    /// Decodes `output` into `out` (what [`Stage::run`] does, for callers
    /// outside the chain such as benchmarks). Frame path: never allocates.
    pub fn decode(
        &mut self,
        output: &[f32],
        out: &mut DetectionList,
    ) -> Result<DecodeStats, PostprocessError> {
        self.decoder.decode(output, &self.letterbox, out)
    }
}

impl Stage for DecodeStage {
    fn name(&self) -> &'static str {
        "decode"
    }

    /// A tensor of the wrong length (cannot happen with a backend built
    /// for this decoder) leaves the frame without detections.
    /// Frame path: never allocates.
    fn run(&mut self, f: &mut FrameCtx<'_>) {
        if self.decode(f.output, f.dets).is_err() {
            f.dets.clear();
        }
    }
}

/// Which detection head produced the output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderKind {
    /// YOLOv8 / YOLO11 / YOLOv5u: `[1, 4+C, N]`, rows cx, cy, w, h, then C
    /// class scores (already sigmoid-ed), no objectness.
    YoloV8,
    /// Classic YOLOv5: `[1, N, 5+C]`, cx, cy, w, h, objectness, C class
    /// scores; score = objectness * class score.
    YoloV5,
    /// NMS-free end-to-end heads (YOLOv10, YOLO26; Ultralytics metadata
    /// `end2end = True`): `[1, N, 6]`, rows x1, y1, x2, y2, score, class,
    /// already final and in descending score order. Only the confidence
    /// threshold and `max_detections` apply, no NMS, as Ultralytics'
    /// `non_max_suppression` does for such outputs. The class count is not
    /// in the shape: it comes from the labels.
    End2End,
    /// YOLOX raw head (`decode_in_inference = False`, Autoware's
    /// `tensorrt_yolox` input): `[1, N, 5+C]` grid offsets tx, ty, log w,
    /// log h, objectness, C class probabilities; see `yolox.rs`.
    YoloX,
    /// YOLOX decoded in the graph (`decode_in_inference = True`):
    /// `[1, N, 5+C]` cx, cy, w, h in input pixels, objectness, classes.
    YoloXDecoded,
    /// RT-DETR (Ultralytics metadata `head` = `RTDETRDecoder`): `[1, K, 6]`
    /// normalised cx, cy, w, h, score, class, or `[1, Q, 4+C]`; no NMS.
    /// See `postprocess::rtdetr`.
    RtDetr,
}

impl DecoderKind {
    fn layout(self) -> &'static str {
        match self {
            DecoderKind::YoloV8 => "[1, 4+C, N]",
            DecoderKind::YoloV5 => "[1, N, 5+C]",
            DecoderKind::End2End => "[1, N, 6]",
            DecoderKind::YoloX => "[1, N, 5+C] (tx, ty, tw, th on the stride 8/16/32 grid)",
            DecoderKind::YoloXDecoded => "[1, N, 5+C]",
            DecoderKind::RtDetr => "[1, K, 6] or [1, Q, 4+C]",
        }
    }

    /// Values per box before the class scores.
    fn box_fields(self) -> usize {
        match self {
            DecoderKind::YoloV8 => 4,
            DecoderKind::YoloV5 | DecoderKind::YoloX | DecoderKind::YoloXDecoded => 5,
            DecoderKind::End2End => 6,
            DecoderKind::RtDetr => 4,
        }
    }
}

/// What one `decode` call did, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeStats {
    /// Boxes whose best score passed the confidence threshold.
    pub candidates: usize,
    /// Candidates left out of NMS by the `max_candidates` cap.
    pub capped: usize,
    /// Detections kept after NMS and `max_detections`.
    pub kept: usize,
    /// Kept detections that did not fit the output list.
    pub overflow: usize,
}

/// A box that passed the threshold, in model-input coordinates.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Candidate {
    /// `[x1, y1, x2, y2]` as the model gave it.
    pub(super) bbox: [f32; 4],
    /// `bbox` shifted by `class * CLASS_OFFSET`, and its area: the values
    /// the reference computes IoU on.
    nms_box: [f32; 4],
    nms_area: f32,
    pub(super) score: f32,
    pub(super) class: u32,
}

/// Decodes one detector head; every buffer it needs is allocated in `new`.
#[derive(Debug)]
pub struct Decoder {
    kind: DecoderKind,
    num_classes: usize,
    anchors: usize,
    conf_threshold: f32,
    /// f64 because torchvision compares the f32 IoU against a double.
    iou_threshold: f64,
    max_detections: usize,
    max_candidates: usize,
    /// YOLOv8 argmax scratch, one per anchor (the layout is class-major, so
    /// the argmax is done a class row at a time to stay cache friendly).
    best_score: Vec<f32>,
    best_class: Vec<u32>,
    /// `anchors` entries; the first `n` are this frame's candidates.
    cands: Vec<Candidate>,
    order: Vec<u32>,
    suppressed: Vec<bool>,
    /// The YOLOX raw head's grid (`with_input_size`).
    grid: Option<Grid>,
    /// RT-DETR's layout, input size and scratch (`kind` RtDetr only).
    rtdetr: Option<RtDetr>,
}

impl Decoder {
    /// Boot: checks `output_shape` against `kind` (and `num_classes` if
    /// given) and allocates all scratch for `N` anchors.
    ///
    /// Thresholds are in `[0, 1]`; `conf_threshold` is compared as f32 and
    /// `iou_threshold` as f64, like the reference.
    pub fn new(
        kind: DecoderKind,
        output_shape: &[usize],
        num_classes: Option<usize>,
        conf_threshold: f64,
        iou_threshold: f64,
        max_detections: usize,
        max_candidates: usize,
    ) -> Result<Decoder, PostprocessError> {
        let (anchors, classes, rt_layout) = check_shape(kind, output_shape, num_classes)?;
        if !(0.0..=1.0).contains(&conf_threshold) {
            return Err(PostprocessError::Config(format!(
                "conf_threshold {conf_threshold} is outside [0, 1]"
            )));
        }
        if !(0.0..=1.0).contains(&iou_threshold) {
            return Err(PostprocessError::Config(format!(
                "iou_threshold {iou_threshold} is outside [0, 1]"
            )));
        }
        if max_detections == 0 {
            return Err(PostprocessError::Config(
                "max_detections is 0 (must be at least 1)".into(),
            ));
        }
        if max_candidates == 0 {
            return Err(PostprocessError::Config(
                "max_candidates is 0 (must be at least 1)".into(),
            ));
        }
        if u32::try_from(anchors).is_err() || u32::try_from(classes).is_err() {
            return Err(PostprocessError::Config(format!(
                "model output {} is too large to decode",
                shape_str(output_shape)
            )));
        }
        let rtdetr = rt_layout.map(|l| RtDetr::new(l, anchors, classes));
        let anchors_nms = if rtdetr.is_some() { 0 } else { anchors };
        let scratch_argmax = if kind == DecoderKind::YoloV8 {
            anchors
        } else {
            0
        };
        Ok(Decoder {
            kind,
            num_classes: classes,
            anchors,
            conf_threshold: conf_threshold as f32,
            iou_threshold,
            max_detections,
            max_candidates,
            best_score: vec![0.0; scratch_argmax],
            best_class: vec![0; scratch_argmax],
            cands: vec![Candidate::default(); anchors_nms],
            order: vec![0; anchors_nms],
            suppressed: vec![false; anchors_nms],
            grid: None,
            rtdetr,
        })
    }

    /// Boot: the model input `[width, height]`. The YOLOX raw head builds
    /// its grid from it (checked against the output's anchor count first);
    /// RT-DETR's boxes are normalised to it; the other heads ignore it.
    pub fn with_input_size(mut self, input: [usize; 2]) -> Result<Decoder, PostprocessError> {
        if self.kind == DecoderKind::YoloX {
            self.grid = Some(Grid::new(input, self.anchors)?);
        }
        if let Some(r) = &mut self.rtdetr {
            r.set_input_size(input[0], input[1]);
        }
        Ok(self)
    }

    pub fn kind(&self) -> DecoderKind {
        self.kind
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Boxes (anchors) per frame, `N`.
    pub fn anchors(&self) -> usize {
        self.anchors
    }

    pub fn max_detections(&self) -> usize {
        self.max_detections
    }

    /// RT-DETR: whether the output is `[1, K, 6]` rows (else `[1, Q, 4+C]`).
    pub fn rtdetr_rows(&self) -> Option<bool> {
        self.rtdetr.as_ref().map(|r| r.layout() == RtLayout::Rows)
    }

    /// Number of f32 values `decode` expects.
    pub fn output_len(&self) -> usize {
        if let Some(r) = &self.rtdetr {
            return self.anchors * r.width();
        }
        match self.kind {
            DecoderKind::End2End => self.anchors * 6,
            _ => self.anchors * (self.num_classes + self.kind.box_fields()),
        }
    }

    /// Boot: an output list that holds every detection this decoder keeps.
    pub fn new_list(&self) -> DetectionList {
        DetectionList::with_capacity(self.max_detections)
    }

    /// Decodes one frame's output tensor into `out` (cleared first), boxes
    /// in source pixels, highest score first. `ground` is left `None`.
    /// Frame path: never allocates.
    pub fn decode(
        &mut self,
        output: &[f32],
        letterbox: &LetterboxInfo,
        out: &mut DetectionList,
    ) -> Result<DecodeStats, PostprocessError> {
        out.clear();
        let expected = self.output_len();
        if output.len() != expected {
            return Err(PostprocessError::OutputLen {
                expected,
                got: output.len(),
            });
        }
        let n = match self.kind {
            DecoderKind::YoloV8 => self.gather_v8(output),
            DecoderKind::YoloV5 => self.gather_v5(output),
            DecoderKind::End2End => return Ok(self.decode_end2end(output, letterbox, out)),
            DecoderKind::YoloX => {
                let grid = self.grid.as_ref().ok_or(PostprocessError::NoGrid)?;
                let (c, conf) = (self.num_classes, self.conf_threshold);
                yolox::gather(output, c, conf, Some(grid), &mut self.cands)
            }
            DecoderKind::YoloXDecoded => {
                let (c, conf) = (self.num_classes, self.conf_threshold);
                yolox::gather(output, c, conf, None, &mut self.cands)
            }
            DecoderKind::RtDetr => {
                let (classes, conf, max) =
                    (self.num_classes, self.conf_threshold, self.max_detections);
                let r = self.rtdetr.as_mut().filter(|r| r.input_size().is_some());
                let Some(r) = r else {
                    return Err(PostprocessError::Config(
                        "rtdetr decoder: the model input size was never set".into(),
                    ));
                };
                return Ok(r.decode(output, classes, conf, max, letterbox, out));
            }
        };
        let mut stats = DecodeStats {
            candidates: n,
            ..DecodeStats::default()
        };

        let cands = &self.cands[..n];
        let order = &mut self.order[..n];
        for (i, o) in order.iter_mut().enumerate() {
            *o = i as u32;
        }
        // Descending score, ties by anchor order: the stable sort the
        // reference uses. Candidate scores passed `> threshold`, so no NaN.
        let by_score = |a: &u32, b: &u32| {
            cands[*b as usize]
                .score
                .total_cmp(&cands[*a as usize].score)
                .then(a.cmp(b))
        };
        let m = if n > self.max_candidates {
            order.select_nth_unstable_by(self.max_candidates - 1, by_score);
            stats.capped = n - self.max_candidates;
            self.max_candidates
        } else {
            n
        };
        let order = &mut order[..m];
        order.sort_unstable_by(by_score);

        let suppressed = &mut self.suppressed[..m];
        suppressed.fill(false);
        for i in 0..m {
            if suppressed[i] {
                continue;
            }
            let a = cands[order[i] as usize];
            stats.kept += 1;
            let (x1, y1) = letterbox.to_source(a.bbox[0], a.bbox[1]);
            let (x2, y2) = letterbox.to_source(a.bbox[2], a.bbox[3]);
            let det = Detection {
                class_id: a.class,
                score: a.score,
                bbox: [x1, y1, x2, y2],
                ..Detection::default()
            };
            if out.push(det).is_err() {
                stats.overflow += 1;
            }
            if stats.kept == self.max_detections {
                break;
            }
            for j in i + 1..m {
                if suppressed[j] {
                    continue;
                }
                let b = &cands[order[j] as usize];
                if b.class == a.class && iou(&a, b) as f64 > self.iou_threshold {
                    suppressed[j] = true;
                }
            }
        }
        Ok(stats)
    }

    /// `[1, N, 6]`: rows are final detections in the model's order
    /// (descending score); keep the first `max_detections` whose score is
    /// `> conf_threshold`. A row whose class is not an integer in
    /// `0..classes` (cannot come from the head) is skipped.
    fn decode_end2end(
        &self,
        output: &[f32],
        letterbox: &LetterboxInfo,
        out: &mut DetectionList,
    ) -> DecodeStats {
        let mut stats = DecodeStats::default();
        for row in output.chunks_exact(6) {
            let score = row[4];
            let c = row[5];
            // Positive tests, so that NaN scores and classes are skipped.
            let passes = score > self.conf_threshold;
            let class_ok = c >= 0.0 && c < self.num_classes as f32 && c.fract() == 0.0;
            if !passes || !class_ok {
                continue;
            }
            stats.candidates += 1;
            stats.kept += 1;
            let (x1, y1) = letterbox.to_source(row[0], row[1]);
            let (x2, y2) = letterbox.to_source(row[2], row[3]);
            let det = Detection {
                class_id: c as u32,
                score,
                bbox: [x1, y1, x2, y2],
                ..Detection::default()
            };
            if out.push(det).is_err() {
                stats.overflow += 1;
            }
            if stats.kept == self.max_detections {
                break;
            }
        }
        stats
    }

    /// `[1, 4+C, N]`: argmax over class rows, then collect the anchors
    /// above threshold. Returns the candidate count.
    fn gather_v8(&mut self, output: &[f32]) -> usize {
        let n = self.anchors;
        let best = &mut self.best_score[..n];
        let cls = &mut self.best_class[..n];
        best.copy_from_slice(&output[4 * n..5 * n]);
        cls.fill(0);
        for k in 1..self.num_classes {
            let row = &output[(4 + k) * n..(5 + k) * n];
            for ((b, c), &s) in best.iter_mut().zip(cls.iter_mut()).zip(row) {
                // A NaN score wins and then sticks, as torch's max does.
                if s > *b || s.is_nan() && !b.is_nan() {
                    *b = s;
                    *c = k as u32;
                }
            }
        }
        let mut count = 0;
        for i in 0..n {
            let score = best[i];
            if score > self.conf_threshold {
                let (cx, cy, w, h) = (
                    output[i],
                    output[n + i],
                    output[2 * n + i],
                    output[3 * n + i],
                );
                self.cands[count] = candidate(cx, cy, w, h, score, cls[i]);
                count += 1;
            }
        }
        count
    }

    /// `[1, N, 5+C]`: objectness prefilter, score = obj * cls, argmax.
    fn gather_v5(&mut self, output: &[f32]) -> usize {
        let stride = 5 + self.num_classes;
        let mut count = 0;
        for row in output.chunks_exact(stride) {
            let obj = row[4];
            // Written as a positive test so that NaN objectness is skipped.
            let passes = obj > self.conf_threshold;
            if !passes {
                continue;
            }
            let mut best = row[5] * obj;
            let mut best_k = 0u32;
            for (k, &s) in row[6..].iter().enumerate() {
                let s = s * obj;
                if s > best || s.is_nan() && !best.is_nan() {
                    best = s;
                    best_k = k as u32 + 1;
                }
            }
            if best > self.conf_threshold {
                self.cands[count] = candidate(row[0], row[1], row[2], row[3], best, best_k);
                count += 1;
            }
        }
        count
    }
}

pub(super) fn candidate(cx: f32, cy: f32, w: f32, h: f32, score: f32, class: u32) -> Candidate {
    let (dw, dh) = (w / 2.0, h / 2.0);
    let bbox = [cx - dw, cy - dh, cx + dw, cy + dh];
    let off = class as f32 * CLASS_OFFSET;
    let nms_box = [bbox[0] + off, bbox[1] + off, bbox[2] + off, bbox[3] + off];
    Candidate {
        bbox,
        nms_box,
        nms_area: (nms_box[2] - nms_box[0]) * (nms_box[3] - nms_box[1]),
        score,
        class,
    }
}

/// torchvision's CPU `nms` IoU, operation for operation.
fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let (p, q) = (&a.nms_box, &b.nms_box);
    let w = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
    let h = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
    let inter = w * h;
    inter / (a.nms_area + b.nms_area - inter)
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    dims.join("x")
}

/// Returns (anchors, classes, RT-DETR layout) or an error naming the shape
/// and the layout.
fn check_shape(
    kind: DecoderKind,
    shape: &[usize],
    num_classes: Option<usize>,
) -> Result<(usize, usize, Option<RtLayout>), PostprocessError> {
    let bad = |detail: String| PostprocessError::Shape {
        shape: shape_str(shape),
        kind: kind.name(),
        layout: kind.layout(),
        detail,
    };
    if shape.len() != 3 {
        return Err(bad(format!(" (got {} dims)", shape.len())));
    }
    if shape[0] != 1 {
        return Err(bad(format!(
            " (batch {} is not supported; export the model with batch 1)",
            shape[0]
        )));
    }
    let fields = kind.box_fields();
    let (channels, anchors) = match kind {
        DecoderKind::RtDetr => {
            return rtdetr::check_shape(shape, num_classes)
                .map(|(q, c, l)| (q, c, Some(l)))
                .map_err(bad);
        }
        DecoderKind::YoloV8 => (shape[1], shape[2]),
        DecoderKind::YoloV5 | DecoderKind::YoloX | DecoderKind::YoloXDecoded => {
            (shape[2], shape[1])
        }
        DecoderKind::End2End => {
            if shape[2] != 6 {
                return Err(bad(format!(" ({} values per row, not 6)", shape[2])));
            }
            if shape[1] == 0 {
                return Err(bad(" (no rows)".into()));
            }
            return match num_classes {
                Some(c) if c > 0 => Ok((shape[1], c, None)),
                _ => Err(bad(
                    " (the class count is not in the shape: it comes from the labels, and there are none)"
                        .into(),
                )),
            };
        }
    };
    if channels <= fields {
        return Err(bad(format!(
            " ({channels} values per box leaves no class scores)"
        )));
    }
    if anchors == 0 {
        return Err(bad(" (no boxes)".into()));
    }
    let classes = channels - fields;
    match num_classes {
        Some(c) if c != classes => Err(bad(format!(
            " with {c} classes, i.e. {} values per box, not {channels}",
            c + fields
        ))),
        Some(_) => Ok((anchors, classes, None)),
        // Without a class count the only hint is that detectors have many
        // more boxes than values per box; a swapped layout shows up as the
        // opposite.
        None if anchors < channels => {
            let other = match kind {
                DecoderKind::YoloV5 | DecoderKind::YoloX | DecoderKind::YoloXDecoded => {
                    "yolov8 [1, 4+C, N]"
                }
                _ => "yolov5 [1, N, 5+C]",
            };
            Err(bad(format!(
                " ({anchors} boxes of {channels} values looks like the {other} layout; \
                 set the class count to override)"
            )))
        }
        None => Ok((anchors, classes, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 400;
    const C: usize = 4;

    /// Same generator as testdata/ref_nms.py (integer maths, dyadic
    /// values, so both sides build bit-identical tensors).
    struct XorShift32(u32);
    impl XorShift32 {
        fn next(&mut self) -> u32 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.0 = x;
            x
        }
    }

    /// (boxes cx,cy,w,h per anchor, class scores per anchor, objectness).
    fn synth_scene() -> (Vec<[f32; 4]>, Vec<[f32; C]>, Vec<f32>) {
        let mut r = XorShift32(0x9E37_79B9);
        let mut objs = Vec::new();
        for _ in 0..10 {
            let cls = (r.next() % C as u32) as usize;
            let cx = 20 + r.next() % 280;
            let cy = 50 + r.next() % 220;
            let w = 10 + r.next() % 80;
            let h = 10 + r.next() % 80;
            objs.push((cls, cx as f64, cy as f64, w as f64, h as f64));
        }
        let mut boxes = vec![[0f64; 4]; N];
        let mut cls = vec![[0f64; C]; N];
        let mut obj = vec![0f64; N];
        let jit = |v: u32, d: f64| (v % 17) as f64 / d - 8.0 / d;
        for i in 0..N {
            let kind = r.next() % 4;
            if i > 0 && r.next().is_multiple_of(50) {
                boxes[i] = boxes[i - 1];
                cls[i] = cls[i - 1];
                obj[i] = obj[i - 1];
                continue;
            }
            if kind == 0 {
                boxes[i] = [
                    (r.next() % 320) as f64,
                    (r.next() % 320) as f64,
                    (4 + r.next() % 60) as f64,
                    (4 + r.next() % 60) as f64,
                ];
                for v in cls[i].iter_mut() {
                    *v = (r.next() % 300) as f64 / 1024.0;
                }
            } else {
                let (c, cx, cy, w, h) = objs[(r.next() % 10) as usize];
                let jx = jit(r.next(), 4.0);
                let jy = jit(r.next(), 4.0);
                let jw = jit(r.next(), 2.0);
                let jh = jit(r.next(), 2.0);
                boxes[i] = [cx + jx, cy + jy, w + jw, h + jh];
                for v in cls[i].iter_mut() {
                    *v = (r.next() % 200) as f64 / 1024.0;
                }
                cls[i][c] = 0.3 + (r.next() % 640) as f64 / 1024.0;
                if r.next().is_multiple_of(8) {
                    let other = (c + 1 + (r.next() % (C as u32 - 1)) as usize) % C;
                    cls[i][other] = 0.3 + (r.next() % 640) as f64 / 1024.0;
                }
            }
            obj[i] = 0.5 + (r.next() % 512) as f64 / 1024.0;
        }
        (
            boxes.iter().map(|b| b.map(|v| v as f32)).collect(),
            cls.iter().map(|c| c.map(|v| v as f32)).collect(),
            obj.iter().map(|&v| v as f32).collect(),
        )
    }

    fn v8_tensor(boxes: &[[f32; 4]], cls: &[[f32; C]]) -> Vec<f32> {
        let n = boxes.len();
        let mut t = vec![0f32; (4 + C) * n];
        for i in 0..n {
            for r in 0..4 {
                t[r * n + i] = boxes[i][r];
            }
            for k in 0..C {
                t[(4 + k) * n + i] = cls[i][k];
            }
        }
        t
    }

    fn v5_tensor(boxes: &[[f32; 4]], cls: &[[f32; C]], obj: &[f32]) -> Vec<f32> {
        let mut t = Vec::new();
        for i in 0..boxes.len() {
            t.extend_from_slice(&boxes[i]);
            t.push(obj[i]);
            t.extend_from_slice(&cls[i]);
        }
        t
    }

    fn check(got: &[Detection], want: &[(u32, f32, [f32; 4])]) {
        assert_eq!(got.len(), want.len(), "count: got {got:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.class_id, w.0, "det {i} class: {g:?} vs {w:?}");
            // Same f32 operations as the reference: bit-identical.
            assert_eq!(g.score, w.1, "det {i} score: {g:?} vs {w:?}");
            assert_eq!(g.bbox, w.2, "det {i} box: {g:?} vs {w:?}");
            assert_eq!(g.ground, None);
        }
    }

    fn decode_scene(
        kind: DecoderKind,
        max_det: usize,
        max_cand: usize,
    ) -> (Vec<Detection>, DecodeStats) {
        let (boxes, cls, obj) = synth_scene();
        let (shape, t) = match kind {
            DecoderKind::YoloV8 => ([1, 4 + C, N], v8_tensor(&boxes, &cls)),
            DecoderKind::YoloV5 => ([1, N, 5 + C], v5_tensor(&boxes, &cls, &obj)),
            DecoderKind::End2End | DecoderKind::RtDetr => {
                unreachable!("end2end and rtdetr have their own tests")
            }
            DecoderKind::YoloX | DecoderKind::YoloXDecoded => {
                unreachable!("yolox has its own tests (yolox.rs, tests/exports.rs)")
            }
        };
        let mut dec = Decoder::new(kind, &shape, Some(C), 0.25, 0.45, max_det, max_cand).unwrap();
        let mut out = dec.new_list();
        let lb = fit(640, 480, 320, 320);
        let stats = dec.decode(&t, &lb, &mut out).unwrap();
        // A second decode into the same list gives the same answer.
        let first = out.as_slice().to_vec();
        dec.decode(&t, &lb, &mut out).unwrap();
        assert_eq!(first, out.as_slice());
        (first, stats)
    }

    // Pasted from `python3 src/postprocess/testdata/ref_nms.py`.
    const REF_V8: &[(u32, f32, [f32; 4])] = &[
        (1, 0.92402345, [482.5, 0.0, 630.5, 144.5]),
        (2, 0.91328126, [160.5, 12.5, 307.5, 85.5]),
        (2, 0.91328126, [61.5, 225.0, 161.5, 392.0]),
        (3, 0.9123047, [1.5, 337.5, 175.5, 452.5]),
        (3, 0.9103516, [151.5, 261.5, 213.5, 294.5]),
        (1, 0.9074219, [209.5, 170.5, 277.5, 250.5]),
        (3, 0.9015625, [486.5, 0.0, 634.5, 149.5]),
        (2, 0.8996094, [12.5, 198.5, 161.5, 304.5]),
        (1, 0.89277345, [258.0, 336.5, 382.0, 455.5]),
        (3, 0.8791016, [313.0, 1.5, 468.0, 181.5]),
        (1, 0.87421876, [305.0, 168.5, 347.0, 268.5]),
        (2, 0.8654297, [302.0, 169.5, 347.0, 268.5]),
        (2, 0.8234375, [149.5, 264.5, 221.5, 306.5]),
        (0, 0.7873047, [165.0, 16.0, 307.0, 88.0]),
        (2, 0.6720703, [262.5, 335.0, 375.5, 467.0]),
        (0, 0.6125, [11.0, 333.5, 179.0, 444.5]),
        (0, 0.58515626, [302.0, 173.5, 346.0, 264.5]),
        (2, 0.55390626, [11.5, 339.0, 177.5, 452.0]),
        (3, 0.47382814, [164.0, 16.5, 310.0, 81.5]),
        (3, 0.2919922, [537.0, 221.0, 571.0, 331.0]),
        (2, 0.2919922, [224.0, 254.0, 324.0, 294.0]),
        (0, 0.29101562, [437.0, 83.0, 563.0, 125.0]),
        (0, 0.29101562, [0.0, 431.0, 26.0, 449.0]),
        (3, 0.29003906, [523.0, 349.0, 640.0, 415.0]),
        (2, 0.28808594, [102.0, 2.0, 194.0, 70.0]),
        (2, 0.28808594, [122.0, 416.0, 158.0, 440.0]),
        (1, 0.28710938, [489.0, 237.0, 515.0, 315.0]),
        (3, 0.28515625, [338.0, 31.0, 442.0, 57.0]),
        (0, 0.2841797, [357.0, 164.0, 419.0, 224.0]),
        (1, 0.28222656, [583.0, 480.0, 601.0, 480.0]),
        (0, 0.28222656, [0.0, 120.0, 51.0, 220.0]),
        (2, 0.28222656, [50.0, 0.0, 62.0, 0.0]),
        (1, 0.28125, [362.0, 250.0, 450.0, 266.0]),
        (1, 0.28027344, [560.0, 472.0, 576.0, 480.0]),
        (2, 0.27929688, [499.0, 0.0, 569.0, 0.0]),
        (0, 0.27734375, [7.0, 418.0, 121.0, 480.0]),
        (2, 0.2763672, [80.0, 114.0, 156.0, 226.0]),
        (1, 0.27539062, [326.0, 156.0, 422.0, 184.0]),
        (2, 0.27539062, [323.0, 0.0, 373.0, 0.0]),
        (2, 0.27539062, [481.0, 108.0, 515.0, 116.0]),
        (1, 0.27539062, [288.0, 30.0, 384.0, 102.0]),
        (2, 0.27441406, [362.0, 98.0, 470.0, 186.0]),
        (3, 0.27246094, [416.0, 230.0, 428.0, 314.0]),
        (2, 0.2705078, [440.0, 336.0, 564.0, 452.0]),
        (3, 0.2685547, [276.0, 204.0, 316.0, 276.0]),
        (1, 0.26464844, [152.0, 96.0, 264.0, 144.0]),
        (3, 0.2626953, [98.0, 0.0, 122.0, 64.0]),
        (2, 0.2626953, [34.0, 219.0, 82.0, 261.0]),
        (3, 0.2626953, [0.0, 0.0, 52.0, 0.0]),
        (1, 0.26171875, [0.0, 250.0, 44.0, 274.0]),
        (3, 0.2607422, [0.0, 0.0, 54.0, 0.0]),
        (3, 0.25878906, [327.0, 77.0, 397.0, 135.0]),
        (3, 0.2578125, [413.0, 238.0, 455.0, 338.0]),
        (0, 0.2578125, [146.0, 0.0, 238.0, 45.0]),
        (0, 0.2578125, [295.0, 218.0, 377.0, 294.0]),
        (3, 0.25683594, [526.0, 470.0, 546.0, 480.0]),
        (0, 0.2529297, [75.0, 234.0, 149.0, 346.0]),
        (2, 0.25195312, [567.0, 0.0, 640.0, 34.0]),
    ];
    const REF_V8_MAXNMS20: &[(u32, f32, [f32; 4])] = &[
        (1, 0.92402345, [482.5, 0.0, 630.5, 144.5]),
        (2, 0.91328126, [160.5, 12.5, 307.5, 85.5]),
        (2, 0.91328126, [61.5, 225.0, 161.5, 392.0]),
        (3, 0.9123047, [1.5, 337.5, 175.5, 452.5]),
        (3, 0.9103516, [151.5, 261.5, 213.5, 294.5]),
        (1, 0.9074219, [209.5, 170.5, 277.5, 250.5]),
        (3, 0.9015625, [486.5, 0.0, 634.5, 149.5]),
        (2, 0.8996094, [12.5, 198.5, 161.5, 304.5]),
        (1, 0.89277345, [258.0, 336.5, 382.0, 455.5]),
    ];
    const REF_V5: &[(u32, f32, [f32; 4])] = &[
        (1, 0.89870876, [476.5, 0.0, 637.5, 152.0]),
        (3, 0.89267063, [3.5, 333.0, 184.5, 448.0]),
        (1, 0.86568874, [296.5, 175.0, 342.5, 260.0]),
        (2, 0.8454987, [160.5, 12.5, 307.5, 85.5]),
        (3, 0.82945293, [146.0, 271.0, 218.0, 301.0]),
        (3, 0.80273706, [481.0, 0.0, 629.0, 150.0]),
        (2, 0.80134946, [56.5, 224.0, 161.5, 383.0]),
        (3, 0.7923546, [318.0, 12.0, 465.0, 178.0]),
        (2, 0.789893, [7.0, 185.0, 153.0, 303.0]),
        (1, 0.7623987, [211.5, 161.0, 268.5, 248.0]),
        (1, 0.75114596, [258.0, 335.0, 380.0, 457.0]),
        (0, 0.5635687, [165.0, 16.0, 307.0, 88.0]),
        (2, 0.5552611, [302.0, 169.5, 347.0, 268.5]),
        (2, 0.541465, [11.5, 339.0, 177.5, 452.0]),
        (0, 0.509021, [11.0, 333.5, 179.0, 444.5]),
        (2, 0.50741386, [264.5, 334.0, 374.5, 461.0]),
        (2, 0.48811188, [149.5, 264.5, 221.5, 306.5]),
        (0, 0.4691536, [302.0, 173.5, 346.0, 264.5]),
        (3, 0.44328845, [164.0, 16.5, 310.0, 81.5]),
        (0, 0.28931046, [0.0, 431.0, 26.0, 449.0]),
        (2, 0.28217793, [122.0, 416.0, 158.0, 440.0]),
        (0, 0.27737427, [437.0, 83.0, 563.0, 125.0]),
        (0, 0.27313137, [0.0, 120.0, 51.0, 220.0]),
        (2, 0.2692728, [50.0, 0.0, 62.0, 0.0]),
        (3, 0.2598734, [98.0, 0.0, 122.0, 64.0]),
        (3, 0.2578268, [416.0, 230.0, 428.0, 314.0]),
        (1, 0.2527361, [583.0, 480.0, 601.0, 480.0]),
        (2, 0.25199318, [323.0, 0.0, 373.0, 0.0]),
    ];

    #[test]
    fn yolov8_matches_ultralytics_reference() {
        let (dets, stats) = decode_scene(DecoderKind::YoloV8, 300, 30000);
        check(&dets, REF_V8);
        assert_eq!(stats.candidates, 350);
        assert_eq!(stats.capped, 0);
        assert_eq!(stats.kept, REF_V8.len());
    }

    #[test]
    fn yolov8_max_detections_keeps_the_top_scoring() {
        let (dets, stats) = decode_scene(DecoderKind::YoloV8, 5, 30000);
        check(&dets, &REF_V8[..5]);
        assert_eq!(stats.kept, 5);
    }

    #[test]
    fn yolov8_max_candidates_caps_before_nms() {
        let (dets, stats) = decode_scene(DecoderKind::YoloV8, 300, 20);
        check(&dets, REF_V8_MAXNMS20);
        assert_eq!(stats.capped, 350 - 20);
    }

    #[test]
    fn yolov5_matches_reference() {
        let (dets, _) = decode_scene(DecoderKind::YoloV5, 300, 30000);
        check(&dets, REF_V5);
    }

    /// One anchor-major v8 tensor from (cx, cy, w, h, class scores) rows.
    fn v8_from_rows(rows: &[([f32; 4], [f32; 2])]) -> Vec<f32> {
        let b: Vec<[f32; 4]> = rows.iter().map(|r| r.0).collect();
        let c: Vec<[f32; C]> = rows.iter().map(|r| [r.1[0], r.1[1], 0.0, 0.0]).collect();
        v8_tensor(&b, &c)
    }

    fn decode_rows(rows: &[([f32; 4], [f32; 2])], conf: f64, iou_t: f64) -> Vec<Detection> {
        let t = v8_from_rows(rows);
        let shape = [1, 4 + C, rows.len()];
        let mut dec =
            Decoder::new(DecoderKind::YoloV8, &shape, Some(C), conf, iou_t, 100, 1000).unwrap();
        let mut out = dec.new_list();
        dec.decode(&t, &LetterboxInfo::identity(1000, 1000), &mut out)
            .unwrap();
        out.as_slice().to_vec()
    }

    #[test]
    fn nms_suppresses_within_a_class_only() {
        // Two heavily overlapping boxes (IoU 0.82): same class -> one kept;
        // different classes -> both kept.
        let a = [100.0, 100.0, 100.0, 100.0];
        let b = [105.0, 100.0, 100.0, 100.0];
        let same = decode_rows(&[(a, [0.9, 0.0]), (b, [0.8, 0.0])], 0.25, 0.45);
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].score, 0.9);
        let diff = decode_rows(&[(a, [0.9, 0.0]), (b, [0.0, 0.8])], 0.25, 0.45);
        assert_eq!(diff.len(), 2);
        assert_eq!((diff[0].class_id, diff[1].class_id), (0, 1));
    }

    #[test]
    fn nms_threshold_is_strict_and_chains_greedily() {
        // IoU of a and b is exactly 1/3 (50x100 overlap of two 100x100).
        let a = [100.0, 100.0, 100.0, 100.0];
        let b = [150.0, 100.0, 100.0, 100.0];
        // c overlaps b but not a: kept once b is suppressed by a.
        let c = [200.0, 100.0, 100.0, 100.0];
        let rows = [(a, [0.9, 0.0]), (b, [0.8, 0.0]), (c, [0.7, 0.0])];
        assert_eq!(decode_rows(&rows, 0.25, 0.3).len(), 2);
        let at = decode_rows(&rows, 0.25, 1.0 / 3.0 + 1e-6);
        assert_eq!(at.len(), 3, "IoU == threshold is not suppressed");
    }

    #[test]
    fn confidence_threshold_is_strict() {
        let a = [100.0, 100.0, 10.0, 10.0];
        let b = [300.0, 100.0, 10.0, 10.0];
        let dets = decode_rows(&[(a, [0.5, 0.0]), (b, [0.0, 0.5001])], 0.5, 0.45);
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class_id, 1);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_scores() {
        let dets = decode_rows(&[([50.0, 50.0, 10.0, 10.0], [0.6, 0.6])], 0.25, 0.45);
        assert_eq!(dets[0].class_id, 0);
    }

    /// The letterbox geometry the preprocessing uses for this fit.
    fn fit(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> LetterboxInfo {
        let desc = crate::frame::FrameDesc {
            format: crate::frame::PixelFormat::Rgb24,
            width: src_w,
            height: src_h,
        };
        crate::preprocess::Letterbox::new(desc, dst_w, dst_h)
            .unwrap()
            .info()
    }

    #[test]
    fn letterbox_maps_back_and_clips() {
        let lb = fit(1280, 720, 640, 640);
        assert_eq!(
            (lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y),
            (0.5, 0.5, 0.0, 140.0)
        );
        // Top-left of the image area, a point in the pad, a point past the
        // right edge.
        assert_eq!(lb.to_source(0.0, 140.0), (0.0, 0.0));
        assert_eq!(lb.to_source(320.0, 100.0), (640.0, 0.0));
        assert_eq!(lb.to_source(700.0, 600.0), (1280.0, 720.0));
        let odd = fit(641, 480, 320, 320);
        // (320 - 480*320/641)/2 - 0.1 = 40.08... -> 40
        assert_eq!(odd.pad_y, 40.0);

        let rows = [([320.0, 320.0, 100.0, 50.0], [0.9, 0.0])];
        let t = v8_from_rows(&rows);
        let mut dec = Decoder::new(
            DecoderKind::YoloV8,
            &[1, 4 + C, 1],
            Some(C),
            0.25,
            0.45,
            10,
            10,
        )
        .unwrap();
        let mut out = dec.new_list();
        dec.decode(&t, &lb, &mut out).unwrap();
        assert_eq!(out.as_slice()[0].bbox, [540.0, 310.0, 740.0, 410.0]);
    }

    #[test]
    fn detection_list_counts_overflow() {
        let mut l = DetectionList::with_capacity(2);
        let d = Detection::default();
        assert!(l.push(d).is_ok() && l.push(d).is_ok());
        assert!(l.push(d).is_err());
        assert_eq!((l.len(), l.capacity(), l.overflow_total()), (2, 2, 1));
        l.clear();
        assert!(l.is_empty());

        // A list smaller than max_detections: the decoder reports overflow.
        let rows = [
            ([10.0, 10.0, 5.0, 5.0], [0.9, 0.0]),
            ([100.0, 10.0, 5.0, 5.0], [0.8, 0.0]),
            ([200.0, 10.0, 5.0, 5.0], [0.7, 0.0]),
        ];
        let t = v8_from_rows(&rows);
        let mut dec = Decoder::new(
            DecoderKind::YoloV8,
            &[1, 4 + C, 3],
            Some(C),
            0.25,
            0.45,
            10,
            10,
        )
        .unwrap();
        let mut small = DetectionList::with_capacity(2);
        let stats = dec
            .decode(&t, &LetterboxInfo::identity(640, 480), &mut small)
            .unwrap();
        assert_eq!((stats.kept, stats.overflow, small.len()), (3, 1, 2));
        assert_eq!(small.overflow_total(), 1);
    }

    #[test]
    fn shape_errors_name_the_shape_and_layout() {
        let err = |k, s: &[usize], c| {
            Decoder::new(k, s, c, 0.25, 0.45, 300, 30000)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(DecoderKind::YoloV5, &[1, 84, 8400], None),
            "model output is 1x84x8400 but decoder yolov5 expects [1, N, 5+C] \
             (84 boxes of 8400 values looks like the yolov8 [1, 4+C, N] layout; \
             set the class count to override)"
        );
        assert!(err(DecoderKind::YoloV8, &[1, 84, 8400], Some(3))
            .contains("with 3 classes, i.e. 7 values per box, not 84"));
        assert!(err(DecoderKind::YoloV8, &[84, 8400], None).contains("(got 2 dims)"));
        assert!(err(DecoderKind::YoloV8, &[2, 84, 8400], None).contains("batch 2"));
        assert!(err(DecoderKind::YoloV5, &[1, 25200, 5], None).contains("no class scores"));
        let ok = Decoder::new(
            DecoderKind::YoloV5,
            &[1, 25200, 85],
            None,
            0.25,
            0.45,
            300,
            30000,
        )
        .unwrap();
        assert_eq!(
            (ok.num_classes(), ok.anchors(), ok.output_len()),
            (80, 25200, 25200 * 85)
        );
        let ok8 = Decoder::new(
            DecoderKind::YoloV8,
            &[1, 84, 8400],
            Some(80),
            0.25,
            0.45,
            300,
            30000,
        )
        .unwrap();
        assert_eq!(ok8.num_classes(), 80);
        assert!(Decoder::new(
            DecoderKind::YoloV8,
            &[1, 84, 8400],
            None,
            1.5,
            0.45,
            300,
            30000
        )
        .unwrap_err()
        .to_string()
        .contains("conf_threshold 1.5"));
    }

    #[test]
    fn wrong_output_length_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(
            DecoderKind::YoloV8,
            &[1, 84, 8400],
            None,
            0.25,
            0.45,
            300,
            30000,
        )
        .unwrap();
        let mut out = dec.new_list();
        let e = dec
            .decode(&[0.0; 10], &LetterboxInfo::identity(640, 640), &mut out)
            .unwrap_err();
        assert!(matches!(
            e,
            PostprocessError::OutputLen {
                expected: 705600,
                got: 10
            }
        ));
    }

    #[test]
    fn nan_scores_and_boxes_do_not_panic() {
        let rows = [
            ([f32::NAN, 10.0, 5.0, 5.0], [0.9, 0.0]),
            ([100.0, 10.0, 5.0, 5.0], [f32::NAN, 0.8]),
            ([100.0, 10.0, 5.0, 5.0], [0.3, 0.8]),
        ];
        let dets = decode_rows(&rows, 0.25, 0.45);
        // The NaN-score box is dropped (NaN wins the argmax and fails the
        // threshold, like torch); the NaN-coordinate box survives.
        assert_eq!(dets.len(), 2);
    }

    /// `[1, N, 6]` rows: threshold (strictly above) and `max_detections`
    /// in the model's row order, no NMS (two identical boxes both stay),
    /// boxes mapped through the letterbox, bad class ids skipped.
    #[test]
    fn end2end_rows_are_thresholded_and_capped_not_suppressed() {
        let rows: [[f32; 6]; 6] = [
            [10.0, 20.0, 110.0, 220.0, 0.9, 2.0],
            [10.0, 20.0, 110.0, 220.0, 0.8, 2.0],
            [50.0, 60.0, 70.0, 80.0, 0.7, 7.0],
            [50.0, 60.0, 70.0, 80.0, 0.6, 1.5],
            [0.0, 0.0, 320.0, 320.0, 0.25, 0.0],
            [1.0, 2.0, 3.0, 4.0, 0.5, 1.0],
        ];
        let t: Vec<f32> = rows.iter().flatten().copied().collect();
        let lb = fit(640, 480, 320, 320);
        let run = |max_det: usize| {
            let mut dec = Decoder::new(
                DecoderKind::End2End,
                &[1, 6, 6],
                Some(3),
                0.25,
                0.45,
                max_det,
                100,
            )
            .unwrap();
            assert_eq!(dec.output_len(), 36);
            let mut out = dec.new_list();
            let st = dec.decode(&t, &lb, &mut out).unwrap();
            (out.as_slice().to_vec(), st)
        };
        let (dets, st) = run(10);
        let want: Vec<(u32, f32)> = vec![(2, 0.9), (2, 0.8), (1, 0.5)];
        let got: Vec<(u32, f32)> = dets.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, want);
        assert_eq!(st.kept, 3);
        let (x1, y1) = lb.to_source(10.0, 20.0);
        let (x2, y2) = lb.to_source(110.0, 220.0);
        assert_eq!(dets[0].bbox, [x1, y1, x2, y2]);
        assert_eq!(dets[0].bbox, dets[1].bbox);
        let (dets, _) = run(2);
        assert_eq!(dets.len(), 2);
    }

    #[test]
    fn end2end_needs_six_values_per_row_and_a_class_count() {
        let e = Decoder::new(
            DecoderKind::End2End,
            &[1, 300, 7],
            Some(3),
            0.25,
            0.45,
            10,
            10,
        )
        .unwrap_err();
        assert!(e.to_string().contains("1x300x7"), "{e}");
        let e =
            Decoder::new(DecoderKind::End2End, &[1, 300, 6], None, 0.25, 0.45, 10, 10).unwrap_err();
        assert!(e.to_string().contains("labels"), "{e}");
    }
}
