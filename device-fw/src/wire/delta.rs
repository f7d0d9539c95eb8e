//! The delta form of an image: a patch from the channel's previous release, which a device
//! running exactly that release applies with its running slot as the source.
//!
//! # Format
//!
//! ```text
//! "OTD1" raw_size base_size (u32 LE) base_sha256 (32)   header, HEADER_LEN bytes
//! len (u16 LE)  len bytes of DEFLATE                     segment 0: image bytes [0, 4096)
//! len (u16 LE)  len bytes of DEFLATE                     segment 1: image bytes [4096, 8192)
//! …                                                      one per SEGMENT_RAW bytes of image
//! ```
//!
//! A segment inflates to the operations that make its 4 KiB of the new image, bsdiff's
//! (Percival's) two kinds: `add` takes bytes of the base image and adds a difference byte
//! to each (code that moved keeps most of its bytes and changes a few address bytes, so the
//! differences are mostly zero and compress to little), `literal` gives new bytes as they
//! are. Each operation is a varint `len << 1 | kind`, for `add` a zigzag varint seek of the
//! base position from a cursor (which starts at the segment's own image offset and ends
//! each `add` after its bytes), then its `len` data bytes. The operations of a segment make
//! exactly its block.
//!
//! Each segment is its own DEFLATE stream (ending in a final block) whose window is the
//! new image before the segment: the literal bytes of new code find their matches in the
//! code the patch already wrote, which the device reads back from the slot being written,
//! as for the compressed form ([`crate::ota::inflate`]). So each segment decodes with
//! nothing but the two slots: a download resumes at any segment boundary with the offset
//! of that boundary in this file, which the journal keeps.
//!
//! Source (the running slot) and destination (the other slot) never overlap: an A/B
//! device never patches in place, so no block has to be saved before it is overwritten.

/// File magic.
pub const MAGIC: [u8; 4] = *b"OTD1";
/// Header bytes: magic, raw size, base size, base SHA-256.
pub const HEADER_LEN: usize = 4 + 4 + 4 + 32;
/// Image bytes per segment (as [`super::compressed::SEGMENT_RAW`]: one sector each).
pub const SEGMENT_RAW: usize = super::compressed::SEGMENT_RAW;
/// Most bytes of operation headers a segment may have beyond its block's data bytes.
pub const MAX_OP_HEADERS: usize = 512;
/// Longest inflated segment: its block's data bytes and its operations' headers.
pub const MAX_DECODED: usize = SEGMENT_RAW + MAX_OP_HEADERS;
/// Longest segment (its DEFLATE bytes, without the length prefix).
pub const MAX_SEGMENT: usize = MAX_DECODED + 256;
/// Bytes of a segment's length prefix.
pub const SEGMENT_PREFIX: usize = 2;

const KIND_ADD: u32 = 0;
/// The decoder takes every tag that is not an `add` as a literal; only the encoder names it.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
const KIND_LITERAL: u32 = 1;

/// Why a patch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    #[error("patch does not start with OTD1; the manifest's `delta` is not an otactl patch")]
    BadMagic,
    #[error("patch makes a {found}-byte image, the manifest says {expected}")]
    WrongRawSize { expected: u32, found: u32 },
    #[error("patch is from another base image than the manifest's `delta.base_sha256`")]
    WrongBase,
    #[error("a patch segment claims {len} bytes, more than the {MAX_SEGMENT} any segment has")]
    SegmentTooLong { len: usize },
    #[error("patch ends before its image is complete")]
    Truncated,
    #[error("patch has bytes after its last segment")]
    TrailingBytes,
    #[error("a patch segment's operations are malformed (bad varint, empty operation, or not exactly its block)")]
    BadOperation,
    #[error("a patch operation reads base bytes [{at}, {at}+{len}) outside the {base_size}-byte base image")]
    BaseOutOfRange { at: u64, len: u32, base_size: u32 },
}

/// What a patch's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub raw_size: u32,
    pub base_size: u32,
    pub base_sha256: [u8; 32],
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.raw_size.to_le_bytes());
        out[8..12].copy_from_slice(&self.base_size.to_le_bytes());
        out[12..].copy_from_slice(&self.base_sha256);
        out
    }

    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, DeltaError> {
        if bytes[..4] != MAGIC {
            return Err(DeltaError::BadMagic);
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut base_sha256 = [0u8; 32];
        base_sha256.copy_from_slice(&bytes[12..]);
        Ok(Header {
            raw_size: u32_at(4),
            base_size: u32_at(8),
            base_sha256,
        })
    }

    /// Checks the header against what the signed manifest says of the image and the base.
    pub fn check(&self, expected: &Header) -> Result<(), DeltaError> {
        if self.raw_size != expected.raw_size {
            return Err(DeltaError::WrongRawSize {
                expected: expected.raw_size,
                found: self.raw_size,
            });
        }
        if self.base_size != expected.base_size || self.base_sha256 != expected.base_sha256 {
            return Err(DeltaError::WrongBase);
        }
        Ok(())
    }
}

/// One operation of a segment, as [`Operations`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `len` bytes of the base from `base_at`, each plus its data byte.
    Add { base_at: u64, len: u32 },
    /// `len` data bytes as they are.
    Literal { len: u32 },
}

/// Reads a segment's operations, a call at a time on the segment's bytes (so that the
/// caller may overwrite the bytes already read: the device builds the block in place).
#[derive(Debug, Clone)]
pub struct Operations {
    len: usize,
    pos: usize,
    cursor: i64,
}

impl Operations {
    /// The operations of a `len`-byte segment that starts at image offset `segment_start`.
    pub fn new(len: usize, segment_start: u32) -> Self {
        Operations {
            len,
            pos: 0,
            cursor: i64::from(segment_start),
        }
    }

    fn varint(&mut self, bytes: &[u8]) -> Result<u64, DeltaError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = *bytes.get(self.pos).ok_or(DeltaError::BadOperation)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DeltaError::BadOperation)
    }

    /// The next operation and the offset of its data bytes in the segment, or `None` at
    /// the segment's end. `bytes` is the segment; the bytes before the returned offset are
    /// not read again.
    pub fn next_op(&mut self, bytes: &[u8]) -> Result<Option<(Operation, usize)>, DeltaError> {
        let bytes = bytes.get(..self.len).ok_or(DeltaError::BadOperation)?;
        if self.pos == bytes.len() {
            return Ok(None);
        }
        let tag = self.varint(bytes)?;
        let len = u32::try_from(tag >> 1).map_err(|_| DeltaError::BadOperation)?;
        if len == 0 {
            return Err(DeltaError::BadOperation);
        }
        let op = if tag & 1 == u64::from(KIND_ADD) {
            let zigzag = self.varint(bytes)?;
            let seek = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
            let base_at = self
                .cursor
                .checked_add(seek)
                .filter(|at| *at >= 0)
                .ok_or(DeltaError::BadOperation)?;
            self.cursor = base_at + i64::from(len);
            Operation::Add {
                base_at: base_at as u64,
                len,
            }
        } else {
            Operation::Literal { len }
        };
        let data = self.pos;
        if bytes.len() - data < len as usize {
            return Err(DeltaError::BadOperation);
        }
        self.pos += len as usize;
        Ok(Some((op, data)))
    }
}

#[cfg(feature = "std")]
mod encode;
#[cfg(feature = "std")]
pub use encode::diff;

#[cfg(feature = "std")]
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends one operation's header (host only: the encoder, and tests that build patches).
#[cfg(feature = "std")]
pub fn push_op_header(out: &mut Vec<u8>, op: Operation, cursor: &mut i64) {
    match op {
        Operation::Add { base_at, len } => {
            push_varint(out, (u64::from(len) << 1) | u64::from(KIND_ADD));
            let seek = base_at as i64 - *cursor;
            push_varint(out, ((seek << 1) ^ (seek >> 63)) as u64);
            *cursor = base_at as i64 + i64::from(len);
        }
        Operation::Literal { len } => push_varint(out, (u64::from(len) << 1) | u64::from(KIND_LITERAL)),
    }
}

#[cfg(all(test, feature = "std"))]
mod tests;
