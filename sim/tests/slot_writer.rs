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

/// A slot as the default layout places one: on a 64 KiB boundary, several blocks long.
const BIG_SLOT: Slot = Slot {
    offset: 0x20000,
    size: 0x40000,
};

fn big_flash() -> SimFlash {
    let f = SimFlash::new(0x80000, FlashTiming::ESP32_TYPICAL);
    f.load(0, &vec![0x00; 0x80000]);
    f
}

async fn write_all<const STAGE: usize>(w: &mut SlotWriter<SimFlash, STAGE>, img: &[u8]) {
    for piece in img.chunks(1460) {
        w.write(piece).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), img.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_known_image_length_erases_whole_blocks_inside_it_and_nothing_past_its_end() {
    sim::time::use_virtual_time();
    let f = big_flash();
    // Two whole blocks and 5,000 bytes into the third.
    let img = image(2 * 65536 + 5000);
    let mut w: SlotWriter<_, 256> = SlotWriter::new(f.clone(), BIG_SLOT);
    w.expect_image_len(img.len() as u64);
    let start = sim::time::now();
    write_all(&mut w, &img).await;
    let took = sim::time::now() - start;
    let stats = f.stats();
    assert_eq!(stats.block_erases, 2, "the two blocks the image covers");
    assert_eq!(
        stats.sectors_erased,
        32 + 2,
        "and the two sectors of the tail, one at a time"
    );
    assert_eq!(f.snapshot(BIG_SLOT.offset as usize, img.len()), img);
    let tail = BIG_SLOT.offset as usize + 2 * 65536 + 2 * SECTOR;
    assert!(
        f.snapshot(tail, 0x40000 - (tail - BIG_SLOT.offset as usize))
            .iter()
            .all(|&b| b == 0),
        "nothing erased past the image"
    );
    // Two block erases (150 ms) and two sector erases (45 ms), against 34 sector erases.
    let timing = FlashTiming::ESP32_TYPICAL;
    let erases = 2 * timing.erase_block + 2 * timing.erase_sector;
    let programs = timing.program_page * (img.len().div_ceil(256) as u32);
    assert_eq!(took, erases + programs, "the flash time is that of the commands sent");
}

#[tokio::test(start_paused = true)]
async fn without_a_length_every_erase_is_one_sector() {
    sim::time::use_virtual_time();
    let f = big_flash();
    let img = image(2 * 65536);
    let mut w: SlotWriter<_, 256> = SlotWriter::new(f.clone(), BIG_SLOT);
    write_all(&mut w, &img).await;
    assert_eq!((f.stats().block_erases, f.stats().sectors_erased), (0, 32));
}

#[tokio::test(start_paused = true)]
async fn a_resume_inside_a_block_erases_sectors_up_to_the_next_block() {
    sim::time::use_virtual_time();
    let f = big_flash();
    let img = image(3 * 65536);
    let mut first: SlotWriter<_, 256> = SlotWriter::new(f.clone(), BIG_SLOT);
    first.expect_image_len(img.len() as u64);
    first.write(&img[..65536 + 3 * SECTOR]).await.unwrap();
    assert_eq!(f.stats().block_erases, 2, "block 0 written, block 1 entered");

    // A reboot: block 1 is partly programmed; the writer resumes there and must not erase
    // it again (that would lose what is journaled), but erases block 2 whole on entry.
    let resumed_at = 65536 + 3 * SECTOR as u32;
    let mut w: SlotWriter<_, 256> = SlotWriter::resume(f.clone(), BIG_SLOT, resumed_at);
    w.expect_image_len(img.len() as u64);
    for piece in img[resumed_at as usize..].chunks(1460) {
        w.write(piece).await.unwrap();
    }
    w.finish().await.unwrap();
    let stats = f.stats();
    assert_eq!(stats.block_erases, 3);
    assert_eq!(stats.pages_programmed_twice, 0);
    assert_eq!(stats.bit_set_errors, 0);
    assert_eq!(f.snapshot(BIG_SLOT.offset as usize, img.len()), img);
}
