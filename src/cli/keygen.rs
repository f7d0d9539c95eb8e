//! `otactl keygen`: the release signing key pair.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use clap::Args;
use device_fw::wire::manifest::{key_id, write_hex};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, KeypairBytes};
use miette::{Diagnostic, Result};
use zeroize::{Zeroize as _, Zeroizing};

use crate::keys::{SIGNING_KEY_ENV, SigningKeySource, load_signing_key, load_verifying_key};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes PATH_PREFIX.key (private, mode 0600) and PATH_PREFIX.pub (public).
    #[arg(long, value_name = "PATH_PREFIX", default_value = "keys/otactl")]
    out: PathBuf,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
enum KeygenError {
    #[error("{path} already exists; refusing to overwrite a key")]
    #[diagnostic(
        code(otactl::keygen::exists),
        help(
            "devices that trust the old key would reject releases signed by a new one; choose another --out prefix, or move the old pair away first if you really mean to replace it"
        )
    )]
    Exists { path: String },

    #[error("cannot create the key directory {path}")]
    #[diagnostic(code(otactl::keygen::dir))]
    CreateDir {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot write {path}")]
    #[diagnostic(code(otactl::keygen::write))]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("the operating system's random number generator failed")]
    #[diagnostic(code(otactl::keygen::rng))]
    Rng(#[source] getrandom::Error),

    #[error("the key files written do not read back as the key generated")]
    #[diagnostic(
        code(otactl::keygen::read_back),
        help("the filesystem may be failing; do not use this pair")
    )]
    ReadBack,

    #[error("cannot encode the key as PEM")]
    #[diagnostic(code(otactl::keygen::encode))]
    Encode,
}

/// `prefix` + `ext`, not `with_extension`, so a prefix like `keys/fleet.v2` keeps its dot.
fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = OsString::from(prefix.as_os_str());
    name.push(ext);
    PathBuf::from(name)
}

pub fn run(args: KeygenArgs) -> Result<()> {
    let pair = generate(&args.out)?;
    let (private_path, public_path) = (pair.private_path, pair.public_path);
    println!("Generated an Ed25519 release signing key, key id {}", pair.key_id);
    println!(
        "  private key  {}  (mode 0600: keep it secret, never commit it)",
        private_path.display()
    );
    println!(
        "  public key   {}  (for `otactl verify --key` and the device firmware)",
        public_path.display()
    );
    println!(
        "In CI, put the contents of {} in the secret {SIGNING_KEY_ENV}.",
        private_path.display()
    );
    Ok(())
}

/// A key pair written by [`generate`].
#[derive(Debug)]
pub struct KeyPair {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub key_id: String,
}

/// Writes a new pair at `<prefix>.key` / `<prefix>.pub`, never over an existing file (also
/// what `otactl demo` uses for its throwaway key).
pub fn generate(prefix: &Path) -> Result<KeyPair> {
    let private_path = with_suffix(prefix, ".key");
    let public_path = with_suffix(prefix, ".pub");
    // Both are checked before anything is written, so a refusal leaves no half pair behind.
    for path in [&private_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists {
                path: path.display().to_string(),
            }
            .into());
        }
    }

    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..]).map_err(KeygenError::Rng)?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (seed only), as `openssl genpkey` writes it: OpenSSL 3.0 cannot read the v2
    // form that also embeds the public key, and the key should open in openssl too.
    let mut pair = KeypairBytes {
        secret_key: *seed,
        public_key: None,
    };
    let private_pem = pair.to_pkcs8_pem(LineEnding::LF);
    pair.secret_key.zeroize();
    let private_pem = private_pem.map_err(|_| KeygenError::Encode)?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeygenError::Encode)?;

    if let Some(dir) = private_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeygenError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
    }
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_path, public_pem.as_bytes(), 0o644) {
        // Someone created the .pub in between: a private key without its public half would
        // only confuse the next run, which would refuse to overwrite it.
        let _ = std::fs::remove_file(&private_path);
        return Err(e.into());
    }

    // Read back through the loader `otactl release` uses: the pair reported here is one a
    // release will take, and a filesystem that ignored mode 0600 shows up as a warning now.
    let loaded = load_signing_key(&SigningKeySource::File(private_path.clone()))?;
    for warning in loaded.warnings {
        eprintln!("{:?}", miette::Report::new(warning));
    }
    if load_verifying_key(&public_path)? != key.verifying_key() || loaded.key != key {
        return Err(KeygenError::ReadBack.into());
    }

    let mut hex = [0u8; 16];
    let key_id = write_hex(&key_id(key.verifying_key().as_bytes()), &mut hex).to_owned();
    Ok(KeyPair {
        private_path,
        public_path,
        key_id,
    })
}

/// `create_new` so an existing key is never replaced, even by a race with another run, and
/// the mode is given at creation so the private key is never readable by others, not even
/// between `open` and a later `chmod`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeygenError> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeygenError::Exists {
                path: path.display().to_string(),
            }
        } else {
            KeygenError::Write {
                path: path.display().to_string(),
                source,
            }
        }
    };
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error(source));
    }
    Ok(())
}
