//! perceptd's inference engine: ONNX protobuf → graph IR → passes → plan →
//! arena → run.
//!
//! Boot (load, specialise, fold, fuse, plan, pack weights) may allocate and
//! take time. [`CpuModel::run`] is the frame path: a loop over resolved steps
//! that never allocates.

pub mod cpu;
pub mod error;
pub mod ir;
pub mod onnx;
pub mod ops;
pub mod tensor;

pub use error::EngineError;
pub use tensor::{DType, Tensor};
