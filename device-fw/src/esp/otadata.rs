//! The otadata partition: two 32-byte `esp_ota_select_entry_t` records, one per 4 KiB
//! sector, that tell the IDF bootloader which `ota_N` slot to boot (ESP-FORMATS.md §3.2–3.3).
//!
//! The selection logic here mirrors `bootloader_common_select_otadata` and
//! `esp_rewrite_ota_data` exactly, because the device writes otadata itself after an OTA
//! and the bootloader, not this code, has the last word on what boots.

/// Size of one `esp_ota_select_entry_t`.
pub const ENTRY_LEN: usize = 32;
/// Each entry sits at the start of its own sector, so one can be erased and rewritten
/// while the other still holds the previous selection (power-cut safety).
pub const SECTOR_LEN: u32 = 0x1000;
/// `ota_seq` of an erased entry.
pub const SEQ_ERASED: u32 = 0xFFFF_FFFF;

/// `esp_ota_img_states_t`. Unknown values are kept, so an entry decodes and re-encodes
/// unchanged even if a newer IDF adds states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtaState {
    /// Just selected, never booted (rollback builds).
    New,
    /// Booted once by the bootloader, waiting for the app to confirm itself.
    PendingVerify,
    /// The app confirmed it works.
    Valid,
    /// Marked bad by the app; never booted again.
    Invalid,
    /// Was PENDING_VERIFY at a reboot: the app never confirmed, so it is rolled back.
    Aborted,
    /// What non-rollback builds write; also the erased value.
    Undefined,
    /// Any other value, kept verbatim.
    Unknown(u32),
}

impl OtaState {
    pub const fn from_u32(v: u32) -> Self {
        match v {
            0 => OtaState::New,
            1 => OtaState::PendingVerify,
            2 => OtaState::Valid,
            3 => OtaState::Invalid,
            4 => OtaState::Aborted,
            0xFFFF_FFFF => OtaState::Undefined,
            other => OtaState::Unknown(other),
        }
    }

    pub const fn to_u32(self) -> u32 {
        match self {
            OtaState::New => 0,
            OtaState::PendingVerify => 1,
            OtaState::Valid => 2,
            OtaState::Invalid => 3,
            OtaState::Aborted => 4,
            OtaState::Undefined => 0xFFFF_FFFF,
            OtaState::Unknown(v) => v,
        }
    }

    /// INVALID and ABORTED entries are skipped by the bootloader's slot choice.
    pub const fn is_bootable(self) -> bool {
        !matches!(self, OtaState::Invalid | OtaState::Aborted)
    }
}

/// Why a boot-slot change cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtaDataError {
    /// `target` is not an existing `ota_N` slot (IDF returns ESP_ERR_INVALID_ARG).
    #[error(
        "OTA slot {target} does not exist: the partition table has {count} OTA app partitions; pick a slot below {count}"
    )]
    NoSuchSlot { target: usize, count: usize },
}

/// One `esp_ota_select_entry_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaSelectEntry {
    pub seq: u32,
    /// `seq_label`: unused by IDF, normally left erased (`0xFF`).
    pub label: [u8; 20],
    pub state: OtaState,
    pub crc: u32,
}

impl OtaSelectEntry {
    /// An erased (all `0xFF`) entry: what a blank otadata sector decodes to.
    pub const ERASED: Self = OtaSelectEntry {
        seq: SEQ_ERASED,
        label: [0xFF; 20],
        state: OtaState::Undefined,
        crc: 0xFFFF_FFFF,
    };

    /// An entry selecting `seq`, with an erased label and the correct CRC.
    pub const fn new(seq: u32, state: OtaState) -> Self {
        OtaSelectEntry {
            seq,
            label: [0xFF; 20],
            state,
            crc: crc(seq),
        }
    }

    pub fn decode(bytes: &[u8; ENTRY_LEN]) -> Self {
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut label = [0u8; 20];
        label.copy_from_slice(&bytes[4..24]);
        OtaSelectEntry {
            seq: word(0),
            label,
            state: OtaState::from_u32(word(24)),
            crc: word(28),
        }
    }

    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..24].copy_from_slice(&self.label);
        out[24..28].copy_from_slice(&self.state.to_u32().to_le_bytes());
        out[28..32].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// `bootloader_common_ota_select_valid`: written, bootable state, CRC over `seq` matches.
    pub const fn is_valid(&self) -> bool {
        self.seq != SEQ_ERASED && self.state.is_bootable() && self.crc == crc(self.seq)
    }
}

/// CRC-32 (IEEE, reflected, poly 0xEDB88320) with ESP ROM `esp_rom_crc32_le` semantics:
/// `init` is inverted on entry and the result inverted on exit, so
/// `crc32_le(x, data) == zlib.crc32(data, x)`.
///
/// Table-driven: the journal's recovery scan checks every record of its sector at each
/// boot, and bit by bit that cost eight shifts a byte. The table costs 1 KiB of flash.
pub const fn crc32_le(init: u32, data: &[u8]) -> u32 {
    let mut crc = !init;
    let mut i = 0;
    while i < data.len() {
        crc = CRC32_TABLE[((crc ^ data[i] as u32) & 0xFF) as usize] ^ (crc >> 8);
        i += 1;
    }
    !crc
}

/// `CRC32_TABLE[b]` is the bitwise CRC step applied eight times to `b`, built at compile time.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[b] = crc;
        b += 1;
    }
    table
};

/// The otadata CRC: `esp_rom_crc32_le(0xFFFFFFFF, &ota_seq, 4)`. Note the init value: this
/// is not the plain `zlib.crc32(le32(seq))`.
pub const fn crc(seq: u32) -> u32 {
    crc32_le(0xFFFF_FFFF, &seq.to_le_bytes())
}

/// Which of the two entries is active (`bootloader_common_get_active_otadata`): the valid
/// one, or the larger `seq` if both are valid (entry 0 on a tie). `None` if neither is valid.
pub fn active_entry(entries: &[OtaSelectEntry; 2]) -> Option<usize> {
    match (entries[0].is_valid(), entries[1].is_valid()) {
        (true, true) => Some(if entries[1].seq > entries[0].seq { 1 } else { 0 }),
        (true, false) => Some(0),
        (false, true) => Some(1),
        (false, false) => None,
    }
}

/// Slot an active `seq` selects: `(seq − 1) % count`, with the C unsigned wrap for seq 0.
const fn slot_of(seq: u32, count: usize) -> usize {
    (seq.wrapping_sub(1) as usize) % count
}

/// The `ota_N` slot the bootloader boots (ESP-FORMATS.md §3.3), or `None` when it would fall
/// back to the factory app (else ota_0): no valid entry, or `ota_slot_count` is 0.
pub fn select_boot_slot(entries: &[OtaSelectEntry; 2], ota_slot_count: usize) -> Option<usize> {
    if ota_slot_count == 0 {
        return None;
    }
    active_entry(entries).map(|i| slot_of(entries[i].seq, ota_slot_count))
}

/// [`select_boot_slot`] over the raw first 32 bytes of each otadata sector.
pub fn select_boot_slot_raw(raw: &[[u8; ENTRY_LEN]; 2], ota_slot_count: usize) -> Option<usize> {
    select_boot_slot(
        &[OtaSelectEntry::decode(&raw[0]), OtaSelectEntry::decode(&raw[1])],
        ota_slot_count,
    )
}

/// What `esp_rewrite_ota_data` writes to make the next boot pick `target_slot`: the sector
/// index (0 or 1; erase that sector, then write the entry at its start) and the entry.
///
/// - Active entry already maps to `target_slot`: rewrite that same entry with `state`.
/// - Otherwise write the *other* sector with the smallest `((target+1) % count) + k·count`
///   that is ≥ the active `seq`, so the bootloader prefers it and the old entry stays as
///   the rollback target.
/// - No valid entry: `target_slot + 1` into sector 0.
///
/// `state` is what IDF's `set_new_state_otadata` gives: [`OtaState::New`] with
/// app rollback enabled, else [`OtaState::Undefined`]. The label of the rewritten sector is
/// kept, as IDF rewrites the whole struct it read.
pub fn next_entry_for_slot(
    current: &[OtaSelectEntry; 2],
    target_slot: usize,
    ota_slot_count: usize,
    state: OtaState,
) -> Result<(usize, OtaSelectEntry), OtaDataError> {
    if target_slot >= ota_slot_count {
        return Err(OtaDataError::NoSuchSlot {
            target: target_slot,
            count: ota_slot_count,
        });
    }
    let (sector, seq) = match active_entry(current) {
        Some(active) => {
            let seq = current[active].seq;
            if slot_of(seq, ota_slot_count) == target_slot {
                (active, seq)
            } else {
                let count = ota_slot_count as u64;
                let base = (target_slot as u64 + 1) % count;
                let k = (u64::from(seq).saturating_sub(base)).div_ceil(count);
                // IDF's loop wraps u32 here; only reachable after ~4 billion OTAs.
                (active ^ 1, (base + k * count) as u32)
            }
        }
        None => (0, target_slot as u32 + 1),
    };
    let mut entry = current[sector];
    entry.seq = seq;
    entry.state = state;
    entry.crc = crc(seq);
    Ok((sector, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLANK: [OtaSelectEntry; 2] = [OtaSelectEntry::ERASED; 2];

    #[test]
    fn crc_matches_idf_values() {
        assert_eq!(crc(1), 0x4743_989A);
        assert_eq!(crc(2), 0x55F6_3774);
        assert_eq!(crc(3), 0xED4A_5011);
        // Plain zlib CRC-32 check value, to pin the algorithm itself.
        assert_eq!(crc32_le(0, b"123456789"), 0xCBF4_3926);
        // Chaining, as the journal's records use it: a split anywhere gives the same CRC.
        for split in 0..=9 {
            let (a, b) = b"123456789".split_at(split);
            assert_eq!(crc32_le(crc32_le(0, a), b), 0xCBF4_3926);
        }
    }

    #[test]
    fn state_round_trips_including_unknown() {
        for v in [0, 1, 2, 3, 4, 5, 0x1234, 0xFFFF_FFFF] {
            assert_eq!(OtaState::from_u32(v).to_u32(), v);
        }
        assert_eq!(OtaState::from_u32(7), OtaState::Unknown(7));
    }

    #[test]
    fn entry_encode_decode() {
        let e = OtaSelectEntry::new(1, OtaState::New);
        let b = e.encode();
        assert_eq!(&b[0..4], &[1, 0, 0, 0]);
        assert_eq!(&b[4..24], &[0xFF; 20]);
        assert_eq!(&b[24..28], &[0, 0, 0, 0]);
        assert_eq!(&b[28..32], &0x4743_989Au32.to_le_bytes());
        assert_eq!(OtaSelectEntry::decode(&b), e);
        assert_eq!(OtaSelectEntry::decode(&[0xFF; 32]), OtaSelectEntry::ERASED);
        assert!(!OtaSelectEntry::ERASED.is_valid());
    }

    #[test]
    fn blank_boots_factory() {
        assert_eq!(select_boot_slot(&BLANK, 2), None);
        assert_eq!(select_boot_slot_raw(&[[0xFF; 32]; 2], 2), None);
    }

    #[test]
    fn selection_rules() {
        let e = |seq, st| OtaSelectEntry::new(seq, st);
        // Larger seq wins.
        assert_eq!(
            select_boot_slot(&[e(1, OtaState::Valid), e(2, OtaState::Valid)], 2),
            Some(1)
        );
        assert_eq!(
            select_boot_slot(&[e(3, OtaState::Valid), e(2, OtaState::Valid)], 2),
            Some(0)
        );
        // Invalid / aborted are skipped.
        assert_eq!(
            select_boot_slot(&[e(1, OtaState::Valid), e(2, OtaState::Aborted)], 2),
            Some(0)
        );
        assert_eq!(
            select_boot_slot(&[e(1, OtaState::Invalid), e(2, OtaState::Valid)], 2),
            Some(1)
        );
        assert_eq!(
            select_boot_slot(&[e(1, OtaState::Invalid), e(2, OtaState::Aborted)], 2),
            None
        );
        // Bad CRC is skipped.
        let mut bad = e(2, OtaState::Valid);
        bad.crc ^= 1;
        assert_eq!(select_boot_slot(&[e(1, OtaState::Valid), bad], 2), Some(0));
        // Undefined / pending / unknown states are bootable.
        assert_eq!(select_boot_slot(&[e(5, OtaState::Undefined), BLANK[1]], 2), Some(0));
        assert_eq!(select_boot_slot(&[BLANK[0], e(4, OtaState::PendingVerify)], 2), Some(1));
        assert_eq!(select_boot_slot(&[BLANK[0], e(4, OtaState::Unknown(9))], 2), Some(1));
        // Modulo over the slot count; no OTA slots → fallback.
        assert_eq!(select_boot_slot(&[e(6, OtaState::Valid), BLANK[1]], 4), Some(1));
        assert_eq!(select_boot_slot(&[e(6, OtaState::Valid), BLANK[1]], 0), None);
        // Raw form agrees.
        let raw = [e(1, OtaState::Valid).encode(), e(2, OtaState::Valid).encode()];
        assert_eq!(select_boot_slot_raw(&raw, 2), Some(1));
    }

    /// Applies what `next_entry_for_slot` says to write and returns the new otadata.
    fn apply(cur: [OtaSelectEntry; 2], target: usize, count: usize) -> ([OtaSelectEntry; 2], usize) {
        let (sector, entry) = next_entry_for_slot(&cur, target, count, OtaState::New).unwrap();
        let mut next = cur;
        next[sector] = entry;
        assert_eq!(select_boot_slot(&next, count), Some(target));
        (next, sector)
    }

    #[test]
    fn rewrite_sequence_matches_idf_example() {
        let (d, s) = apply(BLANK, 0, 2);
        assert_eq!((s, d[0].seq), (0, 1));
        let (d, s) = apply(d, 1, 2);
        assert_eq!((s, d[1].seq), (1, 2));
        let (d, s) = apply(d, 0, 2);
        assert_eq!((s, d[0].seq), (0, 3));
        let (d, s) = apply(d, 1, 2);
        assert_eq!((s, d[1].seq), (1, 4));
        assert_eq!(d[0].crc, 0xED4A_5011);
    }

    #[test]
    fn rewrite_same_slot_only_changes_state() {
        let cur = [
            OtaSelectEntry::new(3, OtaState::Valid),
            OtaSelectEntry::new(2, OtaState::Valid),
        ];
        let (sector, entry) = next_entry_for_slot(&cur, 0, 2, OtaState::New).unwrap();
        assert_eq!(sector, 0);
        assert_eq!(entry, OtaSelectEntry::new(3, OtaState::New));
    }

    #[test]
    fn rewrite_blank_to_ota1_and_many_slots() {
        let (d, s) = apply(BLANK, 1, 2);
        assert_eq!((s, d[0].seq), (0, 2));
        // Four slots: active seq 6 (ota_1) → ota_3 needs seq 8; → ota_0 needs seq 9.
        let cur = [OtaSelectEntry::new(6, OtaState::Valid), OtaSelectEntry::ERASED];
        let (s, e) = next_entry_for_slot(&cur, 3, 4, OtaState::Undefined).unwrap();
        assert_eq!((s, e.seq, e.state), (1, 8, OtaState::Undefined));
        let (_, e) = next_entry_for_slot(&cur, 0, 4, OtaState::Undefined).unwrap();
        assert_eq!(e.seq, 9);
    }

    #[test]
    fn rewrite_rejects_missing_slot() {
        assert_eq!(
            next_entry_for_slot(&BLANK, 2, 2, OtaState::New),
            Err(OtaDataError::NoSuchSlot { target: 2, count: 2 })
        );
    }
}
