//! Fuzz target: arbitrary bytes as a ROS 2 bag (MCAP), through what
//! `perceptd replay BAG` runs: the boot (the `mcap` crate's summary
//! reader, or our record scan when there is no summary; topic choice;
//! the first message's CDR and JPEG header), then every frame through our
//! record reader (chunks: none, zstd, lz4), the CDR decoder and the pixel
//! copy or JPEG decoder. And the CDR decoders on the raw bytes. Any
//! panic, OOM or timeout is a bug: bad input must come back as a
//! `SourceError` (boot: one line; frames: bad frame, truncated, end).
//!
//! Run: `cargo +nightly fuzz run read_bag corpus/read_bag seeds/read_bag`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::source::bag::{self, cdr};
use perceptd::source::y4m::Pace;
use perceptd::source::{Source, SourceError};

/// The bag's buffers stay under this budget (MiB), as at boot.
const BUDGET_MB: u64 = 64;

fuzz_target!(|data: &[u8]| {
    let _ = cdr::parse_image(data);
    let _ = cdr::parse_compressed(data);
    let _ = cdr::parse_stamp(data);
    // The reader works on a file (positioned reads): one per process.
    let path = std::env::temp_dir().join(format!("read_bag-{}.mcap", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let Ok(mut src) = bag::open(&path, Pace::Fast, BUDGET_MB, None) else {
        return;
    };
    let desc = src.desc();
    if desc.width * desc.height > 1 << 22 {
        return;
    }
    let mut buf = vec![0u8; desc.bytes()];
    for k in 0..64 {
        let r = if k % 3 == 2 {
            src.skip_frame()
        } else {
            src.next_frame(&mut buf)
        };
        match r {
            Ok(_) | Err(SourceError::BadFrame { .. }) => {}
            Err(_) => break,
        }
    }
});
