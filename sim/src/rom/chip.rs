//! What each emulated chip's ROM answers that differs between chips: detection values,
//! the eFuse and peripheral registers esptool reads while it connects, where RAM is, and
//! how large a block the ROM takes.
//!
//! Register values are those of one plausible part (an ESP32-D0WD-V3 rev v3.1 and an
//! ESP32-C3 QFN32 rev v0.4, both on a 40 MHz crystal without secure boot or flash
//! encryption), chosen so that esptool's decoding of them (targets/esp32.py,
//! targets/esp32c3.py in esptool 5.6) prints a sensible description. Addresses are
//! esptool's.

use std::ops::Range;

/// The chips the emulator can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RomChip {
    Esp32,
    Esp32c3,
}

/// Where the SPI1 (flash) controller's user-command registers are; esptool drives them
/// with READ_REG/WRITE_REG to read the flash JEDEC id and SFDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRegs {
    pub base: u32,
    pub usr: u32,
    pub usr1: u32,
    pub usr2: u32,
    pub mosi_dlen: u32,
    pub miso_dlen: u32,
    pub w0: u32,
    /// The ESP32's controller sends the address from the register's MSB.
    pub addr_msb: bool,
}

impl SpiRegs {
    pub fn cmd(&self) -> u32 {
        self.base
    }

    pub fn addr(&self) -> u32 {
        self.base + 4
    }
}

/// The register esptool reads first to tell chips apart (§1.10).
pub const CHIP_DETECT_MAGIC_REG: u32 = 0x4000_1000;

/// Both emulated parts run their ROM from a 40 MHz crystal.
pub const XTAL_HZ: u32 = 40_000_000;

/// The largest RAM block esptool sends to a ROM (`ESP_RAM_BLOCK`), which every ROM takes:
/// it bounds the receive buffer.
pub const MAX_RAM_BLOCK: usize = 0x1800;

/// The ROM's receive buffer: a MEM_DATA header, its data header and a full RAM block. The
/// ROM refuses a bigger frame; the SLIP receiver drops anything past the stub's buffer.
pub const MAX_FRAME: usize = super::protocol::HEADER + 16 + MAX_RAM_BLOCK;

/// The flasher stub's receive buffer: a `*_DATA` header and its 16 KiB block.
pub const MAX_STUB_FRAME: usize = super::protocol::HEADER + 16 + super::stub::MAX_STUB_BLOCK;

const ESP32_EFUSE: u32 = 0x3FF5_A000;
const C3_EFUSE: u32 = 0x6000_8800;
const C3_EFUSE_BLOCK1: u32 = C3_EFUSE + 0x44;

impl RomChip {
    pub const ALL: [RomChip; 2] = [RomChip::Esp32, RomChip::Esp32c3];

    /// The name esptool, espflash and profiles use.
    pub fn name(self) -> &'static str {
        match self {
            RomChip::Esp32 => "esp32",
            RomChip::Esp32c3 => "esp32c3",
        }
    }

    pub fn from_name(name: &str) -> Option<RomChip> {
        RomChip::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The image header's chip id, which GET_SECURITY_INFO reports on chips that have it.
    pub fn chip_id(self) -> u32 {
        match self {
            RomChip::Esp32 => 0,
            RomChip::Esp32c3 => 5,
        }
    }

    /// What READ_REG of [`CHIP_DETECT_MAGIC_REG`] returns (ESP32: esptool's
    /// `MAGIC_VALUE`; ESP32-C3: the ECO3 value older esptools matched on).
    pub fn magic(self) -> u32 {
        match self {
            RomChip::Esp32 => 0x00F0_1D83,
            RomChip::Esp32c3 => 0x1B31_506F,
        }
    }

    /// Every ROM from the ESP32 on ends a response with 4 status bytes (§1.3); the flasher
    /// stub sends 2 on every chip ([`super::protocol::STUB_STATUS_LEN`]).
    pub fn status_len(self) -> usize {
        4
    }

    /// The ESP32 ROM does not know GET_SECURITY_INFO; later ROMs answer it.
    pub fn has_security_info(self) -> bool {
        matches!(self, RomChip::Esp32c3)
    }

    /// GET_SECURITY_INFO's 20 bytes: no security feature enabled, the chip id, API 0.
    pub fn security_info(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        out.push(0); // flash_crypt_cnt
        out.extend_from_slice(&[0; 7]); // key purposes
        out.extend_from_slice(&self.chip_id().to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // eco / API version
        out
    }

    /// The largest FLASH_DATA / FLASH_DEFL_DATA block the ROM accepts; a bigger one is
    /// answered "invalid message". ESP32-C3: 1 KiB, as reported against the real ROM
    /// (espressif/esptool#860); ESP32: 4 KiB (espressif/esp-serial-flasher#54). esptool
    /// sends 1 KiB blocks to every ROM.
    pub fn max_flash_block(self) -> usize {
        match self {
            RomChip::Esp32 => 0x1000,
            RomChip::Esp32c3 => 0x400,
        }
    }

    /// Whether FLASH_BEGIN / FLASH_DEFL_BEGIN carry the fifth `encrypted` word. The ESP32
    /// ROM takes four words; the ESP32-C3 ROM takes five, and four still work.
    pub fn begin_has_encrypted_word(self) -> bool {
        matches!(self, RomChip::Esp32c3)
    }

    /// RAM the ROM lets MEM_BEGIN load into (esptool's memory maps: DRAM, IRAM, RTC).
    pub fn ram(self) -> &'static [Range<u32>] {
        match self {
            RomChip::Esp32 => &[
                0x3FF8_0000..0x3FF8_2000,
                0x3FFA_E000..0x4000_0000,
                0x4008_0000..0x400C_0000,
                0x400C_0000..0x400C_2000,
                0x5000_0000..0x5000_2000,
            ],
            RomChip::Esp32c3 => &[
                0x3FC8_0000..0x3FCE_0000,
                0x4037_C000..0x403E_0000,
                0x5000_0000..0x5000_2000,
            ],
        }
    }

    pub fn spi(self) -> SpiRegs {
        match self {
            RomChip::Esp32 => SpiRegs {
                base: 0x3FF4_2000,
                usr: 0x3FF4_2000 + 0x1C,
                usr1: 0x3FF4_2000 + 0x20,
                usr2: 0x3FF4_2000 + 0x24,
                mosi_dlen: 0x3FF4_2000 + 0x28,
                miso_dlen: 0x3FF4_2000 + 0x2C,
                w0: 0x3FF4_2000 + 0x80,
                addr_msb: true,
            },
            RomChip::Esp32c3 => SpiRegs {
                base: 0x6000_2000,
                usr: 0x6000_2000 + 0x18,
                usr1: 0x6000_2000 + 0x1C,
                usr2: 0x6000_2000 + 0x20,
                mosi_dlen: 0x6000_2000 + 0x24,
                miso_dlen: 0x6000_2000 + 0x28,
                w0: 0x6000_2000 + 0x58,
                addr_msb: false,
            },
        }
    }

    /// UART0's clock divider: esptool multiplies it by its baud rate to estimate the
    /// crystal, so it follows the current rate.
    pub fn uart_clkdiv_reg(self) -> u32 {
        match self {
            RomChip::Esp32 => 0x3FF4_0014,
            RomChip::Esp32c3 => 0x6000_0014,
        }
    }

    /// The factory MAC in eFuse (Espressif OUIs).
    pub fn mac(self) -> [u8; 6] {
        match self {
            RomChip::Esp32 => [0x24, 0x0A, 0xC4, 0x0E, 0x5A, 0x01],
            RomChip::Esp32c3 => [0x34, 0x85, 0x18, 0x0E, 0x5A, 0x03],
        }
    }

    /// A register with a fixed value on this part, if it is one the emulator knows.
    pub fn fixed_reg(self, addr: u32) -> Option<u32> {
        if addr == CHIP_DETECT_MAGIC_REG {
            return Some(self.magic());
        }
        let mac = self.mac();
        let mac_lo = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
        let mac_hi = u32::from(mac[0]) << 8 | u32::from(mac[1]);
        match self {
            RomChip::Esp32 => {
                let efuse_word = |n: u32| ESP32_EFUSE + 4 * n;
                Some(match addr {
                    a if a == efuse_word(0) => 0,
                    // MAC: word 1 holds its last four bytes, word 2 the first two under the
                    // CRC byte.
                    a if a == efuse_word(1) => mac_lo,
                    a if a == efuse_word(2) => u32::from(crc8(&mac)) << 16 | mac_hi,
                    // pkg D0WD (bits 9..11 = 1), rev bit 0 (15), 240 MHz rated (13).
                    a if a == efuse_word(3) => 1 << 9 | 1 << 15 | 1 << 13,
                    // ADC Vref (bits 8..12) and the 8 MHz clock calibration (bits 0..7)
                    // that, with RTCCALICFG1, makes esptool's ROM crystal estimate 40 MHz.
                    a if a == efuse_word(4) => 5 << 8 | ESP32_CK8M,
                    // rev bit 1 (20), minor revision 1 (24..25).
                    a if a == efuse_word(5) => 1 << 20 | 1 << 24,
                    a if a == efuse_word(6) => 0,
                    // APB_CTL_DATE: rev bit 2.
                    0x3FF6_607C => 0x9604_2000,
                    // RTCCALICFG1: calibration value in bits 7..31.
                    0x3FF5_F06C => ESP32_RTC_CALI << 7,
                    // GPIO_STRAP: download boot (GPIO0 low), VDD_SDIO strap 3.3 V.
                    0x3FF4_4038 => 0x03,
                    _ => return None,
                })
            }
            RomChip::Esp32c3 => Some(match addr {
                C3_EFUSE_BLOCK1 => mac_lo,
                a if a == C3_EFUSE_BLOCK1 + 4 => mac_hi,
                // pkg QFN32 (21..23 = 0), minor revision low bits (18..20) = 4, no
                // embedded flash (27..29).
                a if a == C3_EFUSE_BLOCK1 + 12 => 4 << 18,
                a if a == C3_EFUSE_BLOCK1 + 16 => 0,
                // minor revision high bit (23) and major revision (24..25): 0.
                a if a == C3_EFUSE_BLOCK1 + 20 => 0,
                a if (C3_EFUSE + 0x30..=C3_EFUSE + 0x38).contains(&a) => 0,
                _ => return None,
            }),
        }
    }
}

/// esptool's ESP32 ROM crystal estimate is `cali × 15625 × ck8m / 40`; these make it
/// exactly 40 MHz, so the baud rate esptool asks the ROM for is the one it means.
const ESP32_CK8M: u32 = 50;
const ESP32_RTC_CALI: u32 = 2048;

/// The eFuse MAC CRC (CRC-8/MAXIM, reflected polynomial 0x8C).
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        let mut x = crc ^ b;
        for _ in 0..8 {
            x = if x & 1 != 0 { (x >> 1) ^ 0x8C } else { x >> 1 };
        }
        crc = x;
    }
    crc
}

impl std::fmt::Display for RomChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp32_crystal_estimate_is_exactly_40_mhz() {
        let cali = (RomChip::Esp32.fixed_reg(0x3FF5_F06C).unwrap() >> 7) & 0x01FF_FFFF;
        let ck8m = RomChip::Esp32.fixed_reg(ESP32_EFUSE + 16).unwrap() & 0xFF;
        assert_eq!(u64::from(cali) * 15625 * u64::from(ck8m) / 40, 40_000_000);
    }

    #[test]
    fn mac_decodes_as_esptool_reads_it() {
        for chip in RomChip::ALL {
            let (hi, lo) = match chip {
                RomChip::Esp32 => (ESP32_EFUSE + 8, ESP32_EFUSE + 4),
                RomChip::Esp32c3 => (C3_EFUSE_BLOCK1 + 4, C3_EFUSE_BLOCK1),
            };
            let mut packed = chip.fixed_reg(hi).unwrap().to_be_bytes().to_vec();
            packed.extend_from_slice(&chip.fixed_reg(lo).unwrap().to_be_bytes());
            assert_eq!(packed[2..], chip.mac());
        }
    }

    #[test]
    fn names_round_trip() {
        for chip in RomChip::ALL {
            assert_eq!(RomChip::from_name(chip.name()), Some(chip));
        }
    }
}
