//! The device's OTA state in flash: download progress and failed versions.
//!
//! A download that dies with the power should carry on from where the slot writer got to,
//! not from byte 0 of a multi-megabyte image over a 2G link, and a version that failed to
//! boot must not be fetched again and again. Both facts have to outlive any power cut, so
//! they live in their own flash partition (`otastate`) as an append-only log: each save
//! programs one CRC-checked record and only the newest record per key counts, so a cut at
//! any erase or program leaves either the previous value or the new one, never a mix.
//! Appending instead of rewriting also spreads the wear of hundreds of progress saves per
//! download over the whole partition.
//!
//! # Format
//!
//! Every 4 KiB sector starts with a 16-byte header: `"OTJ1"`, a sequence number `seq`,
//! `!seq` (all little-endian u32) and four 0xFF bytes. A sector whose header does not
//! check out holds no records. After the header come 42 slots of [`JOURNAL_RAM_BYTES`]
//! bytes, filled in order; a slot holds one record: key (u8; 0xFF never is one), value
//! length (u8, at most 88), two 0xFF bytes, a CRC-32 (as `esp_rom_crc32_le(0, …)`) over
//! the first four bytes and the value, then the value. A torn record fails its CRC and is
//! passed over; the next record goes into a later slot, so the order of slots stays the
//! order of saves.
//!
//! Reading takes, for each key, the last good record of the sector with the highest `seq`
//! that has one. A save appends to that sector; when it is full, the next sector (the
//! oldest) is erased, given `seq + 1`, and the newest record of every other key is copied
//! into it before the new one. A cut in that copy leaves the new sector short of some keys,
//! which reading still finds in the older sectors; the next save copies them on first, so
//! the sector about to be erased never holds the only copy of anything.
//!
//! Why not a general-purpose flash map: `sequential-storage` did this job before, but it
//! was 20 KB of a firmware image that every device downloads over a cellular link, for two
//! records. The sweeps in `sim/tests/journal.rs` cut the power at every single flash
//! operation, and a second time during the recovery, and check what survives.
//!
//! The journal never holds the flash: the slot writer and the otadata code use the same
//! chip, so every call borrows it for its own duration and keeps no cache between calls
//! (a cache would go stale the moment someone else touched the chip, and an uncached scan
//! of a few sectors costs only reads).
//!
//! The journal is advice, not truth. A progress record only says where to *try* resuming:
//! [`resume_point`] re-reads and re-hashes the slot before trusting it. That is also why
//! damaged journal content is thrown away instead of stopping an update (see
//! [`JournalReset`]): losing it costs a download from byte 0, while refusing to go on
//! would leave the device unable to update at all.

mod record;
mod scan;

use core::ops::{Deref, DerefMut, Range};

use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

use self::record::{Value, bad_length, decode_progress, decode_version, record_crc};
use self::scan::blank;
use super::schedule::{SCHEDULE_RECORD_LEN, ScheduleRecord};
use super::slot::{SECTOR, Slot, hash_prefix};

/// Longest version string a failure record holds; a longer one is refused, because a
/// truncated version could match a different release.
pub const VERSION_MAX: usize = 32;

/// Bytes of RAM one journal call needs for its record buffer: one slot, the largest
/// record. It lives in the call's future, with the scan's small bookkeeping beside it (the
/// bench's `ram_figure_is_the_real_buffer` test prints both).
pub const JOURNAL_RAM_BYTES: usize = 96;

/// Sector header: magic, `seq`, `!seq`, four 0xFF bytes.
const SECTOR_HEADER: u32 = 16;
const MAGIC: u32 = u32::from_le_bytes(*b"OTJ1");
/// A slot holds one record.
const SLOT_BYTES: u32 = JOURNAL_RAM_BYTES as u32;
const SLOTS: u32 = (SECTOR - SECTOR_HEADER) / SLOT_BYTES;
/// Key, length, two 0xFF bytes, CRC-32.
const RECORD_HEADER: usize = 8;
/// Longest record value.
pub const VALUE_MAX: usize = JOURNAL_RAM_BYTES - RECORD_HEADER;
/// Records are programmed in whole 16-byte units, which every supported `WRITE_SIZE`
/// divides, so a slot is never programmed past its end.
const WRITE_UNIT: usize = 16;
/// The journal uses at most this many sectors of its partition (128 KiB).
pub const MAX_SECTORS: u32 = 32;
/// Keys a scan follows; records of further (future) keys are not carried across sectors.
const MAX_KEYS: usize = 8;
const NO_KEY: u8 = 0xFF;

const _: () = assert!(SLOTS == 42);
const _: () =
    assert!(JOURNAL_RAM_BYTES.is_multiple_of(WRITE_UNIT) && (SECTOR_HEADER as usize).is_multiple_of(WRITE_UNIT));
const _: () = assert!(core::mem::size_of::<JournalBuf>() == JOURNAL_RAM_BYTES);

/// The working buffer of one journal call, on the stack.
///
/// Public only so that its size can be checked against [`JOURNAL_RAM_BYTES`]. Aligned to
/// 4 bytes because records are programmed straight from it and the ESP32 flash driver
/// wants word-aligned source buffers.
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
    /// Which form of the release was being fetched.
    pub form: crate::wire::ImageForm,
    /// Where the fetched file continues: `written` for the raw image, the offset of the
    /// next segment in the compressed form.
    pub fetched: u32,
}

/// What the journal held at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    /// The interrupted download, if one was under way.
    pub progress: Option<Progress>,
    /// The last version recorded as failed; an update to it should be refused.
    pub failed_version: Option<heapless::String<VERSION_MAX>>,
    /// The schedule's counters as last saved (backoff, attempts): default before the first.
    pub schedule: ScheduleRecord,
    /// Set when damaged content was dropped while loading; worth a log line.
    pub reset: Option<JournalReset>,
}

/// Identifies a record in the journal.
///
/// Any byte but 0xFF is accepted when reading, so records written by a later firmware with
/// keys this one does not know are skipped instead of making the journal unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey(u8);

impl RecordKey {
    pub const PROGRESS: RecordKey = RecordKey(1);
    pub const FAILED_VERSION: RecordKey = RecordKey(2);
    /// The update schedule's counters ([`ScheduleRecord`]): attempts, failures, the day's.
    pub const SCHEDULE: RecordKey = RecordKey(3);

    /// A key this firmware does not interpret (a later firmware's); 0xFF is none.
    pub const fn other(id: u8) -> Option<RecordKey> {
        if id == NO_KEY { None } else { Some(RecordKey(id)) }
    }

    pub const fn id(self) -> u8 {
        self.0
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

/// What was wrong with the partition as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalFault {
    #[error("the partition holds data that is not an otactl journal")]
    Foreign,
    #[error("a sector still holds data after it was erased")]
    NotErased,
}

/// Why journal content was dropped. Whatever was dropped reads as absent afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JournalReset {
    /// The partition held something else (another firmware's data, a wrong partition
    /// table), so it was erased and both records are gone.
    #[error("journal partition erased: {0}")]
    Erased(JournalFault),
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
    #[error("the flash driver's sector, word or read size is not supported by the journal")]
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
    #[error("record value has {len} bytes; a record holds at most {VALUE_MAX}")]
    ValueTooLong { len: usize },
    /// Even a freshly erased sector could not take the record: a flash that does not keep
    /// what it is given.
    #[error("journal unusable even after erasing it: {0}")]
    Unrecoverable(JournalFault),
}

/// The OTA journal partition. Holds only its address range; every call borrows the flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    range: Range<u32>,
}

impl Journal {
    /// A journal over `range`, which must be whole 4 KiB sectors, at least two: the newest
    /// sector is never erased to make room. Only the first [`MAX_SECTORS`] are used.
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

    fn sectors(&self) -> u32 {
        ((self.range.end - self.range.start) / SECTOR).min(MAX_SECTORS)
    }

    fn sector_at(&self, index: u32) -> u32 {
        self.range.start + index * SECTOR
    }

    fn slot_at(&self, sector: u32, slot: u32) -> u32 {
        self.sector_at(sector) + SECTOR_HEADER + slot * SLOT_BYTES
    }

    /// The driver's geometry, checked once its type is known.
    fn check_flash<F: NorFlash>() -> Result<(), LayoutError> {
        let supported = F::ERASE_SIZE == SECTOR as usize
            && WRITE_UNIT.is_multiple_of(F::WRITE_SIZE)
            && 4usize.is_multiple_of(F::READ_SIZE);
        if supported {
            Ok(())
        } else {
            Err(LayoutError::UnsupportedFlash)
        }
    }

    /// Reads the journal.
    ///
    /// Never fails on content: an undecodable record is overwritten with its empty value,
    /// and a partition holding something that is not a journal is erased; either way the
    /// state comes back with what survived and [`JournalState::reset`] says what was
    /// dropped. Only a failing flash is an error.
    pub async fn load<F: NorFlash>(&self, flash: &mut F) -> Result<JournalState, JournalError<F::Error>> {
        let mut buf = JournalBuf::new();
        let scan = self.scan(flash, &mut buf).await?;
        if scan.current.is_none() && scan.foreign {
            self.erase_all(flash).await?;
            return Ok(JournalState {
                reset: Some(JournalReset::Erased(JournalFault::Foreign)),
                ..JournalState::default()
            });
        }
        let mut state = JournalState::default();
        let mut dropped: heapless::Vec<RecordKey, 3> = heapless::Vec::new();
        if let Some(at) = scan.find(RecordKey::PROGRESS) {
            match decode_progress(self.read_value(flash, at, &mut buf).await?) {
                Ok(progress) => state.progress = progress,
                Err(error) => {
                    let key = RecordKey::PROGRESS;
                    state.reset.get_or_insert(JournalReset::RecordDropped { key, error });
                    let _ = dropped.push(key);
                }
            }
        }
        if let Some(at) = scan.find(RecordKey::FAILED_VERSION) {
            match decode_version(self.read_value(flash, at, &mut buf).await?) {
                Ok(version) => state.failed_version = version,
                Err(error) => {
                    let key = RecordKey::FAILED_VERSION;
                    state.reset.get_or_insert(JournalReset::RecordDropped { key, error });
                    let _ = dropped.push(key);
                }
            }
        }
        if let Some(at) = scan.find(RecordKey::SCHEDULE) {
            let value = self.read_value(flash, at, &mut buf).await?;
            match ScheduleRecord::decode(value) {
                Some(record) => state.schedule = record,
                None => {
                    let key = RecordKey::SCHEDULE;
                    let error = bad_length(value);
                    state.reset.get_or_insert(JournalReset::RecordDropped { key, error });
                    let _ = dropped.push(key);
                }
            }
        }
        // Overwrite dropped records now, so the next boot does not trip over them again.
        let zero = ScheduleRecord::default().encode();
        for key in dropped {
            let empty = match key {
                RecordKey::PROGRESS => Value::Progress(None),
                RecordKey::SCHEDULE => Value::Raw(&zero),
                _ => Value::Version(None),
            };
            if let Some(erased @ JournalReset::Erased(_)) = self.store(flash, key, empty).await? {
                return Ok(JournalState {
                    reset: Some(erased),
                    ..JournalState::default()
                });
            }
        }
        Ok(state)
    }

    async fn erase_all<F: NorFlash>(&self, flash: &mut F) -> Result<(), JournalError<F::Error>> {
        let end = self.sector_at(self.sectors());
        flash.erase(self.range.start, end).await.map_err(JournalError::Flash)
    }

    /// Records how far the download got. Call after the bytes are programmed, never
    /// before: a record ahead of the slot would make a resume skip bytes that are not there
    /// (the prefix hash would catch it, at the price of starting over).
    ///
    /// `Ok(Some(_))`: the partition held something else and was erased first, so the other
    /// record is gone (see [`JournalReset`]); the progress itself was saved.
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
        self.store(flash, RecordKey::PROGRESS, Value::Progress(Some(progress)))
            .await
    }

    /// Forgets the download progress (the image completed, or was abandoned), keeping the
    /// failed version. `Ok(Some(_))` as for [`Self::save_progress`].
    pub async fn clear_progress<F: NorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        self.store(flash, RecordKey::PROGRESS, Value::Progress(None)).await
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
        self.store(flash, RecordKey::FAILED_VERSION, Value::Version(Some(version)))
            .await
    }

    /// Saves the schedule's counters. Called when an attempt starts (so that a crash during
    /// it still counts: see [`crate::ota::schedule`]) and when it ends.
    pub async fn save_schedule<F: NorFlash>(
        &self,
        flash: &mut F,
        record: &ScheduleRecord,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        let bytes: [u8; SCHEDULE_RECORD_LEN] = record.encode();
        self.store(flash, RecordKey::SCHEDULE, Value::Raw(&bytes)).await
    }

    /// Appends a record of `key` holding `value` as given, undecoded: what another
    /// firmware, or a damaged one, may have left. For tests and inspection tools; the
    /// typed saves above are how the device writes.
    pub async fn store_raw<F: NorFlash>(
        &self,
        flash: &mut F,
        key: RecordKey,
        value: &[u8],
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        if value.len() > VALUE_MAX {
            return Err(JournalError::ValueTooLong { len: value.len() });
        }
        self.store(flash, key, Value::Raw(value)).await
    }

    /// Appends one record after the newest records of the other keys that the current
    /// sector lacks; opens the next sector when the current one is full. A partition that
    /// holds no journal at all is erased first, so a damaged journal cannot stop the saves
    /// of a running download.
    async fn store<F: NorFlash>(
        &self,
        flash: &mut F,
        key: RecordKey,
        value: Value<'_>,
    ) -> Result<Option<JournalReset>, JournalError<F::Error>> {
        let mut buf = JournalBuf::new();
        let scan = self.scan(flash, &mut buf).await?;
        let mut reset = None;
        // `opened`: the sector was erased by this call, so it holds none of the records.
        let (mut sector, mut seq, mut slot, mut opened) = match scan.current {
            Some((sector, seq, free)) => (sector, seq, free, false),
            None => {
                if scan.foreign {
                    self.erase_all(flash).await?;
                    reset = Some(JournalReset::Erased(JournalFault::Foreign));
                }
                self.open_sector(flash, 0, 1, &mut buf).await?;
                (0, 1, 0, true)
            }
        };
        'sector: loop {
            let here = self.sector_at(sector)..self.sector_at(sector) + SECTOR;
            let mut copies = scan
                .newest
                .iter()
                .filter(move |n| n.key != key.id() && (opened || !here.contains(&n.at)));
            let mut new_written = false;
            loop {
                let source = copies.next();
                if source.is_none() && new_written {
                    return Ok(reset);
                }
                // The next slot that is really blank: a torn record may have left bytes
                // behind an erased-looking header.
                let at = loop {
                    if slot >= SLOTS {
                        if opened {
                            return Err(JournalError::Unrecoverable(JournalFault::NotErased));
                        }
                        // Full: move on to the next sector, the oldest. The current one
                        // holds the newest record of every key (each save carries missing
                        // ones over first), so erasing the oldest loses nothing.
                        sector = (sector + 1) % self.sectors();
                        seq = seq.wrapping_add(1);
                        self.open_sector(flash, sector, seq, &mut buf).await?;
                        (slot, opened) = (0, true);
                        continue 'sector;
                    }
                    let at = self.slot_at(sector, slot);
                    slot += 1;
                    flash.read(at, &mut buf[..]).await.map_err(JournalError::Flash)?;
                    if blank(&buf) {
                        break at;
                    }
                };
                let len = match source {
                    Some(newest) => {
                        flash.read(newest.at, &mut buf[..]).await.map_err(JournalError::Flash)?;
                        usize::from(buf[1])
                    }
                    None => {
                        let len = value.encode(&mut buf[RECORD_HEADER..]);
                        buf[0] = key.id();
                        buf[1] = len as u8;
                        let crc = record_crc(&buf, len);
                        buf[4..8].copy_from_slice(&crc.to_le_bytes());
                        new_written = true;
                        len
                    }
                };
                let end = (RECORD_HEADER + len).next_multiple_of(WRITE_UNIT);
                buf[RECORD_HEADER + len..end].fill(0xFF);
                flash.write(at, &buf[..end]).await.map_err(JournalError::Flash)?;
            }
        }
    }

    /// Erases sector `index` and gives it `seq`. The header is programmed from `buf`, which
    /// is word-aligned as the ESP32 flash driver wants its source.
    async fn open_sector<F: NorFlash>(
        &self,
        flash: &mut F,
        index: u32,
        seq: u32,
        buf: &mut JournalBuf,
    ) -> Result<(), JournalError<F::Error>> {
        let at = self.sector_at(index);
        flash.erase(at, at + SECTOR).await.map_err(JournalError::Flash)?;
        let header = &mut buf[..SECTOR_HEADER as usize];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&seq.to_le_bytes());
        header[8..12].copy_from_slice(&(!seq).to_le_bytes());
        header[12..16].fill(0xFF);
        flash.write(at, header).await.map_err(JournalError::Flash)
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
