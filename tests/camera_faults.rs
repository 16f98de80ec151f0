//! Camera faults, driven through a scripted fake camera at the device
//! boundary. `FakeCam` is the hardware-boundary test double: it implements
//! `CaptureDevice` (the thin layer the real `v4l` ioctls sit under) and
//! plays a script of driver answers — frames, error-flagged and short
//! buffers, EINTR / EAGAIN, stalls, POLLERR, unplugs (with refused
//! re-opens), a replug that comes back with another size, fewer buffers
//! granted than asked. Everything above it (`V4l2Source`, the pipeline) is
//! the real code.
//!
//! Each test shows the documented behaviour, that nothing panics, and that
//! every buffer is accounted for at the end: each closed device was stopped
//! (STREAMOFF returns its buffers) and the live one holds all of its
//! buffers queued; the pipeline test also finds every ring slot back in the
//! free queue.

mod common;

use common::*;
use perceptd::boot::{boot, Overrides};
use perceptd::source::v4l2::dev::{
    CaptureDevice, Dequeued, DevFormat, DqError, BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MONOTONIC,
};
use perceptd::source::v4l2::{Absent, OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::{Source, SourceError};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
enum Step {
    Frame,
    /// A buffer flagged V4L2_BUF_FLAG_ERROR.
    Flagged,
    /// A buffer one byte short of a frame.
    Short,
    /// DQBUF (or poll) fails with this errno.
    Os(i32),
    PollErr,
    /// No frame within the poll timeout.
    Stall,
    /// ENODEV now; the next `refused` opens fail (ENOENT), and the `resized`
    /// opens after them come back with half the height.
    Unplug {
        refused: u32,
        resized: u32,
    },
}

/// What happened to one opened device.
#[derive(Debug, Default, Clone)]
struct DevLog {
    stopped: bool,
    closed: bool,
    buffers: usize,
}

/// The physical camera, shared by every open of it.
struct World {
    script: VecDeque<Step>,
    refused: u32,
    resized: u32,
    opens: u32,
    grant: Option<u32>,
    /// Height the driver sets at every open (0: as asked).
    boot_height: u32,
    seq: u32,
    timeouts_asked: Vec<u32>,
    devices: Vec<DevLog>,
}

struct FakeCam {
    world: Arc<Mutex<World>>,
    id: usize,
    resized: bool,
    fmt: Option<DevFormat>,
    bufs: Vec<Vec<u8>>,
    queued: Vec<bool>,
}

fn world(script: Vec<Step>) -> Arc<Mutex<World>> {
    Arc::new(Mutex::new(World {
        script: script.into(),
        refused: 0,
        resized: 0,
        opens: 0,
        grant: None,
        boot_height: 0,
        seq: 0,
        timeouts_asked: Vec::new(),
        devices: Vec::new(),
    }))
}

fn opener(w: &Arc<Mutex<World>>) -> Box<dyn FnMut() -> io::Result<FakeCam> + Send> {
    let w = Arc::clone(w);
    Box::new(move || {
        let mut g = w.lock().unwrap();
        g.opens += 1;
        if g.refused > 0 {
            g.refused -= 1;
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let resized = g.resized > 0;
        if resized {
            g.resized -= 1;
        }
        g.devices.push(DevLog::default());
        Ok(FakeCam {
            world: Arc::clone(&w),
            id: g.devices.len() - 1,
            resized,
            fmt: None,
            bufs: Vec::new(),
            queued: Vec::new(),
        })
    })
}

fn fill(seq: u32, i: usize) -> u8 {
    (seq as usize * 31 + i % 7) as u8
}

impl CaptureDevice for FakeCam {
    fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat> {
        let g = self.world.lock().unwrap();
        let mut got = want;
        if g.boot_height != 0 {
            got.height = g.boot_height;
        }
        if self.resized {
            got.height /= 2;
        }
        let bpp = match &got.fourcc {
            b"RGB3" => 3,
            b"GREY" => 1,
            _ => 2,
        };
        got.bytesperline = got.width * bpp;
        got.sizeimage = got.bytesperline * got.height;
        self.fmt = Some(got);
        Ok(got)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>> {
        Ok(Some((fps, 1)))
    }

    fn map_buffers(&mut self, n: u32) -> io::Result<u32> {
        let mut g = self.world.lock().unwrap();
        let n = g.grant.unwrap_or(n);
        let size = self.fmt.map_or(0, |f| f.sizeimage as usize);
        self.bufs = vec![vec![0; size]; n as usize];
        self.queued = vec![true; n as usize];
        g.devices[self.id].buffers = n as usize;
        Ok(n)
    }

    fn stream_on(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn dequeue(&mut self, timeout_ms: u32) -> Result<Dequeued, DqError> {
        let mut g = self.world.lock().unwrap();
        g.timeouts_asked.push(timeout_ms);
        let step = g.script.pop_front().unwrap_or(Step::Frame);
        let (flags, short) = match step {
            Step::Frame => (BUF_FLAG_TIMESTAMP_MONOTONIC, false),
            Step::Flagged => (BUF_FLAG_TIMESTAMP_MONOTONIC | BUF_FLAG_ERROR, false),
            Step::Short => (BUF_FLAG_TIMESTAMP_MONOTONIC, true),
            Step::Os(e) => return Err(DqError::Os(e)),
            Step::PollErr => return Err(DqError::PollErr),
            Step::Stall => return Err(DqError::Timeout),
            Step::Unplug { refused, resized } => {
                g.refused = refused;
                g.resized = resized;
                return Err(DqError::Os(libc::ENODEV));
            }
        };
        let index = self
            .queued
            .iter()
            .position(|&q| q)
            .ok_or(DqError::Timeout)?;
        self.queued[index] = false;
        g.seq += 1;
        let seq = g.seq;
        for (i, b) in self.bufs[index].iter_mut().enumerate() {
            *b = fill(seq, i);
        }
        let len = self.bufs[index].len() as u32;
        Ok(Dequeued {
            index,
            bytesused: if short { len - 1 } else { len },
            data_offset: 0,
            flags,
            timestamp_ns: 1_000_000 + seq as u64,
            sequence: seq,
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

    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>> {
        Ok(vec![*b"YUYV", *b"GREY", *b"RGB3"])
    }
    fn stop(&mut self) -> io::Result<()> {
        // STREAMOFF: the driver gives every buffer back.
        self.queued.iter_mut().for_each(|q| *q = true);
        if let Ok(mut g) = self.world.lock() {
            g.devices[self.id].stopped = true;
        }
        Ok(())
    }
}

impl Drop for FakeCam {
    fn drop(&mut self) {
        if let Ok(mut g) = self.world.lock() {
            g.devices[self.id].closed = true;
        }
    }
}

fn cfg(width: usize, height: usize) -> V4l2Config {
    V4l2Config {
        device: "/dev/video-fake".into(),
        format: perceptd::frame::PixelFormat::Grey.into(),
        width,
        height,
        fps: 30,
        buffers: 4,
        timeout_ms: 100,
        on_adjust: OnAdjust::Adapt,
        absent: Absent::Fail,
        reconnect_max_ms: 100,
        max_memory_mb: 256,
    }
}

fn open(c: &V4l2Config, w: &Arc<Mutex<World>>) -> V4l2Source<FakeCam> {
    V4l2Source::with_opener(c, opener(w), &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

/// Every buffer accounted for: each closed device was stopped first, and
/// the live one (if up) has all its buffers queued with the driver.
fn assert_accounted(src: &V4l2Source<FakeCam>, w: &Arc<Mutex<World>>) {
    let g = w.lock().unwrap();
    for (i, d) in g.devices.iter().enumerate() {
        if d.closed {
            assert!(d.stopped, "device {i} closed without STREAMOFF: {d:?}");
        }
    }
    if let Some(dev) = src.device() {
        assert!(
            dev.queued.iter().all(|&q| q),
            "a buffer of the live device is neither queued nor released: {:?}",
            dev.queued
        );
        assert_eq!(dev.queued.len(), g.devices[dev.id].buffers);
    }
}

/// Calls `next_frame` until `want` frames arrived (at most `max_calls`);
/// returns the errors seen, in order.
fn pump(src: &mut V4l2Source<FakeCam>, want: usize, max_calls: usize) -> Vec<SourceError> {
    let mut dst = vec![0u8; src.desc().bytes()];
    let (mut got, mut errors) = (0, Vec::new());
    for _ in 0..max_calls {
        match src.next_frame(&mut dst) {
            Ok(st) => {
                let seq = (st.source_ns.unwrap() - 1_000_000) as u32;
                assert!(
                    dst.iter().enumerate().all(|(i, &b)| b == fill(seq, i)),
                    "frame {seq} copied wrong"
                );
                got += 1;
                if got == want {
                    return errors;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    panic!("only {got} of {want} frames in {max_calls} calls; errors {errors:?}");
}

fn is_reconnecting(e: &SourceError) -> bool {
    matches!(e, SourceError::Reconnecting { device } if device == "/dev/video-fake")
}

#[test]
fn unplug_mid_stream_is_noticed_at_once_and_the_camera_reopened() {
    let w = world(vec![
        Step::Frame,
        Step::Frame,
        Step::Unplug {
            refused: 3,
            resized: 0,
        },
    ]);
    let mut src = open(&cfg(8, 8), &w);
    let mut dst = vec![0u8; 64];
    src.next_frame(&mut dst).unwrap();
    src.next_frame(&mut dst).unwrap();
    // The very call that meets ENODEV reports it: no wait for a timeout.
    let e = src.next_frame(&mut dst).unwrap_err();
    assert!(is_reconnecting(&e), "{e}");
    assert!(
        !src.is_up() && src.device().is_none(),
        "the lost device is closed"
    );
    {
        let g = w.lock().unwrap();
        assert!(g.devices[0].stopped && g.devices[0].closed);
    }
    let errors = pump(&mut src, 3, 50);
    assert!(errors.iter().all(is_reconnecting), "{errors:?}");
    let f = src.faults();
    assert_eq!(
        (f.lost, f.reconnect_failures, f.reconnects),
        (1, 3, 1),
        "{f:?}"
    );
    assert_eq!(w.lock().unwrap().opens, 1 + 3 + 1);
    assert!(src.is_up());
    assert_accounted(&src, &w);
}

#[test]
fn pollerr_and_failing_ioctls_are_a_lost_camera_too() {
    let w = world(vec![Step::PollErr, Step::Frame, Step::Os(libc::EBADF)]);
    let mut src = open(&cfg(8, 8), &w);
    let errors = pump(&mut src, 3, 20);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(is_reconnecting));
    let f = src.faults();
    assert_eq!((f.lost, f.reconnects, f.reconnect_failures), (2, 2, 0));
    assert_eq!(w.lock().unwrap().devices.len(), 3);
    assert_accounted(&src, &w);
}

#[test]
fn eintr_and_eagain_storms_are_retried_without_losing_the_camera() {
    let mut script = vec![Step::Frame];
    for i in 0..400 {
        script.push(Step::Os(if i % 2 == 0 {
            libc::EINTR
        } else {
            libc::EAGAIN
        }));
    }
    script.push(Step::Frame);
    let w = world(script);
    let mut src = open(&cfg(8, 8), &w);
    let errors = pump(&mut src, 2, 2);
    assert!(errors.is_empty(), "{errors:?}");
    let f = src.faults();
    assert_eq!((f.retries, f.lost, f.stalls), (400, 0, 0), "{f:?}");
    // Retries wait only for what is left of the one poll timeout.
    let g = w.lock().unwrap();
    assert!(
        g.timeouts_asked.iter().all(|&t| t <= 100),
        "{:?}",
        g.timeouts_asked
    );
    drop(g);
    assert_accounted(&src, &w);
}

#[test]
fn a_stall_is_noticed_within_one_poll_timeout_and_reopened() {
    let w = world(vec![Step::Frame, Step::Stall, Step::Frame]);
    let mut src = open(&cfg(8, 8), &w);
    let errors = pump(&mut src, 3, 10);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(is_reconnecting(&errors[0]));
    let f = src.faults();
    assert_eq!((f.stalls, f.lost, f.reconnects), (1, 0, 1), "{f:?}");
    // The stall was one poll with the configured timeout.
    assert_eq!(w.lock().unwrap().timeouts_asked[1], 100);
    assert_accounted(&src, &w);
}

#[test]
fn flagged_and_short_buffers_are_dropped_counted_and_requeued() {
    let w = world(vec![
        Step::Flagged,
        Step::Short,
        Step::Os(libc::EIO),
        Step::Frame,
    ]);
    let mut src = open(&cfg(8, 8), &w);
    let errors = pump(&mut src, 1, 4);
    let reasons: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            SourceError::BadFrame { reason, .. } => *reason,
            other => panic!("{other}"),
        })
        .collect();
    assert!(reasons[0].contains("V4L2_BUF_FLAG_ERROR"), "{reasons:?}");
    assert!(reasons[1].contains("fewer bytes"), "{reasons:?}");
    assert!(reasons[2].contains("EIO"), "{reasons:?}");
    assert_eq!(src.faults().bad_frames, 3);
    assert_eq!(src.faults().lost, 0);
    assert_accounted(&src, &w);
}

#[test]
fn a_camera_that_comes_back_with_another_size_is_not_accepted() {
    let w = world(vec![
        Step::Frame,
        Step::Unplug {
            refused: 0,
            resized: 2,
        },
    ]);
    let mut src = open(&cfg(8, 8), &w);
    let errors = pump(&mut src, 2, 20);
    assert!(errors.iter().all(is_reconnecting), "{errors:?}");
    let f = src.faults();
    // Two re-opens negotiated 8x4 and were refused (and stopped); the third
    // gave the booted 8x8.
    assert_eq!(
        (f.lost, f.reconnect_failures, f.reconnects),
        (1, 2, 1),
        "{f:?}"
    );
    assert_eq!(src.desc().height, 8);
    assert_accounted(&src, &w);
}

#[test]
fn a_format_the_driver_adjusts_at_boot_is_adapted_to_or_refused() {
    let w = world(vec![]);
    w.lock().unwrap().boot_height = 6;
    let mut src = open(&cfg(8, 8), &w);
    assert_eq!((src.desc().width, src.desc().height), (8, 6));
    pump(&mut src, 3, 3);
    assert_accounted(&src, &w);

    let w = world(vec![]);
    w.lock().unwrap().boot_height = 6;
    let c = V4l2Config {
        on_adjust: OnAdjust::Refuse,
        ..cfg(8, 8)
    };
    let e = V4l2Source::with_opener(&c, opener(&w), &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("GREY 8x8") && e.contains("GREY 8x6"), "{e}");
    assert!(w.lock().unwrap().devices[0].closed);
}

#[test]
fn fewer_buffers_than_asked_still_stream() {
    let w = world(vec![
        Step::Frame,
        Step::Unplug {
            refused: 0,
            resized: 0,
        },
    ]);
    w.lock().unwrap().grant = Some(2);
    let mut src = open(&cfg(8, 8), &w);
    assert!(
        src.describe().contains("2 mmap buffers"),
        "{}",
        src.describe()
    );
    pump(&mut src, 10, 12);
    assert_eq!(src.device().unwrap().queued.len(), 2);
    assert_accounted(&src, &w);
}

#[test]
fn absent_camera_at_boot_waits_or_fails_per_config() {
    let w = world(vec![]);
    w.lock().unwrap().refused = 3;
    let c = V4l2Config {
        absent: Absent::Wait,
        ..cfg(8, 8)
    };
    let mut waits = Vec::new();
    let mut src = V4l2Source::with_opener(&c, opener(&w), &mut |ms| waits.push(ms)).unwrap();
    // Backoff doubles from 50 ms, capped at reconnect_max_ms (100).
    assert_eq!(waits, [50, 100, 100]);
    pump(&mut src, 1, 1);

    let w = world(vec![]);
    w.lock().unwrap().refused = 1;
    let e = V4l2Source::with_opener(&cfg(8, 8), opener(&w), &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("/dev/video-fake") && e.contains("cannot open V4L2 camera"),
        "{e}"
    );
}

/// The whole pipeline on the fake camera through every fault: the run ends
/// normally, each fault is counted, every ring slot is back in the free
/// queue and every frame is processed or counted as dropped.
#[test]
fn pipeline_survives_every_fault_and_returns_every_slot() {
    let dir = temp_dir("camera-faults");
    let config_text = "[source]\nkind = \"synthetic\"\nformat = \"rgb24\"\n\
         [model]\npath = \"tests/fixtures/exports/yolov8-w0125-static/model.onnx\"\nthreads = 1\n\
         [pipeline]\nring_slots = 4\n[metrics]\ninterval_s = 0\n";
    let cfg_pipeline = config(config_text);
    let mut script = vec![Step::Frame, Step::Frame, Step::Flagged, Step::Frame];
    script.extend([Step::Os(libc::EINTR); 5]);
    script.extend([
        Step::Frame,
        Step::Unplug {
            refused: 2,
            resized: 1,
        },
        Step::Frame,
        Step::Short,
        Step::Stall,
        Step::Frame,
        Step::PollErr,
    ]);
    let w = world(script);
    w.lock().unwrap().grant = Some(3);
    let cam_cfg = V4l2Config {
        format: perceptd::frame::PixelFormat::Rgb24.into(),
        ..cfg(640, 480)
    };
    let cam = open(&cam_cfg, &w);
    let ov = Overrides {
        frames: Some(60),
        output: Some(dir.join("out.jsonl").display().to_string()),
        ..Default::default()
    };
    let mut p = boot(&cfg_pipeline, &ov).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.source.desc(), cam.desc());
    p.source = Box::new(cam);
    let slots = p.ring_slots;
    let report = p.run(Arc::new(AtomicBool::new(false)));
    let c = report.metrics.counters().values();
    assert!(report.source_end.is_none(), "{:?}", report.source_end);
    assert_eq!(report.slots_free_at_end, slots, "a ring slot went missing");
    // --frames counts processed frames, not captured ones.
    assert_eq!(c.processed, 60, "{c:?}");
    // Bad frames never entered the ring; every frame that did is processed,
    // dropped for want of a slot, or was still in flight when the 60th was
    // published (at most one per ring slot; returned, not published).
    let accounted = c.processed + c.dropped_no_slot + c.dropped_superseded;
    assert!(
        accounted <= c.frames_in && c.frames_in <= accounted + slots as u64,
        "{c:?}"
    );
    assert_eq!(c.dropped_bad_frame, 2, "{c:?}");
    assert_eq!((c.camera_lost, c.camera_stalls), (2, 1), "{c:?}");
    assert_eq!(c.camera_reconnects, 3, "{c:?}");
    assert_eq!(c.camera_reconnect_failures, 3, "{c:?}");
    assert_eq!(c.camera_retries, 5, "{c:?}");
    assert!(c.processed > 0);
    let mut buf = [0u8; 1024];
    let line = report.metrics.write_summary(&mut buf, report.elapsed_s);
    assert!(
        line.contains("camera lost 2 stalls 1 reconnects 3 (failed 3) retries 5"),
        "{line}"
    );
    assert_eq!(read_lines(&dir.join("out.jsonl")).len() as u64, c.processed);
}
