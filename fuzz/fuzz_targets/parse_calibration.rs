//! Fuzz target: arbitrary bytes as a camera_info YAML through parsing and
//! every check (size and nesting pre-checks, shapes, physical ranges). Any
//! panic, OOM or timeout is a bug: bad input must come back as a
//! `CalibrationError`. What is accepted must also give finite geometry at
//! the image centre without panicking.
//!
//! Run: `cargo +nightly fuzz run parse_calibration fuzz/corpus/parse_calibration -- -rss_limit_mb=2048`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::calibration::Calibration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Calibration::from_yaml_str(text, "fuzz.yaml") {
        Ok(c) => {
            let (w, h) = (f64::from(c.width()), f64::from(c.height()));
            let _ = c.pixel_geometry(w / 2.0, h / 2.0);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.len() < 4096, "error of {} bytes", msg.len());
        }
    }
});
