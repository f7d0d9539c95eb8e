//! Profiles: one TOML file per device setup (`profiles/*.toml`) → typed, validated settings.
//!
//! The host tools (`otactl release/flash/watch/demo/rollout`), the virtual bench and the
//! firmware build read the same file through the same reader, so a setting means one thing
//! everywhere: what `device-fw/build.rs` compiles into a chip is what the bench runs.
//! Host only (`profile` feature: std, serde, toml, humantime).
//!
//! # Schema
//!
//! ```toml
//! [device]
//! product = "field-logger"   # 1..=32 of a-z 0-9 - _ . (manifests must match)  (required)
//! chip = "esp32"             # "esp32" | "esp32s3" | "esp32c3" | "esp32c6"   (required)
//! board = "m5stack-core"     # 1..=32 of a-z 0-9 - _ .                      (required)
//!
//! [modem]
//! dialect = "sim7600"        # "sim7600" | "sim7080"                        (required)
//! baud = 115200              # 9600 19200 38400 57600 115200 230400 460800 921600 3000000 (required)
//! fast_baud = 921600         # raised to with AT+IPR after power-on, > baud, same list (optional)
//! apn = "internet"           # 1..=63 printable ASCII, no '"'               (required)
//! rts_cts = false            # hardware flow control wired                  (default false)
//!
//! [network]                  # (optional table)
//! nat_idle_timeout_s = 30    # carrier NAT idle timeout, 2..=7440           (default 30)
//! safety_factor = 0.5        # share of that timeout one chunk may take, 0.1..=0.9 (default 0.5)
//!
//! [download]                 # (optional table)
//! chunk_min = 4096           # bytes, >= 256                                (default 4096)
//! chunk_max = 524288         # bytes, chunk_min..=16 MiB                    (default 512 KiB)
//! retries = 12               # attempts without progress, 0..=255           (default 12)
//! backoff_initial_ms = 500   # >= 1                                         (default 500)
//! backoff_max_ms = 30000     # >= backoff_initial_ms                        (default 30000)
//!
//! [flash]
//! size = "4MB"               # "2MB" | "4MB" | "8MB" | "16MB"               (required)
//! mode = "dio"               # "qio" | "qout" | "dio" | "dout"             (default "dio")
//! freq = "40m"               # "20m" | "26m" | "40m" | "80m"               (default "40m")
//!
//! [slots]                    # (optional table; each entry defaults as shown)
//! nvs      = { offset = 0x9000,   size = 0x4000 }
//! otadata  = { offset = 0xD000,   size = 0x2000 }
//! phy_init = { offset = 0xF000,   size = 0x1000 }
//! ota_0    = { offset = 0x10000,  size = 0x1E0000 }
//! ota_1    = { offset = 0x1F0000, size = 0x1E0000 }
//! otastate = { offset = 0x3D0000, size = 0x4000 }    # the OTA journal, >= two sectors
//!
//! [release]                  # (optional table)
//! channel = "stable"         # the channel devices follow, 1..=32 of a-z 0-9 - _ . (default "stable")
//! device_url = "http://ota.example.com/fleet"  # bucket base URL as devices fetch it; <url>/<channel>/manifest.json
//!                            # at most 200 bytes (needed to build firmware); https:// needs ca_certs
//! ca_certs = ["fleet-ca.pem"]  # PEM CA files the modem checks https:// servers against, relative to the
//!                            # profile, compiled in as one bundle of <= 10240 bytes (optional)
//! public_keys = ["../keys/otactl.pub"]         # 1..=2 SPKI PEM files, relative to the profile (needed to build
//!                            # firmware; OTACTL_PUBLIC_KEYS=a.pub:b.pub overrides)
//! bucket = "file://./dist"   # where `otactl release` publishes: file://, s3://, gs://, az://  (or --bucket)
//! report_url = "http://ota.example.com:8080/reports"  # where devices POST outcome reports, http://, <= 200 bytes
//!                            # (optional; without it devices do not report)
//!
//! [update]                   # (optional table) when a device checks and updates by itself
//! check_every = "6h"         # between scheduled checks; "0s" (off: console only) or 10 s..=365 days (default "6h")
//! jitter = "30m"             # random delay per check and bound of the first after boot, <= check_every (default "30m")
//! retry_after = "15m"        # wait after a failed attempt, doubling per failure; 1 s..=365 days (default "15m")
//! retry_max = "24h"          # longest wait between failed attempts, retry_after..=365 days (default "24h")
//! max_attempts_per_day = 4   # attempts per day of awake time, 0 (no limit)..=255 (default 4)
//!
//! [rollout]                  # (optional table) host only: how `otactl rollout` judges a stage
//! min_reports = 20           # judged reports a stage needs before it may advance (default 20)
//! max_failure_rate = 0.05    # highest failure share to advance, 0..=1; above it the rollout halts (default 0.05)
//! halt_min_reports = 5       # judged reports a halt needs at least (default 5)
//!
//! [bench]                    # (optional table) how `otactl flash` finds and resets the board
//! usb_vid = 0x303a           # with usb_pid: the board's USB serial port among several
//! usb_pid = 0x1001
//! usb_serial = "F4:12:FA:00:11:22"  # one board among several of the same kind
//! before = "default-reset"   # default-reset | no-reset | no-reset-no-sync | usb-reset
//! after = "hard-reset"       # hard-reset | no-reset | no-reset-no-stub | watchdog-reset
//!
//! [build]                    # (optional table) how `otactl release` builds the firmware
//! target = "riscv32imc-unknown-none-elf"       # default from the chip
//! package = "device-fw"      # (default)
//! bin = "otactl-fw"          # (default)
//! features = ["esp32c3"]     # default: the chip's name
//!
//! [pins]                     # (optional table; GPIO numbers, tx/rx/pwrkey needed to build firmware)
//! modem_tx = 21              # chip TX → modem RX
//! modem_rx = 20              # modem TX → chip RX
//! modem_pwrkey = 5           # drives the module's PWRKEY (through its transistor)
//! modem_reset = 6            # optional
//! modem_rts = 7              # with modem.rts_cts = true
//! modem_cts = 8              # with modem.rts_cts = true
//! ```
//!
//! The default `[slots]` is ESP-IDF's two-OTA layout without a factory app, sized for a
//! 4 MB flash (0x3D4000 used; 176 KiB left at the end). Regions must be 4 KiB aligned and
//! sized (app slots 64 KiB aligned), at or above 0x9000 (bootloader and partition table
//! live below), inside the flash, and must not overlap; `otadata` is two sectors (0x2000).
//!
//! Durations are written as people write them (`"90s"`, `"30m"`, `"1h 30m"`, `"6h"`).
//!
//! Every table rejects unknown keys, and so does the top level: sections that come later
//! must be added to this schema before a profile may use them.
//!
//! A firmware build (`device-fw/build.rs`, see [`FirmwareSettings`]) reads the profile by
//! the same rules and adds its own: the profile's chip is the one being built, the pins
//! exist on that chip and are not its flash or USB pins, `device_url` and the key files are
//! there. A strapping pin builds, with a warning.
//!
//! # Errors
//!
//! A [`ProfileError`] names the file, the line and column when the text has them, the
//! dotted key (`modem.baud`), the reason and what to do, e.g.
//! `profiles/x.toml:7:8: modem.baud = 12345 is not a standard UART rate; use one of 9600,
//! 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3000000`.

use std::time::Duration;

mod reader;

pub use reader::*;

// The reader's `Chip` and `Dialect` (see its documentation): on the host, the core's own.
pub use crate::esp::chip::Chip;
use crate::esp::partition::{
    PartitionEntry, PartitionError, PartitionTable, SUBTYPE_APP_OTA_0, SUBTYPE_DATA_NVS, SUBTYPE_DATA_OTA,
    SUBTYPE_DATA_PHY, SUBTYPE_OTACTL_JOURNAL, TYPE_APP, TYPE_DATA, TYPE_OTACTL,
};
use crate::modem::Dialect;

impl From<ChipName> for Chip {
    fn from(name: ChipName) -> Chip {
        match name {
            ChipName::Esp32 => Chip::Esp32,
            ChipName::Esp32s3 => Chip::Esp32s3,
            ChipName::Esp32c3 => Chip::Esp32c3,
            ChipName::Esp32c6 => Chip::Esp32c6,
        }
    }
}

impl From<Chip> for ChipName {
    fn from(chip: Chip) -> ChipName {
        match chip {
            Chip::Esp32 => ChipName::Esp32,
            Chip::Esp32s3 => ChipName::Esp32s3,
            Chip::Esp32c3 => ChipName::Esp32c3,
            Chip::Esp32c6 => ChipName::Esp32c6,
        }
    }
}

impl From<DialectName> for Dialect {
    fn from(name: DialectName) -> Dialect {
        match name {
            DialectName::Sim7600 => Dialect::Sim7600,
            DialectName::Sim7080 => Dialect::Sim7080,
        }
    }
}

impl From<Dialect> for DialectName {
    fn from(dialect: Dialect) -> DialectName {
        match dialect {
            Dialect::Sim7600 => DialectName::Sim7600,
            Dialect::Sim7080 => DialectName::Sim7080,
        }
    }
}

impl Profile {
    /// The download engine's settings: the otactl engine (Range chunks, overlapped flash
    /// writes) with the profile's NAT assumption, bounds and retries. The firmware build
    /// calls the same constructor with the same [`DownloadArgs`].
    pub fn download_config(&self) -> crate::ota::DownloadConfig {
        let a = self.download_args();
        crate::ota::DownloadConfig::for_profile(
            a.nat_idle_timeout_s,
            a.safety_permille,
            a.chunk_min,
            a.chunk_max,
            a.baud,
            a.retries,
            a.backoff_initial_ms,
            a.backoff_max_ms,
            a.flow_control,
        )
    }

    /// The `[update]` settings as the device's schedule takes them.
    pub fn update_policy(&self) -> crate::ota::schedule::UpdatePolicy {
        let u = self.update_micros();
        crate::ota::schedule::UpdatePolicy {
            check_every_us: u.check_every_us,
            jitter_us: u.jitter_us,
            retry_after_us: u.retry_after_us,
            retry_max_us: u.retry_max_us,
            max_attempts_per_day: u.max_attempts_per_day,
        }
    }

    /// The driver settings for the profile's modem.
    pub fn modem_config(&self) -> Result<crate::modem::ModemConfig, crate::modem::ModemError> {
        let mut cfg = crate::modem::ModemConfig::new(self.modem.dialect, &self.modem.apn)?;
        cfg.baud = self.modem.baud;
        cfg.fast_baud = self.modem.fast_baud;
        Ok(cfg)
    }

    /// The NAT idle timeout the profile assumes.
    pub fn nat_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.network.nat_idle_timeout_s.into())
    }

    /// How long one chunk may take to drain: idle timeout × safety factor.
    pub fn idle_budget(&self) -> Duration {
        self.nat_idle_timeout().mul_f64(self.network.safety_factor)
    }

    /// First retry delay.
    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.download.backoff_initial_ms.into())
    }

    /// Longest retry delay.
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.download.backoff_max_ms.into())
    }

    /// Bytes per second the UART can carry at the profile's baud (8N1: 10 bits a byte).
    pub fn uart_bytes_per_sec(&self) -> u32 {
        self.modem.baud / 10
    }

    /// The OTA journal's flash range.
    pub fn journal(&self) -> Result<crate::ota::journal::Journal, crate::ota::journal::LayoutError> {
        crate::ota::journal::Journal::new(
            self.slots.otastate.offset..self.slots.otastate.offset + self.slots.otastate.size,
        )
    }

    /// OTA slot `n` as the engine addresses it.
    pub fn ota_slot(&self, n: usize) -> Option<crate::ota::Slot> {
        self.slots.ota(n).map(|r| crate::ota::Slot {
            offset: r.offset,
            size: r.size,
        })
    }

    /// The partition table `[slots]` describe: what `otactl flash` writes at 0x8000 and
    /// what the virtual device is factory-flashed with, so that both hold the same table.
    pub fn partition_table(&self) -> Result<PartitionTable, PartitionError> {
        let s = &self.slots;
        let rows = [
            ("nvs", TYPE_DATA, SUBTYPE_DATA_NVS, s.nvs),
            ("otadata", TYPE_DATA, SUBTYPE_DATA_OTA, s.otadata),
            ("phy_init", TYPE_DATA, SUBTYPE_DATA_PHY, s.phy_init),
            ("ota_0", TYPE_APP, SUBTYPE_APP_OTA_0, s.ota_0),
            ("ota_1", TYPE_APP, SUBTYPE_APP_OTA_0 + 1, s.ota_1),
            ("otastate", TYPE_OTACTL, SUBTYPE_OTACTL_JOURNAL, s.otastate),
        ];
        let mut table = PartitionTable::new();
        for (label, kind, subtype, region) in rows {
            table.push(PartitionEntry::new(kind, subtype, region.offset, region.size, label)?)?;
        }
        Ok(table)
    }
}

impl RolloutGate {
    /// The thresholds `otactl rollout` judges a stage by.
    pub fn thresholds(&self) -> crate::fleet::Thresholds {
        crate::fleet::Thresholds {
            min_reports: self.min_reports,
            max_failure_rate: self.max_failure_rate,
            halt_min_reports: self.halt_min_reports,
        }
    }
}
