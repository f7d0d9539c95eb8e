//! The flasher stub as it answers once it runs (esp-flasher-stub v1.4.1, the stub esptool 5
//! and espflash 4 upload): its 2 status bytes and 16-bit codes, its own commands (erases,
//! the acknowledged READ_FLASH, the raw MD5), and its way of writing: a `*_DATA` block is
//! acknowledged on arrival and inflated, erased for and programmed afterwards, while the host
//! sends the next one; a failure there is reported on the next command. The stub's code is
//! never executed: this is the stub's behaviour as its source and the hosts describe it.

use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use md5::{Digest, Md5};

use super::inflate::Inflater;
use super::loader::{FlashWrite, Handled, ReadFlash, RomLoader, StubWork};
use super::protocol::{Request, Response, RomError, StubError, checksum, op};
use crate::flash::SECTOR;

/// The largest `*_DATA` block the stub takes: the 16 KiB esptool and espflash send it.
pub const MAX_STUB_BLOCK: usize = 0x4000;

/// The largest READ_FLASH data frame the stub sends (its 4 KiB read buffer).
pub const MAX_READ_PACKET: u32 = 4096;

fn align_down(v: u64) -> u64 {
    v / SECTOR as u64 * SECTOR as u64
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(SECTOR as u64) * SECTOR as u64
}

impl RomLoader {
    pub(super) async fn stub_command(&mut self, req: &Request<'_>, handled: &mut Handled) -> Vec<Response> {
        let c = req.command;
        if let Some(e) = self.stub_error.take() {
            // The deferred work of the previous block failed: this command is refused with
            // that error and not carried out.
            return vec![Response::fail(c, e)];
        }
        if let Some(result) = self.common(req, handled).await {
            return vec![result.unwrap_or_else(|e| Response::fail(c, e))];
        }
        let result = match c {
            // Eight replies with value 0, which is how hosts tell the stub from the ROM.
            op::SYNC if req.data.len() == 36 => return vec![Response::ok(c); 8],
            op::GET_SECURITY_INFO if !req.data.is_empty() => Err(StubError::BadDataLen),
            op::GET_SECURITY_INFO if self.chip.has_security_info() => {
                Ok(Response::ok(c).with_data(self.chip.security_info()))
            }
            op::GET_SECURITY_INFO => Err(StubError::NotImplemented),
            op::SPI_ATTACH if req.data.len() == 4 => {
                self.attached = true;
                Ok(Response::ok(c))
            }
            op::FLASH_BEGIN | op::FLASH_DEFL_BEGIN => self.stub_begin(req).map(|()| Response::ok(c)),
            op::FLASH_DATA | op::FLASH_DEFL_DATA => self.stub_data(req).map(|()| Response::ok(c)),
            op::SPI_FLASH_MD5 => self.stub_md5(req).await.map(|d| Response::ok(c).with_data(d)),
            op::READ_FLASH => self.stub_read_flash(req, handled).map(|()| Response::ok(c)),
            op::ERASE_FLASH => {
                let end = self.flash.capacity() as u64;
                self.stub_erase(0, end).await.map(|()| Response::ok(c))
            }
            op::ERASE_REGION => self.stub_erase_region(req).await.map(|()| Response::ok(c)),
            op::RUN_USER_CODE => {
                // The stub sends no reply to this one.
                self.note("RUN_USER_CODE: staying in the stub (no CPU to run the app)");
                return Vec::new();
            }
            // SYNC with the wrong length, SPI_ATTACH with the ROM's 8 bytes, READ_FLASH_SLOW
            // (ROM only) and anything unknown.
            op::SYNC | op::SPI_ATTACH => Err(StubError::BadDataLen),
            _ => Err(StubError::InvalidCommand),
        };
        vec![result.unwrap_or_else(|e| Response::fail(c, e))]
    }

    fn stub_begin(&mut self, req: &Request<'_>) -> Result<(), StubError> {
        let n = req.data.len();
        if n != 16 && n != 20 {
            return Err(StubError::BadDataLen);
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (size, num_blocks, block_size, offset) = (w(0), w(1), w(2), w(3));
        if n == 20 && w(4) != 0 {
            // Flash encryption is not emulated.
            return Err(StubError::FailedSpiOp);
        }
        let erase_end = align_up(u64::from(offset) + u64::from(size));
        if erase_end > self.limit() || u64::from(offset) > self.limit() {
            return Err(StubError::FailedSpiOp);
        }
        let compressed = req.command == op::FLASH_DEFL_BEGIN;
        self.note(&format!(
            "stub {} at {offset:#x}: {size:#x} bytes, {num_blocks} blocks of {block_size:#x}, erased as they arrive",
            if compressed { "FLASH_DEFL_BEGIN" } else { "FLASH_BEGIN" },
        ));
        self.write = Some(FlashWrite {
            next_seq: 0,
            num_blocks,
            block_size,
            next_addr: offset,
            inflate: compressed.then(Inflater::new),
            remaining: size,
            erased_to: align_down(u64::from(offset)) as u32,
            erase_end: erase_end as u32,
        });
        Ok(())
    }

    /// Checks a block and queues its write for after the reply.
    fn stub_data(&mut self, req: &Request<'_>) -> Result<(), StubError> {
        if req.data.len() < 16 {
            return Err(StubError::NotEnoughData);
        }
        let compressed = req.command == op::FLASH_DEFL_DATA;
        let Some(w) = self.write.as_mut() else {
            return Err(StubError::NotInFlashMode);
        };
        if w.inflate.is_some() != compressed {
            return Err(StubError::NotInFlashMode);
        }
        let (len, seq) = (req.word(0).unwrap_or(0), req.word(1).unwrap_or(0));
        let block = &req.data[16..];
        if len as usize != block.len() || block.len() > MAX_STUB_BLOCK {
            return Err(StubError::TooMuchData);
        }
        if compressed && w.remaining == 0 && !block.is_empty() {
            return Err(StubError::TooMuchData);
        }
        if req.checksum != u32::from(checksum(block)) {
            return Err(StubError::BadChecksum);
        }
        // The stub does not look at the sequence number; a block out of order would land in
        // the wrong place, so the emulator refuses it.
        if seq != w.next_seq || seq >= w.num_blocks {
            return Err(StubError::BadDataLen);
        }
        w.next_seq += 1;
        self.stub_work = Some(StubWork::Block(block.to_vec()));
        Ok(())
    }

    /// The deferred part of a `*_DATA`: inflate, erase what the data reaches, program.
    pub(super) async fn stub_after(&mut self, work: StubWork) -> Result<(), StubError> {
        let StubWork::Block(block) = work;
        let limit = self.limit();
        let Some(w) = self.write.as_mut() else {
            return Err(StubError::NotInFlashMode);
        };
        let mut out = match w.inflate.as_mut() {
            Some(inf) => {
                inf.feed(&block).map_err(|_: RomError| StubError::Inflate)?;
                let take = if inf.done {
                    inf.pending.len()
                } else {
                    inf.pending.len() / 4 * 4
                };
                let out: Vec<u8> = inf.pending.drain(..take).collect();
                if out.len() as u64 > u64::from(w.remaining) {
                    return Err(StubError::TooMuchData);
                }
                out
            }
            // Plain data past the announced size (the last block's padding) is dropped.
            None => block[..block.len().min(w.remaining as usize)].to_vec(),
        };
        w.remaining -= out.len() as u32;
        out.resize(out.len().next_multiple_of(4), 0xFF);
        let addr = w.next_addr;
        let end = u64::from(addr) + out.len() as u64;
        if end > limit {
            return Err(StubError::FailedSpiOp);
        }
        w.next_addr = end as u32;
        let erase_to = align_up(end).min(u64::from(w.erase_end)).max(u64::from(w.erased_to));
        let erase_from = u64::from(w.erased_to);
        w.erased_to = erase_to as u32;
        if erase_to > erase_from {
            self.flash
                .erase(erase_from as u32, erase_to as u32)
                .await
                .map_err(|_| StubError::FailedSpiOp)?;
            self.stats.sectors_erased += (erase_to - erase_from) / SECTOR as u64;
        }
        if !out.is_empty() {
            self.flash.write(addr, &out).await.map_err(|_| StubError::FailedSpiOp)?;
            self.stats.bytes_written += out.len() as u64;
        }
        Ok(())
    }

    /// The stub's MD5: 16 raw bytes (the ROM sends 32 hex digits).
    async fn stub_md5(&mut self, req: &Request<'_>) -> Result<Vec<u8>, StubError> {
        let (16, Some(addr), Some(size)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(StubError::BadDataLen);
        };
        if u64::from(addr) + u64::from(size) > self.limit() {
            return Err(StubError::FailedSpiOp);
        }
        let mut hasher = Md5::new();
        let mut at = addr;
        let end = addr + size;
        while at < end {
            let n = (end - at).min(SECTOR as u32);
            hasher.update(self.read_flash_packet(at, n).await?);
            at += n;
        }
        Ok(hasher.finalize().to_vec())
    }

    /// READ_FLASH's parameters are checked here, before the reply; the stub checks the
    /// packet size only after it has acknowledged the command (and then sends nothing), so
    /// refusing it up front is the one place the emulator answers earlier than the stub.
    fn stub_read_flash(&mut self, req: &Request<'_>, handled: &mut Handled) -> Result<(), StubError> {
        let (16, Some(offset), Some(len), Some(packet)) = (req.data.len(), req.word(0), req.word(1), req.word(2))
        else {
            return Err(StubError::BadDataLen);
        };
        if packet == 0 || packet > MAX_READ_PACKET {
            return Err(StubError::BadDataLen);
        }
        if u64::from(offset) + u64::from(len) > self.limit() {
            return Err(StubError::FailedSpiOp);
        }
        // esp-flasher-stub keeps one frame in flight whatever the host asks for (esptool
        // asks for 64).
        handled.read_flash = Some(ReadFlash {
            offset,
            len,
            packet,
            in_flight: 1,
        });
        Ok(())
    }

    /// `len` bytes of flash at `addr`, for READ_FLASH's data frames and MD5.
    pub async fn read_flash_packet(&mut self, addr: u32, len: u32) -> Result<Vec<u8>, StubError> {
        let mut out = vec![0u8; len as usize];
        self.flash
            .read(addr, &mut out)
            .await
            .map_err(|_| StubError::FailedSpiOp)?;
        Ok(out)
    }

    async fn stub_erase_region(&mut self, req: &Request<'_>) -> Result<(), StubError> {
        let (8, Some(addr), Some(size)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(StubError::BadDataLen);
        };
        if !(addr as usize).is_multiple_of(SECTOR) || !(size as usize).is_multiple_of(SECTOR) {
            return Err(StubError::BadDataLen);
        }
        self.stub_erase(u64::from(addr), u64::from(addr) + u64::from(size))
            .await
    }

    async fn stub_erase(&mut self, from: u64, to: u64) -> Result<(), StubError> {
        if to > self.flash.capacity() as u64 {
            return Err(StubError::FailedSpiOp);
        }
        if to > from {
            self.flash
                .erase(from as u32, to as u32)
                .await
                .map_err(|_| StubError::FailedSpiOp)?;
            self.stats.sectors_erased += (to - from) / SECTOR as u64;
        }
        self.note(&format!("stub erase {from:#x}..{to:#x}"));
        Ok(())
    }
}
