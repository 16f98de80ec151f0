//! `JpegCam`, a test double at the hardware boundary: a `CaptureDevice`
//! (the thin layer the real V4L2 ioctls sit under) that behaves as an
//! MJPEG USB camera's driver — it offers a list of fourccs
//! (VIDIOC_ENUM_FMT), sets `sizeimage` for MJPEG, maps buffers of that
//! size and hands over real JPEG bytes with `bytesused` set (optionally
//! padded after the EOI, as cameras do). Everything above it
//! (`V4l2Source`, the JPEG decoder, `record`) is the real code.
//!
//! `dequeue` copies into buffers mapped at boot and pops a pre-built
//! script, so it allocates nothing itself (the allocation tests rely on
//! that).

use perceptd::source::v4l2::dev::{
    CaptureDevice, Dequeued, DevFormat, DqError, BUF_FLAG_TIMESTAMP_MONOTONIC,
};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// One thing the camera does on a dequeue.
#[derive(Debug, Clone)]
pub enum Shot {
    /// JPEG `i` of the camera's list.
    Jpeg(usize),
    /// These bytes, as the driver filled them (a cut or corrupt JPEG).
    Bytes(Vec<u8>),
    /// A buffer with `bytesused` 0.
    Empty,
    /// No frame: waits out the timeout in slices that see a stop request
    /// (as the real device's poll does), then times out.
    Stall,
}

pub struct JpegCam {
    /// What VIDIOC_ENUM_FMT lists.
    pub offers: Vec<[u8; 4]>,
    /// The `sizeimage` the driver sets for MJPEG.
    pub sizeimage: u32,
    pub jpegs: Vec<Vec<u8>>,
    pub script: VecDeque<Shot>,
    /// With the script played out: cycle through `jpegs` for ever
    /// (`true`), or stall.
    pub endless: bool,
    /// Zero bytes after each JPEG's EOI, counted in `bytesused`.
    pub pad: usize,
    /// A frame period (ms) for the scripted shots, as a real camera's: 0
    /// delivers them as fast as they are dequeued, so on a loaded machine
    /// a live pipeline may drop one for want of a free slot before it is
    /// looked at.
    pub script_period_ms: u64,
    /// `map_buffers` calls (a refused format must not get to one).
    pub mapped: Arc<AtomicU32>,
    fmt: Option<DevFormat>,
    bufs: Vec<Vec<u8>>,
    queued: Vec<bool>,
    next: usize,
    seq: u32,
}

impl JpegCam {
    pub fn new(jpegs: Vec<Vec<u8>>, script: Vec<Shot>) -> JpegCam {
        let sizeimage = jpegs.iter().map(Vec::len).max().unwrap_or(0) as u32 + 4096;
        JpegCam {
            offers: vec![*b"YUYV", *b"MJPG"],
            sizeimage,
            jpegs,
            script: script.into(),
            endless: false,
            pad: 0,
            script_period_ms: 0,
            mapped: Arc::new(AtomicU32::new(0)),
            fmt: None,
            bufs: Vec::new(),
            queued: Vec::new(),
            next: 0,
            seq: 0,
        }
    }
}

/// The JPEGs of a raw MJPEG stream, split where each one ends.
pub fn split_jpegs(stream: &[u8]) -> Vec<Vec<u8>> {
    use perceptd::source::mjpeg::{jpeg_extent, Extent};
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        match jpeg_extent(&stream[at..]) {
            Extent::Complete(n) => {
                out.push(stream[at..at + n].to_vec());
                at += n;
            }
            e => panic!("not a clean MJPEG stream at {at}: {e:?}"),
        }
    }
    out
}

impl CaptureDevice for JpegCam {
    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>> {
        Ok(self.offers.clone())
    }

    fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat> {
        let fourcc = if self.offers.contains(&want.fourcc) {
            want.fourcc
        } else {
            self.offers[0]
        };
        let got = if &fourcc == b"MJPG" || &fourcc == b"JPEG" {
            DevFormat {
                fourcc,
                bytesperline: 0,
                sizeimage: self.sizeimage,
                ..want
            }
        } else {
            DevFormat {
                fourcc,
                bytesperline: want.width * 2,
                sizeimage: want.width * want.height * 2,
                ..want
            }
        };
        self.fmt = Some(got);
        Ok(got)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>> {
        Ok(Some((fps, 1)))
    }

    fn map_buffers(&mut self, n: u32) -> io::Result<u32> {
        self.mapped.fetch_add(1, Ordering::SeqCst);
        let size = self.fmt.map_or(0, |f| f.sizeimage as usize);
        self.bufs = vec![vec![0; size]; n as usize];
        self.queued = vec![false; n as usize];
        Ok(n)
    }

    fn stream_on(&mut self) -> io::Result<()> {
        self.queued.iter_mut().for_each(|q| *q = true);
        Ok(())
    }

    fn dequeue(&mut self, timeout_ms: u32) -> Result<Dequeued, DqError> {
        let shot = match self.script.pop_front() {
            Some(s) => {
                perceptd::stop::sleep(std::time::Duration::from_millis(self.script_period_ms));
                s
            }
            None if self.endless && !self.jpegs.is_empty() => {
                self.next += 1;
                Shot::Jpeg((self.next - 1) % self.jpegs.len())
            }
            None => Shot::Stall,
        };
        if let Shot::Stall = shot {
            perceptd::stop::sleep(std::time::Duration::from_millis(timeout_ms as u64));
            return Err(DqError::Timeout);
        }
        let index = self
            .queued
            .iter()
            .position(|&q| q)
            .ok_or(DqError::PollErr)?;
        let payload: &[u8] = match &shot {
            Shot::Jpeg(i) => &self.jpegs[*i],
            Shot::Bytes(b) => b,
            Shot::Empty | Shot::Stall => &[],
        };
        let buf = &mut self.bufs[index];
        let n = payload.len().min(buf.len());
        buf[..n].copy_from_slice(&payload[..n]);
        let pad = if payload.is_empty() {
            0
        } else {
            self.pad.min(buf.len() - n)
        };
        buf[n..n + pad].fill(0);
        self.queued[index] = false;
        self.seq += 1;
        Ok(Dequeued {
            index,
            bytesused: (n + pad) as u32,
            data_offset: 0,
            flags: BUF_FLAG_TIMESTAMP_MONOTONIC,
            timestamp_ns: self.seq as u64 * 1_000_000,
            sequence: self.seq,
        })
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
        Ok(())
    }
}
