//! `perceptd replay` of raw MJPEG streams end to end: the same pictures
//! give the same detections as their ffmpeg-decoded Y4M (greedy
//! same-class matching at IoU >= 0.7, F1 >= 0.97 over the clip), identical
//! pixels give identical detections, and broken streams end or go on as
//! the README says. The streams are made by ffmpeg from frames the
//! synthetic source renders; no test double anywhere.

mod common;

use common::*;
use perceptd::source::replay;
use perceptd::source::y4m::{FrameRate, Pace, Y4mWriter};
use std::path::Path;

const MODEL: &str = "models/perceptd-synth.onnx";
const FRAMES: u64 = 40;

/// The detector's own output: tracking is off, as it keeps classes and
/// velocities over time from the source timestamps (a Y4M has them, raw
/// MJPEG not), which is not what is compared here.
fn replay_config(clip: &Path) -> perceptd::config::Config {
    config(&format!(
        "[source]\nkind = \"y4m\"\npath = \"{}\"\npace = \"fast\"\n\
         [model]\npath = \"{MODEL}\"\nthreads = 2\n[metrics]\ninterval_s = 0\n\
         [tracking]\nenabled = false\n",
        clip.display()
    ))
}

/// A synthetic clip (640x480) as Y4M, as MJPEG made from it by ffmpeg, and
/// that MJPEG decoded back to Y4M by ffmpeg.
fn clips(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = dir.join("scene.y4m");
    synthetic_y4m(&src, 11, FRAMES, 640, 480);
    let mjpeg = dir.join("scene.mjpeg");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-pix_fmt",
        "yuvj420p",
        "-q:v",
        "2",
        "-f",
        "mjpeg",
        mjpeg.to_str().unwrap(),
    ]);
    let decoded = dir.join("decoded.y4m");
    ffmpeg(&[
        "-i",
        mjpeg.to_str().unwrap(),
        "-pix_fmt",
        "yuvj420p",
        "-strict",
        "-1",
        "-f",
        "yuv4mpegpipe",
        decoded.to_str().unwrap(),
    ]);
    (mjpeg, decoded)
}

#[test]
fn mjpeg_gives_the_detections_of_its_ffmpeg_decoded_y4m() {
    let dir = temp_dir("mjpeg-vs-y4m");
    let (mjpeg, decoded) = clips(&dir);
    let (a, b) = (dir.join("mjpeg.jsonl"), dir.join("y4m.jsonl"));
    let ra = run(&replay_config(&mjpeg), 1000, &a);
    let rb = run(&replay_config(&decoded), 1000, &b);
    assert!(ra.source_end.is_none() && rb.source_end.is_none());
    let (la, lb) = (read_lines(&a), read_lines(&b));
    assert_eq!((la.len(), lb.len()), (FRAMES as usize, FRAMES as usize));
    let (f1, matched, na, nb) = agreement(&la, &lb, 0.7);
    eprintln!("MJPEG vs its ffmpeg-decoded Y4M: F1 {f1:.4} ({matched} matched of {na} / {nb} detections, {FRAMES} frames)");
    assert!(na >= FRAMES as usize, "too few detections to compare: {na}");
    assert!(f1 >= 0.97, "F1 {f1:.4}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn identical_pixels_give_identical_detections() {
    // Our decoder's frames written to a Y4M as they are: the same pixels
    // by two sources must give bit-identical detections.
    let dir = temp_dir("mjpeg-identical");
    let (mjpeg, _) = clips(&dir);
    let mut src = replay::open(&mjpeg, Pace::Fast, 256).unwrap();
    let same = dir.join("same.y4m");
    let mut w = Y4mWriter::create(&same, src.desc(), FrameRate::per_second(30)).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    while let Ok(s) = src.next_frame(&mut buf) {
        w.write_frame(&buf, s).unwrap();
    }
    assert_eq!(w.finish().unwrap(), FRAMES);
    let (a, b) = (dir.join("mjpeg.jsonl"), dir.join("same.jsonl"));
    run(&replay_config(&mjpeg), 1000, &a);
    run(&replay_config(&same), 1000, &b);
    let key = |l: &Line| {
        l.dets
            .iter()
            .map(|d| (d.class_id, d.score.to_bits(), d.bbox.map(f32::to_bits)))
            .collect::<Vec<_>>()
    };
    let (la, lb) = (read_lines(&a), read_lines(&b));
    assert_eq!(la.len(), FRAMES as usize);
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(
            key(x),
            key(y),
            "frame {}: {:?} vs {:?}",
            x.seq,
            x.dets,
            y.dets
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn perceptd(args: &[&str]) -> std::process::Output {
    common::perceptd().args(args).output().unwrap()
}

#[test]
fn a_jpeg_cut_mid_stream_is_dropped_and_counted_a_cut_tail_ends_the_replay() {
    let dir = temp_dir("mjpeg-cli-cut");
    let (mjpeg, _) = clips(&dir);
    let data = std::fs::read(&mjpeg).unwrap();
    // Split into JPEGs at each SOI that follows an EOI.
    let mut starts = vec![0];
    for i in 2..data.len() - 1 {
        if data[i - 2..i + 2] == [0xFF, 0xD9, 0xFF, 0xD8] {
            starts.push(i);
        }
    }
    assert_eq!(starts.len(), FRAMES as usize);
    let jpeg = |k: usize| &data[starts[k]..*starts.get(k + 1).unwrap_or(&data.len())];
    // Frames 0..5, frame 5 with its second half cut, 6..10, then half of
    // frame 10 at the end.
    let mut cut = Vec::new();
    for k in 0..10 {
        let j = jpeg(k);
        cut.extend_from_slice(if k == 5 { &j[..j.len() / 2] } else { j });
    }
    cut.extend_from_slice(&jpeg(10)[..jpeg(10).len() / 2]);
    let f = dir.join("cut.mjpeg");
    std::fs::write(&f, &cut).unwrap();
    let out = perceptd(&["replay", f.to_str().unwrap(), "--model", MODEL]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cut.mjpeg: truncated after 9 complete frames"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("bad 1)"), "stderr: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        9,
        "one JSON line per complete frame"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first `n` JPEGs of a stream made by ffmpeg (an SOI after an EOI
/// starts the next).
fn first_jpegs(data: &[u8], n: usize) -> &[u8] {
    let mut count = 0;
    for i in 2..data.len() - 1 {
        if data[i - 2..i + 2] == [0xFF, 0xD9, 0xFF, 0xD8] {
            count += 1;
            if count == n {
                return &data[..i];
            }
        }
    }
    data
}

#[test]
fn replay_reads_mjpeg_from_stdin_handed_over_a_few_bytes_at_a_time() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = temp_dir("mjpeg-stdin");
    let (mjpeg, _) = clips(&dir);
    let data = std::fs::read(&mjpeg).unwrap();
    let three = first_jpegs(&data, 3).to_vec();
    let mut child = common::perceptd()
        .args(["replay", "-", "--model", MODEL])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The header 7 bytes at a time: the first frame's SOF arrives in
    // many reads.
    for chunk in three[..700].chunks(7) {
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    stdin.write_all(&three[700..]).unwrap();
    drop(stdin);
    let mut stdout = child.stdout.take().unwrap();
    let (code, stderr) = wait_bounded(child, std::time::Duration::from_secs(120));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("-: MJPEG") || stderr.contains("(MJPEG I420 640x480"),
        "{stderr}"
    );
    assert_eq!(out.lines().count(), 3, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_stops_a_realtime_mjpeg_replay_waiting_on_a_silent_pipe_within_a_second() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = temp_dir("mjpeg-sigterm");
    let (mjpeg, _) = clips(&dir);
    let data = std::fs::read(&mjpeg).unwrap();
    let mut child = common::perceptd()
        .args(["replay", "-", "--pace", "realtime", "--model", MODEL])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first_jpegs(&data, 2)).unwrap();
    // The writer stays, silent: the capture thread waits in a read.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let t0 = std::time::Instant::now();
    // SAFETY: kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (code, stderr) = wait_bounded(child, std::time::Duration::from_secs(5));
    let took = t0.elapsed();
    drop(stdin);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "took {took:?}: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unrecognised_content_on_a_device_is_one_line_naming_y4m_and_mjpeg() {
    // A regular file of unknown content goes to ffmpeg (tests/video_replay.rs);
    // a device or pipe cannot, so it is refused naming what replay reads there.
    let out = perceptd(&["replay", "/dev/zero", "--model", MODEL]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        errors,
        [
            "error: /dev/zero: neither Y4M (YUV4MPEG2) nor raw MJPEG (JPEGs one after another, \
          FF D8): it starts with 00 00 00 00 00 00 00 00, and a pipe or device cannot be handed \
          to ffmpeg: give a regular file, or pipe Y4M (ffmpeg -i FILE -f yuv4mpegpipe - | \
          perceptd replay -)"
        ],
        "stderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
