//! ROS 2 bag replay reads 1000 messages with zero heap allocations,
//! counted by Rust's global allocator and at the malloc level (this
//! binary's own `malloc`/`calloc`/`realloc`/... count and forward to
//! glibc: tests/malloc_count), so zstd's and lz4's C code on the
//! frame path counts too. Three long bags are written here with the
//! `mcap` crate's writer (the fixtures of tests/bag_replay.rs are too
//! short): Image rgb8 in zstd chunks, CompressedImage JPEG in lz4 chunks,
//! Image mono8 outside chunks. Frames from the synthetic source.
//!
//! One test per binary, so nothing else allocates concurrently.

mod common;
mod malloc_count;

use perceptd::count_alloc::{allocations, Counting};
use perceptd::source::replay;
use perceptd::source::y4m::Pace;
use std::path::Path;

#[global_allocator]
static GLOBAL: Counting = Counting;

const W: usize = 64;
const H: usize = 48;

/// A CDR header (stamp k * 1 ms after T0, frame_id "cam").
fn header(m: &mut Vec<u8>, k: u64) {
    m.extend([0, 1, 0, 0]);
    m.extend(1_700_000_000u32.to_le_bytes());
    m.extend(((k * 1_000_000) as u32).to_le_bytes());
    m.extend(4u32.to_le_bytes());
    m.extend(b"cam\0");
}

fn pad(m: &mut Vec<u8>) {
    while !(m.len() - 4).is_multiple_of(4) {
        m.push(0);
    }
}

fn image(k: u64, encoding: &str, bpp: usize, px: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    header(&mut m, k);
    m.extend((H as u32).to_le_bytes());
    m.extend((W as u32).to_le_bytes());
    m.extend((encoding.len() as u32 + 1).to_le_bytes());
    m.extend(encoding.as_bytes());
    m.push(0);
    m.push(0); // is_bigendian
    pad(&mut m);
    m.extend(((W * bpp) as u32).to_le_bytes());
    m.extend((px.len() as u32).to_le_bytes());
    m.extend(px);
    m
}

fn compressed(k: u64, jpeg: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    header(&mut m, k);
    m.extend(5u32.to_le_bytes());
    m.extend(b"jpeg\0");
    pad(&mut m);
    m.extend((jpeg.len() as u32).to_le_bytes());
    m.extend(jpeg);
    m
}

/// 1001 messages on /cam, cycling through `msgs`.
fn write_bag(path: &Path, schema: &str, opts: mcap::WriteOptions, msgs: &[Vec<u8>]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = opts.create(f).unwrap();
    let s = w.add_schema(schema, "ros2msg", b"").unwrap();
    let c = w
        .add_channel(s, "/cam", "cdr", &Default::default())
        .unwrap();
    for k in 0..1001u64 {
        let h = mcap::records::MessageHeader {
            channel_id: c,
            sequence: k as u32,
            log_time: k,
            publish_time: k,
        };
        w.write_to_known_channel(&h, &msgs[k as usize % msgs.len()])
            .unwrap();
    }
    w.finish().unwrap();
}

fn count_1000(path: &Path) -> (u64, u64) {
    let mut src = replay::open(path, Pace::Fast, 256).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    src.next_frame(&mut buf).unwrap();
    let (rust0, malloc0) = (allocations(), malloc_count::mallocs());
    let mut sum = 0u64;
    for k in 0..1000 {
        // Every 10th skipped, as a live pipeline does without a free slot.
        if k % 10 == 9 {
            src.skip_frame().unwrap();
        } else {
            src.next_frame(&mut buf).unwrap();
            sum += buf[buf.len() / 2] as u64;
        }
    }
    let rust = allocations() - rust0;
    let mallocs = malloc_count::mallocs() - malloc0;
    assert!(matches!(
        src.next_frame(&mut buf),
        Err(perceptd::source::SourceError::End)
    ));
    assert!(sum > 0);
    (rust, mallocs)
}

#[test]
fn a_thousand_bag_messages_allocate_nothing() {
    malloc_count::assert_installed();

    use perceptd::frame::PixelFormat;
    use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
    use perceptd::source::Source;
    let frames = |format| {
        let cfg = SyntheticConfig {
            width: W,
            height: H,
            format,
            calibration: perceptd::calibration::Calibration::front_camera()
                .with_image_size(W as u32, H as u32),
            ..SyntheticConfig::front_camera(9)
        };
        let mut src = SyntheticSource::new(cfg).unwrap();
        (0..7)
            .map(|_| {
                let mut b = vec![0u8; src.desc().bytes()];
                src.next_frame(&mut b).unwrap();
                b
            })
            .collect::<Vec<_>>()
    };
    let rgb = frames(PixelFormat::Rgb24);
    let grey = frames(PixelFormat::Grey);
    let dir = common::temp_dir("bag-alloc");

    let zstd = dir.join("rgb8-zstd.mcap");
    let msgs: Vec<_> = rgb
        .iter()
        .enumerate()
        .map(|(k, p)| image(k as u64, "rgb8", 3, p))
        .collect();
    let opts = mcap::WriteOptions::new()
        .compression(Some(mcap::Compression::Zstd))
        .chunk_size(Some(64 * 1024));
    write_bag(&zstd, "sensor_msgs/msg/Image", opts, &msgs);

    let lz4 = dir.join("jpeg-lz4.mcap");
    let msgs: Vec<_> = rgb
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut j = Vec::new();
            jpeg_encoder::Encoder::new(&mut j, 90)
                .encode(p, W as u16, H as u16, jpeg_encoder::ColorType::Rgb)
                .unwrap();
            compressed(k as u64, &j)
        })
        .collect();
    let opts = mcap::WriteOptions::new()
        .compression(Some(mcap::Compression::Lz4))
        .chunk_size(Some(32 * 1024));
    write_bag(&lz4, "sensor_msgs/msg/CompressedImage", opts, &msgs);

    let plain = dir.join("mono8-unchunked.mcap");
    let msgs: Vec<_> = grey
        .iter()
        .enumerate()
        .map(|(k, p)| image(k as u64, "mono8", 1, p))
        .collect();
    write_bag(
        &plain,
        "sensor_msgs/msg/Image",
        mcap::WriteOptions::new().use_chunks(false),
        &msgs,
    );

    let mut report = Vec::new();
    for (what, path) in [
        ("Image rgb8, zstd chunks", &zstd),
        ("CompressedImage jpeg, lz4 chunks", &lz4),
        ("Image mono8, no chunks", &plain),
    ] {
        let (rust, mallocs) = count_1000(path);
        eprintln!(
            "1000 bag messages ({what}, {W}x{H}): {rust} Rust allocations, {mallocs} mallocs"
        );
        report.push((what, rust, mallocs));
    }
    for (what, rust, mallocs) in report {
        assert_eq!((rust, mallocs), (0, 0), "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
