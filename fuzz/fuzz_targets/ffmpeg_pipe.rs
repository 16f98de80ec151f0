//! Fuzz target: what the ffmpeg replay reads from its child, both pipes.
//! The first two bytes (little-endian) split the input into ffmpeg's
//! stderr (fed in uneven chunks through the line assembler and the log
//! classifier that finds `showinfo` timestamps and error lines) and its
//! stdout (a Y4M stream, read by the Y4M source from a file as the replay
//! reads the pipe: header, then every frame, copied or skipped). Any
//! panic, OOM or timeout is a bug: bad bytes must come back as
//! `LogLine::Other` or a `SourceError`.
//!
//! Run: `cargo +nightly fuzz run ffmpeg_pipe corpus/ffmpeg_pipe seeds/ffmpeg_pipe`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::ffmpeg::{parse_line, pts_ns, LineBuf, LogLine, LINE_MAX};
use perceptd::fsio::StreamReader;
use perceptd::source::y4m::{Pace, Y4mSource};
use perceptd::source::Source;
use std::io::{BufReader, Write};

/// Frames above this many bytes are skipped, not copied.
const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (log, y4m) = data[2..].split_at(split);

    let mut lines = LineBuf::default();
    let mut chunks = log;
    let mut step = 1;
    while !chunks.is_empty() {
        let n = step.min(chunks.len());
        lines.push(&chunks[..n], |l| {
            assert!(l.len() <= LINE_MAX);
            match parse_line(l) {
                LogLine::Frame { pts: Some(p), .. } => {
                    let _ = pts_ns(p, 1, 90_000);
                }
                LogLine::TimeBase { num, den } => {
                    assert!(num > 0 && den > 0);
                    let _ = pts_ns(i64::MAX, num, den);
                }
                LogLine::Error { msg, .. } => assert!(msg.len() <= l.len()),
                _ => {}
            }
        });
        chunks = &chunks[n..];
        step = step * 3 % 97 + 1;
    }

    let path =
        std::env::temp_dir().join(format!("perceptd-fuzz-ffmpeg-pipe-{}", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(y4m).is_err() {
        return;
    }
    drop(f);
    let Ok(file) = std::fs::File::open(&path) else {
        return;
    };
    let Ok(reader) = StreamReader::from_file(file) else {
        return;
    };
    let Ok(mut src) = Y4mSource::from_reader(
        "fuzz".into(),
        BufReader::with_capacity(4096, reader),
        Pace::Fast,
    ) else {
        return;
    };
    let bytes = src.desc().bytes();
    let mut buf = if bytes <= MAX_FRAME {
        vec![0u8; bytes]
    } else {
        Vec::new()
    };
    for k in 0..64 {
        let r = if buf.is_empty() || k % 2 == 1 {
            src.skip_frame()
        } else {
            src.next_frame(&mut buf)
        };
        if r.is_err() {
            break;
        }
    }
});
