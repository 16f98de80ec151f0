//! `perceptd replay FILE`: what a file is, by its content, not its name.
//! `YUV4MPEG2` -> [`Y4mSource`]; `FF D8` (a JPEG's SOI) -> a raw MJPEG
//! stream, [`MjpegSource`]; anything else is one error line naming both.
//! `-` is standard input, read the same way.
//!
//! Boot only: opens the stream, peeks at its first bytes without
//! consuming them (so a pipe loses nothing), hands it to the source.

use crate::fsio::open_stream;
use crate::source::mjpeg::MjpegSource;
use crate::source::y4m::{Pace, Y4mSource, IO_BUFFER};
use crate::source::{Source, SourceError};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Open `path` (`-`: stdin) as whichever replay source its content is.
/// `max_memory_mb` bounds buffers sized from the content.
pub fn open(path: &Path, pace: Pace, max_memory_mb: u64) -> Result<Box<dyn Source>, SourceError> {
    let path_s = path.display().to_string();
    let io_err = |e: std::io::Error| SourceError::Io {
        path: path_s.clone(),
        msg: e.to_string(),
    };
    let file = open_stream(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(IO_BUFFER, file);
    let head = reader.fill_buf().map_err(io_err)?;
    // A pipe may hand over fewer bytes than a magic: a prefix of one will do.
    let starts = |magic: &[u8]| head.iter().zip(magic).all(|(a, b)| a == b);
    if !head.is_empty() && !starts(b"YUV4MPEG2") && !starts(&[0xFF, 0xD8]) {
        return Err(SourceError::Io {
            path: path_s.clone(),
            msg: unrecognised(head),
        });
    }
    if head.starts_with(&[0xFF, 0xD8]) {
        return Ok(Box::new(MjpegSource::from_reader(
            path_s,
            reader,
            pace,
            max_memory_mb,
        )?));
    }
    Ok(Box::new(Y4mSource::from_reader(path_s, reader, pace)?))
}

/// Why content that is none of the formats replay reads is refused.
fn unrecognised(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "not a recording perceptd reads (it starts with {}): replay takes Y4M (YUV4MPEG2) \
         and raw MJPEG (JPEGs one after another, FF D8)",
        hex.join(" ")
    )
}
