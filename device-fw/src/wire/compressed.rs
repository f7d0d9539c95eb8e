//! The compressed form of an image: what `otactl release` publishes beside the raw image
//! and a device decodes straight into its slot.
//!
//! # Format
//!
//! ```text
//! "OTZ1"  raw_size (u32 LE)          header, HEADER_LEN bytes
//! len (u16 LE)  len bytes of DEFLATE  segment 0: image bytes [0, 4096)
//! len (u16 LE)  len bytes of DEFLATE  segment 1: image bytes [4096, 8192)
//! …                                   one segment per SEGMENT_RAW bytes; the last may be short
//! ```
//!
//! The segments are one raw DEFLATE stream (RFC 1951, 32 KiB window) cut by a sync flush
//! after every [`SEGMENT_RAW`] bytes of image: each segment starts a new block with its own
//! Huffman tables, and may refer back into the image before it (the window), which the
//! device reads back from the slot ([`crate::ota::inflate`]). A segment is at most
//! [`MAX_SEGMENT`] bytes, which bounds the device's input buffer; the encoder refuses to
//! make a longer one (DEFLATE stores an incompressible block in a few bytes more than it).
//!
//! So a download resumes at any segment boundary with nothing but the slot's contents and
//! the offset of that boundary in this file, which the journal keeps beside the image bytes
//! written. The signed SHA-256 stays the hash of the raw image, checked after decoding.

/// File magic.
pub const MAGIC: [u8; 4] = *b"OTZ1";
/// Header bytes: magic, raw size.
pub const HEADER_LEN: usize = 8;
/// Image bytes per segment: one flash sector, so each resume point is a journal checkpoint.
pub const SEGMENT_RAW: usize = 4096;
/// Longest segment (its DEFLATE bytes, without the length prefix).
pub const MAX_SEGMENT: usize = SEGMENT_RAW + 256;
/// Bytes of a segment's length prefix.
pub const SEGMENT_PREFIX: usize = 2;

/// Why a compressed file was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressedError {
    #[error("compressed image does not start with OTZ1; the manifest's `compressed` is not an otactl compressed image")]
    BadMagic,
    #[error("compressed image is for a {found}-byte image, the manifest says {expected}")]
    WrongRawSize { expected: u32, found: u32 },
    #[error("a compressed segment claims {len} bytes, more than the {MAX_SEGMENT} any segment has")]
    SegmentTooLong { len: usize },
    #[error("compressed image ends before its image is complete")]
    Truncated,
    #[error("compressed image has bytes after its last segment")]
    TrailingBytes,
}

/// Image bytes segment `index` decodes to, for an image of `raw_size` bytes.
pub const fn segment_raw_len(raw_size: u32, index: u32) -> usize {
    let start = index as u64 * SEGMENT_RAW as u64;
    let left = (raw_size as u64).saturating_sub(start);
    if left < SEGMENT_RAW as u64 {
        left as usize
    } else {
        SEGMENT_RAW
    }
}

/// The header for an image of `raw_size` bytes.
pub const fn header(raw_size: u32) -> [u8; HEADER_LEN] {
    let s = raw_size.to_le_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], s[0], s[1], s[2], s[3]]
}

/// Checks a header against the signed raw size.
pub fn check_header(bytes: &[u8; HEADER_LEN], raw_size: u32) -> Result<(), CompressedError> {
    if bytes[..4] != MAGIC {
        return Err(CompressedError::BadMagic);
    }
    let found = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if found != raw_size {
        return Err(CompressedError::WrongRawSize {
            expected: raw_size,
            found,
        });
    }
    Ok(())
}

/// Compresses an image into this format (host only: `otactl release`, the bench).
#[cfg(feature = "std")]
pub fn compress(image: &[u8]) -> Result<Vec<u8>, CompressedError> {
    use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress as deflate};
    use miniz_oxide::{DataFormat, deflate::CompressionLevel};

    let raw_size = u32::try_from(image.len()).map_err(|_| CompressedError::Truncated)?;
    let mut out = header(raw_size).to_vec();
    let mut compressor = CompressorOxide::with_format_and_level(DataFormat::Raw, CompressionLevel::BestCompression);
    let mut buf = vec![0u8; 2 * MAX_SEGMENT];
    let segments = image.len().div_ceil(SEGMENT_RAW);
    for (index, block) in image.chunks(SEGMENT_RAW).enumerate() {
        let flush = if index + 1 == segments {
            TDEFLFlush::Finish
        } else {
            TDEFLFlush::Sync
        };
        let (status, read, written) = deflate(&mut compressor, block, &mut buf, flush);
        let finished = match flush {
            TDEFLFlush::Finish => status == TDEFLStatus::Done,
            _ => status == TDEFLStatus::Okay,
        };
        if !finished || read != block.len() {
            return Err(CompressedError::SegmentTooLong { len: written });
        }
        if written > MAX_SEGMENT {
            return Err(CompressedError::SegmentTooLong { len: written });
        }
        out.extend_from_slice(&(written as u16).to_le_bytes());
        out.extend_from_slice(&buf[..written]);
    }
    Ok(out)
}
