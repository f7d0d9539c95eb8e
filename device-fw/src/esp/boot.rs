//! The second-stage bootloader's slot choice with app rollback, and the otadata writes it
//! and the app make.
//!
//! [`bootloader_boot`] replays `bootloader_utility_get_selected_boot_partition` and
//! `bootloader_utility_load_boot_image` of ESP-IDF built with
//! `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`, flash write for flash write, so that the bench
//! boots exactly what a chip would, and a power cut during one of the bootloader's own
//! otadata writes is part of what the bench sweeps. The app-side writes
//! ([`set_boot_slot`], [`mark_valid`], [`mark_invalid`]) are `esp_ota_set_boot_partition`,
//! `esp_ota_mark_app_valid_cancel_rollback` and `esp_ota_mark_app_invalid_rollback`.
//!
//! Every write is "erase one otadata sector, program one 32-byte entry at its start", as
//! IDF does it; the other sector keeps the previous selection, so a cut at any point leaves
//! either the old or the new choice, never none.

use embedded_storage_async::nor_flash::NorFlash;

use super::otadata::{
    ENTRY_LEN, OtaDataError, OtaSelectEntry, OtaState, SECTOR_LEN, SEQ_ERASED, active_entry, crc, next_entry_for_slot,
};
use super::slot_image::{SlotImage, check_slot_image};
use crate::ota::Slot;

/// Most `ota_N` app partitions a table may have (IDF: ota_0 … ota_15).
pub const MAX_OTA_SLOTS: usize = 16;

/// Where the bootloader looks: what it reads from the partition table.
#[derive(Debug, Clone)]
pub struct BootLayout {
    /// Start of the two-sector otadata partition.
    pub otadata: u32,
    pub ota: heapless::Vec<Slot, MAX_OTA_SLOTS>,
    pub factory: Option<Slot>,
    /// `chip_id` images must carry.
    pub chip_id: u16,
}

/// Which app the bootloader started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTarget {
    Factory,
    Ota(usize),
}

/// What booted, and in which otadata state.
#[derive(Debug, Clone)]
pub struct Booted {
    pub target: BootTarget,
    pub slot: Slot,
    /// State of the active otadata entry when it selects the booted slot
    /// (`PendingVerify` right after an update), else `Undefined`.
    pub state: OtaState,
    pub image: SlotImage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootError<E> {
    /// No partition holds a loadable app: the device is bricked.
    #[error("no bootable app in any partition; reflash the device over USB with `otactl flash`")]
    NoBootableApp,
    #[error("flash operation failed: {0:?}")]
    Flash(E),
    #[error(transparent)]
    OtaData(#[from] OtaDataError),
}

/// Reads both otadata entries.
pub async fn read_otadata<F: NorFlash>(flash: &mut F, otadata: u32) -> Result<[OtaSelectEntry; 2], F::Error> {
    let mut entries = [OtaSelectEntry::ERASED; 2];
    for (i, entry) in entries.iter_mut().enumerate() {
        let mut raw = [0u8; ENTRY_LEN];
        flash.read(otadata + i as u32 * SECTOR_LEN, &mut raw).await?;
        *entry = OtaSelectEntry::decode(&raw);
    }
    Ok(entries)
}

/// Erases otadata sector `sector` and programs `entry` at its start.
pub async fn write_entry<F: NorFlash>(
    flash: &mut F,
    otadata: u32,
    sector: usize,
    entry: &OtaSelectEntry,
) -> Result<(), F::Error> {
    let at = otadata + sector as u32 * SECTOR_LEN;
    flash.erase(at, at + SECTOR_LEN).await?;
    flash.write(at, &entry.encode()).await
}

/// `bootloader_common_ota_select_invalid`: erased, or marked INVALID/ABORTED. Unlike
/// validity, the CRC plays no part here.
fn select_invalid(e: &OtaSelectEntry) -> bool {
    e.seq == SEQ_ERASED || !e.state.is_bootable()
}

/// Erased or with a CRC that does not match: the "initial contents" test.
fn initial(e: &OtaSelectEntry) -> bool {
    e.seq == SEQ_ERASED || e.crc != crc(e.seq)
}

impl BootLayout {
    fn partition(&self, index: isize) -> Option<Slot> {
        if index < 0 {
            self.factory
        } else {
            self.ota.get(index as usize).copied()
        }
    }
}

/// Boots as the ESP-IDF bootloader with app rollback does, writing otadata as it does.
pub async fn bootloader_boot<F: NorFlash>(flash: &mut F, layout: &BootLayout) -> Result<Booted, BootError<F::Error>> {
    const FACTORY: isize = -1;
    let mut entries = read_otadata(flash, layout.otadata).await.map_err(BootError::Flash)?;
    for (i, entry) in entries.iter_mut().enumerate() {
        if entry.state == OtaState::PendingVerify {
            entry.state = OtaState::Aborted;
            write_entry(flash, layout.otadata, i, entry)
                .await
                .map_err(BootError::Flash)?;
        }
    }
    let count = layout.ota.len();
    let mut initial_contents = false;
    let start = if (select_invalid(&entries[0]) && select_invalid(&entries[1])) || count == 0 {
        if layout.factory.is_some() {
            FACTORY
        } else {
            initial_contents = initial(&entries[0]) && initial(&entries[1]);
            0
        }
    } else {
        match active_entry(&entries) {
            Some(active) => {
                let index = (entries[active].seq.wrapping_sub(1) as usize % count) as isize;
                if entries[active].state == OtaState::New {
                    entries[active].state = OtaState::PendingVerify;
                    write_entry(flash, layout.otadata, active, &entries[active])
                        .await
                        .map_err(BootError::Flash)?;
                }
                index
            }
            None => FACTORY,
        }
    };

    // Work backwards from the choice down to the factory app, then forwards.
    let order = (FACTORY..=start).rev().chain(start + 1..count as isize);
    for index in order {
        let Some(slot) = layout.partition(index) else {
            continue;
        };
        let image = match check_slot_image(flash, slot, u64::from(slot.size), layout.chip_id).await {
            Ok(image) => image,
            Err(super::slot_image::SlotImageError::Flash(e)) => return Err(BootError::Flash(e)),
            Err(_) => continue,
        };
        if index > FACTORY && initial_contents {
            // `set_actual_ota_seq`: record the slot that booted as seq index+1, VALID.
            let entry = OtaSelectEntry::new(index as u32 + 1, OtaState::Valid);
            write_entry(flash, layout.otadata, 0, &entry)
                .await
                .map_err(BootError::Flash)?;
            entries[0] = entry;
        }
        let target = if index == FACTORY {
            BootTarget::Factory
        } else {
            BootTarget::Ota(index as usize)
        };
        let state = match (target, active_entry(&entries)) {
            (BootTarget::Ota(i), Some(a)) if entries[a].seq.wrapping_sub(1) as usize % count == i => entries[a].state,
            _ => OtaState::Undefined,
        };
        return Ok(Booted {
            target,
            slot,
            state,
            image,
        });
    }
    Err(BootError::NoBootableApp)
}

/// `esp_ota_set_boot_partition` with rollback: the next boot starts `ota_<target>`, in
/// state NEW. One sector erase and one 32-byte program, into the sector that does not
/// hold the running selection.
pub async fn set_boot_slot<F: NorFlash>(
    flash: &mut F,
    otadata: u32,
    ota_slot_count: usize,
    target: usize,
) -> Result<(), BootError<F::Error>> {
    let entries = read_otadata(flash, otadata).await.map_err(BootError::Flash)?;
    let (sector, entry) = next_entry_for_slot(&entries, target, ota_slot_count, OtaState::New)?;
    write_entry(flash, otadata, sector, &entry)
        .await
        .map_err(BootError::Flash)
}

/// Rewrites the active entry's state in its own sector (`esp_ota_current_ota_is_workable`).
/// Returns whether anything was written.
async fn set_active_state<F: NorFlash>(flash: &mut F, otadata: u32, state: OtaState) -> Result<bool, F::Error> {
    let mut entries = read_otadata(flash, otadata).await?;
    let Some(active) = active_entry(&entries) else {
        return Ok(false);
    };
    if entries[active].state == state {
        return Ok(false);
    }
    entries[active].state = state;
    entries[active].crc = crc(entries[active].seq);
    write_entry(flash, otadata, active, &entries[active]).await?;
    Ok(true)
}

/// `esp_ota_mark_app_valid_cancel_rollback`: the running app passed its self-test.
pub async fn mark_valid<F: NorFlash>(flash: &mut F, otadata: u32) -> Result<bool, F::Error> {
    set_active_state(flash, otadata, OtaState::Valid).await
}

/// `esp_ota_mark_app_invalid_rollback`: the running app failed its self-test; the next
/// boot takes the other slot.
pub async fn mark_invalid<F: NorFlash>(flash: &mut F, otadata: u32) -> Result<bool, F::Error> {
    set_active_state(flash, otadata, OtaState::Invalid).await
}

/// The state otadata gives `slot` (an `ota_N` index): that of the newest entry that maps to
/// it, whether or not it is bootable. `None` when no written entry maps to it.
pub fn slot_state(entries: &[OtaSelectEntry; 2], ota_slot_count: usize, slot: usize) -> Option<OtaState> {
    entries
        .iter()
        .filter(|e| e.seq != SEQ_ERASED && e.crc == crc(e.seq) && ota_slot_count > 0)
        .filter(|e| e.seq.wrapping_sub(1) as usize % ota_slot_count == slot)
        .max_by_key(|e| e.seq)
        .map(|e| e.state)
}
