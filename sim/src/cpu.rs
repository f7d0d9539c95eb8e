//! The device CPU's own work, charged as time the chip cannot spend on anything else.
//!
//! The bench runs the firmware's code on the host, where hashing and parsing cost nothing in
//! virtual time. On the chip they do: the firmware hashes with the `sha2` crate's software
//! backend (`sha2_backend_soft="compact"`, see `.cargo/config.toml`; the SHA accelerator is
//! not used), verifies the manifest's Ed25519 signature in software, and parses every AT line
//! the modem sends. The bench charges these costs where it already sees the bytes, without
//! touching the firmware's logic, as holds of the same [`Stall`] the flash uses: while one
//! runs, the device's UART end neither sends nor drains its FIFO.
//!
//! What is charged where:
//! - [`CpuFlash`]: SHA-256 of every byte programmed into, or read back from, the target
//!   slot (the engine hashes each byte it accepts; the verification reads the whole slot
//!   back and hashes it). Journal and otadata writes are charged only the flash's own time.
//! - [`CpuUart`]: one AT line's parse for every `\n` the device reads. Bytes of binary
//!   payload that happen to be `0x0A` count too (1 in 256 of them): a small overcharge.
//! - [`CpuModel::charge_verify`]: one Ed25519 verification when a manifest has arrived
//!   (the update's `ManifestFetched` event comes just before the signature check).
//! - [`CpuFlash::decode_ns_per_byte`]: decoding the compressed form (LZMA) or a patch
//!   (DEFLATE and the operations), per image byte programmed into the target slot.
//!
//! The target is an ESP32-C3 (RV32IMC, 160 MHz). No published figure for these exact
//! implementations on that core was found, so the constants are cycle counts, itemised on
//! each constant, with their reasoning in [`CpuModel::SOURCES`].

use std::time::Duration;

use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use serde::Serialize;

use crate::flash::{FlashError, SimFlash};
use crate::time::Stall;
use crate::uart::UartEnd;

/// Core clock of the modelled chip.
pub const CPU_HZ: u64 = 160_000_000;

/// Per-operation CPU costs on the chip.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuModel {
    pub sha256_ns_per_byte: f64,
    pub ed25519_verify_ms: f64,
    pub at_line_us: f64,
    /// Decoding the compressed form, per image byte.
    pub lzma_ns_per_byte: f64,
    /// Decoding and applying a patch, per image byte.
    pub patch_ns_per_byte: f64,
}

/// Where each constant comes from, as the benchmark's summary prints it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSources {
    pub sha256: &'static str,
    pub ed25519: &'static str,
    pub at_line: &'static str,
    pub lzma: &'static str,
    pub patch: &'static str,
}

impl CpuModel {
    /// ESP32-C3 at 160 MHz.
    ///
    /// SHA-256, rolled (`compact`) RV32IMC code without Zbb, so each rotate is three
    /// instructions: per round Σ0 and Σ1 11 each, Ch and Maj 4 each, the five-term sum with
    /// two loads 7, the working-variable shuffle 8, loop 2, other adds 2 (49 × 64 = 3,136);
    /// schedule σ0 + σ1 + adds + loads/stores + loop 28 × 48 = 1,344; big-endian loads of
    /// 16 words (no `rev8`) 160; state adds 16: about 4,660 instructions per 64-byte block,
    /// at 1.1 cycles each 80 cycles a byte, 500 ns at 160 MHz.
    ///
    /// Ed25519 verify (ed25519-dalek, 32-bit field backend): the double-base scalar
    /// multiplication's ~2,800 field multiplications plus the point decompression's ~265,
    /// each 10 × 10 limb products at `mul` + `mulhu` and carry handling, ~700 cycles: ~2.2 M
    /// cycles; SHA-512 of the manifest on a 32-bit core ~0.1 M; with overhead ~3.2 M cycles,
    /// 20 ms.
    ///
    /// AT line: copy and scan a line of up to 64 bytes (~10 cycles a byte, 640), compare it
    /// against the driver's response and unsolicited prefixes (~12 × 100), parse its
    /// integers and step the state machine (~560): ~2,400 cycles, 15 µs.
    ///
    /// LZMA (`ota::lzma`), counted on the C3 firmware image: 4.67 range-coder decisions
    /// per image byte, 0.42 direct bits, 0.32 literals and 0.12 matches. A decision is a
    /// call, three loads, a shift, a multiply, compare and branch (mispredicted about a
    /// third of the time), the probability's update and store, and the normalisation check,
    /// ~25 cycles: 117; direct bits ~15 each: 6; each literal's or match's own steps ~30:
    /// 13; copying ~0.7 bytes a byte at ~4: 3; about 140 cycles a byte, 875 ns.
    ///
    /// A patch (`ota::inflate` and `ota::patch`), counted on the C3 pairs: 0.21 (a
    /// configuration change) to 1.43 (a code change) Huffman code bits per image byte at
    /// ~10 cycles each (puff's bit-at-a-time decode), 0.05 to 0.25 symbols at ~40, the
    /// operations copied at ~4 cycles a byte and applied (base byte plus difference) at ~6:
    /// 13 to 34 cycles a byte, taken as 30, 190 ns.
    pub const ESP32C3: CpuModel = CpuModel {
        sha256_ns_per_byte: 500.0,
        ed25519_verify_ms: 20.0,
        at_line_us: 15.0,
        lzma_ns_per_byte: 875.0,
        patch_ns_per_byte: 190.0,
    };

    pub const SOURCES: CpuSources = CpuSources {
        sha256: "cycle count: rolled SHA-256 on RV32IMC without Zbb, ~4,660 instructions per 64-byte block at CPI 1.1 = 80 cycles/B at 160 MHz (sim/src/cpu.rs)",
        ed25519: "cycle count: ed25519-dalek 32-bit backend verify, ~3,065 field multiplications at ~700 cycles plus SHA-512 and overhead = ~3.2 M cycles at 160 MHz (sim/src/cpu.rs)",
        at_line: "cycle count: line scan ~640 + prefix matching ~1,200 + integer parse and state ~560 = ~2,400 cycles at 160 MHz (sim/src/cpu.rs)",
        lzma: "cycle count: 4.67 range-coder decisions per image byte (counted on the C3 image) at ~25 cycles, plus direct bits, symbol steps and copies = ~140 cycles/B at 160 MHz (sim/src/cpu.rs)",
        patch: "cycle count: 0.2 to 1.4 Huffman code bits per image byte (counted on the C3 pairs) at ~10 cycles, symbols, the operations' copy and apply = ~30 cycles/B at 160 MHz (sim/src/cpu.rs)",
    };

    fn sha256(&self, bytes: usize) -> Duration {
        Duration::from_nanos((bytes as f64 * self.sha256_ns_per_byte).round() as u64)
    }

    fn lines(&self, lines: usize) -> Duration {
        Duration::from_nanos((lines as f64 * self.at_line_us * 1e3).round() as u64)
    }

    /// Holds `cpu` for one signature verification.
    pub fn charge_verify(&self, cpu: &Stall) {
        cpu.hold(Duration::from_nanos((self.ed25519_verify_ms * 1e6).round() as u64));
    }
}

/// The bench's flash as the device's update path uses it, charging SHA-256 for the bytes
/// programmed into and read back from `slot` (offset, length).
#[derive(Debug)]
pub struct CpuFlash {
    pub flash: SimFlash,
    pub slot: (u32, u32),
    /// The running slot, when an update hashes it (a patch's base is checked before it is
    /// used); its reads are charged as hashed too, which over-counts the base bytes a patch
    /// then reads to add to.
    pub base: Option<(u32, u32)>,
    pub model: CpuModel,
    /// The decoder's CPU per image byte programmed into the slot: 0 for a raw download,
    /// else [`CpuModel::lzma_ns_per_byte`] or [`CpuModel::patch_ns_per_byte`].
    pub decode_ns_per_byte: f64,
}

impl CpuFlash {
    /// Holds the CPU for the hash of the part of `[offset, offset + len)` inside the slot
    /// (and the base), and waits it out as the chip's blocking code would.
    async fn charge(&self, offset: u32, len: usize) {
        let (lo, hi) = (u64::from(offset), u64::from(offset) + len as u64);
        let within = |(start, size): (u32, u32)| {
            let end = u64::from(start) + u64::from(size);
            hi.min(end).saturating_sub(lo.max(u64::from(start)))
        };
        let inside = within(self.slot) + self.base.map_or(0, within);
        if inside > 0 {
            let cpu = self.flash.cpu();
            cpu.hold(self.model.sha256(inside as usize));
            cpu.wait().await;
        }
    }
}

impl ErrorType for CpuFlash {
    type Error = FlashError;
}

impl ReadNorFlash for CpuFlash {
    const READ_SIZE: usize = <SimFlash as ReadNorFlash>::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash.read(offset, bytes).await?;
        self.charge(offset, bytes.len()).await;
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for CpuFlash {
    const WRITE_SIZE: usize = <SimFlash as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <SimFlash as NorFlash>::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.flash.erase(from, to).await
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.flash.write(offset, bytes).await?;
        let (start, size) = self.slot;
        if self.decode_ns_per_byte > 0.0 && offset >= start && offset < start + size {
            let ns = bytes.len() as f64 * self.decode_ns_per_byte;
            self.flash.cpu().hold(Duration::from_nanos(ns.round() as u64));
        }
        self.charge(offset, bytes.len()).await;
        Ok(())
    }
}

/// The device's UART end, charging one AT line's parse for every `\n` the device reads.
#[derive(Debug)]
pub struct CpuUart {
    pub uart: UartEnd,
    pub cpu: Stall,
    pub model: CpuModel,
}

/// The modem driver's rate hook for [`CpuUart`]: retunes the UART inside.
pub fn retune(end: &mut CpuUart, baud: u32) -> bool {
    crate::uart::retune(&mut end.uart, baud)
}

impl embedded_io_async::ErrorType for CpuUart {
    type Error = <UartEnd as embedded_io_async::ErrorType>::Error;
}

impl embedded_io_async::Read for CpuUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.uart.read(buf).await?;
        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
        if lines > 0 {
            self.cpu.hold(self.model.lines(lines));
            self.cpu.wait().await;
        }
        Ok(n)
    }
}

impl embedded_io_async::Write for CpuUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.uart.write(buf).await
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.uart.flush().await
    }
}
