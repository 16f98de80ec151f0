//! The ground stage: places each detection on the ground plane in the
//! vehicle frame (and, when the model saw the undistorted image, maps its
//! box back to raw source pixels). Only in the chain when a calibration is
//! configured.
//!
//! Boot allocates (the calibration's copy); `run` never allocates.
//! Postprocess thread.

use super::{FrameCtx, Stage};
use crate::calibration::Calibration;
use crate::frame::Detection;

pub struct GroundStage {
    calibration: Calibration,
    /// The model saw the undistorted image: boxes come out rectified.
    rectified: bool,
}

impl GroundStage {
    pub fn new(calibration: Calibration, rectified: bool) -> GroundStage {
        GroundStage {
            calibration,
            rectified,
        }
    }
}

impl Stage for GroundStage {
    fn name(&self) -> &'static str {
        "ground"
    }

    /// Frame path: never allocates.
    fn run(&mut self, f: &mut FrameCtx<'_>) {
        let cal = &self.calibration;
        for d in f.dets.as_mut_slice() {
            d.ground = ground_of(cal, d, self.rectified);
            if self.rectified {
                d.bbox = cal.rectified_box_to_source(d.bbox);
            }
        }
    }
}

/// Ground position of a detection: the ray through the undistorted bottom
/// centre of its box, intersected with the ground plane. A box from the
/// rectified image is already undistorted; a raw one is undistorted here.
/// Boxes span `[0, width]` (pixel centres at +0.5), calibration pixels are
/// OpenCV's (centres at integers), hence the half pixel.
fn ground_of(cal: &Calibration, d: &Detection, rectified: bool) -> Option<[f32; 2]> {
    let u = 0.5 * f64::from(d.bbox[0] + d.bbox[2]) - 0.5;
    let v = f64::from(d.bbox[3]) - 0.5;
    let g = if rectified {
        cal.rectified_pixel_ray_ground(u, v)
    } else {
        cal.pixel_ray_ground(u, v)
    };
    g.map(|[x, y]| [x as f32, y as f32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counters;
    use crate::postprocess::DetectionList;
    use crate::ring::SlotMeta;

    #[test]
    fn places_boxes_on_the_ground_and_leaves_sky_boxes_without() {
        let cal = Calibration::front_camera();
        let (w, h) = (cal.width() as f32, cal.height() as f32);
        let mut dets = DetectionList::with_capacity(4);
        // Bottom centre near the image bottom: ground close ahead; a box
        // ending high in the image looks at the sky.
        let near = [w * 0.45, h * 0.8, w * 0.55, h];
        let sky = [w * 0.45, 0.0, w * 0.55, h * 0.05];
        for bbox in [near, sky] {
            dets.push(Detection {
                bbox,
                ..Detection::default()
            })
            .unwrap();
        }
        let mut stage = GroundStage::new(cal.clone(), false);
        let meta = SlotMeta::default();
        let counters = Counters::default();
        let mut ctx = FrameCtx {
            output: &[],
            meta: &meta,
            dets: &mut dets,
            counters: &counters,
        };
        stage.run(&mut ctx);
        let d = dets.as_slice();
        let [x, y] = d[0].ground.expect("the near box is on the ground");
        assert!(x > 0.0 && y.abs() < 1.0, "{x} {y}");
        assert_eq!(d[0].ground, ground_of(&cal, &d[0], false));
        assert_eq!(d[1].ground, None);
        assert_eq!(d[0].bbox, near, "raw boxes are not moved");
    }
}
