//! Foxglove messages, shared by the MCAP recorder ([`super::mcap`]) and
//! the Foxglove WebSocket server ([`super::foxglove`]): the channels, their
//! schemas and the per-frame encoding.
//!
//! Encoding: JSON messages described by JSON Schema (`jsonschema`), one of
//! the two encodings Foxglove reads for its well-known schemas (the other
//! is protobuf). Chosen because it needs no protobuf descriptor set (no
//! `protoc` step, nothing generated to keep in sync), the messages are
//! written with `write!` into buffers kept between frames, and a recorded
//! file can be read with any JSON tool. The price: the JPEG travels as
//! base64 (a third larger). The schemas below carry the field names and
//! types of Foxglove's published definitions (`foxglove.CompressedImage`,
//! `foxglove.ImageAnnotations`, `foxglove.SceneUpdate`,
//! `foxglove.FrameTransform`) for the fields we write, with
//! `contentEncoding: base64` on the image bytes, which is how Foxglove
//! knows to decode them; the metrics use our own `perceptd.FrameMetrics`.
//!
//! Channels (the last two only with a calibration):
//! * `/camera/image` (`foxglove.CompressedImage`): the camera frame as JPEG,
//!   frame id `camera_optical`;
//! * `/camera/annotations` (`foxglove.ImageAnnotations`): each detection's
//!   box (a closed polygon) and label;
//! * `/perceptd/metrics` (`perceptd.FrameMetrics`): the frame's per-stage
//!   latencies, drops and detection count;
//! * `/scene` (`foxglove.SceneUpdate`): each detection with a ground
//!   position as a box standing on the ground in the `vehicle` frame, with
//!   its label (all earlier entities deleted first);
//! * `/tf` (`foxglove.FrameTransform`): `vehicle` -> `camera_optical`,
//!   the camera mount from the calibration's extrinsics.
//!
//! Every message carries the frame's source timestamp (its capture time
//! on CLOCK_MONOTONIC when the source has none).
//!
//! Allocation: [`Encoder::new`] and [`schema`] allocate (boot). On the
//! viewer thread, [`Encoder::encode`] writes into the [`Messages`]
//! buffers, which grow to the largest frame seen and are then reused; the
//! JPEG it is given comes from the viewer thread's
//! [`super::viewer::Pictures`] (encoded once per frame for the MCAP
//! recorder and the Foxglove server together).

use super::draw::PALETTE;
use super::viewer::Shot;
use crate::calibration::Calibration;
use crate::frame::Detection;
use crate::postprocess::Labels;
use nalgebra::{Rotation3, UnitQuaternion};
use std::io::Write;

/// One channel: topic and schema name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub topic: &'static str,
    pub schema_name: &'static str,
}

/// Message encoding of every channel, and its schemas' encoding.
pub const MESSAGE_ENCODING: &str = "json";
pub const SCHEMA_ENCODING: &str = "jsonschema";

pub const IMAGE: usize = 0;
pub const ANNOTATIONS: usize = 1;
pub const METRICS: usize = 2;
pub const SCENE: usize = 3;
pub const TRANSFORM: usize = 4;
/// Number of channels.
pub const CHANNELS: usize = 5;

/// All channels, indexed by [`IMAGE`], [`ANNOTATIONS`], ...
pub const ALL: [Channel; CHANNELS] = [
    Channel {
        topic: "/camera/image",
        schema_name: "foxglove.CompressedImage",
    },
    Channel {
        topic: "/camera/annotations",
        schema_name: "foxglove.ImageAnnotations",
    },
    Channel {
        topic: "/perceptd/metrics",
        schema_name: "perceptd.FrameMetrics",
    },
    Channel {
        topic: "/scene",
        schema_name: "foxglove.SceneUpdate",
    },
    Channel {
        topic: "/tf",
        schema_name: "foxglove.FrameTransform",
    },
];

/// The channels a run has: the scene and the transform need a calibration.
pub fn channels(calibrated: bool) -> usize {
    if calibrated {
        CHANNELS
    } else {
        SCENE
    }
}

/// The frame of the images and annotations.
pub const CAMERA_FRAME: &str = "camera_optical";
/// The frame of the scene (ISO 8855: x forward, y left, z up).
pub const VEHICLE_FRAME: &str = "vehicle";

const TIME: &str = r#"{"type":"object","title":"time","properties":{"sec":{"type":"integer","minimum":0},"nsec":{"type":"integer","minimum":0,"maximum":999999999}}}"#;
const COLOR: &str = r#"{"title":"foxglove.Color","type":"object","properties":{"r":{"type":"number"},"g":{"type":"number"},"b":{"type":"number"},"a":{"type":"number"}}}"#;
const POINT2: &str = r#"{"title":"foxglove.Point2","type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}}}"#;
const VECTOR3: &str = r#"{"title":"foxglove.Vector3","type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"},"z":{"type":"number"}}}"#;
const QUATERNION: &str = r#"{"title":"foxglove.Quaternion","type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"},"z":{"type":"number"},"w":{"type":"number"}}}"#;

fn object(title: &str, props: &[(&str, String)]) -> String {
    let mut s = format!(r#"{{"title":"{title}","type":"object","properties":{{"#);
    for (i, (k, v)) in props.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(r#""{k}":{v}"#));
    }
    s.push_str("}}");
    s
}

fn array(items: &str) -> String {
    format!(r#"{{"type":"array","items":{items}}}"#)
}

fn ty(t: &str) -> String {
    format!(r#"{{"type":"{t}"}}"#)
}

/// The JSON Schema of channel `ch`. Boot.
pub fn schema(ch: usize) -> String {
    let time = || TIME.to_string();
    let pose = || {
        object(
            "foxglove.Pose",
            &[
                ("position", VECTOR3.into()),
                ("orientation", QUATERNION.into()),
            ],
        )
    };
    match ch {
        IMAGE => object(
            "foxglove.CompressedImage",
            &[
                ("timestamp", time()),
                ("frame_id", ty("string")),
                (
                    "data",
                    r#"{"type":"string","contentEncoding":"base64"}"#.into(),
                ),
                ("format", ty("string")),
            ],
        ),
        ANNOTATIONS => {
            let points = object(
                "foxglove.PointsAnnotation",
                &[
                    ("timestamp", time()),
                    ("type", ty("integer")),
                    ("points", array(POINT2)),
                    ("outline_color", COLOR.into()),
                    ("outline_colors", array(COLOR)),
                    ("fill_color", COLOR.into()),
                    ("thickness", ty("number")),
                ],
            );
            let text = object(
                "foxglove.TextAnnotation",
                &[
                    ("timestamp", time()),
                    ("position", POINT2.into()),
                    ("text", ty("string")),
                    ("font_size", ty("number")),
                    ("text_color", COLOR.into()),
                    ("background_color", COLOR.into()),
                ],
            );
            object(
                "foxglove.ImageAnnotations",
                &[
                    ("circles", array(r#"{"type":"object"}"#)),
                    ("points", array(&points)),
                    ("labels", array(&text)),
                ],
            )
        }
        METRICS => object(
            "perceptd.FrameMetrics",
            &[
                ("timestamp", time()),
                ("seq", ty("integer")),
                ("queue_ms", ty("number")),
                ("preprocess_ms", ty("number")),
                ("inference_ms", ty("number")),
                ("postprocess_ms", ty("number")),
                ("e2e_ms", ty("number")),
                ("dropped_total", ty("integer")),
                ("detections", ty("integer")),
            ],
        ),
        SCENE => {
            let cube = object(
                "foxglove.CubePrimitive",
                &[
                    ("pose", pose()),
                    ("size", VECTOR3.into()),
                    ("color", COLOR.into()),
                ],
            );
            let text = object(
                "foxglove.TextPrimitive",
                &[
                    ("pose", pose()),
                    ("billboard", ty("boolean")),
                    ("font_size", ty("number")),
                    ("scale_invariant", ty("boolean")),
                    ("color", COLOR.into()),
                    ("text", ty("string")),
                ],
            );
            let entity = object(
                "foxglove.SceneEntity",
                &[
                    ("timestamp", time()),
                    ("frame_id", ty("string")),
                    ("id", ty("string")),
                    ("lifetime", r#"{"type":"object","title":"duration","properties":{"sec":{"type":"integer"},"nsec":{"type":"integer","minimum":0,"maximum":999999999}}}"#.into()),
                    ("frame_locked", ty("boolean")),
                    ("cubes", array(&cube)),
                    ("texts", array(&text)),
                ],
            );
            let deletion = object(
                "foxglove.SceneEntityDeletion",
                &[
                    ("timestamp", time()),
                    ("type", ty("integer")),
                    ("id", ty("string")),
                ],
            );
            object(
                "foxglove.SceneUpdate",
                &[
                    ("deletions", array(&deletion)),
                    ("entities", array(&entity)),
                ],
            )
        }
        _ => object(
            "foxglove.FrameTransform",
            &[
                ("timestamp", time()),
                ("parent_frame_id", ty("string")),
                ("child_frame_id", ty("string")),
                ("translation", VECTOR3.into()),
                ("rotation", QUATERNION.into()),
            ],
        ),
    }
}

/// One frame's messages, one buffer per channel (kept between frames).
pub struct Messages {
    /// Nanoseconds: the frame's source timestamp (capture time without).
    pub time_ns: u64,
    pub data: [Vec<u8>; CHANNELS],
    /// Channels this run has ([`channels`]); the rest stay empty.
    pub count: usize,
}

impl Messages {
    /// Boot: buffers sized for a frame of `frame_bytes` JPEG-ish bytes.
    pub fn new(count: usize, frame_bytes: usize) -> Messages {
        let mut data: [Vec<u8>; CHANNELS] = Default::default();
        data[IMAGE] = Vec::with_capacity(frame_bytes);
        for d in &mut data[1..] {
            d.reserve(16 * 1024);
        }
        Messages {
            time_ns: 0,
            data,
            count,
        }
    }
}

/// Writes a frame's messages (viewer thread).
pub struct Encoder {
    calibration: Option<Calibration>,
    /// `vehicle` -> `camera_optical` as (translation, quaternion x y z w).
    mount: Option<([f64; 3], [f64; 4])>,
    /// Class names escaped for JSON, by class id.
    names: Vec<String>,
}

impl Encoder {
    /// Boot.
    pub fn new(labels: &Labels, calibration: Option<Calibration>) -> Encoder {
        let mount = calibration.as_ref().map(|c| {
            let t = c.translation();
            let q = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(
                c.optical_to_vehicle(),
            ));
            ([t.x, t.y, t.z], [q.i, q.j, q.k, q.w])
        });
        Encoder {
            calibration,
            mount,
            names: labels
                .names()
                .iter()
                .map(|n| crate::text::json_escape(n))
                .collect(),
        }
    }

    /// The channels this encoder writes.
    pub fn channels(&self) -> usize {
        channels(self.calibration.is_some())
    }

    /// Writes every channel's message for `shot` into `out`, with `jpeg`
    /// (the camera frame, not annotated) as the image.
    pub fn encode(&self, jpeg: &[u8], shot: &Shot, out: &mut Messages) -> Result<(), String> {
        let r = &shot.record;
        let t = r.source_ns.unwrap_or(r.capture_ns);
        out.time_ns = t;
        let ts = Stamp(t);
        let io = |e: std::io::Error| e.to_string();

        let b = &mut out.data[IMAGE];
        b.clear();
        write!(
            b,
            r#"{{"timestamp":{ts},"frame_id":"{CAMERA_FRAME}","format":"jpeg","data":""#
        )
        .map_err(io)?;
        base64(b, jpeg);
        b.extend_from_slice(b"\"}");

        let b = &mut out.data[ANNOTATIONS];
        b.clear();
        b.extend_from_slice(br#"{"circles":[],"points":["#);
        for (i, d) in shot.dets.iter().enumerate() {
            let [x1, y1, x2, y2] = d.bbox.map(finite);
            let c = Rgba::class(d.class_id);
            write!(
                b,
                r#"{}{{"timestamp":{ts},"type":2,"points":[{{"x":{x1},"y":{y1}}},{{"x":{x2},"y":{y1}}},{{"x":{x2},"y":{y2}}},{{"x":{x1},"y":{y2}}}],"outline_color":{c},"outline_colors":[],"fill_color":{},"thickness":2}}"#,
                comma(i),
                Rgba([0.0; 4]),
            )
            .map_err(io)?;
        }
        b.extend_from_slice(br#"],"labels":["#);
        for (i, d) in shot.dets.iter().enumerate() {
            let [x1, y1, ..] = d.bbox.map(finite);
            write!(
                b,
                r#"{}{{"timestamp":{ts},"position":{{"x":{x1},"y":{}}},"text":""#,
                comma(i),
                (y1 - 4.0).max(12.0)
            )
            .map_err(io)?;
            self.label(b, d).map_err(io)?;
            write!(
                b,
                r#"","font_size":14,"text_color":{},"background_color":{}}}"#,
                Rgba([0.0, 0.0, 0.0, 1.0]),
                Rgba::class(d.class_id)
            )
            .map_err(io)?;
        }
        b.extend_from_slice(b"]}");

        let b = &mut out.data[METRICS];
        b.clear();
        write!(
            b,
            r#"{{"timestamp":{ts},"seq":{},"queue_ms":{},"preprocess_ms":{},"inference_ms":{},"postprocess_ms":{},"e2e_ms":{},"dropped_total":{},"detections":{}}}"#,
            r.seq,
            finite(r.queue_ms),
            finite(r.preprocess_ms),
            finite(r.inference_ms),
            finite(r.postprocess_ms),
            finite(r.e2e_ms),
            r.dropped_total,
            shot.dets.len()
        )
        .map_err(io)?;

        let (Some(cal), Some((tr, q))) = (&self.calibration, self.mount) else {
            return Ok(());
        };
        let b = &mut out.data[SCENE];
        b.clear();
        write!(
            b,
            r#"{{"deletions":[{{"timestamp":{ts},"type":1,"id":""}}],"entities":["#
        )
        .map_err(io)?;
        let fx = cal.camera_matrix()[(0, 0)].max(1.0) as f32;
        let fy = cal.camera_matrix()[(1, 1)].max(1.0) as f32;
        let mut n = 0;
        for (i, d) in shot.dets.iter().enumerate() {
            let Some([gx, gy]) = d.ground else {
                continue;
            };
            // Size from the box's pixel size at the object's distance
            // along the optical axis (about its forward distance).
            let dist = gx.max(0.1);
            let w = finite((d.bbox[2] - d.bbox[0]).abs() * dist / fx).max(0.1);
            let h = finite((d.bbox[3] - d.bbox[1]).abs() * dist / fy).max(0.1);
            let (gx, gy) = (finite(gx), finite(gy));
            let c = Rgba::class(d.class_id).with_alpha(0.6);
            write!(
                b,
                r#"{}{{"timestamp":{ts},"frame_id":"{VEHICLE_FRAME}","id":""#,
                comma(n)
            )
            .map_err(io)?;
            match d.track {
                Some(t) => write!(b, "track{}", t.id),
                None => write!(b, "det{i}"),
            }
            .map_err(io)?;
            write!(
                b,
                r#"","lifetime":{{"sec":0,"nsec":0}},"frame_locked":false,"cubes":[{{"pose":{{"position":{{"x":{},"y":{gy},"z":{}}},"orientation":{{"x":0,"y":0,"z":0,"w":1}}}},"size":{{"x":{w},"y":{w},"z":{h}}},"color":{c}}}],"texts":[{{"pose":{{"position":{{"x":{},"y":{gy},"z":{}}},"orientation":{{"x":0,"y":0,"z":0,"w":1}}}},"billboard":true,"font_size":14,"scale_invariant":true,"color":{},"text":""#,
                gx + w / 2.0,
                h / 2.0,
                gx,
                h + 0.3,
                Rgba([1.0; 4]),
            )
            .map_err(io)?;
            self.label(b, d).map_err(io)?;
            b.extend_from_slice(br#""}]}"#);
            n += 1;
        }
        b.extend_from_slice(b"]}");

        let b = &mut out.data[TRANSFORM];
        b.clear();
        write!(
            b,
            r#"{{"timestamp":{ts},"parent_frame_id":"{VEHICLE_FRAME}","child_frame_id":"{CAMERA_FRAME}","translation":{{"x":{},"y":{},"z":{}}},"rotation":{{"x":{},"y":{},"z":{},"w":{}}}}}"#,
            tr[0], tr[1], tr[2], q[0], q[1], q[2], q[3]
        )
        .map_err(io)
    }

    /// `car 0.91 12.3m #7` (escaped for JSON).
    fn label(&self, b: &mut Vec<u8>, d: &Detection) -> std::io::Result<()> {
        match self.names.get(d.class_id as usize) {
            Some(n) => write!(b, "{n} {:.2}", d.score)?,
            None => write!(b, "class{} {:.2}", d.class_id, d.score)?,
        }
        if let Some([gx, gy]) = d.ground {
            write!(
                b,
                " {:.1}m",
                crate::calibration::range([gx as f64, gy as f64])
            )?;
        }
        if let Some(t) = d.track {
            write!(b, " #{}", t.id)?;
        }
        Ok(())
    }
}

/// NaN and infinities (never expected) written as 0, so the JSON stays valid.
fn finite(v: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn comma(i: usize) -> &'static str {
    if i > 0 {
        ","
    } else {
        ""
    }
}

/// `{"sec":S,"nsec":N}`.
struct Stamp(u64);

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            r#"{{"sec":{},"nsec":{}}}"#,
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// `{"r":..,"g":..,"b":..,"a":..}`, components 0..=1.
#[derive(Clone, Copy)]
struct Rgba([f32; 4]);

impl Rgba {
    /// The class's box colour in the drawn overlays.
    fn class(id: u32) -> Rgba {
        let [r, g, b] = PALETTE[id as usize % PALETTE.len()];
        Rgba([r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0, 1.0])
    }
    fn with_alpha(self, a: f32) -> Rgba {
        let [r, g, b, _] = self.0;
        Rgba([r, g, b, a])
    }
}

impl std::fmt::Display for Rgba {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [r, g, b, a] = self.0;
        write!(f, r#"{{"r":{r:.3},"g":{g:.3},"b":{b:.3},"a":{a:.3}}}"#)
    }
}

/// Appends `data` as standard base64 (with padding).
pub fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32;
        out.extend_from_slice(&[
            A[(n >> 18) as usize & 63],
            A[(n >> 12) as usize & 63],
            A[(n >> 6) as usize & 63],
            A[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = (a as u32) << 16;
            out.extend_from_slice(&[A[(n >> 18) as usize & 63], A[(n >> 12) as usize & 63]]);
            out.extend_from_slice(b"==");
        }
        [a, b] => {
            let n = (a as u32) << 16 | (b as u32) << 8;
            out.extend_from_slice(&[
                A[(n >> 18) as usize & 63],
                A[(n >> 12) as usize & 63],
                A[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameDesc, FrameRecord, PixelFormat};
    use crate::output::draw::Canvas;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut v = Vec::new();
            base64(&mut v, i.as_bytes());
            assert_eq!(std::str::from_utf8(&v).unwrap(), o);
        }
    }

    #[test]
    fn every_schema_and_message_is_valid_json_with_the_fields_foxglove_reads() {
        for (ch, c) in ALL.iter().enumerate() {
            let s: serde_json::Value = serde_json::from_str(&schema(ch)).unwrap();
            assert_eq!(s["title"], c.schema_name);
        }
        let labels = Labels::from_names(vec!["car \"x\"".into()]).unwrap();
        let enc = Encoder::new(&labels, Some(Calibration::front_camera()));
        let desc = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 64,
            height: 48,
        };
        let canvas = Canvas::new(64, 48);
        let mut dets = Vec::with_capacity(4);
        dets.push(Detection {
            class_id: 0,
            score: 0.5,
            bbox: [10.0, 10.0, 20.0, 30.0],
            ground: Some([12.0, -1.5]),
            ..Detection::default()
        });
        let shot = Shot {
            record: FrameRecord {
                seq: 3,
                capture_ns: 5,
                source_ns: Some(2_500_000_001),
                ..FrameRecord::default()
            },
            desc,
            frame: vec![0; desc.bytes()].into_boxed_slice(),
            dets,
        };
        let mut m = Messages::new(enc.channels(), 1024);
        let mut jpeg = Vec::new();
        crate::output::http::encode_jpeg(&canvas, 80, &mut jpeg).unwrap();
        enc.encode(&jpeg, &shot, &mut m).unwrap();
        assert_eq!(m.time_ns, 2_500_000_001);
        let v: Vec<serde_json::Value> = m
            .data
            .iter()
            .map(|d| serde_json::from_slice(d).unwrap())
            .collect();
        assert_eq!(v[IMAGE]["timestamp"]["sec"], 2);
        assert_eq!(v[IMAGE]["timestamp"]["nsec"], 500_000_001);
        assert!(v[IMAGE]["data"].as_str().unwrap().starts_with("/9j/"));
        assert_eq!(v[ANNOTATIONS]["points"][0]["points"][2]["x"], 20.0);
        assert!(v[ANNOTATIONS]["labels"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("car \"x\" 0.50 12.1m"));
        assert_eq!(v[METRICS]["seq"], 3);
        let cube = &v[SCENE]["entities"][0]["cubes"][0];
        assert_eq!(v[SCENE]["entities"][0]["frame_id"], VEHICLE_FRAME);
        assert!(cube["pose"]["position"]["x"].as_f64().unwrap() > 12.0);
        assert_eq!(cube["pose"]["position"]["y"], -1.5);
        assert_eq!(v[TRANSFORM]["child_frame_id"], CAMERA_FRAME);
        // The optical z axis (forward) maps to the vehicle's x axis.
        let q = &v[TRANSFORM]["rotation"];
        let q = UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
            q["w"].as_f64().unwrap(),
            q["x"].as_f64().unwrap(),
            q["y"].as_f64().unwrap(),
            q["z"].as_f64().unwrap(),
        ));
        let fwd = q * nalgebra::Vector3::z();
        assert!(fwd.x > 0.9, "{fwd:?}");
    }
}
