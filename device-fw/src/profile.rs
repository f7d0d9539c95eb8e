//! Profiles: one TOML file per device setup (`profiles/*.toml`) → typed, validated settings.
//!
//! The host tools (`otactl release/flash/watch/demo`) and the virtual bench read the same
//! file, so a setting means one thing everywhere. Host only (`profile` feature: std, serde,
//! toml).
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
//! device_url = "http://ota.example.com/fleet"  # bucket base URL as devices fetch it (needed to build firmware)
//! public_keys = ["../keys/otactl.pub"]         # 1..=2 SPKI PEM files, relative to the profile (needed to build firmware)
//! bucket = "file://./dist"   # where `otactl release` publishes: file://, s3://, gs://, az://  (or --bucket)
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
//! [pins]                     # (optional table; GPIO numbers, needed to build firmware)
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
//! Every table rejects unknown keys, and so does the top level: sections that come later
//! (build, bucket) must be added to this schema before a profile may use them.
//!
//! # Errors
//!
//! A [`ProfileError`] names the file, the line and column when the text has them, the
//! dotted key (`modem.baud`), the reason and what to do, e.g.
//! `profiles/x.toml:7:8: modem.baud = 12345 is not a standard UART rate; use one of 9600,
//! 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3000000`.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

pub use crate::esp::chip::Chip;
use crate::esp::partition::{
    PartitionEntry, PartitionError, PartitionTable, SUBTYPE_APP_OTA_0, SUBTYPE_DATA_NVS, SUBTYPE_DATA_OTA,
    SUBTYPE_DATA_PHY, SUBTYPE_OTACTL_JOURNAL, TYPE_APP, TYPE_DATA, TYPE_OTACTL,
};
use crate::modem::Dialect;

/// Default `network.nat_idle_timeout_s`: conservative; the field carrier used 59 s.
pub const DEFAULT_NAT_IDLE_TIMEOUT_S: u32 = 30;
/// Default `network.safety_factor`.
pub const DEFAULT_SAFETY_FACTOR: f64 = 0.5;
/// Default `download.chunk_min`.
pub const DEFAULT_CHUNK_MIN: u32 = 4096;
/// Default `download.chunk_max`.
pub const DEFAULT_CHUNK_MAX: u32 = 512 * 1024;
/// Default `download.retries`.
pub const DEFAULT_RETRIES: u8 = 12;
/// Default `download.backoff_initial_ms`.
pub const DEFAULT_BACKOFF_INITIAL_MS: u32 = 500;
/// Default `download.backoff_max_ms`.
pub const DEFAULT_BACKOFF_MAX_MS: u32 = 30_000;
/// Highest GPIO number on the chips otactl supports (ESP32-S3 has GPIO 0..=48).
pub const MAX_GPIO: u8 = 48;
/// UART rates a profile may use (8N1).
pub const STANDARD_BAUDS: [u32; 9] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3_000_000];

/// Offset of the partition table; regions start after its sector.
pub const PARTITION_TABLE_OFFSET: u32 = 0x8000;
const FIRST_REGION: u32 = PARTITION_TABLE_OFFSET + SECTOR;
const SECTOR: u32 = 0x1000;
const APP_ALIGN: u32 = 0x10000;
const OTADATA_SIZE: u32 = 0x2000;

/// One device setup: chip, board, modem, network assumptions, download tuning, flash.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Profile {
    pub device: Device,
    pub modem: Modem,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub download: Download,
    pub flash: Flash,
    #[serde(default)]
    pub slots: Slots,
    #[serde(default)]
    pub release: Release,
    #[serde(default)]
    pub pins: Pins,
    #[serde(default, deserialize_with = "build_table")]
    pub build: Build,
    #[serde(default)]
    pub bench: Bench,
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub rollout: RolloutGate,
}

/// A duration written as people write one (`"6h"`, `"30m"`, `"90s"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Span)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})")))
    }
}

/// `[update]`: when a device checks for updates and tries them by itself
/// ([`crate::ota::schedule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Update {
    /// Time between scheduled checks; `"0s"` turns them off (console only).
    pub check_every: Span,
    /// Random delay added to each check, drawn per device, and bound of the first after boot.
    pub jitter: Span,
    /// Wait after a first failed attempt; doubles per consecutive failure.
    pub retry_after: Span,
    /// Longest wait between failed attempts.
    pub retry_max: Span,
    /// Attempts per day of awake time; 0: no limit.
    pub max_attempts_per_day: u8,
}

impl Default for Update {
    fn default() -> Self {
        let p = crate::ota::schedule::UpdatePolicy::default();
        Update {
            check_every: Span(Duration::from_micros(p.check_every_us)),
            jitter: Span(Duration::from_micros(p.jitter_us)),
            retry_after: Span(Duration::from_micros(p.retry_after_us)),
            retry_max: Span(Duration::from_micros(p.retry_max_us)),
            max_attempts_per_day: p.max_attempts_per_day,
        }
    }
}

/// `[rollout]`: the defaults `otactl rollout advance` and `otactl rollout check` judge a
/// stage by ([`crate::fleet::Thresholds`]).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutGate {
    /// Judged reports a stage needs before the rollout may advance.
    pub min_reports: u32,
    /// Highest failure rate (0 to 1) a stage may have to advance; above it the rollout halts.
    pub max_failure_rate: f64,
    /// Judged reports a halt needs at least.
    pub halt_min_reports: u32,
}

impl Default for RolloutGate {
    fn default() -> Self {
        let t = crate::fleet::Thresholds::default();
        RolloutGate {
            min_reports: t.min_reports,
            max_failure_rate: t.max_failure_rate,
            halt_min_reports: t.halt_min_reports,
        }
    }
}

impl RolloutGate {
    pub fn thresholds(&self) -> crate::fleet::Thresholds {
        crate::fleet::Thresholds {
            min_reports: self.min_reports,
            max_failure_rate: self.max_failure_rate,
            halt_min_reports: self.halt_min_reports,
        }
    }
}

/// `[bench]`: how the host finds and resets this board on the bench (`otactl flash`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bench {
    /// USB vendor and product id of the board's serial port, to pick it among several.
    pub usb_vid: Option<u16>,
    pub usb_pid: Option<u16>,
    /// USB serial number: one board among several of the same kind.
    pub usb_serial: Option<String>,
    /// How to enter download mode, as espflash spells it (`default-reset`, `no-reset`,
    /// `no-reset-no-sync`, `usb-reset`).
    pub before: Option<String>,
    /// What to do after flashing (`hard-reset`, `no-reset`, `no-reset-no-stub`,
    /// `watchdog-reset`).
    pub after: Option<String>,
}

/// espflash's `--before` spellings.
pub const BENCH_BEFORE: [&str; 4] = ["default-reset", "no-reset", "no-reset-no-sync", "usb-reset"];
/// espflash's `--after` spellings.
pub const BENCH_AFTER: [&str; 4] = ["hard-reset", "no-reset", "no-reset-no-stub", "watchdog-reset"];

/// `[build]` with each key defaulting on its own.
fn build_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Build, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Partial {
        target: Option<String>,
        package: Option<String>,
        bin: Option<String>,
        features: Option<Vec<String>>,
    }
    let p = Partial::deserialize(d)?;
    let default = Build::default();
    Ok(Build {
        target: p.target,
        package: p.package.unwrap_or(default.package),
        bin: p.bin.unwrap_or(default.bin),
        features: p.features,
    })
}

/// `[device]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The firmware product; a device takes only manifests for its own product.
    pub product: String,
    pub chip: Chip,
    /// Board name; manifests name the boards an image is for.
    pub board: String,
}

/// `[release]`: where releases of this setup are published and how devices trust them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Release {
    /// The channel devices of this setup follow (`<channel>/manifest.json`).
    pub channel: String,
    /// The bucket's public `http://` base URL as devices reach it (no TLS over AT sockets).
    pub device_url: Option<String>,
    /// Ed25519 public keys (SPKI PEM files, relative to the profile) compiled into the
    /// firmware: the current key and, during a rotation, its successor.
    pub public_keys: Vec<String>,
    /// Where `otactl release` publishes: `file:///path`, `s3://bucket/prefix`, `gs://…`,
    /// `az://…`.
    pub bucket: Option<String>,
    /// Where devices POST their outcome reports (`http://…/reports`, e.g. `otactl serve`'s);
    /// none: devices do not report.
    pub report_url: Option<String>,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            channel: DEFAULT_CHANNEL.into(),
            device_url: None,
            public_keys: Vec::new(),
            bucket: None,
            report_url: None,
        }
    }
}

/// `[pins]`: GPIOs of the modem wiring, for the firmware build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pins {
    pub modem_tx: Option<u8>,
    pub modem_rx: Option<u8>,
    pub modem_pwrkey: Option<u8>,
    pub modem_reset: Option<u8>,
    pub modem_rts: Option<u8>,
    pub modem_cts: Option<u8>,
}

impl Pins {
    fn named(&self) -> [(&'static str, Option<u8>); 6] {
        [
            ("modem_tx", self.modem_tx),
            ("modem_rx", self.modem_rx),
            ("modem_pwrkey", self.modem_pwrkey),
            ("modem_reset", self.modem_reset),
            ("modem_rts", self.modem_rts),
            ("modem_cts", self.modem_cts),
        ]
    }
}

/// The channel a profile follows when it names none.
pub const DEFAULT_CHANNEL: &str = "stable";

/// Product, board and channel names go into manifests: the manifest's rules apply.
fn manifest_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// The ESP32 variants the OTA core supports.
/// `[modem]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modem {
    #[serde(with = "DialectName")]
    pub dialect: Dialect,
    pub baud: u32,
    /// The rate bring-up raises the link to (`AT+IPR`); the modem answers at `baud` after
    /// every power-on.
    #[serde(default)]
    pub fast_baud: Option<u32>,
    pub apn: String,
    #[serde(default)]
    pub rts_cts: bool,
}

/// How [`Dialect`] is spelled in a profile.
#[derive(Deserialize)]
#[serde(remote = "Dialect", rename_all = "lowercase")]
enum DialectName {
    Sim7600,
    Sim7080,
}

/// `[network]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub nat_idle_timeout_s: u32,
    pub safety_factor: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            nat_idle_timeout_s: DEFAULT_NAT_IDLE_TIMEOUT_S,
            safety_factor: DEFAULT_SAFETY_FACTOR,
        }
    }
}

/// `[download]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Download {
    pub chunk_min: u32,
    pub chunk_max: u32,
    pub retries: u8,
    pub backoff_initial_ms: u32,
    pub backoff_max_ms: u32,
}

impl Default for Download {
    fn default() -> Self {
        Download {
            chunk_min: DEFAULT_CHUNK_MIN,
            chunk_max: DEFAULT_CHUNK_MAX,
            retries: DEFAULT_RETRIES,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
        }
    }
}

/// `[flash]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flash {
    pub size: FlashSize,
    /// SPI mode written into the image header (what the bootloader switches to).
    #[serde(default)]
    pub mode: FlashMode,
    #[serde(default)]
    pub freq: FlashFreq,
}

/// SPI flash mode, as esptool and espflash name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FlashMode {
    Qio,
    Qout,
    #[default]
    Dio,
    Dout,
}

impl FlashMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashMode::Qio => "qio",
            FlashMode::Qout => "qout",
            FlashMode::Dio => "dio",
            FlashMode::Dout => "dout",
        }
    }
}

/// SPI flash clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[non_exhaustive]
pub enum FlashFreq {
    #[serde(rename = "20m")]
    F20m,
    #[serde(rename = "26m")]
    F26m,
    #[serde(rename = "40m")]
    #[default]
    F40m,
    #[serde(rename = "80m")]
    F80m,
}

impl FlashFreq {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashFreq::F20m => "20m",
            FlashFreq::F26m => "26m",
            FlashFreq::F40m => "40m",
            FlashFreq::F80m => "80m",
        }
    }
}

/// `[build]`: how `otactl release` builds the firmware for this profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Rust target triple; defaults from the chip.
    pub target: Option<String>,
    pub package: String,
    pub bin: String,
    /// Cargo features; defaults to the chip's feature (`esp32c3`, …).
    pub features: Option<Vec<String>>,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            target: None,
            package: "device-fw".into(),
            bin: "otactl-fw".into(),
            features: None,
        }
    }
}

impl Build {
    /// The target triple: the profile's, or the chip's (Xtensa chips need Espressif's toolchain).
    pub fn target_for(&self, chip: Chip) -> &str {
        match &self.target {
            Some(t) => t,
            None => match chip {
                Chip::Esp32 => "xtensa-esp32-none-elf",
                Chip::Esp32s3 => "xtensa-esp32s3-none-elf",
                Chip::Esp32c3 => "riscv32imc-unknown-none-elf",
                Chip::Esp32c6 => "riscv32imac-unknown-none-elf",
            },
        }
    }

    /// The cargo features: the profile's, or the chip's feature of device-fw.
    pub fn features_for(&self, chip: Chip) -> Vec<String> {
        self.features.clone().unwrap_or_else(|| vec![chip.as_str().to_owned()])
    }
}

/// Flash chip size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum FlashSize {
    #[serde(rename = "2MB")]
    Mb2,
    #[serde(rename = "4MB")]
    Mb4,
    #[serde(rename = "8MB")]
    Mb8,
    #[serde(rename = "16MB")]
    Mb16,
}

impl FlashSize {
    /// Size in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            FlashSize::Mb2 => 2 << 20,
            FlashSize::Mb4 => 4 << 20,
            FlashSize::Mb8 => 8 << 20,
            FlashSize::Mb16 => 16 << 20,
        }
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}MB", self.bytes() >> 20)
    }
}

/// `[slots]`: the flash regions the OTA core and `otactl flash` need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slots {
    pub nvs: Region,
    pub otadata: Region,
    pub phy_init: Region,
    pub ota_0: Region,
    pub ota_1: Region,
    /// The device's OTA journal (download progress, failed versions): its own sectors, so
    /// that its erases never touch anything else.
    pub otastate: Region,
}

impl Default for Slots {
    /// ESP-IDF two-OTA layout without factory, for a 4 MB flash.
    fn default() -> Self {
        Slots {
            nvs: Region {
                offset: 0x9000,
                size: 0x4000,
            },
            otadata: Region {
                offset: 0xD000,
                size: 0x2000,
            },
            phy_init: Region {
                offset: 0xF000,
                size: 0x1000,
            },
            ota_0: Region {
                offset: 0x10000,
                size: 0x1E_0000,
            },
            ota_1: Region {
                offset: 0x1F_0000,
                size: 0x1E_0000,
            },
            otastate: Region {
                offset: 0x3D_0000,
                size: 0x4000,
            },
        }
    }
}

impl Slots {
    /// The OTA app slot `n` (0 or 1).
    pub fn ota(&self, n: usize) -> Option<Region> {
        match n {
            0 => Some(self.ota_0),
            1 => Some(self.ota_1),
            _ => None,
        }
    }

    /// Every region with its key name and whether it holds an app.
    fn named(&self) -> [(&'static str, Region, bool); 6] {
        [
            ("nvs", self.nvs, false),
            ("otadata", self.otadata, false),
            ("phy_init", self.phy_init, false),
            ("ota_0", self.ota_0, true),
            ("ota_1", self.ota_1, true),
            ("otastate", self.otastate, false),
        ]
    }
}

/// A flash region: byte offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub offset: u32,
    pub size: u32,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.size)
    }

    /// The byte range.
    pub fn range(&self) -> Range<u64> {
        u64::from(self.offset)..self.end()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#X}..{:#X}", self.offset, self.end())
    }
}

impl Profile {
    /// Reads and validates the profile at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ProfileError(Box::new(Details {
                origin: origin.clone(),
                kind: ProfileErrorKind::Read,
                key: None,
                line: None,
                column: None,
                reason: format!("cannot read the profile: {e}"),
                help: "check the path; profiles live in profiles/<name>.toml".into(),
            }))
        })?;
        Profile::parse(&text, &origin)
    }

    /// Parses and validates profile `text`; `origin` (usually the file name) is what errors
    /// name.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let doc = Doc {
            origin,
            text,
            tree: DeTable::parse(text).map_err(|e| syntax_error(origin, text, &e))?,
        };
        let profile: Profile = toml::from_str(text).map_err(|e| doc.serde_error(&e))?;
        profile.validate(&doc)?;
        Ok(profile)
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

    /// The driver settings for the profile's modem.
    pub fn modem_config(&self) -> Result<crate::modem::ModemConfig, crate::modem::ModemError> {
        let mut cfg = crate::modem::ModemConfig::new(self.modem.dialect, &self.modem.apn)?;
        cfg.baud = self.modem.baud;
        cfg.fast_baud = self.modem.fast_baud;
        Ok(cfg)
    }

    /// Bytes per second the UART can carry at the profile's baud (8N1: 10 bits a byte).
    pub fn uart_bytes_per_sec(&self) -> u32 {
        self.modem.baud / 10
    }

    fn validate(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        for (key, name) in [
            ("device.product", &self.device.product),
            ("device.board", &self.device.board),
            ("release.channel", &self.release.channel),
        ] {
            if !manifest_name_ok(name) {
                return Err(doc.bad_value(key, format!("{key} = {name:?} is not a usable name")));
            }
        }
        if let Some(url) = &self.release.device_url
            && let Err(e) = crate::http::Url::parse(url)
        {
            return Err(doc.bad_value(
                "release.device_url",
                format!("release.device_url = {url:?} is not a URL a device can fetch: {e}"),
            ));
        }
        if let Some(bucket) = &self.release.bucket
            && !["file://", "s3://", "gs://", "az://"]
                .iter()
                .any(|p| bucket.starts_with(p))
        {
            return Err(doc.bad_value(
                "release.bucket",
                format!("release.bucket = {bucket:?} is not a bucket URL otactl knows"),
            ));
        }
        if self.release.public_keys.len() > crate::wire::manifest::MAX_KEYS {
            return Err(doc.bad_value(
                "release.public_keys",
                format!(
                    "release.public_keys names {} keys; a device holds at most {}",
                    self.release.public_keys.len(),
                    crate::wire::manifest::MAX_KEYS
                ),
            ));
        }
        let pins = self.pins.named();
        for (i, (name, pin)) in pins.iter().enumerate() {
            let Some(pin) = pin else { continue };
            if *pin > MAX_GPIO {
                return Err(doc.bad_value(
                    &format!("pins.{name}"),
                    format!("pins.{name} = {pin} is not a GPIO number (0..={MAX_GPIO})"),
                ));
            }
            if let Some((other, _)) = pins[..i].iter().find(|(_, p)| *p == Some(*pin)) {
                return Err(doc.bad_value(
                    &format!("pins.{name}"),
                    format!("pins.{name} = {pin} is also pins.{other}"),
                ));
            }
        }
        for (key, value, allowed) in [
            ("bench.before", &self.bench.before, &BENCH_BEFORE),
            ("bench.after", &self.bench.after, &BENCH_AFTER),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                return Err(doc.bad_value(key, format!("{key} = {v:?} is not a reset mode espflash knows")));
            }
        }
        if self.bench.usb_vid.is_some() != self.bench.usb_pid.is_some() {
            return Err(doc.bad_value(
                "bench.usb_pid",
                "bench.usb_vid and bench.usb_pid go together: give both or neither".into(),
            ));
        }
        if self.modem.rts_cts && (self.pins.modem_rts.is_none() || self.pins.modem_cts.is_none()) {
            return Err(doc.bad_value(
                "modem.rts_cts",
                "modem.rts_cts = true but pins.modem_rts and pins.modem_cts are not both set".into(),
            ));
        }

        if !STANDARD_BAUDS.contains(&self.modem.baud) {
            return Err(doc.bad_value(
                "modem.baud",
                format!("modem.baud = {} is not a standard UART rate", self.modem.baud),
            ));
        }
        if let Some(fast) = self.modem.fast_baud {
            if !STANDARD_BAUDS.contains(&fast) {
                return Err(doc.bad_value(
                    "modem.fast_baud",
                    format!("modem.fast_baud = {fast} is not a standard UART rate"),
                ));
            }
            if fast <= self.modem.baud {
                return Err(doc.bad_value(
                    "modem.fast_baud",
                    format!("modem.fast_baud = {fast} is not above modem.baud = {}", self.modem.baud),
                ));
            }
        }
        let apn = &self.modem.apn;
        if apn.is_empty() || apn.len() > 63 {
            return Err(doc.bad_value(
                "modem.apn",
                format!("modem.apn has {} characters, not 1 to 63", apn.chars().count()),
            ));
        }
        if let Some(c) = apn.chars().find(|&c| !(' '..='~').contains(&c) || c == '"') {
            return Err(doc.bad_value(
                "modem.apn",
                format!("modem.apn contains {c:?}, which cannot go into AT+CGDCONT"),
            ));
        }

        let net = &self.network;
        if !(2..=7440).contains(&net.nat_idle_timeout_s) {
            return Err(doc.bad_value(
                "network.nat_idle_timeout_s",
                format!(
                    "network.nat_idle_timeout_s = {} is outside 2..=7440 s",
                    net.nat_idle_timeout_s
                ),
            ));
        }
        if !(0.1..=0.9).contains(&net.safety_factor) {
            return Err(doc.bad_value(
                "network.safety_factor",
                format!("network.safety_factor = {} is outside 0.1..=0.9", net.safety_factor),
            ));
        }

        let dl = &self.download;
        if dl.chunk_min < 256 {
            return Err(doc.bad_value(
                "download.chunk_min",
                format!("download.chunk_min = {} is below 256 bytes", dl.chunk_min),
            ));
        }
        if dl.chunk_max < dl.chunk_min || dl.chunk_max > 16 << 20 {
            return Err(doc.bad_value(
                "download.chunk_max",
                format!(
                    "download.chunk_max = {} is not within chunk_min ({})..=16 MiB",
                    dl.chunk_max, dl.chunk_min
                ),
            ));
        }
        if dl.backoff_initial_ms == 0 {
            return Err(doc.bad_value(
                "download.backoff_initial_ms",
                "download.backoff_initial_ms = 0 would retry without pause".into(),
            ));
        }
        if dl.backoff_max_ms < dl.backoff_initial_ms {
            return Err(doc.bad_value(
                "download.backoff_max_ms",
                format!(
                    "download.backoff_max_ms = {} is below download.backoff_initial_ms = {}",
                    dl.backoff_max_ms, dl.backoff_initial_ms
                ),
            ));
        }

        self.validate_slots(doc)
    }

    fn validate_slots(&self, doc: &Doc<'_>) -> Result<(), ProfileError> {
        let flash = self.flash.size;
        let regions = self.slots.named();
        for (name, region, is_app) in regions {
            let key = |field: &str| format!("slots.{name}{field}");
            if region.size == 0 || region.size % SECTOR != 0 {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.{name}.size = {:#X} is not a non-zero multiple of 4 KiB (0x1000)",
                        region.size
                    ),
                    "flash is erased in 4 KiB sectors: round the size to a multiple of 0x1000".into(),
                ));
            }
            let align = if is_app { APP_ALIGN } else { SECTOR };
            if region.offset % align != 0 {
                return Err(doc.layout(
                    &key(".offset"),
                    format!(
                        "slots.{name}.offset = {:#X} is not aligned to {}",
                        region.offset,
                        if is_app {
                            "64 KiB (0x10000), as app slots must be"
                        } else {
                            "4 KiB (0x1000)"
                        }
                    ),
                    format!("move it to {:#X}", region.offset.next_multiple_of(align)),
                ));
            }
            if region.offset < FIRST_REGION {
                return Err(doc.layout(
                    &key(".offset"),
                    format!(
                        "slots.{name}.offset = {:#X} lies below {FIRST_REGION:#X}, where the bootloader and \
                         the partition table live",
                        region.offset
                    ),
                    format!("start regions at {FIRST_REGION:#X} or later"),
                ));
            }
            if region.end() > u64::from(flash.bytes()) {
                return Err(doc.layout(
                    &key(""),
                    format!(
                        "slots.{name} ({region}) ends past the end of the {flash} flash ({:#X})",
                        flash.bytes()
                    ),
                    "shrink or move the region, or set flash.size to the chip's real size".into(),
                ));
            }
            if name == "otadata" && region.size != OTADATA_SIZE {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.otadata.size = {:#X}, but the ESP-IDF bootloader expects 0x2000",
                        region.size
                    ),
                    "set slots.otadata.size = 0x2000 (two 4 KiB sectors)".into(),
                ));
            }
            if name == "otastate" && region.size < 2 * 0x1000 {
                return Err(doc.layout(
                    &key(".size"),
                    format!(
                        "slots.otastate.size = {:#X} is less than two 4 KiB sectors",
                        region.size
                    ),
                    "set slots.otastate.size = 0x4000 (the journal needs a spare sector to move into)".into(),
                ));
            }
            if is_app && region.size < APP_ALIGN {
                return Err(doc.layout(
                    &key(".size"),
                    format!("slots.{name}.size = {:#X} is smaller than 64 KiB", region.size),
                    "an app slot must hold the whole app image: make it at least 0x10000".into(),
                ));
            }
        }
        for (i, (name, region, _)) in regions.iter().enumerate() {
            for (other, other_region, _) in &regions[..i] {
                let (a, b) = (region.range(), other_region.range());
                if a.start < b.end && b.start < a.end {
                    return Err(doc.layout(
                        &format!("slots.{name}"),
                        format!("slots.{name} ({region}) overlaps slots.{other} ({other_region})"),
                        format!(
                            "make the regions disjoint: move slots.{name} to {:#X} or later, or shrink slots.{other}",
                            b.end
                                .next_multiple_of(if name.starts_with("ota_") { 0x10000 } else { 0x1000 })
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What kind of problem a [`ProfileError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileErrorKind {
    /// The file could not be read.
    Read,
    /// The text is not valid TOML.
    Syntax,
    /// A key or table the schema does not have.
    UnknownKey,
    /// A value of the wrong TOML type (string where an integer belongs, …).
    WrongType,
    /// A value of the right type that is not allowed.
    BadValue,
    /// A required key is absent.
    MissingKey,
    /// Flash regions that are misaligned, overlap, or do not fit the flash.
    Layout,
}

/// A profile that cannot be used: where, which key, why, and what to do.
///
/// `Display` gives it all on one line: `file:line:column: reason; help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    origin: String,
    kind: ProfileErrorKind,
    key: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    reason: String,
    help: String,
}

impl ProfileError {
    /// The file (or whatever `origin` was given to [`Profile::parse`]).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    pub fn kind(&self) -> ProfileErrorKind {
        self.0.kind
    }

    /// Dotted key path (`modem.baud`, `slots.ota_1`); `None` for read and syntax errors.
    pub fn key(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// 1-based line in the file, when the problem is at a place in it.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// 1-based column (in characters), with [`ProfileError::line`].
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// What is wrong, naming the key and the value.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    /// What to do about it.
    pub fn help(&self) -> &str {
        &self.0.help
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        f.write_str(&d.origin)?;
        if let (Some(line), Some(column)) = (d.line, d.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}; {}", d.reason, d.help)
    }
}

impl std::error::Error for ProfileError {}

// ---------------------------------------------------------------------------------------
// Schema knowledge for messages.

/// Keys of each table, for "unknown key" help.
fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "device", "modem", "network", "download", "flash", "slots", "release", "pins", "build", "bench", "update",
            "rollout",
        ],
        "device" => &["product", "chip", "board"],
        "release" => &["channel", "device_url", "public_keys", "bucket", "report_url"],
        "update" => &[
            "check_every",
            "jitter",
            "retry_after",
            "retry_max",
            "max_attempts_per_day",
        ],
        "rollout" => &["min_reports", "max_failure_rate", "halt_min_reports"],
        "pins" => &[
            "modem_tx",
            "modem_rx",
            "modem_pwrkey",
            "modem_reset",
            "modem_rts",
            "modem_cts",
        ],
        "modem" => &["dialect", "baud", "fast_baud", "apn", "rts_cts"],
        "network" => &["nat_idle_timeout_s", "safety_factor"],
        "download" => &[
            "chunk_min",
            "chunk_max",
            "retries",
            "backoff_initial_ms",
            "backoff_max_ms",
        ],
        "flash" => &["size", "mode", "freq"],
        "build" => &["target", "package", "bin", "features"],
        "slots" => &["nvs", "otadata", "phy_init", "ota_0", "ota_1", "otastate"],
        t if t.starts_with("slots.") => &["offset", "size"],
        _ => &[],
    }
}

/// What a key takes, and how to write it.
fn expectation(key: &str) -> (&'static str, String) {
    let bauds = STANDARD_BAUDS.map(|b| b.to_string()).join(", ");
    let (what, help): (&str, String) = match key {
        "device" | "modem" | "network" | "download" | "flash" | "slots" | "release" | "pins" | "build" | "bench" => ("a table", format!("write it as a [{key}] section")),
        "bench.usb_vid" | "bench.usb_pid" => ("a USB id", "write it in hex, e.g. usb_vid = 0x303a, usb_pid = 0x1001".into()),
        "bench.usb_serial" => ("a string", "the serial number `otactl flash` lists for the port".into()),
        "bench.before" => ("a reset mode", format!("use one of {}", BENCH_BEFORE.join(", "))),
        "bench.after" => ("a reset mode", format!("use one of {}", BENCH_AFTER.join(", "))),
        "flash.mode" => ("a flash mode", "use one of \"qio\", \"qout\", \"dio\", \"dout\" (default \"dio\")".into()),
        "flash.freq" => ("a flash frequency", "use one of \"20m\", \"26m\", \"40m\", \"80m\" (default \"40m\")".into()),
        "release.bucket" => ("a bucket URL", "use file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix".into()),
        k if k.starts_with("build.") => ("a string (features: a list of strings)", "e.g. target = \"riscv32imc-unknown-none-elf\", features = [\"esp32c3\"]".into()),
        "device.product" => ("a product name", "use 1 to 32 lowercase letters, digits, '-', '_' or '.', e.g. product = \"field-logger\"".into()),
        "release.channel" => ("a channel name", format!("use 1 to 32 lowercase letters, digits, '-', '_' or '.' (default \"{DEFAULT_CHANNEL}\")")),
        "release.device_url" => ("an http:// URL", "give the bucket's base URL as devices reach it, e.g. device_url = \"http://ota.example.com/fleet\"".into()),
        "release.public_keys" => ("a list of key files", "list one or two SPKI PEM files made by `otactl keygen`, e.g. public_keys = [\"../keys/otactl.pub\"]".into()),
        k if k.starts_with("pins.") => ("a GPIO number", format!("use 0 to {MAX_GPIO}, each pin once")),
        "device.chip" => ("a chip name", "use one of \"esp32\", \"esp32s3\", \"esp32c3\", \"esp32c6\"".into()),
        "device.board" => ("a board name", "use 1 to 32 lowercase letters, digits, '-', '_' or '.', e.g. board = \"m5stack-core\"".into()),
        "modem.dialect" => ("a modem dialect", "use \"sim7600\" or \"sim7080\"".into()),
        "modem.baud" => ("an integer UART rate", format!("use one of {bauds}")),
        "modem.fast_baud" => ("an integer UART rate above modem.baud", format!("use one of {bauds} above modem.baud, or leave it out to stay at modem.baud")),
        "modem.apn" => ("a string", "use the APN your SIM provider gives, 1 to 63 printable ASCII characters without '\"', e.g. apn = \"internet\"".into()),
        "modem.rts_cts" => ("true or false", "set true only if RTS and CTS are wired between the chip and the modem".into()),
        "network.nat_idle_timeout_s" => ("an integer number of seconds", format!("use 2 to 7440; {DEFAULT_NAT_IDLE_TIMEOUT_S} if the carrier's NAT timeout is not known")),
        "network.safety_factor" => ("a number", format!("use 0.1 to 0.9 (default {DEFAULT_SAFETY_FACTOR})")),
        "download.chunk_min" => ("an integer number of bytes", format!("use 256 or more (default {DEFAULT_CHUNK_MIN})")),
        "download.chunk_max" => ("an integer number of bytes", format!("use chunk_min to 16777216 (default {DEFAULT_CHUNK_MAX})")),
        "download.retries" => ("an integer", format!("use 0 to 255 (default {DEFAULT_RETRIES})")),
        "download.backoff_initial_ms" => ("an integer number of milliseconds", format!("use 1 or more (default {DEFAULT_BACKOFF_INITIAL_MS})")),
        "download.backoff_max_ms" => ("an integer number of milliseconds", format!("use backoff_initial_ms or more (default {DEFAULT_BACKOFF_MAX_MS})")),
        "flash.size" => ("a flash size", "use one of \"2MB\", \"4MB\", \"8MB\", \"16MB\"".into()),
        k if k.starts_with("slots.") && (k.ends_with(".offset") || k.ends_with(".size")) => {
            ("an integer number of bytes", "write it in hex, e.g. offset = 0x10000, size = 0x1E0000".into())
        }
        k if k.starts_with("slots.") => ("a table", "write it as { offset = 0x…, size = 0x… }".into()),
        _ => ("a value", "see the schema in device-fw/src/profile.rs".into()),
    };
    (what, help)
}

/// The closest known key, if one is close enough to be a typo.
fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .copied()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------
// Locating errors in the text.

/// The text being parsed, with its spanned tree to find keys by position and back.
struct Doc<'a> {
    origin: &'a str,
    text: &'a str,
    tree: toml::Spanned<DeTable<'a>>,
}

/// One key of the document: dotted path, span of the key, span of the value.
struct Entry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

fn entries(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.push(Entry {
            path: path.clone(),
            key: k.span(),
            value: v.span(),
        });
        value_entries(v.get_ref(), &path, out);
    }
}

fn value_entries(value: &DeValue<'_>, path: &str, out: &mut Vec<Entry>) {
    match value {
        DeValue::Table(t) => entries(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(Entry {
                    path: path.clone(),
                    key: item.span(),
                    value: item.span(),
                });
                value_entries(item.get_ref(), &path, out);
            }
        }
        _ => {}
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ProfileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
    ProfileError(Box::new(Details {
        origin: origin.into(),
        kind: ProfileErrorKind::Syntax,
        key: None,
        line,
        column,
        reason: format!("TOML syntax error: {}", e.message().trim_end()),
        help: match (line, column) {
            (Some(l), Some(c)) => format!("fix the TOML at line {l}, column {c}"),
            _ => "fix the TOML syntax".into(),
        },
    }))
}

impl Doc<'_> {
    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        entries(self.tree.get_ref(), "", &mut out);
        out
    }

    /// Where `key` is written: its value's start, else nothing (a default).
    fn position_of(&self, key: &str) -> (Option<usize>, Option<usize>) {
        self.entries()
            .into_iter()
            .find(|e| e.path == key)
            .map(|e| line_col(self.text, e.value.start))
            .unzip()
    }

    fn error(
        &self,
        kind: ProfileErrorKind,
        key: &str,
        at: Option<usize>,
        reason: String,
        help: String,
    ) -> ProfileError {
        let (line, column) = match at {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                (Some(line), Some(column))
            }
            None => self.position_of(key),
        };
        ProfileError(Box::new(Details {
            origin: self.origin.into(),
            kind,
            key: Some(key.into()),
            line,
            column,
            reason,
            help,
        }))
    }

    fn bad_value(&self, key: &str, reason: String) -> ProfileError {
        self.error(ProfileErrorKind::BadValue, key, None, reason, expectation(key).1)
    }

    fn layout(&self, key: &str, reason: String, help: String) -> ProfileError {
        // A region's fields may be defaults; point at the region, or at [slots].
        let key_here = if self.position_of(key).0.is_some() {
            key
        } else {
            let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
            if self.position_of(parent).0.is_some() {
                parent
            } else {
                "slots"
            }
        };
        let at = self
            .entries()
            .into_iter()
            .find(|e| e.path == key_here)
            .map(|e| e.value.start);
        self.error(ProfileErrorKind::Layout, key, at, reason, help)
    }

    /// Turns a serde error from `toml::from_str` into one that names the key.
    fn serde_error(&self, e: &toml::de::Error) -> ProfileError {
        let message = e.message().trim_end();
        let span = e.span().unwrap_or(0..0);
        let entries = self.entries();
        // The key the error is about: an exact key match (unknown field), else the deepest
        // entry whose value spans the error (wrong type, bad value, missing field in it).
        let entry = entries.iter().find(|en| en.key == span).or_else(|| {
            entries
                .iter()
                .filter(|en| en.value.start <= span.start && span.end <= en.value.end)
                .max_by_key(|en| (en.path.matches('.').count(), en.path.len()))
        });
        let path = entry.map_or(String::new(), |en| en.path.clone());
        let at = entry.map(|en| if en.key == span { en.key.start } else { span.start });
        let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);

        if let Some(rest) = message.strip_prefix("unknown field ") {
            let name = quoted(rest).unwrap_or_default();
            let table = path
                .strip_suffix(&name)
                .map_or(path.as_str(), |t| t.trim_end_matches('.'));
            let known = known_keys(table);
            let what = if table.is_empty() { "top-level table" } else { "key" };
            let mut help = if table.is_empty() {
                format!("known top-level tables: {}", known.join(", "))
            } else {
                format!("known keys of [{table}]: {}", known.join(", "))
            };
            if let Some(close) = did_you_mean(&name, known) {
                help = format!("did you mean `{close}`? {help}");
            }
            return self.error(
                ProfileErrorKind::UnknownKey,
                &path,
                at,
                format!("unknown {what} `{path}`"),
                help,
            );
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            let name = quoted(rest).unwrap_or_default();
            let key = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let (what, how) = expectation(&key);
            let help = if path.is_empty() {
                let with = match name.as_str() {
                    "device" => "product = \"…\", chip = \"…\" and board = \"…\"",
                    "modem" => "dialect = \"…\", baud = … and apn = \"…\"",
                    "flash" => "size = \"…\" (the chip's flash size)",
                    _ => "its keys",
                };
                format!("add a [{name}] section with {with}")
            } else {
                format!("add `{name} = …` ({what}) under [{path}]: {how}")
            };
            return self.error(
                ProfileErrorKind::MissingKey,
                &key,
                at,
                format!("missing required key `{key}`"),
                help,
            );
        }
        let snippet = self.text.get(span.clone()).unwrap_or("").trim();
        let (what, help) = expectation(&path);
        if let Some(rest) = message.strip_prefix("invalid type: ") {
            let found = rest.split(", expected").next().unwrap_or(rest);
            return self.error(
                ProfileErrorKind::WrongType,
                &path,
                at,
                format!("{path} must be {what}, found {found}"),
                help,
            );
        }
        let value = if snippet.is_empty() {
            String::new()
        } else {
            format!(" = {snippet}")
        };
        let reason = if message.starts_with("unknown variant") {
            format!("{path}{value} is not a known {}", what.trim_start_matches("a "))
        } else if message.starts_with("invalid value: integer") {
            format!("{path}{value} is out of range for {what}")
        } else {
            format!("{path}{value} is not {what} ({message})")
        };
        self.error(ProfileErrorKind::BadValue, &path, at, reason, help)
    }
}

impl Profile {
    /// The download engine's settings for this profile: the otactl engine (Range chunks,
    /// overlapped flash writes) with the profile's NAT assumption, bounds and retries.
    /// The `[update]` settings as the device's schedule takes them.
    pub fn update_policy(&self) -> crate::ota::schedule::UpdatePolicy {
        let us = |s: Span| u64::try_from(s.0.as_micros()).unwrap_or(u64::MAX);
        crate::ota::schedule::UpdatePolicy {
            check_every_us: us(self.update.check_every),
            jitter_us: us(self.update.jitter),
            retry_after_us: us(self.update.retry_after),
            retry_max_us: us(self.update.retry_max),
            max_attempts_per_day: self.update.max_attempts_per_day,
        }
    }

    pub fn download_config(&self) -> crate::ota::DownloadConfig {
        crate::ota::DownloadConfig::for_profile(
            self.network.nat_idle_timeout_s,
            (self.network.safety_factor * 1000.0).round() as u32,
            self.download.chunk_min,
            self.download.chunk_max,
            self.modem.baud,
            self.download.retries,
            self.download.backoff_initial_ms,
            self.download.backoff_max_ms,
            self.modem.rts_cts,
        )
    }

    /// OTA slot `n` as the engine addresses it.
    /// The OTA journal's flash range.
    pub fn journal(&self) -> Result<crate::ota::journal::Journal, crate::ota::journal::LayoutError> {
        crate::ota::journal::Journal::new(
            self.slots.otastate.offset..self.slots.otastate.offset + self.slots.otastate.size,
        )
    }

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
