//! Test support for the profile tests: a valid profile to break one piece at a time, and
//! checks that an error names the file, the key, the line and the reason. Included by the
//! `profile_*` tests with `#[path = "profile_support.rs"] mod support;`.
#![cfg(feature = "profile")]
#![allow(dead_code)]

use std::path::PathBuf;

use device_fw::profile::{Profile, ProfileError, ProfileErrorKind};

pub fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../profiles")
}

/// A valid profile with every table, for tests to break one piece at a time.
pub const BASE: &str = r#"
[device]
chip = "esp32"
board = "m5stack-core"
product = "field-logger"

[modem]
dialect = "sim7600"
baud = 115200
apn = "internet"

[network]
nat_idle_timeout_s = 59

[download]
chunk_min = 4096

[flash]
size = "4MB"

[slots]
ota_0 = { offset = 0x10000, size = 0x1E0000 }
ota_1 = { offset = 0x1F0000, size = 0x1E0000 }
"#;

/// `BASE` with the line starting with `old` replaced by `new` (which may be several lines).
pub fn with(old: &str, new: &str) -> String {
    let mut found = false;
    let text: Vec<String> = BASE
        .lines()
        .map(|l| {
            if !found && l.starts_with(old) {
                found = true;
                new.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "no line starts with {old:?}");
    text.join("\n")
}

pub fn parse_err(text: &str) -> ProfileError {
    match Profile::parse(text, "bench/test.toml") {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e,
    }
}

/// Checks kind, key and line, and that the message names the file, the key and each
/// `needle`.
pub fn assert_error(e: &ProfileError, kind: ProfileErrorKind, key: &str, line: Option<usize>, needles: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.kind(), kind, "{text}");
    assert_eq!(e.key(), Some(key), "{text}");
    assert_eq!(e.origin(), "bench/test.toml");
    assert!(text.starts_with("bench/test.toml"), "{text}");
    assert!(text.contains(key), "{text}");
    if let Some(line) = line {
        assert_eq!(e.line(), Some(line), "{text}");
        assert!(text.starts_with(&format!("bench/test.toml:{line}:")), "{text}");
    }
    assert!(!e.help().is_empty(), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
}
