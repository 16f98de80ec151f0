//! The memory budget: what the pipeline will allocate at boot, computed
//! from the config and the source's frame size (from the config for the
//! synthetic and V4L2 sources, from the header for Y4M) and checked
//! against `pipeline.max_memory_mb` *before* the allocations it counts, so
//! that a header or config asking for gigabytes is one error line, not an
//! aborted process. `perceptd check` prints the same figure.
//!
//! What is counted: the source's own buffers, the ring (frame plus model
//! output per slot), the warm-up frame, the preprocessing rows and remap
//! table, the model (arena, scratch and constants, once it is planned),
//! and the outputs' line buffers.
//!
//! Boot only; plain arithmetic (saturating), allocates only its message.

use crate::config::{Config, OutputConfig, SourceConfig};
use crate::frame::{FrameDesc, PixelFormat};
use crate::preprocess::REMAP_BYTES_PER_PIXEL;
use thiserror::Error;

const MIB: u64 = 1 << 20;

/// Default `pipeline.max_memory_mb`: a share of an 8 GiB vehicle computer
/// (Jetson Orin NX class) that leaves the rest to the OS and the GPU.
pub const DEFAULT_MAX_MEMORY_MB: u64 = 2048;
/// Largest `pipeline.max_memory_mb` accepted (256 GiB).
pub const MAX_MAX_MEMORY_MB: u64 = 256 * 1024;

/// Model input assumed before the model is loaded, when the config does
/// not set `model.input_size` (the shipped and the usual YOLO size).
const ASSUMED_MODEL_INPUT: [usize; 2] = [640, 640];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("{origin}: pipeline.max_memory_mb = {limit_mb}: the pipeline needs {needed_mb} MiB for {what} ({detail}); raise pipeline.max_memory_mb or use smaller frames")]
    Exceeded {
        origin: String,
        limit_mb: u64,
        needed_mb: u64,
        what: String,
        detail: String,
    },
}

/// Bytes the pipeline allocates at boot, by owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryBudget {
    pub source: u64,
    pub ring: u64,
    pub warmup: u64,
    pub preprocess: u64,
    pub model: u64,
    pub outputs: u64,
}

/// What is known about the model when the budget is computed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelMemory {
    /// `[width, height]` of the model input (None: not loaded yet).
    pub input: Option<[usize; 2]>,
    /// Floats in the (first) model output.
    pub output_len: usize,
    /// Arena, scratch and constants of the planned model.
    pub bytes: u64,
}

fn mul(a: usize, b: usize) -> u64 {
    (a as u64).saturating_mul(b as u64)
}

impl MemoryBudget {
    /// The budget for frames `frame` under `cfg`.
    pub fn estimate(cfg: &Config, frame: FrameDesc, model: ModelMemory) -> MemoryBudget {
        let frame_bytes = frame.bytes() as u64;
        let slots = cfg.pipeline.ring_slots as u64;
        let source = match &cfg.source {
            // The renderer keeps one RGB frame.
            SourceConfig::Synthetic { .. } => mul(frame.width, frame.height).saturating_mul(3),
            // Driver buffers, mapped into the process.
            SourceConfig::V4l2 { buffers, .. } => frame_bytes.saturating_mul(*buffers as u64),
            SourceConfig::Y4m { .. } => 256 * 1024,
        };
        let [iw, ih] = model
            .input
            .or(cfg.model.input_size)
            .unwrap_or(ASSUMED_MODEL_INPUT);
        // Letterbox rows (one RGB source row, two float rows) and, with
        // undistortion, the remap (table and samples per input pixel, and
        // an RGB copy of non-RGB frames).
        let mut preprocess = mul(frame.width, 3).saturating_add(mul(iw, 24));
        if cfg.calibration.path.is_some() && cfg.calibration.undistort {
            let table = mul(iw, ih).saturating_mul(REMAP_BYTES_PER_PIXEL as u64);
            let rgb = if frame.format == PixelFormat::Rgb24 {
                0
            } else {
                mul(frame.width, frame.height).saturating_mul(3)
            };
            preprocess = preprocess.saturating_add(table).saturating_add(rgb);
        }
        let outputs = cfg
            .output
            .iter()
            .map(|o| match o {
                OutputConfig::Json(j) => j.max_line_bytes as u64,
                // Frame copies, the canvas and the Y4M planes (or the
                // JPEG and message buffers).
                OutputConfig::Annotate(_)
                | OutputConfig::Http(_)
                | OutputConfig::Mcap(_)
                | OutputConfig::Foxglove(_) => {
                    let shots = crate::output::viewer::SHOTS as u64;
                    frame_bytes
                        .saturating_mul(shots)
                        .saturating_add(mul(frame.width, frame.height).saturating_mul(6))
                }
            })
            .fold(0u64, u64::saturating_add);
        MemoryBudget {
            source,
            ring: slots.saturating_mul(frame_bytes.saturating_add(mul(model.output_len, 4))),
            warmup: frame_bytes.saturating_add(mul(model.output_len, 4)),
            preprocess,
            model: model.bytes,
            outputs,
        }
    }

    pub fn total(&self) -> u64 {
        [
            self.source,
            self.ring,
            self.warmup,
            self.preprocess,
            self.model,
            self.outputs,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    /// Bytes left under `limit_mb` (0 when over): what the model, planned
    /// after this estimate, may use.
    pub fn room(&self, limit_mb: u64) -> u64 {
        limit_mb.saturating_mul(MIB).saturating_sub(self.total())
    }

    /// Whole MiB, rounded up.
    pub fn total_mb(&self) -> u64 {
        self.total().div_ceil(MIB)
    }

    /// One line: each owner in MiB and the total.
    pub fn describe(&self) -> String {
        let m = |b: u64| b as f64 / MIB as f64;
        format!(
            "source {:.1} + ring {:.1} + warm-up {:.1} + preprocessing {:.1} + model {:.1} + outputs {:.1} = {:.1} MiB",
            m(self.source),
            m(self.ring),
            m(self.warmup),
            m(self.preprocess),
            m(self.model),
            m(self.outputs),
            m(self.total())
        )
    }

    /// Err when the total is over `limit_mb`; `origin` (the config file)
    /// and `what` (e.g. `16384x16384 i444 frames from clip.y4m`) name the
    /// inputs that asked for it.
    pub fn check(&self, limit_mb: u64, origin: &str, what: &str) -> Result<(), BudgetError> {
        if self.total() <= limit_mb.saturating_mul(MIB) {
            return Ok(());
        }
        Err(self.exceeded(limit_mb, origin, what))
    }

    /// This budget with the model's host memory set to `bytes`.
    pub fn with_model(self, bytes: u64) -> MemoryBudget {
        MemoryBudget {
            model: bytes,
            ..self
        }
    }

    /// The error [`check`](Self::check) returns when over `limit_mb`.
    pub fn exceeded(&self, limit_mb: u64, origin: &str, what: &str) -> BudgetError {
        BudgetError::Exceeded {
            origin: origin.to_string(),
            limit_mb,
            needed_mb: self.total_mb(),
            what: what.to_string(),
            detail: self.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16k_frame_is_over_the_default_budget_and_vga_is_far_under() {
        let cfg = Config::default_embedded().unwrap();
        let big = FrameDesc {
            format: PixelFormat::I444,
            width: 16384,
            height: 16384,
        };
        let b = MemoryBudget::estimate(&cfg, big, ModelMemory::default());
        assert!(b.total_mb() > DEFAULT_MAX_MEMORY_MB, "{}", b.describe());
        let e = b
            .check(DEFAULT_MAX_MEMORY_MB, "x.toml", "16384x16384 i444 frames")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml: pipeline.max_memory_mb = 2048: the pipeline needs"),
            "{e}"
        );
        let vga = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 640,
            height: 480,
        };
        let b = MemoryBudget::estimate(&cfg, vga, ModelMemory::default());
        assert!(b.total_mb() < 64, "{}", b.describe());
    }
}
