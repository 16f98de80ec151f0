//! MJPEG cameras (`source.format = "mjpeg"`) and `record --format mjpeg`,
//! driven through `JpegCam` (tests/common/jpeg_cam.rs), the test double at
//! the hardware boundary, fed real JPEG bytes: the fixtures of
//! `scripts/make_jpeg_fixtures.sh` and a stream ffmpeg encodes from the
//! synthetic scene. Everything above the device layer is the real code.

mod common;

use common::jpeg_cam::{split_jpegs, JpegCam, Shot};
use perceptd::frame::PixelFormat;
use perceptd::source::replay;
use perceptd::source::v4l2::{Absent, CameraFormat, OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::y4m::Pace;
use perceptd::source::{Source, SourceError};
use std::path::Path;
use std::sync::atomic::Ordering;

const DEV: &str = "/dev/video-mjpeg";

fn cfg(width: usize, height: usize) -> V4l2Config {
    V4l2Config {
        device: DEV.into(),
        format: CameraFormat::Mjpeg,
        width,
        height,
        fps: 30,
        buffers: 4,
        timeout_ms: 200,
        on_adjust: OnAdjust::Adapt,
        absent: Absent::Fail,
        reconnect_max_ms: 100,
        max_memory_mb: 2048,
    }
}

/// Every frame of a replay of `path`.
fn replay_frames(path: &Path) -> Vec<Vec<u8>> {
    let mut src = replay::open(path, Pace::Fast, 256).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    loop {
        let mut buf = vec![0u8; src.desc().bytes()];
        match src.next_frame(&mut buf) {
            Ok(_) => out.push(buf),
            Err(SourceError::End) => return out,
            Err(e) => panic!("replay of {}: {e}", path.display()),
        }
    }
}

/// 11 distinct 320x240 frames of the synthetic scene as ffmpeg's MJPEG,
/// 4:2:2 as USB cameras send: the stream file and its JPEGs.
fn scene_mjpeg(dir: &Path) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let y4m = dir.join("scene.y4m");
    common::synthetic_y4m(&y4m, 3, 11, 320, 240);
    let stream = dir.join("scene.mjpeg");
    common::ffmpeg(&[
        "-i",
        y4m.to_str().unwrap(),
        "-pix_fmt",
        "yuvj422p",
        "-q:v",
        "4",
        "-f",
        "mjpeg",
        stream.to_str().unwrap(),
    ]);
    let jpegs = split_jpegs(&std::fs::read(&stream).unwrap());
    assert_eq!(jpegs.len(), 11);
    (stream, jpegs)
}

#[test]
fn camera_frames_decode_to_the_pixels_of_the_mjpeg_replay() {
    // Each fixture subsampling (and one without DHT, as USB cameras send):
    // the camera's frame format is the first frame's.
    let fixtures = common::root().join("tests/fixtures/jpeg");
    for (name, format) in [
        ("i420", PixelFormat::I420),
        ("i422", PixelFormat::I422),
        ("i422_nodht", PixelFormat::I422),
        ("i444", PixelFormat::I444),
    ] {
        let path = fixtures.join(format!("{name}.jpg"));
        let jpeg = std::fs::read(&path).unwrap();
        let want = replay_frames(&path);
        let info = perceptd::source::jpeg::probe(&jpeg).unwrap();
        let cam = JpegCam::new(vec![jpeg], vec![Shot::Jpeg(0), Shot::Jpeg(0)]);
        let mut src = V4l2Source::with_device(&cfg(info.width, info.height), cam)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(src.desc().format, format, "{name}");
        assert!(src.describe().contains(&format!("MJPEG {}", format.name())));
        let mut buf = vec![0u8; src.desc().bytes()];
        src.next_frame(&mut buf).unwrap();
        assert!(buf == want[0], "{name}: camera and replay decode differ");
    }

    // A whole clip, frame by frame.
    let dir = common::temp_dir("mjpeg-camera-pixels");
    let (stream, jpegs) = scene_mjpeg(&dir);
    let want = replay_frames(&stream);
    // The first JPEG is looked at at boot (the driver's queue restarts).
    let mut script = vec![Shot::Jpeg(0)];
    script.extend((0..jpegs.len()).map(Shot::Jpeg));
    let mut cam = JpegCam::new(jpegs, script);
    cam.pad = 13;
    let mapped = cam.mapped.clone();
    let mut src = V4l2Source::with_device(&cfg(320, 240), cam).unwrap();
    assert_eq!(
        mapped.load(Ordering::SeqCst),
        2,
        "mapped at boot and again after the probe"
    );
    assert_eq!(src.desc().format, PixelFormat::I422);
    assert_eq!(src.pacing(), perceptd::source::Pacing::Live);
    let mut buf = vec![0u8; src.desc().bytes()];
    for (i, w) in want.iter().enumerate() {
        src.next_frame(&mut buf)
            .unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert!(buf == *w, "frame {i}: camera and replay decode differ");
    }
    assert_eq!(src.faults().bad_frames, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cut_empty_and_corrupt_jpegs_are_bad_frames_and_the_camera_goes_on() {
    let dir = common::temp_dir("mjpeg-camera-bad");
    let (stream, jpegs) = scene_mjpeg(&dir);
    let want = replay_frames(&stream);
    let j = |i: usize| jpegs[i].clone();
    let script = vec![
        Shot::Jpeg(0),
        Shot::Jpeg(1),
        // Cut mid-scan (the second half lost on the bus).
        Shot::Bytes(j(2)[..j(2).len() / 2].to_vec()),
        Shot::Empty,
        // Whole scan, no EOI.
        Shot::Bytes(j(3)[..j(3).len() - 2].to_vec()),
        // Garbage where the segments should be.
        Shot::Bytes([&[0xFF, 0xD8, 0x12, 0x34][..], &[0xAB; 600]].concat()),
        // Structurally complete, but its scan stops a third of the way in:
        // the decoder runs out of data.
        Shot::Bytes([&j(4)[..j(4).len() / 3], &[0xFF, 0xD9][..]].concat()),
        Shot::Jpeg(5),
        Shot::Jpeg(6),
    ];
    let mut src = V4l2Source::with_device(&cfg(320, 240), JpegCam::new(jpegs, script)).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    let mut seen = Vec::new();
    for _ in 0..7 {
        match src.next_frame(&mut buf) {
            Ok(_) => {
                let i = want.iter().position(|w| *w == buf).map_or(-1, |i| i as i64);
                seen.push(format!("frame {i}"));
            }
            Err(SourceError::BadFrame { reason, device }) => {
                assert_eq!(device, DEV);
                seen.push(format!("bad: {reason}"));
            }
            Err(e) => panic!("{e}"),
        }
    }
    // (Which reason the decoder gives for the short scan depends on where
    // the cut falls; that it is a bad frame does not.)
    assert!(seen[5].starts_with("bad: "), "{seen:?}");
    seen[5] = "bad".into();
    assert_eq!(
        seen,
        [
            "frame 1",
            "bad: JPEG cut short (no EOI)",
            "bad: empty MJPEG buffer (bytesused 0)",
            "bad: JPEG cut short (no EOI)",
            "bad: corrupt JPEG (bytes where a marker must be)",
            "bad",
            "frame 5",
        ],
    );
    assert_eq!(src.faults().bad_frames, 5);
    src.next_frame(&mut buf).unwrap();
    assert!(buf == want[6]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_camera_without_mjpeg_is_one_line_listing_what_it_offers() {
    let mut cam = JpegCam::new(vec![], vec![]);
    cam.offers = vec![*b"YUYV", *b"H264", *b"NV12"];
    let mapped = cam.mapped.clone();
    let e = V4l2Source::with_device(&cfg(640, 480), cam)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "/dev/video-mjpeg: format \"mjpeg\": the camera offers no MJPEG (MJPG or JPEG), \
         only YUYV, H264, NV12; of those perceptd reads yuyv, nv12"
    );
    assert_eq!(mapped.load(Ordering::SeqCst), 0);

    // JPEG (V4L2_PIX_FMT_JPEG) is taken when MJPG is not offered.
    let jpeg = std::fs::read(common::root().join("tests/fixtures/jpeg/i422.jpg")).unwrap();
    let mut cam = JpegCam::new(vec![jpeg], vec![Shot::Jpeg(0), Shot::Jpeg(0)]);
    cam.offers = vec![*b"JPEG"];
    let mut src = V4l2Source::with_device(&cfg(64, 32), cam).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    src.next_frame(&mut buf).unwrap();

    // record --format mjpeg of a camera without MJPEG: the same line.
    let mut cam = JpegCam::new(vec![], vec![]);
    cam.offers = vec![*b"YUYV"];
    let e = V4l2Source::with_device(&cfg(640, 480), cam)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.ends_with("only YUYV; of those perceptd reads yuyv"),
        "{e}"
    );
}

#[test]
fn sizeimage_zero_or_over_the_budget_is_refused_before_any_buffer() {
    let mut cam = JpegCam::new(vec![], vec![]);
    cam.sizeimage = 0;
    let mapped = cam.mapped.clone();
    let e = V4l2Source::with_device(&cfg(1280, 720), cam)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "/dev/video-mjpeg: the driver set MJPEG 1280x720 with sizeimage 0: \
         the compressed buffers cannot be sized"
    );
    assert_eq!(mapped.load(Ordering::SeqCst), 0);

    let mut cam = JpegCam::new(vec![], vec![]);
    cam.sizeimage = 3_000_000_000;
    let mapped = cam.mapped.clone();
    let e = V4l2Source::with_device(&cfg(1920, 1080), cam)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with(
            "/dev/video-mjpeg: pipeline.max_memory_mb = 2048: the pipeline needs 11445 MiB \
             for the MJPEG camera buffers (4 buffers of the driver's sizeimage 3000000000 bytes \
             for MJPEG 1920x1080)"
        ),
        "{e}"
    );
    assert!(!e.contains('\n'));
    assert_eq!(mapped.load(Ordering::SeqCst), 0);
}

#[test]
fn record_mjpeg_keeps_the_jpegs_as_they_came_and_replays_to_the_same_detections() {
    let dir = common::temp_dir("mjpeg-camera-record");
    let (stream, jpegs) = scene_mjpeg(&dir);
    let n = jpegs.len();
    let mut script = vec![Shot::Jpeg(0)];
    script.extend((0..n).map(Shot::Jpeg));
    // A cut frame is dropped, not recorded.
    script.insert(4, Shot::Bytes(jpegs[3][..100].to_vec()));
    let mut cam = JpegCam::new(jpegs.clone(), script);
    cam.pad = 9;
    let mut src = V4l2Source::with_device(&cfg(320, 240), cam).unwrap();
    assert_eq!(
        src.jpeg_capacity(),
        Some(jpegs.iter().map(Vec::len).max().unwrap() + 4096)
    );
    let out = dir.join("rec.mjpeg");
    let r = perceptd::record::record(&mut src, &out, Some(n as u64), 30, true).unwrap();
    assert_eq!((r.frames, r.bad), (n as u64, 1));
    let rec = std::fs::read(&out).unwrap();
    assert!(
        rec == jpegs.concat(),
        "recorded bytes differ from the frames delivered"
    );
    assert_eq!(r.bytes, rec.len() as u64);

    // The recording replays to the same frames, so to the same detections
    // through the same pipeline.
    assert!(replay_frames(&out) == replay_frames(&stream));
    let run = |path: &Path, name: &str| {
        let cfg = common::config(&format!(
            "[source]\nkind = \"y4m\"\npath = \"{}\"\n[model]\npath = \"builtin:synthetic\"\n\
             [metrics]\ninterval_s = 0\n[tracking]\nenabled = false\n",
            path.display()
        ));
        let lines = dir.join(name);
        common::run(&cfg, n as u64, &lines);
        common::read_lines(&lines)
    };
    let (a, b) = (run(&out, "rec.jsonl"), run(&stream, "orig.jsonl"));
    assert_eq!(a.len(), n);
    assert!(
        a.iter().map(|l| l.dets.len()).sum::<usize>() > 0,
        "no detections to compare"
    );
    for (x, y) in a.iter().zip(&b) {
        let key = |l: &common::Line| {
            l.dets
                .iter()
                .map(|d| (d.class_id, d.score.to_bits(), d.bbox.map(f32::to_bits)))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(x), key(y), "frame {}", x.seq);
    }

    // A raw camera cannot be recorded as MJPEG: one line, no file.
    let raw = V4l2Config {
        format: PixelFormat::Yuyv.into(),
        ..cfg(64, 48)
    };
    let mut cam = JpegCam::new(vec![], vec![]);
    cam.offers = vec![*b"YUYV"];
    let mut src = V4l2Source::with_device(&raw, cam).unwrap();
    let none = dir.join("none.mjpeg");
    let e = perceptd::record::record(&mut src, &none, Some(1), 30, true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "/dev/video-mjpeg YUYV 64x48@30 (4 mmap buffers, stall after 200 ms): --format mjpeg \
         keeps the camera's JPEGs, but it delivers YUYV; record it with --format yuyv (Y4M)"
    );
    assert!(!none.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_jpegs_from_the_camera_are_counted_in_the_run_summary() {
    let dir = common::temp_dir("mjpeg-camera-run");
    let (_, jpegs) = scene_mjpeg(&dir);
    let j = |i: usize| jpegs[i].clone();
    let script = vec![
        Shot::Jpeg(0),
        Shot::Jpeg(1),
        Shot::Bytes(j(2)[..j(2).len() / 2].to_vec()),
        Shot::Jpeg(3),
        Shot::Empty,
        Shot::Jpeg(4),
        Shot::Bytes(j(5)[..j(5).len() - 2].to_vec()),
    ];
    let mut cam = JpegCam::new(jpegs, script);
    cam.endless = true;
    // Scripted frames at 10 fps, so each finds a free slot and is decoded
    // (a live camera drops a frame that finds none before looking at it).
    cam.script_period_ms = 100;
    let cam = V4l2Source::with_device(&cfg(320, 240), cam).unwrap();
    // The pipeline booted for the camera's frames (I422 320x240), then fed
    // by the camera.
    let boot_cfg = common::config(
        "[source]\nkind = \"synthetic\"\nformat = \"i422\"\nwidth = 320\nheight = 240\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 1\n\
         [pipeline]\nring_slots = 4\n[metrics]\ninterval_s = 0\n",
    );
    let ov = perceptd::boot::Overrides {
        frames: Some(20),
        output: Some(dir.join("out.jsonl").display().to_string()),
        ..Default::default()
    };
    let mut p = perceptd::boot::boot(&boot_cfg, &ov).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.source.desc(), cam.desc());
    p.source = Box::new(cam);
    let slots = p.ring_slots;
    let report = p.run(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
        false,
    )));
    assert!(report.source_end.is_none(), "{:?}", report.source_end);
    assert_eq!(report.slots_free_at_end, slots);
    let c = report.metrics.counters().values();
    assert_eq!(c.processed, 20, "{c:?}");
    assert_eq!(c.dropped_bad_frame, 3, "{c:?}");
    let mut buf = [0u8; 1024];
    let line = report.metrics.write_summary(&mut buf, report.elapsed_s);
    assert!(line.contains(", bad 3)"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
