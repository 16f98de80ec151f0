//! `perceptd replay FILE`: what a file is, by its content, not its name.
//! `YUV4MPEG2` -> [`Y4mSource`]; `FF D8` (a JPEG's SOI) -> a raw MJPEG
//! stream, [`MjpegSource`]; the MCAP magic, or a folder -> a ROS 2 bag,
//! [`crate::source::bag`]. `-` is standard input, read the same way.
//!
//! Boot only: opens the stream, peeks at its first bytes without
//! consuming them (so a pipe loses nothing), hands it to the source.

use crate::fsio::open_stream;
use crate::source::bag;
use crate::source::mjpeg::MjpegSource;
use crate::source::y4m::{Pace, Y4mSource, IO_BUFFER};
use crate::source::{Source, SourceError};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Open `path` (`-`: stdin) as whichever replay source its content is.
/// `max_memory_mb` bounds buffers sized from the content.
pub fn open(path: &Path, pace: Pace, max_memory_mb: u64) -> Result<Box<dyn Source>, SourceError> {
    open_topic(path, pace, max_memory_mb, None)
}

/// [`open`], with the image topic to replay when `path` is a ROS 2 bag
/// (`--topic`; refused for any other recording).
pub fn open_topic(
    path: &Path,
    pace: Pace,
    max_memory_mb: u64,
    topic: Option<&str>,
) -> Result<Box<dyn Source>, SourceError> {
    if path.is_dir() {
        return Ok(Box::new(bag::open(path, pace, max_memory_mb, topic)?));
    }
    let path_s = path.display().to_string();
    let io_err = |e: std::io::Error| SourceError::Io {
        path: path_s.clone(),
        msg: e.to_string(),
    };
    let file = open_stream(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(IO_BUFFER, file);
    let head = reader.fill_buf().map_err(io_err)?;
    if bag::is_mcap(head) {
        // Read again as a file (a pipe is refused there: the index is at the end).
        return Ok(Box::new(bag::open(path, pace, max_memory_mb, topic)?));
    }
    if let Some(t) = topic {
        return Err(SourceError::Config(format!(
            "{path_s}: --topic {t}: not a ROS 2 bag (MCAP file or rosbag2 folder)"
        )));
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
