//! MCAP records on the frame path: a linear reader over one bag file with
//! buffers sized at boot, so replay never allocates. The `mcap` crate
//! reads the summary at boot (see [`super`]); its message iterators
//! allocate per chunk or per message, so the frame path parses the record
//! framing here: top-level records (opcode, u64 length, body), chunks
//! (uncompressed, zstd into a kept `ZSTD_DCtx`, lz4 frames into a kept
//! `LZ4F` context) and the Message records inside them.
//!
//! Every length is checked against the file, the chunk and the boot-sized
//! buffers before it is used. A record that does not fit (a chunk or
//! message larger than the boot sizes, a corrupt chunk) is one
//! [`Next::Bad`]: counted and skipped, the replay goes on at the next
//! top-level record. A file that ends inside a record is
//! [`Fault::Truncated`].
//!
//! Boot: [`RecordReader::new`] and, while `grow` is set, buffers grow (the
//! caller checks each growth against the memory budget). Frame path
//! (capture thread): [`RecordReader::next`] never allocates.

use std::fs::File;
use std::os::unix::fs::FileExt;

pub const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
pub const OP_FOOTER: u8 = 0x02;
pub const OP_SCHEMA: u8 = 0x03;
pub const OP_CHANNEL: u8 = 0x04;
pub const OP_MESSAGE: u8 = 0x05;
pub const OP_CHUNK: u8 = 0x06;
pub const OP_DATA_END: u8 = 0x0F;
/// Message record fields before its data: channel id, sequence, log
/// time, publish time.
const MESSAGE_HEADER: usize = 2 + 4 + 8 + 8;

/// One record handed out: its opcode and where its body lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    pub op: u8,
    in_chunk: bool,
    start: usize,
    end: usize,
}

impl Rec {
    /// Whether the record was inside a chunk (else: at the top level).
    pub fn in_chunk(&self) -> bool {
        self.in_chunk
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A Message record (or, when metadata is asked for, a Schema or
    /// Channel record).
    Rec(Rec),
    /// A record that cannot be read (skipped; the reader goes on).
    Bad(&'static str),
    /// DataEnd or Footer: no more messages.
    End,
}

#[derive(Debug)]
pub enum Fault {
    /// The file ends `stray` bytes into a record that starts at `offset`.
    Truncated {
        offset: u64,
        stray: u64,
    },
    Io {
        offset: u64,
        err: std::io::Error,
    },
    /// At boot, a buffer would have to grow to `bytes` for a record.
    TooLarge {
        offset: u64,
        what: &'static str,
        bytes: u64,
    },
}

/// A Message record's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHead {
    pub channel: u16,
    pub log_time: u64,
}

struct Lz4(lz4::liblz4::LZ4FDecompressionContext);

extern "C" {
    // In lz4frame.c, which lz4-sys builds, not in its bindings.
    fn LZ4F_resetDecompressionContext(dctx: *mut std::ffi::c_void);
}

impl Lz4 {
    fn new() -> std::io::Result<Lz4> {
        let mut ctx = lz4::liblz4::LZ4FDecompressionContext(std::ptr::null_mut());
        // SAFETY: `ctx` is a valid out-pointer; the context is freed in Drop.
        let code = unsafe {
            lz4::liblz4::LZ4F_createDecompressionContext(&mut ctx, lz4::liblz4::LZ4F_VERSION)
        };
        // SAFETY: plain function on an error code.
        if unsafe { lz4::liblz4::LZ4F_isError(code) } != 0 {
            return Err(std::io::Error::other(
                "LZ4F_createDecompressionContext failed",
            ));
        }
        Ok(Lz4(ctx))
    }

    /// Decompress the lz4 frames in `src` into `dst`; the bytes written.
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, &'static str> {
        let (mut i, mut o) = (0, 0);
        while i < src.len() {
            let mut n_out = dst.len() - o;
            let mut n_in = src.len() - i;
            // SAFETY: the pointers and sizes describe the unread part of
            // `src` and the unwritten part of `dst`; LZ4F writes at most
            // `n_out` and reads at most `n_in` bytes and reports both.
            let r = unsafe {
                lz4::liblz4::LZ4F_decompress(
                    lz4::liblz4::LZ4FDecompressionContext(self.0 .0),
                    dst.as_mut_ptr().add(o),
                    &mut n_out,
                    src.as_ptr().add(i),
                    &mut n_in,
                    std::ptr::null(),
                )
            };
            // SAFETY: plain function on an error code.
            if unsafe { lz4::liblz4::LZ4F_isError(r) } != 0 {
                // SAFETY: the context is ours; resetting makes it usable
                // for the next chunk.
                unsafe { LZ4F_resetDecompressionContext(self.0 .0) };
                return Err("lz4 chunk does not decompress");
            }
            i += n_in;
            o += n_out;
            if n_in == 0 && n_out == 0 {
                // SAFETY: as above.
                unsafe { LZ4F_resetDecompressionContext(self.0 .0) };
                return Err("lz4 chunk larger than its uncompressed size");
            }
        }
        Ok(o)
    }
}

impl Drop for Lz4 {
    fn drop(&mut self) {
        // SAFETY: created in `new`, freed once.
        unsafe {
            lz4::liblz4::LZ4F_freeDecompressionContext(lz4::liblz4::LZ4FDecompressionContext(
                self.0 .0,
            ));
        }
    }
}

// SAFETY: the context is only used through `&mut self`.
unsafe impl Send for Lz4 {}

/// Linear reader over one MCAP file. See the module doc.
pub struct RecordReader {
    file: File,
    file_len: u64,
    /// File offset of the next top-level record.
    pos: u64,
    /// Compressed chunk records, or a top-level record's body.
    raw: Vec<u8>,
    /// A chunk's records, uncompressed; `chunk[chunk_pos..chunk_len]`
    /// are still to be read.
    chunk: Vec<u8>,
    chunk_pos: usize,
    chunk_len: usize,
    ended: bool,
    /// Boot: buffers grow up to `limit` bytes in all. Frame path: fixed.
    pub grow: bool,
    pub limit: u64,
    /// Also hand out Schema and Channel records (the boot scan).
    pub meta: bool,
    zstd: zstd::bulk::Decompressor<'static>,
    lz4: Lz4,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl RecordReader {
    /// Boot: buffers of `raw` and `chunk` bytes (already checked against
    /// the budget), the decompression contexts.
    pub fn new(file: File, file_len: u64, raw: usize, chunk: usize) -> std::io::Result<Self> {
        Ok(RecordReader {
            file,
            file_len,
            pos: MAGIC.len() as u64,
            raw: vec![0; raw],
            chunk: vec![0; chunk],
            chunk_pos: 0,
            chunk_len: 0,
            ended: false,
            grow: false,
            limit: 0,
            meta: false,
            zstd: zstd::bulk::Decompressor::new()?,
            lz4: Lz4::new()?,
        })
    }

    /// Back to the first record, with another file (boot, or the next
    /// file of a rosbag2 folder); returns the file it read before.
    pub fn restart(&mut self, file: File, file_len: u64) -> File {
        self.pos = MAGIC.len() as u64;
        self.file_len = file_len;
        self.chunk_pos = 0;
        self.chunk_len = 0;
        self.ended = false;
        std::mem::replace(&mut self.file, file)
    }

    /// Back to the first record of the same file.
    pub fn rewind(&mut self) {
        self.pos = MAGIC.len() as u64;
        self.chunk_pos = 0;
        self.chunk_len = 0;
        self.ended = false;
    }

    /// Bytes of the record buffer and of the chunk buffer.
    pub fn sizes(&self) -> (u64, u64) {
        (self.raw.len() as u64, self.chunk.len() as u64)
    }

    /// Boot: a record buffer of at least `n` bytes (budget checked by
    /// the caller).
    pub fn reserve_raw(&mut self, n: usize) {
        if self.raw.len() < n {
            self.raw.resize(n, 0);
        }
    }

    pub fn buffer_bytes(&self) -> u64 {
        (self.raw.len() + self.chunk.len()) as u64
    }

    /// Offset of the next top-level record (for messages).
    pub fn offset(&self) -> u64 {
        self.pos
    }

    pub fn body(&self, r: &Rec) -> &[u8] {
        if r.in_chunk {
            &self.chunk[r.start..r.end]
        } else {
            &self.raw[r.start..r.end]
        }
    }

    /// A Message record's head and data.
    pub fn message(&self, r: &Rec) -> Option<(MessageHead, &[u8])> {
        let b = self.body(r);
        if r.op != OP_MESSAGE || b.len() < MESSAGE_HEADER {
            return None;
        }
        Some((
            MessageHead {
                channel: u16::from_le_bytes([b[0], b[1]]),
                log_time: le_u64(&b[6..]),
            },
            &b[MESSAGE_HEADER..],
        ))
    }

    fn read_at(&self, buf: &mut [u8], at: u64, rec: u64) -> Result<(), Fault> {
        match self.file.read_exact_at(buf, at) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Fault::Truncated {
                offset: rec,
                stray: self.file_len.saturating_sub(rec),
            }),
            Err(err) => Err(Fault::Io { offset: at, err }),
        }
    }

    /// Make `which` (0: raw, 1: chunk) at least `n` bytes, if growing is
    /// allowed and the total stays under `limit`; `false` otherwise.
    fn ensure(&mut self, which: u8, n: u64, what: &'static str) -> Result<bool, Fault> {
        let have = if which == 0 {
            self.raw.len()
        } else {
            self.chunk.len()
        } as u64;
        if n <= have {
            return Ok(true);
        }
        if !self.grow {
            return Ok(false);
        }
        let total = self.buffer_bytes() - have + n;
        if total > self.limit {
            return Err(Fault::TooLarge {
                offset: self.pos,
                what,
                bytes: total,
            });
        }
        let b = if which == 0 {
            &mut self.raw
        } else {
            &mut self.chunk
        };
        b.resize(n as usize, 0);
        Ok(true)
    }

    /// The next record of interest. Frame path: never allocates (unless
    /// `grow`, at boot).
    pub fn next_record(&mut self) -> Result<Next, Fault> {
        loop {
            if self.chunk_pos < self.chunk_len {
                let rest = &self.chunk[self.chunk_pos..self.chunk_len];
                if rest.len() < 9 {
                    self.chunk_len = 0;
                    return Ok(Next::Bad("chunk ends inside a record header"));
                }
                let op = rest[0];
                let len = le_u64(&rest[1..]);
                if len > (rest.len() - 9) as u64 {
                    self.chunk_len = 0;
                    return Ok(Next::Bad("record longer than its chunk"));
                }
                let start = self.chunk_pos + 9;
                let end = start + len as usize;
                self.chunk_pos = end;
                if op == OP_MESSAGE || (self.meta && (op == OP_SCHEMA || op == OP_CHANNEL)) {
                    return Ok(self.checked(Rec {
                        op,
                        in_chunk: true,
                        start,
                        end,
                    }));
                }
                continue;
            }
            if self.ended {
                return Ok(Next::End);
            }
            let rec = self.pos;
            if rec == self.file_len {
                return Err(Fault::Truncated {
                    offset: rec,
                    stray: 0,
                });
            }
            let mut head = [0u8; 9];
            self.read_at(&mut head, rec, rec)?;
            let op = head[0];
            let len = le_u64(&head[1..]);
            let body = rec + 9;
            let Some(end) = body.checked_add(len).filter(|&e| e <= self.file_len) else {
                return Err(Fault::Truncated {
                    offset: rec,
                    stray: self.file_len - rec,
                });
            };
            self.pos = end;
            match op {
                OP_DATA_END | OP_FOOTER => {
                    self.ended = true;
                    return Ok(Next::End);
                }
                OP_CHUNK => {
                    if let Err(why) = self.load_chunk(body, len, rec)? {
                        return Ok(Next::Bad(why));
                    }
                }
                OP_MESSAGE | OP_SCHEMA | OP_CHANNEL if op == OP_MESSAGE || self.meta => {
                    if !self.ensure(0, len, "a record outside chunks")? {
                        return Ok(Next::Bad("message larger than the boot-sized buffer"));
                    }
                    let n = len as usize;
                    let mut raw = std::mem::take(&mut self.raw);
                    let r = self.read_at(&mut raw[..n], body, rec);
                    self.raw = raw;
                    r?;
                    return Ok(self.checked(Rec {
                        op,
                        in_chunk: false,
                        start: 0,
                        end: n,
                    }));
                }
                _ => {}
            }
        }
    }

    fn checked(&self, r: Rec) -> Next {
        if r.op == OP_MESSAGE && r.end - r.start < MESSAGE_HEADER {
            return Next::Bad("message record shorter than its fields");
        }
        Next::Rec(r)
    }

    /// Read the chunk whose body is `len` bytes at `body` into `chunk`.
    /// `Ok(Err(why))`: a bad chunk, skipped.
    fn load_chunk(
        &mut self,
        body: u64,
        len: u64,
        rec: u64,
    ) -> Result<Result<(), &'static str>, Fault> {
        // start time, end time, uncompressed size, CRC, compression length.
        let mut head = [0u8; 32];
        if len < 40 {
            return Ok(Err("chunk record shorter than its fields"));
        }
        self.read_at(&mut head, body, rec)?;
        let usize_ = le_u64(&head[16..]);
        let clen = le_u32(&head[28..]) as u64;
        if clen > 16 || 40 + clen > len {
            return Ok(Err("chunk compression name longer than 16 bytes"));
        }
        let mut name = [0u8; 24];
        let name_len = clen as usize;
        self.read_at(&mut name[..name_len + 8], body + 32, rec)?;
        let records_len = le_u64(&name[name_len..]);
        let records_at = body + 40 + clen;
        if records_len > len - 40 - clen {
            return Ok(Err("chunk records longer than the chunk record"));
        }
        if !self.ensure(1, usize_, "a chunk (uncompressed)")? {
            return Ok(Err("chunk larger than the boot-sized buffer"));
        }
        let (n_out, n_in) = (usize_ as usize, records_len as usize);
        let mut chunk = std::mem::take(&mut self.chunk);
        let res = match &name[..name_len] {
            b"" => {
                if records_len != usize_ {
                    Ok(Err("uncompressed chunk whose sizes differ"))
                } else {
                    self.read_at(&mut chunk[..n_out], records_at, rec).map(Ok)
                }
            }
            b"zstd" | b"lz4" => match self.ensure(0, records_len, "a chunk (compressed)") {
                Err(e) => Err(e),
                Ok(false) => Ok(Err("chunk larger than the boot-sized buffer")),
                Ok(true) => {
                    let mut raw = std::mem::take(&mut self.raw);
                    let r = self.read_at(&mut raw[..n_in], records_at, rec).map(|()| {
                        let got = if &name[..name_len] == b"zstd" {
                            self.zstd
                                .decompress_to_buffer(&raw[..n_in], &mut chunk[..n_out])
                                .map_err(|_| "zstd chunk does not decompress")
                        } else {
                            self.lz4.decompress(&raw[..n_in], &mut chunk[..n_out])
                        };
                        match got {
                            Ok(k) if k == n_out => Ok(()),
                            Ok(_) => Err("chunk decompresses to another size than it says"),
                            Err(e) => Err(e),
                        }
                    });
                    self.raw = raw;
                    r
                }
            },
            _ => Ok(Err("chunk compression is not zstd, lz4 or none")),
        };
        self.chunk = chunk;
        let res = res?;
        if res.is_ok() {
            self.chunk_pos = 0;
            self.chunk_len = n_out;
        }
        Ok(res)
    }
}
