//! Making and publishing a release: the work behind `otactl release`, without its terminal
//! or JSON output (that is `cli/release.rs`, fed through [`Progress`] and [`Report`]).
//!
//! The order is what makes it safe to run twice and from two jobs at once:
//!
//! 1. Everything that can be checked locally is checked before a byte is written: profile,
//!    keys (the signing key must be one the profile's devices trust), the bucket's current
//!    manifest (read and verified), the image (structure, chip, slot size, app descriptor
//!    version against `--version`), the release decision (newer than the channel's), the
//!    manifest (validated and signed).
//! 2. The image goes up under its SHA-256 (`images/<sha256>.bin`): a new key, or the same
//!    bytes as before, so it never changes what a device already sees.
//! 3. The manifest is written last, in one conditional write against the version read in
//!    step 1 ([`crate::bucket`]); a release that raced another fails here, and the bucket
//!    still holds the other's complete release.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use device_fw::esp::chip::Chip;
use device_fw::esp::image::{AppImage, ImageError as ParseError};
use device_fw::profile::Profile;
use device_fw::wire::manifest::{
    self, MAX_ENVELOPE, MAX_PAYLOAD, Manifest, ManifestError, PayloadBuf, key_id, limits, write_hex,
};
use device_fw::wire::semver::Version;
use ed25519_dalek::VerifyingKey;
use miette::Diagnostic;
use sha2::{Digest as _, Sha256};

use crate::bucket::{Bucket, BucketError, Current, ImageUpload, Location, PutError};
use crate::image::{self, FlashFreq, FlashMode, FlashSettings, FlashSize};
use crate::keys::{self, KeyError, SigningKeySource};

/// No ESP flash is larger than 16 MiB, so neither is an app image.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;
/// A firmware ELF with debug info can be large, but not this large.
const MAX_ELF: u64 = 256 * 1024 * 1024;
/// The variable the firmware's build script reads the profile from.
pub const PROFILE_ENV: &str = "OTACTL_PROFILE";
/// cargo's error output kept for the report when the build fails.
const BUILD_TAIL_LINES: usize = 40;

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Build the profile's firmware with cargo.
    Build,
    /// A firmware ELF from any ESP-IDF-compatible toolchain.
    Elf(PathBuf),
    /// A ready app image (Arduino, ESP-IDF, `otactl image`), released as it is.
    Image(PathBuf),
}

/// What to release, as the command line said it.
#[derive(Debug, Clone)]
pub struct Request {
    pub profile: PathBuf,
    pub version: Option<String>,
    pub channel: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub source: Source,
    pub key: SigningKeySource,
    pub allow_downgrade: bool,
    pub dry_run: bool,
    /// Keep cargo's own output for the error report (a terminal with progress bars) rather
    /// than passing it through to stderr.
    pub capture_build_output: bool,
}

/// What the release reports while it works; the CLI draws it.
pub trait Progress {
    /// A step is done; `detail` says what it found.
    fn step(&mut self, name: &'static str, detail: String);
    fn warn(&mut self, text: String);
    fn build_started(&mut self, command: &str);
    /// cargo finished compiling one more unit (`name`), `done` so far.
    fn build_unit(&mut self, name: &str, done: usize);
    fn build_finished(&mut self);
    fn upload_started(&mut self, key: &str, total: u64);
    fn upload_progress(&mut self, sent: u64);
    fn upload_finished(&mut self);
}

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest now names this release.
    Published,
    /// The channel already held this version with this image: nothing to do.
    Unchanged,
    /// Everything checked and signed; nothing written.
    DryRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Unchanged => "unchanged",
            Outcome::DryRun => "dry-run",
        }
    }
}

/// The channel's manifest before this release.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    /// Verified with one of the profile's public keys; if not, the fields below are what it
    /// claims, and `problem` says why it did not verify.
    pub verified: bool,
    pub problem: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub secure_version: Option<u32>,
    pub product: Option<String>,
    pub chip: Option<String>,
    pub board: Option<String>,
}

/// Everything learned, filled in as the release goes, so that a failed release still
/// reports what it got to.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcome: Option<Outcome>,
    pub product: Option<String>,
    pub chip: Option<String>,
    pub board: Option<String>,
    pub channel: Option<String>,
    pub bucket: Option<String>,
    pub key_id: Option<String>,
    /// `build`, `elf` or `image`.
    pub source: Option<&'static str>,
    pub elf: Option<PathBuf>,
    pub version: Option<String>,
    pub secure_version: Option<u32>,
    pub project: Option<String>,
    pub sha256: Option<String>,
    pub image_size: Option<u64>,
    pub manifest_size: Option<u64>,
    pub created: Option<String>,
    pub image_key: Option<String>,
    pub image_url: Option<String>,
    pub manifest_key: Option<String>,
    pub manifest_url: Option<String>,
    /// Where devices fetch them, from the profile's `release.device_url`.
    pub device_manifest_url: Option<String>,
    pub device_image_url: Option<String>,
    /// `uploaded`, `uploaded-multipart`, `present`, or with a dry run `would-upload`.
    pub image_upload: Option<&'static str>,
    /// `created`, `replaced`, `unchanged`, or with a dry run `would-create`/`would-replace`.
    pub manifest_write: Option<&'static str>,
    pub previous: Option<Previous>,
}

/// Why a release did not happen. [`ReleaseError::exit_code`]: 1 when the release itself was
/// refused (the image, its version, the channel's state, a lost race), 2 when otactl could
/// not do its job (arguments, files, keys, the build, the bucket).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("{0}")]
    #[diagnostic(
        code(otactl::release::profile),
        help("fix the profile; `otactl profile check` shows every problem")
    )]
    Profile(String),

    #[error("`{name}` is not a channel name: {reason}")]
    #[diagnostic(
        code(otactl::release::channel),
        help("use 1 to 32 lowercase letters, digits, '-', '_' or '.'")
    )]
    BadChannel { name: String, reason: String },

    #[error("no bucket to publish to")]
    #[diagnostic(
        code(otactl::release::no_bucket),
        help("pass --bucket URL, or set `bucket = \"…\"` under [release] in {profile}")
    )]
    NoBucket { profile: String },

    #[error("{profile} lists no [release] public_keys")]
    #[diagnostic(
        code(otactl::release::no_public_keys),
        help(
            "add the .pub file `otactl keygen` wrote, e.g. public_keys = [\"../keys/otactl.pub\"]: devices trust those keys, and otactl checks the signing key and the channel's manifest against them"
        )
    )]
    NoPublicKeys { profile: String },

    #[error("public key {path} of the profile: {source}")]
    #[diagnostic(
        code(otactl::release::public_key),
        help("the profile's public_keys are relative to the profile file")
    )]
    PublicKey {
        path: String,
        #[source]
        source: KeyError,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] KeyError),

    #[error("the signing key (key id {key_id}) is not one the profile's devices trust ({trusted})")]
    #[diagnostic(
        code(otactl::release::untrusted_key),
        help(
            "devices would reject the release with `unknown-key`: sign with the key whose .pub is listed in [release] public_keys, or ship a firmware that trusts this key first"
        )
    )]
    UntrustedKey { key_id: String, trusted: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Bucket(#[from] BucketError),

    #[error("cannot read the {what} {path}: {reason}")]
    #[diagnostic(code(otactl::release::read), help("check the path"))]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },

    #[error("the {what} {path} is {size} bytes, more than any {what} for an ESP chip")]
    #[diagnostic(code(otactl::release::read), help("check the path: this is not the file meant"))]
    TooLargeFile {
        what: &'static str,
        path: String,
        size: u64,
    },

    #[error("cannot run {cargo}: {reason}")]
    #[diagnostic(
        code(otactl::release::cargo),
        help("install Rust (rustup), or pass --elf FILE or --image FILE built elsewhere")
    )]
    Cargo { cargo: String, reason: String },

    #[error("the firmware build failed ({status}){output}")]
    #[diagnostic(
        code(otactl::release::build),
        help(
            "ran: {command}\nfor a missing target: `rustup target add {target}` (Xtensa chips need Espressif's toolchain, `espup install`); or pass --elf/--image"
        )
    )]
    Build {
        status: String,
        command: String,
        target: String,
        output: String,
    },

    #[error("cargo built no binary `{bin}` for {target}")]
    #[diagnostic(code(otactl::release::build), help("check [build] package and bin in the profile"))]
    NoArtifact { bin: String, target: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Elf(#[from] image::ImageError),

    #[error("{path} is not an image a device would boot: {error}")]
    #[diagnostic(
        code(otactl::release::bad_image),
        help(
            "pass the app image (.bin) the toolchain made, not the bootloader, a merged flash image or the ELF (use --elf for that)"
        )
    )]
    BadImage { path: String, error: ParseError },

    #[error("the image is for {image}, but the profile's device is {profile}")]
    #[diagnostic(
        code(otactl::release::wrong_chip),
        help(
            "devices would reject it (`image-wrong-chip`): build for the profile's chip, or use the profile of the device the image is for"
        )
    )]
    WrongChip { image: String, profile: Chip },

    #[error("the image is {size} bytes; the smaller OTA slot of the profile holds {slot}")]
    #[diagnostic(
        code(otactl::release::too_big),
        help("devices would reject it (`image-too-large`): make the firmware smaller or the slots larger")
    )]
    TooBig { size: u64, slot: u32 },

    #[error("the image's app descriptor has no readable version")]
    #[diagnostic(
        code(otactl::release::no_version),
        help("set the firmware's version (Cargo.toml version, ESP-IDF PROJECT_VER)")
    )]
    NoVersion,

    #[error("the image's app version `{version}` is not semver: {reason}")]
    #[diagnostic(
        code(otactl::release::not_semver),
        help(
            "devices compare versions as semver (1.4.2, 1.5.0-rc.1): set the firmware's version (Cargo.toml version, ESP-IDF PROJECT_VER)"
        )
    )]
    NotSemver { version: String, reason: String },

    #[error("--version {given} does not match the image, whose app descriptor says {image}")]
    #[diagnostic(
        code(otactl::release::version_mismatch),
        help(
            "the version released is the image's own; bump it in the firmware (Cargo.toml, PROJECT_VER) and rebuild, or fix the tag"
        )
    )]
    VersionMismatch { given: String, image: String },

    #[error("the release would not be a valid manifest: {0}")]
    #[diagnostic(
        code(otactl::release::manifest),
        help("devices would reject it; versions are semver (1.4.2), names lowercase [a-z0-9._-]")
    )]
    Manifest(ManifestError),

    #[error("channel {channel} holds a release for {holds}; this profile is for {ours}")]
    #[diagnostic(
        code(otactl::release::other_product),
        help(
            "give each product and board its own bucket or prefix; devices of the other one would reject this release"
        )
    )]
    OtherProduct {
        channel: String,
        holds: String,
        ours: String,
    },

    #[error("channel {channel} holds {current}; {version} is not newer{detail}")]
    #[diagnostic(
        code(otactl::release::downgrade),
        help(
            "bump the version, or pass --allow-downgrade (devices that run {current} will still refuse an older version)"
        )
    )]
    Downgrade {
        channel: String,
        current: String,
        version: String,
        detail: String,
    },

    #[error("channel {channel}'s current release has secure_version {current}; this image has {image}")]
    #[diagnostic(
        code(otactl::release::secure_version),
        help(
            "devices refuse a lower anti-rollback version (`secure-version-too-low`); pass --allow-downgrade only to publish it anyway"
        )
    )]
    SecureVersionDown { channel: String, current: u32, image: u32 },

    #[error("channel {channel}'s current manifest does not verify with the profile's public keys: {problem}")]
    #[diagnostic(
        code(otactl::release::current_unverified),
        help(
            "otactl cannot tell which version it holds, so it will not replace it; check it with `otactl verify`, or pass --allow-downgrade to replace it anyway"
        )
    )]
    CurrentUnverified { channel: String, problem: String },

    #[error("lost a race on channel {channel}: {detail}{winner}")]
    #[diagnostic(
        code(otactl::release::lost_race),
        help(
            "another release was published to the channel while this one ran; nothing of this release is visible to devices. Run it again to release on top of the other one"
        )
    )]
    LostRace {
        channel: String,
        detail: String,
        winner: String,
    },

    #[error("cannot start the I/O runtime: {0}")]
    #[diagnostic(code(otactl::release::runtime))]
    Runtime(String),
}

impl ReleaseError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ReleaseError::Elf(_)
            | ReleaseError::BadImage { .. }
            | ReleaseError::WrongChip { .. }
            | ReleaseError::TooBig { .. }
            | ReleaseError::NoVersion
            | ReleaseError::NotSemver { .. }
            | ReleaseError::VersionMismatch { .. }
            | ReleaseError::Manifest(_)
            | ReleaseError::OtherProduct { .. }
            | ReleaseError::Downgrade { .. }
            | ReleaseError::SecureVersionDown { .. }
            | ReleaseError::CurrentUnverified { .. }
            | ReleaseError::LostRace { .. } => 1,
            _ => 2,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out).to_owned()
}

fn key_id_hex(key: &VerifyingKey) -> String {
    hex(&key_id(key.as_bytes()))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > limits::CHANNEL {
        return Err(format!("it must be 1 to {} bytes", limits::CHANNEL));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("it has characters other than a-z, 0-9, '.', '_' and '-'".into());
    }
    Ok(())
}

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
        ReleaseError::Profile(format!("otactl cannot make images for a {} flash", profile.flash.size))
    })?;
    // By name: the profile's enums are non-exhaustive, and the names are esptool's in both.
    let unsupported = |what: &str| ReleaseError::Profile(format!("otactl cannot make images with flash {what}"));
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

/// What the decision needs from the channel's current manifest.
fn inspect_current(current: &Current, trusted: &[[u8; 32]]) -> Previous {
    let mut buf = PayloadBuf::default();
    match manifest::open(&current.bytes, trusted, &mut buf) {
        Ok((m, _)) => Previous {
            verified: true,
            problem: None,
            version: Some(m.version.to_owned()),
            sha256: Some(m.sha256.to_owned()),
            secure_version: Some(m.secure_version),
            product: Some(m.product.to_owned()),
            chip: Some(m.chip.to_owned()),
            board: Some(m.board.to_owned()),
        },
        Err(e) => {
            let mut unverified = PayloadBuf::default();
            let claimed = manifest::decode_unverified(&current.bytes, &mut unverified)
                .ok()
                .and_then(|p| Manifest::parse(p).ok());
            Previous {
                verified: false,
                problem: Some(e.to_string()),
                version: claimed.map(|m| m.version.to_owned()),
                sha256: claimed.map(|m| m.sha256.to_owned()),
                secure_version: claimed.map(|m| m.secure_version),
                product: claimed.map(|m| m.product.to_owned()),
                chip: claimed.map(|m| m.chip.to_owned()),
                board: claimed.map(|m| m.board.to_owned()),
            }
        }
    }
}

/// What to do about the channel's current release.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Publish,
    Unchanged,
}

fn decide(
    previous: Option<&Previous>,
    ours: (&str, &str, &str),
    version: &str,
    sha256: &str,
    secure_version: u32,
    channel: &str,
    allow_downgrade: bool,
) -> Result<Decision, ReleaseError> {
    let Some(prev) = previous else {
        return Ok(Decision::Publish);
    };
    if !prev.verified {
        if allow_downgrade {
            return Ok(Decision::Publish);
        }
        return Err(ReleaseError::CurrentUnverified {
            channel: channel.to_owned(),
            problem: prev.problem.clone().unwrap_or_default(),
        });
    }
    let holds = (
        prev.product.as_deref().unwrap_or_default(),
        prev.chip.as_deref().unwrap_or_default(),
        prev.board.as_deref().unwrap_or_default(),
    );
    if holds != ours {
        let show = |(p, c, b): (&str, &str, &str)| format!("{p} on {c} ({b})");
        return Err(ReleaseError::OtherProduct {
            channel: channel.to_owned(),
            holds: show(holds),
            ours: show(ours),
        });
    }
    let current = prev.version.as_deref().unwrap_or_default();
    let same_image = prev.sha256.as_deref() == Some(sha256);
    if current == version && same_image {
        return Ok(Decision::Unchanged);
    }
    if allow_downgrade {
        return Ok(Decision::Publish);
    }
    // Both parsed before: a verified manifest's version is semver, and so is ours.
    let order = match (Version::parse(version), Version::parse(current)) {
        (Ok(new), Ok(old)) => new.precedence(&old),
        _ => Ordering::Less,
    };
    if order != Ordering::Greater {
        let detail = if order == Ordering::Equal {
            format!(
                " (the same version with another image, sha256 {}…; devices that have it would never take this one)",
                prev.sha256.as_deref().unwrap_or_default().get(..12).unwrap_or_default()
            )
        } else {
            String::new()
        };
        return Err(ReleaseError::Downgrade {
            channel: channel.to_owned(),
            current: current.to_owned(),
            version: version.to_owned(),
            detail,
        });
    }
    if let Some(current) = prev.secure_version
        && secure_version < current
    {
        return Err(ReleaseError::SecureVersionDown {
            channel: channel.to_owned(),
            current,
            image: secure_version,
        });
    }
    Ok(Decision::Publish)
}

/// The image bytes and where they came from.
fn obtain_image(
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

/// The signing key, and the public keys the profile's devices trust (which must include
/// the signing key's).
fn load_keys(
    req: &Request,
    profile: &Profile,
    profile_dir: &Path,
    progress: &mut dyn Progress,
    report: &mut Report,
) -> Result<(ed25519_dalek::SigningKey, Vec<[u8; 32]>), ReleaseError> {
    if profile.release.public_keys.is_empty() {
        return Err(ReleaseError::NoPublicKeys {
            profile: req.profile.display().to_string(),
        });
    }
    let mut trusted = Vec::new();
    for file in &profile.release.public_keys {
        let path = profile_dir.join(file);
        let key = keys::load_verifying_key(&path).map_err(|source| ReleaseError::PublicKey {
            path: path.display().to_string(),
            source,
        })?;
        trusted.push(key);
    }
    let loaded = keys::load_signing_key(&req.key)?;
    for warning in loaded.warnings {
        progress.warn(format!("{:?}", miette::Report::new(warning)));
    }
    let signer_id = key_id_hex(&loaded.key.verifying_key());
    if !trusted.contains(&loaded.key.verifying_key()) {
        return Err(ReleaseError::UntrustedKey {
            key_id: signer_id,
            trusted: trusted.iter().map(key_id_hex).collect::<Vec<_>>().join(", "),
        });
    }
    progress.step("key", format!("{} (key id {signer_id})", req.key));
    report.key_id = Some(signer_id);
    Ok((loaded.key, trusted.iter().map(VerifyingKey::to_bytes).collect()))
}

/// What a release needs to know about its image, checked the way a device checks it.
#[derive(Debug)]
struct ImageFacts {
    version: String,
    secure_version: u32,
    sha256: String,
    /// The smaller OTA slot, which the image fits.
    slot: u32,
}

/// Structure, chip, slot size and app descriptor (semver version, equal to `--version`).
fn check_image(
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

/// Makes, signs and publishes the release `req` describes.
pub fn release(req: &Request, progress: &mut dyn Progress, report: &mut Report) -> Result<Outcome, ReleaseError> {
    let profile = Profile::load(&req.profile).map_err(|e| ReleaseError::Profile(e.to_string()))?;
    let profile_dir = match req.profile.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let chip = profile.device.chip;
    let channel = req.channel.clone().unwrap_or_else(|| profile.release.channel.clone());
    check_name(&channel).map_err(|reason| ReleaseError::BadChannel {
        name: channel.clone(),
        reason,
    })?;
    report.product = Some(profile.device.product.clone());
    report.chip = Some(chip.as_str().to_owned());
    report.board = Some(profile.device.board.clone());
    report.channel = Some(channel.clone());
    progress.step(
        "profile",
        format!(
            "{}: {} on {} ({}), channel {channel}",
            req.profile.display(),
            profile.device.product,
            chip,
            profile.device.board
        ),
    );

    // Keys first: a missing secret should fail a CI job before a long build, not after.
    let (signing, trusted) = load_keys(req, &profile, &profile_dir, progress, report)?;
    let signer_id = report.key_id.clone().unwrap_or_default();
    let profile_name = req.profile.display().to_string();

    let (bucket_text, bucket_base) = match (&req.bucket, &profile.release.bucket) {
        (Some(url), _) => (url.clone(), PathBuf::from(".")),
        (None, Some(url)) => (url.clone(), profile_dir.clone()),
        (None, None) => return Err(ReleaseError::NoBucket { profile: profile_name }),
    };
    let base = std::path::absolute(&bucket_base).unwrap_or(bucket_base);
    let location = Location::parse(&bucket_text, &base)?;
    let bucket = Bucket::open(&location, req.endpoint.as_deref(), !req.dry_run)?;
    report.bucket = Some(bucket.url().to_owned());
    let manifest_key = format!("{channel}/manifest.json");
    report.manifest_key = Some(manifest_key.clone());
    report.manifest_url = Some(bucket.object_url(&manifest_key));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReleaseError::Runtime(e.to_string()))?;
    // Read before the build: it proves the bucket is reachable with these credentials, and
    // its version is what the final conditional write must still find.
    let current = runtime.block_on(bucket.read_manifest(&manifest_key))?;
    let previous = current.as_ref().map(|c| inspect_current(c, &trusted));
    report.previous = previous.clone();
    progress.step(
        "bucket",
        match &previous {
            None => format!("{}: channel {channel} has no release yet", bucket.url()),
            Some(p) => format!(
                "{}: channel {channel} holds {}{}",
                bucket.url(),
                p.version.as_deref().unwrap_or("an unreadable manifest"),
                if p.verified { "" } else { " (UNVERIFIED)" }
            ),
        },
    );

    let bytes = obtain_image(req, &profile, report, progress)?;
    let ImageFacts {
        version,
        secure_version,
        sha256,
        slot,
    } = check_image(&bytes, req, &profile, progress, report)?;
    let image_key = format!("images/{sha256}.bin");
    report.image_key = Some(image_key.clone());
    report.image_url = Some(bucket.object_url(&image_key));
    if let Some(base) = &profile.release.device_url {
        let base = base.trim_end_matches('/');
        report.device_manifest_url = Some(format!("{base}/{manifest_key}"));
        report.device_image_url = Some(format!("{base}/{image_key}"));
    }
    let ours = (
        profile.device.product.as_str(),
        chip.as_str(),
        profile.device.board.as_str(),
    );
    let decision = decide(
        previous.as_ref(),
        ours,
        &version,
        &sha256,
        secure_version,
        &channel,
        req.allow_downgrade,
    )?;

    // `../images/…`: the manifest lives at `<channel>/manifest.json`, and devices resolve the
    // reference against the manifest's URL, so the bucket can move without re-signing.
    let image_ref = format!("../{image_key}");
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let size = u32::try_from(bytes.len()).map_err(|_| ReleaseError::TooBig {
        size: bytes.len() as u64,
        slot,
    })?;
    let manifest = Manifest {
        schema: manifest::SCHEMA,
        product: &profile.device.product,
        channel: &channel,
        version: &version,
        chip: chip.as_str(),
        board: &profile.device.board,
        image: &image_ref,
        size,
        sha256: &sha256,
        secure_version,
        created: &created,
        rollout: None,
    };
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = manifest.encode(&mut payload).map_err(ReleaseError::Manifest)?;
    let mut envelope = [0u8; MAX_ENVELOPE];
    let len = manifest::seal(&payload[..n], &[&signing], &mut envelope).map_err(ReleaseError::Manifest)?;
    let envelope = &envelope[..len];
    // What devices will check, checked here before anything is published.
    manifest::open(envelope, &trusted, &mut PayloadBuf::default()).map_err(ReleaseError::Manifest)?;

    if decision == Decision::Unchanged {
        // Its image may have been removed since; put it back, the manifest stays as it is.
        report.manifest_write = Some("unchanged");
        report.outcome = Some(Outcome::Unchanged);
        report.manifest_size = Some(current.as_ref().map_or(0, |c| c.bytes.len() as u64));
        report.image_upload = Some(if req.dry_run {
            let present = runtime.block_on(bucket.size_of(&image_key))? == Some(bytes.len() as u64);
            if present { "present" } else { "would-upload" }
        } else {
            upload(&runtime, &bucket, &image_key, &bytes, progress)?
        });
        progress.step(
            "publish",
            format!("channel {channel} already holds {version} with this image"),
        );
        return Ok(Outcome::Unchanged);
    }
    report.created = Some(created);
    report.manifest_size = Some(envelope.len() as u64);
    progress.step("sign", format!("manifest {} bytes, key id {signer_id}", envelope.len()));

    if req.dry_run {
        let present = runtime.block_on(bucket.size_of(&image_key))? == Some(bytes.len() as u64);
        report.image_upload = Some(if present { "present" } else { "would-upload" });
        report.manifest_write = Some(if current.is_some() {
            "would-replace"
        } else {
            "would-create"
        });
        report.outcome = Some(Outcome::DryRun);
        progress.step("dry run", "nothing written".to_owned());
        return Ok(Outcome::DryRun);
    }

    report.image_upload = Some(upload(&runtime, &bucket, &image_key, &bytes, progress)?);
    #[cfg(debug_assertions)]
    test_hold();
    let written = runtime.block_on(bucket.put_manifest(&manifest_key, envelope, current.as_ref()));
    match written {
        Ok(_) => {
            report.manifest_write = Some(if current.is_some() { "replaced" } else { "created" });
            report.outcome = Some(Outcome::Published);
            let replaced = previous.as_ref().and_then(|p| p.version.clone()).map_or_else(
                || "first release on the channel".to_owned(),
                |v| format!("replaces {v}"),
            );
            progress.step("publish", format!("{manifest_key} ({replaced}, conditional write)"));
            Ok(Outcome::Published)
        }
        Err(PutError::Bucket(e)) => Err(e.into()),
        Err(PutError::Conflict { detail }) => {
            // A job that raced an identical one has what it wanted.
            let now = runtime.block_on(bucket.read_manifest(&manifest_key)).ok().flatten();
            let winner = now.as_ref().map(|c| inspect_current(c, &trusted));
            if let Some(w) = &winner
                && w.verified
                && w.version.as_deref() == Some(version.as_str())
                && w.sha256.as_deref() == Some(sha256.as_str())
            {
                report.manifest_write = Some("unchanged");
                report.outcome = Some(Outcome::Unchanged);
                progress.step("publish", format!("a concurrent job published the same {version}"));
                return Ok(Outcome::Unchanged);
            }
            let winner = match winner.and_then(|w| w.version) {
                Some(v) => format!("; it now holds {v}"),
                None => String::new(),
            };
            Err(ReleaseError::LostRace {
                channel,
                detail,
                winner,
            })
        }
    }
}

fn upload(
    runtime: &tokio::runtime::Runtime,
    bucket: &Bucket,
    key: &str,
    bytes: &[u8],
    progress: &mut dyn Progress,
) -> Result<&'static str, ReleaseError> {
    progress.upload_started(key, bytes.len() as u64);
    let result = runtime.block_on(bucket.put_image(key, bytes, &mut |sent| progress.upload_progress(sent)));
    progress.upload_finished();
    let how = match result? {
        ImageUpload::Present => "present",
        ImageUpload::Uploaded { multipart: false } => "uploaded",
        ImageUpload::Uploaded { multipart: true } => "uploaded-multipart",
    };
    progress.step(
        "upload",
        match how {
            "present" => format!("{key} already in the bucket"),
            _ => format!("{key} ({} bytes)", bytes.len()),
        },
    );
    Ok(how)
}

/// Test builds only: holds the release between the image upload and the manifest write
/// until the file named by `OTACTL_TEST_HOLD` exists, after creating `<that>.<pid>.ready`.
/// The race tests use it to make two releases read the same manifest before either writes;
/// without it, which one reads first is luck.
#[cfg(debug_assertions)]
fn test_hold() {
    let Some(go) = std::env::var_os("OTACTL_TEST_HOLD").map(PathBuf::from) else {
        return;
    };
    let mut ready = go.clone().into_os_string();
    ready.push(format!(".{}.ready", std::process::id()));
    let _ = std::fs::write(&ready, b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prev(version: &str, sha: &str, secure: u32) -> Previous {
        Previous {
            verified: true,
            problem: None,
            version: Some(version.into()),
            sha256: Some(sha.into()),
            secure_version: Some(secure),
            product: Some("p".into()),
            chip: Some("esp32".into()),
            board: Some("b".into()),
        }
    }

    const OURS: (&str, &str, &str) = ("p", "esp32", "b");

    fn run(
        previous: Option<&Previous>,
        version: &str,
        sha: &str,
        secure: u32,
        allow: bool,
    ) -> Result<Decision, ReleaseError> {
        decide(previous, OURS, version, sha, secure, "stable", allow)
    }

    #[test]
    fn decisions() {
        assert_eq!(run(None, "1.0.0", "a", 0, false).unwrap(), Decision::Publish);
        let p = prev("1.2.0", "a", 1);
        assert_eq!(run(Some(&p), "1.2.0", "a", 1, false).unwrap(), Decision::Unchanged);
        assert_eq!(run(Some(&p), "1.3.0", "b", 1, false).unwrap(), Decision::Publish);
        assert!(matches!(
            run(Some(&p), "1.1.0", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert!(matches!(
            run(Some(&p), "1.2.0", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert!(matches!(
            run(Some(&p), "1.2.0-rc.1", "b", 1, false),
            Err(ReleaseError::Downgrade { .. })
        ));
        assert_eq!(run(Some(&p), "1.1.0", "b", 1, true).unwrap(), Decision::Publish);
        assert!(matches!(
            run(Some(&p), "1.3.0", "b", 0, false),
            Err(ReleaseError::SecureVersionDown { .. })
        ));
        let unverified = Previous {
            verified: false,
            problem: Some("bad".into()),
            ..Previous::default()
        };
        assert!(matches!(
            run(Some(&unverified), "9.0.0", "b", 0, false),
            Err(ReleaseError::CurrentUnverified { .. })
        ));
        assert_eq!(
            run(Some(&unverified), "0.1.0", "b", 0, true).unwrap(),
            Decision::Publish
        );
        let other = Previous {
            board: Some("other".into()),
            ..prev("1.0.0", "a", 0)
        };
        assert!(matches!(
            run(Some(&other), "2.0.0", "b", 0, true),
            Err(ReleaseError::OtherProduct { .. })
        ));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ReleaseError::NoVersion.exit_code(), 1);
        assert_eq!(
            ReleaseError::LostRace {
                channel: "s".into(),
                detail: String::new(),
                winner: String::new()
            }
            .exit_code(),
            1
        );
        assert_eq!(ReleaseError::NoBucket { profile: "p".into() }.exit_code(), 2);
    }
}
