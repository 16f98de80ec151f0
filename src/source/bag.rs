//! ROS 2 bag replay (`perceptd replay BAG --topic /camera/image_raw`): an
//! MCAP file, or a rosbag2 folder (`metadata.yaml` and its `.mcap` files,
//! replayed in the order it lists them), found by content (the MCAP magic)
//! or by being a folder.
//!
//! Boot: the `mcap` crate reads each file's summary (schemas, channels,
//! message counts, chunk sizes); a file without one (cut short, or still
//! being recorded) is scanned record by record instead. The topic is
//! chosen (`--topic`, or the bag's only image topic), its first message
//! is decoded to fix the frame format, and every buffer (chunk,
//! compressed chunk, message, JPEG decoder) is sized from what the bag
//! says and checked against `pipeline.max_memory_mb` before it is
//! allocated.
//!
//! Messages: `sensor_msgs/msg/Image` with encoding `rgb8`, `bgr8` (both
//! delivered as RGB24), `mono8` (GREY), `yuv422` and `uyvy` (UYVY, as
//! ROS's image_encodings define `yuv422`), `yuv422_yuy2` and `yuyv`
//! (YUYV); `sensor_msgs/msg/CompressedImage` with a JPEG `format`
//! (decoded by our [`JpegDecoder`]). Other encodings and formats (`png`,
//! 16-bit, Bayer) are refused at boot by name. CDR decoding:
//! [`cdr`]; record framing on the frame path: [`records`].
//!
//! Timestamps: the message header stamp is the frame's `source_ns` (the
//! MCAP log time where the stamp is unset); `--pace realtime` delivers
//! each frame at first-frame time + (stamp - first stamp).
//!
//! Faults: a message that cannot be read (corrupt chunk, a frame whose
//! size or encoding differs from the first, a bad JPEG) is a bad frame,
//! counted and dropped; a file that ends inside a record is
//! [`SourceError::Truncated`] after every complete frame was delivered.
//!
//! Allocation: `open` allocates; `next_frame` and `skip_frame` never
//! allocate on success (capture thread; tests/bag_alloc.rs counts at the
//! malloc level).

pub mod cdr;
mod lengths;
pub mod records;

use crate::budget::BudgetError;
use crate::clock::monotonic_ns;
use crate::frame::{FrameDesc, PixelFormat};
use crate::fsio::open_regular;
use crate::source::jpeg::{probe, JpegDecoder};
use crate::source::y4m::{Pace, MAX_DIM};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use records::{Fault, Next, Rec, RecordReader, MAGIC, OP_CHANNEL, OP_MESSAGE, OP_SCHEMA};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// `replay`'s flag for bags (flattened into the command line).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BagArgs {
    /// ROS 2 bags: the image topic to replay (sensor_msgs/msg/Image or
    /// CompressedImage); default: the bag's only image topic.
    #[arg(long)]
    pub topic: Option<String>,
}

pub const IMAGE: &str = "sensor_msgs/msg/Image";
pub const COMPRESSED: &str = "sensor_msgs/msg/CompressedImage";
/// Room for headers and tables next to a JPEG's pixels (as MJPEG streams).
const JPEG_SLACK: u64 = 64 * 1024;

/// Whether a stream starting with `head` is an MCAP file.
pub fn is_mcap(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// One channel of one file, as the summary or the scan found it.
#[derive(Debug, Clone)]
struct ChannelInfo {
    id: u16,
    topic: String,
    schema: String,
    encoding: String,
    count: u64,
}

/// What boot learned about one file.
struct FileInfo {
    path: String,
    file: File,
    len: u64,
    channels: Vec<ChannelInfo>,
    /// Largest compressed and uncompressed chunk.
    chunk_raw: u64,
    chunk: u64,
}

struct Part {
    path: String,
    file: Option<File>,
    len: u64,
    /// Channel ids of the topic in this file.
    channels: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raw {
    Rgb8,
    Bgr8,
    Mono8,
    Yuyv,
    Uyvy,
}

impl Raw {
    fn of(encoding: &[u8]) -> Option<Raw> {
        Some(match encoding {
            b"rgb8" => Raw::Rgb8,
            b"bgr8" => Raw::Bgr8,
            b"mono8" => Raw::Mono8,
            b"yuv422" | b"uyvy" => Raw::Uyvy,
            b"yuv422_yuy2" | b"yuyv" => Raw::Yuyv,
            _ => return None,
        })
    }

    fn format(self) -> PixelFormat {
        match self {
            Raw::Rgb8 | Raw::Bgr8 => PixelFormat::Rgb24,
            Raw::Mono8 => PixelFormat::Grey,
            Raw::Yuyv => PixelFormat::Yuyv,
            Raw::Uyvy => PixelFormat::Uyvy,
        }
    }

    /// Bytes of one row's pixels in the message.
    fn row(self, width: usize) -> usize {
        match self {
            Raw::Rgb8 | Raw::Bgr8 => width * 3,
            Raw::Mono8 => width,
            Raw::Yuyv | Raw::Uyvy => width * 2,
        }
    }
}

enum Kind {
    Raw(Raw),
    Jpeg(Box<JpegDecoder>),
}

/// Replays one image topic of a ROS 2 bag. See the module doc.
pub struct BagSource {
    path: String,
    topic: String,
    what: String,
    parts: Vec<Part>,
    cur: usize,
    reader: RecordReader,
    kind: Kind,
    desc: FrameDesc,
    pace: Pace,
    start_ns: u64,
    first_stamp: Option<u64>,
    frames: u64,
    bad: u64,
    messages: u64,
}

fn cfg(msg: String) -> SourceError {
    SourceError::Config(msg)
}

fn list(topics: &[ChannelInfo]) -> String {
    if topics.is_empty() {
        return "none".into();
    }
    topics
        .iter()
        .map(|t| {
            // Names come from the file: escaped, so the error stays one line.
            let (topic, schema) = (t.topic.escape_debug(), t.schema.escape_debug());
            format!("{topic} ({schema}, {} messages)", t.count)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_image(c: &ChannelInfo) -> bool {
    (c.schema == IMAGE || c.schema == COMPRESSED) && c.encoding == "cdr"
}

/// The files of a bag: `path` itself, or a rosbag2 folder's.
fn bag_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let p = path.display();
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let meta = path.join("metadata.yaml");
    if meta.exists() {
        #[derive(serde::Deserialize)]
        struct Meta {
            rosbag2_bagfile_information: Info,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            #[serde(default)]
            storage_identifier: Option<String>,
            #[serde(default)]
            relative_file_paths: Vec<String>,
        }
        let text =
            std::fs::read_to_string(&meta).map_err(|e| cfg(format!("{}: {e}", meta.display())))?;
        let m: Meta = serde_norway::from_str(&text)
            .map_err(|e| cfg(format!("{}: not rosbag2 metadata: {e}", meta.display())))?;
        let info = m.rosbag2_bagfile_information;
        if let Some(s) = info.storage_identifier.filter(|s| s != "mcap") {
            return Err(cfg(format!(
                "{}: storage_identifier is '{s}': only MCAP bags are read (convert with `ros2 bag convert`)",
                meta.display()
            )));
        }
        if info.relative_file_paths.is_empty() {
            return Err(cfg(format!(
                "{}: relative_file_paths is empty: no bag file",
                meta.display()
            )));
        }
        return Ok(info
            .relative_file_paths
            .iter()
            .map(|f| path.join(f))
            .collect());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| cfg(format!("{p}: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|x| x == "mcap"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(cfg(format!(
            "{p}: a folder, but not a rosbag2 bag: no metadata.yaml and no .mcap file in it"
        )));
    }
    Ok(files)
}

fn budget_err(path: &str, limit_mb: u64, bytes: u64, detail: String) -> SourceError {
    cfg(BudgetError::Exceeded {
        origin: path.to_string(),
        limit_mb,
        needed_mb: bytes.div_ceil(1 << 20),
        what: "the ROS 2 bag reader's buffers".into(),
        detail,
    }
    .to_string())
}

fn fault(path: &str, f: Fault, limit_mb: u64) -> SourceError {
    match f {
        Fault::Truncated { offset, stray } => SourceError::Io {
            path: path.to_string(),
            msg: format!("MCAP record at byte offset {offset} cut short ({stray} bytes there)"),
        },
        Fault::Io { offset, err } => SourceError::Io {
            path: path.to_string(),
            msg: format!("at byte offset {offset}: {err}"),
        },
        Fault::TooLarge {
            offset,
            what,
            bytes,
        } => budget_err(
            path,
            limit_mb,
            bytes,
            format!("{what} at byte offset {offset}"),
        ),
    }
}

/// The summary the `mcap` crate reads from the end of the file; `None`
/// when the file has none (or an unusable one).
fn summary(file: &mut File, len: u64, limit: u64, path: &str) -> Option<mcap::Summary> {
    if !lengths::summary_fits(file, len, limit) {
        log::warn!("{path}: MCAP summary with a length outside its record or the budget: scanning the file");
        return None;
    }
    if file.seek(std::io::SeekFrom::Start(0)).is_err() {
        return None;
    }
    use mcap::sans_io::{SummaryReadEvent, SummaryReader, SummaryReaderOptions};
    let opts = SummaryReaderOptions::default().with_file_size(len);
    let mut r = SummaryReader::new_with_options(opts);
    while let Some(ev) = r.next_event() {
        let step = match ev {
            Ok(SummaryReadEvent::ReadRequest(n)) => {
                file.read(r.insert(n)).map(|k| r.notify_read(k))
            }
            Ok(SummaryReadEvent::SeekRequest(to)) => file.seek(to).map(|p| r.notify_seeked(p)),
            Err(e) => {
                log::info!("{path}: no usable MCAP summary ({e}): scanning the file");
                return None;
            }
        };
        if let Err(e) = step {
            log::warn!("{path}: reading the MCAP summary: {e}: scanning the file");
            return None;
        }
    }
    let s = r.finish()?;
    let stats = s.stats.as_ref()?;
    if stats.chunk_count as usize != s.chunk_indexes.len() {
        log::warn!("{path}: MCAP summary without every chunk index: scanning the file");
        return None;
    }
    Some(s)
}

fn from_summary(s: &mcap::Summary) -> (Vec<ChannelInfo>, u64, u64) {
    let counts = s.stats.as_ref().map(|st| &st.channel_message_counts);
    let mut channels: Vec<ChannelInfo> = s
        .channels
        .values()
        .map(|c| ChannelInfo {
            id: c.id,
            topic: c.topic.clone(),
            schema: c.schema.as_ref().map_or(String::new(), |s| s.name.clone()),
            encoding: c.message_encoding.clone(),
            count: counts.and_then(|m| m.get(&c.id)).copied().unwrap_or(0),
        })
        .collect();
    channels.sort_by_key(|c| c.id);
    let raw = s.chunk_indexes.iter().map(|c| c.compressed_size).max();
    let chunk = s.chunk_indexes.iter().map(|c| c.uncompressed_size).max();
    (channels, raw.unwrap_or(0), chunk.unwrap_or(0))
}

/// A string field (u32 length, bytes) of a Schema or Channel record.
fn rec_string(b: &[u8], at: &mut usize) -> Option<String> {
    let n = u32::from_le_bytes(b.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let s = b.get(*at + 4..(*at + 4).checked_add(n)?)?;
    *at += 4 + n;
    Some(String::from_utf8_lossy(s).into_owned())
}

/// Boot, without a summary: every record once, for the schemas, channels,
/// message counts and the largest chunk. Stops at a cut.
fn scan(
    file: File,
    len: u64,
    path: &str,
    limit_mb: u64,
) -> Result<(Vec<ChannelInfo>, u64, u64), SourceError> {
    let mut r = RecordReader::new(file, len, 0, 0).map_err(|e| cfg(format!("{path}: {e}")))?;
    r.grow = true;
    r.meta = true;
    r.limit = limit_mb.saturating_mul(1 << 20);
    let mut schemas: Vec<(u16, String)> = Vec::new();
    let mut channels: Vec<ChannelInfo> = Vec::new();
    let mut bad = 0u64;
    loop {
        let rec = match r.next_record() {
            Ok(Next::Rec(rec)) => rec,
            Ok(Next::Bad(_)) => {
                bad += 1;
                continue;
            }
            Ok(Next::End) => break,
            Err(Fault::Truncated { offset, .. }) => {
                log::warn!("{path}: ends inside the MCAP record at byte offset {offset}: the records before it are replayed");
                break;
            }
            Err(f) => return Err(fault(path, f, limit_mb)),
        };
        let b = r.body(&rec);
        match rec.op {
            OP_SCHEMA if b.len() >= 2 => {
                let mut at = 2;
                if let Some(name) = rec_string(b, &mut at) {
                    schemas.push((u16::from_le_bytes([b[0], b[1]]), name));
                }
            }
            OP_CHANNEL if b.len() >= 4 => {
                let (id, schema) = (
                    u16::from_le_bytes([b[0], b[1]]),
                    u16::from_le_bytes([b[2], b[3]]),
                );
                let mut at = 4;
                if let (Some(topic), Some(encoding)) =
                    (rec_string(b, &mut at), rec_string(b, &mut at))
                {
                    if !channels.iter().any(|c| c.id == id) {
                        let schema = schemas
                            .iter()
                            .find(|s| s.0 == schema)
                            .map_or(String::new(), |s| s.1.clone());
                        channels.push(ChannelInfo {
                            id,
                            topic,
                            schema,
                            encoding,
                            count: 0,
                        });
                    }
                }
            }
            OP_MESSAGE => {
                if let Some((h, _)) = r.message(&rec) {
                    if let Some(c) = channels.iter_mut().find(|c| c.id == h.channel) {
                        c.count += 1;
                    }
                }
            }
            _ => {}
        }
    }
    if bad > 0 {
        log::warn!("{path}: {bad} unreadable MCAP records skipped");
    }
    let (raw, chunk) = r.sizes();
    Ok((channels, raw, chunk))
}

/// Boot: open `path` (an MCAP file or a rosbag2 folder) and pick its
/// image topic. One error line for every way this can fail.
pub fn open(
    path: &Path,
    pace: Pace,
    max_memory_mb: u64,
    topic: Option<&str>,
) -> Result<BagSource, SourceError> {
    let name = path.display().to_string();
    let limit = max_memory_mb.saturating_mul(1 << 20);
    let mut infos = Vec::new();
    for f in bag_files(path)? {
        let fp = f.display().to_string();
        let (mut file, meta) = open_regular(&f).map_err(|e| {
            cfg(format!(
                "{fp}: {e}: a ROS 2 bag is read from an MCAP file or a rosbag2 folder (its index is at the end of the file)"
            ))
        })?;
        let len = meta.len();
        let mut magic = [0u8; 8];
        let n = file
            .read(&mut magic)
            .map_err(|e| cfg(format!("{fp}: {e}")))?;
        if n < 8 || !is_mcap(&magic) {
            return Err(cfg(format!(
                "{fp}: not an MCAP file (starts with {:02x?})",
                &magic[..n]
            )));
        }
        let (channels, chunk_raw, chunk) = match summary(&mut file, len, limit, &fp) {
            Some(s) => from_summary(&s),
            None => {
                let f2 = file.try_clone().map_err(|e| cfg(format!("{fp}: {e}")))?;
                scan(f2, len, &fp, max_memory_mb)?
            }
        };
        infos.push(FileInfo {
            path: fp,
            file,
            len,
            channels,
            chunk_raw,
            chunk,
        });
    }
    // Topics over all files, counts summed.
    let mut topics: Vec<ChannelInfo> = Vec::new();
    for c in infos.iter().flat_map(|i| &i.channels) {
        match topics.iter_mut().find(|t| t.topic == c.topic) {
            Some(t) => t.count += c.count,
            None => topics.push(c.clone()),
        }
    }
    let images: Vec<ChannelInfo> = topics.iter().filter(|c| is_image(c)).cloned().collect();
    let chosen = match topic {
        Some(t) => match topics.iter().find(|c| c.topic == t) {
            Some(c) if is_image(c) => c.clone(),
            Some(c) => {
                return Err(cfg(format!(
                    "{name}: --topic {t} is {} ({}), not an image; image topics: {}",
                    c.schema,
                    c.encoding,
                    list(&images)
                )))
            }
            None => {
                return Err(cfg(format!(
                    "{name}: --topic {t}: no such topic; image topics: {}",
                    list(&images)
                )))
            }
        },
        None => match images.as_slice() {
            [one] => {
                log::info!(
                    "{name}: replaying its only image topic {} ({})",
                    one.topic,
                    one.schema
                );
                one.clone()
            }
            [] => {
                return Err(cfg(format!(
                    "{name}: no image topic ({IMAGE} or {COMPRESSED}, CDR); topics: {}",
                    list(&topics)
                )))
            }
            _ => {
                return Err(cfg(format!(
                    "{name}: {} image topics, choose one with --topic: {}",
                    images.len(),
                    list(&images)
                )))
            }
        },
    };
    if chosen.count == 0 {
        return Err(cfg(format!(
            "{name}: topic {} ({}) has no messages",
            chosen.topic, chosen.schema
        )));
    }
    let raw = infos.iter().map(|i| i.chunk_raw).max().unwrap_or(0);
    let chunk = infos.iter().map(|i| i.chunk).max().unwrap_or(0);
    if raw.saturating_add(chunk) > limit {
        return Err(budget_err(
            &name,
            max_memory_mb,
            raw.saturating_add(chunk),
            format!("the largest chunk: {raw} bytes compressed, {chunk} uncompressed"),
        ));
    }
    let mut parts: Vec<Part> = infos
        .into_iter()
        .map(|i| Part {
            channels: i
                .channels
                .iter()
                .filter(|c| c.topic == chosen.topic)
                .map(|c| c.id)
                .collect(),
            path: i.path,
            file: Some(i.file),
            len: i.len,
        })
        .collect();
    let first = parts[0]
        .file
        .take()
        .ok_or_else(|| cfg(format!("{name}: no file")))?;
    let reader = RecordReader::new(first, parts[0].len, raw as usize, chunk as usize)
        .map_err(|e| cfg(format!("{name}: {e}")))?;
    let mut src = BagSource {
        path: name,
        topic: chosen.topic.clone(),
        what: String::new(),
        parts,
        cur: 0,
        reader,
        kind: Kind::Raw(Raw::Mono8),
        desc: FrameDesc {
            format: PixelFormat::Grey,
            width: 0,
            height: 0,
        },
        pace,
        start_ns: 0,
        first_stamp: None,
        frames: 0,
        bad: 0,
        messages: chosen.count,
    };
    src.probe(&chosen.schema, limit, max_memory_mb)?;
    Ok(src)
}

impl BagSource {
    /// Boot: the first message of the topic fixes the frame format; then
    /// back to the start.
    fn probe(&mut self, schema: &str, limit: u64, limit_mb: u64) -> Result<(), SourceError> {
        self.reader.grow = true;
        self.reader.limit = limit;
        let rec = loop {
            match self.next_rec() {
                Ok(Ok(rec)) => break rec,
                Ok(Err(_)) => continue,
                Err(SourceError::End) | Err(SourceError::Truncated { .. }) => {
                    return Err(cfg(format!(
                        "{}: topic {}: no complete message",
                        self.path, self.topic
                    )))
                }
                Err(SourceError::Config(m)) => return Err(cfg(m)),
                Err(e) => return Err(e),
            }
        };
        let in_chunk = rec.in_chunk();
        let Some((_, data)) = self.reader.message(&rec) else {
            return Err(cfg(format!(
                "{}: topic {}: first message: record shorter than its fields",
                self.path, self.topic
            )));
        };
        let (p, t) = (&self.path, &self.topic);
        let at = |e: cdr::CdrError| cfg(format!("{p}: topic {t}: first message: {e}"));
        let (kind, desc, what) = if schema == IMAGE {
            let img = cdr::parse_image(data).map_err(at)?;
            let enc = String::from_utf8_lossy(img.encoding)
                .escape_debug()
                .to_string();
            let raw = Raw::of(img.encoding).ok_or_else(|| {
                cfg(format!(
                    "{p}: topic {t}: Image encoding '{enc}' is not supported (supported: rgb8, bgr8, mono8, yuv422 and uyvy (UYVY), yuv422_yuy2 and yuyv (YUYV))"
                ))
            })?;
            let (w, h) = (img.width as usize, img.height as usize);
            if !(1..=MAX_DIM).contains(&w) || !(1..=MAX_DIM).contains(&h) {
                return Err(cfg(format!(
                    "{p}: topic {t}: Image is {w}x{h}: expected 1..={MAX_DIM} each"
                )));
            }
            let desc = FrameDesc {
                format: raw.format(),
                width: w,
                height: h,
            };
            (Kind::Raw(raw), desc, format!("{IMAGE} {enc} {w}x{h}"))
        } else {
            let img = cdr::parse_compressed(data).map_err(at)?;
            let fmt = String::from_utf8_lossy(img.format)
                .escape_debug()
                .to_string();
            if !fmt.to_ascii_lowercase().contains("jpeg")
                && !fmt.to_ascii_lowercase().contains("jpg")
            {
                return Err(cfg(format!(
                    "{p}: topic {t}: CompressedImage format '{fmt}' is not supported (jpeg only)"
                )));
            }
            let info = probe(img.data)
                .map_err(|e| cfg(format!("{p}: topic {t}: first message: JPEG: {e}")))?;
            let desc = info.desc();
            let jpeg = (desc.width * desc.height) as u64 * 4 + JPEG_SLACK;
            let total = self.reader.buffer_bytes() + std::mem::size_of::<JpegDecoder>() as u64;
            // Messages outside chunks need the whole JPEG in the buffer.
            let need = if in_chunk { total } else { total + jpeg };
            if need > limit {
                return Err(budget_err(
                    p,
                    limit_mb,
                    need,
                    format!("JPEG {}x{}", desc.width, desc.height),
                ));
            }
            if !in_chunk {
                self.reader.reserve_raw(jpeg as usize);
            }
            (
                Kind::Jpeg(JpegDecoder::new(info)),
                desc,
                format!(
                    "{COMPRESSED} {fmt} {} {}x{}",
                    desc.format.name(),
                    desc.width,
                    desc.height
                ),
            )
        };
        self.kind = kind;
        self.desc = desc;
        self.what = what;
        self.reader.grow = false;
        self.goto(0);
        Ok(())
    }

    /// Switch the reader to file `k`, at its start.
    fn goto(&mut self, k: usize) {
        if k == self.cur {
            self.reader.rewind();
            return;
        }
        let Some(f) = self.parts[k].file.take() else {
            return;
        };
        let old = self.reader.restart(f, self.parts[k].len);
        self.parts[self.cur].file = Some(old);
        self.cur = k;
    }

    /// Complete frames delivered or skipped, and bad frames dropped.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.bad)
    }

    /// The next message of the topic (`Ok(Err)`: a bad record).
    fn next_rec(&mut self) -> Result<Result<Rec, &'static str>, SourceError> {
        loop {
            match self.reader.next_record() {
                Ok(Next::Rec(rec)) => {
                    if let Some((h, _)) = self.reader.message(&rec) {
                        if self.parts[self.cur].channels.contains(&h.channel) {
                            return Ok(Ok(rec));
                        }
                    }
                }
                Ok(Next::Bad(why)) => return Ok(Err(why)),
                Ok(Next::End) if self.cur + 1 < self.parts.len() => self.goto(self.cur + 1),
                Ok(Next::End) => return Err(SourceError::End),
                Err(Fault::Truncated { stray, .. }) => {
                    return Err(SourceError::Truncated {
                        path: self.parts[self.cur].path.clone(),
                        frames: self.frames,
                        bytes: stray,
                    })
                }
                Err(f) => return Err(fault(&self.parts[self.cur].path, f, 0)),
            }
        }
    }

    fn bad(&mut self, reason: &'static str) -> SourceError {
        self.bad += 1;
        SourceError::BadFrame {
            device: self.path.clone(),
            reason,
        }
    }

    fn deliver(&mut self, stamp_ns: u64) -> FrameStamp {
        if self.pace == Pace::Realtime {
            match self.first_stamp {
                None => {
                    self.first_stamp = Some(stamp_ns);
                    self.start_ns = monotonic_ns();
                }
                Some(first) => {
                    // Wakes early on a stop request; a stamp going back
                    // in time is delivered at once.
                    if let Some(d) = stamp_ns.checked_sub(first) {
                        crate::stop::sleep_until(self.start_ns.saturating_add(d));
                    }
                }
            }
        }
        self.frames += 1;
        FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: Some(stamp_ns),
        }
    }

    /// Decode the message `rec` into `dst` (None: only its stamp).
    fn frame(&mut self, rec: &Rec, dst: Option<&mut [u8]>) -> Result<u64, &'static str> {
        let Some((head, data)) = self.reader.message(rec) else {
            return Err("message record shorter than its fields");
        };
        let desc = self.desc;
        let stamp = match (&mut self.kind, dst) {
            (_, None) => cdr::parse_stamp(data).map_err(|e| e.field)?,
            (Kind::Raw(raw), Some(dst)) => {
                let img = cdr::parse_image(data).map_err(|e| e.field)?;
                copy_image(*raw, desc, &img, dst)?;
                img.stamp
            }
            (Kind::Jpeg(dec), Some(dst)) => {
                let img = cdr::parse_compressed(data).map_err(|e| e.field)?;
                dec.decode(img.data, dst).map_err(|e| e.reason())?;
                img.stamp
            }
        };
        Ok(stamp.ns().unwrap_or(head.log_time))
    }
}

/// An Image message's pixels into a slot. Frame path: never allocates.
fn copy_image(
    raw: Raw,
    desc: FrameDesc,
    img: &cdr::ImageMsg<'_>,
    dst: &mut [u8],
) -> Result<(), &'static str> {
    if img.width as usize != desc.width
        || img.height as usize != desc.height
        || Raw::of(img.encoding) != Some(raw)
    {
        return Err("image size or encoding differs from the first frame");
    }
    let (h, step) = (desc.height, img.step as usize);
    let row = raw.row(desc.width);
    let slot_row = desc.bytes() / h;
    if step < row {
        return Err("step shorter than a row");
    }
    if img.data.len() < step * (h - 1) + row || dst.len() < desc.bytes() {
        return Err("data shorter than step x height");
    }
    for y in 0..h {
        let s = &img.data[y * step..y * step + row];
        let d = &mut dst[y * slot_row..y * slot_row + row];
        if raw == Raw::Bgr8 {
            for (d, s) in d.chunks_exact_mut(3).zip(s.chunks_exact(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        } else {
            d.copy_from_slice(s);
        }
    }
    Ok(())
}

impl Source for BagSource {
    fn desc(&self) -> FrameDesc {
        self.desc
    }

    fn pacing(&self) -> Pacing {
        match self.pace {
            Pace::Realtime => Pacing::Live,
            Pace::Fast => Pacing::Lockstep,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (ROS 2 bag, topic {}: {}, {} messages, {})",
            self.path,
            self.topic,
            self.what,
            self.messages,
            match self.pace {
                Pace::Realtime => "realtime by header stamps",
                Pace::Fast => "fast",
            }
        )
    }

    /// Frame path: never allocates on success.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        match self.next_rec()? {
            Err(why) => Err(self.bad(why)),
            Ok(rec) => match self.frame(&rec, Some(dst)) {
                Ok(ns) => Ok(self.deliver(ns)),
                Err(why) => Err(self.bad(why)),
            },
        }
    }

    /// Frame path: never allocates.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        match self.next_rec()? {
            Err(why) => Err(self.bad(why)),
            Ok(rec) => match self.frame(&rec, None) {
                Ok(ns) => Ok(self.deliver(ns)),
                Err(why) => Err(self.bad(why)),
            },
        }
    }

    fn buffer_bytes(&self) -> Option<u64> {
        let dec = match self.kind {
            Kind::Jpeg(_) => std::mem::size_of::<JpegDecoder>() as u64,
            Kind::Raw(_) => 0,
        };
        Some(self.reader.buffer_bytes() + dec)
    }
}

#[cfg(test)]
mod tests;
