//! The local directory's compare-and-swap of a manifest: object_store's `LocalFileSystem`
//! has no `PutMode::Update`, so otactl does it under a lock (see the
//! [module docs](super#conditional-writes)).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a local release waits for another one holding the channel's lock: the lock is
/// held for a read, a small write and a rename, so a longer wait means something is stuck.
const LOCK_WAIT: Duration = Duration::from_secs(10);

pub(super) enum LocalPutError {
    Conflict(String),
    Io(io::Error),
}

impl From<io::Error> for LocalPutError {
    fn from(e: io::Error) -> Self {
        LocalPutError::Io(e)
    }
}

/// The local directory's compare-and-swap ([module docs](super#conditional-writes)):
/// replaces `path` with `bytes` only if it still holds `expected`.
pub(super) fn replace_local(path: &Path, bytes: &[u8], expected: &[u8]) -> Result<(), LocalPutError> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("the manifest path has no directory"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("the manifest path has no file name"))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{name}.lock")))?;
    let started = Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LocalPutError::Conflict(format!(
                    "another release has held the channel's lock for {} s",
                    LOCK_WAIT.as_secs()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    match fs::read(path) {
        Ok(now) if now == expected => {}
        Ok(_) => {
            return Err(LocalPutError::Conflict(
                "the channel's manifest changed after this release read it".into(),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LocalPutError::Conflict(
                "the channel's manifest was deleted after this release read it".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let staging = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&staging, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&staging);
        return Err(e.into());
    }
    // The rename is durable once the directory is.
    File::open(dir)?.sync_all()?;
    drop(lock);
    Ok(())
}
