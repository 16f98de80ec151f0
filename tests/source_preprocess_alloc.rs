//! The capture and preprocessing frame paths make zero heap allocations:
//! `Y4mSource::next_frame`/`skip_frame`, `Y4mWriter::write_frame`,
//! `V4l2Source::next_frame`/`skip_frame` (over a fake device defined here,
//! which also shows the device trait can be implemented outside the crate)
//! and `Letterbox::run` (plain and undistorting), counted by a global
//! allocator.
//!
//! One test per binary, so nothing else allocates concurrently.

use perceptd::calibration::Calibration;
use perceptd::frame::{FrameDesc, PixelFormat};
use perceptd::preprocess::{Letterbox, RemapTable};
use perceptd::source::v4l2::dev::{
    CaptureDevice, Dequeued, DevFormat, DqError, BUF_FLAG_TIMESTAMP_MONOTONIC,
};
use perceptd::source::v4l2::{OnAdjust, V4l2Config, V4l2Source};
use perceptd::source::y4m::{FrameRate, Pace, Y4mSource, Y4mWriter};
use perceptd::source::{FrameStamp, Source};
use std::io;

use perceptd::count_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_in(what: &str, f: impl FnOnce()) {
    let before = allocations();
    f();
    let n = allocations() - before;
    assert_eq!(n, 0, "{what} allocated {n} times");
}

/// A camera that always has a frame: buffers are cycled in order.
struct Endless {
    fmt: DevFormat,
    bufs: Vec<Vec<u8>>,
    next: usize,
    seq: u32,
}

impl CaptureDevice for Endless {
    fn set_format(&mut self, want: DevFormat) -> io::Result<DevFormat> {
        self.fmt = DevFormat {
            bytesperline: want.width * 2,
            sizeimage: want.width * want.height * 2,
            ..want
        };
        Ok(self.fmt)
    }
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<(u32, u32)>> {
        Ok(Some((fps, 1)))
    }
    fn map_buffers(&mut self, n: u32) -> io::Result<u32> {
        self.bufs = (0..n)
            .map(|i| vec![i as u8; self.fmt.sizeimage as usize])
            .collect();
        Ok(n)
    }
    fn stream_on(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn dequeue(&mut self, _timeout_ms: u32) -> Result<Dequeued, DqError> {
        let index = self.next % self.bufs.len();
        self.next += 1;
        self.seq += 1;
        Ok(Dequeued {
            index,
            bytesused: self.fmt.sizeimage,
            data_offset: 0,
            flags: BUF_FLAG_TIMESTAMP_MONOTONIC,
            timestamp_ns: self.seq as u64 * 1000,
            sequence: self.seq,
        })
    }
    fn buffer(&self, index: usize) -> &[u8] {
        self.bufs.get(index).map_or(&[], |b| b)
    }
    fn queue(&mut self, _index: usize) -> io::Result<()> {
        Ok(())
    }
    fn formats(&mut self) -> io::Result<Vec<[u8; 4]>> {
        Ok(vec![self.fmt.fourcc])
    }
    fn stop(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn frame_paths_never_allocate() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("perceptd-alloc-{}.y4m", std::process::id()));

    // Record 40 YUYV frames (converted to I422 on the way).
    let cam = FrameDesc {
        format: PixelFormat::Yuyv,
        width: 64,
        height: 48,
    };
    let frame: Vec<u8> = (0..cam.bytes()).map(|i| (i * 13 % 256) as u8).collect();
    let mut w = Y4mWriter::create(&path, cam, FrameRate::per_second(30)).unwrap();
    w.write_frame(&frame, FrameStamp::default()).unwrap();
    allocs_in("Y4mWriter::write_frame", || {
        for i in 1..40u64 {
            w.write_frame(
                &frame,
                FrameStamp {
                    capture_ns: i,
                    source_ns: None,
                },
            )
            .unwrap();
        }
    });
    w.finish().unwrap();

    // Replay it.
    let mut src = Y4mSource::open(&path, Pace::Fast).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    src.next_frame(&mut buf).unwrap();
    allocs_in("Y4mSource::next_frame/skip_frame", || {
        for i in 0..38 {
            if i % 3 == 0 {
                src.skip_frame().unwrap();
            } else {
                src.next_frame(&mut buf).unwrap();
            }
        }
    });
    drop(src);
    let _ = std::fs::remove_file(&path);

    // The camera.
    let cfg = V4l2Config {
        device: "/dev/video-endless".into(),
        format: PixelFormat::Yuyv.into(),
        width: 64,
        height: 48,
        fps: 30,
        buffers: 4,
        timeout_ms: 100,
        on_adjust: OnAdjust::Refuse,
        absent: perceptd::source::v4l2::Absent::Fail,
        reconnect_max_ms: 1000,
        max_memory_mb: 256,
    };
    let dev = Endless {
        fmt: DevFormat {
            fourcc: *b"YUYV",
            width: 0,
            height: 0,
            bytesperline: 0,
            sizeimage: 0,
        },
        bufs: Vec::new(),
        next: 0,
        seq: 0,
    };
    let mut cam_src = V4l2Source::with_device(&cfg, dev).unwrap();
    let mut raw = vec![0u8; cam_src.desc().bytes()];
    allocs_in("V4l2Source::next_frame/skip_frame", || {
        for i in 0..50 {
            if i % 4 == 0 {
                cam_src.skip_frame().unwrap();
            } else {
                cam_src.next_frame(&mut raw).unwrap();
            }
        }
    });

    // Preprocessing, with and without a resize, packed and planar input.
    for (desc, dw, dh) in [
        (cam, 64, 64),
        (cam, 32, 40),
        (
            FrameDesc {
                format: PixelFormat::I422,
                width: 64,
                height: 48,
            },
            96,
            80,
        ),
        (
            FrameDesc {
                format: PixelFormat::Nv12,
                width: 63,
                height: 47,
            },
            64,
            64,
        ),
    ] {
        let lb = Letterbox::new(desc, dw, dh).unwrap();
        let input = vec![77u8; desc.bytes()];
        let mut out = vec![0f32; lb.dst_len()];
        lb.run(&input, &mut out).unwrap();
        allocs_in("Letterbox::run", || {
            for _ in 0..20 {
                lb.run(&input, &mut out).unwrap();
            }
        });
    }

    // Preprocessing with undistortion (remap table built at boot), packed
    // YUV and RGB input.
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/front_camera.yaml"),
    )
    .unwrap()
    .replace(
        "[-0.05, 0.01, 0.0, 0.0, 0.0]",
        "[-0.3, 0.08, 0.001, -0.002, 0.0]",
    );
    let cal = Calibration::from_yaml_str(&yaml, "strong.yaml").unwrap();
    for format in [PixelFormat::Yuyv, PixelFormat::Rgb24, PixelFormat::Nv12] {
        let desc = FrameDesc {
            format,
            width: 640,
            height: 480,
        };
        let mut lb = Letterbox::new(desc, 320, 320).unwrap();
        let table = RemapTable::build(&cal, &lb).unwrap().unwrap();
        lb.set_remap(table).unwrap();
        let input: Vec<u8> = (0..desc.bytes()).map(|i| (i % 253) as u8).collect();
        let mut out = vec![0f32; lb.dst_len()];
        lb.run(&input, &mut out).unwrap();
        allocs_in("Letterbox::run with undistortion", || {
            for _ in 0..5 {
                lb.run(&input, &mut out).unwrap();
            }
        });
    }
}
