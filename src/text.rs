//! Text written without allocating: [`SliceWriter`] (`fmt::Write` into a
//! fixed buffer, for output lines and summary lines on the frame path) and
//! [`json_escape`] (boot: escaping names once so lines need no escaping).
//!
//! `SliceWriter` never allocates; `json_escape` allocates (boot only).

use std::fmt::{self, Write as _};

/// Boot: `s` escaped for a JSON string (without the quotes).
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A `fmt::Write` over a fixed byte slice: writes that do not fit fail and
/// set `overflowed`, never grow anything. Only whole `&str`s are written,
/// so the contents are always valid UTF-8.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> SliceWriter<'a> {
        SliceWriter {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// What was written (everything before the first write that did not fit).
    pub fn into_str(self) -> &'a str {
        let SliceWriter { buf, len, .. } = self;
        std::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.overflowed || s.len() > self.buf.len() - self.len {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escape_handles_quotes_controls_and_unicode() {
        assert_eq!(json_escape("a\"b\\c\nd\u{1}é"), "a\\\"b\\\\c\\nd\\u0001é");
    }

    #[test]
    fn slice_writer_stops_at_capacity() {
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        assert!(write!(w, "abc").is_ok());
        assert!(write!(w, "defghi").is_err());
        assert!(w.overflowed());
        assert_eq!(w.into_str(), "abc");
    }
}
