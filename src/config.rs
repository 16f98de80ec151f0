//! The run configuration: one TOML file (or the embedded default) turned
//! into a validated [`Config`] in one place. Unknown keys and bad values are
//! errors that name the file, the field and the value. Relative paths are
//! resolved against the config file's folder. `builtin:synthetic` (model)
//! and `builtin:front_camera` (calibration) name what the binary carries
//! ([`crate::builtin`]); without `model.path` the built-in model runs, and
//! the embedded default also takes the built-in calibration, so neither
//! depends on the current folder.
//!
//! Every enumerated value is a typed enum read through [`choice`] (one
//! list of accepted spellings per field); outputs are a list (`[[output]]`
//! tables, or one `[output]` table).
//!
//! Boot only; allocates.

mod choice;
mod toml_error;
use toml_error::{culprit_key, names_a_field};

pub use choice::{accepted_of, Choice, ChoiceParser};

use crate::backend::Device;
use crate::cuda::lower::Precision;
use crate::frame::PixelFormat;
use crate::output::json::JsonConfig;
use crate::output::OutputTarget;
use crate::postprocess::DecoderKind;
use crate::source::v4l2::CameraFormat;
use crate::source::v4l2::{Absent, OnAdjust};
use crate::source::y4m::Pace;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The configuration `perceptd run` uses without `--config`: the synthetic
/// camera, the shipped model and the default calibration.
pub const DEFAULT_CONFIG: &str = include_str!("../perceptd.default.toml");

/// [`Config::origin`] of the embedded default.
pub const EMBEDDED_ORIGIN: &str = "<embedded default config>";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{path}: {field} = {value}: {msg}")]
    Invalid {
        path: String,
        field: String,
        value: String,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    /// The memory budget is exceeded (the message names the file).
    #[error("{0}")]
    Budget(String),
    /// A valid config that must not run as it is (the synthetic model on a
    /// real camera): names the file and the field.
    #[error("{path}: {field}: {msg}")]
    Refused {
        path: String,
        field: String,
        msg: String,
    },
}

/// Most warm-up frames (`pipeline.warmup_frames`).
pub const MAX_WARMUP_FRAMES: usize = 100;
/// Largest output line (`output.max_line_bytes`).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// CPUs configured on this machine (the valid `threads.*_cpu` are below
/// it), at least 1.
pub fn cpus_present() -> usize {
    // SAFETY: sysconf reads a system constant; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Absent: the synthetic camera for commands that take any config
    /// (`replay` replaces it); `run` refuses a config without it.
    #[serde(default = "d_source")]
    pub source: SourceConfig,
    /// Absent: the built-in model with its defaults.
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub calibration: CalibrationConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// `[[output]]` tables (or one `[output]` table), in publishing order.
    #[serde(default = "d_outputs", deserialize_with = "one_or_many_outputs")]
    pub output: Vec<OutputConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub threads: ThreadsConfig,
    #[serde(default)]
    pub rt: crate::rt::RtConfig,
    #[serde(default)]
    pub tracking: crate::postprocess::track::TrackingConfig,
    /// Where the config came from (for messages and relative paths).
    #[serde(skip)]
    pub origin: String,
    /// Whether the text has a `[source]` table.
    #[serde(skip)]
    pub source_set: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    Synthetic {
        #[serde(default = "d_seed")]
        seed: u64,
        #[serde(default = "d_width")]
        width: usize,
        #[serde(default = "d_height")]
        height: usize,
        #[serde(default = "d_fps")]
        fps: f64,
        #[serde(default = "d_synth_format")]
        format: PixelFormat,
        /// Fast (lockstep) or realtime (paced at fps, live semantics).
        #[serde(default = "d_fast")]
        pace: Pace,
    },
    V4l2 {
        #[serde(default = "d_device")]
        device: PathBuf,
        /// A raw format with a V4L2 fourcc (`source::v4l2::fourcc`), or
        /// MJPEG.
        #[serde(default = "d_v4l2_format")]
        format: CameraFormat,
        #[serde(default = "d_width")]
        width: usize,
        #[serde(default = "d_height")]
        height: usize,
        #[serde(default = "d_fps")]
        fps: f64,
        #[serde(default = "d_buffers")]
        buffers: usize,
        #[serde(default = "d_timeout_ms")]
        timeout_ms: u64,
        /// When the driver adjusts the format: adapt or refuse.
        #[serde(default = "d_adapt")]
        on_adjust: OnAdjust,
        /// Camera missing at boot: fail (exit 1) or wait (retry with
        /// backoff until it appears).
        #[serde(default = "d_fail")]
        absent: Absent,
        /// Longest pause between reconnection attempts after the camera is
        /// lost or stalls (the backoff doubles from 50 ms up to this).
        #[serde(default = "d_reconnect_max_ms")]
        reconnect_max_ms: u64,
    },
    Y4m {
        path: PathBuf,
        #[serde(default = "d_fast")]
        pace: Pace,
        /// ROS 2 bags: the image topic (`replay --topic`); None: the
        /// bag's only one.
        #[serde(default)]
        topic: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A model file, or `builtin:synthetic`; absent: the built-in model
    /// (which a V4L2 camera refuses, see [`Config::refuse_synthetic_on_camera`]).
    #[serde(default = "d_model_path")]
    pub path: PathBuf,
    /// Whether the config set `path` (`builtin:synthetic` included).
    #[serde(skip)]
    pub path_set: bool,
    /// Class names (any form `postprocess::Labels` reads); default:
    /// `<model stem>.labels` or `labels.txt` next to the model, else the
    /// model's metadata `names`, else the built-in model's names.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// The output head (yolov8, yolo11 and yolov5u share one).
    #[serde(default = "d_decoder")]
    pub decoder: DecoderKind,
    /// The input tensor's geometry, channel order and scale; default
    /// (None): the decoder family's own ([`InputStyle::for_decoder`]).
    #[serde(default)]
    pub preprocess: Option<crate::preprocess::InputStyle>,
    /// `[width, height]` for models with symbolic input dims; default:
    /// the model's metadata `imgsz`.
    #[serde(default)]
    pub input_size: Option<[usize; 2]>,
    #[serde(default = "d_conf")]
    pub conf_threshold: f32,
    #[serde(default = "d_iou")]
    pub iou_threshold: f32,
    #[serde(default = "d_max_det")]
    pub max_detections: usize,
    /// Kernel threads for the CPU backend.
    #[serde(default = "d_model_threads")]
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// ROS camera_info YAML with extrinsics. Unset: no ground positions
    /// (and the synthetic camera uses its built-in front camera).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Undistort in preprocessing (the model sees the rectified image);
    /// false keeps the raw letterbox. No effect without distortion.
    #[serde(default = "d_true")]
    pub undistort: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            path: None,
            undistort: true,
        }
    }
}

fn d_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Frame slots in the ring, all allocated at boot.
    #[serde(default = "d_slots")]
    pub ring_slots: usize,
    #[serde(default = "d_auto")]
    pub device: Device,
    #[serde(default)]
    pub cuda_device: usize,
    /// CUDA backend GEMM precision: fp32, or fp16 (tensor cores, FP32
    /// accumulate).
    #[serde(default = "d_precision")]
    pub precision: Precision,
    /// Where the CUDA backend caches compiled kernels (default:
    /// `$CACHE_DIRECTORY`, `$XDG_CACHE_HOME/perceptd`, `~/.cache/perceptd`).
    #[serde(default)]
    pub kernel_cache: Option<PathBuf>,
    /// Warm-up frames run through the model at boot before frames flow.
    #[serde(default = "d_warmup")]
    pub warmup_frames: usize,
    /// A frame held by one stage (inference, postprocess) longer than this
    /// is counted as a deadline miss; 0 = off.
    #[serde(default)]
    pub stage_deadline_ms: u64,
    /// A frame held by one stage longer than this ends the process with
    /// exit code 5; 0 = off.
    #[serde(default)]
    pub hard_deadline_ms: u64,
    /// Memory the pipeline may allocate at boot (ring, warm-up, source and
    /// preprocessing buffers, model, output lines), checked before it
    /// allocates them (see `budget`).
    #[serde(default = "d_max_memory_mb")]
    pub max_memory_mb: u64,
}

/// One output: its `kind` selects the variant (and its fields, owned by
/// the output's own file under `src/output/`). A table without `kind` is
/// JSON lines, so a pre-`[[output]]` `[output]` table keeps working.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputConfig {
    /// JSON lines to stdout, a file or a UDP peer.
    Json(JsonConfig),
    /// Annotated video: Y4M written natively, other containers via ffmpeg.
    Annotate(crate::output::annotate::AnnotateConfig),
    /// Live view in a browser: page, MJPEG stream, stats JSON.
    Http(crate::output::http::HttpConfig),
    /// Recording of the camera, boxes, scene and metrics as MCAP.
    Mcap(crate::output::mcap_file::McapConfig),
    /// The same channels live over the Foxglove WebSocket protocol.
    Foxglove(crate::output::foxglove::FoxgloveConfig),
}

/// The kind an output table gets without `kind = ...`.
const DEFAULT_OUTPUT_KIND: &str = "json";

fn d_outputs() -> Vec<OutputConfig> {
    vec![OutputConfig::Json(JsonConfig::default())]
}

/// `output` is one table (`[output]`) or an array of tables
/// (`[[output]]`); each table's `kind` defaults to json. Errors name the
/// table (`output[1].target = ...`).
fn one_or_many_outputs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OutputConfig>, D::Error> {
    use serde::de::Error as _;
    let (tables, indexed) = match toml::Value::deserialize(d)? {
        toml::Value::Table(t) => (vec![toml::Value::Table(t)], false),
        toml::Value::Array(a) => (a, true),
        other => {
            return Err(D::Error::custom(format!(
                "output: expected a table ([output]) or tables ([[output]]), got a {}",
                other.type_str()
            )))
        }
    };
    let mut outputs = Vec::with_capacity(tables.len());
    for (i, t) in tables.into_iter().enumerate() {
        let at = if indexed {
            format!("output[{i}]")
        } else {
            "output".into()
        };
        let toml::Value::Table(mut t) = t else {
            return Err(D::Error::custom(format!("{at}: expected a table")));
        };
        t.entry("kind")
            .or_insert_with(|| DEFAULT_OUTPUT_KIND.into());
        let o = OutputConfig::deserialize(toml::Value::Table(t.clone())).map_err(|e| {
            let msg = e.message();
            // serde lost the key inside the tagged table: find it.
            if !names_a_field(msg) {
                if let Some((key, value)) = culprit_key(&t, msg, |t| {
                    OutputConfig::deserialize(toml::Value::Table(t))
                        .err()
                        .map(|e| e.message().to_string())
                }) {
                    return D::Error::custom(format!(
                        "{at}.{key} = {}: {msg}",
                        crate::input::clip(&value)
                    ));
                }
            }
            // `target = "x": why` becomes `output[1].target = "x": why`.
            D::Error::custom(if msg.split_once(" = ").is_some() && names_a_field(msg) {
                format!("{at}.{msg}")
            } else {
                format!("{at}: {msg}")
            })
        })?;
        outputs.push(o);
    }
    Ok(outputs)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds between summary log lines; 0 disables them (the final
    /// summary is always printed).
    #[serde(default = "d_interval")]
    pub interval_s: f64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThreadsConfig {
    /// CPU core per thread; unset = let the scheduler decide.
    #[serde(default)]
    pub capture_cpu: Option<usize>,
    #[serde(default)]
    pub inference_cpu: Option<usize>,
    #[serde(default)]
    pub postprocess_cpu: Option<usize>,
    /// SCHED_FIFO priority (1-99) per thread; unset = normal scheduling.
    #[serde(default)]
    pub capture_priority: Option<i32>,
    #[serde(default)]
    pub inference_priority: Option<i32>,
    #[serde(default)]
    pub postprocess_priority: Option<i32>,
}

impl ModelConfig {
    /// `preprocess`, else the decoder family's own.
    pub fn input_style(&self) -> crate::preprocess::InputStyle {
        self.preprocess
            .unwrap_or_else(|| crate::preprocess::InputStyle::for_decoder(self.decoder))
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: d_model_path(),
            path_set: false,
            labels: None,
            decoder: d_decoder(),
            preprocess: None,
            input_size: None,
            conf_threshold: d_conf(),
            iou_threshold: d_iou(),
            max_detections: d_max_det(),
            threads: d_model_threads(),
        }
    }
}

fn d_model_path() -> PathBuf {
    crate::builtin::MODEL_PATH.into()
}

fn d_source() -> SourceConfig {
    SourceConfig::Synthetic {
        seed: d_seed(),
        width: d_width(),
        height: d_height(),
        fps: d_fps(),
        format: d_synth_format(),
        pace: d_fast(),
    }
}

/// `--input-size WxH` (e.g. `640x384`): `[width, height]`, each 1..=8192.
pub fn parse_input_size(s: &str) -> Result<[usize; 2], String> {
    let bad = || format!("'{s}': expected WIDTHxHEIGHT, each 1..=8192, e.g. 640x384");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
        return Err(bad());
    }
    Ok([w, h])
}

fn d_seed() -> u64 {
    1
}
fn d_width() -> usize {
    640
}
fn d_height() -> usize {
    480
}
fn d_fps() -> f64 {
    30.0
}
fn d_synth_format() -> PixelFormat {
    PixelFormat::Rgb24
}
fn d_v4l2_format() -> CameraFormat {
    CameraFormat::Raw(PixelFormat::Yuyv)
}
fn d_fast() -> Pace {
    Pace::Fast
}
fn d_device() -> PathBuf {
    "/dev/video0".into()
}
fn d_buffers() -> usize {
    4
}
fn d_timeout_ms() -> u64 {
    1000
}
fn d_adapt() -> OnAdjust {
    OnAdjust::Adapt
}
fn d_fail() -> Absent {
    Absent::Fail
}
fn d_reconnect_max_ms() -> u64 {
    5000
}
fn d_decoder() -> DecoderKind {
    DecoderKind::YoloV8
}
fn d_conf() -> f32 {
    0.25
}
fn d_iou() -> f32 {
    0.45
}
fn d_max_det() -> usize {
    100
}
fn d_model_threads() -> usize {
    2
}
fn d_slots() -> usize {
    6
}
fn d_auto() -> Device {
    Device::Auto
}
fn d_precision() -> Precision {
    Precision::Fp32
}
fn d_warmup() -> usize {
    2
}
fn d_max_memory_mb() -> u64 {
    crate::budget::DEFAULT_MAX_MEMORY_MB
}
fn d_interval() -> f64 {
    5.0
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ring_slots: d_slots(),
            device: d_auto(),
            cuda_device: 0,
            precision: d_precision(),
            kernel_cache: None,
            warmup_frames: d_warmup(),
            stage_deadline_ms: 0,
            hard_deadline_ms: 0,
            max_memory_mb: d_max_memory_mb(),
        }
    }
}
impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            interval_s: d_interval(),
        }
    }
}

impl Config {
    /// Parse and validate `text`; `origin` names it in errors and its folder
    /// anchors relative paths.
    /// Text over [`crate::input::MAX_TEXT_BYTES`] or nested deeper than
    /// [`crate::input::MAX_NESTING`] is refused before the TOML parser
    /// sees it.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let io = |msg: String| ConfigError::Io {
            path: origin.to_string(),
            msg,
        };
        crate::input::check_text(text).map_err(|e| io(e.to_string()))?;
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            msg: toml_error::describe_toml_error(text, &e),
        })?;
        c.origin = origin.to_string();
        // Which optional tables and fields the text sets (the typed parse
        // above has already accepted it as TOML).
        if let Ok(raw) = text.parse::<toml::Table>() {
            c.source_set = raw.contains_key("source");
            c.model.path_set = raw.get("model").and_then(|m| m.get("path")).is_some();
        }
        c.resolve_paths(base);
        c.validate()?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::input::read_text(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// The embedded default: the built-in model and calibration (a copy
    /// of the file has no calibration: a real camera needs its own).
    pub fn default_embedded() -> Result<Config, ConfigError> {
        let mut c = Config::parse(DEFAULT_CONFIG, EMBEDDED_ORIGIN, Path::new("."))?;
        c.calibration.path = Some(crate::builtin::CALIBRATION_PATH.into());
        Ok(c)
    }

    /// Boot: a V4L2 camera must not run the built-in synthetic model or
    /// calibration (or a file copy of either) unless the config names them
    /// `builtin:...` to insist. `model` is the model that will run;
    /// `model_flag` says it came from `--model`.
    pub fn refuse_synthetic_on_camera(
        &self,
        model: &Path,
        model_flag: bool,
    ) -> Result<(), ConfigError> {
        if !matches!(self.source, SourceConfig::V4l2 { .. }) {
            return Ok(());
        }
        let insist = crate::builtin::MODEL_PATH;
        let refuse = |field: &str, msg: String| ConfigError::Refused {
            path: self.origin.clone(),
            field: field.into(),
            msg,
        };
        if model_flag {
            if !crate::builtin::is_model(model) && crate::builtin::is_synthetic_model(model) {
                return Err(refuse(
                    "--model",
                    format!(
                        "{} is a copy of the built-in synthetic model, which cannot detect real objects on a V4L2 camera; pass your model (or --model {insist} to insist)",
                        model.display()
                    ),
                ));
            }
        } else if !self.model.path_set {
            return Err(refuse(
                "model.path",
                format!("not set, so the built-in synthetic model would run, and it cannot detect real objects; set model.path to your model (or model.path = \"{insist}\" to insist)"),
            ));
        } else if !crate::builtin::is_model(model) && crate::builtin::is_synthetic_model(model) {
            return Err(refuse(
                "model.path",
                format!(
                    "\"{}\" is a copy of the built-in synthetic model, which cannot detect real objects; set model.path to your model (or model.path = \"{insist}\" to insist)",
                    model.display()
                ),
            ));
        }
        if let Some(p) = &self.calibration.path {
            if !crate::builtin::is_calibration(p) && crate::builtin::is_synthetic_calibration(p) {
                return Err(refuse(
                    "calibration.path",
                    format!(
                        "\"{}\" is the synthetic camera's calibration, not this camera's, so ground positions would be wrong; calibrate your camera (README, \"Calibration\"), remove calibration.path for no ground positions, or set calibration.path = \"{}\" to insist",
                        p.display(),
                        crate::builtin::CALIBRATION_PATH
                    ),
                ));
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() && !crate::builtin::is_builtin(p) {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.model.path);
        if let Some(l) = &mut self.model.labels {
            fix(l);
        }
        if let Some(c) = &mut self.calibration.path {
            if c.as_os_str().is_empty() {
                self.calibration.path = None;
            } else {
                fix(c);
            }
        }
        if let SourceConfig::Y4m { path, .. } = &mut self.source {
            fix(path);
        }
        if let Some(k) = &mut self.pipeline.kernel_cache {
            fix(k);
        }
        for o in &mut self.output {
            match o {
                OutputConfig::Json(j) => {
                    if let OutputTarget::File(p) = &mut j.target {
                        fix(p);
                    }
                }
                OutputConfig::Annotate(a) => fix(&mut a.path),
                OutputConfig::Mcap(m) => fix(&mut m.path),
                OutputConfig::Http(_) | OutputConfig::Foxglove(_) => {}
            }
        }
    }

    fn invalid(&self, field: &str, value: impl ToString, msg: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            field: field.into(),
            value: value.to_string(),
            msg: msg.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if crate::builtin::is_builtin(&self.model.path)
            && !crate::builtin::is_model(&self.model.path)
        {
            return Err(self.invalid(
                "model.path",
                format!("\"{}\"", self.model.path.display()),
                &format!("the built-in model is \"{}\"", crate::builtin::MODEL_PATH),
            ));
        }
        if let Some(p) = &self.calibration.path {
            if crate::builtin::is_builtin(p) && !crate::builtin::is_calibration(p) {
                return Err(self.invalid(
                    "calibration.path",
                    format!("\"{}\"", p.display()),
                    &format!(
                        "the built-in calibration is \"{}\"",
                        crate::builtin::CALIBRATION_PATH
                    ),
                ));
            }
        }
        match &self.source {
            SourceConfig::Synthetic {
                width, height, fps, ..
            } => {
                self.check_size("source", *width, *height)?;
                self.check_fps(*fps)?;
            }
            // (`format` is one of the camera formats by its type.)
            SourceConfig::V4l2 {
                width,
                height,
                fps,
                buffers,
                timeout_ms,
                reconnect_max_ms,
                ..
            } => {
                self.check_size("source", *width, *height)?;
                self.check_fps(*fps)?;
                if !(2..=32).contains(buffers) {
                    return Err(self.invalid("source.buffers", buffers, "expected 2..=32"));
                }
                if !(1..=600_000).contains(timeout_ms) {
                    return Err(self.invalid(
                        "source.timeout_ms",
                        timeout_ms,
                        "expected 1..=600000",
                    ));
                }
                if !(50..=600_000).contains(reconnect_max_ms) {
                    return Err(self.invalid(
                        "source.reconnect_max_ms",
                        reconnect_max_ms,
                        "expected 50..=600000",
                    ));
                }
            }
            SourceConfig::Y4m { path, .. } => {
                if path.as_os_str().is_empty() {
                    return Err(self.invalid("source.path", "\"\"", "expected a Y4M file"));
                }
            }
        }
        if self.model.path.as_os_str().is_empty() {
            return Err(self.invalid("model.path", "\"\"", "expected an ONNX model file"));
        }
        if self
            .model
            .labels
            .as_ref()
            .is_some_and(|l| l.as_os_str().is_empty())
        {
            return Err(self.invalid(
                "model.labels",
                "\"\"",
                "expected a labels file (or leave it unset)",
            ));
        }
        if !(0.0..=1.0).contains(&self.model.conf_threshold) {
            return Err(self.invalid(
                "model.conf_threshold",
                crate::input::num(self.model.conf_threshold.into()),
                "expected 0..1",
            ));
        }
        if !(0.0..=1.0).contains(&self.model.iou_threshold) {
            return Err(self.invalid(
                "model.iou_threshold",
                crate::input::num(self.model.iou_threshold.into()),
                "expected 0..1",
            ));
        }
        if self.model.max_detections == 0 || self.model.max_detections > 10_000 {
            return Err(self.invalid(
                "model.max_detections",
                self.model.max_detections,
                "expected 1..=10000",
            ));
        }
        if self.model.threads == 0 || self.model.threads > 64 {
            return Err(self.invalid("model.threads", self.model.threads, "expected 1..=64"));
        }
        if let Some([w, h]) = self.model.input_size {
            if w == 0 || h == 0 || w > 8192 || h > 8192 {
                return Err(self.invalid(
                    "model.input_size",
                    format!("[{w}, {h}]"),
                    "expected 1..=8192 each",
                ));
            }
        }
        if !(2..=64).contains(&self.pipeline.ring_slots) {
            return Err(self.invalid(
                "pipeline.ring_slots",
                self.pipeline.ring_slots,
                "expected 2..=64",
            ));
        }
        let (stage, hard) = (
            self.pipeline.stage_deadline_ms,
            self.pipeline.hard_deadline_ms,
        );
        if stage > 3_600_000 {
            return Err(self.invalid(
                "pipeline.stage_deadline_ms",
                stage,
                "expected 0 (off) ..= 3600000",
            ));
        }
        if hard > 3_600_000 || (hard != 0 && hard <= stage) {
            return Err(self.invalid(
                "pipeline.hard_deadline_ms",
                hard,
                "expected 0 (off), or more than pipeline.stage_deadline_ms and at most 3600000",
            ));
        }
        if self.pipeline.warmup_frames > MAX_WARMUP_FRAMES {
            return Err(self.invalid(
                "pipeline.warmup_frames",
                self.pipeline.warmup_frames,
                &format!("expected 0..={MAX_WARMUP_FRAMES} (two touch every page)"),
            ));
        }
        if !(16..=crate::budget::MAX_MAX_MEMORY_MB).contains(&self.pipeline.max_memory_mb) {
            return Err(self.invalid(
                "pipeline.max_memory_mb",
                self.pipeline.max_memory_mb,
                &format!("expected 16..={}", crate::budget::MAX_MAX_MEMORY_MB),
            ));
        }
        if self.rt.prefault_stack_kib > crate::rt::MAX_PREFAULT_STACK_KIB {
            return Err(self.invalid(
                "rt.prefault_stack_kib",
                self.rt.prefault_stack_kib,
                "expected 0..=1024 (threads have 2 MiB stacks)",
            ));
        }
        if self.pipeline.cuda_device > 64 {
            return Err(self.invalid(
                "pipeline.cuda_device",
                self.pipeline.cuda_device,
                "expected 0..=64",
            ));
        }
        if self.output.is_empty() {
            return Err(self.invalid("output", "[]", "expected at least one output table"));
        }
        for (i, o) in self.output.iter().enumerate() {
            let at = |field: &str| {
                if self.output.len() == 1 {
                    format!("output.{field}")
                } else {
                    format!("output[{i}].{field}")
                }
            };
            match o {
                OutputConfig::Json(j) => {
                    if let Some((field, value, why)) = j.problem() {
                        return Err(self.invalid(&at(field), value, &why));
                    }
                    if j.max_line_bytes > MAX_LINE_BYTES {
                        return Err(self.invalid(
                            &at("max_line_bytes"),
                            j.max_line_bytes,
                            &format!("expected at most {MAX_LINE_BYTES} (16 MiB)"),
                        ));
                    }
                }
                OutputConfig::Annotate(a) => {
                    if let Some((field, value, why)) = a.problem() {
                        return Err(self.invalid(&at(field), value, &why));
                    }
                }
                OutputConfig::Http(h) => {
                    if let Some((field, value, why)) = h.problem() {
                        return Err(self.invalid(&at(field), value, &why));
                    }
                }
                OutputConfig::Mcap(m) => {
                    if let Some((field, value, why)) = m.problem() {
                        return Err(self.invalid(&at(field), value, &why));
                    }
                }
                OutputConfig::Foxglove(f) => {
                    if let Some((field, value, why)) = f.problem() {
                        return Err(self.invalid(&at(field), value, &why));
                    }
                }
            }
        }
        if !(0.0..=86_400.0).contains(&self.metrics.interval_s) {
            return Err(self.invalid(
                "metrics.interval_s",
                crate::input::num(self.metrics.interval_s),
                "expected 0..=86400 seconds",
            ));
        }
        let cpus = cpus_present();
        for (f, c) in [
            ("threads.capture_cpu", self.threads.capture_cpu),
            ("threads.inference_cpu", self.threads.inference_cpu),
            ("threads.postprocess_cpu", self.threads.postprocess_cpu),
        ] {
            if let Some(c) = c {
                if c >= cpus {
                    return Err(self.invalid(
                        f,
                        c,
                        &format!("this machine has CPUs 0..={}", cpus.saturating_sub(1)),
                    ));
                }
            }
        }
        for (f, p) in [
            ("threads.capture_priority", self.threads.capture_priority),
            (
                "threads.inference_priority",
                self.threads.inference_priority,
            ),
            (
                "threads.postprocess_priority",
                self.threads.postprocess_priority,
            ),
        ] {
            if let Some(p) = p {
                if !(1..=99).contains(&p) {
                    return Err(self.invalid(f, p, "SCHED_FIFO priorities are 1..=99"));
                }
            }
        }
        if let Err(crate::postprocess::track::TrackError::Config { field, value, msg }) =
            self.tracking.check()
        {
            return Err(self.invalid(&format!("tracking.{field}"), value, msg));
        }
        self.check_memory()?;
        Ok(())
    }

    /// The memory budget of the frame sizes the config states (synthetic
    /// and V4L2 sources; a Y4M file's is checked at boot, from its
    /// header). The model is not loaded yet: its input is assumed from
    /// `model.input_size` (or 640x640).
    pub fn memory_budget(&self) -> Option<crate::budget::MemoryBudget> {
        let desc = self.stated_frame()?;
        Some(crate::budget::MemoryBudget::estimate(
            self,
            desc,
            crate::budget::ModelMemory::default(),
        ))
    }

    /// The frames the config states (synthetic and V4L2 sources).
    pub fn stated_frame(&self) -> Option<crate::frame::FrameDesc> {
        match &self.source {
            SourceConfig::Synthetic {
                width,
                height,
                format,
                ..
            } => Some(crate::frame::FrameDesc {
                format: *format,
                width: *width,
                height: *height,
            }),
            // MJPEG: as 4:2:2 (what most USB cameras code) until the first
            // frame says; the boot checks again with the real format.
            SourceConfig::V4l2 {
                width,
                height,
                format,
                ..
            } => Some(crate::frame::FrameDesc {
                format: match format {
                    CameraFormat::Raw(p) => *p,
                    CameraFormat::Mjpeg => PixelFormat::I422,
                },
                width: *width,
                height: *height,
            }),
            SourceConfig::Y4m { .. } => None,
        }
    }

    fn check_memory(&self) -> Result<(), ConfigError> {
        let (Some(b), Some(d)) = (self.memory_budget(), self.stated_frame()) else {
            return Ok(());
        };
        let what = format!("{}x{} {} frames", d.width, d.height, d.format);
        b.check(self.pipeline.max_memory_mb, &self.origin, &what)
            .map_err(|e| ConfigError::Budget(e.to_string()))
    }

    fn check_size(&self, section: &str, w: usize, h: usize) -> Result<(), ConfigError> {
        for (f, v) in [("width", w), ("height", h)] {
            if v == 0 || v > 16384 {
                return Err(self.invalid(&format!("{section}.{f}"), v, "expected 1..=16384"));
            }
        }
        Ok(())
    }

    fn check_fps(&self, fps: f64) -> Result<(), ConfigError> {
        if !(fps > 0.0 && fps <= 1000.0) {
            return Err(self.invalid(
                "source.fps",
                crate::input::num(fps),
                "expected 0 < fps <= 1000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
