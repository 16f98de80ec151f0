//! perceptd: a real-time perception pipeline. A camera (or replay, or the
//! synthetic scene) feeds a ring of frame buffers allocated at boot; fixed
//! threads run an ONNX detector on each frame and publish detections placed
//! on the ground in the vehicle frame.

pub mod calibration;
pub mod engine;
pub mod frame;
pub mod source;
