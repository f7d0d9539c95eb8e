//! Build-time configuration of the chip firmware (the `firmware` feature).
//!
//! A device has no file system to read its profile from, so the profile is compiled in:
//! this script reads the profile named by `OTACTL_PROFILE` (default: the chip's profile in
//! `profiles/`) and the release public keys it names, and writes `firmware_config.rs` into
//! `OUT_DIR`, which `src/bin/firmware` includes. It reads the profile with the crate's own
//! profile reader (`src/profile/reader`, included here by path because this script runs
//! before the crate exists), so the firmware and the host tools take one setting one way.
//! Every missing or invalid value stops the build with a message that names the file, the
//! key and what to do: a firmware built from a half-right profile would only fail in the
//! field.
//!
//! Host builds (no `firmware` feature) do nothing here, so tests and the bench never depend
//! on a profile or a key.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

// Only the firmware's part of the reader runs here (the rest is the crate's API), and its
// conversions to the includer's types are identities, which clippy would flag.
#[allow(dead_code, unused_imports, clippy::useless_conversion)]
#[path = "src/profile/reader/mod.rs"]
mod reader;

// The reader's closed sets, as the reader expects them from its parent: here, their names.
use reader::{ChipName as Chip, DialectName as Dialect};
use reader::{FirmwareSettings, KEYS_ENV, KeySource, PROFILE_ENV};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/profile/reader");
    if env::var_os("CARGO_FEATURE_FIRMWARE").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed={PROFILE_ENV}");
    println!("cargo:rerun-if-env-changed={KEYS_ENV}");

    let chip = chip_from_features();
    check_target(chip);
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("device-fw lives inside the workspace")
        .to_path_buf();

    let profile_path = match env::var_os(PROFILE_ENV) {
        Some(p) if !p.is_empty() => resolve(&workspace, Path::new(&p)),
        _ => workspace.join(default_profile(chip)),
    };
    println!("cargo:rerun-if-changed={}", profile_path.display());
    let text = fs::read_to_string(&profile_path).unwrap_or_else(|e| {
        panic!(
            "profile {}: cannot read it ({e}); set {PROFILE_ENV} to the device's profile (relative to the workspace root), or create {}",
            profile_path.display(),
            default_profile(chip)
        )
    });
    let keys = match env::var(KEYS_ENV) {
        Ok(list) if !list.trim().is_empty() => KeySource::Files(
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| resolve(&workspace, Path::new(s)))
                .collect(),
        ),
        _ => KeySource::Profile,
    };
    let settings =
        FirmwareSettings::from_text(&text, &profile_path, chip, keys).unwrap_or_else(|e| panic!("profile {e}"));
    for file in settings.key_files.iter().chain(&settings.ca_files) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    for warning in &settings.warnings {
        println!("cargo:warning=profile {}: {warning}", profile_path.display());
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("firmware_config.rs");
    fs::write(&out, settings.render()).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
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

/// The chip feature's chip: each chip feature is named as the chip.
fn chip_from_features() -> Chip {
    let on: Vec<Chip> = Chip::ALL
        .into_iter()
        .filter(|c| env::var_os(format!("CARGO_FEATURE_{}", c.as_str().to_uppercase())).is_some())
        .collect();
    match on[..] {
        [chip] => chip,
        [] => panic!(
            "device-fw: the `firmware` feature needs a chip; build with `--features esp32c3` or `--features esp32c6` instead"
        ),
        _ => panic!(
            "device-fw: features {} are all on; a firmware is built for one chip, pick one",
            on.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" and ")
        ),
    }
}

fn check_target(chip: Chip) {
    let target = env::var("TARGET").unwrap_or_default();
    if target != chip.target() {
        panic!(
            "device-fw: feature `{chip}` builds for target {want}, not {target}; run `cargo build --profile firmware -p device-fw --target {want} --features {chip}`",
            want = chip.target(),
        );
    }
}

/// The profile a chip's firmware is built from when `OTACTL_PROFILE` names none.
fn default_profile(chip: Chip) -> &'static str {
    match chip {
        Chip::Esp32c3 => "profiles/esp32c3-sim7080.toml",
        Chip::Esp32c6 => "profiles/esp32c6-sim7600.toml",
        _ => panic!(
            "device-fw: otactl-fw has no build for the {chip}; build it with `--features esp32c3` or `--features esp32c6`"
        ),
    }
}
