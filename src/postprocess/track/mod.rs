//! The tracking stage: gives detections stable identities over time and,
//! on the ground, velocities and time to collision.
//!
//! Runs after ground positions. Each track has a constant-velocity Kalman
//! filter in the image (box centre and size) for association and, once its
//! detections have ground positions, a second one on the ground plane
//! (`x`, `y` in the vehicle frame) for velocity and time to collision.
//!
//! Association is ByteTrack's, in three rounds, each an optimal assignment
//! ([`assign`]) with gating:
//! 1. detections with `score >= high_score` against confirmed and lost
//!    tracks; cost `1 - IoU` (predicted box vs detection), or, for a pair
//!    whose boxes do not overlap but whose sizes agree, a cost from the
//!    ground distance (so a track lost behind another object is found again
//!    where it should be); a pair whose ground positions are too far apart
//!    (Mahalanobis gate) is never matched;
//! 2. the remaining detections with `low_score <= score < high_score`
//!    against the confirmed tracks still unmatched (IoU only, at least
//!    [`WEAK_MATCH_IOU`]);
//! 3. the remaining confident detections against tentative tracks.
//!
//! Life of a track: tentative on its first detection (score at least
//! `new_track_score`, and not a duplicate of a detection already on a
//! track this frame), confirmed after `confirm_hits` hits, tentative
//! tracks die on their first miss; a confirmed track missed becomes lost,
//! and a lost track is removed after `max_misses` misses in a row. On the
//! very first frame new tracks are confirmed at once (as in ByteTrack).
//! Only confirmed tracks are reported, and not through a weak detection
//! (`score < high_score`) within `edge_margin_px` of the image's left or
//! right border: that is an object mostly outside the image, whose box is
//! neither where nor how big the object is (its track goes on, and is
//! reported again once a confident detection or one clear of the border
//! matches it). A track's class is the majority vote of its detections'
//! classes.
//!
//! Capacity is fixed at boot (`max_tracks`); a new track that does not fit
//! is not started and counted ([`TrackerStats::full`]).
//!
//! Allocation: [`Tracker::new`] allocates every buffer (boot); [`Tracker::run`]
//! never allocates. Called on the postprocess thread.

mod assign;
pub mod bench;
mod kalman;

use crate::frame::{Detection, TrackInfo};
use assign::Assigner;
use kalman::Kalman;
use nalgebra::{Matrix2, SMatrix, Vector2, Vector4};
use serde::Deserialize;
use thiserror::Error;

/// Cost given to pairs that must not be matched.
const INFEASIBLE: f64 = 1e6;
/// Squared Mahalanobis gate on the ground (chi² with 2 degrees of
/// freedom, 99.9 %).
const GROUND_GATE: f64 = 13.8;
/// The ground point (bottom centre of the face nearest the camera) can
/// move across an object's footprint from one frame to the next (a car
/// turning its side to the camera, a pedestrian's feet): the gate allows
/// for this much extra spread (m, standard deviation).
const FOOTPRINT_SIGMA_M: f64 = 1.0;
/// A ground measurement further than this (squared Mahalanobis distance)
/// from the prediction is folded in with its covariance scaled up to this
/// distance, so that one jump of the ground point does not throw the
/// velocity off (a Huber-style robust update).
const ROBUST_D2: f64 = 9.0;
/// A detection overlapping a detection already on a track this much (IoU)
/// starts no track of its own: it is the same object seen twice, e.g. boxes
/// of two classes that class-aware NMS kept on one pedestrian.
const DUPLICATE_IOU: f64 = 0.6;
/// Least IoU of a weak detection and a track's predicted box in the
/// second round (ByteTrack: 0.5). The predicted box follows the measured
/// width (ByteTrack's keeps a slowly changing aspect ratio), so a box
/// narrowed by partial occlusion predicts a narrower box, and a weak
/// detection of the same object overlaps it less: 0.4 keeps those tracks
/// (tracking benchmark, README).
const WEAK_MATCH_IOU: f64 = 0.4;
/// Most bytes the cost matrix may take.
const COST_BUDGET_BYTES: usize = 64 << 20;
/// Image filter: measurement noise per axis as a fraction of box height
/// (ByteTrack's `1/20`), white acceleration in box heights per s², and the
/// initial rate uncertainty in box heights per s.
const IMG_MEAS: f64 = 1.0 / 20.0;
const IMG_ACCEL: f64 = 4.0;
const IMG_RATE0: f64 = 2.0;
/// Ground filter: uncertainty of a new track's velocity (m/s), and the
/// error floor of one ground position (m).
const GROUND_RATE0: f64 = 15.0;
const GROUND_FLOOR_M: f64 = 0.05;
/// Time step used when a frame has no usable time stamp difference (s).
const NOMINAL_DT: f64 = 1.0 / 30.0;
/// Longest time step the filters are advanced by at once (s).
const MAX_DT: f64 = 2.0;
/// Below this closing speed (m/s) there is no time to collision.
const MIN_CLOSING_MPS: f64 = 0.1;

#[derive(Debug, Error)]
pub enum TrackError {
    #[error("tracking.{field} = {value}: {msg}")]
    Config {
        field: &'static str,
        value: String,
        msg: &'static str,
    },
}

/// `[tracking]` in the config file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// false: no tracking stage, and the output has no track fields.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Tracks held at once (tentative, confirmed and lost together).
    #[serde(default = "d_max_tracks")]
    pub max_tracks: usize,
    /// Detections at or above this score take part in the first round.
    #[serde(default = "d_high")]
    pub high_score: f32,
    /// Detections below this score are ignored by the tracker.
    #[serde(default = "d_low")]
    pub low_score: f32,
    /// Unmatched detections at or above this score start a track.
    #[serde(default = "d_new")]
    pub new_track_score: f32,
    /// Least IoU x score of a match in the first round (ByteTrack:
    /// `match_thresh` 0.8, i.e. 0.2).
    #[serde(default = "d_match_iou")]
    pub match_iou: f32,
    /// Hits that confirm a tentative track (N).
    #[serde(default = "d_confirm")]
    pub confirm_hits: u32,
    /// Misses in a row after which a lost track is removed (M).
    #[serde(default = "d_misses")]
    pub max_misses: u32,
    /// Width (m) of the corridor ahead of the vehicle, centred on its
    /// x axis, in which closing objects get a time to collision.
    #[serde(default = "d_corridor")]
    pub corridor_width_m: f32,
    /// Ground filter: white acceleration noise (m/s²).
    #[serde(default = "d_accel")]
    pub accel_sigma: f32,
    /// Ground filter: error of the box's bottom edge in pixels, turned into
    /// metres along and across the viewing ray with the camera geometry.
    #[serde(default = "d_pixel")]
    pub pixel_sigma: f32,
    /// A velocity is reported once its standard deviation is below this
    /// (m/s).
    #[serde(default = "d_vel_sigma")]
    pub velocity_sigma_max: f32,
    /// A weak detection (below `high_score`) whose box comes this close
    /// (pixels) to the image's left or right border is not reported: the
    /// object is mostly outside the image. 0 turns this off.
    #[serde(default = "d_edge")]
    pub edge_margin_px: f32,
}

fn d_true() -> bool {
    true
}
fn d_max_tracks() -> usize {
    128
}
fn d_high() -> f32 {
    0.5
}
fn d_low() -> f32 {
    0.1
}
fn d_new() -> f32 {
    0.6
}
fn d_match_iou() -> f32 {
    0.2
}
fn d_confirm() -> u32 {
    2
}
fn d_misses() -> u32 {
    30
}
fn d_corridor() -> f32 {
    2.5
}
fn d_accel() -> f32 {
    1.0
}
fn d_pixel() -> f32 {
    1.0
}
fn d_vel_sigma() -> f32 {
    1.0
}
fn d_edge() -> f32 {
    12.0
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            enabled: true,
            max_tracks: d_max_tracks(),
            high_score: d_high(),
            low_score: d_low(),
            new_track_score: d_new(),
            match_iou: d_match_iou(),
            confirm_hits: d_confirm(),
            max_misses: d_misses(),
            corridor_width_m: d_corridor(),
            accel_sigma: d_accel(),
            pixel_sigma: d_pixel(),
            velocity_sigma_max: d_vel_sigma(),
            edge_margin_px: d_edge(),
        }
    }
}

impl TrackingConfig {
    /// Checks every field; the error names the first bad one and its value.
    pub fn check(&self) -> Result<(), TrackError> {
        let bad = |field: &'static str, value: String, msg: &'static str| {
            Err(TrackError::Config { field, value, msg })
        };
        if !(1..=1024).contains(&self.max_tracks) {
            return bad(
                "max_tracks",
                self.max_tracks.to_string(),
                "expected 1..=1024",
            );
        }
        for (field, v) in [
            ("high_score", self.high_score),
            ("low_score", self.low_score),
            ("new_track_score", self.new_track_score),
            ("match_iou", self.match_iou),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, v.to_string(), "expected 0..=1");
            }
        }
        if self.low_score > self.high_score {
            return bad(
                "low_score",
                self.low_score.to_string(),
                "must not exceed tracking.high_score",
            );
        }
        if !(1..=1000).contains(&self.confirm_hits) {
            return bad(
                "confirm_hits",
                self.confirm_hits.to_string(),
                "expected 1..=1000",
            );
        }
        if !(1..=100_000).contains(&self.max_misses) {
            return bad(
                "max_misses",
                self.max_misses.to_string(),
                "expected 1..=100000",
            );
        }
        for (field, v, max) in [
            ("corridor_width_m", self.corridor_width_m, 100.0),
            ("accel_sigma", self.accel_sigma, 100.0),
            ("pixel_sigma", self.pixel_sigma, 100.0),
            ("velocity_sigma_max", self.velocity_sigma_max, 1000.0),
        ] {
            if !(v > 0.0 && v <= max) {
                return bad(
                    field,
                    v.to_string(),
                    "expected a positive number (and not huge)",
                );
            }
        }
        if !(0.0..=10_000.0).contains(&self.edge_margin_px) {
            return bad(
                "edge_margin_px",
                self.edge_margin_px.to_string(),
                "expected 0..=10000 pixels",
            );
        }
        Ok(())
    }
}

/// The camera geometry that turns pixel errors into ground errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Focal length (pixels).
    pub focal_px: f64,
    /// Height of the camera above the ground (m).
    pub camera_height_m: f64,
}

/// Counters since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackerStats {
    /// Tracks started.
    pub started: u64,
    /// New tracks not started because `max_tracks` were held.
    pub full: u64,
    /// Tracks held now.
    pub live: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tentative,
    Confirmed,
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Track {
    id: u64,
    state: State,
    hits: u32,
    misses: u32,
    /// Frame number of the first detection.
    born: u64,
    class_id: u32,
    image: Kalman<4, 8>,
    ground: Option<Kalman<2, 4>>,
}

/// One detection, prepared for association.
#[derive(Debug, Clone, Copy, Default)]
struct Meas {
    /// Box centre and size.
    img: Vector4<f64>,
    ground: Option<(Vector2<f64>, Matrix2<f64>)>,
    /// Track slot it was matched to this frame.
    matched: Option<usize>,
}

/// The tracker: fixed-capacity track table and association buffers.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackingConfig,
    geometry: Option<Geometry>,
    /// Width of the frames the detection boxes are in (pixels).
    frame_width: f32,
    max_dets: usize,
    num_classes: usize,
    slots: Box<[Option<Track>]>,
    /// `num_classes` vote counters per slot.
    votes: Box<[u32]>,
    meas: Box<[Meas]>,
    /// Candidate track slots and detection indexes of one round.
    rows: Vec<usize>,
    cols: Vec<usize>,
    cost: Box<[f64]>,
    row_to_col: Box<[Option<usize>]>,
    /// Per candidate track / detection of a round: has a feasible partner.
    row_live: Box<[bool]>,
    col_live: Box<[bool]>,
    /// Per slot: matched this frame.
    hit: Box<[bool]>,
    assigner: Assigner,
    frame: u64,
    last_ns: Option<u64>,
    next_id: u64,
    stats: TrackerStats,
}

impl Tracker {
    /// Boot: allocates every buffer for `max_dets` detections per frame of
    /// `num_classes` classes. `geometry` is the camera's when detections
    /// come with ground positions (calibrated), else `None`.
    /// `frame_width` is the width of the frames the boxes are in.
    pub fn new(
        cfg: &TrackingConfig,
        max_dets: usize,
        num_classes: usize,
        geometry: Option<Geometry>,
        frame_width: usize,
    ) -> Result<Tracker, TrackError> {
        cfg.check()?;
        let n = cfg.max_tracks;
        let cost_bytes = n
            .saturating_mul(max_dets)
            .saturating_mul(std::mem::size_of::<f64>());
        if cost_bytes > COST_BUDGET_BYTES {
            return Err(TrackError::Config {
                field: "max_tracks",
                value: n.to_string(),
                msg: "with model.max_detections the cost matrix exceeds its 64 MiB budget",
            });
        }
        let side = n.max(max_dets);
        Ok(Tracker {
            cfg: *cfg,
            geometry,
            frame_width: frame_width as f32,
            max_dets,
            num_classes: num_classes.max(1),
            slots: vec![None; n].into_boxed_slice(),
            votes: vec![0; n * num_classes.max(1)].into_boxed_slice(),
            meas: vec![Meas::default(); max_dets].into_boxed_slice(),
            rows: Vec::with_capacity(n),
            cols: Vec::with_capacity(max_dets),
            cost: vec![0.0; n * max_dets].into_boxed_slice(),
            row_to_col: vec![None; side].into_boxed_slice(),
            row_live: vec![false; n].into_boxed_slice(),
            col_live: vec![false; max_dets].into_boxed_slice(),
            hit: vec![false; n].into_boxed_slice(),
            assigner: Assigner::new(side),
            frame: 0,
            last_ns: None,
            next_id: 1,
            stats: TrackerStats::default(),
        })
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Tracks one frame taken at `t_ns` (any monotonic nanosecond clock;
    /// the source's own time stamps make replays deterministic): matches
    /// `dets` to tracks and sets each detection's [`Detection::track`]
    /// (and its class to its track's) when its track is confirmed.
    /// Frame path: never allocates.
    pub fn run(&mut self, t_ns: u64, dets: &mut [Detection]) {
        self.frame += 1;
        let dt = match self.last_ns {
            Some(last) if t_ns > last => ((t_ns - last) as f64 * 1e-9).min(MAX_DT),
            _ => NOMINAL_DT,
        };
        self.last_ns = Some(t_ns);
        let n_dets = dets.len().min(self.max_dets);
        let dets = &mut dets[..n_dets];
        self.predict(dt);
        self.prepare(dets);
        self.hit.fill(false);

        let (high, low) = (self.cfg.high_score, self.cfg.low_score);
        // Round 1: confident detections vs confirmed and lost tracks.
        self.round(
            dets,
            |t| t.state != State::Tentative,
            |s| s >= high,
            1.0 - f64::from(self.cfg.match_iou),
            true,
            true,
        );
        // Round 2: weak detections vs confirmed tracks still unmatched.
        self.round(
            dets,
            |t| t.state == State::Confirmed,
            |s| s >= low && s < high,
            1.0 - WEAK_MATCH_IOU,
            false,
            false,
        );
        // Round 3: confident detections vs tentative tracks.
        self.round(
            dets,
            |t| t.state == State::Tentative,
            |s| s >= high,
            0.7,
            false,
            true,
        );
        self.age_unmatched();
        self.start_tracks(dets);
        self.report(dets);
        self.stats.live = self.slots.iter().filter(|s| s.is_some()).count() as u64;
    }

    fn predict(&mut self, dt: f64) {
        let accel = f64::from(self.cfg.accel_sigma);
        for t in self.slots.iter_mut().flatten() {
            let h = t.image.pos(3).max(1.0);
            if t.state == State::Lost {
                // A lost box keeps its size (ByteTrack zeroes the rate of
                // its height for the same reason).
                t.image.set_rate(2, 0.0);
                t.image.set_rate(3, 0.0);
            }
            t.image.predict(dt, &[h * IMG_ACCEL; 4]);
            if let Some(g) = &mut t.ground {
                g.predict(dt, &[accel; 2]);
            }
        }
    }

    fn prepare(&mut self, dets: &[Detection]) {
        for (m, d) in self.meas.iter_mut().zip(dets) {
            let [x1, y1, x2, y2] = d.bbox.map(f64::from);
            m.img = Vector4::new(
                0.5 * (x1 + x2),
                0.5 * (y1 + y2),
                (x2 - x1).max(1.0),
                (y2 - y1).max(1.0),
            );
            m.ground = match (d.ground, self.geometry) {
                (Some([x, y]), Some(geo)) if x.is_finite() && y.is_finite() => {
                    let z = Vector2::new(f64::from(x), f64::from(y));
                    Some((z, ground_noise(&geo, f64::from(self.cfg.pixel_sigma), &z)))
                }
                _ => None,
            };
            m.matched = None;
        }
    }

    /// One association round between the unmatched tracks `track_ok`
    /// accepts and the unmatched detections whose score `det_ok` accepts;
    /// pairs costing more than `max_cost` are not matched. With
    /// `fuse_score` the cost is `1 - (1 - cost) * score` (ByteTrack's
    /// fusion: a weaker detection needs a better overlap).
    fn round(
        &mut self,
        dets: &[Detection],
        track_ok: impl Fn(&Track) -> bool,
        det_ok: impl Fn(f32) -> bool,
        max_cost: f64,
        ground_match: bool,
        fuse_score: bool,
    ) {
        self.rows.clear();
        self.cols.clear();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(t) = s {
                if !self.hit[i] && track_ok(t) {
                    self.rows.push(i);
                }
            }
        }
        for (j, d) in dets.iter().enumerate() {
            if self.meas[j].matched.is_none() && det_ok(d.score) {
                self.cols.push(j);
            }
        }
        let (nr, nc) = (self.rows.len(), self.cols.len());
        if nr == 0 || nc == 0 {
            return;
        }
        self.row_live[..nr].fill(false);
        self.col_live[..nc].fill(false);
        for (r, &slot) in self.rows.iter().enumerate() {
            let Some(t) = &self.slots[slot] else { continue };
            for (c, &j) in self.cols.iter().enumerate() {
                let mut cost = pair_cost(t, &self.meas[j], ground_match);
                if fuse_score && cost < INFEASIBLE {
                    // ByteTrack's score fusion: similarity IoU x score.
                    cost = 1.0 - (1.0 - cost) * f64::from(dets[j].score);
                }
                let ok = cost <= max_cost;
                self.cost[r * nc + c] = if ok { cost } else { INFEASIBLE };
                self.row_live[r] |= ok;
                self.col_live[c] |= ok;
            }
        }
        // Tracks and detections without a feasible partner cannot be
        // matched: leave them out of the assignment, whose cost grows with
        // the cube of its size. Compacting in place is safe: every entry
        // moves to an index no larger than its own.
        let nc2 = self.col_live[..nc].iter().filter(|l| **l).count();
        let mut nr2 = 0;
        for r in 0..nr {
            if !self.row_live[r] {
                continue;
            }
            let mut c2 = 0;
            for c in 0..nc {
                if self.col_live[c] {
                    self.cost[nr2 * nc2 + c2] = self.cost[r * nc + c];
                    c2 += 1;
                }
            }
            self.rows[nr2] = self.rows[r];
            nr2 += 1;
        }
        let mut c2 = 0;
        for c in 0..nc {
            if self.col_live[c] {
                self.cols[c2] = self.cols[c];
                c2 += 1;
            }
        }
        let (nr, nc) = (nr2, nc2);
        if nr == 0 || nc == 0 {
            return;
        }
        if !self
            .assigner
            .solve(&self.cost, nr, nc, nc, &mut self.row_to_col)
        {
            return;
        }
        for r in 0..nr {
            let Some(c) = self.row_to_col[r] else {
                continue;
            };
            if self.cost[r * nc + c] >= INFEASIBLE {
                continue;
            }
            let (slot, j) = (self.rows[r], self.cols[c]);
            self.hit[slot] = true;
            self.meas[j].matched = Some(slot);
            self.update(slot, &dets[j], j);
        }
    }

    fn update(&mut self, slot: usize, d: &Detection, j: usize) {
        let m = self.meas[j];
        let confirm_hits = self.cfg.confirm_hits;
        let nc = self.num_classes;
        let Some(t) = &mut self.slots[slot] else {
            return;
        };
        t.image.update(&m.img, &image_noise(&m.img));
        if let Some((z, r)) = &m.ground {
            match &mut t.ground {
                Some(g) => {
                    let d2 = g.mahalanobis2(z, r);
                    if d2 > ROBUST_D2 && d2.is_finite() {
                        g.update(z, &(r * (d2 / ROBUST_D2)));
                    } else {
                        g.update(z, r);
                    }
                }
                None => t.ground = Some(Kalman::new(z, r, &[GROUND_RATE0; 2])),
            }
        }
        t.hits += 1;
        t.misses = 0;
        t.state = match t.state {
            State::Tentative if t.hits < confirm_hits => State::Tentative,
            _ => State::Confirmed,
        };
        let votes = &mut self.votes[slot * nc..(slot + 1) * nc];
        if let Some(v) = votes.get_mut(d.class_id as usize) {
            *v += 1;
        }
        let mut best = t.class_id as usize;
        for (c, &v) in votes.iter().enumerate() {
            if v > votes.get(best).copied().unwrap_or(0) {
                best = c;
            }
        }
        if votes.get(best).is_some() {
            t.class_id = best as u32;
        }
    }

    fn age_unmatched(&mut self) {
        let max_misses = self.cfg.max_misses;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if self.hit[i] {
                continue;
            }
            let Some(t) = s else { continue };
            t.misses += 1;
            let remove = match t.state {
                State::Tentative => true,
                State::Confirmed => {
                    t.state = State::Lost;
                    t.misses > max_misses
                }
                State::Lost => t.misses > max_misses,
            };
            if remove {
                *s = None;
            }
        }
    }

    fn start_tracks(&mut self, dets: &[Detection]) {
        let first_frame = self.frame == 1;
        let nc = self.num_classes;
        for (j, d) in dets.iter().enumerate() {
            if self.meas[j].matched.is_some() || d.score < self.cfg.new_track_score {
                continue;
            }
            let img = self.meas[j].img;
            let duplicate = self.meas[..dets.len()]
                .iter()
                .any(|o| o.matched.is_some() && iou(&o.img, &img) > DUPLICATE_IOU);
            if duplicate {
                continue;
            }
            let Some(slot) = self.slots.iter().position(|s| s.is_none()) else {
                self.stats.full += 1;
                continue;
            };
            let m = self.meas[j];
            let h = m.img[3];
            let state = if first_frame || self.cfg.confirm_hits <= 1 {
                State::Confirmed
            } else {
                State::Tentative
            };
            self.slots[slot] = Some(Track {
                id: self.next_id,
                state,
                hits: 1,
                misses: 0,
                born: self.frame,
                class_id: d.class_id,
                image: Kalman::new(&m.img, &image_noise(&m.img), &[h * IMG_RATE0; 4]),
                ground: m
                    .ground
                    .map(|(z, r)| Kalman::new(&z, &r, &[GROUND_RATE0; 2])),
            });
            let votes = &mut self.votes[slot * nc..(slot + 1) * nc];
            votes.fill(0);
            if let Some(v) = votes.get_mut(d.class_id as usize) {
                *v = 1;
            }
            self.hit[slot] = true;
            self.meas[j].matched = Some(slot);
            self.next_id += 1;
            self.stats.started += 1;
        }
    }

    fn report(&self, dets: &mut [Detection]) {
        let half = f64::from(self.cfg.corridor_width_m) * 0.5;
        let vmax2 = f64::from(self.cfg.velocity_sigma_max).powi(2);
        for (j, d) in dets.iter_mut().enumerate() {
            d.track = None;
            let Some(slot) = self.meas[j].matched else {
                continue;
            };
            let Some(t) = &self.slots[slot] else { continue };
            if t.state != State::Confirmed || self.at_edge_and_weak(d) {
                continue;
            }
            let (velocity, ttc_s) = match &t.ground {
                Some(g) if g.p[(2, 2)].max(g.p[(3, 3)]) <= vmax2 => {
                    let (x, y, vx, vy) = (g.pos(0), g.pos(1), g.rate(0), g.rate(1));
                    (Some([vx as f32, vy as f32]), ttc(x, y, vx, vy, half))
                }
                _ => (None, None),
            };
            d.class_id = t.class_id;
            d.track = Some(TrackInfo {
                id: t.id,
                age_frames: (self.frame - t.born + 1).min(u64::from(u32::MAX)) as u32,
                velocity,
                ttc_s: ttc_s.map(|s| s as f32),
            });
        }
    }
}

impl Tracker {
    /// A weak detection within `edge_margin_px` of the left or right
    /// border: the object is mostly outside the image.
    fn at_edge_and_weak(&self, d: &Detection) -> bool {
        let margin = self.cfg.edge_margin_px;
        margin > 0.0
            && d.score < self.cfg.high_score
            && (d.bbox[0] <= margin || d.bbox[2] >= self.frame_width - margin)
    }
}

/// Association cost of track `t` and detection `m`: `1 - IoU` of the
/// predicted box; with `ground_match`, for a lost track and a box of
/// similar size the cost may instead come from the ground distance
/// (`0.5 .. 1` inside the gate); pairs outside the ground gate are
/// infeasible.
fn pair_cost(t: &Track, m: &Meas, ground_match: bool) -> f64 {
    let pred = Vector4::new(
        t.image.pos(0),
        t.image.pos(1),
        t.image.pos(2),
        t.image.pos(3),
    );
    let mut cost = 1.0 - iou(&pred, &m.img);
    if let (Some(g), Some((z, r))) = (&t.ground, &m.ground) {
        let spread = Matrix2::identity() * (FOOTPRINT_SIGMA_M * FOOTPRINT_SIGMA_M);
        let d2 = g.mahalanobis2(z, &(r + spread));
        if d2.is_nan() || d2 > GROUND_GATE {
            return INFEASIBLE;
        }
        let ratio = m.img[3] / pred[3].max(1.0);
        if ground_match && t.state == State::Lost && (0.7..=1.0 / 0.7).contains(&ratio) {
            cost = cost.min(0.5 + 0.5 * d2 / GROUND_GATE);
        }
    }
    cost
}

/// IoU of two boxes given as centre and size.
fn iou(a: &Vector4<f64>, b: &Vector4<f64>) -> f64 {
    let ix =
        (a[0] + a[2] * 0.5).min(b[0] + b[2] * 0.5) - (a[0] - a[2] * 0.5).max(b[0] - b[2] * 0.5);
    let iy =
        (a[1] + a[3] * 0.5).min(b[1] + b[3] * 0.5) - (a[1] - a[3] * 0.5).max(b[1] - b[3] * 0.5);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Measurement covariance of a box (ByteTrack's: a fraction of its height).
fn image_noise(m: &Vector4<f64>) -> SMatrix<f64, 4, 4> {
    let s = (m[3] * IMG_MEAS).max(0.5);
    SMatrix::<f64, 4, 4>::identity() * (s * s)
}

/// Covariance of a ground position `z` measured through the bottom edge
/// of a box: a pixel error moves it by about `r²/(f h)` along the viewing
/// ray and `r/f` across it (`r` range, `f` focal length, `h` camera height).
fn ground_noise(geo: &Geometry, pixel_sigma: f64, z: &Vector2<f64>) -> Matrix2<f64> {
    let r = z.norm().max(0.5);
    let along = pixel_sigma * r * r / (geo.focal_px * geo.camera_height_m) + GROUND_FLOOR_M;
    let across = pixel_sigma * r / geo.focal_px + GROUND_FLOOR_M;
    let (s, c) = (z[1] / r, z[0] / r);
    let rot = Matrix2::new(c, -s, s, c);
    rot * Matrix2::new(along * along, 0.0, 0.0, across * across) * rot.transpose()
}

/// Time until an object at `(x, y)` moving at `(vx, vy)` relative to the
/// vehicle reaches `x = 0`, if it is closing in and is then within `half`
/// of the vehicle's axis.
fn ttc(x: f64, y: f64, vx: f64, vy: f64, half: f64) -> Option<f64> {
    if x <= 0.0 || vx > -MIN_CLOSING_MPS {
        return None;
    }
    let t = x / -vx;
    let y_at = y + vy * t;
    (y_at.abs() <= half && t.is_finite()).then_some(t)
}

/// The tracker as the chain's stage after ground positions. Time is the
/// source's own stamp where it has one (replays are deterministic), else
/// the capture time.
impl super::Stage for Tracker {
    fn name(&self) -> &'static str {
        "track"
    }

    fn run(&mut self, f: &mut super::FrameCtx<'_>) {
        let stamp = f.meta.stamp;
        Tracker::run(
            self,
            stamp.source_ns.unwrap_or(stamp.capture_ns),
            f.dets.as_mut_slice(),
        );
    }

    fn tracks(&self) -> bool {
        true
    }

    fn end_warning(&self) -> Option<String> {
        let full = self.stats.full;
        (full > 0).then(|| {
            format!(
                "tracking: {full} new tracks not started because [tracking] max_tracks ({}) were held",
                self.cfg.max_tracks
            )
        })
    }
}

#[cfg(test)]
mod tests;
