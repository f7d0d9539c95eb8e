//! Result codes: one integer per reason, so C can branch on them, with a stable short name
//! (the same one `@ota` console events and `otactl watch` use) and a static message.
//!
//! The core's errors carry details (which field, which offset); those go into the engine's
//! last-error text ([`crate::otactl_last_error`]), since a static message cannot hold them.

use core::ffi::CStr;

use device_fw::ota::update::UpdateError;

/// What a call returned. `OTACTL_STATUS_OK` (0) is success; every other value is an error
/// whose meaning never changes between releases (new ones are only added).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    Ok = 0,
    /// A pointer argument was NULL, or a string was not NUL-terminated UTF-8.
    InvalidArgument = 1,
    /// The state memory is smaller than `otactl_state_size()`.
    StateTooSmall = 2,
    /// An `otactl_*` call was made from inside one of the engine's callbacks.
    Busy = 3,
    /// A setting in `otactl_config` is out of range (see the last-error text).
    Config = 4,
    /// No valid partition table at the configured offset.
    PartitionTable = 5,
    /// The partition table lacks otadata, two OTA slots or the otastate journal.
    Layout = 6,
    /// `running_app_offset` is neither an OTA slot nor the factory app.
    NotAnAppSlot = 7,
    /// The running app has no ESP-IDF app descriptor (no version to compare with).
    RunningAppUnreadable = 8,
    /// The modem did not come up (power, wiring, SIM, registration: see the last error).
    Modem = 9,
    /// A flash callback returned an error.
    Flash = 10,
    ManifestUnreachable = 20,
    ManifestTooLarge = 21,
    ManifestMalformed = 22,
    ManifestWrongType = 23,
    ManifestPayloadNotBase64 = 24,
    ManifestPayloadTooLarge = 25,
    ManifestUnsigned = 26,
    SignatureMalformed = 27,
    /// No trusted key signed the manifest.
    UnknownKey = 28,
    BadSignature = 29,
    ManifestPayloadMalformed = 30,
    UnsupportedSchema = 31,
    FieldTooLong = 32,
    FieldInvalid = 33,
    BadVersion = 34,
    BadSha256Field = 35,
    ZeroSize = 36,
    BadCreated = 37,
    ManifestInvalid = 38,
    WrongProduct = 40,
    WrongChannel = 41,
    WrongChip = 42,
    WrongBoard = 43,
    /// The release is not newer than the running app.
    NotNewer = 44,
    SecureVersionTooLow = 45,
    /// This version was installed here before and rolled back.
    PreviouslyFailed = 46,
    ImageTooLarge = 47,
    OutsideCohort = 48,
    RolloutPaused = 49,
    RolloutHalted = 50,
    ImageUrlInvalid = 60,
    HashMismatch = 61,
    SizeMismatch = 62,
    ImageRefused = 63,
    DownloadGaveUp = 64,
    DownloadFailed = 65,
    ImageBadMagic = 70,
    ImageWrongChip = 71,
    ImageBadChecksum = 72,
    ImageBadAppendedSha256 = 73,
    ImageNoAppDescriptor = 74,
    ImageTruncated = 75,
    ImageTooManySegments = 76,
    ImageSegmentOutOfBounds = 77,
    ImageSegmentMisaligned = 78,
    ImageInvalid = 79,
    AppVersionMismatch = 80,
    SecureVersionMismatch = 81,
    JournalFailed = 82,
    OtadataWriteFailed = 83,
    NoInactiveSlot = 84,
    /// An error this version has no code of its own for; the last-error text says more.
    Other = 99,
}

/// Each status with its short name and message; one table, so the three cannot drift.
const TABLE: &[(Status, &CStr, &CStr)] = &[
    (Status::Ok, c"ok", c"success"),
    (
        Status::InvalidArgument,
        c"invalid-argument",
        c"a pointer argument is NULL or a string is not NUL-terminated UTF-8",
    ),
    (
        Status::StateTooSmall,
        c"state-too-small",
        c"the state memory is smaller than otactl_state_size(); give at least OTACTL_STATE_BYTES",
    ),
    (
        Status::Busy,
        c"busy",
        c"an otactl call was made from inside an otactl callback; return from the callback first",
    ),
    (
        Status::Config,
        c"config-invalid",
        c"a setting in otactl_config is out of range; otactl_last_error() names it",
    ),
    (
        Status::PartitionTable,
        c"partition-table-invalid",
        c"no valid partition table at partition_table_offset; flash one (otactl flash) or fix the offset",
    ),
    (
        Status::Layout,
        c"layout-invalid",
        c"the partition table needs otadata, ota_0, ota_1 and an otastate (type 0x40) partition",
    ),
    (
        Status::NotAnAppSlot,
        c"not-an-app-slot",
        c"running_app_offset is neither an OTA slot nor the factory app; pass the running partition's address",
    ),
    (
        Status::RunningAppUnreadable,
        c"running-app-unreadable",
        c"the running app has no ESP-IDF app descriptor, so its version is unknown",
    ),
    (
        Status::Modem,
        c"modem-failed",
        c"the modem did not come up: check power, UART wiring and baud, SIM and APN",
    ),
    (Status::Flash, c"flash-failed", c"a flash callback returned an error"),
    (
        Status::ManifestUnreachable,
        c"manifest-unreachable",
        c"the manifest could not be fetched; check the URL and the network",
    ),
    (
        Status::ManifestTooLarge,
        c"manifest-too-large",
        c"the manifest is larger than a device accepts",
    ),
    (
        Status::ManifestMalformed,
        c"manifest-malformed",
        c"the manifest envelope is not valid JSON",
    ),
    (
        Status::ManifestWrongType,
        c"manifest-wrong-type",
        c"the manifest envelope has the wrong payload type",
    ),
    (
        Status::ManifestPayloadNotBase64,
        c"manifest-payload-not-base64",
        c"the manifest payload is not base64",
    ),
    (
        Status::ManifestPayloadTooLarge,
        c"manifest-payload-too-large",
        c"the manifest payload is larger than a device accepts",
    ),
    (
        Status::ManifestUnsigned,
        c"manifest-unsigned",
        c"the manifest carries no signature",
    ),
    (
        Status::SignatureMalformed,
        c"signature-malformed",
        c"a manifest signature is malformed",
    ),
    (
        Status::UnknownKey,
        c"unknown-key",
        c"no trusted public key signed the manifest; sign with the key the device trusts",
    ),
    (
        Status::BadSignature,
        c"bad-signature",
        c"the manifest signature does not verify: the manifest was altered",
    ),
    (
        Status::ManifestPayloadMalformed,
        c"manifest-payload-malformed",
        c"the signed manifest payload is not a valid manifest",
    ),
    (
        Status::UnsupportedSchema,
        c"unsupported-schema",
        c"the manifest schema is newer than this device understands",
    ),
    (
        Status::FieldTooLong,
        c"field-too-long",
        c"a manifest field is longer than a device accepts",
    ),
    (Status::FieldInvalid, c"field-invalid", c"a manifest field is invalid"),
    (
        Status::BadVersion,
        c"bad-version",
        c"the manifest version is not semver",
    ),
    (
        Status::BadSha256Field,
        c"bad-sha256-field",
        c"the manifest sha256 is not 64 hex digits",
    ),
    (Status::ZeroSize, c"zero-size", c"the manifest says the image is empty"),
    (
        Status::BadCreated,
        c"bad-created",
        c"the manifest created time is not RFC 3339",
    ),
    (Status::ManifestInvalid, c"manifest-invalid", c"the manifest is invalid"),
    (
        Status::WrongProduct,
        c"wrong-product",
        c"the release is for another product",
    ),
    (
        Status::WrongChannel,
        c"wrong-channel",
        c"the release is for another channel",
    ),
    (Status::WrongChip, c"wrong-chip", c"the release is for another chip"),
    (Status::WrongBoard, c"wrong-board", c"the release is for another board"),
    (
        Status::NotNewer,
        c"not-newer",
        c"the release is not newer than the running app: nothing to do",
    ),
    (
        Status::SecureVersionTooLow,
        c"secure-version-too-low",
        c"the release's secure_version is below the running app's",
    ),
    (
        Status::PreviouslyFailed,
        c"previously-failed",
        c"this version was installed here and rolled back; publish a newer one",
    ),
    (
        Status::ImageTooLarge,
        c"image-too-large",
        c"the image does not fit the inactive OTA slot",
    ),
    (
        Status::OutsideCohort,
        c"outside-cohort",
        c"the staged rollout does not include this device yet",
    ),
    (Status::RolloutPaused, c"rollout-paused", c"the rollout is paused"),
    (Status::RolloutHalted, c"rollout-halted", c"the rollout is halted"),
    (
        Status::ImageUrlInvalid,
        c"image-url-invalid",
        c"the manifest's image location is not a usable URL",
    ),
    (
        Status::HashMismatch,
        c"hash-mismatch",
        c"the downloaded image's SHA-256 differs from the signed manifest's",
    ),
    (
        Status::SizeMismatch,
        c"size-mismatch",
        c"the origin's image size differs from the signed manifest's",
    ),
    (
        Status::ImageRefused,
        c"image-refused",
        c"the origin refused the image request",
    ),
    (
        Status::DownloadGaveUp,
        c"download-gave-up",
        c"the download made no progress through every retry; the next attempt resumes",
    ),
    (
        Status::DownloadFailed,
        c"download-failed",
        c"the download failed; the next attempt resumes",
    ),
    (
        Status::ImageBadMagic,
        c"image-bad-magic",
        c"the image is not an ESP app image",
    ),
    (
        Status::ImageWrongChip,
        c"image-wrong-chip",
        c"the image was built for another chip",
    ),
    (
        Status::ImageBadChecksum,
        c"image-bad-checksum",
        c"the image checksum is wrong",
    ),
    (
        Status::ImageBadAppendedSha256,
        c"image-bad-appended-sha256",
        c"the image's appended SHA-256 is wrong",
    ),
    (
        Status::ImageNoAppDescriptor,
        c"image-no-app-descriptor",
        c"the image has no app descriptor",
    ),
    (Status::ImageTruncated, c"image-truncated", c"the image is truncated"),
    (
        Status::ImageTooManySegments,
        c"image-too-many-segments",
        c"the image has too many segments",
    ),
    (
        Status::ImageSegmentOutOfBounds,
        c"image-segment-out-of-bounds",
        c"an image segment lies outside the image",
    ),
    (
        Status::ImageSegmentMisaligned,
        c"image-segment-misaligned",
        c"an image segment length is not a multiple of 4",
    ),
    (Status::ImageInvalid, c"image-invalid", c"the image would not boot"),
    (
        Status::AppVersionMismatch,
        c"app-version-mismatch",
        c"the app descriptor's version differs from the signed manifest's",
    ),
    (
        Status::SecureVersionMismatch,
        c"secure-version-mismatch",
        c"the app descriptor's secure_version differs from the signed manifest's",
    ),
    (
        Status::JournalFailed,
        c"journal-failed",
        c"the otastate journal could not be read or written",
    ),
    (
        Status::OtadataWriteFailed,
        c"otadata-write-failed",
        c"otadata could not be written; the running app stays selected",
    ),
    (
        Status::NoInactiveSlot,
        c"no-inactive-slot",
        c"no OTA slot is free to write",
    ),
    (
        Status::Other,
        c"other",
        c"an error without a code of its own; otactl_last_error() has the details",
    ),
];

const UNKNOWN_NAME: &CStr = c"unknown";
const UNKNOWN_MESSAGE: &CStr = c"unknown otactl status code";

impl Status {
    fn entry(code: i32) -> Option<&'static (Status, &'static CStr, &'static CStr)> {
        TABLE.iter().find(|(s, _, _)| *s as i32 == code)
    }

    /// The short name for `code` (`"bad-signature"`), `"unknown"` for a code never issued.
    pub fn name_of(code: i32) -> &'static CStr {
        Self::entry(code).map_or(UNKNOWN_NAME, |e| e.1)
    }

    /// The message for `code`.
    pub fn message_of(code: i32) -> &'static CStr {
        Self::entry(code).map_or(UNKNOWN_MESSAGE, |e| e.2)
    }

    /// The status whose short name the core gave (`UpdateError::code`, `Rejection::code`).
    pub fn from_core_code(code: &str) -> Status {
        TABLE
            .iter()
            .find(|(_, name, _)| name.to_bytes() == code.as_bytes())
            .map_or(Status::Other, |e| e.0)
    }

    pub fn from_update_error<E>(error: &UpdateError<E>) -> Status {
        match error {
            UpdateError::Flash(_) => Status::Flash,
            other => Self::from_core_code(other.code()),
        }
    }

    #[cfg(test)]
    pub(crate) fn table() -> impl Iterator<Item = (Status, &'static CStr, &'static CStr)> {
        TABLE.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_entry_and_a_distinct_name() {
        for (i, (status, name, message)) in TABLE.iter().enumerate() {
            assert!(!message.is_empty());
            for (other, other_name, _) in &TABLE[i + 1..] {
                assert_ne!(*status as i32, *other as i32, "{name:?} twice");
                assert_ne!(name, other_name);
            }
        }
    }

    #[test]
    fn an_unissued_code_reads_unknown() {
        assert_eq!(Status::name_of(-7), UNKNOWN_NAME);
        assert_eq!(Status::message_of(9999), UNKNOWN_MESSAGE);
        assert_eq!(Status::name_of(Status::BadSignature as i32), c"bad-signature");
    }
}
