//! The OTA journal against NOR flash physics: it keeps the newest values across sector
//! reclaims, survives a power cut at every single erase and program, drops damaged content
//! instead of refusing to work, and a resume re-verifies the slot before trusting it.

use std::ops::Range;
use std::time::Duration;

use device_fw::esp::otadata::crc32_le;
use device_fw::ota::journal::{
    DecodeError, JOURNAL_RAM_BYTES, Journal, JournalBuf, JournalError, JournalReset, JournalState, LayoutError,
    Progress, RecordKey, VERSION_MAX, resume_point,
};
use device_fw::ota::{Slot, SlotWriter};
use device_fw::wire::ImageForm;
use sha2::{Digest, Sha256};
use sim::flash::{FlashError, FlashTiming, SimFlash};

/// Four sectors, as an `otadata`-sized partition pair would give.
const JOURNAL: Range<u32> = 0x9000..0xD000;
const SLOT: Slot = Slot {
    offset: 0x10000,
    size: 0x10000,
};
const SLOT_INDEX: u8 = 1;

/// Without erase and program times: time is not under test here, and the sweeps run the
/// journal hundreds of thousands of flash operations long.
fn flash() -> SimFlash {
    SimFlash::new(
        0x20000,
        FlashTiming {
            erase_sector: Duration::ZERO,
            erase_block: Duration::ZERO,
            program_page: Duration::ZERO,
            read_sector: Duration::ZERO,
        },
    )
}

fn journal() -> Journal {
    Journal::new(JOURNAL).unwrap()
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The `k`-th save of a scripted download: every one differs in every field that matters.
fn progress(k: u32) -> Progress {
    Progress {
        image_sha256: sha(b"image"),
        slot: SLOT_INDEX,
        image_size: 4_000_000,
        written: k * 256,
        prefix_sha256: sha(&k.to_le_bytes()),
        // Saves of each form in turn, the compressed and delta ones further along their file.
        form: [ImageForm::Raw, ImageForm::Compressed, ImageForm::Delta][k as usize % 3],
        fetched: k * 100 + 8,
    }
}

fn failed(state: &JournalState) -> Option<&str> {
    state.failed_version.as_deref()
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + i / 241) as u8).collect()
}

fn fresh_digest() -> [u8; 32] {
    Sha256::new().finalize().into()
}

#[tokio::test(start_paused = true)]
async fn round_trip_keeps_the_newest_values_across_sector_reclaims() {
    sim::time::use_virtual_time();
    let mut f = flash();
    let j = journal();
    assert_eq!(j.load(&mut f).await.unwrap(), JournalState::default(), "blank flash");

    assert_eq!(j.record_failed_version(&mut f, "1.2.0").await.unwrap(), None);
    // One 96-byte slot a record, 42 to a sector: every ~41st save opens the next sector
    // (erasing the oldest and carrying the failed-version record over). Measured over the
    // steady state after the first sectors filled.
    const SAVES: u32 = 1000;
    const FILL: u32 = 200;
    let mut before = f.stats();
    for k in 1..=SAVES {
        assert_eq!(j.save_progress(&mut f, &progress(k)).await.unwrap(), None);
        if k == FILL {
            before = f.stats();
        }
    }
    let after = f.stats();
    let saves = SAVES - FILL;
    let (ops, erases) = (after.ops - before.ops, after.sectors_erased - before.sectors_erased);
    let programs = after.pages_programmed - before.pages_programmed;
    println!(
        "{saves} saves: {ops} flash ops ({:.2} a save): {programs} programs ({:.2} a save), {erases} sector erases (one per {:.1} saves)",
        ops as f64 / f64::from(saves),
        programs as f64 / f64::from(saves),
        f64::from(saves) / erases as f64,
    );
    assert!(erases >= 15, "the journal moved on to new sectors: {erases} erases");
    assert!(ops <= u64::from(saves) * 5 / 2, "{ops} ops for {saves} saves");
    assert_eq!(after.bit_set_errors, 0);

    let state = j.load(&mut f).await.unwrap();
    assert_eq!(state.progress, Some(progress(SAVES)));
    assert_eq!(failed(&state), Some("1.2.0"), "survived every reclaim");
    assert_eq!(state.reset, None);

    assert_eq!(j.clear_progress(&mut f).await.unwrap(), None);
    let state = j.load(&mut f).await.unwrap();
    assert_eq!(state.progress, None);
    assert_eq!(failed(&state), Some("1.2.0"), "clearing progress keeps the failure");

    j.record_failed_version(&mut f, "1.3.0-rc.1").await.unwrap();
    j.save_progress(&mut f, &progress(7)).await.unwrap();
    let state = j.load(&mut f).await.unwrap();
    assert_eq!(failed(&state), Some("1.3.0-rc.1"));
    assert_eq!(state.progress, Some(progress(7)));
    assert!(
        f.snapshot(0, JOURNAL.start as usize).iter().all(|&b| b == 0xFF)
            && f.snapshot(JOURNAL.end as usize, 0x20000 - JOURNAL.end as usize)
                .iter()
                .all(|&b| b == 0xFF),
        "nothing outside the partition"
    );
}

#[tokio::test(start_paused = true)]
async fn versions_and_progress_are_checked_not_cut() {
    sim::time::use_virtual_time();
    let mut f = flash();
    let j = journal();
    let long = format!("1.2.3-rc.{}", "7".repeat(VERSION_MAX - 8));
    assert_eq!(long.len(), VERSION_MAX + 1);
    assert_eq!(
        j.record_failed_version(&mut f, &long).await,
        Err(JournalError::VersionTooLong { len: 33 })
    );
    let max = &long[..VERSION_MAX];
    j.record_failed_version(&mut f, max).await.unwrap();
    assert_eq!(failed(&j.load(&mut f).await.unwrap()), Some(max));

    let past_end = Progress {
        written: 5_000_000,
        ..progress(1)
    };
    assert_eq!(
        j.save_progress(&mut f, &past_end).await,
        Err(JournalError::ProgressPastEnd {
            written: 5_000_000,
            image_size: 4_000_000
        })
    );
    assert_eq!(j.load(&mut f).await.unwrap().progress, None);
}

#[test]
fn partition_must_be_two_whole_sectors() {
    assert!(Journal::new(0x9000..0xB000).is_ok());
    assert_eq!(
        Journal::new(0x9000..0xA000),
        Err(LayoutError::TooSmall {
            bytes: 0x1000,
            erase_size: 0x1000
        })
    );
    assert!(matches!(
        Journal::new(0x9100..0xC000),
        Err(LayoutError::NotSectorAligned { .. })
    ));
    assert!(matches!(
        Journal::new(0x9000..0xB800),
        Err(LayoutError::NotSectorAligned { .. })
    ));
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Fail,
    Save(u32),
    Clear,
}

fn script() -> Vec<Step> {
    let mut steps = vec![Step::Fail];
    steps.extend((1..=200).map(Step::Save));
    steps.push(Step::Clear);
    steps.extend((201..=260).map(Step::Save));
    steps
}

/// The progress the journal must hold once `done` steps have completed.
fn progress_after(steps: &[Step], done: usize) -> Option<Progress> {
    steps[..done].iter().fold(None, |p, s| match s {
        Step::Fail => p,
        Step::Save(k) => Some(progress(*k)),
        Step::Clear => None,
    })
}

/// Runs `steps` until the first error; returns how many completed, and the error.
async fn run(j: &Journal, f: &mut SimFlash, steps: &[Step]) -> (usize, Option<JournalError<FlashError>>) {
    for (i, step) in steps.iter().enumerate() {
        let r = match step {
            Step::Fail => j.record_failed_version(f, "1.2.0").await,
            Step::Save(k) => j.save_progress(f, &progress(*k)).await,
            Step::Clear => j.clear_progress(f).await,
        };
        match r {
            Ok(None) => {}
            Ok(Some(reset)) => panic!("step {i} reset the journal: {reset:?}"),
            Err(e) => return (i, Some(e)),
        }
    }
    (steps.len(), None)
}

/// After a cut in step `done` (0-based): what `load` gives must be the state before that
/// step or after it, nothing older and nothing else.
fn check_recovered(state: &JournalState, steps: &[Step], done: usize, op: u64) {
    assert_eq!(state.reset, None, "cut at op {op} (step {done}) damaged the journal");
    if done > 0 {
        assert_eq!(
            failed(state),
            Some("1.2.0"),
            "cut at op {op}: a completed record was lost"
        );
    } else {
        assert!(
            matches!(failed(state), None | Some("1.2.0")),
            "cut at op {op}: {:?}",
            state.failed_version
        );
    }
    let before = progress_after(steps, done);
    let during = progress_after(steps, done + 1);
    assert!(
        state.progress == before || state.progress == during,
        "cut at op {op} in step {done} ({:?}): loaded {:?}, expected {before:?} or {during:?}",
        steps[done],
        state.progress
    );
}

#[tokio::test(start_paused = true)]
async fn survives_a_power_cut_at_every_flash_operation() {
    sim::time::use_virtual_time();
    let j = journal();
    let steps = script();

    let mut f = flash();
    let (done, err) = run(&j, &mut f, &steps).await;
    assert_eq!((done, err), (steps.len(), None));
    let total = f.stats().ops;
    assert!(f.stats().sectors_erased >= 2, "the script must reach sector reclaims");

    let mut swept = 0u64;
    let mut recovery_writes = 0u64;
    for op in 0..total {
        let mut f = flash();
        f.cut_power_at(op);
        let (done, err) = run(&j, &mut f, &steps).await;
        assert_eq!(
            err,
            Some(JournalError::Flash(FlashError::PowerLost)),
            "op {op} is inside the script"
        );
        assert!(!f.is_powered());
        f.power_on();

        let ops_before_load = f.stats().ops;
        let state = j
            .load(&mut f)
            .await
            .unwrap_or_else(|e| panic!("load after cut at op {op}: {e:?}"));
        recovery_writes += f.stats().ops - ops_before_load;
        check_recovered(&state, &steps, done, op);

        // The device carries on where it was.
        assert_eq!(j.save_progress(&mut f, &progress(1000)).await.unwrap(), None);
        let again = j.load(&mut f).await.unwrap();
        assert_eq!(again.progress, Some(progress(1000)), "cut at op {op}");
        assert_eq!(again.failed_version, state.failed_version, "cut at op {op}");
        assert_eq!(f.stats().bit_set_errors, 0, "cut at op {op}");
        swept += 1;
    }
    println!("swept {swept} cut points; loads after a cut wrote {recovery_writes} times in all");
    assert_eq!(swept, total);
}

/// A second cut while the first one is being repaired (the power flickering at boot): the
/// recovery (a load, then the next save) must be interruptible too.
///
/// Each first cut is replayed from a copy of the partition taken before its step instead of
/// rerunning the whole script, so the sweep stays linear.
#[tokio::test(start_paused = true)]
async fn survives_a_second_cut_during_recovery() {
    sim::time::use_virtual_time();
    let j = journal();
    let steps = script();

    // A clean run, with the partition and the op counter noted before every step.
    let mut f = flash();
    let mut before_step = Vec::new();
    for i in 0..steps.len() {
        before_step.push((f.stats().ops, journal_bytes(&f)));
        assert_eq!(run(&j, &mut f, &steps[i..=i]).await, (1, None));
    }
    let total = f.stats().ops;

    let mut second_cuts = 0u64;
    for op in 0..total {
        let step = before_step.iter().rposition(|(start, _)| *start <= op).unwrap();
        let (start, bytes) = &before_step[step];
        let mut f = flash_with(bytes);
        f.cut_power_at(op - start);
        let (_, err) = run(&j, &mut f, &steps[step..=step]).await;
        assert_eq!(err, Some(JournalError::Flash(FlashError::PowerLost)), "op {op}");
        f.power_on();
        let after_cut = journal_bytes(&f);

        let recover = |f: &SimFlash| {
            let j = j.clone();
            let mut f = f.clone();
            async move {
                j.load(&mut f).await?;
                j.save_progress(&mut f, &progress(1000)).await
            }
        };
        let f = flash_with(&after_cut);
        recover(&f).await.unwrap();
        let recovery_ops = f.stats().ops;
        assert!(recovery_ops > 0);

        for extra in 0..recovery_ops {
            let mut f = flash_with(&after_cut);
            f.cut_power_at(extra);
            let err = recover(&f).await.unwrap_err();
            assert_eq!(err, JournalError::Flash(FlashError::PowerLost));
            f.power_on();
            let state = j
                .load(&mut f)
                .await
                .unwrap_or_else(|e| panic!("cuts at op {op} and recovery op {extra}: {e:?}"));
            assert_eq!(state.reset, None, "cuts at op {op} and recovery op {extra}");
            if step > 0 {
                assert_eq!(failed(&state), Some("1.2.0"), "cuts at op {op} and recovery op {extra}");
            }
            let allowed = [
                progress_after(&steps, step),
                progress_after(&steps, step + 1),
                Some(progress(1000)),
            ];
            assert!(
                allowed.contains(&state.progress),
                "cuts at op {op} and recovery op {extra}: {:?}",
                state.progress
            );
            j.save_progress(&mut f, &progress(1001)).await.unwrap();
            assert_eq!(j.load(&mut f).await.unwrap().progress, Some(progress(1001)));
            second_cuts += 1;
        }
    }
    println!("swept {total} first cuts and {second_cuts} second cuts during recovery");
    assert!(second_cuts >= total);
}

fn journal_bytes(f: &SimFlash) -> Vec<u8> {
    f.snapshot(JOURNAL.start as usize, (JOURNAL.end - JOURNAL.start) as usize)
}

/// A fresh chip whose journal partition holds `bytes`; its op counter starts at 0.
fn flash_with(bytes: &[u8]) -> SimFlash {
    let f = flash();
    f.load(JOURNAL.start as usize, bytes);
    f
}
#[tokio::test(start_paused = true)]
async fn resume_point_reverifies_the_written_prefix() {
    sim::time::use_virtual_time();
    let mut f = flash();
    let j = journal();
    let img = image(20_000);
    let img_sha = sha(&img);
    let size = img.len() as u32;

    let mut w: SlotWriter<_, 256> = SlotWriter::new(f.clone(), SLOT);
    w.write(&img[..9_000]).await.unwrap();
    let written = w.programmed();
    assert_eq!(written, 8_960);
    drop(w);
    let saved = Progress {
        image_sha256: img_sha,
        slot: SLOT_INDEX,
        image_size: size,
        written,
        prefix_sha256: sha(&img[..written as usize]),
        form: ImageForm::Raw,
        fetched: written,
    };
    j.save_progress(&mut f, &saved).await.unwrap();

    // Reboot.
    let p = j.load(&mut f).await.unwrap().progress.unwrap();
    assert_eq!(p, saved);
    let (at, mut hasher) = resume_point(&mut f, SLOT_INDEX, SLOT, &p, &img_sha, size)
        .await
        .unwrap();
    assert_eq!(at, written);
    let mut w: SlotWriter<_, 256> = SlotWriter::resume(f.clone(), SLOT, at);
    w.write(&img[at as usize..]).await.unwrap();
    hasher.update(&img[at as usize..]);
    w.finish().await.unwrap();
    assert_eq!(<[u8; 32]>::from(hasher.finalize()), img_sha);
    assert_eq!(f.snapshot(SLOT.offset as usize, img.len()), img);

    // Not this image, not this slot, not this size: start over.
    let other = sha(b"another image");
    for (idx, image_sha, image_size) in [
        (SLOT_INDEX, other, size),
        (SLOT_INDEX + 1, img_sha, size),
        (SLOT_INDEX, img_sha, size + 1),
    ] {
        let (at, h) = resume_point(&mut f, idx, SLOT, &p, &image_sha, image_size)
            .await
            .unwrap();
        assert_eq!((at, <[u8; 32]>::from(h.finalize())), (0, fresh_digest()));
    }

    // A prefix that no longer hashes right (bit rot, or the slot was rewritten): start over.
    let at = SLOT.offset as usize + 4_321;
    let byte = f.snapshot(at, 1)[0];
    f.load(at, &[byte ^ 0x10]);
    let (at, h) = resume_point(&mut f, SLOT_INDEX, SLOT, &p, &img_sha, size)
        .await
        .unwrap();
    assert_eq!((at, <[u8; 32]>::from(h.finalize())), (0, fresh_digest()));

    // A record claiming more than the slot holds is not read past the slot.
    let huge = Progress {
        image_size: u32::MAX,
        written: SLOT.size + 256,
        ..p
    };
    let (at, _) = resume_point(&mut f, SLOT_INDEX, SLOT, &huge, &img_sha, u32::MAX)
        .await
        .unwrap();
    assert_eq!(at, 0);
}

#[test]
fn ram_figure_is_the_real_buffer() {
    assert_eq!(std::mem::size_of::<JournalBuf>(), JOURNAL_RAM_BYTES);
    assert_eq!(JOURNAL_RAM_BYTES, 96);

    // The buffer lives in the call's future, next to the scan and the awaited flash calls.
    // Printed for the record, over a flash whose own futures are empty (so only the
    // journal's share shows) and over the simulator's (which carry tokio timers).
    let j = journal();
    let mut bare = BareFlash;
    let load = std::mem::size_of_val(&j.load(&mut bare));
    let save = std::mem::size_of_val(&j.save_progress(&mut bare, &progress(1)));
    let mut f = flash();
    let sim_load = std::mem::size_of_val(&j.load(&mut f));
    let sim_save = std::mem::size_of_val(&j.save_progress(&mut f, &progress(1)));
    println!(
        "futures (host, 64-bit): load {load} B, save_progress {save} B; over SimFlash {sim_load} B and {sim_save} B"
    );
    assert!(load >= JOURNAL_RAM_BYTES && save >= JOURNAL_RAM_BYTES);
}

/// A flash whose operations complete without awaiting anything; only measured, never run.
struct BareFlash;

impl embedded_storage_async::nor_flash::ErrorType for BareFlash {
    type Error = core::convert::Infallible;
}

impl embedded_storage_async::nor_flash::ReadNorFlash for BareFlash {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), Self::Error> {
        Ok(())
    }
    fn capacity(&self) -> usize {
        0x20000
    }
}

impl embedded_storage_async::nor_flash::NorFlash for BareFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    async fn erase(&mut self, _: u32, _: u32) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn write(&mut self, _: u32, _: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Writes `raw` as the value of `key`, the way a different firmware might have.
async fn store_raw(f: &mut SimFlash, key: RecordKey, raw: &[u8]) {
    assert_eq!(journal().store_raw(f, key, raw).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_record_is_dropped_and_the_other_kept() {
    sim::time::use_virtual_time();
    let j = journal();
    let cases: [(RecordKey, &[u8], DecodeError); 5] = [
        (RecordKey::PROGRESS, &[1, 2, 3], DecodeError::BadLength { len: 3 }),
        (RecordKey::PROGRESS, &[9], DecodeError::UnknownTag { tag: 9 }),
        (RecordKey::FAILED_VERSION, &[1, 0xC3, 0x28], DecodeError::VersionNotUtf8),
        (RecordKey::FAILED_VERSION, &[1; 34], DecodeError::BadLength { len: 34 }),
        (RecordKey::FAILED_VERSION, &[0, 0], DecodeError::BadLength { len: 2 }),
    ];
    for (key, raw, error) in cases {
        let mut f = flash();
        j.record_failed_version(&mut f, "1.2.0").await.unwrap();
        j.save_progress(&mut f, &progress(3)).await.unwrap();
        store_raw(&mut f, key, raw).await;

        let state = j.load(&mut f).await.unwrap();
        assert_eq!(state.reset, Some(JournalReset::RecordDropped { key, error }), "{raw:?}");
        if key == RecordKey::PROGRESS {
            assert_eq!((state.progress, failed(&state)), (None, Some("1.2.0")));
        } else {
            assert_eq!((state.progress, failed(&state)), (Some(progress(3)), None));
        }
        let again = j.load(&mut f).await.unwrap();
        assert_eq!(again.reset, None, "the bad record was overwritten");
        assert_eq!((again.progress, failed(&again)), (state.progress, failed(&state)));
    }

    // Past the image end: not garbage to resume from.
    let mut f = flash();
    let mut raw = [0u8; 75];
    raw[0] = 1;
    raw[3..7].copy_from_slice(&100u32.to_le_bytes());
    raw[7..11].copy_from_slice(&200u32.to_le_bytes());
    store_raw(&mut f, RecordKey::PROGRESS, &raw).await;
    let state = j.load(&mut f).await.unwrap();
    assert_eq!(
        state.reset,
        Some(JournalReset::RecordDropped {
            key: RecordKey::PROGRESS,
            error: DecodeError::WrittenPastEnd
        })
    );
    assert_eq!(state.progress, None);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_partition_is_erased_not_fatal() {
    sim::time::use_virtual_time();
    let j = journal();
    // Leftovers of something else: no sector header a journal could have written.
    let mut f = flash();
    f.load(
        JOURNAL.start as usize,
        &vec![0u8; (JOURNAL.end - JOURNAL.start) as usize],
    );
    let state = j.load(&mut f).await.unwrap();
    assert!(matches!(state.reset, Some(JournalReset::Erased(_))), "{state:?}");
    assert_eq!((state.progress, failed(&state)), (None, None));
    assert!(
        f.snapshot(JOURNAL.start as usize, (JOURNAL.end - JOURNAL.start) as usize)
            .iter()
            .all(|&b| b == 0xFF),
        "erased"
    );
    j.save_progress(&mut f, &progress(5)).await.unwrap();
    assert_eq!(
        j.load(&mut f).await.unwrap(),
        JournalState {
            progress: Some(progress(5)),
            ..JournalState::default()
        }
    );

    // A write that finds no journal in the partition erases it and still saves.
    let mut f = flash();
    f.load(
        JOURNAL.start as usize,
        &vec![0u8; (JOURNAL.end - JOURNAL.start) as usize],
    );
    let reset = j.record_failed_version(&mut f, "2.0.0").await.unwrap();
    assert!(matches!(reset, Some(JournalReset::Erased(_))), "{reset:?}");
    assert_eq!(failed(&j.load(&mut f).await.unwrap()), Some("2.0.0"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_flash_is_an_error_not_a_reset() {
    sim::time::use_virtual_time();
    let j = journal();
    let mut f = flash();
    j.save_progress(&mut f, &progress(1)).await.unwrap();
    f.cut_power_at(f.stats().ops);
    assert_eq!(
        j.save_progress(&mut f, &progress(2)).await,
        Err(JournalError::Flash(FlashError::PowerLost))
    );
    assert_eq!(
        j.load(&mut f).await,
        Err(JournalError::Flash(FlashError::PowerLost)),
        "reads fail while the power is off"
    );
    f.power_on();
    let state = j.load(&mut f).await.unwrap();
    assert!(state.progress == Some(progress(1)) || state.progress == Some(progress(2)));
}

/// The records in the partition as the format in `device_fw::ota::journal` describes it,
/// read independently of the journal's own code: `(seq, key, value)` of every good record,
/// sectors in `seq` order.
fn records_on_flash(f: &SimFlash) -> Vec<(u32, u8, Vec<u8>)> {
    let bytes = journal_bytes(f);
    let le = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    let mut sectors: Vec<(u32, &[u8])> = bytes
        .chunks(4096)
        .filter(|s| &s[0..4] == b"OTJ1" && le(&s[8..]) == !le(&s[4..]) && s[12..16] == [0xFF; 4])
        .map(|s| (le(&s[4..]), s))
        .collect();
    sectors.sort_by_key(|(seq, _)| *seq);
    let mut out = Vec::new();
    for (seq, sector) in sectors {
        for slot in sector[16..16 + 42 * 96].chunks(96) {
            let (key, len) = (slot[0], usize::from(slot[1]));
            if key == 0xFF || len > 88 || slot[2..4] != [0xFF; 2] {
                continue;
            }
            let crc = crc32_le(crc32_le(0, &slot[..4]), &slot[8..8 + len]);
            if le(&slot[4..]) == crc {
                out.push((seq, key, slot[8..8 + len].to_vec()));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_format_on_flash_is_the_documented_one_and_carries_unknown_keys() {
    sim::time::use_virtual_time();
    let j = journal();
    let mut f = flash();
    let later = RecordKey::other(7).unwrap();
    assert_eq!(RecordKey::other(0xFF), None);
    j.store_raw(&mut f, later, b"from a later firmware").await.unwrap();
    j.record_failed_version(&mut f, "1.2.0").await.unwrap();
    // Enough saves to go round all four sectors twice: every sector is erased on the way.
    for k in 1..=400 {
        j.save_progress(&mut f, &progress(k)).await.unwrap();
    }
    assert!(f.stats().sectors_erased >= 8);

    let records = records_on_flash(&f);
    let newest_seq = records.iter().map(|r| r.0).max().unwrap();
    assert!(newest_seq >= 9, "seq counts the sectors opened: {newest_seq}");
    let newest = |key: u8| records.iter().rev().find(|r| r.1 == key).map(|r| (r.0, r.2.clone()));
    // A key this firmware does not know survives every sector change, byte for byte.
    assert_eq!(newest(7), Some((newest_seq, b"from a later firmware".to_vec())));
    let mut version = vec![1u8];
    version.extend_from_slice(b"1.2.0");
    assert_eq!(newest(2), Some((newest_seq, version)));
    // The progress record: tag, slot, form (0xFF raw, 3 compressed, 2 delta; 1 was the
    // DEFLATE compressed form), size, written, image hash, prefix hash, where the fetched
    // file continues.
    let (_, p) = newest(1).unwrap();
    let want = progress(400);
    let form = match want.form {
        ImageForm::Raw => 0xFF,
        ImageForm::Compressed => 3,
        ImageForm::Delta => 2,
    };
    assert_eq!(p.len(), 79);
    assert_eq!(p[75..79], want.fetched.to_le_bytes());
    assert_eq!((p[0], p[1], p[2]), (1, SLOT_INDEX, form));
    assert_eq!(p[3..7], want.image_size.to_le_bytes());
    assert_eq!(p[7..11], want.written.to_le_bytes());
    assert_eq!(
        (&p[11..43], &p[43..75]),
        (&want.image_sha256[..], &want.prefix_sha256[..])
    );
    assert_eq!(j.load(&mut f).await.unwrap().progress, Some(want));

    // A cleared progress is a record of its own: the tag alone.
    j.clear_progress(&mut f).await.unwrap();
    assert_eq!(newest_value(&f, 1), Some(vec![0]));
}

fn newest_value(f: &SimFlash, key: u8) -> Option<Vec<u8>> {
    records_on_flash(f).into_iter().rev().find(|r| r.1 == key).map(|r| r.2)
}

/// A progress record as older firmware wrote it, loaded by this one: tag, slot, `form`, size
/// 300,000, written 8,192, image hash, prefix hash, then `fetched` if that firmware had it.
async fn load_older_progress(form: u8, fetched: Option<u32>) -> Progress {
    let mut raw = vec![1, SLOT_INDEX, form];
    raw.extend_from_slice(&300_000u32.to_le_bytes());
    raw.extend_from_slice(&8_192u32.to_le_bytes());
    raw.extend_from_slice(&sha(b"image"));
    raw.extend_from_slice(&sha(b"prefix"));
    if let Some(fetched) = fetched {
        raw.extend_from_slice(&fetched.to_le_bytes());
    }
    let mut f = flash();
    store_raw(&mut f, RecordKey::PROGRESS, &raw).await;
    journal().load(&mut f).await.unwrap().progress.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_progress_record_of_firmware_before_the_compressed_form_reads_as_raw() {
    sim::time::use_virtual_time();
    // The reserved 0xFF where the form is now, and no `fetched`: 75 bytes.
    let p = load_older_progress(0xFF, None).await;
    assert_eq!(p.form, ImageForm::Raw);
    assert_eq!((p.written, p.fetched, p.image_size), (8_192, 8_192, 300_000));
    assert_eq!(p.prefix_sha256, sha(b"prefix"));
}

#[tokio::test(start_paused = true)]
async fn a_progress_record_of_the_deflate_compressed_form_resumes_as_raw() {
    sim::time::use_virtual_time();
    // Form 1 was the DEFLATE form (OTZ1), which the decoder no longer reads. The slot holds
    // image bytes up to `written` whatever form brought them, so the record stays good for
    // a raw download of the same image, and only for that.
    let p = load_older_progress(1, Some(5_000)).await;
    assert_eq!(p.form, ImageForm::Raw);
    assert_eq!((p.written, p.image_size), (8_192, 300_000));
    assert_eq!(p.prefix_sha256, sha(b"prefix"));
}

#[tokio::test(start_paused = true)]
async fn a_damaged_header_claiming_a_far_higher_seq_does_not_hide_later_saves() {
    sim::time::use_virtual_time();
    // Damage that happens to check out: magic kept, a seq far above the others with its
    // complement. Taken for the newest sector it would hide every save made after it.
    for forged in [u32::MAX, 0xFFFF_0000, 1_000_000] {
        let (j, mut f) = (journal(), flash());
        for k in 1..=60 {
            j.save_progress(&mut f, &progress(k)).await.unwrap();
        }
        j.record_failed_version(&mut f, "1.2.0").await.unwrap();
        let mut header = [0u8; 12];
        header[..4].copy_from_slice(b"OTJ1");
        header[4..8].copy_from_slice(&forged.to_le_bytes());
        header[8..12].copy_from_slice(&(!forged).to_le_bytes());
        // The first sector, which the journal has long left behind.
        let mut raw = f.snapshot(JOURNAL.start as usize, 16);
        raw[..12].copy_from_slice(&header);
        f.load(JOURNAL.start as usize, &raw);
        for k in 61..=130 {
            j.save_progress(&mut f, &progress(k)).await.unwrap();
            let state = j.load(&mut f).await.unwrap();
            assert_eq!(state.progress, Some(progress(k)), "seq {forged:#x}, save {k}");
            assert_eq!(failed(&state), Some("1.2.0"), "seq {forged:#x}, save {k}");
        }
    }
}
