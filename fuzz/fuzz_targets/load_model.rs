//! Fuzz target: arbitrary bytes through the whole ONNX loader (decode,
//! tensor checks, import). Any panic, OOM or timeout is a bug: bad input
//! must come back as an `EngineError`.
//!
//! Run: `cargo +nightly fuzz run load_model -- -rss_limit_mb=2048`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::engine::onnx::{load_model_bytes, Limits};

fuzz_target!(|data: &[u8]| {
    // Small limits so that a declared size the checks miss shows up as an
    // OOM instead of hiding under the default gigabytes.
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_tensor_bytes: 64 << 20,
        max_total_bytes: 128 << 20,
    };
    let _ = load_model_bytes(data, None, "fuzz.onnx", &limits);
});
