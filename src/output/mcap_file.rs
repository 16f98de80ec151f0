//! The MCAP recorder (`kind = "mcap"`): every frame the viewer thread gets
//! ([`super::viewer`]) is written to `path` as Foxglove messages (the
//! channels and encoding of [`super::fox_msg`]: the camera as JPEG, the
//! boxes and labels, the pipeline metrics and, with a calibration, the
//! detections on the ground and the camera mount), all stamped with the
//! frame's source timestamp. The file opens in Foxglove (Open local
//! file) and reads with any MCAP reader.
//!
//! Lockstep replay records every frame; a live source records what the
//! viewer thread keeps up with (latest wins) and the frames skipped are
//! counted (`would block` in the output's summary line). Chunks are
//! zstd-compressed. The file is finalised (summary and footer, so readers
//! can seek and count) at the end of the run, which a SIGTERM or Ctrl-C
//! reaches through the pipeline's normal stop; a run killed with SIGKILL
//! leaves a file without summary that MCAP readers still read in order
//! (`mcap recover` repairs it).
//!
//! Allocation: [`open`] (boot) creates the file and writes its header,
//! schemas and channels, and allocates the buffers; the frame copies are
//! the viewer thread's, shared with the live view and the Foxglove server
//! ([`super::viewer`]: one copy, one RGB conversion and one camera JPEG
//! per frame for all of them). Publishing (frame path) copies the frame
//! into a shot and never allocates. Stated side-thread allocations (the
//! viewer thread is marked a side thread): the JPEG encoder's working
//! buffers per frame, the
//! message buffers until they reach the largest frame's size, and the
//! `mcap` writer's chunk buffers and compressor (reused chunk to chunk)
//! plus one index entry per chunk and per channel in each chunk (for the
//! summary: tens of bytes per ~1 MiB chunk).

use super::fox_msg::{self, Encoder, Messages};
use super::viewer::{Look, Pictures, Shot, View, Viewed};
use super::{OutputContext, OutputError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// `[[output]]` with `kind = "mcap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McapConfig {
    /// The file written (`run.mcap`); replaced if it exists.
    pub path: PathBuf,
    /// JPEG quality of the camera images, 1..=100.
    #[serde(default = "d_quality")]
    pub quality: u8,
}

fn d_quality() -> u8 {
    80
}

impl McapConfig {
    /// What is wrong with the table, as (field, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if self.path.as_os_str().is_empty() || self.path.file_name().is_none() {
            return Some((
                "path",
                format!("\"{}\"", self.path.display()),
                "expected a file path (run.mcap)".into(),
            ));
        }
        if !(1..=100).contains(&self.quality) {
            return Some((
                "quality",
                self.quality.to_string(),
                "expected 1..=100".into(),
            ));
        }
        None
    }
}

type McapWriter = mcap::Writer<BufWriter<File>>;

/// Boot: creates the file (an unwritable path fails here), writes the
/// header, schemas and channels; returns the recorder's [`View`] (named
/// `mcap:PATH`) for the viewer thread it shares with the other outputs
/// that show pixels ([`super::viewer::spawn`]).
pub fn open(cfg: &McapConfig, ctx: &OutputContext) -> Result<Viewed, OutputError> {
    let open_err = |msg: String| OutputError::Open {
        target: format!("mcap path {}", cfg.path.display()),
        msg,
    };
    let file = File::create(&cfg.path).map_err(|e| open_err(e.to_string()))?;
    let mut writer = mcap::WriteOptions::new()
        .profile("")
        .library(concat!("perceptd ", env!("CARGO_PKG_VERSION")))
        .create(BufWriter::new(file))
        .map_err(|e| open_err(e.to_string()))?;
    let encoder = Encoder::new(&ctx.labels, ctx.calibration.clone());
    let count = encoder.channels();
    let mut ids = [0u16; fox_msg::CHANNELS];
    let none = BTreeMap::new();
    for (ch, id) in ids.iter_mut().enumerate().take(count) {
        let c = fox_msg::ALL[ch];
        let schema = writer
            .add_schema(
                c.schema_name,
                fox_msg::SCHEMA_ENCODING,
                fox_msg::schema(ch).as_bytes(),
            )
            .map_err(|e| open_err(e.to_string()))?;
        *id = writer
            .add_channel(schema, c.topic, fox_msg::MESSAGE_ENCODING, &none)
            .map_err(|e| open_err(e.to_string()))?;
    }
    let desc = ctx.desc;
    log::info!("mcap: recording {count} channels to {}", cfg.path.display());
    Ok(Viewed {
        name: format!("mcap:{}", cfg.path.display()),
        view: Box::new(McapView {
            writer: Some(writer),
            ids,
            seq: 0,
            quality: cfg.quality,
            encoder,
            msgs: Messages::new(count, desc.width * desc.height),
        }),
        skipped: None,
    })
}

/// The viewer-thread side: encodes and writes each frame's messages.
struct McapView {
    /// None once finished.
    writer: Option<McapWriter>,
    ids: [u16; fox_msg::CHANNELS],
    seq: u32,
    quality: u8,
    encoder: Encoder,
    msgs: Messages,
}

impl View for McapView {
    /// The JPEG encoder's and the MCAP writer's buffers (see the module doc).
    fn allocates(&self) -> bool {
        true
    }

    fn show(&mut self, pics: &mut Pictures, shot: &Shot) -> Result<(), String> {
        let Some(w) = self.writer.as_mut() else {
            return Err("the file is already finished".into());
        };
        let jpeg = pics.jpeg(Look::Camera, self.quality, shot)?;
        self.encoder.encode(jpeg, shot, &mut self.msgs)?;
        let t = self.msgs.time_ns;
        for ch in 0..self.msgs.count {
            let header = mcap::records::MessageHeader {
                channel_id: self.ids[ch],
                sequence: self.seq,
                log_time: t,
                publish_time: t,
            };
            w.write_to_known_channel(&header, &self.msgs.data[ch])
                .map_err(|e| e.to_string())?;
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Writes the summary and footer and flushes the file.
    fn end(&mut self) -> Result<(), String> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        w.finish().map_err(|e| format!("finishing the file: {e}"))?;
        use std::io::Write as _;
        w.into_inner()
            .flush()
            .map_err(|e| format!("finishing the file: {e}"))
    }
}
