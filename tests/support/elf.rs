//! A minimal esp-hal style ESP32-C3 firmware ELF, written with the `object` crate: the app
//! descriptor first in DROM (with its `esp_app_desc` symbol), code in IROM. Enough for the
//! espflash library to make an app image a device accepts.

use device_fw::esp::image::APP_DESC_LEN;
use object::Endianness;
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, Sym, Writer};

/// An `esp_app_desc_t` as the firmware's build writes it.
fn app_desc(version: &str, project: &str, secure_version: u32) -> Vec<u8> {
    device_fw::esp::image::build_test_app_desc(version, project, secure_version).to_vec()
}

/// The ELF of an ESP32-C3 firmware at `version`; `with_descriptor: false` leaves the app
/// descriptor out, as a firmware without `esp_app_desc!()` is linked.
pub fn c3_firmware(version: &str, with_descriptor: bool) -> Vec<u8> {
    let rodata = elf::SHF_ALLOC.0;
    let text = elf::SHF_ALLOC.0 | elf::SHF_EXECINSTR.0;
    let mut sections: Vec<(&[u8], u32, u64, Vec<u8>)> = Vec::new();
    if with_descriptor {
        sections.push((b".rodata_desc", 0x3C00_0020, rodata, app_desc(version, "c3-logger", 0)));
    }
    sections.push((
        b".rodata",
        0x3C00_0120,
        rodata,
        (0..600u32).map(|i| (i * 7) as u8).collect(),
    ));
    sections.push((
        b".text",
        0x4200_0020,
        text,
        (0..2000u32).map(|i| (i * 31 + 2) as u8).collect(),
    ));

    let mut buf = Vec::new();
    let mut w = Writer::new(Endianness::Little, false, &mut buf);
    w.reserve_file_header();
    w.reserve_program_headers(sections.len() as u32);
    let offsets: Vec<u64> = sections.iter().map(|s| w.reserve(s.3.len() as u64, 4)).collect();
    let names: Vec<_> = sections.iter().map(|s| w.add_section_name(s.0)).collect();
    let indices: Vec<_> = sections.iter().map(|_| w.reserve_section_index()).collect();
    let symbol_name = w.add_string(b"esp_app_desc");
    w.reserve_null_symbol_index();
    if with_descriptor {
        w.reserve_symbol_index(Some(indices[0]));
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
        e_type: elf::ET_EXEC,
        e_machine: elf::EM_RISCV,
        e_entry: 0x4200_0020,
        e_flags: elf::FileFlags(0),
    })
    .unwrap();
    w.write_align_program_headers();
    for (s, &offset) in sections.iter().zip(&offsets) {
        let flags = if s.2 == text { elf::PF_R | elf::PF_X } else { elf::PF_R };
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: s.1.into(),
            p_paddr: s.1.into(),
            p_filesz: s.3.len() as u64,
            p_memsz: s.3.len() as u64,
            p_align: 4,
        });
    }
    for s in &sections {
        w.write_align(4);
        w.write(&s.3);
    }
    w.write_null_symbol();
    if with_descriptor {
        w.write_symbol(&Sym {
            section: Some(indices[0].0),
            st_name: w.string_offset(Some(symbol_name)),
            st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_OBJECT),
            st_other: elf::SymbolOther(0),
            st_shndx: elf::SymbolSection(0),
            st_value: 0x3C00_0020,
            st_size: APP_DESC_LEN as u64,
        });
    }
    w.write_strtab();
    w.write_shstrtab();
    w.write_null_section_header();
    for ((s, &offset), name) in sections.iter().zip(&offsets).zip(&names) {
        w.write_section_header(&SectionHeader {
            sh_name: w.section_name_offset(Some(*name)),
            sh_type: elf::SHT_PROGBITS,
            sh_flags: elf::SectionFlags(s.2),
            sh_addr: s.1.into(),
            sh_offset: offset,
            sh_size: s.3.len() as u64,
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
