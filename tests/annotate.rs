//! The annotated video output end to end, through the binary: a Y4M of the
//! synthetic demo scene (rendered here by the library's synthetic source,
//! so the fixture is made by the test itself) is replayed in lockstep with
//! `--annotate out.y4m` and `--annotate out.mp4` (ffmpeg child) and JSON
//! lines beside. Every input frame is in the video; pixels on each JSON
//! box's edge differ from the input frame, pixels far from every box do
//! not (Y4M: within the YUV round trip; MP4: within H.264's loss).
//!
//! Needs `ffmpeg` and `ffprobe` (Debian `ffmpeg`, installed by
//! `scripts/setup.sh --tests`).

mod common;

use common::*;
use perceptd::output::annotate::Y4mWriter;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use std::path::Path;
use std::process::Command;

const FRAMES: usize = 10;
const W: usize = 640;
const H: usize = 480;
/// Pixels closer than this to a box (or its label band above) are "near".
const MARGIN: f32 = 14.0;

/// The synthetic demo's first frames as Y4M 4:4:4.
fn write_input(path: &Path) {
    let mut src = SyntheticSource::new(SyntheticConfig::front_camera(1)).unwrap();
    let mut w = Y4mWriter::new(std::fs::File::create(path).unwrap(), W, H, 30).unwrap();
    let mut rgb = vec![0u8; W * H * 3];
    for i in 0..FRAMES {
        src.render(i as u64, &mut rgb).unwrap();
        w.write_rgb(&rgb).unwrap();
    }
    w.flush().unwrap();
}

/// Frames of a 4:4:4 Y4M as planar YUV (w*h*3 bytes each).
fn y4m_frames(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let nl = b.iter().position(|&c| c == b'\n').unwrap();
    let header = std::str::from_utf8(&b[..nl]).unwrap();
    assert!(
        header.contains(&format!("W{W} H{H}")) && header.contains("C444"),
        "{header}"
    );
    let mut rest = &b[nl + 1..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"FRAME\n"),
            "frame {} has no FRAME tag",
            out.len()
        );
        rest = &rest[6..];
        out.push(rest[..W * H * 3].to_vec());
        rest = &rest[W * H * 3..];
    }
    out
}

/// A video decoded by ffmpeg to packed RGB frames.
fn decode_rgb(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .expect("ffmpeg (scripts/setup.sh --tests installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len() % (W * H * 3), 0);
    out.stdout.chunks(W * H * 3).map(<[u8]>::to_vec).collect()
}

fn ffprobe_frames(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (scripts/setup.sh --tests installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn replay(input: &Path, annotate: &Path, json: &Path) {
    let out = common::perceptd()
        .arg("replay")
        .arg(input)
        .arg("--annotate")
        .arg(annotate)
        .arg("--output")
        .arg(json)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "output annotate:{} published {FRAMES} dropped 0",
            annotate.display()
        )),
        "{err}"
    );
}

/// Longest label band (`pedestrian 0.99 123.4m -12.3° #123`, 8 px a
/// character), drawn above a box from its left edge.
const LABEL_W: f32 = 40.0 * 8.0;

fn near_a_box(x: f32, y: f32, boxes: &[[f32; 4]]) -> bool {
    boxes.iter().any(|b| {
        let in_box =
            x >= b[0] - MARGIN && x <= b[2] + MARGIN && y >= b[1] - MARGIN && y <= b[3] + MARGIN;
        let in_label = x >= b[0] - MARGIN
            && x <= b[0] + LABEL_W
            && y >= b[1] - 2.0 * MARGIN
            && y <= b[1] + MARGIN;
        in_box || in_label
    })
}

/// Pixel coordinates.
type Pixels = Vec<(usize, usize)>;

/// Pixels on the boxes' left and right edges (sampled along them), and
/// every 7th pixel far from every box.
fn edge_and_far(boxes: &[[f32; 4]]) -> (Pixels, Pixels) {
    let mut edge = Vec::new();
    for b in boxes {
        let (x0, x1) = (b[0].round() as usize, b[2].round() as usize);
        let (y0, y1) = (b[1].round() as usize + 4, b[3].round() as usize);
        for y in (y0..y1.saturating_sub(2)).step_by(3) {
            for x in [x0, x1] {
                if x < W && y < H {
                    edge.push((x, y));
                }
            }
        }
    }
    let far = (0..W * H)
        .step_by(7)
        .map(|i| (i % W, i / W))
        .filter(|&(x, y)| !near_a_box(x as f32, y as f32, boxes))
        .collect();
    (edge, far)
}

#[test]
fn annotated_y4m_and_mp4_have_every_frame_and_boxes_only_where_the_json_says() {
    let dir = temp_dir("annotate");
    let input = dir.join("in.y4m");
    write_input(&input);

    // Y4M, written natively.
    let (y4m, json) = (dir.join("out.y4m"), dir.join("y4m.jsonl"));
    replay(&input, &y4m, &json);
    let lines = read_lines(&json);
    assert_eq!(lines.len(), FRAMES);
    let (src, ann) = (y4m_frames(&input), y4m_frames(&y4m));
    assert_eq!(ann.len(), FRAMES, "every input frame is in the video");
    let plane = W * H;
    let yuv = |f: &[u8], x: usize, y: usize| {
        let i = y * W + x;
        [f[i], f[plane + i], f[2 * plane + i]]
    };
    let mut boxes_seen = 0;
    for (n, line) in lines.iter().enumerate() {
        let boxes: Vec<[f32; 4]> = line.dets.iter().map(|d| d.bbox).collect();
        boxes_seen += boxes.len();
        let (edge, far) = edge_and_far(&boxes);
        let changed = edge
            .iter()
            .filter(|&&(x, y)| {
                let (a, b) = (yuv(&src[n], x, y), yuv(&ann[n], x, y));
                a.iter().zip(&b).any(|(a, b)| a.abs_diff(*b) > 10)
            })
            .count();
        assert!(
            changed * 10 >= edge.len() * 9,
            "frame {n}: only {changed} of {} box-edge pixels changed",
            edge.len()
        );
        for &(x, y) in &far {
            let (a, b) = (yuv(&src[n], x, y), yuv(&ann[n], x, y));
            assert!(
                a.iter().zip(&b).all(|(a, b)| a.abs_diff(*b) <= 2),
                "frame {n}: pixel ({x}, {y}) far from every box changed: {a:?} -> {b:?}"
            );
        }
        assert!(far.len() > W * H / 20, "frame {n}: too few far pixels");
    }
    assert!(
        boxes_seen >= FRAMES,
        "the demo scene has detections ({boxes_seen})"
    );

    // MP4, through the ffmpeg child.
    let (mp4, json) = (dir.join("out.mp4"), dir.join("mp4.jsonl"));
    replay(&input, &mp4, &json);
    assert_eq!(ffprobe_frames(&mp4), FRAMES);
    let lines = read_lines(&json);
    let (src, ann) = (decode_rgb(&input), decode_rgb(&mp4));
    assert_eq!(ann.len(), FRAMES);
    let rgb = |f: &[u8], x: usize, y: usize| {
        let i = (y * W + x) * 3;
        [f[i], f[i + 1], f[i + 2]]
    };
    let diff = |n: usize, px: &[(usize, usize)]| {
        let sum: u64 = px
            .iter()
            .map(|&(x, y)| {
                let (a, b) = (rgb(&src[n], x, y), rgb(&ann[n], x, y));
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| a.abs_diff(*b) as u64)
                    .max()
                    .unwrap()
            })
            .sum();
        sum as f64 / px.len().max(1) as f64
    };
    for (n, line) in lines.iter().enumerate() {
        let boxes: Vec<[f32; 4]> = line.dets.iter().map(|d| d.bbox).collect();
        let (edge, far) = edge_and_far(&boxes);
        let (e, f) = (diff(n, &edge), diff(n, &far));
        assert!(f < 6.0, "frame {n}: far pixels differ by {f:.1} on average");
        if !edge.is_empty() {
            assert!(
                e > 40.0,
                "frame {n}: box edges differ by only {e:.1} on average"
            );
        }
    }
}

#[test]
fn unwritable_annotate_path_is_one_error_line_at_boot() {
    let out = common::perceptd()
        .args([
            "run",
            "--frames",
            "1",
            "--annotate",
            "/nonexistent-dir/out.y4m",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("/nonexistent-dir/out.y4m") && lines[0].contains("No such file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
