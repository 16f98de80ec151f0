//! `perceptd replay FILE.mp4` through the ffmpeg child end to end: the same
//! pictures give the same detections as the Y4M ffmpeg decodes from the
//! MP4 (greedy same-class matching at IoU >= 0.7, F1 >= 0.97), identical
//! pixels give identical detections, presentation timestamps become source
//! timestamps and drive realtime pacing, and every bad input is one line,
//! the right exit code, no panic, with no ffmpeg left behind (checked in
//! /proc). The clips are made by ffmpeg at test time from frames the
//! synthetic source renders (the committed model detects those); no test
//! double anywhere. `scripts/make_photo_clip.sh` makes the real-photo clip
//! of the closing evidence run.

mod common;

use common::*;
use perceptd::source::replay;
use perceptd::source::y4m::{FrameRate, Pace, Y4mWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "models/perceptd-synth.onnx";
const FRAMES: u64 = 40;

fn replay_config(clip: &Path) -> perceptd::config::Config {
    config(&format!(
        "[source]\nkind = \"y4m\"\npath = \"{}\"\npace = \"fast\"\n\
         [model]\npath = \"{MODEL}\"\nthreads = 2\n[metrics]\ninterval_s = 0\n\
         [tracking]\nenabled = false\n",
        clip.display()
    ))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A synthetic clip (640x480, `frames` frames at 25 fps) as H.264 MP4
/// made by ffmpeg (`extra`: more output options).
fn mp4(dir: &Path, name: &str, frames: u64, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.y4m"));
    synthetic_y4m(&src, 11, frames, 640, 480);
    let out = dir.join(format!("{name}.mp4"));
    let mut args = vec![
        "-r",
        "25",
        "-i",
        s(&src),
        "-c:v",
        "libx264",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(extra);
    args.push(s(&out));
    ffmpeg(&args);
    let _ = std::fs::remove_file(&src);
    out
}

#[test]
fn mp4_gives_the_detections_of_its_ffmpeg_decoded_y4m() {
    let dir = temp_dir("video-vs-y4m");
    let clip = mp4(&dir, "scene", FRAMES, &[]);
    let decoded = dir.join("decoded.y4m");
    ffmpeg(&["-i", s(&clip), "-f", "yuv4mpegpipe", s(&decoded)]);
    let (a, b) = (dir.join("mp4.jsonl"), dir.join("y4m.jsonl"));
    let ra = run(&replay_config(&clip), 1000, &a);
    let rb = run(&replay_config(&decoded), 1000, &b);
    assert!(ra.source_end.is_none() && rb.source_end.is_none());
    let (la, lb) = (read_lines(&a), read_lines(&b));
    assert_eq!((la.len(), lb.len()), (FRAMES as usize, FRAMES as usize));
    let (f1, matched, na, nb) = agreement(&la, &lb, 0.7);
    eprintln!("MP4 vs its ffmpeg-decoded Y4M: F1 {f1:.4} ({matched} matched of {na} / {nb} detections, {FRAMES} frames)");
    assert!(na >= FRAMES as usize, "too few detections to compare: {na}");
    assert!(f1 >= 0.97, "F1 {f1:.4}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn identical_pixels_give_identical_detections_and_pts_become_source_timestamps() {
    let dir = temp_dir("video-identical");
    let clip = mp4(&dir, "scene", FRAMES, &[]);
    let mut src = replay::open(&clip, Pace::Fast, 256).unwrap();
    assert!(
        src.describe().contains("through ffmpeg"),
        "{}",
        src.describe()
    );
    let same = dir.join("same.y4m");
    let mut w = Y4mWriter::create(&same, src.desc(), FrameRate::per_second(25)).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    let mut k = 0u64;
    while let Ok(st) = src.next_frame(&mut buf) {
        // 25 fps: frame k is presented at k * 40 ms.
        assert_eq!(st.source_ns, Some(k * 40_000_000), "frame {k}");
        w.write_frame(&buf, st).unwrap();
        k += 1;
    }
    assert_eq!(w.finish().unwrap(), FRAMES);
    let (a, b) = (dir.join("mp4.jsonl"), dir.join("same.jsonl"));
    run(&replay_config(&clip), 1000, &a);
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
        assert_eq!(key(x), key(y), "frame {}", x.seq);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn realtime_pacing_follows_variable_presentation_timestamps() {
    let dir = temp_dir("video-vfr");
    let src = dir.join("vfr.y4m");
    synthetic_y4m(&src, 3, 10, 160, 120);
    // Frames 0..5 every 40 ms, then every 200 ms: pts 0, 40, .., 160,
    // 360, 560, 760, 960, 1160 ms (MKV, millisecond time base).
    let clip = dir.join("vfr.mkv");
    ffmpeg(&[
        "-r",
        "25",
        "-i",
        s(&src),
        "-vf",
        "setpts='if(lt(N,5),N*0.04,0.16+(N-4)*0.2)/TB'",
        "-vsync",
        "vfr",
        "-c:v",
        "libx264",
        s(&clip),
    ]);
    let mut v = replay::open(&clip, Pace::Realtime, 256).unwrap();
    let mut buf = vec![0u8; v.desc().bytes()];
    let mut stamps = Vec::new();
    while let Ok(st) = v.next_frame(&mut buf) {
        stamps.push(st);
    }
    let pts: Vec<u64> = stamps
        .iter()
        .map(|s| s.source_ns.unwrap() / 1_000_000)
        .collect();
    // What ffprobe says the file holds (the muxer may move the last one).
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=pts_time", "-of", "csv=p=0", s(&clip)])
        .output()
        .unwrap();
    let want: Vec<u64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(|l| (l.parse::<f64>().unwrap() * 1000.0).round() as u64)
        .collect();
    assert_eq!(pts, want);
    assert_eq!(pts[..9], [0, 40, 80, 120, 160, 360, 560, 760, 960]);
    for (k, st) in stamps.iter().enumerate() {
        let since = st.capture_ns - stamps[0].capture_ns;
        // Never before its time, and not far after it (a loaded machine).
        assert!(since >= pts[k] * 1_000_000, "frame {k} at {since} ns");
        assert!(
            since < pts[k] * 1_000_000 + 400_000_000,
            "frame {k} at {since} ns"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn perceptd(args: &[&str], path: Option<&str>) -> (i32, String, usize) {
    let mut cmd = common::perceptd();
    cmd.args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    (out.status.code().unwrap_or(-1), stderr, lines)
}

/// The lines of `stderr` that say something went wrong.
fn faults(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error") || l.contains(" WARN "))
        .collect()
}

#[test]
fn bad_files_are_one_line_each_with_the_right_exit_code() {
    let dir = temp_dir("video-bad");
    // moov at the end (ffmpeg's default): cut in half, nothing to read.
    let whole = mp4(&dir, "whole", 60, &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // moov first: cut at 3/4, the first frames decode.
    let fast = mp4(&dir, "fast", 60, &["-g", "10", "-movflags", "+faststart"]);
    let bytes = std::fs::read(&fast).unwrap();
    let half = dir.join("half.mp4");
    std::fs::write(&half, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let audio = dir.join("audio.m4a");
    ffmpeg(&["-f", "lavfi", "-i", "sine", "-t", "1", s(&audio)]);
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("notes.mp4");
    std::fs::write(&text, b"not a video at all\n").unwrap();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Wider than Y4M (and perceptd) allows.
    let wide = dir.join("wide.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=s=20000x16",
        "-frames:v",
        "1",
        "-c:v",
        "ffv1",
        s(&wide),
    ]);
    let cases: [(&Path, i32, &str); 7] = [
        (&cut, 1, "cut.mp4: ffmpeg: moov atom not found"),
        (&audio, 1, "audio.m4a: ffmpeg: Stream map '0:V:0' matches no streams (the file has no video stream)"),
        (&empty, 1, "empty.mp4: empty file"),
        (&text, 1, "notes.mp4: ffmpeg: "),
        (Path::new("/dev/zero"), 1, "/dev/zero: neither Y4M (YUV4MPEG2) nor raw MJPEG (JPEGs one after another, FF D8): it starts with 00 00 00 00 00 00 00 00"),
        (&dir, 1, "a folder, but not a rosbag2 bag: no metadata.yaml and no .mcap file in it"),
        (&wide, 1, "W (width) is '20000'"),
    ];
    for (file, code, needle) in cases {
        let (rc, stderr, lines) = perceptd(&["replay", s(file), "--model", MODEL], None);
        let f = faults(&stderr);
        assert_eq!(
            (rc, f.len(), lines),
            (code, 1, 0),
            "{}: {stderr}",
            file.display()
        );
        assert!(f[0].contains(needle), "{}: {}", file.display(), f[0]);
    }
    // A FIFO with a writer that sends an MP4: refused, one line.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        let data = std::fs::read(&whole).unwrap();
        move || {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                let _ = std::io::Write::write_all(&mut f, &data);
            }
        }
    });
    let (rc, stderr, _) = perceptd(&["replay", s(&fifo), "--model", MODEL], None);
    let f = faults(&stderr);
    assert_eq!((rc, f.len()), (1, 1), "{stderr}");
    assert!(
        f[0].contains("a pipe or device cannot be handed to ffmpeg"),
        "{}",
        f[0]
    );
    writer.join().unwrap();
    // Truncated with its index first: every frame ffmpeg decodes is
    // processed, one warning naming the file and ffmpeg's message, exit 0
    // (as a truncated Y4M).
    let (rc, stderr, lines) = perceptd(&["replay", s(&half), "--model", MODEL], None);
    let f = faults(&stderr);
    assert_eq!((rc, f.len()), (0, 1), "{stderr}");
    assert!(
        f[0].contains("half.mp4: ffmpeg: ")
            && f[0].contains(&format!("the {lines} frames it decoded were processed")),
        "{}",
        f[0]
    );
    assert!((5..60).contains(&lines), "{lines} frames from half a file");
    // Without ffmpeg: how to install it.
    let (rc, stderr, lines) = perceptd(
        &["replay", s(&whole), "--model", MODEL],
        Some("/nonexistent"),
    );
    let f = faults(&stderr);
    assert_eq!((rc, f.len(), lines), (1, 1, 0), "{stderr}");
    assert!(
        f[0].ends_with(
            "whole.mp4: ffmpeg is not in PATH: install it (Debian/Ubuntu: sudo apt install ffmpeg)"
        ),
        "{}",
        f[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Children of `pid` named `ffmpeg`, from /proc.
fn ffmpeg_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').unwrap() + 1..close];
        let ppid: u32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == pid && comm == "ffmpeg" {
            out.push(e.file_name().to_str().unwrap().parse().unwrap());
        }
    }
    out
}

/// Start `perceptd ARGS`, wait until it has an ffmpeg child; returns
/// both and a thread reading its stdout (so the pipe never fills).
// The child is handed to the caller, which waits for it (`wait_bounded`).
#[allow(clippy::zombie_processes)]
fn start_with_ffmpeg(args: &[&str]) -> (std::process::Child, u32, std::thread::JoinHandle<String>) {
    let mut child = common::perceptd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let t0 = Instant::now();
    loop {
        if let Some(&ff) = ffmpeg_children(child.id()).first() {
            return (child, ff, reader);
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no ffmpeg child within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn ffmpeg_killed_mid_replay_is_one_error_line_after_the_frames_before_it() {
    let dir = temp_dir("video-killed");
    let clip = mp4(&dir, "long", 250, &[]);
    let (child, ff, stdout) = start_with_ffmpeg(&["replay", s(&clip), "--model", MODEL]);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on the ffmpeg child of the perceptd we started.
    assert_eq!(unsafe { libc::kill(ff as i32, libc::SIGKILL) }, 0);
    let (code, stderr) = wait_bounded(child, Duration::from_secs(60));
    let lines = stdout.join().unwrap().lines().count();
    let f = faults(&stderr);
    assert_eq!((code, f.len()), (4, 1), "{stderr}");
    assert!(
        f[0].contains("long.mp4: ffmpeg ended (killed by signal 9) after ")
            && f[0].contains(&format!("after {lines} frames")),
        "{lines} lines: {}",
        f[0]
    );
    assert!(lines > 0 && lines < 250, "{lines}");
    assert!(gone(ff), "ffmpeg {ff} left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_mid_replay_ends_within_a_second_and_reaps_ffmpeg() {
    let dir = temp_dir("video-sigterm");
    let clip = mp4(&dir, "long", 250, &[]);
    for pace in ["realtime", "fast"] {
        let (child, ff, _out) =
            start_with_ffmpeg(&["replay", s(&clip), "--pace", pace, "--model", MODEL]);
        std::thread::sleep(Duration::from_millis(2000));
        let t0 = Instant::now();
        // SAFETY: kill(2) on the child we spawned.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let (code, stderr) = wait_bounded(child, Duration::from_secs(5));
        let took = t0.elapsed();
        assert_eq!(code, 0, "{pace}: {stderr}");
        assert!(
            took < Duration::from_secs(1),
            "{pace}: took {took:?}: {stderr}"
        );
        assert!(
            gone(ff),
            "{pace}: ffmpeg {ff} left behind (zombie or orphan)"
        );
        assert!(faults(&stderr).is_empty(), "{pace}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_during_annotate_mp4_reaps_the_ffmpeg_writer() {
    // Regression: the forced exit after SIGTERM (`stop::GRACE`) left the
    // encoding ffmpeg child running, unreaped, after perceptd was gone.
    let dir = temp_dir("video-annotate-sigterm");
    let out = dir.join("out.mp4");
    let (child, ff, _out) = start_with_ffmpeg(&[
        "run",
        "--pace",
        "realtime",
        "--frames",
        "100000",
        "--annotate",
        s(&out),
    ]);
    std::thread::sleep(Duration::from_millis(2500));
    let t0 = Instant::now();
    // SAFETY: kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (code, stderr) = wait_bounded(child, Duration::from_secs(5));
    let took = t0.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}: {stderr}");
    assert!(gone(ff), "ffmpeg {ff} left behind: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
