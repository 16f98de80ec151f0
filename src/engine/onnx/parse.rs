//! Entry points: read a model or tensor file with size limits, decode the
//! protobuf, hand it to the importer. Every failure is an [`EngineError`]
//! naming the file (and tensor or node); nothing here panics on bad input.
//!
//! Boot only (main thread); allocates.

use super::import::import_model;
use super::proto::{ModelProto, TensorProto};
use super::tensor_io::{tensor_from_proto, tensor_to_proto, LoadCtx};
use crate::engine::error::EngineError;
use crate::engine::ir::Graph;
use crate::engine::tensor::Tensor;
use prost::Message;
use std::path::Path;

/// Memory limits for loading a model. Decoding a file needs up to a few
/// times its size transiently; `max_tensor_bytes` and `max_total_bytes`
/// bound the constants it holds afterwards (counted in the engine's storage:
/// 4 bytes per float, 8 per integer, 1 per bool; external data included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest model (or tensor) file accepted.
    pub max_file_bytes: u64,
    /// Largest single constant tensor.
    pub max_tensor_bytes: u64,
    /// All constant tensors of one model together.
    pub max_total_bytes: u64,
    /// Host memory of the planned CPU model (arena, scratch and float
    /// constants), checked before the arena is allocated. The pipeline
    /// sets it to what `pipeline.max_memory_mb` leaves for the model.
    pub max_plan_bytes: u64,
}

const GIB: u64 = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 2 * GIB,
            max_tensor_bytes: GIB,
            max_total_bytes: 4 * GIB,
            max_plan_bytes: 8 * GIB,
        }
    }
}

/// Reads at most `max` bytes of `path` (through the shared
/// [`crate::input::read_capped`]: special files refused before `open`).
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, EngineError> {
    use crate::input::ReadError;
    let shown = if path.as_os_str().is_empty() {
        "\"\" (empty path)".to_string()
    } else {
        path.display().to_string()
    };
    crate::input::read_capped(path, max).map_err(|e| match e {
        ReadError::TooBig { size, max } => EngineError::InvalidModel {
            path: shown,
            msg: format!(
                "the file is {size} bytes, more than the limit of {max} bytes (max_file_bytes)"
            ),
        },
        e => EngineError::Io {
            path: shown,
            msg: e.to_string(),
        },
    })
}

/// The built-in model's bytes for `builtin:...` paths (an unknown one is
/// an error), else `None`.
fn builtin_bytes(path: &Path) -> Result<Option<&'static [u8]>, EngineError> {
    if !crate::builtin::is_builtin(path) {
        return Ok(None);
    }
    if crate::builtin::is_model(path) {
        return Ok(Some(crate::builtin::MODEL));
    }
    Err(EngineError::Io {
        path: path.display().to_string(),
        msg: format!(
            "no such built-in model (the built-in one is {})",
            crate::builtin::MODEL_PATH
        ),
    })
}

/// Loads and imports the ONNX model at `path` (or `builtin:synthetic`).
/// External data is resolved relative to the model's folder.
pub fn load_model(path: &Path, limits: &Limits) -> Result<Graph, EngineError> {
    if let Some(b) = builtin_bytes(path)? {
        return load_model_bytes(b, None, &path.display().to_string(), limits);
    }
    let bytes = read_limited(path, limits.max_file_bytes)?;
    let base = path.parent().unwrap_or(Path::new(""));
    load_model_bytes(&bytes, Some(base), &path.display().to_string(), limits)
}

/// The `metadata_props` of the model at `path` (or `builtin:synthetic`),
/// read without decoding the graph. Boot only.
pub fn read_model_metadata(
    path: &Path,
    limits: &Limits,
) -> Result<super::ModelMetadata, EngineError> {
    let shown = path.display().to_string();
    match builtin_bytes(path)? {
        Some(b) => super::metadata::read_metadata(b, &shown),
        None => super::metadata::read_metadata(&read_limited(path, limits.max_file_bytes)?, &shown),
    }
}

/// Decodes and imports a model held in memory. `base_dir` is the folder
/// that external data locations are relative to (`None`: external data is
/// an error); `display_path` names the model in errors.
pub fn load_model_bytes(
    bytes: &[u8],
    base_dir: Option<&Path>,
    display_path: &str,
    limits: &Limits,
) -> Result<Graph, EngineError> {
    let model = decode_model(bytes, display_path, limits)?;
    let mut ctx = LoadCtx::new(display_path, base_dir, limits);
    import_model(&model, &mut ctx)
}

/// Protobuf decoding of a model, with the file-size limit.
pub fn decode_model(
    bytes: &[u8],
    display_path: &str,
    limits: &Limits,
) -> Result<ModelProto, EngineError> {
    let decode_err = |msg: String| EngineError::Decode {
        path: display_path.to_string(),
        msg,
    };
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(EngineError::InvalidModel {
            path: display_path.to_string(),
            msg: format!(
                "the model is {} bytes, more than the limit of {} bytes (max_file_bytes)",
                bytes.len(),
                limits.max_file_bytes
            ),
        });
    }
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".to_string()));
    }
    ModelProto::decode(bytes).map_err(|e| decode_err(e.to_string()))
}

/// Reads a serialized `onnx.TensorProto` (`input_0.pb` in the ONNX
/// backend-test layout): its name and value.
pub fn read_tensor_file(path: &Path, limits: &Limits) -> Result<(String, Tensor), EngineError> {
    let bytes = read_limited(path, limits.max_file_bytes)?;
    let shown = path.display().to_string();
    if bytes.is_empty() {
        return Err(EngineError::Decode {
            path: shown,
            msg: "the file is empty".to_string(),
        });
    }
    let tp = TensorProto::decode(bytes.as_slice()).map_err(|e| EngineError::Decode {
        path: shown.clone(),
        msg: format!("not a TensorProto: {e}"),
    })?;
    let name = tp.name.clone().unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new(""));
    let mut ctx = LoadCtx::new(&shown, Some(base), limits);
    let what = if name.is_empty() {
        "the tensor".to_string()
    } else {
        format!("tensor '{name}'")
    };
    let t = tensor_from_proto(&tp, &what, &name, &mut ctx)?;
    Ok((name, t))
}

/// Writes `t` as a serialized `onnx.TensorProto` of its declared dtype (data
/// in `raw_data`, little endian; float16 rounded to nearest even), readable
/// by `onnx.numpy_helper.to_array`.
pub fn write_tensor_file(path: &Path, name: &str, t: &Tensor) -> Result<(), EngineError> {
    let shown = path.display().to_string();
    let tp = tensor_to_proto(name, t).map_err(|msg| EngineError::Io {
        path: shown.clone(),
        msg,
    })?;
    std::fs::write(path, tp.encode_to_vec()).map_err(|e| EngineError::Io {
        path: shown,
        msg: format!("cannot write: {e}"),
    })
}
