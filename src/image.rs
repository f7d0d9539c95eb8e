//! Firmware ELF → ESP-IDF app image, the step `otactl image` runs, `otactl release` reuses
//! and CI runs on every firmware build.
//!
//! The image itself is made by the espflash library (`IdfBootloaderFormat`, the code behind
//! `espflash save-image`), so otactl ships byte for byte what the espflash tool would flash.
//! Everything around it is here because espflash does not check it: that the ELF was linked
//! for the chip the release is for, that it carries an app descriptor (without one, devices
//! and the bootloader cannot tell versions apart), and that the image the device will get
//! passes the same parser the device runs ([`device_fw::esp::image::AppImage::parse`]).
//!
//! # Static RAM
//!
//! [`static_ram`] sums the ELF's allocated sections by where they run (`sh_addr`), using the
//! chip's memory map (ESP-IDF `soc.h`): sections in internal SRAM count as `.data`
//! (initialised), `.bss` (`SHT_NOBITS`) or IRAM code (`SHF_EXECINSTR`: `.rwtext`, `.iram*`,
//! `.vectors`, `.trap`); sections in RTC/LP memory count as RTC; sections in the IROM/DROM
//! windows are flash-mapped code and read-only data (they take flash, not RAM). Left out:
//! non-allocated sections (debug info, symbols), the linker's `.stack` reservation (the stack
//! is whatever RAM is left, not a static allocation) and `*dummy*` placeholders, which
//! reserve the data-bus alias of IRAM on the chips whose IRAM and DRAM are one SRAM and
//! would otherwise count that IRAM twice. The heap counts where it is a static in `.bss`
//! (esp-alloc's usual setup).

use std::fmt;
use std::ops::Range;
use std::str::FromStr as _;

use device_fw::esp::chip::Chip;
use device_fw::esp::image::{AppDesc, AppImage, ImageError as ParseError};
use espflash::flasher::{FlashData, FlashFrequency, FlashMode as EspflashMode, FlashSize as EspflashSize};
use espflash::image_format::ImageFormat;
use espflash::image_format::idf::IdfBootloaderFormat;
use miette::Diagnostic;
use object::elf::{ET_DYN, ET_EXEC, ET_REL, SHF_ALLOC, SHF_EXECINSTR, SHT_INIT_ARRAY, SHT_NOBITS, SHT_PROGBITS};
use object::read::elf::{ElfFile32, SectionHeader as _};
use object::{Architecture, Endianness, FileKind, Object as _, ObjectSection as _, ObjectSymbol as _};
use sha2::{Digest as _, Sha256};

/// The SPI flash settings written into the image header: the bootloader sets the flash up
/// from them before it maps the app, so they must match the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlashSettings {
    pub mode: FlashMode,
    pub size: FlashSize,
    pub freq: FlashFreq,
}

/// Flash read mode, as esptool spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FlashMode {
    Qio,
    Qout,
    // Works on every board: what ESP-IDF and espflash default to.
    #[default]
    Dio,
    Dout,
}

/// Flash chip size, as esptool and profiles spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FlashSize {
    #[value(name = "1MB")]
    Mb1,
    #[value(name = "2MB")]
    Mb2,
    #[default]
    #[value(name = "4MB")]
    Mb4,
    #[value(name = "8MB")]
    Mb8,
    #[value(name = "16MB")]
    Mb16,
}

/// SPI flash clock; the four rates every chip otactl supports accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FlashFreq {
    #[value(name = "20m", alias = "20mhz")]
    Mhz20,
    #[value(name = "26m", alias = "26mhz")]
    Mhz26,
    #[default]
    #[value(name = "40m", alias = "40mhz")]
    Mhz40,
    #[value(name = "80m", alias = "80mhz")]
    Mhz80,
}

/// The name clap accepts, so that printed settings can be pasted back as arguments.
fn value_name(v: &impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

impl fmt::Display for FlashMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl fmt::Display for FlashFreq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl FlashSize {
    pub fn bytes(self) -> u32 {
        match self {
            FlashSize::Mb1 => 1 << 20,
            FlashSize::Mb2 => 2 << 20,
            FlashSize::Mb4 => 4 << 20,
            FlashSize::Mb8 => 8 << 20,
            FlashSize::Mb16 => 16 << 20,
        }
    }

    /// By byte count, so that a profile's size maps without naming every variant of its
    /// (non-exhaustive) enum.
    pub fn from_bytes(bytes: u32) -> Option<FlashSize> {
        [
            FlashSize::Mb1,
            FlashSize::Mb2,
            FlashSize::Mb4,
            FlashSize::Mb8,
            FlashSize::Mb16,
        ]
        .into_iter()
        .find(|s| s.bytes() == bytes)
    }
}

impl From<FlashMode> for EspflashMode {
    fn from(m: FlashMode) -> Self {
        match m {
            FlashMode::Qio => EspflashMode::Qio,
            FlashMode::Qout => EspflashMode::Qout,
            FlashMode::Dio => EspflashMode::Dio,
            FlashMode::Dout => EspflashMode::Dout,
        }
    }
}

impl From<FlashSize> for EspflashSize {
    fn from(s: FlashSize) -> Self {
        match s {
            FlashSize::Mb1 => EspflashSize::_1Mb,
            FlashSize::Mb2 => EspflashSize::_2Mb,
            FlashSize::Mb4 => EspflashSize::_4Mb,
            FlashSize::Mb8 => EspflashSize::_8Mb,
            FlashSize::Mb16 => EspflashSize::_16Mb,
        }
    }
}

impl From<FlashFreq> for FlashFrequency {
    fn from(f: FlashFreq) -> Self {
        match f {
            FlashFreq::Mhz20 => FlashFrequency::_20Mhz,
            FlashFreq::Mhz26 => FlashFrequency::_26Mhz,
            FlashFreq::Mhz40 => FlashFrequency::_40Mhz,
            FlashFreq::Mhz80 => FlashFrequency::_80Mhz,
        }
    }
}

/// Why an ELF did not become an acceptable app image. Every variant is about the ELF or the
/// image (a CLI maps them to "not acceptable"); reading and writing files is the caller's.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum ImageError {
    #[error("not an ELF file: {found}")]
    #[diagnostic(
        code(otactl::image::not_elf),
        help(
            "pass the firmware ELF the build linked (for cargo: target/<target>/release/<crate>, no extension), not the .bin, .hex or a source file"
        )
    )]
    NotElf { found: String },

    #[error("the ELF is {kind}, not a linked executable")]
    #[diagnostic(
        code(otactl::image::not_executable),
        help("pass the firmware binary the final link produced, not an object file or a library")
    )]
    NotExecutable { kind: String },

    #[error("the ELF is built for {found}, but {chip} runs {expected} code")]
    #[diagnostic(code(otactl::image::wrong_architecture))]
    WrongArchitecture {
        chip: Chip,
        found: String,
        expected: &'static str,
        #[help]
        help: String,
    },

    #[error("the ELF section `{section}` runs at {addr:#010x}, outside {chip}'s memory map")]
    #[diagnostic(code(otactl::image::wrong_chip))]
    OutsideChipMemory {
        chip: Chip,
        section: String,
        addr: u32,
        #[help]
        help: String,
    },

    #[error("the ELF has no ESP-IDF app descriptor: {reason}")]
    #[diagnostic(
        code(otactl::image::no_app_descriptor),
        help(
            "add `esp_bootloader_esp_idf::esp_app_desc!();` to the firmware (esp-hal), or build it with ESP-IDF, which adds one; devices and the bootloader read the app version and secure_version from it"
        )
    )]
    NoAppDescriptor { reason: String },

    #[error("the image is {size} bytes, {} more than {slot} holds ({limit} bytes)", size.saturating_sub(*limit))]
    #[diagnostic(
        code(otactl::image::too_big),
        help(
            "make the firmware smaller (opt-level = \"s\" or \"z\", lto = true, fewer features), or give the app slots more room in the profile's [slots]"
        )
    )]
    TooBig { size: u64, limit: u64, slot: String },

    #[error("the ELF is malformed: {reason}")]
    #[diagnostic(
        code(otactl::image::malformed_elf),
        help("the file is truncated or corrupt; rebuild the firmware")
    )]
    MalformedElf { reason: String },

    #[error("espflash could not make an app image from the ELF: {reason}")]
    #[diagnostic(code(otactl::image::espflash))]
    Espflash {
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("the image espflash made fails the device's checks: {0}")]
    #[diagnostic(
        code(otactl::image::rejected),
        help("a device would refuse this image; this is a bug in otactl or espflash, report it with the ELF")
    )]
    Rejected(ParseError),

    #[error("the image carries chip id {found}, but {chip} is chip id {expected}")]
    #[diagnostic(
        code(otactl::image::chip_id),
        help("a device would refuse this image; this is a bug in otactl or espflash, report it with the ELF")
    )]
    WrongChipId { chip: Chip, expected: u16, found: u16 },

    #[error("otactl cannot make images for {chip} yet")]
    #[diagnostic(
        code(otactl::image::unsupported_chip),
        help("use one of esp32, esp32s3, esp32c3, esp32c6")
    )]
    UnsupportedChip { chip: Chip },
}

/// One segment of the produced image, as the bootloader will load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSegment {
    pub load_addr: u32,
    pub len: u32,
    /// Where it loads (`DROM`, `IROM`, `DRAM`, …); `padding` for the filler segments that
    /// keep flash segments page-aligned.
    pub region: &'static str,
}

/// An app image and what a release, a CI log or a person needs to know about it.
#[derive(Debug, Clone)]
pub struct AppImageOut {
    /// The `.bin`: header, segments, checksum, appended SHA-256.
    pub bytes: Vec<u8>,
    pub chip: Chip,
    pub flash: FlashSettings,
    pub entry: u32,
    pub segments: Vec<ImageSegment>,
    /// The descriptor as the device reads it back from the image.
    pub app_desc: AppDesc,
    pub version: String,
    pub project: String,
    pub secure_version: u32,
    pub idf_ver: String,
    /// SHA-256 of `bytes`, as a release manifest states it.
    pub sha256: [u8; 32],
}

impl AppImageOut {
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Fails with [`ImageError::TooBig`] unless the image fits `limit` bytes; `slot` names
    /// the limit in the message (`"ota_0 of profiles/x.toml"`).
    pub fn check_fits(&self, limit: u64, slot: impl Into<String>) -> Result<(), ImageError> {
        if self.size() > limit {
            return Err(ImageError::TooBig {
                size: self.size(),
                limit,
                slot: slot.into(),
            });
        }
        Ok(())
    }
}

/// What a section is, by where it runs (see the module docs for the method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionClass {
    /// Initialised data in internal SRAM (copied there by the bootloader).
    Data,
    /// Zero-initialised data in internal SRAM.
    Bss,
    /// Code in internal SRAM.
    Iram,
    /// RTC / LP memory (code or data).
    Rtc,
    /// Code read through the flash cache.
    FlashCode,
    /// Read-only data read through the flash cache.
    FlashRodata,
    /// Uninitialised data in external PSRAM.
    Psram,
    /// The stack reservation or a placeholder: shown, not counted.
    NotCounted,
}

/// One allocated section and how it was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionUse {
    pub name: String,
    pub addr: u32,
    pub size: u32,
    pub class: SectionClass,
}

/// Static memory use of a firmware ELF (bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticRam {
    pub data: u64,
    pub bss: u64,
    pub iram: u64,
    pub rtc: u64,
    pub psram: u64,
    pub flash_code: u64,
    pub flash_rodata: u64,
    pub sections: Vec<SectionUse>,
}

impl StaticRam {
    /// Internal RAM taken before `main` runs: `.data` + `.bss` + IRAM code + RTC memory.
    pub fn total(&self) -> u64 {
        self.data + self.bss + self.iram + self.rtc
    }

    /// Flash the mapped code and read-only data take (the image adds headers and the
    /// RAM segments' initial contents).
    pub fn flash_mapped(&self) -> u64 {
        self.flash_code + self.flash_rodata
    }
}

/// Makes the app image for `chip` from a firmware ELF and checks it the way a device will.
pub fn elf_to_app_image(elf: &[u8], chip: Chip, flash: FlashSettings) -> Result<AppImageOut, ImageError> {
    let file = open_elf(elf, chip)?;
    let map = MemoryMap::of(chip)?;
    check_in_chip_memory(&file, chip, &map)?;
    check_app_descriptor(&file)?;

    let espflash_chip =
        espflash::target::Chip::from_str(chip.as_str()).map_err(|_| ImageError::UnsupportedChip { chip })?;
    let flash_data = FlashData::new(
        espflash::flasher::FlashSettings::new(
            Some(flash.mode.into()),
            Some(flash.size.into()),
            Some(flash.freq.into()),
        ),
        0,
        None,
        espflash_chip,
        espflash_chip.default_xtal_frequency(),
    );
    let idf = IdfBootloaderFormat::new(elf, &flash_data, None, None, None, None)
        .map_err(|e| espflash_error(e, flash.size))?;
    // The OTA segment is the app image alone, what `espflash save-image` writes without
    // `--merge`; the bootloader and partition table stay on the device.
    let bytes = match ImageFormat::from(idf).ota_segments().as_slice() {
        [app] => app.data().to_vec(),
        other => {
            return Err(ImageError::Espflash {
                reason: format!("expected one app segment, got {}", other.len()),
                help: None,
            });
        }
    };

    let parsed = AppImage::parse(&bytes).map_err(|e| match e {
        ParseError::NoAppDescriptor => ImageError::NoAppDescriptor {
            reason: "the descriptor is not at the start of the first flash segment, where the bootloader looks; \
                     the linker script must place it first in DROM"
                .into(),
        },
        e => ImageError::Rejected(e),
    })?;
    let expected = chip.image_chip_id();
    if parsed.header.chip_id != expected {
        return Err(ImageError::WrongChipId {
            chip,
            expected,
            found: parsed.header.chip_id,
        });
    }
    let segments = parsed
        .segments
        .iter()
        .map(|s| ImageSegment {
            load_addr: s.load_addr,
            len: s.len,
            region: map.region_name(s.load_addr),
        })
        .collect();
    let desc = parsed.app_desc;
    Ok(AppImageOut {
        sha256: Sha256::digest(&bytes).into(),
        bytes,
        chip,
        flash,
        entry: parsed.header.entry_addr,
        segments,
        version: desc_text(&desc, 16, 32),
        project: desc_text(&desc, 48, 32),
        secure_version: desc.secure_version(),
        idf_ver: desc_text(&desc, 112, 32),
        app_desc: desc,
    })
}

/// Static RAM and flash-mapped sizes of a firmware ELF for `chip` (method in the module
/// docs). The chip is needed because the same address is RAM on one chip and flash on
/// another (ESP32's IROM window covers the ESP32-S3's IRAM).
pub fn static_ram(elf: &[u8], chip: Chip) -> Result<StaticRam, ImageError> {
    let file = open_elf(elf, chip)?;
    let map = MemoryMap::of(chip)?;
    Ok(static_ram_of(&file, &map))
}

/// A descriptor string field; lossy rather than absent, so a bad byte still shows.
fn desc_text(desc: &AppDesc, at: usize, len: usize) -> String {
    let field = &desc.raw[at..at + len];
    let end = field.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Elf<'a> = ElfFile32<'a, Endianness>;

/// The instruction set a chip runs, and the Rust target its firmware is built for.
fn isa(chip: Chip) -> Result<(Architecture, &'static str, &'static str), ImageError> {
    Ok(match chip {
        Chip::Esp32 => (Architecture::Xtensa, "Xtensa", "xtensa-esp32-none-elf"),
        Chip::Esp32s3 => (Architecture::Xtensa, "Xtensa", "xtensa-esp32s3-none-elf"),
        Chip::Esp32c3 => (Architecture::Riscv32, "RISC-V (32-bit)", "riscv32imc-unknown-none-elf"),
        Chip::Esp32c6 => (Architecture::Riscv32, "RISC-V (32-bit)", "riscv32imac-unknown-none-elf"),
        _ => return Err(ImageError::UnsupportedChip { chip }),
    })
}

fn arch_name(arch: Architecture, bits: u8) -> String {
    let name = match arch {
        Architecture::Xtensa => "Xtensa",
        Architecture::Riscv32 | Architecture::Riscv64 => "RISC-V",
        Architecture::X86_64 | Architecture::X86_64_X32 => "x86-64",
        Architecture::I386 => "x86",
        Architecture::Aarch64 | Architecture::Aarch64_Ilp32 => "AArch64",
        Architecture::Arm => "ARM",
        Architecture::Unknown => "an unknown architecture",
        other => return format!("{other:?} ({bits}-bit)"),
    };
    format!("{name} ({bits}-bit)")
}

/// Parses `elf` and checks it is a linked 32-bit little-endian executable for `chip`'s ISA,
/// so that every later error is about the firmware, not about a wrong file.
fn open_elf(elf: &[u8], chip: Chip) -> Result<Elf<'_>, ImageError> {
    let (want, expected, target) = isa(chip)?;
    let kind = match FileKind::parse(elf) {
        Ok(kind) => kind,
        Err(_) => {
            return Err(ImageError::NotElf {
                found: describe_non_elf(elf),
            });
        }
    };
    let malformed = |e: object::Error| ImageError::MalformedElf { reason: e.to_string() };
    let wrong_arch = |found: String| ImageError::WrongArchitecture {
        chip,
        found,
        expected,
        help: format!(
            "build the firmware for {chip} (Rust target {target}), or pass the --chip or --profile the ELF was built for"
        ),
    };
    match kind {
        FileKind::Elf32 => {}
        FileKind::Elf64 => {
            let arch = object::File::parse(elf).map_err(malformed)?.architecture();
            return Err(wrong_arch(arch_name(arch, 64)));
        }
        other => {
            return Err(ImageError::NotElf {
                found: format!("it is a {other:?} file"),
            });
        }
    }
    let file = Elf::parse(elf).map_err(malformed)?;
    let endian = file.endian();
    let arch = file.architecture();
    if arch != want {
        return Err(wrong_arch(arch_name(arch, 32)));
    }
    if endian != Endianness::Little {
        return Err(wrong_arch(format!("{} big-endian", arch_name(arch, 32))));
    }
    let e_type = file.elf_header().e_type.get(endian);
    if e_type != ET_EXEC {
        let kind = match e_type {
            t if t == ET_REL => "a relocatable object (.o)".to_owned(),
            t if t == ET_DYN => "a shared object".to_owned(),
            t => format!("of ELF type {}", t.0),
        };
        return Err(ImageError::NotExecutable { kind });
    }
    Ok(file)
}

/// Names what a non-ELF file most likely is, so the message points at the mix-up.
fn describe_non_elf(bytes: &[u8]) -> String {
    match bytes {
        [] => "the file is empty".into(),
        [0xE9, ..] => "it starts with 0xE9, so it is probably already an ESP app image (.bin)".into(),
        [b':', ..] => "it looks like an Intel HEX file".into(),
        [0x7F, b'E', b'L', b'F', ..] => "its ELF header is truncated or corrupt".into(),
        b if b.len() < 4 => format!("the file is only {} bytes", b.len()),
        b => format!(
            "it starts with {:02x} {:02x} {:02x} {:02x}, not the ELF magic 7f 45 4c 46",
            b[0], b[1], b[2], b[3]
        ),
    }
}

/// Rejects an ELF linked for another chip of the same ISA (ESP32 vs ESP32-S3, C3 vs C6):
/// espflash would turn its sections into segments the bootloader cannot load.
fn check_in_chip_memory(file: &Elf<'_>, chip: Chip, map: &MemoryMap) -> Result<(), ImageError> {
    let endian = file.endian();
    for section in file.sections() {
        let header = section.elf_section_header();
        let sh_type = header.sh_type(endian);
        let loaded = (sh_type == SHT_PROGBITS || sh_type == SHT_INIT_ARRAY)
            && header.sh_flags(endian).contains(SHF_ALLOC)
            && section.address() != 0
            && section.size() != 0;
        if loaded && map.region(section.address() as u32).is_none() {
            return Err(ImageError::OutsideChipMemory {
                chip,
                section: section.name().unwrap_or("?").to_owned(),
                addr: section.address() as u32,
                help: format!(
                    "the ELF was linked for another chip: build it for {chip}, or pass the --chip or --profile it was built for"
                ),
            });
        }
    }
    Ok(())
}

/// Finds the descriptor where espflash and the ESP-IDF tools look for it (the
/// `esp_app_desc` symbol, else the `.flash.appdesc` / `.rodata_desc` section) and checks its
/// magic, so a firmware without one fails with what to add rather than a parse error.
fn check_app_descriptor(file: &Elf<'_>) -> Result<(), ImageError> {
    let addr = file
        .symbols()
        .find(|s| s.name() == Ok("esp_app_desc"))
        .map(|s| s.address())
        .or_else(|| {
            [".flash.appdesc", ".rodata_desc"]
                .into_iter()
                .find_map(|name| file.section_by_name(name))
                .map(|s| s.address())
        });
    let Some(addr) = addr else {
        return Err(ImageError::NoAppDescriptor {
            reason: "no `esp_app_desc` symbol and no .flash.appdesc or .rodata_desc section".into(),
        });
    };
    let magic = file
        .sections()
        .find_map(|s| s.data_range(addr, 4).ok().flatten())
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match magic {
        Some(device_fw::esp::image::APP_DESC_MAGIC) => Ok(()),
        Some(found) => Err(ImageError::NoAppDescriptor {
            reason: format!("the descriptor at {addr:#010x} starts with {found:#010x}, not the magic 0xabcd5432"),
        }),
        None => Err(ImageError::NoAppDescriptor {
            reason: format!("the descriptor's address {addr:#010x} is in no section with data"),
        }),
    }
}

fn static_ram_of(file: &Elf<'_>, map: &MemoryMap) -> StaticRam {
    let endian = file.endian();
    let mut ram = StaticRam::default();
    for section in file.sections() {
        let header = section.elf_section_header();
        let flags = header.sh_flags(endian);
        let size = header.sh_size(endian);
        if !flags.contains(SHF_ALLOC) || size == 0 {
            continue;
        }
        let addr = header.sh_addr(endian);
        let name = section.name().unwrap_or("?").to_owned();
        let exec = flags.contains(SHF_EXECINSTR);
        let nobits = header.sh_type(endian) == SHT_NOBITS;
        let Some(region) = map.region(addr) else {
            continue;
        };
        let class = if name == ".stack" || name.starts_with(".stack.") || name.contains("dummy") {
            SectionClass::NotCounted
        } else {
            match region {
                Region::Drom | Region::Irom | Region::Flash if nobits => SectionClass::Psram,
                Region::Drom | Region::Irom | Region::Flash if exec => SectionClass::FlashCode,
                Region::Drom | Region::Irom | Region::Flash => SectionClass::FlashRodata,
                Region::Psram => SectionClass::Psram,
                Region::Rtc => SectionClass::Rtc,
                Region::Dram | Region::Iram | Region::Sram if exec => SectionClass::Iram,
                Region::Dram | Region::Iram | Region::Sram if nobits => SectionClass::Bss,
                Region::Dram | Region::Iram | Region::Sram => SectionClass::Data,
            }
        };
        let n = u64::from(size);
        match class {
            SectionClass::Data => ram.data += n,
            SectionClass::Bss => ram.bss += n,
            SectionClass::Iram => ram.iram += n,
            SectionClass::Rtc => ram.rtc += n,
            SectionClass::FlashCode => ram.flash_code += n,
            SectionClass::FlashRodata => ram.flash_rodata += n,
            SectionClass::Psram => ram.psram += n,
            SectionClass::NotCounted => {}
        }
        ram.sections.push(SectionUse {
            name,
            addr,
            size,
            class,
        });
    }
    ram
}

/// Turns espflash's errors into ours where otactl knows better what to say; the rest keep
/// espflash's message and help.
fn espflash_error(e: espflash::Error, flash: FlashSize) -> ImageError {
    match e {
        espflash::Error::ElfTooBig(size, limit) => ImageError::TooBig {
            size: size.into(),
            limit: limit.into(),
            slot: format!("a {flash} flash after the bootloader and partition table"),
        },
        espflash::Error::InvalidElf(source) => ImageError::MalformedElf {
            reason: source.to_string(),
        },
        e => {
            let help = e.help().map(|h| h.to_string());
            let reason = crate::error_text::error_chain(&e);
            ImageError::Espflash { reason, help }
        }
    }
}

/// Kinds of address ranges in a chip's memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// Flash-mapped read-only data.
    Drom,
    /// Flash-mapped code.
    Irom,
    /// One flash window for both (ESP32-C6).
    Flash,
    Dram,
    Iram,
    /// One SRAM address range for code and data (ESP32-C6).
    Sram,
    Rtc,
    Psram,
}

/// Address ranges from ESP-IDF `components/soc/<chip>/include/soc/soc.h` (`SOC_DROM_*`,
/// `SOC_IROM_*`, `SOC_DRAM_*`, `SOC_IRAM_*`, `SOC_RTC_*`, `SOC_EXTRAM_DATA_*`).
#[derive(Debug)]
struct MemoryMap(&'static [(Range<u32>, Region)]);

const ESP32_MAP: &[(Range<u32>, Region)] = &[
    (0x3F40_0000..0x3F80_0000, Region::Drom),
    (0x400D_0000..0x4040_0000, Region::Irom),
    (0x3FFA_E000..0x4000_0000, Region::Dram),
    (0x4007_0000..0x400A_0000, Region::Iram),
    (0x3FF8_0000..0x3FF8_2000, Region::Rtc),
    (0x400C_0000..0x400C_2000, Region::Rtc),
    (0x5000_0000..0x5000_2000, Region::Rtc),
    (0x3F80_0000..0x3FC0_0000, Region::Psram),
];

const ESP32S3_MAP: &[(Range<u32>, Region)] = &[
    (0x3C00_0000..0x3E00_0000, Region::Drom),
    (0x4200_0000..0x4400_0000, Region::Irom),
    (0x3FC8_8000..0x3FD0_0000, Region::Dram),
    (0x4037_0000..0x403E_0000, Region::Iram),
    (0x600F_E000..0x6010_0000, Region::Rtc),
    (0x5000_0000..0x5000_2000, Region::Rtc),
];

const ESP32C3_MAP: &[(Range<u32>, Region)] = &[
    (0x3C00_0000..0x3C80_0000, Region::Drom),
    (0x4200_0000..0x4280_0000, Region::Irom),
    (0x3FC8_0000..0x3FCE_0000, Region::Dram),
    (0x4037_C000..0x403E_0000, Region::Iram),
    (0x5000_0000..0x5000_2000, Region::Rtc),
];

const ESP32C6_MAP: &[(Range<u32>, Region)] = &[
    (0x4200_0000..0x4300_0000, Region::Flash),
    (0x4080_0000..0x4088_0000, Region::Sram),
    (0x5000_0000..0x5000_4000, Region::Rtc),
];

impl MemoryMap {
    fn of(chip: Chip) -> Result<MemoryMap, ImageError> {
        Ok(MemoryMap(match chip {
            Chip::Esp32 => ESP32_MAP,
            Chip::Esp32s3 => ESP32S3_MAP,
            Chip::Esp32c3 => ESP32C3_MAP,
            Chip::Esp32c6 => ESP32C6_MAP,
            _ => return Err(ImageError::UnsupportedChip { chip }),
        }))
    }

    fn region(&self, addr: u32) -> Option<Region> {
        self.0
            .iter()
            .find(|(r, _)| r.contains(&addr))
            .map(|&(_, region)| region)
    }

    fn region_name(&self, addr: u32) -> &'static str {
        match self.region(addr) {
            _ if addr == 0 => "padding",
            Some(Region::Drom) => "DROM",
            Some(Region::Irom) => "IROM",
            Some(Region::Flash) => "flash",
            Some(Region::Dram) => "DRAM",
            Some(Region::Iram) => "IRAM",
            Some(Region::Sram) => "SRAM",
            Some(Region::Rtc) => "RTC",
            Some(Region::Psram) => "PSRAM",
            None => "unknown",
        }
    }
}
