//! Boot: turn a validated [`Config`] into a ready [`Pipeline`]: open the
//! source, load the calibration, build the backend (model planned, weights
//! packed, warm-up run), the decoder, labels and sink. Every failure is one
//! clear error naming the file, field or device. Allocates; runs once.

use crate::backend::{Backend, BackendError, CpuBackend};
use crate::calibration::{Calibration, CalibrationError};
use crate::config::{Config, SourceConfig};
use crate::frame::PixelFormat;
use crate::pipeline::{Pipeline, ThreadPolicy};
use crate::postprocess::{Decoder, DecoderKind, Labels, PostprocessError};
use crate::sink::{JsonSink, SinkError, SinkTarget};
use crate::source::paced::Paced;
use crate::source::synthetic::{SyntheticConfig, SyntheticSource};
use crate::source::v4l2::{OnAdjust, V4l2Config, V4l2Source};
use crate::source::y4m::{Pace, Y4mSource};
use crate::source::{Source, SourceError};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BootError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Postprocess(#[from] PostprocessError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error("{0}")]
    Device(String),
    #[error("{0}")]
    Config(String),
}

/// Command-line overrides of the config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub frames: Option<u64>,
    pub device: Option<String>,
    pub model: Option<PathBuf>,
    pub output: Option<String>,
}

fn pixel_format(field: &str, s: &str) -> Result<PixelFormat, BootError> {
    Ok(match s {
        "yuyv" => PixelFormat::Yuyv,
        "uyvy" => PixelFormat::Uyvy,
        "nv12" => PixelFormat::Nv12,
        "grey" => PixelFormat::Grey,
        "rgb24" => PixelFormat::Rgb24,
        other => {
            return Err(BootError::Config(format!(
                "{field} = \"{other}\": unknown pixel format"
            )))
        }
    })
}

/// Open the configured source. `calibration` drives the synthetic camera.
pub fn open_source(
    src: &SourceConfig,
    calibration: Option<&Calibration>,
) -> Result<Box<dyn Source>, BootError> {
    Ok(match src {
        SourceConfig::Synthetic {
            seed,
            width,
            height,
            fps,
            format,
            pace,
        } => {
            let calibration = match calibration {
                Some(c) => c.clone(),
                None => Calibration::front_camera(),
            };
            let (w, h) = (*width as u32, *height as u32);
            let calibration = if calibration.width() != w || calibration.height() != h {
                calibration.with_image_size(w, h)
            } else {
                calibration
            };
            let cfg = SyntheticConfig {
                seed: *seed,
                width: *width,
                height: *height,
                format: pixel_format("source.format", format)?,
                fps: *fps,
                ..SyntheticConfig::front_camera(*seed)
            };
            let cfg = SyntheticConfig { calibration, ..cfg };
            let s = SyntheticSource::new(cfg)?;
            if pace == "realtime" {
                Box::new(Paced::new(s, *fps))
            } else {
                Box::new(s)
            }
        }
        SourceConfig::Y4m { path, pace } => Box::new(Y4mSource::open(
            path,
            if pace == "realtime" {
                Pace::Realtime
            } else {
                Pace::Fast
            },
        )?),
        SourceConfig::V4l2 {
            device,
            format,
            width,
            height,
            fps,
            buffers,
            timeout_ms,
            on_adjust,
        } => {
            let cfg = V4l2Config {
                device: device.clone(),
                format: pixel_format("source.format", format)?,
                width: *width,
                height: *height,
                fps: fps.round() as u32,
                buffers: *buffers as u32,
                timeout_ms: (*timeout_ms).min(u32::MAX as u64) as u32,
                on_adjust: if on_adjust == "refuse" {
                    OnAdjust::Refuse
                } else {
                    OnAdjust::Adapt
                },
            };
            Box::new(V4l2Source::open(&cfg)?)
        }
    })
}

/// Pick the backend per `device` ("auto", "cpu", "cuda").
pub fn choose_device(device: &str) -> Result<&'static str, BootError> {
    match device {
        "cpu" => Ok("cpu"),
        "auto" => {
            log::info!("device auto: using the CPU backend (this build has no CUDA backend yet)");
            Ok("cpu")
        }
        "cuda" => Err(BootError::Device(
            "device cuda: CUDA is unavailable: this build of perceptd has no CUDA backend yet; use --device cpu or auto".into(),
        )),
        other => Err(BootError::Device(format!("device \"{other}\": expected auto, cpu or cuda"))),
    }
}

/// Labels next to the model: `<stem>.labels`, else `labels.txt`; class
/// names `class0`.. with a warning when neither exists.
fn load_labels(cfg: &Config, model: &Path, classes: usize) -> Result<Labels, BootError> {
    let candidates: Vec<PathBuf> = match &cfg.model.labels {
        Some(p) => vec![p.clone()],
        None => vec![
            model.with_extension("labels"),
            model.with_file_name("labels.txt"),
        ],
    };
    for p in &candidates {
        if p.exists() || cfg.model.labels.is_some() {
            let l = Labels::load(p)?;
            l.check_classes(classes)?;
            return Ok(l);
        }
    }
    log::warn!(
        "{}: no labels file ({}); naming classes class0..",
        model.display(),
        candidates[0].display()
    );
    Ok(Labels::fallback(classes))
}

/// Build everything the frame loop needs. Boot only.
pub fn boot(cfg: &Config, ov: &Overrides) -> Result<Pipeline, BootError> {
    let calibration = match &cfg.calibration.path {
        Some(p) => Some(Calibration::load(p)?),
        None => None,
    };
    let source = open_source(&cfg.source, calibration.as_ref())?;
    let desc = source.desc();
    log::info!("source: {}", source.describe());
    let device = choose_device(ov.device.as_deref().unwrap_or(&cfg.pipeline.device))?;
    let model = ov.model.clone().unwrap_or_else(|| cfg.model.path.clone());
    let t0 = std::time::Instant::now();
    debug_assert_eq!(device, "cpu");
    // A calibration must describe the source's frames. The embedded
    // default's (the synthetic camera's) is dropped, with a warning, for a
    // source of another size, e.g. `perceptd replay` of a recording.
    let calibration = match calibration {
        Some(cal) => match cal.check_image_size(desc.width, desc.height) {
            Ok(()) => Some(cal),
            Err(e) if cfg.origin == crate::config::EMBEDDED_ORIGIN => {
                log::warn!("{e}: no ground positions; set [calibration] path for this camera");
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut cpu = CpuBackend::new(&model, desc, cfg.model.input_size, cfg.model.threads)?;
    if let (Some(cal), true) = (&calibration, cfg.calibration.undistort) {
        if cpu.undistort(cal)? {
            log::info!(
                "undistorting through {} ({}) in preprocessing",
                cal.source(),
                cal.distortion_model().ros_name()
            );
        }
    }
    let mut backend: Box<dyn Backend> = Box::new(cpu);
    let kind: DecoderKind = cfg.model.decoder.parse()?;
    let decoder = Decoder::new(
        kind,
        backend.output_shape(),
        None,
        cfg.model.conf_threshold as f64,
        cfg.model.iou_threshold as f64,
        cfg.model.max_detections,
        30_000,
    )?;
    let labels = load_labels(cfg, &model, decoder.num_classes())?;
    // Warm-up: first runs touch every page of the arena and weights.
    let mut frame = vec![0u8; desc.bytes()];
    frame
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 251) as u8);
    let mut out = vec![0f32; backend.output_shape().iter().product()];
    for _ in 0..cfg.pipeline.warmup_frames {
        backend.infer(&frame, &mut out);
    }
    let [iw, ih] = backend.input_size();
    log::info!(
        "model {} ({}x{} input, {} classes) on {} ready in {:.0} ms",
        model.display(),
        iw,
        ih,
        decoder.num_classes(),
        backend.describe(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let target: SinkTarget = ov.output.as_deref().unwrap_or(&cfg.output.target).parse()?;
    let sink = JsonSink::open(target, cfg.output.max_line_bytes)?;
    let letterbox = backend.letterbox();
    let t = &cfg.threads;
    Ok(Pipeline {
        source,
        backend,
        decoder,
        labels,
        sink,
        calibration,
        letterbox,
        ring_slots: cfg.pipeline.ring_slots,
        frames: ov.frames,
        metrics_interval_s: cfg.metrics.interval_s,
        policies: [
            ThreadPolicy {
                cpu: t.capture_cpu,
                fifo_priority: t.capture_priority,
            },
            ThreadPolicy {
                cpu: t.inference_cpu,
                fifo_priority: t.inference_priority,
            },
            ThreadPolicy {
                cpu: t.postprocess_cpu,
                fifo_priority: t.postprocess_priority,
            },
        ],
        metrics: crate::metrics::Metrics::new(),
    })
}
