//! The device's OTA state in flash: download progress and failed versions.
//!
//! A download that dies with the power should carry on from where the slot writer got to,
//! not from byte 0 of a multi-megabyte image over a 2G link, and a version that failed to
//! boot must not be fetched again and again. Both facts have to outlive any power cut, so
//! they live in their own flash partition as a `sequential-storage` map: each save appends
//! one CRC-checked item and only the newest item per key counts, so a cut at any erase or
//! program leaves either the previous value or the new one, never a mix. Appending instead
//! of rewriting also spreads the wear of hundreds of progress saves per download over the
//! whole partition.
//!
//! The journal never holds the flash: the slot writer and the otadata code use the same
//! chip, so every call borrows it for its own duration and keeps no cache between calls
//! (a cache would go stale the moment someone else touched the chip, and an uncached map
//! over a few sectors costs only reads).
//!
//! The journal is advice, not truth. A progress record only says where to *try* resuming:
//! [`resume_point`] re-reads and re-hashes the slot before trusting it. That is also why
//! damaged journal content is thrown away instead of stopping an update (see
//! [`JournalReset`]): losing it costs a download from byte 0, while refusing to go on
//! would leave the device unable to update at all.

use core::ops::{Deref, DerefMut, Range};

use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::Error as MapError;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{Key, MapConfig, MapConfigError, MapStorage, SerializationError, Value};
use sha2::{Digest, Sha256};

use super::slot::{SECTOR, Slot, hash_prefix};

/// Longest version string a failure record holds; a longer one is refused, because a
/// truncated version could match a different release.
pub const VERSION_MAX: usize = 32;

/// Bytes of RAM one journal call needs for its item buffer.
///
/// The buffer holds one map item (key and value) at a time, rounded up to the flash word;
/// sized for `sequential-storage`'s largest supported word (32 bytes), so it fits every
/// `NorFlash`, not just the ESP32's 4-byte words. It lives in the call's future, which
/// also holds the map's own state across its awaits and is about a kilobyte more (the
/// bench's `ram_figure_is_the_real_buffer` test prints both).
pub const JOURNAL_RAM_BYTES: usize = 96;

/// The largest word `sequential-storage` supports; items are padded to it.
const MAX_WORD: usize = 32;

const _: () = assert!(JOURNAL_RAM_BYTES >= (1 + PROGRESS_LEN).next_multiple_of(MAX_WORD));
const _: () = assert!(JOURNAL_RAM_BYTES >= (1 + VERSION_RECORD_MAX).next_multiple_of(MAX_WORD));
const _: () = assert!(core::mem::size_of::<JournalBuf>() == JOURNAL_RAM_BYTES);

/// The working buffer of one journal call, on the stack.
///
/// Public only so that its size can be checked against [`JOURNAL_RAM_BYTES`]. Aligned to
/// 4 bytes because items are programmed straight from it and the ESP32 flash driver wants
/// word-aligned source buffers.
#[derive(Debug)]
#[repr(C, align(4))]
pub struct JournalBuf([u8; JOURNAL_RAM_BYTES]);

impl JournalBuf {
    pub const fn new() -> Self {
        JournalBuf([0; JOURNAL_RAM_BYTES])
    }
}

impl Default for JournalBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for JournalBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for JournalBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Where a download stood when it was last saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// SHA-256 of the whole image (from the signed manifest): which image this is about.
    pub image_sha256: [u8; 32],
    /// The OTA slot index (`ota_N`) being written.
    pub slot: u8,
    pub image_size: u32,
    /// Bytes of the image durably programmed into the slot ([`SlotWriter::programmed`]).
    ///
    /// [`SlotWriter::programmed`]: super::slot::SlotWriter::programmed
    pub written: u32,
    /// SHA-256 of exactly the first `written` bytes, so a resume can check them.
    pub prefix_sha256: [u8; 32],
}

/// What the journal held at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    /// The interrupted download, if one was under way.
    pub progress: Option<Progress>,
    /// The last version recorded as failed; an update to it should be refused.
    pub failed_version: Option<heapless::String<VERSION_MAX>>,
    /// Set when damaged content was dropped while loading; worth a log line.
    pub reset: Option<JournalReset>,
}

/// Identifies a record in the journal map.
///
/// Any byte is accepted when reading, so items written by a later firmware with keys this
/// one does not know are skipped instead of making the whole map unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey(u8);

impl RecordKey {
    pub const PROGRESS: RecordKey = RecordKey(1);
    pub const FAILED_VERSION: RecordKey = RecordKey(2);

    pub const fn id(self) -> u8 {
        self.0
    }
}

impl Key for RecordKey {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        *buffer.first_mut().ok_or(SerializationError::BufferTooSmall)? = self.0;
        Ok(1)
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        let id = *buffer.first().ok_or(SerializationError::BufferTooSmall)?;
        Ok((RecordKey(id), 1))
    }

    fn get_len(_buffer: &[u8]) -> Result<usize, SerializationError> {
        Ok(1)
    }
}

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("record has {len} bytes, which no known record format has")]
    BadLength { len: u16 },
    #[error("record has unknown format tag {tag:#04x}")]
    UnknownTag { tag: u8 },
    #[error("progress record says more bytes are written than the image has")]
    WrittenPastEnd,
    #[error("failed-version record is not UTF-8")]
    VersionNotUtf8,
}

impl DecodeError {
    // `Value::deserialize_from` can only fail with a `SerializationError`, so the detail
    // travels through the map as a `Custom` code and is unpacked again in `classify`.
    const KIND_SHIFT: u32 = 24;

    fn code(self) -> i32 {
        let (kind, detail) = match self {
            DecodeError::BadLength { len } => (1, u32::from(len)),
            DecodeError::UnknownTag { tag } => (2, u32::from(tag)),
            DecodeError::WrittenPastEnd => (3, 0),
            DecodeError::VersionNotUtf8 => (4, 0),
        };
        ((kind << Self::KIND_SHIFT) | detail) as i32
    }

    fn from_code(code: i32) -> Option<Self> {
        let code = code as u32;
        let detail = code & ((1 << Self::KIND_SHIFT) - 1);
        Some(match code >> Self::KIND_SHIFT {
            1 => DecodeError::BadLength { len: detail as u16 },
            2 => DecodeError::UnknownTag { tag: detail as u8 },
            3 => DecodeError::WrittenPastEnd,
            4 => DecodeError::VersionNotUtf8,
            _ => return None,
        })
    }
}

impl From<DecodeError> for SerializationError {
    fn from(e: DecodeError) -> Self {
        SerializationError::Custom(e.code())
    }
}

/// What `sequential-storage` found wrong with the map's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapFault {
    #[error("the map is corrupted beyond its own repair")]
    Corrupted,
    #[error("the map reports itself full")]
    Full,
    #[error("sequential-storage hit an internal inconsistency")]
    LogicBug,
    #[error("an item needs a {needed}-byte buffer, more than any record this firmware writes")]
    ItemTooLarge { needed: usize },
    #[error("an item's key or value could not be decoded")]
    Undecodable,
    #[error("sequential-storage reported an error this firmware does not know")]
    Other,
}

/// Why journal content was dropped. Whatever was dropped reads as absent afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JournalReset {
    /// The map was unreadable even after `sequential-storage`'s own repair (half-erased
    /// sectors, interrupted migrations), so the partition was erased and both records are
    /// gone.
    #[error("journal partition erased: {0}")]
    Erased(MapFault),
    /// One record did not decode (e.g. written by a different firmware); it was overwritten
    /// with its empty value and the other record kept.
    #[error("journal record {} dropped: {error}", key.id())]
    RecordDropped { key: RecordKey, error: DecodeError },
}

/// Why a journal partition is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("journal partition {start:#x}..{end:#x} is not aligned to {erase_size}-byte sectors")]
    NotSectorAligned { start: u32, end: u32, erase_size: u32 },
    #[error("journal partition has {bytes} bytes; it needs at least two {erase_size}-byte sectors")]
    TooSmall { bytes: u32, erase_size: u32 },
    #[error("the flash driver's sector or word size is not supported by the journal map")]
    UnsupportedFlash,
}

/// Why a journal call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError<E> {
    /// The flash driver failed (or the power went): the operation may or may not have
    /// reached flash, and the next [`Journal::load`] shows which.
    #[error("journal flash operation failed: {0:?}")]
    Flash(E),
    #[error("{0}")]
    Layout(LayoutError),
    #[error("version string has {len} bytes; the journal holds at most {VERSION_MAX}")]
    VersionTooLong { len: usize },
    #[error("progress says {written} bytes written of a {image_size}-byte image")]
    ProgressPastEnd { written: u32, image_size: u32 },
    /// Even a freshly erased partition could not take the record: a bug or a flash that
    /// does not keep what it is given.
    #[error("journal unusable even after erasing it: {0}")]
    Unrecoverable(MapFault),
}

const TAG_NONE: u8 = 0;
const TAG_SOME: u8 = 1;

/// tag, slot, reserved, image_size, written, image_sha256, prefix_sha256. With the key
/// byte an item is 76 bytes, a whole number of 4-byte words, so a save programs the header
/// and the data in one go each, without a padded tail write.
const PROGRESS_LEN: usize = 1 + 1 + 1 + 4 + 4 + 32 + 32;
const VERSION_RECORD_MAX: usize = 1 + VERSION_MAX;

/// The stored form of the progress key. "Cleared" is a record of its own rather than a
/// deletion: the map deletes only on drivers that declare `MultiwriteNorFlash` (the journal
/// takes any `NorFlash`), and by rewriting every older item of the key, whereas a record is
/// one append with the same cut-safety as a save.
enum ProgressRecord {
    Cleared,
    Saved(Progress),
}

impl Value<'_> for ProgressRecord {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        match self {
            ProgressRecord::Cleared => {
                *buffer.first_mut().ok_or(SerializationError::BufferTooSmall)? = TAG_NONE;
                Ok(1)
            }
            ProgressRecord::Saved(p) => {
                let out = buffer
                    .get_mut(..PROGRESS_LEN)
                    .ok_or(SerializationError::BufferTooSmall)?;
                out[0] = TAG_SOME;
                out[1] = p.slot;
                out[2] = 0xFF;
                out[3..7].copy_from_slice(&p.image_size.to_le_bytes());
                out[7..11].copy_from_slice(&p.written.to_le_bytes());
                out[11..43].copy_from_slice(&p.image_sha256);
                out[43..75].copy_from_slice(&p.prefix_sha256);
                Ok(PROGRESS_LEN)
            }
        }
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        let bad_length = DecodeError::BadLength {
            len: buffer.len() as u16,
        };
        let record = match buffer.first() {
            None => return Err(bad_length.into()),
            Some(&TAG_NONE) if buffer.len() == 1 => ProgressRecord::Cleared,
            Some(&TAG_SOME) if buffer.len() == PROGRESS_LEN => {
                let u32_at =
                    |at: usize| u32::from_le_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]]);
                let mut p = Progress {
                    image_sha256: [0; 32],
                    slot: buffer[1],
                    image_size: u32_at(3),
                    written: u32_at(7),
                    prefix_sha256: [0; 32],
                };
                p.image_sha256.copy_from_slice(&buffer[11..43]);
                p.prefix_sha256.copy_from_slice(&buffer[43..75]);
                if p.written > p.image_size {
                    return Err(DecodeError::WrittenPastEnd.into());
                }
                ProgressRecord::Saved(p)
            }
            Some(&(TAG_NONE | TAG_SOME)) => return Err(bad_length.into()),
            Some(&tag) => return Err(DecodeError::UnknownTag { tag }.into()),
        };
        Ok((record, buffer.len()))
    }
}

/// The stored form of the failed-version key, borrowing its text from the item buffer.
struct VersionRecord<'a>(Option<&'a str>);

impl<'a> Value<'a> for VersionRecord<'a> {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let text = self.0.unwrap_or("").as_bytes();
        let len = 1 + text.len();
        let out = buffer.get_mut(..len).ok_or(SerializationError::BufferTooSmall)?;
        out[0] = if self.0.is_some() { TAG_SOME } else { TAG_NONE };
        out[1..].copy_from_slice(text);
        Ok(len)
    }

    fn deserialize_from(buffer: &'a [u8]) -> Result<(Self, usize), SerializationError> {
        let bad_length = DecodeError::BadLength {
            len: buffer.len() as u16,
        };
        let record = match buffer.first() {
            None => return Err(bad_length.into()),
            Some(&TAG_NONE) if buffer.len() == 1 => VersionRecord(None),
            Some(&TAG_SOME) if buffer.len() <= VERSION_RECORD_MAX => {
                let text = core::str::from_utf8(&buffer[1..]).map_err(|_| DecodeError::VersionNotUtf8)?;
                VersionRecord(Some(text))
            }
            Some(&(TAG_NONE | TAG_SOME)) => return Err(bad_length.into()),
            Some(&tag) => return Err(DecodeError::UnknownTag { tag }.into()),
        };
        Ok((record, buffer.len()))
    }
}

type Map<'f, F> = MapStorage<RecordKey, &'f mut F, Cache<Uncached, Uncached, Uncached, RecordKey>>;

/// A map error sorted by what the journal does about it.
enum Failure<E> {
    /// Passed up: the flash itself failed, and erasing would only make it worse.
    Flash(E),
    /// One record is unreadable: drop that record.
    BadRecord(DecodeError),
    /// The map is unreadable: erase it.
    Structure(MapFault),
}

fn classify<E>(e: MapError<E>) -> Failure<E> {
    match e {
        MapError::Storage { value, .. } => Failure::Flash(value),
        MapError::SerializationError(SerializationError::Custom(code)) => match DecodeError::from_code(code) {
            Some(d) => Failure::BadRecord(d),
            None => Failure::Structure(MapFault::Undecodable),
        },
        MapError::SerializationError(_) => Failure::Structure(MapFault::Undecodable),
        MapError::Corrupted { .. } => Failure::Structure(MapFault::Corrupted),
        MapError::FullStorage => Failure::Structure(MapFault::Full),
        MapError::LogicBug { .. } => Failure::Structure(MapFault::LogicBug),
        MapError::BufferTooSmall(needed) => Failure::Structure(MapFault::ItemTooLarge { needed }),
        _ => Failure::Structure(MapFault::Other),
    }
}

/// The OTA journal partition. Holds only its address range; every call borrows the flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    range: Range<u32>,
}

impl Journal {
    /// A journal over `range`, which must be whole 4 KiB sectors, at least two: the map
    /// always keeps one sector empty to move live items into when it reclaims another.
    pub const fn new(range: Range<u32>) -> Result<Self, LayoutError> {
        if !range.start.is_multiple_of(SECTOR) || !range.end.is_multiple_of(SECTOR) || range.end < range.start {
            return Err(LayoutError::NotSectorAligned {
                start: range.start,
                end: range.end,
                erase_size: SECTOR,
            });
        }
        if range.end - range.start < 2 * SECTOR {
            return Err(LayoutError::TooSmall {
                bytes: range.end - range.start,
                erase_size: SECTOR,
            });
        }
        Ok(Journal { range })
    }

    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// The map over `flash` for one call. The check against the driver's real sector size
    /// happens here because only now is the driver type known.
    fn map<'f, F: NorFlash>(&self, flash: &'f mut F) -> Result<Map<'f, F>, JournalError<F::Error>> {
        let config = MapConfig::<&mut F>::try_new(self.range()).map_err(|e| {
            JournalError::Layout(match e {
                MapConfigError::StartRangeNotAtPageBoundary | MapConfigError::EndRangeNotAtPageBoundary => {
                    LayoutError::NotSectorAligned {
                        start: self.range.start,
                        end: self.range.end,
                        erase_size: F::ERASE_SIZE as u32,
                    }
                }
                MapConfigError::RangeTooSmall => LayoutError::TooSmall {
                    bytes: self.range.end - self.range.start,
                    erase_size: F::ERASE_SIZE as u32,
                },
                _ => LayoutError::UnsupportedFlash,
            })
        })?;
        Ok(MapStorage::new(flash, config, Cache::new_uncached()))
    }

    /// Reads the journal.
    ///
    /// Never fails on content: an undecodable record is overwritten with its empty value,
    /// and a map that stays unreadable after `sequential-storage`'s own repair is erased;
    /// either way the state comes back with what survived and [`JournalState::reset`] says
    /// what was dropped. Only a failing flash is an error.
    pub async fn load<F: NorFlash>(&self, flash: &mut F) -> Result<JournalState, JournalError<F::Error>> {
        let mut buf = JournalBuf::new();
        let mut state = JournalState::default();
        let mut dropped: heapless::Vec<RecordKey, 2> = heapless::Vec::new();
        {
            let mut map = self.map(flash)?;
            match map.fetch_item::<ProgressRecord>(&mut buf, &RecordKey::PROGRESS).await {
                Ok(Some(ProgressRecord::Saved(p))) => state.progress = Some(p),
                Ok(Some(ProgressRecord::Cleared) | None) => {}
                Err(e) => match classify(e) {
                    Failure::Flash(e) => return Err(JournalError::Flash(e)),
                    Failure::BadRecord(error) => {
                        state.reset.get_or_insert(JournalReset::RecordDropped {
                            key: RecordKey::PROGRESS,
                            error,
                        });
                        let _ = dropped.push(RecordKey::PROGRESS);
                    }
                    Failure::Structure(fault) => return self.erase_for(&mut map, fault).await,
                },
            }
            match map
                .fetch_item::<VersionRecord>(&mut buf, &RecordKey::FAILED_VERSION)
                .await
            {
                Ok(Some(VersionRecord(Some(v)))) => {
                    // A stored version is at most VERSION_MAX bytes, so this always fits.
                    state.failed_version = heapless::String::try_from(v).ok();
                }
                Ok(Some(VersionRecord(None)) | None) => {}
                Err(e) => match classify(e) {
                    Failure::Flash(e) => return Err(JournalError::Flash(e)),
                    Failure::BadRecord(error) => {
                        state.reset.get_or_insert(JournalReset::RecordDropped {
                            key: RecordKey::FAILED_VERSION,
                            error,
                        });
                        let _ = dropped.push(RecordKey::FAILED_VERSION);
                    }
                    Failure::Structure(fault) => return self.erase_for(&mut map, fault).await,
                },
            }
        }
        // Overwrite dropped records now, so the next boot does not trip over them again.
        for key in dropped {
            let healed = if key == RecordKey::PROGRESS {
                self.store(flash, key, &ProgressRecord::Cleared).await?
            } else {
                self.store(flash, key, &VersionRecord(None)).await?
            };
            if let Some(erased @ JournalReset::Erased(_)) = healed {
                return Ok(JournalState {
                    reset: Some(erased),
                    ..JournalState::default()
                });
            }
        }
        Ok(state)
    }

    async fn erase_for<F: NorFlash>(
        &self,
        map: &mut Map<'_, F>,
        fault: MapFault,
    ) -> Result<JournalState, JournalError<F::Error>> {
        map.erase_all().await.map_err(|e| match classify(e) {
            Failure::Flash(e) => JournalError::Flash(e),
            Failure::BadRecord(_) | Failure::Structure(_) => JournalError::Unrecoverable(MapFault::LogicBug),
        })?;
        Ok(JournalState {
            reset: Some(JournalReset::Erased(fault)),
            ..JournalState::default()
        })
    }

    /// Records how far the download got. Call after the bytes are programmed, never
    /// before: a record ahead of the slot would make a resume skip bytes that are not there
    /// (the prefix hash would catch it, at the price of starting over).
    ///
    /// `Ok(Some(_))`: the journal was unreadable and was erased first, so the other record
    /// is gone (see [`JournalReset`]); the progress itself was saved.
    pub async fn save_progress<F: NorFlash>(
        &self,
        flash: &mut F,
        progress: &Progress,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        if progress.written > progress.image_size {
            return Err(JournalError::ProgressPastEnd {
                written: progress.written,
                image_size: progress.image_size,
            });
        }
        self.store(flash, RecordKey::PROGRESS, &ProgressRecord::Saved(*progress))
            .await
    }

    /// Forgets the download progress (the image completed, or was abandoned), keeping the
    /// failed version. `Ok(Some(_))` as for [`Self::save_progress`].
    pub async fn clear_progress<F: NorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        self.store(flash, RecordKey::PROGRESS, &ProgressRecord::Cleared).await
    }

    /// Records `version` as failed, replacing any earlier one. A version longer than
    /// [`VERSION_MAX`] bytes is refused rather than cut, since a cut one could name another
    /// release. `Ok(Some(_))` as for [`Self::save_progress`].
    pub async fn record_failed_version<F: NorFlash>(
        &self,
        flash: &mut F,
        version: &str,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        if version.len() > VERSION_MAX {
            return Err(JournalError::VersionTooLong { len: version.len() });
        }
        self.store(flash, RecordKey::FAILED_VERSION, &VersionRecord(Some(version)))
            .await
    }

    /// Appends one record; if the map is unreadable, erases it and appends to the empty
    /// partition, so a damaged journal cannot stop the saves of a running download.
    async fn store<'v, F: NorFlash, V: Value<'v>>(
        &self,
        flash: &mut F,
        key: RecordKey,
        value: &V,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        let mut buf = JournalBuf::new();
        let mut map = self.map(flash)?;
        let fault = match map.store_item(&mut buf, &key, value).await {
            Ok(()) => return Ok(None),
            Err(e) => match classify(e) {
                Failure::Flash(e) => return Err(JournalError::Flash(e)),
                // Storing decodes only keys, which never fail; treat it as damage anyway.
                Failure::BadRecord(_) => MapFault::Undecodable,
                Failure::Structure(fault) => fault,
            },
        };
        self.erase_for(&mut map, fault).await?;
        match map.store_item(&mut buf, &key, value).await {
            Ok(()) => Ok(Some(JournalReset::Erased(fault))),
            Err(e) => Err(match classify(e) {
                Failure::Flash(e) => JournalError::Flash(e),
                Failure::BadRecord(_) => JournalError::Unrecoverable(MapFault::Undecodable),
                Failure::Structure(fault) => JournalError::Unrecoverable(fault),
            }),
        }
    }
}

/// Where to resume writing `image_sha256` into `slot` after a reboot, and the hash state to
/// resume with.
///
/// Trusts `progress` only if it is about this image in this slot (same image hash, slot
/// index and size) and the first `written` bytes read back from the slot still hash to its
/// `prefix_sha256`; then returns `written` and a hasher that has consumed them. Otherwise
/// (another image, a slot that was since rewritten, a torn or bit-rotten prefix) returns 0
/// and a fresh hasher: the download starts over. Only a failing flash read is an error.
///
/// `written` must be on the slot writer's stage boundary, as [`SlotWriter::programmed`]
/// always is, for [`SlotWriter::resume`] to continue from exactly that byte.
///
/// [`SlotWriter::programmed`]: super::slot::SlotWriter::programmed
/// [`SlotWriter::resume`]: super::slot::SlotWriter::resume
pub async fn resume_point<F: NorFlash>(
    flash: &mut F,
    slot_index: u8,
    slot: Slot,
    progress: &Progress,
    image_sha256: &[u8; 32],
    image_size: u32,
) -> Result<(u32, Sha256), F::Error> {
    let same_image =
        progress.image_sha256 == *image_sha256 && progress.slot == slot_index && progress.image_size == image_size;
    if !same_image || progress.written == 0 || progress.written > image_size || progress.written > slot.size {
        return Ok((0, Sha256::new()));
    }
    let mut hasher = Sha256::new();
    hash_prefix(flash, slot, u64::from(progress.written), &mut hasher).await?;
    if hasher.clone().finalize().as_slice() == progress.prefix_sha256.as_slice() {
        Ok((progress.written, hasher))
    } else {
        Ok((0, Sha256::new()))
    }
}
