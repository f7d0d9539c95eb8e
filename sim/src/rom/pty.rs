//! The loader behind a pseudo-terminal, so that esptool, espflash or `otactl flash` talk to
//! it as to a board on a USB-serial port.
//!
//! A pseudo-terminal carries no DTR/RTS, so the auto-reset circuit cannot be driven: the
//! emulated chip is always in download mode, and hosts must be told not to reset it
//! (`--before no-reset --after no-reset`). We keep the host side open ourselves, so that its
//! raw settings and unread output survive a tool closing and reopening the port, and so
//! that our end never sees a hang-up between two tools.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::unix::pipe;

use super::chip::RomChip;
use super::link::{LinkConfig, serve};
use super::loader::{Log, ROM_BAUD, RomLoader, RomStats};
use crate::flash::{FlashTiming, SECTOR, SimFlash};
use crate::pty::{LinkError, LinkGuard, Pty};
use crate::pty_device::Stop;

/// How long output may wait for a host that does not read before it is dropped.
const STALL: Duration = Duration::from_secs(1);

/// Flash timing with ROM erase throughput: the ROM erases a FLASH_BEGIN region in 64 KiB
/// blocks where it can (W25Q32JV: 150 ms a block, i.e. 9.4 ms per 4 KiB), not sector by
/// sector (45 ms each), so a flasher's erase wait is that of the chip.
pub const ROM_FLASH_TIMING: FlashTiming = FlashTiming {
    erase_sector: Duration::from_micros(150_000 / 16),
    erase_block: Duration::from_millis(150),
    program_page: Duration::from_micros(400),
    read_sector: Duration::from_micros(100),
};

/// No time at all, for runs without pacing.
pub const INSTANT_FLASH: FlashTiming = FlashTiming {
    erase_sector: Duration::ZERO,
    erase_block: Duration::ZERO,
    program_page: Duration::ZERO,
    read_sector: Duration::ZERO,
};

/// One emulated chip on a pseudo-terminal.
#[derive(Clone)]
pub struct RomPtyConfig {
    /// Where the port appears: a symlink to the pseudo-terminal's device.
    pub link: PathBuf,
    pub chip: RomChip,
    pub flash: SimFlash,
    /// Bytes take the time the current baud rate gives them.
    pub baud_pacing: bool,
    pub log: Option<Log>,
}

impl std::fmt::Debug for RomPtyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomPtyConfig")
            .field("link", &self.link)
            .field("chip", &self.chip)
            .field("baud_pacing", &self.baud_pacing)
            .finish_non_exhaustive()
    }
}

/// Why the emulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RomPtyError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("cannot open a pseudo-terminal: {0}")]
    Pty(io::Error),
    #[error("cannot start the emulator's runtime: {0}")]
    Runtime(io::Error),
    #[error("the serial link failed: {0}")]
    Io(io::Error),
}

/// Where a flash file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashOrigin {
    /// The file existed; the chip holds what it held.
    Kept,
    /// The file was created holding a blank (erased) chip.
    Created,
}

/// The chip kept in `path` (raw whole-chip image, offset = flash address, every erase and
/// program written through: the format the virtual device boots from). An existing file
/// gives the size when `size` is `None`; a missing one is created blank, of `size` or 4 MB.
pub fn flash_file(path: &Path, size: Option<usize>, timing: FlashTiming) -> io::Result<(SimFlash, FlashOrigin)> {
    let size = match (size, std::fs::metadata(path)) {
        (Some(size), _) => size,
        (None, Ok(meta)) => usize::try_from(meta.len()).unwrap_or(usize::MAX),
        (None, Err(_)) => 4 << 20,
    };
    if size == 0 || !size.is_multiple_of(SECTOR) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes is not a whole number of 4 KiB sectors"),
        ));
    }
    if let Some(flash) = SimFlash::open_file(path, size, timing)? {
        return Ok((flash, FlashOrigin::Kept));
    }
    let flash = SimFlash::new(size, timing);
    flash.persist_to(path)?;
    Ok((flash, FlashOrigin::Created))
}

/// Runs the emulator until `stop`; the link is removed on the way out.
pub fn run(cfg: &RomPtyConfig, stop: &Stop) -> Result<RomStats, RomPtyError> {
    let pty = Pty::open(ROM_BAUD).map_err(RomPtyError::Pty)?;
    let _link = LinkGuard::create(&cfg.link, &pty.path)?;
    let note = |text: &str| {
        if let Some(log) = &cfg.log {
            log(text);
        }
    };
    note(&format!(
        "{} ROM loader on {} -> {} (download mode; {})",
        cfg.chip,
        cfg.link.display(),
        pty.path.display(),
        if cfg.baud_pacing {
            "paced at the baud rate"
        } else {
            "unpaced"
        }
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RomPtyError::Runtime)?;
    let mut loader = RomLoader::new(cfg.chip, cfg.flash.clone());
    if let Some(log) = &cfg.log {
        loader = loader.with_log(log.clone());
    }
    let link = LinkConfig {
        pacing: cfg.baud_pacing,
        stall: Some(STALL),
    };
    rt.block_on(async {
        crate::time::use_real_time();
        let rx = pipe::Receiver::from_owned_fd_unchecked(pty.master.try_clone()?)?;
        let tx = pipe::Sender::from_owned_fd_unchecked(pty.master.try_clone()?)?;
        let stopped = async {
            while !stop.is_stopped() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            r = serve(&mut loader, rx, tx, link) => r,
            () = stopped => Ok(()),
        }
    })
    .map_err(RomPtyError::Io)?;
    drop(pty);
    Ok(loader.stats())
}
