//! MJPEG cameras (`source.format = "mjpeg"`): the parts of
//! [`super::V4l2Source`] that only a compressed stream needs.
//!
//! Boot (allocates): [`pick_fourcc`] asks the device what it offers
//! (VIDIOC_ENUM_FMT) and takes `MJPG`, else `JPEG`, else fails with one
//! line listing the offers; [`check_buffers`] checks the driver's
//! `sizeimage` (the largest compressed frame, what each mmap buffer holds)
//! times the buffers, plus the kept decoder, against
//! `pipeline.max_memory_mb` *before* VIDIOC_REQBUFS has the kernel
//! allocate them; [`probe_first`] streams until one frame parses to learn
//! the subsampling the camera codes (4:2:2 for most USB cameras, some send
//! 4:2:0), which fixes the frame format the ring is sized for, then the
//! caller re-maps the buffers so no frame waits through the rest of the
//! boot.
//!
//! Frame path (capture thread, never allocates): [`jpeg_of`] bounds the
//! JPEG in a dequeued buffer (from `data_offset` to `bytesused`, cut at
//! its EOI: cameras pad after it); the decoder writes it into the slot.
//! An empty buffer (`bytesused` 0), a JPEG without its EOI (cut short on
//! the bus) or with bytes that cannot be there is a bad frame, and so is
//! one the decoder refuses: counted and dropped, the buffer re-queued.

use super::dev::{CaptureDevice, Dequeued, DqError};
use super::show_fourcc;
use crate::budget::BudgetError;
use crate::source::jpeg::{probe, JpegDecoder, JpegInfo};
use crate::source::mjpeg::{jpeg_extent, Extent};
use crate::source::{monotonic_ns, SourceError};

/// The fourccs of a JPEG-per-buffer stream, in order of preference
/// (V4L2_PIX_FMT_MJPEG, V4L2_PIX_FMT_JPEG).
pub const FOURCCS: [[u8; 4]; 2] = [*b"MJPG", *b"JPEG"];

/// Frames looked at, at most, for one that parses (the first frames of
/// some cameras are empty or cut while the sensor settles).
const PROBE_FRAMES: u32 = 30;

pub fn is_jpeg(fourcc: [u8; 4]) -> bool {
    FOURCCS.contains(&fourcc)
}

/// The MJPEG fourcc to ask `dev` for: Err names what it offers instead.
/// Boot.
pub fn pick_fourcc<D: CaptureDevice>(dev: &mut D, name: &str) -> Result<[u8; 4], SourceError> {
    let offers = dev.formats().map_err(|e| {
        SourceError::Config(format!(
            "{name}: VIDIOC_ENUM_FMT failed: {e}; cannot tell whether the camera offers MJPEG"
        ))
    })?;
    if let Some(f) = FOURCCS.iter().find(|f| offers.contains(f)) {
        return Ok(*f);
    }
    let list: Vec<String> = offers.iter().map(|&f| show_fourcc(f)).collect();
    let readable: Vec<&str> = offers
        .iter()
        .filter_map(|&f| super::from_fourcc(f))
        .map(crate::config::Choice::name)
        .collect();
    let list = if list.is_empty() {
        "nothing (VIDIOC_ENUM_FMT lists no format)".to_string()
    } else {
        list.join(", ")
    };
    let hint = if readable.is_empty() {
        "none of them is a format perceptd reads".to_string()
    } else {
        format!("of those perceptd reads {}", readable.join(", "))
    };
    Err(SourceError::Config(format!(
        "{name}: format \"mjpeg\": the camera offers no MJPEG (MJPG or JPEG), only {list}; {hint}"
    )))
}

/// Bytes the compressed stream holds: `buffers` driver buffers of
/// `sizeimage` bytes and the decoder.
pub fn stream_bytes(buffers: u64, sizeimage: u64) -> u64 {
    buffers
        .saturating_mul(sizeimage)
        .saturating_add(std::mem::size_of::<JpegDecoder>() as u64)
}

/// `sizeimage` must be set and `buffers` of it must fit the budget.
/// Boot, before VIDIOC_REQBUFS.
pub fn check_buffers(
    name: &str,
    sizeimage: u32,
    buffers: u32,
    (width, height): (u32, u32),
    max_memory_mb: u64,
) -> Result<(), SourceError> {
    if sizeimage == 0 {
        return Err(SourceError::Config(format!(
            "{name}: the driver set MJPEG {width}x{height} with sizeimage 0: \
             the compressed buffers cannot be sized"
        )));
    }
    let needed = stream_bytes(buffers as u64, sizeimage as u64);
    if needed > max_memory_mb.saturating_mul(1 << 20) {
        return Err(SourceError::Config(
            BudgetError::Exceeded {
                origin: name.to_string(),
                limit_mb: max_memory_mb,
                needed_mb: needed.div_ceil(1 << 20),
                what: "the MJPEG camera buffers".into(),
                detail: format!(
                    "{buffers} buffers of the driver's sizeimage {sizeimage} bytes for MJPEG {width}x{height}"
                ),
            }
            .to_string(),
        ));
    }
    Ok(())
}

/// The JPEG in a dequeued buffer: `buf[data_offset..bytesused]` through
/// its EOI, or why there is none. Frame path: never allocates.
pub fn jpeg_of<'a>(buf: &'a [u8], d: &Dequeued) -> Result<&'a [u8], &'static str> {
    let end = (d.bytesused as usize).min(buf.len());
    let data = buf.get(d.data_offset as usize..end).unwrap_or(&[]);
    if data.is_empty() {
        return Err("empty MJPEG buffer (bytesused 0)");
    }
    match jpeg_extent(data) {
        Extent::Complete(n) => Ok(&data[..n]),
        Extent::NeedMore => Err("JPEG cut short (no EOI)"),
        Extent::Broken(_) => Err("corrupt JPEG (bytes where a marker must be)"),
    }
}

/// Stream from `dev` (buffers mapped) until a frame parses and say what
/// it holds; frames before it that do not are skipped. Leaves `dev`
/// streaming: the caller re-maps its buffers. Boot.
pub fn probe_first<D: CaptureDevice>(
    dev: &mut D,
    name: &str,
    timeout_ms: u32,
) -> Result<JpegInfo, SourceError> {
    dev.stream_on().map_err(|e| {
        SourceError::Config(format!(
            "{name}: VIDIOC_STREAMON failed (reading the first MJPEG frame): {e}"
        ))
    })?;
    let mut last = None;
    for _ in 0..PROBE_FRAMES {
        let start = monotonic_ns();
        let d = match dev.dequeue(timeout_ms) {
            Ok(d) => d,
            Err(DqError::Timeout) if crate::stop::requested() => return Err(SourceError::End),
            Err(DqError::Timeout) => {
                let before = match last {
                    None => String::new(),
                    Some(why) => format!(" (the last one before was bad: {why})"),
                };
                return Err(SourceError::Config(format!(
                    "{name}: no MJPEG frame within {timeout_ms} ms at boot{before}"
                )));
            }
            Err(DqError::Os(libc::EINTR)) | Err(DqError::Os(libc::EAGAIN)) => continue,
            Err(e) => {
                return Err(SourceError::Config(format!(
                    "{name}: reading the first MJPEG frame failed: {e:?} ({} ms in)",
                    monotonic_ns().saturating_sub(start) / 1_000_000
                )))
            }
        };
        let got = match jpeg_of(dev.buffer(d.index), &d) {
            Ok(jpeg) => probe(jpeg).map_err(|e| e.reason()),
            Err(why) => Err(why),
        };
        dev.queue(d.index)
            .map_err(|e| SourceError::Config(format!("{name}: VIDIOC_QBUF failed at boot: {e}")))?;
        match got {
            Ok(info) => return Ok(info),
            Err(why) => {
                log::warn!("{name}: first MJPEG frames: {why}; trying the next");
                last = Some(why);
            }
        }
    }
    Err(SourceError::Config(format!(
        "{name}: none of the first {PROBE_FRAMES} MJPEG frames could be read (the last: {})",
        last.unwrap_or("-")
    )))
}
