//! The decoder against ffmpeg's decode of the same files
//! (tests/fixtures/jpeg, made by scripts/make_jpeg_fixtures.sh), and its
//! answers to broken input.

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jpeg");

fn fixture(name: &str) -> (Vec<u8>, Vec<u8>) {
    let jpg = std::fs::read(format!("{DIR}/{name}.jpg")).unwrap();
    let yuv = std::fs::read(format!("{DIR}/{name}.yuv")).unwrap();
    (jpg, yuv)
}

fn decode(jpg: &[u8]) -> Result<(JpegInfo, Vec<u8>)> {
    let info = probe(jpg)?;
    let mut out = vec![0u8; info.desc().bytes()];
    JpegDecoder::new(info).decode(jpg, &mut out)?;
    Ok((info, out))
}

/// Largest and mean absolute difference between two planes sets.
fn diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    (max, sum as f64 / a.len() as f64)
}

#[test]
fn decodes_every_subsampling_as_ffmpeg_does() {
    for (name, w, h, format) in [
        ("i420", 64, 48, PixelFormat::I420),
        ("i420_odd", 37, 23, PixelFormat::I420),
        ("i422", 64, 32, PixelFormat::I422),
        ("i422_odd", 41, 19, PixelFormat::I422),
        ("i444", 40, 24, PixelFormat::I444),
        ("i422_nodht", 48, 32, PixelFormat::I422),
    ] {
        let (jpg, want) = fixture(name);
        let (info, got) = decode(&jpg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            info,
            JpegInfo {
                width: w,
                height: h,
                format
            },
            "{name}"
        );
        // ffmpeg's integer IDCT and our float one round differently by
        // at most one step here and there.
        let (max, mean) = diff(&got, &want);
        assert!(max <= 2 && mean < 0.2, "{name}: max {max}, mean {mean:.3}");
    }
}

#[test]
fn a_decoder_is_reused_frame_after_frame() {
    let (jpg, want) = fixture("i422");
    let info = probe(&jpg).unwrap();
    let mut d = JpegDecoder::new(info);
    let mut out = vec![0u8; info.desc().bytes()];
    for _ in 0..3 {
        out.fill(0);
        d.decode(&jpg, &mut out).unwrap();
        assert!(diff(&out, &want).0 <= 2);
    }
}

#[test]
fn a_jpeg_with_its_second_half_cut_is_truncated() {
    let (jpg, _) = fixture("i420");
    let info = probe(&jpg).unwrap();
    let mut d = JpegDecoder::new(info);
    let mut out = vec![0u8; info.desc().bytes()];
    for cut in [jpg.len() / 2, jpg.len() - 40, 200, 3] {
        assert_eq!(
            d.decode(&jpg[..cut], &mut out),
            Err(JpegError::Truncated),
            "cut at {cut}"
        );
    }
    // Only the EOI missing: every MCU is there, the image is whole.
    assert_eq!(d.decode(&jpg[..jpg.len() - 2], &mut out), Ok(()));
}

#[test]
fn another_size_or_subsampling_is_refused_not_written() {
    let (a, _) = fixture("i420");
    let (b, _) = fixture("i422");
    let mut d = JpegDecoder::new(probe(&a).unwrap());
    let mut out = vec![7u8; d.desc().bytes()];
    let e = d.decode(&b, &mut out).unwrap_err();
    assert!(matches!(e, JpegError::Mismatch { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "JPEG is 64x32 i422, but the stream is 64x48 i420"
    );
    assert!(out.iter().all(|&p| p == 7));
}

#[test]
fn garbage_and_unsupported_kinds_are_named() {
    assert_eq!(probe(b"RIFF....").unwrap_err(), JpegError::NotJpeg);
    assert_eq!(probe(&[0xFF, 0xD8]).unwrap_err(), JpegError::Truncated);
    // A progressive SOF2 header for a 16x16 grey image.
    let prog = [
        0xFF, 0xD8, 0xFF, 0xC2, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0,
    ];
    assert_eq!(
        probe(&prog).unwrap_err(),
        JpegError::Unsupported("progressive JPEG")
    );
    // 12-bit baseline.
    let deep = [
        0xFF, 0xD8, 0xFF, 0xC1, 0, 11, 12, 0, 16, 0, 16, 1, 1, 0x11, 0,
    ];
    assert_eq!(
        probe(&deep).unwrap_err(),
        JpegError::Unsupported("only 8-bit samples")
    );
}

#[test]
fn flipped_bytes_never_panic() {
    // A cheap stand-in for the fuzz target: every byte of a real JPEG
    // flipped in turn decodes to Ok or to an error, never a panic.
    let (jpg, _) = fixture("i420_odd");
    let info = probe(&jpg).unwrap();
    let mut d = JpegDecoder::new(info);
    let mut out = vec![0u8; info.desc().bytes()];
    let mut bad = 0;
    for i in 0..jpg.len() {
        for flip in [0xFFu8, 0x01, 0x80] {
            let mut j = jpg.clone();
            j[i] ^= flip;
            if d.decode(&j, &mut out).is_err() {
                bad += 1;
            }
        }
    }
    assert!(bad > 0);
}
