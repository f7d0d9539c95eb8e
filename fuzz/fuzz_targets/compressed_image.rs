//! The compressed form's decoder (`InflatingWriter`, `ota::lzma`) over a hostile
//! compressed file, fed in fuzz-chosen pieces, optionally resumed at a fuzz-chosen mark.
//!
//! Input: raw size (2 bytes, the image is 1 to 65,536 bytes), split count (1) and splits,
//! then the compressed file.
//!
//! Asserts: no panic; it never erases or programs outside the image's sectors of its slot
//! (guard sectors on both sides stay untouched); it never says more image bytes are written
//! than the image has; a mark it gives is on a segment boundary.
#![no_main]

use device_fw::ota::{InflatingWriter, Slot};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::decoder::feed_and_check;
use otactl_fuzz::flash::{RamFlash, SECTOR};
use otactl_fuzz::{Bytes, Splits};

const SLOT: Slot = Slot {
    offset: SECTOR as u32,
    size: 17 * SECTOR as u32,
};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let raw_size = u32::from(b.u16()) + 1;
    let n = usize::from(b.u8() % 16);
    let mut splits = Splits::new(b.take(n));
    let file = b.rest();
    let mut flash = RamFlash::new(SECTOR * 19);
    feed_and_check(
        |flash| InflatingWriter::new(flash, SLOT, raw_size),
        &mut flash,
        SLOT,
        raw_size,
        file,
        &mut splits,
    );
});
