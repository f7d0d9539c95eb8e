//! The compressed form's decoder (`InflatingWriter`, `ota::inflate`) over a hostile
//! compressed file, fed in fuzz-chosen pieces, optionally resumed at a fuzz-chosen mark.
//!
//! Input: raw size (2 bytes, the image is 1 to 65,536 bytes), split count (1) and splits,
//! then the compressed file.
//!
//! Asserts: no panic; it never erases or programs outside the image's sectors of its slot
//! (guard sectors on both sides stay untouched); it never says more image bytes are written
//! than the image has; a mark it gives is on a segment boundary.
#![no_main]

use device_fw::ota::{ImageSink, InflatingWriter, Slot};
use device_fw::wire::compressed::SEGMENT_RAW;
use libfuzzer_sys::fuzz_target;
use otactl_fuzz::flash::{RamFlash, SECTOR};
use otactl_fuzz::{Bytes, Splits, run};
use sha2::{Digest, Sha256};

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
    let mut writer: InflatingWriter<_> = InflatingWriter::new(&mut flash, SLOT, raw_size);
    let mut hasher = Sha256::new();
    let outcome = run(
        async {
            let mut at = 0;
            while at < file.len() {
                let end = at + splits.next(file.len() - at).max(1);
                writer.erase_ahead(&file[at..end]).await?;
                if let Some(mark) = writer.take(&file[at..end], &mut hasher).await? {
                    assert_eq!(mark.written as usize % SEGMENT_RAW, 0);
                    assert!(mark.written <= raw_size);
                }
                assert!(writer.written() <= u64::from(raw_size));
                at = end;
            }
            writer.finish().await
        },
        10_000,
    );
    assert!(outcome.is_some(), "the decoder waits on nothing");
    drop(writer);
    let image_end = SLOT.offset as usize + (raw_size as usize).div_ceil(SECTOR) * SECTOR;
    if let Some((lo, hi)) = flash.touched {
        assert!(
            lo >= SLOT.offset as usize && hi <= image_end,
            "touched {lo:#x}..{hi:#x}"
        );
    }
    let _ = hasher.finalize();
});
