//! The JSON lines output (`kind = "json"`): one line per frame to stdout,
//! a file or a UDP peer ([`super::target`]). The target is opened and the
//! line buffers are allocated at boot ([`JsonOutput::open`]); `publish`
//! runs on the postprocess thread and never allocates, never blocks on a
//! slow reader and never panics: faults are counted per kind in the
//! output's [`OutputStats`] and returned as an [`OutputError`] value.
//!
//! # Line format
//!
//! One line per frame, keys always present and in this order:
//!
//! ```text
//! {"seq":12,"t_capture_ns":1234,"t_source_ns":1200,
//!  "latency_ms":{"queue":0.100,"preprocess":1.000,"inference":8.000,"postprocess":0.200,"e2e":9.300},
//!  "dropped_total":0,
//!  "detections":[{"class":"pedestrian","class_id":1,"score":0.913,"box":[10.0,20.0,30.0,40.0],
//!                 "ground":[12.50,-1.20],"range_m":12.56,"bearing_deg":-5.5}]}
//! ```
//!
//! (shown wrapped; the real line has no whitespace and ends with `\n`).
//! * `seq`: frame sequence number; `t_capture_ns`: CLOCK_MONOTONIC capture
//!   time; `t_source_ns`: the source's own timestamp or `null`.
//! * `latency_ms`: per-stage latencies of this frame, 3 decimals.
//! * `dropped_total`: frames dropped by the pipeline so far.
//! * `class`: the label (`classN` for an id without a label), `score` with 3
//!   decimals, `box` `[x1, y1, x2, y2]` in source pixels with 1 decimal.
//! * `ground`: `[x, y]` metres in the vehicle frame (x forward, y left), 2
//!   decimals, or `null`; `range_m` = |ground| (2 decimals) and
//!   `bearing_deg` = atan2(y, x) in degrees, positive to the left (1
//!   decimal), both `null` when `ground` is.
//! * With tracking on (`[tracking] enabled`, the default) each detection
//!   also has `track_id` (stable per object), `age_frames` (frames since
//!   the track started), `velocity` `[vx, vy]` m/s in the vehicle frame
//!   relative to the vehicle (2 decimals), `speed_mps` = |velocity|, and
//!   `ttc_s` (time to collision, s, 2 decimals; only for objects closing in
//!   within the ego corridor); all `null` for a detection without a
//!   confirmed track, `velocity`/`speed_mps` `null` without a ground
//!   position or while the estimate is too uncertain. With tracking off the
//!   keys are absent.
//! * Any non-finite number is written as `null`.
//!
//! A UDP target gets one datagram per line (with its `\n`); lines longer
//! than 65507 bytes are not sent (counted as oversize, never truncated into
//! invalid JSON).

use super::target::{OutputTarget, Rotate, Stream, MAX_KEEP};
use super::{FrameView, Output, OutputError, OutputStats};
use crate::frame::{Detection, FrameRecord};
use crate::postprocess::Labels;
use crate::text::SliceWriter;
use serde::Deserialize;
use std::fmt::{self, Write as _};

/// `[[output]]` with `kind = "json"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// stdout, a file path, or udp://HOST:PORT.
    #[serde(default = "d_stdout")]
    pub target: OutputTarget,
    /// Bytes reserved at boot for one line.
    #[serde(default = "d_line_bytes")]
    pub max_line_bytes: usize,
    /// File targets: rotate the file before it would grow past this many
    /// bytes (none: never rotate).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotated files kept (`PATH.1` .. `PATH.keep`); with `max_bytes` only.
    #[serde(default)]
    pub keep: Option<u32>,
}

/// Old files kept when `max_bytes` is set without `keep`.
pub const DEFAULT_KEEP: u32 = 5;

impl JsonConfig {
    /// The rotation this table asks for, if any.
    pub fn rotate(&self) -> Option<Rotate> {
        self.max_bytes.map(|max_bytes| Rotate {
            max_bytes,
            keep: self.keep.unwrap_or(DEFAULT_KEEP),
        })
    }

    /// What is wrong with the table, as (field, value, why), for the
    /// config's error message.
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if self.max_line_bytes < 1024 {
            return Some((
                "max_line_bytes",
                self.max_line_bytes.to_string(),
                "expected at least 1024".into(),
            ));
        }
        if let Some(keep) = self.keep {
            if self.max_bytes.is_none() {
                return Some((
                    "keep",
                    keep.to_string(),
                    "needs max_bytes (rotation by size) in the same table".into(),
                ));
            }
            if keep == 0 || keep > MAX_KEEP {
                return Some(("keep", keep.to_string(), format!("expected 1..={MAX_KEEP}")));
            }
        }
        if let Some(max) = self.max_bytes {
            if !matches!(self.target, OutputTarget::File(_)) {
                return Some((
                    "max_bytes",
                    max.to_string(),
                    format!(
                        "rotation needs a file target, but target is \"{}\"",
                        self.target
                    ),
                ));
            }
            if max < self.max_line_bytes as u64 {
                return Some((
                    "max_bytes",
                    max.to_string(),
                    format!(
                        "expected at least max_line_bytes ({}): one line must fit a file",
                        self.max_line_bytes
                    ),
                ));
            }
        }
        None
    }
}

fn d_stdout() -> OutputTarget {
    OutputTarget::Stdout
}

/// The line buffer without a configured size.
pub const DEFAULT_LINE_BYTES: usize = 64 * 1024;

fn d_line_bytes() -> usize {
    DEFAULT_LINE_BYTES
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            target: d_stdout(),
            max_line_bytes: DEFAULT_LINE_BYTES,
            max_bytes: None,
            keep: None,
        }
    }
}

/// A JSON-lines writer with all buffers allocated at open.
#[derive(Debug)]
pub struct JsonOutput {
    /// `json:<target>`.
    name: String,
    stream: Stream,
    line: Box<[u8]>,
}

impl JsonOutput {
    /// Boot: opens the target and allocates a line buffer of
    /// `max_line_bytes` (a frame whose line does not fit is dropped and
    /// counted).
    pub fn open(cfg: &JsonConfig) -> Result<JsonOutput, OutputError> {
        let stream = Stream::open_with(cfg.target.clone(), cfg.max_line_bytes, cfg.rotate())?;
        Ok(JsonOutput::over(stream, cfg.max_line_bytes))
    }

    fn over(stream: Stream, capacity: usize) -> JsonOutput {
        JsonOutput {
            name: format!("json:{}", stream.target()),
            stream,
            line: vec![0; capacity].into_boxed_slice(),
        }
    }

    pub fn target(&self) -> &OutputTarget {
        self.stream.target()
    }

    /// Serialises one frame and writes it as one line.
    /// Frame path: never allocates, never blocks on a slow reader.
    pub fn write_frame(
        &mut self,
        rec: &FrameRecord,
        dets: &[Detection],
        labels: &Labels,
    ) -> Result<(), OutputError> {
        self.stream.ready()?;
        let Some(len) = format_line(&mut self.line, rec, dets, labels) else {
            let s = self.stream.stats_mut();
            s.overflow += 1;
            s.dropped += 1;
            return Err(OutputError::Overflow {
                capacity: self.line.len(),
            });
        };
        self.stream.send(&self.line[..len])
    }
}

impl Output for JsonOutput {
    fn name(&self) -> &str {
        &self.name
    }

    /// Frame path: never allocates, never blocks.
    fn publish(&mut self, f: &FrameView<'_>) -> Result<(), OutputError> {
        self.write_frame(f.record, f.detections, f.labels)
    }

    fn stats(&self) -> &OutputStats {
        self.stream.stats()
    }
}

/// `v` with `decimals` decimals, or `null` if not finite.
pub(crate) fn num(w: &mut SliceWriter<'_>, v: f32, decimals: usize) -> fmt::Result {
    if v.is_finite() {
        write!(w, "{v:.decimals$}")
    } else {
        w.write_str("null")
    }
}

/// Serialises one line (with its `\n`) into `buf`; None if it does not fit.
/// Frame path: never allocates.
fn format_line(
    buf: &mut [u8],
    rec: &FrameRecord,
    dets: &[Detection],
    labels: &Labels,
) -> Option<usize> {
    let mut w = SliceWriter::new(buf);
    write_line(&mut w, rec, dets, labels).ok()?;
    Some(w.len())
}

pub(crate) fn write_line(
    w: &mut SliceWriter<'_>,
    rec: &FrameRecord,
    dets: &[Detection],
    labels: &Labels,
) -> fmt::Result {
    write!(
        w,
        "{{\"seq\":{},\"t_capture_ns\":{},\"t_source_ns\":",
        rec.seq, rec.capture_ns
    )?;
    match rec.source_ns {
        Some(t) => write!(w, "{t}")?,
        None => w.write_str("null")?,
    }
    w.write_str(",\"latency_ms\":{\"queue\":")?;
    num(w, rec.queue_ms, 3)?;
    w.write_str(",\"preprocess\":")?;
    num(w, rec.preprocess_ms, 3)?;
    w.write_str(",\"inference\":")?;
    num(w, rec.inference_ms, 3)?;
    w.write_str(",\"postprocess\":")?;
    num(w, rec.postprocess_ms, 3)?;
    w.write_str(",\"e2e\":")?;
    num(w, rec.e2e_ms, 3)?;
    write!(
        w,
        "}},\"dropped_total\":{},\"detections\":[",
        rec.dropped_total
    )?;
    for (i, d) in dets.iter().enumerate() {
        if i > 0 {
            w.write_str(",")?;
        }
        w.write_str("{\"class\":\"")?;
        match labels.json_name(d.class_id) {
            Some(name) => w.write_str(name)?,
            None => write!(w, "class{}", d.class_id)?,
        }
        write!(w, "\",\"class_id\":{},\"score\":", d.class_id)?;
        num(w, d.score, 3)?;
        w.write_str(",\"box\":[")?;
        for (k, &v) in d.bbox.iter().enumerate() {
            if k > 0 {
                w.write_str(",")?;
            }
            num(w, v, 1)?;
        }
        w.write_str("],\"ground\":")?;
        match d.ground {
            Some([x, y]) => {
                w.write_str("[")?;
                num(w, x, 2)?;
                w.write_str(",")?;
                num(w, y, 2)?;
                w.write_str("],\"range_m\":")?;
                num(w, x.hypot(y), 2)?;
                w.write_str(",\"bearing_deg\":")?;
                num(w, y.atan2(x).to_degrees(), 1)?;
            }
            None => w.write_str("null,\"range_m\":null,\"bearing_deg\":null")?,
        }
        if rec.tracked {
            write_track(w, d)?;
        }
        w.write_str("}")?;
    }
    w.write_str("]}\n")
}

/// The track keys of one detection (all `null` without a confirmed track).
fn write_track(w: &mut SliceWriter<'_>, d: &Detection) -> fmt::Result {
    let Some(t) = d.track else {
        return w.write_str(
            ",\"track_id\":null,\"age_frames\":null,\"velocity\":null,\"speed_mps\":null,\"ttc_s\":null",
        );
    };
    write!(
        w,
        ",\"track_id\":{},\"age_frames\":{},\"velocity\":",
        t.id, t.age_frames
    )?;
    match t.velocity {
        Some([vx, vy]) => {
            w.write_str("[")?;
            num(w, vx, 2)?;
            w.write_str(",")?;
            num(w, vy, 2)?;
            w.write_str("],\"speed_mps\":")?;
            num(w, vx.hypot(vy), 2)?;
        }
        None => w.write_str("null,\"speed_mps\":null")?,
    }
    w.write_str(",\"ttc_s\":")?;
    match t.ttc_s {
        Some(s) => num(w, s, 2),
        None => w.write_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::MAX_DATAGRAM;
    use std::fs::File;
    use std::io::Read;
    use std::net::UdpSocket;

    fn open(target: OutputTarget, max_line_bytes: usize) -> Result<JsonOutput, OutputError> {
        JsonOutput::open(&JsonConfig {
            target,
            max_line_bytes,
            ..JsonConfig::default()
        })
    }

    fn labels() -> Labels {
        Labels::from_names(vec!["vehicle".into(), "pedestrian".into()]).unwrap()
    }

    fn record() -> FrameRecord {
        FrameRecord {
            seq: 12,
            capture_ns: 1_000_000_123,
            source_ns: Some(999_000_000),
            queue_ms: 0.1,
            preprocess_ms: 1.25,
            inference_ms: 8.0,
            postprocess_ms: 0.2,
            e2e_ms: 9.55,
            dropped_total: 3,
            tracked: false,
        }
    }

    fn two_dets() -> [Detection; 2] {
        [
            Detection {
                class_id: 1,
                score: 0.9134,
                bbox: [10.0, 20.25, 30.5, 40.0],
                ground: Some([12.5, -1.2]),
                ..Detection::default()
            },
            Detection {
                class_id: 0,
                score: 0.5,
                bbox: [0.0, 0.0, 640.0, 480.0],
                ground: None,
                ..Detection::default()
            },
        ]
    }

    fn line(rec: &FrameRecord, dets: &[Detection], labels: &Labels) -> String {
        let mut buf = vec![0u8; 65536];
        let n = format_line(&mut buf, rec, dets, labels).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    const GOLDEN: &str = concat!(
        r#"{"seq":12,"t_capture_ns":1000000123,"t_source_ns":999000000,"#,
        r#""latency_ms":{"queue":0.100,"preprocess":1.250,"inference":8.000,"postprocess":0.200,"e2e":9.550},"#,
        r#""dropped_total":3,"detections":["#,
        r#"{"class":"pedestrian","class_id":1,"score":0.913,"box":[10.0,20.2,30.5,40.0],"#,
        r#""ground":[12.50,-1.20],"range_m":12.56,"bearing_deg":-5.5},"#,
        r#"{"class":"vehicle","class_id":0,"score":0.500,"box":[0.0,0.0,640.0,480.0],"#,
        r#""ground":null,"range_m":null,"bearing_deg":null}]}"#,
        "\n"
    );

    #[test]
    fn golden_line_two_detections() {
        assert_eq!(line(&record(), &two_dets(), &labels()), GOLDEN);
    }

    #[test]
    fn empty_frame_null_source_and_non_finite() {
        let mut rec = record();
        rec.source_ns = None;
        rec.e2e_ms = f32::NAN;
        rec.queue_ms = f32::INFINITY;
        let l = line(&rec, &[], &labels());
        assert!(l.contains(r#""t_source_ns":null,"#), "{l}");
        assert!(
            l.contains(r#""queue":null,"#) && l.contains(r#""e2e":null}"#),
            "{l}"
        );
        assert!(l.ends_with("\"detections\":[]}\n"), "{l}");
        let d = Detection {
            class_id: 7,
            score: f32::NAN,
            bbox: [f32::NEG_INFINITY, 0.0, 1.0, 2.0],
            ground: Some([f32::NAN, 1.0]),
            ..Detection::default()
        };
        let l = line(&rec, &[d], &labels());
        assert!(
            l.contains(r#"{"class":"class7","class_id":7,"score":null,"box":[null,0.0,1.0,2.0],"ground":[null,1.00],"range_m":null,"bearing_deg":null}"#),
            "{l}"
        );
    }

    #[test]
    fn tracked_lines_carry_the_track_keys() {
        let mut rec = record();
        rec.tracked = true;
        let mut dets = two_dets().to_vec();
        dets[0].track = Some(crate::frame::TrackInfo {
            id: 7,
            age_frames: 31,
            velocity: Some([-3.0, 4.0]),
            ttc_s: Some(4.166),
        });
        let want = GOLDEN
            .replace(
                r#""bearing_deg":-5.5}"#,
                r#""bearing_deg":-5.5,"track_id":7,"age_frames":31,"velocity":[-3.00,4.00],"speed_mps":5.00,"ttc_s":4.17}"#,
            )
            .replace(
                r#""bearing_deg":null}"#,
                r#""bearing_deg":null,"track_id":null,"age_frames":null,"velocity":null,"speed_mps":null,"ttc_s":null}"#,
            );
        assert_eq!(line(&rec, &dets, &labels()), want);
        // Without the stage the same detections give the untracked line.
        assert_eq!(line(&record(), &dets, &labels()), GOLDEN);
    }

    #[test]
    fn class_names_are_escaped() {
        let l = Labels::from_names(vec!["say \"hi\"\t".into()]).unwrap();
        let d = Detection {
            class_id: 0,
            ..Detection::default()
        };
        assert!(line(&record(), &[d], &l).contains(r#""class":"say \"hi\"\t""#));
    }

    #[test]
    fn udp_datagram_reaches_a_bound_socket() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let addr = rx.local_addr().unwrap();
        let mut sink = open(OutputTarget::Udp(addr), 4096).unwrap();
        sink.write_frame(&record(), &two_dets(), &labels()).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), GOLDEN);
        assert_eq!(sink.stats().published, 1);
    }

    #[test]
    fn udp_receiver_gone_is_counted() {
        // Bind then drop to get a port nobody listens on.
        let addr = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut sink = open(OutputTarget::Udp(addr), 4096).unwrap();
        let mut refused = 0;
        for _ in 0..20 {
            if let Err(e) = sink.write_frame(&record(), &[], &labels()) {
                assert!(matches!(e, OutputError::ConnRefused), "{e}");
                refused += 1;
            }
        }
        // The ICMP error arrives asynchronously; at least one later send
        // reports it.
        assert!(refused > 0);
        assert_eq!(sink.stats().conn_refused, refused);
        assert_eq!(sink.stats().dropped, refused);
    }

    #[test]
    fn udp_oversize_is_counted_not_sent() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sink = open(OutputTarget::Udp(rx.local_addr().unwrap()), 1 << 20).unwrap();
        let dets = vec![two_dets()[0]; 1000];
        let e = sink.write_frame(&record(), &dets, &labels()).unwrap_err();
        assert!(matches!(e, OutputError::Oversize { len } if len > MAX_DATAGRAM));
        assert_eq!(sink.stats().oversize, 1);
    }

    #[test]
    fn file_sink_appends_lines() {
        let path = std::env::temp_dir().join(format!("perceptd-sink-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "earlier\n").unwrap();
        let target: OutputTarget = path.to_str().unwrap().parse().unwrap();
        let mut sink = open(target, 4096).unwrap();
        sink.write_frame(&record(), &two_dets(), &labels()).unwrap();
        sink.write_frame(&record(), &[], &labels()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "earlier");
        assert_eq!(format!("{}\n", lines[1]), GOLDEN);
        assert_eq!(sink.stats().published, 2);
        std::fs::remove_file(&path).unwrap();
    }

    /// A stream sink writing to one end of a pipe (what stdout usually is).
    fn pipe_sink(nonblocking: bool, capacity: usize) -> (JsonOutput, File) {
        let mut fds = [0; 2];
        let flags = libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
        // SAFETY: pipe2 writes two fds into the array we pass.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) }, 0);
        // SAFETY: both fds were just created and are owned by nobody else.
        let (rd, wr) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        let sink = JsonOutput::over(Stream::over_file(wr, capacity), capacity);
        (sink, rd)
    }

    /// Reads everything buffered in a non-blocking pipe.
    fn drain(rd: &mut File, into: &mut Vec<u8>) {
        let mut buf = [0u8; 65536];
        while let Ok(n) = rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn closed_pipe_is_counted_not_fatal() {
        // Rust's runtime ignores SIGPIPE, so write(2) returns EPIPE.
        let (mut sink, rd) = pipe_sink(false, 4096);
        drop(rd);
        for _ in 0..3 {
            let e = sink
                .write_frame(&record(), &two_dets(), &labels())
                .unwrap_err();
            assert!(matches!(e, OutputError::BrokenPipe));
        }
        assert_eq!(sink.stats().broken_pipe, 3);
        assert_eq!(sink.stats().dropped, 3);
        assert_eq!(sink.stats().errors(), 3);
    }

    #[test]
    fn full_pipe_never_blocks_and_never_tears_a_line() {
        let (mut sink, mut rd) = pipe_sink(true, 16384);
        // Lines over PIPE_BUF (4096) so that a nearly full pipe takes part
        // of a line: the rest must go out before the next line.
        let dets = [two_dets()[0]; 40];
        let expect = line(&record(), &dets, &labels());
        assert!(expect.len() > 4096);
        let (mut ok, mut blocked) = (0, 0);
        for _ in 0..100 {
            match sink.write_frame(&record(), &dets, &labels()) {
                Ok(()) => ok += 1,
                Err(OutputError::WouldBlock) => blocked += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(blocked > 0, "pipe never filled");
        assert!(sink.stats().deferred > 0, "no short write happened");
        assert_eq!(sink.stats().would_block, blocked);
        let mut got = Vec::new();
        drain(&mut rd, &mut got);
        sink.write_frame(&record(), &dets, &labels()).unwrap();
        drain(&mut rd, &mut got);
        let text = String::from_utf8(got).unwrap();
        assert!(
            text.lines().all(|l| format!("{l}\n") == expect),
            "torn line"
        );
        assert_eq!(text.lines().count() as u64, sink.stats().published);
        assert_eq!(sink.stats().published, ok + 1);
        assert_eq!(
            sink.stats().bytes,
            sink.stats().published * expect.len() as u64
        );
    }

    #[test]
    fn line_buffer_overflow_is_counted() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sink = open(OutputTarget::Udp(rx.local_addr().unwrap()), 256).unwrap();
        let e = sink
            .write_frame(&record(), &two_dets(), &labels())
            .unwrap_err();
        assert!(matches!(e, OutputError::Overflow { capacity: 256 }));
        assert_eq!((sink.stats().overflow, sink.stats().dropped), (1, 1));
        // A frame that fits still goes out afterwards.
        sink.write_frame(&record(), &[], &labels()).unwrap();
        assert_eq!(sink.stats().published, 1);
    }
}
