//! The SPI flash as the core's `embedded_storage_async` `NorFlash`.
//!
//! esp-storage's ROM-backed driver is blocking (the CPU runs from that same flash, so it
//! waits while a sector erases); the core is async. This adapter only changes the calling
//! convention: every read, program and erase goes straight to esp-storage's `NorFlash`
//! implementation, with its alignment rules and no buffering. Its futures complete in their
//! first poll, so nothing else of the device runs during an operation (the UART's receive
//! FIFO is not drained either): the bench's flash holds the device's CPU for each operation
//! in the same way, and the engine counts on that order. Never esp-storage's `Storage`
//! helper: that one reads, erases and rewrites a whole sector on every write, which would
//! break the core's rule of one erase before the first program of a sector and cost an
//! erase cycle per 256-byte page.

use embedded_storage::nor_flash::{self as blocking, ErrorType};
use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use esp_storage::{FlashStorage, FlashStorageError};

#[derive(Debug)]
pub struct AsyncFlash {
    inner: FlashStorage<'static>,
}

impl AsyncFlash {
    pub fn new(inner: FlashStorage<'static>) -> Self {
        AsyncFlash { inner }
    }
}

impl ErrorType for AsyncFlash {
    type Error = FlashStorageError;
}

impl ReadNorFlash for AsyncFlash {
    const READ_SIZE: usize = FlashStorage::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        blocking::ReadNorFlash::read(&mut self.inner, offset, bytes)
    }

    fn capacity(&self) -> usize {
        blocking::ReadNorFlash::capacity(&self.inner)
    }
}

impl NorFlash for AsyncFlash {
    const WRITE_SIZE: usize = FlashStorage::WRITE_SIZE;
    const ERASE_SIZE: usize = FlashStorage::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        blocking::NorFlash::erase(&mut self.inner, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        // Fully qualified: `FlashStorage::write` is the read-modify-write helper.
        blocking::NorFlash::write(&mut self.inner, offset, bytes)
    }
}
