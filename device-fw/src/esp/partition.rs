//! The binary partition table at flash 0x8000 (ESP-FORMATS.md §3.1), as gen_esp32part
//! writes it: 32-byte entries, an MD5 entry, a `0xFF` end row, `0xFF` padding to 0xC00.
//!
//! The device parses it to find its OTA slots and otadata instead of trusting compiled-in
//! offsets, which would silently point at the wrong bytes after a layout change.

use heapless::Vec;
use md5::{Digest, Md5};

/// Size of one entry row.
pub const ENTRY_LEN: usize = 32;
/// The table data region; the rest of the 4 KiB sector is reserved for a signature.
pub const TABLE_LEN: usize = 0xC00;
/// 0xC00 / 32 = 96 rows, minus the end row: the most entries a table can hold (IDF reads up
/// to 96 rows). A table written with its MD5 row holds one fewer, [`MAX_ENTRIES_WITH_MD5`].
pub const MAX_ENTRIES: usize = 95;
/// gen_esp32part rejects a table whose entries plus MD5 row reach 0xC00, because the end
/// row must still fit: 94.
pub const MAX_ENTRIES_WITH_MD5: usize = MAX_ENTRIES - 1;
/// Default `CONFIG_PARTITION_TABLE_OFFSET`.
pub const TABLE_OFFSET: u32 = 0x8000;

const MAGIC: [u8; 2] = [0xAA, 0x50];
const MD5_MAGIC: [u8; 2] = [0xEB, 0xEB];

pub const TYPE_APP: u8 = 0x00;
pub const TYPE_DATA: u8 = 0x01;

pub const SUBTYPE_APP_FACTORY: u8 = 0x00;
/// `ota_n` is `SUBTYPE_APP_OTA_0 + n`, n = 0..15.
pub const SUBTYPE_APP_OTA_0: u8 = 0x10;
pub const SUBTYPE_APP_TEST: u8 = 0x20;

pub const SUBTYPE_DATA_OTA: u8 = 0x00;
pub const SUBTYPE_DATA_PHY: u8 = 0x01;
pub const SUBTYPE_DATA_NVS: u8 = 0x02;
pub const SUBTYPE_DATA_COREDUMP: u8 = 0x03;
pub const SUBTYPE_DATA_NVS_KEYS: u8 = 0x04;
pub const SUBTYPE_DATA_SPIFFS: u8 = 0x82;
pub const SUBTYPE_DATA_LITTLEFS: u8 = 0x83;
/// otactl's OTA journal: an application-defined partition type (IDF reserves 0x40–0xFE for
/// applications; data subtypes are IDF's own), with subtype 0.
pub const TYPE_OTACTL: u8 = 0x40;
pub const SUBTYPE_OTACTL_JOURNAL: u8 = 0x00;

pub const FLAG_ENCRYPTED: u32 = 1 << 0;
pub const FLAG_READONLY: u32 = 1 << 1;

/// Why a partition table could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// Row `index` is neither an entry (`AA 50`), the MD5 row (`EB EB`) nor the end row.
    #[error(
        "partition table row {index} has magic {magic:02X?}, not AA 50; this is not a partition table (wrong offset?) or it is corrupt"
    )]
    BadMagic { index: usize, magic: [u8; 2] },
    /// The MD5 row does not match the rows before it.
    #[error("partition table MD5 does not match its entries: the table is corrupt; reflash it")]
    Md5Mismatch,
    /// No `0xFF` end row within 0xC00 bytes (or within the given bytes).
    #[error("partition table has no end marker within {len} bytes; pass the whole 0xC00-byte table")]
    NoEndMarker { len: usize },
    /// More than 95 entries.
    #[error("partition table holds at most {MAX_ENTRIES} entries; merge or drop partitions")]
    TooManyEntries,
    /// 95 entries leave no room for the MD5 row and the end row.
    #[error(
        "a partition table with its MD5 row holds at most {MAX_ENTRIES_WITH_MD5} entries; merge or drop partitions"
    )]
    NoRoomForMd5,
    /// A label longer than 16 bytes.
    #[error("partition label is {len} bytes, the limit is 16; shorten it")]
    LabelTooLong { len: usize },
}

/// One 32-byte partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Type: [`TYPE_APP`], [`TYPE_DATA`], 2 bootloader, 3 partition_table, 0x40–0xFE custom.
    pub kind: u8,
    pub subtype: u8,
    pub offset: u32,
    pub size: u32,
    /// NUL padded; not NUL terminated when all 16 bytes are used.
    pub label: [u8; 16],
    pub flags: u32,
}

impl PartitionEntry {
    /// An entry with no flags.
    pub fn new(kind: u8, subtype: u8, offset: u32, size: u32, label: &str) -> Result<Self, PartitionError> {
        let bytes = label.as_bytes();
        if bytes.len() > 16 {
            return Err(PartitionError::LabelTooLong { len: bytes.len() });
        }
        let mut l = [0u8; 16];
        l[..bytes.len()].copy_from_slice(bytes);
        Ok(PartitionEntry {
            kind,
            subtype,
            offset,
            size,
            label: l,
            flags: 0,
        })
    }

    /// The label up to its first NUL; `None` if it is not UTF-8.
    pub fn label_str(&self) -> Option<&str> {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(16);
        core::str::from_utf8(&self.label[..end]).ok()
    }

    /// `Some(n)` for an `ota_n` app partition.
    pub fn ota_slot(&self) -> Option<usize> {
        (self.kind == TYPE_APP && (SUBTYPE_APP_OTA_0..SUBTYPE_APP_OTA_0 + 16).contains(&self.subtype))
            .then(|| usize::from(self.subtype - SUBTYPE_APP_OTA_0))
    }

    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = self.kind;
        out[3] = self.subtype;
        out[4..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.size.to_le_bytes());
        out[12..28].copy_from_slice(&self.label);
        out[28..32].copy_from_slice(&self.flags.to_le_bytes());
        out
    }

    /// Decodes an entry row; `index` only labels the error.
    pub fn decode(row: &[u8; ENTRY_LEN], index: usize) -> Result<Self, PartitionError> {
        if row[0..2] != MAGIC {
            return Err(PartitionError::BadMagic {
                index,
                magic: [row[0], row[1]],
            });
        }
        let word = |at: usize| u32::from_le_bytes([row[at], row[at + 1], row[at + 2], row[at + 3]]);
        let mut label = [0u8; 16];
        label.copy_from_slice(&row[12..28]);
        Ok(PartitionEntry {
            kind: row[2],
            subtype: row[3],
            offset: word(4),
            size: word(8),
            label,
            flags: word(28),
        })
    }
}

/// Whether a parsed table carried an MD5 row. gen_esp32part always writes one, but it is
/// optional (`--disable-md5sum`) and IDF accepts a table without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md5Check {
    Verified,
    Absent,
}

/// A partition table in entry order (the order matters: IDF finds the *first* match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionTable {
    entries: Vec<PartitionEntry, MAX_ENTRIES>,
}

impl PartitionTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, entry: PartitionEntry) -> Result<(), PartitionError> {
        self.entries.push(entry).map_err(|_| PartitionError::TooManyEntries)
    }

    pub fn entries(&self) -> &[PartitionEntry] {
        &self.entries
    }

    /// First entry with this type and subtype, as `esp_partition_find_first` picks.
    pub fn find(&self, kind: u8, subtype: u8) -> Option<&PartitionEntry> {
        self.entries.iter().find(|e| e.kind == kind && e.subtype == subtype)
    }

    /// The `ota_n` app partition.
    pub fn ota_slot(&self, n: usize) -> Option<&PartitionEntry> {
        self.entries.iter().find(|e| e.ota_slot() == Some(n))
    }

    /// The otadata partition.
    pub fn otadata(&self) -> Option<&PartitionEntry> {
        self.find(TYPE_DATA, SUBTYPE_DATA_OTA)
    }

    /// OTA slot count as IDF counts it (`esp_ota_get_app_partition_count`): ota_0, ota_1, …
    /// up to the first missing one. This is the divisor in the otadata slot formula.
    pub fn ota_slot_count(&self) -> usize {
        (0..16).take_while(|&n| self.ota_slot(n).is_some()).count()
    }

    /// The 0xC00-byte table: entries, MD5 row, end row, `0xFF` padding — what
    /// gen_esp32part writes by default.
    pub fn to_bytes(&self) -> Result<[u8; TABLE_LEN], PartitionError> {
        if self.entries.len() > MAX_ENTRIES_WITH_MD5 {
            return Err(PartitionError::NoRoomForMd5);
        }
        let mut out = [0xFF; TABLE_LEN];
        let mut at = 0;
        for e in &self.entries {
            out[at..at + ENTRY_LEN].copy_from_slice(&e.encode());
            at += ENTRY_LEN;
        }
        let digest: [u8; 16] = Md5::digest(&out[..at]).into();
        out[at..at + 2].copy_from_slice(&MD5_MAGIC);
        out[at + 16..at + ENTRY_LEN].copy_from_slice(&digest);
        // The end row and padding are already 0xFF.
        Ok(out)
    }

    /// Parses rows until the `0xFF` end row, checking the MD5 row if there is one.
    /// `bytes` may be the whole 4 KiB sector; only the first 0xC00 bytes are table.
    pub fn parse(bytes: &[u8]) -> Result<(Self, Md5Check), PartitionError> {
        let region = &bytes[..bytes.len().min(TABLE_LEN)];
        let mut table = PartitionTable::new();
        let mut md5 = Md5Check::Absent;
        for (index, row) in region.chunks_exact(ENTRY_LEN).enumerate() {
            let row: &[u8; ENTRY_LEN] = row.try_into().unwrap_or(&[0; ENTRY_LEN]);
            if row.iter().all(|&b| b == 0xFF) {
                return Ok((table, md5));
            }
            if row[0..2] == MD5_MAGIC {
                let digest: [u8; 16] = Md5::digest(&region[..index * ENTRY_LEN]).into();
                if row[16..32] != digest {
                    return Err(PartitionError::Md5Mismatch);
                }
                md5 = Md5Check::Verified;
                continue;
            }
            table.push(PartitionEntry::decode(row, index)?)?;
        }
        Err(PartitionError::NoEndMarker { len: region.len() })
    }

    /// The layout the otactl profiles use on 4 MB parts: two 1.875 MiB OTA slots and no
    /// factory app, so every byte of app flash is an OTA target.
    ///
    /// | nvs 0x9000/0x4000 | otadata 0xD000/0x2000 | phy_init 0xF000/0x1000 |
    /// | ota_0 0x10000/0x1E0000 | ota_1 0x1F0000/0x1E0000 |
    pub fn otactl_two_ota() -> Self {
        Self::from_rows(&[
            ("nvs", TYPE_DATA, SUBTYPE_DATA_NVS, 0x9000, 0x4000),
            ("otadata", TYPE_DATA, SUBTYPE_DATA_OTA, 0xD000, 0x2000),
            ("phy_init", TYPE_DATA, SUBTYPE_DATA_PHY, 0xF000, 0x1000),
            ("ota_0", TYPE_APP, SUBTYPE_APP_OTA_0, 0x10000, 0x1E_0000),
            ("ota_1", TYPE_APP, SUBTYPE_APP_OTA_0 + 1, 0x1F_0000, 0x1E_0000),
            ("otastate", TYPE_OTACTL, SUBTYPE_OTACTL_JOURNAL, 0x3D_0000, 0x4000),
        ])
    }

    /// ESP-IDF's `partitions_two_ota.csv` as gen_esp32part places it (factory + two 1 MiB
    /// OTA slots): the reference layout the encoding is checked against.
    pub fn idf_two_ota() -> Self {
        Self::from_rows(&[
            ("nvs", TYPE_DATA, SUBTYPE_DATA_NVS, 0x9000, 0x4000),
            ("otadata", TYPE_DATA, SUBTYPE_DATA_OTA, 0xD000, 0x2000),
            ("phy_init", TYPE_DATA, SUBTYPE_DATA_PHY, 0xF000, 0x1000),
            ("factory", TYPE_APP, SUBTYPE_APP_FACTORY, 0x10000, 0x10_0000),
            ("ota_0", TYPE_APP, SUBTYPE_APP_OTA_0, 0x11_0000, 0x10_0000),
            ("ota_1", TYPE_APP, SUBTYPE_APP_OTA_0 + 1, 0x21_0000, 0x10_0000),
        ])
    }

    /// Built-in layouts only: labels are short and there are few rows.
    fn from_rows(rows: &[(&str, u8, u8, u32, u32)]) -> Self {
        let mut t = PartitionTable::new();
        for &(label, kind, subtype, offset, size) in rows {
            let entry = PartitionEntry::new(kind, subtype, offset, size, label).expect("built-in labels fit");
            let _ = t.entries.push(entry);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let mut e = PartitionEntry::new(TYPE_APP, SUBTYPE_APP_OTA_0 + 1, 0x1F_0000, 0x1E_0000, "ota_1").unwrap();
        e.flags = FLAG_ENCRYPTED;
        let b = e.encode();
        assert_eq!(&b[0..4], &[0xAA, 0x50, 0x00, 0x11]);
        assert_eq!(&b[4..8], &[0x00, 0x00, 0x1F, 0x00]);
        assert_eq!(&b[12..18], b"ota_1\0");
        assert_eq!(&b[28..32], &[1, 0, 0, 0]);
        assert_eq!(PartitionEntry::decode(&b, 0), Ok(e));
        assert_eq!(e.label_str(), Some("ota_1"));
        assert_eq!(e.ota_slot(), Some(1));
        let full = PartitionEntry::new(TYPE_DATA, 0x82, 0, 0, "sixteen_chars_ok").unwrap();
        assert_eq!(full.label_str(), Some("sixteen_chars_ok"));
        assert_eq!(
            PartitionEntry::new(TYPE_DATA, 0x82, 0, 0, "seventeen_chars__"),
            Err(PartitionError::LabelTooLong { len: 17 })
        );
    }

    #[test]
    fn idf_two_ota_builds_and_parses_back() {
        let t = PartitionTable::idf_two_ota();
        let bytes = t.to_bytes().unwrap();
        assert_eq!(bytes.len(), 0xC00);
        // 6 entries, then the MD5 row, then 0xFF to the end.
        assert_eq!(
            &bytes[6 * 32..6 * 32 + 16],
            &[
                0xEB, 0xEB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]
        );
        assert!(bytes[7 * 32..].iter().all(|&b| b == 0xFF));
        let (parsed, md5) = PartitionTable::parse(&bytes).unwrap();
        assert_eq!(md5, Md5Check::Verified);
        assert_eq!(parsed, t);
        assert_eq!(parsed.ota_slot_count(), 2);
        assert_eq!(parsed.find(TYPE_APP, SUBTYPE_APP_FACTORY).unwrap().offset, 0x10000);
        assert_eq!(parsed.ota_slot(1).unwrap().offset, 0x21_0000);
        assert_eq!(parsed.otadata().unwrap().label_str(), Some("otadata"));
    }

    /// Golden values from Python `struct.pack("<2sBBLL16sL", ...)` + `hashlib`, the way
    /// gen_esp32part.py packs `partitions_two_ota.csv`.
    #[test]
    fn idf_two_ota_matches_gen_esp32part_bytes() {
        use sha2::{Digest as _, Sha256};
        let bytes = PartitionTable::idf_two_ota().to_bytes().unwrap();
        let md5: [u8; 16] = [
            0xBF, 0x25, 0x82, 0x2C, 0x0F, 0xA6, 0xD8, 0x64, 0x1B, 0xD9, 0x30, 0x25, 0x1E, 0x06, 0xB4, 0xC4,
        ];
        let sha: [u8; 32] = [
            0xD1, 0xC0, 0xE9, 0xD0, 0x2F, 0xA9, 0xD2, 0x6C, 0xD2, 0xE1, 0x98, 0x4E, 0x7B, 0x5D, 0xD2, 0x01, 0x57, 0x20,
            0x4F, 0x50, 0x1D, 0xDC, 0x83, 0xCE, 0x82, 0x22, 0x9E, 0x5F, 0x31, 0x75, 0xEE, 0x8B,
        ];
        assert_eq!(bytes[6 * 32 + 16..7 * 32], md5);
        assert_eq!(Sha256::digest(bytes)[..], sha);
    }

    #[test]
    fn corrupted_byte_is_detected() {
        let good = PartitionTable::idf_two_ota().to_bytes().unwrap();
        // A flipped size byte in ota_0 keeps the magic, so only the MD5 catches it.
        let mut bad = good;
        bad[4 * 32 + 9] ^= 0x01;
        assert_eq!(PartitionTable::parse(&bad), Err(PartitionError::Md5Mismatch));
        // A flipped digest byte.
        let mut bad = good;
        bad[6 * 32 + 20] ^= 0x80;
        assert_eq!(PartitionTable::parse(&bad), Err(PartitionError::Md5Mismatch));
        // A broken entry magic.
        let mut bad = good;
        bad[2 * 32] = 0x00;
        assert_eq!(
            PartitionTable::parse(&bad),
            Err(PartitionError::BadMagic {
                index: 2,
                magic: [0x00, 0x50]
            })
        );
    }

    #[test]
    fn table_without_md5_and_without_end() {
        let t = PartitionTable::otactl_two_ota();
        let mut bytes = t.to_bytes().unwrap();
        // Drop the MD5 row as `--disable-md5sum` would: end row right after the entries.
        bytes[6 * 32..7 * 32].fill(0xFF);
        assert_eq!(PartitionTable::parse(&bytes), Ok((t.clone(), Md5Check::Absent)));
        // A table cut short before its end row.
        assert_eq!(
            PartitionTable::parse(&t.to_bytes().unwrap()[..7 * 32]),
            Err(PartitionError::NoEndMarker { len: 7 * 32 })
        );
        // The whole 4 KiB sector is fine too.
        let mut sector = [0xFFu8; 4096];
        sector[..TABLE_LEN].copy_from_slice(&t.to_bytes().unwrap());
        assert_eq!(PartitionTable::parse(&sector).unwrap().1, Md5Check::Verified);
    }

    #[test]
    fn otactl_layout() {
        let t = PartitionTable::otactl_two_ota();
        assert_eq!(t.entries().len(), 6);
        assert_eq!(t.ota_slot_count(), 2);
        assert_eq!(t.ota_slot(0).map(|e| (e.offset, e.size)), Some((0x10000, 0x1E_0000)));
        assert_eq!(t.ota_slot(1).map(|e| (e.offset, e.size)), Some((0x1F_0000, 0x1E_0000)));
        assert_eq!(t.otadata().map(|e| (e.offset, e.size)), Some((0xD000, 0x2000)));
        assert!(t.find(TYPE_APP, SUBTYPE_APP_FACTORY).is_none());
        // App partitions 64 KiB aligned, data 4 KiB aligned, no overlaps, fits 4 MB.
        let mut end = 0x9000;
        for e in t.entries() {
            let align = if e.kind == TYPE_APP { 0x10000 } else { 0x1000 };
            assert_eq!(e.offset % align, 0, "{:?}", e.label_str());
            assert!(e.offset >= end);
            end = e.offset + e.size;
        }
        assert!(end <= 0x40_0000);
    }

    #[test]
    fn full_table_limits() {
        let mut t = PartitionTable::new();
        for i in 0..MAX_ENTRIES as u32 {
            t.push(PartitionEntry::new(TYPE_DATA, SUBTYPE_DATA_NVS, 0x10000 + i * 0x1000, 0x1000, "n").unwrap())
                .unwrap();
        }
        let e = t.entries()[0];
        assert_eq!(t.push(e), Err(PartitionError::TooManyEntries));
        // 95 entries parse back without an MD5 row (end row is the 96th)...
        let mut bytes = [0xFFu8; TABLE_LEN];
        for (i, e) in t.entries().iter().enumerate() {
            bytes[i * 32..i * 32 + 32].copy_from_slice(&e.encode());
        }
        assert_eq!(PartitionTable::parse(&bytes).unwrap().0.entries().len(), 95);
        // ...but cannot be written with one.
        assert_eq!(t.to_bytes(), Err(PartitionError::NoRoomForMd5));
        let mut t94 = PartitionTable::new();
        for e in &t.entries()[..94] {
            t94.push(*e).unwrap();
        }
        let bytes = t94.to_bytes().unwrap();
        assert_eq!(&bytes[94 * 32..94 * 32 + 2], &[0xEB, 0xEB]);
        assert!(bytes[95 * 32..].iter().all(|&b| b == 0xFF));
        assert_eq!(PartitionTable::parse(&bytes).unwrap(), (t94, Md5Check::Verified));
    }
}
