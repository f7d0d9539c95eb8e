//! A pseudo-terminal that stands in for a chip's serial port, and the symlink that gives it
//! the stable path a host tool opens. The virtual device and the ROM loader emulator share
//! them.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};

/// A pty pair: our end (the master, non-blocking) and the host's, which we hold open too so
/// that the port exists before a host opens it and stays up between host sessions.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: Arc<OwnedFd>,
    /// The host's end (`/dev/pts/N`).
    pub path: PathBuf,
}

impl Pty {
    /// Opens a pair in raw mode at `baud`: the bytes pass as they are (no echo, no CR/LF
    /// translation, no XON/XOFF, no line editing), as on a real serial port.
    pub fn open(baud: u32) -> io::Result<Pty> {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        use std::os::unix::ffi::OsStrExt;
        // Close-on-exec: a process we start must not keep the chip's end alive.
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let slave = rustix::fs::open(&path, OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
        let mut termios = tcgetattr(&slave)?;
        termios.make_raw();
        termios.set_speed(baud)?;
        tcsetattr(&slave, OptionalActions::Now, &termios)?;
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
        Ok(Pty {
            master,
            slave: Arc::new(slave),
            path,
        })
    }
}

/// Why the link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{} exists and is not a symlink; refusing to replace it", .0.display())]
    NotSymlink(PathBuf),
    #[error("cannot create the port link {}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The symlink at the user's path; removed when dropped if it still points at our pty.
#[derive(Debug)]
pub struct LinkGuard {
    path: PathBuf,
    target: PathBuf,
}

impl LinkGuard {
    pub fn create(path: &Path, target: &Path) -> Result<LinkGuard, LinkError> {
        let link_err = |source| LinkError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(LinkError::NotSymlink(path.to_owned()));
            }
            // A link left by a process that was killed: the path is ours to take.
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
