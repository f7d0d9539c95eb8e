//! Release keys on the host: the PEM files `otactl keygen` writes and the CI secret that
//! `otactl release` signs with.
//!
//! Every error names where a key came from and what is wrong with it, and never quotes the
//! key itself: these messages end up in CI logs, and a log is not a secret store.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{self, DecodePrivateKey as _, DecodePublicKey as _, spki};
use ed25519_dalek::{SigningKey, VerifyingKey};
use miette::Diagnostic;
use zeroize::Zeroizing;

/// The variable a CI job puts the signing key's PEM text in, so the key never has to be a
/// file on a shared runner.
pub const SIGNING_KEY_ENV: &str = "OTACTL_SIGNING_KEY";

/// A PEM key file is a few hundred bytes; reading stops well past that, so pointing `--key`
/// at an image or a log by mistake costs nothing.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Where a signing key comes from: `--key FILE` on a workstation, the environment in CI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKeySource {
    File(PathBuf),
    /// [`SIGNING_KEY_ENV`].
    Env,
}

impl fmt::Display for SigningKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKeySource::File(path) => write!(f, "{}", path.display()),
            SigningKeySource::Env => write!(f, "environment variable {SIGNING_KEY_ENV}"),
        }
    }
}

/// A signing key and what the loader noticed about how it is stored.
#[derive(Debug)]
pub struct LoadedSigningKey {
    pub key: SigningKey,
    /// Not fatal, as with ssh's warnings, but the caller should show them.
    pub warnings: Vec<KeyWarning>,
}

/// Why a key could not be used. Messages carry the file or variable name, never key bytes.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read key file {path}")]
    #[diagnostic(
        code(otactl::key::unreadable),
        help("check the path; `otactl keygen` writes keys/otactl.key and keys/otactl.pub by default")
    )]
    Unreadable {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("environment variable {SIGNING_KEY_ENV} is not set, or empty")]
    #[diagnostic(
        code(otactl::key::env_unset),
        help(
            "put the whole text of the .key file `otactl keygen` wrote (BEGIN and END lines included) in a CI secret named {SIGNING_KEY_ENV}, or pass --key FILE"
        )
    )]
    EnvUnset,

    #[error("{origin} is not a PEM key: {reason}")]
    #[diagnostic(
        code(otactl::key::not_pem),
        help(
            "otactl keys are PEM text from `otactl keygen` (-----BEGIN PRIVATE KEY----- / -----BEGIN PUBLIC KEY-----)"
        )
    )]
    NotPem { origin: String, reason: &'static str },

    #[error("{origin} holds {found}, but {wanted} is needed here")]
    #[diagnostic(code(otactl::key::wrong_kind), help("{help}"))]
    WrongKind {
        origin: String,
        found: String,
        wanted: &'static str,
        help: &'static str,
    },

    #[error("{origin} is an {format} key, which otactl does not read")]
    #[diagnostic(
        code(otactl::key::unsupported_format),
        help("otactl reads unencrypted PKCS#8 PEM; generate a release key with `otactl keygen`")
    )]
    UnsupportedFormat { origin: String, format: &'static str },

    #[error("{origin} is not an Ed25519 key (it is {algorithm}); otactl release keys are Ed25519")]
    #[diagnostic(
        code(otactl::key::wrong_algorithm),
        help("generate one with `otactl keygen` (or `openssl genpkey -algorithm ed25519`)")
    )]
    WrongAlgorithm { origin: String, algorithm: String },

    #[error("{origin} is not a valid Ed25519 {kind}: {reason}")]
    #[diagnostic(
        code(otactl::key::malformed),
        help("the PEM text may be truncated or edited; copy it again from the file `otactl keygen` wrote")
    )]
    Malformed {
        origin: String,
        kind: &'static str,
        reason: &'static str,
    },
}

/// Something about a usable key that its owner should fix.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum KeyWarning {
    #[error("UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} for {path} are too open")]
    #[diagnostic(
        code(otactl::key::unprotected),
        severity(Warning),
        help("anyone who can read it can sign firmware your devices will install; run `chmod 600 {path}`")
    )]
    Unprotected { path: String, mode: u32 },
}

/// Loads the release signing key from `source`.
pub fn load_signing_key(source: &SigningKeySource) -> Result<LoadedSigningKey, KeyError> {
    load_signing_key_with(source, |name| std::env::var_os(name))
}

/// [`load_signing_key`] with the environment passed in, so tests never have to mutate the
/// process environment (which other test threads read at the same time).
fn load_signing_key_with(
    source: &SigningKeySource,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<LoadedSigningKey, KeyError> {
    let origin = source.to_string();
    let (text, warnings) = match source {
        SigningKeySource::File(path) => {
            let warnings = unprotected(path).into_iter().collect();
            (read_key_file(path)?, warnings)
        }
        SigningKeySource::Env => (env_text(env)?, Vec::new()),
    };
    let key = parse_signing_key(&text, &origin)?;
    Ok(LoadedSigningKey { key, warnings })
}

/// Loads a trusted public key (SPKI PEM, `-----BEGIN PUBLIC KEY-----`).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_key_file(path)?;
    parse_verifying_key(&text, &path.display().to_string())
}

fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let unreadable = |source| KeyError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    let mut raw = Zeroizing::new(Vec::new());
    File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_end(&mut raw))
        .map_err(unreadable)?;
    let origin = path.display().to_string();
    match std::str::from_utf8(&raw) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(KeyError::NotPem {
            origin,
            reason: "the file is binary (DER?), not PEM text",
        }),
    }
}

fn env_text(env: impl Fn(&str) -> Option<OsString>) -> Result<Zeroizing<String>, KeyError> {
    let origin = SigningKeySource::Env.to_string();
    let value = env(SIGNING_KEY_ENV).ok_or(KeyError::EnvUnset)?;
    let text = Zeroizing::new(value.into_string().map_err(|_| KeyError::NotPem {
        origin,
        reason: "the value is not UTF-8 text",
    })?);
    if text.trim().is_empty() {
        return Err(KeyError::EnvUnset);
    }
    // Some CI systems store a secret on one line with literal `\n` escapes.
    if !text.contains('\n') && text.contains("\\n") {
        return Ok(Zeroizing::new(text.replace("\\n", "\n")));
    }
    Ok(text)
}

/// ssh refuses such a key; otactl warns, since CI runners often check files out 0644.
fn unprotected(path: &Path) -> Option<KeyWarning> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| KeyWarning::Unprotected {
        path: path.display().to_string(),
        mode,
    })
}

/// The label of the first PEM block, if the text has one. Only labels made of the letters
/// and spaces that real labels use are returned, so a garbled file is never echoed back.
fn pem_label(text: &str) -> Option<&str> {
    const BEGIN: &str = "-----BEGIN ";
    let start = text.find(BEGIN)? + BEGIN.len();
    let rest = &text[start..];
    let label = &rest[..rest.find("-----")?];
    let plausible = !label.is_empty()
        && label.len() <= 40
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
    plausible.then_some(label)
}

/// Common algorithm OIDs, so a wrong key is named rather than shown as digits.
fn algorithm_name(oid: &pkcs8::ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        "1.2.840.10045.2.1" => "EC (ECDSA)".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => format!("algorithm OID {other}"),
    }
}

/// Sorts a PEM block that is not the one wanted into a message its owner can act on.
fn check_label(text: &str, origin: &str, wanted: &'static str) -> Result<(), KeyError> {
    let Some(label) = pem_label(text) else {
        return Err(KeyError::NotPem {
            origin: origin.to_owned(),
            reason: "no -----BEGIN …----- line",
        });
    };
    let format = match label {
        l if l == wanted => return Ok(()),
        "OPENSSH PRIVATE KEY" => "OpenSSH private",
        "ENCRYPTED PRIVATE KEY" => "encrypted PKCS#8",
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => {
            return Err(KeyError::WrongAlgorithm {
                origin: origin.to_owned(),
                algorithm: "RSA".to_owned(),
            });
        }
        "EC PRIVATE KEY" => {
            return Err(KeyError::WrongAlgorithm {
                origin: origin.to_owned(),
                algorithm: "EC (ECDSA)".to_owned(),
            });
        }
        "PUBLIC KEY" | "PRIVATE KEY" => {
            let help = if wanted == "PRIVATE KEY" {
                "signing needs the private key (the .key file `otactl keygen` wrote), not the .pub"
            } else {
                "pass the public key (the .pub file `otactl keygen` wrote); a private key has no place on a machine that only verifies"
            };
            return Err(KeyError::WrongKind {
                origin: origin.to_owned(),
                found: format!("a {}", label.to_lowercase()),
                wanted: if wanted == "PRIVATE KEY" {
                    "a private key"
                } else {
                    "a public key"
                },
                help,
            });
        }
        _ => {
            return Err(KeyError::WrongKind {
                origin: origin.to_owned(),
                found: format!("a PEM block labelled {label}"),
                wanted: if wanted == "PRIVATE KEY" {
                    "an Ed25519 private key (PRIVATE KEY)"
                } else {
                    "an Ed25519 public key (PUBLIC KEY)"
                },
                help: "otactl keys are the PEM files `otactl keygen` writes",
            });
        }
    };
    Err(KeyError::UnsupportedFormat {
        origin: origin.to_owned(),
        format,
    })
}

fn parse_signing_key(text: &str, origin: &str) -> Result<SigningKey, KeyError> {
    check_label(text, origin, "PRIVATE KEY")?;
    SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| {
        let malformed = |reason| KeyError::Malformed {
            origin: origin.to_owned(),
            kind: "private key",
            reason,
        };
        match e {
            pkcs8::Error::PublicKey(spki::Error::OidUnknown { oid }) => KeyError::WrongAlgorithm {
                origin: origin.to_owned(),
                algorithm: algorithm_name(&oid),
            },
            pkcs8::Error::Asn1(_) => malformed("the PEM body does not decode to a PKCS#8 structure"),
            pkcs8::Error::KeyMalformed(_) | pkcs8::Error::PublicKey(_) => {
                malformed("the key bytes are malformed, or the embedded public key does not match")
            }
            _ => malformed("unexpected PKCS#8 parameters"),
        }
    })
}

fn parse_verifying_key(text: &str, origin: &str) -> Result<VerifyingKey, KeyError> {
    check_label(text, origin, "PUBLIC KEY")?;
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
        let malformed = |reason| KeyError::Malformed {
            origin: origin.to_owned(),
            kind: "public key",
            reason,
        };
        match e {
            spki::Error::OidUnknown { oid } => KeyError::WrongAlgorithm {
                origin: origin.to_owned(),
                algorithm: algorithm_name(&oid),
            },
            spki::Error::Asn1(_) => malformed("the PEM body does not decode to a SubjectPublicKeyInfo"),
            _ => malformed("the key bytes are not an Ed25519 point"),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn private_pem() -> String {
        key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }

    fn public_pem() -> String {
        key().verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }

    /// The base64 lines of a PEM text: what must never show up in a message.
    fn body_lines(pem: &str) -> Vec<String> {
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 8)
            .map(str::to_owned)
            .collect()
    }

    fn from_env(value: Option<&str>) -> Result<LoadedSigningKey, KeyError> {
        let value = value.map(OsString::from);
        load_signing_key_with(&SigningKeySource::Env, move |name| {
            assert_eq!(name, SIGNING_KEY_ENV);
            value.clone()
        })
    }

    /// Everything a user could see of an error: message, help, and its sources.
    fn shown(e: &KeyError) -> String {
        let mut text = format!("{e} {e:?}");
        if let Some(help) = e.help() {
            text.push_str(&help.to_string());
        }
        text
    }

    fn assert_no_key_text(e: &KeyError, pem: &str) {
        let text = shown(e);
        for line in body_lines(pem) {
            assert!(!text.contains(&line), "error shows key text: {text}");
            assert!(!text.contains(&line[..12]), "error shows key text: {text}");
        }
    }

    #[test]
    fn pkcs8_v1_and_v2_both_load() {
        // v1 is what `otactl keygen` and `openssl genpkey` write; v2 also embeds the public key.
        let v1 = pkcs8::KeypairBytes {
            secret_key: [7; 32],
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        assert_ne!(v1.as_str(), private_pem());
        for pem in [v1.as_str(), &private_pem()] {
            assert_eq!(parse_signing_key(pem, "test").unwrap().to_bytes(), key().to_bytes());
        }
    }

    #[test]
    fn env_key_loads() {
        let loaded = from_env(Some(&private_pem())).unwrap();
        assert_eq!(loaded.key.to_bytes(), key().to_bytes());
        assert!(loaded.warnings.is_empty());
        // CRLF from a Windows editor, surrounding blank lines, and one-line `\n` escapes.
        let crlf = format!("\n{}\n", private_pem().replace('\n', "\r\n"));
        assert_eq!(from_env(Some(&crlf)).unwrap().key.to_bytes(), key().to_bytes());
        let escaped = private_pem().replace('\n', "\\n");
        assert_eq!(from_env(Some(&escaped)).unwrap().key.to_bytes(), key().to_bytes());
    }

    #[test]
    fn env_errors_name_the_variable_and_hide_the_key() {
        for missing in [None, Some(""), Some("  \n")] {
            let e = from_env(missing).unwrap_err();
            assert!(matches!(e, KeyError::EnvUnset), "{e:?}");
            assert!(e.to_string().contains(SIGNING_KEY_ENV));
        }

        let pem = private_pem();
        // Body cut in half: a copy-paste accident.
        let lines: Vec<&str> = pem.lines().collect();
        let cut = format!(
            "{}\n{}\n{}",
            lines[0],
            &lines[1][..lines[1].len() / 2],
            lines[lines.len() - 1]
        );
        let e = from_env(Some(&cut)).unwrap_err();
        assert!(matches!(e, KeyError::Malformed { .. }), "{e:?}");
        assert!(e.to_string().contains(SIGNING_KEY_ENV), "{e}");
        assert_no_key_text(&e, &pem);

        // The public key where the private one belongs.
        let e = from_env(Some(&public_pem())).unwrap_err();
        assert!(matches!(e, KeyError::WrongKind { .. }), "{e:?}");
        assert!(e.to_string().contains("public key"), "{e}");
        assert_no_key_text(&e, &public_pem());

        // Just the base64 body without its PEM lines.
        let bare = body_lines(&pem).join("\n");
        let e = from_env(Some(&bare)).unwrap_err();
        assert!(matches!(e, KeyError::NotPem { .. }), "{e:?}");
        assert_no_key_text(&e, &pem);
    }

    #[test]
    fn other_algorithms_are_named() {
        // The same PKCS#8 structure with the X25519 OID (1.3.101.110) instead of Ed25519's.
        let der = key().to_pkcs8_der().unwrap();
        let mut der = der.as_bytes().to_vec();
        let at = der
            .windows(5)
            .position(|w| w == [0x06, 0x03, 0x2B, 0x65, 0x70])
            .unwrap();
        der[at + 4] = 0x6E;
        let pem = pkcs8::Document::try_from(der)
            .unwrap()
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .unwrap();
        let e = from_env(Some(&pem)).unwrap_err();
        assert!(matches!(e, KeyError::WrongAlgorithm { .. }), "{e:?}");
        assert!(e.to_string().contains("X25519"), "{e}");
        assert_no_key_text(&e, &pem);

        let rsa =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n";
        let e = from_env(Some(rsa)).unwrap_err();
        assert!(e.to_string().contains("RSA"), "{e}");
        assert_no_key_text(&e, rsa);

        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
        let e = from_env(Some(ssh)).unwrap_err();
        assert!(matches!(e, KeyError::UnsupportedFormat { .. }), "{e:?}");
        assert_no_key_text(&e, ssh);
    }

    #[test]
    fn files_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("k.key");
        let public = dir.path().join("k.pub");
        File::create(&private)
            .unwrap()
            .write_all(private_pem().as_bytes())
            .unwrap();
        File::create(&public)
            .unwrap()
            .write_all(public_pem().as_bytes())
            .unwrap();

        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = load_signing_key(&SigningKeySource::File(private.clone())).unwrap();
        assert!(loaded.warnings.is_empty());
        assert_eq!(load_verifying_key(&public).unwrap(), key().verifying_key());

        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = load_signing_key(&SigningKeySource::File(private.clone())).unwrap();
        let [warning] = &loaded.warnings[..] else {
            panic!("{:?}", loaded.warnings)
        };
        assert!(warning.to_string().contains("0644"), "{warning}");
        assert!(warning.to_string().contains("k.key"), "{warning}");

        let e = load_verifying_key(&private).unwrap_err();
        assert!(matches!(e, KeyError::WrongKind { .. }), "{e:?}");
        assert_no_key_text(&e, &private_pem());

        let e = load_verifying_key(&dir.path().join("missing.pub")).unwrap_err();
        assert!(matches!(e, KeyError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.pub"), "{e}");

        // A log file or an image by mistake.
        let binary = dir.path().join("image.bin");
        std::fs::write(&binary, [0xE9, 0xFF, 0x00, 0x80]).unwrap();
        let e = load_verifying_key(&binary).unwrap_err();
        assert!(matches!(e, KeyError::NotPem { .. }), "{e:?}");
    }
}
