//! Reading input files with a budget: every file perceptd reads whole (the
//! config, the calibration, labels, models, tensors) goes through
//! [`read_capped`], which refuses what is not a regular file *before* an
//! `open` could block on it (a FIFO) or stream forever from it
//! (`/dev/zero`), and reads at most a fixed number of bytes. Text files
//! also get [`check_nesting`], a pre-scan that refuses deeply nested
//! brackets before a parser spends seconds (or its stack) on them.
//!
//! Also [`clip`]: input echoed in an error message is cut to one short line.
//!
//! Boot only (main thread); allocates the file's bytes.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use thiserror::Error;

/// Largest text input (config, calibration, labels): real ones are a few
/// KiB.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

/// Deepest bracket (`[`, `{`) or block nesting accepted in a text input.
/// Real configs and calibrations nest 3 deep.
pub const MAX_NESTING: usize = 32;

/// Longest piece of input echoed in an error message.
pub const MAX_ECHO_CHARS: usize = 120;

/// Why a file could not be read. Messages do not name the file: callers
/// wrap them in their own error, which does.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("cannot open: no file name given")]
    EmptyPath,
    #[error("cannot open: {0}")]
    Open(String),
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes, more than the limit of {max} bytes")]
    TooBig { size: u64, max: u64 },
    #[error("cannot read: {0}")]
    Read(String),
    #[error("is not UTF-8 text (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("nests {depth} deep at line {line} (limit {max})")]
    TooDeep {
        depth: usize,
        line: usize,
        max: usize,
    },
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// The whole of `path`, at most `max` bytes. Non-regular files are refused
/// by their metadata before `open`, and the open itself is non-blocking so
/// that a file swapped for a FIFO in between cannot block either.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    if path.as_os_str().is_empty() {
        return Err(ReadError::EmptyPath);
    }
    let meta = std::fs::metadata(path).map_err(|e| ReadError::Open(e.to_string()))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > max {
        return Err(ReadError::TooBig {
            size: meta.len(),
            max,
        });
    }
    // Non-blocking open (one way for every input: crate::fsio), so that a
    // file swapped for a FIFO in between cannot block either.
    let (file, meta) = crate::fsio::open_regular(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            ReadError::NotRegular("special file")
        } else {
            ReadError::Open(e.to_string())
        }
    })?;
    let mut buf = Vec::with_capacity(meta.len().min(max) as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Read(e.to_string()))?;
    if buf.len() as u64 > max {
        // The file grew while we read it.
        return Err(ReadError::TooBig {
            size: buf.len() as u64,
            max,
        });
    }
    Ok(buf)
}

/// A text input: [`read_capped`] at [`MAX_TEXT_BYTES`], UTF-8, nesting at
/// most [`MAX_NESTING`] deep.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_capped(path, MAX_TEXT_BYTES)?;
    let text =
        String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))?;
    check_text(&text)?;
    Ok(text)
}

/// What every text input must pass before a parser sees it, whether it
/// came from a file or from memory (the embedded default, a fuzzer): at
/// most [`MAX_TEXT_BYTES`], nested at most [`MAX_NESTING`] deep.
pub fn check_text(text: &str) -> Result<(), ReadError> {
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(ReadError::TooBig {
            size: text.len() as u64,
            max: MAX_TEXT_BYTES,
        });
    }
    check_nesting(text, MAX_NESTING)
}

/// Refuses text nested deeper than `max`: flow brackets (`[`, `{`) and,
/// for YAML, block nesting (a line's leading spaces and `- ` items count one
/// level per two columns). A linear scan, so that a parser never sees what
/// would take it seconds or its stack.
///
/// Brackets inside quoted strings and comments are not counted. Quotes and
/// `#` count only where they start a token (line start, after whitespace or
/// `:,=[{`), as in YAML and TOML, so that `a#[[[` or `5"[[[` cannot hide
/// brackets; and every string ends with its line, so that an unclosed quote
/// cannot hide the lines after it (brackets inside a multi-line string are
/// counted: stricter, never looser).
pub fn check_nesting(text: &str, max: usize) -> Result<(), ReadError> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let too_deep = |depth| ReadError::TooDeep {
            depth,
            line: n + 1,
            max,
        };
        // Block nesting: indentation and sequence dashes before content.
        let prefix = line
            .chars()
            .take_while(|c| matches!(c, ' ' | '-' | '\t'))
            .count();
        if prefix / 2 > max {
            return Err(too_deep(prefix / 2));
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut token_start = true;
        for c in line.chars() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                token_start = false;
                continue;
            }
            match c {
                '#' if token_start => break,
                '"' | '\'' if token_start => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Err(too_deep(depth));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            token_start = c.is_whitespace() || matches!(c, ':' | ',' | '=' | '[' | '{');
        }
    }
    Ok(())
}

/// `s` cut to one line of at most [`MAX_ECHO_CHARS`] characters (whitespace
/// runs become one space), marked with `…` where cut: input echoed in an
/// error message.
pub fn clip(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ECHO_CHARS * 4 + 4));
    let mut chars = 0;
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = chars > 0;
            continue;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        if chars >= MAX_ECHO_CHARS {
            out.push('…');
            return out;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// A number as echoed in an error message: plain where that is short
/// (`1500`, `0.25`), in exponent form where it is not (`1e300`, `1e-9`).
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e6).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_before_open() {
        assert_eq!(
            read_capped(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular("character device"))
        );
        assert_eq!(
            read_capped(Path::new("/"), 10),
            Err(ReadError::NotRegular("directory"))
        );
        assert_eq!(read_capped(Path::new(""), 10), Err(ReadError::EmptyPath));
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = std::env::temp_dir().join(format!("perceptd-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big.txt");
        std::fs::write(&p, vec![b'a'; 11]).unwrap();
        assert_eq!(
            read_capped(&p, 10),
            Err(ReadError::TooBig { size: 11, max: 10 })
        );
        assert_eq!(read_capped(&p, 11).unwrap().len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nesting_is_counted_outside_quotes_and_comments() {
        assert!(check_nesting("a: [[1, 2], {b: 3}]\n", 3).is_ok());
        assert!(check_nesting(&"[".repeat(40), 32).is_err());
        assert!(check_nesting("a = \"[[[[[[\" # [[[[[[\n", 2).is_ok());
        // Quotes and comments that do not start a token hide nothing.
        assert!(check_nesting("x: [a#[[[[[[\n", 3).is_err());
        assert!(check_nesting("x: 5\"\n[[[[[[\n", 3).is_err());
        assert!(check_nesting("x: 'it''s' [[[\n", 3).is_ok());
        let deep = format!("{}x\n", "- ".repeat(40));
        assert!(matches!(
            check_nesting(&deep, 32),
            Err(ReadError::TooDeep { line: 1, .. })
        ));
    }

    #[test]
    fn numbers_are_echoed_short() {
        assert_eq!(num(1e300), "1e300");
        assert_eq!(num(1e-9), "1e-9");
        assert_eq!(num(1500.0), "1500");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(f64::NAN), "NaN");
    }

    #[test]
    fn clip_cuts_long_input_to_one_line() {
        assert_eq!(clip("a\n  b"), "a b");
        let long = "x".repeat(5000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
