//! `otactl sim rom`: an ESP32 / ESP32-C3 in download mode on a pseudo-terminal, for
//! flashing without a board (and for checking flashers against a peer that is itself
//! checked against esptool).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use sim::flash::SimFlash;
use sim::pty_device::{Stop, stop_on_signals};
use sim::rom::RomChip;
use sim::rom::pty::{FlashOrigin, INSTANT_FLASH, ROM_FLASH_TIMING, RomPtyConfig, flash_file, run};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChipArg {
    Esp32c3,
    Esp32,
}

impl From<ChipArg> for RomChip {
    fn from(c: ChipArg) -> RomChip {
        match c {
            ChipArg::Esp32c3 => RomChip::Esp32c3,
            ChipArg::Esp32 => RomChip::Esp32,
        }
    }
}

#[derive(Debug, Args)]
pub struct RomArgs {
    /// Where the serial port appears: a symlink to the pseudo-terminal, replaced if it is a
    /// stale link and removed on exit.
    #[arg(long, value_name = "PATH")]
    link: PathBuf,
    /// The chip whose ROM loader to emulate.
    #[arg(long, value_enum)]
    chip: ChipArg,
    /// Keep the flash in FILE: a raw image of the whole chip (offset = flash address),
    /// written through on every erase and program, which `otactl sim device --flash FILE`
    /// then boots. A missing FILE is created blank. Without it the flash dies with the
    /// process.
    #[arg(long, value_name = "FILE")]
    flash: Option<PathBuf>,
    /// Flash chip size, as esptool spells it (1MB … 128MB). Default: the size of an
    /// existing --flash FILE, else 4MB.
    #[arg(long, value_name = "SIZE")]
    flash_size: Option<String>,
    /// Deliver and accept bytes no faster than the current baud rate (115200, then what
    /// CHANGE_BAUDRATE sets) and take the flash chip's erase and program times, so that
    /// transfer times are those of a real board.
    #[arg(long)]
    baud_pacing: bool,
}

/// `1MB` … `128MB`.
fn parse_flash_size(text: &str) -> Option<usize> {
    let mb: usize = text.strip_suffix("MB")?.parse().ok()?;
    (mb.is_power_of_two() && mb <= 128).then_some(mb << 20)
}

pub fn run_cmd(args: RomArgs) -> Result<()> {
    let chip = RomChip::from(args.chip);
    let size = match &args.flash_size {
        None => None,
        Some(s) => Some(parse_flash_size(s).ok_or_else(|| {
            miette!(
                help = "one of 1MB, 2MB, 4MB, 8MB, 16MB, 32MB, 64MB, 128MB",
                "--flash-size {s} is not a flash chip size"
            )
        })?),
    };
    let timing = if args.baud_pacing {
        ROM_FLASH_TIMING
    } else {
        INSTANT_FLASH
    };
    let flash = match &args.flash {
        Some(path) => {
            let (flash, origin) = flash_file(path, size, timing)
                .into_diagnostic()
                .wrap_err_with(|| format!("flash file {}", path.display()))?;
            eprintln!(
                "sim rom: flash {} ({} MB, {})",
                path.display(),
                std::fs::metadata(path).map_or(0, |m| m.len() >> 20),
                match origin {
                    FlashOrigin::Kept => "kept from the last run",
                    FlashOrigin::Created => "created blank",
                }
            );
            flash
        }
        None => SimFlash::new(size.unwrap_or(4 << 20), timing),
    };
    eprintln!(
        "sim rom: always in download mode (a pseudo-terminal has no DTR/RTS to reset it); use \
         esptool with --before no-reset --after no-reset (the flasher stub is answered as such, \
         or pass --no-stub for the ROM's own commands)"
    );
    let cfg = RomPtyConfig {
        link: args.link,
        chip,
        flash,
        baud_pacing: args.baud_pacing,
        log: Some(Arc::new(|note: &str| eprintln!("sim rom: {note}"))),
    };
    let stop = Stop::new();
    stop_on_signals(stop.clone())
        .into_diagnostic()
        .wrap_err("cannot install the Ctrl-C handler")?;
    let stats = run(&cfg, &stop).map_err(|e| miette!("{}", crate::error_text::error_chain(&e)))?;
    eprintln!(
        "sim rom: stopped after {} commands ({} failed), {} sectors erased, {} bytes programmed",
        stats.commands, stats.errors, stats.sectors_erased, stats.bytes_written
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_sizes_as_esptool_spells_them() {
        assert_eq!(parse_flash_size("4MB"), Some(4 << 20));
        assert_eq!(parse_flash_size("128MB"), Some(128 << 20));
        assert_eq!(parse_flash_size("3MB"), None);
        assert_eq!(parse_flash_size("4M"), None);
        assert_eq!(parse_flash_size("0MB"), None);
    }
}
