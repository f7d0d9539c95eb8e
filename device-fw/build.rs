//! Build-time configuration of the chip firmware (the `firmware` feature).
//!
//! A device has no file system to read its profile from, so the profile is compiled in:
//! this script reads the profile named by `OTACTL_PROFILE` (default: the chip's profile in
//! `profiles/`), the release public keys it names, and writes `firmware_config.rs` into
//! `OUT_DIR`, which `src/bin/firmware` includes. Every missing or invalid value stops the
//! build with a message that names the file, the key and what to do: a firmware built from
//! a half-right profile would only fail in the field.
//!
//! Host builds (no `firmware` feature) do nothing here, so tests and the bench never depend
//! on a profile or a key.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;

const PROFILE_ENV: &str = "OTACTL_PROFILE";
const KEYS_ENV: &str = "OTACTL_PUBLIC_KEYS";
/// Keys a firmware holds at most (`device_fw::wire::manifest::MAX_KEYS`): the current one
/// and its successor during a rotation.
const MAX_KEYS: usize = 2;
/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) up to the 32 key bytes:
/// SEQUENCE(42) { SEQUENCE(5) { OID 1.3.101.112 }, BIT STRING(33) { 0 unused bits, … } }.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// The UART rates the core's profile schema allows (`device_fw::profile::STANDARD_BAUDS`).
const STANDARD_BAUDS: [i64; 9] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3_000_000];
/// Longest manifest URL the device keeps (the HTTP client's URL buffer takes more; the
/// manifest's own `image` field is limited to 200 bytes, and the base should be shorter).
const MAX_MANIFEST_URL: usize = 200;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_FIRMWARE").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed={PROFILE_ENV}");
    println!("cargo:rerun-if-env-changed={KEYS_ENV}");

    let chip = Chip::from_features();
    chip.check_target();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("device-fw lives inside the workspace")
        .to_path_buf();

    let profile_path = match env::var_os(PROFILE_ENV) {
        Some(p) if !p.is_empty() => resolve(&workspace, Path::new(&p)),
        _ => workspace.join(chip.default_profile()),
    };
    println!("cargo:rerun-if-changed={}", profile_path.display());
    let config = FirmwareConfig::load(&profile_path, &workspace, chip);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("firmware_config.rs");
    fs::write(&out, config.render()).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// A relative path from the environment is taken from the workspace root, where the
/// documented build commands run (cargo runs this script in `device-fw/`).
fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chip {
    Esp32c3,
    Esp32c6,
}

impl Chip {
    fn from_features() -> Chip {
        let c3 = env::var_os("CARGO_FEATURE_ESP32C3").is_some();
        let c6 = env::var_os("CARGO_FEATURE_ESP32C6").is_some();
        match (c3, c6) {
            (true, false) => Chip::Esp32c3,
            (false, true) => Chip::Esp32c6,
            (true, true) => panic!(
                "device-fw: features `esp32c3` and `esp32c6` are both on; a firmware is built for one chip, pick one"
            ),
            (false, false) => panic!(
                "device-fw: the `firmware` feature needs a chip; build with `--features esp32c3` or `--features esp32c6` instead"
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Chip::Esp32c3 => "esp32c3",
            Chip::Esp32c6 => "esp32c6",
        }
    }

    fn variant(self) -> &'static str {
        match self {
            Chip::Esp32c3 => "Esp32c3",
            Chip::Esp32c6 => "Esp32c6",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Chip::Esp32c3 => "riscv32imc-unknown-none-elf",
            Chip::Esp32c6 => "riscv32imac-unknown-none-elf",
        }
    }

    fn default_profile(self) -> &'static str {
        match self {
            Chip::Esp32c3 => "profiles/esp32c3-sim7080.toml",
            Chip::Esp32c6 => "profiles/esp32c6-sim7600.toml",
        }
    }

    fn check_target(self) {
        let target = env::var("TARGET").unwrap_or_default();
        if target != self.target() {
            panic!(
                "device-fw: feature `{}` builds for target {}, not {target}; run `cargo build --profile firmware -p device-fw --target {} --features {}`",
                self.name(),
                self.target(),
                self.target(),
                self.name()
            );
        }
    }

    /// Highest GPIO number.
    fn max_gpio(self) -> u8 {
        match self {
            Chip::Esp32c3 => 21,
            Chip::Esp32c6 => 30,
        }
    }

    /// GPIOs the firmware must not take, and why.
    fn reserved(self, pin: u8) -> Option<&'static str> {
        match (self, pin) {
            (Chip::Esp32c3, 12..=17) => Some("is wired to the SPI flash"),
            (Chip::Esp32c3, 18 | 19) => Some("is USB D-/D+, which carries the console"),
            (Chip::Esp32c6, 24..=30) => Some("is wired to the SPI flash"),
            (Chip::Esp32c6, 12 | 13) => Some("is USB D-/D+, which carries the console"),
            _ => None,
        }
    }

    /// Strapping pins: usable, but whatever is wired to them must not pull them at reset.
    fn strapping(self, pin: u8) -> bool {
        match self {
            Chip::Esp32c3 => matches!(pin, 2 | 8 | 9),
            Chip::Esp32c6 => matches!(pin, 4 | 5 | 8 | 9 | 15),
        }
    }
}

/// The profile file being read, for messages.
struct Profile<'a> {
    path: &'a Path,
    doc: toml::Table,
}

impl Profile<'_> {
    /// Stops the build: the message names the profile, the key, what is wrong and what to do.
    fn fail(&self, key: &str, problem: &str, fix: &str) -> ! {
        panic!("profile {}: `{key}` {problem}; {fix}", self.path.display())
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        let mut parts = key.split('.');
        let mut value = self.doc.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    fn string(&self, key: &str, fix: &str) -> String {
        match self.get(key) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => self.fail(key, &format!("must be a string, found {}", other.type_str()), fix),
            None => self.fail(key, "is missing", fix),
        }
    }

    fn string_or(&self, key: &str, default: &str, fix: &str) -> String {
        match self.get(key) {
            None => default.to_string(),
            Some(_) => self.string(key, fix),
        }
    }

    fn int_in(&self, key: &str, default: Option<i64>, range: std::ops::RangeInclusive<i64>, fix: &str) -> i64 {
        let value = match (self.get(key), default) {
            (Some(toml::Value::Integer(n)), _) => *n,
            (Some(other), _) => self.fail(key, &format!("must be an integer, found {}", other.type_str()), fix),
            (None, Some(d)) => d,
            (None, None) => self.fail(key, "is missing", fix),
        };
        if !range.contains(&value) {
            self.fail(key, &format!("= {value} is out of range"), fix);
        }
        value
    }

    fn bool_or(&self, key: &str, default: bool, fix: &str) -> bool {
        match self.get(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => self.fail(key, &format!("must be true or false, found {}", other.type_str()), fix),
        }
    }

    fn pin(&self, key: &str, chip: Chip, required: bool) -> Option<u8> {
        let fix = format!(
            "set it to the {} GPIO number wired to the modem (0..={}); see docs/hardware.md",
            chip.name(),
            chip.max_gpio()
        );
        if self.get(key).is_none() && !required {
            return None;
        }
        let n = self.int_in(key, None, 0..=i64::from(chip.max_gpio()), &fix) as u8;
        if let Some(why) = chip.reserved(n) {
            self.fail(
                key,
                &format!("= {n}: GPIO{n} {why} on the {}", chip.name()),
                "pick another GPIO",
            );
        }
        if chip.strapping(n) {
            println!(
                "cargo:warning=profile {}: `{key}` = {n} is a strapping pin of the {}; make sure the modem does not pull it at reset",
                self.path.display(),
                chip.name()
            );
        }
        Some(n)
    }
}

/// `[a-z0-9._-]`, 1..=32 bytes: the manifest's rule for product, channel and board, which
/// the device compares byte for byte.
fn manifest_name_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b))
}

#[derive(Debug)]
struct Pins {
    tx: u8,
    rx: u8,
    pwrkey: u8,
    reset: Option<u8>,
    rts: Option<u8>,
    cts: Option<u8>,
}

#[derive(Debug)]
struct FirmwareConfig {
    profile_name: String,
    product: String,
    board: String,
    chip: Chip,
    dialect: &'static str,
    baud: u32,
    fast_baud: Option<u32>,
    apn: String,
    rts_cts: bool,
    nat_idle_timeout_s: u32,
    safety_factor: f64,
    chunk_min: u32,
    chunk_max: u32,
    retries: u8,
    backoff_initial_ms: u32,
    backoff_max_ms: u32,
    channel: String,
    manifest_url: String,
    keys: Vec<[u8; 32]>,
    pins: Pins,
}

impl FirmwareConfig {
    fn load(path: &Path, workspace: &Path, chip: Chip) -> FirmwareConfig {
        let text = fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "profile {}: cannot read it ({e}); set {PROFILE_ENV} to the device's profile (relative to the workspace root), or create {}",
                path.display(),
                chip.default_profile()
            )
        });
        let doc: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("profile {}: not valid TOML: {e}", path.display()));
        let p = Profile { path, doc };

        let product = p.string("device.product", "add `product = \"…\"` under [device]");
        if !manifest_name_ok(&product) {
            p.fail(
                "device.product",
                &format!("= {product:?} is not a manifest name"),
                "use 1 to 32 of a-z 0-9 . _ -, as the release manifests do",
            );
        }
        let board = p.string("device.board", "add `board = \"…\"` under [device]");
        if !manifest_name_ok(&board) {
            p.fail(
                "device.board",
                &format!("= {board:?} is not a manifest name"),
                "use 1 to 32 of a-z 0-9 . _ -: the device compares it with the manifest's board",
            );
        }
        let profile_chip = p.string("device.chip", "add `chip = \"…\"` under [device]");
        if profile_chip != chip.name() {
            p.fail(
                "device.chip",
                &format!("= {profile_chip:?}, but this firmware is built for {}", chip.name()),
                &format!(
                    "build with the feature of the profile's chip, or set {PROFILE_ENV} to a profile for {}",
                    chip.name()
                ),
            );
        }

        let dialect = match p.string("modem.dialect", "use \"sim7600\" or \"sim7080\"").as_str() {
            "sim7600" => "Sim7600",
            "sim7080" => "Sim7080",
            other => p.fail(
                "modem.dialect",
                &format!("= {other:?} is not a known dialect"),
                "use \"sim7600\" or \"sim7080\"",
            ),
        };
        let bauds = STANDARD_BAUDS.map(|b| b.to_string()).join(", ");
        let baud = p.int_in("modem.baud", None, 1..=3_000_000, &format!("use one of {bauds}"));
        if !STANDARD_BAUDS.contains(&baud) {
            p.fail(
                "modem.baud",
                &format!("= {baud} is not a standard UART rate"),
                &format!("use one of {bauds}"),
            );
        }
        let fast_baud = match p.get("modem.fast_baud") {
            None => None,
            Some(_) => {
                let fast = p.int_in(
                    "modem.fast_baud",
                    None,
                    1..=3_000_000,
                    &format!("use one of {bauds} above modem.baud"),
                );
                if !STANDARD_BAUDS.contains(&fast) || fast <= baud {
                    p.fail(
                        "modem.fast_baud",
                        &format!("= {fast} is not a standard UART rate above modem.baud = {baud}"),
                        &format!("use one of {bauds} above modem.baud, or leave it out"),
                    );
                }
                Some(fast as u32)
            }
        };
        let apn = p.string(
            "modem.apn",
            "set the APN your SIM provider gives, e.g. apn = \"internet\"",
        );
        if apn.is_empty() || apn.len() > 63 || !apn.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"') {
            p.fail(
                "modem.apn",
                &format!("= {apn:?} cannot be sent to the modem"),
                "use 1 to 63 printable ASCII characters without '\"'",
            );
        }
        let rts_cts = p.bool_or(
            "modem.rts_cts",
            false,
            "set true only if RTS and CTS are wired between the chip and the modem",
        );

        let nat_idle_timeout_s = p.int_in(
            "network.nat_idle_timeout_s",
            Some(30),
            2..=7440,
            "use 2 to 7440 seconds",
        ) as u32;
        let safety_factor = match p.get("network.safety_factor") {
            None => 0.5,
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(n)) => *n as f64,
            Some(other) => p.fail(
                "network.safety_factor",
                &format!("must be a number, found {}", other.type_str()),
                "use 0.1 to 0.9",
            ),
        };
        if !(0.1..=0.9).contains(&safety_factor) {
            p.fail(
                "network.safety_factor",
                &format!("= {safety_factor} is out of range"),
                "use 0.1 to 0.9",
            );
        }
        let chunk_min = p.int_in(
            "download.chunk_min",
            Some(4096),
            256..=16 * 1024 * 1024,
            "use 256 or more bytes",
        ) as u32;
        let chunk_max = p.int_in(
            "download.chunk_max",
            Some(524_288),
            i64::from(chunk_min)..=16 * 1024 * 1024,
            "use chunk_min to 16777216 bytes",
        ) as u32;
        let retries = p.int_in("download.retries", Some(12), 0..=255, "use 0 to 255") as u8;
        let backoff_initial_ms = p.int_in(
            "download.backoff_initial_ms",
            Some(500),
            1..=i64::from(u32::MAX),
            "use 1 or more milliseconds",
        ) as u32;
        let backoff_max_ms = p.int_in(
            "download.backoff_max_ms",
            Some(30_000),
            i64::from(backoff_initial_ms)..=i64::from(u32::MAX),
            "use backoff_initial_ms or more milliseconds",
        ) as u32;

        let channel = p.string_or("release.channel", "stable", "use a channel name such as \"stable\"");
        if !manifest_name_ok(&channel) {
            p.fail(
                "release.channel",
                &format!("= {channel:?} is not a manifest name"),
                "use 1 to 32 of a-z 0-9 . _ -",
            );
        }
        let device_url = p.string(
            "release.device_url",
            "set the http:// base URL devices fetch releases from, e.g. device_url = \"http://ota.example.com/fleet\"",
        );
        let base = device_url.trim_end_matches('/');
        let host_ok = base
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|host| !host.is_empty());
        if !host_ok || base.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            p.fail(
                "release.device_url",
                &format!("= {device_url:?} is not an http:// URL with a host"),
                "devices fetch over plain HTTP through the modem (the signature guards the content); use http://host[:port]/path",
            );
        }
        let manifest_url = format!("{base}/{channel}/manifest.json");
        if manifest_url.len() > MAX_MANIFEST_URL {
            p.fail(
                "release.device_url",
                &format!(
                    "gives a manifest URL of {} bytes, more than {MAX_MANIFEST_URL}",
                    manifest_url.len()
                ),
                "use a shorter base URL",
            );
        }
        let keys = load_keys(&p, workspace);

        let pins = Pins {
            tx: p.pin("pins.modem_tx", chip, true).expect("required"),
            rx: p.pin("pins.modem_rx", chip, true).expect("required"),
            pwrkey: p.pin("pins.modem_pwrkey", chip, true).expect("required"),
            reset: p.pin("pins.modem_reset", chip, false),
            rts: p.pin("pins.modem_rts", chip, false),
            cts: p.pin("pins.modem_cts", chip, false),
        };
        if rts_cts && (pins.rts.is_none() || pins.cts.is_none()) {
            p.fail(
                "modem.rts_cts",
                "is true but pins.modem_rts or pins.modem_cts is missing",
                "add both pins, or set rts_cts = false",
            );
        }
        let mut used: Vec<(&str, u8)> = vec![
            ("pins.modem_tx", pins.tx),
            ("pins.modem_rx", pins.rx),
            ("pins.modem_pwrkey", pins.pwrkey),
        ];
        used.extend(pins.reset.map(|n| ("pins.modem_reset", n)));
        if rts_cts {
            used.extend(pins.rts.map(|n| ("pins.modem_rts", n)));
            used.extend(pins.cts.map(|n| ("pins.modem_cts", n)));
        }
        for (i, (key, n)) in used.iter().enumerate() {
            if let Some((other, _)) = used[..i].iter().find(|(_, m)| m == n) {
                p.fail(
                    key,
                    &format!("= {n} is also `{other}`"),
                    "give each signal its own GPIO",
                );
            }
        }

        FirmwareConfig {
            profile_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            product,
            board,
            chip,
            dialect,
            baud: baud as u32,
            fast_baud,
            apn,
            rts_cts,
            nat_idle_timeout_s,
            safety_factor,
            chunk_min,
            chunk_max,
            retries,
            backoff_initial_ms,
            backoff_max_ms,
            channel,
            manifest_url,
            keys,
            pins,
        }
    }

    fn render(&self) -> String {
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
            "pub const CHIP: device_fw::esp::chip::Chip = device_fw::esp::chip::Chip::{};",
            self.chip.variant()
        );
        let _ = writeln!(w, "pub const CHANNEL: &str = {:?};", self.channel);
        let _ = writeln!(w, "pub const MANIFEST_URL: &str = {:?};", self.manifest_url);
        let _ = writeln!(
            w,
            "pub const DIALECT: device_fw::modem::Dialect = device_fw::modem::Dialect::{};",
            self.dialect
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
        // The same constructor `Profile::download_config` calls, on the same profile values:
        // the bench and the chip run the engine with one setting.
        let _ = writeln!(
            w,
            "pub const DOWNLOAD: device_fw::ota::DownloadConfig = device_fw::ota::DownloadConfig::for_profile({}, {}, {}, {}, {}, {}, {}, {}, {});",
            self.nat_idle_timeout_s,
            (self.safety_factor * 1000.0).round() as u32,
            self.chunk_min,
            self.chunk_max,
            self.baud,
            self.retries,
            self.backoff_initial_ms,
            self.backoff_max_ms,
            self.rts_cts,
        );
        let opt = |pin: Option<u8>| match pin {
            Some(n) => format!("Some($p.GPIO{n}.degrade())"),
            None => "None".to_string(),
        };
        let _ = writeln!(w, "/// GPIO numbers, for the start-up log line.");
        let _ = writeln!(
            w,
            "pub const PIN_NUMBERS: (u8, u8, u8) = ({}, {}, {});",
            self.pins.tx, self.pins.rx, self.pins.pwrkey
        );
        let (rts, cts) = if self.rts_cts {
            (self.pins.rts, self.pins.cts)
        } else {
            (None, None)
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
            tx = self.pins.tx,
            rx = self.pins.rx,
            pwrkey = self.pins.pwrkey,
            reset = opt(self.pins.reset),
            rts = opt(rts),
            cts = opt(cts),
        );
        s
    }
}

fn load_keys(p: &Profile<'_>, workspace: &Path) -> Vec<[u8; 32]> {
    let keygen = "run `cargo run -- keygen` to create keys/otactl.pub, or set OTACTL_PUBLIC_KEYS to the public key files (separated by ':')";
    let (paths, origin): (Vec<PathBuf>, String) = match env::var(KEYS_ENV) {
        Ok(list) if !list.trim().is_empty() => (
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| resolve(workspace, Path::new(s)))
                .collect(),
            format!("environment variable {KEYS_ENV}"),
        ),
        _ => {
            let base = p.path.parent().unwrap_or(Path::new("."));
            let list = match p.get("release.public_keys") {
                Some(toml::Value::Array(items)) => items,
                Some(other) => p.fail(
                    "release.public_keys",
                    &format!("must be an array of paths, found {}", other.type_str()),
                    "write public_keys = [\"../keys/otactl.pub\"] (relative to the profile file)",
                ),
                None => p.fail("release.public_keys", "is missing", keygen),
            };
            let paths = list
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => resolve(base, Path::new(s)),
                    other => p.fail(
                        "release.public_keys",
                        &format!("holds a {}, not a path", other.type_str()),
                        "write public_keys = [\"../keys/otactl.pub\"] (relative to the profile file)",
                    ),
                })
                .collect();
            (paths, format!("profile {} `release.public_keys`", p.path.display()))
        }
    };
    if paths.is_empty() || paths.len() > MAX_KEYS {
        panic!(
            "{origin}: names {} public keys; a firmware holds 1 or {MAX_KEYS} (the current key and, during a rotation, its successor)",
            paths.len()
        );
    }
    let mut keys: Vec<[u8; 32]> = Vec::new();
    for path in &paths {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{origin}: cannot read public key {} ({e}); {keygen}", path.display()));
        let key = decode_public_key(&text).unwrap_or_else(|why| {
            panic!(
                "{origin}: {} is not an Ed25519 public key: {why}; use the .pub file `otactl keygen` writes",
                path.display()
            )
        });
        if keys.contains(&key) {
            panic!("{origin}: {} is the same key twice; list each key once", path.display());
        }
        keys.push(key);
    }
    keys
}

/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo) → the 32 raw Ed25519 key bytes.
fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
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
