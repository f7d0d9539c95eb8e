//! NOR flash with its physics: 4 KiB sectors erase to `0xFF`, programming only clears bits,
//! every operation takes time, and the power can be cut at any operation.
//!
//! The emulator is what makes "never brick" testable: a program that tries to turn a 0
//! back into a 1 fails (real parts silently AND the bits; here the test sees it), a page
//! programmed twice between erases is counted, and a cut leaves the interrupted operation
//! half done, as a brown-out does.
//!
//! Every timed operation holds the chip's CPU ([`SimFlash::cpu`]) for its duration, as the
//! firmware's adapter over esp-storage does: that driver is synchronous, so on the chip a
//! program or an erase runs to its end before anything else of the device (an AT command,
//! the draining of the UART's receive FIFO) can. The device's UART end waits on the same
//! hold, so the bench cannot overlap flash work with modem traffic where the chip cannot.
//!
//! A chip can also live in a file ([`SimFlash::open_file`], [`SimFlash::persist_to`]): every
//! erase and program is written through at its offset before the operation returns, so a
//! device process that is killed loses nothing the chip had done, and restarting it is a
//! power cycle.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_storage_async::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use crate::time::Stall;

pub const SECTOR: usize = 4096;
pub const PAGE: usize = 256;
/// What one block erase command (SPI `0xD8`) clears.
pub const BLOCK: usize = 65536;

/// Erase and program times.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FlashTiming {
    pub erase_sector: Duration,
    /// One 64 KiB block erase, which esp-storage issues for every aligned 64 KiB of a range.
    pub erase_block: Duration,
    pub program_page: Duration,
    /// Reads are memory-mapped and fast; charged per 4 KiB.
    pub read_sector: Duration,
}

impl FlashTiming {
    /// Typical figures of the 4 MB SPI NOR parts on ESP32 modules (W25Q32JV datasheet, AC
    /// characteristics: sector erase tSE 45 ms, 64 KiB block erase tBE2 150 ms, page
    /// program tPP 0.4 ms, typical).
    pub const ESP32_TYPICAL: FlashTiming = FlashTiming {
        erase_sector: Duration::from_millis(45),
        erase_block: Duration::from_millis(150),
        program_page: Duration::from_micros(400),
        read_sector: Duration::from_micros(100),
    };
}

/// What went wrong, as the device code sees it (through `NorFlashError::kind`) and as a
/// test sees it (the variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlashError {
    #[error("flash access out of bounds")]
    OutOfBounds,
    #[error("flash access not aligned")]
    NotAligned,
    #[error("program at {addr:#x} would set a 0 bit to 1 (sector not erased)")]
    BitSet { addr: u32 },
    #[error("power lost during a flash operation")]
    PowerLost,
    /// The file the chip lives in could not be written (the host's problem, not the chip's).
    #[error("the flash file could not be written: {0}")]
    Storage(io::ErrorKind),
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::BitSet { .. } | FlashError::PowerLost | FlashError::Storage(_) => NorFlashErrorKind::Other,
        }
    }
}

/// Counters a test or benchmark reads back.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FlashStats {
    /// Erase and program operations, in order; the power-cut sweep indexes these.
    pub ops: u64,
    /// Sectors cleared, whether one at a time or sixteen by a block erase.
    pub sectors_erased: u64,
    /// 64 KiB block erase commands.
    pub block_erases: u64,
    pub pages_programmed: u64,
    /// Pages programmed again without an erase in between.
    pub pages_programmed_twice: u64,
    pub bit_set_errors: u64,
}

#[derive(Debug)]
struct State {
    bytes: Vec<u8>,
    /// Programs since the last erase, per page.
    page_programs: Vec<u8>,
    stats: FlashStats,
    cut_at_op: Option<u64>,
    powered: bool,
    /// Where every change is written through, when the chip outlives the process.
    backing: Option<File>,
}

impl State {
    /// Writes `range` of the contents through to the backing file, if any.
    fn persist(&self, range: std::ops::Range<usize>) -> Result<(), FlashError> {
        match &self.backing {
            Some(file) if !range.is_empty() => file
                .write_all_at(&self.bytes[range.clone()], range.start as u64)
                .map_err(|e| FlashError::Storage(e.kind())),
            _ => Ok(()),
        }
    }
}

/// A flash chip; clones share the same contents (the device writes, the bench inspects).
#[derive(Debug, Clone)]
pub struct SimFlash {
    state: Arc<Mutex<State>>,
    timing: FlashTiming,
    cpu: Stall,
}

impl SimFlash {
    /// A blank (erased) chip of `size` bytes.
    pub fn new(size: usize, timing: FlashTiming) -> Self {
        assert!(size.is_multiple_of(SECTOR), "flash size must be whole sectors");
        SimFlash {
            state: Arc::new(Mutex::new(State {
                bytes: vec![0xFF; size],
                page_programs: vec![0; size / PAGE],
                stats: FlashStats::default(),
                cut_at_op: None,
                powered: true,
                backing: None,
            })),
            timing,
            cpu: Stall::default(),
        }
    }

    /// The CPU of the chip this flash belongs to: held while an operation runs. Give it to
    /// the device's UART end ([`crate::uart::UartEnd::stalled_by`]).
    pub fn cpu(&self) -> Stall {
        self.cpu.clone()
    }

    /// Holds the CPU for `d` and waits it out: the bench's form of a blocking driver call.
    /// Operations follow one another, so the hold starts now and `sleep` (which batches
    /// short sleeps on the real clock) ends with it.
    async fn busy(&self, d: Duration) {
        self.cpu.hold(d);
        crate::time::sleep(d).await;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("flash lock poisoned")
    }

    /// A copy of `len` bytes at `offset`, without timing (for checks, not for the device).
    pub fn snapshot(&self, offset: usize, len: usize) -> Vec<u8> {
        self.lock().bytes[offset..offset + len].to_vec()
    }

    /// Writes bytes directly, as a factory programmer would (no physics, no time).
    ///
    /// # Panics
    /// If the chip lives in a file and the file cannot be written.
    pub fn load(&self, offset: usize, data: &[u8]) {
        let mut s = self.lock();
        s.bytes[offset..offset + data.len()].copy_from_slice(data);
        if let Err(e) = s.persist(offset..offset + data.len()) {
            panic!("loading the flash: {e}");
        }
    }

    /// The chip kept in `path`: its contents when the file exists (it must hold exactly
    /// `size` bytes), else `None`. Every later change is written through to the file.
    pub fn open_file(path: &Path, size: usize, timing: FlashTiming) -> io::Result<Option<SimFlash>> {
        let file = match File::options().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len != size as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it holds {len} bytes, not the {size} of this chip"),
            ));
        }
        let mut bytes = vec![0u8; size];
        file.read_exact_at(&mut bytes, 0)?;
        let flash = SimFlash::new(size, timing);
        {
            let mut s = flash.lock();
            s.bytes = bytes;
            s.backing = Some(file);
        }
        Ok(Some(flash))
    }

    /// Writes the whole chip to a new file at `path` and keeps it there from now on. The
    /// file appears complete or not at all (written beside it, then renamed), so a process
    /// killed while flashing the factory image leaves no half-programmed chip behind.
    pub fn persist_to(&self, path: &Path) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        let mut s = self.lock();
        {
            let file = File::create(&tmp)?;
            file.write_all_at(&s.bytes, 0)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        s.backing = Some(File::options().read(true).write(true).open(path)?);
        Ok(())
    }

    pub fn stats(&self) -> FlashStats {
        self.lock().stats
    }

    /// Cuts the power during operation number `op` (0-based over erases and programs).
    pub fn cut_power_at(&self, op: u64) {
        self.lock().cut_at_op = Some(op);
    }

    /// Restores power after a cut; contents stay as the cut left them.
    pub fn power_on(&self) {
        let mut s = self.lock();
        s.powered = true;
        s.cut_at_op = None;
    }

    pub fn is_powered(&self) -> bool {
        self.lock().powered
    }

    /// Counts the operation and reports whether the power dies during it.
    fn begin_op(s: &mut State) -> Result<bool, FlashError> {
        if !s.powered {
            return Err(FlashError::PowerLost);
        }
        let op = s.stats.ops;
        s.stats.ops += 1;
        let cut = s.cut_at_op == Some(op);
        if cut {
            s.powered = false;
        }
        Ok(cut)
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<(), FlashError> {
        let cap = self.lock().bytes.len();
        if offset as usize + len > cap {
            return Err(FlashError::OutOfBounds);
        }
        if !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError::NotAligned);
        }
        Ok(())
    }
}

impl ErrorType for SimFlash {
    type Error = FlashError;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.check(offset, bytes.len(), 1)?;
        {
            let s = self.lock();
            if !s.powered {
                return Err(FlashError::PowerLost);
            }
            bytes.copy_from_slice(&s.bytes[offset as usize..offset as usize + bytes.len()]);
        }
        let sectors = bytes.len().div_ceil(SECTOR) as u32;
        self.busy(self.timing.read_sector * sectors).await;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.lock().bytes.len()
    }
}

impl NorFlash for SimFlash {
    /// As esp-storage: word writes.
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds);
        }
        self.check(from, (to - from) as usize, SECTOR)?;
        // The commands esp-storage's `erase` sends for this range: sectors up to a block
        // boundary, whole blocks, then the sectors left.
        let (from, to) = (from as usize, to as usize);
        let mut at = from;
        while at < to {
            let len = if at.is_multiple_of(BLOCK) && to - at >= BLOCK {
                BLOCK
            } else {
                SECTOR
            };
            let cut = {
                let mut s = self.lock();
                let cut = Self::begin_op(&mut s)?;
                // A cut erase leaves the first half erased and the rest as it was.
                let end = if cut { at + len / 2 } else { at + len };
                s.bytes[at..end].fill(0xFF);
                s.page_programs[at / PAGE..end / PAGE].fill(0);
                s.persist(at..end)?;
                if !cut {
                    s.stats.sectors_erased += (len / SECTOR) as u64;
                    s.stats.block_erases += u64::from(len == BLOCK);
                }
                cut
            };
            if cut {
                return Err(FlashError::PowerLost);
            }
            let took = if len == BLOCK {
                self.timing.erase_block
            } else {
                self.timing.erase_sector
            };
            self.busy(took).await;
            at += len;
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.check(offset, bytes.len(), Self::WRITE_SIZE)?;
        let start = offset as usize;
        let mut pages = 0u32;
        let mut addr = start;
        while addr < start + bytes.len() {
            let page_end = ((addr / PAGE) + 1) * PAGE;
            let end = page_end.min(start + bytes.len());
            let cut = {
                let mut s = self.lock();
                let cut = Self::begin_op(&mut s)?;
                let end = if cut { addr + (end - addr) / 2 } else { end };
                for a in addr..end {
                    let new = bytes[a - start];
                    let old = s.bytes[a];
                    if new & !old != 0 {
                        s.stats.bit_set_errors += 1;
                        s.persist(addr..a)?;
                        return Err(FlashError::BitSet { addr: a as u32 });
                    }
                    s.bytes[a] = old & new;
                }
                s.persist(addr..end)?;
                let page = addr / PAGE;
                if s.page_programs[page] > 0 {
                    s.stats.pages_programmed_twice += 1;
                }
                s.page_programs[page] = s.page_programs[page].saturating_add(1);
                s.stats.pages_programmed += 1;
                cut
            };
            if cut {
                return Err(FlashError::PowerLost);
            }
            pages += 1;
            addr = end;
        }
        self.busy(self.timing.program_page * pages).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn erase_then_program_and_no_bit_set() {
        let mut f = SimFlash::new(8 * SECTOR, FlashTiming::ESP32_TYPICAL);
        f.write(0, &[0x0F; 8]).await.unwrap();
        let err = f.write(0, &[0xF0, 0xFF, 0xFF, 0xFF]).await.unwrap_err();
        assert_eq!(err, FlashError::BitSet { addr: 0 });
        f.erase(0, SECTOR as u32).await.unwrap();
        f.write(0, &[0xF0; 4]).await.unwrap();
        let mut buf = [0u8; 4];
        f.read(0, &mut buf).await.unwrap();
        assert_eq!(buf, [0xF0; 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn timing_is_charged() {
        crate::time::use_virtual_time();
        let mut f = SimFlash::new(8 * SECTOR, FlashTiming::ESP32_TYPICAL);
        let t0 = crate::time::now();
        f.erase(0, 2 * SECTOR as u32).await.unwrap();
        f.write(0, &[0u8; 1024]).await.unwrap();
        assert_eq!(
            crate::time::now() - t0,
            Duration::from_millis(90) + Duration::from_micros(1600)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn second_program_of_a_page_is_counted() {
        let mut f = SimFlash::new(SECTOR, FlashTiming::ESP32_TYPICAL);
        f.write(0, &[0xFE; 4]).await.unwrap();
        f.write(4, &[0xFE; 4]).await.unwrap();
        assert_eq!(f.stats().pages_programmed_twice, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn power_cut_halts_mid_operation() {
        let mut f = SimFlash::new(2 * SECTOR, FlashTiming::ESP32_TYPICAL);
        f.write(0, &[0u8; SECTOR]).await.unwrap();
        let ops = f.stats().ops;
        f.cut_power_at(ops);
        assert_eq!(f.erase(0, SECTOR as u32).await, Err(FlashError::PowerLost));
        assert_eq!(f.write(SECTOR as u32, &[0; 4]).await, Err(FlashError::PowerLost));
        let after = f.snapshot(0, SECTOR);
        assert!(after[..SECTOR / 2].iter().all(|&b| b == 0xFF));
        assert!(
            after[SECTOR / 2..].iter().all(|&b| b == 0x00),
            "a cut erase is only half done"
        );
        f.power_on();
        f.erase(0, SECTOR as u32).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_chip_in_a_file_keeps_every_finished_operation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        assert!(
            SimFlash::open_file(&path, 2 * SECTOR, FlashTiming::ESP32_TYPICAL)
                .unwrap()
                .is_none()
        );
        let mut f = SimFlash::new(2 * SECTOR, FlashTiming::ESP32_TYPICAL);
        f.load(SECTOR, b"factory!");
        f.persist_to(&path).unwrap();
        f.write(0, &[0x12, 0x34, 0x56, 0x78]).await.unwrap();
        f.erase(SECTOR as u32, 2 * SECTOR as u32).await.unwrap();
        f.write(SECTOR as u32 + 4, &[0xAB; 4]).await.unwrap();
        // A program that would set a bit fails after the bytes before it were done.
        assert_eq!(
            f.write(0, &[0x12, 0x34, 0x56, 0xFF]).await,
            Err(FlashError::BitSet { addr: 3 })
        );
        let expected = f.snapshot(0, 2 * SECTOR);
        // The process dies here: nothing is flushed or closed on purpose.
        std::mem::forget(f);
        let again = SimFlash::open_file(&path, 2 * SECTOR, FlashTiming::ESP32_TYPICAL)
            .unwrap()
            .unwrap();
        assert_eq!(again.snapshot(0, 2 * SECTOR), expected);
        assert_eq!(
            again.snapshot(SECTOR, 8),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xAB, 0xAB, 0xAB, 0xAB]
        );
        let wrong = SimFlash::open_file(&path, 4 * SECTOR, FlashTiming::ESP32_TYPICAL).unwrap_err();
        assert_eq!(wrong.kind(), io::ErrorKind::InvalidData);
    }
}
