//! ONNX model files: the protobuf types (generated once by prost and
//! committed), a parser with size and safety limits, and the importer that
//! turns a `ModelProto` into the engine's IR.
//!
//! The parser is only a parser: it checks the file (sizes against
//! [`Limits`], tensor data against declared dims, external data paths, graph
//! structure) and maps attributes to typed ops, but infers no shapes and
//! folds no constants; the planner does that.
//!
//! Boot only (main thread); allocates.

mod attrs;
mod convert;
mod import;
pub mod metadata;
mod parse;
pub mod proto;
mod tensor_io;

pub use metadata::{ModelMetadata, Ultralytics};
pub use parse::{
    decode_model, load_model, load_model_bytes, read_model_metadata, read_tensor_file,
    write_tensor_file, Limits,
};
