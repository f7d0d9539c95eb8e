//! Jobs held right before their manifest write (`test_hold` in src/channel.rs), so that
//! several have read the same manifest before any writes: a race that is not left to luck.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Jobs waiting at their manifest write.
pub struct Held {
    dir: PathBuf,
    go: PathBuf,
    children: Vec<Child>,
}

fn ready(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".ready"))
        .count()
}

/// Starts `commands` (run in `dir`) and returns once every one of them is held.
pub fn hold(dir: &Path, commands: Vec<Command>) -> Held {
    let go = dir.join("go");
    let children: Vec<Child> = commands
        .into_iter()
        .map(|mut cmd| {
            cmd.env("OTACTL_TEST_HOLD", &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready(dir) < children.len() {
        assert!(Instant::now() < deadline, "the jobs never got to their manifest write");
        std::thread::sleep(Duration::from_millis(10));
    }
    Held {
        dir: dir.to_owned(),
        go,
        children,
    }
}

impl Held {
    /// Lets them all write at once; their outputs, in the order they were given.
    pub fn release(self) -> Vec<Output> {
        fs::write(&self.go, b"").unwrap();
        let outputs = self
            .children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for f in fs::read_dir(&self.dir).unwrap() {
            let path = f.unwrap().path();
            if path.to_string_lossy().ends_with(".ready") || path == self.go {
                fs::remove_file(path).unwrap();
            }
        }
        outputs
    }
}
