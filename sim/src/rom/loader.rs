//! The ROM loader's command handling: one frame in, the replies out.
//!
//! It is a peer for host flashing tools, so where the real ROM is known to refuse
//! something it refuses it the same way (a 2 KiB block to an ESP32-C3, five FLASH_BEGIN
//! words to an ESP32, GET_SECURITY_INFO to an ESP32), and where a real chip would silently
//! do damage (flash access before SPI_ATTACH, a `*_DATA` out of sequence, a program into
//! a region that was not erased) it answers with an error a tool can see. The error codes
//! are the ROM's (ESP-FORMATS.md §1.8); which one each check uses is listed in
//! docs/rom-loader.md.

use std::collections::HashMap;
use std::time::Duration;

use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use md5::{Digest, Md5};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use super::chip::{MAX_RAM_BLOCK, RomChip};
use super::protocol::{Request, Response, RomError, SYNC_PAYLOAD, SYNC_VALUE, checksum, op};
use super::slip::FrameError;
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

/// The inflate window the ROM's tinfl uses.
const DICT: usize = 32 * 1024;

/// What one frame produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Response packets (not yet SLIP-framed), in order.
    pub replies: Vec<Vec<u8>>,
    /// The UART rate to switch to once the replies are out (CHANGE_BAUDRATE).
    pub baud: Option<u32>,
    /// Plain text sent after the replies, outside any frame, as a chip prints to its UART.
    pub text: Vec<u8>,
}

/// Counters a test or the CLI reads back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RomStats {
    pub commands: u64,
    /// Replies with status 1.
    pub errors: u64,
    pub sectors_erased: u64,
    /// Bytes programmed into flash (after inflating).
    pub bytes_written: u64,
}

/// A FLASH_BEGIN or FLASH_DEFL_BEGIN in progress.
struct FlashWrite {
    next_seq: u32,
    num_blocks: u32,
    block_size: u32,
    next_addr: u32,
    inflate: Option<Box<Inflater>>,
}

/// Streaming zlib inflate into a 32 KiB window, as the ROM's tinfl runs.
struct Inflater {
    decomp: DecompressorOxide,
    dict: Vec<u8>,
    dict_ofs: usize,
    /// Inflated bytes not yet programmed (programs are whole words).
    pending: Vec<u8>,
    done: bool,
}

impl Inflater {
    fn new() -> Box<Inflater> {
        Box::new(Inflater {
            decomp: DecompressorOxide::new(),
            dict: vec![0; DICT],
            dict_ofs: 0,
            pending: Vec::new(),
            done: false,
        })
    }

    /// Inflates `input` onto `pending`.
    fn feed(&mut self, mut input: &[u8]) -> Result<(), RomError> {
        if self.done {
            return if input.is_empty() {
                Ok(())
            } else {
                Err(RomError::Inflate)
            };
        }
        let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
            | inflate_flags::TINFL_FLAG_HAS_MORE_INPUT
            | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32;
        loop {
            let (status, used, produced) = decompress(&mut self.decomp, input, &mut self.dict, self.dict_ofs, flags);
            input = &input[used..];
            self.pending
                .extend_from_slice(&self.dict[self.dict_ofs..self.dict_ofs + produced]);
            self.dict_ofs = (self.dict_ofs + produced) & (DICT - 1);
            match status {
                TINFLStatus::HasMoreOutput => continue,
                TINFLStatus::NeedsMoreInput if input.is_empty() => return Ok(()),
                TINFLStatus::NeedsMoreInput => continue,
                TINFLStatus::Done => {
                    self.done = true;
                    // Bytes after the end of the zlib stream are not part of any image.
                    return if input.is_empty() {
                        Ok(())
                    } else {
                        Err(RomError::Inflate)
                    };
                }
                TINFLStatus::Adler32Mismatch => return Err(RomError::InflateAdler),
                _ => return Err(RomError::Inflate),
            }
        }
    }
}

/// A MEM_BEGIN in progress.
struct MemLoad {
    addr: u32,
    size: u32,
    num_blocks: u32,
    block_size: u32,
    next_seq: u32,
    data: Vec<u8>,
}

/// The ROM loader of one chip, with its flash.
pub struct RomLoader {
    chip: RomChip,
    flash: SimFlash,
    regs: HashMap<u32, u32>,
    /// Segments loaded with MEM_*: READ_REG reads them back, nothing runs them.
    ram: Vec<(u32, Vec<u8>)>,
    attached: bool,
    /// The flash size SPI_SET_PARAMS told the ROM; accesses beyond it fail as on the chip.
    params_size: Option<u32>,
    baud: u32,
    write: Option<FlashWrite>,
    mem: Option<MemLoad>,
    log: Option<Log>,
    stats: RomStats,
}

impl std::fmt::Debug for RomLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomLoader")
            .field("chip", &self.chip)
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
            attached: false,
            params_size: None,
            baud: ROM_BAUD,
            write: None,
            mem: None,
            log: None,
            stats: RomStats::default(),
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

    pub fn stats(&self) -> RomStats {
        self.stats
    }

    pub fn flash(&self) -> &SimFlash {
        &self.flash
    }

    fn note(&self, text: &str) {
        if let Some(log) = &self.log {
            log(text);
        }
    }

    /// The end of the flash the ROM will touch: the chip, or less if SPI_SET_PARAMS said so.
    fn limit(&self) -> u64 {
        let cap = self.flash.capacity() as u64;
        self.params_size.map_or(cap, |s| cap.min(u64::from(s)))
    }

    /// Handles one frame (or one the SLIP layer had to drop).
    pub async fn handle(&mut self, frame: Result<Vec<u8>, FrameError>) -> Handled {
        self.stats.commands += 1;
        let mut handled = Handled::default();
        let responses = match &frame {
            Err(e) => vec![Response::fail(
                e.head().get(1).copied().unwrap_or(0),
                RomError::InvalidMessage,
            )],
            Ok(bytes) => match Request::parse(bytes) {
                Err(m) => vec![Response::fail(m.command, RomError::InvalidMessage)],
                Ok(req) => self.command(&req, &mut handled).await,
            },
        };
        let status_len = self.chip.status_len();
        for r in responses {
            if r.error.is_some() {
                self.stats.errors += 1;
            }
            handled.replies.push(r.encode(status_len));
        }
        if let Some(baud) = handled.baud {
            self.baud = baud;
        }
        handled
    }

    async fn command(&mut self, req: &Request<'_>, handled: &mut Handled) -> Vec<Response> {
        let c = req.command;
        let result = match c {
            op::SYNC => {
                if req.data != SYNC_PAYLOAD {
                    Err(RomError::InvalidMessage)
                } else {
                    // The ROM answers every SYNC eight times.
                    return vec![Response::ok(c).with_value(SYNC_VALUE); 8];
                }
            }
            op::READ_REG => match (req.data.len(), req.word(0)) {
                (4, Some(addr)) => Ok(Response::ok(c).with_value(self.read_reg(addr))),
                _ => Err(RomError::InvalidMessage),
            },
            op::WRITE_REG => self.write_reg(req).await.map(|()| Response::ok(c)),
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
            op::SPI_SET_PARAMS => match (req.data.len(), req.word(1)) {
                (24, Some(size)) => {
                    self.params_size = Some(size);
                    Ok(Response::ok(c))
                }
                _ => Err(RomError::InvalidMessage),
            },
            op::CHANGE_BAUDRATE => match (req.data.len(), req.word(0)) {
                (8, Some(baud)) if !BAUD_RANGE.contains(&baud) => Err(RomError::InvalidParameter),
                (8, Some(baud)) => {
                    handled.baud = Some(baud);
                    self.note(&format!("baud rate {} -> {baud}", self.baud));
                    Ok(Response::ok(c))
                }
                _ => Err(RomError::InvalidMessage),
            },
            op::FLASH_BEGIN | op::FLASH_DEFL_BEGIN => self.flash_begin(req).await.map(|()| Response::ok(c)),
            op::FLASH_DATA | op::FLASH_DEFL_DATA => self.flash_data(req).await.map(|()| Response::ok(c)),
            op::FLASH_END | op::FLASH_DEFL_END => self.flash_end(req).await.map(|()| Response::ok(c)),
            op::MEM_BEGIN => self.mem_begin(req).map(|()| Response::ok(c)),
            op::MEM_DATA => self.mem_data(req).map(|()| Response::ok(c)),
            op::MEM_END => self.mem_end(req, handled).map(|()| Response::ok(c)),
            op::SPI_FLASH_MD5 => self.md5(req).await.map(|hex| Response::ok(c).with_data(hex)),
            op::READ_FLASH_SLOW => self.read_slow(req).await.map(|data| Response::ok(c).with_data(data)),
            // Stub-only commands, GET_SECURITY_INFO on the ESP32, and anything else.
            _ => Err(RomError::InvalidMessage),
        };
        vec![result.unwrap_or_else(|e| Response::fail(c, e))]
    }

    fn read_reg(&self, addr: u32) -> u32 {
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

    /// Runs the SPI user command esptool set up in the SPI1 registers (`run_spiflash_command`):
    /// the flash answers JEDEC id, SFDP and status reads; everything else (write enable,
    /// status writes, power-down) it takes without effect.
    fn spi_user_command(&mut self) {
        let spi = self.chip.spi();
        let reg = |s: &Self, a| s.regs.get(&a).copied().unwrap_or(0);
        let usr = reg(self, spi.usr);
        let command = reg(self, spi.usr2) & 0xFF;
        let miso_bits = if usr & SPI_USR_MISO != 0 {
            (reg(self, spi.miso_dlen) & 0x3FF) + 1
        } else {
            0
        };
        let addr = if usr & SPI_USR_ADDR != 0 {
            let len = (reg(self, spi.usr1) >> 26) + 1;
            let raw = reg(self, spi.addr());
            if spi.addr_msb && len < 32 {
                raw >> (32 - len)
            } else {
                raw
            }
        } else {
            0
        };
        let reply: Vec<u8> = match command {
            0x9F => jedec_id(self.flash.capacity()).to_vec(),
            0x5A => (0..8)
                .map(|i| sfdp_byte(self.flash.capacity(), addr.wrapping_add(i)))
                .collect(),
            _ => vec![0; 8],
        };
        let bytes = (miso_bits as usize).div_ceil(8).min(64);
        // MISO bits land in W0, W1, … from the low byte up.
        for (i, chunk) in reply[..bytes.min(reply.len())].chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.regs.insert(spi.w0 + 4 * i as u32, u32::from_le_bytes(word));
        }
        let cmd = spi.cmd();
        let v = reg(self, cmd) & !SPI_CMD_USR;
        self.regs.insert(cmd, v);
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
        });
        Ok(())
    }

    /// Checks a `*_DATA` request's header and checksum; returns its sequence number and block.
    fn data_block<'r>(req: &'r Request<'_>, max_block: usize) -> Result<(u32, &'r [u8]), RomError> {
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

    async fn flash_end(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        let Some(flag) = req.word(0) else {
            return Err(RomError::InvalidMessage);
        };
        if req.data.len() != 4 {
            return Err(RomError::InvalidMessage);
        }
        self.write = None;
        self.note(if flag == 0 {
            "FLASH_END: reboot asked for; staying in download mode (the boot pin is held low)"
        } else {
            "FLASH_END: run user code asked for; staying in download mode (no CPU to run it)"
        });
        Ok(())
    }

    fn mem_begin(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        if req.data.len() != 16 {
            return Err(RomError::InvalidMessage);
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (size, num_blocks, block_size, addr) = (w(0), w(1), w(2), w(3));
        let Some(region) = self.chip.ram().iter().find(|r| r.contains(&addr)) else {
            return Err(RomError::BadRamAddress);
        };
        if u64::from(addr) + u64::from(size) > u64::from(region.end) {
            return Err(RomError::BadRamSize);
        }
        if block_size as usize > MAX_RAM_BLOCK || (num_blocks > 0 && block_size == 0) {
            return Err(RomError::InvalidParameter);
        }
        self.mem = Some(MemLoad {
            addr,
            size,
            num_blocks,
            block_size,
            next_seq: 0,
            data: Vec::new(),
        });
        Ok(())
    }

    fn mem_data(&mut self, req: &Request<'_>) -> Result<(), RomError> {
        let (seq, block) = Self::data_block(req, MAX_RAM_BLOCK)?;
        let Some(m) = self.mem.as_mut() else {
            return Err(RomError::InvalidMessage);
        };
        if block.len() > m.block_size as usize {
            return Err(RomError::InvalidParameter);
        }
        if seq != m.next_seq || seq >= m.num_blocks {
            return Err(RomError::InvalidMessage);
        }
        if m.data.len() + block.len() > m.size as usize {
            return Err(RomError::BadRamSize);
        }
        m.data.extend_from_slice(block);
        m.next_seq += 1;
        Ok(())
    }

    fn mem_end(&mut self, req: &Request<'_>, handled: &mut Handled) -> Result<(), RomError> {
        let (8, Some(no_exec), Some(entry)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(RomError::InvalidMessage);
        };
        if let Some(m) = self.mem.take() {
            // A later load replaces what it overlaps, as it would in RAM.
            let new = u64::from(m.addr)..u64::from(m.addr) + m.data.len() as u64;
            self.ram.retain(|(start, bytes)| {
                let old = u64::from(*start)..u64::from(*start) + bytes.len() as u64;
                old.end <= new.start || new.end <= old.start
            });
            self.ram.push((m.addr, m.data));
        }
        if no_exec == 0 {
            // A real chip would now run the uploaded code (esptool's stub, which greets with
            // a bare `OHAI` frame). Nothing runs code here; saying so on the line, as a chip
            // prints to its UART, makes a host waiting for the greeting fail at once
            // instead of waiting for ever.
            let text = format!(
                "sim rom: MEM_END jump to {entry:#010x} not taken: this emulator runs no code, \
                 use the flasher without its stub (esptool --no-stub)"
            );
            self.note(&text);
            handled.text.extend_from_slice(b"\r\n");
            handled.text.extend_from_slice(text.as_bytes());
            handled.text.extend_from_slice(b"\r\n");
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

const SPI_CMD_USR: u32 = 1 << 18;
const SPI_USR_ADDR: u32 = 1 << 30;
const SPI_USR_MISO: u32 = 1 << 28;

/// A Winbond W25Q-series JEDEC id for a chip of `size` bytes (manufacturer, type,
/// log2 capacity), which esptool decodes into the flash size.
fn jedec_id(size: usize) -> [u8; 3] {
    [0xEF, 0x40, size.max(1).trailing_zeros() as u8]
}

/// A minimal JESD216 table: the "SFDP" signature, one parameter header and the basic
/// table's density word, `0xFF` elsewhere.
fn sfdp_byte(size: usize, addr: u32) -> u8 {
    let density = ((size as u64 * 8).saturating_sub(1) as u32).to_le_bytes();
    match addr {
        0..=3 => b"SFDP"[addr as usize],
        4 => 0x06, // minor revision
        5 => 0x01, // major revision
        6 => 0x00, // one parameter header
        7 => 0xFF,
        8 => 0x00, // basic table id
        9 => 0x06,
        10 => 0x01,
        11 => 0x09, // length in words
        12 => 0x80, // table at 0x80
        13 | 14 => 0x00,
        15 => 0xFF,
        0x80..=0x83 => [0xE5, 0x20, 0xF1, 0xFF][addr as usize - 0x80],
        0x84..=0x87 => density[addr as usize - 0x84],
        _ => 0xFF,
    }
}
