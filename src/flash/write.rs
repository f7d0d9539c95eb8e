//! Writing through the ROM loader (`--no-stub`), compressed.
//!
//! espflash compresses only when its RAM stub runs; without the stub it sends every byte
//! as it is. The ROM inflates FLASH_DEFL_DATA itself (ESP-FORMATS.md §1.5), which is what
//! `esptool --no-stub write-flash -z` uses, so otactl does the same through espflash's
//! `Connection`: at 921600 baud the serial line, not the chip, is the limit, and a firmware
//! image deflates to well under its size. Block size, the rounded erase size and the
//! encrypted word follow esptool's ROM path, the peer the emulator is checked against.
//! With the stub running, espflash's own writer (stub-side compression, 16 KiB blocks) is
//! used instead.

use espflash::command::{Command, CommandType};
use espflash::connection::Connection;
use espflash::target::{Chip, ProgressCallbacks};
use md5::{Digest as _, Md5};

use super::plan::Segment;
use super::{FlashError, chain};

/// zlib level for the ROM path: miniz's best ("uber"); compressing runs while the
/// connection is set up, and every byte saved is 10 bit times on the line.
const LEVEL: u8 = 10;

/// A segment as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: &'static str,
    pub addr: u32,
    /// The data padded with `0xFF` to whole words, as the ROM programs words.
    pub data: Vec<u8>,
    /// zlib stream of `data`; empty when the segment goes through espflash's writer.
    pub compressed: Vec<u8>,
    pub md5: [u8; 16],
}

impl Prepared {
    pub fn new(seg: &Segment, compress: bool) -> Prepared {
        let mut data = seg.data.clone();
        data.resize(data.len().next_multiple_of(4), 0xFF);
        Prepared {
            name: seg.name,
            addr: seg.addr,
            compressed: if compress {
                miniz_oxide::deflate::compress_to_vec_zlib(&data, LEVEL)
            } else {
                Vec::new()
            },
            md5: Md5::digest(&data).into(),
            data,
        }
    }
}

/// Writes one segment through the ROM loader (erase at FLASH_DEFL_BEGIN, then the zlib
/// stream in the ROM's block size) and, with `verify`, compares the ROM's MD5 of the region
/// with the data's. espflash's progress callbacks are driven as its own writer drives them.
pub fn write_rom(
    conn: &mut Connection,
    chip: Chip,
    seg: &Prepared,
    verify: bool,
    progress: &mut dyn ProgressCallbacks,
) -> Result<(), FlashError> {
    let block = chip.flash_write_size();
    let blocks = seg.compressed.len().div_ceil(block);
    // The ROM wants the inflated size rounded up to whole blocks (esptool's `write_size`).
    let erase_size = (seg.data.len().div_ceil(block) * block) as u32;
    let at = |what: &str| format!("{what} {} at {:#x}", seg.name, seg.addr);
    progress.init(seg.addr, blocks);
    conn.with_timeout(CommandType::FlashDeflBegin.timeout_for_size(erase_size), |c| {
        c.command(Command::FlashDeflBegin {
            size: erase_size,
            blocks: blocks as u32,
            block_size: block as u32,
            offset: seg.addr,
            // The ESP32 ROM takes four words; later ROMs a fifth, `encrypted` = 0.
            supports_encryption: chip != Chip::Esp32,
        })
    })
    .map_err(|e| link_error(&at("erasing"), &e))?;
    for (i, chunk) in seg.compressed.chunks(block).enumerate() {
        conn.with_timeout(CommandType::FlashDeflData.timeout_for_size(block as u32), |c| {
            c.command(Command::FlashDeflData {
                data: chunk,
                pad_to: 0,
                pad_byte: 0xFF,
                sequence: i as u32,
            })
        })
        .map_err(|e| link_error(&at("writing"), &e))?;
        progress.update(i + 1);
    }
    if verify {
        progress.verifying();
        check_md5(conn, seg)?;
    }
    progress.finish(false);
    Ok(())
}

/// The ROM's MD5 of the segment's region against the data's.
pub fn check_md5(conn: &mut Connection, seg: &Prepared) -> Result<(), FlashError> {
    let len = seg.data.len() as u32;
    let found: u128 = conn
        .with_timeout(CommandType::FlashMd5.timeout_for_size(len), |c| {
            c.command(Command::FlashMd5 {
                offset: seg.addr,
                size: len,
            })?
            .try_into()
        })
        .map_err(|e| link_error(&format!("verifying {} at {:#x}", seg.name, seg.addr), &e))?;
    let expected = u128::from_be_bytes(seg.md5);
    if found != expected {
        return Err(FlashError::VerifyFailed {
            segment: seg.name.to_owned(),
            addr: seg.addr,
            expected: format!("{expected:032x}"),
            found: format!("{found:032x}"),
        });
    }
    Ok(())
}

/// An espflash error in the middle of the work, with what to try.
pub fn link_error(phase: &str, e: &espflash::Error) -> FlashError {
    let reason = chain(e);
    let lower = reason.to_ascii_lowercase();
    let help = if lower.contains("timeout") || lower.contains("timed out") {
        Some(
            "the device stopped answering: check the cable and the board's power (a brown-out resets it), and try a lower --baud (460800, 115200): some USB-serial adapters cannot run at 921600"
                .to_owned(),
        )
    } else if lower.contains("bootloader returned an error") || lower.contains("error while running") {
        Some("the ROM loader refused the command; run again, with a lower --baud if it repeats".to_owned())
    } else {
        None
    };
    FlashError::Link {
        phase: phase.to_owned(),
        reason,
        help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_padded_to_words_and_hashed_as_padded() {
        let seg = Segment {
            name: "ota_0",
            addr: 0x10000,
            data: vec![1, 2, 3, 4, 5],
            erased: false,
        };
        let p = Prepared::new(&seg, true);
        assert_eq!(p.data, [1, 2, 3, 4, 5, 0xFF, 0xFF, 0xFF]);
        let back = miniz_oxide::inflate::decompress_to_vec_zlib(&p.compressed).unwrap();
        assert_eq!(back, p.data);
        assert_eq!(p.md5, <[u8; 16]>::from(Md5::digest(&p.data)));
        assert!(Prepared::new(&seg, false).compressed.is_empty());
    }
}
