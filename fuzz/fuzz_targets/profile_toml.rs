//! The profile loader (`Profile::parse`, feature `profile`) and the firmware build's reader
//! of the same files (`FirmwareSettings::from_text`) on arbitrary TOML text.
//!
//! Asserts: no panic, in parsing and validation and in everything the host and the
//! firmware derive from an accepted profile (download and modem settings, journal, slots,
//! partition table, durations); an accepted profile's journal and slots are usable.
#![no_main]

use std::path::Path;

use device_fw::esp::chip::Chip;
use device_fw::profile::{FirmwareSettings, KeySource, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Profile::parse(text, "fuzz.toml") {
        let _ = p.download_config();
        let _ = p.update_policy();
        let _ = p.modem_config();
        let _ = p.idle_budget();
        let _ = p.nat_idle_timeout();
        let _ = (p.backoff_initial(), p.backoff_max(), p.uart_bytes_per_sec());
        let _ = p.journal();
        for n in 0..3 {
            if let Some(slot) = p.ota_slot(n) {
                assert!(slot.size > 0, "an accepted profile has an empty slot");
            }
        }
        let _ = p.partition_table();
        let _ = p.rollout.thresholds();
        let _ = format!("{p:?}");
    } else if let Err(e) = Profile::parse(text, "fuzz.toml") {
        // Errors are rendered for people: that must not fail either.
        let _ = e.to_string();
    }
    for chip in [Chip::Esp32c3, Chip::Esp32] {
        if let Ok(s) = FirmwareSettings::from_text(text, Path::new("fuzz.toml"), chip, KeySource::Files(Vec::new())) {
            let _ = s.render();
        }
    }
});
