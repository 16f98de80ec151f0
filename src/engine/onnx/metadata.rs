//! A model's `metadata_props` (ModelProto field 14: `key` = 1, `value` = 2
//! strings), read straight from the protobuf bytes without decoding the
//! graph, and what perceptd understands of them: the keys the Ultralytics
//! exporter writes (`names`, `imgsz`, `task`, `end2end`, `head`).
//!
//! Hostile files: the scanner walks the top-level fields with bounds checks
//! only; it keeps at most [`MAX_ENTRIES`] entries of at most
//! [`MAX_KEY_BYTES`] / [`MAX_VALUE_BYTES`] each, and never allocates more
//! than the entries it keeps. Anything malformed is an [`EngineError`]
//! naming the file.
//!
//! Boot only (main thread); allocates.

use crate::engine::error::EngineError;

/// ModelProto's `metadata_props` field number.
const FIELD_METADATA_PROPS: u64 = 14;
/// Entries kept; more is an error (exporters write a dozen).
pub const MAX_ENTRIES: usize = 1024;
pub const MAX_KEY_BYTES: usize = 1024;
/// Enough for the names of tens of thousands of classes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The metadata of one model, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMetadata {
    pub entries: Vec<(String, String)>,
}

/// What the Ultralytics keys say, each `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ultralytics {
    /// The `names` string as written, e.g. `{0: 'person', 1: 'bicycle'}`
    /// (parsed by `postprocess::Labels`).
    pub names: Option<String>,
    /// `imgsz` as `[width, height]` (Ultralytics writes `[height, width]`).
    pub imgsz: Option<[usize; 2]>,
    pub task: Option<String>,
    pub end2end: Option<bool>,
    /// The head's class name (`Detect`, `RTDETRDecoder`, ...).
    pub head: Option<String>,
}

impl ModelMetadata {
    /// The value of `key` (the first, should a file repeat it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The Ultralytics keys. A present but malformed `imgsz` or `end2end`
    /// is an error naming key and value (`display` names the model).
    pub fn ultralytics(&self, display: &str) -> Result<Ultralytics, EngineError> {
        let bad = |key: &str, value: &str, want: &str| EngineError::InvalidModel {
            path: display.to_string(),
            msg: format!("metadata {key} = {value:?}: expected {want}"),
        };
        let imgsz = match self.get("imgsz") {
            None => None,
            Some(v) => Some(
                parse_imgsz(v)
                    .ok_or_else(|| bad("imgsz", v, "[height, width] or [size], each 1..=8192"))?,
            ),
        };
        let end2end = match self.get("end2end") {
            None => None,
            Some(v) => Some(match v.trim() {
                "True" | "true" | "1" => true,
                "False" | "false" | "0" => false,
                _ => return Err(bad("end2end", v, "True or False")),
            }),
        };
        Ok(Ultralytics {
            names: self.get("names").map(str::to_string),
            imgsz,
            task: self.get("task").map(|t| t.trim().to_string()),
            end2end,
            head: self.get("head").map(|t| t.trim().to_string()),
        })
    }
}

/// `[640, 384]` (height, width) or `[640]` / `640` → `[width, height]`.
fn parse_imgsz(v: &str) -> Option<[usize; 2]> {
    let inner = v
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let mut dims = [0usize; 2];
    let mut n = 0;
    for d in inner.split(',') {
        if n == 2 {
            return None;
        }
        let d: usize = d.trim().parse().ok()?;
        if !(1..=8192).contains(&d) {
            return None;
        }
        dims[n] = d;
        n += 1;
    }
    match n {
        1 => Some([dims[0], dims[0]]),
        2 => Some([dims[1], dims[0]]),
        _ => None,
    }
}

/// Reads `metadata_props` from serialized ModelProto `bytes`; `display`
/// names the model in errors.
pub fn read_metadata(bytes: &[u8], display: &str) -> Result<ModelMetadata, EngineError> {
    let err = |msg: String| EngineError::Decode {
        path: display.to_string(),
        msg: format!("metadata: {msg}"),
    };
    let mut entries = Vec::new();
    let mut r = Reader { b: bytes, pos: 0 };
    while !r.done() {
        let (field, wire) = r.tag().map_err(err)?;
        if field == FIELD_METADATA_PROPS && wire == 2 {
            let entry = r.bytes().map_err(err)?;
            if entries.len() == MAX_ENTRIES {
                return Err(err(format!("more than {MAX_ENTRIES} entries")));
            }
            entries.push(read_entry(entry).map_err(err)?);
        } else {
            r.skip(wire).map_err(err)?;
        }
    }
    Ok(ModelMetadata { entries })
}

/// One StringStringEntryProto: `key` = 1, `value` = 2.
fn read_entry(b: &[u8]) -> Result<(String, String), String> {
    let mut r = Reader { b, pos: 0 };
    let (mut key, mut value) = (String::new(), String::new());
    while !r.done() {
        let (field, wire) = r.tag()?;
        match (field, wire) {
            (1, 2) | (2, 2) => {
                let s = r.bytes()?;
                let (max, what) = if field == 1 {
                    (MAX_KEY_BYTES, "key")
                } else {
                    (MAX_VALUE_BYTES, "value")
                };
                if s.len() > max {
                    return Err(format!(
                        "an entry's {what} is {} bytes, more than {max}",
                        s.len()
                    ));
                }
                let s = std::str::from_utf8(s)
                    .map_err(|_| format!("an entry's {what} is not UTF-8"))?;
                if field == 1 {
                    key = s.to_string();
                } else {
                    value = s.to_string();
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

/// A bounds-checked protobuf wire reader over a byte slice.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(format!("truncated varint at byte {}", self.pos));
            };
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn tag(&mut self) -> Result<(u64, u8), String> {
        let t = self.varint()?;
        Ok((t >> 3, (t & 7) as u8))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "a field at byte {} claims {n} bytes but {left} remain",
                self.pos
            ));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(n)
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            w => Err(format!(
                "wire type {w} at byte {} is not supported",
                self.pos
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::onnx::proto::{ModelProto, StringStringEntryProto};
    use prost::Message;

    fn model_with(meta: &[(&str, &str)]) -> Vec<u8> {
        let m = ModelProto {
            ir_version: Some(8),
            producer_name: Some("test".into()),
            metadata_props: meta
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.to_string()),
                    value: Some(v.to_string()),
                })
                .collect(),
            ..Default::default()
        };
        m.encode_to_vec()
    }

    #[test]
    fn reads_ultralytics_keys() {
        let b = model_with(&[
            ("names", "{0: 'person', 1: 'bicycle'}"),
            ("imgsz", "[384, 640]"),
            ("task", "detect"),
            ("end2end", "False"),
        ]);
        let m = read_metadata(&b, "m.onnx").unwrap();
        assert_eq!(m.get("task"), Some("detect"));
        let u = m.ultralytics("m.onnx").unwrap();
        assert_eq!(u.imgsz, Some([640, 384]));
        assert_eq!(u.end2end, Some(false));
        assert_eq!(u.names.as_deref(), Some("{0: 'person', 1: 'bicycle'}"));
        assert_eq!(parse_imgsz("640"), Some([640, 640]));
        assert_eq!(parse_imgsz("[0, 640]"), None);
        assert_eq!(parse_imgsz("[1, 2, 3]"), None);
        let bad = model_with(&[("imgsz", "[big]")]);
        let e = read_metadata(&bad, "m.onnx")
            .unwrap()
            .ultralytics("m.onnx")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.onnx") && e.contains("imgsz = \"[big]\""),
            "{e}"
        );
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics_or_huge_allocations() {
        let good = model_with(&[("names", "{0: 'a'}")]);
        // Every truncation is an error or a shorter read, never a panic.
        for n in 0..good.len() {
            let _ = read_metadata(&good[..n], "m.onnx");
        }
        // A length prefix far beyond the file.
        let huge = [0x72u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
        let e = read_metadata(&huge, "m.onnx").unwrap_err().to_string();
        assert!(e.contains("m.onnx") && e.contains("remain"), "{e}");
        // An over-long value is refused.
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let b = model_with(&[("names", &long)]);
        assert!(read_metadata(&b, "m.onnx").is_err());
        // Group wire types are refused.
        assert!(read_metadata(&[0x0b], "m.onnx").is_err());
    }
}
