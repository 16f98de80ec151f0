//! Fuzz target: arbitrary bytes as a raw MJPEG stream, through the
//! framing (`jpeg_extent`, as the replay source walks a stream) and the
//! JPEG decoder (`probe`, then `decode` into a frame of the probed size,
//! as the stream's first frame sets it). Any panic, OOM or timeout is a
//! bug: bad input must come back as an `Extent::Broken`/`NeedMore` or a
//! `JpegError`. Extents must stay inside the data.
//!
//! Run: `cargo +nightly fuzz run decode_mjpeg corpus/decode_mjpeg seeds/decode_mjpeg`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::source::jpeg::{probe, JpegDecoder};
use perceptd::source::mjpeg::{jpeg_extent, Extent};

/// Frames above this many pixels are only framed, not decoded (the buffer
/// would be the fuzzer's memory, not the decoder's behaviour).
const MAX_PIXELS: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut decoder: Option<(Box<JpegDecoder>, Vec<u8>)> = None;
    while !rest.is_empty() {
        let Some(soi) = rest.windows(2).position(|w| w == [0xFF, 0xD8]) else {
            break;
        };
        rest = &rest[soi..];
        match jpeg_extent(rest) {
            Extent::Complete(n) => {
                assert!((4..=rest.len()).contains(&n), "extent {n} of {}", rest.len());
                let jpeg = &rest[..n];
                if decoder.is_none() {
                    if let Ok(info) = probe(jpeg) {
                        if info.width * info.height <= MAX_PIXELS {
                            let buf = vec![0u8; info.desc().bytes()];
                            decoder = Some((JpegDecoder::new(info), buf));
                        }
                    }
                }
                if let Some((d, buf)) = decoder.as_mut() {
                    let _ = d.decode(jpeg, buf);
                }
                rest = &rest[n..];
            }
            Extent::Broken(n) => {
                assert!(n <= rest.len());
                rest = &rest[n.max(1)..];
            }
            Extent::NeedMore => break,
        }
    }
});
