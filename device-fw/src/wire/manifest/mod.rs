//! Signed release manifests: what `otactl release` publishes and the device trusts.
//!
//! # Format (schema 1)
//!
//! The object at `<channel>/manifest.json` is a [DSSE] envelope, so that publishing is one
//! object write and the signature covers exact bytes without any JSON canonicalisation:
//!
//! ```json
//! {"payloadType":"application/vnd.otactl.manifest+json",
//!  "payload":"<base64 of the manifest JSON>",
//!  "signatures":[{"keyid":"<16 hex>","sig":"<base64 Ed25519 signature>"}]}
//! ```
//!
//! Each signature is Ed25519 over DSSE's pre-authentication encoding of the payload bytes
//! (`"DSSEv1" SP len(type) SP type SP len(payload) SP payload`), so the type is signed too
//! and a payload cannot be re-labelled. `keyid` is the first 8 bytes of the SHA-256 of the
//! 32-byte public key, in hex: a hint to pick the key, never trusted on its own. Up to
//! [`MAX_SIGNATURES`] signatures are carried, which is how a key rotation is published.
//!
//! The payload is a JSON object:
//!
//! ```json
//! {"schema":1,"product":"field-logger","channel":"stable","version":"1.4.2",
//!  "chip":"esp32","board":"m5stack-core","image":"../images/<sha256>.bin","size":233040,
//!  "sha256":"<64 lowercase hex>","secure_version":0,"created":"2026-11-24T04:00:00Z"}
//! ```
//!
//! Every field is required and bounded ([`limits`]); an over-long field is an error, never
//! truncated. Fields this firmware does not know are ignored, so later schemas can add
//! (compression, deltas) without breaking devices in the field, as `rollout` did
//! ([`super::rollout`]); a change old
//! devices must not misread bumps `schema`, which old devices reject.
//!
//! # Memory
//!
//! The device opens a manifest with no heap: the envelope is read into a buffer of at most
//! [`MAX_ENVELOPE`] bytes, and [`PayloadBuf`] ([`PAYLOAD_BUF_LEN`] bytes) holds the decoded
//! payload behind its signing prefix. Parsed fields borrow from that buffer.
//!
//! [DSSE]: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::json::{JsonError, Reader, required, set_once};
use super::rollout::{Rollout, RolloutError};
use super::semver::{Version, VersionError};

/// The payload schema this firmware understands.
pub const SCHEMA: u32 = 1;
/// DSSE payload type of an otactl manifest.
pub const PAYLOAD_TYPE: &str = "application/vnd.otactl.manifest+json";
/// Largest manifest payload (decoded JSON).
pub const MAX_PAYLOAD: usize = 1024;
/// Largest envelope (the whole `manifest.json` object).
pub const MAX_ENVELOPE: usize = 2048;
/// Signatures an envelope may carry: one per key during a rotation.
pub const MAX_SIGNATURES: usize = 2;
/// Public keys a device trusts at once: the current one and its successor.
pub const MAX_KEYS: usize = 2;
/// Length of the signing prefix reserved in front of the payload.
const PAE_PREFIX_MAX: usize = 64;
/// Bytes of a [`PayloadBuf`].
pub const PAYLOAD_BUF_LEN: usize = PAE_PREFIX_MAX + MAX_PAYLOAD;

/// Longest value of each string field, in bytes.
pub mod limits {
    pub const PRODUCT: usize = 32;
    pub const CHANNEL: usize = 32;
    /// The app descriptor's version field is 32 bytes with its NUL.
    pub const VERSION: usize = 31;
    pub const CHIP: usize = 16;
    pub const BOARD: usize = 32;
    pub const IMAGE: usize = 200;
    pub const CREATED: usize = 32;
}

/// The signed facts about one release.
///
/// Written with serde (host only); read with [`super::json`] so the device carries no
/// deserialiser. The field names below are the wire names for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Manifest<'a> {
    pub schema: u32,
    /// What the firmware is (one product line can span boards and chips).
    pub product: &'a str,
    /// The channel this manifest was published to (`stable`, `beta`, …); a device only
    /// accepts its own channel's manifests, so one cannot be replayed onto another.
    pub channel: &'a str,
    /// Semver; equals the app descriptor's version inside the image.
    pub version: &'a str,
    /// ESP chip name as espflash and esptool spell it (`esp32`, `esp32c3`, …).
    pub chip: &'a str,
    pub board: &'a str,
    /// Image location, relative to the manifest's URL (or absolute `http://`).
    pub image: &'a str,
    pub size: u32,
    /// SHA-256 of the whole image file, lowercase hex.
    pub sha256: &'a str,
    /// Anti-rollback counter: a device never installs a lower one than it runs.
    pub secure_version: u32,
    /// RFC 3339 UTC time of the release (`YYYY-MM-DDTHH:MM:SSZ`).
    pub created: &'a str,
    /// Who may take this release ([`super::rollout`]); `None`: every device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout<'a>>,
    /// The same image in the compressed form ([`super::compressed`]), which a device that
    /// reads this member fetches instead of `image`; `size` and `sha256` stay those of the
    /// raw image, checked after decoding. Firmware older than the member skips it and
    /// fetches `image`, so it did not bump the schema. On the wire it is `lzma`: the
    /// member took a new name with its codec, so firmware that knew only the DEFLATE form
    /// under `compressed` takes the raw image instead of misreading this one.
    #[serde(rename = "lzma", skip_serializing_if = "Option::is_none")]
    pub compressed: Option<Alternate<'a>>,
    /// A patch ([`super::delta`]) from the channel's previous release, which a device whose
    /// running image has `base_sha256` fetches instead of the other forms; like
    /// `compressed`, skipped by firmware older than the member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Patch<'a>>,
}

/// A patch of the release's image from an earlier image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Patch<'a> {
    /// Location, relative to the manifest's URL, like `image`.
    pub image: &'a str,
    /// Bytes of the patch file.
    pub size: u32,
    /// SHA-256 of the whole base image file, lowercase hex: the image a device must run.
    pub base_sha256: &'a str,
    /// Bytes of the base image file.
    pub base_size: u32,
}

impl Patch<'_> {
    pub fn base_sha256_bytes(&self) -> Result<[u8; 32], ManifestError> {
        parse_hex::<32>(self.base_sha256).ok_or(ManifestError::BadSha256)
    }
}

/// Another form of the release's image: where it is and how many bytes it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Alternate<'a> {
    /// Location, relative to the manifest's URL, like `image`.
    pub image: &'a str,
    /// Bytes of this form's file (what the server's Content-Length must say).
    pub size: u32,
}

#[derive(Debug, Serialize)]
struct Envelope<'a> {
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    payload: &'a str,
    signatures: heapless::Vec<EnvelopeSignature<'a>, MAX_SIGNATURES>,
}

#[derive(Debug, Serialize)]
struct EnvelopeSignature<'a> {
    keyid: &'a str,
    sig: &'a str,
}

/// Why a manifest was not accepted. Each reason is its own variant, so the console can say
/// exactly what was wrong with a release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is {len} bytes, more than the {MAX_ENVELOPE} a device reads; it is not an otactl manifest")]
    TooLarge { len: usize },
    #[error("manifest is not a well-formed signed envelope ({0}); it may be truncated or not an otactl manifest")]
    Malformed(JsonError),
    #[error("manifest payload type is not {PAYLOAD_TYPE}; publish it with `otactl release`")]
    WrongPayloadType,
    #[error("manifest payload is not valid base64")]
    PayloadNotBase64,
    #[error("manifest payload is longer than {MAX_PAYLOAD} bytes")]
    PayloadTooLarge,
    #[error("manifest carries no signature; sign it with `otactl release --key`")]
    Unsigned,
    #[error("a signature is not 64 bytes of base64")]
    SignatureMalformed,
    #[error("manifest is not signed by a key this device trusts; check the key the release used")]
    UnknownKey,
    #[error("manifest signature does not verify: the manifest was altered after signing")]
    BadSignature,
    #[error("manifest payload is not valid JSON for schema {SCHEMA} ({0})")]
    PayloadMalformed(JsonError),
    #[error(
        "manifest schema {found} is not supported by this firmware (it reads schema {SCHEMA}); update the firmware first"
    )]
    UnsupportedSchema { found: u32 },
    #[error("manifest field `{field}` is longer than {max} bytes")]
    FieldTooLong { field: &'static str, max: usize },
    #[error("manifest field `{field}` is empty or has characters it may not have")]
    FieldInvalid { field: &'static str },
    #[error("manifest version is not semver: {0}")]
    BadVersion(VersionError),
    #[error("manifest sha256 is not 64 lowercase hex digits")]
    BadSha256,
    #[error("manifest size is 0")]
    ZeroSize,
    #[error("manifest `created` is not an RFC 3339 UTC time like 2026-11-24T04:00:00Z")]
    BadCreated,
    #[error("manifest rollout: {0}")]
    Rollout(RolloutError),
    #[error("buffer too small to write the manifest")]
    BufferFull,
}

/// Holds a decoded payload right behind the room for its signing prefix, so the signature
/// is checked over one contiguous slice without a second copy.
#[derive(Debug)]
pub struct PayloadBuf {
    bytes: [u8; PAYLOAD_BUF_LEN],
}

impl Default for PayloadBuf {
    fn default() -> Self {
        PayloadBuf {
            bytes: [0; PAYLOAD_BUF_LEN],
        }
    }
}

/// The first 8 bytes of SHA-256 over the public key: the `keyid` hint in envelopes.
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let digest = Sha256::digest(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

fn hex_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decodes lowercase hex of exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let raw = text.as_bytes();
    if raw.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        out[i] = (hex_nibble(pair[0])? << 4) | hex_nibble(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn write_hex<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xF)];
    }
    // Only ASCII hex digits were written.
    core::str::from_utf8(&out[..2 * bytes.len()]).unwrap_or_default()
}

/// `DSSEv1 <len> <type> <len> ` for a payload of `payload_len` bytes.
fn pae_prefix(payload_len: usize) -> heapless::String<PAE_PREFIX_MAX> {
    use core::fmt::Write as _;
    let mut prefix = heapless::String::new();
    // PAYLOAD_TYPE is fixed and the length has at most 4 digits: always fits.
    let _ = write!(
        prefix,
        "DSSEv1 {} {} {} ",
        PAYLOAD_TYPE.len(),
        PAYLOAD_TYPE,
        payload_len
    );
    prefix
}

/// Which trusted key verified a manifest (index into the device's key list).
pub type KeyIndex = usize;

/// Checks the envelope's signature against `keys` and parses the signed manifest.
///
/// Order: envelope shape, payload type, payload decoding, signature, then the manifest's
/// own schema and fields, so nothing unsigned is ever interpreted.
pub fn open<'b>(
    envelope: &[u8],
    keys: &[[u8; 32]],
    buf: &'b mut PayloadBuf,
) -> Result<(Manifest<'b>, KeyIndex), ManifestError> {
    let env = parse_envelope(envelope)?;
    let (start, end) = decode_payload(&env, buf)?;
    let key = verify_signatures(&env, keys, &buf.bytes[..end], start)?;
    Ok((Manifest::parse(&buf.bytes[PAE_PREFIX_MAX..end])?, key))
}

/// Decodes the payload of `envelope` into `buf` without checking any signature: for tools
/// that show what a manifest says (and why it was rejected). Never trust the result.
pub fn decode_unverified<'b>(envelope: &[u8], buf: &'b mut PayloadBuf) -> Result<&'b [u8], ManifestError> {
    let env = parse_envelope(envelope)?;
    let (_, end) = decode_payload(&env, buf)?;
    Ok(&buf.bytes[PAE_PREFIX_MAX..end])
}

fn parse_envelope(envelope: &[u8]) -> Result<Envelope<'_>, ManifestError> {
    if envelope.len() > MAX_ENVELOPE {
        return Err(ManifestError::TooLarge { len: envelope.len() });
    }
    let env = read_envelope(envelope).map_err(ManifestError::Malformed)?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(ManifestError::WrongPayloadType);
    }
    Ok(env)
}

fn read_envelope(text: &[u8]) -> Result<Envelope<'_>, JsonError> {
    let mut r = Reader::new(text);
    let (mut payload_type, mut payload, mut signatures) = (None, None, None);
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        match key {
            "payloadType" => set_once(&mut payload_type, "payloadType", r.string()?)?,
            "payload" => set_once(&mut payload, "payload", r.string()?)?,
            "signatures" => {
                let list = read_signatures(&mut r)?;
                set_once(&mut signatures, "signatures", list)?
            }
            _ => r.skip_value()?,
        }
    }
    r.end()?;
    Ok(Envelope {
        payload_type: required(payload_type, "payloadType")?,
        payload: required(payload, "payload")?,
        signatures: required(signatures, "signatures")?,
    })
}

fn read_signatures<'a>(r: &mut Reader<'a>) -> Result<heapless::Vec<EnvelopeSignature<'a>, MAX_SIGNATURES>, JsonError> {
    let mut list = heapless::Vec::new();
    r.begin_array()?;
    while r.next_element()? {
        let (mut keyid, mut sig) = (None, None);
        r.begin_object()?;
        while let Some(key) = r.next_key()? {
            match key {
                "keyid" => set_once(&mut keyid, "keyid", r.string()?)?,
                "sig" => set_once(&mut sig, "sig", r.string()?)?,
                _ => r.skip_value()?,
            }
        }
        let signature = EnvelopeSignature {
            keyid: required(keyid, "keyid")?,
            sig: required(sig, "sig")?,
        };
        list.push(signature).map_err(|_| JsonError::TooMany {
            field: "signatures",
            max: MAX_SIGNATURES,
        })?;
    }
    Ok(list)
}

/// Decodes the payload behind its signing prefix; returns the PAE's `[start, end)` in `buf`.
fn decode_payload(env: &Envelope<'_>, buf: &mut PayloadBuf) -> Result<(usize, usize), ManifestError> {
    if env.payload.len() > MAX_PAYLOAD.div_ceil(3) * 4 {
        return Err(ManifestError::PayloadTooLarge);
    }
    let len = BASE64
        .decode_slice(env.payload, &mut buf.bytes[PAE_PREFIX_MAX..])
        .map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => ManifestError::PayloadTooLarge,
            base64::DecodeSliceError::DecodeError(_) => ManifestError::PayloadNotBase64,
        })?;
    let prefix = pae_prefix(len);
    let start = PAE_PREFIX_MAX - prefix.len();
    buf.bytes[start..PAE_PREFIX_MAX].copy_from_slice(prefix.as_bytes());
    Ok((start, PAE_PREFIX_MAX + len))
}

fn verify_signatures(
    env: &Envelope<'_>,
    keys: &[[u8; 32]],
    pae_buf: &[u8],
    start: usize,
) -> Result<KeyIndex, ManifestError> {
    if env.signatures.is_empty() {
        return Err(ManifestError::Unsigned);
    }
    let message = &pae_buf[start..];
    let mut error = ManifestError::UnknownKey;
    for signature in &env.signatures {
        let mut raw = [0u8; 66];
        let sig = match BASE64.decode_slice(signature.sig, &mut raw) {
            Ok(64) => Signature::from_bytes(raw[..64].try_into().map_err(|_| ManifestError::SignatureMalformed)?),
            _ => return Err(ManifestError::SignatureMalformed),
        };
        let hinted = parse_hex::<8>(signature.keyid);
        for (index, key) in keys.iter().enumerate() {
            if hinted.is_some_and(|id| id != key_id(key)) {
                continue;
            }
            let Ok(verifying) = VerifyingKey::from_bytes(key) else {
                continue;
            };
            if verifying.verify_strict(message, &sig).is_ok() {
                return Ok(index);
            }
            error = ManifestError::BadSignature;
        }
    }
    Err(error)
}

/// The payload's `schema`, every other member skipped.
fn read_schema(payload: &[u8]) -> Result<u32, JsonError> {
    let mut r = Reader::new(payload);
    let mut schema = None;
    r.begin_object()?;
    while let Some(key) = r.next_key()? {
        match key {
            "schema" => set_once(&mut schema, "schema", r.u32()?)?,
            _ => r.skip_value()?,
        }
    }
    r.end()?;
    required(schema, "schema")
}

fn check_text(field: &'static str, value: &str, max: usize, allowed: fn(u8) -> bool) -> Result<(), ManifestError> {
    if value.len() > max {
        return Err(ManifestError::FieldTooLong { field, max });
    }
    if value.is_empty() || !value.bytes().all(allowed) {
        return Err(ManifestError::FieldInvalid { field });
    }
    Ok(())
}

/// Names: lowercase letters, digits, `.`, `_`, `-`.
fn name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
}

/// A URL reference: printable ASCII without quote, backslash or space.
fn url_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\\')
}

fn version_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+')
}

/// `YYYY-MM-DDTHH:MM:SSZ`, each number in range.
fn check_created(text: &str) -> Result<(), ManifestError> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(ManifestError::BadCreated);
    }
    let num = |r: core::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(u32::MAX);
    let in_range = (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) <= 23
        && num(14..16) <= 59
        && num(17..19) <= 60;
    if in_range {
        Ok(())
    } else {
        Err(ManifestError::BadCreated)
    }
}

impl<'a> Manifest<'a> {
    /// Parses and validates a payload (signature already checked by [`open`]).
    pub fn parse(payload: &'a [u8]) -> Result<Self, ManifestError> {
        // The schema is read first on its own, so a newer schema is reported as such and not
        // as whatever field it changed.
        let schema = read_schema(payload).map_err(ManifestError::PayloadMalformed)?;
        if schema != SCHEMA {
            return Err(ManifestError::UnsupportedSchema { found: schema });
        }
        let (manifest, rollout_error) = read_payload(payload).map_err(ManifestError::PayloadMalformed)?;
        if let Some(e) = rollout_error {
            return Err(ManifestError::Rollout(e));
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Every field within its limit and form. The host runs this before signing, so a
    /// manifest a device would reject is never published.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema != SCHEMA {
            return Err(ManifestError::UnsupportedSchema { found: self.schema });
        }
        check_text("product", self.product, limits::PRODUCT, name_byte)?;
        check_text("channel", self.channel, limits::CHANNEL, name_byte)?;
        check_text("version", self.version, limits::VERSION, version_byte)?;
        Version::parse(self.version).map_err(ManifestError::BadVersion)?;
        check_text("chip", self.chip, limits::CHIP, name_byte)?;
        check_text("board", self.board, limits::BOARD, name_byte)?;
        check_text("image", self.image, limits::IMAGE, url_byte)?;
        if self.size == 0 {
            return Err(ManifestError::ZeroSize);
        }
        self.sha256_bytes()?;
        if self.created.len() > limits::CREATED {
            return Err(ManifestError::FieldTooLong {
                field: "created",
                max: limits::CREATED,
            });
        }
        check_created(self.created)?;
        if let Some(alternate) = self.compressed {
            check_text("lzma.image", alternate.image, limits::IMAGE, url_byte)?;
            if alternate.size == 0 {
                return Err(ManifestError::ZeroSize);
            }
        }
        if let Some(patch) = self.delta {
            check_text("delta.image", patch.image, limits::IMAGE, url_byte)?;
            if patch.size == 0 || patch.base_size == 0 {
                return Err(ManifestError::ZeroSize);
            }
            patch.base_sha256_bytes()?;
        }
        match self.rollout {
            Some(r) => r.validate().map_err(ManifestError::Rollout),
            None => Ok(()),
        }
    }

    /// Who may take this release: its `rollout`, or everyone.
    pub fn rollout(&self) -> Rollout<'a> {
        self.rollout.unwrap_or(Rollout::FULL)
    }

    pub fn sha256_bytes(&self) -> Result<[u8; 32], ManifestError> {
        parse_hex::<32>(self.sha256).ok_or(ManifestError::BadSha256)
    }

    pub fn semver(&self) -> Result<Version<'a>, ManifestError> {
        Version::parse(self.version).map_err(ManifestError::BadVersion)
    }

    /// Writes the payload JSON into `out`, after validating; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ManifestError> {
        self.validate()?;
        let len = serde_json_core::to_slice(self, out).map_err(|_| ManifestError::BufferFull)?;
        if len > MAX_PAYLOAD {
            return Err(ManifestError::PayloadTooLarge);
        }
        Ok(len)
    }
}

/// Signs `payload` with each of `keys` and writes the envelope into `out`; returns its length.
///
/// This is the one writer of the format: `otactl release` and the bench both use it.
pub fn seal(payload: &[u8], keys: &[&ed25519_dalek::SigningKey], out: &mut [u8]) -> Result<usize, ManifestError> {
    use ed25519_dalek::Signer as _;
    if payload.len() > MAX_PAYLOAD {
        return Err(ManifestError::PayloadTooLarge);
    }
    if keys.is_empty() {
        return Err(ManifestError::Unsigned);
    }
    if keys.len() > MAX_SIGNATURES {
        return Err(ManifestError::BufferFull);
    }
    let mut pae = [0u8; PAYLOAD_BUF_LEN];
    let prefix = pae_prefix(payload.len());
    pae[..prefix.len()].copy_from_slice(prefix.as_bytes());
    pae[prefix.len()..prefix.len() + payload.len()].copy_from_slice(payload);
    let message = &pae[..prefix.len() + payload.len()];

    let mut payload_b64 = [0u8; MAX_PAYLOAD.div_ceil(3) * 4];
    let n = BASE64
        .encode_slice(payload, &mut payload_b64)
        .map_err(|_| ManifestError::BufferFull)?;
    let payload_b64 = core::str::from_utf8(&payload_b64[..n]).map_err(|_| ManifestError::BufferFull)?;

    let mut sig_texts = [[0u8; 88]; MAX_SIGNATURES];
    let mut id_texts = [[0u8; 16]; MAX_SIGNATURES];
    let mut signatures = heapless::Vec::<EnvelopeSignature<'_>, MAX_SIGNATURES>::new();
    for ((key, sig_text), id_text) in keys.iter().zip(&mut sig_texts).zip(&mut id_texts) {
        let sig = key.sign(message).to_bytes();
        let n = BASE64
            .encode_slice(sig, sig_text)
            .map_err(|_| ManifestError::BufferFull)?;
        let sig = core::str::from_utf8(&sig_text[..n]).map_err(|_| ManifestError::BufferFull)?;
        let keyid = write_hex(&key_id(key.verifying_key().as_bytes()), id_text);
        signatures
            .push(EnvelopeSignature { keyid, sig })
            .map_err(|_| ManifestError::BufferFull)?;
    }
    let envelope = Envelope {
        payload_type: PAYLOAD_TYPE,
        payload: payload_b64,
        signatures,
    };
    let len = serde_json_core::to_slice(&envelope, out).map_err(|_| ManifestError::BufferFull)?;
    if len > MAX_ENVELOPE {
        return Err(ManifestError::TooLarge { len });
    }
    Ok(len)
}

mod payload;
use payload::read_payload;

#[cfg(test)]
mod tests;
