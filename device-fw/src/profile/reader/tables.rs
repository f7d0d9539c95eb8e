//! The tables of a profile, their keys and types, and the value of every key a profile
//! leaves out.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::names::{ChipName, DialectName};
use super::{Chip, Dialect};

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
/// Default `update.check_every`: four checks a day keep a fleet current within hours
/// without much airtime (a check is one small signed manifest).
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Default `update.jitter`.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(30 * 60);
/// Default `update.retry_after`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Default `update.retry_max`.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(24 * 3600);
/// Default `update.max_attempts_per_day`.
pub const DEFAULT_MAX_ATTEMPTS_PER_DAY: u8 = 4;
/// Default `rollout.min_reports`.
pub const DEFAULT_MIN_REPORTS: u32 = 20;
/// Default `rollout.max_failure_rate`.
pub const DEFAULT_MAX_FAILURE_RATE: f64 = 0.05;
/// Default `rollout.halt_min_reports`: one early rollback of two is noise, not a reason to
/// stop a release.
pub const DEFAULT_HALT_MIN_REPORTS: u32 = 5;
/// The channel a profile follows when it names none.
pub const DEFAULT_CHANNEL: &str = "stable";
/// Highest GPIO number on the chips otactl supports (ESP32-S3 has GPIO 0..=48).
pub const MAX_GPIO: u8 = 48;
/// UART rates a profile may use (8N1).
pub const STANDARD_BAUDS: [u32; 9] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3_000_000];
/// Release keys a firmware holds at most: the current one and its successor during a
/// rotation (the manifest carries at most this many signatures).
pub const MAX_KEYS: usize = 2;
/// Longest URL a device keeps from its profile (manifest URL, report URL): the HTTP
/// client's URL buffer is larger, and the manifest's relative `image` path must still fit
/// after the manifest URL's directory.
pub const MAX_DEVICE_URL: usize = 200;
/// Offset of the partition table; regions start after its sector.
pub const PARTITION_TABLE_OFFSET: u32 = 0x8000;

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

/// `[device]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The firmware product; a device takes only manifests for its own product.
    pub product: String,
    #[serde(deserialize_with = "chip")]
    pub chip: Chip,
    /// Board name; manifests name the boards an image is for.
    pub board: String,
}

fn chip<'de, D: Deserializer<'de>>(d: D) -> Result<Chip, D::Error> {
    ChipName::deserialize(d).map(Chip::from)
}

/// `[modem]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modem {
    #[serde(deserialize_with = "dialect")]
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

fn dialect<'de, D: Deserializer<'de>>(d: D) -> Result<Dialect, D::Error> {
    DialectName::deserialize(d).map(Dialect::from)
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

/// A duration written as people write one (`"6h"`, `"30m"`, `"90s"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// Whole microseconds, as the device's schedule counts; saturating, though validation
    /// keeps every span far below the limit.
    pub fn micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Span)
            .map_err(|e| serde::de::Error::custom(format!("{e}; write e.g. \"90s\", \"30m\", \"6h\"")))
    }
}

/// `[update]`: when a device checks for updates and tries them by itself (the device's
/// `ota::schedule`).
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
        Update {
            check_every: Span(DEFAULT_CHECK_EVERY),
            jitter: Span(DEFAULT_JITTER),
            retry_after: Span(DEFAULT_RETRY_AFTER),
            retry_max: Span(DEFAULT_RETRY_MAX),
            max_attempts_per_day: DEFAULT_MAX_ATTEMPTS_PER_DAY,
        }
    }
}

/// `[rollout]`: the defaults `otactl rollout advance` and `otactl rollout check` judge a
/// stage by (the host's `fleet::Thresholds`).
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
        RolloutGate {
            min_reports: DEFAULT_MIN_REPORTS,
            max_failure_rate: DEFAULT_MAX_FAILURE_RATE,
            halt_min_reports: DEFAULT_HALT_MIN_REPORTS,
        }
    }
}

/// `[release]`: where releases of this setup are published and how devices trust them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Release {
    /// The channel devices of this setup follow (`<channel>/manifest.json`).
    pub channel: String,
    /// The bucket's base URL as devices reach it: `http://`, or `https://` through the
    /// modem's own TLS (then `ca_certs` names what the server is checked against).
    pub device_url: Option<String>,
    /// CA certificates (PEM files, relative to the profile) compiled into the firmware as
    /// one bundle: the `https://` trust anchors the modem checks servers against (a fleet's
    /// own CA, or the public roots of its bucket's host).
    pub ca_certs: Vec<String>,
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
            ca_certs: Vec::new(),
            bucket: None,
            report_url: None,
        }
    }
}

impl Profile {
    /// `<device_url>/<channel>/manifest.json`: where a device of this setup looks for
    /// releases; `None` without `release.device_url`.
    pub fn manifest_url(&self) -> Option<String> {
        let base = self.release.device_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/{}/manifest.json", self.release.channel))
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
    /// Every pin with its key under `[pins]`.
    pub(super) fn named(&self) -> [(&'static str, Option<u8>); 6] {
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
    /// The target triple: the profile's, or the chip's.
    pub fn target_for(&self, chip: Chip) -> &str {
        match &self.target {
            Some(t) => t,
            None => ChipName::from(chip).target(),
        }
    }

    /// The cargo features: the profile's, or the chip's feature of device-fw (named as
    /// the chip).
    pub fn features_for(&self, chip: Chip) -> Vec<String> {
        self.features
            .clone()
            .unwrap_or_else(|| vec![ChipName::from(chip).as_str().to_owned()])
    }
}

/// `[build]` with each key defaulting on its own.
fn build_table<'de, D: Deserializer<'de>>(d: D) -> Result<Build, D::Error> {
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
    pub(super) fn named(&self) -> [(&'static str, Region, bool); 6] {
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
