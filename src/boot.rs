//! Boot: turn a validated [`Config`] into a ready [`Pipeline`]: open the
//! source, load the calibration, build the backend (model planned, weights
//! packed, warm-up run), the decoder, labels and sink. Every failure is one
//! clear error naming the file, field or device. Allocates; runs once.

use crate::backend::{Backend, BackendError, CpuBackend};
use crate::calibration::{Calibration, CalibrationError};
use crate::config::{Config, SourceConfig};
use crate::frame::PixelFormat;
use crate::pipeline::{Pipeline, ThreadPolicy};
use crate::postprocess::track::{Geometry, Tracker};
use crate::postprocess::{Decoder, DecoderKind, Labels, PostprocessError};
use crate::service::{Notifier, ServiceSetup};
use crate::sink::{JsonSink, SinkError, SinkTarget};
use crate::source::paced::Paced;
use crate::source::synthetic::{SyntheticConfig, SyntheticSource};
use crate::source::v4l2::{Absent, OnAdjust, V4l2Config, V4l2Source};
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
    open_source_notifying(src, calibration, &Notifier::disabled())
}

/// [`open_source`], telling systemd while it waits for an absent camera
/// (more start-up time, and why).
fn open_source_notifying(
    src: &SourceConfig,
    calibration: Option<&Calibration>,
    notifier: &Notifier,
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
            absent,
            reconnect_max_ms,
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
                absent: if absent == "wait" {
                    Absent::Wait
                } else {
                    Absent::Fail
                },
                reconnect_max_ms: (*reconnect_max_ms).min(u32::MAX as u64) as u32,
            };
            let status = format!("waiting for camera {}", device.display());
            Box::new(V4l2Source::open_waiting(&cfg, &mut |next_ms| {
                notifier.extend_timeout((next_ms + 5000) * 1000, &status);
            })?)
        }
    })
}

/// Pick the backend per `device` ("auto", "cpu", "cuda") and GPU
/// `cuda_device`: auto takes CUDA when a driver and that GPU are there and
/// logs which and why; "cuda" without CUDA is an error saying why.
pub fn choose_device(device: &str, cuda_device: usize) -> Result<&'static str, BootError> {
    match device {
        "cpu" => Ok("cpu"),
        "auto" => match crate::cuda::probe(cuda_device) {
            Ok(d) => {
                log::info!("device auto: using CUDA on {}", d.describe());
                Ok("cuda")
            }
            Err(e) => {
                log::info!("device auto: using the CPU backend ({e})");
                Ok("cpu")
            }
        },
        "cuda" => match crate::cuda::probe(cuda_device) {
            Ok(_) => Ok("cuda"),
            Err(e) => Err(BootError::Device(format!(
                "device cuda: {e}; use --device cpu or auto"
            ))),
        },
        other => Err(BootError::Device(format!(
            "device \"{other}\": expected auto, cpu or cuda"
        ))),
    }
}

/// The CUDA backend, or for `auto` the CPU one when CUDA fails to boot
/// (missing NVRTC or cuBLAS, an op the GPU cannot run), saying why.
/// The CPU backend, undistorting through `undistort` when given.
fn cpu_backend(
    cfg: &Config,
    model: &Path,
    desc: crate::frame::FrameDesc,
    undistort: Option<&Calibration>,
) -> Result<Box<dyn Backend>, BootError> {
    let mut cpu = CpuBackend::new(model, desc, cfg.model.input_size, cfg.model.threads)?;
    if let Some(cal) = undistort {
        cpu.undistort(cal)?;
    }
    Ok(Box::new(cpu))
}

fn cuda_or_cpu(
    cfg: &Config,
    model: &Path,
    desc: crate::frame::FrameDesc,
    auto: bool,
    undistort: Option<&Calibration>,
) -> Result<Box<dyn Backend>, BootError> {
    let precision = cfg
        .pipeline
        .precision
        .parse()
        .map_err(|e: String| BootError::Config(format!("pipeline.{e}")))?;
    let opts = crate::cuda::backend::CudaOptions {
        ordinal: cfg.pipeline.cuda_device,
        precision,
        cache_dir: cfg.pipeline.kernel_cache.clone(),
    };
    let cuda = crate::cuda::CudaBackend::new(model, desc, cfg.model.input_size, &opts).and_then(
        |mut b| {
            if let Some(cal) = undistort {
                // The GPU preprocessing kernel reads the same table as the
                // CPU letterbox.
                let [w, h] = b.input_size();
                let lb = crate::preprocess::Letterbox::new(desc, w, h)?;
                if let Some(t) = crate::preprocess::RemapTable::build(cal, &lb)? {
                    b.set_remap(&t.map)?;
                }
            }
            Ok(b)
        },
    );
    match cuda {
        Ok(b) => Ok(Box::new(b)),
        Err(e) if auto => {
            log::warn!("device auto: the CUDA backend did not start ({e}); using the CPU backend");
            cpu_backend(cfg, model, desc, undistort)
        }
        Err(e) => Err(e.into()),
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
    let notifier = Notifier::from_env().map_err(|e| BootError::Config(e.to_string()))?;
    let source = open_source_notifying(&cfg.source, calibration.as_ref(), &notifier)?;
    let desc = source.desc();
    log::info!("source: {}", source.describe());
    let requested = ov.device.as_deref().unwrap_or(&cfg.pipeline.device);
    let device = choose_device(requested, cfg.pipeline.cuda_device)?;
    let model = ov.model.clone().unwrap_or_else(|| cfg.model.path.clone());
    let t0 = std::time::Instant::now();
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
    let undistort = calibration.as_ref().filter(|_| cfg.calibration.undistort);
    let mut backend: Box<dyn Backend> = if device == "cuda" {
        cuda_or_cpu(cfg, &model, desc, requested == "auto", undistort)?
    } else {
        cpu_backend(cfg, &model, desc, undistort)?
    };
    if let (Some(cal), true) = (undistort, backend.rectified_input()) {
        log::info!(
            "undistorting through {} ({}) in preprocessing",
            cal.source(),
            cal.distortion_model().ros_name()
        );
    }
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
        backend.infer(usize::MAX, &frame, &mut out);
    }
    backend.prepare_slots(
        cfg.pipeline.ring_slots,
        desc.bytes(),
        backend.output_shape().iter().product(),
    )?;
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
    let tracker = if cfg.tracking.enabled {
        let geometry = calibration.as_ref().map(|c| Geometry {
            focal_px: c.camera_matrix()[(0, 0)],
            camera_height_m: c.translation().z,
        });
        Some(
            Tracker::new(
                &cfg.tracking,
                cfg.model.max_detections,
                decoder.num_classes(),
                geometry,
            )
            .map_err(|e| BootError::Config(e.to_string()))?,
        )
    } else {
        None
    };
    let t = &cfg.threads;
    Ok(Pipeline {
        source,
        backend,
        decoder,
        labels,
        sink,
        calibration,
        tracker,
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
        service: ServiceSetup {
            notifier,
            stage_deadline_ns: cfg.pipeline.stage_deadline_ms.saturating_mul(1_000_000),
            hard_deadline_ns: cfg.pipeline.hard_deadline_ms.saturating_mul(1_000_000),
            rt: cfg.rt,
        },
    })
}
