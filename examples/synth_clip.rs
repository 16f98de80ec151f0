//! Writes a Y4M clip of the synthetic road scene, for replays that compare
//! detections before and after a change (`scripts/compare_detections.py`).
//!
//! `cargo run --release --example synth_clip -- OUT.y4m [SEED] [FORMAT] [FRAMES]`
//! FORMAT is i420 (default), i422, i444, grey, yuyv or nv12 (packed
//! formats are stored planar, as `perceptd record` does). Deterministic:
//! the same arguments give the same bytes.

use perceptd::frame::PixelFormat;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use perceptd::source::y4m::{FrameRate, Y4mWriter};
use perceptd::source::Source;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        anyhow::bail!("usage: synth_clip OUT.y4m [SEED] [FORMAT] [FRAMES]");
    };
    let seed: u64 = args.get(1).map_or(Ok(7), |s| s.parse())?;
    let format = match args.get(2).map_or("i420", String::as_str) {
        "i420" => PixelFormat::I420,
        "i422" => PixelFormat::I422,
        "i444" => PixelFormat::I444,
        "grey" => PixelFormat::Grey,
        "yuyv" => PixelFormat::Yuyv,
        "nv12" => PixelFormat::Nv12,
        other => anyhow::bail!("format {other}: expected i420, i422, i444, grey, yuyv or nv12"),
    };
    let frames: u64 = args.get(3).map_or(Ok(120), |s| s.parse())?;
    let mut src = SyntheticSource::new(SyntheticConfig {
        format,
        ..SyntheticConfig::front_camera(seed)
    })?;
    let desc = src.desc();
    let mut w = Y4mWriter::create(out, desc, FrameRate::per_second(30))?;
    let mut buf = vec![0u8; desc.bytes()];
    for _ in 0..frames {
        let stamp = src.next_frame(&mut buf)?;
        w.write_frame(&buf, stamp)?;
    }
    let n = w.finish()?;
    eprintln!(
        "wrote {n} {} frames of seed {seed} to {out}",
        desc.format.name()
    );
    Ok(())
}
