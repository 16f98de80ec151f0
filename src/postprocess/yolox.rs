//! YOLOX heads (`decoder = "yolox"` and `"yolox-decoded"`): turns a
//! `[1, N, 5 + C]` YOLOX output into the decoder's candidates; threshold
//! order, NMS and the letterbox are the shared ones in `decode.rs`.
//!
//! What the two exports hold, from YOLOX's `yolox/models/yolo_head.py`
//! (`YOLOXHead.forward`, eval mode): every level's output is
//! `cat([reg_output, obj_output.sigmoid(), cls_output.sigmoid()])`, so
//! objectness and class scores are probabilities in both variants; only
//! the boxes differ:
//!
//! * `decode_in_inference = False` (YOLOX's `tools/export_onnx.py`
//!   default, and what Autoware's `tensorrt_yolox` requires: "YOLOX head
//!   must output raw value", `generateYoloxProposals`): per anchor
//!   `tx, ty, tw, th` in grid units. Decoded here as `decode_outputs` and
//!   Autoware do: `cx = (tx + gx) * s`, `cy = (ty + gy) * s`,
//!   `w = exp(tw) * s`, `h = exp(th) * s`, anchors ordered by level
//!   (strides 8, 16, 32, and Autoware's optional fourth head of stride 4
//!   last), then row, then column. `decoder = "yolox"`.
//! * `decode_in_inference = True`: `decode_outputs` ran in the graph, the
//!   boxes are `cx, cy, w, h` in input pixels. `decoder = "yolox-decoded"`.
//!
//! The output does not say which of the two it is (Autoware tells only
//! plain outputs from EfficientNMS ones, by the number of bindings), so
//! the config names it.
//!
//! Scores as YOLOX's `yolox/utils/boxes.py` `postprocess`: the class is the
//! argmax of the class probabilities (first of equals, as `torch.max`) and
//! the score is objectness times that probability. The threshold is
//! perceptd's `score > conf_threshold` (YOLOX: `>=`), NMS is class-aware
//! (YOLOX's default; Autoware's `nmsSortedBboxes` is class-agnostic and
//! keeps every class above the threshold per anchor).
//!
//! Allocation: [`Grid::new`] allocates at boot, one cell per anchor, after
//! checking that the cells it would make are exactly the output's `N`
//! anchors (whose tensor the memory budget already counted); [`gather`]
//! never allocates. Called from the postprocess thread.

use super::decode::{candidate, Candidate};
use super::PostprocessError;

/// Strides of YOLOX's three heads, and Autoware's four-head variant (an
/// extra stride-4 head appended last, `output_strides_ = {8, 16, 32, 4}`).
const STRIDES: [&[usize]; 2] = [&[8, 16, 32], &[8, 16, 32, 4]];

/// One anchor's grid cell: column, row and stride, as f32 like the
/// reference's `grids` and `strides` tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cell {
    gx: f32,
    gy: f32,
    stride: f32,
}

/// The raw head's per-anchor grid, precomputed at boot.
#[derive(Debug)]
pub(super) struct Grid {
    cells: Vec<Cell>,
}

/// Feature-map cells of one level: each stride-2 step of the network
/// rounds up, so a level of stride `s` is `ceil(w / s) x ceil(h / s)`
/// (`decode_outputs` takes them from the feature maps' shapes).
fn level(input: [usize; 2], s: usize) -> (usize, usize) {
    (input[0].div_ceil(s), input[1].div_ceil(s))
}

fn count(input: [usize; 2], strides: &[usize]) -> Option<usize> {
    strides.iter().try_fold(0usize, |acc, &s| {
        let (w, h) = level(input, s);
        acc.checked_add(w.checked_mul(h)?)
    })
}

impl Grid {
    /// Boot: the grid of a `[w, h]` model input whose output has
    /// `anchors` rows. Err (one line, naming both) when no stride set of
    /// YOLOX makes that many cells.
    pub(super) fn new(input: [usize; 2], anchors: usize) -> Result<Grid, PostprocessError> {
        let strides = STRIDES
            .iter()
            .find(|s| count(input, s) == Some(anchors))
            .ok_or_else(|| {
                let three = count(input, STRIDES[0]).map_or("too many".into(), |n| n.to_string());
                PostprocessError::Config(format!(
                    "model.decoder = \"yolox\": the output has {anchors} anchors but a {}x{} input \
                     makes {three} grid cells at strides 8, 16, 32 (YOLOX's raw head has one \
                     anchor per cell; an output decoded in the graph is decoder \"yolox-decoded\")",
                    input[0], input[1]
                ))
            })?;
        let mut cells = Vec::with_capacity(anchors);
        for &s in strides.iter() {
            let (w, h) = level(input, s);
            for gy in 0..h {
                for gx in 0..w {
                    cells.push(Cell {
                        gx: gx as f32,
                        gy: gy as f32,
                        stride: s as f32,
                    });
                }
            }
        }
        Ok(Grid { cells })
    }

    /// Anchor `i`'s `tx, ty, tw, th` to `cx, cy, w, h` in input pixels.
    /// Frame path: never allocates.
    #[inline]
    fn decode(&self, i: usize, t: &[f32]) -> [f32; 4] {
        let c = self.cells[i];
        [
            (t[0] + c.gx) * c.stride,
            (t[1] + c.gy) * c.stride,
            t[2].exp() * c.stride,
            t[3].exp() * c.stride,
        ]
    }
}

/// `[1, N, 5 + classes]` rows into `cands` (at least `N` long); boxes
/// through `grid` (raw head) or as they are (decoded in the graph).
/// Returns the candidate count. Frame path: never allocates.
pub(super) fn gather(
    output: &[f32],
    classes: usize,
    conf: f32,
    grid: Option<&Grid>,
    cands: &mut [Candidate],
) -> usize {
    let mut n = 0;
    for (i, row) in output.chunks_exact(5 + classes).enumerate() {
        let obj = row[4];
        // Class probabilities are at most 1, so obj * p <= obj (also in
        // f32): an anchor whose objectness fails the threshold cannot
        // pass. A positive test, so that NaN objectness is skipped.
        let passes = obj > conf;
        if !passes {
            continue;
        }
        let (mut best, mut best_k) = (row[5], 0u32);
        for (k, &p) in row[6..].iter().enumerate() {
            // A NaN probability wins and then sticks, as torch's max does.
            if p > best || p.is_nan() && !best.is_nan() {
                best = p;
                best_k = k as u32 + 1;
            }
        }
        let score = obj * best;
        let passes = score > conf;
        if !passes {
            continue;
        }
        let [cx, cy, w, h] = match grid {
            Some(g) => g.decode(i, &row[..4]),
            None => [row[0], row[1], row[2], row[3]],
        };
        cands[n] = candidate(cx, cy, w, h, score, best_k);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_run_by_level_then_row_then_column() {
        // 128x96: 16x12 + 8x6 + 4x3 = 252 cells.
        let g = Grid::new([128, 96], 252).unwrap();
        assert_eq!(g.cells.len(), 252);
        let cell = |gx: f32, gy: f32, stride: f32| Cell { gx, gy, stride };
        assert_eq!(g.cells[0], cell(0.0, 0.0, 8.0));
        assert_eq!(g.cells[1], cell(1.0, 0.0, 8.0));
        // Row 1 of stride 8 starts after the 16 columns of row 0.
        assert_eq!(g.cells[16], cell(0.0, 1.0, 8.0));
        assert_eq!(g.cells[191], cell(15.0, 11.0, 8.0));
        assert_eq!(g.cells[192], cell(0.0, 0.0, 16.0));
        assert_eq!(g.cells[192 + 8 * 2 + 5], cell(5.0, 2.0, 16.0));
        assert_eq!(g.cells[240], cell(0.0, 0.0, 32.0));
        assert_eq!(g.cells[251], cell(3.0, 2.0, 32.0));
    }

    #[test]
    fn autoware_four_head_grid_puts_stride_4_last() {
        // 64x64: 64 + 16 + 4 cells, then 16x16 = 256 of stride 4.
        let g = Grid::new([64, 64], 84 + 256).unwrap();
        assert_eq!(
            g.cells[83],
            Cell {
                gx: 1.0,
                gy: 1.0,
                stride: 32.0
            }
        );
        assert_eq!(
            g.cells[84],
            Cell {
                gx: 0.0,
                gy: 0.0,
                stride: 4.0
            }
        );
    }

    #[test]
    fn wrong_anchor_count_names_both_numbers() {
        // A YOLOv5 head (3 anchors per cell) is not a YOLOX grid.
        let e = Grid::new([640, 640], 25200).unwrap_err().to_string();
        assert!(
            e.contains("25200 anchors") && e.contains("640x640") && e.contains("8400 grid cells"),
            "{e}"
        );
    }

    #[test]
    fn raw_cell_decodes_by_hand() {
        // Anchor 192 + 8 * 2 + 5: column 5, row 2 of stride 16.
        let g = Grid::new([128, 96], 252).unwrap();
        let i = 192 + 8 * 2 + 5;
        let [cx, cy, w, h] = g.decode(i, &[0.25, -0.5, 0.0, 2f32.ln()]);
        assert_eq!((cx, cy), ((0.25 + 5.0) * 16.0, (-0.5 + 2.0) * 16.0));
        assert_eq!((cx, cy), (84.0, 24.0));
        assert_eq!(w, 16.0);
        assert!((h - 32.0).abs() < 1e-5, "{h}");
    }

    /// One row per anchor: `[t or box (4), obj, 3 class probabilities]`.
    fn rows(n: usize, set: &[(usize, [f32; 8])]) -> Vec<f32> {
        let mut t = vec![0.0; n * 8];
        for (i, r) in set {
            t[i * 8..i * 8 + 8].copy_from_slice(r);
        }
        t
    }

    #[test]
    fn score_is_objectness_times_the_best_class() {
        let g = Grid::new([128, 96], 252).unwrap();
        let t = rows(
            252,
            &[
                // score 0.8 * 0.6 = 0.48, class 2 (argmax of probabilities).
                (0, [0.5, 0.5, 0.0, 0.0, 0.8, 0.1, 0.3, 0.6]),
                // obj 0.9 but best class 0.2: 0.18 fails 0.25.
                (1, [0.0, 0.0, 0.0, 0.0, 0.9, 0.2, 0.1, 0.0]),
                // Equal probabilities: the first class wins.
                (251, [0.0, 0.0, 0.0, 0.0, 0.5, 0.7, 0.7, 0.1]),
            ],
        );
        let mut cands = vec![Candidate::default(); 252];
        let n = gather(&t, 3, 0.25, Some(&g), &mut cands);
        assert_eq!(n, 2);
        let a = cands[0];
        assert_eq!((a.class, a.score), (2, 0.8 * 0.6));
        // Cell (0, 0) of stride 8: centre (0.5 + 0) * 8 = 4, w = h = 8.
        assert_eq!(a.bbox, [0.0, 0.0, 8.0, 8.0]);
        let b = cands[1];
        assert_eq!((b.class, b.score), (0, 0.5 * 0.7));
        // Cell (3, 2) of stride 32: centre (96, 64), 32 wide.
        assert_eq!(b.bbox, [80.0, 48.0, 112.0, 80.0]);
    }

    #[test]
    fn decoded_rows_keep_their_boxes() {
        let t = rows(2, &[(1, [50.0, 40.0, 20.0, 10.0, 0.9, 0.1, 0.9, 0.0])]);
        let mut cands = vec![Candidate::default(); 2];
        assert_eq!(gather(&t, 3, 0.25, None, &mut cands), 1);
        assert_eq!(cands[0].bbox, [40.0, 35.0, 60.0, 45.0]);
        assert_eq!(cands[0].class, 1);
    }

    #[test]
    fn nan_objectness_or_class_does_not_pass() {
        let t = rows(
            3,
            &[
                (0, [0.0, 0.0, 0.0, 0.0, f32::NAN, 0.9, 0.0, 0.0]),
                (1, [0.0, 0.0, 0.0, 0.0, 0.9, 0.9, f32::NAN, 0.0]),
            ],
        );
        let mut cands = vec![Candidate::default(); 3];
        assert_eq!(gather(&t, 3, 0.25, None, &mut cands), 0);
    }
}
