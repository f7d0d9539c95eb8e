//! What a fresh flash writes, in address order. Built before the port is opened, so a bad
//! image or bootloader file costs no time at the bench and never half-writes a device.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr as _;

use device_fw::esp::chip::Chip;
use device_fw::esp::image::{AppImage, ImageHeader};
use device_fw::esp::partition::TABLE_OFFSET;
use device_fw::profile::Profile;
use espflash::flasher::FlashData;
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::target::XtalFrequency;
use sha2::{Digest as _, Sha256};

use super::{FlashError, chain, hex};
use crate::image::{self, FlashFreq, FlashMode, FlashSettings, FlashSize, ImageError};

/// No ESP flash is larger than 16 MiB, so neither is an app image.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;
/// A firmware ELF with debug info can be large, but not this large.
const MAX_ELF: u64 = 256 * 1024 * 1024;

/// One region of flash to write.
#[derive(Debug, Clone)]
pub struct Segment {
    /// `bootloader`, `partition-table`, `otadata`, `otastate` or `ota_0`.
    pub name: &'static str,
    pub addr: u32,
    pub data: Vec<u8>,
    /// All `0xFF`: the region is erased, not given contents.
    pub erased: bool,
}

/// The app going into `ota_0`, and what the report says about it.
#[derive(Debug, Clone)]
pub struct App {
    pub bytes: Vec<u8>,
    pub version: String,
    pub project: String,
    pub secure_version: u32,
    pub sha256: String,
}

/// The bootloader and where it came from, for the report and the rollback note.
#[derive(Debug, Clone)]
pub struct Bootloader {
    pub bytes: Vec<u8>,
    /// `None`: espflash's bundled ESP-IDF bootloader.
    pub file: Option<String>,
}

/// The espflash name of a chip the profile names.
pub fn espflash_chip(chip: Chip) -> Result<espflash::target::Chip, FlashError> {
    espflash::target::Chip::from_str(chip.as_str())
        .map_err(|_| FlashError::Profile(format!("otactl cannot flash {chip}")))
}

/// The image header's flash settings from the profile (by name: both enums are
/// non-exhaustive, and both use esptool's names).
pub fn flash_settings(profile: &Profile) -> Result<FlashSettings, FlashError> {
    let unsupported = |what: String| FlashError::Profile(format!("otactl cannot flash with {what}"));
    let size = FlashSize::from_bytes(profile.flash.size.bytes())
        .ok_or_else(|| unsupported(format!("a {} flash", profile.flash.size)))?;
    let mode = <FlashMode as clap::ValueEnum>::from_str(profile.flash.mode.as_str(), true)
        .map_err(|_| unsupported(format!("flash mode {}", profile.flash.mode.as_str())))?;
    let freq = <FlashFreq as clap::ValueEnum>::from_str(profile.flash.freq.as_str(), true)
        .map_err(|_| unsupported(format!("flash frequency {}", profile.flash.freq.as_str())))?;
    Ok(FlashSettings { mode, size, freq })
}

fn read_limited(path: &Path, what: &'static str, limit: u64) -> Result<Vec<u8>, FlashError> {
    let read_error = |e: std::io::Error| FlashError::Read {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(FlashError::FileTooLarge {
            what,
            path: path.display().to_string(),
            size: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
        });
    }
    Ok(bytes)
}

/// A ready app image (`--image`), checked as the bootloader will check it.
pub fn app_from_image(path: &Path, profile: &Profile) -> Result<App, FlashError> {
    let bytes = read_limited(path, "app image", MAX_IMAGE)?;
    let shown = path.display().to_string();
    let parsed = AppImage::parse(&bytes).map_err(|error| FlashError::BadImage {
        path: shown.clone(),
        error,
    })?;
    let chip = profile.device.chip;
    if parsed.check_chip(chip.image_chip_id()).is_err() {
        let found = parsed.header.chip_id;
        let image = Chip::ALL
            .into_iter()
            .find(|c| c.image_chip_id() == found)
            .map_or_else(|| format!("chip id {found}"), |c| format!("{c} (chip id {found})"));
        return Err(FlashError::ImageWrongChip {
            path: shown,
            image,
            profile: chip,
        });
    }
    let desc = parsed.app_desc;
    let app = App {
        sha256: hex(&Sha256::digest(&bytes)),
        version: desc.version().unwrap_or_default().to_owned(),
        project: desc.project_name().unwrap_or_default().to_owned(),
        secure_version: desc.secure_version(),
        bytes,
    };
    check_fits(&app, profile)?;
    Ok(app)
}

/// A firmware ELF (`--elf`), made into the app image `otactl image` would make.
pub fn app_from_elf(path: &Path, profile: &Profile) -> Result<App, FlashError> {
    let elf = read_limited(path, "ELF", MAX_ELF)?;
    let out = image::elf_to_app_image(&elf, profile.device.chip, flash_settings(profile)?)?;
    let app = App {
        sha256: out.sha256_hex(),
        version: out.version,
        project: out.project,
        secure_version: out.secure_version,
        bytes: out.bytes,
    };
    check_fits(&app, profile)?;
    Ok(app)
}

/// The app goes into `ota_0`: a bigger image would run into `ota_1` (or past the flash).
fn check_fits(app: &App, profile: &Profile) -> Result<(), FlashError> {
    let slot = profile.slots.ota_0;
    let size = app.bytes.len() as u64;
    if size > u64::from(slot.size) {
        return Err(ImageError::TooBig {
            size,
            limit: slot.size.into(),
            slot: format!("ota_0 ({slot})"),
        }
        .into());
    }
    Ok(())
}

/// A bootloader file (`--bootloader`): an image for the chip that ends before the
/// partition table.
pub fn bootloader_from_file(path: &Path, chip: Chip) -> Result<Bootloader, FlashError> {
    let bytes = read_limited(path, "bootloader", MAX_IMAGE)?;
    let shown = path.display().to_string();
    let bad = |reason: String, help: &str| FlashError::BadBootloader {
        path: shown.clone(),
        reason,
        help: help.to_owned(),
    };
    let header = ImageHeader::parse(&bytes).map_err(|e| {
        bad(
            e.to_string(),
            "pass the second-stage bootloader ESP-IDF builds (build/bootloader/bootloader.bin), not an app or a merged image",
        )
    })?;
    if header.check_chip(chip.image_chip_id()).is_err() {
        return Err(bad(
            format!(
                "it is built for chip id {}, the profile's {chip} is chip id {}",
                header.chip_id,
                chip.image_chip_id()
            ),
            "build the bootloader for the profile's chip (idf.py set-target)",
        ));
    }
    let at = espflash_chip(chip)?.boot_address();
    let room = TABLE_OFFSET - at;
    if bytes.len() as u64 > u64::from(room) {
        return Err(bad(
            format!(
                "it is {} bytes; at {at:#x} it would run into the partition table at {TABLE_OFFSET:#x} ({room} bytes of room)",
                bytes.len()
            ),
            "build a smaller bootloader (ESP-IDF: optimise the bootloader for size, lower its log level)",
        ));
    }
    Ok(Bootloader {
        bytes,
        file: Some(shown),
    })
}

/// espflash's bundled ESP-IDF bootloader for the chip and crystal, with the profile's flash
/// settings in its header, as `espflash flash` writes it. The library only hands it out as
/// part of an ELF's image set, so it is asked with an ELF that has nothing in it.
pub fn bundled_bootloader(chip: Chip, xtal: XtalFrequency, flash: FlashSettings) -> Result<Bootloader, FlashError> {
    let target = espflash_chip(chip)?;
    let flash_data = FlashData::new(
        espflash::flasher::FlashSettings::new(
            Some(flash.mode.into()),
            Some(flash.size.into()),
            Some(flash.freq.into()),
        ),
        0,
        None,
        target,
        xtal,
    );
    let elf = empty_elf(chip);
    let none = |reason: String| FlashError::NoBundledBootloader {
        chip: chip.to_string(),
        xtal: xtal.to_string(),
        reason,
    };
    let idf = IdfBootloaderFormat::new(&elf, &flash_data, None, None, None, None).map_err(|e| none(chain(&e)))?;
    let boot = target.boot_address();
    let bytes = idf
        .flash_segments()
        .find(|s| s.addr == boot)
        .map(|s| s.data.into_owned())
        .ok_or_else(|| none("no bootloader segment".into()))?;
    Ok(Bootloader { bytes, file: None })
}

/// An ELF32 executable header for `chip`'s architecture with no sections and no segments.
fn empty_elf(chip: Chip) -> Vec<u8> {
    const EM_XTENSA: u16 = 94;
    const EM_RISCV: u16 = 243;
    let machine = match chip {
        Chip::Esp32 | Chip::Esp32s3 => EM_XTENSA,
        _ => EM_RISCV,
    };
    let mut elf = vec![0x7F, b'E', b'L', b'F', 1, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&[0; 12]); // entry, phoff, shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [52u16, 32, 0, 40, 0, 0] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf
}

/// Where the profile's last region ends: the flash must reach at least that far.
pub fn table_end(profile: &Profile) -> u64 {
    let s = &profile.slots;
    [s.nvs, s.otadata, s.phy_init, s.ota_0, s.ota_1, s.otastate]
        .iter()
        .map(|r| r.end())
        .max()
        .unwrap_or(0)
}

/// Everything a fresh flash writes, in address order: bootloader, partition table, otadata
/// erased (the bootloader then boots `ota_0`), the app in `ota_0`, and the OTA journal
/// erased (no interrupted download or failed version of an earlier firmware carries over).
pub fn segments(profile: &Profile, bootloader: &Bootloader, app: &App) -> Result<Vec<Segment>, FlashError> {
    let table = profile
        .partition_table()
        .and_then(|t| t.to_bytes())
        .map_err(|e| FlashError::Profile(format!("the profile's [slots] make no partition table: {e}")))?;
    let s = &profile.slots;
    let mut out = vec![
        Segment {
            name: "bootloader",
            addr: espflash_chip(profile.device.chip)?.boot_address(),
            data: bootloader.bytes.clone(),
            erased: false,
        },
        Segment {
            name: "partition-table",
            addr: TABLE_OFFSET,
            data: table.to_vec(),
            erased: false,
        },
        Segment {
            name: "otadata",
            addr: s.otadata.offset,
            data: vec![0xFF; s.otadata.size as usize],
            erased: true,
        },
        Segment {
            name: "ota_0",
            addr: s.ota_0.offset,
            data: app.bytes.clone(),
            erased: false,
        },
        Segment {
            name: "otastate",
            addr: s.otastate.offset,
            data: vec![0xFF; s.otastate.size as usize],
            erased: true,
        },
    ];
    out.sort_by_key(|s| s.addr);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(chip: &str) -> Profile {
        Profile::parse(
            &format!(
                "[device]\nproduct = \"p\"\nchip = \"{chip}\"\nboard = \"b\"\n\
                 [modem]\ndialect = \"sim7600\"\nbaud = 115200\napn = \"internet\"\n\
                 [flash]\nsize = \"4MB\"\n"
            ),
            "test.toml",
        )
        .unwrap()
    }

    #[test]
    fn the_bundled_bootloader_is_an_image_for_the_chip_that_ends_before_the_table() {
        for (chip, at) in [(Chip::Esp32c3, 0x0), (Chip::Esp32, 0x1000), (Chip::Esp32c6, 0x0)] {
            let flash = flash_settings(&profile(chip.as_str())).unwrap();
            let boot = bundled_bootloader(chip, XtalFrequency::_40Mhz, flash).unwrap();
            let header = ImageHeader::parse(&boot.bytes).unwrap();
            assert_eq!(header.chip_id, chip.image_chip_id(), "{chip}");
            assert!(at + boot.bytes.len() as u32 <= TABLE_OFFSET, "{chip}");
            assert_eq!(espflash_chip(chip).unwrap().boot_address(), at);
            // The profile's 4MB flash size is in the header (high nibble 2), as the app's.
            assert_eq!(boot.bytes[3] >> 4, 2, "{chip}");
        }
    }

    #[test]
    fn segments_come_in_address_order_with_otadata_and_the_journal_erased() {
        let p = profile("esp32");
        let boot = Bootloader {
            bytes: vec![0xE9; 100],
            file: None,
        };
        let app = App {
            bytes: vec![1; 1000],
            version: "1.0.0".into(),
            project: "p".into(),
            secure_version: 0,
            sha256: String::new(),
        };
        let segs = segments(&p, &boot, &app).unwrap();
        let names: Vec<_> = segs.iter().map(|s| (s.name, s.addr)).collect();
        assert_eq!(
            names,
            [
                ("bootloader", 0x1000),
                ("partition-table", 0x8000),
                ("otadata", 0xD000),
                ("ota_0", 0x10000),
                ("otastate", 0x3D_0000)
            ]
        );
        assert!(segs[2].data.iter().all(|&b| b == 0xFF) && segs[2].data.len() == 0x2000);
        assert_eq!(table_end(&p), 0x3D_4000);
    }
}
