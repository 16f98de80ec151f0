//! Boot: turn a validated [`Config`] into a ready [`Pipeline`]: open the
//! source, load the calibration, build the backend (model planned, weights
//! packed, warm-up run) and the postprocess chain (decoder, labels, ground
//! stage, outputs). Every failure is one
//! clear error naming the file, field or device. Allocates; runs once.

use crate::backend::{Backend, BackendError, CpuBackend, Device};
use crate::budget::{MemoryBudget, ModelMemory};
use crate::calibration::{Calibration, CalibrationError};
use crate::config::{Config, OutputConfig, SourceConfig};
use crate::output::annotate::AnnotateConfig;
use crate::output::json::{JsonConfig, DEFAULT_LINE_BYTES};
use crate::output::{OutputContext, OutputError, OutputTarget, Outputs};
use crate::pipeline::{Pipeline, ThreadPolicy};
use crate::postprocess::track::{Geometry, Tracker};
use crate::postprocess::{
    refine_stages, Chain, DecodeStage, Decoder, DecoderKind, Labels, PostprocessError,
};
use crate::service::{Notifier, ServiceSetup};
use crate::source::paced::Paced;
use crate::source::synthetic::{SyntheticConfig, SyntheticSource};
use crate::source::v4l2::{V4l2Config, V4l2Source};
use crate::source::y4m::Pace;
use crate::source::{Pacing, Source, SourceError};
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
    Output(#[from] OutputError),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
    #[error("{0}")]
    Device(String),
    /// The source's frames cannot be preprocessed for the model; `what`
    /// names the frames and the file or device they come from.
    #[error("{what}: {msg}")]
    Frames { what: String, msg: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Refused(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Model(#[from] crate::engine::EngineError),
}

/// Command-line overrides of the config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub frames: Option<u64>,
    pub device: Option<Device>,
    pub model: Option<PathBuf>,
    /// `--input-size WxH`: `[width, height]` for models with symbolic dims
    /// (wins over `model.input_size` and the model's metadata).
    pub input_size: Option<[usize; 2]>,
    /// `--output T`: JSON lines go to T only. The config's JSON outputs
    /// are replaced by one to T (at the first one's place, with its line
    /// size); outputs of other kinds stay.
    pub output: Option<String>,
    /// `--annotate PATH`: an annotated video output added to the config's.
    pub annotate: Option<PathBuf>,
}

/// The outputs to build: the config's, with `--output` applied.
fn outputs_with_override(
    cfg: &[OutputConfig],
    output: Option<&str>,
    annotate: Option<&Path>,
) -> Result<Vec<OutputConfig>, BootError> {
    let mut out = outputs_with_json_override(cfg, output)?;
    if let Some(p) = annotate {
        let a = AnnotateConfig::to_path(p.to_path_buf());
        if let Some((field, value, why)) = a.problem() {
            return Err(BootError::Config(format!(
                "--annotate: {field} = {value}: {why}"
            )));
        }
        out.push(OutputConfig::Annotate(a));
    }
    Ok(out)
}

fn outputs_with_json_override(
    cfg: &[OutputConfig],
    output: Option<&str>,
) -> Result<Vec<OutputConfig>, BootError> {
    let Some(t) = output else {
        return Ok(cfg.to_vec());
    };
    let target: OutputTarget = t.parse()?;
    // The override's target replaces the first table's, rotation included
    // (it belongs to that table's file).
    let mut json = Some(JsonConfig {
        target,
        max_line_bytes: DEFAULT_LINE_BYTES,
        ..JsonConfig::default()
    });
    let mut out = Vec::with_capacity(cfg.len() + 1);
    for o in cfg {
        match o {
            OutputConfig::Json(j) => {
                if let Some(mut first) = json.take() {
                    first.max_line_bytes = j.max_line_bytes;
                    out.push(OutputConfig::Json(first));
                }
            }
            other => out.push(other.clone()),
        }
    }
    if let Some(j) = json {
        out.insert(0, OutputConfig::Json(j));
    }
    Ok(out)
}

/// Open the configured source. `calibration` drives the synthetic camera.
pub fn open_source(
    src: &SourceConfig,
    calibration: Option<&Calibration>,
    max_memory_mb: u64,
) -> Result<Box<dyn Source>, BootError> {
    open_source_notifying(src, calibration, max_memory_mb, &Notifier::disabled())
}

/// [`open_source`], telling systemd while it waits for an absent camera
/// (more start-up time, and why).
fn open_source_notifying(
    src: &SourceConfig,
    calibration: Option<&Calibration>,
    max_memory_mb: u64,
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
                format: *format,
                fps: *fps,
                ..SyntheticConfig::front_camera(*seed)
            };
            let cfg = SyntheticConfig { calibration, ..cfg };
            let s = SyntheticSource::new(cfg)?;
            match pace {
                Pace::Realtime => Box::new(Paced::new(s, *fps)),
                Pace::Fast => Box::new(s),
            }
        }
        SourceConfig::Y4m { path, pace, topic } => {
            crate::source::replay::open_topic(path, *pace, max_memory_mb, topic.as_deref())?
        }
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
                format: *format,
                width: *width,
                height: *height,
                fps: fps.round() as u32,
                buffers: *buffers as u32,
                timeout_ms: (*timeout_ms).min(u32::MAX as u64) as u32,
                on_adjust: *on_adjust,
                absent: *absent,
                reconnect_max_ms: (*reconnect_max_ms).min(u32::MAX as u64) as u32,
                max_memory_mb,
            };
            let status = format!("waiting for camera {}", device.display());
            Box::new(V4l2Source::open_waiting(&cfg, &mut |next_ms| {
                notifier.extend_timeout((next_ms + 5000) * 1000, &status);
            })?)
        }
    })
}

/// Pick the backend per `device` and GPU `cuda_device`: auto takes CUDA
/// when a driver and that GPU are there and logs which and why; cuda
/// without CUDA is an error saying why. Returns Cpu or Cuda.
pub fn choose_device(device: Device, cuda_device: usize) -> Result<Device, BootError> {
    match device {
        Device::Cpu => Ok(Device::Cpu),
        Device::Auto => match crate::cuda::probe(cuda_device) {
            Ok(d) => {
                log::info!("device auto: using CUDA on {}", d.describe());
                Ok(Device::Cuda)
            }
            Err(e) => {
                log::info!("device auto: using the CPU backend ({e})");
                Ok(Device::Cpu)
            }
        },
        Device::Cuda => match crate::cuda::probe(cuda_device) {
            Ok(_) => Ok(Device::Cuda),
            Err(e) => Err(BootError::Device(format!(
                "device cuda: {e}; use --device cpu or auto"
            ))),
        },
    }
}

/// The CPU backend, undistorting through `undistort` when given.
/// The CPU backend; its planned model may use `model_room` bytes of host
/// memory (what the memory budget leaves), checked before its arena is
/// allocated.
fn cpu_backend(
    cfg: &Config,
    model: &Path,
    desc: crate::frame::FrameDesc,
    undistort: Option<&Calibration>,
    model_room: u64,
) -> Result<Box<dyn Backend>, BootError> {
    let limits = crate::engine::Limits {
        max_plan_bytes: model_room,
        ..Default::default()
    };
    let mut cpu = CpuBackend::new_within(
        model,
        desc,
        cfg.model.input_size,
        cfg.model.threads,
        cfg.model.input_style(),
        &limits,
    )?;
    if let Some(cal) = undistort {
        cpu.undistort(cal)?;
    }
    Ok(Box::new(cpu))
}

/// The frame the warm-up runs (a fixed ramp).
fn warmup_frame(desc: crate::frame::FrameDesc) -> Vec<u8> {
    (0..desc.bytes()).map(|i| (i % 251) as u8).collect()
}

/// The CUDA backend through `gpu`, started as far as the first frame:
/// built, remap set, ring slots prepared (pinned memory, one graph each),
/// and every graph launched once with its errors returned, so that any GPU
/// failure before the first frame is an error here (which `auto` turns
/// into the CPU backend), never a GPU fault in the frame loop. On error
/// everything it built is freed.
pub fn start_cuda(
    gpu: &'static dyn crate::cuda::driver::Gpu,
    cfg: &Config,
    model: &Path,
    desc: crate::frame::FrameDesc,
    undistort: Option<&Calibration>,
) -> Result<crate::cuda::CudaBackend, BootError> {
    let opts = crate::cuda::backend::CudaOptions {
        ordinal: cfg.pipeline.cuda_device,
        precision: cfg.pipeline.precision,
        cache_dir: cfg.pipeline.kernel_cache.clone(),
        style: cfg.model.input_style(),
    };
    let mut b = crate::cuda::CudaBackend::new_on(gpu, model, desc, cfg.model.input_size, &opts)?;
    if let Some(cal) = undistort {
        // The GPU preprocessing kernel reads the same table as the CPU
        // letterbox.
        let [w, h] = b.input_size();
        let lb = crate::preprocess::Letterbox::with_style(desc, w, h, cfg.model.input_style())
            .map_err(BackendError::from)?;
        if let Some(t) =
            crate::preprocess::RemapTable::build(cal, &lb).map_err(BackendError::from)?
        {
            b.set_remap(&t.map).map_err(BackendError::from)?;
        }
    }
    let out_len = b.output_shape().iter().product();
    b.prepare_slots(cfg.pipeline.ring_slots, desc.bytes(), out_len)?;
    b.warm_up(cfg.pipeline.warmup_frames, &warmup_frame(desc))
        .map_err(BackendError::from)?;
    Ok(b)
}

/// The CUDA backend, or for `auto` the CPU one when CUDA fails anywhere
/// before the first frame (missing NVRTC or cuBLAS, an op the GPU cannot
/// run, a failing first launch), saying why. `true`: the backend is
/// already warmed up and its ring slots prepared.
fn cuda_or_cpu(
    gpu: &'static dyn crate::cuda::driver::Gpu,
    cfg: &Config,
    model: &Path,
    desc: crate::frame::FrameDesc,
    auto: bool,
    undistort: Option<&Calibration>,
    model_room: u64,
) -> Result<(Box<dyn Backend>, bool), BootError> {
    match start_cuda(gpu, cfg, model, desc, undistort) {
        Ok(b) => Ok((Box::new(b), true)),
        Err(e) if auto => {
            log::warn!("device auto: the CUDA backend did not start ({e}); using the CPU backend");
            Ok((cpu_backend(cfg, model, desc, undistort, model_room)?, false))
        }
        Err(e) => Err(e),
    }
}

/// The class names, first found of: `model.labels`; `<stem>.labels` or
/// `labels.txt` next to the model file; the model's metadata `names`; the
/// built-in model's names. Else `class0`.. with a warning. Logs which.
/// The decoder for this model: `end2end` when the Ultralytics metadata
/// says `end2end = True` (YOLOv10, YOLO26 exports: their `[1, N, 6]` output
/// would otherwise pass for a one-class `yolov5` head), `rtdetr` when it
/// says `head = RTDETRDecoder`, else the config's.
pub fn decoder_kind(
    configured: DecoderKind,
    meta: &crate::engine::onnx::Ultralytics,
    model: &Path,
) -> DecoderKind {
    if meta.head.as_deref() == Some("RTDETRDecoder") && configured != DecoderKind::RtDetr {
        log::info!(
            "decoder rtdetr (normalised boxes, no NMS) from {} metadata 'head'",
            model.display()
        );
        return DecoderKind::RtDetr;
    }
    if meta.end2end == Some(true) && configured != DecoderKind::End2End {
        log::info!(
            "decoder end2end (NMS-free rows) from {} metadata 'end2end'",
            model.display()
        );
        return DecoderKind::End2End;
    }
    configured
}

/// The class names; `classes` is the output's class count when its shape
/// says it (not for `end2end` heads, whose count the names give).
fn load_labels(
    cfg: &Config,
    model: &Path,
    meta: &crate::engine::onnx::Ultralytics,
    classes: Option<usize>,
) -> Result<Labels, BootError> {
    let checked = |l: Labels, from: String| -> Result<Labels, BootError> {
        if let Some(classes) = classes {
            l.check_classes(classes)
                .map_err(|e| PostprocessError::Labels {
                    path: from.clone(),
                    msg: e.to_string(),
                })?;
        }
        log::info!("labels: {} classes from {from}", l.len());
        Ok(l)
    };
    if let Some(p) = &cfg.model.labels {
        return checked(Labels::load(p)?, format!("{} (model.labels)", p.display()));
    }
    let beside = [
        model.with_extension("labels"),
        model.with_file_name("labels.txt"),
    ];
    if !crate::builtin::is_builtin(model) {
        if let Some(p) = beside.iter().find(|p| p.exists()) {
            return checked(Labels::load(p)?, p.display().to_string());
        }
    }
    if let Some(names) = &meta.names {
        let from = format!("{} metadata 'names'", model.display());
        return checked(Labels::parse_text(names, &from)?, from);
    }
    if crate::builtin::is_model(model) {
        let from = format!("{} (embedded labels)", model.display());
        return checked(Labels::parse_text(crate::builtin::LABELS, &from)?, from);
    }
    let Some(classes) = classes else {
        return Err(BootError::Config(format!(
            "{}: an end-to-end ([1, N, 6]) or RT-DETR output does not say how many classes there are, and there are no labels (no model.labels, no {}, no metadata 'names'); set model.labels",
            model.display(),
            beside[0].display()
        )));
    };
    log::warn!(
        "{}: no labels (no model.labels, no {}, no metadata 'names'); naming classes class0..",
        model.display(),
        beside[0].display()
    );
    Ok(Labels::fallback(classes))
}

/// An output that is one of the input files (`--output model.onnx`, a
/// config writing into its own calibration, stdout redirected onto the Y4M)
/// would append detections to it and corrupt it: refused at boot, in one
/// line naming both. Files are compared by device and inode, so links and
/// other spellings of the same path are caught; an output that does not
/// exist yet cannot be an input.
fn refuse_outputs_onto_inputs(
    cfg: &Config,
    ov: &Overrides,
    outputs: &[OutputConfig],
) -> Result<(), BootError> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: &std::fs::Metadata| (m.is_file()).then_some((m.dev(), m.ino()));
    let model = ov.model.clone().unwrap_or_else(|| cfg.model.path.clone());
    let mut inputs: Vec<(&str, PathBuf)> = vec![("model", model.clone())];
    if cfg.origin != crate::config::EMBEDDED_ORIGIN {
        inputs.push(("config", PathBuf::from(&cfg.origin)));
    }
    if let Some(p) = &cfg.calibration.path {
        inputs.push(("calibration", p.clone()));
    }
    if let SourceConfig::Y4m { path, .. } = &cfg.source {
        inputs.push(("recording", path.clone()));
    }
    match &cfg.model.labels {
        Some(p) => inputs.push(("labels file", p.clone())),
        None => {
            inputs.push(("labels file", model.with_extension("labels")));
            inputs.push(("labels file", model.with_file_name("labels.txt")));
        }
    }
    let inputs: Vec<_> = inputs
        .into_iter()
        .filter_map(|(what, p)| {
            let m = std::fs::metadata(&p).ok()?;
            Some((what, p, id(&m)?))
        })
        .collect();
    for o in outputs {
        let (out, name) = match o {
            OutputConfig::Json(j) => (
                match &j.target {
                    OutputTarget::File(p) => std::fs::metadata(p).ok(),
                    // `> input` in the shell: stdout is the input file itself.
                    OutputTarget::Stdout => std::fs::metadata("/proc/self/fd/1").ok(),
                    OutputTarget::Udp(_) => None,
                },
                j.target.to_string(),
            ),
            OutputConfig::Annotate(a) => (
                std::fs::metadata(&a.path).ok(),
                a.path.display().to_string(),
            ),
            OutputConfig::Mcap(m) => (
                std::fs::metadata(&m.path).ok(),
                m.path.display().to_string(),
            ),
            OutputConfig::Http(_) | OutputConfig::Foxglove(_) => continue,
        };
        let Some(out) = out.as_ref().and_then(id) else {
            continue;
        };
        if let Some((what, p, _)) = inputs.iter().find(|(_, _, i)| *i == out) {
            return Err(BootError::Config(format!(
                "output {name}: is the {what} {} (an input); refusing to write detections into it",
                p.display()
            )));
        }
    }
    Ok(())
}

/// What the model's metadata says (Ultralytics keys), and the input size
/// to bind: `--input-size`, else `model.input_size`, else metadata
/// `imgsz`. Logs where the size came from. Refuses heads perceptd cannot
/// decode (a task other than detect).
pub fn model_facts(
    model: &Path,
    flag: Option<[usize; 2]>,
    config: Option<[usize; 2]>,
) -> Result<(crate::engine::onnx::Ultralytics, Option<[usize; 2]>), BootError> {
    let shown = model.display().to_string();
    let meta = crate::engine::onnx::read_model_metadata(model, &crate::engine::Limits::default())?
        .ultralytics(&shown)?;
    if let Some(t) = meta.task.as_deref().filter(|t| *t != "detect") {
        return Err(BootError::Config(format!(
            "{shown}: metadata task = {t:?}: perceptd decodes detection models only (task \"detect\")"
        )));
    }
    let size = match (flag, config, meta.imgsz) {
        (Some(s), _, _) => {
            log::info!("model input size {}x{} from --input-size", s[0], s[1]);
            Some(s)
        }
        (None, Some(s), _) => {
            log::info!("model input size {}x{} from model.input_size", s[0], s[1]);
            Some(s)
        }
        (None, None, Some(s)) => {
            log::info!(
                "model input size {}x{} from {shown} metadata 'imgsz'",
                s[0],
                s[1]
            );
            Some(s)
        }
        (None, None, None) => None,
    };
    Ok((meta, size))
}

/// Build everything the frame loop needs. Boot only.
pub fn boot(cfg: &Config, ov: &Overrides) -> Result<Pipeline, BootError> {
    // A bad `--output` fails before the slow parts of boot.
    let output_cfgs =
        outputs_with_override(&cfg.output, ov.output.as_deref(), ov.annotate.as_deref())?;
    // The budget and the checks below see the outputs that will be built.
    let with_outputs = (ov.output.is_some() || ov.annotate.is_some()).then(|| {
        let mut c = cfg.clone();
        c.output = output_cfgs.clone();
        c
    });
    let cfg = with_outputs.as_ref().unwrap_or(cfg);
    let model = ov.model.clone().unwrap_or_else(|| cfg.model.path.clone());
    cfg.refuse_synthetic_on_camera(&model, ov.model.is_some())?;
    let (meta, input_size) = model_facts(&model, ov.input_size, cfg.model.input_size)?;
    // The decoder (and so the default preprocessing) may come from the
    // model's metadata.
    let kind = decoder_kind(cfg.model.decoder, &meta, &model);
    let sized = (input_size != cfg.model.input_size || kind != cfg.model.decoder).then(|| {
        let mut c = cfg.clone();
        c.model.input_size = input_size;
        c.model.decoder = kind;
        c
    });
    let cfg = sized.as_ref().unwrap_or(cfg);
    refuse_outputs_onto_inputs(cfg, ov, &output_cfgs)?;
    let calibration = match &cfg.calibration.path {
        Some(p) => {
            let c = Calibration::load(p)?;
            log::info!("calibration: {}", crate::builtin::describe(p));
            Some(c)
        }
        None => {
            if matches!(cfg.source, SourceConfig::V4l2 { .. }) {
                log::warn!(
                    "{}: no calibration.path: detections get no ground positions",
                    cfg.origin
                );
            }
            None
        }
    };
    let notifier = Notifier::from_env().map_err(|e| BootError::Config(e.to_string()))?;
    let source = open_source_notifying(
        &cfg.source,
        calibration.as_ref(),
        cfg.pipeline.max_memory_mb,
        &notifier,
    )?;
    let desc = source.desc();
    log::info!("source: {}", source.describe());
    // Before the model, the ring or the warm-up frame is allocated: the
    // frame size may come from a file's header.
    let what = format!(
        "{}x{} {} frames from {}",
        desc.width,
        desc.height,
        desc.format,
        source.describe()
    );
    let mut before_model = MemoryBudget::estimate(cfg, desc, ModelMemory::default());
    before_model.source = source.buffer_bytes().unwrap_or(before_model.source);
    before_model.check(cfg.pipeline.max_memory_mb, &cfg.origin, &what)?;
    let model_room = before_model.room(cfg.pipeline.max_memory_mb);
    let requested = ov.device.unwrap_or(cfg.pipeline.device);
    let device = choose_device(requested, cfg.pipeline.cuda_device)?;
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
    let name_frames = |e: BootError| match e {
        BootError::Backend(BackendError::Preprocess(p)) => BootError::Frames {
            what: what.clone(),
            msg: p.to_string(),
        },
        BootError::Backend(BackendError::Engine(
            ref plan @ crate::engine::EngineError::PlanLimit {
                arena,
                scratch,
                constants,
                ..
            },
        )) => BootError::Budget(
            before_model
                .with_model(arena + scratch + constants)
                .exceeded(
                    cfg.pipeline.max_memory_mb,
                    &cfg.origin,
                    &format!("{what} through {} ({plan})", model.display()),
                ),
        ),
        e => e,
    };
    let (mut backend, prepared) = if device == Device::Cuda {
        let gpu = &crate::cuda::driver::CUDA;
        let auto = requested == Device::Auto;
        cuda_or_cpu(gpu, cfg, &model, desc, auto, undistort, model_room).map_err(name_frames)?
    } else {
        (
            cpu_backend(cfg, &model, desc, undistort, model_room).map_err(name_frames)?,
            false,
        )
    };
    let style = cfg.model.input_style();
    log::info!(
        "preprocessing: {style}: {} ({})",
        style.describe(),
        if cfg.model.preprocess.is_some() {
            "model.preprocess"
        } else {
            "the decoder's default"
        }
    );
    if let (Some(cal), true) = (undistort, backend.rectified_input()) {
        log::info!(
            "undistorting through {} ({}) in preprocessing",
            cal.source(),
            cal.distortion_model().ros_name()
        );
    }
    // Again with the planned model, before the warm-up and the ring.
    let mut budget = MemoryBudget::estimate(
        cfg,
        desc,
        ModelMemory {
            input: Some(backend.input_size()),
            output_len: backend.output_shape().iter().product(),
            bytes: backend.model_bytes(),
        },
    );
    budget.source = source.buffer_bytes().unwrap_or(budget.source);
    budget.check(cfg.pipeline.max_memory_mb, &cfg.origin, &what)?;
    log::info!(
        "memory budget: {} (limit {} MiB)",
        budget.describe(),
        cfg.pipeline.max_memory_mb
    );
    // An end-to-end head's output does not say how many classes there
    // are: the labels do, and the decoder checks class ids against them.
    let (decoder, labels) = if matches!(kind, DecoderKind::End2End | DecoderKind::RtDetr) {
        let labels = load_labels(cfg, &model, &meta, None)?;
        let d = Decoder::new(
            kind,
            backend.output_shape(),
            Some(labels.len()),
            cfg.model.conf_threshold as f64,
            cfg.model.iou_threshold as f64,
            cfg.model.max_detections,
            30_000,
        )?
        .with_input_size(backend.input_size())?;
        (d, labels)
    } else {
        let d = Decoder::new(
            kind,
            backend.output_shape(),
            None,
            cfg.model.conf_threshold as f64,
            cfg.model.iou_threshold as f64,
            cfg.model.max_detections,
            30_000,
        )?
        .with_input_size(backend.input_size())?;
        let labels = load_labels(cfg, &model, &meta, Some(d.num_classes()))?;
        (d, labels)
    };
    if !prepared {
        // Warm-up: first runs touch every page of the arena and weights.
        let frame = warmup_frame(desc);
        let mut out = vec![0f32; backend.output_shape().iter().product()];
        for _ in 0..cfg.pipeline.warmup_frames {
            backend.infer(usize::MAX, &frame, &mut out);
        }
        backend.prepare_slots(
            cfg.pipeline.ring_slots,
            desc.bytes(),
            backend.output_shape().iter().product(),
        )?;
    }
    let [iw, ih] = backend.input_size();
    log::info!(
        "model {} ({}x{} input, {} classes) on {} ready in {:.0} ms",
        crate::builtin::describe(&model),
        iw,
        ih,
        decoder.num_classes(),
        backend.describe(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let tracker = if cfg.tracking.enabled {
        let geometry = calibration.as_ref().map(|c| Geometry {
            focal_px: c.camera_matrix()[(0, 0)],
            camera_height_m: c.translation().z,
        });
        let t = Tracker::new(
            &cfg.tracking,
            cfg.model.max_detections,
            decoder.num_classes(),
            geometry,
            desc.width,
        )
        .map_err(|e| BootError::Config(format!("{}: {e}", cfg.origin)))?;
        Some(t)
    } else {
        None
    };
    let outputs = Outputs::build(
        &output_cfgs,
        &OutputContext {
            desc,
            lockstep: source.pacing() == Pacing::Lockstep,
            labels: labels.clone(),
            calibration: calibration.clone(),
            max_detections: cfg.model.max_detections,
        },
    )?;
    let chain = Chain::build(
        DecodeStage::new(decoder, backend.letterbox()),
        refine_stages(calibration.as_ref(), backend.rectified_input(), tracker),
        labels,
        outputs,
    );
    log::info!("postprocess: {}", chain.describe());
    let t = &cfg.threads;
    Ok(Pipeline {
        source,
        backend,
        chain,
        calibration,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::emu_gpu::{EmuGpu, Live};
    use crate::frame::{FrameDesc, PixelFormat};

    fn small() -> (Config, PathBuf, FrameDesc) {
        let mut cfg = Config::default_embedded().unwrap();
        cfg.model.input_size = Some([64, 64]);
        cfg.pipeline.ring_slots = 2;
        cfg.pipeline.warmup_frames = 1;
        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx");
        let desc = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 64,
            height: 48,
        };
        (cfg, model, desc)
    }

    /// `auto` falls back to the CPU when the first graph launch fails (it
    /// used to reach the frame loop's GPU fault, exit 6) or when preparing
    /// the ring slots fails, and frees everything the CUDA backend built.
    #[test]
    fn auto_falls_back_on_a_failing_first_launch_or_slot_and_frees_the_gpu() {
        let (cfg, model, desc) = small();
        let ok = EmuGpu::new(false);
        let (b, prepared) = cuda_or_cpu(ok, &cfg, &model, desc, true, None, u64::MAX).unwrap();
        assert!(
            prepared && b.describe().contains("emulated"),
            "{}",
            b.describe()
        );
        drop(b);
        assert_eq!(ok.live(), Live::default());

        let launch = EmuGpu::new(false);
        launch.faults.lock().unwrap().graph_launch = true;
        let slot = EmuGpu::new(false);
        // Host allocations 2.. are the ring slots (0 and 1: staging).
        slot.faults.lock().unwrap().host_alloc = Some(2);
        for gpu in [launch, slot] {
            let e = start_cuda(gpu, &cfg, &model, desc, None).err().unwrap();
            assert!(e.to_string().contains("CUDA"), "{e}");
            assert_eq!(gpu.live(), Live::default(), "after: {e}");
            let (b, prepared) = cuda_or_cpu(gpu, &cfg, &model, desc, true, None, u64::MAX).unwrap();
            assert!(
                !prepared && b.describe().starts_with("cpu"),
                "{}",
                b.describe()
            );
            assert!(cuda_or_cpu(gpu, &cfg, &model, desc, false, None, u64::MAX).is_err());
            assert_eq!(gpu.live(), Live::default());
        }
    }
}
