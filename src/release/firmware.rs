//! The image a release ships: built from the profile's firmware, made from an ELF, or taken
//! as it is, and then checked the way a device checks it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use device_fw::esp::chip::Chip;
use device_fw::esp::image::AppImage;
use device_fw::profile::Profile;
use device_fw::wire::semver::Version;
use sha2::{Digest as _, Sha256};

use super::{PROFILE_ENV, Progress, ReleaseError, Report, Request, Source};
use crate::channel::{ChannelError, hex};
use crate::image::{self, FlashFreq, FlashMode, FlashSettings, FlashSize};

/// No ESP flash is larger than 16 MiB, so neither is an app image.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;
/// A firmware ELF with debug info can be large, but not this large.
const MAX_ELF: u64 = 256 * 1024 * 1024;
/// cargo's error output kept for the report when the build fails.
const BUILD_TAIL_LINES: usize = 40;

fn read_limited(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, ReleaseError> {
    let read_error = |e: std::io::Error| ReleaseError::Read {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(ReleaseError::TooLargeFile {
            what,
            path: path.display().to_string(),
            size,
        });
    }
    Ok(bytes)
}

/// The image header's flash settings from the profile.
fn flash_settings(profile: &Profile) -> Result<FlashSettings, ReleaseError> {
    let size = FlashSize::from_bytes(profile.flash.size.bytes()).ok_or_else(|| {
        ReleaseError::Channel(ChannelError::Profile(format!(
            "otactl cannot make images for a {} flash",
            profile.flash.size
        )))
    })?;
    // By name: the profile's enums are non-exhaustive, and the names are esptool's in both.
    let unsupported = |what: &str| {
        ReleaseError::Channel(ChannelError::Profile(format!(
            "otactl cannot make images with flash {what}"
        )))
    };
    let mode = <FlashMode as clap::ValueEnum>::from_str(profile.flash.mode.as_str(), true)
        .map_err(|_| unsupported(profile.flash.mode.as_str()))?;
    let freq = <FlashFreq as clap::ValueEnum>::from_str(profile.flash.freq.as_str(), true)
        .map_err(|_| unsupported(profile.flash.freq.as_str()))?;
    Ok(FlashSettings { mode, size, freq })
}

/// Runs the firmware build the profile describes and returns the ELF cargo reports.
fn build_firmware(
    profile_path: &Path,
    profile: &Profile,
    capture: bool,
    progress: &mut dyn Progress,
) -> Result<PathBuf, ReleaseError> {
    let chip = profile.device.chip;
    let build = &profile.build;
    let target = build.target_for(chip).to_owned();
    let features = build.features_for(chip).join(",");
    // Under `cargo run`, CARGO is the cargo that runs otactl: build with the same one.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    // The `firmware` cargo profile (workspace Cargo.toml): size-optimised with LTO, since
    // every byte of the image is airtime.
    let mut args = vec![
        "build".to_owned(),
        "--profile".into(),
        "firmware".into(),
        "-p".into(),
        build.package.clone(),
        "--bin".into(),
        build.bin.clone(),
        "--target".into(),
        target.clone(),
    ];
    if !features.is_empty() {
        args.extend(["--features".into(), features]);
    }
    let command = format!("cargo {}", args.join(" "));
    let profile_abs = std::path::absolute(profile_path).unwrap_or_else(|_| profile_path.to_owned());
    let mut child = Command::new(&cargo)
        .args(&args)
        .arg("--message-format=json-render-diagnostics")
        .env(PROFILE_ENV, &profile_abs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if capture { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .map_err(|e| ReleaseError::Cargo {
            cargo: cargo.to_string_lossy().into_owned(),
            reason: e.to_string(),
        })?;
    progress.build_started(&command);
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tail.len() == BUILD_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail.into_iter().collect::<Vec<_>>()
        })
    });
    let mut executable = None;
    let mut units = 0;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            units += 1;
            let name = msg["target"]["name"].as_str().unwrap_or_default();
            progress.build_unit(name, units);
            let is_bin = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin && name == build.bin {
                executable = msg["executable"].as_str().map(PathBuf::from);
            }
        }
    }
    let status = child.wait().map_err(|e| ReleaseError::Cargo {
        cargo: cargo.to_string_lossy().into_owned(),
        reason: e.to_string(),
    })?;
    let tail = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    progress.build_finished();
    if !status.success() {
        let output = if tail.is_empty() {
            String::new()
        } else {
            format!(":\n{}", tail.join("\n"))
        };
        return Err(ReleaseError::Build {
            status: status.to_string(),
            command,
            target,
            output,
        });
    }
    executable.ok_or(ReleaseError::NoArtifact {
        bin: build.bin.clone(),
        target,
    })
}

/// The image bytes and where they came from.
pub(super) fn obtain_image(
    req: &Request,
    profile: &Profile,
    report: &mut Report,
    progress: &mut dyn Progress,
) -> Result<Vec<u8>, ReleaseError> {
    let chip = profile.device.chip;
    let elf = match &req.source {
        Source::Image(path) => {
            report.source = Some("image");
            return read_limited("image", path, MAX_IMAGE);
        }
        Source::Elf(path) => {
            report.source = Some("elf");
            path.clone()
        }
        Source::Build => {
            report.source = Some("build");
            let elf = build_firmware(&req.profile, profile, req.capture_build_output, progress)?;
            progress.step(
                "build",
                format!("{} ({})", elf.display(), profile.build.target_for(chip)),
            );
            elf
        }
    };
    report.elf = Some(elf.clone());
    let bytes = read_limited("ELF", &elf, MAX_ELF)?;
    let made = image::elf_to_app_image(&bytes, chip, flash_settings(profile)?)?;
    Ok(made.bytes)
}

/// What a release needs to know about its image, checked the way a device checks it.
#[derive(Debug)]
pub(super) struct ImageFacts {
    pub version: String,
    pub secure_version: u32,
    pub sha256: String,
    /// The smaller OTA slot, which the image fits.
    pub slot: u32,
}

/// Structure, chip, slot size and app descriptor (semver version, equal to `--version`).
pub(super) fn check_image(
    bytes: &[u8],
    req: &Request,
    profile: &Profile,
    progress: &mut dyn Progress,
    report: &mut Report,
) -> Result<ImageFacts, ReleaseError> {
    let chip = profile.device.chip;
    let image_path = match &req.source {
        Source::Image(path) => path.display().to_string(),
        _ => "the image made from the ELF".to_owned(),
    };
    let app = AppImage::parse(bytes).map_err(|error| ReleaseError::BadImage {
        path: image_path.clone(),
        error,
    })?;
    if app.check_chip(chip.image_chip_id()).is_err() {
        let found = app.header.chip_id;
        let image = Chip::ALL
            .into_iter()
            .find(|c| c.image_chip_id() == found)
            .map_or_else(|| format!("chip id {found}"), |c| format!("{c} (chip id {found})"));
        return Err(ReleaseError::WrongChip { image, profile: chip });
    }
    if app.len < bytes.len() {
        progress.warn(format!(
            "{image_path} has {} bytes after the end of the app image; they are released as they are",
            bytes.len() - app.len
        ));
    }
    let slot = (0..2)
        .filter_map(|n| profile.ota_slot(n).map(|s| s.size))
        .min()
        .unwrap_or(0);
    if bytes.len() as u64 > u64::from(slot) {
        return Err(ReleaseError::TooBig {
            size: bytes.len() as u64,
            slot,
        });
    }
    let version = app.app_desc.version().ok_or(ReleaseError::NoVersion)?.to_owned();
    if version.is_empty() {
        return Err(ReleaseError::NoVersion);
    }
    report.version = Some(version.clone());
    if let Err(e) = Version::parse(&version) {
        return Err(ReleaseError::NotSemver {
            version,
            reason: e.to_string(),
        });
    }
    if let Some(given) = &req.version
        && *given != version
    {
        return Err(ReleaseError::VersionMismatch {
            given: given.clone(),
            image: version,
        });
    }
    let secure_version = app.app_desc.secure_version();
    let sha256 = hex(&Sha256::digest(bytes));
    report.secure_version = Some(secure_version);
    report.project = app.app_desc.project_name().map(str::to_owned);
    report.sha256 = Some(sha256.clone());
    report.image_size = Some(bytes.len() as u64);
    progress.step(
        "image",
        format!(
            "{} {version} (secure_version {secure_version}), {} bytes, sha256 {}…",
            report.project.as_deref().unwrap_or("app"),
            bytes.len(),
            &sha256[..16]
        ),
    );
    Ok(ImageFacts {
        version,
        secure_version,
        sha256,
        slot,
    })
}
