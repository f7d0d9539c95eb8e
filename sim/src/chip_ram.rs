//! RAM on the chip, read from the firmware ELF: the bench's own sizes are the host's (64-bit
//! pointers), so the figure that describes the device comes from the build for the device.

use std::path::Path;

/// The data path's RAM as the chip has it.
#[derive(Debug, Clone)]
pub struct ChipRam {
    /// The firmware's main task (the whole update path runs in it), in bytes.
    pub bytes: Option<u64>,
    /// Everything the firmware holds in static RAM (`.data` + `.bss`).
    pub static_bytes: Option<u64>,
    pub target: String,
}

/// Reads the firmware ELF (`otactl-fw` for ESP32-C3, riscv32imc, 32-bit pointers): the size
/// of the main task's future, which embassy keeps in a static pool. Everything the update
/// path holds lives in it (engine receive buffers, hash state, HTTP client with the modem
/// driver, slot writer), beside the app's own state (console, manifest, schedule), sized
/// for the largest point of its life: an upper bound on the data path, measured on the
/// real types. The UART's receive FIFO is the peripheral's; there is no heap. Without the
/// ELF (firmware not built) the figure is left out and the target says so, rather than
/// printing the host's 64-bit sizes as the chip's.
pub fn measure(path: Option<&Path>) -> ChipRam {
    let default = std::env::current_exe().ok().and_then(|exe| {
        // <target>/release/ota-bench → <target>/riscv32imc-unknown-none-elf/firmware/otactl-fw
        Some(
            exe.parent()?
                .parent()?
                .join("riscv32imc-unknown-none-elf/firmware/otactl-fw"),
        )
    });
    let Some(path) = path.map(Path::to_path_buf).or(default) else {
        return ChipRam {
            bytes: None,
            static_bytes: None,
            target: "not measured: no firmware ELF path".into(),
        };
    };
    match std::fs::read(&path).ok().and_then(|elf| elf32::main_task_ram(&elf)) {
        Some((task, statics)) => ChipRam {
            bytes: Some(task),
            static_bytes: Some(statics),
            target: "riscv32imc-unknown-none-elf (otactl-fw ELF: main task pool, the whole update task)".into(),
        },
        None => ChipRam {
            bytes: None,
            static_bytes: None,
            target: "not measured: build otactl-fw for riscv32imc-unknown-none-elf first (docs/hardware.md)".into(),
        },
    }
}

/// Just enough of ELF32 (little-endian) to read symbol and section sizes.
mod elf32 {
    fn u16_at(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?)))
    }
    fn u32_at(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?)))
    }

    /// (size of embassy's pool for the firmware's main task, `.data` + `.bss` bytes).
    pub fn main_task_ram(b: &[u8]) -> Option<(u64, u64)> {
        // ELFCLASS32, little-endian.
        if b.get(..6)? != b"\x7fELF\x01\x01" {
            return None;
        }
        let shoff = u32_at(b, 0x20)? as usize;
        let (shentsize, shnum, shstrndx) = (u16_at(b, 0x2E)? as usize, u16_at(b, 0x30)?, u16_at(b, 0x32)?);
        let section = |i: u64| {
            let at = shoff + i as usize * shentsize;
            // (name, type, offset, size, link, entsize)
            Some((
                u32_at(b, at)?,
                u32_at(b, at + 4)?,
                u32_at(b, at + 16)? as usize,
                u32_at(b, at + 20)?,
                u32_at(b, at + 24)?,
                u32_at(b, at + 36)? as usize,
            ))
        };
        let name_at = |strtab: usize, off: u64| -> Option<&[u8]> {
            let s = b.get(strtab + off as usize..)?;
            Some(&s[..s.iter().position(|&c| c == 0)?])
        };
        let shstr = section(shstrndx)?.2;
        let mut statics = 0;
        let mut pool = None;
        for i in 0..shnum {
            let (name, kind, offset, size, link, entsize) = section(i)?;
            if matches!(name_at(shstr, name)?, b".data" | b".bss") {
                statics += size;
            }
            // SHT_SYMTAB
            if kind == 2 && entsize >= 16 {
                let strtab = section(link)?.2;
                for sym in (offset..offset + size as usize).step_by(entsize) {
                    let sym_name = name_at(strtab, u32_at(b, sym)?)?;
                    let is_pool = sym_name.windows(14).any(|w| w == b"__embassy_main")
                        && sym_name.windows(4).any(|w| w == b"POOL");
                    if is_pool {
                        pool = Some(u32_at(b, sym + 8)?);
                    }
                }
            }
        }
        Some((pool?, statics))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn anything_but_an_elf32_gives_no_figure() {
        assert_eq!(super::elf32::main_task_ram(b"not an elf"), None);
        assert_eq!(
            super::elf32::main_task_ram(b"\x7fELF\x02\x01rest"),
            None,
            "ELF64 is not the chip's"
        );
    }
}
