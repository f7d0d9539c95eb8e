//! MEM_BEGIN / MEM_DATA / MEM_END: code uploaded to RAM, checked as the ROM checks it, kept
//! so READ_REG reads it back, and the jump that makes the emulator answer as the flasher stub
//! (the code itself never runs).

use super::chip::MAX_RAM_BLOCK;
use super::loader::{Handled, RomLoader};
use super::protocol::{Failure, Request, RomError, StubError};

/// A MEM_BEGIN in progress.
pub(super) struct MemLoad {
    pub(super) addr: u32,
    pub(super) size: u32,
    pub(super) num_blocks: u32,
    pub(super) block_size: u32,
    pub(super) next_seq: u32,
    pub(super) data: Vec<u8>,
}

impl RomLoader {
    /// Puts an unfinished MEM_BEGIN's data into RAM: what its MEM_DATA blocks wrote is there
    /// whether or not the host ever sends MEM_END.
    pub(super) fn commit_mem(&mut self) {
        let Some(m) = self.mem.take() else { return };
        if m.next_seq < m.num_blocks || (m.data.len() as u64) < u64::from(m.size) {
            self.ram_incomplete = true;
        }
        // A later load replaces what it overlaps, as it would in RAM.
        let new = u64::from(m.addr)..u64::from(m.addr) + m.data.len() as u64;
        self.ram.retain(|(start, bytes)| {
            let old = u64::from(*start)..u64::from(*start) + bytes.len() as u64;
            old.end <= new.start || new.end <= old.start
        });
        self.ram.push((m.addr, m.data));
    }

    pub(super) fn mem_begin(&mut self, req: &Request<'_>) -> Result<(), Failure> {
        if req.data.len() != 16 {
            return Err(self.fail(RomError::InvalidMessage, StubError::BadDataLen));
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (size, num_blocks, block_size, addr) = (w(0), w(1), w(2), w(3));
        let Some(region) = self.chip.ram().iter().find(|r| r.contains(&addr)) else {
            return Err(self.fail(RomError::BadRamAddress, StubError::FailedSpiOp));
        };
        if u64::from(addr) + u64::from(size) > u64::from(region.end) {
            return Err(self.fail(RomError::BadRamSize, StubError::TooMuchData));
        }
        if block_size as usize > MAX_RAM_BLOCK || (num_blocks > 0 && block_size == 0) {
            return Err(self.fail(RomError::InvalidParameter, StubError::BadDataLen));
        }
        self.commit_mem();
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

    pub(super) fn mem_data(&mut self, req: &Request<'_>) -> Result<(), Failure> {
        let (seq, block) = Self::data_block(req, MAX_RAM_BLOCK).map_err(|e| match e {
            RomError::BadChecksum => self.fail(e, StubError::BadChecksum),
            _ => self.fail(e, StubError::TooMuchData),
        })?;
        let stub = self.stub;
        let Some(m) = self.mem.as_mut() else {
            return Err(self.fail(RomError::InvalidMessage, StubError::NotInFlashMode));
        };
        let failure = if block.len() > m.block_size as usize {
            Some((RomError::InvalidParameter, StubError::TooMuchData))
        } else if seq != m.next_seq || seq >= m.num_blocks {
            Some((RomError::InvalidMessage, StubError::BadDataLen))
        } else if m.data.len() + block.len() > m.size as usize {
            Some((RomError::BadRamSize, StubError::TooMuchData))
        } else {
            None
        };
        if let Some((rom, stub_e)) = failure {
            return Err(if stub { stub_e.into() } else { rom.into() });
        }
        m.data.extend_from_slice(block);
        m.next_seq += 1;
        Ok(())
    }

    pub(super) fn mem_end(&mut self, req: &Request<'_>, handled: &mut Handled) -> Result<(), Failure> {
        let (8, Some(no_exec), Some(entry)) = (req.data.len(), req.word(0), req.word(1)) else {
            return Err(self.fail(RomError::InvalidMessage, StubError::BadDataLen));
        };
        self.commit_mem();
        if no_exec != 0 {
            return Ok(());
        }
        // The jump. Nothing is executed: code jumped into is taken to be the flasher stub
        // (what every host uploads), which the emulator then answers as. What would not run
        // on a chip does not start it: an entry point outside what was uploaded, or an
        // upload with blocks missing.
        let loaded = self
            .ram
            .iter()
            .any(|(start, bytes)| entry >= *start && u64::from(entry) < u64::from(*start) + bytes.len() as u64);
        let why = if self.stub {
            Some("the stub is already running (it would run other code, which this emulator does not)")
        } else if !loaded {
            Some("nothing was uploaded there")
        } else if self.ram_incomplete {
            Some("an upload is missing blocks")
        } else {
            None
        };
        match why {
            None => {
                self.note(&format!(
                    "MEM_END: jump to {entry:#010x}: answering as the flasher stub from now on (the uploaded code is not executed)"
                ));
                self.stub = true;
                self.write = None;
            }
            Some(why) => {
                // Said on the line, as a chip prints to its UART, so a host waiting for a
                // greeting fails at once instead of waiting for ever.
                let text = format!("sim rom: MEM_END jump to {entry:#010x} not taken: {why}");
                self.note(&text);
                handled.text.extend_from_slice(b"\r\n");
                handled.text.extend_from_slice(text.as_bytes());
                handled.text.extend_from_slice(b"\r\n");
            }
        }
        Ok(())
    }
}
