//! The V4L2 camera as a [`Source`]: format negotiation (and what to do when
//! the driver changes the format), mmap streaming, per-frame checks and the
//! mapping of device faults to [`SourceError`]s. The device itself sits
//! behind [`dev::CaptureDevice`] so tests drive this logic with a scripted
//! fake; [`dev::V4lDevice`] is the real one. Single-planar and multiplanar
//! (`VIDEO_CAPTURE_MPLANE`) nodes alike: a frame is one buffer whose payload
//! starts at its `data_offset` (vivid's multiplanar YUYV puts 128 bytes
//! first).
//!
//! Boot (`open`/`with_device`, allocates): set the format, the frame rate,
//! map the buffers. Streaming starts on the first `next_frame`/`skip_frame`
//! (the capture thread, once the model is loaded and warmed up), so no
//! frame sits in the driver's queue through the boot and the first frames'
//! latency is the pipeline's, not the boot's. Frame path (capture thread,
//! `next_frame`/`skip_frame`, never allocate on success): poll with the
//! stall timeout, dequeue one buffer, check it, copy it out (next_frame
//! only, removing any row padding the driver added) and queue it again at
//! once, so the driver always holds every buffer but the one being copied.
//!
//! Timestamps: a buffer's CLOCK_MONOTONIC timestamp is the capture time,
//! but never later than the dequeue: drivers stamping "End of Frame" from
//! a schedule (vivid) put it up to a frame period in the future, which
//! would make end-to-end latency read low. Such stamps are clamped to the
//! dequeue time and counted ([`V4l2Source::stamps_ahead`]).
//!
//! Stall timeout: `timeout_ms`, raised (with a warning) to three frame
//! intervals of the negotiated rate when that is longer, so a slow camera
//! (1 fps) is not taken for a stalled one.
//!
//! Faults, per frame: a buffer flagged `V4L2_BUF_FLAG_ERROR`, shorter than
//! a frame, or a DQBUF EIO -> `BadFrame` (the buffer is re-queued, the
//! pipeline counts the drop); EINTR / EAGAIN while waiting -> retried within
//! the same poll timeout (counted as `camera_retries`).
//!
//! Faults of the camera itself, with a re-opener (`open`, `with_opener`):
//! ENODEV, POLLERR or a failing ioctl (the camera is lost), and no frame
//! for a whole poll timeout (a stall), are noticed within one poll timeout.
//! The device is then stopped and closed at once (buffers unmapped, fd
//! closed, so a replugged camera gets its node back) and re-opened with
//! exponential backoff (50 ms doubling up to `reconnect_max_ms`): a full
//! re-open, format re-negotiation and re-mapping of the buffers, which must
//! give the frame size the pipeline was booted for. Meanwhile each call
//! returns `Reconnecting` after waiting at most one poll timeout, so the
//! capture thread keeps seeing its stop flag and returns the ring slot.
//! Every state change is one log line; each fault kind has a counter
//! ([`CameraFaults`], and the pipeline's shared counters once attached).
//! A camera missing at boot is an error, or with [`Absent::Wait`] is waited
//! for with the same backoff. After a loss the first re-open is immediate;
//! the pauses after failed ones are 50, 100, 200, ... ms.
//! Without a re-opener (`with_device`), a lost camera is `Disconnected` and
//! a stall is `Timeout`, as the caller decides.
//!
//! Allocation: the frame path allocates nothing while frames flow. Fault
//! paths may: error values carry the device name, log lines are formatted,
//! and a reconnection re-boots the device (open, REQBUFS, mmap) — they are
//! rare and counted, and none of them is per frame.

mod compressed;
pub mod dev;

use crate::frame::{FrameDesc, PixelFormat};
use crate::metrics::Counters;
use crate::source::jpeg::JpegDecoder;
use crate::source::{monotonic_ns, FrameStamp, Pacing, Source, SourceError};
use dev::{CaptureDevice, Dequeued, DevFormat, DqError, V4lDevice};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What to do when the camera is missing at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Boot fails with an error naming the device.
    Fail,
    /// Retry with backoff until the camera appears.
    Wait,
}

/// First pause between reconnection attempts; doubles per failed attempt.
const BACKOFF_MIN_MS: u64 = 50;

/// What to do when the driver sets a different format or size than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAdjust {
    /// Use what the driver set, if perceptd can read that pixel format.
    Adapt,
    /// Fail at boot.
    Refuse,
}

/// What a camera is asked to deliver (`source.format`): a raw pixel
/// format, copied into the slot, or MJPEG, decoded into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraFormat {
    /// One of Yuyv, Uyvy, Nv12, Grey, Rgb24.
    Raw(PixelFormat),
    /// `MJPG` (or `JPEG`): one baseline JPEG per buffer.
    Mjpeg,
}

impl From<PixelFormat> for CameraFormat {
    fn from(p: PixelFormat) -> Self {
        CameraFormat::Raw(p)
    }
}

impl CameraFormat {
    /// As logs and messages write it (`YUYV`, `MJPEG`).
    pub fn label(self) -> &'static str {
        match self {
            CameraFormat::Raw(p) => p.name(),
            CameraFormat::Mjpeg => "MJPEG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Config {
    pub device: PathBuf,
    pub format: CameraFormat,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// mmap buffers to request (the driver may grant a different number).
    pub buffers: u32,
    /// Longest wait for one frame: a stall after that (at least three
    /// frame intervals of the negotiated rate are used).
    pub timeout_ms: u32,
    pub on_adjust: OnAdjust,
    /// Camera missing at boot: fail or wait.
    pub absent: Absent,
    /// Cap of the reconnection backoff.
    pub reconnect_max_ms: u32,
    /// `pipeline.max_memory_mb`: an MJPEG camera's buffers (sized by the
    /// driver's `sizeimage`) are checked against it before they are
    /// requested.
    pub max_memory_mb: u64,
}

/// Fault counts of one camera since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraFaults {
    /// ENODEV, POLLERR, a failing ioctl.
    pub lost: u64,
    /// No frame for a whole poll timeout.
    pub stalls: u64,
    /// Successful re-opens.
    pub reconnects: u64,
    /// Failed re-open attempts.
    pub reconnect_failures: u64,
    /// EINTR / EAGAIN answers, retried.
    pub retries: u64,
    /// Flagged, short or EIO buffers, and (MJPEG) empty, cut or corrupt
    /// JPEGs, dropped.
    pub bad_frames: u64,
}

/// Boot-time re-opener of the device (a full open of the node).
pub type Opener<D> = Box<dyn FnMut() -> std::io::Result<D> + Send>;

/// The stream's state (the camera's state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Streaming: `dev` is `Some`, its buffers mapped and queued.
    Up,
    /// Lost or stalled: `dev` is `None` (closed); next attempt due then.
    Down {
        since_ns: u64,
        attempt: u32,
        next_try_ns: u64,
    },
}

/// What one negotiation with a device settled.
struct Negotiated {
    desc: FrameDesc,
    planes: [Option<Plane>; 2],
    need: usize,
    contiguous: bool,
    rate: Option<(u32, u32)>,
    buffers: u32,
    /// The stall timeout: `timeout_ms`, or three frame intervals if longer.
    timeout_ms: u32,
    /// MJPEG: the driver's `sizeimage` (`desc` is then provisional until
    /// the first frame is probed).
    sizeimage: Option<usize>,
}

/// Stall timeout for a camera at `rate` (frames, seconds): `asked`, or
/// three frame intervals when that is longer.
fn stall_timeout_ms(asked: u32, rate: Option<(u32, u32)>) -> u32 {
    match rate {
        Some((frames, secs)) if frames > 0 => {
            let three = (3 * secs as u64 * 1000).div_ceil(frames as u64);
            asked.max(three.min(600_000) as u32)
        }
        _ => asked,
    }
}

/// The V4L2 fourcc of each pixel format a camera can deliver to us.
pub fn fourcc(format: PixelFormat) -> Option<[u8; 4]> {
    match format {
        PixelFormat::Yuyv => Some(*b"YUYV"),
        PixelFormat::Uyvy => Some(*b"UYVY"),
        PixelFormat::Nv12 => Some(*b"NV12"),
        PixelFormat::Grey => Some(*b"GREY"),
        PixelFormat::Rgb24 => Some(*b"RGB3"),
        PixelFormat::I420 | PixelFormat::I422 | PixelFormat::I444 => None,
    }
}

fn from_fourcc(f: [u8; 4]) -> Option<PixelFormat> {
    [
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Nv12,
        PixelFormat::Grey,
        PixelFormat::Rgb24,
    ]
    .into_iter()
    .find(|&p| fourcc(p) == Some(f))
}

pub(crate) fn show_fourcc(f: [u8; 4]) -> String {
    f.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// Where one plane of the frame lies in a driver buffer, and its packed
/// row length in our [`FrameDesc`] layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plane {
    offset: usize,
    stride: usize,
    rows: usize,
    row_bytes: usize,
}

impl Plane {
    fn end(&self) -> usize {
        self.offset + self.stride * (self.rows - 1) + self.row_bytes
    }
}

/// Plane layout of `format` at `w`x`h` with the driver's `bytesperline`
/// (0: packed). Err names the stride that is too small.
fn planes(
    format: PixelFormat,
    w: usize,
    h: usize,
    bytesperline: usize,
) -> Result<[Option<Plane>; 2], String> {
    let cw = w.div_ceil(2);
    let row = match format {
        PixelFormat::Yuyv | PixelFormat::Uyvy => cw * 4,
        PixelFormat::Rgb24 => w * 3,
        PixelFormat::Nv12 => w.max(cw * 2),
        _ => w,
    };
    let stride = if bytesperline == 0 { row } else { bytesperline };
    if stride < row {
        return Err(format!(
            "driver bytesperline {stride} is less than a {w}-pixel {} row ({row} bytes)",
            format.name()
        ));
    }
    Ok(match format {
        PixelFormat::Nv12 => [
            Some(Plane {
                offset: 0,
                stride,
                rows: h,
                row_bytes: w,
            }),
            Some(Plane {
                offset: stride * h,
                stride,
                rows: h.div_ceil(2),
                row_bytes: cw * 2,
            }),
        ],
        _ => [
            Some(Plane {
                offset: 0,
                stride,
                rows: h,
                row_bytes: row,
            }),
            None,
        ],
    })
}

/// A V4L2 camera streaming through mmap buffers.
pub struct V4l2Source<D: CaptureDevice = V4lDevice> {
    /// `None` while the camera is down (see [`Link`]).
    dev: Option<D>,
    opener: Option<Opener<D>>,
    cfg: V4l2Config,
    link: Link,
    faults: CameraFaults,
    counters: Option<Arc<Counters>>,
    name: String,
    desc: FrameDesc,
    planes: [Option<Plane>; 2],
    /// Bytes a buffer must hold (and the driver must have filled) for a
    /// whole frame.
    need: usize,
    /// Frame-sized, unpadded planes: one memcpy per frame.
    contiguous: bool,
    timeout_ms: u32,
    rate: Option<(u32, u32)>,
    buffers: u32,
    /// The device's buffers are queued and it streams (see the module
    /// doc: streaming starts on the first frame asked for).
    streaming: bool,
    last_sequence: Option<u32>,
    driver_drops: u64,
    /// Buffers whose timestamp was later than their dequeue, and by how
    /// much at most (ns).
    stamps_ahead: u64,
    max_ahead_ns: u64,
    /// MJPEG: the kept decoder (frames are decoded into the slot).
    decoder: Option<Box<JpegDecoder>>,
    /// MJPEG: the driver's `sizeimage`, the largest compressed frame.
    sizeimage: usize,
}

impl V4l2Source<V4lDevice> {
    /// Open and start the camera named in `cfg`; lost cameras are
    /// re-opened by path. Boot.
    pub fn open(cfg: &V4l2Config) -> Result<Self, SourceError> {
        Self::open_waiting(cfg, &mut |_| {})
    }

    /// As [`V4l2Source::open`]; while waiting for an absent camera
    /// ([`Absent::Wait`]) `waiting(next_retry_ms)` is called before each
    /// pause (the service extends its start timeout there). Boot.
    pub fn open_waiting(
        cfg: &V4l2Config,
        waiting: &mut dyn FnMut(u64),
    ) -> Result<Self, SourceError> {
        let path = cfg.device.clone();
        Self::with_opener(cfg, Box::new(move || V4lDevice::open(&path)), waiting)
    }
}

fn check_config(cfg: &V4l2Config) -> Result<(), SourceError> {
    let name = cfg.device.display();
    if let CameraFormat::Raw(p) = cfg.format {
        if fourcc(p).is_none() {
            return Err(SourceError::Config(format!(
                "{name}: camera format {} is not a V4L2 capture format; use YUYV, UYVY, NV12, GREY, RGB24 or MJPEG",
                p.name()
            )));
        }
    }
    for (field, v, max) in [
        ("width", cfg.width, crate::source::y4m::MAX_DIM),
        ("height", cfg.height, crate::source::y4m::MAX_DIM),
        ("fps", cfg.fps as usize, 1000),
        ("buffers", cfg.buffers as usize, 32),
        ("timeout_ms", cfg.timeout_ms as usize, 600_000),
    ] {
        if v == 0 || v > max {
            return Err(SourceError::Config(format!(
                "{name}: camera {field} is {v}, expected 1..={max}"
            )));
        }
    }
    Ok(())
}

/// Set the format and frame rate on `dev`, map its buffers and start
/// streaming. Boot, and each reconnection (allocates).
fn negotiate<D: CaptureDevice>(
    cfg: &V4l2Config,
    dev: &mut D,
    name: &str,
) -> Result<Negotiated, SourceError> {
    {
        let asked_fourcc = match cfg.format {
            CameraFormat::Raw(p) => fourcc(p).unwrap_or(*b"YUYV"),
            CameraFormat::Mjpeg => compressed::pick_fourcc(dev, name)?,
        };
        let want = DevFormat {
            fourcc: asked_fourcc,
            width: cfg.width as u32,
            height: cfg.height as u32,
            bytesperline: 0,
            sizeimage: 0,
        };
        let got = dev.set_format(want).map_err(|e| {
            SourceError::Config(format!(
                "{name}: VIDIOC_S_FMT {} {}x{} failed: {e}",
                cfg.format.label(),
                cfg.width,
                cfg.height
            ))
        })?;
        let asked = format!("{} {}x{}", cfg.format.label(), cfg.width, cfg.height);
        let gave = format!("{} {}x{}", show_fourcc(got.fourcc), got.width, got.height);
        if (got.fourcc, got.width, got.height) != (want.fourcc, want.width, want.height) {
            log::warn!("{name}: asked for {asked}, the driver set {gave}");
            if cfg.on_adjust == OnAdjust::Refuse {
                return Err(SourceError::Config(format!(
                    "{name}: asked for {asked} but the driver set {gave} (on_adjust = refuse)"
                )));
            }
        }
        let jpeg = compressed::is_jpeg(got.fourcc);
        // MJPEG: 4:2:2 until the first frame says (see `compressed`).
        let format = from_fourcc(got.fourcc)
            .or(jpeg.then_some(PixelFormat::I422))
            .ok_or_else(|| {
                SourceError::Config(format!(
                    "{name}: asked for {asked} but the driver set {gave}, a pixel format perceptd cannot read"
                ))
            })?;
        let (width, height) = (got.width as usize, got.height as usize);
        if width == 0
            || height == 0
            || width > crate::source::y4m::MAX_DIM
            || height > crate::source::y4m::MAX_DIM
        {
            return Err(SourceError::Config(format!(
                "{name}: the driver set an unusable size {gave}"
            )));
        }
        let (planes, need, sizeimage) = if jpeg {
            compressed::check_buffers(
                name,
                got.sizeimage,
                cfg.buffers,
                (got.width, got.height),
                cfg.max_memory_mb,
            )?;
            // A JPEG's length varies: any non-empty payload is looked at.
            ([None, None], 1, Some(got.sizeimage as usize))
        } else {
            let planes = planes(format, width, height, got.bytesperline as usize)
                .map_err(|e| SourceError::Config(format!("{name}: {e}")))?;
            let need = planes.iter().flatten().map(Plane::end).max().unwrap_or(0);
            (planes, need, None)
        };
        let desc = FrameDesc {
            format,
            width,
            height,
        };
        let contiguous = need == desc.bytes();

        let rate = match dev.set_frame_rate(cfg.fps) {
            Ok(Some((frames, secs))) => {
                if frames as u64 != cfg.fps as u64 * secs as u64 {
                    log::warn!(
                        "{name}: asked for {} fps, the driver set {frames}/{secs}",
                        cfg.fps
                    );
                }
                Some((frames, secs))
            }
            Ok(None) => {
                log::warn!(
                    "{name}: the driver cannot set the frame rate; asked for {} fps",
                    cfg.fps
                );
                None
            }
            Err(e) => {
                log::warn!("{name}: setting {} fps failed: {e}", cfg.fps);
                None
            }
        };

        let timeout_ms = stall_timeout_ms(cfg.timeout_ms, rate);
        if timeout_ms != cfg.timeout_ms {
            log::warn!(
                "{name}: timeout_ms = {} is under three frame intervals at the camera's rate; \
                 a stall is declared after {timeout_ms} ms instead",
                cfg.timeout_ms
            );
        }

        let buffers = dev.map_buffers(cfg.buffers).map_err(|e| {
            SourceError::Config(format!(
                "{name}: cannot map {} mmap buffers: {e}",
                cfg.buffers
            ))
        })?;
        if buffers == 0 {
            return Err(SourceError::Config(format!(
                "{name}: the driver granted no mmap buffers"
            )));
        }
        if buffers != cfg.buffers {
            log::warn!(
                "{name}: asked for {} buffers, the driver granted {buffers}",
                cfg.buffers
            );
        }
        if let Some(size) = sizeimage {
            if buffers > cfg.buffers {
                compressed::check_buffers(
                    name,
                    size as u32,
                    buffers,
                    (got.width, got.height),
                    cfg.max_memory_mb,
                )?;
            }
        }
        let need_len = sizeimage.unwrap_or(need);
        for i in 0..buffers as usize {
            let len = dev.buffer(i).len();
            if len < need_len {
                return Err(SourceError::Config(format!(
                    "{name}: buffer {i} is {len} bytes but a {gave} frame needs {need_len}"
                )));
            }
        }
        Ok(Negotiated {
            desc,
            planes,
            need,
            contiguous,
            rate,
            buffers,
            timeout_ms,
            sizeimage,
        })
    }
}

/// [`negotiate`] at boot, and for MJPEG the first frame's format and the
/// decoder for it. Boot.
#[allow(clippy::type_complexity)]
fn boot_negotiate<D: CaptureDevice>(
    cfg: &V4l2Config,
    dev: &mut D,
    name: &str,
) -> Result<(Negotiated, Option<Box<JpegDecoder>>), SourceError> {
    let mut n = negotiate(cfg, dev, name)?;
    let decoder = match n.sizeimage {
        Some(_) => Some(first_frame(dev, &mut n, name)?),
        None => None,
    };
    Ok((n, decoder))
}

/// MJPEG: learn the frame format from the first frame that parses, then
/// re-map the buffers so streaming starts afresh on the first frame the
/// pipeline asks for. The decoder for that format. Boot.
fn first_frame<D: CaptureDevice>(
    dev: &mut D,
    n: &mut Negotiated,
    name: &str,
) -> Result<Box<JpegDecoder>, SourceError> {
    let info = compressed::probe_first(dev, name, n.timeout_ms)?;
    if (info.width, info.height) != (n.desc.width, n.desc.height) {
        return Err(SourceError::Config(format!(
            "{name}: the driver set MJPEG {}x{} but the camera's JPEGs are {}x{}",
            n.desc.width, n.desc.height, info.width, info.height
        )));
    }
    let granted = dev.map_buffers(n.buffers).map_err(|e| {
        SourceError::Config(format!(
            "{name}: re-mapping {} buffers after the first MJPEG frame: {e}",
            n.buffers
        ))
    })?;
    if granted != n.buffers {
        return Err(SourceError::Config(format!(
            "{name}: the driver granted {granted} buffers on re-mapping, {} before",
            n.buffers
        )));
    }
    n.desc = info.desc();
    log::info!(
        "{name}: the camera's MJPEG is {} (from its first frame)",
        info.format.name()
    );
    Ok(JpegDecoder::new(info))
}

impl<D: CaptureDevice> V4l2Source<D> {
    /// Negotiate the format on `dev` and start streaming; no re-opener, so
    /// a lost camera ends the stream (`Disconnected`). Boot.
    pub fn with_device(cfg: &V4l2Config, mut dev: D) -> Result<Self, SourceError> {
        check_config(cfg)?;
        let name = cfg.device.display().to_string();
        let (n, decoder) = boot_negotiate(cfg, &mut dev, &name).inspect_err(|_| {
            let _ = dev.stop();
        })?;
        Ok(Self::build(cfg, name, dev, n, decoder, None))
    }

    /// Open the camera with `opener` (waiting for it per `cfg.absent`),
    /// negotiate and start streaming; keep `opener` to re-open the camera
    /// after a loss or a stall. Boot.
    pub fn with_opener(
        cfg: &V4l2Config,
        mut opener: Opener<D>,
        waiting: &mut dyn FnMut(u64),
    ) -> Result<Self, SourceError> {
        check_config(cfg)?;
        let name = cfg.device.display().to_string();
        let mut attempt = 0u32;
        let mut dev = loop {
            match opener() {
                Ok(d) => break d,
                Err(e) if cfg.absent == Absent::Fail => {
                    return Err(SourceError::Config(format!(
                        "{name}: cannot open V4L2 camera: {e}"
                    )))
                }
                Err(e) => {
                    let wait = backoff_ms(attempt, cfg.reconnect_max_ms);
                    if attempt == 0 {
                        log::warn!(
                            "{name}: camera absent ({e}); waiting for it (source.absent = wait)"
                        );
                    } else {
                        log::debug!("{name}: still absent ({e}); next try in {wait} ms");
                    }
                    waiting(wait);
                    crate::stop::sleep(std::time::Duration::from_millis(wait));
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        if attempt > 0 {
            log::info!("{name}: camera appeared after {attempt} tries");
        }
        let (n, decoder) = boot_negotiate(cfg, &mut dev, &name).inspect_err(|_| {
            let _ = dev.stop();
        })?;
        Ok(Self::build(cfg, name, dev, n, decoder, Some(opener)))
    }

    fn build(
        cfg: &V4l2Config,
        name: String,
        dev: D,
        n: Negotiated,
        decoder: Option<Box<JpegDecoder>>,
        opener: Option<Opener<D>>,
    ) -> Self {
        V4l2Source {
            dev: Some(dev),
            opener,
            cfg: cfg.clone(),
            link: Link::Up,
            faults: CameraFaults::default(),
            counters: None,
            name,
            desc: n.desc,
            planes: n.planes,
            need: n.need,
            contiguous: n.contiguous,
            timeout_ms: n.timeout_ms,
            rate: n.rate,
            buffers: n.buffers,
            streaming: false,
            last_sequence: None,
            driver_drops: 0,
            stamps_ahead: 0,
            max_ahead_ns: 0,
            decoder,
            sizeimage: n.sizeimage.unwrap_or(0),
        }
    }

    /// Buffers whose driver timestamp was later than their dequeue (and
    /// was clamped to it), and the largest lead in nanoseconds.
    pub fn stamps_ahead(&self) -> (u64, u64) {
        (self.stamps_ahead, self.max_ahead_ns)
    }

    /// The stall timeout in use (ms): `timeout_ms` or three frame
    /// intervals, whichever is longer.
    pub fn stall_timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// Frames the driver says it dropped (gaps in buffer sequence numbers).
    pub fn driver_drops(&self) -> u64 {
        self.driver_drops
    }

    /// The frame rate the driver set, as `(frames, seconds)`.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        self.rate
    }

    /// The device while the camera is up; `None` while it is down.
    pub fn device(&self) -> Option<&D> {
        self.dev.as_ref()
    }

    /// Fault counts since boot.
    pub fn faults(&self) -> CameraFaults {
        self.faults
    }

    /// True while streaming (false while lost and being re-opened).
    pub fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    /// MJPEG: the largest compressed frame (the driver's `sizeimage`);
    /// `None` for a raw format.
    pub fn jpeg_capacity(&self) -> Option<usize> {
        self.decoder.as_ref().map(|_| self.sizeimage)
    }

    /// MJPEG: copy the next frame's JPEG, as the camera sent it (through
    /// its EOI, not decoded), into `dst` and return its length and stamp
    /// (`perceptd record --format mjpeg`). `dst` holds
    /// [`jpeg_capacity`](Self::jpeg_capacity) bytes. An empty or cut JPEG is
    /// a bad frame, as for [`Source::next_frame`]; a raw camera is a
    /// `Config` error. Never allocates on success.
    pub fn next_jpeg(&mut self, dst: &mut [u8]) -> Result<(usize, FrameStamp), SourceError> {
        if self.decoder.is_none() {
            return Err(SourceError::Config(format!(
                "{}: the camera delivers {}, not MJPEG",
                self.name,
                self.desc.format.name()
            )));
        }
        let (d, dequeued_ns) = self.dequeue_checked()?;
        let res = match self.dev.as_ref() {
            Some(dev) => compressed::jpeg_of(dev.buffer(d.index), &d).and_then(|jpeg| {
                let out = dst
                    .get_mut(..jpeg.len())
                    .ok_or("JPEG longer than the record buffer")?;
                out.copy_from_slice(jpeg);
                Ok(jpeg.len())
            }),
            None => return Err(self.reconnecting()),
        };
        self.requeue(d.index)?;
        match res {
            Ok(n) => Ok((n, self.stamp(&d, dequeued_ns))),
            Err(reason) => Err(self.bad(reason)),
        }
    }

    fn bump(
        &mut self,
        pick: fn(&mut CameraFaults) -> &mut u64,
        shared: fn(&Counters) -> &AtomicU64,
    ) {
        *pick(&mut self.faults) += 1;
        if let Some(c) = &self.counters {
            Counters::bump(shared(c));
        }
    }

    fn bad(&mut self, reason: &'static str) -> SourceError {
        self.faults.bad_frames += 1;
        SourceError::BadFrame {
            device: self.name.clone(),
            reason,
        }
    }

    /// The camera is lost (`stall` false) or stalled: close it and, with a
    /// re-opener, schedule the first attempt. Fault path (allocates).
    fn went_down(&mut self, stall: bool, reason: String) -> SourceError {
        if stall {
            self.bump(|f| &mut f.stalls, |c| &c.camera_stalls);
        } else {
            self.bump(|f| &mut f.lost, |c| &c.camera_lost);
        }
        if self.opener.is_none() {
            return if stall {
                SourceError::Timeout {
                    device: self.name.clone(),
                    timeout_ms: self.timeout_ms as u64,
                }
            } else {
                SourceError::Disconnected {
                    device: self.name.clone(),
                    reason,
                }
            };
        }
        log::warn!(
            "{}: camera {} ({reason}); closing it and reconnecting",
            self.name,
            if stall { "stalled" } else { "lost" }
        );
        self.close();
        let now = monotonic_ns();
        self.link = Link::Down {
            since_ns: now,
            attempt: 0,
            next_try_ns: now,
        };
        self.reconnecting()
    }

    /// Stops streaming, unmaps the buffers and closes the device.
    fn close(&mut self) {
        if let Some(mut dev) = self.dev.take() {
            if let Err(e) = dev.stop() {
                log::debug!("{}: stopping the lost camera: {e}", self.name);
            }
        }
    }

    fn reconnecting(&self) -> SourceError {
        SourceError::Reconnecting {
            device: self.name.clone(),
        }
    }

    /// While the camera is down: wait for the next attempt (at most one
    /// poll timeout) and try it. Ok once streaming again.
    fn ensure_up(&mut self) -> Result<(), SourceError> {
        let Link::Down {
            since_ns,
            attempt,
            next_try_ns,
        } = self.link
        else {
            return Ok(());
        };
        let now = monotonic_ns();
        if now < next_try_ns {
            let wait = (next_try_ns - now).min(self.timeout_ms as u64 * 1_000_000);
            crate::stop::sleep(std::time::Duration::from_nanos(wait));
            if monotonic_ns() < next_try_ns {
                return Err(self.reconnecting());
            }
        }
        match self.reopen() {
            Ok(()) => {
                self.bump(|f| &mut f.reconnects, |c| &c.camera_reconnects);
                self.link = Link::Up;
                log::warn!(
                    "{}: camera back after {:.2} s ({} attempts): {}",
                    self.name,
                    monotonic_ns().saturating_sub(since_ns) as f64 * 1e-9,
                    attempt + 1,
                    self.describe()
                );
                Ok(())
            }
            Err(e) => {
                self.bump(
                    |f| &mut f.reconnect_failures,
                    |c| &c.camera_reconnect_failures,
                );
                // `attempt` failed attempts before this one: the first
                // failure waits BACKOFF_MIN_MS.
                let wait = backoff_ms(attempt, self.cfg.reconnect_max_ms);
                log::warn!(
                    "{}: reconnect attempt {} failed: {e}; next in {wait} ms",
                    self.name,
                    attempt + 1
                );
                self.link = Link::Down {
                    since_ns,
                    attempt: attempt.saturating_add(1),
                    next_try_ns: monotonic_ns() + wait * 1_000_000,
                };
                Err(self.reconnecting())
            }
        }
    }

    /// Full re-open: open, negotiate, map, stream; the frame must be the
    /// one the pipeline was booted for. Fault path (allocates).
    fn reopen(&mut self) -> Result<(), String> {
        let Some(opener) = self.opener.as_mut() else {
            return Err("no way to re-open this device".into());
        };
        let mut dev = opener().map_err(|e| format!("open: {e}"))?;
        let n = match negotiate(&self.cfg, &mut dev, &self.name) {
            Ok(n) => n,
            Err(e) => {
                let _ = dev.stop();
                return Err(e.to_string());
            }
        };
        // MJPEG: the format is the first frame's, kept from the boot; a
        // camera that now codes another subsampling gives bad frames.
        let same = match (n.sizeimage, &self.decoder) {
            (Some(_), Some(_)) => {
                (n.desc.width, n.desc.height) == (self.desc.width, self.desc.height)
            }
            (None, None) => n.desc == self.desc,
            _ => false,
        };
        if !same {
            let _ = dev.stop();
            return Err(format!(
                "the camera came back as {} {}x{} but the pipeline was booted for {} {}x{}",
                n.desc.format.name(),
                n.desc.width,
                n.desc.height,
                self.desc.format.name(),
                self.desc.width,
                self.desc.height
            ));
        }
        if n.buffers != self.buffers {
            log::warn!(
                "{}: the driver now granted {} buffers (was {})",
                self.name,
                n.buffers,
                self.buffers
            );
        }
        self.planes = n.planes;
        self.need = n.need;
        self.contiguous = n.contiguous;
        self.rate = n.rate;
        self.buffers = n.buffers;
        self.timeout_ms = n.timeout_ms;
        self.sizeimage = n.sizeimage.unwrap_or(0);
        self.last_sequence = None;
        self.dev = Some(dev);
        self.streaming = false;
        Ok(())
    }

    /// Dequeue one buffer and check it; a bad one is re-queued. EINTR and
    /// EAGAIN are retried within the poll timeout.
    fn dequeue_checked(&mut self) -> Result<(Dequeued, u64), SourceError> {
        self.ensure_up()?;
        if !self.streaming {
            let res = match self.dev.as_mut() {
                Some(dev) => dev.stream_on(),
                None => return Err(self.reconnecting()),
            };
            if let Err(e) = res {
                return Err(self.went_down(false, format!("VIDIOC_STREAMON failed: {e}")));
            }
            self.streaming = true;
        }
        let deadline = monotonic_ns().saturating_add(self.timeout_ms as u64 * 1_000_000);
        let mut wait_ms = self.timeout_ms;
        let d = loop {
            let Some(dev) = self.dev.as_mut() else {
                return Err(self.reconnecting());
            };
            match dev.dequeue(wait_ms) {
                Ok(d) => break (d, monotonic_ns()),
                // The device's wait gave up for a stop request (it polls in
                // slices): not a stall.
                Err(DqError::Timeout) if crate::stop::requested() => {
                    return Err(SourceError::End);
                }
                Err(DqError::Timeout) => {
                    let reason = format!("no frame within {} ms", self.timeout_ms);
                    return Err(self.went_down(true, reason));
                }
                Err(DqError::Os(libc::EINTR)) | Err(DqError::Os(libc::EAGAIN)) => {
                    self.bump(|f| &mut f.retries, |c| &c.camera_retries);
                    let left = deadline.saturating_sub(monotonic_ns());
                    if left == 0 {
                        let reason =
                            format!("no frame within {} ms (EINTR/EAGAIN only)", self.timeout_ms);
                        return Err(self.went_down(true, reason));
                    }
                    wait_ms = left.div_ceil(1_000_000).min(u32::MAX as u64) as u32;
                }
                Err(DqError::PollErr) => {
                    return Err(self.went_down(
                        false,
                        "poll reported POLLERR (device gone or streaming stopped)".into(),
                    ))
                }
                Err(DqError::Os(libc::ENODEV)) => {
                    return Err(self.went_down(false, "ENODEV (device removed)".into()))
                }
                // The driver may have dropped the buffer; nothing to re-queue.
                Err(DqError::Os(libc::EIO)) => return Err(self.bad("VIDIOC_DQBUF failed with EIO")),
                Err(DqError::Os(errno)) => {
                    let e = std::io::Error::from_raw_os_error(errno);
                    return Err(self.went_down(false, format!("VIDIOC_DQBUF failed: {e}")));
                }
            }
        };
        let (d, dequeued_ns) = d;
        if let Some(last) = self.last_sequence {
            self.driver_drops += d.sequence.wrapping_sub(last).saturating_sub(1) as u64;
        }
        self.last_sequence = Some(d.sequence);
        let fault = if d.index >= self.buffers as usize {
            Some("driver returned an unknown buffer index")
        } else if d.flags & dev::BUF_FLAG_ERROR != 0 {
            Some("driver flagged the buffer (V4L2_BUF_FLAG_ERROR)")
        } else if self.decoder.is_none()
            && (d.bytesused as usize) < self.need + d.data_offset as usize
        {
            // (MJPEG payloads are checked where they are read.)
            Some("buffer holds fewer bytes than a frame")
        } else {
            None
        };
        if let Some(reason) = fault {
            if d.index < self.buffers as usize {
                self.requeue(d.index)?;
            }
            return Err(self.bad(reason));
        }
        Ok((d, dequeued_ns))
    }

    fn requeue(&mut self, index: usize) -> Result<(), SourceError> {
        let res = match self.dev.as_mut() {
            Some(dev) => dev.queue(index),
            None => return Err(self.reconnecting()),
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                Err(self.went_down(false, "ENODEV (device removed)".into()))
            }
            Err(e) => {
                Err(self.went_down(false, format!("VIDIOC_QBUF of buffer {index} failed: {e}")))
            }
        }
    }

    /// The frame's stamps: the driver's monotonic timestamp, but never
    /// later than `dequeued_ns` (see the module doc). Never allocates.
    fn stamp(&mut self, d: &Dequeued, dequeued_ns: u64) -> FrameStamp {
        let monotonic = d.flags & dev::BUF_FLAG_TIMESTAMP_MASK == dev::BUF_FLAG_TIMESTAMP_MONOTONIC;
        let capture_ns = if monotonic && d.timestamp_ns != 0 {
            if d.timestamp_ns > dequeued_ns {
                self.stamps_ahead += 1;
                self.max_ahead_ns = self.max_ahead_ns.max(d.timestamp_ns - dequeued_ns);
            }
            d.timestamp_ns.min(dequeued_ns)
        } else {
            dequeued_ns
        };
        FrameStamp {
            capture_ns,
            source_ns: Some(d.timestamp_ns),
        }
    }
}

/// Pause before reconnection attempt `attempt` (0 = first): 50 ms doubling,
/// capped at `max_ms`.
fn backoff_ms(attempt: u32, max_ms: u32) -> u64 {
    BACKOFF_MIN_MS
        .saturating_mul(1u64 << attempt.min(20))
        .min(max_ms.max(1) as u64)
}

/// Copy the planes out of a driver buffer into the packed layout of the
/// frame (`dst` is exactly one frame). Never allocates.
fn copy_planes(planes: &[Option<Plane>; 2], contiguous: bool, src: &[u8], dst: &mut [u8]) {
    if contiguous {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    let mut at = 0;
    for p in planes.iter().flatten() {
        for r in 0..p.rows {
            let s = p.offset + r * p.stride;
            dst[at..at + p.row_bytes].copy_from_slice(&src[s..s + p.row_bytes]);
            at += p.row_bytes;
        }
    }
}

impl<D: CaptureDevice> Source for V4l2Source<D> {
    fn desc(&self) -> FrameDesc {
        self.desc
    }

    fn pacing(&self) -> Pacing {
        Pacing::Live
    }

    fn describe(&self) -> String {
        let rate = match self.rate {
            Some((f, 1)) => format!("@{f}"),
            Some((f, s)) => format!("@{f}/{s}"),
            None => String::new(),
        };
        let format = match self.decoder {
            Some(_) => format!("MJPEG {}", self.desc.format.name()),
            None => self.desc.format.name().to_string(),
        };
        format!(
            "{} {format} {}x{}{rate} ({} mmap buffers, stall after {} ms)",
            self.name, self.desc.width, self.desc.height, self.buffers, self.timeout_ms
        )
    }

    fn attach_counters(&mut self, counters: &Arc<Counters>) {
        self.counters = Some(Arc::clone(counters));
    }

    /// Frame path: never allocates on success.
    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        let bytes = self.desc.bytes();
        if dst.len() < bytes {
            return Err(SourceError::Config(format!(
                "{}: destination holds {} bytes but a frame is {bytes}",
                self.name,
                dst.len()
            )));
        }
        let (d, dequeued_ns) = self.dequeue_checked()?;
        if let Some(decoder) = self.decoder.as_mut() {
            let res = match self.dev.as_ref() {
                Some(dev) => compressed::jpeg_of(dev.buffer(d.index), &d).and_then(|jpeg| {
                    decoder
                        .decode(jpeg, &mut dst[..bytes])
                        .map_err(|e| e.reason())
                }),
                None => return Err(self.reconnecting()),
            };
            self.requeue(d.index)?;
            return match res {
                Ok(()) => Ok(self.stamp(&d, dequeued_ns)),
                Err(reason) => Err(self.bad(reason)),
            };
        }
        let short = match self.dev.as_ref() {
            Some(dev) => {
                let src = dev.buffer(d.index);
                let src = src.get(d.data_offset as usize..).unwrap_or(&[]);
                if src.len() < self.need {
                    true
                } else {
                    copy_planes(&self.planes, self.contiguous, src, &mut dst[..bytes]);
                    false
                }
            }
            None => return Err(self.reconnecting()),
        };
        self.requeue(d.index)?;
        if short {
            return Err(self.bad("mapped buffer is smaller than a frame"));
        }
        Ok(self.stamp(&d, dequeued_ns))
    }

    /// Frame path: never allocates on success.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        let (d, dequeued_ns) = self.dequeue_checked()?;
        self.requeue(d.index)?;
        Ok(self.stamp(&d, dequeued_ns))
    }

    /// MJPEG: the driver's buffers and the decoder (raw formats: the
    /// config's estimate, frame-sized buffers, holds).
    fn buffer_bytes(&self) -> Option<u64> {
        self.decoder
            .as_ref()
            .map(|_| compressed::stream_bytes(self.buffers as u64, self.sizeimage as u64))
    }
}

impl<D: CaptureDevice> Drop for V4l2Source<D> {
    fn drop(&mut self) {
        if self.stamps_ahead > 0 {
            log::info!(
                "{}: {} buffer timestamps were later than their dequeue (by up to {:.1} ms: \
                 the driver stamps ahead of time); capture time was clamped to the dequeue",
                self.name,
                self.stamps_ahead,
                self.max_ahead_ns as f64 * 1e-6
            );
        }
        if let Some(dev) = self.dev.as_mut() {
            if let Err(e) = dev.stop() {
                log::warn!("{}: stopping the stream failed: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
