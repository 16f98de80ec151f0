//! The V4L2 camera as a [`Source`]: format negotiation (and what to do when
//! the driver changes the format), mmap streaming, per-frame checks and the
//! mapping of device faults to [`SourceError`]s. The device itself sits
//! behind [`dev::CaptureDevice`] so tests drive this logic with a scripted
//! fake; [`dev::V4lDevice`] is the real one.
//!
//! Boot (`open`/`with_device`, allocates): set the format, the frame rate,
//! map and queue the buffers, start streaming. Frame path (capture thread,
//! `next_frame`/`skip_frame`, never allocate on success): poll with the
//! configured timeout, dequeue one buffer, check it, copy it out (next_frame
//! only, removing any row padding the driver added) and queue it again at
//! once, so the driver always holds every buffer but the one being copied.
//!
//! Faults: no frame within the timeout -> `Timeout`; ENODEV or POLLERR ->
//! `Disconnected`; a buffer flagged `V4L2_BUF_FLAG_ERROR`, shorter than a
//! frame, or a DQBUF EIO -> `BadFrame` (the buffer is re-queued). The error
//! values carry the device name, so returning one allocates a short string:
//! faults are rare and counted by the pipeline.

pub mod dev;

use crate::frame::{FrameDesc, PixelFormat};
use crate::source::{monotonic_ns, FrameStamp, Pacing, Source, SourceError};
use dev::{CaptureDevice, Dequeued, DevFormat, DqError, V4lDevice};
use std::path::PathBuf;

/// What to do when the driver sets a different format or size than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAdjust {
    /// Use what the driver set, if perceptd can read that pixel format.
    Adapt,
    /// Fail at boot.
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Config {
    pub device: PathBuf,
    /// One of Yuyv, Uyvy, Nv12, Grey, Rgb24.
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// mmap buffers to request (the driver may grant a different number).
    pub buffers: u32,
    /// Longest wait for one frame before `SourceError::Timeout`.
    pub timeout_ms: u32,
    pub on_adjust: OnAdjust,
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

fn show_fourcc(f: [u8; 4]) -> String {
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
    dev: D,
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
    last_sequence: Option<u32>,
    driver_drops: u64,
}

impl V4l2Source<V4lDevice> {
    /// Open and start the camera named in `cfg`. Boot.
    pub fn open(cfg: &V4l2Config) -> Result<Self, SourceError> {
        check_config(cfg)?;
        let dev = V4lDevice::open(&cfg.device).map_err(|e| {
            SourceError::Config(format!(
                "{}: cannot open V4L2 camera: {e}",
                cfg.device.display()
            ))
        })?;
        Self::with_device(cfg, dev)
    }
}

fn check_config(cfg: &V4l2Config) -> Result<(), SourceError> {
    let name = cfg.device.display();
    if fourcc(cfg.format).is_none() {
        return Err(SourceError::Config(format!(
            "{name}: camera format {} is not a V4L2 capture format; use YUYV, UYVY, NV12, GREY or RGB24",
            cfg.format.name()
        )));
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

impl<D: CaptureDevice> V4l2Source<D> {
    /// Negotiate the format on `dev` and start streaming. Boot.
    pub fn with_device(cfg: &V4l2Config, mut dev: D) -> Result<Self, SourceError> {
        check_config(cfg)?;
        let name = cfg.device.display().to_string();
        let want = DevFormat {
            fourcc: fourcc(cfg.format).unwrap_or(*b"YUYV"),
            width: cfg.width as u32,
            height: cfg.height as u32,
            bytesperline: 0,
            sizeimage: 0,
        };
        let got = dev.set_format(want).map_err(|e| {
            SourceError::Config(format!(
                "{name}: VIDIOC_S_FMT {} {}x{} failed: {e}",
                cfg.format.name(),
                cfg.width,
                cfg.height
            ))
        })?;
        let asked = format!("{} {}x{}", cfg.format.name(), cfg.width, cfg.height);
        let gave = format!("{} {}x{}", show_fourcc(got.fourcc), got.width, got.height);
        if (got.fourcc, got.width, got.height) != (want.fourcc, want.width, want.height) {
            log::warn!("{name}: asked for {asked}, the driver set {gave}");
            if cfg.on_adjust == OnAdjust::Refuse {
                return Err(SourceError::Config(format!(
                    "{name}: asked for {asked} but the driver set {gave} (on_adjust = refuse)"
                )));
            }
        }
        let format = from_fourcc(got.fourcc).ok_or_else(|| {
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
        let planes = planes(format, width, height, got.bytesperline as usize)
            .map_err(|e| SourceError::Config(format!("{name}: {e}")))?;
        let need = planes.iter().flatten().map(Plane::end).max().unwrap_or(0);
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

        let buffers = dev.start(cfg.buffers).map_err(|e| {
            SourceError::Config(format!(
                "{name}: cannot start streaming with {} mmap buffers: {e}",
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
        for i in 0..buffers as usize {
            let len = dev.buffer(i).len();
            if len < need {
                return Err(SourceError::Config(format!(
                    "{name}: buffer {i} is {len} bytes but a {gave} frame needs {need}"
                )));
            }
        }
        Ok(V4l2Source {
            dev,
            name,
            desc,
            planes,
            need,
            contiguous,
            timeout_ms: cfg.timeout_ms,
            rate,
            buffers,
            last_sequence: None,
            driver_drops: 0,
        })
    }

    /// Frames the driver says it dropped (gaps in buffer sequence numbers).
    pub fn driver_drops(&self) -> u64 {
        self.driver_drops
    }

    /// The frame rate the driver set, as `(frames, seconds)`.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        self.rate
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    fn disconnected(&self, reason: String) -> SourceError {
        SourceError::Disconnected {
            device: self.name.clone(),
            reason,
        }
    }

    fn bad(&self, reason: &'static str) -> SourceError {
        SourceError::BadFrame {
            device: self.name.clone(),
            reason,
        }
    }

    /// Dequeue one buffer and check it; a bad one is re-queued.
    fn dequeue_checked(&mut self) -> Result<Dequeued, SourceError> {
        let d = match self.dev.dequeue(self.timeout_ms) {
            Ok(d) => d,
            Err(DqError::Timeout) => {
                return Err(SourceError::Timeout {
                    device: self.name.clone(),
                    timeout_ms: self.timeout_ms as u64,
                })
            }
            Err(DqError::PollErr) => {
                return Err(self.disconnected(
                    "poll reported POLLERR (device gone or streaming stopped)".into(),
                ))
            }
            Err(DqError::Os(libc::ENODEV)) => {
                return Err(self.disconnected("ENODEV (device removed)".into()))
            }
            // The driver may have dropped the buffer; nothing to re-queue.
            Err(DqError::Os(libc::EIO)) => return Err(self.bad("VIDIOC_DQBUF failed with EIO")),
            Err(DqError::Os(errno)) => {
                let e = std::io::Error::from_raw_os_error(errno);
                return Err(self.disconnected(format!("VIDIOC_DQBUF failed: {e}")));
            }
        };
        if let Some(last) = self.last_sequence {
            self.driver_drops += d.sequence.wrapping_sub(last).saturating_sub(1) as u64;
        }
        self.last_sequence = Some(d.sequence);
        let fault = if d.index >= self.buffers as usize {
            Some("driver returned an unknown buffer index")
        } else if d.flags & dev::BUF_FLAG_ERROR != 0 {
            Some("driver flagged the buffer (V4L2_BUF_FLAG_ERROR)")
        } else if (d.bytesused as usize) < self.need {
            Some("buffer holds fewer bytes than a frame")
        } else {
            None
        };
        if let Some(reason) = fault {
            self.requeue(d.index)?;
            return Err(self.bad(reason));
        }
        Ok(d)
    }

    fn requeue(&mut self, index: usize) -> Result<(), SourceError> {
        match self.dev.queue(index) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                Err(self.disconnected("ENODEV (device removed)".into()))
            }
            Err(e) => Err(self.disconnected(format!("VIDIOC_QBUF of buffer {index} failed: {e}"))),
        }
    }

    fn stamp(d: &Dequeued) -> FrameStamp {
        let monotonic = d.flags & dev::BUF_FLAG_TIMESTAMP_MASK == dev::BUF_FLAG_TIMESTAMP_MONOTONIC;
        let capture_ns = if monotonic && d.timestamp_ns != 0 {
            d.timestamp_ns
        } else {
            monotonic_ns()
        };
        FrameStamp {
            capture_ns,
            source_ns: Some(d.timestamp_ns),
        }
    }
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
        format!(
            "{} {} {}x{}{rate} ({} mmap buffers)",
            self.name,
            self.desc.format.name(),
            self.desc.width,
            self.desc.height,
            self.buffers
        )
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
        let d = self.dequeue_checked()?;
        let src = self.dev.buffer(d.index);
        if src.len() < self.need {
            self.requeue(d.index)?;
            return Err(self.bad("mapped buffer is smaller than a frame"));
        }
        copy_planes(&self.planes, self.contiguous, src, &mut dst[..bytes]);
        self.requeue(d.index)?;
        Ok(Self::stamp(&d))
    }

    /// Frame path: never allocates on success.
    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        let d = self.dequeue_checked()?;
        self.requeue(d.index)?;
        Ok(Self::stamp(&d))
    }
}

impl<D: CaptureDevice> Drop for V4l2Source<D> {
    fn drop(&mut self) {
        if let Err(e) = self.dev.stop() {
            log::warn!("{}: stopping the stream failed: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    enum Step {
        Frame {
            fill: u8,
            bytesused: Option<u32>,
            flags: u32,
            ts: u64,
            seq: u32,
        },
        Timeout,
        PollErr,
        Os(i32),
    }

    fn frame(fill: u8, seq: u32) -> Step {
        Step::Frame {
            fill,
            bytesused: None,
            flags: dev::BUF_FLAG_TIMESTAMP_MONOTONIC,
            ts: 1000 + seq as u64,
            seq,
        }
    }

    /// A scripted camera: `set_format` answers `adjust(want)`, each dequeue
    /// plays the next step (a frame fills the next free buffer with a byte
    /// pattern that encodes `fill` and the position).
    struct Fake {
        adjust: fn(DevFormat) -> DevFormat,
        fmt: Option<DevFormat>,
        grant: Option<u32>,
        script: VecDeque<Step>,
        bufs: Vec<Vec<u8>>,
        queued: Vec<bool>,
        stopped: Arc<AtomicBool>,
        timeouts_asked: Vec<u32>,
    }

    fn fake(script: Vec<Step>) -> Fake {
        Fake {
            adjust: |f| f,
            fmt: None,
            grant: None,
            script: script.into(),
            bufs: Vec::new(),
            queued: Vec::new(),
            stopped: Arc::new(AtomicBool::new(false)),
            timeouts_asked: Vec::new(),
        }
    }

    fn byte(fill: u8, i: usize) -> u8 {
        fill.wrapping_add((i * 7 % 251) as u8)
    }

    impl CaptureDevice for Fake {
        fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat> {
            let mut got = (self.adjust)(want);
            if got.bytesperline == 0 {
                let p = planes(
                    from_fourcc(got.fourcc).unwrap_or(PixelFormat::Grey),
                    got.width as usize,
                    got.height as usize,
                    0,
                )
                .map_err(io::Error::other)?;
                got.bytesperline = p[0].map_or(0, |p| p.stride) as u32;
            }
            let rows = if &got.fourcc == b"NV12" {
                got.height + got.height.div_ceil(2)
            } else {
                got.height
            };
            got.sizeimage = got.bytesperline * rows;
            self.fmt = Some(got);
            Ok(got)
        }

        fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>> {
            Ok(Some((fps, 1)))
        }

        fn start(&mut self, n: u32) -> io::Result<u32> {
            let n = self.grant.unwrap_or(n);
            let size = self.fmt.map_or(0, |f| f.sizeimage as usize);
            self.bufs = vec![vec![0; size]; n as usize];
            self.queued = vec![true; n as usize];
            Ok(n)
        }

        fn dequeue(&mut self, timeout_ms: u32) -> Result<Dequeued, DqError> {
            self.timeouts_asked.push(timeout_ms);
            match self.script.pop_front() {
                None | Some(Step::Timeout) => Err(DqError::Timeout),
                Some(Step::PollErr) => Err(DqError::PollErr),
                Some(Step::Os(e)) => Err(DqError::Os(e)),
                Some(Step::Frame {
                    fill,
                    bytesused,
                    flags,
                    ts,
                    seq,
                }) => {
                    let index = self
                        .queued
                        .iter()
                        .position(|&q| q)
                        .ok_or(DqError::PollErr)?;
                    self.queued[index] = false;
                    for (i, b) in self.bufs[index].iter_mut().enumerate() {
                        *b = byte(fill, i);
                    }
                    let bytesused = bytesused.unwrap_or(self.bufs[index].len() as u32);
                    Ok(Dequeued {
                        index,
                        bytesused,
                        flags,
                        timestamp_ns: ts,
                        sequence: seq,
                    })
                }
            }
        }

        fn buffer(&self, index: usize) -> &[u8] {
            self.bufs.get(index).map_or(&[], |b| b)
        }

        fn queue(&mut self, index: usize) -> io::Result<()> {
            match self.queued.get_mut(index) {
                Some(q) if !*q => {
                    *q = true;
                    Ok(())
                }
                _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        }

        fn stop(&mut self) -> io::Result<()> {
            self.stopped.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn cfg(format: PixelFormat, width: usize, height: usize) -> V4l2Config {
        V4l2Config {
            device: "/dev/video-fake".into(),
            format,
            width,
            height,
            fps: 30,
            buffers: 4,
            timeout_ms: 250,
            on_adjust: OnAdjust::Adapt,
        }
    }

    #[test]
    fn scripted_frames_are_copied_stamped_and_requeued() {
        let c = cfg(PixelFormat::Yuyv, 8, 4);
        let mut src =
            V4l2Source::with_device(&c, fake(vec![frame(1, 0), frame(2, 1), frame(3, 5)])).unwrap();
        assert_eq!(
            src.desc(),
            FrameDesc {
                format: PixelFormat::Yuyv,
                width: 8,
                height: 4
            }
        );
        assert_eq!(src.pacing(), Pacing::Live);
        assert!(src.describe().contains("YUYV 8x4@30"), "{}", src.describe());
        let mut dst = vec![0u8; src.desc().bytes()];
        let st = src.next_frame(&mut dst).unwrap();
        assert_eq!(
            st,
            FrameStamp {
                capture_ns: 1000,
                source_ns: Some(1000)
            }
        );
        assert!(dst.iter().enumerate().all(|(i, &b)| b == byte(1, i)));
        assert!(
            src.device().queued.iter().all(|&q| q),
            "buffer not re-queued"
        );
        let st = src.skip_frame().unwrap();
        assert_eq!(st.source_ns, Some(1001));
        assert!(
            dst.iter().enumerate().all(|(i, &b)| b == byte(1, i)),
            "skip wrote into dst"
        );
        src.next_frame(&mut dst).unwrap();
        assert!(dst.iter().enumerate().all(|(i, &b)| b == byte(3, i)));
        assert_eq!(src.driver_drops(), 3);
        assert!(src.device().queued.iter().all(|&q| q));
        assert_eq!(src.device().timeouts_asked, [250, 250, 250]);
    }

    #[test]
    fn non_monotonic_timestamps_are_restamped() {
        let c = cfg(PixelFormat::Grey, 4, 2);
        let step = Step::Frame {
            fill: 0,
            bytesused: None,
            flags: 0,
            ts: 5,
            seq: 0,
        };
        let mut src = V4l2Source::with_device(&c, fake(vec![step])).unwrap();
        let before = monotonic_ns();
        let st = src.skip_frame().unwrap();
        assert!(st.capture_ns >= before);
        assert_eq!(st.source_ns, Some(5));
    }

    #[test]
    fn adjusted_format_adapts_or_refuses() {
        let mut f = fake(vec![frame(9, 0)]);
        f.adjust = |w| DevFormat {
            width: 640,
            height: 480,
            ..w
        };
        let c = cfg(PixelFormat::Yuyv, 1920, 1080);
        let mut src = V4l2Source::with_device(&c, f).unwrap();
        assert_eq!(
            src.desc(),
            FrameDesc {
                format: PixelFormat::Yuyv,
                width: 640,
                height: 480
            }
        );
        let mut dst = vec![0; 640 * 480 * 2];
        src.next_frame(&mut dst).unwrap();

        let mut f = fake(vec![]);
        f.adjust = |w| DevFormat {
            fourcc: *b"UYVY",
            ..w
        };
        let src = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 64, 48), f).unwrap();
        assert_eq!(src.desc().format, PixelFormat::Uyvy);

        let mut f = fake(vec![]);
        f.adjust = |w| DevFormat {
            width: 640,
            height: 480,
            ..w
        };
        let c = V4l2Config {
            on_adjust: OnAdjust::Refuse,
            ..cfg(PixelFormat::Yuyv, 1920, 1080)
        };
        let e = V4l2Source::with_device(&c, f).err().unwrap().to_string();
        assert!(
            e.contains("YUYV 1920x1080")
                && e.contains("YUYV 640x480")
                && e.contains("/dev/video-fake"),
            "{e}"
        );

        let mut f = fake(vec![]);
        f.adjust = |w| DevFormat {
            fourcc: *b"MJPG",
            ..w
        };
        let e = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 64, 48), f)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("MJPG") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn padded_rows_are_removed() {
        for (fmt, w, h) in [
            (PixelFormat::Yuyv, 6, 3),
            (PixelFormat::Nv12, 6, 5),
            (PixelFormat::Rgb24, 5, 2),
        ] {
            let mut f = fake(vec![frame(4, 0)]);
            f.adjust = |w| DevFormat {
                bytesperline: 32,
                ..w
            };
            let mut src = V4l2Source::with_device(&cfg(fmt, w, h), f).unwrap();
            let mut dst = vec![0; src.desc().bytes()];
            src.next_frame(&mut dst).unwrap();
            let p = planes(fmt, w, h, 32).unwrap();
            let mut want = Vec::new();
            for p in p.iter().flatten() {
                for r in 0..p.rows {
                    want.extend((0..p.row_bytes).map(|i| byte(4, p.offset + r * 32 + i)));
                }
            }
            assert_eq!(dst, want, "{fmt:?}");
        }
    }

    #[test]
    fn stride_smaller_than_a_row_is_refused() {
        let mut f = fake(vec![]);
        f.adjust = |w| DevFormat {
            bytesperline: 10,
            ..w
        };
        let e = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 8, 2), f)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("bytesperline 10") && e.contains("16 bytes"),
            "{e}"
        );
    }

    #[test]
    fn flagged_and_short_buffers_are_bad_frames_and_requeued() {
        let c = cfg(PixelFormat::Grey, 8, 8);
        let script = vec![
            Step::Frame {
                fill: 0,
                bytesused: None,
                flags: dev::BUF_FLAG_ERROR,
                ts: 1,
                seq: 0,
            },
            Step::Frame {
                fill: 0,
                bytesused: Some(63),
                flags: 0,
                ts: 2,
                seq: 1,
            },
            Step::Frame {
                fill: 0,
                bytesused: Some(63),
                flags: 0,
                ts: 3,
                seq: 2,
            },
            Step::Os(libc::EIO),
            frame(7, 3),
        ];
        let mut src = V4l2Source::with_device(&c, fake(script)).unwrap();
        let mut dst = vec![0; 64];
        for (i, want) in ["V4L2_BUF_FLAG_ERROR", "fewer bytes", "fewer bytes", "EIO"]
            .iter()
            .enumerate()
        {
            let res = if i == 2 {
                src.skip_frame()
            } else {
                src.next_frame(&mut dst)
            };
            match res {
                Err(SourceError::BadFrame { device, reason }) => {
                    assert_eq!(device, "/dev/video-fake");
                    assert!(reason.contains(want), "{reason}");
                }
                other => panic!("step {i}: {other:?}"),
            }
            assert!(
                src.device().queued.iter().all(|&q| q),
                "step {i}: buffer not re-queued"
            );
        }
        src.next_frame(&mut dst).unwrap();
        assert!(dst.iter().enumerate().all(|(i, &b)| b == byte(7, i)));
    }

    #[test]
    fn timeout_and_disconnects() {
        let c = cfg(PixelFormat::Grey, 4, 4);
        let mut src = V4l2Source::with_device(
            &c,
            fake(vec![
                Step::Timeout,
                Step::Os(libc::ENODEV),
                Step::PollErr,
                Step::Os(libc::EBADF),
            ]),
        )
        .unwrap();
        let mut dst = vec![0; 16];
        match src.next_frame(&mut dst) {
            Err(SourceError::Timeout { device, timeout_ms }) => {
                assert_eq!((device.as_str(), timeout_ms), ("/dev/video-fake", 250));
            }
            other => panic!("{other:?}"),
        }
        let e = src.next_frame(&mut dst).unwrap_err();
        assert!(
            matches!(&e, SourceError::Disconnected { reason, .. } if reason.contains("ENODEV")),
            "{e}"
        );
        let e = src.skip_frame().unwrap_err();
        assert!(
            matches!(&e, SourceError::Disconnected { reason, .. } if reason.contains("POLLERR")),
            "{e}"
        );
        let e = src.next_frame(&mut dst).unwrap_err();
        assert!(matches!(e, SourceError::Disconnected { .. }), "{e}");
        drop(src);
    }

    #[test]
    fn bad_configs_are_refused_at_boot() {
        let e = V4l2Source::with_device(&cfg(PixelFormat::I420, 8, 8), fake(vec![]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("I420") && e.contains("/dev/video-fake"), "{e}");
        let e = V4l2Source::with_device(&cfg(PixelFormat::Grey, 0, 8), fake(vec![]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("width is 0"), "{e}");
        let c = V4l2Config {
            buffers: 0,
            ..cfg(PixelFormat::Grey, 8, 8)
        };
        let e = V4l2Source::with_device(&c, fake(vec![]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("buffers is 0"), "{e}");
        let mut f = fake(vec![]);
        f.grant = Some(0);
        let e = V4l2Source::with_device(&cfg(PixelFormat::Grey, 8, 8), f)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no mmap buffers"), "{e}");
        let mut f = fake(vec![frame(1, 0)]);
        f.grant = Some(2);
        let mut src = V4l2Source::with_device(&cfg(PixelFormat::Grey, 8, 8), f).unwrap();
        assert!(src.describe().contains("2 mmap buffers"));
        let e = src.next_frame(&mut [0; 10]).unwrap_err().to_string();
        assert!(e.contains("10 bytes"), "{e}");
    }

    #[test]
    fn drop_stops_the_device() {
        let f = fake(vec![]);
        let stopped = f.stopped.clone();
        let src = V4l2Source::with_device(&cfg(PixelFormat::Grey, 2, 2), f).unwrap();
        assert!(!stopped.load(Ordering::SeqCst));
        drop(src);
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[test]
    fn missing_device_names_the_device() {
        let c = V4l2Config {
            device: "/dev/video-perceptd-missing".into(),
            ..cfg(PixelFormat::Yuyv, 640, 480)
        };
        let e = V4l2Source::open(&c).err().unwrap().to_string();
        assert!(
            e.contains("/dev/video-perceptd-missing") && e.contains("No such file"),
            "{e}"
        );
        // A node that exists but is no camera.
        let c = V4l2Config {
            device: "/dev/null".into(),
            ..c
        };
        let e = V4l2Source::open(&c).err().unwrap().to_string();
        assert!(
            e.contains("/dev/null") && e.contains("cannot open V4L2 camera"),
            "{e}"
        );
    }
}
