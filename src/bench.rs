//! `perceptd bench-pipeline`: what the pipeline costs per frame apart from
//! the network. Boots the real pipeline from a config, then swaps two
//! pieces for benchmark doubles at the hardware boundaries, both documented
//! as such:
//!
//! - [`MemorySource`]: the camera, replaced by K frames rendered at boot
//!   and handed out round-robin (a memcpy per frame, like a V4L2 dequeue
//!   and copy into the slot), lockstep so nothing is dropped;
//! - [`NoNetworkBackend`]: the accelerator, replaced by the real CPU
//!   preprocessing followed by a copy of the output the real network
//!   produced for that frame at boot, so postprocessing decodes, filters
//!   and serialises real detections.
//!
//! Everything else (ring, channels, threads, decoder, NMS, calibration,
//! outputs, metrics) is the production code. Boot allocates; the run does not.
//! `benches/pipeline_overhead.py` runs this next to a hand-written
//! OpenCV/numpy loop on the same frames and outputs (`--dump`).

use crate::backend::{Backend, BackendError, InferTiming};
use crate::boot::{boot, BootError, Overrides};
use crate::clock::monotonic_ns;
use crate::config::Config;
use crate::frame::FrameDesc;
use crate::metrics::Stage;
use crate::preprocess::{Letterbox, LetterboxInfo, RemapTable};
use crate::source::{FrameStamp, Pacing, Source, SourceError};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Benchmark double for the camera: `k` frames held in memory, delivered
/// round-robin without end, lockstep.
pub struct MemorySource {
    desc: FrameDesc,
    frames: Box<[u8]>,
    next: usize,
}

impl MemorySource {
    /// `frames` holds a whole number of `desc.bytes()` frames (boot).
    pub fn new(desc: FrameDesc, frames: Box<[u8]>) -> MemorySource {
        assert!(desc.bytes() > 0 && frames.len().is_multiple_of(desc.bytes()));
        MemorySource {
            desc,
            frames,
            next: 0,
        }
    }

    fn count(&self) -> usize {
        self.frames.len() / self.desc.bytes()
    }
}

impl Source for MemorySource {
    fn desc(&self) -> FrameDesc {
        self.desc
    }

    fn pacing(&self) -> Pacing {
        Pacing::Lockstep
    }

    fn describe(&self) -> String {
        format!("{} frames in memory (benchmark)", self.count())
    }

    fn next_frame(&mut self, dst: &mut [u8]) -> Result<FrameStamp, SourceError> {
        let n = self.desc.bytes();
        dst.copy_from_slice(&self.frames[self.next * n..(self.next + 1) * n]);
        self.skip_frame()
    }

    fn skip_frame(&mut self) -> Result<FrameStamp, SourceError> {
        self.next = (self.next + 1) % self.count();
        Ok(FrameStamp {
            capture_ns: monotonic_ns(),
            source_ns: None,
        })
    }
}

/// Benchmark double for the accelerator: the real CPU preprocessing, then
/// the output the real network gave for the same frame at boot. Relies on
/// lockstep order (frame i of the source is inference call i).
pub struct NoNetworkBackend {
    letterbox: Letterbox,
    input: Box<[f32]>,
    outputs: Box<[f32]>,
    output_shape: Vec<usize>,
    input_size: [usize; 2],
    next: usize,
}

impl Backend for NoNetworkBackend {
    fn describe(&self) -> String {
        "cpu preprocessing, network replaced by recorded outputs (benchmark)".into()
    }

    fn input_size(&self) -> [usize; 2] {
        self.input_size
    }

    fn letterbox(&self) -> LetterboxInfo {
        self.letterbox.info()
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn rectified_input(&self) -> bool {
        self.letterbox.remap().is_some()
    }

    fn infer(&mut self, _slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming {
        let r = self.letterbox.run(frame, &mut self.input);
        debug_assert!(r.is_ok(), "letterbox: {r:?}");
        let pre_done_ns = monotonic_ns();
        let n = out.len();
        let k = self.outputs.len() / n;
        out.copy_from_slice(&self.outputs[self.next * n..(self.next + 1) * n]);
        self.next = (self.next + 1) % k;
        InferTiming {
            pre_done_ns,
            complete: true,
        }
    }
}

/// What one benchmark run measured (milliseconds unless named otherwise).
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub frames: u64,
    pub distinct_frames: usize,
    pub source: String,
    pub model_input: [usize; 2],
    /// Wall time / frames: the pipelined cost, bounded by the slowest stage.
    pub wall_ms_per_frame: f64,
    pub pre_p50: f64,
    pub pre_p99: f64,
    pub post_p50: f64,
    pub post_p99: f64,
    pub e2e_p50: f64,
    pub e2e_p99: f64,
    pub detections_per_frame: f64,
}

impl BenchReport {
    pub fn json(&self) -> String {
        format!(
            "{{\"frames\":{},\"distinct_frames\":{},\"source\":\"{}\",\"model_input\":[{},{}],\
             \"wall_ms_per_frame\":{:.4},\"pre_p50_ms\":{:.4},\"pre_p99_ms\":{:.4},\
             \"post_p50_ms\":{:.4},\"post_p99_ms\":{:.4},\"e2e_p50_ms\":{:.4},\"e2e_p99_ms\":{:.4},\
             \"detections_per_frame\":{:.2}}}",
            self.frames,
            self.distinct_frames,
            self.source.replace('"', "'"),
            self.model_input[0],
            self.model_input[1],
            self.wall_ms_per_frame,
            self.pre_p50,
            self.pre_p99,
            self.post_p50,
            self.post_p99,
            self.e2e_p50,
            self.e2e_p99,
            self.detections_per_frame
        )
    }
}

/// The most memory the frames and outputs held for cycling may take.
const MAX_HELD_BYTES: usize = 2 << 30;

/// Boot `cfg`, render `distinct` frames from its source and run the real
/// network on each, then run `frames` frames through the pipeline with the
/// benchmark doubles. With `dump`, write the frames, the outputs and a
/// `meta.json` there for the peer in `benches/pipeline_overhead.py`.
pub fn bench_pipeline(
    cfg: &Config,
    frames: u64,
    distinct: usize,
    dump: Option<&Path>,
) -> Result<BenchReport, BootError> {
    if distinct == 0 || frames == 0 {
        return Err(BootError::Config(
            "bench-pipeline: --frames and --distinct must be at least 1".into(),
        ));
    }
    let ov = Overrides {
        frames: Some(frames),
        output: Some("/dev/null".into()),
        ..Default::default()
    };
    let mut p = boot(cfg, &ov)?;
    let desc = p.source.desc();
    let source = p.source.describe();
    let out_len: usize = p.backend.output_shape().iter().product();
    // The held frames and outputs are checked before they are allocated:
    // an overflowing or huge product is one error line, not an abort.
    let held = desc
        .bytes()
        .checked_mul(distinct)
        .zip(out_len.checked_mul(distinct * 4))
        .and_then(|(a, b)| a.checked_add(b))
        .filter(|&n| n <= MAX_HELD_BYTES);
    if held.is_none() {
        return Err(BootError::Config(format!(
            "bench-pipeline: {distinct} distinct {}x{} frames and their network outputs need more than {} MiB; use fewer --distinct or smaller frames",
            desc.width,
            desc.height,
            MAX_HELD_BYTES >> 20
        )));
    }
    let mut raw = vec![0u8; desc.bytes() * distinct];
    let mut outputs = vec![0f32; out_len * distinct];
    for (f, o) in raw
        .chunks_exact_mut(desc.bytes())
        .zip(outputs.chunks_exact_mut(out_len))
    {
        p.source
            .next_frame(f)
            .map_err(|e| BootError::Config(format!("rendering benchmark frames: {e}")))?;
        p.backend.infer(usize::MAX, f, o);
    }
    let [iw, ih] = p.backend.input_size();
    let mut letterbox = Letterbox::new(desc, iw, ih).map_err(BackendError::from)?;
    if let (true, Some(cal)) = (p.backend.rectified_input(), &p.calibration) {
        // The same undistortion the real backend does.
        if let Some(t) = RemapTable::build(cal, &letterbox).map_err(BackendError::from)? {
            letterbox.set_remap(t).map_err(BackendError::from)?;
        }
    }
    let mut list = p.chain.decode.decoder().new_list();
    let mut detections = 0usize;
    for o in outputs.chunks_exact(out_len) {
        p.chain.decode.decode(o, &mut list)?;
        detections += list.len();
    }
    if let Some(dir) = dump {
        dump_inputs(
            dir,
            cfg,
            desc,
            [iw, ih],
            p.backend.output_shape(),
            &raw,
            &outputs,
        )
        .map_err(|e| BootError::Config(format!("{}: {e}", dir.display())))?;
    }
    p.backend = Box::new(NoNetworkBackend {
        letterbox,
        input: vec![0f32; 3 * iw * ih].into_boxed_slice(),
        outputs: outputs.into_boxed_slice(),
        output_shape: p.backend.output_shape().to_vec(),
        input_size: [iw, ih],
        next: 0,
    });
    p.source = Box::new(MemorySource::new(desc, raw.into_boxed_slice()));
    p.metrics_interval_s = 0.0;
    let report = p.run(Arc::new(AtomicBool::new(false)));
    let m = &report.metrics;
    let ms = |s: Stage, q: f64| m.percentile(s, q) / 1e6;
    let done = m.histogram(Stage::EndToEnd).count();
    Ok(BenchReport {
        frames: done,
        distinct_frames: distinct,
        source,
        model_input: [iw, ih],
        wall_ms_per_frame: report.elapsed_s * 1e3 / done.max(1) as f64,
        pre_p50: ms(Stage::Preprocess, 0.5),
        pre_p99: ms(Stage::Preprocess, 0.99),
        post_p50: ms(Stage::Postprocess, 0.5),
        post_p99: ms(Stage::Postprocess, 0.99),
        e2e_p50: ms(Stage::EndToEnd, 0.5),
        e2e_p99: ms(Stage::EndToEnd, 0.99),
        detections_per_frame: detections as f64 / distinct as f64,
    })
}

fn dump_inputs(
    dir: &Path,
    cfg: &Config,
    desc: FrameDesc,
    input: [usize; 2],
    output_shape: &[usize],
    raw: &[u8],
    outputs: &[f32],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("frames.raw"), raw)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("outputs.f32"))?);
    for v in outputs {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    let shape: Vec<String> = output_shape.iter().map(|d| d.to_string()).collect();
    std::fs::write(
        dir.join("meta.json"),
        format!(
            "{{\"width\":{},\"height\":{},\"format\":\"{}\",\"frames\":{},\"input\":[{},{}],\
             \"output_shape\":[{}],\"conf\":{},\"iou\":{},\"max_det\":{}}}\n",
            desc.width,
            desc.height,
            desc.format.name(),
            raw.len() / desc.bytes(),
            input[0],
            input[1],
            shape.join(","),
            cfg.model.conf_threshold,
            cfg.model.iou_threshold,
            cfg.model.max_detections
        ),
    )
}
