//! The live view (`kind = "http"`) end to end, through the binary and a
//! real headless Chromium (Debian `chromium`, installed by
//! `scripts/setup.sh --tests`), plus ffmpeg to decode its PNG screenshot.
//!
//! A Y4M holding one synthetic demo frame many times (a static scene, so
//! every frame has the same boxes whatever moment the browser catches) is
//! replayed at its frame rate with an http output on a free loopback port
//! and JSON lines beside. While it runs: a stalled viewer (asks for the
//! stream, never reads), two MJPEG readers, `/stats`, and Chromium's
//! screenshot of `/`. The page loads, the stream image is not blank, and
//! the boxes are drawn where the JSON lines say (their edges differ from
//! the source frame; pixels far from every box do not, within JPEG's loss).
//!
//! Also the boot errors: a port in use, an unknown output kind.

mod common;

use common::*;
use perceptd::output::annotate::Y4mWriter;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const W: usize = 640;
const H: usize = 480;
/// The demo frame shown (it has several objects in view).
const SCENE_FRAME: u64 = 20;
/// 8 s at 30 fps.
const REPEATS: usize = 240;

/// The scene frame as RGB, and a Y4M repeating it.
fn write_input(path: &Path) -> Vec<u8> {
    let mut src = SyntheticSource::new(SyntheticConfig::front_camera(1)).unwrap();
    let mut w = Y4mWriter::new(std::fs::File::create(path).unwrap(), W, H, 30).unwrap();
    let mut rgb = vec![0u8; W * H * 3];
    src.render(SCENE_FRAME, &mut rgb).unwrap();
    for _ in 0..REPEATS {
        w.write_rgb(&rgb).unwrap();
    }
    w.flush().unwrap();
    rgb
}

fn get(port: u16, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).unwrap();
    let at = b.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&b[..at]).into_owned(),
        b[at + 4..].to_vec(),
    )
}

/// Reads the MJPEG stream for `dur`; returns the JPEG parts seen.
fn read_stream(port: u16, dur: Duration) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(s, "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let mut b = Vec::new();
    let mut buf = [0u8; 65536];
    while t0.elapsed() < dur {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => b.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("multipart/x-mixed-replace; boundary=frame"),
        "{head}"
    );
    let tag: &[u8] = b"--frame\r\nContent-Type: image/jpeg\r\n";
    b.windows(tag.len()).filter(|w| *w == tag).count()
}

fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (scripts/setup.sh --tests installs it)");
    let dims = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let (w, h) = dims.split_once(',').unwrap();
    let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), w * h * 3);
    (w, h, out.stdout)
}

#[test]
fn chromium_shows_the_live_page_with_boxes_where_the_json_says() {
    let dir = temp_dir("http-view");
    let input = dir.join("in.y4m");
    let source = write_input(&input);
    let cfg = dir.join("http.toml");
    std::fs::write(
        &cfg,
        "[[output]]\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\n[[output]]\nkind = \"json\"\n",
    )
    .unwrap();
    let json = dir.join("det.jsonl");
    let mut child = common::perceptd()
        .arg("replay")
        .arg(&input)
        .args(["--pace", "realtime", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log names the port; the rest of stderr is kept for the end.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let port: u16 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no http line in the log: {log:?}"));
        log.push(line.clone());
        if let Some(rest) = line.split("live view on http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };

    // A stalled viewer: asks for the stream and never reads.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stalled, "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();

    // Wait for the first frame.
    let t0 = Instant::now();
    let stats = loop {
        let (head, body) = get(port, "/stats");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["frames_shown"].as_u64().unwrap_or(0) > 3 {
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no frame shown");
        std::thread::sleep(Duration::from_millis(100));
    };
    for stage in ["queue", "preprocess", "inference", "postprocess", "e2e"] {
        assert!(
            stats["latency_ms"][stage]["p99"].as_f64().is_some(),
            "{stats}"
        );
    }
    let live_dets = stats["frame"]["detections"].as_array().unwrap().len();
    assert!(live_dets > 0, "{stats}");

    // Two readers at once, beside the stalled one: both get frames.
    let readers: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || read_stream(port, Duration::from_millis(1500))))
        .collect();
    for r in readers {
        let parts = r.join().unwrap();
        assert!(parts >= 3, "a reader got only {parts} frames in 1.5 s");
    }

    let (head, page) = get(port, "/");
    assert!(head.contains("text/html"), "{head}");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("/stream.mjpg") && page.contains("/stats"));
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("@import"),
        "the page must be self-contained"
    );

    // The browser.
    let shot = dir.join("shot.png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1040,600",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("chromium (scripts/setup.sh --tests installs it)");
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(stalled);

    let (code, err) = wait_bounded(child, Duration::from_secs(60));
    drop(rx);
    let _ = reader.join();
    assert_eq!(code, 0, "{log:?} {err}");

    let (sw, sh, px) = decode_png(&shot);
    assert!(sw >= W && sh >= H);
    let at = |x: usize, y: usize| {
        let i = (y * sw + x) * 3;
        [px[i], px[i + 1], px[i + 2]]
    };
    // Not blank: the image area has the scene's variety.
    let mut lum = Vec::new();
    for y in (0..H).step_by(8) {
        for x in (0..W).step_by(8) {
            let p = at(x, y);
            lum.push((p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0);
        }
    }
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    assert!(
        var > 200.0,
        "the stream image looks blank (variance {var:.0})"
    );

    // The boxes of the JSON lines (the same in every frame).
    let lines = read_lines(&json);
    let last = lines.last().unwrap();
    assert!(!last.dets.is_empty());
    let boxes: Vec<[f32; 4]> = last.dets.iter().map(|d| d.bbox).collect();
    let src = |x: usize, y: usize| {
        let i = (y * W + x) * 3;
        [source[i], source[i + 1], source[i + 2]]
    };
    let d = |a: [u8; 3], b: [u8; 3]| a.iter().zip(&b).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    let (mut edge_sum, mut edge_n) = (0u64, 0u64);
    for b in &boxes {
        let (x0, x1) = (b[0].round() as usize, b[2].round() as usize);
        for y in (b[1].round() as usize + 4..b[3].round() as usize).step_by(2) {
            for x in [x0, x1] {
                if x < W && y < H {
                    edge_sum += d(at(x, y), src(x, y)) as u64;
                    edge_n += 1;
                }
            }
        }
    }
    let (mut far_sum, mut far_n) = (0u64, 0u64);
    for y in (0..H).step_by(5) {
        for x in (0..W).step_by(5) {
            let near = boxes.iter().any(|b| {
                x as f32 >= b[0] - 14.0
                    && x as f32 <= (b[2] + 14.0).max(b[0] + 320.0)
                    && y as f32 >= b[1] - 28.0
                    && y as f32 <= b[3] + 14.0
            });
            if !near {
                far_sum += d(at(x, y), src(x, y)) as u64;
                far_n += 1;
            }
        }
    }
    let (edge, far) = (
        edge_sum as f64 / edge_n.max(1) as f64,
        far_sum as f64 / far_n.max(1) as f64,
    );
    eprintln!(
        "screenshot {}: variance {var:.0}, box edges differ by {edge:.1}, far pixels by {far:.1} \
         (mean max-channel difference)",
        shot.display()
    );
    assert!(
        edge_n > 20 && far_n > 1000,
        "{edge_n} edge, {far_n} far pixels"
    );
    assert!(
        edge > 40.0,
        "box edges in the screenshot differ from the source by {edge:.1} on average"
    );
    assert!(
        far < 10.0,
        "pixels far from the boxes differ from the source by {far:.1} on average"
    );
}

#[test]
fn a_port_in_use_is_one_error_line_at_boot() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("http-port");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"synthetic\"\n[[output]]\nkind = \"http\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let out = common::perceptd()
        .args(["run", "--frames", "1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&format!("listen = \"127.0.0.1:{port}\""))
            && errors[0].contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_output_kind_is_one_error_line() {
    let dir = temp_dir("http-kind");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[[output]]\nkind = \"webrtc\"\n").unwrap();
    let out = common::perceptd()
        .args(["run", "--frames", "1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("c.toml")
            && errors[0].contains("output[0]")
            && errors[0].contains("webrtc")
            && errors[0].contains("annotate"),
        "{err}"
    );
}
