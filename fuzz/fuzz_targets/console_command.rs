//! The device's console command parser (`ota update <url>`, `ota defer 30`, …) on any line.
//!
//! Asserts: no panic; a URL it returns borrows from the line; a parsed command, written
//! back as the host writes it, parses to the same command (host and device cannot
//! disagree on a spelling).
#![no_main]

use device_fw::wire::console::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(Some(cmd)) = Command::parse(line) {
        if let Command::Update { manifest_url: Some(u) } | Command::Check { manifest_url: Some(u) } = cmd {
            assert!(otactl_fuzz::within(line, u.as_bytes()), "URL outside the line");
        }
        let written = cmd.to_string();
        let again = Command::parse(written.as_bytes())
            .expect("a written command parses")
            .expect("a written command is not blank");
        assert_eq!(again, cmd, "written {written:?}");
    }
});
