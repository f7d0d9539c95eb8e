//! `otactl image`, run as CI runs it: the real binary on firmware ELFs made here with the
//! `object` writer (no firmware is built in this repository yet), laid out the way esp-hal
//! and ESP-IDF link them: app descriptor first in DROM, code in IROM, data and bss in RAM.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use device_fw::esp::image::{APP_DESC_LEN, AppImage, CHIP_ESP32, CHIP_ESP32C3, HASH_LEN, build_test_image};
use object::Endianness;
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, SectionIndex, Sym, Writer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

fn otactl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otactl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run otactl")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// An `esp_app_desc_t` as the firmware's build writes it.
fn app_desc(version: &str, project: &str, secure_version: u32) -> Vec<u8> {
    device_fw::esp::image::build_test_app_desc(version, project, secure_version).to_vec()
}

#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// `SHT_NOBITS` of this many bytes.
    Zeroed(u32),
}

#[derive(Clone)]
struct Section {
    name: &'static str,
    addr: u32,
    flags: u32,
    body: Body,
}

/// A firmware ELF to write: header fields, sections, and optionally the `esp_app_desc`
/// symbol (esp-hal's macro exports one; stripped builds and ESP-IDF may only have the
/// section).
#[derive(Clone)]
struct Firmware {
    machine: elf::Machine,
    is_64: bool,
    e_type: elf::FileType,
    entry: u32,
    sections: Vec<Section>,
    desc_symbol: Option<u32>,
}

const RODATA: u32 = elf::SHF_ALLOC.0 as u32;
const TEXT: u32 = (elf::SHF_ALLOC.0 | elf::SHF_EXECINSTR.0) as u32;
const DATA: u32 = (elf::SHF_ALLOC.0 | elf::SHF_WRITE.0) as u32;

const DATA_LEN: u32 = 100;
const BSS_LEN: u32 = 4000;
const STACK_LEN: u32 = 0x8000;
const RWTEXT_LEN: u32 = 256;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An esp-hal style ESP32-C3 firmware: `.rodata_desc` at the start of DROM, `.text` in
/// IROM, `.rwtext` in IRAM with `.rwdata_dummy` covering its alias on the data bus,
/// `.data`/`.bss` in DRAM after it, and the linker's `.stack` reservation after them.
fn c3_firmware(version: &str) -> Firmware {
    Firmware {
        machine: elf::EM_RISCV,
        is_64: false,
        e_type: elf::ET_EXEC,
        entry: 0x4200_0020,
        sections: vec![
            Section {
                name: ".rodata_desc",
                addr: 0x3C00_0020,
                flags: RODATA,
                body: Body::Bytes(app_desc(version, "c3-logger", 3)),
            },
            Section {
                name: ".rodata",
                addr: 0x3C00_0120,
                flags: RODATA,
                body: Body::Bytes(pattern(600, 1)),
            },
            Section {
                name: ".text",
                addr: 0x4200_0020,
                flags: TEXT,
                body: Body::Bytes(pattern(2000, 2)),
            },
            Section {
                name: ".rwtext",
                addr: 0x4038_0000,
                flags: TEXT,
                body: Body::Bytes(pattern(RWTEXT_LEN as usize, 8)),
            },
            Section {
                name: ".rwdata_dummy",
                addr: 0x3FC8_0000,
                flags: DATA,
                body: Body::Zeroed(RWTEXT_LEN),
            },
            Section {
                name: ".data",
                addr: 0x3FC8_0000 + RWTEXT_LEN,
                flags: DATA,
                body: Body::Bytes(pattern(DATA_LEN as usize, 3)),
            },
            Section {
                name: ".bss",
                addr: 0x3FC8_0000 + RWTEXT_LEN + DATA_LEN.next_multiple_of(4),
                flags: DATA,
                body: Body::Zeroed(BSS_LEN),
            },
            Section {
                name: ".stack",
                addr: 0x3FCD_0000,
                flags: DATA,
                body: Body::Zeroed(STACK_LEN),
            },
        ],
        desc_symbol: Some(0x3C00_0020),
    }
}

const IRAM_LEN: u32 = 512;
const RTC_LEN: u32 = 16;

/// An ESP-IDF style ESP32 firmware: `.flash.appdesc` (no symbol), `.flash.rodata`, IRAM
/// code, `.flash.text`, `.dram0.data`/`.dram0.bss`, RTC slow memory data.
fn esp32_firmware(version: &str) -> Firmware {
    Firmware {
        machine: elf::EM_XTENSA,
        is_64: false,
        e_type: elf::ET_EXEC,
        entry: 0x4008_0400,
        sections: vec![
            Section {
                name: ".flash.appdesc",
                addr: 0x3F40_0020,
                flags: RODATA,
                body: Body::Bytes(app_desc(version, "field-logger", 0)),
            },
            Section {
                name: ".flash.rodata",
                addr: 0x3F40_0120,
                flags: RODATA,
                body: Body::Bytes(pattern(1000, 4)),
            },
            Section {
                name: ".iram0.text",
                addr: 0x4008_0000,
                flags: TEXT,
                body: Body::Bytes(pattern(IRAM_LEN as usize, 5)),
            },
            Section {
                name: ".flash.text",
                addr: 0x400D_0020,
                flags: TEXT,
                body: Body::Bytes(pattern(3000, 6)),
            },
            Section {
                name: ".dram0.data",
                addr: 0x3FFB_0000,
                flags: DATA,
                body: Body::Bytes(pattern(DATA_LEN as usize, 7)),
            },
            Section {
                name: ".dram0.bss",
                addr: 0x3FFB_0000 + DATA_LEN.next_multiple_of(4),
                flags: DATA,
                body: Body::Zeroed(BSS_LEN),
            },
            Section {
                name: ".rtc.data",
                addr: 0x5000_0000,
                flags: DATA,
                body: Body::Bytes(pattern(RTC_LEN as usize, 9)),
            },
        ],
        desc_symbol: None,
    }
}

impl Firmware {
    /// The ELF: header, one `PT_LOAD` per allocated section, section data, symbol table.
    fn write(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = Writer::new(Endianness::Little, self.is_64, &mut buf);
        w.reserve_file_header();
        w.reserve_program_headers(self.sections.len() as u32);
        let offsets: Vec<u64> = self
            .sections
            .iter()
            .map(|s| match &s.body {
                Body::Bytes(b) => w.reserve(b.len() as u64, 4),
                Body::Zeroed(_) => w.reserved_len(),
            })
            .collect();
        let names: Vec<_> = self
            .sections
            .iter()
            .map(|s| w.add_section_name(s.name.as_bytes()))
            .collect();
        let indices: Vec<SectionIndex> = self.sections.iter().map(|_| w.reserve_section_index()).collect();
        let desc_section = self.desc_symbol.map(|addr| {
            indices[self
                .sections
                .iter()
                .position(|s| s.addr == addr)
                .expect("the descriptor symbol is in a section")]
        });
        let symbol_name = w.add_string(b"esp_app_desc");
        w.reserve_null_symbol_index();
        if self.desc_symbol.is_some() {
            w.reserve_symbol_index(desc_section);
        }
        w.reserve_symtab_section_index();
        w.reserve_symtab();
        w.reserve_strtab_section_index();
        w.reserve_strtab().unwrap();
        w.reserve_shstrtab_section_index();
        w.reserve_shstrtab().unwrap();
        w.reserve_section_headers();

        w.write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            e_type: self.e_type,
            e_machine: self.machine,
            e_entry: self.entry.into(),
            e_flags: elf::FileFlags(0),
        })
        .unwrap();
        w.write_align_program_headers();
        for (s, &offset) in self.sections.iter().zip(&offsets) {
            let (filesz, memsz) = match &s.body {
                Body::Bytes(b) => (b.len() as u64, b.len() as u64),
                Body::Zeroed(n) => (0, u64::from(*n)),
            };
            let mut p_flags = elf::PF_R;
            if s.flags & DATA == DATA {
                p_flags |= elf::PF_W;
            }
            if s.flags & TEXT == TEXT {
                p_flags |= elf::PF_X;
            }
            w.write_program_header(&ProgramHeader {
                p_type: elf::PT_LOAD,
                p_flags,
                p_offset: offset,
                p_vaddr: s.addr.into(),
                p_paddr: s.addr.into(),
                p_filesz: filesz,
                p_memsz: memsz,
                p_align: 4,
            });
        }
        for s in &self.sections {
            if let Body::Bytes(b) = &s.body {
                w.write_align(4);
                w.write(b);
            }
        }
        w.write_null_symbol();
        if let Some(addr) = self.desc_symbol {
            w.write_symbol(&Sym {
                section: desc_section.map(|i| i.0),
                st_name: w.string_offset(Some(symbol_name)),
                st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_OBJECT),
                st_other: elf::SymbolOther(0),
                st_shndx: elf::SymbolSection(0),
                st_value: addr.into(),
                st_size: APP_DESC_LEN as u64,
            });
        }
        w.write_strtab();
        w.write_shstrtab();
        w.write_null_section_header();
        for ((s, &offset), name) in self.sections.iter().zip(&offsets).zip(&names) {
            let (sh_type, size) = match &s.body {
                Body::Bytes(b) => (elf::SHT_PROGBITS, b.len() as u64),
                Body::Zeroed(n) => (elf::SHT_NOBITS, u64::from(*n)),
            };
            w.write_section_header(&SectionHeader {
                sh_name: w.section_name_offset(Some(*name)),
                sh_type,
                sh_flags: elf::SectionFlags(s.flags.into()),
                sh_addr: s.addr.into(),
                sh_offset: offset,
                sh_size: size,
                sh_link: 0,
                sh_info: 0,
                sh_addralign: 4,
                sh_entsize: 0,
            });
        }
        w.write_symtab_section_header(1);
        w.write_strtab_section_header();
        w.write_shstrtab_section_header();
        buf
    }
}

/// A profile for `chip` with `flash` size; `slots` replaces the default `[slots]`.
fn profile(dir: &Path, name: &str, chip: &str, flash: &str, slots: Option<&str>) -> String {
    let file = format!("{name}.toml");
    let mut text = format!(
        "[device]\nproduct = \"field-logger\"\nchip = \"{chip}\"\nboard = \"test-board\"\n\n\
         [modem]\ndialect = \"sim7600\"\nbaud = 115200\napn = \"internet\"\n\n\
         [flash]\nsize = \"{flash}\"\n"
    );
    if let Some(slots) = slots {
        text.push_str("\n[slots]\n");
        text.push_str(slots);
    }
    fs::write(dir.join(&file), text).unwrap();
    file
}

/// How to run esptool here: the `esptool` script, or the package through `python3 -m` when
/// pip put the script off PATH (`pip install --user`). `None` when esptool is not installed.
fn esptool() -> Option<Command> {
    let candidates: [&[&str]; 2] = [&["esptool"], &["python3", "-m", "esptool"]];
    candidates.into_iter().find_map(|argv| {
        let works = Command::new(argv[0])
            .args(&argv[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        works.then(|| {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]);
            cmd
        })
    })
}

/// Runs `esptool image-info` on the image when esptool is installed (CI installs it with
/// `.ci/esptool`), so the image is checked by Espressif's own reader too; on a machine
/// without it the check is skipped and says so, and fails when `CI` is set.
fn esptool_accepts(chip: &str, image: &Path) {
    let Some(mut esptool) = esptool() else {
        sim::required_tool::missing("esptool image-info", "esptool", ".ci/esptool installs it");
        return;
    };
    let out = esptool
        .args(["--chip", chip, "image-info"])
        .arg(image)
        .output()
        .expect("run esptool");
    let report = text(&out);
    assert!(out.status.success(), "esptool image-info rejected the image:\n{report}");
    eprintln!("{report}");
    let lower = report.to_lowercase();
    assert!(lower.contains("checksum") && lower.contains("(valid)"), "{report}");
    assert!(!lower.contains("invalid"), "{report}");
}

#[test]
fn c3_elf_becomes_an_image_the_device_accepts() {
    let dir = TempDir::new().unwrap();
    let elf = c3_firmware("1.4.2").write();
    fs::write(dir.path().join("firmware"), &elf).unwrap();

    let out = otactl(
        dir.path(),
        &["image", "--elf", "firmware", "--chip", "esp32c3", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["image"], "firmware.bin", "the image goes next to the ELF");
    assert_eq!(report["chip"], "esp32c3");
    assert_eq!(report["chip_id"], CHIP_ESP32C3);
    assert_eq!(report["version"], "1.4.2");
    assert_eq!(report["project"], "c3-logger");
    assert_eq!(report["secure_version"], 3);
    assert_eq!(report["entry"], "0x42000020");
    assert_eq!(report["flash"]["mode"], "dio");
    assert_eq!(report["flash"]["size"], "4MB");
    assert_eq!(report["flash"]["freq"], "40m");

    // Static RAM is what was put in .data, .bss and IRAM; the stack reservation and the
    // data-bus alias of IRAM are not counted.
    let ram = &report["static_ram"];
    assert_eq!(ram["data"], DATA_LEN, "{ram}");
    assert_eq!(ram["bss"], BSS_LEN, "{ram}");
    assert_eq!(ram["iram"], RWTEXT_LEN, "{ram}");
    assert_eq!(ram["rtc"], 0, "{ram}");
    assert_eq!(ram["total"], DATA_LEN + BSS_LEN + RWTEXT_LEN, "{ram}");
    assert_eq!(ram["flash_code"], 2000);
    assert_eq!(ram["flash_rodata"], 256 + 600);
    let sections = ram["sections"].as_array().unwrap();
    for name in [".stack", ".rwdata_dummy"] {
        let section = sections.iter().find(|s| s["name"] == name).unwrap();
        assert_eq!(section["class"], "not_counted", "{section}");
    }

    let image = fs::read(dir.path().join("firmware.bin")).unwrap();
    assert_eq!(report["size"], image.len());
    assert_eq!(report["sha256"], hex(&Sha256::digest(&image)));

    // The device's own parser: checksum, appended SHA-256, descriptor, chip.
    let parsed = AppImage::parse(&image).unwrap();
    assert_eq!(parsed.len, image.len(), "nothing after the hash");
    parsed.check_chip(CHIP_ESP32C3).unwrap();
    assert!(parsed.header.hash_appended);
    let hash = parsed.hash.expect("SHA-256 appended");
    assert_eq!(hash[..], Sha256::digest(&image[..image.len() - HASH_LEN])[..]);
    assert_eq!(parsed.app_desc.version(), Some("1.4.2"));
    assert_eq!(parsed.app_desc.project_name(), Some("c3-logger"));
    assert_eq!(parsed.app_desc.secure_version(), 3);
    // espflash records the ELF's hash only in ESP-IDF's `.flash.appdesc`; esp-hal's
    // `.rodata_desc` keeps the zeros the firmware put there.
    assert_eq!(parsed.app_desc.app_elf_sha256(), [0; 32]);
    assert_eq!(report["app_elf_sha256"], Value::Null);
    // Header: DIO, 4 MB at 40 MHz.
    assert_eq!(image[2], 2);
    assert_eq!(image[3], 0x20);
    // Segments: the descriptor's DROM segment first, where the bootloader looks.
    let segments = report["segments"].as_array().unwrap();
    assert_eq!(segments.len(), parsed.segments.len());
    assert_eq!(segments[0]["load_addr"], "0x3c000020");
    assert_eq!(segments[0]["region"], "DROM");
    assert!(segments.iter().any(|s| s["region"] == "IROM"), "{segments:?}");
    assert!(segments.iter().any(|s| s["region"] == "DRAM"), "{segments:?}");

    esptool_accepts("esp32c3", &dir.path().join("firmware.bin"));
}

#[test]
fn esp32_elf_with_a_profile_and_flash_settings() {
    let dir = TempDir::new().unwrap();
    let elf = esp32_firmware("2.0.0-rc.1").write();
    fs::create_dir(dir.path().join("build")).unwrap();
    fs::write(dir.path().join("build/app.elf"), &elf).unwrap();
    let profile = profile(dir.path(), "m5", "esp32", "8MB", None);

    let out = otactl(
        dir.path(),
        &[
            "image",
            "--elf",
            "build/app.elf",
            "--profile",
            &profile,
            "--flash-mode",
            "qio",
            "--flash-freq",
            "80m",
            "--out",
            "build/release.bin",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = text(&out);
    for expected in [
        "build/release.bin",
        "field-logger 2.0.0-rc.1",
        "esp32 (chip id 0)",
        "qio, 8MB, 80m",
        &format!("static RAM  {} bytes", DATA_LEN + BSS_LEN + IRAM_LEN + RTC_LEN),
        &format!(".data {DATA_LEN}, .bss {BSS_LEN}, IRAM code {IRAM_LEN}, RTC {RTC_LEN}"),
        "OTA slot ota_0 of m5.toml: 1966080 bytes",
        "fits",
    ] {
        assert!(report.contains(expected), "missing `{expected}`:\n{report}");
    }
    assert!(
        !dir.path().join("build/app.bin").exists(),
        "--out is where the image goes"
    );

    let image = fs::read(dir.path().join("build/release.bin")).unwrap();
    let parsed = AppImage::parse(&image).unwrap();
    parsed.check_chip(CHIP_ESP32).unwrap();
    assert_eq!(parsed.app_desc.version(), Some("2.0.0-rc.1"));
    assert_eq!(parsed.header.entry_addr, 0x4008_0400);
    assert_eq!(parsed.app_desc.app_elf_sha256()[..], Sha256::digest(&elf)[..]);
    assert!(report.contains(&hex(&Sha256::digest(&elf))), "{report}");
    assert_eq!(parsed.segments[0].load_addr, 0x3F40_0020);
    // QIO; 8 MB (3) at 80 MHz (0xF).
    assert_eq!(image[2], 0);
    assert_eq!(image[3], 0x3F);

    esptool_accepts("esp32", &dir.path().join("build/release.bin"));
}

#[test]
fn an_image_bigger_than_the_slot_is_refused() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("fw"), c3_firmware("1.0.0").write()).unwrap();
    // 64 KiB app slots; the image is larger (its IROM segment starts past 64 KiB).
    let slots = "nvs = { offset = 0x9000, size = 0x4000 }\n\
                 otadata = { offset = 0xD000, size = 0x2000 }\n\
                 phy_init = { offset = 0xF000, size = 0x1000 }\n\
                 ota_0 = { offset = 0x10000, size = 0x10000 }\n\
                 ota_1 = { offset = 0x20000, size = 0x10000 }\n\
                 otastate = { offset = 0x30000, size = 0x4000 }\n";
    let profile = profile(dir.path(), "tiny", "esp32c3", "4MB", Some(slots));

    let out = otactl(dir.path(), &["image", "--elf", "fw", "--profile", &profile]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("DOES NOT FIT"), "{report}");
    assert!(report.contains("too_big"), "{report}");
    assert!(
        !dir.path().join("fw.bin").exists(),
        "an image a device refuses is not written"
    );
    let out = otactl(dir.path(), &["image", "--elf", "fw", "--profile", &profile, "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("more than OTA slot ota_0 of tiny.toml holds (65536 bytes)"),
        "{error}"
    );
    assert!(
        report["help"].as_str().unwrap().contains("[slots]"),
        "the help says what to change: {report}"
    );

    let out = otactl(
        dir.path(),
        &[
            "image",
            "--elf",
            "fw",
            "--chip",
            "esp32c3",
            "--max-size",
            "64K",
            "--json",
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["image"], Value::Null);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("more than --max-size holds (65536 bytes)"), "{error}");
    assert!(report["size"].as_u64().unwrap() > 65536);
    assert_eq!(report["limits"][0]["fits"], false);
    assert!(report["help"].as_str().unwrap().contains("smaller"), "{report}");

    // The same image under a limit it fits.
    let out = otactl(
        dir.path(),
        &["image", "--elf", "fw", "--chip", "esp32c3", "--max-size", "0x20000"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn an_elf_for_another_architecture_is_refused() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("xtensa"), esp32_firmware("1.0.0").write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "xtensa", "--chip", "esp32c3"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("wrong_architecture"), "{}", text(&out));
    let out = otactl(dir.path(), &["image", "--elf", "xtensa", "--chip", "esp32c3", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["error"],
        "the ELF is built for Xtensa (32-bit), but esp32c3 runs RISC-V (32-bit) code"
    );
    assert!(
        report["help"].as_str().unwrap().contains("riscv32imc-unknown-none-elf"),
        "{report}"
    );

    // A host binary, 64-bit.
    let host = Firmware {
        machine: elf::EM_X86_64,
        is_64: true,
        ..c3_firmware("1.0.0")
    };
    fs::write(dir.path().join("host"), host.write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "host", "--chip", "esp32", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let error = json(&out)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("built for x86-64 (64-bit), but esp32 runs Xtensa"),
        "{error}"
    );

    // Right ISA, other chip: an ESP32-C3 ELF does not fit the ESP32-C6's memory map.
    fs::write(dir.path().join("c3"), c3_firmware("1.0.0").write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "c3", "--chip", "esp32c6", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("outside esp32c6's memory map"),
        "{report}"
    );
    assert!(
        report["help"].as_str().unwrap().contains("linked for another chip"),
        "{report}"
    );

    // A relocatable object is not a firmware.
    let object = Firmware {
        e_type: elf::ET_REL,
        ..c3_firmware("1.0.0")
    };
    fs::write(dir.path().join("main.o"), object.write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "main.o", "--chip", "esp32c3", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_eq!(
        json(&out)["error"],
        "the ELF is a relocatable object (.o), not a linked executable"
    );
}

#[test]
fn a_file_that_is_not_an_elf_is_refused() {
    let dir = TempDir::new().unwrap();
    fs::write(
        dir.path().join("notes.txt"),
        "these are not the bytes you are looking for\n",
    )
    .unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "notes.txt", "--chip", "esp32c3"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("not an ELF file"), "{}", text(&out));
    let out = otactl(
        dir.path(),
        &["image", "--elf", "notes.txt", "--chip", "esp32c3", "--json"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["error"],
        "not an ELF file: it starts with 74 68 65 73, not the ELF magic 7f 45 4c 46"
    );
    assert!(
        report["help"].as_str().unwrap().contains("not the .bin"),
        "the help names the usual mix-up: {report}"
    );

    // An app image passed where the ELF belongs.
    fs::write(
        dir.path().join("app.bin"),
        build_test_image(CHIP_ESP32C3, "1.0.0", "x", b"payload"),
    )
    .unwrap();
    let out = otactl(
        dir.path(),
        &[
            "image",
            "--elf",
            "app.bin",
            "--chip",
            "esp32c3",
            "--out",
            "again.bin",
            "--json",
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("already an ESP app image"),
        "{}",
        text(&out)
    );

    fs::write(dir.path().join("empty"), b"").unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "empty", "--chip", "esp32c3", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        json(&out)["error"].as_str().unwrap().contains("empty"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_elf_without_an_app_descriptor_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut fw = c3_firmware("1.0.0");
    fw.sections.remove(0);
    fw.desc_symbol = None;
    fs::write(dir.path().join("fw"), fw.write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "fw", "--chip", "esp32c3"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("no_app_descriptor"), "{}", text(&out));
    let out = otactl(dir.path(), &["image", "--elf", "fw", "--chip", "esp32c3", "--json"]);
    let report = json(&out);
    assert_eq!(
        report["error"],
        "the ELF has no ESP-IDF app descriptor: no `esp_app_desc` symbol and no .flash.appdesc or .rodata_desc section"
    );
    assert!(
        report["help"]
            .as_str()
            .unwrap()
            .contains("add `esp_bootloader_esp_idf::esp_app_desc!();`"),
        "{report}"
    );

    // A descriptor section without the magic (a wrong linker script, a zeroed struct).
    let mut fw = c3_firmware("1.0.0");
    fw.sections[0].body = Body::Bytes(vec![0; APP_DESC_LEN]);
    fs::write(dir.path().join("zeroed"), fw.write()).unwrap();
    let out = otactl(dir.path(), &["image", "--elf", "zeroed", "--chip", "esp32c3", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert!(
        report["error"].as_str().unwrap().contains("not the magic 0xabcd5432"),
        "{report}"
    );
    assert!(report["help"].as_str().unwrap().contains("esp_app_desc!()"), "{report}");
}

#[test]
fn usage_and_io_problems_exit_2() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("fw"), c3_firmware("1.0.0").write()).unwrap();
    let profile = profile(dir.path(), "p", "esp32c3", "4MB", None);

    // Neither --chip nor --profile; both; an unknown chip; --flash-size against the profile.
    for args in [
        &["image", "--elf", "fw"][..],
        &["image", "--elf", "fw", "--chip", "esp32c3", "--profile", &profile],
        &["image", "--elf", "fw", "--chip", "esp8266"],
        &["image", "--elf", "fw", "--profile", &profile, "--flash-size", "8MB"],
        &["image", "--elf", "fw", "--chip", "esp32c3", "--max-size", "lots"],
    ] {
        let out = otactl(dir.path(), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
    }

    let out = otactl(
        dir.path(),
        &["image", "--elf", "missing", "--chip", "esp32c3", "--json"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the ELF missing"),
        "{}",
        text(&out)
    );

    let out = otactl(dir.path(), &["image", "--elf", "fw", "--profile", "nope.toml"]);
    assert_eq!(code(&out), 2, "{}", text(&out));

    let out = otactl(
        dir.path(),
        &[
            "image",
            "--elf",
            "fw",
            "--chip",
            "esp32c3",
            "--out",
            "no/such/dir/fw.bin",
            "--json",
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        json(&out)["error"].as_str().unwrap().contains("cannot write the image"),
        "{}",
        text(&out)
    );

    let out = otactl(
        dir.path(),
        &["image", "--elf", "fw", "--chip", "esp32c3", "--out", "fw", "--json"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        json(&out)["error"].as_str().unwrap().contains("is the ELF itself"),
        "{}",
        text(&out)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
