//! The in-flash image check against the in-RAM parser: for valid images and for hundreds of
//! corrupted ones, reading the slot back through a small window must reach exactly the
//! verdict `AppImage::parse` reaches on the same bytes, on flash that reads bytes and on
//! flash that reads only whole words.

use device_fw::esp::image::{
    APP_DESC_OFFSET, AppImage, CHIP_ESP32, CHIP_ESP32C3, CHIP_ESP32S3, CHIP_INVALID, HASH_LEN, HEADER_LEN, ImageError,
    ImageHeader, SEGMENT_HEADER_LEN, build_test_image, checksum_offset, reseal_test_image,
};
use device_fw::esp::slot_image::{READ_WINDOW, SlotImage, SlotImageError, check_slot_image};
use device_fw::ota::Slot;
use embedded_storage_async::nor_flash::{ErrorType, ReadNorFlash};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sim::flash::{FlashError, FlashTiming, SimFlash};
use std::collections::BTreeSet;

const FLASH_SIZE: usize = 0x30000;

const SLOT: Slot = Slot {
    offset: 0x10000,
    size: 0x10000,
};

/// A flash holding `bytes` at the start of `slot`, erased elsewhere.
fn flash_with(slot: Slot, bytes: &[u8]) -> SimFlash {
    let f = SimFlash::new(FLASH_SIZE, FlashTiming::ESP32_TYPICAL);
    f.load(slot.offset as usize, bytes);
    f
}

/// SimFlash seen through a driver with a given `READ_SIZE` (esp-storage: 4), which refuses
/// unaligned reads as the real one does, and which records what was asked of it.
#[derive(Debug)]
struct Probe<const RS: usize> {
    flash: SimFlash,
    reads: usize,
    bytes_read: usize,
    largest_read: usize,
}

impl<const RS: usize> Probe<RS> {
    fn new(flash: SimFlash) -> Self {
        Probe {
            flash,
            reads: 0,
            bytes_read: 0,
            largest_read: 0,
        }
    }
}

impl<const RS: usize> ErrorType for Probe<RS> {
    type Error = FlashError;
}

impl<const RS: usize> ReadNorFlash for Probe<RS> {
    const READ_SIZE: usize = RS;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        if !(offset as usize).is_multiple_of(RS) || !bytes.len().is_multiple_of(RS) {
            return Err(FlashError::NotAligned);
        }
        self.reads += 1;
        self.bytes_read += bytes.len();
        self.largest_read = self.largest_read.max(bytes.len());
        self.flash.read(offset, bytes).await
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

/// The verdict the bootloader reaches: header, then the chip id, then everything else, as
/// `AppImage::parse` does it. (`AppImage::parse` then `check_chip` would report a corrupt
/// image for another chip as corrupt; the bootloader, and the slot check, stop at the chip.)
fn reference(bytes: &[u8], chip: u16) -> Result<AppImage, SlotImageError<FlashError>> {
    ImageHeader::parse(bytes)?.check_chip(chip)?;
    let image = AppImage::parse(bytes)?;
    image.check_chip(chip)?;
    Ok(image)
}

async fn check<F: ReadNorFlash>(
    flash: &mut F,
    slot: Slot,
    image_len: usize,
    chip: u16,
) -> Result<SlotImage, SlotImageError<F::Error>> {
    check_slot_image(flash, slot, image_len as u64, chip).await
}

/// Offsets of the segment headers, or `None` when the table runs off the image (then a test
/// image cannot be resealed).
fn segment_headers(img: &[u8]) -> Option<Vec<usize>> {
    let mut pos = HEADER_LEN;
    let mut headers = Vec::new();
    for _ in 0..img[1] {
        let len_bytes = img.get(pos + 4..pos + 8)?;
        let len = u32::from_le_bytes(len_bytes.try_into().ok()?) as usize;
        headers.push(pos);
        pos = pos.checked_add(SEGMENT_HEADER_LEN + len)?;
    }
    (checksum_offset(pos) + 1 + if img[23] == 1 { HASH_LEN } else { 0 } <= img.len()).then_some(headers)
}

fn try_reseal(img: &mut [u8]) {
    if segment_headers(img).is_some() {
        reseal_test_image(img);
    }
}

/// A valid image with 1–4 segments (the first holding the app descriptor), sometimes
/// without appended hash, sometimes larger than the read window.
fn random_image(rng: &mut ChaCha8Rng, chip: u16) -> Vec<u8> {
    let payload_len = match rng.random_range(0..3) {
        0 => rng.random_range(0..64),
        1 => rng.random_range(0..READ_WINDOW * 2),
        _ => rng.random_range(0..6000),
    };
    let payload: Vec<u8> = (0..payload_len).map(|_| rng.random()).collect();
    let mut img = build_test_image(chip, "1.4.2", "otactl-fleet", &payload);
    let seg0_len = u32::from_le_bytes(img[28..32].try_into().unwrap()) as usize;
    img.truncate(APP_DESC_OFFSET + seg0_len);
    let extra = rng.random_range(0..4);
    for _ in 0..extra {
        let len = 4 * rng.random_range(0..200usize);
        img.extend_from_slice(&rng.random::<u32>().to_le_bytes());
        img.extend_from_slice(&(len as u32).to_le_bytes());
        img.extend((0..len).map(|_| rng.random::<u8>()));
    }
    img[1] = 1 + extra;
    let hash_appended = rng.random_bool(0.8);
    img[23] = u8::from(hash_appended);
    let end = checksum_offset(img.len()) + 1 + if hash_appended { HASH_LEN } else { 0 };
    img.resize(end, 0);
    reseal_test_image(&mut img);
    img
}

fn nonzero(rng: &mut ChaCha8Rng) -> u8 {
    rng.random_range(1..=255)
}

/// One corruption of a valid image; returns the image length the manifest would give.
fn mutate(rng: &mut ChaCha8Rng, img: &mut Vec<u8>) -> usize {
    let parsed = AppImage::parse(img).expect("base image is valid");
    let cs = parsed.checksum_offset;
    let headers = segment_headers(img).unwrap();
    let mut image_len = img.len();
    match rng.random_range(0..16) {
        0 => {
            let at = rng.random_range(0..img.len());
            img[at] ^= nonzero(rng);
        }
        1 => image_len = rng.random_range(0..img.len()),
        2 => img[1] = rng.random_range(0..=20),
        3 => {
            let at = headers[rng.random_range(0..headers.len())] + 4;
            let old = u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
            let new = match rng.random_range(0..4) {
                0 => old.wrapping_add(4 * rng.random_range(1..64)),
                1 => old.saturating_sub(4 * rng.random_range(1..64)),
                2 => old ^ rng.random_range(1..4),
                _ => rng.random(),
            };
            img[at..at + 4].copy_from_slice(&new.to_le_bytes());
            if rng.random_bool(0.5) {
                try_reseal(img);
            }
        }
        4 => img[0] = 0xE9 ^ nonzero(rng),
        5 | 6 => {
            let chips = [CHIP_ESP32, 2, CHIP_ESP32C3, CHIP_ESP32S3, 12, 13, 16, CHIP_INVALID];
            let chip = chips[rng.random_range(0..chips.len())];
            img[12..14].copy_from_slice(&chip.to_le_bytes());
            if rng.random_bool(0.5) {
                reseal_test_image(img);
            }
        }
        7 => img[23] = rng.random_range(0..4),
        8 => img[cs] ^= nonzero(rng),
        9 => {
            let at = rng.random_range(cs..img.len());
            img[at] ^= nonzero(rng);
        }
        10 => {
            let at = APP_DESC_OFFSET + rng.random_range(0..4);
            img[at] ^= nonzero(rng);
            reseal_test_image(img);
        }
        11 => {
            let (at, len) = [(16, 32), (48, 32), (112, 32), (80, 16)][rng.random_range(0..4)];
            img[APP_DESC_OFFSET + at..APP_DESC_OFFSET + at + len].fill(b'x');
            reseal_test_image(img);
        }
        12 => {
            // Old contents after the image: the manifest length still bounds it.
            image_len += rng.random_range(1..600);
            let tail: Vec<u8> = (0..image_len - img.len()).map(|_| rng.random()).collect();
            img.extend_from_slice(&tail);
        }
        13 => {
            // Segment 0 too short to hold a descriptor, table still consistent.
            let len = 4 * rng.random_range(0..64u32);
            img.truncate(APP_DESC_OFFSET + len as usize);
            img[1] = 1;
            img[24 + 4..24 + 8].copy_from_slice(&len.to_le_bytes());
            img.resize(
                checksum_offset(img.len()) + 1 + if img[23] == 1 { HASH_LEN } else { 0 },
                0,
            );
            reseal_test_image(img);
            image_len = img.len();
        }
        14 => {
            let flips = rng.random_range(1..4);
            for _ in 0..flips {
                let at = rng.random_range(0..APP_DESC_OFFSET);
                img[at] ^= nonzero(rng);
            }
        }
        _ => {
            let at = rng.random_range(0..img.len());
            img[at] ^= nonzero(rng);
            image_len = rng.random_range(0..img.len());
        }
    }
    image_len
}

fn variant(r: &Result<SlotImage, SlotImageError<FlashError>>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(e) => {
            format!("{e:?}").split(['(', ' ', '{']).next().unwrap().to_owned()
                + &match e {
                    SlotImageError::Image(i) => {
                        format!("::{}", format!("{i:?}").split(['(', ' ', '{']).next().unwrap())
                    }
                    _ => String::new(),
                }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn valid_images_pass_and_match_the_in_ram_parser() {
    sim::time::use_virtual_time();
    for chip in [CHIP_ESP32, CHIP_ESP32C3] {
        for payload_len in [0, 13, 300, READ_WINDOW, 5000, 40_000] {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 + i / 7) as u8).collect();
            let img = build_test_image(chip, "2.0.1", "otactl-demo", &payload);
            let want = AppImage::parse(&img).unwrap();

            let mut probe = Probe::<1>::new(flash_with(SLOT, &img));
            let got = check(&mut probe, SLOT, img.len(), chip).await.unwrap();
            assert_eq!(got.header, want.header);
            assert_eq!(got.app_desc, want.app_desc);
            assert_eq!(got.len, want.len);
            assert_eq!(got, want);
            assert_eq!(got.app_desc.version(), Some("2.0.1"));
            assert_eq!(got.app_desc.project_name(), Some("otactl-demo"));
            assert_eq!(got.header.chip_id, chip);
            // One pass, through the fixed window, and nothing past the image.
            assert_eq!(probe.bytes_read, img.len());
            assert!(probe.largest_read <= READ_WINDOW);
            assert_eq!(probe.reads, img.len().div_ceil(READ_WINDOW));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_chip_is_reported_as_the_bootloader_would() {
    sim::time::use_virtual_time();
    let img = build_test_image(CHIP_ESP32C3, "1.0.0", "otactl-demo", b"payload");
    let mut f = flash_with(SLOT, &img);
    let wrong = ImageError::WrongChip {
        expected: CHIP_ESP32,
        found: CHIP_ESP32C3,
    };
    assert_eq!(
        check(&mut f, SLOT, img.len(), CHIP_ESP32).await,
        Err(SlotImageError::Image(wrong))
    );
    // The chip check comes right after the header: later damage does not hide it.
    let mut broken = img.clone();
    broken[APP_DESC_OFFSET + 300] ^= 0xFF;
    let mut f = flash_with(SLOT, &broken);
    assert_eq!(
        check(&mut f, SLOT, broken.len(), CHIP_ESP32).await,
        Err(SlotImageError::Image(wrong))
    );
    assert!(check(&mut f, SLOT, broken.len(), CHIP_ESP32C3).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn differential_against_the_in_ram_parser() {
    sim::time::use_virtual_time();
    let mut rng = ChaCha8Rng::seed_from_u64(0x5107_1A6E);
    let mut seen = BTreeSet::new();
    for case in 0..600 {
        let chip = if case % 2 == 0 { CHIP_ESP32 } else { CHIP_ESP32C3 };
        let mut img = random_image(&mut rng, chip);
        let image_len = if case % 10 == 0 {
            img.len() // a few unmutated ones
        } else {
            mutate(&mut rng, &mut img)
        };
        let want = reference(&img[..image_len.min(img.len())], chip);

        let mut bytes = Probe::<1>::new(flash_with(SLOT, &img));
        let got = check(&mut bytes, SLOT, image_len, chip).await;
        assert_eq!(got, want, "case {case}, READ_SIZE 1, image_len {image_len}");
        assert!(bytes.largest_read <= READ_WINDOW);
        assert!(bytes.bytes_read <= image_len, "case {case}: read past the image");

        // Word reads, with the slot both word-aligned and not.
        let slot = Slot {
            offset: SLOT.offset + if case % 3 == 0 { 2 } else { 0 },
            ..SLOT
        };
        let mut words = Probe::<4>::new(flash_with(slot, &img));
        let got = check(&mut words, slot, image_len, chip).await;
        assert_eq!(got, want, "case {case}, READ_SIZE 4, image_len {image_len}");
        assert!(words.largest_read <= READ_WINDOW);
        assert!(words.bytes_read < image_len + 8, "case {case}: read past the image");

        seen.insert(variant(&want));
    }
    // The mutations reached every check, so agreement means something.
    for expected in [
        "Ok",
        "Image::Truncated",
        "Image::BadMagic",
        "Image::TooManySegments",
        "Image::BadHashAppended",
        "Image::InvalidChipId",
        "Image::WrongChip",
        "Image::SegmentOutOfBounds",
        "Image::SegmentLenNotAligned",
        "Image::ChecksumMismatch",
        "Image::HashMismatch",
        "Image::NoAppDescriptor",
        "Image::AppDescStringNotTerminated",
    ] {
        assert!(seen.contains(expected), "no case produced {expected}: {seen:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn word_reads_give_the_same_results_as_byte_reads() {
    sim::time::use_virtual_time();
    let img = build_test_image(CHIP_ESP32, "3.1.0", "otactl-demo", &[0x5A; 3001]);
    let mut cases: Vec<(Vec<u8>, usize)> = vec![(img.clone(), img.len())];
    let mut bad_checksum = img.clone();
    let cs = AppImage::parse(&img).unwrap().checksum_offset;
    bad_checksum[cs] ^= 1;
    cases.push((bad_checksum, img.len()));
    for cut in [0, 1, 23, 24, 30, 33, cs, cs + 1, cs + 5, img.len() - 1] {
        cases.push((img.clone(), cut));
    }
    for (bytes, image_len) in cases {
        for offset in [SLOT.offset, SLOT.offset + 1, SLOT.offset + 3] {
            let slot = Slot { offset, ..SLOT };
            let byte_wise = check(
                &mut Probe::<1>::new(flash_with(slot, &bytes)),
                slot,
                image_len,
                CHIP_ESP32,
            )
            .await;
            let word_wise = check(
                &mut Probe::<4>::new(flash_with(slot, &bytes)),
                slot,
                image_len,
                CHIP_ESP32,
            )
            .await;
            assert_eq!(byte_wise, word_wise, "image_len {image_len}, offset {offset:#x}");
            assert_eq!(byte_wise, reference(&bytes[..image_len], CHIP_ESP32));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_manifest_length_is_bounded_by_the_slot_and_the_slot_by_the_flash() {
    sim::time::use_virtual_time();
    let img = build_test_image(CHIP_ESP32, "1.0.0", "otactl-demo", b"");
    let mut f = flash_with(SLOT, &img);
    assert_eq!(
        check(&mut f, SLOT, SLOT.size as usize + 1, CHIP_ESP32).await,
        Err(SlotImageError::LenExceedsSlot {
            image_len: u64::from(SLOT.size) + 1,
            slot_size: SLOT.size
        })
    );
    let beyond = Slot {
        offset: FLASH_SIZE as u32 - 0x1000,
        size: 0x2000,
    };
    assert_eq!(
        check(&mut f, beyond, img.len(), CHIP_ESP32).await,
        Err(SlotImageError::SlotOutsideFlash {
            slot_end: FLASH_SIZE as u64 + 0x1000,
            capacity: FLASH_SIZE
        })
    );
    // A whole image in the slot, but the manifest says shorter: truncated, not accepted.
    assert_eq!(
        check(&mut f, SLOT, img.len() - HASH_LEN, CHIP_ESP32).await,
        Err(SlotImageError::Image(ImageError::Truncated {
            what: "appended SHA-256",
            needed: img.len(),
            have: img.len() - HASH_LEN
        }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_flash_read_failure_is_reported_not_taken_for_a_bad_image() {
    sim::time::use_virtual_time();
    let img = build_test_image(CHIP_ESP32, "1.0.0", "otactl-demo", b"");
    let mut f = flash_with(SLOT, &img);
    // Power dies during an erase elsewhere; reads fail from then on.
    f.cut_power_at(f.stats().ops);
    let _ = embedded_storage_async::nor_flash::NorFlash::erase(&mut f, 0, 0x1000).await;
    assert_eq!(
        check(&mut f, SLOT, img.len(), CHIP_ESP32).await,
        Err(SlotImageError::Flash(FlashError::PowerLost))
    );
}
