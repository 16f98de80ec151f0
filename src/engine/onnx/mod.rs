//! ONNX model files: the protobuf types (generated once by prost and
//! committed), a parser with size and safety limits, and the importer that
//! turns a `ModelProto` into the engine's IR.
//!
//! Boot only; allocates.
