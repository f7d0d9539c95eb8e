//! Making a patch (host only: `otactl release`, `otactl image diff`, the bench).
//!
//! The matching is bsdiff's (the `bsdiff` crate: suffix sorting of the base, then
//! approximate matches extended while more bytes agree than differ); this module only cuts
//! its control stream into the device's segments and compresses each.

use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress as deflate};
use miniz_oxide::{DataFormat, deflate::CompressionLevel};
use sha2::{Digest, Sha256};

use super::{DeltaError, Header, MAX_DECODED, MAX_OP_HEADERS, MAX_SEGMENT, Operation, SEGMENT_RAW, push_op_header};

/// DEFLATE's window: how much of the new image before a segment its matches may reach.
const WINDOW: usize = 32 * 1024;

/// A run of the new image: from the base (`Some(at)`, with differences) or literal.
#[derive(Debug, Clone, Copy)]
struct Span {
    new_at: usize,
    len: usize,
    base_at: Option<usize>,
}

/// The patch that turns `base` into `new`.
pub fn diff(base: &[u8], new: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let raw_size = u32::try_from(new.len()).map_err(|_| DeltaError::Truncated)?;
    let base_size = u32::try_from(base.len()).map_err(|_| DeltaError::Truncated)?;
    let header = Header {
        raw_size,
        base_size,
        base_sha256: Sha256::digest(base).into(),
    };
    let spans = spans(base, new);
    let mut out = header.to_bytes().to_vec();
    let mut next_span = 0;
    let mut ops = Vec::with_capacity(MAX_DECODED);
    let mut packed = vec![0u8; 2 * (WINDOW + MAX_SEGMENT)];
    for start in (0..new.len()).step_by(SEGMENT_RAW) {
        let end = (start + SEGMENT_RAW).min(new.len());
        while spans[next_span].new_at + spans[next_span].len <= start {
            next_span += 1;
        }
        segment_ops(base, new, &spans[next_span..], start, end, &mut ops);
        let segment = compress_segment(&new[start.saturating_sub(WINDOW)..start], &ops, &mut packed)?;
        out.extend_from_slice(&(segment.len() as u16).to_le_bytes());
        out.extend_from_slice(segment);
    }
    Ok(out)
}

/// bsdiff's control stream as spans that cover `new` from start to end.
fn spans(base: &[u8], new: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    if base.is_empty() {
        spans.push(Span {
            new_at: 0,
            len: new.len(),
            base_at: None,
        });
        return spans;
    }
    let mut controls = Vec::new();
    bsdiff::diff(base, new, &mut controls).expect("writing into a Vec cannot fail");
    let (mut at, mut new_at, mut base_at) = (0usize, 0usize, 0i64);
    let word = |b: &[u8]| {
        let y = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        if y >> 63 == 0 {
            y as i64
        } else {
            -((y & !(1 << 63)) as i64)
        }
    };
    while at < controls.len() {
        let add = word(&controls[at..at + 8]) as usize;
        let copy = word(&controls[at + 8..at + 16]) as usize;
        let seek = word(&controls[at + 16..at + 24]);
        at += 24 + add + copy;
        if add > 0 {
            spans.push(Span {
                new_at,
                len: add,
                base_at: Some(base_at as usize),
            });
        }
        new_at += add;
        if copy > 0 {
            spans.push(Span {
                new_at,
                len: copy,
                base_at: None,
            });
        }
        new_at += copy;
        base_at += add as i64 + seek;
    }
    debug_assert_eq!(new_at, new.len());
    spans
}

/// The operations and data bytes of the block `[start, end)`.
fn segment_ops(base: &[u8], new: &[u8], spans: &[Span], start: usize, end: usize, ops: &mut Vec<u8>) {
    ops.clear();
    let mut cursor = start as i64;
    let mut headers = 0;
    for span in spans {
        if span.new_at >= end {
            break;
        }
        let from = span.new_at.max(start);
        let to = (span.new_at + span.len).min(end);
        let len = (to - from) as u32;
        let before = ops.len();
        match span.base_at {
            Some(base_at) => {
                let base_at = base_at + (from - span.new_at);
                push_op_header(
                    ops,
                    Operation::Add {
                        base_at: base_at as u64,
                        len,
                    },
                    &mut cursor,
                );
                headers += ops.len() - before;
                ops.extend(
                    new[from..to]
                        .iter()
                        .zip(&base[base_at..base_at + len as usize])
                        .map(|(n, b)| n.wrapping_sub(*b)),
                );
            }
            None => {
                push_op_header(ops, Operation::Literal { len }, &mut cursor);
                headers += ops.len() - before;
                ops.extend_from_slice(&new[from..to]);
            }
        }
    }
    // A block cut into more pieces than the device's buffer allows is sent as it is.
    if headers > MAX_OP_HEADERS {
        ops.clear();
        let mut cursor = start as i64;
        push_op_header(
            ops,
            Operation::Literal {
                len: (end - start) as u32,
            },
            &mut cursor,
        );
        ops.extend_from_slice(&new[start..end]);
    }
}

/// One segment: `ops` as a DEFLATE stream of its own whose window is primed with `window`
/// (the new image before the segment), ending in a final block.
fn compress_segment<'p>(window: &[u8], ops: &[u8], packed: &'p mut [u8]) -> Result<&'p [u8], DeltaError> {
    let mut compressor = CompressorOxide::with_format_and_level(DataFormat::Raw, CompressionLevel::BestCompression);
    // The window's own encoding ends at a sync flush, on a byte boundary: what follows is
    // a stream that starts a new block and may refer back into it.
    let (status, read, primed) = deflate(&mut compressor, window, packed, TDEFLFlush::Sync);
    if status != TDEFLStatus::Okay || read != window.len() {
        return Err(DeltaError::SegmentTooLong { len: primed });
    }
    let (status, read, written) = deflate(&mut compressor, ops, &mut packed[primed..], TDEFLFlush::Finish);
    if status != TDEFLStatus::Done || read != ops.len() || written > MAX_SEGMENT {
        return Err(DeltaError::SegmentTooLong { len: written });
    }
    Ok(&packed[primed..primed + written])
}
