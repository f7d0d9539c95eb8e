//! The loader behind a pseudo-terminal, so that esptool, espflash or `otactl flash` talk to
//! it as to a board on a USB-serial port.
//!
//! A pseudo-terminal carries no DTR/RTS, so the auto-reset circuit cannot be driven: the
//! emulated chip is always in download mode, and hosts must be told not to reset it
//! (`--before no-reset --after no-reset`). We keep the host side open ourselves, so that its
//! raw settings and unread output survive a tool closing and reopening the port, and so
//! that our end never sees a hang-up between two tools.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
use tokio::net::unix::pipe;

use super::chip::RomChip;
use super::link::{LinkConfig, serve};
use super::loader::{Log, ROM_BAUD, RomLoader, RomStats};
use crate::flash::{FlashTiming, SECTOR, SimFlash};
use crate::pty_device::Stop;

/// How long output may wait for a host that does not read before it is dropped.
const STALL: Duration = Duration::from_secs(1);

/// Flash timing with ROM erase throughput: the ROM erases a FLASH_BEGIN region in 64 KiB
/// blocks where it can (W25Q32JV: 150 ms a block, i.e. 9.4 ms per 4 KiB), not sector by
/// sector (45 ms each), so a flasher's erase wait is that of the chip.
pub const ROM_FLASH_TIMING: FlashTiming = FlashTiming {
    erase_sector: Duration::from_micros(150_000 / 16),
    program_page: Duration::from_micros(400),
    read_sector: Duration::from_micros(100),
};

/// No time at all, for runs without pacing.
pub const INSTANT_FLASH: FlashTiming = FlashTiming {
    erase_sector: Duration::ZERO,
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
    #[error("{} exists and is not a symlink; refusing to replace it", .0.display())]
    LinkIsNotSymlink(PathBuf),
    #[error("cannot create the port link {}: {source}", path.display())]
    Link { path: PathBuf, source: io::Error },
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
    let pty = Pty::open().map_err(RomPtyError::Pty)?;
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

/// A pseudo-terminal pair: our end (the master) and the host's, which we hold open too.
#[derive(Debug)]
struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    fn open() -> io::Result<Pty> {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        use std::os::unix::ffi::OsStrExt;
        // Close-on-exec: a process we start must not keep the chip's end alive.
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let slave = rustix::fs::open(&path, OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
        // Raw: SLIP bytes must pass as they are (no echo, no CR/LF translation, no
        // XON/XOFF, no line editing).
        let mut termios = tcgetattr(&slave)?;
        termios.make_raw();
        termios.set_speed(ROM_BAUD)?;
        tcsetattr(&slave, OptionalActions::Now, &termios)?;
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
        Ok(Pty {
            master,
            _slave: slave,
            path,
        })
    }
}

/// The symlink at the user's path; removed when dropped if it still points at our pty.
#[derive(Debug)]
struct LinkGuard {
    path: PathBuf,
    target: PathBuf,
}

impl LinkGuard {
    fn create(path: &Path, target: &Path) -> Result<LinkGuard, RomPtyError> {
        let link_err = |source| RomPtyError::Link {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(RomPtyError::LinkIsNotSymlink(path.to_owned()));
            }
            // A link left by an emulator that was killed: the path is ours to take.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(link_err(e)),
        }
        // Made beside the path and renamed over it, so the path never names nothing while
        // a stale link is replaced.
        let name = path.file_name().ok_or_else(|| {
            link_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the link path has no file name",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(link_err)?;
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(link_err(e));
        }
        Ok(LinkGuard {
            path: path.to_owned(),
            target: target.to_owned(),
        })
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if std::fs::read_link(&self.path).is_ok_and(|t| t == self.target) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
