//! The compressed form of an image: what `otactl release` publishes beside the raw image
//! and a device decodes straight into its slot.
//!
//! # Format
//!
//! ```text
//! "OTZ2"  raw_size (u32 LE)          header, HEADER_LEN bytes
//! len (u16 LE)  len bytes of LZMA     segment 0: image bytes [0, 4096)
//! len (u16 LE)  len bytes of LZMA     segment 1: image bytes [4096, 8192)
//! …                                   one segment per SEGMENT_RAW bytes; the last may be short
//! ```
//!
//! Each segment is a raw LZMA stream (no header, no end marker) with the properties lc=0,
//! lp=0, pb=2 ([`crate::ota::lzma`]) and the whole image before it as its preset
//! dictionary, which the device reads back from the slot. The model starts afresh at every
//! segment; only the dictionary crosses the cut. A segment is at most [`MAX_SEGMENT`]
//! bytes, which bounds the device's input buffer; the encoder refuses to make a longer one
//! (LZMA codes an incompressible block in about 1.5 % more than it).
//!
//! So a download resumes at any segment boundary with nothing but the slot's contents and
//! the offset of that boundary in this file, which the journal keeps beside the image bytes
//! written. The signed SHA-256 stays the hash of the raw image, checked after decoding.
//!
//! The first compressed form, `OTZ1`, was DEFLATE cut the same way (0.62 of raw on our
//! firmware, against 0.56 for this one). Manifests list this form under `lzma`, a member
//! firmware that knew only `OTZ1` does not read, so such a device takes the raw image.

/// File magic.
pub const MAGIC: [u8; 4] = *b"OTZ2";
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
    #[error("compressed image does not start with OTZ2; the manifest's `lzma` is not an otactl compressed image")]
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

/// How far back the encoder looks for matches: a segment may refer anywhere before it (the
/// decoder bounds distances by the image position only), but every segment's encoder
/// indexes its preset dictionary afresh, so an unbounded one would make `compress`
/// quadratic in the image size. 256 KiB loses nothing measurable on our firmware (0.5647
/// of raw either way) and keeps a 6 MiB image to seconds.
#[cfg(feature = "std")]
const ENCODER_WINDOW: usize = 256 * 1024;

/// Compresses an image into this format (host only: `otactl release`, the bench). The
/// segments are independent given the image, so they are encoded on every core.
#[cfg(feature = "std")]
pub fn compress(image: &[u8]) -> Result<Vec<u8>, CompressedError> {
    let raw_size = u32::try_from(image.len()).map_err(|_| CompressedError::Truncated)?;
    let segments = image.len().div_ceil(SEGMENT_RAW);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_worker = segments.div_ceil(workers).max(1);
    let encoded: Vec<Result<Vec<Vec<u8>>, CompressedError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..segments)
            .step_by(per_worker)
            .map(|first| {
                scope.spawn(move || {
                    (first..(first + per_worker).min(segments))
                        .map(|index| compress_segment(image, index))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a segment encoder panicked"))
            .collect()
    });
    let mut out = header(raw_size).to_vec();
    for run in encoded {
        for segment in run? {
            out.extend_from_slice(&(segment.len() as u16).to_le_bytes());
            out.extend_from_slice(&segment);
        }
    }
    Ok(out)
}

/// Segment `index` of `image`: a raw LZMA stream of its block, the image before it (up to
/// [`ENCODER_WINDOW`]) as the preset dictionary.
#[cfg(feature = "std")]
fn compress_segment(image: &[u8], index: usize) -> Result<Vec<u8>, CompressedError> {
    use crate::ota::lzma::{LC, LP, PB};
    use lzma_rust2::{EncodeMode, LzmaOptions, LzmaWriter, MfType};
    use std::io::Write;

    let start = index * SEGMENT_RAW;
    let block = &image[start..(start + SEGMENT_RAW).min(image.len())];
    let dictionary = &image[start.saturating_sub(ENCODER_WINDOW)..start];
    // The longest matches the format allows (273). The hash-chain finder indexes a preset
    // dictionary several times faster than the binary tree and codes our firmware within
    // 0.01 % of it.
    let dict_size = (ENCODER_WINDOW + SEGMENT_RAW) as u32;
    let mut options = LzmaOptions::new(dict_size, LC, LP, PB, EncodeMode::Normal, 273, MfType::Hc4, 0);
    options.preset_dict = (!dictionary.is_empty()).then(|| dictionary.to_vec());
    let segment = LzmaWriter::new_no_header(Vec::with_capacity(MAX_SEGMENT), &options, false)
        .and_then(|mut w| w.write_all(block).map(|()| w))
        .and_then(|w| w.finish())
        .map_err(|_| CompressedError::SegmentTooLong { len: usize::MAX })?;
    if segment.len() > MAX_SEGMENT {
        return Err(CompressedError::SegmentTooLong { len: segment.len() });
    }
    Ok(segment)
}
