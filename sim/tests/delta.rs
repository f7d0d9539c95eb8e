//! The delta form: a patch rebuilds the new image in the slot from the running slot, resumes
//! at any segment boundary with nothing but the two slots, hostile patches end in an error
//! (never a byte past the image, never a write to the running slot), and a device takes the
//! patch only when it runs the patch's base, surviving a power cut at any flash operation.

use device_fw::esp::image::CHIP_ESP32;
use device_fw::ota::inflating::DECODER_RAM_BYTES;
use device_fw::ota::{DownloadError, ImageSink, InflatingWriter, Slot, SlotWriter};
use device_fw::wire::ImageForm;
use device_fw::wire::delta::{self, HEADER_LEN, Header, SEGMENT_RAW};
use device_fw::wire::manifest::{PayloadBuf, open};
use sha2::{Digest, Sha256};
use sim::device::{DeviceSetup, release_delta};
use sim::flash::{FlashTiming, SimFlash};
use sim::scenario::image as random_bytes;
use sim::trust::{
    Form, NEW_VERSION, SWEEP_PAYLOAD, changed_app_image, compressible_app_image, life_in, old_image, power_cut_sweep_in,
};

/// The running slot (the patch's base) and the slot being written.
const BASE: Slot = Slot {
    offset: 0x10_0000,
    size: 0x10_0000,
};
const SLOT: Slot = Slot {
    offset: 0x20_0000,
    size: 0x10_0000,
};

/// A flash with `base` in the running slot.
fn flash_with(base: &[u8]) -> SimFlash {
    let f = SimFlash::new(0x30_0000, FlashTiming::ESP32_TYPICAL);
    f.load(BASE.offset as usize, base);
    f
}

fn expected(base: &[u8], new: &[u8]) -> Header {
    Header {
        raw_size: new.len() as u32,
        base_size: base.len() as u32,
        base_sha256: Sha256::digest(base).into(),
    }
}

/// Pairs of every shape: a code change, a changed function in code-like images, unrelated
/// images, an empty change, and a new image shorter than its base.
fn pairs() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let code = compressible_app_image(CHIP_ESP32, NEW_VERSION, 120 * 1024, 3);
    let mut edited = code.clone();
    edited.splice(50_000..50_100, random_bytes(333, 8));
    vec![
        ("code change", old_image(), changed_app_image(90 * 1024)),
        ("changed function", code.clone(), edited),
        ("unrelated", random_bytes(30_000, 1), random_bytes(50_001, 2)),
        ("same image", code.clone(), code.clone()),
        ("shorter", code.clone(), code[..SEGMENT_RAW * 3 + 5].to_vec()),
    ]
}

use sim::device::feed_in_pieces as feed;

#[test]
fn every_patch_rebuilds_its_image_in_the_slot_from_the_running_slot() {
    for (name, base, new) in pairs() {
        let patch = delta::diff(&base, &new).expect(name);
        let f = flash_with(&base);
        let mut w: InflatingWriter<SimFlash> =
            InflatingWriter::resume_delta(f.clone(), SLOT, BASE, expected(&base, &new), 0, 0);
        let (_, hasher) = sim::time::run_virtual(feed(&mut w, &patch, Sha256::new(), None)).expect(name);
        sim::time::run_virtual(w.finish()).expect(name);
        assert_eq!(f.snapshot(SLOT.offset as usize, new.len()), new, "{name}");
        assert_eq!(hasher.finalize(), Sha256::digest(&new), "{name}");
        assert_eq!(
            f.snapshot(BASE.offset as usize, base.len()),
            base,
            "{name}: base changed"
        );
    }
}

#[test]
fn a_small_change_patches_in_a_small_fraction_of_the_image() {
    let base = compressible_app_image(CHIP_ESP32, NEW_VERSION, 200 * 1024, 4);
    let mut new = base.clone();
    new.splice(70_000..70_000, random_bytes(500, 9));
    let patch = delta::diff(&base, &new).unwrap();
    let packed = device_fw::wire::compressed::compress(&new).unwrap();
    assert!(patch.len() * 20 < new.len(), "patch {} of {}", patch.len(), new.len());
    assert!(
        patch.len() * 10 < packed.len(),
        "patch {} vs compressed {}",
        patch.len(),
        packed.len()
    );
}

#[test]
fn a_patch_resumes_at_its_last_resume_point_with_nothing_but_the_two_slots() {
    let (base, new) = (old_image(), changed_app_image(90 * 1024));
    let patch = delta::diff(&base, &new).unwrap();
    for stop in [HEADER_LEN + 1, patch.len() / 3, patch.len() / 2, patch.len() - 3] {
        let f = flash_with(&base);
        let mut first: InflatingWriter<SimFlash> =
            InflatingWriter::resume_delta(f.clone(), SLOT, BASE, expected(&base, &new), 0, 0);
        let (mark, _) = sim::time::run_virtual(feed(&mut first, &patch, Sha256::new(), Some(stop))).unwrap();
        // The power goes: RAM is gone, the slots and the journal's mark stay.
        drop(first);
        let (written, fetched) = mark.map_or((0, 0), |m| (m.written, m.fetched));
        assert_eq!(written as usize % SEGMENT_RAW, 0);
        let mut hasher = Sha256::new();
        hasher.update(f.snapshot(SLOT.offset as usize, written as usize));
        let mut again: InflatingWriter<SimFlash> =
            InflatingWriter::resume_delta(f.clone(), SLOT, BASE, expected(&base, &new), written, fetched);
        assert_eq!(again.fetched(), u64::from(fetched));
        let (_, hasher) = sim::time::run_virtual(feed(&mut again, &patch, hasher, None)).unwrap();
        sim::time::run_virtual(again.finish()).unwrap();
        assert_eq!(f.snapshot(SLOT.offset as usize, new.len()), new, "stop at {stop}");
        assert_eq!(hasher.finalize(), Sha256::digest(&new));
    }
}

#[test]
fn hostile_patches_are_errors_and_never_write_past_the_image_or_into_the_running_slot() {
    let (base, new) = (old_image(), changed_app_image(50 * 1024));
    let patch = delta::diff(&base, &new).unwrap();
    let other_base = {
        let mut b = base.clone();
        b[100] ^= 1;
        b
    };
    let mut cases: Vec<(String, Vec<u8>, Header)> = vec![
        (
            "bad magic".into(),
            {
                let mut p = patch.clone();
                p[0] = b'X';
                p
            },
            expected(&base, &new),
        ),
        (
            "another base".into(),
            delta::diff(&other_base, &new).unwrap(),
            expected(&base, &new),
        ),
        (
            "truncated".into(),
            patch[..patch.len() - 5].to_vec(),
            expected(&base, &new),
        ),
        (
            "segment too long".into(),
            {
                let mut p = patch.clone();
                p[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&u16::MAX.to_le_bytes());
                p
            },
            expected(&base, &new),
        ),
        (
            "trailing bytes".into(),
            {
                let mut p = patch.clone();
                p.extend_from_slice(&[1, 0, 0]);
                p
            },
            expected(&base, &new),
        ),
    ];
    let noise = random_bytes(4096, 78);
    for n in 0..300 {
        let mut p = patch.clone();
        let at = HEADER_LEN + usize::from(noise[n]) * 256 % (p.len() - HEADER_LEN);
        p[at] ^= noise[n + 1000] | 1;
        if n % 3 == 0 {
            p[at + 1..].rotate_left(n % 7);
        }
        cases.push((format!("damaged byte {at}"), p, expected(&base, &new)));
    }
    let mut errors = 0;
    for (name, p, header) in cases {
        let f = flash_with(&base);
        let mut w: InflatingWriter<SimFlash> = InflatingWriter::resume_delta(f.clone(), SLOT, BASE, header, 0, 0);
        let result = sim::time::run_virtual(async {
            let (_, hasher) = feed(&mut w, &p, Sha256::new(), None).await?;
            w.finish().await?;
            Ok::<_, DownloadError<_>>(hasher)
        });
        match result {
            Err(e) => {
                errors += 1;
                assert!(!e.to_string().is_empty());
            }
            // A flipped data byte builds other bytes: the signed hash refuses those.
            Ok(hasher) => assert_ne!(hasher.finalize(), Sha256::digest(&new), "{name} built the image"),
        }
        let end = new.len().div_ceil(SEGMENT_RAW) * SEGMENT_RAW;
        assert!(
            f.snapshot(SLOT.offset as usize + end, SLOT.size as usize - end)
                .iter()
                .all(|&b| b == 0xFF),
            "{name} wrote past the image"
        );
        assert_eq!(
            f.snapshot(BASE.offset as usize, base.len()),
            base,
            "{name} changed the running slot"
        );
    }
    assert!(errors > 100, "{errors}");
}

#[test]
fn the_decoder_ram_covers_the_delta_form_within_16_kib() {
    let beyond_raw =
        std::mem::size_of::<InflatingWriter<SimFlash>>() - std::mem::size_of::<SlotWriter<SimFlash>>() + 258;
    assert!(beyond_raw <= DECODER_RAM_BYTES, "{beyond_raw} > {DECODER_RAM_BYTES}");
    const { assert!(DECODER_RAM_BYTES <= 16 * 1024) };
    // The patch's stack buffer for base bytes is no larger than the copy buffer it shares
    // the figure with.
    const { assert!(device_fw::ota::patch::BASE_CHUNK <= 258) };
    println!("decoder RAM beyond the raw data path, both forms: {DECODER_RAM_BYTES} bytes");
}

#[test]
fn the_manifest_lists_the_patch_with_its_base_beside_the_compressed_form() {
    let (base, new) = (old_image(), changed_app_image(60 * 1024));
    let rel = release_delta(&base, new.clone(), NEW_VERSION);
    let mut buf = PayloadBuf::default();
    let m = open(&rel.manifest, &DeviceSetup::field().keys, &mut buf).unwrap().0;
    let patch = m.delta.expect("listed");
    let (path, bytes) = rel.delta.as_ref().unwrap();
    assert_eq!(patch.size as usize, bytes.len());
    assert_eq!(patch.base_size as usize, base.len());
    assert_eq!(
        patch.base_sha256_bytes().unwrap(),
        <[u8; 32]>::from(Sha256::digest(&base))
    );
    assert!(path.ends_with(patch.image.trim_start_matches("..")));
    assert!(m.compressed.is_some());
    assert_eq!(device_fw::ota::patch::apply(&base, bytes).unwrap(), new);
}

#[test]
fn a_device_running_the_base_takes_the_patch() {
    let patched = life_in(Form::Delta, None, 60 * 1024);
    let packed = life_in(Form::Compressed, None, 60 * 1024);
    for l in [&patched, &packed] {
        assert!(l.completed && !l.bricked && !l.wrong_image, "{l:?}");
    }
    // The patch of a small change is a fraction of what the compressed form sends.
    assert!(patched.body_bytes * 4 < packed.body_bytes, "{patched:?} vs {packed:?}");
}

#[test]
fn a_device_running_another_image_takes_the_compressed_form_instead() {
    // A patch from an image this device does not run: listed, and ignored.
    let new = changed_app_image(60 * 1024);
    let stranger = compressible_app_image(CHIP_ESP32, "0.9.0", 40 * 1024, 12);
    let rel = release_delta(&stranger, new.clone(), NEW_VERSION);
    let life = sim::trust::life_with_release(new.clone(), rel.clone());
    assert!(life.completed && !life.bricked && !life.wrong_image, "{life:?}");
    let packed = rel.compressed.as_ref().unwrap().1.len() as u64;
    assert!(
        life.body_bytes >= packed,
        "{life:?}: the compressed form is {packed} bytes"
    );
}

#[test]
fn a_power_cut_at_any_flash_operation_of_a_delta_update_never_bricks_and_completes() {
    let mut failures = Vec::new();
    let (clean, summary) = power_cut_sweep_in(Form::Delta, 2, SWEEP_PAYLOAD, |life| failures.push(format!("{life:?}")));
    assert!(clean.completed, "{clean:?}");
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!((summary.bricked, summary.wrong_image), (0, 0));
    assert_eq!(summary.completed, summary.cuts);
    assert!(summary.resumed_from_journal * 2 > summary.cuts, "{summary:?}");
}

#[test]
fn the_fewer_bytes_benchmark_measures_a_pair_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (old_image(), changed_app_image(60 * 1024));
    std::fs::write(dir.path().join("base.bin"), &base).unwrap();
    std::fs::write(dir.path().join("new.bin"), &new).unwrap();
    let spec = format!(
        "small={}:{}",
        dir.path().join("base.bin").display(),
        dir.path().join("new.bin").display()
    );
    assert!(sim::fewer_bytes::parse_pair("no-paths").is_err());
    let pair = sim::fewer_bytes::parse_pair(&spec).unwrap();
    let rows = sim::fewer_bytes::measure(
        &pair,
        Some(sim::fewer_bytes::Detools {
            heatshrink: 1 << 20,
            lzma: 1 << 20,
        }),
    )
    .unwrap();
    let forms: Vec<_> = rows.iter().map(|r| r.form).collect();
    assert_eq!(forms, [ImageForm::Raw, ImageForm::Compressed, ImageForm::Delta]);
    assert!(rows.iter().all(|r| r.completed), "{rows:#?}");
    let (raw, delta) = (&rows[0], &rows[2]);
    assert_eq!(raw.bytes, new.len());
    assert_eq!(delta.bytes, delta::diff(&base, &new).unwrap().len());
    // Fewer bytes, less time, in the seed case and on the whole device.
    assert!(delta.seed_virtual_s < raw.seed_virtual_s && delta.update_virtual_s < raw.update_virtual_s);
    assert!(delta.body_bytes_sent < raw.body_bytes_sent);
    assert_eq!(delta.detools_bytes, Some(1 << 20));
    assert_eq!(rows[0].detools_bytes, None);
}
