//! Checking an app image where it lies: in an OTA slot of the flash.
//!
//! The device cannot hold a 1–2 MB image in RAM, yet before it points otadata at the slot
//! it must know the bootloader will accept what was written there (a bad download or a
//! flash fault found only at boot costs a rollback). So the image is read back in one pass
//! through a small window and put through the very checks [`AppImage::parse`] makes, with
//! the per-field decoding shared so the two cannot drift apart.
//!
//! The image is bounded by the length the signed manifest gives, not by the slot: bytes
//! after it are whatever the slot held before, and must never make a short image look
//! whole.

use embedded_storage_async::nor_flash::ReadNorFlash;
use sha2::{Digest, Sha256};

use super::image::{
    APP_DESC_LEN, APP_DESC_OFFSET, AppDesc, AppImage, CHECKSUM_SEED, HASH_LEN, HEADER_LEN, ImageError, ImageHeader,
    SEGMENT_HEADER_LEN, Segment, check_checksum, checksum_offset, fold_checksum, need,
};
use crate::ota::Slot;

/// Bytes asked of the flash per read. Big enough that a 2 MB image is a few thousand
/// reads, small enough to fit a task stack next to the SHA-256 state.
pub const READ_WINDOW: usize = 512;

/// Working RAM of [`check_slot_image`] in bytes: the read window, the captured app
/// descriptor and the image header, segment header and stored hash (see [`Scratch`]). On
/// top of it come the SHA-256 state (about 100 bytes), the [`SlotImage`] being built
/// (under 600 bytes) and the flash driver's read future; all of it lives in the check's
/// future, none on the heap (about 1.7 KiB in all with the bench flash on a 64-bit host).
pub const SLOT_IMAGE_CHECK_RAM: usize = READ_WINDOW + APP_DESC_LEN + HEADER_LEN + SEGMENT_HEADER_LEN + HASH_LEN;

/// An image checked in place. Same shape as an image checked in RAM, so callers (and the
/// tests that compare the two parsers) need not tell them apart.
pub type SlotImage = AppImage;

/// Why the image in the slot would not boot, or could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotImageError<E> {
    /// The image itself is bad; the message says how.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The manifest's image length does not fit the slot.
    #[error(
        "the manifest says the image is {image_len} bytes but the OTA slot holds {slot_size}; the manifest or the partition table is wrong for this device"
    )]
    LenExceedsSlot { image_len: u64, slot_size: u32 },
    /// The slot reaches past the end of the flash chip.
    #[error(
        "the OTA slot ends at flash byte {slot_end} but the flash has {capacity} bytes; the partition table does not match this flash chip"
    )]
    SlotOutsideFlash { slot_end: u64, capacity: usize },
    /// The flash driver failed while reading the slot back.
    #[error(
        "reading the OTA slot back from flash failed: {0:?}; do not boot this slot, retry the check or the download"
    )]
    Flash(E),
}

/// Every buffer the check uses, in one place so that [`SLOT_IMAGE_CHECK_RAM`] is checked
/// against what is really allocated.
#[derive(Debug)]
struct Scratch {
    window: [u8; READ_WINDOW],
    app_desc: [u8; APP_DESC_LEN],
    header: [u8; HEADER_LEN],
    segment_header: [u8; SEGMENT_HEADER_LEN],
    hash: [u8; HASH_LEN],
}

/// Reads the image front to back, each byte once, through a window aligned to the flash's
/// `READ_SIZE` (esp-storage wants word reads; offsets inside the image are not words).
/// Everything handed out is hashed while hashing is on, which is exactly the span the
/// appended SHA-256 covers.
struct Cursor<'a, F> {
    flash: &'a mut F,
    window: &'a mut [u8; READ_WINDOW],
    /// Flash address of `window[0]` and how many window bytes are valid.
    win_addr: u64,
    win_len: usize,
    /// Flash address of image byte 0.
    base: u64,
    /// Reads never go past this flash address: the image end rounded up to `READ_SIZE`.
    read_end: u64,
    /// Image offset of the next byte to hand out.
    pos: usize,
    hasher: Option<Sha256>,
}

impl<'a, F: ReadNorFlash> Cursor<'a, F> {
    fn new(flash: &'a mut F, window: &'a mut [u8; READ_WINDOW], slot: Slot, image_len: usize) -> Self {
        let base = u64::from(slot.offset);
        let read_end = (base + image_len as u64).next_multiple_of(F::READ_SIZE as u64);
        Cursor {
            flash,
            window,
            win_addr: 0,
            win_len: 0,
            base,
            read_end,
            pos: 0,
            hasher: None,
        }
    }

    /// The next bytes of the image, at most `max` (and at least one: callers have checked
    /// with [`need`] that the bytes lie inside the image).
    async fn next(&mut self, max: usize) -> Result<&[u8], F::Error> {
        let addr = self.base + self.pos as u64;
        if addr < self.win_addr || addr >= self.win_addr + self.win_len as u64 {
            let start = addr - addr % F::READ_SIZE as u64;
            let end = (start + READ_WINDOW as u64).min(self.read_end);
            let n = (end - start) as usize;
            // `start` fits: the slot lies within the flash, whose addresses are u32.
            self.flash.read(start as u32, &mut self.window[..n]).await?;
            self.win_addr = start;
            self.win_len = n;
        }
        let at = (addr - self.win_addr) as usize;
        let take = max.min(self.win_len - at);
        let chunk = &self.window[at..at + take];
        if let Some(hasher) = &mut self.hasher {
            hasher.update(chunk);
        }
        self.pos += take;
        Ok(chunk)
    }

    async fn read_into(&mut self, out: &mut [u8]) -> Result<(), F::Error> {
        let mut filled = 0;
        while filled < out.len() {
            let chunk = self.next(out.len() - filled).await?;
            out[filled..filled + chunk.len()].copy_from_slice(chunk);
            filled += chunk.len();
        }
        Ok(())
    }

    /// Passes `n` bytes (checksum padding) through the hash.
    async fn skip(&mut self, n: usize) -> Result<(), F::Error> {
        let mut left = n;
        while left > 0 {
            left -= self.next(left).await?.len();
        }
        Ok(())
    }

    /// Turns hashing on, counting `consumed` (the bytes already handed out) first.
    fn start_hash(&mut self, consumed: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(consumed);
        self.hasher = Some(hasher);
    }

    /// Digest of everything handed out since [`Cursor::start_hash`]; hashing stops.
    fn finish_hash(&mut self) -> Option<[u8; HASH_LEN]> {
        self.hasher.take().map(|h| h.finalize().into())
    }
}

/// Checks the app image of `image_len` bytes (the manifest's signed length) at the start of
/// `slot`, reading it back from `flash` once, front to back.
///
/// The checks, their order and their errors are those of [`AppImage::parse`] on the same
/// `image_len` bytes, except that the chip id is compared with `expected_chip` right after
/// the header, where the bootloader compares it: an image for another chip is reported as
/// [`ImageError::WrongChip`] whatever else is wrong with it. Bytes of the slot after
/// `image_len` are never read (beyond `READ_SIZE` rounding) and never trusted.
///
/// RAM: [`SLOT_IMAGE_CHECK_RAM`] bytes of buffers plus the SHA-256 state and the result,
/// no heap.
pub async fn check_slot_image<F: ReadNorFlash>(
    flash: &mut F,
    slot: Slot,
    image_len: u64,
    expected_chip: u16,
) -> Result<SlotImage, SlotImageError<F::Error>> {
    const {
        assert!(
            F::READ_SIZE > 0 && READ_WINDOW.is_multiple_of(F::READ_SIZE),
            "the flash READ_SIZE must divide the read window"
        );
    }
    if image_len > u64::from(slot.size) {
        return Err(SlotImageError::LenExceedsSlot {
            image_len,
            slot_size: slot.size,
        });
    }
    let slot_end = u64::from(slot.offset) + u64::from(slot.size);
    let capacity = flash.capacity();
    if slot_end > capacity as u64 {
        return Err(SlotImageError::SlotOutsideFlash { slot_end, capacity });
    }
    // Fits: bounded by the slot size, a u32.
    let have = image_len as usize;

    let mut scratch = Scratch {
        window: [0; READ_WINDOW],
        app_desc: [0; APP_DESC_LEN],
        header: [0; HEADER_LEN],
        segment_header: [0; SEGMENT_HEADER_LEN],
        hash: [0; HASH_LEN],
    };
    let mut cur = Cursor::new(flash, &mut scratch.window, slot, have);

    // A short image gets the same `Truncated` as from the in-RAM parser: parse what is there.
    let header_bytes = &mut scratch.header[..have.min(HEADER_LEN)];
    cur.read_into(header_bytes).await.map_err(SlotImageError::Flash)?;
    let header = ImageHeader::parse(header_bytes)?;
    header.check_chip(expected_chip)?;
    if header.hash_appended {
        cur.start_hash(&scratch.header);
    }

    let mut segments = heapless::Vec::new();
    let mut checksum = CHECKSUM_SEED;
    for index in 0..usize::from(header.segment_count) {
        let pos = cur.pos;
        need(have, pos + SEGMENT_HEADER_LEN, "segment header")?;
        cur.read_into(&mut scratch.segment_header)
            .await
            .map_err(SlotImageError::Flash)?;
        let segment = Segment::decode(index, pos, &scratch.segment_header, have)?;
        let mut left = segment.len as usize;
        while left > 0 {
            let in_segment = cur.pos - segment.data_offset;
            let chunk = cur.next(left).await.map_err(SlotImageError::Flash)?;
            checksum = fold_checksum(checksum, chunk);
            // Segment 0 data starts at APP_DESC_OFFSET: its head is the descriptor.
            if index == 0 && in_segment < APP_DESC_LEN {
                let n = chunk.len().min(APP_DESC_LEN - in_segment);
                scratch.app_desc[in_segment..in_segment + n].copy_from_slice(&chunk[..n]);
            }
            left -= chunk.len();
        }
        debug_assert!(index > 0 || segment.data_offset == APP_DESC_OFFSET);
        // Cannot fail: segment_count ≤ MAX_SEGMENTS was checked.
        let _ = segments.push(segment);
    }

    let checksum_offset = checksum_offset(cur.pos);
    need(have, checksum_offset + 1, "checksum byte")?;
    cur.skip(checksum_offset - cur.pos)
        .await
        .map_err(SlotImageError::Flash)?;
    let mut found = [0u8; 1];
    cur.read_into(&mut found).await.map_err(SlotImageError::Flash)?;
    check_checksum(checksum, found[0])?;

    let mut len = checksum_offset + 1;
    let hash = match cur.finish_hash() {
        Some(computed) => {
            need(have, len + HASH_LEN, "appended SHA-256")?;
            cur.read_into(&mut scratch.hash).await.map_err(SlotImageError::Flash)?;
            if computed != scratch.hash {
                return Err(ImageError::HashMismatch.into());
            }
            len += HASH_LEN;
            Some(scratch.hash)
        }
        None => None,
    };

    let app_desc = AppDesc::from_first_segment(&segments, || scratch.app_desc)?;
    Ok(SlotImage {
        header,
        segments,
        app_desc,
        checksum_offset,
        checksum: found[0],
        hash,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_figure_is_what_the_check_allocates() {
        assert_eq!(core::mem::size_of::<Scratch>(), SLOT_IMAGE_CHECK_RAM);
        const { assert!(SLOT_IMAGE_CHECK_RAM <= 1024) };
    }
}
