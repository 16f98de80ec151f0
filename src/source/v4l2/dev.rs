//! The thin V4L2 device layer under [`super::V4l2Source`]: the
//! [`CaptureDevice`] trait (the few operations mmap streaming needs) and
//! [`V4lDevice`], its implementation on a real `/dev/video*` node through the
//! `v4l` crate's ioctl wrappers and kernel structs. Single-planar
//! (`V4L2_BUF_TYPE_VIDEO_CAPTURE`) and multiplanar
//! (`V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`, as on many SoC cameras) nodes are
//! both driven; a multiplanar node must deliver the frame in one buffer
//! (`num_planes` 1: YUYV, NV12, ..., not NV12M), whose payload may start at
//! the plane's `data_offset`.
//!
//! The `v4l` crate's `MmapStream` is not used: it hides the buffer array
//! behind `next()` (we need dequeue / look / queue as separate steps), its
//! poll discards `revents` (so POLLERR looks like a frame) and its `Drop`
//! panics on any STREAMOFF error but ENODEV.
//!
//! State machine of a device: opened -> `formats` / `set_format` /
//! `set_frame_rate` (boot, any number of times) -> `map_buffers` (boot;
//! called again it stops the stream and starts from fresh buffers) ->
//! `stream_on` (capture thread, once, when the pipeline wants frames; at
//! boot too when an MJPEG camera's first frame is looked at) ->
//! `dequeue` / `buffer` / `queue` (capture thread) -> `stop` (also done on
//! drop). `stream_on`, `dequeue`, `buffer` and `queue` never allocate; the
//! rest is boot.

use crate::source::monotonic_ns;
use std::io;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use v4l::v4l2;
use v4l::v4l2::vidioc;
use v4l::v4l_sys;

/// The driver marked the buffer's data as unreliable.
pub const BUF_FLAG_ERROR: u32 = v4l_sys::V4L2_BUF_FLAG_ERROR;
/// Mask of the timestamp-clock bits of a buffer's flags.
pub const BUF_FLAG_TIMESTAMP_MASK: u32 = v4l_sys::V4L2_BUF_FLAG_TIMESTAMP_MASK;
/// The buffer timestamp is CLOCK_MONOTONIC (the usual case).
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = v4l_sys::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
/// Mask of the timestamp-source bits: End of Frame (0) or Start of
/// Exposure ([`BUF_FLAG_TSTAMP_SRC_SOE`]).
pub const BUF_FLAG_TSTAMP_SRC_MASK: u32 = v4l_sys::V4L2_BUF_FLAG_TSTAMP_SRC_MASK;
/// The timestamp was taken at the start of exposure.
pub const BUF_FLAG_TSTAMP_SRC_SOE: u32 = v4l_sys::V4L2_BUF_FLAG_TSTAMP_SRC_SOE;

const CAPTURE: u32 = v4l_sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;
const CAPTURE_MPLANE: u32 = v4l_sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
const MAX_PLANES: usize = v4l_sys::VIDEO_MAX_PLANES as usize;

/// A capture format as `VIDIOC_S_FMT` sees it (of the one plane of a
/// multiplanar format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevFormat {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (0 when asking: the driver decides).
    pub bytesperline: u32,
    /// Bytes of the largest frame (0 when asking).
    pub sizeimage: u32,
}

/// One dequeued buffer: which it is and what the driver said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    pub index: usize,
    /// Bytes the driver filled, counted from the start of the buffer
    /// (so including `data_offset`).
    pub bytesused: u32,
    /// Where the frame starts in the buffer (multiplanar drivers may put
    /// a header first; 0 for single-planar).
    pub data_offset: u32,
    pub flags: u32,
    /// The buffer timestamp in nanoseconds (clock given by `flags`).
    pub timestamp_ns: u64,
    pub sequence: u32,
}

/// Why `dequeue` returned no buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DqError {
    /// Nothing within the timeout.
    Timeout,
    /// `poll` reported POLLERR / POLLHUP / POLLNVAL: the device is gone or
    /// not streaming.
    PollErr,
    /// An ioctl or poll failed with this errno.
    Os(i32),
}

/// What mmap streaming needs from a capture device. Implemented by
/// [`V4lDevice`] for real cameras and by scripted fakes in tests.
pub trait CaptureDevice: Send {
    /// Ask for a format; returns what the driver actually set (it may
    /// change any field). Boot only.
    fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat>;

    /// Ask for `fps` frames per second; returns the rate set as
    /// `(frames, seconds)`, or `None` when the driver cannot set it. Boot only.
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>>;

    /// The fourccs the device offers (VIDIOC_ENUM_FMT), in its order.
    /// Boot only.
    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>>;

    /// Request `n_buffers` mmap buffers and map them. Returns how many
    /// buffers the driver granted. Boot only.
    fn map_buffers(&mut self, n_buffers: u32) -> io::Result<u32>;

    /// Queue every mapped buffer and start streaming. Called once the
    /// pipeline is ready for frames (so no frame waits through the boot).
    /// Never allocates.
    fn stream_on(&mut self) -> io::Result<()>;

    /// Wait up to `timeout_ms` for a filled buffer and dequeue it.
    /// Never allocates.
    fn dequeue(&mut self, timeout_ms: u32) -> Result<Dequeued, DqError>;

    /// The mapped memory of buffer `index` (empty for an unknown index).
    /// Never allocates.
    fn buffer(&self, index: usize) -> &[u8];

    /// Give buffer `index` back to the driver. Never allocates (the error
    /// is an errno).
    fn queue(&mut self, index: usize) -> io::Result<()>;

    /// Stop streaming and release the buffers. Safe to call twice.
    fn stop(&mut self) -> io::Result<()>;
}

struct Mapped {
    ptr: *mut u8,
    len: usize,
}

/// A real V4L2 capture node, streaming through mmap buffers.
pub struct V4lDevice {
    _dev: v4l::Device,
    fd: c_int,
    bufs: Vec<Mapped>,
    streaming: bool,
    /// `V4L2_BUF_TYPE_VIDEO_CAPTURE` or `..._CAPTURE_MPLANE`.
    buf_type: u32,
}

// SAFETY: the raw pointers are mmap'ed regions owned exclusively by this
// value (unmapped in `stop`/drop); nothing else aliases them, so moving the
// owner to another thread is sound. `v4l::Device` itself is Send.
unsafe impl Send for V4lDevice {}

fn ioctl<T>(fd: c_int, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the kernel struct `request` expects (each call site
    // pairs them as in <linux/videodev2.h>) and lives for the call.
    unsafe { v4l2::ioctl(fd, request, arg as *mut T as *mut c_void) }
}

impl V4lDevice {
    /// Open `path` (non-blocking) and check it is a streaming video capture
    /// node. Boot.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dev = v4l::Device::with_path(path)?;
        let fd = dev.handle().fd();
        // SAFETY: v4l2_capability is plain data; all-zero is a valid value.
        let mut cap: v4l_sys::v4l2_capability = unsafe { std::mem::zeroed() };
        ioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut cap)?;
        let caps = if cap.capabilities & v4l_sys::V4L2_CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        let streaming = caps & v4l_sys::V4L2_CAP_STREAMING != 0;
        let buf_type = if streaming && caps & v4l_sys::V4L2_CAP_VIDEO_CAPTURE != 0 {
            CAPTURE
        } else if streaming && caps & v4l_sys::V4L2_CAP_VIDEO_CAPTURE_MPLANE != 0 {
            CAPTURE_MPLANE
        } else {
            let card = String::from_utf8_lossy(&cap.card);
            return Err(io::Error::other(format!(
                "'{}' is not a streaming video capture device (capabilities {caps:#x})",
                card.trim_end_matches('\0')
            )));
        };
        Ok(V4lDevice {
            _dev: dev,
            fd,
            bufs: Vec::new(),
            streaming: false,
            buf_type,
        })
    }

    /// True for a multiplanar node (`V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`).
    pub fn is_multiplanar(&self) -> bool {
        self.buf_type == CAPTURE_MPLANE
    }

    /// A buffer descriptor for `index`; for a multiplanar node it points
    /// at `planes`, which must outlive the ioctl it is passed to.
    fn buffer_desc(
        &self,
        index: u32,
        planes: &mut [v4l_sys::v4l2_plane; MAX_PLANES],
    ) -> v4l_sys::v4l2_buffer {
        // SAFETY: v4l2_buffer is plain data; all-zero is a valid value.
        let mut b: v4l_sys::v4l2_buffer = unsafe { std::mem::zeroed() };
        b.index = index;
        b.type_ = self.buf_type;
        b.memory = v4l_sys::v4l2_memory_V4L2_MEMORY_MMAP;
        if self.is_multiplanar() {
            b.m.planes = planes.as_mut_ptr();
            b.length = MAX_PLANES as u32;
        }
        b
    }

    fn release(&mut self) -> io::Result<()> {
        let mut first_err = None;
        for m in self.bufs.drain(..) {
            // SAFETY: `ptr`/`len` came from a successful mmap in `start` and
            // are unmapped once (drained).
            if let Err(e) = unsafe { v4l2::munmap(m.ptr as *mut c_void, m.len) } {
                first_err.get_or_insert(e);
            }
        }
        // SAFETY: plain data; all-zero is valid.
        let mut req: v4l_sys::v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = self.buf_type;
        req.memory = v4l_sys::v4l2_memory_V4L2_MEMORY_MMAP;
        if let Err(e) = ioctl(self.fd, vidioc::VIDIOC_REQBUFS, &mut req) {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl CaptureDevice for V4lDevice {
    fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat> {
        // SAFETY: plain data; all-zero is valid.
        let mut f: v4l_sys::v4l2_format = unsafe { std::mem::zeroed() };
        f.type_ = self.buf_type;
        if self.is_multiplanar() {
            // SAFETY: writing the `pix_mp` member of the zeroed union, the
            // one VIDEO_CAPTURE_MPLANE uses.
            let mp = unsafe { &mut f.fmt.pix_mp };
            mp.width = want.width;
            mp.height = want.height;
            mp.pixelformat = u32::from_le_bytes(want.fourcc);
            mp.field = v4l_sys::v4l2_field_V4L2_FIELD_NONE;
            mp.num_planes = 1;
            mp.plane_fmt[0].bytesperline = want.bytesperline;
            ioctl(self.fd, vidioc::VIDIOC_S_FMT, &mut f)?;
            // SAFETY: the driver filled `pix_mp` for a VIDEO_CAPTURE_MPLANE
            // format.
            let got = unsafe { f.fmt.pix_mp };
            if got.num_planes != 1 {
                return Err(io::Error::other(format!(
                    "the driver set {} with {} planes; perceptd reads formats held in one buffer",
                    String::from_utf8_lossy(&got.pixelformat.to_le_bytes()),
                    got.num_planes
                )));
            }
            return Ok(DevFormat {
                fourcc: got.pixelformat.to_le_bytes(),
                width: got.width,
                height: got.height,
                bytesperline: got.plane_fmt[0].bytesperline,
                sizeimage: got.plane_fmt[0].sizeimage,
            });
        }
        // SAFETY: writing the `pix` member of the zeroed union, the one
        // VIDEO_CAPTURE uses.
        let pix = unsafe { &mut f.fmt.pix };
        pix.width = want.width;
        pix.height = want.height;
        pix.pixelformat = u32::from_le_bytes(want.fourcc);
        pix.field = v4l_sys::v4l2_field_V4L2_FIELD_NONE;
        pix.bytesperline = want.bytesperline;
        ioctl(self.fd, vidioc::VIDIOC_S_FMT, &mut f)?;
        // SAFETY: the driver filled `pix` for a VIDEO_CAPTURE format.
        let got = unsafe { f.fmt.pix };
        Ok(DevFormat {
            fourcc: got.pixelformat.to_le_bytes(),
            width: got.width,
            height: got.height,
            bytesperline: got.bytesperline,
            sizeimage: got.sizeimage,
        })
    }

    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>> {
        let mut out = Vec::new();
        // A driver lists a few dozen at most; the bound keeps a broken one
        // from looping forever.
        for index in 0..256 {
            // SAFETY: plain data; all-zero is valid.
            let mut d: v4l_sys::v4l2_fmtdesc = unsafe { std::mem::zeroed() };
            d.index = index;
            d.type_ = self.buf_type;
            match ioctl(self.fd, vidioc::VIDIOC_ENUM_FMT, &mut d) {
                Ok(()) => out.push(d.pixelformat.to_le_bytes()),
                // EINVAL past the last one.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>> {
        // SAFETY: plain data; all-zero is valid.
        let mut p: v4l_sys::v4l2_streamparm = unsafe { std::mem::zeroed() };
        p.type_ = self.buf_type;
        ioctl(self.fd, vidioc::VIDIOC_G_PARM, &mut p)?;
        // SAFETY: G_PARM filled the `capture` member (VIDEO_CAPTURE and
        // VIDEO_CAPTURE_MPLANE both use it).
        let cap = unsafe { &mut p.parm.capture };
        if cap.capability & v4l_sys::V4L2_CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        cap.timeperframe = v4l_sys::v4l2_fract {
            numerator: 1,
            denominator: fps,
        };
        ioctl(self.fd, vidioc::VIDIOC_S_PARM, &mut p)?;
        // SAFETY: S_PARM wrote back the `capture` member.
        let t = unsafe { p.parm.capture.timeperframe };
        Ok((t.numerator != 0).then_some((t.denominator, t.numerator)))
    }

    fn map_buffers(&mut self, n_buffers: u32) -> io::Result<u32> {
        if !self.bufs.is_empty() || self.streaming {
            self.stop()?;
        }
        // SAFETY: plain data; all-zero is valid.
        let mut req: v4l_sys::v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = n_buffers;
        req.type_ = self.buf_type;
        req.memory = v4l_sys::v4l2_memory_V4L2_MEMORY_MMAP;
        ioctl(self.fd, vidioc::VIDIOC_REQBUFS, &mut req)?;
        self.bufs.reserve_exact(req.count as usize);
        for index in 0..req.count {
            // SAFETY: v4l2_plane is plain data; all-zero is valid.
            let mut planes: [v4l_sys::v4l2_plane; MAX_PLANES] = unsafe { std::mem::zeroed() };
            let mut b = self.buffer_desc(index, &mut planes);
            ioctl(self.fd, vidioc::VIDIOC_QUERYBUF, &mut b)?;
            let (len, offset) = if self.is_multiplanar() {
                // SAFETY: QUERYBUF filled `planes[0]` of an MMAP buffer, so
                // `mem_offset` is the offset to map.
                (planes[0].length as usize, unsafe { planes[0].m.mem_offset })
            } else {
                // SAFETY: QUERYBUF succeeded for an MMAP buffer, so
                // `m.offset` is the offset to map.
                (b.length as usize, unsafe { b.m.offset })
            };
            // SAFETY: mapping `len` bytes of the device at the offset the
            // driver gave; the result is checked by the wrapper.
            let ptr = unsafe {
                v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd,
                    offset as libc::off_t,
                )
            }?;
            self.bufs.push(Mapped {
                ptr: ptr as *mut u8,
                len,
            });
        }
        Ok(req.count)
    }

    fn stream_on(&mut self) -> io::Result<()> {
        for index in 0..self.bufs.len() {
            self.queue(index)?;
        }
        let mut typ = self.buf_type;
        ioctl(self.fd, vidioc::VIDIOC_STREAMON, &mut typ)?;
        self.streaming = true;
        Ok(())
    }

    fn dequeue(&mut self, timeout_ms: u32) -> Result<Dequeued, DqError> {
        let deadline = monotonic_ns().saturating_add(timeout_ms as u64 * 1_000_000);
        loop {
            let left_ms = deadline.saturating_sub(monotonic_ns()).div_ceil(1_000_000);
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // In slices, so that a stop request (SIGTERM) is seen within one.
            let slice_ms = left_ms.min(crate::stop::SLICE.as_millis() as u64);
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, slice_ms as c_int) };
            if n < 0 {
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if errno == libc::EINTR {
                    continue;
                }
                return Err(DqError::Os(errno));
            }
            if n == 0 {
                if crate::stop::requested() || monotonic_ns() >= deadline {
                    return Err(DqError::Timeout);
                }
                continue;
            }
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(DqError::PollErr);
            }
            // SAFETY: v4l2_plane is plain data; all-zero is valid.
            let mut planes: [v4l_sys::v4l2_plane; MAX_PLANES] = unsafe { std::mem::zeroed() };
            let mut b = self.buffer_desc(0, &mut planes);
            match ioctl(self.fd, vidioc::VIDIOC_DQBUF, &mut b) {
                Ok(()) => {
                    let ts = b.timestamp;
                    let (bytesused, data_offset) = if self.is_multiplanar() {
                        (planes[0].bytesused, planes[0].data_offset)
                    } else {
                        (b.bytesused, 0)
                    };
                    return Ok(Dequeued {
                        index: b.index as usize,
                        bytesused,
                        data_offset,
                        flags: b.flags,
                        timestamp_ns: (ts.tv_sec.max(0) as u64)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(ts.tv_usec.max(0) as u64 * 1000),
                        sequence: b.sequence,
                    });
                }
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    // Readable but nothing to dequeue (raced): wait again.
                    libc::EAGAIN | libc::EINTR => {
                        if monotonic_ns() >= deadline {
                            return Err(DqError::Timeout);
                        }
                    }
                    errno => return Err(DqError::Os(errno)),
                },
            }
        }
    }

    fn buffer(&self, index: usize) -> &[u8] {
        match self.bufs.get(index) {
            // SAFETY: the region is mapped (readable) until `stop`, which
            // needs `&mut self`, so it outlives this borrow.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr, m.len) },
            None => &[],
        }
    }

    fn queue(&mut self, index: usize) -> io::Result<()> {
        // SAFETY: v4l2_plane is plain data; all-zero is valid.
        let mut planes: [v4l_sys::v4l2_plane; MAX_PLANES] = unsafe { std::mem::zeroed() };
        let mut b = self.buffer_desc(index as u32, &mut planes);
        ioctl(self.fd, vidioc::VIDIOC_QBUF, &mut b)
    }

    fn stop(&mut self) -> io::Result<()> {
        let mut res = Ok(());
        if self.streaming {
            self.streaming = false;
            let mut typ = self.buf_type;
            if let Err(e) = ioctl(self.fd, vidioc::VIDIOC_STREAMOFF, &mut typ) {
                if e.raw_os_error() != Some(libc::ENODEV) {
                    res = Err(e);
                }
            }
        }
        if !self.bufs.is_empty() {
            if let Err(e) = self.release() {
                if e.raw_os_error() != Some(libc::ENODEV) && res.is_ok() {
                    res = Err(e);
                }
            }
        }
        res
    }
}

impl Drop for V4lDevice {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::warn!("V4L2 device (fd {}): stopping on drop failed: {e}", self.fd);
        }
    }
}
