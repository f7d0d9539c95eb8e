//! `otactl watch` against a scripted device on a real pseudo-terminal: the trigger, event
//! lines among log lines and noise, a reset that takes the port away and brings it back
//! under the same path, and one exit code per outcome.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};

/// The device end of a console: the pty master, and the symlink `otactl watch` opens.
struct FakeDevice {
    master: PtyMaster,
    link: PathBuf,
}

impl FakeDevice {
    fn plug(link: &Path) -> Self {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let target = ptsname_r(&master).unwrap();
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(target, link).unwrap();
        FakeDevice {
            master,
            link: link.to_owned(),
        }
    }

    /// A reset of a USB-Serial-JTAG device: the port vanishes, then enumerates again. Like
    /// the firmware, it first gives the host a moment to read the last lines: a hang-up
    /// discards what the host has not read yet.
    fn replug(self, away: Duration) -> Self {
        std::thread::sleep(Duration::from_millis(300));
        let link = self.link.clone();
        drop(self);
        let _ = std::fs::remove_file(&link);
        std::thread::sleep(away);
        FakeDevice::plug(&link)
    }

    /// Writes all of `text`, waiting while the terminal's buffer is full (the master is
    /// non-blocking, and a stack dump is longer than the buffer).
    fn say(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            match self.master.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("writing to the terminal: {e}"),
            }
        }
        self.master.flush().unwrap();
    }

    fn event(&mut self, json: &str) {
        self.say(&format!("@ota {json}\r\n"));
    }

    /// Reads what the host sent until `needle` shows up.
    fn expect_command(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut buf = [0u8; 256];
            match self.master.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Nothing yet, or no one has the terminal open yet.
                Err(e) if matches!(e.raw_os_error(), Some(11 | 5)) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("reading the host's command: {e}"),
            }
            if String::from_utf8_lossy(&got).contains(needle) {
                return;
            }
        }
        panic!("no {needle:?} from the host; got {:?}", String::from_utf8_lossy(&got));
    }
}

fn watch(link: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_otactl"))
        .arg("watch")
        .arg("--port")
        .arg(link)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn result_of(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["result"].clone()
}

#[test]
fn an_update_through_a_reset_ends_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyACM0");
    let mut dev = FakeDevice::plug(&link);
    let log = dir.path().join("console.log");
    let child = watch(
        &link,
        &[
            "--trigger",
            "--expect-version",
            "1.1.0",
            "--json",
            "--timeout",
            "30s",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    dev.expect_command("ota update\r\n");
    dev.say("I (312) boot: ESP-IDF v5.4 2nd stage bootloader\r\n");
    dev.say("\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{e}\u{f}\r\n");
    dev.event(r#"{"ev":"manifest_fetched","url":"http://127.0.0.1/m.json","bytes":664}"#);
    dev.event(r#"{"ev":"manifest_verified","version":"1.1.0","size":61776,"key":0}"#);
    // An event line split across two writes, and one that does not parse.
    dev.say(r#"@ota {"ev":"progress","offset":30000,"#);
    std::thread::sleep(Duration::from_millis(50));
    dev.say("\"total\":61776,\"rate\":9000,\"chunk\":30000}\r\n");
    dev.say("@ota {\"ev\":\"progress\",\"offset\":\r\n");
    // A drop as earlier firmware reports it, then one that says how long the connection
    // had been quiet.
    dev.event(r#"{"ev":"connection_dropped","offset":30000,"error":"socket closed"}"#);
    dev.event(r#"{"ev":"resumed","offset":30000}"#);
    dev.event(
        r#"{"ev":"connection_dropped","offset":45000,"error":"socket closed","quiet_ms":31250,"nat_idle_ms":28125}"#,
    );
    dev.event(r#"{"ev":"resumed","offset":45000}"#);
    dev.event(r#"{"ev":"progress","offset":61776,"total":61776,"rate":9100,"chunk":30000}"#);
    dev.event(r#"{"ev":"verify_ok","version":"1.1.0"}"#);
    dev.event(r#"{"ev":"activated","slot":"ota_1","version":"1.1.0"}"#);
    dev.event(r#"{"ev":"rebooting","reason":"update activated"}"#);
    let mut dev = dev.replug(Duration::from_millis(700));
    std::thread::sleep(Duration::from_millis(300));
    dev.event(r#"{"ev":"boot","version":"1.1.0","slot":"ota_1","state":"pending_verify"}"#);
    dev.event(r#"{"ev":"confirmed","version":"1.1.0"}"#);

    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result = result_of(&stdout);
    assert_eq!(result["outcome"], "confirmed", "{result}");
    assert_eq!(result["version"], "1.1.0");
    assert_eq!(
        (result["drops"].as_u64(), result["resumes"].as_u64()),
        (Some(2), Some(2)),
        "{stdout}"
    );
    // What the carrier's NAT did, for a fleet to collect.
    assert_eq!(result["shortest_quiet_drop_ms"], 31250, "{result}");
    assert_eq!(result["nat_idle_ms"], 28125, "{result}");
    for kind in ["\"port_lost\"", "\"port_reopened\"", "\"unparsed\""] {
        assert!(stdout.contains(kind), "{kind} missing: {stdout}");
    }
    // Every event line came through as JSON; the raw console, noise included, is in the log.
    assert!(stdout.contains(r#""ev":"activated""#), "{stdout}");
    let raw = std::fs::read(&log).unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("2nd stage bootloader"));
}

#[test]
fn each_bad_ending_has_its_exit_code() {
    let cases: [(&[&str], u8, &str); 4] = [
        (
            &[r#"{"ev":"manifest_rejected","reason":"bad-signature","message":"does not verify"}"#],
            4,
            "rejected",
        ),
        (
            &[r#"{"ev":"update_failed","reason":"download-gave-up","message":"no progress"}"#],
            5,
            "download_failed",
        ),
        (
            &[
                r#"{"ev":"activated","slot":"ota_1","version":"1.1.0"}"#,
                r#"{"ev":"boot","version":"1.0.0","slot":"ota_0","state":"valid"}"#,
            ],
            3,
            "rolled_back",
        ),
        (
            &[r#"{"ev":"self_test_failed","message":"origin unreachable"}"#],
            3,
            "rolled_back",
        ),
    ];
    for (events, want, outcome) in cases {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("tty");
        let mut dev = FakeDevice::plug(&link);
        let child = watch(&link, &["--trigger", "--json", "--timeout", "20s"]);
        dev.expect_command("ota update");
        for e in events {
            dev.event(e);
        }
        let (code, stdout, stderr) = finish(child);
        assert_eq!(code, i32::from(want), "{events:?}\n{stdout}\n{stderr}");
        assert_eq!(result_of(&stdout)["outcome"], outcome);
    }
}

#[test]
fn a_panic_stack_dump_becomes_one_note_and_stays_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("tty");
    let log = dir.path().join("console.log");
    let mut dev = FakeDevice::plug(&link);
    let child = watch(
        &link,
        &[
            "--trigger",
            "--json",
            "--timeout",
            "20s",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    dev.expect_command("ota update");
    dev.event(r#"{"ev":"activated","slot":"ota_1","version":"1.1.0"}"#);
    // The new app panics before it confirms (esp-backtrace without frame pointers), the
    // chip resets and the bootloader goes back to the old app.
    dev.say("\r\n====================== PANIC ======================\r\n");
    dev.say("panicked at device-fw/src/app.rs:1:1:\r\nself-test exploded\r\n\r\n");
    let stack: String = (0..8192).map(|i| format!("{:02x}", i % 251)).collect();
    dev.say(&format!("STACKDUMP: 4200a1b2 {stack}\r\n"));
    dev.event(r#"{"ev":"boot","version":"1.0.0","slot":"ota_0","state":"valid"}"#);

    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert_eq!(result_of(&stdout)["outcome"], "rolled_back");
    let note = stdout
        .lines()
        .find(|l| l.contains(r#""watch":"stack_dump""#))
        .unwrap_or_else(|| panic!("no stack_dump note: {stdout}"));
    assert!(
        note.contains("pc 0x4200a1b2") && note.contains("8192-byte stack dump"),
        "{note}"
    );
    assert!(note.contains(log.to_str().unwrap()), "{note}");
    assert!(stdout.lines().all(|l| l.len() < 1000), "the dump itself is not echoed");
    let raw = String::from_utf8(std::fs::read(&log).unwrap()).unwrap();
    assert!(raw.contains(&stack), "the log keeps the whole dump");
}

#[test]
fn silence_times_out_and_a_missing_port_is_a_port_error() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("tty");
    let _dev = FakeDevice::plug(&link);
    let (code, stdout, _) = finish(watch(&link, &["--json", "--timeout", "1s"]));
    assert_eq!(code, 6, "{stdout}");
    assert_eq!(result_of(&stdout)["outcome"], "timeout");

    let (code, _, stderr) = finish(watch(&dir.path().join("nothing-here"), &["--timeout", "5s"]));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("cannot open"), "{stderr}");

    // A device that resets and never comes back.
    let gone = dir.path().join("gone");
    let mut dev = FakeDevice::plug(&gone);
    let child = watch(
        &gone,
        &["--trigger", "--json", "--timeout", "20s", "--reopen-wait", "1s"],
    );
    dev.expect_command("ota update");
    dev.event(r#"{"ev":"rebooting","reason":"update activated"}"#);
    std::thread::sleep(Duration::from_millis(200));
    drop(dev);
    let _ = std::fs::remove_file(&gone);
    let (code, stdout, _) = finish(child);
    assert_eq!(code, 7, "{stdout}");
    assert!(
        result_of(&stdout)["message"]
            .as_str()
            .unwrap()
            .contains("did not come back")
    );
}
