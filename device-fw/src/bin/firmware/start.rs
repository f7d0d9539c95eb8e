//! What the bootloader started: the flash layout from the partition table, the running
//! slot, and that slot's otadata state, as the core's [`Running`].
//!
//! Which slot runs is a hardware fact: the bootloader maps the chosen app into the flash
//! cache, and the MMU's first entry holds that app's flash address. esp-bootloader-esp-idf
//! reads it (`booted_partition`), so the chip-specific register addresses stay in that
//! crate. Otadata, though, is read with the core's own `read_otadata`, not with
//! esp-bootloader-esp-idf's `Ota`: the core writes otadata itself (its `set_boot_slot`
//! enters NEW with rollback, where esp-bootloader-esp-idf's `activate_next_partition`
//! keeps the old state), so the state the app acts on must come from the same reading of
//! the same bytes that the core's `after_boot` writes.

use core::fmt;

use device_fw::esp::boot::{BootTarget, read_otadata};
use device_fw::esp::otadata::{OtaState, active_entry};
use device_fw::esp::partition::{PartitionError, PartitionTable, TABLE_LEN, TABLE_OFFSET};
use device_fw::modem::ModemError;
use device_fw::ota::update::{LayoutError, Running, UpdateLayout};
use embedded_storage_async::nor_flash::ReadNorFlash;
use esp_bootloader_esp_idf::EspAppDesc;
use esp_storage::{FlashStorage, FlashStorageError};

use crate::config;
use crate::flash::AsyncFlash;

/// Why the firmware cannot serve updates. Each message says what to check.
#[derive(Debug)]
pub enum StartError {
    /// esp-bootloader-esp-idf could not read the table to map the booted app.
    BootedUnknown(esp_bootloader_esp_idf::partitions::Error),
    /// The MMU maps an app that no partition holds.
    NotInPartition,
    Flash(FlashStorageError),
    Table(PartitionError),
    Layout(LayoutError),
    /// The app runs from an app partition that is neither an OTA slot nor the factory app.
    NotAnAppSlot {
        offset: u32,
    },
    Config(ModemError),
    Uart(esp_hal::uart::ConfigError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::BootedUnknown(e) => write!(
                f,
                "cannot read the partition table at {TABLE_OFFSET:#x} to find the running app ({e}); flash the table with `otactl flash`"
            ),
            StartError::NotInPartition => f.write_str(
                "the running app is not at the start of any partition (started by a debugger or from a raw address?); flash it with `otactl flash`",
            ),
            StartError::Flash(e) => write!(f, "flash read failed: {e:?}"),
            StartError::Table(e) => write!(f, "partition table at {TABLE_OFFSET:#x}: {e}"),
            StartError::Layout(e) => write!(f, "{e}"),
            StartError::NotAnAppSlot { offset } => write!(
                f,
                "the running app at {offset:#x} is neither an OTA slot nor the factory app; use a table with ota_0 and ota_1"
            ),
            StartError::Config(e) => write!(f, "modem settings: {e}"),
            StartError::Uart(e) => write!(f, "modem UART at {} baud: {e:?}", config::BAUD),
        }
    }
}

/// Flash address of the app the bootloader started.
pub fn booted_offset(storage: &mut FlashStorage<'static>) -> Result<u32, StartError> {
    let mut buf = [0u8; esp_bootloader_esp_idf::partitions::PARTITION_TABLE_MAX_LEN];
    let table = esp_bootloader_esp_idf::partitions::read_partition_table(storage, &mut buf)
        .map_err(StartError::BootedUnknown)?;
    match table.booted_partition() {
        Ok(Some(entry)) => Ok(entry.offset()),
        Ok(None) => Err(StartError::NotInPartition),
        Err(e) => Err(StartError::BootedUnknown(e)),
    }
}

/// The update layout from the partition table, and what runs.
pub async fn layout_and_running(
    flash: &mut AsyncFlash,
    booted: u32,
    desc: &'static EspAppDesc,
) -> Result<(UpdateLayout, Running<'static>), StartError> {
    let mut raw = [0u8; TABLE_LEN];
    flash.read(TABLE_OFFSET, &mut raw).await.map_err(StartError::Flash)?;
    let (table, _) = PartitionTable::parse(&raw).map_err(StartError::Table)?;
    let layout = UpdateLayout::from_table(&table, config::CHIP).map_err(StartError::Layout)?;

    let boot = &layout.boot;
    let target = if boot.factory.is_some_and(|f| f.offset == booted) {
        BootTarget::Factory
    } else {
        match boot.ota.iter().position(|s| s.offset == booted) {
            Some(i) => BootTarget::Ota(i),
            None => return Err(StartError::NotAnAppSlot { offset: booted }),
        }
    };
    let entries = read_otadata(flash, boot.otadata).await.map_err(StartError::Flash)?;
    // The state of the active entry when it selects the running slot, as the bootloader
    // hands it over (PENDING_VERIFY right after an update); otherwise the app was started
    // by a fallback and no entry speaks for it.
    let count = boot.ota.len();
    let state = match (target, active_entry(&entries)) {
        (BootTarget::Ota(i), Some(a)) if entries[a].seq.wrapping_sub(1) as usize % count == i => entries[a].state,
        _ => OtaState::Undefined,
    };
    let running = Running {
        target,
        state,
        version: desc.version(),
        secure_version: desc.secure_version(),
    };
    Ok((layout, running))
}
