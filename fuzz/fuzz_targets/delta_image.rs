//! The delta form's decoder (`InflatingWriter::resume_delta`, `ota::patch`, `ota::inflate`)
//! over a hostile patch, fed in fuzz-chosen pieces, the base image in another slot.
//!
//! Input: split count (1) and splits, a base seed (1), then the patch file. The expected
//! header is the patch's own (a device checks it against the signed manifest, so a header
//! the fuzzer made up would end every run there); its image must fit the slot and its base
//! the running slot.
//!
//! Asserts: no panic; it never erases or programs outside the image's sectors of its slot
//! (the running slot and guard sectors stay untouched); it never says more image bytes are
//! written than the image has; a mark it gives is on a segment boundary.
#![no_main]

use device_fw::ota::{InflatingWriter, Slot};
use device_fw::wire::delta::{HEADER_LEN, Header};
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::decoder::feed_and_check;
use otactl_fuzz::flash::{RamFlash, SECTOR};
use otactl_fuzz::{Bytes, Splits};

const BASE: Slot = Slot {
    offset: SECTOR as u32,
    size: 16 * SECTOR as u32,
};
const SLOT: Slot = Slot {
    offset: 18 * SECTOR as u32,
    size: 17 * SECTOR as u32,
};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let n = usize::from(b.u8() % 16);
    let mut splits = Splits::new(b.take(n));
    let base_seed = b.u8();
    let file = b.rest();
    let Some(head) = file.get(..HEADER_LEN) else {
        return;
    };
    let Ok(expected) = Header::parse(head.try_into().expect("header length")) else {
        return;
    };
    if expected.raw_size == 0 || expected.raw_size > SLOT.size || expected.base_size > BASE.size {
        return;
    }
    let raw_size = expected.raw_size;
    let mut flash = RamFlash::new(SECTOR * 36);
    let base: Vec<u8> = (0..expected.base_size)
        .map(|i| (i as u8).wrapping_mul(base_seed) ^ (i >> 8) as u8)
        .collect();
    flash.bytes[BASE.offset as usize..][..base.len()].copy_from_slice(&base);
    feed_and_check(
        |flash| InflatingWriter::resume_delta(flash, SLOT, BASE, expected, 0, 0),
        &mut flash,
        SLOT,
        raw_size,
        file,
        &mut splits,
    );
});
