//! What ships inside the binary so that `perceptd run`, `replay`,
//! `gpu-check` and `check` work from any folder and after install: the
//! synthetic detector (`models/perceptd-synth.onnx`), its class names and
//! the synthetic front camera's calibration.
//!
//! They are named by paths that cannot be files: `builtin:synthetic` for the
//! model and `builtin:front_camera` for the calibration. A config names them
//! that way to insist on them; a config without `model.path` gets the
//! built-in model implicitly, which a V4L2 camera refuses (see
//! [`crate::boot`]): it was trained on the synthetic scene only.
//!
//! Boot only; comparing a file with the built-in bytes reads it once.

use std::path::Path;

/// `model.path` of the built-in synthetic detector.
pub const MODEL_PATH: &str = "builtin:synthetic";
/// `calibration.path` of the built-in synthetic front camera.
pub const CALIBRATION_PATH: &str = "builtin:front_camera";
/// What a path starting with this names is built in, never a file.
pub const PREFIX: &str = "builtin:";

/// The built-in model's ONNX bytes.
pub const MODEL: &[u8] = include_bytes!("../models/perceptd-synth.onnx");
/// Its class names, one per line.
pub const LABELS: &str = include_str!("../models/perceptd-synth.labels");
/// The synthetic front camera (ROS camera_info YAML with extrinsics).
pub const CALIBRATION: &str = include_str!("../calibration/front_camera.yaml");

/// Whether `p` names something built in (`builtin:...`), known or not.
pub fn is_builtin(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with(PREFIX))
}

/// Whether `p` names the built-in model.
pub fn is_model(p: &Path) -> bool {
    p.to_str() == Some(MODEL_PATH)
}

/// Whether `p` names the built-in calibration.
pub fn is_calibration(p: &Path) -> bool {
    p.to_str() == Some(CALIBRATION_PATH)
}

/// Whether the file at `p` holds exactly `bytes` (a copy of something built
/// in). Reads nothing unless the sizes match; unreadable files are not
/// copies (loading them reports why).
fn file_equals(p: &Path, bytes: &[u8]) -> bool {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => {
            std::fs::read(p).is_ok_and(|b| b == bytes)
        }
        _ => false,
    }
}

/// Whether `p` is the built-in model or a file copy of it.
pub fn is_synthetic_model(p: &Path) -> bool {
    is_model(p) || file_equals(p, MODEL)
}

/// Whether `p` is the built-in calibration or a file copy of it.
pub fn is_synthetic_calibration(p: &Path) -> bool {
    is_calibration(p) || file_equals(p, CALIBRATION.as_bytes())
}

/// How a log line names a model or calibration: `builtin:synthetic
/// (embedded)` or the path.
pub fn describe(p: &Path) -> String {
    if is_builtin(p) {
        format!("{} (embedded in the binary)", p.display())
    } else {
        p.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_copies_are_recognised() {
        assert!(is_model(Path::new("builtin:synthetic")));
        assert!(!is_model(Path::new("models/perceptd-synth.onnx")));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/perceptd-synth.onnx");
        assert!(is_synthetic_model(&shipped));
        let cal = Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/front_camera.yaml");
        assert!(is_synthetic_calibration(&cal));
        assert!(!is_synthetic_calibration(&shipped));
        assert!(!is_synthetic_model(Path::new("/nonexistent.onnx")));
    }
}
