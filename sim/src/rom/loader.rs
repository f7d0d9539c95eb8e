//! The ROM loader's command handling: one frame in, the replies out.
//!
//! It is a peer for host flashing tools, so where the real ROM is known to refuse
//! something it refuses it the same way (a 2 KiB block to an ESP32-C3, five FLASH_BEGIN
//! words to an ESP32, GET_SECURITY_INFO to an ESP32), and where a real chip would silently
//! do damage (flash access before SPI_ATTACH, a `*_DATA` out of sequence, a program into
//! a region that was not erased) it answers with an error a tool can see. The error codes
//! are the ROM's (ESP-FORMATS.md §1.8); which one each check uses is listed in
//! docs/rom-loader.md.
//!
//! Once a host has uploaded code to RAM and asked the ROM to jump to it, the loader answers
//! as the flasher stub does when it runs (its greeting, then its commands: [`super::stub`]);
//! nothing uploaded is executed. A reboot request brings the ROM back.

use std::collections::HashMap;
use std::time::Duration;

use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use md5::{Digest, Md5};

use super::chip::{MAX_FRAME, RomChip};
use super::inflate::Inflater;
use super::protocol::{
    Failure, Request, Response, RomError, STUB_GREETING, STUB_STATUS_LEN, SYNC_PAYLOAD, SYNC_VALUE, StubError,
    checksum, op,
};
use super::ram::MemLoad;
use super::slip::FrameError;
use super::spi::SPI_CMD_USR;
use crate::flash::{SECTOR, SimFlash};

/// Receives the loader's notes for the person running it.
pub type Log = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The baud rate every ESP32-and-later ROM starts at.
pub const ROM_BAUD: u32 = 115_200;

/// Rates CHANGE_BAUDRATE accepts: what the UART's divider and its 5 Mbaud ceiling allow
/// (a rate of 1 would park a paced loader for ten seconds a byte).
pub const BAUD_RANGE: std::ops::RangeInclusive<u32> = 300..=5_000_000;

/// READ_FLASH_SLOW always answers with this many bytes.
pub const READ_SLOW_LEN: usize = 64;

/// WRITE_REG's `delay_us` is honoured up to this much per command, so that a hostile host
/// cannot park the loader for an hour.
const MAX_REG_DELAY: Duration = Duration::from_secs(1);

/// Distinct registers WRITE_REG remembers.
const MAX_REGS: usize = 1 << 16;

/// What one frame produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Response packets (not yet SLIP-framed), in order.
    pub replies: Vec<Vec<u8>>,
    /// The UART rate to switch to once the replies are out (CHANGE_BAUDRATE).
    pub baud: Option<u32>,
    /// Plain text sent after the replies, outside any frame, as a chip prints to its UART.
    pub text: Vec<u8>,
    /// The stub's READ_FLASH, which the link runs after the reply: data frames paced by the
    /// host's acknowledgements, then the digest.
    pub read_flash: Option<ReadFlash>,
}

/// A stub READ_FLASH accepted and not yet sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFlash {
    pub offset: u32,
    pub len: u32,
    /// Bytes per data frame.
    pub packet: u32,
    /// Data frames the stub sends before it waits for an acknowledgement.
    pub in_flight: u32,
}

/// Counters a test or the CLI reads back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RomStats {
    pub commands: u64,
    /// Replies with a failure status.
    pub errors: u64,
    /// Times the flasher stub was started (its greeting sent).
    pub stub_starts: u64,
    pub sectors_erased: u64,
    /// Bytes programmed into flash (after inflating).
    pub bytes_written: u64,
}

/// A FLASH_BEGIN or FLASH_DEFL_BEGIN in progress.
pub(super) struct FlashWrite {
    pub(super) next_seq: u32,
    pub(super) num_blocks: u32,
    pub(super) block_size: u32,
    pub(super) next_addr: u32,
    pub(super) inflate: Option<Box<Inflater>>,
    /// Stub only: bytes still to be written (the stub clips data past it), and the first
    /// address not yet erased (it erases as the data gets there, not up front).
    pub(super) remaining: u32,
    pub(super) erased_to: u32,
    pub(super) erase_end: u32,
}

/// Work the stub does after it has sent a `*_DATA` reply (it double-buffers: the host sends
/// the next block while this one is inflated, erased for and programmed).
pub(super) enum StubWork {
    /// A block to write (plain) or to inflate and write (compressed).
    Block(Vec<u8>),
}

/// The ROM loader of one chip, with its flash.
pub struct RomLoader {
    pub(super) chip: RomChip,
    pub(super) flash: SimFlash,
    pub(super) regs: HashMap<u32, u32>,
    /// Segments loaded with MEM_*: READ_REG reads them back, nothing runs them.
    pub(super) ram: Vec<(u32, Vec<u8>)>,
    /// A MEM_BEGIN whose blocks did not all arrive: code there would not run as uploaded.
    pub(super) ram_incomplete: bool,
    pub(super) attached: bool,
    /// The flash size SPI_SET_PARAMS told the ROM; accesses beyond it fail as on the chip.
    pub(super) params_size: Option<u32>,
    baud: u32,
    pub(super) write: Option<FlashWrite>,
    pub(super) mem: Option<MemLoad>,
    log: Option<Log>,
    pub(super) stats: RomStats,
    /// The flasher stub "runs": commands are answered as the stub answers them.
    pub(super) stub: bool,
    pub(super) stub_work: Option<StubWork>,
    /// A failure of the stub's deferred work, reported on the next command (which is then
    /// not carried out), as the stub reports it.
    pub(super) stub_error: Option<StubError>,
}

impl std::fmt::Debug for RomLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomLoader")
            .field("chip", &self.chip)
            .field("stub", &self.stub)
            .field("attached", &self.attached)
            .field("params_size", &self.params_size)
            .field("baud", &self.baud)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RomLoader {
    /// A chip that was just reset into download mode with `flash` attached to it.
    pub fn new(chip: RomChip, flash: SimFlash) -> Self {
        RomLoader {
            chip,
            flash,
            regs: HashMap::new(),
            ram: Vec::new(),
            ram_incomplete: false,
            attached: false,
            params_size: None,
            baud: ROM_BAUD,
            write: None,
            mem: None,
            log: None,
            stats: RomStats::default(),
            stub: false,
            stub_work: None,
            stub_error: None,
        }
    }

    pub fn with_log(mut self, log: Log) -> Self {
        self.log = Some(log);
        self
    }

    pub fn chip(&self) -> RomChip {
        self.chip
    }

    /// The UART rate the loader runs at now.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Whether the flasher stub is the one answering (after its upload, until a reboot).
    pub fn in_stub(&self) -> bool {
        self.stub
    }

    pub fn stats(&self) -> RomStats {
        self.stats
    }

    pub fn flash(&self) -> &SimFlash {
        &self.flash
    }

    pub(super) fn note(&self, text: &str) {
        if let Some(log) = &self.log {
            log(text);
        }
    }

    /// The end of the flash the ROM will touch: the chip, or less if SPI_SET_PARAMS said so.
    pub(super) fn limit(&self) -> u64 {
        let cap = self.flash.capacity() as u64;
        self.params_size.map_or(cap, |s| cap.min(u64::from(s)))
    }

    /// A chip reset with the boot pin held low: back in the ROM, at its rate, with nothing
    /// configured (flash detached, registers and RAM as after power-up).
    fn reboot(&mut self, handled: &mut Handled) {
        self.note(if self.stub {
            "reboot: the stub is gone, the ROM loader answers again at 115200 (the boot pin is held low)"
        } else {
            "reboot: back in download mode at 115200 (the boot pin is held low)"
        });
        let (chip, flash, log, stats) = (self.chip, self.flash.clone(), self.log.take(), self.stats);
        *self = RomLoader::new(chip, flash);
        self.log = log;
        self.stats = stats;
        if self.baud != ROM_BAUD || handled.baud.is_some() {
            handled.baud = Some(ROM_BAUD);
        }
    }

    /// Handles one frame (or one the SLIP layer had to drop).
    pub async fn handle(&mut self, frame: Result<Vec<u8>, FrameError>) -> Handled {
        self.stats.commands += 1;
        let mut handled = Handled::default();
        let stub = self.stub;
        let malformed: Failure = if stub {
            StubError::BadDataLen.into()
        } else {
            RomError::InvalidMessage.into()
        };
        let responses = match &frame {
            Err(e) => vec![Response::fail(e.head().get(1).copied().unwrap_or(0), malformed)],
            // The ROM's receive buffer is smaller than the stub's.
            Ok(bytes) if !stub && bytes.len() > MAX_FRAME => {
                vec![Response::fail(bytes.get(1).copied().unwrap_or(0), malformed)]
            }
            Ok(bytes) => match Request::parse(bytes) {
                Err(m) if stub && bytes.first() != Some(&0) => {
                    vec![Response::fail(m.command, StubError::InvalidCommand)]
                }
                Err(m) => vec![Response::fail(m.command, malformed)],
                Ok(req) if stub => self.stub_command(&req, &mut handled).await,
                Ok(req) => self.command(&req, &mut handled).await,
            },
        };
        let status_len = if stub { STUB_STATUS_LEN } else { self.chip.status_len() };
        for r in responses {
            if r.error.is_some() {
                self.stats.errors += 1;
            }
            handled.replies.push(r.encode(status_len));
        }
        if !stub && self.stub {
            // The jump was taken: the stub's first words on the line are its greeting.
            handled.replies.push(STUB_GREETING.to_vec());
            self.stats.stub_starts += 1;
        }
        if let Some(baud) = handled.baud {
            self.baud = baud;
        }
        handled
    }

    /// What the stub does after its reply has gone out; the link runs it while the host
    /// sends the next frame. A failure is kept for the next command's reply.
    pub async fn after_reply(&mut self) {
        if let Some(work) = self.stub_work.take()
            && let Err(e) = self.stub_after(work).await
        {
            self.stub_error = Some(e);
        }
    }

    /// Whether [`RomLoader::after_reply`] has work to do.
    pub fn has_work(&self) -> bool {
        self.stub_work.is_some()
    }

    /// Commands both the ROM and the stub answer alike.
    pub(super) async fn common(
        &mut self,
        req: &Request<'_>,
        handled: &mut Handled,
    ) -> Option<Result<Response, Failure>> {
        let c = req.command;
        let bad: Failure = if self.stub {
            StubError::BadDataLen.into()
        } else {
            RomError::InvalidMessage.into()
        };
        Some(match c {
            op::READ_REG => match (req.data.len(), req.word(0)) {
                (4, Some(addr)) => Ok(Response::ok(c).with_value(self.read_reg(addr))),
                _ => Err(bad),
            },
            op::WRITE_REG => self.write_reg(req).await.map(|()| Response::ok(c)).map_err(|_| bad),
            op::SPI_SET_PARAMS => match (req.data.len(), req.word(1)) {
                (24, Some(size)) => {
                    self.params_size = Some(size);
                    Ok(Response::ok(c))
                }
                _ => Err(bad),
            },
            op::CHANGE_BAUDRATE => match (req.data.len(), req.word(0), req.word(1)) {
                (8, Some(baud), _) if !BAUD_RANGE.contains(&baud) => Err(if self.stub {
                    StubError::BadDataLen.into()
                } else {
                    RomError::InvalidParameter.into()
                }),
                (8, Some(baud), Some(old)) => {
                    handled.baud = Some(baud);
                    // The stub is told the rate the host used so far; the ROM gets 0.
                    let said = if self.stub && old != self.baud {
                        format!(" (the host said the old rate was {old})")
                    } else {
                        String::new()
                    };
                    self.note(&format!("baud rate {} -> {baud}{said}", self.baud));
                    Ok(Response::ok(c))
                }
                _ => Err(bad),
            },
            op::MEM_BEGIN => self.mem_begin(req).map(|()| Response::ok(c)),
            op::MEM_DATA => self.mem_data(req).map(|()| Response::ok(c)),
            op::MEM_END => self.mem_end(req, handled).map(|()| Response::ok(c)),
            op::FLASH_END | op::FLASH_DEFL_END => {
                let result = self.flash_end(req).await;
                if result.is_ok() && req.word(0) == Some(0) {
                    self.reboot(handled);
                }
                result.map(|()| Response::ok(c))
            }
            _ => return None,
        })
    }

    async fn command(&mut self, req: &Request<'_>, handled: &mut Handled) -> Vec<Response> {
        let c = req.command;
        if let Some(result) = self.common(req, handled).await {
            return vec![result.unwrap_or_else(|e| Response::fail(c, e))];
        }
        let result = match c {
            op::SYNC => {
                if req.data != SYNC_PAYLOAD {
                    Err(RomError::InvalidMessage)
                } else {
                    // The ROM answers every SYNC eight times.
                    return vec![Response::ok(c).with_value(SYNC_VALUE); 8];
                }
            }
            op::GET_SECURITY_INFO if self.chip.has_security_info() => {
                if req.data.is_empty() {
                    Ok(Response::ok(c).with_data(self.chip.security_info()))
                } else {
                    Err(RomError::InvalidMessage)
                }
            }
            op::SPI_ATTACH => {
                if req.data.len() == 4 || req.data.len() == 8 {
                    self.attached = true;
                    Ok(Response::ok(c))
                } else {
                    Err(RomError::InvalidMessage)
                }
            }
            op::FLASH_BEGIN | op::FLASH_DEFL_BEGIN => self.flash_begin(req).await.map(|()| Response::ok(c)),
            op::FLASH_DATA | op::FLASH_DEFL_DATA => self.flash_data(req).await.map(|()| Response::ok(c)),
            op::SPI_FLASH_MD5 => self.md5(req).await.map(|hex| Response::ok(c).with_data(hex)),
            op::READ_FLASH_SLOW => self.read_slow(req).await.map(|data| Response::ok(c).with_data(data)),
            // Stub-only commands, GET_SECURITY_INFO on the ESP32, and anything else.
            _ => Err(RomError::InvalidMessage),
        };
        vec![result.unwrap_or_else(|e| Response::fail(c, e))]
    }

    pub(super) fn read_reg(&self, addr: u32) -> u32 {
        if let Some(&v) = self.regs.get(&addr) {
            return v;
        }
        if addr == self.chip.uart_clkdiv_reg() {
            // Integer divider in bits 0..19, sixteenths in 20..23.
            let sixteenths = u64::from(super::chip::XTAL_HZ) * 16 / u64::from(self.baud.max(1));
            return ((sixteenths >> 4) as u32 & 0xF_FFFF) | ((sixteenths & 0xF) as u32) << 20;
        }
        for (start, bytes) in &self.ram {
            let Some(off) = addr.checked_sub(*start) else { continue };
            if let Some(b) = bytes.get(off as usize..off as usize + 4) {
                return u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        self.chip.fixed_reg(addr).unwrap_or(0)
    }

    async fn write_reg(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        if req.data.is_empty() || !req.data.len().is_multiple_of(16) {
            return Err(RomError::InvalidMessage);
        }
        let mut delay = Duration::ZERO;
        for i in 0..req.data.len() / 16 {
            let w = |k| req.word(4 * i + k).unwrap_or(0);
            let (addr, value, mask, delay_us) = (w(0), w(1), w(2), w(3));
            let old = self.read_reg(addr);
            let new = (old & !mask) | (value & mask);
            // A chip has only so many registers; a host writing all over the address
            // space must not grow the map without bound.
            if self.regs.len() < MAX_REGS || self.regs.contains_key(&addr) {
                self.regs.insert(addr, new);
            }
            if addr == self.chip.spi().cmd() && new & SPI_CMD_USR != 0 {
                self.spi_user_command();
            }
            delay += Duration::from_micros(u64::from(delay_us));
        }
        if !delay.is_zero() {
            crate::time::sleep(delay.min(MAX_REG_DELAY)).await;
        }
        Ok(())
    }

    async fn flash_begin(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        let compressed = req.command == op::FLASH_DEFL_BEGIN;
        let n = req.data.len();
        if !(n == 16 || (n == 20 && self.chip.begin_has_encrypted_word())) {
            return Err(RomError::InvalidMessage);
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (size, num_blocks, block_size, offset) = (w(0), w(1), w(2), w(3));
        if !self.attached {
            return Err(RomError::FailedToAct);
        }
        if n == 20 && w(4) != 0 {
            // Encrypted writes need the chip's flash encryption, which is not emulated.
            return Err(RomError::FailedToAct);
        }
        if (num_blocks > 0 && block_size == 0) || !(offset as usize).is_multiple_of(SECTOR) {
            return Err(RomError::InvalidParameter);
        }
        let erase_end = u64::from(offset) + u64::from(size).div_ceil(SECTOR as u64) * SECTOR as u64;
        if erase_end > self.limit() || u64::from(offset) > self.limit() {
            return Err(RomError::InvalidParameter);
        }
        self.write = None;
        if erase_end > u64::from(offset) {
            self.flash
                .erase(offset, erase_end as u32)
                .await
                .map_err(|_| RomError::FlashWrite)?;
            self.stats.sectors_erased += (erase_end - u64::from(offset)) / SECTOR as u64;
        }
        self.note(&format!(
            "{} at {offset:#x}: erased {:#x} bytes, {num_blocks} blocks of {block_size:#x} to come",
            if compressed { "FLASH_DEFL_BEGIN" } else { "FLASH_BEGIN" },
            erase_end - u64::from(offset)
        ));
        self.write = Some(FlashWrite {
            next_seq: 0,
            num_blocks,
            block_size,
            next_addr: offset,
            inflate: compressed.then(Inflater::new),
            remaining: 0,
            erased_to: erase_end as u32,
            erase_end: erase_end as u32,
        });
        Ok(())
    }

    /// Checks a `*_DATA` request's header and checksum; returns its sequence number and block.
    pub(super) fn data_block<'r>(req: &'r Request<'_>, max_block: usize) -> Result<(u32, &'r [u8]), RomError> {
        let (Some(len), Some(seq)) = (req.word(0), req.word(1)) else {
            return Err(RomError::InvalidMessage);
        };
        let block = &req.data[16.min(req.data.len())..];
        if req.data.len() < 16 || len as usize != block.len() || block.len() > max_block {
            return Err(RomError::InvalidMessage);
        }
        if req.checksum != u32::from(checksum(block)) {
            return Err(RomError::BadChecksum);
        }
        Ok((seq, block))
    }

    async fn flash_data(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        let compressed = req.command == op::FLASH_DEFL_DATA;
        let (seq, block) = Self::data_block(req, self.chip.max_flash_block())?;
        let limit = self.limit();
        let Some(w) = self.write.as_mut() else {
            return Err(RomError::InvalidMessage);
        };
        if w.inflate.is_some() != compressed {
            return Err(RomError::InvalidMessage);
        }
        if block.len() > w.block_size as usize {
            return Err(RomError::InvalidParameter);
        }
        if seq != w.next_seq || seq >= w.num_blocks {
            return Err(RomError::InvalidMessage);
        }
        let out = match w.inflate.as_mut() {
            Some(inf) => {
                inf.feed(block)?;
                // Whole words now; the tail once the stream has ended.
                let take = if inf.done {
                    inf.pending.len()
                } else {
                    inf.pending.len() / 4 * 4
                };
                let mut out: Vec<u8> = inf.pending.drain(..take).collect();
                out.resize(out.len().next_multiple_of(4), 0xFF);
                out
            }
            None => {
                let mut out = block.to_vec();
                out.resize(out.len().next_multiple_of(4), 0xFF);
                out
            }
        };
        w.next_seq += 1;
        let addr = w.next_addr;
        if u64::from(addr) + out.len() as u64 > limit {
            return Err(RomError::FlashWrite);
        }
        w.next_addr = addr + out.len() as u32;
        if !out.is_empty() {
            self.flash.write(addr, &out).await.map_err(|_| RomError::FlashWrite)?;
            self.stats.bytes_written += out.len() as u64;
        }
        Ok(())
    }

    /// The ROM's error code, or the stub's for the same check.
    pub(super) fn fail(&self, rom: RomError, stub: StubError) -> Failure {
        if self.stub { stub.into() } else { rom.into() }
    }

    async fn flash_end(&mut self, req: &Request<'_>) -> Result<(), Failure> {
        let (4, Some(flag)) = (req.data.len(), req.word(0)) else {
            return Err(self.fail(RomError::InvalidMessage, StubError::BadDataLen));
        };
        if self.stub {
            // The stub ends only a write it has, and only once all of it has arrived.
            match &self.write {
                None => return Err(StubError::NotInFlashMode.into()),
                Some(w) if w.remaining != 0 => return Err(StubError::BadDataLen.into()),
                Some(_) => {}
            }
        }
        self.write = None;
        if flag != 0 {
            self.note("FLASH_END: run user code asked for; staying in download mode (no CPU to run it)");
        }
        Ok(())
    }

    async fn md5(&mut self, req: &Request<'_>) -> Result<Vec<u8>, RomError> {
        let (16, Some(addr), Some(size)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(RomError::InvalidMessage);
        };
        if !self.attached {
            return Err(RomError::FailedToAct);
        }
        if u64::from(addr) + u64::from(size) > self.limit() {
            return Err(RomError::FlashRead);
        }
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; SECTOR];
        let mut at = addr;
        let end = addr + size;
        while at < end {
            let n = (end - at).min(SECTOR as u32) as usize;
            self.flash
                .read(at, &mut buf[..n])
                .await
                .map_err(|_| RomError::FlashRead)?;
            hasher.update(&buf[..n]);
            at += n as u32;
        }
        let digest = hasher.finalize();
        Ok(digest.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect())
    }

    async fn read_slow(&mut self, req: &Request<'_>) -> Result<Vec<u8>, RomError> {
        // esptool sends `offset, length`; espflash adds its stub READ_FLASH's block size and
        // in-flight count, which the ROM leaves unread.
        let (8 | 16, Some(addr), Some(len)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(RomError::InvalidMessage);
        };
        if !self.attached {
            return Err(RomError::FailedToAct);
        }
        if len as usize > READ_SLOW_LEN {
            return Err(RomError::FlashReadLength);
        }
        if u64::from(addr) + u64::from(len) > self.limit() {
            return Err(RomError::FlashRead);
        }
        let mut out = vec![0xFF; READ_SLOW_LEN];
        self.flash
            .read(addr, &mut out[..len as usize])
            .await
            .map_err(|_| RomError::FlashRead)?;
        Ok(out)
    }
}
