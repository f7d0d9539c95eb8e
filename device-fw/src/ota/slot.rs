//! Writing an image into an OTA slot through `NorFlash`, as NOR flash wants it written.
//!
//! Bytes are staged in a fixed buffer and programmed a whole stage at a time, so every
//! flash page is programmed exactly once between erases (programming a page twice is
//! legal on most parts but wears it and is how torn writes hide). Each 4 KiB sector is
//! erased just before the first program into it and never twice. Where the image is known
//! to cover a whole aligned 64 KiB block, the block is erased at once as it is entered:
//! esp-storage turns such a range into one block erase (SPI `0xD8`), which a W25Q32JV
//! finishes in 150 ms typical against 16 × 45 ms sector by sector, and the chip's CPU waits
//! for every erase. Nothing past the image's end is erased early, so an aborted download
//! leaves the rest of the slot untouched.

use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

/// Flash sector size of every ESP32 part: the erase unit.
pub const SECTOR: u32 = 4096;

/// The SPI NOR block that one erase command clears (esp-storage's `BLOCK_SIZE`).
pub const ERASE_BLOCK: u32 = 65536;

/// A partition window on the flash chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: u32,
    pub size: u32,
}

/// Why writing the slot failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError<E> {
    /// The image does not fit: the slot has `slot` bytes, the image needs at least `needed`.
    #[error("image needs {needed} bytes but the OTA slot holds {slot}; use a larger partition layout")]
    TooLarge { needed: u64, slot: u32 },
    /// The flash driver failed.
    #[error("flash operation failed: {0:?}")]
    Flash(E),
}

/// Streams bytes into a slot. `STAGE` is the program unit: 256 (one page) for the otactl
/// engine; 4096 models Arduino `Update`, which buffers a whole sector.
#[derive(Debug)]
pub struct SlotWriter<F, const STAGE: usize = 256> {
    flash: F,
    slot: Slot,
    stage: [u8; STAGE],
    staged: usize,
    /// Bytes programmed (a multiple of `STAGE`), relative to the slot start.
    programmed: u32,
    /// The slot is erased below this offset (relative, a multiple of `SECTOR`).
    erased_to: u32,
    /// Where the image ends (relative), when known: whole blocks below it may be erased at
    /// once. 0 while unknown, which keeps every erase to one sector.
    image_end: u32,
}

impl<F: NorFlash, const STAGE: usize> SlotWriter<F, STAGE> {
    const STAGE_OK: () = assert!(STAGE > 0 && STAGE <= SECTOR as usize && (SECTOR as usize).is_multiple_of(STAGE));

    /// A writer at the start of `slot`; nothing is erased until the first program.
    pub fn new(flash: F, slot: Slot) -> Self {
        Self::resume(flash, slot, 0)
    }

    /// A writer that carries on after `programmed` bytes already in the slot (a multiple of
    /// `STAGE`, e.g. from a journal after a reboot). The sector holding that offset counts
    /// as erased, since earlier programs went into it after its erase.
    pub fn resume(flash: F, slot: Slot, programmed: u32) -> Self {
        let () = Self::STAGE_OK;
        let programmed = programmed - programmed % STAGE as u32;
        SlotWriter {
            flash,
            slot,
            stage: [0xFF; STAGE],
            staged: 0,
            programmed,
            erased_to: programmed.div_ceil(SECTOR) * SECTOR,
            image_end: 0,
        }
    }

    /// The image will be `len` bytes: lets the writer erase whole 64 KiB blocks that lie
    /// inside it (one erase command instead of sixteen). Capped at the slot.
    pub fn expect_image_len(&mut self, len: u64) {
        self.image_end = len.min(u64::from(self.slot.size)) as u32;
    }

    /// Bytes accepted so far (programmed + staged): where the image continues.
    pub fn accepted(&self) -> u64 {
        u64::from(self.programmed) + self.staged as u64
    }

    /// Bytes durably programmed: a power cut loses at most what is staged beyond this.
    pub fn programmed(&self) -> u32 {
        self.programmed
    }

    pub fn slot(&self) -> Slot {
        self.slot
    }

    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Appends `data` to the image.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), SlotError<F::Error>> {
        let needed = self.accepted() + data.len() as u64;
        if needed > u64::from(self.slot.size) {
            return Err(SlotError::TooLarge {
                needed,
                slot: self.slot.size,
            });
        }
        while !data.is_empty() {
            let take = (STAGE - self.staged).min(data.len());
            self.stage[self.staged..self.staged + take].copy_from_slice(&data[..take]);
            self.staged += take;
            data = &data[take..];
            if self.staged == STAGE {
                self.program_stage().await?;
            }
        }
        Ok(())
    }

    /// Erases, now, every sector that accepting `len` more bytes would erase, so a caller can
    /// keep erases out of a time when they must not run (see
    /// [`DownloadConfig::erase_while_receiving`](super::DownloadConfig::erase_while_receiving)).
    pub async fn erase_ahead(&mut self, len: usize) -> Result<(), SlotError<F::Error>> {
        let end = (self.accepted() + len as u64)
            .div_ceil(STAGE as u64)
            .saturating_mul(STAGE as u64)
            .min(u64::from(self.slot.size)) as u32;
        self.erase_to(end).await
    }

    /// Erases from `erased_to` until it reaches `end`: a whole block where one starts there
    /// and the image covers it, else one sector at a time.
    async fn erase_to(&mut self, end: u32) -> Result<(), SlotError<F::Error>> {
        while self.erased_to < end {
            let from = self.slot.offset + self.erased_to;
            let step = if from.is_multiple_of(ERASE_BLOCK) && self.erased_to + ERASE_BLOCK <= self.image_end {
                ERASE_BLOCK
            } else {
                SECTOR
            };
            self.flash.erase(from, from + step).await.map_err(SlotError::Flash)?;
            self.erased_to += step;
        }
        Ok(())
    }

    /// Programs what is staged, padded with `0xFF` (which programs nothing), and returns the
    /// image length. Call once, at the end of the image.
    pub async fn finish(&mut self) -> Result<u64, SlotError<F::Error>> {
        let len = self.accepted();
        if self.staged > 0 {
            self.stage[self.staged..].fill(0xFF);
            self.program_stage().await?;
        }
        Ok(len)
    }

    async fn program_stage(&mut self) -> Result<(), SlotError<F::Error>> {
        let end = self.programmed + STAGE as u32;
        self.erase_to(end).await?;
        self.flash
            .write(self.slot.offset + self.programmed, &self.stage)
            .await
            .map_err(SlotError::Flash)?;
        self.programmed = end;
        self.staged = 0;
        Ok(())
    }
}

/// SHA-256 of the first `len` bytes of `slot`, read back from flash: how a resumed
/// download (after a reboot) gets its hash state without trusting RAM.
pub async fn hash_prefix<F: NorFlash>(
    flash: &mut F,
    slot: Slot,
    len: u64,
    hasher: &mut Sha256,
) -> Result<(), F::Error> {
    let mut buf = [0u8; 256];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        flash.read(slot.offset + at as u32, &mut buf[..n]).await?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}
