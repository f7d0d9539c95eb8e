//! A NOR flash in RAM with the physics the journal relies on (erase to 0xFF, programming
//! only clears bits) and an optional power cut that tears one operation.

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash as AsyncReadNorFlash};

pub const SECTOR: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    OutOfBounds,
    NotAligned,
    /// The power went at this operation; the flash keeps whatever part of it landed.
    PowerLost,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::PowerLost => NorFlashErrorKind::Other,
        }
    }
}

/// A power cut: operation number `at` (erases and programs counted from 0) lands only its
/// first `keep` bytes, and every operation after it fails.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    pub at: u32,
    pub keep: usize,
}

#[derive(Debug, Clone)]
pub struct RamFlash {
    pub bytes: Vec<u8>,
    pub ops: u32,
    pub cut: Option<Cut>,
    /// Lowest and highest address written or erased, to check a caller stays in its range.
    pub touched: Option<(usize, usize)>,
}

impl RamFlash {
    pub fn new(size: usize) -> Self {
        RamFlash {
            bytes: vec![0xFF; size],
            ops: 0,
            cut: None,
            touched: None,
        }
    }

    fn touch(&mut self, from: usize, to: usize) {
        let (lo, hi) = self.touched.unwrap_or((from, to));
        self.touched = Some((lo.min(from), hi.max(to)));
    }

    /// How much of the next operation of `len` bytes lands, or `Err` if the power is gone.
    fn begin(&mut self, len: usize) -> Result<usize, FlashError> {
        let n = self.ops;
        self.ops += 1;
        match self.cut {
            Some(c) if n == c.at => Ok(c.keep.min(len)),
            Some(c) if n > c.at => Err(FlashError::PowerLost),
            _ => Ok(len),
        }
    }

    fn range(&self, offset: u32, len: usize) -> Result<usize, FlashError> {
        let start = offset as usize;
        if start.checked_add(len).is_none_or(|end| end > self.bytes.len()) {
            return Err(FlashError::OutOfBounds);
        }
        Ok(start)
    }
}

impl ErrorType for RamFlash {
    type Error = FlashError;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let start = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.bytes[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl AsyncReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if from > to || !(from as usize).is_multiple_of(SECTOR) || !(to as usize).is_multiple_of(SECTOR) {
            return Err(FlashError::NotAligned);
        }
        let start = self.range(from, (to - from) as usize)?;
        self.touch(start, to as usize);
        let n = self.begin((to - from) as usize)?;
        self.bytes[start..start + n].fill(0xFF);
        if n < (to - from) as usize {
            return Err(FlashError::PowerLost);
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        if !(offset as usize).is_multiple_of(Self::WRITE_SIZE) || !bytes.len().is_multiple_of(Self::WRITE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        let start = self.range(offset, bytes.len())?;
        self.touch(start, start + bytes.len());
        let n = self.begin(bytes.len())?;
        for (cell, b) in self.bytes[start..start + n].iter_mut().zip(bytes) {
            *cell &= *b;
        }
        if n < bytes.len() {
            return Err(FlashError::PowerLost);
        }
        Ok(())
    }
}
