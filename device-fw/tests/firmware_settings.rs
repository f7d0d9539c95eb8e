//! The chip runs what the host reads: for every shipped profile, the constants the firmware
//! build renders (`FirmwareSettings::render`, what build.rs writes) hold the values the host
//! and the bench take from `Profile::load` and its accessors. And a firmware build stops at
//! what only a firmware needs (its chip, its pins, its keys) with an error that names the
//! file, the key and the fix.
#![cfg(feature = "profile")]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use device_fw::http::Url;
use device_fw::profile::{Chip, FirmwareSettings, KeySource, Profile, ProfileError, ProfileErrorKind};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};

fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../profiles")
}

fn shipped_profiles() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(profiles_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

/// A directory of this test's own, under cargo's scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("firmware_settings")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the public key of seed `seed` as `otactl keygen` does (SPKI PEM).
fn key_file(dir: &Path, name: &str, seed: u8) -> PathBuf {
    let pem = SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let path = dir.join(name);
    fs::write(&path, pem).unwrap();
    path
}

/// The key bytes as the host's crypto library reads the files.
fn host_keys(files: &[PathBuf]) -> Vec<[u8; 32]> {
    files
        .iter()
        .map(|f| {
            ed25519_dalek::VerifyingKey::from_public_key_pem(&fs::read_to_string(f).unwrap())
                .unwrap()
                .to_bytes()
        })
        .collect()
}

/// `pub const NAME: TYPE = EXPR;` of the generated file, by name. The file is generated
/// with one constant per statement and no `;` inside an expression but the key array's type.
fn constants(rendered: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for piece in rendered.split("pub const ").skip(1) {
        let (name, rest) = piece.split_once(':').unwrap();
        let (_, expr) = rest.split_once(" = ").unwrap();
        let end = expr.find(";\n").unwrap();
        out.insert(name.to_owned(), expr[..end].to_owned());
    }
    out
}

/// The value after `field: ` in the generated `take_modem_pins!` macro.
fn macro_field<'a>(rendered: &'a str, field: &str) -> &'a str {
    let body = rendered.split("macro_rules! take_modem_pins").nth(1).unwrap();
    let at = body.find(&format!("{field}: ")).unwrap() + field.len() + 2;
    body[at..].split(",\n").next().unwrap()
}

fn gpio(pin: Option<u8>) -> String {
    pin.map_or("None".into(), |n| format!("Some($p.GPIO{n}.degrade())"))
}

/// Where the generated constants differ from the host's reading of `profile` with release
/// keys `keys`: one line per difference, empty when the chip runs what the host reads.
fn drift(rendered: &str, profile: &Profile, profile_name: &str, keys: &[[u8; 32]]) -> Vec<String> {
    let got = constants(rendered);
    let modem = profile.modem_config().expect("the profile's modem settings are usable");
    let device_url = profile
        .release
        .device_url
        .as_deref()
        .expect("a firmware needs device_url");
    let manifest_url = format!(
        "{}/{}/manifest.json",
        device_url.trim_end_matches('/'),
        profile.release.channel
    );
    let pins = &profile.pins;
    let pin_numbers = (
        pins.modem_tx.unwrap(),
        pins.modem_rx.unwrap(),
        pins.modem_pwrkey.unwrap(),
    );
    let mut want: BTreeMap<&str, String> = BTreeMap::from([
        ("PROFILE", format!("{profile_name:?}")),
        ("PRODUCT", format!("{:?}", profile.device.product)),
        ("BOARD", format!("{:?}", profile.device.board)),
        ("CHIP", format!("device_fw::esp::chip::Chip::{:?}", profile.device.chip)),
        ("CHANNEL", format!("{:?}", profile.release.channel)),
        ("MANIFEST_URL", format!("{manifest_url:?}")),
        ("REPORT_URL", format!("{:?}", profile.release.report_url.as_deref())),
        ("DIALECT", format!("device_fw::modem::Dialect::{:?}", modem.dialect)),
        ("BAUD", modem.baud.to_string()),
        ("FAST_BAUD", format!("{:?}", modem.fast_baud)),
        ("APN", format!("{:?}", modem.apn.as_str())),
        ("RTS_CTS", profile.modem.rts_cts.to_string()),
        (
            "UPDATE",
            format!("device_fw::ota::schedule::{:?}", profile.update_policy()),
        ),
        ("PIN_NUMBERS", format!("{pin_numbers:?}")),
    ]);
    // The bundle's bytes come from files next to the profile; they are compared in
    // `ca_certs_are_compiled_in_as_one_bundle_and_must_be_pem`.
    if profile.release.ca_certs.is_empty() {
        want.insert("CA_CERTS", "None".into());
    } else if let Some(bundle) = got.get("CA_CERTS").filter(|b| b.starts_with("Some(")) {
        want.insert("CA_CERTS", bundle.clone());
    }
    let mut out = Vec::new();
    for (name, expr) in &got {
        match (name.as_str(), want.remove(name.as_str())) {
            ("DOWNLOAD", _) => {
                let host = format!("{:?}", profile.download_config());
                let chip = format!("{:?}", download_from(expr));
                if chip != host {
                    out.push(format!("DOWNLOAD: the firmware runs {chip}, the host {host}"));
                }
            }
            ("PUBLIC_KEYS", _) => {
                let chip = key_bytes(expr);
                if chip != keys {
                    out.push(format!(
                        "PUBLIC_KEYS: the firmware holds {chip:02x?}, the host reads {keys:02x?}"
                    ));
                }
            }
            (_, Some(host)) if *expr != host => out.push(format!("{name}: the firmware has {expr}, the host {host}")),
            (_, Some(_)) => {}
            (_, None) => out.push(format!("{name}: a constant the host reading is not compared with")),
        }
    }
    out.extend(
        want.keys()
            .map(|name| format!("{name}: missing from the firmware's settings")),
    );
    let flow = |pin: Option<u8>| pin.filter(|_| profile.modem.rts_cts);
    for (field, pin) in [
        ("tx", pins.modem_tx),
        ("rx", pins.modem_rx),
        ("pwrkey", pins.modem_pwrkey),
    ] {
        let want = format!("$p.GPIO{}.degrade()", pin.unwrap());
        if macro_field(rendered, field) != want {
            out.push(format!(
                "take_modem_pins {field}: {} is not {want}",
                macro_field(rendered, field)
            ));
        }
    }
    for (field, pin) in [
        ("reset", pins.modem_reset),
        ("rts", flow(pins.modem_rts)),
        ("cts", flow(pins.modem_cts)),
    ] {
        if macro_field(rendered, field) != gpio(pin) {
            out.push(format!(
                "take_modem_pins {field}: {} is not {}",
                macro_field(rendered, field),
                gpio(pin)
            ));
        }
    }
    out
}

/// Evaluates `device_fw::ota::DownloadConfig::for_profile(…)` from its source text, taking
/// the arguments by position as the compiler does.
fn download_from(expr: &str) -> device_fw::ota::DownloadConfig {
    let args = expr
        .strip_prefix("device_fw::ota::DownloadConfig::for_profile(")
        .and_then(|a| a.strip_suffix(')'))
        .unwrap_or_else(|| panic!("DOWNLOAD is not a for_profile call: {expr}"));
    let a: Vec<&str> = args.split(", ").collect();
    let n = |i: usize| a[i].parse::<u32>().unwrap();
    device_fw::ota::DownloadConfig::for_profile(
        n(0),
        n(1),
        n(2),
        n(3),
        n(4),
        a[5].parse().unwrap(),
        n(6),
        n(7),
        a[8].parse().unwrap(),
    )
}

/// The rows of the generated `PUBLIC_KEYS` array.
fn key_bytes(expr: &str) -> Vec<[u8; 32]> {
    expr.lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix("],"))
        .map(|row| {
            let bytes: Vec<u8> = row
                .split(", ")
                .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        })
        .collect()
}

fn firmware(path: &Path, text: &str, chip: Chip, keys: &[PathBuf]) -> Result<FirmwareSettings, ProfileError> {
    FirmwareSettings::from_text(text, path, chip, KeySource::Files(keys.to_vec()))
}

// ---------------------------------------------------------------------------------------
// The shipped profiles.

#[test]
fn every_shipped_profile_builds_the_firmware_the_host_reads() {
    let dir = scratch("shipped");
    let keys = [key_file(&dir, "a.pub", 1), key_file(&dir, "b.pub", 2)];
    let mut compared = 0;
    for path in shipped_profiles() {
        let host = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = fs::read_to_string(&path).unwrap();
        let settings = match firmware(&path, &text, host.device.chip, &keys) {
            Ok(s) => s,
            // Boards otactl-fw does not run on are released with their own firmware.
            Err(e) if e.to_string().contains("otactl-fw has no build") => continue,
            Err(e) => panic!("{e}"),
        };
        let name = path.file_name().unwrap().to_str().unwrap();
        let rendered = settings.render();
        let differences = drift(&rendered, &host, name, &host_keys(&keys));
        assert!(
            differences.is_empty(),
            "{name}: the firmware's settings drifted from the host's:\n{}",
            differences.join("\n")
        );

        assert_eq!(settings.chip, host.device.chip);
        assert_eq!(settings.dialect, host.modem.dialect);
        assert_eq!(settings.update, host.update_micros());
        assert_eq!(settings.download, host.download_args());
        assert_eq!(Some(settings.manifest_url.clone()), host.manifest_url());
        Url::parse(&settings.manifest_url)
            .unwrap_or_else(|e| panic!("{name}: the device cannot fetch its manifest URL: {e}"));
        assert!(settings.warnings.is_empty(), "{name}: {:?}", settings.warnings);
        compared += 1;
    }
    assert!(compared >= 2, "only {compared} shipped profiles build otactl-fw");
}

#[test]
fn a_setting_that_differs_is_caught() {
    let dir = scratch("differs");
    let keys = [key_file(&dir, "a.pub", 1)];
    let path = profiles_dir().join("esp32c3-sim7080.toml");
    let host = Profile::load(&path).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let changed = format!(
        "{}\n[download]\nchunk_max = 65536\n[update]\ncheck_every = \"1h\"\n",
        text.replace("modem_reset = 7", "modem_reset = 10")
    );
    let rendered = firmware(&path, &changed, Chip::Esp32c3, &keys).unwrap().render();
    let joined = drift(&rendered, &host, "esp32c3-sim7080.toml", &host_keys(&keys)).join("\n");
    for name in ["DOWNLOAD", "UPDATE", "take_modem_pins reset"] {
        assert!(joined.contains(name), "{name} not caught: {joined}");
    }
    let other = [key_file(&dir, "b.pub", 2)];
    let keys_drift = drift(&rendered, &host, "esp32c3-sim7080.toml", &host_keys(&other));
    assert!(
        keys_drift.iter().any(|d| d.starts_with("PUBLIC_KEYS")),
        "{keys_drift:?}"
    );
}

#[test]
fn report_url_and_flow_control_reach_the_firmware() {
    let dir = scratch("report");
    let keys = [key_file(&dir, "a.pub", 1)];
    let path = profiles_dir().join("esp32c6-sim7600.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(
            "public_keys = [",
            "report_url = \"http://ota.example.com:8080/reports\"\npublic_keys = [",
        )
        .replace("rts_cts = false", "rts_cts = true\nfast_baud = 921600")
        .replace("modem_reset = 19", "modem_reset = 19\nmodem_rts = 20\nmodem_cts = 21")
        + "\n[update]\ncheck_every = \"0s\"\nretry_after = \"90s\"\nmax_attempts_per_day = 0\n";
    let host = Profile::parse(&text, "esp32c6-sim7600.toml").unwrap();
    let settings = firmware(&path, &text, Chip::Esp32c6, &keys).unwrap();
    let rendered = settings.render();
    let differences = drift(&rendered, &host, "esp32c6-sim7600.toml", &host_keys(&keys));
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    let consts = constants(&rendered);
    assert_eq!(consts["REPORT_URL"], "Some(\"http://ota.example.com:8080/reports\")");
    assert!(consts["UPDATE"].contains("check_every_us: 0,"), "{}", consts["UPDATE"]);
    assert_eq!(macro_field(&rendered, "rts"), "Some($p.GPIO20.degrade())");
}

#[test]
fn keys_come_from_the_profile_relative_to_its_file() {
    let dir = scratch("relative");
    fs::create_dir_all(dir.join("keys")).unwrap();
    let key = key_file(&dir.join("keys"), "fleet.pub", 3);
    let text = fs::read_to_string(profiles_dir().join("esp32c3-sim7080.toml"))
        .unwrap()
        .replace("../keys/otactl.pub", "keys/fleet.pub");
    let path = dir.join("c3.toml");
    let settings = FirmwareSettings::from_text(&text, &path, Chip::Esp32c3, KeySource::Profile).unwrap();
    assert_eq!(settings.keys, host_keys(&[key]));
    assert_eq!(settings.key_files, [dir.join("keys/fleet.pub")]);
}

// ---------------------------------------------------------------------------------------
// What only a firmware needs.

fn c3_text() -> String {
    fs::read_to_string(profiles_dir().join("esp32c3-sim7080.toml")).unwrap()
}

fn firmware_err(text: &str, chip: Chip, keys: &[PathBuf]) -> ProfileError {
    match firmware(Path::new("profiles/test.toml"), text, chip, keys) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

/// Kind, key and every needle, and that the message starts with the file.
fn assert_firmware_error(e: &ProfileError, kind: ProfileErrorKind, key: &str, needles: &[&str]) {
    let text = e.to_string();
    assert_eq!((e.kind(), e.key()), (kind, Some(key)), "{text}");
    assert!(text.starts_with("profiles/test.toml"), "{text}");
    assert!(!e.help().is_empty(), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
}

#[test]
fn the_profile_is_for_the_chip_being_built() {
    let keys = [key_file(&scratch("chip"), "a.pub", 1)];
    let e = firmware_err(&c3_text(), Chip::Esp32c6, &keys);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "device.chip",
        &["\"esp32c3\", but this firmware is built for esp32c6", "OTACTL_PROFILE"],
    );
    assert_eq!(e.line(), Some(6), "{e}");
    let field = fs::read_to_string(profiles_dir().join("m5stack-core-sim7600.toml")).unwrap();
    let e = firmware_err(&field, Chip::Esp32, &keys);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "device.chip",
        &["no build for the esp32"],
    );
}

#[test]
fn a_firmware_needs_its_device_url_and_pins() {
    let keys = [key_file(&scratch("needs"), "a.pub", 1)];
    let e = firmware_err(
        &c3_text().replace("device_url =", "# device_url ="),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(
        &e,
        ProfileErrorKind::MissingKey,
        "release.device_url",
        &["device_url = \"http://"],
    );
    let e = firmware_err(&c3_text().replace("modem_pwrkey = 6", ""), Chip::Esp32c3, &keys);
    assert_firmware_error(
        &e,
        ProfileErrorKind::MissingKey,
        "pins.modem_pwrkey",
        &["esp32c3 GPIO number", "0..=21", "under [pins]"],
    );
}

#[test]
fn pins_follow_the_chip() {
    let keys = [key_file(&scratch("pins"), "a.pub", 1)];
    let e = firmware_err(
        &c3_text().replace("modem_tx = 4", "modem_tx = 25"),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "pins.modem_tx",
        &["not a GPIO of the esp32c3", "0..=21"],
    );
    let e = firmware_err(
        &c3_text().replace("modem_rx = 5", "modem_rx = 18"),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "pins.modem_rx",
        &["GPIO18 is USB D-/D+", "another GPIO"],
    );
    let e = firmware_err(
        &c3_text().replace("modem_reset = 7", "modem_reset = 13"),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(&e, ProfileErrorKind::BadValue, "pins.modem_reset", &["SPI flash"]);
    let strapped = firmware(
        Path::new("x.toml"),
        &c3_text().replace("modem_reset = 7", "modem_reset = 9"),
        Chip::Esp32c3,
        &keys,
    )
    .unwrap();
    assert_eq!(strapped.warnings.len(), 1);
    assert!(
        strapped.warnings[0].contains("strapping pin"),
        "{:?}",
        strapped.warnings
    );
}

#[test]
fn key_problems_name_the_key_files() {
    let dir = scratch("keys");
    let a = key_file(&dir, "a.pub", 1);
    let b = key_file(&dir, "b.pub", 2);
    let c = key_file(&dir, "c.pub", 3);
    let e = firmware_err(&c3_text(), Chip::Esp32c3, &[a.clone(), b, c]);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.public_keys",
        &["OTACTL_PUBLIC_KEYS", "names 3 public keys", "1 or 2"],
    );
    assert_eq!(e.line(), None, "the keys came from the environment, not the file: {e}");
    let e = firmware_err(&c3_text(), Chip::Esp32c3, &[a.clone(), a.clone()]);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.public_keys",
        &["same key twice"],
    );
    let e = firmware_err(&c3_text(), Chip::Esp32c3, &[dir.join("none.pub")]);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.public_keys",
        &["cannot read public key", "none.pub", "keygen"],
    );
    let private = dir.join("k.key");
    fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = firmware_err(&c3_text(), Chip::Esp32c3, &[private]);
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.public_keys",
        &["PRIVATE key", ".pub"],
    );

    // From the profile: the message points at its line.
    let text = c3_text().replace("public_keys = [\"../keys/otactl.pub\"]", "public_keys = []");
    let e = FirmwareSettings::from_text(
        &text,
        Path::new("profiles/test.toml"),
        Chip::Esp32c3,
        KeySource::Profile,
    )
    .unwrap_err();
    assert_firmware_error(
        &e,
        ProfileErrorKind::MissingKey,
        "release.public_keys",
        &["names no public key", "otactl.pub"],
    );
    assert!(e.line().is_some(), "{e}");
}

#[test]
fn the_profile_rules_apply_to_a_firmware_build_too() {
    let keys = [key_file(&scratch("rules"), "a.pub", 1)];
    let e = firmware_err(
        &c3_text().replace("baud = 115200", "baud = 12345"),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.baud",
        &["not a standard UART rate"],
    );
    assert_eq!(e.line(), Some(11), "{e}");
    let e = firmware_err(
        &format!("{}\n[update]\ncheck_evry = \"1h\"\n", c3_text()),
        Chip::Esp32c3,
        &keys,
    );
    assert_firmware_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "update.check_evry",
        &["did you mean `check_every`"],
    );
}

#[test]
fn ca_certs_are_compiled_in_as_one_bundle_and_must_be_pem() {
    let dir = scratch("ca_certs");
    let keys = [key_file(&dir, "a.pub", 1)];
    let fleet = "-----BEGIN CERTIFICATE-----\nMIIBfleet\n-----END CERTIFICATE-----\n";
    let bucket = "-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----";
    fs::write(dir.join("fleet.pem"), fleet).unwrap();
    fs::write(dir.join("root.pem"), bucket).unwrap();
    fs::write(
        dir.join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let text = |files: &str| {
        fs::read_to_string(profiles_dir().join("esp32c6-sim7600.toml"))
            .unwrap()
            .replace(
                "device_url = \"http://ota.example.com/fleet\"",
                &format!("device_url = \"https://ota.example.com/fleet\"\nca_certs = [{files}]"),
            )
    };
    let path = dir.join("c6.toml");
    let settings = firmware(&path, &text("\"fleet.pem\", \"root.pem\""), Chip::Esp32c6, &keys).unwrap();
    let bundle = format!("{fleet}{bucket}\n");
    assert_eq!(settings.ca_bundle.as_deref(), Some(bundle.as_bytes()));
    assert_eq!(settings.ca_files, [dir.join("fleet.pem"), dir.join("root.pem")]);
    assert_eq!(
        settings.manifest_url,
        "https://ota.example.com/fleet/stable/manifest.json"
    );
    let consts = constants(&settings.render());
    assert_eq!(consts["CA_CERTS"], format!("Some({bundle:?}.as_bytes())"));

    for (file, needles) in [
        ("key.pem", &["key.pem holds no PEM certificate"][..]),
        ("missing.pem", &["cannot read", "missing.pem"][..]),
    ] {
        let e = firmware(&path, &text(&format!("{file:?}")), Chip::Esp32c6, &keys).unwrap_err();
        let message = e.to_string();
        assert_eq!(
            (e.kind(), e.key()),
            (ProfileErrorKind::BadValue, Some("release.ca_certs")),
            "{message}"
        );
        assert!(needles.iter().all(|n| message.contains(n)), "{message}");
        assert!(!e.help().is_empty(), "{message}");
    }

    // One file on the modem takes at most 10,240 bytes: a larger bundle is refused at build.
    let body = "A".repeat(64);
    let big = format!(
        "-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n",
        format!("{body}\n").repeat(170)
    );
    fs::write(dir.join("big.pem"), &big).unwrap();
    let e = firmware(&path, &text("\"big.pem\""), Chip::Esp32c6, &keys).unwrap_err();
    let message = e.to_string();
    assert_eq!(e.key(), Some("release.ca_certs"), "{message}");
    assert!(
        message.contains(&format!("{} bytes", big.len())) && message.contains("10240"),
        "{message}"
    );

    let plain = firmware(
        &profiles_dir().join("esp32c6-sim7600.toml"),
        &text("").replace("https", "http"),
        Chip::Esp32c6,
        &keys,
    );
    assert_eq!(constants(&plain.unwrap().render())["CA_CERTS"], "None");
}
