//! Boot: a bound on what the `mcap` crate will reserve.
//!
//! The crate's summary reader reserves each string's declared length
//! before reading it (binrw `count`), so a 4-byte length of `0xD0FFFFFF`
//! in a schema name asks for 3.5 GB at boot (found by `fuzz/read_bag`).
//! [`summary_fits`] walks the summary section first, with the MCAP
//! layouts of the records a summary holds, and says whether every record
//! lies inside the section and every length-prefixed field (string, bytes,
//! map) inside its record. When not, the bag is scanned by our own record
//! reader instead, whose buffers are checked against the budget.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Footer record (opcode, length, 20 bytes) and the closing magic.
const FOOTER: u64 = 1 + 8 + 20 + 8;

/// The fields of a summary record, in order (MCAP specification).
#[derive(Clone, Copy)]
enum F {
    U8,
    U16,
    U32,
    U64,
    /// u32 length + UTF-8 bytes.
    Str,
    /// u32 length + bytes.
    Bytes,
    /// u32 byte length + string pairs.
    MapStrStr,
    /// u32 byte length + fixed-size entries.
    MapFixed,
}

fn layout(opcode: u8) -> Option<&'static [F]> {
    use F::*;
    Some(match opcode {
        0x03 => &[U16, Str, Str, Bytes],          // Schema
        0x04 => &[U16, U16, Str, Str, MapStrStr], // Channel
        0x08 => &[U64, U64, U64, U64, MapFixed, U64, Str, U64, U64], // ChunkIndex
        0x0A => &[U64, U64, U64, U64, U64, Str, Str], // AttachmentIndex
        0x0B => &[U64, U16, U32, U32, U32, U32, U64, U64, MapFixed], // Statistics
        0x0C => &[Str, MapStrStr],                // Metadata
        0x0D => &[U64, U64, Str],                 // MetadataIndex
        0x0E => &[U8, U64, U64],                  // SummaryOffset
        _ => return None,
    })
}

/// Takes `n` bytes from the front of `b`, if it has them.
fn take<'a>(b: &mut &'a [u8], n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok()?;
    (n <= b.len()).then(|| {
        let (h, t) = b.split_at(n);
        *b = t;
        h
    })
}

fn u32_le(b: &mut &[u8]) -> Option<u64> {
    take(b, 4).map(|h| u32::from_le_bytes(h.try_into().unwrap()) as u64)
}

/// Whether one record's body holds its fields (trailing bytes are allowed:
/// later MCAP versions may append fields).
fn body_fits(fields: &[F], mut b: &[u8]) -> bool {
    for f in fields {
        let ok = match f {
            F::U8 => take(&mut b, 1).is_some(),
            F::U16 => take(&mut b, 2).is_some(),
            F::U32 => take(&mut b, 4).is_some(),
            F::U64 => take(&mut b, 8).is_some(),
            F::Str | F::Bytes | F::MapFixed => {
                u32_le(&mut b).and_then(|n| take(&mut b, n)).is_some()
            }
            F::MapStrStr => match u32_le(&mut b).and_then(|n| take(&mut b, n)) {
                Some(mut m) => {
                    let mut ok = true;
                    while ok && !m.is_empty() {
                        ok = (0..2).all(|_| u32_le(&mut m).and_then(|n| take(&mut m, n)).is_some());
                    }
                    ok
                }
                None => false,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether the summary section of `file` (`len` bytes) can be handed to
/// the `mcap` crate: read (at most `limit` bytes) and every record and
/// field inside its bounds. `true` when there is no summary (the crate
/// then finds none). Boot only.
pub fn summary_fits(file: &mut File, len: u64, limit: u64) -> bool {
    if len < 8 + FOOTER {
        return true;
    }
    let mut foot = [0u8; FOOTER as usize];
    let read = file
        .seek(SeekFrom::Start(len - FOOTER))
        .and_then(|_| file.read_exact(&mut foot));
    if read.is_err() || foot[0] != 0x02 {
        return true; // no footer: the crate finds no summary and we scan
    }
    let at = |i: usize| u64::from_le_bytes(foot[i..i + 8].try_into().unwrap());
    let (start, offsets) = (at(9), at(17));
    if start == 0 {
        return true;
    }
    let end = if offsets != 0 { offsets } else { len - FOOTER };
    if start < 8 || start > end || end > len - FOOTER || end - start > limit {
        return false;
    }
    let mut section = vec![0u8; (end - start) as usize];
    if file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut section))
        .is_err()
    {
        return false;
    }
    let mut b = &section[..];
    while !b.is_empty() {
        let Some(op) = take(&mut b, 1).map(|h| h[0]) else {
            return false;
        };
        let Some(body) = take(&mut b, 8)
            .map(|h| u64::from_le_bytes(h.try_into().unwrap()))
            .and_then(|n| take(&mut b, n))
        else {
            return false;
        };
        if let Some(fields) = layout(op) {
            if !body_fits(fields, body) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_longer_than_its_record_is_refused() {
        // Schema: id, name (declares 0xD0FFFFFF bytes), encoding, data.
        let mut body = vec![1, 0];
        body.extend_from_slice(&0xD0FF_FFFFu32.to_le_bytes());
        body.extend_from_slice(b"abc");
        assert!(!body_fits(layout(0x03).unwrap(), &body));
        // The same record with honest lengths fits.
        let mut ok = vec![1, 0];
        for s in [&b"name"[..], b"ros2msg", b"data"] {
            ok.extend_from_slice(&(s.len() as u32).to_le_bytes());
            ok.extend_from_slice(s);
        }
        assert!(body_fits(layout(0x03).unwrap(), &ok));
        // A channel whose metadata map hides a long string.
        let mut ch = vec![1, 0, 1, 0];
        for s in [&b"/t"[..], b"cdr"] {
            ch.extend_from_slice(&(s.len() as u32).to_le_bytes());
            ch.extend_from_slice(s);
        }
        let mut map = 2u32.to_le_bytes().to_vec();
        map.extend_from_slice(b"k\0");
        map.extend_from_slice(&u32::MAX.to_le_bytes());
        ch.extend_from_slice(&(map.len() as u32).to_le_bytes());
        ch.extend_from_slice(&map);
        assert!(!body_fits(layout(0x04).unwrap(), &ch));
    }
}
