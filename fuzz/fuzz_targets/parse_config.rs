//! Fuzz target: arbitrary bytes as a config file's text through the whole
//! parse and validation (size and nesting pre-checks, TOML, field bounds,
//! the memory budget, the field-finding of error messages). Any panic, OOM
//! or timeout is a bug: bad input must come back as a `ConfigError`, and
//! its message must stay one short line.
//!
//! Run: `cargo +nightly fuzz run parse_config fuzz/corpus/parse_config -- -rss_limit_mb=2048`
#![no_main]

use libfuzzer_sys::fuzz_target;
use perceptd::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz.toml", Path::new("/nonexistent")) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line error: {msg}");
        assert!(msg.len() < 4096, "error of {} bytes", msg.len());
    }
});
