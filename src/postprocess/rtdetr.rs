//! RT-DETR (`decoder = "rtdetr"`; Ultralytics metadata `head` =
//! `RTDETRDecoder`): a transformer detector whose queries are already
//! one box each, so there is no NMS. Boxes are cx, cy, w, h normalised to
//! the model input (0..1); class scores are already sigmoid-ed in the
//! graph (`RTDETRDecoder.forward`: `dec_scores.sigmoid()`).
//!
//! Two output layouts, told apart by the row width and the class count
//! (from the labels):
//!
//! * `[1, K, 6]` rows cx, cy, w, h, score, class: Ultralytics 8.4's
//!   export, whose head keeps the top K of queries x classes with TopK
//!   (`RTDETRDecoder.postprocess`), in descending score order. As
//!   `RTDETRPredictor.postprocess`: keep rows with score `> conf`, the
//!   first `max_detections` of them, in row order.
//! * `[1, Q, 4 + C]` (earlier exports, C != 2): per query the best class
//!   score (first of equal ones), threshold `> conf`, then the
//!   `max_detections` highest (ties by query order).
//!
//! With exactly 2 classes both read 6 values per row; the rows layout (the
//! current exporter's) is taken.
//!
//! Boxes are scaled to model-input pixels, then the letterbox is undone
//! (clipped to the image, as for every decoder). Frame path: never
//! allocates; the scratch is sized at boot.

use super::decode::DecodeStats;
use super::{Detection, DetectionList, LetterboxInfo};

/// Which of the two layouts the output has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `[1, K, 6]`: cx, cy, w, h, score, class.
    Rows,
    /// `[1, Q, 4 + C]`: cx, cy, w, h, C class scores.
    Scores,
}

/// The RT-DETR part of a decoder: layout, model input size, scratch.
#[derive(Debug)]
pub(super) struct RtDetr {
    layout: Layout,
    /// Values per row (6, or 4 + C).
    width: usize,
    /// Model input `[width, height]` in pixels; `None` until the boot
    /// code says it.
    input: Option<[f32; 2]>,
    /// Scores layout: candidate queries, their best score and class.
    order: Vec<u32>,
    best: Vec<(f32, u32)>,
}

/// `(queries, classes, layout)` for `shape` (`[1, Q, W]` checked by the
/// caller), or what is wrong with it.
pub(super) fn check_shape(
    shape: &[usize],
    num_classes: Option<usize>,
) -> Result<(usize, usize, Layout), String> {
    let (queries, width) = (shape[1], shape[2]);
    if queries == 0 {
        return Err(" (no queries)".into());
    }
    match num_classes {
        Some(c) if c > 0 && width == 6 => Ok((queries, c, Layout::Rows)),
        Some(c) if c > 0 && width == 4 + c => Ok((queries, c, Layout::Scores)),
        Some(c) if c > 0 => Err(format!(
            " with {c} classes: {width} values per row is neither 6 (cx, cy, w, h, score, class) nor 4 + {c}"
        )),
        _ => Err(
            " (the class count comes from the labels, and there are none)".into(),
        ),
    }
}

impl RtDetr {
    /// Boot: scratch for `queries` rows.
    pub(super) fn new(layout: Layout, queries: usize, classes: usize) -> RtDetr {
        let scratch = if layout == Layout::Scores { queries } else { 0 };
        RtDetr {
            layout,
            width: if layout == Layout::Rows {
                6
            } else {
                4 + classes
            },
            input: None,
            order: vec![0; scratch],
            best: vec![(0.0, 0); scratch],
        }
    }

    pub(super) fn width(&self) -> usize {
        self.width
    }

    pub(super) fn layout(&self) -> Layout {
        self.layout
    }

    pub(super) fn set_input_size(&mut self, w: usize, h: usize) {
        self.input = Some([w as f32, h as f32]);
    }

    pub(super) fn input_size(&self) -> Option<[f32; 2]> {
        self.input
    }

    /// One frame. `output` has the checked length. Frame path: never
    /// allocates.
    pub(super) fn decode(
        &mut self,
        output: &[f32],
        classes: usize,
        conf: f32,
        max_detections: usize,
        letterbox: &LetterboxInfo,
        out: &mut DetectionList,
    ) -> DecodeStats {
        let [iw, ih] = self.input.unwrap_or([0.0, 0.0]);
        let mut stats = DecodeStats::default();
        let mut emit = |row: &[f32], score: f32, class: u32, stats: &mut DecodeStats| {
            stats.kept += 1;
            // Ultralytics: xywh2xyxy on the normalised box, then * size.
            let (hw, hh) = (row[2] / 2.0, row[3] / 2.0);
            let (x1, y1) = letterbox.to_source((row[0] - hw) * iw, (row[1] - hh) * ih);
            let (x2, y2) = letterbox.to_source((row[0] + hw) * iw, (row[1] + hh) * ih);
            let det = Detection {
                class_id: class,
                score,
                bbox: [x1, y1, x2, y2],
                ..Detection::default()
            };
            if out.push(det).is_err() {
                stats.overflow += 1;
            }
        };
        match self.layout {
            Layout::Rows => {
                for row in output.chunks_exact(6) {
                    let (score, c) = (row[4], row[5]);
                    // Positive tests, so that NaN scores and classes are
                    // skipped; a class that is not an integer in range
                    // cannot come from the head.
                    let class_ok = c >= 0.0 && c < classes as f32 && c.fract() == 0.0;
                    let passes = score > conf;
                    if !passes || !class_ok {
                        continue;
                    }
                    stats.candidates += 1;
                    emit(row, score, c as u32, &mut stats);
                    if stats.kept == max_detections {
                        break;
                    }
                }
            }
            Layout::Scores => {
                let mut n = 0;
                for (q, row) in output.chunks_exact(self.width).enumerate() {
                    let mut best = (row[4], 0u32);
                    for (k, &s) in row[5..].iter().enumerate() {
                        if s > best.0 || s.is_nan() && !best.0.is_nan() {
                            best = (s, k as u32 + 1);
                        }
                    }
                    if best.0 > conf {
                        self.order[n] = q as u32;
                        self.best[q] = best;
                        n += 1;
                    }
                }
                stats.candidates = n;
                let best = &self.best;
                let order = &mut self.order[..n];
                // Descending score, ties by query: no NaN passed `> conf`.
                order.sort_unstable_by(|&a, &b| {
                    best[b as usize]
                        .0
                        .total_cmp(&best[a as usize].0)
                        .then(a.cmp(&b))
                });
                for &q in order.iter().take(max_detections) {
                    let (score, class) = best[q as usize];
                    let at = q as usize * self.width;
                    emit(&output[at..at + 4], score, class, &mut stats);
                }
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::{Decoder, DecoderKind};

    /// A 128x64 source letterboxed into a 64x64 input: scale 0.5, 16 rows
    /// of padding above and below.
    fn letterbox() -> LetterboxInfo {
        LetterboxInfo {
            scale_x: 0.5,
            scale_y: 0.5,
            pad_x: 0.0,
            pad_y: 16.0,
            src_w: 128.0,
            src_h: 64.0,
        }
    }

    fn decoder(shape: &[usize], classes: usize, conf: f64, max_det: usize) -> Decoder {
        Decoder::new(
            DecoderKind::RtDetr,
            shape,
            Some(classes),
            conf,
            0.45,
            max_det,
            10,
        )
        .and_then(|d| d.with_input_size([64, 64]))
        .unwrap()
    }

    fn run(d: &mut Decoder, output: &[f32]) -> (Vec<Detection>, DecodeStats) {
        let mut out = d.new_list();
        let stats = d.decode(output, &letterbox(), &mut out).unwrap();
        (out.as_slice().to_vec(), stats)
    }

    #[test]
    fn rows_are_thresholded_capped_and_mapped_to_source_pixels() {
        // cx, cy, w, h (normalised), score, class
        #[rustfmt::skip]
        let rows = [
            0.5, 0.5, 0.25, 0.5, 0.9, 2.0,
            0.25, 0.5, 0.125, 0.25, 0.8, 0.0,
            0.5, 0.5, 0.25, 0.5, 0.5, 1.0, // == conf: not kept (strict)
            0.75, 0.5, 0.25, 0.25, 0.7, 1.0, // after the cap
        ];
        let mut d = decoder(&[1, 4, 6], 3, 0.5, 2);
        let (dets, stats) = run(&mut d, &rows);
        assert_eq!((stats.candidates, stats.kept), (2, 2));
        assert_eq!(dets.len(), 2);
        // x: (0.5 -+ 0.125) * 64 = 24, 40 -> / 0.5 = 48, 80
        // y: (0.5 -+ 0.25) * 64 = 16, 48 -> (- 16) / 0.5 = 0, 64
        assert_eq!((dets[0].class_id, dets[0].score), (2, 0.9));
        assert_eq!(dets[0].bbox, [48.0, 0.0, 80.0, 64.0]);
        assert_eq!(dets[1].class_id, 0);
        // x: (0.25 -+ 0.0625) * 64 = 12, 20 -> 24, 40
        // y: (0.5 -+ 0.125) * 64 = 24, 40 -> 16, 48
        assert_eq!(dets[1].bbox, [24.0, 16.0, 40.0, 48.0]);
        // Without the cap, the fourth row comes too.
        let mut d = decoder(&[1, 4, 6], 3, 0.5, 10);
        assert_eq!(run(&mut d, &rows).0.len(), 3);
    }

    #[test]
    fn rows_with_a_bad_class_or_nan_score_are_skipped() {
        #[rustfmt::skip]
        let rows = [
            0.5, 0.5, 0.1, 0.1, 0.9, 3.0, // class 3 of 3
            0.5, 0.5, 0.1, 0.1, 0.9, 0.5, // not an integer
            0.5, 0.5, 0.1, 0.1, f32::NAN, 0.0,
            0.5, 0.5, 0.1, 0.1, 0.6, f32::NAN,
            0.5, 0.5, 0.1, 0.1, 0.6, 1.0,
        ];
        let mut d = decoder(&[1, 5, 6], 3, 0.25, 10);
        let (dets, _) = run(&mut d, &rows);
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class_id, 1);
    }

    #[test]
    fn score_layout_takes_the_best_class_and_the_highest_queries() {
        // 4 queries, 3 classes: [1, 4, 7]
        #[rustfmt::skip]
        let q = [
            0.5, 0.5, 0.25, 0.5, 0.1, 0.6, 0.6, // best: class 1 (first of equal)
            0.5, 0.5, 0.25, 0.5, 0.2, 0.3, 0.1, // below conf
            0.5, 0.5, 0.25, 0.5, 0.95, 0.0, 0.0, // best overall
            0.5, 0.5, 0.25, 0.5, 0.0, 0.0, 0.7,
        ];
        let mut d = decoder(&[1, 4, 7], 3, 0.5, 2);
        let (dets, stats) = run(&mut d, &q);
        assert_eq!(stats.candidates, 3);
        let got: Vec<(u32, f32)> = dets.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.95), (2, 0.7)]);
        assert_eq!(dets[0].bbox, [48.0, 0.0, 80.0, 64.0]);
        let mut d = decoder(&[1, 4, 7], 3, 0.5, 10);
        let got: Vec<u32> = run(&mut d, &q).0.iter().map(|d| d.class_id).collect();
        assert_eq!(got, vec![0, 2, 1]);
    }

    #[test]
    fn shapes_and_missing_input_size_are_errors() {
        let e = Decoder::new(
            DecoderKind::RtDetr,
            &[1, 300, 9],
            Some(3),
            0.25,
            0.45,
            10,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1x300x9") && e.contains("neither 6"), "{e}");
        let e = Decoder::new(DecoderKind::RtDetr, &[1, 300, 6], None, 0.25, 0.45, 10, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels"), "{e}");
        let e = Decoder::new(DecoderKind::RtDetr, &[300, 6], Some(3), 0.25, 0.45, 10, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 dims"), "{e}");
        // Layout from the class count: 80 classes read [1, 300, 84] as scores.
        let d = Decoder::new(
            DecoderKind::RtDetr,
            &[1, 300, 84],
            Some(80),
            0.25,
            0.45,
            10,
            10,
        )
        .unwrap();
        assert_eq!(d.output_len(), 300 * 84);
        // No input size: an error, not boxes at the origin.
        let mut d =
            Decoder::new(DecoderKind::RtDetr, &[1, 1, 6], Some(3), 0.25, 0.45, 10, 10).unwrap();
        let mut out = d.new_list();
        let e = d
            .decode(&[0.5, 0.5, 0.1, 0.1, 0.9, 0.0], &letterbox(), &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("input size"), "{e}");
    }
}
