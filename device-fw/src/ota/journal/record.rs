//! Record values: how each key's value is laid out in its record, and the CRC a record is
//! checked with (the sector and slot layout around them is in the [module docs](super)).
//!
//! Progress and failed-version values start with a tag, [`TAG_NONE`] for a cleared record
//! and [`TAG_SOME`] before the content; the schedule's value is the encoding of
//! [`ScheduleRecord`](crate::ota::schedule::ScheduleRecord). Decoding refuses any length or
//! tag it does not know rather than guess, and [`Journal::load`](super::Journal::load) then
//! drops the record.

use super::{DecodeError, JOURNAL_RAM_BYTES, Progress, RECORD_HEADER, VERSION_MAX};
use crate::esp::otadata::crc32_le;
use crate::wire::ImageForm;

const TAG_NONE: u8 = 0;
const TAG_SOME: u8 = 1;

/// tag, slot, form, image_size, written, image_sha256, prefix_sha256, fetched. Records
/// before the compressed form end before `fetched` and have 0xFF as their form (raw).
const PROGRESS_LEN: usize = 1 + 1 + 1 + 4 + 4 + 32 + 32 + 4;
const PROGRESS_LEN_RAW_ONLY: usize = PROGRESS_LEN - 4;
const FORM_RAW: u8 = 0xFF;
/// The compressed form (`OTZ2`). Any other form byte reads as raw: records before the
/// compressed form had a reserved byte there, and 1 was the DEFLATE form (`OTZ1`), whose
/// slot bytes up to `written` are image bytes like any raw download's, so such a record
/// resumes as a raw one.
const FORM_COMPRESSED: u8 = 3;
/// A patch from the running image.
const FORM_DELTA: u8 = 2;
const VERSION_RECORD_MAX: usize = 1 + VERSION_MAX;

const _: () = assert!(JOURNAL_RAM_BYTES >= RECORD_HEADER + PROGRESS_LEN);
const _: () = assert!(JOURNAL_RAM_BYTES >= RECORD_HEADER + VERSION_RECORD_MAX);

/// A record value about to be written. "Cleared" is a record of its own rather than a
/// deletion, so that forgetting has the same cut-safety as a save.
#[derive(Clone, Copy)]
pub(super) enum Value<'v> {
    Progress(Option<&'v Progress>),
    Version(Option<&'v str>),
    Raw(&'v [u8]),
}

impl Value<'_> {
    /// Writes the value into `out`; returns its length.
    pub(super) fn encode(self, out: &mut [u8]) -> usize {
        match self {
            Value::Progress(None) | Value::Version(None) => {
                out[0] = TAG_NONE;
                1
            }
            Value::Progress(Some(p)) => {
                out[0] = TAG_SOME;
                out[1] = p.slot;
                out[2] = match p.form {
                    ImageForm::Raw => FORM_RAW,
                    ImageForm::Compressed => FORM_COMPRESSED,
                    ImageForm::Delta => FORM_DELTA,
                };
                out[3..7].copy_from_slice(&p.image_size.to_le_bytes());
                out[7..11].copy_from_slice(&p.written.to_le_bytes());
                out[11..43].copy_from_slice(&p.image_sha256);
                out[43..75].copy_from_slice(&p.prefix_sha256);
                out[75..79].copy_from_slice(&p.fetched.to_le_bytes());
                PROGRESS_LEN
            }
            Value::Version(Some(text)) => {
                out[0] = TAG_SOME;
                out[1..1 + text.len()].copy_from_slice(text.as_bytes());
                1 + text.len()
            }
            Value::Raw(raw) => {
                out[..raw.len()].copy_from_slice(raw);
                raw.len()
            }
        }
    }
}

pub(super) fn bad_length(value: &[u8]) -> DecodeError {
    DecodeError::BadLength {
        len: value.len() as u16,
    }
}

pub(super) fn decode_progress(value: &[u8]) -> Result<Option<Progress>, DecodeError> {
    match value.first() {
        Some(&TAG_NONE) if value.len() == 1 => Ok(None),
        Some(&TAG_SOME) if matches!(value.len(), PROGRESS_LEN | PROGRESS_LEN_RAW_ONLY) => {
            let u32_at = |at: usize| u32::from_le_bytes([value[at], value[at + 1], value[at + 2], value[at + 3]]);
            let mut p = Progress {
                image_sha256: [0; 32],
                slot: value[1],
                image_size: u32_at(3),
                written: u32_at(7),
                prefix_sha256: [0; 32],
                form: match value[2] {
                    FORM_COMPRESSED => ImageForm::Compressed,
                    FORM_DELTA => ImageForm::Delta,
                    _ => ImageForm::Raw,
                },
                fetched: if value.len() == PROGRESS_LEN {
                    u32_at(75)
                } else {
                    u32_at(7)
                },
            };
            p.image_sha256.copy_from_slice(&value[11..43]);
            p.prefix_sha256.copy_from_slice(&value[43..75]);
            if p.written > p.image_size {
                return Err(DecodeError::WrittenPastEnd);
            }
            Ok(Some(p))
        }
        None | Some(&(TAG_NONE | TAG_SOME)) => Err(bad_length(value)),
        Some(&tag) => Err(DecodeError::UnknownTag { tag }),
    }
}

pub(super) fn decode_version(value: &[u8]) -> Result<Option<heapless::String<VERSION_MAX>>, DecodeError> {
    match value.first() {
        Some(&TAG_NONE) if value.len() == 1 => Ok(None),
        Some(&TAG_SOME) if value.len() <= VERSION_RECORD_MAX => {
            let text = core::str::from_utf8(&value[1..]).map_err(|_| DecodeError::VersionNotUtf8)?;
            // At most VERSION_MAX bytes, checked above: always fits.
            Ok(heapless::String::try_from(text).ok())
        }
        None | Some(&(TAG_NONE | TAG_SOME)) => Err(bad_length(value)),
        Some(&tag) => Err(DecodeError::UnknownTag { tag }),
    }
}

/// The CRC-32 of a record in `buf`: its first four bytes, then its `len`-byte value.
pub(super) fn record_crc(buf: &[u8], len: usize) -> u32 {
    crc32_le(crc32_le(0, &buf[..4]), &buf[RECORD_HEADER..RECORD_HEADER + len])
}
