//! The virtual device on a real pseudo-terminal, fetching from a real HTTP origin on
//! loopback, driven the way `otactl watch` drives a board: the port opened with
//! `serialport`, command lines in, `@ota` events out, the port vanishing at the reset and
//! coming back under the same path.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use device_fw::esp::image::{CHIP_ESP32, build_test_image};
use device_fw::profile::Profile;
use device_fw::wire::console::{Event, parse_event_line};
use sim::device::{MANIFEST_PATH, release, release_key};
use sim::loopback_origin::LoopbackOrigin;
use sim::pty_device::{FactoryImage, PtyDeviceConfig, Stop, run};

const NEW_VERSION: &str = "1.1.0";

/// The field profile with small chunks, so a download reports progress often.
fn profile() -> Profile {
    let text =
        include_str!("../../profiles/m5stack-core-sim7600.toml").replace("chunk_max = 524288", "chunk_max = 16384");
    Profile::parse(&text, "m5stack-core-sim7600.toml").unwrap()
}

fn new_image(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    build_test_image(CHIP_ESP32, NEW_VERSION, "field-logger", &payload)
}

/// An origin serving a signed 1.1.0 release under `/fleet`.
fn origin_with_release(image_len: usize) -> (LoopbackOrigin, usize) {
    let origin = LoopbackOrigin::start().unwrap();
    let rel = release(new_image(image_len), NEW_VERSION);
    origin.put(MANIFEST_PATH, rel.manifest);
    origin.put(&rel.image_path, rel.image.clone());
    (origin, rel.image.len())
}

fn config(dir: &Path, origin: &LoopbackOrigin) -> PtyDeviceConfig {
    let mut cfg = PtyDeviceConfig::new(
        dir.join("ttyOTA0"),
        profile(),
        vec![release_key().verifying_key().to_bytes()],
    );
    cfg.bucket_url = origin.url("/fleet");
    cfg.time_scale = 20.0;
    cfg.factory = FactoryImage::Test {
        version: "0.1.0".into(),
    };
    cfg.log = Some(std::sync::Arc::new(|note: &str| eprintln!("device: {note}")));
    cfg
}

fn start(cfg: PtyDeviceConfig, stop: Stop) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || run(&cfg, &stop).map_err(|e| e.to_string()))
}

/// The host end, as `otactl watch` has it.
struct Host {
    link: PathBuf,
    target: PathBuf,
    port: serialport::TTYPort,
    pending: Vec<u8>,
    /// Every line read, logs and events alike.
    seen: Vec<String>,
}

#[derive(Debug)]
enum Gone {
    /// The port went away (a reset of a native-USB chip).
    Port,
    Timeout,
}

impl Host {
    /// Opens the port behind `link` once it names a pty other than `not`.
    fn open(link: &Path, not: Option<&Path>) -> Host {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(target) = std::fs::read_link(link)
                && Some(target.as_path()) != not
                && let Ok(port) = serialport::new(link.to_str().unwrap(), 115_200)
                    .timeout(Duration::from_millis(50))
                    .open_native()
            {
                return Host {
                    link: link.to_owned(),
                    target,
                    port,
                    pending: Vec::new(),
                    seen: Vec::new(),
                };
            }
            assert!(Instant::now() < deadline, "no port appeared at {}", link.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After the reset: the same path, a new pty.
    fn reopen(self) -> Host {
        let mut host = Host::open(&self.link, Some(&self.target));
        host.seen = self.seen;
        host
    }

    fn send(&mut self, line: &str) {
        self.port.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    fn line(&mut self, deadline: Instant) -> Result<String, Gone> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                self.seen.push(line.clone());
                return Ok(line);
            }
            if Instant::now() > deadline {
                return Err(Gone::Timeout);
            }
            let mut buf = [0u8; 512];
            match self.port.read(&mut buf) {
                Ok(0) => return Err(Gone::Port),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Err(Gone::Port),
            }
        }
    }

    /// Events up to and including the first that matches `stop`.
    fn until(&mut self, what: &str, stop: impl Fn(&Event<String>) -> bool) -> Result<Vec<Event<String>>, Gone> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut events = Vec::new();
        loop {
            let line = match self.line(deadline) {
                Ok(line) => line,
                Err(Gone::Timeout) => panic!("no {what} within 60 s; seen:\n{}", self.seen.join("\n")),
                Err(gone) => return Err(gone),
            };
            if let Some(event) = parse_event_line(&line) {
                let event = event.unwrap_or_else(|e| panic!("bad event line {line:?}: {e}"));
                let done = stop(&event);
                events.push(event);
                if done {
                    return Ok(events);
                }
            }
        }
    }

    fn wait_gone(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.line(deadline) {
                Ok(_) => {}
                Err(Gone::Port) => return,
                Err(Gone::Timeout) => panic!("the port did not go away; seen:\n{}", self.seen.join("\n")),
            }
        }
    }
}

#[test]
fn an_update_over_a_real_pty_through_the_reset_to_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, image_len) = origin_with_release(96 * 1024);
    let cfg = config(dir.path(), &origin);
    let link = cfg.link.clone();
    let stop = Stop::new();
    let device = start(cfg, stop.clone());

    let mut host = Host::open(&link, None);
    let start = host.until("boot", |e| matches!(e, Event::Boot { .. })).unwrap();
    assert!(
        matches!(start.last(), Some(Event::Boot { version, slot, .. }) if version == "0.1.0" && slot == "ota_0"),
        "{start:?}"
    );
    let loaded = host
        .seen
        .iter()
        .position(|l| l.contains("boot: Loaded app from partition at offset 0x10000"));
    let boot_event = host.seen.iter().position(|l| l.starts_with("@ota ")).unwrap();
    assert!(
        loaded.is_some_and(|i| i < boot_event),
        "the bootloader's lines come first:\n{}",
        host.seen.join("\n")
    );
    assert!(host.seen.iter().any(|l| l.starts_with("rst:0x1 (POWERON_RESET)")));

    host.send(&format!("ota update {}", origin.url(MANIFEST_PATH)));
    let events = host
        .until("rebooting", |e| matches!(e, Event::Rebooting { .. }))
        .unwrap();
    let progress: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { offset, total, .. } => Some((*offset, *total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() > 1, "{events:?}");
    assert_eq!(progress.last(), Some(&(image_len as u64, image_len as u64)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Activated { slot, version } if slot == "ota_1" && version == NEW_VERSION)),
        "{events:?}"
    );

    // A native-USB chip's port disappears at the reset and comes back under the same path.
    host.wait_gone();
    let mut host = host.reopen();
    let events = host
        .until("confirmed", |e| matches!(e, Event::Confirmed { .. }))
        .unwrap();
    assert!(
        matches!(&events[0], Event::Boot { version, slot, state }
            if version == NEW_VERSION && slot == "ota_1" && state == "pending_verify"),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(Event::Confirmed { version }) if version == NEW_VERSION),
        "{events:?}"
    );
    let rebooted = &host.seen[host.seen.iter().rposition(|l| l.starts_with("rst:")).unwrap()..];
    assert!(rebooted[0].contains("SW_CPU_RESET"), "{rebooted:?}");
    assert!(
        rebooted
            .iter()
            .any(|l| l.contains("boot: Loaded app from partition at offset 0x1f0000")),
        "{rebooted:?}"
    );

    host.send("version");
    let e = host.until("version", |e| matches!(e, Event::Version { .. })).unwrap();
    assert!(matches!(e.last(), Some(Event::Version { version, .. }) if version == NEW_VERSION));

    // The transcript, for a person reading the test output (`--nocapture`).
    for line in &host.seen {
        println!("{line}");
    }
    stop.stop();
    device.join().unwrap().unwrap();
    assert!(std::fs::symlink_metadata(&link).is_err(), "the link is removed on exit");
    // The whole image came over real TCP from the loopback origin.
    assert!(origin.requests().iter().any(|r| r.status == 206));
}

#[test]
fn a_download_cut_by_a_power_loss_resumes_from_the_journal_in_the_flash_file() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, image_len) = origin_with_release(160 * 1024);
    let flash_file = dir.path().join("flash.bin");
    let mut cfg = config(dir.path(), &origin);
    cfg.flash_file = Some(flash_file.clone());
    let link = cfg.link.clone();

    let stop = Stop::new();
    let device = start(cfg.clone(), stop.clone());
    let mut host = Host::open(&link, None);
    host.until("boot", |e| matches!(e, Event::Boot { .. })).unwrap();
    host.send(&format!("ota update {}", origin.url(MANIFEST_PATH)));
    let events = host
        .until(
            "progress past 32 KiB",
            |e| matches!(e, Event::Progress { offset, .. } if *offset >= 32 * 1024),
        )
        .unwrap();
    let cut_after = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { offset, .. } => Some(*offset),
            _ => None,
        })
        .max()
        .unwrap();
    // The power goes: nothing is shut down in order, the chip keeps what it had written.
    stop.stop();
    device.join().unwrap().unwrap();
    drop(host);
    assert!(std::fs::metadata(&flash_file).unwrap().len() == 16 * 1024 * 1024);
    // What a killed process leaves behind: a link to a pty that is gone.
    std::os::unix::fs::symlink("/dev/pts/no-such-pty", &link).unwrap();
    let requests_before = origin.requests().len();

    let stop = Stop::new();
    let device = start(cfg, stop.clone());
    let mut host = Host::open(&link, Some(Path::new("/dev/pts/no-such-pty")));
    let e = host.until("boot", |e| matches!(e, Event::Boot { .. })).unwrap();
    assert!(
        matches!(e.last(), Some(Event::Boot { version, state, .. }) if version == "0.1.0" && state == "valid"),
        "{e:?}"
    );
    host.send("ota status");
    let e = host.until("status", |e| matches!(e, Event::Status { .. })).unwrap();
    let Some(Event::Status {
        resume_offset: Some(journaled),
        ..
    }) = e.last().cloned()
    else {
        panic!("no interrupted download in the journal: {e:?}");
    };
    let journaled = u64::from(journaled);
    assert!(
        journaled >= cut_after && journaled < image_len as u64,
        "{journaled} vs {cut_after}"
    );

    host.send(&format!("ota update {}", origin.url(MANIFEST_PATH)));
    let events = host
        .until("rebooting", |e| matches!(e, Event::Rebooting { .. }))
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Resuming { offset } if u64::from(*offset) == journaled)),
        "{events:?}"
    );
    let first_image_request = origin.requests()[requests_before..]
        .iter()
        .find(|r| r.path.starts_with("/fleet/images/"))
        .cloned()
        .unwrap();
    assert_eq!(
        first_image_request.range,
        Some(format!("bytes={journaled}-{}", journaled + 16 * 1024 - 1))
    );
    host.wait_gone();
    let mut host = host.reopen();
    let e = host
        .until("confirmed", |e| matches!(e, Event::Confirmed { .. }))
        .unwrap();
    assert!(matches!(e.last(), Some(Event::Confirmed { version }) if version == NEW_VERSION));
    stop.stop();
    device.join().unwrap().unwrap();
}

#[test]
fn a_nat_that_forgets_sooner_than_the_profile_believes_drops_the_real_connection_and_the_download_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, image_len) = origin_with_release(128 * 1024);
    let mut cfg = config(dir.path(), &origin);
    // The profile's own chunks (one Range for the whole image, sized for its 59 s NAT)
    // behind a NAT that forgets after 5 s: the modem holds the image, the connection idles
    // while the UART drains it, and the NAT resets both ends.
    cfg.profile = Profile::parse(
        include_str!("../../profiles/m5stack-core-sim7600.toml"),
        "m5stack-core-sim7600.toml",
    )
    .unwrap();
    cfg.nat.idle_timeout = Some(Duration::from_secs(5));
    cfg.reenumerate = false;
    let link = cfg.link.clone();
    let stop = Stop::new();
    let device = start(cfg, stop.clone());

    let mut host = Host::open(&link, None);
    host.until("boot", |e| matches!(e, Event::Boot { .. })).unwrap();
    host.send("ota update");
    let events = host
        .until("rebooting", |e| matches!(e, Event::Rebooting { .. }))
        .unwrap();
    let dropped = events
        .iter()
        .filter(|e| matches!(e, Event::ConnectionDropped { .. }))
        .count();
    let resumed = events.iter().filter(|e| matches!(e, Event::Resumed { .. })).count();
    assert!(dropped >= 1 && resumed >= 1, "{events:?}");
    // Each NAT drop says how long the connection had carried no request (the NAT forgets
    // after 5 s, so at least that) and the shorter idle time the next chunks are sized for.
    let learnt: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionDropped {
                quiet_ms: Some(quiet),
                nat_idle_ms,
                ..
            } => Some((*quiet, *nat_idle_ms)),
            _ => None,
        })
        .collect();
    assert!(
        learnt.iter().any(|&(quiet, idle)| quiet >= 5_000 && idle < 59_000),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Progress { offset, total, .. } if *offset == image_len as u64 && *offset == *total)
        ),
        "{events:?}"
    );
    // Without re-enumeration the same port carries the next boot.
    let e = host
        .until("confirmed", |e| matches!(e, Event::Confirmed { .. }))
        .unwrap();
    assert!(matches!(e.last(), Some(Event::Confirmed { version }) if version == NEW_VERSION));
    for line in host
        .seen
        .iter()
        .filter(|l| l.contains("\"ev\":\"connection_dropped\"") || l.contains("resumed"))
    {
        println!("{line}");
    }
    stop.stop();
    device.join().unwrap().unwrap();
    // Each drop was a real reconnect: the resumed Range starts where the slot stood.
    let ranges: Vec<String> = origin
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/fleet/images/"))
        .filter_map(|r| r.range)
        .collect();
    assert!(ranges.len() >= 2 && !ranges[1].starts_with("bytes=0-"), "{ranges:?}");
}
