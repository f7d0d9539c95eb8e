//! Builds a block of the new image from a patch segment's operations
//! ([`crate::wire::delta`]), reading the base image from the running slot.
//!
//! The block is built in place, over the inflated operations: every operation's header
//! comes before its data bytes, so the block's next byte is always written before the data
//! byte it comes from is overwritten, and no second 4 KiB buffer is needed. Base bytes are
//! read [`BASE_CHUNK`] at a time into the stack.

use super::inflate::InflateError;
use super::window::History;
use crate::wire::delta::{DeltaError, Operation, Operations};

/// Base bytes read from flash at a time, on the stack of [`apply_segment`].
pub const BASE_CHUNK: usize = 256;

/// Why a segment's block could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError<E> {
    #[error("{0}")]
    Delta(DeltaError),
    #[error("a segment does not inflate: {0}")]
    Inflate(InflateError<E>),
    #[error("reading the base image from the running slot failed: {0:?}")]
    Base(E),
}

/// Turns the `decoded` bytes of operations at the start of `buf` into the segment's
/// `block_len`-byte block at the start of `buf`. `base` reads the `base_size`-byte base image.
pub async fn apply_segment<B: History>(
    buf: &mut [u8],
    decoded: usize,
    block_len: usize,
    segment_start: u32,
    base: &mut B,
    base_size: u32,
) -> Result<(), PatchError<B::Error>> {
    let mut ops = Operations::new(decoded, segment_start);
    let mut out = 0usize;
    let bad = PatchError::Delta(DeltaError::BadOperation);
    while let Some((op, data)) = ops.next_op(buf).map_err(PatchError::Delta)? {
        let len = match op {
            Operation::Add { len, .. } | Operation::Literal { len } => len as usize,
        };
        if len > block_len - out {
            return Err(bad);
        }
        match op {
            Operation::Literal { .. } => buf.copy_within(data..data + len, out),
            Operation::Add { base_at, .. } => {
                if base_at + len as u64 > u64::from(base_size) {
                    return Err(PatchError::Delta(DeltaError::BaseOutOfRange {
                        at: base_at,
                        len: len as u32,
                        base_size,
                    }));
                }
                let mut chunk = [0u8; BASE_CHUNK];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(BASE_CHUNK);
                    base.read(base_at as u32 + done as u32, &mut chunk[..n])
                        .await
                        .map_err(PatchError::Base)?;
                    // Forward, one byte at a time: the block's byte is written at or before
                    // the data byte it is made of.
                    for (i, b) in chunk[..n].iter().enumerate() {
                        buf[out + done + i] = buf[data + done + i].wrapping_add(*b);
                    }
                    done += n;
                }
            }
        }
        out += len;
    }
    if out != block_len {
        return Err(bad);
    }
    Ok(())
}

/// Applies a whole patch in memory (host only: `otactl image diff` checks what it wrote,
/// tests compare with the device). The same decoder and operations as the device's.
#[cfg(feature = "std")]
pub fn apply(base: &[u8], patch: &[u8]) -> Result<Vec<u8>, ApplyError> {
    use crate::ota::inflate::{InflateTables, inflate_segment};
    use crate::wire::delta::{HEADER_LEN, Header, MAX_DECODED, MAX_SEGMENT, SEGMENT_PREFIX, SEGMENT_RAW};
    use sha2::{Digest, Sha256};

    struct Bytes<'a>(&'a [u8]);
    impl History for Bytes<'_> {
        type Error = ();
        async fn read(&mut self, at: u32, buf: &mut [u8]) -> Result<(), ()> {
            let at = at as usize;
            buf.copy_from_slice(self.0.get(at..at + buf.len()).ok_or(())?);
            Ok(())
        }
    }

    let head: &[u8; HEADER_LEN] = patch
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ApplyError::Delta(DeltaError::Truncated))?;
    let header = Header::parse(head).map_err(ApplyError::Delta)?;
    let base_sha256: [u8; 32] = Sha256::digest(base).into();
    if header.base_size as usize != base.len() || header.base_sha256 != base_sha256 {
        return Err(ApplyError::Delta(DeltaError::WrongBase));
    }
    let mut new = Vec::with_capacity(header.raw_size as usize);
    let mut at = HEADER_LEN;
    let mut tables = InflateTables::new();
    let mut buf = vec![0u8; MAX_DECODED];
    while new.len() < header.raw_size as usize {
        let prefix = patch
            .get(at..at + SEGMENT_PREFIX)
            .ok_or(ApplyError::Delta(DeltaError::Truncated))?;
        let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
        if len > MAX_SEGMENT {
            return Err(ApplyError::Delta(DeltaError::SegmentTooLong { len }));
        }
        at += SEGMENT_PREFIX;
        let input = patch
            .get(at..at + len)
            .ok_or(ApplyError::Delta(DeltaError::Truncated))?;
        at += len;
        let start = new.len();
        let block_len = SEGMENT_RAW.min(header.raw_size as usize - start);
        let decoded = embassy_futures::block_on(inflate_segment(
            input,
            &mut buf,
            &mut Bytes(&new),
            start as u32,
            &mut tables,
        ))
        .map_err(|e| ApplyError::Inflate(format!("{e}")))?;
        embassy_futures::block_on(apply_segment(
            &mut buf,
            decoded,
            block_len,
            start as u32,
            &mut Bytes(base),
            header.base_size,
        ))
        .map_err(|e| match e {
            PatchError::Delta(d) => ApplyError::Delta(d),
            PatchError::Inflate(e) => ApplyError::Inflate(format!("{e}")),
            PatchError::Base(()) => ApplyError::Delta(DeltaError::BadOperation),
        })?;
        new.extend_from_slice(&buf[..block_len]);
    }
    if at != patch.len() {
        return Err(ApplyError::Delta(DeltaError::TrailingBytes));
    }
    Ok(new)
}

/// Why [`apply`] failed.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Delta(DeltaError),
    #[error("a patch segment does not inflate: {0}")]
    Inflate(String),
}
