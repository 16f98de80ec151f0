//! `perceptd replay FILE`: what a file is, by its content, not its name.
//! `YUV4MPEG2` (or nothing: an empty file) -> [`Y4mSource`]; `FF D8` (a
//! JPEG's SOI) -> a raw MJPEG stream, [`MjpegSource`]; the MCAP magic, or a
//! folder -> a ROS 2 bag, [`crate::source::bag`]; anything else in a
//! regular file -> [`VideoSource`] (an ffmpeg child decodes it). `-` is
//! standard input, read the same way (Y4M or MJPEG: a pipe's first bytes,
//! once read, cannot be handed to ffmpeg).
//!
//! Boot only: opens the stream, peeks at its first bytes without
//! consuming them (so a pipe loses nothing), hands it to the source.

use crate::fsio::open_stream;
use crate::source::bag;
use crate::source::mjpeg::MjpegSource;
use crate::source::video::VideoSource;
use crate::source::y4m::{Pace, Y4mSource, IO_BUFFER};
use crate::source::{Source, SourceError};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// What the first bytes of a replay say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Y4m,
    Mjpeg,
    /// An MCAP file (a ROS 2 bag).
    Bag,
    /// Anything else: left to ffmpeg.
    Video,
}

/// Sniff `head` (the first bytes; empty: an empty file, read as Y4M so
/// the error says "empty file").
pub fn kind(head: &[u8]) -> Kind {
    if head.starts_with(&[0xFF, 0xD8]) {
        Kind::Mjpeg
    } else if bag::is_mcap(head) {
        Kind::Bag
    } else if head.is_empty() || b"YUV4MPEG2".starts_with(&head[..head.len().min(9)]) {
        Kind::Y4m
    } else {
        Kind::Video
    }
}

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
    let pipe = file.is_pipe();
    let mut reader = BufReader::with_capacity(IO_BUFFER, file);
    let head = reader.fill_buf().map_err(io_err)?;
    let kind = kind(head);
    if let (Some(t), false) = (topic, kind == Kind::Bag) {
        return Err(SourceError::Config(format!(
            "{path_s}: --topic {t}: not a ROS 2 bag (MCAP file or rosbag2 folder)"
        )));
    }
    match kind {
        Kind::Bag => {
            // Read again as a file (a pipe is refused there: the index is at the end).
            drop(reader);
            Ok(Box::new(bag::open(path, pace, max_memory_mb, topic)?))
        }
        Kind::Mjpeg => Ok(Box::new(MjpegSource::from_reader(
            path_s,
            reader,
            pace,
            max_memory_mb,
        )?)),
        Kind::Y4m => Ok(Box::new(Y4mSource::from_reader(path_s, reader, pace)?)),
        Kind::Video if pipe => Err(SourceError::Io {
            msg: format!(
                "neither Y4M (YUV4MPEG2) nor raw MJPEG (JPEGs one after another, FF D8): it \
                 starts with {}, and a pipe or device cannot be handed to ffmpeg: give a \
                 regular file, or pipe Y4M (ffmpeg -i FILE -f yuv4mpegpipe - | perceptd replay -)",
                hex8(head)
            ),
            path: path_s,
        }),
        Kind::Video => {
            drop(reader);
            Ok(Box::new(VideoSource::open(path, pace)?))
        }
    }
}

/// The first (up to) 8 bytes as `00 01 ...`, for error lines.
fn hex8(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}
