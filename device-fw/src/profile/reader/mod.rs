//! The one reader of profile files: tables and keys, spellings, defaults and limits, the
//! rules values must meet, errors that name file, line, key and fix, and the settings a
//! firmware compiles in.
//!
//! Two programs use it: the crate (`device_fw::profile`, on the host) and the crate's
//! build script, which renders the firmware's settings before the crate exists and so
//! includes these files by path. That is why nothing here names `crate::` (it is a
//! different crate in each) and only std, serde, toml, humantime and base64 are used.
//! What the two differ in comes from the parent module: `Chip` and `Dialect`, convertible
//! both ways with [`ChipName`] and [`DialectName`]. On the host they are the core's own
//! types, so a profile holds what the rest of the crate takes; in the build script they
//! are the names themselves.

mod error;
mod firmware;
mod locate;
mod names;
mod tables;
mod validate;

use std::path::Path;

pub use error::{ProfileError, ProfileErrorKind};
pub use firmware::{
    DownloadArgs, FirmwarePins, FirmwareSettings, KEYS_ENV, KeySource, PROFILE_ENV, UpdateMicros, decode_public_key,
};
pub use names::{ChipName, DialectName};
pub use tables::{
    BENCH_AFTER, BENCH_BEFORE, Bench, Build, DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS, DEFAULT_CHANNEL,
    DEFAULT_CHECK_EVERY, DEFAULT_CHUNK_MAX, DEFAULT_CHUNK_MIN, DEFAULT_HALT_MIN_REPORTS, DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS_PER_DAY, DEFAULT_MAX_FAILURE_RATE, DEFAULT_MIN_REPORTS, DEFAULT_NAT_IDLE_TIMEOUT_S,
    DEFAULT_RETRIES, DEFAULT_RETRY_AFTER, DEFAULT_RETRY_MAX, DEFAULT_SAFETY_FACTOR, Device, Download, Flash, FlashFreq,
    FlashMode, FlashSize, MAX_DEVICE_URL, MAX_GPIO, MAX_KEYS, Modem, Network, PARTITION_TABLE_OFFSET, Pins, Profile,
    Region, Release, RolloutGate, STANDARD_BAUDS, Slots, Span, Update,
};
pub use validate::{MAX_UPDATE_SPAN, MIN_CHECK_EVERY, MIN_RETRY_AFTER, device_url_problem};

use error::Details;
use locate::Doc;

/// The includer's types for the two closed sets (see the module documentation).
use super::{Chip, Dialect};

impl Profile {
    /// Reads and validates the profile at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ProfileError(Box::new(Details {
                origin: origin.clone(),
                kind: ProfileErrorKind::Read,
                key: None,
                line: None,
                column: None,
                reason: format!("cannot read the profile: {e}"),
                help: "check the path; profiles live in profiles/<name>.toml".into(),
            }))
        })?;
        Profile::parse(&text, &origin)
    }

    /// Parses and validates profile `text`; `origin` (usually the file name) is what errors
    /// name.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        Profile::parse_doc(text, origin).map(|(profile, _)| profile)
    }

    /// [`Profile::parse`], keeping the spanned text for errors about what follows.
    fn parse_doc<'a>(text: &'a str, origin: &'a str) -> Result<(Profile, Doc<'a>), ProfileError> {
        let doc = Doc::parse(text, origin)?;
        let profile: Profile = toml::from_str(text).map_err(|e| doc.serde_error(&e))?;
        profile.validate(&doc)?;
        Ok((profile, doc))
    }
}
