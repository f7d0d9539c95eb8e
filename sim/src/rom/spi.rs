//! The SPI1 (flash) controller's user-command registers, as esptool and espflash drive them
//! with READ_REG/WRITE_REG to read the flash's JEDEC id and SFDP: the ROM and the stub both
//! leave these registers to the host, so both modes answer through them.

use embedded_storage_async::nor_flash::ReadNorFlash;

use super::loader::RomLoader;

impl RomLoader {
    /// Runs the SPI user command esptool set up in the SPI1 registers (`run_spiflash_command`):
    /// the flash answers JEDEC id, SFDP and status reads; everything else (write enable,
    /// status writes, power-down) it takes without effect.
    pub(super) fn spi_user_command(&mut self) {
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
}

pub(super) const SPI_CMD_USR: u32 = 1 << 18;
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
