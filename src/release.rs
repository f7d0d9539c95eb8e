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
//!    step 1 ([`crate::channel::replace`]), after the one it replaces is copied to the
//!    channel's history; a release that raced another (or an `otactl rollout` change) fails
//!    here, and the bucket still holds the other's complete release.
//!
//! `--rollout` stages it: the manifest carries `rollout {percent, state: "active"}`
//! ([`device_fw::wire::rollout`]), and `otactl rollout` widens it from there.

use std::path::PathBuf;
use std::time::SystemTime;

use device_fw::esp::chip::Chip;
use device_fw::esp::image::ImageError as ParseError;
use device_fw::wire::compressed;
use device_fw::wire::manifest::{self, Alternate, Manifest, ManifestError, Patch};
use device_fw::wire::rollout::{DeviceList, Rollout, RolloutState};
use miette::Diagnostic;

use crate::bucket::{Bucket, BucketError, ImageUpload};
use crate::channel::{self, ChannelError, Expected, Held, ReplaceError};
use crate::image;
use crate::keys::SigningKeySource;

mod decide;
mod delta_patch;
mod firmware;

use decide::{Decision, decide};
use delta_patch::{ListedPatch, listed_patch, patch_from_previous};

/// The variable the firmware's build script reads the profile from.
pub const PROFILE_ENV: &str = "OTACTL_PROFILE";

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
    /// The channel's manifest, and what was done to it.
    pub manifest: channel::Objects,
    /// Where devices fetch them, from the profile's `release.device_url`.
    pub device_manifest_url: Option<String>,
    pub device_image_url: Option<String>,
    /// `uploaded`, `uploaded-multipart`, `present`, or with a dry run `would-upload`.
    pub image_upload: Option<&'static str>,
    /// The compressed form (`images/<sha256>.otz2`): key, size, upload as for the image.
    pub compressed_key: Option<String>,
    pub compressed_size: Option<u64>,
    pub compressed_upload: Option<&'static str>,
    /// The patch from the channel's previous release (`images/<sha256>.from-<base>.otd`):
    /// key, size, upload as for the image, and the version it is applied to.
    pub delta_key: Option<String>,
    pub delta_size: Option<u64>,
    pub delta_upload: Option<&'static str>,
    pub delta_base: Option<String>,
    /// Why no patch was published although the channel had a release to patch from.
    pub delta_skipped: Option<String>,
    /// The channel's manifest before this release.
    pub previous: Option<Held>,
    /// The percentage the release was published to, staged.
    pub rollout: Option<u8>,
}

/// Why a release did not happen. [`ReleaseError::exit_code`]: 1 when the release itself was
/// refused (the image, its version, the channel's state, a lost race), 2 when otactl could
/// not do its job (arguments, files, keys, the build, the bucket).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Channel(#[from] ChannelError),

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

    #[error("the patch from the channel's previous release could not be made: {0}")]
    #[diagnostic(
        code(otactl::release::delta),
        help(
            "this is a bug in otactl's patch encoder; report it with both images (`otactl image diff --from OLD --to NEW` shows the same error)"
        )
    )]
    Delta(device_fw::wire::delta::DeltaError),
    #[error("the image could not be put in the compressed form: {0}")]
    #[diagnostic(
        code(otactl::release::compress),
        help("this is a bug in otactl's encoder; release with an otactl that has it fixed")
    )]
    Compress(device_fw::wire::compressed::CompressedError),

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
            "another release (or an `otactl rollout` change) was written to the channel while this one ran; nothing of this release is visible to devices. Run it again to release on top of the other one"
        )
    )]
    LostRace {
        channel: String,
        detail: String,
        winner: String,
    },
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

/// Makes, signs and publishes the release `req` describes, for every device.
pub fn release(req: &Request, progress: &mut dyn Progress, report: &mut Report) -> Result<Outcome, ReleaseError> {
    release_staged(req, None, progress, report)
}

/// [`release`], staged when `rollout` is given (`--rollout`): only that percentage of the
/// fleet may take it ([`device_fw::wire::rollout`]), widened later with `otactl rollout`.
pub fn release_staged(
    req: &Request,
    rollout: Option<u8>,
    progress: &mut dyn Progress,
    report: &mut Report,
) -> Result<Outcome, ReleaseError> {
    let loaded = channel::load_profile(&req.profile)?;
    let profile = &loaded.profile;
    let chip = profile.device.chip;
    let channel = loaded.channel(req.channel.as_deref())?;
    report.product = Some(profile.device.product.clone());
    report.chip = Some(chip.as_str().to_owned());
    report.board = Some(profile.device.board.clone());
    report.channel = Some(channel.clone());
    report.rollout = rollout;
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
    let trusted_keys = loaded.trusted_keys()?;
    let signer = channel::signer(&req.key, &trusted_keys)?;
    for warning in signer.warnings {
        progress.warn(format!("{:?}", miette::Report::new(warning)));
    }
    progress.step("key", format!("{} (key id {})", req.key, signer.key_id));
    report.key_id = Some(signer.key_id.clone());
    let trusted = channel::raw_keys(&trusted_keys);

    let bucket = loaded.bucket(req.bucket.as_deref(), req.endpoint.as_deref(), !req.dry_run)?;
    report.bucket = Some(bucket.url().to_owned());
    let manifest_key = channel::manifest_key(&channel);
    report.manifest = channel::Objects::at(&bucket, &channel);

    let runtime = channel::runtime()?;
    // Read before the build: it proves the bucket is reachable with these credentials, and
    // its version is what the final conditional write must still find.
    let current = runtime.block_on(bucket.read_manifest(&manifest_key))?;
    let previous = current.as_ref().map(|c| channel::inspect(&c.bytes, &trusted));
    report.previous = previous.clone();
    progress.step(
        "bucket",
        match &previous {
            None => format!("{}: channel {channel} has no release yet", bucket.url()),
            Some(p) => format!(
                "{}: channel {channel} holds {}{}",
                bucket.url(),
                p.version().unwrap_or("an unreadable manifest"),
                if p.verified { "" } else { " (UNVERIFIED)" }
            ),
        },
    );

    let bytes = firmware::obtain_image(req, profile, report, progress)?;
    let firmware::ImageFacts {
        version,
        secure_version,
        sha256,
        slot,
    } = firmware::check_image(&bytes, req, profile, progress, report)?;
    let image_key = format!("images/{sha256}.bin");
    report.image_key = Some(image_key.clone());
    // The compressed form, beside the raw image under the same hash: devices that read the
    // manifest's `lzma` fetch it, older ones the raw image.
    let packed = compressed::compress(&bytes).map_err(ReleaseError::Compress)?;
    let packed_key = format!("images/{sha256}.otz2");
    report.compressed_key = Some(packed_key.clone());
    report.compressed_size = Some(packed.len() as u64);
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
    // A patch from the release devices run now, when the bucket still holds its image.
    let patch = match decision {
        Decision::Unchanged => None,
        _ => patch_from_previous(
            &runtime,
            &bucket,
            previous.as_ref(),
            &bytes,
            packed.len(),
            progress,
            report,
        )?,
    };
    let patch_ref = patch.as_ref().map(|p| format!("../{}", p.key));

    // `../images/…`: the manifest lives at `<channel>/manifest.json`, and devices resolve the
    // reference against the manifest's URL, so the bucket can move without re-signing.
    let image_ref = format!("../{image_key}");
    let packed_ref = format!("../{packed_key}");
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
        rollout: rollout.map(|percent| Rollout {
            percent,
            state: RolloutState::Active,
            devices: DeviceList::default(),
        }),
        compressed: Some(Alternate {
            image: &packed_ref,
            size: packed.len() as u32,
        }),
        delta: patch.as_ref().zip(patch_ref.as_deref()).map(|(p, image)| Patch {
            image,
            size: p.bytes.len() as u32,
            base_sha256: &p.base_sha256,
            base_size: p.base_size,
        }),
    };
    if let Some(p) = &patch {
        report.delta_key = Some(p.key.clone());
        report.delta_size = Some(p.bytes.len() as u64);
        report.delta_base = Some(p.base_version.clone());
    }
    let envelope = channel::seal(&manifest, &signer.key, &trusted).map_err(ReleaseError::Manifest)?;

    if decision == Decision::Unchanged {
        if rollout.is_some() {
            progress.warn(format!(
                "channel {channel} already holds {version}: --rollout is not applied; change its rollout with `otactl rollout set`"
            ));
        }
        // Its image may have been removed since; put it back, the manifest stays as it is.
        report.manifest.write = Some("unchanged");
        report.outcome = Some(Outcome::Unchanged);
        report.manifest_size = Some(current.as_ref().map_or(0, |c| c.bytes.len() as u64));
        report.image_upload = Some(if req.dry_run {
            let present = runtime.block_on(bucket.size_of(&image_key))? == Some(bytes.len() as u64);
            if present { "present" } else { "would-upload" }
        } else {
            upload(&runtime, &bucket, &image_key, &bytes, progress)?
        });
        // Only when the held manifest lists it (a release made before the compressed form
        // points devices at the raw image alone).
        if held_lists(previous.as_ref(), &packed_key) {
            report.compressed_upload = Some(if req.dry_run {
                let present = runtime.block_on(bucket.size_of(&packed_key))? == Some(packed.len() as u64);
                if present { "present" } else { "would-upload" }
            } else {
                upload(&runtime, &bucket, &packed_key, &packed, progress)?
            });
        }
        // The patch the held manifest lists, made again from its base if it went missing.
        match listed_patch(&runtime, &bucket, previous.as_ref(), &bytes, progress)? {
            Some(ListedPatch::Present { key, size }) => {
                (report.delta_key, report.delta_size) = (Some(key), Some(u64::from(size)));
                report.delta_upload = Some("present");
            }
            Some(ListedPatch::Restored { key, bytes: patch }) => {
                report.delta_size = Some(patch.len() as u64);
                report.delta_upload = Some(if req.dry_run {
                    "would-upload"
                } else {
                    upload(&runtime, &bucket, &key, &patch, progress)?
                });
                report.delta_key = Some(key);
            }
            None => {}
        }
        progress.step(
            "publish",
            format!("channel {channel} already holds {version} with this image"),
        );
        return Ok(Outcome::Unchanged);
    }
    report.created = Some(created);
    report.manifest_size = Some(envelope.len() as u64);
    let staged = rollout.map_or_else(String::new, |p| format!(", rollout {p} %"));
    progress.step(
        "sign",
        format!("manifest {} bytes, key id {}{staged}", envelope.len(), signer.key_id),
    );

    if req.dry_run {
        let present = runtime.block_on(bucket.size_of(&image_key))? == Some(bytes.len() as u64);
        report.image_upload = Some(if present { "present" } else { "would-upload" });
        let present = runtime.block_on(bucket.size_of(&packed_key))? == Some(packed.len() as u64);
        report.compressed_upload = Some(if present { "present" } else { "would-upload" });
        if let Some(p) = &patch {
            let present = runtime.block_on(bucket.size_of(&p.key))? == Some(p.bytes.len() as u64);
            report.delta_upload = Some(if present { "present" } else { "would-upload" });
        }
        report.manifest.write = Some(if current.is_some() {
            "would-replace"
        } else {
            "would-create"
        });
        report.outcome = Some(Outcome::DryRun);
        progress.step("dry run", "nothing written".to_owned());
        return Ok(Outcome::DryRun);
    }

    report.image_upload = Some(upload(&runtime, &bucket, &image_key, &bytes, progress)?);
    // Every object is in place before the manifest that names them.
    report.compressed_upload = Some(upload(&runtime, &bucket, &packed_key, &packed, progress)?);
    if let Some(p) = &patch {
        report.delta_upload = Some(upload(&runtime, &bucket, &p.key, &p.bytes, progress)?);
    }
    let expected = current
        .as_ref()
        .zip(previous.as_ref())
        .map(|(current, held)| Expected { current, held });
    let written = runtime.block_on(channel::replace(&bucket, &channel, &envelope, expected, &trusted));
    match written {
        Ok(written) => {
            report.manifest.written(&bucket, &written);
            report.outcome = Some(Outcome::Published);
            let replaced = previous.as_ref().and_then(Held::version).map_or_else(
                || "first release on the channel".to_owned(),
                |v| format!("replaces {v}"),
            );
            progress.step("publish", format!("{manifest_key} ({replaced}, conditional write)"));
            Ok(Outcome::Published)
        }
        Err(ReplaceError::Bucket(e)) => Err(e.into()),
        Err(ReplaceError::Conflict { detail, now }) => {
            // A job that raced an identical one has what it wanted.
            if let Some(facts) = now.as_ref().filter(|w| w.verified).and_then(|w| w.facts.as_ref())
                && facts.version == version
                && facts.sha256 == sha256
            {
                report.manifest.write = Some("unchanged");
                report.outcome = Some(Outcome::Unchanged);
                progress.step("publish", format!("a concurrent job published the same {version}"));
                return Ok(Outcome::Unchanged);
            }
            let winner = match now.as_deref().and_then(Held::version) {
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

/// Whether the channel's held manifest names `key` as its compressed form.
fn held_lists(held: Option<&Held>, key: &str) -> bool {
    held.and_then(|h| h.facts.as_ref())
        .and_then(|f| f.compressed.as_ref())
        .is_some_and(|(image, _)| image.strip_prefix("../") == Some(key))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            ReleaseError::Channel(ChannelError::NoBucket { profile: "p".into() }).exit_code(),
            2
        );
    }
}
