//! Framing and replay of MJPEG streams built from the committed JPEG
//! fixtures (tests/fixtures/jpeg, scripts/make_jpeg_fixtures.sh).

use super::*;
use crate::source::replay;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jpeg");

fn jpeg(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}.jpg")).unwrap()
}

struct TempFile(std::path::PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stream(tag: &str, parts: &[&[u8]]) -> TempFile {
    let p = std::env::temp_dir().join(format!("perceptd-mjpeg-{tag}-{}", std::process::id()));
    std::fs::write(&p, parts.concat()).unwrap();
    TempFile(p)
}

/// What each `next_frame` gave, as a short word, until the end or a fatal
/// error (its message last).
fn run(src: &mut dyn Source) -> Vec<String> {
    let mut dst = vec![0u8; src.desc().bytes()];
    let mut seen = Vec::new();
    loop {
        match src.next_frame(&mut dst) {
            Ok(_) => seen.push("ok".to_string()),
            Err(SourceError::BadFrame { .. }) => seen.push("bad".to_string()),
            Err(SourceError::End) => return seen,
            Err(e) => {
                seen.push(e.to_string());
                return seen;
            }
        }
    }
}

#[test]
fn extent_walks_segments_and_entropy_data() {
    let a = jpeg("i420");
    assert_eq!(jpeg_extent(&a), Extent::Complete(a.len()));
    let two = [a.clone(), a.clone()].concat();
    assert_eq!(jpeg_extent(&two), Extent::Complete(a.len()));
    assert_eq!(jpeg_extent(&a[..a.len() - 1]), Extent::NeedMore);
    assert_eq!(jpeg_extent(&a[..1]), Extent::NeedMore);
    // The second half cut, the next JPEG right behind: broken at its SOI.
    let cut = [&a[..a.len() / 2], &a[..]].concat();
    assert_eq!(jpeg_extent(&cut), Extent::Broken(a.len() / 2));
    // An FF D9 inside an APP segment does not end the image.
    let app = [
        &[0xFF, 0xD8, 0xFF, 0xE1, 0, 6, 0xFF, 0xD9, 0xFF, 0xD9][..],
        &a[2..],
    ]
    .concat();
    assert_eq!(jpeg_extent(&app), Extent::Complete(app.len()));
}

#[test]
fn a_cut_jpeg_mid_stream_is_one_bad_frame_and_the_replay_goes_on() {
    let a = jpeg("i422");
    let f = stream("cut", &[&a, &a, &a[..a.len() / 2], &a, b"\0\0junk", &a]);
    let mut src = replay::open(&f.0, Pace::Fast, 64).unwrap();
    assert_eq!(src.desc().format, crate::frame::PixelFormat::I422);
    assert!(
        src.describe().contains("MJPEG I422 64x32"),
        "{}",
        src.describe()
    );
    assert_eq!(run(src.as_mut()), ["ok", "ok", "bad", "ok", "bad", "ok"]);
}

#[test]
fn decoded_frames_match_the_decoder_on_the_file() {
    let a = jpeg("i420_odd");
    let want = std::fs::read(format!("{DIR}/i420_odd.yuv")).unwrap();
    let f = stream("same", &[&a, &a]);
    let mut src = replay::open(&f.0, Pace::Fast, 64).unwrap();
    let mut dst = vec![0u8; src.desc().bytes()];
    for _ in 0..2 {
        src.next_frame(&mut dst).unwrap();
        assert!(dst.iter().zip(&want).all(|(x, y)| x.abs_diff(*y) <= 2));
    }
    assert!(matches!(src.next_frame(&mut dst), Err(SourceError::End)));
}

#[test]
fn a_stream_ending_inside_a_jpeg_is_truncated_after_the_whole_ones() {
    let a = jpeg("i420");
    let f = stream("tail", &[&a, &a, &a[..700]]);
    let mut src = replay::open(&f.0, Pace::Fast, 64).unwrap();
    let seen = run(src.as_mut());
    assert_eq!(seen[..2], ["ok", "ok"]);
    assert_eq!(
        seen[2],
        format!(
            "{}: truncated after 2 complete frames (700 stray bytes at the end)",
            f.0.display()
        )
    );
}

#[test]
fn the_stream_buffer_is_checked_against_the_budget_before_it_is_allocated() {
    let a = jpeg("i420");
    // 64x48 that claims 16000x16000 in its SOF: 1 GB of buffer.
    let mut big = a.clone();
    let sof = big.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    big[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
    let f = stream("budget", &[&big]);
    let e = replay::open(&f.0, Pace::Fast, 256)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("pipeline.max_memory_mb = 256")
            && e.contains("the MJPEG stream buffer")
            && e.contains("16000x16000"),
        "{e}"
    );
}

#[test]
fn the_first_frame_must_be_a_jpeg_this_decoder_takes() {
    let mut prog = jpeg("i420");
    let sof = prog.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    prog[sof + 1] = 0xC2;
    let f = stream("prog", &[&prog]);
    let e = replay::open(&f.0, Pace::Fast, 64)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: MJPEG stream, first frame: unsupported JPEG: progressive JPEG",
            f.0.display()
        )
    );
}
