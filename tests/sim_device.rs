//! `otactl sim device` as a process: its console on a pseudo-terminal, opened with
//! `serialport` as `otactl watch` opens a board; killed with SIGKILL in the middle of a
//! download and started again on the same flash file, it resumes from its journal; Ctrl-C
//! stops it and removes its link.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, build_test_image};
use device_fw::wire::console::{Event, parse_event_line};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use sim::device::{MANIFEST_PATH, release, release_key};
use sim::loopback_origin::LoopbackOrigin;

const NEW_VERSION: &str = "1.1.0";

struct Bench {
    dir: tempfile::TempDir,
    origin: LoopbackOrigin,
    image_len: u64,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let pem = release_key().verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        std::fs::write(dir.path().join("release.pub"), pem).unwrap();
        // The field profile with small chunks (frequent progress) and the test's key.
        let profile = include_str!("../profiles/m5stack-core-sim7600.toml")
            .replace("chunk_max = 524288", "chunk_max = 16384")
            .replace(
                r#"public_keys = ["../keys/otactl.pub"]"#,
                r#"public_keys = ["release.pub"]"#,
            );
        assert!(profile.contains("release.pub"), "the profile's key line changed");
        std::fs::write(dir.path().join("device.toml"), profile).unwrap();

        let payload: Vec<u8> = (0..160 * 1024u32)
            .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
            .collect();
        let rel = release(
            build_test_image(CHIP_ESP32, NEW_VERSION, "field-logger", &payload),
            NEW_VERSION,
        );
        let origin = LoopbackOrigin::start().unwrap();
        origin.put(MANIFEST_PATH, rel.manifest);
        origin.put(&rel.image_path, rel.image.clone());
        Bench {
            dir,
            origin,
            image_len: rel.image.len() as u64,
        }
    }

    fn link(&self) -> PathBuf {
        self.dir.path().join("ttyOTA")
    }

    /// `otactl sim device` on the bench's profile, flash file and origin.
    fn device(&self, run: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("device-{run}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_otactl"))
            .args(["sim", "device", "--link"])
            .arg(self.link())
            .arg("--profile")
            .arg(self.dir.path().join("device.toml"))
            .arg("--flash")
            .arg(self.dir.path().join("flash.bin"))
            .args(["--bucket-url", &self.origin.url("/fleet"), "--time-scale", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn device_log(&self, run: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("device-{run}.log"))).unwrap_or_default()
    }
}

/// The host end of the console.
struct Port {
    link: PathBuf,
    target: PathBuf,
    port: serialport::TTYPort,
    pending: Vec<u8>,
    seen: Vec<String>,
}

impl Port {
    fn open(link: &Path, not: Option<&Path>) -> Port {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(target) = std::fs::read_link(link)
                && Some(target.as_path()) != not
                && let Ok(port) = serialport::new(link.to_str().unwrap(), 115_200)
                    .timeout(Duration::from_millis(50))
                    .open_native()
            {
                return Port {
                    link: link.to_owned(),
                    target,
                    port,
                    pending: Vec::new(),
                    seen: Vec::new(),
                };
            }
            assert!(Instant::now() < deadline, "no port at {}", link.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, line: &str) {
        self.port.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Events up to the first matching `stop`; `None` if the port went away first.
    fn until(&mut self, stop: impl Fn(&Event<String>) -> bool) -> Option<Vec<Event<String>>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut events = Vec::new();
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                self.seen.push(line.clone());
                if let Some(Ok(event)) = parse_event_line(&line) {
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return Some(events);
                    }
                }
            }
            assert!(Instant::now() < deadline, "timed out; seen:\n{}", self.seen.join("\n"));
            let mut buf = [0u8; 512];
            match self.port.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }
}

#[test]
fn killed_mid_download_the_device_resumes_from_its_flash_file_and_ctrl_c_removes_the_link() {
    let bench = Bench::new();
    let link = bench.link();

    let mut device = bench.device(1);
    let mut port = Port::open(&link, None);
    let boot = port.until(|e| matches!(e, Event::Boot { .. })).unwrap();
    assert!(
        matches!(boot.last(), Some(Event::Boot { version, .. }) if version == "0.1.0"),
        "{boot:?}"
    );
    // No URL: the device fetches <bucket-url>/<channel>/manifest.json.
    port.send("ota update");
    let cut_at = port
        .until(|e| matches!(e, Event::Progress { offset, .. } if *offset >= 32 * 1024))
        .unwrap_or_else(|| panic!("{}", bench.device_log(1)));
    device.kill().unwrap();
    device.wait().unwrap();
    drop(port);
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "SIGKILL leaves the stale link behind"
    );
    let cut_at = cut_at
        .iter()
        .filter_map(|e| match e {
            Event::Progress { offset, .. } => Some(*offset),
            _ => None,
        })
        .max()
        .unwrap();

    let mut device = bench.device(2);
    let mut port = Port::open(&link, None);
    port.until(|e| matches!(e, Event::Boot { .. })).unwrap();
    port.send("ota update");
    let events = port
        .until(|e| matches!(e, Event::Rebooting { .. }))
        .unwrap_or_else(|| panic!("{}", bench.device_log(2)));
    let resumed = events.iter().find_map(|e| match e {
        Event::Resuming { offset } => Some(u64::from(*offset)),
        _ => None,
    });
    assert!(
        resumed.is_some_and(|o| o >= cut_at && o < bench.image_len),
        "resumed {resumed:?} after a cut at {cut_at}: {events:?}"
    );

    // The reset: the port goes away and a new one comes up under the same path.
    assert!(port.until(|_| false).is_none());
    let old = port.target.clone();
    let mut port = Port::open(&port.link, Some(&old));
    let events = port.until(|e| matches!(e, Event::Confirmed { .. })).unwrap();
    assert!(
        matches!(&events[0], Event::Boot { version, slot, .. } if version == NEW_VERSION && slot == "ota_1"),
        "{events:?}"
    );

    let status = Command::new("kill")
        .args(["-INT", &device.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = device.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {}", bench.device_log(2));
    assert!(std::fs::symlink_metadata(&link).is_err(), "Ctrl-C removes the link");
}

#[test]
fn a_non_loopback_bucket_is_refused_before_anything_starts() {
    let bench = Bench::new();
    let out = Command::new(env!("CARGO_BIN_EXE_otactl"))
        .args(["sim", "device", "--link"])
        .arg(bench.link())
        .arg("--profile")
        .arg(bench.dir.path().join("device.toml"))
        .args(["--bucket-url", "http://192.0.2.10:8080/fleet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused to dial 192.0.2.10:8080"), "{stderr}");
    assert!(std::fs::symlink_metadata(bench.link()).is_err());
}
