//! The two ROS 2 image messages, decoded from their CDR bytes (the
//! `cdr` message encoding of ROS 2 bags): `sensor_msgs/msg/Image` and
//! `sensor_msgs/msg/CompressedImage`, each with its `std_msgs/Header`.
//!
//! A small bounds-checked reader: every length is checked against the
//! bytes that are there, before it is used; nothing is copied (strings
//! and pixel data are slices of the message). Little- and big-endian CDR
//! (and XCDR2's plain encodings, whose layout is the same for fields of
//! at most 4-byte alignment, all these messages have) are accepted.
//!
//! Frame path: never allocates, never panics (fuzzed: fuzz/fuzz_targets/read_bag.rs).

/// What is wrong with a message, by field: `&'static` so a bad frame
/// costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdrError {
    pub field: &'static str,
    pub what: &'static str,
}

impl std::fmt::Display for CdrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

/// `builtin_interfaces/Time` of the message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub sec: i32,
    pub nanosec: u32,
}

impl Stamp {
    /// Nanoseconds since the epoch; `None` for an unset (zero) or
    /// negative stamp, or nanoseconds out of range.
    pub fn ns(self) -> Option<u64> {
        if self.sec < 0 || self.nanosec >= 1_000_000_000 || (self.sec == 0 && self.nanosec == 0) {
            return None;
        }
        Some(self.sec as u64 * 1_000_000_000 + self.nanosec as u64)
    }
}

/// `sensor_msgs/msg/Image`, borrowed from the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageMsg<'a> {
    pub stamp: Stamp,
    pub height: u32,
    pub width: u32,
    pub encoding: &'a [u8],
    pub is_bigendian: u8,
    pub step: u32,
    pub data: &'a [u8],
}

/// `sensor_msgs/msg/CompressedImage`, borrowed from the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedMsg<'a> {
    pub stamp: Stamp,
    pub format: &'a [u8],
    pub data: &'a [u8],
}

struct Cdr<'a> {
    /// The message after its 4-byte encapsulation header (alignment is
    /// relative to here).
    body: &'a [u8],
    pos: usize,
    le: bool,
}

fn err(field: &'static str, what: &'static str) -> CdrError {
    CdrError { field, what }
}

impl<'a> Cdr<'a> {
    fn new(msg: &'a [u8]) -> Result<Self, CdrError> {
        let Some((head, body)) = msg.split_first_chunk::<4>() else {
            return Err(err("encapsulation", "message shorter than 4 bytes"));
        };
        // Representation identifier: CDR_BE 0x0000, CDR_LE 0x0001,
        // PLAIN_CDR2_BE 0x0006, PLAIN_CDR2_LE 0x0007.
        let le = match [head[0], head[1]] {
            [0, 0] | [0, 6] => false,
            [0, 1] | [0, 7] => true,
            _ => {
                return Err(err(
                    "encapsulation",
                    "not plain CDR (expected 00 00, 00 01, 00 06 or 00 07)",
                ))
            }
        };
        Ok(Cdr { body, pos: 0, le })
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CdrError> {
        let at = self.pos.div_ceil(4) * 4;
        let b = self
            .body
            .get(at..at + 4)
            .ok_or(err(field, "message ends inside the field"))?;
        self.pos = at + 4;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CdrError> {
        let b = *self
            .body
            .get(self.pos)
            .ok_or(err(field, "message ends inside the field"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A `sequence<uint8>`: length, then the bytes.
    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], CdrError> {
        let n = self.u32(field)? as usize;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.body.len())
            .ok_or(err(field, "length runs past the end of the message"))?;
        let b = &self.body[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// A `string`: length including the terminating NUL, then the bytes.
    fn string(&mut self, field: &'static str) -> Result<&'a [u8], CdrError> {
        let b = self.bytes(field)?;
        match b.split_last() {
            Some((0, s)) => Ok(s),
            // Some writers omit the NUL of an empty string.
            None => Ok(b),
            Some(_) => Err(err(field, "string without its terminating NUL")),
        }
    }

    fn header(&mut self) -> Result<Stamp, CdrError> {
        let sec = self.u32("header.stamp.sec")? as i32;
        let nanosec = self.u32("header.stamp.nanosec")?;
        self.string("header.frame_id")?;
        Ok(Stamp { sec, nanosec })
    }
}

/// Only the header stamp of either message (skipping a frame).
pub fn parse_stamp(msg: &[u8]) -> Result<Stamp, CdrError> {
    Cdr::new(msg)?.header()
}

pub fn parse_image(msg: &[u8]) -> Result<ImageMsg<'_>, CdrError> {
    let mut c = Cdr::new(msg)?;
    let stamp = c.header()?;
    let height = c.u32("height")?;
    let width = c.u32("width")?;
    let encoding = c.string("encoding")?;
    let is_bigendian = c.u8("is_bigendian")?;
    let step = c.u32("step")?;
    let data = c.bytes("data")?;
    Ok(ImageMsg {
        stamp,
        height,
        width,
        encoding,
        is_bigendian,
        step,
        data,
    })
}

pub fn parse_compressed(msg: &[u8]) -> Result<CompressedMsg<'_>, CdrError> {
    let mut c = Cdr::new(msg)?;
    let stamp = c.header()?;
    let format = c.string("format")?;
    let data = c.bytes("data")?;
    Ok(CompressedMsg {
        stamp,
        format,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CDR `sensor_msgs/msg/Image` as rclcpp writes it.
    pub(crate) fn image(
        le: bool,
        frame_id: &str,
        encoding: &str,
        w: u32,
        h: u32,
        step: u32,
        data: &[u8],
    ) -> Vec<u8> {
        let mut m = vec![0, if le { 1 } else { 0 }, 0, 0];
        let put = |m: &mut Vec<u8>, v: u32| {
            while !(m.len() - 4).is_multiple_of(4) {
                m.push(0);
            }
            m.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
        };
        let string = |m: &mut Vec<u8>, s: &str| {
            put(m, s.len() as u32 + 1);
            m.extend(s.as_bytes());
            m.push(0);
        };
        put(&mut m, 1_700_000_001);
        put(&mut m, 250_000_000);
        string(&mut m, frame_id);
        put(&mut m, h);
        put(&mut m, w);
        string(&mut m, encoding);
        m.push(0);
        put(&mut m, step);
        put(&mut m, data.len() as u32);
        m.extend(data);
        m
    }

    #[test]
    fn image_both_byte_orders_and_every_alignment() {
        for le in [true, false] {
            // frame_id lengths move every later field across alignments.
            for id in ["", "a", "ab", "abc", "camera"] {
                let m = image(le, id, "rgb8", 2, 1, 6, &[1, 2, 3, 4, 5, 6]);
                let i = parse_image(&m).unwrap();
                assert_eq!(i.stamp.ns(), Some(1_700_000_001_250_000_000));
                assert_eq!((i.width, i.height, i.step), (2, 1, 6));
                assert_eq!(i.encoding, b"rgb8");
                assert_eq!(i.data, [1, 2, 3, 4, 5, 6]);
            }
        }
    }

    #[test]
    fn every_cut_is_an_error_naming_a_field_never_a_panic() {
        let m = image(true, "camera", "mono8", 2, 2, 2, &[9; 4]);
        for n in 0..m.len() {
            let e = parse_image(&m[..n]).unwrap_err();
            assert!(!e.field.is_empty(), "{n}: {e}");
        }
        let mut long = m.clone();
        // data length 0xFFFFFFFF
        let at = long.len() - 8;
        long[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_image(&long).unwrap_err().field, "data");
        let mut bad = m;
        bad[1] = 2;
        assert_eq!(parse_image(&bad).unwrap_err().field, "encapsulation");
    }

    #[test]
    fn unset_stamp_has_no_time() {
        assert_eq!(Stamp::default().ns(), None);
        assert_eq!(
            Stamp {
                sec: -1,
                nanosec: 0
            }
            .ns(),
            None
        );
        assert_eq!(
            Stamp {
                sec: 1,
                nanosec: 1_000_000_000
            }
            .ns(),
            None
        );
        assert_eq!(Stamp { sec: 0, nanosec: 5 }.ns(), Some(5));
    }
}
