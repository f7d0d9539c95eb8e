//! What a firmware compiles in from its profile, and the Rust source that carries it.
//!
//! A device has no file system to read a profile from, so its settings are fixed when it is
//! built. [`FirmwareSettings`] is that set of values, read by the same rules as the host's
//! [`Profile`] plus what only a firmware needs (its chip's GPIO rules, the base URL, the
//! key bytes); [`FirmwareSettings::render`] writes it as the constants the firmware binary
//! includes. The build script and the tests call the same two functions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::error::{Details, ProfileError, ProfileErrorKind};
use super::locate::Doc;
use super::names::{ChipName, DialectName};
use super::tables::{MAX_KEYS, Profile};
use super::{Chip, Dialect};

/// Names the profile a firmware is built from (relative to the workspace root).
pub const PROFILE_ENV: &str = "OTACTL_PROFILE";
/// Names the release public key files, separated by ':'; wins over `release.public_keys`.
pub const KEYS_ENV: &str = "OTACTL_PUBLIC_KEYS";

/// The arguments of the core's `DownloadConfig::for_profile`, in its order: the one
/// formula both the bench and the chip run the engine with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadArgs {
    pub nat_idle_timeout_s: u32,
    /// `network.safety_factor` in thousandths.
    pub safety_permille: u32,
    pub chunk_min: u32,
    pub chunk_max: u32,
    pub baud: u32,
    pub retries: u8,
    pub backoff_initial_ms: u32,
    pub backoff_max_ms: u32,
    /// RTS/CTS wired: the engine may erase while the modem's reply arrives.
    pub flow_control: bool,
}

/// `[update]` in the units of the core's `ota::schedule::UpdatePolicy`, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateMicros {
    pub check_every_us: u64,
    pub jitter_us: u64,
    pub retry_after_us: u64,
    pub retry_max_us: u64,
    pub max_attempts_per_day: u8,
}

impl Profile {
    /// The download engine's inputs from `[network]`, `[download]` and `[modem]`.
    pub fn download_args(&self) -> DownloadArgs {
        DownloadArgs {
            nat_idle_timeout_s: self.network.nat_idle_timeout_s,
            safety_permille: (self.network.safety_factor * 1000.0).round() as u32,
            chunk_min: self.download.chunk_min,
            chunk_max: self.download.chunk_max,
            baud: self.modem.baud,
            retries: self.download.retries,
            backoff_initial_ms: self.download.backoff_initial_ms,
            backoff_max_ms: self.download.backoff_max_ms,
            flow_control: self.modem.rts_cts,
        }
    }

    /// `[update]` as the device's schedule counts it.
    pub fn update_micros(&self) -> UpdateMicros {
        let u = &self.update;
        UpdateMicros {
            check_every_us: u.check_every.micros(),
            jitter_us: u.jitter.micros(),
            retry_after_us: u.retry_after.micros(),
            retry_max_us: u.retry_max.micros(),
            max_attempts_per_day: u.max_attempts_per_day,
        }
    }
}

/// Where a firmware's release keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// `release.public_keys`, relative to the profile file.
    Profile,
    /// Files named outside the profile ([`KEYS_ENV`]), so that CI and release machines
    /// can build with keys the profile does not know.
    Files(Vec<PathBuf>),
}

/// The modem's GPIOs as the firmware takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwarePins {
    pub tx: u8,
    pub rx: u8,
    pub pwrkey: u8,
    pub reset: Option<u8>,
    /// Only with `modem.rts_cts`: without flow control the UART leaves them alone.
    pub rts: Option<u8>,
    pub cts: Option<u8>,
}

/// Everything a firmware compiles in from its profile.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FirmwareSettings {
    /// The profile's file name, for the start-up log line.
    pub profile_name: String,
    pub chip: Chip,
    pub product: String,
    pub board: String,
    pub channel: String,
    /// `<device_url>/<channel>/manifest.json`.
    pub manifest_url: String,
    pub report_url: Option<String>,
    pub dialect: Dialect,
    pub baud: u32,
    pub fast_baud: Option<u32>,
    pub apn: String,
    pub rts_cts: bool,
    pub download: DownloadArgs,
    pub update: UpdateMicros,
    /// The release keys' raw Ed25519 bytes.
    pub keys: Vec<[u8; 32]>,
    /// The key files read, so that a build can be redone when one changes.
    pub key_files: Vec<PathBuf>,
    /// `release.ca_certs` as one PEM bundle (the files one after another): what the modem
    /// checks `https://` servers against. `None`: plain `http://` only.
    pub ca_bundle: Option<Vec<u8>>,
    /// The CA files read.
    pub ca_files: Vec<PathBuf>,
    pub pins: FirmwarePins,
    /// Settings that build but deserve a look (strapping pins).
    pub warnings: Vec<String>,
}

/// The GPIO facts of a chip otactl's firmware runs on.
struct Gpios {
    max: u8,
    reserved: fn(u8) -> Option<&'static str>,
    strapping: &'static [u8],
}

impl Gpios {
    fn of(chip: ChipName) -> Option<Gpios> {
        match chip {
            ChipName::Esp32c3 => Some(Gpios {
                max: 21,
                reserved: |pin| match pin {
                    12..=17 => Some("is wired to the SPI flash"),
                    18 | 19 => Some("is USB D-/D+, which carries the console"),
                    _ => None,
                },
                strapping: &[2, 8, 9],
            }),
            ChipName::Esp32c6 => Some(Gpios {
                max: 30,
                reserved: |pin| match pin {
                    24..=30 => Some("is wired to the SPI flash"),
                    12 | 13 => Some("is USB D-/D+, which carries the console"),
                    _ => None,
                },
                strapping: &[4, 5, 8, 9, 15],
            }),
            ChipName::Esp32 | ChipName::Esp32s3 => None,
        }
    }
}

impl FirmwareSettings {
    /// Reads the profile `text` (from the file at `path`) for a firmware built for `chip`.
    /// Errors name the file, the key, what is wrong and what to do: a firmware built from a
    /// half-right profile would only fail in the field.
    pub fn from_text(text: &str, path: &Path, chip: Chip, keys: KeySource) -> Result<FirmwareSettings, ProfileError> {
        let origin = path.display().to_string();
        let (profile, doc) = Profile::parse_doc(text, &origin)?;
        let p = &profile;
        let name = ChipName::from(chip);
        if ChipName::from(p.device.chip) != name {
            return Err(doc.error(
                ProfileErrorKind::BadValue,
                "device.chip",
                None,
                format!(
                    "device.chip = \"{}\", but this firmware is built for {name}",
                    ChipName::from(p.device.chip)
                ),
                format!("build with the feature of the profile's chip, or set {PROFILE_ENV} to a profile for {name}"),
            ));
        }
        let Some(gpios) = Gpios::of(name) else {
            return Err(doc.error(
                ProfileErrorKind::BadValue,
                "device.chip",
                None,
                format!("otactl-fw has no build for the {name}"),
                "build otactl-fw for an esp32c3 or esp32c6, or release your own firmware with `otactl release --elf`"
                    .into(),
            ));
        };
        let Some(manifest_url) = p.manifest_url() else {
            return Err(doc.error(
                ProfileErrorKind::MissingKey,
                "release.device_url",
                None,
                "missing key `release.device_url`, which a firmware needs to find its releases".into(),
                "add the http:// base URL devices fetch releases from under [release], e.g. device_url = \"http://ota.example.com/fleet\""
                    .into(),
            ));
        };
        let (pins, warnings) = firmware_pins(p, &doc, name, &gpios)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (key_files, from_env) = match keys {
            KeySource::Profile => (p.release.public_keys.iter().map(|k| base.join(k)).collect(), false),
            KeySource::Files(files) => (files, true),
        };
        let keys = load_keys(&doc, &origin, &key_files, from_env)?;
        let ca_files: Vec<PathBuf> = p.release.ca_certs.iter().map(|f| base.join(f)).collect();
        let ca_bundle = load_ca_bundle(&doc, &ca_files)?;

        Ok(FirmwareSettings {
            profile_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            chip: p.device.chip,
            product: p.device.product.clone(),
            board: p.device.board.clone(),
            channel: p.release.channel.clone(),
            manifest_url,
            report_url: p.release.report_url.clone(),
            dialect: p.modem.dialect,
            baud: p.modem.baud,
            fast_baud: p.modem.fast_baud,
            apn: p.modem.apn.clone(),
            rts_cts: p.modem.rts_cts,
            download: p.download_args(),
            update: p.update_micros(),
            keys,
            key_files,
            ca_bundle,
            ca_files,
            pins,
            warnings,
        })
    }

    /// The firmware's `firmware_config.rs`: constants of the crate's own types (the file is
    /// included by the firmware binary, where `device_fw` is a dependency).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "// Generated by device-fw/build.rs from {}; do not edit.",
            self.profile_name
        );
        let _ = writeln!(w, "/// The profile file this firmware was built from.");
        let _ = writeln!(w, "pub const PROFILE: &str = {:?};", self.profile_name);
        let _ = writeln!(w, "pub const PRODUCT: &str = {:?};", self.product);
        let _ = writeln!(w, "pub const BOARD: &str = {:?};", self.board);
        let _ = writeln!(
            w,
            "pub const CHIP: device_fw::esp::chip::Chip = device_fw::esp::chip::Chip::{:?};",
            ChipName::from(self.chip)
        );
        let _ = writeln!(w, "pub const CHANNEL: &str = {:?};", self.channel);
        let _ = writeln!(w, "pub const MANIFEST_URL: &str = {:?};", self.manifest_url);
        let _ = writeln!(w, "/// Where outcome reports go; `None`: this fleet does not report.");
        let _ = writeln!(
            w,
            "pub const REPORT_URL: Option<&str> = {:?};",
            self.report_url.as_deref()
        );
        let _ = writeln!(
            w,
            "pub const DIALECT: device_fw::modem::Dialect = device_fw::modem::Dialect::{:?};",
            DialectName::from(self.dialect)
        );
        let _ = writeln!(w, "pub const BAUD: u32 = {};", self.baud);
        let _ = writeln!(w, "pub const FAST_BAUD: Option<u32> = {:?};", self.fast_baud);
        let _ = writeln!(w, "pub const APN: &str = {:?};", self.apn);
        let _ = writeln!(w, "pub const RTS_CTS: bool = {};", self.rts_cts);
        let _ = writeln!(w, "pub const PUBLIC_KEYS: [[u8; 32]; {}] = [", self.keys.len());
        for key in &self.keys {
            let bytes: Vec<String> = key.iter().map(|b| format!("0x{b:02x}")).collect();
            let _ = writeln!(w, "    [{}],", bytes.join(", "));
        }
        let _ = writeln!(w, "];");
        let _ = writeln!(
            w,
            "/// The `https://` trust anchors (PEM), stored on the modem when it lacks them."
        );
        match &self.ca_bundle {
            Some(pem) => {
                let _ = writeln!(
                    w,
                    "pub const CA_CERTS: Option<&[u8]> = Some({:?}.as_bytes());",
                    String::from_utf8_lossy(pem)
                );
            }
            None => {
                let _ = writeln!(w, "pub const CA_CERTS: Option<&[u8]> = None;");
            }
        }
        let d = &self.download;
        let _ = writeln!(
            w,
            "pub const DOWNLOAD: device_fw::ota::DownloadConfig = device_fw::ota::DownloadConfig::for_profile({}, {}, {}, {}, {}, {}, {}, {}, {});",
            d.nat_idle_timeout_s,
            d.safety_permille,
            d.chunk_min,
            d.chunk_max,
            d.baud,
            d.retries,
            d.backoff_initial_ms,
            d.backoff_max_ms,
            d.flow_control,
        );
        let u = &self.update;
        let _ = writeln!(
            w,
            "pub const UPDATE: device_fw::ota::schedule::UpdatePolicy = device_fw::ota::schedule::UpdatePolicy {{ check_every_us: {}, jitter_us: {}, retry_after_us: {}, retry_max_us: {}, max_attempts_per_day: {} }};",
            u.check_every_us, u.jitter_us, u.retry_after_us, u.retry_max_us, u.max_attempts_per_day,
        );
        let pins = &self.pins;
        let _ = writeln!(w, "/// GPIO numbers, for the start-up log line.");
        let _ = writeln!(
            w,
            "pub const PIN_NUMBERS: (u8, u8, u8) = ({}, {}, {});",
            pins.tx, pins.rx, pins.pwrkey
        );
        let opt = |pin: Option<u8>| match pin {
            Some(n) => format!("Some($p.GPIO{n}.degrade())"),
            None => "None".to_string(),
        };
        let _ = writeln!(
            w,
            "/// Takes the modem's GPIOs out of `esp_hal::peripherals::Peripherals`.
macro_rules! take_modem_pins {{
    ($p:ident) => {{
        crate::board::ModemPins {{
            tx: $p.GPIO{tx}.degrade(),
            rx: $p.GPIO{rx}.degrade(),
            pwrkey: $p.GPIO{pwrkey}.degrade(),
            reset: {reset},
            rts: {rts},
            cts: {cts},
        }}
    }};
}}",
            tx = pins.tx,
            rx = pins.rx,
            pwrkey = pins.pwrkey,
            reset = opt(pins.reset),
            rts = opt(pins.rts),
            cts = opt(pins.cts),
        );
        s
    }
}

/// `[pins]` against the chip's GPIOs: TX, RX and PWRKEY are needed, none may be a pin the
/// chip's flash or console uses, and a strapping pin is allowed with a warning.
fn firmware_pins(
    p: &Profile,
    doc: &Doc<'_>,
    chip: ChipName,
    gpios: &Gpios,
) -> Result<(FirmwarePins, Vec<String>), ProfileError> {
    let wiring = format!(
        "set it to the {chip} GPIO number wired to the modem (0..={}); see docs/hardware.md",
        gpios.max
    );
    let mut warnings = Vec::new();
    let mut check = |name: &str, pin: Option<u8>| -> Result<Option<u8>, ProfileError> {
        let key = format!("pins.{name}");
        let Some(n) = pin else { return Ok(None) };
        if n > gpios.max {
            return Err(doc.error(
                ProfileErrorKind::BadValue,
                &key,
                None,
                format!("{key} = {n} is not a GPIO of the {chip}"),
                wiring.clone(),
            ));
        }
        if let Some(why) = (gpios.reserved)(n) {
            return Err(doc.error(
                ProfileErrorKind::BadValue,
                &key,
                None,
                format!("{key} = {n}: GPIO{n} {why} on the {chip}"),
                "pick another GPIO".into(),
            ));
        }
        if gpios.strapping.contains(&n) {
            warnings.push(format!(
                "`{key}` = {n} is a strapping pin of the {chip}; make sure the modem does not pull it at reset"
            ));
        }
        Ok(Some(n))
    };
    let required = |name: &str, pin: Option<u8>| {
        pin.ok_or_else(|| {
            doc.error(
                ProfileErrorKind::MissingKey,
                &format!("pins.{name}"),
                None,
                format!("missing key `pins.{name}`, which a firmware needs"),
                format!("add `{name} = …` under [pins]: {wiring}"),
            )
        })
    };
    let pins = &p.pins;
    let tx = required("modem_tx", check("modem_tx", pins.modem_tx)?)?;
    let rx = required("modem_rx", check("modem_rx", pins.modem_rx)?)?;
    let pwrkey = required("modem_pwrkey", check("modem_pwrkey", pins.modem_pwrkey)?)?;
    let reset = check("modem_reset", pins.modem_reset)?;
    let rts = check("modem_rts", pins.modem_rts)?;
    let cts = check("modem_cts", pins.modem_cts)?;
    let flow = |pin: Option<u8>| pin.filter(|_| p.modem.rts_cts);
    let pins = FirmwarePins {
        tx,
        rx,
        pwrkey,
        reset,
        rts: flow(rts),
        cts: flow(cts),
    };
    Ok((pins, warnings))
}

/// Reads the release keys a firmware trusts. `from_env`: the files came from [`KEYS_ENV`],
/// not the profile, so messages name the variable and no place in the file.
/// Largest certificate file both modems take (SIM7600 `AT+CCERTDOWN`, SIM7080 `AT+CFSWFILE`:
/// 10,240 bytes), which the CA bundle goes into whole.
const MAX_CA_BUNDLE: usize = 10_240;

/// Reads `release.ca_certs`: each file must hold at least one PEM certificate (the modem
/// parses nothing else), and only printable ASCII, as PEM is.
fn load_ca_bundle(doc: &Doc<'_>, files: &[PathBuf]) -> Result<Option<Vec<u8>>, ProfileError> {
    if files.is_empty() {
        return Ok(None);
    }
    let help = "list PEM files of CA certificates (-----BEGIN CERTIFICATE-----), relative to the profile".to_owned();
    let mut bundle = Vec::new();
    for file in files {
        let pem = std::fs::read(file).map_err(|e| {
            doc.error(
                ProfileErrorKind::BadValue,
                "release.ca_certs",
                None,
                format!("release.ca_certs: cannot read {}: {e}", file.display()),
                help.clone(),
            )
        })?;
        let text_ok = pem.iter().all(|&b| b.is_ascii_graphic() || b" \r\n\t".contains(&b));
        if !text_ok || !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(doc.error(
                ProfileErrorKind::BadValue,
                "release.ca_certs",
                None,
                format!("release.ca_certs: {} holds no PEM certificate", file.display()),
                help,
            ));
        }
        bundle.extend_from_slice(&pem);
        if !pem.ends_with(b"\n") {
            bundle.push(b'\n');
        }
    }
    if bundle.len() > MAX_CA_BUNDLE {
        return Err(doc.error(
            ProfileErrorKind::BadValue,
            "release.ca_certs",
            None,
            format!(
                "release.ca_certs: the CA bundle is {} bytes, but the modem stores at most {MAX_CA_BUNDLE} bytes in one certificate file (SIM7600 AT+CCERTDOWN, SIM7080 AT+CFSWFILE)",
                bundle.len()
            ),
            "list only the CAs that sign your bucket's certificate (usually one root)".to_owned(),
        ));
    }
    Ok(Some(bundle))
}

fn load_keys(doc: &Doc<'_>, origin: &str, files: &[PathBuf], from_env: bool) -> Result<Vec<[u8; 32]>, ProfileError> {
    let source = if from_env {
        format!("{KEYS_ENV} (which wins over release.public_keys)")
    } else {
        "release.public_keys".to_owned()
    };
    let keygen = format!(
        "run `cargo run -- keygen` to create keys/otactl.pub, or set {KEYS_ENV} to the public key files (separated by ':')"
    );
    let fail = |kind: ProfileErrorKind, reason: String, help: String| {
        if from_env {
            ProfileError(Box::new(Details {
                origin: origin.to_owned(),
                kind,
                key: Some("release.public_keys".into()),
                line: None,
                column: None,
                reason,
                help,
            }))
        } else {
            doc.error(kind, "release.public_keys", None, reason, help)
        }
    };
    if files.is_empty() {
        return Err(fail(
            ProfileErrorKind::MissingKey,
            format!("{source} names no public key; a firmware trusts 1 or {MAX_KEYS}"),
            keygen,
        ));
    }
    if files.len() > MAX_KEYS {
        return Err(fail(
            ProfileErrorKind::BadValue,
            format!(
                "{source} names {} public keys; a firmware holds 1 or {MAX_KEYS} (the current key and, during a rotation, its successor)",
                files.len()
            ),
            format!("list the current key and at most one successor in {source}"),
        ));
    }
    let mut keys: Vec<[u8; 32]> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            fail(
                ProfileErrorKind::BadValue,
                format!("{source}: cannot read public key {} ({e})", file.display()),
                keygen.clone(),
            )
        })?;
        let key = decode_public_key(&text).map_err(|why| {
            fail(
                ProfileErrorKind::BadValue,
                format!("{source}: {} is not an Ed25519 public key: {why}", file.display()),
                "use the .pub file `otactl keygen` writes".into(),
            )
        })?;
        if keys.contains(&key) {
            return Err(fail(
                ProfileErrorKind::BadValue,
                format!("{source}: {} is the same key twice", file.display()),
                "list each key once".into(),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) up to the 32 key bytes:
/// SEQUENCE(42) { SEQUENCE(5) { OID 1.3.101.112 }, BIT STRING(33) { 0 unused bits, … } }.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo) → the 32 raw Ed25519 key bytes. By hand, so
/// that a build script needs no crypto crate.
pub fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    if text.contains("PRIVATE KEY-----") {
        return Err("it is a PRIVATE key; never compile a private key into firmware, give the .pub file".into());
    }
    let start = text
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` line (not a PEM public key)"))?
        + BEGIN.len();
    let len = text[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` line (the file is cut short)"))?;
    let body: String = text[start..start + len].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM body is not base64 ({e})"))?;
    if der.len() != ED25519_SPKI_PREFIX.len() + 32 || der[..ED25519_SPKI_PREFIX.len()] != ED25519_SPKI_PREFIX {
        let head: Vec<String> = der.iter().take(12).map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "the DER is {} bytes starting {}, an Ed25519 SubjectPublicKeyInfo is 44 bytes starting 30 2a 30 05 06 03 2b 65 70 03 21 00 (RSA and ECDSA keys are not supported)",
            der.len(),
            head.join(" ")
        ));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&der[ED25519_SPKI_PREFIX.len()..]);
    Ok(key)
}
