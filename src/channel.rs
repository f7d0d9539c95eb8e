//! A channel's manifest, the one mutable object of a bucket: what `otactl release` and
//! `otactl rollout` share to find it, trust it, re-sign it and replace it.
//!
//! Every rewrite of `<channel>/manifest.json` goes the same way, whoever makes it:
//!
//! 1. The profile's public keys (the ones compiled into its devices) are loaded, and the
//!    signing key must be one of them, or devices would refuse the new manifest.
//! 2. The current manifest is read, with the version a conditional write must still find,
//!    and verified with those keys ([`inspect`]).
//! 3. The new manifest is signed and opened again as a device opens it ([`seal`]).
//! 4. [`replace`]: the current manifest is copied, as it is, to
//!    `<channel>/history/<UTC time>-<version>-<percent>-<state>.json` (written only if
//!    absent; the time is when it stopped being current), then the new one is written with
//!    the conditional write of [`crate::bucket`]. A job that lost a race on the channel gets
//!    [`ReplaceError::Conflict`] with what the channel holds now, and devices never saw its
//!    manifest. The history copy a loser made is a second copy of a manifest that was
//!    current; readers of the history skip repeats.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use device_fw::profile::Profile;
use device_fw::wire::manifest::{
    self, Alternate, MAX_ENVELOPE, MAX_PAYLOAD, Manifest, ManifestError, Patch, PayloadBuf, key_id, limits, write_hex,
};
use device_fw::wire::rollout::{DeviceList, Rollout, RolloutState};
use ed25519_dalek::{SigningKey, VerifyingKey};
use miette::Diagnostic;

use crate::bucket::{Bucket, BucketError, Current, Location, PutError};
use crate::keys::{self, KeyError, KeyWarning, SigningKeySource};

/// The folder of a channel's superseded manifests.
pub const HISTORY: &str = "history";

/// Why otactl could not get to a channel's manifest: the profile, its keys, the bucket.
/// Every one is a problem of the setup, not of the release (exit status 2).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum ChannelError {
    #[error("{0}")]
    #[diagnostic(
        code(otactl::channel::profile),
        help("fix the profile; `otactl profile check` shows every problem")
    )]
    Profile(String),

    #[error("`{name}` is not a channel name: {reason}")]
    #[diagnostic(
        code(otactl::channel::name),
        help("use 1 to 32 lowercase letters, digits, '-', '_' or '.'")
    )]
    BadChannel { name: String, reason: String },

    #[error("no bucket to publish to or read from")]
    #[diagnostic(
        code(otactl::channel::no_bucket),
        help("pass --bucket URL, or set `bucket = \"…\"` under [release] in {profile}")
    )]
    NoBucket { profile: String },

    #[error("{profile} lists no [release] public_keys")]
    #[diagnostic(
        code(otactl::channel::no_public_keys),
        help(
            "add the .pub file `otactl keygen` wrote, e.g. public_keys = [\"../keys/otactl.pub\"]: devices trust those keys, and otactl checks the signing key and the channel's manifest against them"
        )
    )]
    NoPublicKeys { profile: String },

    #[error("public key {path} of the profile")]
    #[diagnostic(
        code(otactl::channel::public_key),
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
        code(otactl::channel::untrusted_key),
        help(
            "devices would reject the manifest with `unknown-key`: sign with the key whose .pub is listed in [release] public_keys, or ship a firmware that trusts this key first"
        )
    )]
    UntrustedKey { key_id: String, trusted: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Bucket(#[from] BucketError),

    #[error("cannot start the I/O runtime: {0}")]
    #[diagnostic(code(otactl::channel::runtime))]
    Runtime(String),
}

/// A loaded profile and where its relative paths start.
#[derive(Debug)]
pub struct Loaded {
    pub profile: Profile,
    pub dir: PathBuf,
    /// The profile's path as given, for messages.
    pub name: String,
}

/// Loads the profile at `path`.
pub fn load_profile(path: &Path) -> Result<Loaded, ChannelError> {
    let profile = Profile::load(path).map_err(|e| ChannelError::Profile(e.to_string()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(Loaded {
        profile,
        dir,
        name: path.display().to_string(),
    })
}

impl Loaded {
    /// `--channel`, else the profile's, checked against the manifest's naming rule.
    pub fn channel(&self, given: Option<&str>) -> Result<String, ChannelError> {
        let channel = given.map_or_else(|| self.profile.release.channel.clone(), str::to_owned);
        check_name(&channel).map_err(|reason| ChannelError::BadChannel {
            name: channel.clone(),
            reason,
        })?;
        Ok(channel)
    }

    /// The public keys the profile's devices trust.
    pub fn trusted_keys(&self) -> Result<Vec<VerifyingKey>, ChannelError> {
        if self.profile.release.public_keys.is_empty() {
            return Err(ChannelError::NoPublicKeys {
                profile: self.name.clone(),
            });
        }
        self.profile
            .release
            .public_keys
            .iter()
            .map(|file| {
                let path = self.dir.join(file);
                keys::load_verifying_key(&path).map_err(|source| ChannelError::PublicKey {
                    path: path.display().to_string(),
                    source,
                })
            })
            .collect()
    }

    /// `--bucket` (relative to the working directory), else the profile's `[release]
    /// bucket` (relative to the profile's directory). `create`: make a missing local one.
    pub fn bucket(&self, given: Option<&str>, endpoint: Option<&str>, create: bool) -> Result<Bucket, ChannelError> {
        let (text, base) = match (given, &self.profile.release.bucket) {
            (Some(url), _) => (url.to_owned(), PathBuf::from(".")),
            (None, Some(url)) => (url.clone(), self.dir.clone()),
            (None, None) => {
                return Err(ChannelError::NoBucket {
                    profile: self.name.clone(),
                });
            }
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let location = Location::parse(&text, &base)?;
        Ok(Bucket::open(&location, endpoint, create)?)
    }
}

/// The signing key and what loading it noticed.
#[derive(Debug)]
pub struct Signer {
    pub key: SigningKey,
    pub key_id: String,
    /// How the key is stored (a key file others can read): shown, not fatal.
    pub warnings: Vec<KeyWarning>,
}

/// Loads the signing key from `source`; it must be one of `trusted`.
pub fn signer(source: &SigningKeySource, trusted: &[VerifyingKey]) -> Result<Signer, ChannelError> {
    let loaded = keys::load_signing_key(source)?;
    let key_id = key_id_hex(&loaded.key.verifying_key());
    if !trusted.contains(&loaded.key.verifying_key()) {
        return Err(ChannelError::UntrustedKey {
            key_id,
            trusted: trusted.iter().map(key_id_hex).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(Signer {
        key: loaded.key,
        key_id,
        warnings: loaded.warnings,
    })
}

/// The raw public keys, as [`manifest::open`] takes them.
pub fn raw_keys(keys: &[VerifyingKey]) -> Vec<[u8; 32]> {
    keys.iter().map(VerifyingKey::to_bytes).collect()
}

/// A current-thread runtime for the bucket's async API.
pub fn runtime() -> Result<tokio::runtime::Runtime, ChannelError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ChannelError::Runtime(e.to_string()))
}

pub fn manifest_key(channel: &str) -> String {
    format!("{channel}/manifest.json")
}

/// Who may take a release, owned: what a rewrite reads, changes and signs again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RolloutSpec {
    pub percent: u8,
    pub state: RolloutState,
    pub devices: Vec<String>,
}

impl RolloutSpec {
    pub fn of(r: &Rollout<'_>) -> RolloutSpec {
        RolloutSpec {
            percent: r.percent,
            state: r.state,
            devices: r.devices.iter().map(str::to_owned).collect(),
        }
    }

    /// What a manifest without a `rollout` member means: everyone, now.
    pub fn everyone() -> RolloutSpec {
        RolloutSpec::of(&Rollout::FULL)
    }
}

/// A manifest's fields, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub product: String,
    pub channel: String,
    pub version: String,
    pub chip: String,
    pub board: String,
    pub image: String,
    pub size: u32,
    pub sha256: String,
    pub secure_version: u32,
    pub created: String,
    pub rollout: Option<RolloutSpec>,
    /// The compressed form: its location and size.
    pub compressed: Option<(String, u32)>,
    /// The patch from an earlier release: location, size, base SHA-256, base size.
    pub delta: Option<(String, u32, String, u32)>,
}

impl Facts {
    pub fn of(m: &Manifest<'_>) -> Facts {
        Facts {
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
            rollout: m.rollout.as_ref().map(RolloutSpec::of),
            compressed: m.compressed.map(|c| (c.image.to_owned(), c.size)),
            delta: m
                .delta
                .map(|d| (d.image.to_owned(), d.size, d.base_sha256.to_owned(), d.base_size)),
        }
    }

    /// Who may take it: its rollout, or everyone.
    pub fn effective_rollout(&self) -> RolloutSpec {
        self.rollout.clone().unwrap_or_else(RolloutSpec::everyone)
    }

    /// The manifest with these fields; `ids` holds the rollout's device ids (from
    /// [`Facts::device_ids`]), which the manifest borrows.
    pub fn manifest<'a>(&'a self, ids: &'a [&'a str]) -> Manifest<'a> {
        Manifest {
            schema: manifest::SCHEMA,
            product: &self.product,
            channel: &self.channel,
            version: &self.version,
            chip: &self.chip,
            board: &self.board,
            image: &self.image,
            size: self.size,
            sha256: &self.sha256,
            secure_version: self.secure_version,
            created: &self.created,
            rollout: self.rollout.as_ref().map(|r| Rollout {
                percent: r.percent,
                state: r.state,
                devices: DeviceList::Ids(ids),
            }),
            compressed: self
                .compressed
                .as_ref()
                .map(|(image, size)| Alternate { image, size: *size }),
            delta: self.delta.as_ref().map(|(image, size, base_sha256, base_size)| Patch {
                image,
                size: *size,
                base_sha256,
                base_size: *base_size,
            }),
        }
    }

    pub fn device_ids(&self) -> Vec<&str> {
        self.rollout
            .as_ref()
            .map(|r| r.devices.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// What a channel's manifest holds, as far as it can be told.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Verified with one of the profile's public keys; if not, `facts` is what it claims
    /// (when it can be read at all) and `problem` says why it did not verify.
    pub verified: bool,
    pub problem: Option<String>,
    pub facts: Option<Facts>,
}

impl Held {
    pub fn version(&self) -> Option<&str> {
        self.facts.as_ref().map(|f| f.version.as_str())
    }
}

/// Opens a manifest as a device would, and says what it claims when it does not verify.
pub fn inspect(bytes: &[u8], trusted: &[[u8; 32]]) -> Held {
    let mut buf = PayloadBuf::default();
    match manifest::open(bytes, trusted, &mut buf) {
        Ok((m, _)) => Held {
            verified: true,
            problem: None,
            facts: Some(Facts::of(&m)),
        },
        Err(e) => {
            let mut unverified = PayloadBuf::default();
            let claimed = manifest::decode_unverified(bytes, &mut unverified)
                .ok()
                .and_then(|p| Manifest::parse(p).ok());
            Held {
                verified: false,
                problem: Some(e.to_string()),
                facts: claimed.as_ref().map(Facts::of),
            }
        }
    }
}

/// Encodes and signs `manifest`, then opens the envelope with `trusted` as a device will,
/// so that nothing is published that devices would refuse.
pub fn seal(manifest: &Manifest<'_>, signing: &SigningKey, trusted: &[[u8; 32]]) -> Result<Vec<u8>, ManifestError> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = manifest.encode(&mut payload)?;
    let mut envelope = [0u8; MAX_ENVELOPE];
    let len = manifest::seal(&payload[..n], &[signing], &mut envelope)?;
    manifest::open(&envelope[..len], trusted, &mut PayloadBuf::default())?;
    Ok(envelope[..len].to_vec())
}

/// `20261124T040000.123Z`: sortable, and a valid file name and object key everywhere.
pub fn compact_time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// [`compact_time`] back in RFC 3339 (`2026-11-24T04:00:00.123Z`), for people and JSON;
/// anything else as it is.
pub fn rfc3339_of_compact(t: &str) -> String {
    let b = t.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || !t.is_ascii() {
        return t.to_owned();
    }
    format!(
        "{}-{}-{}T{}:{}:{}",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..]
    )
}

/// Where the manifest `held` is kept once it is replaced at `at`.
pub fn history_key(channel: &str, at: SystemTime, held: &Held) -> String {
    let (version, rollout) = match &held.facts {
        Some(f) => (f.version.as_str(), f.effective_rollout()),
        None => ("unreadable", RolloutSpec::everyone()),
    };
    format!(
        "{channel}/{HISTORY}/{}-{version}-{}-{}.json",
        compact_time(at),
        rollout.percent,
        rollout.state.as_str()
    )
}

/// What a history entry's name says (its content is what counts; this is for finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryName<'a> {
    /// When it stopped being current ([`compact_time`]).
    pub time: &'a str,
    pub version: &'a str,
    pub percent: u8,
    pub state: RolloutState,
}

/// Reads a name [`history_key`] made (the file name, without the folder).
pub fn parse_history_name(name: &str) -> Option<HistoryName<'_>> {
    let stem = name.strip_suffix(".json")?;
    // The time has no '-'; the version may (1.5.0-rc.1); percent and state have none.
    let (time, rest) = stem.split_once('-')?;
    let mut tail = rest.rsplitn(3, '-');
    let state = RolloutState::from_name(tail.next()?)?;
    let percent = tail.next()?.parse().ok()?;
    let version = tail.next()?;
    Some(HistoryName {
        time,
        version,
        percent,
        state,
    })
}

/// How [`replace`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The channel had no manifest.
    Created,
    /// The previous manifest is kept at `history`.
    Replaced { history: String },
}

/// The channel's manifest in the bucket and what a rewrite did to it, as the reports of
/// `otactl release` and `otactl rollout` show them.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub key: Option<String>,
    pub url: Option<String>,
    /// `created`, `replaced`, `unchanged`, or with a dry run `would-create`/`would-replace`.
    pub write: Option<&'static str>,
    /// Where the manifest it replaced is kept.
    pub history_key: Option<String>,
    pub history_url: Option<String>,
}

impl Objects {
    /// The manifest of `channel` in `bucket`, before anything is done to it.
    pub fn at(bucket: &Bucket, channel: &str) -> Objects {
        let key = manifest_key(channel);
        Objects {
            url: Some(bucket.object_url(&key)),
            key: Some(key),
            ..Objects::default()
        }
    }

    /// Records what [`replace`] did.
    pub fn written(&mut self, bucket: &Bucket, written: &Written) {
        match written {
            Written::Created => self.write = Some("created"),
            Written::Replaced { history } => {
                self.write = Some("replaced");
                self.history_url = Some(bucket.object_url(history));
                self.history_key = Some(history.clone());
            }
        }
    }

    /// `{"key", "url", "write"}` of the manifest.
    pub fn manifest_json(&self) -> serde_json::Value {
        serde_json::json!({"key": self.key, "url": self.url, "write": self.write})
    }

    /// `{"key", "url"}` of the history entry written, or `null`.
    pub fn history_json(&self) -> serde_json::Value {
        match &self.history_key {
            Some(key) => serde_json::json!({"key": key, "url": self.history_url}),
            None => serde_json::Value::Null,
        }
    }
}

/// Why [`replace`] wrote no manifest.
#[derive(Debug)]
pub enum ReplaceError {
    /// The channel's manifest changed after it was read: a lost race. `now` is what the
    /// channel holds, if it can be read.
    Conflict {
        detail: String,
        now: Option<Box<Held>>,
    },
    Bucket(BucketError),
}

/// The current manifest as read, with what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub current: &'a Current,
    pub held: &'a Held,
}

/// Keeps the current manifest in the channel's history and writes `envelope` in its place,
/// if the channel still holds exactly `expected` (`None`: no manifest).
pub async fn replace(
    bucket: &Bucket,
    channel: &str,
    envelope: &[u8],
    expected: Option<Expected<'_>>,
    trusted: &[[u8; 32]],
) -> Result<Written, ReplaceError> {
    #[cfg(debug_assertions)]
    test_hold();
    let key = manifest_key(channel);
    let mut history = None;
    if let Some(e) = expected {
        let rel = history_key(channel, SystemTime::now(), e.held);
        bucket
            .put_if_absent(&rel, &e.current.bytes, "application/json")
            .await
            .map_err(ReplaceError::Bucket)?;
        history = Some(rel);
    }
    match bucket.put_manifest(&key, envelope, expected.map(|e| e.current)).await {
        Ok(_) => Ok(history.map_or(Written::Created, |history| Written::Replaced { history })),
        Err(PutError::Bucket(e)) => Err(ReplaceError::Bucket(e)),
        Err(PutError::Conflict { detail }) => {
            let now = bucket.read_manifest(&key).await.ok().flatten();
            Err(ReplaceError::Conflict {
                detail,
                now: now.map(|c| Box::new(inspect(&c.bytes, trusted))),
            })
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out).to_owned()
}

pub fn key_id_hex(key: &VerifyingKey) -> String {
    hex(&key_id(key.as_bytes()))
}

/// A product or channel name as manifests allow it, and never `.`-led (it is a folder of
/// the bucket).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > limits::CHANNEL {
        return Err(format!("it must be 1 to {} bytes", limits::CHANNEL));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("it has characters other than a-z, 0-9, '.', '_' and '-'".into());
    }
    if name.starts_with('.') {
        return Err("it starts with '.'".into());
    }
    Ok(())
}

/// Test builds only: holds a rewrite right before its manifest write until the file named
/// by `OTACTL_TEST_HOLD` exists, after creating `<that>.<pid>.ready`. The race tests use it
/// to make two jobs read the same manifest before either writes; without it, which one
/// reads first is luck.
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

    #[test]
    fn history_names_sort_by_time_and_say_what_they_hold() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        let held = Held {
            verified: true,
            problem: None,
            facts: Some(Facts {
                product: "p".into(),
                channel: "stable".into(),
                version: "1.5.0-rc.1".into(),
                chip: "esp32".into(),
                board: "b".into(),
                image: "../images/x.bin".into(),
                size: 1,
                sha256: "0".repeat(64),
                secure_version: 0,
                created: "2026-11-24T04:00:00Z".into(),
                compressed: None,
                delta: None,
                rollout: Some(RolloutSpec {
                    percent: 5,
                    state: RolloutState::Paused,
                    devices: vec![],
                }),
            }),
        };
        assert_eq!(
            history_key("stable", at, &held),
            "stable/history/20261118T110640.123Z-1.5.0-rc.1-5-paused.json"
        );
        let everyone = Held {
            facts: held.facts.clone().map(|f| Facts { rollout: None, ..f }),
            ..held.clone()
        };
        assert!(history_key("stable", at, &everyone).ends_with("-100-active.json"));
        let key = history_key("stable", at, &held);
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(
            parse_history_name(name),
            Some(HistoryName {
                time: "20261118T110640.123Z",
                version: "1.5.0-rc.1",
                percent: 5,
                state: RolloutState::Paused,
            })
        );
        assert_eq!(parse_history_name("notes.txt"), None);
        assert_eq!(rfc3339_of_compact("20261118T110640.123Z"), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339_of_compact("soon"), "soon");
    }

    #[test]
    fn names() {
        assert!(check_name("stable").is_ok());
        assert!(check_name("beta-2.x").is_ok());
        for bad in ["", "Stable", "a/b", "..", ".hidden", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
