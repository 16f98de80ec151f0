//! Unit tests of [`super::V4l2Source`] against a scripted fake device (a
//! test double at the hardware boundary: the real driver is exercised by
//! `scripts/vivid-check.sh` under QEMU).

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
    /// VIDIOC_STREAMON calls.
    streams_on: u32,
    /// Bytes before the frame in each buffer (a multiplanar driver's
    /// `data_offset`).
    data_offset: u32,
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
        streams_on: 0,
        data_offset: 0,
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

    fn map_buffers(&mut self, n: u32) -> io::Result<u32> {
        let n = self.grant.unwrap_or(n);
        let size = self.fmt.map_or(0, |f| f.sizeimage as usize) + self.data_offset as usize;
        self.bufs = vec![vec![0; size]; n as usize];
        self.queued = vec![false; n as usize];
        Ok(n)
    }

    fn stream_on(&mut self) -> io::Result<()> {
        self.queued.iter_mut().for_each(|q| *q = true);
        self.streams_on += 1;
        Ok(())
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
                    data_offset: self.data_offset,
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

    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>> {
        Ok(vec![*b"YUYV", *b"UYVY", *b"NV12", *b"GREY", *b"RGB3"])
    }
    fn stop(&mut self) -> io::Result<()> {
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn cfg(format: PixelFormat, width: usize, height: usize) -> V4l2Config {
    V4l2Config {
        device: "/dev/video-fake".into(),
        format: format.into(),
        width,
        height,
        fps: 30,
        buffers: 4,
        timeout_ms: 250,
        on_adjust: OnAdjust::Adapt,
        absent: Absent::Fail,
        reconnect_max_ms: 200,
        max_memory_mb: 256,
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
        src.device().unwrap().queued.iter().all(|&q| q),
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
    assert!(src.device().unwrap().queued.iter().all(|&q| q));
    assert_eq!(src.device().unwrap().timeouts_asked, [250, 250, 250]);
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
        e.contains("YUYV 1920x1080") && e.contains("YUYV 640x480") && e.contains("/dev/video-fake"),
        "{e}"
    );

    // (A driver that sets MJPG is adapted to: see tests/mjpeg_camera.rs.)
    let mut f = fake(vec![]);
    f.adjust = |w| DevFormat {
        fourcc: *b"H264",
        ..w
    };
    let e = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 64, 48), f)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("H264") && e.contains("cannot read"), "{e}");
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
            src.device().unwrap().queued.iter().all(|&q| q),
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

#[test]
fn streaming_starts_on_the_first_frame_not_at_boot() {
    let c = cfg(PixelFormat::Grey, 4, 4);
    let mut src = V4l2Source::with_device(&c, fake(vec![frame(1, 0)])).unwrap();
    let dev = src.device().unwrap();
    assert_eq!(dev.streams_on, 0, "streaming started at boot");
    assert!(dev.queued.iter().all(|&q| !q), "buffers queued at boot");
    src.skip_frame().unwrap();
    assert_eq!(src.device().unwrap().streams_on, 1);
    let _ = src.skip_frame();
    assert_eq!(src.device().unwrap().streams_on, 1, "STREAMON twice");
}

#[test]
fn timestamps_ahead_of_the_dequeue_are_clamped_to_it() {
    let c = cfg(PixelFormat::Grey, 4, 2);
    let ahead = Step::Frame {
        fill: 0,
        bytesused: None,
        flags: dev::BUF_FLAG_TIMESTAMP_MONOTONIC,
        ts: monotonic_ns() + 40_000_000,
        seq: 0,
    };
    let mut src = V4l2Source::with_device(&c, fake(vec![ahead, frame(2, 1)])).unwrap();
    let st = src.skip_frame().unwrap();
    let after = monotonic_ns();
    assert!(
        st.capture_ns <= after,
        "capture time later than the dequeue"
    );
    assert!(
        st.source_ns.unwrap() > after,
        "driver stamp not kept as source_ns"
    );
    let (n, max_ns) = src.stamps_ahead();
    assert_eq!(n, 1);
    assert!(max_ns > 30_000_000 && max_ns <= 40_000_000, "{max_ns}");
    // A stamp in the past (Start of Exposure) is the capture time.
    let st = src.skip_frame().unwrap();
    assert_eq!(st.capture_ns, 1001);
    assert_eq!(src.stamps_ahead().0, 1);
}

#[test]
fn stall_timeout_is_at_least_three_frame_intervals() {
    assert_eq!(stall_timeout_ms(1000, Some((1, 1))), 3000);
    assert_eq!(stall_timeout_ms(1000, Some((30, 1))), 1000);
    assert_eq!(stall_timeout_ms(50, Some((25, 1))), 120);
    assert_eq!(stall_timeout_ms(1000, Some((1, 2))), 6000);
    assert_eq!(stall_timeout_ms(1000, None), 1000);
    let c = V4l2Config {
        fps: 1,
        timeout_ms: 1000,
        ..cfg(PixelFormat::Grey, 4, 4)
    };
    let mut src = V4l2Source::with_device(&c, fake(vec![Step::Timeout])).unwrap();
    assert_eq!(src.stall_timeout_ms(), 3000);
    assert!(
        src.describe().contains("stall after 3000 ms"),
        "{}",
        src.describe()
    );
    match src.skip_frame() {
        Err(SourceError::Timeout { timeout_ms, .. }) => assert_eq!(timeout_ms, 3000),
        other => panic!("{other:?}"),
    }
    assert_eq!(src.device().unwrap().timeouts_asked, [3000]);
}

#[test]
fn the_frame_is_read_from_the_data_offset() {
    let mut f = fake(vec![frame(5, 0)]);
    f.data_offset = 128;
    let mut src = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 8, 4), f).unwrap();
    let mut dst = vec![0; src.desc().bytes()];
    src.next_frame(&mut dst).unwrap();
    assert!(dst.iter().enumerate().all(|(i, &b)| b == byte(5, i + 128)));
    // bytesused counts the offset too: a frame that ends short of it is bad.
    let short = Step::Frame {
        fill: 0,
        bytesused: Some(128 + 63),
        flags: 0,
        ts: 3,
        seq: 1,
    };
    let mut f = fake(vec![short]);
    f.data_offset = 128;
    let mut src = V4l2Source::with_device(&cfg(PixelFormat::Yuyv, 8, 4), f).unwrap();
    assert!(matches!(
        src.next_frame(&mut dst),
        Err(SourceError::BadFrame { .. })
    ));
}

#[test]
fn the_first_pause_after_a_failed_reopen_is_50_ms() {
    let c = cfg(PixelFormat::Grey, 4, 4);
    let mut opens = 0;
    let opener: Opener<Fake> = Box::new(move || {
        opens += 1;
        if opens == 1 {
            Ok(fake(vec![Step::PollErr]))
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
    });
    let mut src = V4l2Source::with_opener(&c, opener, &mut |_| {}).unwrap();
    // Lost: closed; the next call tries the first re-open at once, and it
    // fails.
    for _ in 0..2 {
        assert!(matches!(
            src.skip_frame(),
            Err(SourceError::Reconnecting { .. })
        ));
    }
    let now = monotonic_ns();
    match src.link {
        Link::Down {
            attempt,
            next_try_ns,
            ..
        } => {
            assert_eq!(attempt, 1);
            let pause = next_try_ns.saturating_sub(now);
            assert!(pause > 40_000_000 && pause <= 50_000_000, "{pause} ns");
        }
        Link::Up => panic!("camera up"),
    }
    assert_eq!(backoff_ms(0, 5000), 50);
    assert_eq!(backoff_ms(1, 5000), 100);
    assert_eq!(backoff_ms(3, 300), 300);
}
