//! The run configuration: one TOML file (or the embedded default) turned
//! into a validated [`Config`] in one place. Unknown keys and bad values are
//! errors that name the file, the field and the value. Relative paths are
//! resolved against the config file's folder (the current folder for the
//! embedded default).
//!
//! Boot only; allocates.

use serde::Deserialize;
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
    #[error("{path}: cannot read: {msg}")]
    Io { path: String, msg: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub calibration: CalibrationConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub output: OutputConfig,
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
        format: String,
        /// "fast" (lockstep) or "realtime" (paced at fps, live semantics).
        #[serde(default = "d_fast")]
        pace: String,
    },
    V4l2 {
        #[serde(default = "d_device")]
        device: PathBuf,
        #[serde(default = "d_v4l2_format")]
        format: String,
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
        /// "adapt" or "refuse" when the driver adjusts the format.
        #[serde(default = "d_adapt")]
        on_adjust: String,
        /// Camera missing at boot: "fail" (exit 1) or "wait" (retry with
        /// backoff until it appears).
        #[serde(default = "d_fail")]
        absent: String,
        /// Longest pause between reconnection attempts after the camera is
        /// lost or stalls (the backoff doubles from 50 ms up to this).
        #[serde(default = "d_reconnect_max_ms")]
        reconnect_max_ms: u64,
    },
    Y4m {
        path: PathBuf,
        /// "fast" (lockstep) or "realtime".
        #[serde(default = "d_fast")]
        pace: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub path: PathBuf,
    /// Class names, one per line; default: `<model stem>.labels` next to
    /// the model.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// "yolov8" (also YOLO11, YOLOv5u) or "yolov5".
    #[serde(default = "d_decoder")]
    pub decoder: String,
    /// `[width, height]` for models with symbolic input dims.
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
    /// "auto", "cpu" or "cuda".
    #[serde(default = "d_auto")]
    pub device: String,
    #[serde(default)]
    pub cuda_device: usize,
    /// CUDA backend GEMM precision: "fp32", or "fp16" (tensor cores, FP32
    /// accumulate).
    #[serde(default = "d_precision")]
    pub precision: String,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// "stdout", a file path, or "udp://HOST:PORT".
    #[serde(default = "d_stdout")]
    pub target: String,
    /// Bytes reserved at boot for one JSON line.
    #[serde(default = "d_line_bytes")]
    pub max_line_bytes: usize,
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
fn d_synth_format() -> String {
    "rgb24".into()
}
fn d_v4l2_format() -> String {
    "yuyv".into()
}
fn d_fast() -> String {
    "fast".into()
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
fn d_adapt() -> String {
    "adapt".into()
}
fn d_fail() -> String {
    "fail".into()
}
fn d_reconnect_max_ms() -> u64 {
    5000
}
fn d_decoder() -> String {
    "yolov8".into()
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
fn d_auto() -> String {
    "auto".into()
}
fn d_precision() -> String {
    "fp32".into()
}
fn d_warmup() -> usize {
    2
}
fn d_stdout() -> String {
    "stdout".into()
}
fn d_line_bytes() -> usize {
    64 * 1024
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
        }
    }
}
impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            target: d_stdout(),
            max_line_bytes: d_line_bytes(),
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
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            msg: one_line(&e.to_string()),
        })?;
        c.origin = origin.to_string();
        c.resolve_paths(base);
        c.validate()?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// The embedded default, paths relative to the current folder.
    pub fn default_embedded() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, EMBEDDED_ORIGIN, Path::new("."))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
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
        if !matches!(self.output.target.as_str(), "stdout" | "-")
            && !self.output.target.starts_with("udp://")
        {
            let mut p = PathBuf::from(&self.output.target);
            fix(&mut p);
            self.output.target = p.display().to_string();
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
        let one_of = |field: &str, v: &str, allowed: &[&str]| -> Result<(), ConfigError> {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err(self.invalid(
                    field,
                    format!("\"{v}\""),
                    &format!("expected one of {}", allowed.join(", ")),
                ))
            }
        };
        match &self.source {
            SourceConfig::Synthetic {
                width,
                height,
                fps,
                format,
                pace,
                ..
            } => {
                self.check_size("source", *width, *height)?;
                self.check_fps(*fps)?;
                one_of("source.format", format, &["rgb24", "yuyv"])?;
                one_of("source.pace", pace, &["fast", "realtime"])?;
            }
            SourceConfig::V4l2 {
                width,
                height,
                fps,
                format,
                buffers,
                timeout_ms,
                on_adjust,
                absent,
                reconnect_max_ms,
                ..
            } => {
                self.check_size("source", *width, *height)?;
                self.check_fps(*fps)?;
                one_of(
                    "source.format",
                    format,
                    &["yuyv", "uyvy", "nv12", "grey", "rgb24"],
                )?;
                one_of("source.on_adjust", on_adjust, &["adapt", "refuse"])?;
                if !(2..=32).contains(buffers) {
                    return Err(self.invalid("source.buffers", buffers, "expected 2..=32"));
                }
                if *timeout_ms == 0 {
                    return Err(self.invalid("source.timeout_ms", timeout_ms, "must be positive"));
                }
                one_of("source.absent", absent, &["fail", "wait"])?;
                if !(50..=600_000).contains(reconnect_max_ms) {
                    return Err(self.invalid(
                        "source.reconnect_max_ms",
                        reconnect_max_ms,
                        "expected 50..=600000",
                    ));
                }
            }
            SourceConfig::Y4m { pace, .. } => one_of("source.pace", pace, &["fast", "realtime"])?,
        }
        one_of(
            "model.decoder",
            &self.model.decoder,
            &["yolov8", "yolo11", "yolov5u", "yolov5"],
        )?;
        if !(0.0..=1.0).contains(&self.model.conf_threshold) {
            return Err(self.invalid(
                "model.conf_threshold",
                self.model.conf_threshold,
                "expected 0..1",
            ));
        }
        if !(0.0..=1.0).contains(&self.model.iou_threshold) {
            return Err(self.invalid(
                "model.iou_threshold",
                self.model.iou_threshold,
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
        one_of(
            "pipeline.device",
            &self.pipeline.device,
            &["auto", "cpu", "cuda"],
        )?;
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
        if self.rt.prefault_stack_kib > crate::rt::MAX_PREFAULT_STACK_KIB {
            return Err(self.invalid(
                "rt.prefault_stack_kib",
                self.rt.prefault_stack_kib,
                "expected 0..=1024 (threads have 2 MiB stacks)",
            ));
        }
        one_of(
            "pipeline.precision",
            &self.pipeline.precision,
            &["fp32", "fp16"],
        )?;
        if self.pipeline.cuda_device > 64 {
            return Err(self.invalid(
                "pipeline.cuda_device",
                self.pipeline.cuda_device,
                "expected 0..=64",
            ));
        }
        if self.output.max_line_bytes < 1024 {
            return Err(self.invalid(
                "output.max_line_bytes",
                self.output.max_line_bytes,
                "expected at least 1024",
            ));
        }
        if !(self.metrics.interval_s >= 0.0 && self.metrics.interval_s.is_finite()) {
            return Err(self.invalid(
                "metrics.interval_s",
                self.metrics.interval_s,
                "expected a number >= 0",
            ));
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
        Ok(())
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
            return Err(self.invalid("source.fps", fps, "expected 0 < fps <= 1000"));
        }
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::default_embedded().unwrap();
        assert!(matches!(c.source, SourceConfig::Synthetic { .. }));
        assert_eq!(c.pipeline.ring_slots, 6);
    }

    #[test]
    fn unknown_keys_name_the_field() {
        let text = "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\nthreshold = 3\n";
        let e = Config::parse(text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("threshold"), "{e}");
    }

    #[test]
    fn bad_values_name_field_and_value() {
        let text = "[source]\nkind = \"synthetic\"\n[model]\npath = \"m.onnx\"\n[pipeline]\nring_slots = 1\n";
        let e = Config::parse(text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pipeline.ring_slots = 1"), "{e}");
        let text = "[source]\nkind = \"webcam\"\n[model]\npath = \"m.onnx\"\n";
        let e = Config::parse(text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("webcam"), "{e}");
    }

    #[test]
    fn service_fields_are_validated() {
        let base = "[source]\nkind = \"v4l2\"\n[model]\npath = \"m.onnx\"\n";
        let c = Config::parse(base, "x.toml", Path::new(".")).unwrap();
        assert!(
            matches!(&c.source, SourceConfig::V4l2 { absent, reconnect_max_ms: 5000, .. } if absent == "fail")
        );
        assert_eq!(
            (c.pipeline.stage_deadline_ms, c.pipeline.hard_deadline_ms),
            (0, 0)
        );
        assert!(!c.rt.mlockall);
        for (extra, want) in [
            ("absent = \"later\"\n", "source.absent = \"later\""),
            ("reconnect_max_ms = 1\n", "source.reconnect_max_ms = 1"),
        ] {
            let text = base.replace("[model]", &format!("{extra}[model]"));
            let e = Config::parse(&text, "x.toml", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
        let text = format!("{base}[pipeline]\nstage_deadline_ms = 100\nhard_deadline_ms = 50\n");
        let e = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pipeline.hard_deadline_ms = 50"), "{e}");
        let text = format!("{base}[rt]\nmlockall = true\nprefault_stack_kib = 4096\n");
        let e = Config::parse(&text, "x.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rt.prefault_stack_kib = 4096"), "{e}");
        let text = format!("{base}[rt]\nmlockall = true\n[pipeline]\nstage_deadline_ms = 100\nhard_deadline_ms = 2000\n");
        let c = Config::parse(&text, "x.toml", Path::new(".")).unwrap();
        assert!(c.rt.mlockall);
        assert_eq!(c.pipeline.hard_deadline_ms, 2000);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let text = "[source]\nkind = \"y4m\"\npath = \"clip.y4m\"\n[model]\npath = \"m.onnx\"\n";
        let c = Config::parse(text, "/etc/perceptd/a.toml", Path::new("/etc/perceptd")).unwrap();
        assert_eq!(c.model.path, PathBuf::from("/etc/perceptd/m.onnx"));
        match c.source {
            SourceConfig::Y4m { path, .. } => {
                assert_eq!(path, PathBuf::from("/etc/perceptd/clip.y4m"))
            }
            _ => panic!(),
        }
    }
}
