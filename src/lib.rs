//! perceptd: a real-time perception pipeline. A camera (or replay, or the
//! synthetic scene) feeds a ring of frame buffers allocated at boot; fixed
//! threads run an ONNX detector on each frame and publish detections placed
//! on the ground in the vehicle frame.
//!
//! Where to add a pixel format, an output, a postprocess stage or an ONNX
//! op: README.md, "Architecture". In short: `frame` + `config::choice` +
//! `preprocess` for a format; one file in `output/` for an output; one file
//! in `postprocess/` plus a line in `postprocess::refine_stages` for a
//! stage; `engine/ops/` for an op.

pub mod backend;
pub mod bench;
pub mod boot;
pub mod budget;
pub mod builtin;
pub mod calibration;
pub mod clock;
pub mod config;
pub mod count_alloc;
pub mod cuda;
pub mod engine;
pub mod ffmpeg;
pub mod frame;
pub mod fsio;
pub mod input;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod record;
pub mod ring;
pub mod rt;
pub mod service;
pub mod source;
pub mod stop;
pub mod text;
