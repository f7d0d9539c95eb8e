//! Shared by the release, rollout, serve and S3 tests: the real otactl binary, keys,
//! profiles and images made here, a running `otactl serve`, outcome reports, and a check
//! that a bucket holds only complete, valid releases.
#![allow(dead_code)]

pub mod elf;
pub mod hold;
pub mod moto;
pub mod reports;
pub mod rollout;
pub mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use device_fw::wire::manifest::{Manifest, PayloadBuf, open, write_hex};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// otactl in `dir`, with nothing from this environment that could sign, route or build
/// differently: no signing key variable, no proxy, no cloud settings.
pub fn otactl(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otactl"));
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AWS_")
            || name.starts_with("GOOGLE_")
            || name.starts_with("AZURE_")
            || name.to_ascii_lowercase().ends_with("_proxy")
            || name == "OTACTL_SIGNING_KEY"
        {
            cmd.env_remove(&name);
        }
    }
    cmd.env("NO_PROXY", "*").env("no_proxy", "*");
    cmd
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = [0u8; 64];
    write_hex(&Sha256::digest(bytes), &mut hex).to_owned()
}

/// A temporary project: keys from `otactl keygen`, profiles, firmware files.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let out = otactl(dir.path())
            .args(["keygen", "--out", "keys/otactl"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn public_key(&self) -> [u8; 32] {
        let pem = fs::read_to_string(self.path().join("keys/otactl.pub")).unwrap();
        VerifyingKey::from_public_key_pem(&pem).unwrap().to_bytes()
    }

    /// Writes `profiles/<name>.toml` for `chip` with a 4 MB flash; `release_extra` goes into
    /// `[release]`, `extra` after it (more tables).
    pub fn profile(&self, name: &str, chip: &str, release_extra: &str, extra: &str) -> String {
        self.profile_with_flash(name, chip, "4MB", release_extra, extra)
    }

    pub fn profile_with_flash(&self, name: &str, chip: &str, flash: &str, release_extra: &str, extra: &str) -> String {
        let file = format!("profiles/{name}.toml");
        let text = format!(
            "[device]\nproduct = \"field-logger\"\nchip = \"{chip}\"\nboard = \"test-board\"\n\n\
             [modem]\ndialect = \"sim7600\"\nbaud = 115200\napn = \"internet\"\n\n\
             [flash]\nsize = \"{flash}\"\n\n\
             [release]\nchannel = \"stable\"\ndevice_url = \"http://ota.test/fleet\"\n\
             public_keys = [\"../keys/otactl.pub\"]\n{release_extra}\n{extra}"
        );
        fs::create_dir_all(self.path().join("profiles")).unwrap();
        fs::write(self.path().join(&file), text).unwrap();
        file
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        name.to_owned()
    }

    /// `otactl release --profile <profile> --key keys/otactl.key <args>`.
    pub fn release(&self, profile: &str, args: &[&str]) -> Output {
        self.release_cmd(profile, args).output().unwrap()
    }

    pub fn release_cmd(&self, profile: &str, args: &[&str]) -> Command {
        let mut cmd = otactl(self.path());
        cmd.args(["release", "--profile", profile, "--key", "keys/otactl.key"])
            .args(args);
        cmd
    }

    pub fn verify(&self, manifest: &str) -> Output {
        otactl(self.path())
            .args(["verify", manifest, "--key", "keys/otactl.pub"])
            .output()
            .unwrap()
    }
}

/// One channel's release as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub channel: String,
    pub version: String,
    pub sha256: String,
}

/// Checks that a local bucket holds only complete releases: every `<channel>/manifest.json`
/// verifies with `key` and its image is there with the signed size and hash; no staging or
/// half-written file is visible. Returns what each channel holds.
pub fn check_bucket(root: &Path, key: &[u8; 32]) -> Vec<Published> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    for entry in walk(root) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains('#') && !name.ends_with(".tmp"),
            "a staging file is left in the bucket: {}",
            entry.display()
        );
        if name != "manifest.json" {
            continue;
        }
        let envelope = fs::read(&entry).unwrap();
        let mut buf = PayloadBuf::default();
        let (m, _): (Manifest<'_>, _) =
            open(&envelope, &[*key], &mut buf).unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        let image = entry.parent().unwrap().join(m.image);
        let bytes = fs::read(&image).unwrap_or_else(|e| panic!("{} names {}: {e}", entry.display(), m.image));
        assert_eq!(bytes.len() as u32, m.size, "{}", image.display());
        assert_eq!(sha256_hex(&bytes), m.sha256, "{}", image.display());
        if let Some(c) = m.compressed {
            let path = entry.parent().unwrap().join(c.image);
            let packed = fs::read(&path).unwrap_or_else(|e| panic!("{} names {}: {e}", entry.display(), c.image));
            assert_eq!(packed.len() as u32, c.size, "{}", path.display());
            // The encoder is deterministic: the form is that of exactly this image.
            assert_eq!(
                packed,
                device_fw::wire::compressed::compress(&bytes).unwrap(),
                "{}",
                path.display()
            );
        }
        if let Some(d) = m.delta {
            let path = entry.parent().unwrap().join(d.image);
            let patch = fs::read(&path).unwrap_or_else(|e| panic!("{} names {}: {e}", entry.display(), d.image));
            assert_eq!(patch.len() as u32, d.size, "{}", path.display());
            // While its base is in the bucket, the patch rebuilds exactly this image.
            let base = root.join(format!("images/{}.bin", d.base_sha256));
            if let Ok(base) = fs::read(&base) {
                assert_eq!(
                    device_fw::ota::patch::apply(&base, &patch).unwrap(),
                    bytes,
                    "{}",
                    path.display()
                );
            }
        }
        out.push(Published {
            channel: m.channel.to_owned(),
            version: m.version.to_owned(),
            sha256: m.sha256.to_owned(),
        });
    }
    out.sort_by(|a, b| a.channel.cmp(&b.channel));
    out
}

/// A manifest envelope's payload as JSON, signature unchecked: for looking at its fields.
pub fn manifest_payload(envelope: &[u8]) -> Value {
    let mut buf = PayloadBuf::default();
    let payload = device_fw::wire::manifest::decode_unverified(envelope, &mut buf).expect("an envelope");
    serde_json::from_slice(payload).expect("payload JSON")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
