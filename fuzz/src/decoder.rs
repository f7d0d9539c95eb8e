//! What the two decoders' targets (`compressed_image`, `delta_image`) do with a writer: feed
//! it the file in fuzz-chosen pieces and check, on the way and after, what a device relies
//! on.

use device_fw::ota::{ImageSink, InflatingWriter, Slot};
use device_fw::wire::compressed::SEGMENT_RAW;
use sha2::{Digest, Sha256};

use crate::flash::{RamFlash, SECTOR};
use crate::{Splits, run};

/// Feeds `file` to `writer` (an image of `raw_size` bytes into `slot` of `flash`) in the
/// pieces `splits` chooses, then finishes it. Asserts: no wait on nothing; every resume mark
/// on a segment boundary and within the image; never more image bytes written than the
/// image has; nothing erased or programmed outside the image's sectors of the slot.
pub fn feed_and_check(
    make: impl FnOnce(&mut RamFlash) -> InflatingWriter<&mut RamFlash>,
    flash: &mut RamFlash,
    slot: Slot,
    raw_size: u32,
    file: &[u8],
    splits: &mut Splits,
) {
    let mut writer = make(flash);
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
    let image_end = slot.offset as usize + (raw_size as usize).div_ceil(SECTOR) * SECTOR;
    if let Some((lo, hi)) = flash.touched {
        assert!(
            lo >= slot.offset as usize && hi <= image_end,
            "touched {lo:#x}..{hi:#x}"
        );
    }
    let _ = hasher.finalize();
}
