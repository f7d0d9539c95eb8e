//! The slot writer against NOR flash physics: what it erases, what it programs, and that a
//! resumed writer and a re-hashed prefix give the same image and hash.

use device_fw::ota::slot::hash_prefix;
use device_fw::ota::{Slot, SlotError, SlotWriter};
use sha2::{Digest, Sha256};
use sim::flash::{FlashError, FlashTiming, SECTOR, SimFlash};

const SLOT: Slot = Slot {
    offset: 0x10000,
    size: 0x8000,
};

fn flash() -> SimFlash {
    let f = SimFlash::new(0x20000, FlashTiming::ESP32_TYPICAL);
    // Old firmware everywhere: a writer that forgets an erase hits set bits.
    f.load(0, &vec![0x00; 0x20000]);
    f
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test(start_paused = true)]
async fn erases_each_sector_once_and_programs_each_page_once() {
    sim::time::use_virtual_time();
    let f = flash();
    let img = image(3 * SECTOR + 1000);
    let mut w: SlotWriter<_, 256> = SlotWriter::new(f.clone(), SLOT);
    for piece in img.chunks(1460) {
        w.write(piece).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), img.len() as u64);
    let stats = f.stats();
    assert_eq!(stats.sectors_erased, 4, "only the sectors the image touches");
    assert_eq!(stats.pages_programmed_twice, 0);
    assert_eq!(stats.bit_set_errors, 0);
    assert_eq!(f.snapshot(SLOT.offset as usize, img.len()), img);
    assert!(
        f.snapshot(SLOT.offset as usize + 4 * SECTOR, 16)
            .iter()
            .all(|&b| b == 0),
        "rest untouched"
    );
    assert!(
        f.snapshot(0, SLOT.offset as usize).iter().all(|&b| b == 0),
        "nothing outside the slot"
    );
}

#[tokio::test(start_paused = true)]
async fn refuses_an_image_larger_than_the_slot_before_writing_it() {
    sim::time::use_virtual_time();
    let mut w: SlotWriter<_, 256> = SlotWriter::new(flash(), SLOT);
    let err = w.write(&vec![1; SLOT.size as usize + 1]).await.unwrap_err();
    assert_eq!(
        err,
        SlotError::TooLarge {
            needed: u64::from(SLOT.size) + 1,
            slot: SLOT.size
        }
    );
}

#[tokio::test(start_paused = true)]
async fn resume_after_reboot_continues_the_image_and_rebuilds_the_hash() {
    sim::time::use_virtual_time();
    let f = flash();
    let img = image(20_000);
    let mut w: SlotWriter<_, 256> = SlotWriter::new(f.clone(), SLOT);
    w.write(&img[..9_000]).await.unwrap();
    let programmed = w.programmed();
    assert_eq!(programmed, 8_960, "whole pages only; the staged tail is lost with RAM");
    drop(w);

    let mut flash_again = f.clone();
    let mut hasher = Sha256::new();
    hash_prefix(&mut flash_again, SLOT, u64::from(programmed), &mut hasher)
        .await
        .unwrap();
    let mut w: SlotWriter<_, 256> = SlotWriter::resume(f.clone(), SLOT, programmed);
    w.write(&img[programmed as usize..]).await.unwrap();
    hasher.update(&img[programmed as usize..]);
    w.finish().await.unwrap();
    assert_eq!(f.snapshot(SLOT.offset as usize, img.len()), img);
    assert_eq!(
        <[u8; 32]>::from(hasher.finalize()),
        <[u8; 32]>::from(Sha256::digest(&img))
    );
    assert_eq!(f.stats().pages_programmed_twice, 0);
}

#[tokio::test(start_paused = true)]
async fn a_flash_failure_is_reported_not_hidden() {
    sim::time::use_virtual_time();
    let f = flash();
    f.cut_power_at(0);
    let mut w: SlotWriter<_, 256> = SlotWriter::new(f, SLOT);
    let err = w.write(&[0u8; 512]).await.unwrap_err();
    assert_eq!(err, SlotError::Flash(FlashError::PowerLost));
}
