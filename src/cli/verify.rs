//! `otactl verify`: checks a published release the way a device will, so a bad release is
//! caught by a person or a CI job before a device spends a cellular download on it.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use device_fw::esp::chip::Chip;
use device_fw::esp::image::{AppImage, ImageError};
use device_fw::wire::manifest::{
    self, MAX_ENVELOPE, MAX_KEYS, Manifest, ManifestError, PayloadBuf, decode_unverified, key_id, write_hex,
};
use miette::Diagnostic;
use reqwest::Url;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error_text::error_chain as chain;
use crate::keys::{self, KeyError};

/// No ESP flash is larger than 16 MiB, so neither is an app image; reading stops there.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed manifest: a file, or an http:// or https:// URL.
    #[arg(value_name = "MANIFEST")]
    manifest: String,

    /// A trusted public key (the .pub file from `otactl keygen`). Give it twice during a key
    /// rotation, as devices then hold both keys.
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<PathBuf>,

    /// The image to check, instead of the one the manifest points to (file or URL).
    #[arg(long, value_name = "FILE|URL")]
    image: Option<String>,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// Why a release did not verify. Exit code 1 for what is wrong with the release, 2 for what
/// kept otactl from looking at it (arguments, files, network).
#[derive(Debug, thiserror::Error, Diagnostic)]
enum VerifyError {
    #[error("{given} --key options given; a device trusts at most {MAX_KEYS} keys at once")]
    #[diagnostic(
        code(otactl::verify::too_many_keys),
        help("pass the current key and, during a rotation, its successor")
    )]
    TooManyKeys { given: usize },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] KeyError),

    #[error("`{text}` is not a file path or an http(s) URL: {reason}")]
    #[diagnostic(code(otactl::verify::location))]
    Location { text: String, reason: String },

    #[error("cannot read {what} {location}: {reason}")]
    #[diagnostic(code(otactl::verify::read))]
    Read {
        what: &'static str,
        location: String,
        reason: String,
    },

    #[error("cannot fetch {what} {location}: {reason}")]
    #[diagnostic(
        code(otactl::verify::fetch),
        help("check the URL, and that the server is up and reachable from here")
    )]
    Fetch {
        what: &'static str,
        location: String,
        reason: String,
    },

    #[error("{what} {location} is {size}, more than the {limit} bytes a device reads")]
    #[diagnostic(
        code(otactl::verify::too_large),
        help("this is not an otactl release {what}; check the path")
    )]
    TooLarge {
        what: &'static str,
        location: String,
        size: String,
        limit: u64,
    },

    #[error("signature: {reason}")]
    #[diagnostic(code(otactl::verify::signature))]
    Signature {
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("manifest: {error}")]
    #[diagnostic(
        code(otactl::verify::manifest),
        help(
            "the signature is good but the manifest is not one a device accepts; publish it again with `otactl release`"
        )
    )]
    Manifest { error: ManifestError },

    #[error("the manifest's image reference `{reference}` cannot be resolved: {reason}")]
    #[diagnostic(
        code(otactl::verify::image_ref),
        help("pass the image with --image to check it anyway")
    )]
    ImageRef { reference: String, reason: String },

    #[error("size: image is {found} bytes, the manifest says {expected}")]
    #[diagnostic(
        code(otactl::verify::size),
        help("the image is truncated or not the one this manifest was made for")
    )]
    Size { found: u64, expected: u32 },

    #[error("sha256: image hash is {found}, the manifest says {expected}")]
    #[diagnostic(
        code(otactl::verify::sha256),
        help("the image was replaced or corrupted after the release was signed")
    )]
    Sha256 { found: String, expected: String },

    #[error("app image: {0}")]
    #[diagnostic(code(otactl::verify::app_image))]
    AppImage(ImageError),

    #[error("chip: the manifest's chip `{chip}` is not one otactl knows ({known})")]
    #[diagnostic(code(otactl::verify::unknown_chip))]
    UnknownChip { chip: String, known: String },

    #[error("chip: the image is built for {found}, the manifest says {manifest_chip}")]
    #[diagnostic(
        code(otactl::verify::chip),
        help("build the image for {manifest_chip} (or fix the manifest's chip)")
    )]
    Chip { found: String, manifest_chip: String },

    #[error("version: the image's app descriptor says {image}, the manifest says {manifest}")]
    #[diagnostic(
        code(otactl::verify::version),
        help("the manifest was made for another build; devices would report the wrong version")
    )]
    Version { image: String, manifest: String },

    #[error("secure_version: the image's app descriptor says {image}, the manifest says {manifest}")]
    #[diagnostic(
        code(otactl::verify::secure_version),
        help("sign the manifest with the secure_version the image was built with; devices refuse the mismatch")
    )]
    SecureVersion { image: u32, manifest: u32 },
}

impl VerifyError {
    fn exit_code(&self) -> u8 {
        match self {
            VerifyError::TooManyKeys { .. }
            | VerifyError::Key(_)
            | VerifyError::Location { .. }
            | VerifyError::Read { .. }
            | VerifyError::Fetch { .. } => 2,
            _ => 1,
        }
    }
}

/// A manifest or image location.
#[derive(Debug, Clone)]
enum Location {
    File(PathBuf),
    Url(Url),
}

impl Location {
    fn parse(text: &str) -> Result<Self, VerifyError> {
        let bad = |reason: String| VerifyError::Location {
            text: text.to_owned(),
            reason,
        };
        match text.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
                Url::parse(text).map(Location::Url).map_err(|e| bad(e.to_string()))
            }
            Some((scheme, _)) if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) => Err(bad(
                format!("{scheme}:// is not supported; use a file path, http:// or https://"),
            )),
            _ => Ok(Location::File(PathBuf::from(text))),
        }
    }

    /// Resolves the manifest's `image` reference as the device does: URL join against the
    /// manifest's URL, or, for a manifest file, against that file's directory.
    fn join(&self, reference: &str) -> Result<Location, VerifyError> {
        let bad = |reason: String| VerifyError::ImageRef {
            reference: reference.to_owned(),
            reason,
        };
        if reference.contains("://") {
            return Location::parse(reference).map_err(|e| bad(e.to_string()));
        }
        match self {
            Location::Url(base) => base.join(reference).map(Location::Url).map_err(|e| bad(e.to_string())),
            Location::File(manifest) => {
                let absolute = std::path::absolute(manifest).map_err(|e| bad(e.to_string()))?;
                let base =
                    Url::from_file_path(&absolute).map_err(|()| bad("the manifest path is not absolute".into()))?;
                let joined = base.join(reference).map_err(|e| bad(e.to_string()))?;
                let path = joined
                    .to_file_path()
                    .map_err(|()| bad("it does not name a local file".into()))?;
                Ok(Location::File(relative_to_cwd(path)))
            }
        }
    }
}

/// Keeps printed paths as short as the user's own, instead of this machine's full paths.
fn relative_to_cwd(path: PathBuf) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or(path)
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Url(url) => write!(f, "{url}"),
        }
    }
}

/// Reads files and URLs with a cap, so a wrong path or a hostile server cannot make otactl
/// read without end.
#[derive(Default)]
struct Fetcher {
    client: Option<reqwest::blocking::Client>,
}

impl Fetcher {
    fn client(&mut self, what: &'static str, url: &Url) -> Result<&reqwest::blocking::Client, VerifyError> {
        if self.client.is_none() {
            let client = reqwest::blocking::Client::builder()
                .user_agent(concat!("otactl/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(15))
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| VerifyError::Fetch {
                    what,
                    location: url.to_string(),
                    reason: chain(&e),
                })?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("set just above"))
    }

    /// Returns the bytes and where they came from after redirects: what a relative
    /// reference in them resolves against.
    fn fetch(
        &mut self,
        what: &'static str,
        location: &Location,
        limit: u64,
    ) -> Result<(Vec<u8>, Location), VerifyError> {
        let too_large = |size: String| VerifyError::TooLarge {
            what,
            location: location.to_string(),
            size,
            limit,
        };
        let mut bytes = Vec::new();
        let mut effective = location.clone();
        match location {
            Location::File(path) => {
                let read = |e: io::Error| VerifyError::Read {
                    what,
                    location: location.to_string(),
                    reason: e.to_string(),
                };
                let file = File::open(path).map_err(read)?;
                let len = file.metadata().map_err(read)?.len();
                if len > limit {
                    return Err(too_large(format!("{len} bytes")));
                }
                file.take(limit + 1).read_to_end(&mut bytes).map_err(read)?;
            }
            Location::Url(url) => {
                let fetch = |reason: String| VerifyError::Fetch {
                    what,
                    location: location.to_string(),
                    reason,
                };
                let response = self.client(what, url)?.get(url.clone()).send().map_err(|e| {
                    // reqwest's own message repeats the URL, which the error already names.
                    let e: &dyn std::error::Error = &e;
                    fetch(e.source().map(chain).unwrap_or_else(|| chain(e)))
                })?;
                let status = response.status();
                if !status.is_success() {
                    return Err(fetch(format!("HTTP {status}")));
                }
                effective = Location::Url(response.url().clone());
                if let Some(len) = response.content_length().filter(|&len| len > limit) {
                    return Err(too_large(format!("{len} bytes")));
                }
                response
                    .take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| fetch(chain(&e)))?;
            }
        }
        if bytes.len() as u64 > limit {
            return Err(too_large("larger".to_owned()));
        }
        Ok((bytes, effective))
    }
}

/// The release facts a manifest states, owned so they outlive the payload buffer.
#[derive(Debug, Clone)]
struct Release {
    product: String,
    channel: String,
    version: String,
    chip: String,
    board: String,
    image: String,
    size: u32,
    sha256: String,
    secure_version: u32,
    created: String,
}

impl From<&Manifest<'_>> for Release {
    fn from(m: &Manifest<'_>) -> Self {
        Release {
            product: m.product.to_owned(),
            channel: m.channel.to_owned(),
            version: m.version.to_owned(),
            chip: m.chip.to_owned(),
            board: m.board.to_owned(),
            image: m.image.to_owned(),
            size: m.size,
            sha256: m.sha256.to_owned(),
            secure_version: m.secure_version,
            created: m.created.to_owned(),
        }
    }
}

#[derive(Debug)]
struct TrustedKey {
    file: PathBuf,
    id: String,
}

#[derive(Debug)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Everything learned on the way, whether or not the release verified: the report is built
/// from this in either output form.
#[derive(Debug, Default)]
struct Findings {
    keys: Vec<TrustedKey>,
    /// What the manifest states; `signature_verified` says whether to believe it.
    release: Option<Release>,
    signature_verified: bool,
    /// Index into `keys` of the key that verified the signature.
    signed_by: Option<usize>,
    image: Option<String>,
    checks: Vec<Check>,
}

impl Findings {
    fn pass(&mut self, name: &'static str, detail: String) {
        self.checks.push(Check { name, ok: true, detail });
    }

    /// Records a failed check and hands the error back for `?`.
    fn fail(&mut self, name: &'static str, error: VerifyError) -> VerifyError {
        let text = chain(&error);
        let detail = text.strip_prefix(&format!("{name}: ")).unwrap_or(&text).to_owned();
        self.checks.push(Check {
            name,
            ok: false,
            detail,
        });
        error
    }
}

fn key_id_hex(public_key: &[u8; 32]) -> String {
    let mut hex = [0u8; 16];
    write_hex(&key_id(public_key), &mut hex).to_owned()
}

/// The `keyid` hints an envelope carries, to tell the user which key signed it. Only
/// well-formed hints are returned: the envelope is untrusted input going to a terminal.
fn envelope_key_ids(envelope: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(envelope) else {
        return Vec::new();
    };
    value["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["keyid"].as_str())
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

fn signature_error(e: &ManifestError, envelope: &[u8], trusted: &[TrustedKey]) -> VerifyError {
    let trusted_ids = trusted.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ");
    let (reason, help) = match e {
        ManifestError::UnknownKey => {
            let signed = envelope_key_ids(envelope);
            let signed = if signed.is_empty() {
                "unknown".to_owned()
            } else {
                signed.join(", ")
            };
            (
                "not signed by any of the given keys".to_owned(),
                Some(format!(
                    "the manifest names key id {signed}; --key gave {trusted_ids}. Pass the public key the release was signed with"
                )),
            )
        }
        ManifestError::BadSignature => (
            "signature does not verify: the manifest was altered after signing".to_owned(),
            Some("do not ship it; publish the release again with `otactl release`".to_owned()),
        ),
        other => (other.to_string(), None),
    };
    VerifyError::Signature { reason, help }
}

/// `open` checks the signature before it reads the payload's fields, so these errors come
/// from a correctly signed manifest that is still not one a device takes.
fn signature_was_good(e: &ManifestError) -> bool {
    matches!(
        e,
        ManifestError::PayloadMalformed(_)
            | ManifestError::UnsupportedSchema { .. }
            | ManifestError::FieldTooLong { .. }
            | ManifestError::FieldInvalid { .. }
            | ManifestError::BadVersion(_)
            | ManifestError::BadSha256
            | ManifestError::ZeroSize
            | ManifestError::BadCreated
    )
}

fn chip_name(id: u16) -> String {
    Chip::ALL
        .into_iter()
        .find(|c| c.image_chip_id() == id)
        .map_or_else(|| format!("chip id {id}"), |c| format!("{c} (chip id {id})"))
}

fn verify(args: &VerifyArgs, findings: &mut Findings) -> Result<(), VerifyError> {
    if args.keys.len() > MAX_KEYS {
        return Err(VerifyError::TooManyKeys { given: args.keys.len() });
    }
    let mut trusted = Vec::with_capacity(args.keys.len());
    for file in &args.keys {
        let key = keys::load_verifying_key(file)?;
        findings.keys.push(TrustedKey {
            file: file.clone(),
            id: key_id_hex(key.as_bytes()),
        });
        trusted.push(key.to_bytes());
    }
    let manifest_location = Location::parse(&args.manifest)?;
    // The image location is checked before any download, so a typo costs nothing.
    let image_override = args.image.as_deref().map(Location::parse).transpose()?;

    let mut fetcher = Fetcher::default();
    let (envelope, manifest_location) = fetcher
        .fetch("manifest", &manifest_location, MAX_ENVELOPE as u64)
        .map_err(|e| match e {
            e @ VerifyError::TooLarge { .. } => findings.fail("manifest", e),
            e => e,
        })?;

    let mut buf = PayloadBuf::default();
    let release = match manifest::open(&envelope, &trusted, &mut buf) {
        Ok((m, index)) => {
            let key = &findings.keys[index];
            let detail = format!("verified by {} (key id {})", key.file.display(), key.id);
            findings.signed_by = Some(index);
            findings.signature_verified = true;
            findings.pass("signature", detail);
            let release = Release::from(&m);
            findings.release = Some(release.clone());
            release
        }
        Err(e) if signature_was_good(&e) => {
            return Err(findings.fail("manifest", VerifyError::Manifest { error: e }));
        }
        Err(e) => {
            let mut unverified = PayloadBuf::default();
            findings.release = decode_unverified(&envelope, &mut unverified)
                .and_then(Manifest::parse)
                .ok()
                .as_ref()
                .map(Release::from);
            let error = signature_error(&e, &envelope, &findings.keys);
            return Err(findings.fail("signature", error));
        }
    };
    let Release {
        size,
        sha256,
        chip,
        version,
        secure_version,
        image: image_ref,
        ..
    } = release;

    let image_location = match image_override {
        Some(location) => location,
        None => manifest_location
            .join(&image_ref)
            .map_err(|e| findings.fail("image", e))?,
    };
    findings.image = Some(image_location.to_string());
    let (image, _) = fetcher
        .fetch("image", &image_location, MAX_IMAGE)
        .map_err(|e| match e {
            e @ VerifyError::TooLarge { .. } => findings.fail("size", e),
            e => e,
        })?;

    if image.len() as u64 != u64::from(size) {
        let error = VerifyError::Size {
            found: image.len() as u64,
            expected: size,
        };
        return Err(findings.fail("size", error));
    }
    findings.pass("size", format!("{size} bytes"));

    let mut hex = [0u8; 64];
    let found = write_hex(&Sha256::digest(&image), &mut hex).to_owned();
    if found != sha256 {
        let error = VerifyError::Sha256 {
            found,
            expected: sha256,
        };
        return Err(findings.fail("sha256", error));
    }
    findings.pass("sha256", "matches the manifest".to_owned());

    let app = AppImage::parse(&image).map_err(|e| findings.fail("app image", VerifyError::AppImage(e)))?;
    findings.pass(
        "app image",
        format!(
            "ESP-IDF app, {} segment{}, checksum{} valid",
            app.segments.len(),
            if app.segments.len() == 1 { "" } else { "s" },
            if app.hash.is_some() {
                " and appended SHA-256"
            } else {
                ""
            },
        ),
    );

    let Some(manifest_chip) = Chip::from_name(&chip) else {
        let known = Chip::ALL.map(Chip::as_str).join(", ");
        return Err(findings.fail("chip", VerifyError::UnknownChip { chip, known }));
    };
    if let Err(e) = app.check_chip(manifest_chip.image_chip_id()) {
        let found = match e {
            ImageError::WrongChip { found, .. } => chip_name(found),
            other => other.to_string(),
        };
        let error = VerifyError::Chip {
            found,
            manifest_chip: chip,
        };
        return Err(findings.fail("chip", error));
    }
    findings.pass(
        "chip",
        format!("image is for {}", chip_name(manifest_chip.image_chip_id())),
    );

    // `AppImage::parse` has checked the field is NUL-terminated; only non-UTF-8 is left.
    let image_version = app.app_desc.version().unwrap_or("(not UTF-8)");
    if image_version != version {
        let error = VerifyError::Version {
            image: image_version.to_owned(),
            manifest: version,
        };
        return Err(findings.fail("version", error));
    }
    findings.pass("version", format!("app descriptor says {image_version}"));

    let image_secure = app.app_desc.secure_version();
    if image_secure != secure_version {
        let error = VerifyError::SecureVersion {
            image: image_secure,
            manifest: secure_version,
        };
        return Err(findings.fail("secure_version", error));
    }
    findings.pass("secure_version", format!("app descriptor says {image_secure}"));
    Ok(())
}

pub fn run(args: VerifyArgs) -> ExitCode {
    let mut findings = Findings::default();
    let result = verify(&args, &mut findings);
    if args.json {
        println!("{}", to_json(&args, &findings, result.as_ref().err()));
    } else {
        print_report(&args, &findings, result.as_ref().err());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if !args.json {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(code)
        }
    }
}

fn release_json(r: &Release) -> Value {
    json!({
        "product": r.product,
        "channel": r.channel,
        "version": r.version,
        "chip": r.chip,
        "board": r.board,
        "image": r.image,
        "size": r.size,
        "sha256": r.sha256,
        "secure_version": r.secure_version,
        "created": r.created,
    })
}

fn to_json(args: &VerifyArgs, f: &Findings, error: Option<&VerifyError>) -> Value {
    let mut out = json!({
        "ok": error.is_none(),
        "manifest": args.manifest,
        "signature_verified": f.signature_verified,
        "release": f.release.as_ref().map(release_json),
        "key": f.signed_by.map(|i| json!({
            "file": f.keys[i].file.display().to_string(),
            "key_id": f.keys[i].id,
        })),
        "image": f.image,
        "checks": f.checks.iter().map(|c| json!({
            "check": c.name,
            "ok": c.ok,
            "detail": c.detail,
        })).collect::<Vec<_>>(),
    });
    if let Some(e) = error {
        out["error"] = json!(chain(e));
        out["help"] = json!(e.help().map(|h| h.to_string()));
        out["exit_code"] = json!(e.exit_code());
    }
    out
}

fn print_report(args: &VerifyArgs, f: &Findings, error: Option<&VerifyError>) {
    // An error before the first check (arguments, keys, an unreadable manifest) says it all.
    if f.checks.is_empty() {
        return;
    }
    let line = |c: &Check| println!("  {} {:<10} {}", if c.ok { "✓" } else { "✗" }, c.name, c.detail);
    // The manifest's own check comes first: it says whether to believe the facts below it.
    let (manifest_checks, image_checks) = f.checks.split_at(1);
    println!("manifest  {}", args.manifest);
    manifest_checks.iter().for_each(line);
    if let Some(r) = &f.release {
        if !f.signature_verified {
            println!("  UNVERIFIED: what the manifest claims; its signature did not check out, trust none of it");
        }
        println!("  product   {}", r.product);
        println!("  channel   {}", r.channel);
        println!("  version   {}", r.version);
        println!("  chip      {}", r.chip);
        println!("  board     {}", r.board);
        println!("  size      {} bytes", r.size);
        println!("  sha256    {}", r.sha256);
        println!("  secure    {} (anti-rollback version)", r.secure_version);
        println!("  created   {}", r.created);
        println!("  image     {}", r.image);
    }
    if let Some(image) = &f.image {
        println!("image     {image}");
    }
    image_checks.iter().for_each(line);
    if let (None, Some(r)) = (error, &f.release) {
        println!(
            "verified: {} {} for {} ({}) on channel {}",
            r.product, r.version, r.chip, r.board, r.channel
        );
    }
}
